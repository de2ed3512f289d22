"""Packet times other than 20 ms (SDP a=ptime 10..60), both ways, on the real media thread.

The loop turns every 20 ms whatever the ptime: a 30 ms sender queues the mic's
frames and sends when 240 samples are in, a 10 ms one sends two packets a turn;
received packets of any length go into the jitter buffer's timestamp grid and
come out as 20 ms frames. The far end here is a bare socket driven by the test,
on the same 5x clock as the session.
"""

from __future__ import annotations

import random
import socket
import struct
import time

import numpy as np
import pytest
from mediafakes import MemoryAudio, ScaledClock, udp_socket

from deskphone.media.engine import MediaSession
from deskphone.media.g711 import ulaw_decode, ulaw_encode
from deskphone.sdp import PCMU, Direction, NegotiatedMedia
from deskphone.transport.rtp import ArrivalTimes

SPEED = 5.0
HEADER = struct.Struct("!BBHII")


def noise(seconds: float, seed: int) -> np.ndarray:
    """Speech-level noise: every sample differs, so any slip or repeat shows."""
    rng = np.random.default_rng(seed)
    return rng.integers(-6000, 6000, int(8000 * seconds)).astype(np.int16)


def session(ptime: int, mic: np.ndarray, far: socket.socket, clock: ScaledClock
            ) -> tuple[MediaSession, MemoryAudio, socket.socket]:
    sock = udp_socket()
    audio = MemoryAudio(mic, clock)
    media = NegotiatedMedia(remote_address="127.0.0.1", remote_port=far.getsockname()[1],
                            local_port=sock.getsockname()[1], codec=PCMU,
                            telephone_event_pt=101, ptime=ptime,
                            direction=Direction.SENDRECV, rtcp_mux=True)
    s = MediaSession(media, sock, audio, rng=random.Random(ptime), clock=clock,
                     wallclock=clock.wall,
                     arrival_times=lambda s: ArrivalTimes(s, speed=clock.speed))
    return s, audio, sock


@pytest.mark.parametrize("ptime", [10, 30, 40, 60])
def test_the_phone_sends_packets_of_the_negotiated_ptime(ptime: int) -> None:
    clock = ScaledClock(SPEED)
    far = udp_socket()
    far.settimeout(1.0)
    mic = noise(3, ptime)
    s, _, sock = session(ptime, mic, far, clock)
    s.start()
    packets = []
    try:
        while len(packets) < 1500 // ptime:  # 1.5 s of the call
            packets.append(far.recv(2048))
    finally:
        s.stop()
        sock.close()
        far.close()
    assert s.error is None
    samples = ptime * 8
    heads = [HEADER.unpack_from(p) for p in packets]
    assert all(len(p) == 12 + samples for p in packets)
    assert all(h[1] & 0x7F == 0 for h in heads)  # PCMU
    pairs = zip(heads[:-1], heads[1:], strict=True)
    for (_, _, seq0, ts0, ssrc0), (_, _, seq1, ts1, ssrc1) in pairs:
        assert (seq1 - seq0) & 0xFFFF == 1
        assert (ts1 - ts0) & 0xFFFFFFFF == samples
        assert ssrc1 == ssrc0
    # the payloads, end to end, are the mic through µ-law: nothing lost, repeated or
    # reordered in the queue that turns 20 ms frames into packets of another length
    sent = b"".join(p[12:] for p in packets)
    assert sent == ulaw_encode(mic)[:len(sent)]


@pytest.mark.parametrize("ptime", [10, 30, 60])
def test_the_phone_plays_packets_of_any_ptime_in_order(ptime: int) -> None:
    clock = ScaledClock(SPEED)
    far = udp_socket()
    speech = noise(2, 100 + ptime)
    s, audio, sock = session(ptime, np.zeros(8000 * 3, np.int16), far, clock)
    s.start()
    samples = ptime * 8
    codes = ulaw_encode(speech)
    try:
        start = clock()
        for i in range(len(codes) // samples):
            due = start + i * ptime / 1000
            time.sleep(max(0.0, due - clock()) / SPEED)
            pkt = HEADER.pack(0x80, 0, 1000 + i, 50_000 + i * samples, 0xFEED)
            far.sendto(pkt + codes[i * samples:(i + 1) * samples], sock.getsockname())
        time.sleep(0.3 / SPEED)  # the buffer's delay plays out
        # the stats are a snapshot taken twice a (media) second: wait for one that has
        # seen the last packets (bounded), or a loaded machine reads one from before them
        sent = len(codes) // samples
        deadline = time.monotonic() + 2.0
        stats = s.stats()
        while stats["rx_packets"] < sent - 2 and time.monotonic() < deadline:
            time.sleep(0.02)
            stats = s.stats()
    finally:
        s.stop()
        sock.close()
        far.close()
    assert s.error is None
    sent = len(codes) // samples
    want = ulaw_decode(codes[:sent * samples])
    # The packets' samples, cut into the 20 ms frames the buffer plays: every frame
    # played is one of them, bit for bit and in order, or a concealed one (a stall of
    # this machine delays a packet: the stats count those, and a frame the buffer
    # inserts then shifts the rest, which is why frames are matched, not samples)
    frames = {want[k:k + 160].tobytes(): k // 160 for k in range(0, len(want) - 159, 160)}
    heard = [frames.get(f.tobytes(), -1) for f in audio.played if f.any()]
    while heard and heard[-1] < 0:
        heard.pop()  # the fade-out after the stream's last packet
    matched = [k for k in heard if k >= 0]
    assert matched == sorted(set(matched))  # in order, none twice
    assert len(matched) >= len(frames) - 2 * stats["concealed_frames"] - 1, (
        len(matched), len(frames), stats)
    assert heard.count(-1) <= stats["concealed_frames"] + 1  # the rest were concealment
    assert stats["concealed_frames"] <= 10, stats
    if stats["concealed_frames"] == 0:
        assert matched == list(range(len(frames)))  # every frame, nothing else
    assert stats["rx_packets"] >= sent - 2
