"""Jitter buffer: a fake network feeds packets at chosen arrival times and a fake sound card
calls ``get`` every 20 ms; no sleeps. Each payload octet is its own sample's timestamp
(mod 256), so every AUDIO frame can be checked to be the right audio, whole."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import FrozenInstanceError, dataclass, replace

import numpy as np
import pytest

from deskphone.media.jitterbuffer import Frame, FrameKind, JitterBuffer

AUDIO, MISSING, SILENCE = FrameKind.AUDIO, FrameKind.MISSING, FrameKind.SILENCE
RATE = 8000
FRAME = 160
PERIOD = FRAME / RATE  # 20 ms
MASK = 0xFFFFFFFF


def audio(ts: int, n: int) -> bytes:
    """The payload of n samples starting at timestamp ts."""
    return ((np.arange(n, dtype=np.int64) + ts) & 0xFF).astype(np.uint8).tobytes()


@dataclass(frozen=True)
class Packet:
    seq: int
    ts: int
    ssrc: int
    marker: bool
    payload: bytes
    arrival: float
    event: bool = False  # an RFC 4733 event (put_event): no audio


def stream(count: int, *, ptime_ms: int = 20, seq0: int = 0, ts0: int = 0, ssrc: int = 1,
           t0: float = 0.0, skew: float = 0.0,
           delay: Callable[[int], float] = lambda k: 0.0) -> list[Packet]:
    """``count`` packets of ``ptime_ms``; the sender's clock runs ``skew`` fast (0.005:
    0.5 %), so packet k leaves at t0 + k * ptime / (1 + skew) and arrives delay(k) later."""
    samples = ptime_ms * RATE // 1000
    packets = []
    for k in range(count):
        ts = (ts0 + k * samples) & MASK
        packets.append(Packet((seq0 + k) & 0xFFFF, ts, ssrc, k == 0, audio(ts, samples),
                              t0 + k * ptime_ms / 1000 / (1 + skew) + delay(k)))
    return packets


@dataclass
class Played:
    now: float
    frame: Frame
    stats: dict[str, float]


def play(jb: JitterBuffer, packets: Iterable[Packet], seconds: float, *,
         phase: float = 0.0, t0: float = 0.0) -> list[Played]:
    """Deliver the packets at their arrival times and call get every 20 ms from t0 + phase
    for ``seconds``; a packet arriving at the same instant as a get comes first."""
    pending = sorted(packets, key=lambda p: p.arrival)
    out: list[Played] = []
    i = 0
    for k in range(round(seconds / PERIOD)):
        now = t0 + phase + k * PERIOD
        while i < len(pending) and pending[i].arrival <= now + 1e-9:
            p = pending[i]
            if p.event:
                jb.put_event(p.seq, p.ts, p.ssrc)
            else:
                jb.put(p.seq, p.ts, p.ssrc, p.marker, p.payload, p.arrival)
            i += 1
        out.append(Played(now, jb.get(now), jb.stats()))
    return out


def audio_timestamps(played: list[Played]) -> list[int]:
    """Timestamps of the AUDIO frames, each checked to carry its own samples."""
    result = []
    for p in played:
        if p.frame.kind is AUDIO:
            assert p.frame.payload == audio(p.frame.timestamp, FRAME)
            result.append(p.frame.timestamp)
    return result


def kinds(played: list[Played]) -> str:
    return "".join({AUDIO: "A", MISSING: "M", SILENCE: "."}[p.frame.kind] for p in played)


def contiguous(timestamps: list[int], first: int = 0) -> list[int]:
    return [(first + k * FRAME) & MASK for k in range(len(timestamps))]


# -- basics -----------------------------------------------------------------------------------

def test_silence_before_any_packet() -> None:
    jb = JitterBuffer()
    assert jb.get(0.0) == Frame(SILENCE, b"", 0)
    assert jb.stats()["received"] == 0
    assert jb.stats()["expected"] == 0


def test_frame_is_frozen() -> None:
    frame = Frame(AUDIO, b"x", 1)
    with pytest.raises(FrozenInstanceError):
        frame.kind = SILENCE  # type: ignore[misc]


@pytest.mark.parametrize(("args", "message"), [
    ({"clock_rate": 0}, "jitter buffer is invalid: clock rate 0, frame of 160 samples"),
    ({"frame_samples": 0}, "jitter buffer is invalid: clock rate 8000, frame of 0 samples"),
    ({"min_delay_ms": 300}, "jitter buffer is invalid: delay bounds 300..200 ms"),
])
def test_bad_arguments(args: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError) as info:
        JitterBuffer(**args)
    assert str(info.value) == message


def test_in_order_stream_plays_at_min_delay() -> None:
    jb = JitterBuffer()
    played = play(jb, stream(100), 2.2)
    # due at arrival + 20 ms: one silent period, then every packet in order
    assert kinds(played) == "." + "A" * 100 + "MMM" + "." * 6
    assert audio_timestamps(played) == contiguous(list(range(100)))
    s = played[50].stats
    assert s["delay_ms"] == pytest.approx(20.0)
    assert s["target_ms"] == pytest.approx(20.0)
    assert jb.stats()["received"] == 100
    assert jb.stats()["lost"] == 0
    assert jb.stats()["concealed"] == 3  # the fade-out after the last packet


@pytest.mark.parametrize("phase", [0.003, 0.011, 0.019])
def test_playout_waits_a_whole_period_at_most(phase: float) -> None:
    jb = JitterBuffer()
    played = play(jb, stream(100), 2.0, phase=phase)
    assert 20.0 <= played[60].stats["delay_ms"] < 40.0
    assert audio_timestamps(played) == contiguous(audio_timestamps(played))
    assert jb.stats()["late"] == 0


def test_reordering_is_restored() -> None:
    # each even packet comes 1 ms after the odd one that follows it
    def delay(k: int) -> float:
        return 0.021 if k % 2 == 0 else 0.0
    jb = JitterBuffer()
    played = play(jb, stream(200), 4.5)
    jb2 = JitterBuffer()
    played = play(jb2, stream(200, delay=delay), 4.5)
    assert audio_timestamps(played) == contiguous(list(range(200)))
    s = jb2.stats()
    assert s["reordered"] == 100
    assert (s["late"], s["lost"], s["duplicates"], s["concealed"]) == (0, 0, 0, 3)
    assert s["received"] == s["expected"] == 200
    assert 21.0 <= played[100].stats["delay_ms"] < 60.0


def test_first_packets_reordered_play_from_the_earliest() -> None:
    packets = stream(20)
    packets[0] = replace(packets[0], arrival=0.025)  # seq 0 comes after seq 1
    jb = JitterBuffer()
    played = play(jb, packets, 0.6)
    assert audio_timestamps(played) == contiguous(list(range(20)))


def test_duplicates_are_dropped_and_counted() -> None:
    packets = stream(100)
    copies = [replace(p, arrival=p.arrival + 0.001) for p in packets]
    replayed = replace(packets[10], arrival=1.5)  # a copy of one played long ago
    jb = JitterBuffer()
    played = play(jb, packets + copies + [replayed], 2.5)
    assert audio_timestamps(played) == contiguous(list(range(100)))
    s = jb.stats()
    assert s["duplicates"] == 101
    assert (s["received"], s["lost"], s["late"]) == (100, 0, 0)


def test_late_packet_is_dropped_and_counted() -> None:
    packets = stream(100, delay=lambda k: 0.100 if k == 50 else 0.0)
    jb = JitterBuffer()
    played = play(jb, packets, 2.5)
    s = jb.stats()
    assert s["late"] == 1
    assert (s["received"], s["lost"]) == (100, 0)  # it did arrive
    timestamps = audio_timestamps(played)
    assert 50 * FRAME not in timestamps
    assert timestamps == sorted(timestamps)
    # the frame it should have filled was concealed
    assert kinds(played)[1:52] == "A" * 50 + "M"


def test_missing_packet_is_concealed_and_counted_lost() -> None:
    packets = [p for p in stream(100) if p.seq != 30]
    jb = JitterBuffer()
    played = play(jb, packets, 2.2)
    assert kinds(played)[:102] == "." + "A" * 30 + "M" + "A" * 69 + "M"
    s = jb.stats()
    assert (s["received"], s["expected"], s["lost"], s["late"]) == (99, 100, 1, 0)


# -- the target delay ------------------------------------------------------------------------

def test_jitter_raises_the_target_at_once_and_it_decays_slowly() -> None:
    # 2 s clean; one packet 80 ms late; then 20 s clean speech; a gap; a new talk spurt
    spike = 100
    first = stream(1100, delay=lambda k: 0.080 if k == spike else 0.0)
    second = stream(100, seq0=1100, ts0=1150 * FRAME, t0=23.0)
    jb = JitterBuffer()
    played = play(jb, first + second, 25.0)
    before, after = played[spike].stats, played[spike + 4].stats  # it lands at spike + 4
    assert before["target_ms"] == pytest.approx(20.0)
    assert after["target_ms"] >= 80.0  # at once
    # the delay follows within a few periods (gap frames inserted)
    assert played[spike + 8].stats["delay_ms"] >= 80.0
    assert played[spike + 8].stats["inserted"] >= 3
    # one second on it is still high; twenty seconds on it is back at the floor
    assert played[spike + 55].stats["target_ms"] >= 60.0
    assert played[spike + 1000].stats["target_ms"] == pytest.approx(20.0, abs=2.0)
    # in running speech the delay did not come down: no audio was dropped for it ...
    s = played[1098].stats
    assert s["delay_ms"] >= 80.0
    assert s["dropped"] == 0
    # ... it came down in the gap, and the next talk spurt plays at the floor
    assert 20.0 <= played[-30].stats["delay_ms"] < 40.0
    assert jb.stats()["dropped"] == 0
    assert jb.stats()["late"] == 1


def test_steady_jitter_means_no_late_packets_after_learning() -> None:
    rng = random.Random(7)
    delays = [rng.uniform(0.0, 0.060) for _ in range(1500)]
    jb = JitterBuffer()
    played = play(jb, stream(1500, delay=delays.__getitem__), 31.0)
    s = jb.stats()
    assert 60.0 <= s["target_ms"] <= 75.0
    late_after_warmup = s["late"] - played[250].stats["late"]
    assert late_after_warmup == 0
    assert s["received"] + s["lost"] == s["expected"] == 1500


def test_target_is_bounded_by_max_delay() -> None:
    packets = stream(300, delay=lambda k: 0.500 if k in (100, 101) else 0.0)
    jb = JitterBuffer(max_delay_ms=200)
    played = play(jb, packets, 6.5)
    assert max(p.stats["target_ms"] for p in played) == pytest.approx(200.0)
    assert max(p.stats["delay_ms"] for p in played) < 200.0 + 20.0 + 1e-6
    assert jb.stats()["late"] == 2


def test_min_delay_is_respected() -> None:
    jb = JitterBuffer(min_delay_ms=60)
    played = play(jb, stream(100), 2.2)
    assert played[50].stats["delay_ms"] == pytest.approx(60.0)
    assert kinds(played)[:4] == "...A"


# -- wrap-around, restarts -------------------------------------------------------------------

def test_sequence_and_timestamp_wrap_mid_stream() -> None:
    ts0 = (1 << 32) - 30 * FRAME
    packets = stream(100, seq0=65500, ts0=ts0)
    # swap two packets either side of each wrap
    for a in (35, 29):
        packets[a], packets[a + 1] = (replace(packets[a], arrival=packets[a + 1].arrival),
                                      replace(packets[a + 1], arrival=packets[a].arrival))
    jb = JitterBuffer()
    played = play(jb, packets, 2.2)
    assert audio_timestamps(played) == contiguous(list(range(100)), ts0)
    s = jb.stats()
    assert (s["received"], s["expected"], s["lost"], s["late"]) == (100, 100, 0, 0)
    assert s["reordered"] == 2
    assert s["restarts"] == 0


def test_ssrc_change_restarts_cleanly() -> None:
    a = stream(50, seq0=1000, ts0=5000, ssrc=0xA)
    b = stream(50, seq0=40000, ts0=3_000_000_000, ssrc=0xB, t0=1.1)
    straggler = replace(a[45], arrival=1.15)  # old stream, after the switch
    jb = JitterBuffer()
    played = play(jb, a + b + [straggler], 2.2)
    timestamps = audio_timestamps(played)
    assert timestamps == contiguous(list(range(50)), 5000) + contiguous(list(range(50)),
                                                                         3_000_000_000)
    s = jb.stats()
    assert s["restarts"] == 1
    assert s["stale"] == 1
    assert (s["received"], s["expected"], s["lost"]) == (100, 100, 0)
    assert played[80].stats["delay_ms"] == pytest.approx(20.0)


def test_ssrc_change_replaces_what_was_buffered() -> None:
    a = stream(50, ssrc=0xA)
    b = stream(50, seq0=7, ts0=123_456, ssrc=0xB, t0=0.5)  # A still has 0.5 s to send
    jb = JitterBuffer()
    played = play(jb, a + b, 1.6)
    timestamps = audio_timestamps(played)
    assert timestamps == contiguous(list(range(24))) + contiguous(list(range(50)), 123_456)
    # A's frames 24 and 25 were waiting when B came: dropped; its last 24 packets are stale
    assert kinds(played)[:77] == "." + "A" * 24 + "M" + "A" * 50 + "M"
    s = jb.stats()
    assert (s["received"], s["stale"], s["restarts"]) == (26 + 50, 24, 1)


def test_timestamp_jump_restarts_cleanly() -> None:
    a = stream(50, ts0=1000)
    b = stream(50, seq0=50, ts0=987_654_321, t0=1.1)  # same SSRC, sequence runs on
    jb = JitterBuffer()
    played = play(jb, a + b, 2.2)
    assert audio_timestamps(played) == (contiguous(list(range(50)), 1000)
                                        + contiguous(list(range(50)), 987_654_321))
    s = jb.stats()
    assert (s["restarts"], s["late"], s["lost"], s["expected"]) == (1, 0, 0, 100)


def test_sequence_jump_on_the_same_timeline_renumbers_without_a_flush() -> None:
    a = stream(50)
    b = stream(50, seq0=20000, ts0=50 * FRAME, t0=1.0)
    jb = JitterBuffer()
    played = play(jb, a + b, 2.2)
    assert audio_timestamps(played) == contiguous(list(range(100)))
    s = jb.stats()
    assert (s["restarts"], s["lost"], s["expected"], s["late"]) == (1, 0, 100, 0)


# -- packet sizes ----------------------------------------------------------------------------

@pytest.mark.parametrize("ptime", [10, 30, 40, 60])
def test_packets_of_other_sizes_play_whole(ptime: int) -> None:
    count = 3000 // ptime
    jb = JitterBuffer()
    played = play(jb, stream(count, ptime_ms=ptime), 3.5)
    timestamps = audio_timestamps(played)
    assert timestamps == contiguous(list(range(150)))
    # no gap between the first and the last audio frame
    k = kinds(played)
    assert "M" not in k[k.index("A"):k.rindex("A")]
    s = jb.stats()
    assert (s["received"], s["lost"], s["late"]) == (count, 0, 0)
    assert s["delay_ms"] < 40.0 + ptime


def test_lost_10ms_packet_conceals_its_frame() -> None:
    packets = [p for p in stream(200, ptime_ms=10) if p.seq != 61]  # 2nd half of frame 30
    jb = JitterBuffer()
    played = play(jb, packets, 2.2)
    timestamps = audio_timestamps(played)
    assert 30 * FRAME not in timestamps
    assert len(timestamps) == 99
    assert jb.stats()["lost"] == 1


# -- clock skew ------------------------------------------------------------------------------

@pytest.mark.parametrize("skew", [0.005, -0.005])
def test_clock_skew_keeps_the_level_bounded(skew: float) -> None:
    """60 s of continuous speech from a sender whose clock is 0.5 % fast or slow."""
    rng = random.Random(1)
    delays = [rng.uniform(0.0, 0.004) for _ in range(3100)]
    packets = stream(3100, skew=skew, delay=delays.__getitem__)
    jb = JitterBuffer()
    played = play(jb, packets, 60.0)
    levels = [p.stats["delay_ms"] for p in played[100:]]
    assert min(levels) >= 10.0
    assert max(levels) <= 55.0
    s = jb.stats()
    assert s["late"] == 0
    # 0.5 % of 60 s is 300 ms: 15 frames dropped (fast sender) or inserted (slow)
    adjusted = s["dropped"] if skew > 0 else s["inserted"]
    assert 12 <= adjusted <= 17
    assert s["dropped" if skew < 0 else "inserted"] == 0
    timestamps = audio_timestamps(played)
    assert timestamps == sorted(timestamps)


@pytest.mark.parametrize("skew", [0.005, -0.005])
def test_clock_skew_is_taken_up_in_silences(skew: float) -> None:
    """Talk spurts of 1 s with 0.5 s gaps: the level moves in the gaps, speech is kept."""
    packets = []
    spurt, seq = 50, 0
    for n in range(40):  # 60 s
        for p in stream(spurt, seq0=seq, ts0=n * 75 * FRAME, t0=n * 1.5 / (1 + skew),
                        skew=skew):
            packets.append(p)
        seq += spurt
    jb = JitterBuffer()
    played = play(jb, packets, 60.0)
    s = jb.stats()
    assert s["dropped"] == 0  # no speech dropped
    assert s["late"] == 0
    assert s["lost"] == 0
    assert len(audio_timestamps(played)) == 40 * spurt
    levels = [p.stats["delay_ms"] for p in played[100:] if p.frame.kind is AUDIO]
    assert min(levels) >= 10.0
    assert max(levels) <= 50.0


# -- accounting, bounds, gaps ----------------------------------------------------------------

def test_stats_add_up_under_loss_duplication_and_reordering() -> None:
    rng = random.Random(3)
    sent = stream(2000, delay=lambda k: rng.uniform(0.0, 0.030))
    delivered = [p for p in sent if p.seq in (0, 1999) or rng.random() > 0.1]
    delivered += [replace(p, arrival=p.arrival + rng.uniform(0.0, 0.05))
                  for p in rng.sample(delivered, 50)]
    jb = JitterBuffer()
    played = play(jb, delivered, 41.0)
    s = jb.stats()
    unique = len({p.seq for p in delivered})
    assert s["received"] == unique
    assert s["duplicates"] == len(delivered) - unique
    assert s["received"] + s["lost"] == s["expected"] == 2000
    assert s["concealed"] == sum(p.frame.kind is MISSING for p in played)
    assert s["reordered"] > 0
    audio_count = len(audio_timestamps(played))
    assert audio_count == s["received"] - s["late"] - s["dropped"]  # 1 packet, 1 frame


def test_buffer_is_capped() -> None:
    # a second of audio arrives in one burst, before playout has started
    packets = [replace(p, arrival=0.0) for p in stream(50)]
    jb = JitterBuffer(max_delay_ms=200)
    jb_stats = jb.stats()
    assert jb_stats["buffered"] == 0
    for p in packets:
        jb.put(p.seq, p.ts, p.ssrc, p.marker, p.payload, p.arrival)
    s = jb.stats()
    assert s["buffered"] == 24  # 2 x 200 ms + 4 frames
    assert s["overflow"] == 26
    assert s["received"] == 50


def test_gap_after_speech_is_concealed_then_silent() -> None:
    jb = JitterBuffer()
    played = play(jb, stream(10), 0.5)
    assert kinds(played) == "." + "A" * 10 + "MMM" + "." * 11


@pytest.mark.parametrize(("shift", "restarts"), [(0.5, 0), (-0.3, 0), (3.0, 1)])
def test_talk_spurt_after_silence_is_re_anchored_on_its_marker(shift: float,
                                                                restarts: int) -> None:
    # the second spurt's timestamps are `shift` seconds off the first's timeline (a sender
    # that counts time oddly across silence, or skew over a long one): it still plays, at
    # the floor delay; far enough off, it is a jump and restarts the stream
    first = stream(50)
    ts0 = round((2.0 + shift) * RATE)
    second = stream(50, seq0=50, ts0=ts0, t0=2.0)
    jb = JitterBuffer()
    played = play(jb, first + second, 3.5)
    assert audio_timestamps(played) == (contiguous(list(range(50)))
                                        + contiguous(list(range(50)), ts0))
    assert played[150].stats["delay_ms"] == pytest.approx(20.0)
    s = jb.stats()
    assert (s["late"], s["lost"], s["restarts"]) == (0, 0, restarts)



def test_peek_looks_only_as_far_as_asked_and_only_at_whole_frames() -> None:
    packets = [p for p in stream(12) if p.seq not in (5, 6)]
    half = next(p for p in packets if p.seq == 7)
    packets[packets.index(half)] = replace(half, payload=half.payload[:80])  # half a frame
    jb = JitterBuffer(min_delay_ms=80)
    played = play(jb, packets, 0.2)  # frame k plays at get k + 4
    assert kinds(played) == "...." + "A" * 5 + "M"  # frame 5
    assert jb.peek(1) is None  # frame 6 is not here
    assert jb.peek(2) is None  # frame 7 is here in part only
    ahead = jb.peek(3)
    assert ahead is not None and ahead[1] == 3 and bytes(ahead[0]) == audio(8 * FRAME, FRAME)


def test_recode_maps_what_is_held_and_only_that() -> None:
    """A re-INVITE from PCMU to PCMA mid-call: the frames already held were received in
    µ-law and must come out in A-law; what played before, and what comes after, not."""
    jb = JitterBuffer()
    table = bytes(255 - i for i in range(256))
    heard = []
    jb.put(0, 0, 7, False, bytes([1]) * 160, arrival=0.0)
    heard.append(jb.get(0.0))
    jb.put(1, 160, 7, False, bytes([2]) * 160, arrival=0.02)
    heard.append(jb.get(0.02))  # frame 0, before the switch
    jb.put(2, 320, 7, False, bytes([3]) * 160, arrival=0.04)
    jb.put(3, 480, 7, False, bytes([9]) * 80, arrival=0.04)  # half of frame 3 so far
    jb.recode(table)
    heard.append(jb.get(0.04))
    jb.put(4, 560, 7, False, bytes([200]) * 80, arrival=0.06)  # the rest, in the new law
    heard += [jb.get(0.06), jb.get(0.08)]
    assert [f.payload for f in heard if f.kind is AUDIO] == [
        bytes([1]) * 160, bytes([253]) * 160, bytes([252]) * 160,
        bytes([246]) * 80 + bytes([200]) * 80]


# -- RFC 4733 events (DTMF) ---------------------------------------------------------------

def with_digits(packets: list[Packet], digits: list[tuple[int, int]], *,
                beside: bool = False) -> list[Packet]:
    """The stream as a sender of DTMF sends it: for each (first, count), the audio packets
    first .. first + count - 1 give way to as many event packets, one per 20 ms, each
    with the event's start timestamp and the next sequence number (RFC 4733 §2.5.1), and
    the audio then goes on, its timestamps having run on meanwhile. ``beside``: the event
    packets come besides the audio instead (RFC 4733 allows both), each just before the
    audio packet of its time, numbered before it."""
    out: list[Packet] = []
    seq = packets[0].seq
    for p in packets:
        k = p.ts // FRAME
        digit = next(((first, n) for first, n in digits if first <= k < first + n), None)
        if digit is not None:
            start = digit[0] * FRAME
            out.append(Packet(seq & 0xFFFF, start, p.ssrc, k == digit[0], b"", p.arrival,
                              event=True))
            seq += 1
            if not beside:
                continue
        out.append(replace(p, seq=seq & 0xFFFF))
        seq += 1
    return out


def test_a_digit_sent_instead_of_audio_is_silence_not_a_loss() -> None:
    """Most senders send a digit's events instead of their audio. The event packets take
    sequence numbers, so the audio either side is in sequence: nothing is lost, and the
    frames of the digit are the sender's silence, not losses to conceal (concealment
    would make up 60 ms of the voice from before the key press)."""
    packets = with_digits(stream(100), [(30, 8)])
    jb = JitterBuffer()
    played = play(jb, packets, 2.02)  # to the stream's last frame
    assert kinds(played) == "." + "A" * 30 + "." * 8 + "A" * 62
    assert audio_timestamps(played) == [k * FRAME for k in range(100) if not 30 <= k < 38]
    s = jb.stats()
    assert (s["received"], s["expected"], s["lost"], s["concealed"]) == (100, 100, 0, 0)


def test_events_beside_the_audio_change_nothing_heard() -> None:
    packets = with_digits(stream(100), [(30, 8)], beside=True)
    jb = JitterBuffer()
    played = play(jb, packets, 2.02)
    assert kinds(played) == "." + "A" * 100
    s = jb.stats()
    assert (s["received"], s["expected"], s["lost"], s["concealed"]) == (108, 108, 0, 0)


def test_losses_next_to_a_digit_are_still_concealed() -> None:
    """A digit's silence runs from its start to the audio after it, no further: the audio
    lost just before the digit, or just after it, is concealed as any loss."""
    packets = [p for p in with_digits(stream(100), [(30, 8)])
               if p.event or p.ts // FRAME not in (29, 40)]
    jb = JitterBuffer()
    played = play(jb, packets, 2.02)
    assert kinds(played) == "." + "A" * 29 + "M" + "." * 8 + "AA" + "M" + "A" * 59
    s = jb.stats()
    assert (s["lost"], s["concealed"]) == (2, 2)


def test_digits_the_buffer_holds_at_once_are_each_silence() -> None:
    """A deep buffer (100 ms) holds a digit, the audio after it and the next digit at once
    (and a third right after the second, no audio between): each digit's frames are
    silence, the audio between them plays, nothing is lost."""
    packets = with_digits(stream(100), [(30, 4), (36, 3), (39, 2)])
    jb = JitterBuffer(min_delay_ms=100)
    played = play(jb, packets, 2.1)
    assert kinds(played) == "." * 5 + "A" * 30 + "." * 4 + "AA" + "." * 5 + "A" * 59
    s = jb.stats()
    assert (s["lost"], s["concealed"]) == (0, 0)


def test_events_of_another_ssrc_or_before_the_audio_are_not_the_streams() -> None:
    jb = JitterBuffer()
    jb.put_event(5, 800, 1)  # before any audio: no stream to belong to
    assert jb.stats()["received"] == 0
    packets = stream(20)
    stranger = [Packet(p.seq + 1000, 0, 2, False, b"", p.arrival, event=True)
                for p in packets[5:10]]
    played = play(jb, packets + stranger, 0.5)
    assert kinds(played)[:21] == "." + "A" * 20
    s = jb.stats()
    assert (s["received"], s["expected"], s["restarts"]) == (20, 20, 0)
