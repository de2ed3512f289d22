"""Latency the phone adds at 0 jitter: capture-to-wire and wire-to-playout, measured on the
real media thread (``MediaSession``) over loopback.

The phone side runs in this process with an instrumented sound device; the far end is a
child process (its own interpreter, so its GIL never delays ours). Both stamp events with
``time.monotonic_ns()``, one clock for every process on the machine.

- Capture-to-wire: the device's ``read()`` returns frame k (paced every 20 ms, like a card)
  marked with k in its µ-law codes, and stamps the moment; the far end stamps the arrival
  of the RTP packet carrying mark k. A real card returns a frame when its last sample is
  in, so the frame's first sample is 20 ms older: the 20 ms packetisation is added to the
  measured part.
- Wire-to-playout: the far end sends RTP (20 ms PCMU, marked payloads, no jitter, no loss)
  and stamps each send; the device's ``write()`` stamps each marked frame it is given.
  Split into: waiting in the socket for the media loop's next turn (0..20 ms, depends on
  the phase of the far end's clock against the card's: spread evenly over the calls), the
  jitter buffer (whole 20 ms periods) and processing (from ``read()`` returning to
  ``write()``).

    python bench/latency.py [--calls 10] [--seconds 3]

Not included: what a real sound card adds (the ALSA backend's playback buffer holds 1..4
periods of 20 ms; converters, USB; 1 ms each way of resampling filter at 16/48 kHz), and
the network.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "firmware"))

from deskphone.media.g711 import ULAW_DECODE_TABLE  # noqa: E402

FRAME = 160  # samples: 20 ms at 8 kHz
PERIOD_NS = 20_000_000
WARMUP_FRAMES = 25  # the first 0.5 s of a call is start-up, not steady state
TARGET_MS = 60.0
MIC_MAGIC = (0x1A, 0x2B)  # first two µ-law codes of a frame the phone captured
FAR_MAGIC = (0x3C, 0x4D)  # ... of a frame the far end sent
FILL = 0xE5  # the other codes: a quiet sample (never 0x7F, the one code that does not
#              survive decode + encode: it and 0xFF both decode to 0)
_RTP = struct.Struct("!BBHII")


# ------------------------------------------------------------------------- the marks

def mark(magic: tuple[int, int], k: int) -> bytes:
    """160 µ-law codes: magic, then k in three base-64 digits (codes 0x10..0x4F)."""
    digits = bytes(0x10 + (k >> shift & 0x3F) for shift in (12, 6, 0))
    return bytes(magic) + digits + bytes([FILL]) * (FRAME - 5)


def read_mark(magic: tuple[int, int], codes: bytes | list[int]) -> int | None:
    if codes[0] != magic[0] or codes[1] != magic[1]:
        return None
    return ((codes[2] - 0x10) << 12) | ((codes[3] - 0x10) << 6) | (codes[4] - 0x10)


_SAMPLE_TO_CODE = {int(ULAW_DECODE_TABLE[c]): c for c in range(256) if c != 0x7F}


class ProbeBackend:
    """A sound device that marks what it captures and stamps what it plays.

    ``read()`` returns frame k at ``start_ns + k x 20 ms`` (a card's clock), its µ-law
    codes marked with k; ``write()`` looks for the far end's mark in what it is given.
    """

    name = "probe"
    frame_samples = FRAME

    def __init__(self, start_ns: int, frames: int) -> None:
        self._start = start_ns
        self._frames = [ULAW_DECODE_TABLE.take(np.frombuffer(mark(MIC_MAGIC, k), np.uint8))
                        for k in range(frames)]
        self._quiet = ULAW_DECODE_TABLE.take(np.full(FRAME, FILL, np.uint8))
        self._far0 = int(ULAW_DECODE_TABLE[FAR_MAGIC[0]])
        self._far1 = int(ULAW_DECODE_TABLE[FAR_MAGIC[1]])
        self._k = 0
        self.read_ns: list[int] = []  # when read() returned frame k
        self.played_ns: dict[int, int] = {}  # far end's frame j -> when write() got it

    def start(self) -> None:
        pass

    def read(self) -> Any:
        k = self._k
        wait = self._start + k * PERIOD_NS - time.monotonic_ns()
        if wait > 0:
            time.sleep(wait / 1e9)
        frame = self._frames[k] if k < len(self._frames) else self._quiet
        self.read_ns.append(time.monotonic_ns())
        self._k = k + 1
        return frame

    def write(self, frame: Any) -> None:
        now = time.monotonic_ns()
        if int(frame[0]) != self._far0 or int(frame[1]) != self._far1:
            return
        codes = [_SAMPLE_TO_CODE.get(int(s), 0) for s in frame[:5]]
        j = read_mark(FAR_MAGIC, codes)
        if j is not None:
            self.played_ns.setdefault(j, now)

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass


# -------------------------------------------------------------------------- far end

def far_end() -> None:
    """Child process: JSON lines in on stdin, out on stdout.

    Prints {"port"}; then for each {"phone_port", "start_ns", "frames"} sends that many
    marked PCMU packets, one each 20 ms from start_ns, and answers {"sent", "received"}:
    frame index -> monotonic ns of each send, and of each marked packet from the phone.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    received: dict[int, int] = {}
    lock = threading.Lock()
    done = threading.Event()

    def receive() -> None:
        while not done.is_set():
            try:
                data = sock.recv(2048)
            except TimeoutError:
                continue
            now = time.monotonic_ns()
            if len(data) < 12 + FRAME or data[0] != 0x80:
                continue  # RTCP (rtcp-mux), or not ours
            k = read_mark(MIC_MAGIC, data[12:17])
            if k is not None:
                with lock:
                    received.setdefault(k, now)

    threading.Thread(target=receive, daemon=True).start()
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    rng = random.Random(7)
    for line in sys.stdin:
        call = json.loads(line)
        if call.get("quit"):
            break
        with lock:
            received.clear()  # what the last call's phone sent on after our report
        target = ("127.0.0.1", call["phone_port"])
        seq, ts, ssrc = rng.getrandbits(16), rng.getrandbits(32), rng.getrandbits(32)
        sent: dict[int, int] = {}
        for j in range(call["frames"]):
            wait = call["start_ns"] + j * PERIOD_NS - time.monotonic_ns()
            if wait > 0:
                time.sleep(wait / 1e9)
            packet = _RTP.pack(0x80, 0x80 if j == 0 else 0, (seq + j) & 0xFFFF,
                               (ts + j * FRAME) & 0xFFFFFFFF, ssrc) + mark(FAR_MAGIC, j)
            sent[j] = time.monotonic_ns()
            sock.sendto(packet, target)
        time.sleep(0.2)  # the phone's last packets
        with lock:
            got = dict(received)
            received.clear()
        print(json.dumps({"sent": sent, "received": got}), flush=True)
    done.set()


# ---------------------------------------------------------------------------- phone

@dataclass(slots=True)
class Samples:
    """Per-frame latencies in ms, over all calls."""

    capture: list[float]  # read() returned -> packet at the far end
    wire: list[float]  # sent by the far end -> write() got its samples
    socket_wait: list[float]  # sent -> the media loop's next turn (read() returning)
    jitter_buffer: list[float]  # that turn -> the turn that played it (whole periods)
    processing: list[float]  # read() returning -> write() in the turn that played it
    unplayed: int  # far-end frames (after warm-up) never written to the device


def call(far: subprocess.Popen[str], far_port: int, phase_ns: int, seconds: float,
         seed: int) -> Samples:
    from deskphone.media.engine import MediaSession
    from deskphone.sdp import PCMU, Direction, NegotiatedMedia

    frames = int(seconds * 1000 / 20)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    media = NegotiatedMedia(remote_address="127.0.0.1", remote_port=far_port,
                            local_port=sock.getsockname()[1], codec=PCMU,
                            telephone_event_pt=101, ptime=20, direction=Direction.SENDRECV,
                            rtcp_mux=True)
    start = time.monotonic_ns() + 100_000_000
    device = ProbeBackend(start, frames + 50)
    session = MediaSession(media, sock, device, rng=random.Random(seed))
    session.start()
    assert far.stdin is not None and far.stdout is not None
    far.stdin.write(json.dumps({"phone_port": sock.getsockname()[1], "frames": frames,
                                "start_ns": start + 2 * PERIOD_NS + phase_ns}) + "\n")
    far.stdin.flush()
    report = json.loads(far.stdout.readline())
    session.stop()
    sock.close()
    if session.error is not None:
        raise SystemExit(f"latency: the media thread failed: {session.error!r}")
    sent = {int(j): t for j, t in report["sent"].items()}
    received = {int(k): t for k, t in report["received"].items()}
    reads = np.array(device.read_ns)
    out = Samples([], [], [], [], [], 0)
    for k, t in sorted(received.items()):
        if WARMUP_FRAMES <= k < len(reads):
            out.capture.append((t - reads[k]) / 1e6)
    for j, t_sent in sorted(sent.items()):
        if j < WARMUP_FRAMES:
            continue
        t_played = device.played_ns.get(j)
        if t_played is None:
            out.unplayed += 1
            continue
        drained = int(np.searchsorted(reads, t_sent))  # the first turn after it came
        played = int(np.searchsorted(reads, t_played, side="right")) - 1
        out.wire.append((t_played - t_sent) / 1e6)
        out.socket_wait.append((reads[drained] - t_sent) / 1e6)
        out.jitter_buffer.append((reads[played] - reads[drained]) / 1e6)
        out.processing.append((t_played - reads[played]) / 1e6)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=10,
                    help="calls, the far end's phase stepped over the 20 ms period")
    ap.add_argument("--seconds", type=float, default=3.0, help="length of each call")
    ap.add_argument("--far-end", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.far_end:
        far_end()
        return
    import deskphone.media.engine  # noqa: F401  (imports paid before the first call)

    far = subprocess.Popen([sys.executable, __file__, "--far-end"], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True)
    try:
        assert far.stdout is not None and far.stdin is not None
        far_port = json.loads(far.stdout.readline())["port"]
        runs = [call(far, far_port, int((i + 0.5) / a.calls * PERIOD_NS), a.seconds, i)
                for i in range(a.calls)]
        far.stdin.write(json.dumps({"quit": True}) + "\n")
        far.stdin.flush()
        far.wait(5)
    finally:
        if far.poll() is None:
            far.kill()
    report(runs, a)


def report(runs: list[Samples], a: argparse.Namespace) -> None:
    def pick(name: str) -> np.ndarray:
        return np.array([x for r in runs for x in getattr(r, name)])

    capture, wire = pick("capture"), pick("wire")
    unplayed = sum(r.unplayed for r in runs)
    if not len(capture) or not len(wire):
        raise SystemExit("latency: no marked frames came through (capture "
                         f"{len(capture)}, playout {len(wire)})")
    packetisation = FRAME / 8.0

    def row(label: str, x: np.ndarray | float, note: str = "") -> None:
        if isinstance(x, float):
            print(f"  {label:<46}{x:>7.1f}{x:>7.1f}{x:>7.1f}   {note}")
        else:
            print(f"  {label:<46}{x.mean():>7.1f}{np.percentile(x, 95):>7.1f}{x.max():>7.1f}"
                  f"   {note}")

    print("latency the phone adds at 0 jitter: the real MediaSession over loopback, "
          "G.711 µ-law 20 ms,")
    print(f"{a.calls} calls x {a.seconds:g} s (first {WARMUP_FRAMES} frames of each left out), "
          "the far end's phase stepped over the 20 ms period; ms:")
    print(f"  {'':<46}{'mean':>7}{'p95':>7}{'max':>7}")
    print("capture-to-wire")
    row("packetisation: first sample waits for the last", packetisation)
    row("read() returns -> packet at the far end", capture, f"{len(capture)} frames")
    total_capture = capture + packetisation
    row("= capture-to-wire", total_capture)
    print("wire-to-playout")
    row("until the media loop's next turn (read())", pick("socket_wait"))
    row("jitter buffer (min delay 20 ms, whole periods)", pick("jitter_buffer"))
    row("processing: read() returns -> write()", pick("processing"))
    row("= wire-to-playout", wire, f"{len(wire)} frames, {unplayed} not played")
    print("  jitter buffer, mean per call, by when the far end's packets land after our "
          "tick (ms: ms):")
    phases = [(i + 0.5) / len(runs) * PERIOD_NS / 1e6 for i in range(len(runs))]
    print("    " + ", ".join(f"{p:.0f}: {np.mean(r.jitter_buffer):.0f}"
                             for p, r in zip(phases, runs, strict=True)))
    mean = total_capture.mean() + wire.mean()
    p95 = np.percentile(total_capture, 95) + np.percentile(wire, 95)
    verdict = ", ".join(f"{name} {x:.1f} ms {'met' if x <= TARGET_MS else 'MISSED'}"
                        for name, x in (("mean", mean), ("p95", p95)))
    print(f"total (mouth to wire + wire to device)        {mean:>9.1f}{p95:>7.1f}"
          f"          (p95: sum of the two p95s)")
    print(f"target: <= {TARGET_MS:g} ms in total: {verdict}")
    print("Included: 20 ms packetisation, the media loop's work each way, the wait for the "
          "loop's next turn")
    print("(the loop drains the socket once per 20 ms, after read() returns) and the jitter "
          "buffer's minimum")
    print("delay (jitter_min_ms = 20). Not included: the network; a real sound card's own "
          "buffering, which")
    print("comes on top: the ALSA backend's playback buffer holds 1..4 periods of 20 ms "
          "(20..80 ms),")
    print("plus converter/USB delay and, when the card runs at 16/48 kHz, ~1 ms each way of "
          "resampling filter.")


if __name__ == "__main__":
    main()
