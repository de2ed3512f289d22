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

The control plane (the asyncio loop) talks to the thread only through a
queue of commands (update, mute, hold, dtmf, tone, stop) and reads ``stats()``,
a dict the thread replaces whole each frame. Events the thread finds (DTMF
digits, the far end's RTCP BYE) go out through ``on_event``, which the app
points at ``loop.call_soon_threadsafe``.

Nothing that can be allocated once is allocated per frame: the packet buffer,
the receive buffer and the decode buffers live for the session.
"""

from __future__ import annotations

import enum
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import struct

import numpy as np

from ..sdp import NegotiatedMedia
from . import rtcp as rtcp_mod
from .audio.base import AudioBackend, Pcm
from .dtmf import DtmfReceiver, DtmfSender
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
                 wallclock: Callable[[], float] = time.time) -> None:
        self.media = media
        self._sock = rtp_sock
        self._rtcp_sock = rtcp_sock
        self._audio = audio
        self._rng = rng
        self._opt = options
        self._on_event = on_event
        self._clock = clock
        self._wall = wallclock
        self._cmds: queue.SimpleQueue[tuple[Cmd, Any]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stats: dict[str, Any] = {"codec": media.codec.encoding}
        self.error: BaseException | None = None

    # --------------------------------------------------------- control plane

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="media", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._cmds.put((Cmd.STOP, None))
        if self._thread is not None:
            self._thread.join(timeout)

    def update(self, media: NegotiatedMedia) -> None:
        self._cmds.put((Cmd.UPDATE, media))

    def mute(self, on: bool) -> None:
        self._cmds.put((Cmd.MUTE, on))

    def hold(self, on: bool) -> None:
        self._cmds.put((Cmd.HOLD, on))

    def send_dtmf(self, digits: str, duration_ms: int = 100) -> None:
        self._cmds.put((Cmd.DTMF, (digits, duration_ms)))

    def play_tone(self, spec: ToneSpec | None) -> None:
        """Play a local tone instead of the far end (None: back to the far end)."""
        self._cmds.put((Cmd.TONE, spec))

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
        self.media = media
        codec = CODECS.get(media.codec.encoding.upper())
        if codec is None:
            raise ValueError(f"no codec for {media.codec.encoding}")
        self._codec: Codec = codec
        self._pt = media.codec.payload_type
        self._dtmf_pt = media.telephone_event_pt
        # static G.711 payload types we take besides our own codec, translated to it
        other = 8 if codec.name == "PCMU" else 0
        self._translate = {other: _A_TO_U if codec.name == "PCMU" else _U_TO_A}
        self._ptime_samples = max(80, min(480, media.ptime * 8))
        self._remote = (media.remote_address, media.remote_port)
        self._rtcp_remote = (media.remote_address,
                             media.remote_rtcp_port or media.remote_port + 1)
        self._latched = not self._opt.symmetric_rtp

    def _loop(self) -> None:
        opt = self._opt
        self._setup(self.media)
        sock = self._sock
        sock.setblocking(False)
        if self._rtcp_sock is not None:
            self._rtcp_sock.setblocking(False)
        sender = RtpSender(self._pt, self._rng)
        rx = ReceiveStats(RATE)
        jb = JitterBuffer(clock_rate=RATE, frame_samples=FRAME, min_delay_ms=opt.jitter_min_ms,
                          max_delay_ms=opt.jitter_max_ms)
        plc = Concealer(FRAME)
        dtmf_tx = DtmfSender(RATE, self.media.ptime)
        dtmf_rx = DtmfReceiver(RATE)
        rtcp = rtcp_mod.RtcpState(sender.ssrc, opt.cname, self._rng, self._wall())
        out_buf = bytearray(HEADER_SIZE + 480)
        out_view = np.frombuffer(out_buf, dtype=np.uint8)
        payload_view = out_view[HEADER_SIZE:HEADER_SIZE + FRAME]
        recv_buf = bytearray(2048)
        decoded = np.zeros(FRAME, np.int16)
        fifo = np.zeros(FRAME * 4, np.int16)  # mic samples waiting for a whole ptime
        fifo_n = 0
        muted = held = False
        tone: ToneGenerator | None = None
        silence = np.zeros(FRAME, np.int16)
        n = {"rx": 0, "rx_bad": 0, "rx_filtered": 0, "concealed": 0}
        frames = 0
        self._audio.start()
        try:
            while True:
                # -- commands from the control plane
                stop = False
                while True:
                    try:
                        cmd, arg = self._cmds.get_nowait()
                    except queue.Empty:
                        break
                    if cmd is Cmd.STOP:
                        stop = True
                    elif cmd is Cmd.UPDATE:
                        self._setup(arg)
                        sender.payload_type = self._pt
                    elif cmd is Cmd.MUTE:
                        muted = bool(arg)
                    elif cmd is Cmd.HOLD:
                        held = bool(arg)
                    elif cmd is Cmd.DTMF:
                        digits, dur = arg
                        if self._dtmf_pt is not None:
                            for d in digits:
                                dtmf_tx.start(d, sender.timestamp, dur)
                    elif cmd is Cmd.TONE:
                        tone = ToneGenerator(arg, RATE) if arg is not None else None
                if stop:
                    break

                mic = self._audio.read()  # the clock
                now = self._clock()
                arrival_ts = now * RATE

                # -- receive everything that is waiting
                while True:
                    try:
                        size, addr = sock.recvfrom_into(recv_buf)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError as e:  # ICMP unreachable from a previous send
                        log.debug("RTP socket: %s", e)
                        break
                    data = memoryview(recv_buf)[:size]
                    if self.media.rtcp_mux and rtcp_mod.is_rtcp(data):
                        self._on_rtcp(rtcp, bytes(data))
                        continue
                    if not self._accept_source(addr):
                        n["rx_filtered"] += 1
                        continue
                    if size > HEADER_SIZE and recv_buf[0] == 0x80:
                        # the usual packet (no padding, extension or CSRCs): read the
                        # header in place instead of building a full RtpPacket
                        _, mpt, seq, ts, ssrc = _HEADER.unpack_from(recv_buf)
                        pt, marker = mpt & 0x7F, mpt > 0x7F
                        if pt == self._pt:
                            n["rx"] += 1
                            rx.update_fields(seq, ts, ssrc, arrival_ts)
                            jb.put(seq, ts, ssrc, marker, bytes(data[HEADER_SIZE:]), now)
                            continue
                        table = self._translate.get(pt)
                        if table is not None:
                            n["rx"] += 1
                            rx.update_fields(seq, ts, ssrc, arrival_ts)
                            jb.put(seq, ts, ssrc, marker,
                                   bytes(data[HEADER_SIZE:]).translate(table), now)
                            continue
                    try:
                        pkt = RtpPacket.parse(bytes(data))
                    except ValueError:
                        n["rx_bad"] += 1
                        continue
                    if pkt.payload_type == self._dtmf_pt:
                        for digit in dtmf_rx.feed(pkt.payload, pkt.timestamp, pkt.marker,
                                                  pkt.ssrc):
                            self._on_event({"event": "dtmf", "digit": digit.digit,
                                            "duration_ms": digit.duration_ms})
                        rx.update(pkt, arrival_ts)
                        continue
                    payload = pkt.payload
                    if pkt.payload_type != self._pt:
                        table = self._translate.get(pkt.payload_type)
                        if table is None:
                            n["rx_bad"] += 1
                            continue
                        payload = payload.translate(table)
                    n["rx"] += 1
                    rx.update(pkt, arrival_ts)
                    jb.put(pkt.sequence_number, pkt.timestamp, pkt.ssrc, pkt.marker,
                           payload, now)
                if self._rtcp_sock is not None:
                    self._drain_rtcp(rtcp)

                # -- playout
                frame = jb.get(now)
                if frame.kind is FrameKind.AUDIO and len(frame.payload) == FRAME:
                    self._codec.decode_into(frame.payload, decoded)
                    play = plc.good(decoded)
                elif frame.kind is FrameKind.MISSING:
                    play = plc.lost()
                    n["concealed"] += 1
                else:
                    play = silence
                if tone is not None:
                    play = tone.read(FRAME)
                self._audio.write(play)

                # -- send
                sends = self.media.sends and not held
                if dtmf_tx.busy and sends:
                    pkt_out = dtmf_tx.next_packet()
                    if pkt_out is not None:
                        payload, marker, ts = pkt_out
                        out = sender.packet(payload, FRAME, marker, payload_type=self._dtmf_pt,
                                            timestamp=ts)
                        self._send(out)
                    else:
                        sender.skip(FRAME)
                    fifo_n = 0
                elif sends and self._ptime_samples == FRAME and not fifo_n:
                    # the common case, 20 ms packets: encode straight into the packet
                    self._codec.encode_into(silence if muted else mic, payload_view)
                    size = sender.header_into(out_buf, FRAME, FRAME)
                    self._send(memoryview(out_buf)[:size])
                elif sends:
                    src: Pcm = silence if muted else mic
                    fifo[fifo_n:fifo_n + FRAME] = src
                    fifo_n += FRAME
                    ps = self._ptime_samples
                    while fifo_n >= ps:
                        self._codec.encode_into(fifo[:ps], out_view[HEADER_SIZE:HEADER_SIZE + ps])
                        size = sender.header_into(out_buf, ps, ps)
                        self._send(memoryview(out_buf)[:size])
                        fifo[: fifo_n - ps] = fifo[ps:fifo_n]
                        fifo_n -= ps
                else:
                    sender.skip(FRAME)
                    fifo_n = 0

                # -- RTCP
                wall = self._wall()
                if rtcp.report_due(wall):
                    report = rtcp.build_report(wall, packets_sent=sender.packets_sent,
                                               octets_sent=sender.octets_sent,
                                               rtp_timestamp=sender.timestamp,
                                               stats=rx if rx.valid else None)
                    self._send_rtcp(report)

                frames += 1
                if frames % 10:  # the snapshot is for people: 5 a second is plenty
                    continue
                jbs = jb.stats()
                self._stats = {
                    "codec": self._codec.name,
                    "tx_packets": sender.packets_sent,
                    "rx_packets": n["rx"],
                    # distinct packets never received (RFC 3550's cumulative count
                    # takes duplicates as received, hiding losses behind them)
                    "rx_lost": max(0, rx.lost + rx.duplicates) if rx.valid else 0,
                    "rx_late": int(jbs.get("late", 0)),
                    "rx_duplicates": rx.duplicates,
                    "rx_invalid": n["rx_bad"],
                    "rx_filtered": n["rx_filtered"],
                    "concealed_frames": n["concealed"],
                    "jitter_ms": round(rx.jitter_ms, 2) if rx.valid else 0.0,
                    "rtt_ms": round(rtcp.rtt * 1000, 1) if rtcp.rtt is not None else None,
                    "jitter_buffer_ms": round(float(jbs.get("delay_ms", 0.0)), 1),
                    "remote": f"{self._remote[0]}:{self._remote[1]}",
                    "muted": muted,
                    "held": held,
                }
        finally:
            try:
                wall = self._wall()
                self._send_rtcp(rtcp.build_bye(wall, packets_sent=sender.packets_sent,
                                               octets_sent=sender.octets_sent,
                                               rtp_timestamp=sender.timestamp,
                                               stats=rx if rx.valid else None))
            finally:
                self._audio.stop()

    # --------------------------------------------------------------- helpers

    def _accept_source(self, addr: tuple[str, int]) -> bool:
        """Source filter; with symmetric RTP, latch onto where the peer really sends from."""
        if (addr[0], addr[1]) == self._remote:
            self._latched = True
            return True
        if not self._latched:
            self._latched = True
            log.info("symmetric RTP: sending to %s:%d instead of %s:%d", addr[0], addr[1],
                     *self._remote)
            self._remote = (addr[0], addr[1])
            return True
        return False

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
        assert self._rtcp_sock is not None
        while True:
            try:
                data = self._rtcp_sock.recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self._on_rtcp(rtcp, data)

    def _on_rtcp(self, rtcp: rtcp_mod.RtcpState, data: bytes) -> None:
        try:
            packets = rtcp_mod.parse_compound(data)
        except ValueError:
            return
        was_bye = rtcp.bye_received
        rtcp.receive(packets, self._wall())
        if rtcp.bye_received and not was_bye:
            self._on_event({"event": "rtcp_bye"})



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
