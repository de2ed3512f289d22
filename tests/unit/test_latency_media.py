"""How many 20 ms frames the media thread adds each way, turn by turn (bench/latency.py
measures the same in milliseconds).

The media thread runs on the file backend with a lockstep clock: time moves only when
the backend's Pacer sleeps, and only once the test lets it, so the test runs the loop one
turn (one tick) at a time and puts packets in the socket between two ticks, each with the
arrival stamp it chooses. With the file backend, mic sample i and speaker sample i are on
one timeline: what the phone adds is read off the frame indices of the two WAV files.
"""

from __future__ import annotations

import random
import select
import socket
import struct
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from mediafakes import T0, Arrivals, LockstepClock

from deskphone.media.audio.wavfile import FileBackend, load_wav
from deskphone.media.engine import MediaSession
from deskphone.media.g711 import ULAW_DECODE_TABLE
from deskphone.sdp import PCMU, Direction, NegotiatedMedia

FRAME = 160
_RTP = struct.Struct("!BBHII")


def code_frame(code: int) -> np.ndarray:
    """A 20 ms frame whose every sample is µ-law ``code`` decoded: it survives G.711 both
    ways, so each frame can be told by one code."""
    return np.full(FRAME, ULAW_DECODE_TABLE[code], np.int16)


def frame_code(frame: np.ndarray) -> int | None:
    values = set(frame.tolist())
    if len(values) != 1:
        return None
    (value,) = values
    codes = [c for c in range(256) if c != 0x7F and int(ULAW_DECODE_TABLE[c]) == value]
    return codes[0] if codes else None


MIC_CODES = [0x90 + n for n in range(48)]  # mic frame n: code 0x90 + n
FAR_CODES = [0x10 + j for j in range(48)]  # the far end's packet j: code 0x10 + j


class Turns:
    """A call with the file backend run turn by turn; ``far`` is the far end's socket."""

    def __init__(self, tmp: Path) -> None:
        self.clock = LockstepClock()
        self.arrivals = Arrivals(self.clock)
        mic = np.concatenate([code_frame(c) for c in MIC_CODES])
        self.mic_path, self.speaker_path = tmp / "mic.wav", tmp / "speaker.wav"
        with wave.open(str(self.mic_path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(mic.astype("<i2").tobytes())
        self.audio = FileBackend(input=str(self.mic_path), output=str(self.speaker_path),
                                 clock=self.clock, sleep=self.clock.sleep)
        self.phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.phone.bind(("127.0.0.1", 0))
        self.far = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.far.bind(("127.0.0.1", 0))
        self.far.settimeout(10)  # a guard: each packet awaited is due already
        media = NegotiatedMedia(remote_address="127.0.0.1",
                                remote_port=self.far.getsockname()[1],
                                local_port=self.phone.getsockname()[1], codec=PCMU,
                                telephone_event_pt=101, ptime=20,
                                direction=Direction.SENDRECV, rtcp_mux=True)
        self.session = MediaSession(media, self.phone, self.audio, rng=random.Random(3),
                                    clock=self.clock, wallclock=self.clock.wall,
                                    arrival_times=lambda s: self.arrivals)
        self.turn = 0  # the tick whose turn ran last
        self._seq = 1000

    def start(self) -> None:
        """Tick 0's turn runs at once (the Pacer's first tick does not wait)."""
        self.session.start()
        self.clock.turn_done()

    def next_turn(self) -> None:
        self.clock.tick()
        self.clock.turn_done()
        self.turn += 1

    def at(self, tick: float) -> float:
        return T0 + tick * 0.02

    def send(self, j: int, arrival: float) -> None:
        """The far end's packet j (20 ms, code FAR_CODES[j]), stamped as arriving at
        ``arrival``; in the phone's socket before this returns."""
        self.arrivals.queued.append(arrival)
        header = _RTP.pack(0x80, 0x80 if j == 0 else 0, self._seq + j, 5000 + j * FRAME,
                           0x1234ABCD)
        self.far.sendto(header + bytes([FAR_CODES[j]]) * FRAME, self.phone.getsockname())
        assert select.select([self.phone], [], [], 10)[0]

    def sent(self) -> tuple[int, int | None]:
        """The phone's next RTP packet: (timestamp, the mic frame it carries)."""
        while True:
            data = self.far.recv(2048)
            if data[1] & 0x7F == 0:  # not RTCP
                ts = _RTP.unpack_from(data)[3]
                payload = data[12:]
                n = MIC_CODES.index(payload[0]) if payload[0] in MIC_CODES else None
                return ts, n if payload == bytes([payload[0]]) * FRAME else None

    def finish(self) -> list[int | None]:
        """End the call; the speaker file, frame by frame: which far packet each is."""
        self.clock.free = True
        self.clock.tick()
        self.session.stop()
        assert self.session.error is None
        self.audio.close()
        self.phone.close()
        self.far.close()
        out = load_wav(self.speaker_path)
        codes = [frame_code(out[i:i + FRAME]) for i in range(0, len(out), FRAME)]
        return [FAR_CODES.index(c) if c in FAR_CODES else None for c in codes]


@contextmanager
def turns(tmp: Path) -> Iterator[Turns]:
    t = Turns(tmp)
    try:
        yield t
    finally:
        if t.session.running:
            t.clock.free = True
            t.clock.tick()
            t.session.stop()


def test_the_mic_frame_read_at_a_tick_is_on_the_wire_in_that_turn(tmp_path: Path) -> None:
    with turns(tmp_path) as call:
        call.start()
        first_ts, n = call.sent()
        assert n == 0  # frame 0, read at tick 0, sent in tick 0's turn
        for tick in range(1, 12):
            call.next_turn()
            ts, n = call.sent()
            assert (n, ts - first_ts) == (tick, tick * FRAME)
        call.finish()


@pytest.mark.parametrize("after_ms", [1, 10, 19])
def test_a_packet_arriving_between_two_ticks_plays_a_frame_after_the_second(
        tmp_path: Path, after_ms: int) -> None:
    """At 0 jitter: a packet that arrives in the period before tick n waits in the socket
    for tick n's turn, and the jitter buffer's 20 ms minimum holds it one frame more: it is
    speaker frame n + 1, whatever its phase in that period."""
    with turns(tmp_path) as call:
        call.start()
        for j in range(30):
            # packet j arrives after_ms after tick j, so in the period before tick j + 1
            call.send(j, call.at(j) + after_ms / 1000)
            call.next_turn()
        for _ in range(3):
            call.next_turn()
        speaker = call.finish()
    played_at = {j: m for m, j in enumerate(speaker) if j is not None}
    assert played_at == {j: j + 2 for j in range(30)}
    assert all(j is None for j in speaker[:2])  # nothing before the first packet's frame


def test_mic_to_speaker_through_an_echo_is_two_frames(tmp_path: Path) -> None:
    """The black box in frames: the far end sends each mic frame back as it comes, and it
    is in the speaker file two frames after its place in the mic file (mic sample i and
    speaker sample i are on one timeline): one frame waiting for the next turn, one in the
    jitter buffer. Nothing else holds a frame."""
    with turns(tmp_path) as call:
        call.start()
        for tick in range(1, 25):
            _, n = call.sent()  # sent in the turn just run
            assert n == tick - 1
            call.send(n, call.at(n) + 0.0001)  # echoed: back 0.1 ms after it left
            call.next_turn()
        speaker = call.finish()
    played_at = {j: m for m, j in enumerate(speaker) if j is not None}
    assert played_at == {n: n + 2 for n in range(24)}
