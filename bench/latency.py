"""Latency the phone adds at 0 jitter, on the real media thread (``MediaSession``) over
loopback, measured three ways against one far end (a child process: its own interpreter,
so its GIL never delays ours). Every process stamps with ``time.monotonic_ns()``.

1. In-process probe: a sound device that marks the frames ``read()`` returns (paced every
   20 ms, like a card) and stamps them, and stamps the far end's marked frames as they
   reach ``write()``. Capture-to-wire counts 20 ms of packetisation (a card returns a frame
   when its last sample is in) plus ``read()`` to the far end; wire-to-playout is split
   into the wait for the media loop's next turn (0..20 ms, set by the far end's phase,
   stepped over the period across ``--calls``), the jitter buffer and processing.
2. Black box, file backend: the microphone WAV carries marked events at known samples
   (one per frame, at offsets spread over the frame); the far end stamps the arrival of
   the packet that carries each, and sends marked events with known departures, which
   are looked up in the speaker WAV. Mic sample i and speaker sample i are on one
   timeline, a duplex card's: T(i) = t0 + (i - 160) / 8000, t0 the backend's first tick
   (so the frame read at a tick is the one whose last sample is in then, as on a card).
   mic-to-wire = arrival - T(i), wire-to-speaker = T(s) - departure, each referred to the
   packet's first sample (the far end sees where in the packet an event is) so that they
   compare with the probe's; their sum does not depend on t0.
3. Black box, ALSA on a paced device: the same far end, the ``AlsaBackend`` on a device
   whose capture hears its playback (a PulseAudio null sink and its monitor, started here
   when ``--alsa auto`` finds pulseaudio). The far end's events come back to it: departure
   to arrival is both directions at once, the device's own loop included; the device
   passed through a recorder splits it at the ``write()`` of the frame holding an event
   and the ``read()`` that returned it.

    python bench/latency.py [--calls 10] [--seconds 3] [--alsa auto|off|DEVICE]

Not included: the network; for the file backend and the probe, a real sound card's own
buffering (the ALSA backend's cushion, FIFOs, converters, USB).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "firmware"))

from deskphone.media.g711 import ULAW_DECODE_TABLE  # noqa: E402

FRAME = 160  # samples: 20 ms at 8 kHz
RATE = 8000
PERIOD_NS = 20_000_000
WARMUP_FRAMES = 25  # the first 0.5 s of a call is start-up, not steady state
TARGET_MS = 60.0
MARK_LEN = 5  # codes: magic, magic, three base-64 digits
MIC_MAGIC = (0x5A, 0x6B)  # first two µ-law codes of an event the phone captured
FAR_MAGIC = (0x5C, 0x6D)  # ... of an event the far end sent
# (neither magic code is a digit code, 0x10..0x4F: a mark cannot be read inside another)
FILL = 0xE5  # the other codes: a quiet sample (never 0x7F, the one code that does not
#              survive decode + encode: it and 0xFF both decode to 0)
_RTP = struct.Struct("!BBHII")


# ------------------------------------------------------------------------- the marks

def mark_codes(magic: tuple[int, int], k: int) -> bytes:
    """The five µ-law codes of event k: magic, then k in three base-64 digits."""
    return bytes(magic) + bytes(0x10 + (k >> shift & 0x3F) for shift in (12, 6, 0))


def mark(magic: tuple[int, int], k: int, offset: int = 0) -> bytes:
    """A 20 ms frame of µ-law codes with event k at ``offset``."""
    frame = bytearray([FILL]) * FRAME
    frame[offset:offset + MARK_LEN] = mark_codes(magic, k)
    return bytes(frame)


def event_offset(k: int) -> int:
    """Where in its frame event k sits: 37 steps through all 156 places a mark fits."""
    return k * 37 % (FRAME - MARK_LEN + 1)


def read_mark(magic: tuple[int, int], codes: bytes | list[int]) -> int | None:
    if codes[0] != magic[0] or codes[1] != magic[1]:
        return None
    if not all(0x10 <= c < 0x50 for c in codes[2:MARK_LEN]):
        return None
    return ((codes[2] - 0x10) << 12) | ((codes[3] - 0x10) << 6) | (codes[4] - 0x10)


def find_marks(magic: tuple[int, int], codes: bytes) -> list[tuple[int, int]]:
    """(position, event) of every whole mark of ``magic`` in a µ-law stream."""
    out = []
    pattern = bytes(magic)
    p = codes.find(pattern)
    while 0 <= p <= len(codes) - MARK_LEN:
        k = read_mark(magic, codes[p:p + MARK_LEN])
        if k is not None:
            out.append((p, k))
        p = codes.find(pattern, p + 1)
    return out


# int16 sample -> the µ-law code that decodes to it (0x7F, never a mark's, for the rest)
_CODE_OF = np.full(65536, 0x7F, np.uint8)
for _c in range(256):
    if _c != 0x7F:
        _CODE_OF[int(ULAW_DECODE_TABLE[_c]) + 32768] = _c
_SAMPLE_TO_CODE = {int(ULAW_DECODE_TABLE[c]): c for c in range(256) if c != 0x7F}


def to_codes(pcm: np.ndarray) -> bytes:
    return bytes(_CODE_OF[pcm.astype(np.int32) + 32768].tobytes())


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
        codes = [_SAMPLE_TO_CODE.get(int(s), 0) for s in frame[:MARK_LEN]]
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

    Prints {"port"}; then for each {"phone_port", "start_ns", "frames", "spread"} sends
    that many PCMU packets, one each 20 ms from start_ns, packet j carrying event j (at
    ``event_offset(j)`` if "spread", else first), and answers {"sent", "mic", "far"}:
    event -> monotonic ns of each send, and for each event found in what the phone sent
    (its microphone's, or ours come back round a loop) [arrival ns of the packet holding
    its first code, that code's place in the packet]. A mark may straddle two packets.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    found: dict[str, dict[int, tuple[int, int]]] = {"mic": {}, "far": {}}
    lock = threading.Lock()
    done = threading.Event()

    def receive() -> None:
        tail, tail_ns, tail_end = b"", 0, -1  # the last packet's last codes, its arrival
        while not done.is_set():
            try:
                data = sock.recv(2048)
            except TimeoutError:
                continue
            now = time.monotonic_ns()
            if len(data) < 12 + FRAME or data[0] != 0x80 or data[1] & 0x7F != 0:
                continue  # RTCP (rtcp-mux), or not ours
            ts = _RTP.unpack_from(data)[3]
            payload = data[12:]
            head = tail if ts == tail_end else b""
            codes = head + payload
            for name, magic in (("mic", MIC_MAGIC), ("far", FAR_MAGIC)):
                for p, k in find_marks(magic, codes):
                    if p + MARK_LEN <= len(head):
                        continue  # found in the last packet already
                    at = (tail_ns, FRAME - len(head) + p) if p < len(head) else (
                        now, p - len(head))
                    with lock:
                        found[name].setdefault(k, at)
            tail, tail_ns = payload[-(MARK_LEN - 1):], now
            tail_end = (ts + len(payload)) & 0xFFFFFFFF

    threading.Thread(target=receive, daemon=True).start()
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    rng = random.Random(7)
    for line in sys.stdin:
        call = json.loads(line)
        if call.get("quit"):
            break
        with lock:
            for d in found.values():
                d.clear()  # what the last call's phone sent on after our report
        target = ("127.0.0.1", call["phone_port"])
        seq, ts, ssrc = rng.getrandbits(16), rng.getrandbits(32), rng.getrandbits(32)
        sent: dict[int, int] = {}
        for j in range(call["frames"]):
            wait = call["start_ns"] + j * PERIOD_NS - time.monotonic_ns()
            if wait > 0:
                time.sleep(wait / 1e9)
            body = mark(FAR_MAGIC, j, event_offset(j) if call["spread"] else 0)
            packet = _RTP.pack(0x80, 0x80 if j == 0 else 0, (seq + j) & 0xFFFF,
                               (ts + j * FRAME) & 0xFFFFFFFF, ssrc) + body
            sent[j] = time.monotonic_ns()
            sock.sendto(packet, target)
        time.sleep(call.get("linger", 0.2))  # the phone's last packets
        with lock:
            report = {"sent": sent, **{name: dict(d) for name, d in found.items()}}
            for d in found.values():
                d.clear()
        print(json.dumps(report), flush=True)
    done.set()


class FarEnd:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--far-end"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.port = int(json.loads(self._line())["port"])

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit("latency: the far end died")
        return line

    def call(self, phone_port: int, start_ns: int, frames: int, *, spread: bool,
             linger: float = 0.2) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"phone_port": phone_port, "start_ns": start_ns,
                                          "frames": frames, "spread": spread,
                                          "linger": linger}) + "\n")
        self.proc.stdin.flush()
        raw = json.loads(self._line())
        return {"sent": {int(j): t for j, t in raw["sent"].items()},
                **{name: {int(k): tuple(v) for k, v in raw[name].items()}
                   for name in ("mic", "far")}}

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.write(json.dumps({"quit": True}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            self.proc.kill()


# ---------------------------------------------------------------------------- phone

def open_session(far_port: int, device: Any, seed: int) -> tuple[Any, socket.socket]:
    from deskphone.media.engine import MediaSession
    from deskphone.sdp import PCMU, Direction, NegotiatedMedia

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    media = NegotiatedMedia(remote_address="127.0.0.1", remote_port=far_port,
                            local_port=sock.getsockname()[1], codec=PCMU,
                            telephone_event_pt=101, ptime=20, direction=Direction.SENDRECV,
                            rtcp_mux=True)
    return MediaSession(media, sock, device, rng=random.Random(seed)), sock


def close_session(session: Any, sock: socket.socket) -> None:
    session.stop()
    sock.close()
    if session.error is not None:
        raise SystemExit(f"latency: the media thread failed: {session.error!r}")


@dataclass(slots=True)
class Probe:
    """Per-frame latencies in ms, over all calls (the in-process probe)."""

    capture: list[float] = field(default_factory=list)  # read() returned -> at the far end
    wire: list[float] = field(default_factory=list)  # sent by the far end -> write() got it
    socket_wait: list[float] = field(default_factory=list)  # sent -> the loop's next turn
    jitter_buffer: list[float] = field(default_factory=list)  # that turn -> the one playing it
    processing: list[float] = field(default_factory=list)  # read() returning -> write()
    unplayed: int = 0  # far-end frames (after warm-up) never written to the device


def probe_call(far: FarEnd, phase_ns: int, seconds: float, seed: int) -> Probe:
    frames = int(seconds * 1000 / 20)
    start = time.monotonic_ns() + 100_000_000
    device = ProbeBackend(start, frames + 50)
    session, sock = open_session(far.port, device, seed)
    session.start()
    report = far.call(sock.getsockname()[1], start + 2 * PERIOD_NS + phase_ns, frames,
                      spread=False)
    close_session(session, sock)
    reads = np.array(device.read_ns)
    out = Probe()
    for k, (t, _) in sorted(report["mic"].items()):
        if WARMUP_FRAMES <= k < len(reads):
            out.capture.append((t - reads[k]) / 1e6)
    for j, t_sent in sorted(report["sent"].items()):
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


@dataclass(slots=True)
class BlackBox:
    """Per-event latencies in ms from the WAV files and the far end's stamps."""

    mic: list[float] = field(default_factory=list)  # mic-to-wire, the packet's first sample
    speaker: list[float] = field(default_factory=list)  # wire-to-speaker, likewise
    lost: int = 0  # events (after warm-up) not found where they should be


def write_wav(path: Path, pcm: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.astype("<i2").tobytes())


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"latency: {what}")
        time.sleep(0.005)


def file_call(far: FarEnd, phase_ns: int, seconds: float, seed: int, tmp: Path) -> BlackBox:
    """One call with the file backend: events in the mic WAV, found in the speaker WAV."""
    from deskphone.media.audio.wavfile import FileBackend, load_wav

    frames = int(seconds * 1000 / 20)
    mic_events = range(frames + 50)  # one per frame, at a spread offset
    codes = bytearray([FILL]) * (FRAME * len(mic_events))
    where: dict[int, int] = {}  # event -> its first sample in the mic file
    for k in mic_events:
        i = k * FRAME + event_offset(k)
        codes[i:i + MARK_LEN] = mark_codes(MIC_MAGIC, k)
        where[k] = i
    mic_path, speaker_path = tmp / f"mic{seed}.wav", tmp / f"speaker{seed}.wav"
    write_wav(mic_path, ULAW_DECODE_TABLE.take(np.frombuffer(bytes(codes), np.uint8)))
    ticks: list[float] = []

    def clock() -> float:  # the backend's Pacer's clock: its first reading is tick 0
        t = time.monotonic()
        if not ticks:
            ticks.append(t)
        return t

    device = FileBackend(input=str(mic_path), output=str(speaker_path), clock=clock)
    session, sock = open_session(far.port, device, seed)
    session.start()
    wait_until(lambda: bool(ticks), 5, "the file backend never started")
    t0 = int(ticks[0] * 1e9)
    report = far.call(sock.getsockname()[1], t0 + 5 * PERIOD_NS + phase_ns, frames,
                      spread=True)
    close_session(session, sock)
    device.close()

    def at(i: int) -> float:  # sample i of either file on the one timeline, ns
        return t0 + (i - FRAME) * 1e9 / RATE

    out = BlackBox()
    for k in mic_events:
        if k < WARMUP_FRAMES or k >= frames:
            continue
        got = report["mic"].get(k)
        if got is None:
            out.lost += 1
            continue
        arrival, offset = got
        out.mic.append((arrival - at(where[k] - offset)) / 1e6)
    played = {j: s for s, j in find_marks(FAR_MAGIC, to_codes(load_wav(speaker_path)))}
    for j, departure in report["sent"].items():
        if j < WARMUP_FRAMES:
            continue
        s = played.get(j)
        if s is None:
            out.lost += 1
            continue
        out.speaker.append((at(s - event_offset(j)) - departure) / 1e6)
    return out


# ----------------------------------------------------------------- ALSA, paced device

class Recorder:
    """An audio backend passed through that keeps what was read and written, and when:
    ``frames_in[n]`` was returned by a ``read()`` that returned at ``read_ns[n]``,
    ``frames_out[n]`` given to a ``write()`` called at ``write_ns[n]``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = f"recorded {inner.name}"
        self.frame_samples = inner.frame_samples
        self.frames_in: list[np.ndarray] = []
        self.read_ns: list[int] = []
        self.frames_out: list[np.ndarray] = []
        self.write_ns: list[int] = []

    def clear(self) -> None:
        for kept in (self.frames_in, self.read_ns, self.frames_out, self.write_ns):
            kept.clear()

    def start(self) -> None:
        self.inner.start()

    def read(self) -> Any:
        frame = self.inner.read()
        self.read_ns.append(time.monotonic_ns())
        self.frames_in.append(np.array(frame, copy=True))
        return frame

    def write(self, frame: Any) -> None:
        self.write_ns.append(time.monotonic_ns())
        self.frames_out.append(np.array(frame, copy=True))
        self.inner.write(frame)

    def stop(self) -> None:
        self.inner.stop()

    def close(self) -> None:
        self.inner.close()


class PulseNullSink:
    """A private PulseAudio daemon with one 8 kHz mono null sink; its monitor is the only
    source, so ALSA's ``pulse`` PCM plays into the sink and captures what it plays."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="deskphone-pulse-"))
        self.dir.chmod(0o700)
        env = dict(os.environ, XDG_RUNTIME_DIR=str(self.dir), HOME=str(self.dir))
        env.pop("PULSE_SERVER", None)
        self.proc = subprocess.Popen(
            ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--disallow-exit",
             "-L", "module-null-sink sink_name=deskphone_bench rate=8000 channels=1",
             "-L", "module-native-protocol-unix"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.previous = {k: os.environ.get(k) for k in ("XDG_RUNTIME_DIR", "PULSE_SERVER")}
        os.environ["XDG_RUNTIME_DIR"] = str(self.dir)
        os.environ.pop("PULSE_SERVER", None)
        socket_path = self.dir / "pulse" / "native"
        try:
            wait_until(lambda: socket_path.exists() or self.proc.poll() is not None, 10,
                       "pulseaudio did not start")
        except SystemExit:
            self.close()
            raise
        if self.proc.poll() is not None:
            self.close()
            raise OSError(f"pulseaudio exited with {self.proc.returncode}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        for k, v in self.previous.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(self.dir, ignore_errors=True)


def pulse_available() -> str | None:
    """Why the ALSA part cannot run here, or None."""
    try:
        import alsaaudio  # noqa: F401
    except ImportError:
        return "no pyalsaaudio (pip install pyalsaaudio; Debian: libasound2-dev to build it)"
    if shutil.which("pulseaudio") is None:
        return "no pulseaudio (Debian: apt-get install pulseaudio libasound2-plugins)"
    if not glob.glob("/usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so") and not glob.glob(
            "/usr/lib/alsa-lib/libasound_module_pcm_pulse.so"):
        return "no ALSA pulse plugin (Debian: apt-get install libasound2-plugins)"
    return None


@dataclass(slots=True)
class Loop:
    """Per event, ms, through a device whose capture hears its playback: the far end's
    departure -> the phone's ``write()`` of the frame holding it -> the ``read()`` that
    returned it -> its packet back at the far end."""

    receive: list[float] = field(default_factory=list)  # departure -> write()
    device: list[float] = field(default_factory=list)  # write() -> read() returning it
    send: list[float] = field(default_factory=list)  # read() returning it -> the far end
    lost: int = 0  # events (after warm-up) not back at the far end
    xruns: int = 0


def positions(frames: list[np.ndarray]) -> dict[int, int]:
    """Event -> the index of the frame holding its first sample, in a run of frames."""
    if not frames:
        return {}
    found: dict[int, int] = {}
    for p, j in find_marks(FAR_MAGIC, to_codes(np.concatenate(frames))):
        found.setdefault(j, p // FRAME)
    return found


def alsa_call(far: FarEnd, rec: Recorder, phase_ns: int, seconds: float, seed: int,
              loop: Loop) -> None:
    frames = int(seconds * 1000 / 20)
    session, sock = open_session(far.port, rec, seed)
    rec.clear()
    session.start()
    try:
        wait_until(lambda: len(rec.read_ns) >= 25, 10, "the ALSA device gives no audio")
        # the device's ticks, from its last reads (the first come in a burst as it wakes)
        n = len(rec.read_ns)
        grid = np.median([t - k * PERIOD_NS for k, t in enumerate(rec.read_ns[n - 10:n])])
        start = int(grid) + 12 * PERIOD_NS + phase_ns
        report = far.call(sock.getsockname()[1], start, frames, spread=True, linger=0.5)
    finally:
        close_session(session, sock)
    written, heard = positions(rec.frames_out), positions(rec.frames_in)
    for j, departure in report["sent"].items():
        if j < WARMUP_FRAMES:
            continue
        back = report["far"].get(j)
        if back is None or j not in written or j not in heard:
            loop.lost += 1
            continue
        w, r = rec.write_ns[written[j]], rec.read_ns[heard[j]]
        loop.receive.append((w - departure) / 1e6)
        loop.device.append((r - w) / 1e6)
        loop.send.append((back[0] - r) / 1e6)


def run_alsa(far: FarEnd, device: str, calls: int, seconds: float) -> Loop | str:
    from deskphone.media.audio.alsa import AlsaBackend

    pulse = None
    if device == "auto":
        why = pulse_available()
        if why is not None:
            return why
        try:
            pulse = PulseNullSink()
        except (OSError, SystemExit) as e:
            return f"pulseaudio: {e}"
        device = "pulse"
    try:
        backend = AlsaBackend(device=device)
        rec = Recorder(backend)
        loop = Loop()
        try:
            for i in range(calls):
                alsa_call(far, rec, int((i + 0.5) / calls * PERIOD_NS), seconds, 100 + i, loop)
            loop.xruns = backend.xruns
        except (Exception, SystemExit) as e:  # ALSAAudioError and kin: say so, go on
            return f"ALSA device {device!r}: {type(e).__name__}: {e}"
        finally:
            backend.close()
        return loop
    finally:
        if pulse is not None:
            pulse.close()


# --------------------------------------------------------------------------- report

def stats(x: np.ndarray) -> tuple[float, float, float]:
    return float(x.mean()), float(np.percentile(x, 95)), float(x.max())


def row(label: str, x: np.ndarray | float, note: str = "") -> None:
    m, p, mx = (x, x, x) if isinstance(x, float) else stats(x)
    print(f"  {label:<50}{m:>7.1f}{p:>7.1f}{mx:>7.1f}   {note}")


def report_probe(runs: list[Probe], a: argparse.Namespace) -> tuple[float, float]:
    def pick(name: str) -> np.ndarray:
        return np.array([x for r in runs for x in getattr(r, name)])

    capture, wire = pick("capture"), pick("wire")
    unplayed = sum(r.unplayed for r in runs)
    if not len(capture) or not len(wire):
        raise SystemExit("latency: no marked frames came through the probe (capture "
                         f"{len(capture)}, playout {len(wire)})")
    packetisation = FRAME / 8.0
    print(f"1. in-process probe: {a.calls} calls x {a.seconds:g} s")
    print("capture-to-wire")
    row("packetisation: first sample waits for the last", packetisation)
    row("read() returns -> packet at the far end", capture, f"{len(capture)} frames")
    total_capture = capture + packetisation
    row("= capture-to-wire", total_capture)
    print("wire-to-playout")
    row("until the media loop's next turn (read())", pick("socket_wait"))
    row("jitter buffer (min delay 20 ms, whole periods)", pick("jitter_buffer"))
    row("processing: read() returns -> write()", pick("processing"))
    row("= wire-to-playout (write() taken as playing)", wire,
        f"{len(wire)} frames, {unplayed} not played")
    print("  jitter buffer, mean per call, by when the far end's packets land after our "
          "tick (ms: ms):")
    phases = [(i + 0.5) / len(runs) * PERIOD_NS / 1e6 for i in range(len(runs))]
    print("    " + ", ".join(f"{p:.0f}: {np.mean(r.jitter_buffer):.0f}"
                             for p, r in zip(phases, runs, strict=True)))
    mean = total_capture.mean() + wire.mean()
    p95 = np.percentile(total_capture, 95) + np.percentile(wire, 95)
    print(f"  {'= total':<50}{mean:>7.1f}{p95:>7.1f}")
    return float(mean), float(p95)


def report_file(runs: list[BlackBox], a: argparse.Namespace) -> tuple[float, float]:
    mic = np.array([x for r in runs for x in r.mic])
    speaker = np.array([x for r in runs for x in r.speaker])
    lost = sum(r.lost for r in runs)
    if not len(mic) or not len(speaker):
        raise SystemExit(f"latency: no events came through the file backend (mic {len(mic)}, "
                         f"speaker {len(speaker)})")
    print(f"2. black box, file backend: {a.calls} calls x {a.seconds:g} s, per event "
          "referred to its packet's first sample")
    row("mic-to-wire: T(sample) -> its packet at the far end", mic, f"{len(mic)} events")
    row("wire-to-speaker: departure -> T(sample in speaker)", speaker,
        f"{len(speaker)} events, {lost} lost")
    print("  wire-to-speaker, mean per call, by the far end's phase (ms: ms):")
    phases = [(i + 0.5) / len(runs) * PERIOD_NS / 1e6 for i in range(len(runs))]
    print("    " + ", ".join(f"{p:.0f}: {np.mean(r.speaker):.0f}"
                             for p, r in zip(phases, runs, strict=True)))
    mean = mic.mean() + speaker.mean()
    p95 = np.percentile(mic, 95) + np.percentile(speaker, 95)
    print(f"  {'= total':<50}{mean:>7.1f}{p95:>7.1f}")
    return float(mean), float(p95)


def report_alsa(loop: Loop, label: str, calls: int, seconds: float
                ) -> tuple[float, float] | None:
    print(f"3. black box, ALSA backend on {label}: {calls} calls x {seconds:g} s, per event, "
          "round trip")
    if not loop.device:
        print(f"  no events came back ({loop.lost} lost)")
        return None
    receive, device, send = (np.array(x) for x in (loop.receive, loop.device, loop.send))
    total = receive + device + send
    row("departure -> write() (jitter buffer and all)", receive)
    row("write() -> read() returning it: the device", device)
    row("read() returning it -> back at the far end", send)
    row("= far end -> speaker -> mic -> far end", total,
        f"{len(total)} events, {loop.lost} lost, {loop.xruns} xruns")
    row("  of which the phone (less the device)", receive + send)
    m, p, _ = stats(total)
    return m, p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=10,
                    help="calls (probe, file), the far end's phase stepped over 20 ms")
    ap.add_argument("--seconds", type=float, default=3.0, help="length of each call")
    ap.add_argument("--alsa", default="auto",
                    help="auto: a private PulseAudio null sink if pulseaudio is here; off; "
                         "or an ALSA device whose capture hears its playback")
    ap.add_argument("--alsa-calls", type=int, default=4)
    ap.add_argument("--only", choices=("probe", "file", "alsa"), action="append",
                    help="run only these parts (repeatable)")
    ap.add_argument("--far-end", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.far_end:
        far_end()
        return
    import deskphone.media.engine  # noqa: F401  (imports paid before the first call)

    parts = set(a.only or ("probe", "file", "alsa"))
    if a.alsa == "off":
        parts.discard("alsa")
    far = FarEnd()
    totals: dict[str, tuple[float, float] | str] = {}
    try:
        print("latency the phone adds at 0 jitter: the real MediaSession over loopback, "
              "G.711 µ-law 20 ms; first")
        print(f"{WARMUP_FRAMES} frames of each call left out; ms:")
        print(f"  {'':<50}{'mean':>7}{'p95':>7}{'max':>7}")
        phases = [int((i + 0.5) / a.calls * PERIOD_NS) for i in range(a.calls)]
        if "probe" in parts:
            probes = [probe_call(far, ph, a.seconds, i) for i, ph in enumerate(phases)]
            totals["probe"] = report_probe(probes, a)
        if "file" in parts:
            with tempfile.TemporaryDirectory(prefix="deskphone-latency-") as tmp:
                boxes = [file_call(far, ph, a.seconds, i, Path(tmp))
                         for i, ph in enumerate(phases)]
            totals["file"] = report_file(boxes, a)
        if "alsa" in parts:
            label = "a PulseAudio null sink" if a.alsa == "auto" else repr(a.alsa)
            got = run_alsa(far, a.alsa, a.alsa_calls, a.seconds)
            if isinstance(got, str):
                print(f"3. black box, ALSA backend: not run: {got}")
                totals["alsa"] = got
            else:
                result = report_alsa(got, label, a.alsa_calls, a.seconds)
                totals["alsa"] = result if result is not None else "no events came back"
    finally:
        far.close()
    summary(totals)


def summary(totals: dict[str, tuple[float, float] | str]) -> None:
    print("what the phone adds, both directions (p95: the sum of the two directions' p95s, "
          "except ALSA's):")
    names = {"probe": "in-process probe (write() taken as playing)",
             "file": "black box, file backend (mic/speaker WAV)",
             "alsa": "black box, ALSA, round trip through the device"}
    for key, label in names.items():
        if key not in totals:
            continue
        v = totals[key]
        if isinstance(v, str):
            print(f"  {label:<50}  not run: {v}")
            continue
        verdict = ", ".join(f"{n} {'met' if x <= TARGET_MS else 'MISSED'}"
                            for n, x in (("mean", v[0]), ("p95", v[1])))
        print(f"  {label:<50}{v[0]:>7.1f}{v[1]:>7.1f}   target <= {TARGET_MS:g}: {verdict}")
    print("The file backend puts the frame written at a tick on the same samples as the "
          "frame read then:")
    print("a device 20 ms faster than any card, whose frame can play no sooner than the "
          "period after;")
    print("the probe takes write() as playing, that card's figure. See bench/README.md.")


if __name__ == "__main__":
    main()
