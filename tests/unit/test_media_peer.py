"""The media thread against a far end the test drives packet by packet: where it sends
(symmetric RTP, NAT rebinding), what it takes (strangers, malformed DTMF), the DTMF it
puts on the wire, and the stats it shows from the first moment.

The far end is a bare UDP socket (or two, to move like a NAT rebinding) on the same 5x
clock as the session (mediafakes.ScaledClock).
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from mediafakes import MemoryAudio, ScaledClock, udp_socket

from deskphone.media.engine import MediaOptions, MediaSession
from deskphone.media.g711 import ulaw_encode
from deskphone.sdp import PCMU, Direction, NegotiatedMedia
from deskphone.transport.rtp import ArrivalTimes

SPEED = 5.0
HEADER = struct.Struct("!BBHII")
EVENT = struct.Struct("!BBH")
REQUIRED_STATS = {"codec", "tx_packets", "rx_packets", "rx_lost", "rx_late",
                  "concealed_frames", "jitter_ms", "rtt_ms", "jitter_buffer_ms"}


class FarEnd:
    """Sends a 20 ms PCMU stream (a 440 Hz tone) from one of its sockets on the scaled
    clock, in a thread; keeps what reaches each socket."""

    def __init__(self, clock: ScaledClock, ssrc: int = 0x5EED) -> None:
        self.clock = clock
        self.socks = [udp_socket(), udp_socket()]
        for s in self.socks:
            s.settimeout(0.05)
        self._ports = [int(s.getsockname()[1]) for s in self.socks]
        self.use = 0  # which socket sends: changing it is a NAT rebinding
        self.ssrc = ssrc
        self.seq, self.ts = 100, 5000
        self.target: tuple[str, int] | None = None
        self.sending = threading.Event()
        self.extra: list[bytes] = []  # sent once, before the next audio packet
        self.received: list[list[tuple[float, bytes]]] = [[], []]
        t = np.arange(160) / 8000
        self.payload = ulaw_encode((6000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16))
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send_loop, daemon=True)]
        self._threads += [threading.Thread(target=self._recv_loop, args=(i,), daemon=True)
                          for i in range(2)]

    def port(self, i: int = 0) -> int:
        return self._ports[i]

    def start(self, target: tuple[str, int]) -> None:
        self.target = target
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(2)
        for s in self.socks:
            s.close()

    def packet(self, pt: int = 0, payload: bytes | None = None, marker: bool = False,
               ts: int | None = None) -> bytes:
        pkt = HEADER.pack(0x80, pt | (0x80 if marker else 0), self.seq,
                          self.ts if ts is None else ts, self.ssrc)
        return pkt + (self.payload if payload is None else payload)

    def _send_loop(self) -> None:
        next_at = self.clock()
        while not self._stop.is_set():
            next_at += 0.02
            time.sleep(max(0.0, next_at - self.clock()) / SPEED)
            if not self.sending.is_set() or self.target is None:
                continue
            sock = self.socks[self.use]
            while self.extra:
                sock.sendto(self.extra.pop(0), self.target)
            sock.sendto(self.packet(), self.target)
            self.seq = (self.seq + 1) & 0xFFFF
            self.ts = (self.ts + 160) & 0xFFFFFFFF

    def _recv_loop(self, i: int) -> None:
        while not self._stop.is_set():
            try:
                data = self.socks[i].recv(2048)
            except (TimeoutError, OSError):
                continue
            self.received[i].append((self.clock(), data))


@contextmanager
def session_with(far: FarEnd, *, ptime: int = 20, rtcp_mux: bool = True,
                 symmetric_rtp: bool = True, rtcp_sock: socket.socket | None = None,
                 remote_rtcp_port: int | None = None, muted: bool = False,
                 mic: np.ndarray | None = None) -> Iterator[tuple[MediaSession,
                                                                  MemoryAudio]]:
    clock = far.clock
    sock = udp_socket()
    audio = MemoryAudio(np.zeros(8000 * 20, np.int16) if mic is None else mic, clock)
    media = NegotiatedMedia(remote_address="127.0.0.1", remote_port=far.port(0),
                            local_port=sock.getsockname()[1], codec=PCMU,
                            telephone_event_pt=101, ptime=ptime,
                            direction=Direction.SENDRECV, rtcp_mux=rtcp_mux,
                            remote_rtcp_port=remote_rtcp_port)
    events: list[dict[str, object]] = []
    s = MediaSession(media, sock, audio, rng=random.Random(5), clock=clock,
                     wallclock=clock.wall, on_event=events.append, rtcp_sock=rtcp_sock,
                     options=MediaOptions(symmetric_rtp=symmetric_rtp), muted=muted,
                     arrival_times=lambda s: ArrivalTimes(s, speed=clock.speed))
    s.events = events  # type: ignore[attr-defined]
    far.start(("127.0.0.1", sock.getsockname()[1]))
    s.start()
    try:
        yield s, audio
    finally:
        s.stop()
        far.stop()
        sock.close()
    assert s.error is None, s.error


def drain(sock: socket.socket) -> list[bytes]:
    """Every datagram waiting on ``sock`` (non-blocking or with a short timeout)."""
    out = []
    while True:
        try:
            out.append(sock.recv(2048))
        except OSError:  # TimeoutError, BlockingIOError: nothing more
            return out


def run_for(seconds: float) -> None:
    time.sleep(seconds / SPEED)


def rtp_to(far: FarEnd, i: int, since: float = 0.0, pt: int | None = None) -> list[bytes]:
    """Our RTP packets that reached the far end's socket ``i`` after ``since``."""
    out = [d for t, d in far.received[i] if t >= since and len(d) >= 12
           and not 192 <= d[1] <= 223]
    return [d for d in out if pt is None or d[1] & 0x7F == pt]


# ---------------------------------------------------------------------------- sources


@pytest.mark.parametrize("natted", [False, True])
def test_a_strangers_packet_first_does_not_steal_the_call(natted: bool) -> None:
    """A stray datagram (a port scan, the last packet of an earlier call) that lands
    before the peer's first. Garbage never moves our stream; a stray RTP packet may, until
    the peer's stream shows: at once from its SDP address, or behind a NAT (from another
    port) once it has streamed 80 ms while the stranger said nothing more."""
    far = FarEnd(ScaledClock(SPEED))
    stranger = udp_socket()
    stranger.setblocking(False)
    with session_with(far) as (s, _):
        stray = struct.pack("!BBHII", 0x80, 0, 1, 1, 0xBAD) + bytes(160)
        stranger.sendto(b"garbage", ("127.0.0.1", s.media.local_port))
        stranger.sendto(stray, ("127.0.0.1", s.media.local_port))
        run_for(0.2)
        far.use = 1 if natted else 0
        far.sending.set()
        run_for(1.5)
        stats = s.stats()
    got = len(drain(stranger))
    stranger.close()
    assert stats["rx_packets"] >= 50, stats
    assert stats["remote"] == f"127.0.0.1:{far.port(far.use)}", stats
    assert len(rtp_to(far, far.use)) >= 50
    assert got <= 20, got  # the stranger had our stream for 0.2 s + 80 ms at most


def test_nat_rebinding_with_the_same_ssrc_moves_our_stream() -> None:
    far = FarEnd(ScaledClock(SPEED))
    with session_with(far) as (s, _):
        far.sending.set()
        run_for(1.0)
        far.use = 1  # the NAT gave the far end a new public port
        moved_at = far.clock()
        run_for(2.5)
        stats = s.stats()
    assert stats["remote"] == f"127.0.0.1:{far.port(1)}", stats
    arrived = rtp_to(far, 1, since=moved_at)
    assert len(arrived) >= 50  # within about a second our packets follow it there
    assert stats["rx_lost"] == 0 and stats["rx_filtered"] <= 60, stats


def test_nat_rebinding_with_a_new_ssrc_moves_our_stream() -> None:
    far = FarEnd(ScaledClock(SPEED))
    with session_with(far) as (s, _):
        far.sending.set()
        run_for(1.0)
        far.use, far.ssrc = 1, 0xD1FF  # a new port, and a restarted stack's new SSRC
        moved_at = far.clock()
        run_for(2.0)
        stats = s.stats()
    assert stats["remote"] == f"127.0.0.1:{far.port(1)}", stats
    assert len(rtp_to(far, 1, since=moved_at)) >= 50


def test_without_symmetric_rtp_only_the_sdp_address_counts() -> None:
    far = FarEnd(ScaledClock(SPEED))
    with session_with(far, symmetric_rtp=False) as (s, _):
        far.use = 1  # never from the address in its SDP
        far.sending.set()
        run_for(1.0)
        stats = s.stats()
    assert stats["rx_packets"] == 0 and stats["rx_filtered"] >= 40, stats
    assert stats["remote"] == f"127.0.0.1:{far.port(0)}"


def test_rtcp_without_mux_follows_the_peers_rtcp_and_ignores_a_strangers() -> None:
    """Behind a NAT the peer's RTP and RTCP come from ports its SDP did not name. Our
    reports go where its reports come from; a BYE from anywhere else is not its BYE."""
    far = FarEnd(ScaledClock(SPEED))
    rtcp = udp_socket()
    far_rtcp = udp_socket()  # the peer's RTCP port, as its NAT maps it
    far_rtcp.settimeout(0.05)
    stranger = udp_socket()
    with session_with(far, rtcp_mux=False, rtcp_sock=rtcp,
                      remote_rtcp_port=far.port(0) + 1) as (s, _):
        far.use = 1  # RTP from elsewhere than the SDP said
        far.sending.set()
        run_for(0.5)
        rr = struct.pack("!BBHI", 0x80, 201, 1, far.ssrc)  # an RR with no report block
        far_rtcp.sendto(rr, rtcp.getsockname())
        run_for(0.2)
        bye = struct.pack("!BBHI", 0x81, 203, 1, far.ssrc)  # a BYE naming the peer's SSRC
        stranger.sendto(bye, rtcp.getsockname())
        run_for(7.0)  # RTCP reports every ~5 s
        events = list(s.events)  # type: ignore[attr-defined]
        stats = s.stats()
    reports = drain(far_rtcp)
    for sock in (stranger, rtcp, far_rtcp):
        sock.close()
    assert any(200 <= d[1] <= 201 for d in reports), "no RTCP report reached the peer"
    assert {"event": "rtcp_bye"} not in events
    assert stats["rx_filtered"] >= 1, stats


def test_rtcp_follows_the_peer_when_its_nat_binding_moves() -> None:
    """The peer's RTP moved to a new port (same SSRC): its RTCP comes from a new port
    too, and must be taken and answered there, not filtered as a stranger's."""
    far = FarEnd(ScaledClock(SPEED))
    rtcp = udp_socket()
    old_rtcp, new_rtcp = udp_socket(), udp_socket()
    new_rtcp.settimeout(0.05)
    rr = struct.pack("!BBHI", 0x80, 201, 1, far.ssrc)
    with session_with(far, rtcp_mux=False, rtcp_sock=rtcp,
                      remote_rtcp_port=far.port(0) + 1) as (s, _):
        far.sending.set()
        run_for(0.5)
        old_rtcp.sendto(rr, rtcp.getsockname())  # latches our RTCP onto old_rtcp
        run_for(0.5)
        far.use = 1  # the NAT rebinding: RTP from a new port...
        run_for(1.0)
        new_rtcp.sendto(rr, rtcp.getsockname())  # ... and RTCP from another new one
        run_for(7.0)
        filtered = s.stats()["rx_filtered"]
    reports = drain(new_rtcp)
    for sock in (rtcp, old_rtcp, new_rtcp):
        sock.close()
    assert any(200 <= d[1] <= 201 for d in reports), "our RTCP stayed on the old binding"
    assert filtered <= 30, filtered  # the peer's new RTCP was not taken for a stranger's


def test_a_muted_start_sends_not_one_frame_of_the_room() -> None:
    """Early media: the session starts muted, so even its first packet is silence."""
    far = FarEnd(ScaledClock(SPEED))
    t = np.arange(8000 * 20) / 8000
    mic = (8000 * np.sin(2 * np.pi * 700 * t)).astype(np.int16)
    with session_with(far, muted=True, mic=mic) as (s, _):
        run_for(0.5)
        s.mute(False)
        run_for(0.5)
    sent = rtp_to(far, 0, pt=0)
    assert len(sent) >= 40
    silent = [d[12:] == ulaw_encode(np.zeros(160, np.int16)) for d in sent]
    assert all(silent[:20]), silent[:25]  # nothing of the mic before the unmute
    assert not any(silent[-10:])  # and the mic after it


def test_the_stream_an_sdp_change_left_does_not_take_it_back() -> None:
    """A re-INVITE (or another fork's answer) names a new address; the old stream's
    packets keep coming for a while: we stay on the new address, silent or not."""
    clock = ScaledClock(SPEED)
    far = FarEnd(clock)
    with session_with(far) as (s, _):
        far.sending.set()
        run_for(0.5)
        new = udp_socket()
        moved = NegotiatedMedia(remote_address="127.0.0.1", remote_port=new.getsockname()[1],
                                local_port=s.media.local_port, codec=PCMU,
                                telephone_event_pt=101, ptime=20,
                                direction=Direction.SENDRECV, rtcp_mux=True)
        s.update(moved)
        run_for(1.0)  # the old stream goes on; the new address has sent nothing yet
        stats = s.stats()
        new.close()
    assert stats["remote"] == f"127.0.0.1:{moved.remote_port}", stats


# ------------------------------------------------------------------------------- DTMF


def test_a_malformed_dtmf_packet_is_counted_not_fatal() -> None:
    far = FarEnd(ScaledClock(SPEED))
    with session_with(far) as (s, _):
        far.sending.set()
        run_for(0.5)
        far.extra += [far.packet(pt=101, payload=b""), far.packet(pt=101, payload=b"\x01\x80")]
        run_for(1.0)
        stats = s.stats()
        assert s.running
    assert stats["rx_invalid"] >= 2, stats
    assert stats["rx_packets"] >= 60, stats


@pytest.mark.parametrize("ptime", [10, 20, 40])
def test_dtmf_on_the_wire_whatever_the_ptime(ptime: int) -> None:
    """RFC 4733 §2.5.1: one timestamp (the event's start), marker on the first packet,
    the duration growing with the time sent, the end packet three times with the
    digit's whole duration; and the digit lasts that long in real (RTP) time."""
    far = FarEnd(ScaledClock(SPEED))
    with session_with(far, ptime=ptime) as (s, _):
        far.sending.set()
        run_for(0.5)
        s.send_dtmf("5", 100)
        run_for(1.0)
    events = rtp_to(far, 0, pt=101)
    heads = [HEADER.unpack_from(d) for d in events]
    fields = [EVENT.unpack_from(d, 12) for d in events]
    assert {f[0] for f in fields} == {5}
    assert len({h[3] for h in heads}) == 1  # one timestamp
    assert [bool(h[1] & 0x80) for h in heads] == [True] + [False] * (len(heads) - 1)
    ends = [f for f in fields if f[1] & 0x80]
    assert len(ends) == 3 and {f[2] for f in ends} == {800}  # 100 ms at 8 kHz
    durations = [f[2] for f in fields if not f[1] & 0x80]
    assert durations == sorted(durations) and durations[-1] < 800
    # the duration field says how much of the digit has been sent: packets go out
    # once per 20 ms turn, so it grows by 160 a packet
    assert all(b - a == 160 for a, b in zip(durations[:-1], durations[1:], strict=True))


def test_dtmf_packets_do_not_count_as_jitter() -> None:
    far = FarEnd(ScaledClock(SPEED))
    with session_with(far) as (s, _):
        far.sending.set()
        run_for(1.0)
        start = far.ts
        for i, dur in enumerate((160, 320, 480, 640, 800, 800, 800)):
            end = 0x80 if dur == 800 and i >= 4 else 0
            far.extra.append(far.packet(pt=101, payload=EVENT.pack(1, end | 10, dur),
                                        marker=i == 0, ts=start))
            run_for(0.02)
        run_for(1.0)
        stats = s.stats()
        events = list(s.events)  # type: ignore[attr-defined]
    assert [e["digit"] for e in events if e.get("event") == "dtmf"] == ["1"]
    # one digit's packets counted as audio added ~15 ms; the far end's own sending is
    # a thread of this test, and a loaded CI machine gave it 2.6 ms of jitter unaided
    assert stats["jitter_ms"] < 6.0, stats


def test_a_digit_whose_end_packets_were_lost_is_reported_all_the_same() -> None:
    far = FarEnd(ScaledClock(SPEED))
    with session_with(far) as (s, _):
        far.sending.set()
        run_for(0.5)
        start = far.ts
        for i, dur in enumerate((160, 320, 480)):  # the end packets never come
            far.extra.append(far.packet(pt=101, payload=EVENT.pack(11, 10, dur),
                                        marker=i == 0, ts=start))
            run_for(0.02)
        run_for(1.0)  # the audio goes on; no other digit follows
        events = list(s.events)  # type: ignore[attr-defined]
    assert [e["digit"] for e in events if e.get("event") == "dtmf"] == ["#"]


# ------------------------------------------------------------------------------ stats


def test_stats_have_every_field_from_the_start() -> None:
    far = FarEnd(ScaledClock(SPEED))
    with session_with(far) as (s, _):
        run_for(0.06)  # a few frames: well before the twice-a-second snapshot
        first = s.stats()
    assert set(first) >= REQUIRED_STATS, first


def test_a_flood_does_not_starve_playout() -> None:
    """Thousands of packets a turn (a flood, or a storm of a stranger's): the loop reads
    a bounded number each turn, so it still plays and sends every 20 ms."""
    far = FarEnd(ScaledClock(SPEED))
    flood = udp_socket()
    stop = threading.Event()

    def blast() -> None:
        junk = struct.pack("!BBHII", 0x80, 0, 1, 1, 0xBAD) + bytes(160)
        while not stop.is_set():
            for _ in range(200):
                flood.sendto(junk, ("127.0.0.1", port))

    with session_with(far) as (s, audio):
        port = s.media.local_port
        far.sending.set()
        run_for(0.5)
        t = threading.Thread(target=blast, daemon=True)
        t.start()
        before = len(audio.played)
        run_for(1.0)
        played = len(audio.played) - before
        stop.set()
        t.join(2)
    flood.close()
    assert played >= 40, played  # ~50 frames a second, flood or not
