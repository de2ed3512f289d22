"""PESQ MOS-LQO of the receive path under loss and jitter, against zero-fill and a fixed buffer.

Speech (espeak-ng's Klatt voice, 4 sentences, ~9 s) is sent as 20 ms G.711 µ-law RTP
packets (``RtpSender``) through a simulated network, in virtual time (no sleeps):

- packet i leaves at i x 20 ms; it is lost at random (Bernoulli, or bursty: a Gilbert
  model whose loss bursts last 3 packets on average) and otherwise arrives after
  10 ms + a random delay: uniform in [0, J] ("J ms jitter", peak to peak; packets may
  overtake each other), or exponential with mean J/2 (the same mean, a long tail);
- the receiver runs as the media thread does (``media/engine.py``): every 20 ms tick it
  drains the packets that arrived since the last one (at or before the tick) into
  ``JitterBuffer.put``, each with its own arrival time as ``arrival`` (the engine passes
  the kernel's receive time, 0-20 ms before the tick), then plays
  ``JitterBuffer.get(tick)``. A packet can so only play at a tick at or after it came.
  The ticks' phase against the sender is random.

Four receivers hear the same packets:

- deskphone: adaptive ``JitterBuffer`` -> G.711 decode -> ``Concealer`` (G.711 App. I PLC);
  a MISSING frame is concealed into the next frame the buffer holds whole
  (``JitterBuffer.peek``, up to 3 frames on), as the engine does;
- zero-fill: the same jitter buffer, lost/late frames played as silence (no PLC);
- fixed 60 ms: no adaptation, no PLC: each packet is due 60 ms + its sequence offset after
  the first packet came; one that is not there by then is silence;
- fixed 60 ms + PLC: the same with the deskphone's ``Concealer``, looking ahead as far
  among the packets waiting: not a baseline, it tells what the adaptive buffer costs or
  gains from what the PLC does.

Each output is aligned to the reference by cross-correlation (the buffer's delay shifts
it; PESQ then follows smaller delay changes itself) and scored with ITU-T P.862
narrow-band PESQ (the ``pesq`` package). Each figure is the mean over ``--seeds`` runs
with different loss/jitter draws, tick phases and RTP starting numbers (all seeded:
the same command prints the same table). At one seed the rows share their draws (the 3 %
losses are among the 5 % ones; the delays scale with J), so rows differ by the condition.
A second table shows what the jitter buffer did. A missed target is printed, not an exit
status; a missing tool exits 2.

    python bench/voice_quality.py [--seeds 16] [--jobs N] [--speech file.wav]

Needs ``pip install pesq`` (builds with a C compiler and Python headers) and
``apt-get install espeak-ng`` (unless ``--speech`` names a WAV file).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "firmware"))

from deskphone.media.audio.wavfile import load_wav  # noqa: E402
from deskphone.media.g711 import PCMU  # noqa: E402
from deskphone.media.jitterbuffer import FrameKind, JitterBuffer  # noqa: E402
from deskphone.media.plc import Concealer  # noqa: E402
from deskphone.media.rtp import RtpPacket, RtpSender  # noqa: E402

Pcm = npt.NDArray[np.int16]

RATE = 8000
FRAME = 160  # 20 ms
PERIOD = FRAME / RATE
PROPAGATION = 0.010  # s: the fixed part of the one-way delay
FIXED_BUFFER = 0.060  # s: the fixed buffer's delay
LEAD_IN = 0.3  # s of silence sent before the speech, and
TAIL = 0.5  # after it (a phone sends all through the call: no silence suppression)
BURST_PACKETS = 3.0  # mean loss-burst length of the bursty model
LOOK_AHEAD = 3  # frames the fixed buffer's PLC may look ahead (as JitterBuffer.peek())
SENTENCES = ("The birch canoe slid on the smooth planks. "
             "Glue the sheet to the dark blue background. "
             "It is easy to tell the depth of a well. "
             "These days a chicken leg is a rare dish.")
VOICE = "en-us+klatt"  # G.711 alone: 4.49 (the default voice: 4.15, too low a ceiling)

TARGETS = (  # (label of the row, minimum deskphone MOS)
    ("0 % loss, 0 ms jitter", 4.2),
    ("5 % loss, 30 ms jitter", 3.5),
)


@dataclass(frozen=True, slots=True)
class Condition:
    """One network: loss fraction, jitter (ms), and how each is drawn."""

    loss: float
    jitter_ms: float
    bursty: bool = False  # Gilbert model instead of independent losses
    exponential: bool = False  # exponential delay (mean J/2) instead of uniform [0, J]

    @property
    def label(self) -> str:
        loss = f"{self.loss * 100:g} % loss"
        if self.bursty:
            loss += f" bursty ({BURST_PACKETS:g} pkt)"
        jitter = f"{self.jitter_ms:g} ms jitter"
        if self.exponential:
            jitter += " exp."
        return f"{loss}, {jitter}"


GRID = [Condition(loss, jitter) for loss in (0.0, 0.03, 0.05, 0.10) for jitter in (0, 20, 40)]
EXTRA = [
    Condition(0.05, 30),  # the target
    Condition(0.05, 30, exponential=True),
    Condition(0.05, 0, bursty=True),
    Condition(0.05, 30, bursty=True),
    Condition(0.10, 30, bursty=True),
]


# ----------------------------------------------------------------------------- inputs

def need_tools(speech: str | None) -> None:
    """Exit 2 with install instructions if pesq (or espeak-ng, when needed) is missing."""
    missing = []
    try:
        import pesq  # noqa: F401
    except ImportError:
        missing.append("the pesq package: pip install pesq  (or make bench: the [bench] extra;"
                       " it builds from source: apt-get install gcc python3-dev)")
    if speech is None and shutil.which("espeak-ng") is None:
        missing.append("espeak-ng: apt-get install espeak-ng  (or pass --speech FILE.wav)")
    if missing:
        print("voice_quality: missing " + "; ".join(missing), file=sys.stderr)
        sys.exit(2)


def make_speech(speech: str | None) -> Pcm:
    """The reference: 8 kHz mono int16 speech, with LEAD_IN / TAIL silence around it."""
    if speech is None:
        with tempfile.TemporaryDirectory(prefix="voice-quality-") as tmp:
            wav = Path(tmp) / "speech.wav"
            subprocess.run(["espeak-ng", "-v", VOICE, "-w", str(wav), SENTENCES], check=True)
            pcm = load_wav(wav)
    else:
        pcm = load_wav(speech)
    pad = np.zeros(int(LEAD_IN * RATE), np.int16), np.zeros(int(TAIL * RATE), np.int16)
    pcm = np.concatenate((pad[0], pcm, pad[1]))
    return pcm[:len(pcm) // FRAME * FRAME]


# ----------------------------------------------------------------------------- network

@dataclass(frozen=True, slots=True)
class Arrival:
    time: float  # s, virtual
    packet: RtpPacket


def send(pcm: Pcm, rng: random.Random) -> list[RtpPacket]:
    """The far end: one µ-law packet per 20 ms frame, RtpSender numbering (random start)."""
    sender = RtpSender(PCMU.payload_type, rng)
    return [RtpPacket.parse(sender.packet(PCMU.encode(pcm[i:i + FRAME]), FRAME))
            for i in range(0, len(pcm), FRAME)]


def lost_packets(n: int, cond: Condition, seed: int) -> list[bool]:
    """Which packets the network loses. Independent losses draw one uniform number per
    packet from a stream that depends only on the seed, so at one seed the 3 % losses are
    among the 5 % ones, and those among the 10 % (rows differ by the condition, not luck)."""
    if not cond.bursty:
        rng = random.Random(f"loss/{seed}")
        return [rng.random() < cond.loss for _ in range(n)]
    # Gilbert: Good (no loss) <-> Bad (all lost); P(B->G) = 1 / mean burst, and
    # P(G->B) chosen so that the stationary loss is cond.loss
    rng = random.Random(f"bursts/{seed}")
    leave_bad = 1.0 / BURST_PACKETS
    enter_bad = leave_bad * cond.loss / (1.0 - cond.loss)
    bad = rng.random() < cond.loss
    out = []
    for _ in range(n):
        out.append(bad)
        bad = rng.random() >= leave_bad if bad else rng.random() < enter_bad
    return out


def network(packets: list[RtpPacket], cond: Condition, seed: int) -> list[Arrival]:
    """The packets that arrive, in arrival order, with their arrival times. The random
    part of each delay is one uniform draw per packet (the same at every jitter level for
    one seed), scaled: uniform [0, J], or exponential of mean J/2 by inversion."""
    lost = lost_packets(len(packets), cond, seed)
    rng = random.Random(f"delay/{seed}")
    jitter = cond.jitter_ms / 1000.0
    out = []
    for i, (packet, gone) in enumerate(zip(packets, lost, strict=True)):
        u = rng.random()
        delay = -math.log1p(-u) * jitter / 2 if cond.exponential else u * jitter
        if not gone:
            out.append(Arrival(i * PERIOD + PROPAGATION + delay, packet))
    out.sort(key=lambda a: a.time)
    return out


# ---------------------------------------------------------------------------- receivers

@dataclass(slots=True)
class Heard:
    """What one receiver played, and why."""

    pcm: Pcm
    late: int = 0  # packets that came after their frame had played
    concealed: int = 0  # frames played without their audio (PLC or silence) mid-stream
    delay_ms: float = 0.0  # mean buffer delay while playing
    inserted: int = 0  # jitter buffer level changes: gap frames added (the delay grows),
    skipped: int = 0  # gap frames skipped (it shrinks),
    dropped: int = 0  # audio frames dropped (it shrinks through speech)


def ticks(arrivals: list[Arrival], phase: float, frames: int) -> list[tuple[float, list[Arrival]]]:
    """The receiver's 20 ms ticks and what each drains from the socket."""
    out: list[tuple[float, list[Arrival]]] = []
    end = arrivals[-1].time + 0.4 if arrivals else 0.0
    k, i = 0, 0
    while True:
        now = phase + k * PERIOD
        if now > end and k > frames:
            return out
        batch = []
        while i < len(arrivals) and arrivals[i].time <= now:
            batch.append(arrivals[i])
            i += 1
        out.append((now, batch))
        k += 1


def deskphone(schedule: list[tuple[float, list[Arrival]]]) -> tuple[Heard, Heard]:
    """The firmware's jitter buffer, then PLC (deskphone) or zeros (zero-fill)."""
    jb = JitterBuffer(clock_rate=RATE, frame_samples=FRAME)  # the engine's defaults
    plc = Concealer(FRAME)
    silence = np.zeros(FRAME, np.int16)
    decoded = np.zeros(FRAME, np.int16)
    with_plc, zero_fill = [], []
    delays = []
    for now, batch in schedule:
        for a in batch:  # the engine's receive time: when the kernel took the packet in
            p = a.packet
            jb.put(p.sequence_number, p.timestamp, p.ssrc, p.marker, p.payload, a.time)
        frame = jb.get(now)
        if frame.kind is FrameKind.AUDIO:
            PCMU.decode_into(frame.payload, decoded)
            with_plc.append(plc.good(decoded).copy())
            zero_fill.append(decoded.copy())
        elif frame.kind is FrameKind.MISSING:
            ahead = jb.peek()  # as the engine does
            if ahead is None:
                with_plc.append(plc.lost().copy())
            else:
                with_plc.append(plc.lost_decoded(PCMU.decode_octets_into, *ahead).copy())
            zero_fill.append(silence)
        else:
            with_plc.append(silence)
            zero_fill.append(silence)
        stats = jb.stats()
        if stats["delay_ms"]:
            delays.append(stats["delay_ms"])
    stats = jb.stats()
    mean_delay = float(np.mean(delays)) if delays else 0.0
    heard = [Heard(np.concatenate(x), int(stats["late"]), int(stats["concealed"]), mean_delay,
                   int(stats["inserted"]), int(stats["skipped"]), int(stats["dropped"]))
             for x in (with_plc, zero_fill)]
    return heard[0], heard[1]


def fixed_buffer(schedule: list[tuple[float, list[Arrival]]],
                 first_seq: int) -> tuple[Heard, Heard]:
    """No adaptation: packet s plays FIXED_BUFFER + (s - s0) x 20 ms after the tick that
    drained the first packet to arrive (s0: that packet's sequence number). A packet not
    there in time is silence (no PLC), or concealed (+ PLC: the deskphone's Concealer)."""
    silence = np.zeros(FRAME, np.int16)
    plc = Concealer(FRAME)
    waiting: dict[int, bytes] = {}  # frame index -> payload
    anchor: int | None = None  # tick index at which frame 0 plays
    late = concealed = 0
    zeros, with_plc = [], []
    for k, (_, batch) in enumerate(schedule):
        for a in batch:
            index = (a.packet.sequence_number - first_seq) & 0xFFFF
            if anchor is None:
                anchor = k + round(FIXED_BUFFER / PERIOD) - index
            if anchor + index < k:
                late += 1
            else:
                waiting[index] = a.packet.payload
        if anchor is None or k < anchor:
            zeros.append(silence)
            with_plc.append(silence)
            continue
        payload = waiting.pop(k - anchor, None)
        if payload is None:
            zeros.append(silence)
            ahead = next(((waiting[k - anchor + d], d) for d in range(1, LOOK_AHEAD + 1)
                          if k - anchor + d in waiting), None)
            if ahead is None:
                with_plc.append(plc.lost().copy())
            else:
                with_plc.append(plc.lost(PCMU.decode(ahead[0]), ahead[1]).copy())
            concealed += 1
        else:
            decoded = PCMU.decode(payload)
            zeros.append(decoded)
            with_plc.append(plc.good(decoded).copy())
    delay_ms = FIXED_BUFFER * 1000
    return (Heard(np.concatenate(zeros), late, concealed, delay_ms),
            Heard(np.concatenate(with_plc), late, concealed, delay_ms))


# ------------------------------------------------------------------------------ scoring

def align(out: Pcm, ref: Pcm) -> Pcm:
    """``out`` shifted by the lag (>= 0) that best matches ``ref``, cut to its length."""
    n = 1 << math.ceil(math.log2(len(out) + len(ref)))
    corr = np.fft.irfft(np.fft.rfft(out.astype(np.float64), n)
                        * np.conj(np.fft.rfft(ref.astype(np.float64), n)), n)
    lag = int(np.argmax(corr[:len(out)]))
    shifted = out[lag:lag + len(ref)]
    return np.concatenate((shifted, np.zeros(len(ref) - len(shifted), np.int16)))


def mos(ref: Pcm, deg: Pcm) -> float:
    from pesq import pesq

    try:
        return float(pesq(RATE, ref.astype(np.float32), align(deg, ref).astype(np.float32),
                          "nb"))
    except Exception as e:  # e.g. NoUtterancesError on an all-silent output
        print(f"voice_quality: PESQ failed ({type(e).__name__}: {e}); scoring 1.0",
              file=sys.stderr)
        return 1.0


RECEIVERS = ("deskphone", "zero-fill", "fixed 60 ms", "fixed 60 ms + PLC")


@dataclass(frozen=True, slots=True)
class Trial:
    """One seeded run of one condition."""

    scores: tuple[float, ...]  # MOS per receiver, in RECEIVERS order
    late: tuple[int, ...]  # late packets per receiver
    sent: int
    lost: int
    concealed: int  # deskphone frames played by PLC (losses, late packets, growth)
    inserted: int
    skipped: int
    dropped: int
    delay_ms: float


_REF: Pcm | None = None  # the reference, in each worker process


def _init_worker(ref: Pcm) -> None:
    global _REF
    _REF = ref


def trial(cond: Condition, seed: int) -> Trial:
    ref = _REF
    assert ref is not None
    packets = send(ref, random.Random(f"rtp/{seed}"))
    arrivals = network(packets, cond, seed)
    phase = random.Random(f"phase/{seed}").uniform(0.0, PERIOD)
    schedule = ticks(arrivals, phase, len(ref) // FRAME)
    ours, zero_fill = deskphone(schedule)
    heard = (ours, zero_fill, *fixed_buffer(schedule, packets[0].sequence_number))
    return Trial(tuple(mos(ref, h.pcm) for h in heard), tuple(h.late for h in heard),
                 len(packets), len(packets) - len(arrivals), ours.concealed, ours.inserted,
                 ours.skipped, ours.dropped, ours.delay_ms)


@dataclass(slots=True)
class Row:
    """One condition's results over all seeds."""

    label: str
    trials: list[Trial]

    def mean(self, receiver: str) -> float:
        i = RECEIVERS.index(receiver)
        return float(np.mean([t.scores[i] for t in self.trials]))

    def percent(self, value: Callable[[Trial], float]) -> float:
        """``value`` summed over the trials, as a % of the packets sent."""
        return 100.0 * sum(value(t) for t in self.trials) / sum(t.sent for t in self.trials)

    def per_call(self, value: Callable[[Trial], float]) -> float:
        return float(np.mean([value(t) for t in self.trials]))


# --------------------------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=16, help="runs per condition (default 16)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="worker processes (default: one per core)")
    ap.add_argument("--speech", help="a WAV file to send instead of espeak-ng's sentences")
    a = ap.parse_args()
    need_tools(a.speech)
    ref = make_speech(a.speech)
    ceiling = mos(ref, PCMU.decode(PCMU.encode(ref)))
    conditions = GRID + EXTRA
    tasks = [(cond, seed) for cond in conditions for seed in range(a.seeds)]
    # results come back in task order, so the table does not depend on the scheduling
    with ProcessPoolExecutor(a.jobs, initializer=_init_worker, initargs=(ref,)) as pool:
        results = list(pool.map(trial, *zip(*tasks, strict=True), chunksize=4))
    rows = [Row(cond.label, results[i * a.seeds:(i + 1) * a.seeds])
            for i, cond in enumerate(conditions)]

    source = a.speech or f"espeak-ng -v {VOICE}, 4 sentences"
    print(f"PESQ MOS-LQO (ITU-T P.862 narrow-band) of {len(ref) / RATE:.1f} s of speech "
          f"({source}) received as G.711 µ-law 20 ms RTP;")
    print(f"mean of {a.seeds} seeded runs per condition; delay = {PROPAGATION * 1000:g} ms + "
          "uniform [0, J] (exp.: exponential, mean J/2)")
    print(f"{'condition':<38}{'deskphone':>10}{'zero-fill':>10}{'fixed 60':>10}"
          f"{'| fixed+PLC':>11}{'lost %':>8}")
    print(f"{'G.711 only, no network (ceiling)':<38}{ceiling:>10.2f}")
    for row in rows:
        print(f"{row.label:<38}{row.mean('deskphone'):>10.2f}{row.mean('zero-fill'):>10.2f}"
              f"{row.mean('fixed 60 ms'):>10.2f}{row.mean('fixed 60 ms + PLC'):>11.2f}"
              f"{row.percent(lambda t: t.lost):>8.1f}")
    print("deskphone: adaptive jitter buffer + G.711 App. I PLC with look-ahead; zero-fill: "
          "the same buffer, silence for lost frames;")
    print("fixed 60: each packet due 60 ms after the first one came, no adaptation, no PLC;")
    print("fixed+PLC (not a baseline: it tells the buffer's part from the PLC's): fixed 60 with "
          "the deskphone's PLC.")
    print()
    print("the deskphone jitter buffer in the same runs (per 10 s call; % of packets sent):")
    print(f"{'condition':<38}{'delay ms':>9}{'late %':>8}{'PLC %':>7}{'inserted':>10}"
          f"{'skipped':>9}{'dropped':>9}{'fixed late %':>14}")
    late = RECEIVERS.index("deskphone"), RECEIVERS.index("fixed 60 ms")
    for row in rows:
        print(f"{row.label:<38}{row.per_call(lambda t: t.delay_ms):>9.0f}"
              f"{row.percent(lambda t: t.late[late[0]]):>8.1f}"
              f"{row.percent(lambda t: t.concealed):>7.1f}"
              f"{row.per_call(lambda t: t.inserted):>10.1f}"
              f"{row.per_call(lambda t: t.skipped):>9.1f}"
              f"{row.per_call(lambda t: t.dropped):>9.1f}"
              f"{row.percent(lambda t: t.late[late[1]]):>14.1f}")
    print("delay: mean wait beyond the fastest packet (jb.stats() delay_ms); late: came after "
          "its frame played;")
    print("PLC: frames concealed (lost + late + inserted while speech may still be heard); "
          "inserted/skipped/dropped:")
    print("frames the buffer added to grow, skipped at a gap or dropped from speech to shrink.")
    by_label = {row.label: row for row in rows}
    for label, target in TARGETS:
        got = by_label[label].mean("deskphone")
        verdict = "met" if got >= target else "MISSED"
        print(f"target: deskphone >= {target} at {label}: {got:.2f}, {verdict}")


if __name__ == "__main__":
    main()
