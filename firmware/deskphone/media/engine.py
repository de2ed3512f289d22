"""The media thread: one per call, paced by the sound device's clock.

Theory of operation
-------------------
Each turn of the loop is one 20 ms frame:

    mic = audio.read()          blocks until the card (or its Pacer) has a frame
    drain the RTP socket        non-blocking; filter by source; RTCP on the side
    play = jitter buffer -> decode -> concealment       (or a local tone)
    audio.write(play)
    send mic (or DTMF events) as RTP, once ptime worth of samples is queued
    RTCP report when due

A packet's arrival time (for RFC 3550 jitter and for the jitter buffer) is when
the kernel received it (``transport.rtp.ArrivalTimes``), not when the loop read
it: read once a frame, a steady stream landing near the loop's tick would look
like 20 ms of jitter, and the buffer would hold a frame more than it needs. RTCP
too (on either socket): the round trip (RFC 3550 §6.4.1) counts from when the
peer's report came, and the DLSR we report from when its SR came, or each side
adds up to a turn (20 ms) to the round trip.

RFC 4733 events (received DTMF) take sequence numbers of the peer's stream:
``ReceiveStats`` (RFC 3550 A.1: every packet of the source, not in the jitter)
and the jitter buffer account them, so a digit is no loss. Most senders send
them instead of audio: those frames are the sender's silence and play as such
(what sounded fades out in 4 ms), not concealed, for PLC would make up 60 ms of
the voice from before the key press at every digit.

The control plane (the asyncio loop) talks to the thread only through a
queue of commands (update, mute, hold, dtmf, tone, stop) and reads ``stats()``,
a dict the thread replaces whole twice a second and as it ends. Events the
thread finds (DTMF digits, the far end's RTCP BYE) go out through ``on_event``,
which the app points at ``loop.call_soon_threadsafe``.

Cost. The thread sleeps ~20 ms between turns and wakes to cold caches, where a
numpy call costs 10-15 µs and each new code path a few µs: on the budget of a
desk phone (and against pyVoIP in bench/media_cpu.py) that is what a turn's cost
is made of. So the usual turn takes a fast path of few C calls and no numpy: one
poll, one recvfrom_into, the kernel's arrival stamp read inline (one ioctl, from
``ArrivalTimes``' parts: calling it costs more than the ioctl), the header
unpacked in place, the jitter buffer's and ReceiveStats' in-order paths, G.711
in one C call each way (g711.py), the concealer keeping history by reference
(plc.py), header packed in place, one sendto. Every packet is read with its source
address (CPython formats it into a new str with inet_ntop, a few µs): a packet is the
peer's by where it comes from, never by the SSRC it claims, which anyone can copy.
Anything unusual leaves the fast path for the general code, which does the same as
before it.

Sources (``_accept_source``). A packet is taken only from the peer: the SDP's address
(its IP and port), or the one source symmetric RTP latched onto. With symmetric RTP
(the default, for peers behind NAT) that latch is made once, by valid RTP of a
negotiated payload type (garbage or a port scan's probe never makes it): on the SDP's
address, or on another port of the SDP's IP within ``_NAT_WINDOW`` s of the SDP taking
effect (a NAT that rewrote the port); the SDP's address, should it show later, takes
our stream back from such a latch. A stranger elsewhere is never played and never sent
to, whether it sends first, while the peer is silent, or with the peer's SSRC. Packets
alone never move a latched stream, unless ``follow_source`` (``[sip]
rtp_follow_source``, a NAT lab): then a new source is followed once the old one has
been silent ``_FOLLOW_SILENCE`` s and the new one has streamed steadily, with one SSRC,
for ``_FOLLOW_STEADY`` s. The source an SDP change left never takes the stream back.
Everything else is dropped and counted as ``rx_filtered``. RTCP is taken from the peer
only (its RTP source with rtcp-mux; else the SDP's RTCP address or, once its RTP is
heard, any port of its host, and then the port its RTCP comes from, where ours then
goes, learnt again whenever RTP moves).

The SDP's address must be an IP address: a name in ``c=`` is refused with a
``media_error`` (``_peer_address`` says why).

Nothing that can be allocated once is allocated per frame: the packet buffer,
the receive buffer and the decode buffers live for the session.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
import select
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..sdp import NegotiatedMedia
from ..transport.rtp import ArrivalTimes
from . import rtcp as rtcp_mod
from .audio.base import AudioBackend, Pcm
from .dtmf import DtmfDigit, DtmfReceiver, DtmfSender
from .g711 import CODECS, Codec
from .jitterbuffer import FrameKind, JitterBuffer
from .plc import Concealer
from .rtp import HEADER_SIZE, ReceiveStats, RtpPacket, RtpSender
from .tones import ToneGenerator, ToneSpec

log = logging.getLogger(__name__)

RATE = 8000
_HEADER = struct.Struct("!BBHII")
# G.711's A-law <-> µ-law conversion (the G.711 tables' effect: decode, re-encode),
# so a peer that sends the other law than it negotiated (SIPp's pcap player does;
# both are in our SDP, so RFC 3264 lets it) still plays.
_ALL = bytes(range(256))
_A_TO_U = CODECS["PCMU"].encode(CODECS["PCMA"].decode(_ALL))
_U_TO_A = CODECS["PCMA"].encode(CODECS["PCMU"].decode(_ALL))
FRAME = 160  # samples per loop turn: 20 ms
# Sources (_accept_source): a port of the SDP's IP other than its own is the peer's NAT
# only this soon after the SDP took effect (the peer's first packets come within a
# round trip of its answer or of ours)
_NAT_WINDOW = 0.5
# with follow_source: the latched source's silence, then the new source's steady stream
# (no gap longer than _STEADY_GAP, above the longest ptime with some jitter), before
# the new one is followed
_FOLLOW_SILENCE = 3.0
_FOLLOW_STEADY = 0.5
_STEADY_GAP = 0.2
_DTMF_SILENT = 0.2  # s without a packet of a digit before it is taken as ended
# packets read per turn at most: 20 ms of a 10 ms-ptime stream with DTMF beside it is 4;
# a backlog after a stall drains in a few turns, and a flood cannot stop playout
_MAX_READS = 32


class Cmd(enum.Enum):
    UPDATE = "update"
    MUTE = "mute"
    HOLD = "hold"
    DTMF = "dtmf"
    TONE = "tone"
    STOP = "stop"


@dataclass(frozen=True, slots=True)
class MediaOptions:
    symmetric_rtp: bool = True  # send to where the peer's RTP comes from (NAT)
    # follow the peer to a new source mid-call on its packets alone, after the old one's
    # silence (a NAT lab whose bindings move); off, only an SDP change moves the stream
    follow_source: bool = False
    jitter_min_ms: int = 20
    jitter_max_ms: int = 200
    cname: str = "deskphone"


class MediaSession:
    """RTP/RTCP for one call between a UDP socket pair and an audio backend."""

    def __init__(self, media: NegotiatedMedia, rtp_sock: socket.socket,
                 audio: AudioBackend, *, rng: Any, rtcp_sock: socket.socket | None = None,
                 options: MediaOptions = MediaOptions(),
                 on_event: Callable[[dict[str, Any]], None] = lambda e: None,
                 clock: Callable[[], float] = time.monotonic,
                 wallclock: Callable[[], float] = time.time,
                 arrival_times: Callable[[socket.socket], ArrivalTimes] = ArrivalTimes,
                 muted: bool = False) -> None:
        """``muted``: start with the microphone off (early media: nothing of the room goes
        out before the call is answered, not even the first frame)."""
        self.media = media
        self._sock = rtp_sock
        self._rtcp_sock = rtcp_sock
        self._audio = audio
        self._rng = rng
        self._opt = options
        self._on_event = on_event
        self._clock = clock
        self._wall = wallclock
        # when the packet just read came (``clock``'s time), from its kernel stamp
        self._arrival = arrival_times(rtp_sock)
        self._rtcp_arrival = arrival_times(rtcp_sock) if rtcp_sock is not None else None
        # commands for the thread: a deque, whose emptiness the loop checks every frame
        # for the price of a truth test (append and popleft are atomic)
        self._cmds: deque[tuple[Cmd, Any]] = deque()
        self._thread: threading.Thread | None = None
        self._stats: dict[str, Any] = {"codec": media.codec.encoding}
        self.error: BaseException | None = None
        # the thread's state that commands change
        self._held = self._dtmf_busy = False
        self._muted = muted
        # where the peer is (_setup, _accept_source): the SDP's addresses, and where our
        # RTP and RTCP go; empty until the thread's first _setup
        self._sdp_remote: tuple[str, int] = ("", 0)
        self._sdp_rtcp: tuple[str, int] = ("", 0)
        self._remote: tuple[str, int] = ("", 0)
        self._rtcp_remote: tuple[str, int] = ("", 0)
        self._rtcp_latched = False  # _rtcp_remote is where the peer's RTCP comes from
        self._latched = False  # _remote is where the peer's RTP comes from
        self._peer_ssrc: int | None = None  # the peer's audio SSRC, once seen from _remote
        # the source and SSRC of the stream an SDP change left
        self._left: tuple[tuple[str, int] | None, int | None] = (None, None)
        self._nat_until = 0.0  # until when a port of the SDP's IP may be latched onto
        self._heard = 0.0  # when _remote was last heard off the fast path (or the SDP came)
        # with follow_source, a new source not yet followed: (addr, ssrc, its first
        # packet's arrival, its last's)
        self._candidate: tuple[tuple[str, int], int, float, float] | None = None
        self._tone: ToneGenerator | None = None
        self._fifo_n = 0
        self._n = {"rx": 0, "rx_bad": 0, "rx_filtered": 0}  # counts off the fast path

    # --------------------------------------------------------- control plane

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="media", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._cmds.append((Cmd.STOP, None))
        if self._thread is not None:
            self._thread.join(timeout)

    def update(self, media: NegotiatedMedia) -> None:
        self._cmds.append((Cmd.UPDATE, media))

    def mute(self, on: bool) -> None:
        self._cmds.append((Cmd.MUTE, on))

    def hold(self, on: bool) -> None:
        self._cmds.append((Cmd.HOLD, on))

    def send_dtmf(self, digits: str, duration_ms: int = 100) -> None:
        self._cmds.append((Cmd.DTMF, (digits, duration_ms)))

    def play_tone(self, spec: ToneSpec | None) -> None:
        """Play a local tone instead of the far end (None: back to the far end)."""
        self._cmds.append((Cmd.TONE, spec))

    def stats(self) -> dict[str, Any]:
        return dict(self._stats)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------ the thread

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as e:  # the call goes on without audio; say why
            self.error = e
            log.exception("media thread failed")
            self._on_event({"event": "media_error", "error": f"{type(e).__name__}: {e}"})

    def _setup(self, media: NegotiatedMedia) -> None:
        # what the session cannot do ends it (a media_error), before anything changes
        sdp_remote = _peer_address(media.remote_address, media.remote_port, self._sock.family)
        codec = CODECS.get(media.codec.encoding.upper())
        if codec is None:
            raise ValueError(f"no codec for {media.codec.encoding}")
        self.media = media
        old: Codec | None = getattr(self, "_codec", None)
        held: JitterBuffer | None = getattr(self, "_jb", None)
        if old is not None and held is not None and old.name != codec.name:
            # a re-INVITE changed the law: what the buffer holds is in the old one
            held.recode(_U_TO_A if codec.name == "PCMA" else _A_TO_U)
        self._codec: Codec = codec
        self._pt = media.codec.payload_type
        self._dtmf_pt = media.telephone_event_pt
        # static G.711 payload types we take besides our own codec, translated to it
        other = 8 if codec.name == "PCMU" else 0
        self._translate = {other: _A_TO_U if codec.name == "PCMU" else _U_TO_A}
        self._ptime_samples = max(80, min(480, media.ptime * 8))
        sdp_rtcp = (sdp_remote[0], media.remote_rtcp_port or media.remote_port + 1)
        if self._sdp_remote == sdp_remote:
            # a re-INVITE that moved no RTP (hold, resume): keep what we learnt
            if sdp_rtcp != self._sdp_rtcp:
                self._sdp_rtcp = sdp_rtcp
                if not self._rtcp_latched:
                    self._rtcp_remote = (self._remote[0], sdp_rtcp[1])
            return
        # the stream we leave (another fork's early media, the peer before its re-INVITE)
        # must not take the new one's NAT latch with its stragglers (on the first setup:
        # nothing, an address and SSRC no packet has)
        self._left = (self._remote, self._peer_ssrc)
        self._sdp_remote = sdp_remote
        self._sdp_rtcp = sdp_rtcp
        self._remote = sdp_remote  # where our RTP goes: the SDP's, or where theirs comes from
        self._rtcp_remote = sdp_rtcp  # where our RTCP goes (without rtcp-mux)
        self._rtcp_latched = False
        self._latched = not self._opt.symmetric_rtp
        self._peer_ssrc = None
        self._heard = now = self._clock()
        self._nat_until = now + _NAT_WINDOW
        self._candidate = None

    def _loop(self) -> None:
        opt = self._opt
        self._setup(self.media)
        sock = self._sock
        sock.setblocking(False)
        rtcp_sock = self._rtcp_sock
        if rtcp_sock is not None:
            rtcp_sock.setblocking(False)
        sender = RtpSender(self._pt, self._rng)
        rx = ReceiveStats(RATE)
        jb = JitterBuffer(clock_rate=RATE, frame_samples=FRAME, min_delay_ms=opt.jitter_min_ms,
                          max_delay_ms=opt.jitter_max_ms)
        plc = Concealer(FRAME)
        # one event packet per turn of the loop, whatever the audio's ptime
        dtmf_tx = DtmfSender(RATE, FRAME * 1000 // RATE)
        dtmf_rx = DtmfReceiver(RATE)
        # RTCP runs on the monotonic clock; the wall clock only stamps our SRs (rtcp.py)
        rtcp = rtcp_mod.RtcpState(sender.ssrc, opt.cname, self._rng, self._clock())
        self._rtcp, self._dtmf_rx, self._rx, self._jb = rtcp, dtmf_rx, rx, jb
        self._dtmf_heard = 0.0  # when the last telephone-event packet came
        self._publish(sender, 0, 0)  # every field from the start
        out_buf = bytearray(HEADER_SIZE + 480)
        out_view = np.frombuffer(out_buf, dtype=np.uint8)
        packet_view = memoryview(out_buf)[:HEADER_SIZE + FRAME]  # a 20 ms packet
        recv_buf = bytearray(2048)
        self._fifo = np.zeros(FRAME * 4, np.int16)  # mic samples waiting for a whole ptime
        self._fifo_n = 0
        silence = np.zeros(FRAME, np.int16)
        n_rx = 0  # packets taken on the fast path; the rest are counted in self._n
        n_concealed = 0
        frames = 0
        # when the RTCP report falls due, on the monotonic clock (checked every frame)
        rtcp_at = rtcp.next_report_at
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        rtp_fd = sock.fileno()
        if rtcp_sock is not None:
            poller.register(rtcp_sock, select.POLLIN)

        # Names the loop uses, bound once: each turn runs on caches gone cold in the 20 ms
        # sleep, where every lookup and call costs several times what it does in a hot loop.
        cmds = self._cmds
        read, write = self._audio.read, self._audio.write
        clock = self._clock
        poll = poller.poll
        recv_from = sock.recvfrom_into
        arrived = self._arrival
        # arrived(now)'s parts, for the fast path to do it inline (ArrivalTimes)
        stamp, stamp_buf, unstamp = arrived.stamp, arrived.buf, arrived.unpack
        realtime, speed = arrived.wall, arrived.speed
        sendto = sock.sendto
        unpack = _HEADER.unpack_from
        rx_update = rx.update_fields
        jb_put, jb_pop = jb.put, jb.pop
        good_decoded, lost, quiet = plc.good_decoded, plc.lost, plc.silence
        header_into = sender.header_into
        missing = FrameKind.MISSING
        reads_per_turn = range(_MAX_READS)
        # what commands (and, for remote, symmetric RTP) change: refreshed after them
        fast_pt, decode_octets, encode, fast_send, muted, tone = self._hot()
        source, remote, peer_ssrc = self._rx_hot()
        arrival = 0.0  # of the last packet the fast path took: when the peer was heard

        self._audio.start()
        try:
            while True:
                # -- commands from the control plane
                if cmds:
                    if self._commands(dtmf_tx, sender):
                        break
                    fast_pt, decode_octets, encode, fast_send, muted, tone = self._hot()
                    source, remote, peer_ssrc = self._rx_hot()

                mic = read()  # the clock
                now = clock()

                # -- receive everything that is waiting; poll first, so that an empty
                # socket costs no exception. Each packet is read with its source: a
                # packet is the peer's by where it comes from (a stranger can copy the
                # peer's SSRC, not its address short of spoofing it). The poll that finds
                # the socket empty costs ~2 µs (the path is warm by then); reading first
                # when a packet is due instead of polling saved nothing measurable: the
                # cold first syscall's cost moved to the recv.
                for _ in reads_per_turn:  # bounded: a flood must not starve playout
                    ready = poll(0)
                    if not ready:
                        break
                    if rtcp_sock is not None and (len(ready) > 1 or ready[0][0] != rtp_fd):
                        self._drain_rtcp(rtcp)  # our RTCP port (no rtcp-mux)
                        if len(ready) == 1:
                            break
                    try:
                        size, addr = recv_from(recv_buf)
                    except OSError as e:  # ICMP unreachable from a previous send
                        log.debug("RTP socket: %s", e)
                        break
                    if size > HEADER_SIZE:
                        b0, b1, seq, ts, ssrc = unpack(recv_buf)
                        if (b0 == 0x80 and b1 == fast_pt and ssrc == peer_ssrc
                                and addr == source):
                            # the usual packet: ours, no marker, padding, extension or
                            # CSRCs, our codec; its header read in place
                            n_rx += 1
                            # arrived(now), inline: on cold caches the call of a Python
                            # __call__ costs more than the ioctl it makes
                            try:
                                stamp()
                                sec, usec = unstamp(stamp_buf)
                                age = realtime() - (sec + usec * 1e-6)
                                arrival = now - age * speed if 0.0 < age < 1.0 else now
                            except OSError:  # no stamp yet
                                arrival = now
                            rx_update(seq, ts, ssrc, arrival * RATE)
                            jb_put(seq, ts, ssrc, False, recv_buf[HEADER_SIZE:size], arrival)
                            continue
                    self._receive(recv_buf, size, addr, arrived(now), arrival)
                    source, remote, peer_ssrc = self._rx_hot()

                # -- playout
                payload = jb_pop(now)
                if payload is None:
                    if jb.kind is missing:
                        # conceal into the next frame held, if any (plc.py: look-ahead)
                        ahead = jb.peek()
                        play = (lost() if ahead is None
                                else plc.lost_decoded(decode_octets, *ahead))
                        n_concealed += 1
                    else:  # no stream yet, a gap, a digit: what sounded fades out
                        play = quiet()
                elif len(payload) == FRAME:
                    play = good_decoded(decode_octets, payload)
                else:
                    play = silence
                if tone is not None:
                    play = tone.read(FRAME)
                write(play)

                # -- send
                if fast_send:
                    # the common case, 20 ms packets
                    out_buf[HEADER_SIZE:HEADER_SIZE + FRAME] = encode(silence if muted else mic)
                    header_into(out_buf, FRAME, FRAME)
                    try:
                        sendto(packet_view, remote)
                    except OSError as e:  # unreachable, no route: the call goes on
                        log.debug("RTP send to %s: %s", remote, e)
                else:
                    fast_send = self._send_other(mic, silence, sender, dtmf_tx, out_buf,
                                                 out_view)

                # -- RTCP: dated as it leaves, not at the turn's start (the round trip
                # the peer works out counts from then)
                if now >= rtcp_at:
                    self._send_rtcp(rtcp.build_report(
                        clock(), wall=self._wall(), packets_sent=sender.packets_sent,
                        octets_sent=sender.octets_sent, rtp_timestamp=sender.timestamp,
                        stats=rx if rx.valid else None))
                    rtcp_at = rtcp.next_report_at

                frames += 1
                if frames % 25:  # the snapshot is for people: twice a second is plenty
                    continue
                self._publish(sender, n_rx, n_concealed)
        finally:
            try:
                self._publish(sender, n_rx, n_concealed)  # the call's last word
                self._send_rtcp(rtcp.build_bye(self._clock(), wall=self._wall(),
                                               packets_sent=sender.packets_sent,
                                               octets_sent=sender.octets_sent,
                                               rtp_timestamp=sender.timestamp,
                                               stats=rx if rx.valid else None))
            finally:
                self._audio.stop()

    def _hot(self) -> tuple[int, Callable[[bytes | bytearray, memoryview], None],
                            Callable[[Pcm], bytes], bool, bool, ToneGenerator | None]:
        """The state the loop keeps in local names, after a command may have changed it:
        the payload type the receive fast path takes, the codec, whether sending takes the
        fast path, mute, the local tone."""
        pt = self._pt
        # with rtcp-mux, payload types 64..95 could be RTCP (RFC 5761 §4): no fast path
        fast_pt = -1 if self.media.rtcp_mux and 64 <= pt <= 95 else pt
        fast_send = (self.media.sends and not self._held and self._ptime_samples == FRAME
                     and not self._dtmf_busy and not self._fifo_n)
        return (fast_pt, self._codec.decode_octets_into, self._codec.encode, fast_send,
                self._muted, self._tone)

    def _rx_hot(self) -> tuple[tuple[str, int] | None, tuple[str, int], int | None]:
        """The receive state the loop keeps in local names: the source whose packets the
        fast path takes (none until symmetric RTP latched: ``_accept_source`` sees those
        packets), where to send, and the peer's SSRC."""
        return (self._remote if self._latched else None, self._remote, self._peer_ssrc)

    def _commands(self, dtmf_tx: DtmfSender, sender: RtpSender) -> bool:
        """Carry out the queued commands; True to stop."""
        stop = False
        cmds = self._cmds
        while cmds:
            cmd, arg = cmds.popleft()
            if cmd is Cmd.STOP:
                stop = True
            elif cmd is Cmd.UPDATE:
                self._setup(arg)
                sender.payload_type = self._pt
            elif cmd is Cmd.MUTE:
                self._muted = bool(arg)
            elif cmd is Cmd.HOLD:
                self._held = bool(arg)
            elif cmd is Cmd.DTMF:
                digits, dur = arg
                if self._dtmf_pt is not None:
                    for d in digits:
                        dtmf_tx.start(d, sender.timestamp, dur)
                    self._dtmf_busy = dtmf_tx.busy
            elif cmd is Cmd.TONE:
                self._tone = ToneGenerator(arg, RATE) if arg is not None else None
        return stop

    def _receive(self, buf: bytearray, size: int, addr: tuple[str, int], arrival: float,
                 fast_heard: float) -> None:
        """Every packet the loop's fast path does not take: RTCP on a muxed port, other
        sources, marker bits, header extensions, the other G.711 law, DTMF, garbage.
        ``fast_heard``: the arrival of the last packet the fast path took."""
        n = self._n
        data = memoryview(buf)[:size]
        if self.media.rtcp_mux and rtcp_mod.is_rtcp(data):
            self._on_rtcp(self._rtcp, bytes(data), addr, arrival)
            return
        rtp = size >= HEADER_SIZE and buf[0] >> 6 == 2
        ssrc: int = _HEADER.unpack_from(buf)[4] if rtp else -1  # -1: none
        pt = buf[1] & 0x7F if rtp else -1
        media_pt = rtp and (pt == self._pt or pt in self._translate or pt == self._dtmf_pt)
        if not self._accept_source(addr, ssrc, media_pt, arrival, fast_heard):
            n["rx_filtered"] += 1
            return
        if rtp and ((buf[1] & 0x7F) == self._pt or (buf[1] & 0x7F) in self._translate):
            self._peer_ssrc = ssrc  # its audio: what the loop reads without addresses
        if size > HEADER_SIZE and buf[0] == 0x80:
            # a plain header with a marker bit, or the other G.711 law (SIPp's pcap player
            # sends it): read in place
            _, mpt, seq, ts, ssrc = _HEADER.unpack_from(buf)
            pt = mpt & 0x7F
            table = None if pt == self._pt else self._translate.get(pt)
            if pt == self._pt or table is not None:
                octets = buf[HEADER_SIZE:size]
                n["rx"] += 1
                self._rx.update_fields(seq, ts, ssrc, arrival * RATE)
                self._jb.put(seq, ts, ssrc, mpt > 0x7F,
                             octets if table is None else octets.translate(table), arrival)
                return
        try:
            pkt = RtpPacket.parse(data)
        except ValueError:
            n["rx_bad"] += 1
            return
        arrival_ts = arrival * RATE
        if pkt.payload_type == self._dtmf_pt:
            try:
                digits = self._dtmf_rx.feed(pkt.payload, pkt.timestamp, pkt.marker, pkt.ssrc)
            except ValueError:  # a malformed event: counted, like any invalid packet
                n["rx_bad"] += 1
                return
            self._dtmf_heard = arrival
            self._report_digits(digits)
            # its sequence number is the audio's stream's: counted (RFC 3550 A.1), and the
            # audio either side of it in sequence; not its timing (every packet of an event
            # carries the event's start timestamp, which the jitter would read as a stall)
            if self._rx.update_sequence(pkt.sequence_number, pkt.ssrc) is not None:
                n["rx"] += 1
            self._jb.put_event(pkt.sequence_number, pkt.timestamp, pkt.ssrc)
            return
        payload = pkt.payload
        if pkt.payload_type != self._pt:
            table = self._translate.get(pkt.payload_type)
            if table is None:
                n["rx_bad"] += 1
                return
            payload = payload.translate(table)
        n["rx"] += 1
        self._rx.update(pkt, arrival_ts)
        self._jb.put(pkt.sequence_number, pkt.timestamp, pkt.ssrc, pkt.marker, payload, arrival)

    def _send_other(self, mic: Pcm, silence: Pcm, sender: RtpSender, dtmf_tx: DtmfSender,
                    out_buf: bytearray, out_view: Any) -> bool:
        """Every send the loop's fast path does not make: DTMF events, hold, packets of
        other than 20 ms. Returns whether the next frame can take the fast path."""
        sends = self.media.sends and not self._held
        if self._dtmf_busy and sends:
            pkt_out = dtmf_tx.next_packet()
            if pkt_out is not None:
                payload, marker, ts = pkt_out
                out = sender.packet(payload, FRAME, marker, payload_type=self._dtmf_pt,
                                    timestamp=ts)
                self._send(out)
            else:
                sender.skip(FRAME)
            self._fifo_n = 0
            self._dtmf_busy = dtmf_tx.busy
        elif sends:
            fifo = self._fifo
            fifo_n = self._fifo_n
            fifo[fifo_n:fifo_n + FRAME] = silence if self._muted else mic
            fifo_n += FRAME
            ps = self._ptime_samples
            while fifo_n >= ps:
                self._codec.encode_into(fifo[:ps], out_view[HEADER_SIZE:HEADER_SIZE + ps])
                size = sender.header_into(out_buf, ps, ps)
                self._send(memoryview(out_buf)[:size])
                fifo[: fifo_n - ps] = fifo[ps:fifo_n]
                fifo_n -= ps
            self._fifo_n = fifo_n
        else:
            sender.skip(FRAME)
            self._fifo_n = 0
        return (sends and self._ptime_samples == FRAME and not self._dtmf_busy
                and not self._fifo_n)

    def _publish(self, sender: RtpSender, n_rx: int, n_concealed: int) -> None:
        """Replace the stats snapshot ``stats()`` hands out. Run twice a second, so also
        the place for what can wait that long: a DTMF digit whose end packets were all
        lost is reported once nothing of it came for ``_DTMF_SILENT`` s."""
        if (self._dtmf_rx.sounding is not None
                and self._clock() - self._dtmf_heard > _DTMF_SILENT):
            self._report_digits(self._dtmf_rx.end_lost())
        rx, jb, rtcp, n = self._rx, self._jb, self._rtcp, self._n
        jbs = jb.stats()
        self._stats = {
            "codec": self._codec.name,
            "tx_packets": sender.packets_sent,
            "rx_packets": n_rx + n["rx"],
            # distinct packets never received (RFC 3550's cumulative count
            # takes duplicates as received, hiding losses behind them)
            "rx_lost": max(0, rx.lost + rx.duplicates) if rx.valid else 0,
            "rx_late": int(jbs.get("late", 0)),
            "rx_duplicates": rx.duplicates,
            "rx_invalid": n["rx_bad"],
            "rx_filtered": n["rx_filtered"],
            "concealed_frames": n_concealed,
            "jitter_ms": round(rx.jitter_ms, 2) if rx.valid else 0.0,
            "rtt_ms": round(rtcp.rtt * 1000, 1) if rtcp.rtt is not None else None,
            "jitter_buffer_ms": round(float(jbs.get("delay_ms", 0.0)), 1),
            "remote": f"{self._remote[0]}:{self._remote[1]}",
            "muted": self._muted,
            "held": self._held,
        }

    # --------------------------------------------------------------- helpers

    def _accept_source(self, addr: tuple[str, int], ssrc: int, media: bool,
                       arrival: float, fast_heard: float) -> bool:
        """The source filter, and symmetric RTP: whether a packet is the peer's, and where
        the peer really sends from.

        Taken: packets from where we send, and from the SDP's address. With symmetric RTP
        (``[sip] symmetric_rtp``, a peer behind NAT) our stream latches, once, onto where
        the peer's comes from, and only for ``media`` (valid RTP of a negotiated payload
        type: never garbage or a port scan's stray): the SDP's address, or before any
        latch and within ``_NAT_WINDOW`` s of the SDP another port of the SDP's IP (a NAT
        that rewrote the port). The SDP's address takes the stream back from that latch:
        the signalling vouches for it. Packets from anywhere else never move the stream,
        unless ``follow_source`` (``_follow``); a stranger is never played, whenever it
        sends and whatever SSRC it copies.
        """
        addr = (addr[0], addr[1])
        if addr == self._remote:
            self._heard = arrival
            if media and not self._latched:
                self._latched = True
                self._candidate = None
            return True
        if not self._opt.symmetric_rtp or not media:
            return False
        if addr == self._sdp_remote:
            self._move(addr, arrival)
            return True
        if addr == self._left[0] or ssrc == self._left[1]:
            return False  # the stream an SDP change left (another fork, the old peer)
        if (not self._latched and arrival <= self._nat_until
                and addr[0] == self._sdp_remote[0]):
            self._move(addr, arrival)  # the peer, behind a NAT that rewrote its port
            return True
        if self._opt.follow_source:
            return self._follow(addr, ssrc, arrival, max(self._heard, fast_heard))
        return False

    def _follow(self, addr: tuple[str, int], ssrc: int, arrival: float,
                heard: float) -> bool:
        """``follow_source`` (a NAT lab whose bindings move): whether a new source takes
        the stream now. Only once where we are has been silent ``_FOLLOW_SILENCE`` s (since
        ``heard``: its last packet, or the SDP if it never sent) and the new source has
        streamed ``_FOLLOW_STEADY`` s with one SSRC and no gap over ``_STEADY_GAP``: a
        burst is not a stream, and nobody takes a call from a peer that is talking."""
        c = self._candidate
        if c is None or c[0] != addr or c[1] != ssrc or arrival - c[3] > _STEADY_GAP:
            c = (addr, ssrc, arrival, arrival)
        else:
            c = (addr, ssrc, c[2], arrival)
        if arrival - c[2] >= _FOLLOW_STEADY and arrival - heard >= _FOLLOW_SILENCE:
            self._move(addr, arrival)
            return True
        self._candidate = c
        return False

    def _move(self, addr: tuple[str, int], arrival: float) -> None:
        log.info("symmetric RTP: sending to %s:%d instead of %s:%d", addr[0], addr[1],
                 *self._remote)
        self._remote = addr
        self._latched = True
        self._heard = arrival
        self._peer_ssrc = None  # set again by its audio
        self._candidate = None
        # RTCP to the same host, until its own RTCP shows from where (it moved too)
        self._rtcp_remote = (addr[0], self._sdp_rtcp[1])
        self._rtcp_latched = False

    def _report_digits(self, digits: tuple[DtmfDigit, ...]) -> None:
        for digit in digits:
            self._on_event({"event": "dtmf", "digit": digit.digit,
                            "duration_ms": digit.duration_ms})

    def _send(self, data: bytes | memoryview) -> None:
        try:
            self._sock.sendto(data, self._remote)
        except OSError as e:  # unreachable, no route: the call goes on
            log.debug("RTP send to %s: %s", self._remote, e)

    def _send_rtcp(self, data: bytes) -> None:
        sock = self._sock if self.media.rtcp_mux or self._rtcp_sock is None else self._rtcp_sock
        dest = self._remote if self.media.rtcp_mux else self._rtcp_remote
        try:
            sock.sendto(data, dest)
        except OSError as e:
            log.debug("RTCP send to %s: %s", dest, e)

    def _drain_rtcp(self, rtcp: rtcp_mod.RtcpState) -> None:
        assert self._rtcp_sock is not None and self._rtcp_arrival is not None
        while True:
            try:
                data, addr = self._rtcp_sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            # when it came, from its kernel stamp (RTCP is read only once a turn)
            self._on_rtcp(rtcp, data, addr, self._rtcp_arrival(self._clock()))

    def _rtcp_from_peer(self, packets: list[rtcp_mod.RtcpPacket],
                        addr: tuple[str, int]) -> bool:
        """Whether RTCP is the peer's: from where its RTP comes (rtcp-mux), or to our RTCP
        port from the SDP's RTCP address or, once its RTP is heard, from its host; naming
        its SSRC once that is known. Without rtcp-mux and with symmetric RTP, our reports
        then go where its reports come from."""
        sender = next((p.ssrc for p in packets
                       if isinstance(p, rtcp_mod.RtcpSrPacket | rtcp_mod.RtcpRrPacket)), None)
        if sender is None:
            sender = next((p.sources[0] for p in packets
                           if isinstance(p, rtcp_mod.RtcpByePacket) and p.sources), None)
        if self._peer_ssrc is not None and sender != self._peer_ssrc:
            return False
        addr = (addr[0], addr[1])
        if self.media.rtcp_mux:
            return addr == self._remote
        if self._rtcp_latched:
            return addr == self._rtcp_remote
        if addr != self._sdp_rtcp and (not self._latched or addr[0] != self._remote[0]):
            return False
        if self._opt.symmetric_rtp:
            self._rtcp_remote, self._rtcp_latched = addr, True
        return True

    def _on_rtcp(self, rtcp: rtcp_mod.RtcpState, data: bytes,
                 addr: tuple[str, int], arrival: float) -> None:
        try:
            packets = rtcp_mod.parse_compound(data)
        except ValueError:
            self._n["rx_bad"] += 1
            return
        if not self._rtcp_from_peer(packets, addr):
            self._n["rx_filtered"] += 1
            return
        was_bye = rtcp.bye_received
        rtcp.receive(packets, arrival)
        if rtcp.bye_received and not was_bye:
            self._on_event({"event": "rtcp_bye"})



def _peer_address(host: str, port: int, family: int) -> tuple[str, int]:
    """The SDP's address as a packet's source reads on a socket of ``family``.

    An IP address only: a name in ``c=`` (RFC 4566 §5.7 allows one) raises ValueError,
    which ends the session with a ``media_error``. Resolving it would block the thread
    that does (this one mid-call on a re-INVITE, or the event loop) for as long as DNS
    takes, and whatever DNS answered would be what the source filter trusts; SIP peers
    put addresses there. (Before, sendto resolved the name for every packet, and no
    source ever matched it.) An IPv4 address on an IPv6 socket is the mapped form its
    packets come from, as it must be to send there; IPv6 in its canonical form.
    """
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"the SDP's media address {host!r} is not an IP address "
                         "(host names are not resolved)") from None
    if family == socket.AF_INET6 and ip.version == 4:
        return (f"::ffff:{ip}", port)
    if family == socket.AF_INET and ip.version == 6:
        raise ValueError(f"the SDP's media address {host} is IPv6; RTP is bound on IPv4")
    return (str(ip), port)


class TonePlayer:
    """Plays a call-progress tone on the sound device while no call has media
    (ringback while the far end rings, busy after a 486), paced by the device."""

    def __init__(self, audio: AudioBackend, spec: ToneSpec, seconds: float | None = None) -> None:
        self._audio = audio
        self._gen = ToneGenerator(spec, RATE)
        self._frames = None if seconds is None else int(seconds * RATE / FRAME)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tone", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def request_stop(self) -> None:
        """Stop at the end of the frame it is on, without waiting for it (the caller is
        the event loop: a key press must not wait out a 20 ms device read)."""
        self._stop.set()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        self._audio.start()
        try:
            n = 0
            while not self._stop.is_set() and (self._frames is None or n < self._frames):
                self._audio.read()
                self._audio.write(self._gen.read(FRAME))
                n += 1
        except Exception:
            log.exception("tone player failed")
        finally:
            self._audio.stop()
