"""Two media sessions on 127.0.0.1, directly and through an impairment relay.

The clock runs 5x faster than real time (mediafakes.ScaledClock), so each
test carries a few seconds of call in well under a second.
"""

from __future__ import annotations

import random
import socket
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from mediafakes import ImpairmentRelay, MemoryAudio, ScaledClock, udp_socket

from deskphone.media.engine import MediaSession
from deskphone.media.g711 import ulaw_decode, ulaw_encode
from deskphone.media.tones import get_tone
from deskphone.sdp import PCMA, PCMU, Codec, Direction, NegotiatedMedia
from deskphone.transport.rtp import ArrivalTimes

SPEED = 5.0


def tone(freq: float, seconds: float, amp: float = 6000) -> np.ndarray:
    t = np.arange(int(8000 * seconds)) / 8000
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def dominant_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x.astype(float) * np.hanning(len(x))))
    return float(np.argmax(spec) * 8000 / len(x))


def media(local: socket.socket, remote_port: int, codec: Codec = PCMU,
          direction: Direction = Direction.SENDRECV) -> NegotiatedMedia:
    return NegotiatedMedia(remote_address="127.0.0.1", remote_port=remote_port,
                           local_port=local.getsockname()[1], codec=codec,
                           telephone_event_pt=101, ptime=20, direction=direction,
                           rtcp_mux=True)


class Side:
    def __init__(self, mic: np.ndarray, clock: ScaledClock) -> None:
        self.sock = udp_socket()
        self.audio = MemoryAudio(mic, clock)
        self.events: list[dict[str, Any]] = []
        self.session: MediaSession | None = None

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def open(self, m: NegotiatedMedia, clock: ScaledClock, seed: int,
             **kw: Any) -> MediaSession:
        self.session = MediaSession(m, self.sock, self.audio, rng=random.Random(seed),
                                    on_event=self.events.append, clock=clock,
                                    wallclock=clock.wall,
                                    arrival_times=lambda s: ArrivalTimes(s, speed=clock.speed),
                                    **kw)
        return self.session


@contextmanager
def call(mic_a: np.ndarray, mic_b: np.ndarray, relay_kw: dict[str, Any] | None = None,
         codec: Codec = PCMU, **kw: Any) -> Iterator[tuple[Side, Side, ImpairmentRelay | None]]:
    clock = ScaledClock(SPEED)
    a, b = Side(mic_a, clock), Side(mic_b, clock)
    relay = None
    if relay_kw is not None:
        relay = ImpairmentRelay(clock, **relay_kw)
        relay.set_targets(("127.0.0.1", a.port), ("127.0.0.1", b.port))
        relay.start()
        ma, mb = media(a.sock, relay.port_for_a, codec), media(b.sock, relay.port_for_b, codec)
    else:
        ma, mb = media(a.sock, b.port, codec), media(b.sock, a.port, codec)
    sa, sb = a.open(ma, clock, 1, **kw), b.open(mb, clock, 2, **kw)
    sa.start()
    sb.start()
    try:
        yield a, b, relay
    finally:
        sa.stop()
        sb.stop()
        if relay is not None:
            relay.stop()
        a.sock.close()
        b.sock.close()
    assert sa.error is None and sb.error is None, (sa.error, sb.error)  # no thread died


def run_for(seconds: float) -> None:
    time.sleep(seconds / SPEED)


def test_clean_link_carries_audio_bit_exact_both_ways() -> None:
    mic_a, mic_b = tone(440, 4), tone(1000, 4)
    with call(mic_a, mic_b) as (a, b, _):
        run_for(3)
        sa, sb = a.session, b.session
        assert sa is not None and sb is not None
        stats_a, stats_b = sa.stats(), sb.stats()
    # every frame B plays is one of A's 20 ms frames through µ-law, bit for bit
    ref = ulaw_decode(ulaw_encode(mic_a))
    sent_frames = {ref[i:i + 160].tobytes() for i in range(0, len(ref), 160)}
    played = [f.tobytes() for f in b.audio.played if np.abs(f).max() > 0]
    assert len(played) >= 100
    exact = sum(f in sent_frames for f in played)
    assert exact >= len(played) - 2  # a frame or two may be concealed if the OS stalls us
    assert dominant_hz(a.audio.output()[-8000:]) == pytest.approx(1000, abs=5)
    for s in (stats_a, stats_b):
        assert s["codec"] == "PCMU"
        assert s["tx_packets"] >= 140 and s["rx_packets"] >= 140
        assert s["rx_lost"] == 0 and s["concealed_frames"] <= 2
        assert 0 < s["jitter_buffer_ms"] <= 200
        assert set(s) >= {"codec", "tx_packets", "rx_packets", "rx_lost", "rx_late",
                          "concealed_frames", "jitter_ms", "rtt_ms", "jitter_buffer_ms"}


def test_impaired_link_still_carries_audio_and_counts_losses() -> None:
    mic = tone(440, 7)
    impair = {"loss": 0.05, "jitter_ms": 30, "duplicate": 0.03, "reorder": 0.03}
    with call(mic, mic, impair) as (a, b, relay):
        run_for(6)
        assert b.session is not None and relay is not None
        s = b.session.stats()
        assert b.session.running
    assert 0.02 < s["rx_lost"] / (s["rx_packets"] + s["rx_lost"]) < 0.12
    assert s["concealed_frames"] > 0
    assert s["jitter_ms"] > 1.0
    assert s["jitter_buffer_ms"] >= 30  # grew to cover the jitter
    heard = b.audio.output()[-16000:]
    assert dominant_hz(heard) == pytest.approx(440, abs=5)  # concealment, not zero-fill gaps
    assert np.sqrt(np.mean(heard.astype(float) ** 2)) > 2000


def test_malformed_packets_are_dropped_without_killing_the_thread() -> None:
    bad = iter(range(10**9))

    def corrupt(data: bytes) -> bytes | None:
        i = next(bad)
        if i % 10 == 3:
            return data[:5]  # short
        if i % 10 == 6:
            return bytes([0x40]) + data[1:]  # version 1
        if i % 10 == 8:
            return bytes([0x8F]) + data[1:12]  # 15 CSRCs announced, none there
        return data

    with call(tone(440, 6), tone(440, 6), {"corrupt": corrupt}) as (a, b, _):
        assert b.session is not None
        # until 100 packets have come (a loaded machine sends them later, not fewer)
        for _ in range(60):
            run_for(0.1)
            s = b.session.stats()
            if s["rx_packets"] + s["rx_invalid"] >= 100:
                break
        assert b.session.running and b.session.error is None
    assert s["rx_invalid"] >= 20
    assert s["rx_packets"] >= 60


def test_packets_from_a_stranger_are_ignored() -> None:
    with call(tone(440, 3), tone(440, 3)) as (a, b, _):
        run_for(0.5)
        stranger = udp_socket()
        for seq in range(30):
            pkt = struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 0xBAD) + b"\x00" * 160
            stranger.sendto(pkt, ("127.0.0.1", b.port))
        run_for(1.0)
        stranger.close()
        assert b.session is not None
        s = b.session.stats()
    assert s["rx_filtered"] == 30


def test_dtmf_goes_across_as_rfc4733_events() -> None:
    """And is no loss: our events go instead of our audio, numbered in its stream, and
    the receiver counts them (issue 9: ~5 lost a digit, and concealment played)."""
    with call(tone(440, 4), tone(440, 4)) as (a, b, _):
        run_for(0.5)
        assert a.session is not None and b.session is not None
        a.session.send_dtmf("15#")
        run_for(2.0)
        stats = b.session.stats()
    digits = [e["digit"] for e in b.events if e.get("event") == "dtmf"]
    assert digits == ["1", "5", "#"]
    assert all(e["duration_ms"] >= 90 for e in b.events if e.get("event") == "dtmf")
    assert stats["rx_lost"] == 0, stats
    assert stats["concealed_frames"] <= 2, stats  # a stall of this machine's, at most


def test_mute_sends_silence_and_hold_sends_nothing() -> None:
    with call(tone(440, 6), tone(440, 6)) as (a, b, _):
        run_for(1.0)
        assert a.session is not None and b.session is not None
        a.session.mute(True)
        run_for(1.0)
        muted_part = b.audio.output()[-4000:]
        a.session.mute(False)
        a.session.hold(True)
        run_for(0.6)  # what was in flight lands, and B's snapshot (twice a second) shows it
        before = b.session.stats()["rx_packets"]
        run_for(1.0)
        after = b.session.stats()["rx_packets"]
    assert np.abs(muted_part).max() < 50
    assert after - before <= 1  # nothing more


def test_pcma_calls_work() -> None:
    with call(tone(700, 3), tone(700, 3), codec=PCMA) as (a, b, _):
        run_for(2.0)
        assert b.session is not None
        assert b.session.stats()["codec"] == "PCMA"
    assert dominant_hz(b.audio.output()[-6000:]) == pytest.approx(700, abs=5)


def test_a_local_tone_replaces_the_far_end() -> None:
    with call(tone(440, 3), tone(440, 3)) as (a, b, _):
        assert b.session is not None
        b.session.play_tone(get_tone("US", "busy"))
        run_for(1.5)
    heard = b.audio.output()[-4000:]
    spec = np.abs(np.fft.rfft(heard.astype(float)))
    freqs = np.fft.rfftfreq(len(heard), 1 / 8000)
    top2 = sorted(freqs[np.argsort(spec)[-2:]])
    assert top2 == pytest.approx([480, 620], abs=5)


def test_stop_sends_rtcp_bye() -> None:
    with call(tone(440, 3), tone(440, 3)) as (a, b, _):
        run_for(0.5)
        assert a.session is not None
        a.session.stop()
        run_for(0.5)
    assert {"event": "rtcp_bye"} in b.events



def test_rtcp_reports_give_a_round_trip_time() -> None:
    with call(tone(440, 14), tone(440, 14)) as (a, b, _):
        run_for(13)
        assert a.session is not None and b.session is not None
        rtts = [a.session.stats()["rtt_ms"], b.session.stats()["rtt_ms"]]
    assert all(r is not None and 0 <= r < 100 for r in rtts), rtts


def test_the_other_g711_law_is_played_too() -> None:
    """SIPp's pcap player sends PCMA into a call that negotiated PCMU first; both
    were in the SDP, so the phone must play it (baresip does too)."""
    clock = ScaledClock(SPEED)
    b = Side(tone(440, 3), clock)
    peer = udp_socket()
    from deskphone.media.g711 import alaw_encode

    session = b.open(media(b.sock, peer.getsockname()[1], PCMU), clock, 2)
    session.start()
    pcm = tone(600, 2)
    try:
        for i in range(0, len(pcm), 160):
            pkt = struct.pack("!BBHII", 0x80, 8, i // 160, i, 0xA1A1) + alaw_encode(pcm[i:i + 160])
            peer.sendto(pkt, ("127.0.0.1", b.port))
            clock.sleep(0.02)
        run_for(0.3)
    finally:
        session.stop()
        peer.close()
        b.sock.close()
    s = session.stats()  # the last snapshot, taken as the thread ends
    assert s["rx_packets"] == 100 and s["rx_invalid"] == 0
    heard = b.audio.output()
    assert dominant_hz(heard[heard != 0][:12000]) == pytest.approx(600, abs=5)


def test_a_new_ssrc_from_the_peer_is_heard_and_one_from_a_stranger_is_not() -> None:
    """A packet is the peer's by where it comes from, whatever its SSRC: the peer's new
    SSRC (a PBX bridging in music on hold) is heard, a stranger's stray packets are not."""
    clock = ScaledClock(SPEED)
    b = Side(tone(440, 4), clock)
    peer, stranger = udp_socket(), udp_socket()
    session = b.open(media(b.sock, peer.getsockname()[1], PCMU), clock, 2)
    session.start()
    pcm = tone(600, 3)
    try:
        for k, i in enumerate(range(0, len(pcm), 160)):
            ssrc = 0xA1A1 if k < 75 else 0xB2B2
            pkt = struct.pack("!BBHII", 0x80, 0, k, i, ssrc) + ulaw_encode(pcm[i:i + 160])
            peer.sendto(pkt, ("127.0.0.1", b.port))
            if k in (40, 100):  # one stray packet of a stranger's, then nothing more
                stranger.sendto(struct.pack("!BBHII", 0x80, 0, k, i, 0xBAD) + bytes(160),
                                ("127.0.0.1", b.port))
            clock.sleep(0.02)
        run_for(0.3)
    finally:
        session.stop()
        peer.close()
        stranger.close()
        b.sock.close()
    s = session.stats()  # the last snapshot, taken as the thread ends
    assert s["rx_packets"] == 150 and s["rx_filtered"] == 2 and s["rx_invalid"] == 0
    ref = ulaw_decode(ulaw_encode(pcm))
    sent = [ref[i:i + 160].tobytes() for i in range(0, len(ref), 160)]
    played = {f.tobytes() for f in b.audio.played}
    assert sum(f in played for f in sent[:75]) >= 73  # bit for bit, both SSRCs
    assert sum(f in played for f in sent[75:]) >= 73
