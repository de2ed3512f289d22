"""Composition root: builds the phone from its config and runs it on asyncio.

The asyncio loop owns the SIP endpoint, its transport and the console. The
SIP core is pure, so this file is the pump: bytes in -> ``endpoint.receive``;
after every call into the endpoint, queued datagrams go to the transport,
events go to the log and the console, and one loop timer is set for the
endpoint's next deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import socket
import time
from typing import Any

from . import __version__
from .config import PhoneConfig
from .console import BUILTIN_COMMANDS, CALL_COMMANDS, CommandError, ConsoleCommands, ConsoleServer
from .media.audio import AudioBackend, open_backend
from .media.engine import MediaOptions, MediaSession, TonePlayer
from .media.tones import get_tone
from .sdp import NegotiatedMedia
from .sip import events as ev
from .sip.endpoint import Endpoint, EndpointConfig
from .sip.errors import LocalProtocolError
from .sip.transaction import Addr
from .sip.uri import SipUri
from .transport.rtp import RtpPortPool
from .transport.sip import SipTransport, local_address_towards

log = logging.getLogger("deskphone")


def resolve(host: str, port: int, transport: str) -> str:
    """The registrar's address, resolved once at start (no SRV/NAPTR yet)."""
    host = host.strip("[]")
    kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    infos = socket.getaddrinfo(host, port, type=kind)
    return str(infos[0][4][0])


def endpoint_config(cfg: PhoneConfig, local_host: str, local_port: int,
                    proxy: Addr) -> EndpointConfig:
    acc = cfg.account
    return EndpointConfig(
        user=acc.user,
        domain=acc.domain,
        password=acc.password,
        registrar=SipUri.parse(acc.registrar),
        proxy=proxy,
        local=Addr(acc.transport, local_host, local_port),
        display_name=acc.display_name,
        auth_user=acc.auth_user or acc.user,
        expires=acc.register_expires,
        user_agent=cfg.sip.user_agent or f"deskphone/{__version__}",
        rtp_ports=(cfg.sip.rtp_port_min, cfg.sip.rtp_port_max),
    )


def event_to_console(event: ev.Event) -> dict[str, Any] | None:
    """The console's JSON shape of an endpoint event (None: log only)."""
    if isinstance(event, ev.Registered):
        return {"event": "registered", "aor": event.aor, "contact": event.contact,
                "expires": event.expires}
    if isinstance(event, ev.RegistrationFailed):
        return {"event": "registration_failed", "status": event.status,
                "reason": event.reason, "retry_in": event.retry_in}
    if isinstance(event, ev.Unregistered):
        return {"event": "unregistered", "reason": event.reason}
    if isinstance(event, ev.IncomingCall):
        return {"event": "incoming", "call_id": event.call_id, "from": event.remote_uri,
                "display_name": event.display_name}
    if isinstance(event, ev.CallRinging):
        ringing: dict[str, Any] = {"event": "ringing", "call_id": event.call_id,
                                   "status": event.status}
        if event.media is not None:
            ringing.update(early_media=True, codec=event.media.codec.encoding,
                           remote_media=f"{event.media.remote_address}:"
                                        f"{event.media.remote_port}")
        return ringing
    if isinstance(event, ev.CallConnected | ev.CallUpdated):
        out: dict[str, Any] = {
            "event": "connected" if isinstance(event, ev.CallConnected) else "updated",
            "call_id": event.call_id}
        if event.media is not None:
            out.update(codec=event.media.codec.encoding,
                       remote_media=f"{event.media.remote_address}:{event.media.remote_port}",
                       direction=event.media.direction.value)
        return out
    if isinstance(event, ev.CallEnded):
        return {"event": "ended", "call_id": event.call_id, "reason": event.reason,
                "status": event.status}
    if isinstance(event, ev.DtmfReceived):
        return {"event": "dtmf", "call_id": event.call_id, "digit": event.digit,
                "duration_ms": event.duration_ms}
    return None


class Phone:
    """The running phone: endpoint + transport + console on one event loop."""

    def __init__(self, cfg: PhoneConfig, *, rng: random.Random | None = None,
                 time_scale: float = 1.0) -> None:
        """``time_scale`` is a test hook: the phone's clock (``now``) runs that many times
        faster than the wall clock and loop delays shrink to match, so an integration test
        sees a 60 s registration refreshed after 30/time_scale s against a real registrar
        (which enforces a minimum expiry). Every SIP timer speeds up with it. 1.0 on a phone.
        """
        if time_scale <= 0:
            raise ValueError(f"time_scale must be positive, got {time_scale}")
        self.cfg = cfg
        self._rng = rng or random.SystemRandom()
        self._time_scale = time_scale
        self._epoch = time.monotonic()
        self.endpoint: Endpoint | None = None
        self.transport: SipTransport | None = None
        self.console: ConsoleServer | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._unregistered = asyncio.Event()
        self._stop = asyncio.Event()
        # media: one sound device for the phone's life, a socket pair per call port
        self.audio: AudioBackend | None = None
        self.rtp: RtpPortPool | None = None
        self.sessions: dict[str, MediaSession] = {}  # call_id -> the call's media thread
        # calls playing early media, not answered yet -> mute wanted once answered
        self.early: dict[str, bool] = {}
        self._port_calls: dict[int, str] = {}  # RTP port -> call_id
        self._tone: TonePlayer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def now(self) -> float:
        """The endpoint's clock: monotonic seconds, ``time_scale`` times faster."""
        wall = time.monotonic()
        if self._time_scale == 1.0:
            return wall
        return self._epoch + (wall - self._epoch) * self._time_scale

    # ------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        cfg = self.cfg
        acc = cfg.account
        registrar = SipUri.parse(acc.registrar)
        transport = acc.transport
        reg_port = registrar.port or 5060
        reg_ip = resolve(registrar.host_bare, reg_port, transport)
        proxy = Addr(transport, reg_ip, reg_port)
        listen_host, listen_port = cfg.sip.listen_host, cfg.sip.listen_port
        self.transport = SipTransport(listen_host, listen_port, self._on_datagram,
                                      self._on_transport_error)
        await self.transport.start()
        local_host = listen_host
        if listen_host in ("0.0.0.0", "::"):
            local_host = local_address_towards(reg_ip, reg_port)
        self._loop = asyncio.get_running_loop()
        a = cfg.audio
        self.audio = open_backend(a.backend, input=a.input, output=a.output, device=a.device,
                                  capture_device=a.capture_device,
                                  playback_device=a.playback_device)
        # RTP binds where SIP listens; SDP advertises local_host (the address we
        # reach the registrar from, when SIP listens on every interface)
        self.rtp = RtpPortPool(listen_host, cfg.sip.rtp_port_min, cfg.sip.rtp_port_max)
        self.endpoint = Endpoint(
            endpoint_config(cfg, local_host, self.transport.port, proxy), self._rng,
            self.now(), ports=_Ports(self))
        # the console listens before the first REGISTER goes out (a client that
        # connects at start-up sees the ``registered`` event)
        if cfg.console.kind == "tcp":
            commands = ConsoleCommands(_Control(self), {**BUILTIN_COMMANDS, **CALL_COMMANDS})
            self.console = ConsoleServer(commands, cfg.console.host, cfg.console.port)
            await self.console.start()
            log.info("console listening on tcp:%s:%d", cfg.console.host, self.console.port)
        log.info("SIP on %s %s:%d as %s, registrar %s", transport, local_host,
                 self.transport.port, self.endpoint.aor, proxy)
        self.endpoint.register(self.now())
        self._pump()

    async def run(self) -> None:
        """Run until SIGINT/SIGTERM, then un-register and stop."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            # NotImplementedError: no signals here (Windows); RuntimeError: not the main
            # thread (a test runs the phone in one): request_stop() is the way out then
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._stop.set)
        await self.start()
        await self._stop.wait()
        log.info("stopping")
        await self.stop()

    def request_stop(self) -> None:
        self._stop.set()

    async def stop(self, unregister_timeout: float = 4.0) -> None:
        ep = self.endpoint
        if ep is not None:
            for call in ep.calls:
                with contextlib.suppress(LocalProtocolError):
                    ep.hangup(self.now(), call.call_id)
            ep.unregister(self.now())
            self._pump()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._unregistered.wait(), unregister_timeout)
        if self._timer is not None:
            self._timer.cancel()
        self._stop_tone()
        for call_id in list(self.sessions):
            self._stop_media(call_id)
        if self.rtp is not None:
            self.rtp.close()
        if self.audio is not None:
            self.audio.close()
        if self.console is not None:
            await self.console.close()
        if self.transport is not None:
            await self.transport.close()

    # ------------------------------------------------------------------ pump

    def _on_datagram(self, data: bytes, source: Addr) -> None:
        assert self.endpoint is not None
        self.endpoint.receive(data, source, self.now())
        self._pump()

    def _on_transport_error(self, addr: Addr) -> None:
        assert self.endpoint is not None
        self.endpoint.transport_error(addr, self.now())
        self._pump()

    def _on_timer(self) -> None:
        self._timer = None
        assert self.endpoint is not None
        self.endpoint.handle_timer(self.now())
        self._pump()

    def _pump(self) -> None:
        ep = self.endpoint
        if ep is None:
            return
        assert self.transport is not None
        for data, addr in ep.datagrams_to_send(self.now()):
            if log.isEnabledFor(logging.DEBUG):
                log.debug("send %s:\n%s", addr, _redact(data))
            self.transport.send(data, addr)
        while (event := ep.next_event()) is not None:
            self._on_event(event)
        deadline = ep.get_timer()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if deadline is not None:
            loop = asyncio.get_running_loop()
            delay = max(0.0, deadline - self.now()) / self._time_scale
            self._timer = loop.call_later(delay, self._on_timer)

    def _on_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.ProtocolWarning):
            log.warning("%s (from %s)", event.text, event.source)
            return
        if isinstance(event, ev.Unregistered):
            self._unregistered.set()
        elif isinstance(event, ev.CallRinging):
            if event.media is not None and event.media.active:
                # early media: the far end's audio instead of our ringback. Ours goes
                # out as silence until the call is answered (nothing of the room is
                # heard before then, not even a first frame; the packets open NAT
                # bindings and let the far end latch onto us)
                self._stop_tone()
                self._start_media(event.call_id, event.media, muted=True)
                if event.call_id in self.sessions:
                    self.early.setdefault(event.call_id, False)
            elif event.call_id not in self.early:
                self._play_tone("ringback")
        elif isinstance(event, ev.CallConnected | ev.CallUpdated):
            self._stop_tone()
            self._start_media(event.call_id, event.media)
            if event.call_id in self.early and isinstance(event, ev.CallConnected):
                muted = self.early.pop(event.call_id)
                session = self.sessions.get(event.call_id)
                if session is not None:
                    session.mute(muted)
        elif isinstance(event, ev.CallEnded):
            self._stop_tone()
            self.early.pop(event.call_id, None)
            self._stop_media(event.call_id)
            if event.reason == "busy":
                self._play_tone("busy", 3.0)
            elif event.status is not None and event.status >= 400 and event.reason not in (
                    "cancelled", "rejected"):
                self._play_tone("congestion", 3.0)
        line = event_to_console(event)
        log.info("event %s", line)
        if line is not None and self.console is not None:
            self.console.broadcast(line)


    # ----------------------------------------------------------------- media

    def _start_media(self, call_id: str, media: NegotiatedMedia | None, *,
                     muted: bool = False) -> None:
        if media is None or self.audio is None or self.rtp is None:
            return
        session = self.sessions.get(call_id)
        if session is not None:
            session.update(media)
            return
        if not media.active:
            return
        try:
            rtp_sock, rtcp_sock = self.rtp.sockets(media.local_port)
        except KeyError:
            log.error("call %s: RTP port %d is not held", call_id, media.local_port)
            return
        loop = self._loop
        assert loop is not None

        def on_media_event(e: dict[str, Any]) -> None:  # runs in the media thread
            loop.call_soon_threadsafe(self._on_media_event, call_id, e)

        session = MediaSession(media, rtp_sock, self.audio, rng=random.Random(),
                               rtcp_sock=None if media.rtcp_mux else rtcp_sock,
                               options=MediaOptions(cname=f"{self.cfg.account.user}@deskphone",
                                                    symmetric_rtp=self.cfg.sip.symmetric_rtp),
                               on_event=on_media_event, muted=muted)
        self.sessions[call_id] = session
        self._port_calls[media.local_port] = call_id
        session.start()

    def _stop_media(self, call_id: str) -> None:
        session = self.sessions.pop(call_id, None)
        if session is not None:
            session.stop()
            log.info("call %s media: %s", call_id, session.stats())

    def _release_port(self, port: int) -> None:
        """The SIP core is done with ``port``: stop the media using it, free the pair."""
        call_id = self._port_calls.pop(port, None)
        if call_id is not None:
            self._stop_media(call_id)
        if self.rtp is not None:
            self.rtp.release(port)

    def _on_media_event(self, call_id: str, e: dict[str, Any]) -> None:
        e = {**e, "call_id": call_id}
        log.info("media event %s", e)
        if self.console is not None:
            self.console.broadcast(e)

    def _play_tone(self, name: str, seconds: float | None = None) -> None:
        if self.audio is None:
            return
        self._stop_tone()
        try:
            spec = get_tone(self.cfg.audio.tones, name)
        except KeyError as e:
            log.warning("no %s tone: %s", name, e)
            return
        self._tone = TonePlayer(self.audio, spec, seconds)
        self._tone.start()

    def _stop_tone(self) -> None:
        if self._tone is not None:
            self._tone.stop()
            self._tone = None


class _Ports:
    """The endpoint's PortSource: the app's pool, which binds what it hands out."""

    def __init__(self, phone: Phone) -> None:
        self.phone = phone

    def allocate(self) -> int:
        assert self.phone.rtp is not None
        return self.phone.rtp.allocate()

    def release(self, port: int) -> None:
        self.phone._release_port(port)


class _Control:
    """The console's view of the phone (console.PhoneControl)."""

    def __init__(self, phone: Phone) -> None:
        self.phone = phone

    def _ep(self) -> Endpoint:
        if self.phone.endpoint is None:
            raise CommandError("phone not started")
        return self.phone.endpoint

    def status(self) -> dict[str, object]:
        ep = self._ep()
        calls = ep.calls
        return {
            "registered": ep.registered,
            "aor": ep.aor,
            "registration": ep.reg.state.value,
            "call": calls[-1].info() if calls else None,
        }

    def dial(self, target: str) -> dict[str, object]:
        ep = self._ep()
        try:
            call_id = ep.dial(target, self.phone.now())
        except LocalProtocolError as e:
            raise CommandError(str(e)) from None
        finally:
            self.phone._pump()
        return {"call_id": call_id, "to": str(ep.call(call_id).remote.uri)}

    def stats(self) -> dict[str, object]:
        ep = self._ep()
        calls = ep.calls
        session = self.phone.sessions.get(calls[-1].call_id) if calls else None
        if session is None:
            raise CommandError("no call with media")
        return {"call_id": calls[-1].call_id, **session.stats()}

    def dtmf(self, digits: str) -> dict[str, object]:
        bad = [d for d in digits if d.upper() not in "0123456789*#ABCD"]
        if bad or not digits:
            raise CommandError(f"not DTMF digits: {digits!r} (use 0-9 * # A-D)")
        ep = self._ep()
        try:
            call = ep.call()
            session = self.phone.sessions.get(call.call_id)
            if session is not None and call.media is not None and \
                    call.media.telephone_event_pt is not None:
                session.send_dtmf(digits.upper())
                how = "rfc4733"
            else:  # the far end takes no telephone-events: SIP INFO, one per digit
                for d in digits.upper():
                    ep.send_info(self.phone.now(), "application/dtmf-relay",
                                 f"Signal={d}\r\nDuration=160\r\n".encode(), call.call_id)
                how = "info"
        except LocalProtocolError as e:
            raise CommandError(str(e)) from None
        finally:
            self.phone._pump()
        return {"call_id": call.call_id, "digits": digits.upper(), "method": how}

    def hold(self, on: bool) -> dict[str, object]:
        ep = self._ep()
        try:
            call = ep.call()
            ep.hold(self.phone.now(), on, call.call_id)
        except LocalProtocolError as e:
            raise CommandError(str(e)) from None
        finally:
            self.phone._pump()
        # our sendonly offer lets us send (music on hold, RFC 3264 §8.4), not the
        # microphone: the held party must not hear the room
        session = self.phone.sessions.get(call.call_id)
        if session is not None:
            session.hold(on)
        return {"call_id": call.call_id, "hold": on}

    def mute(self, on: bool) -> dict[str, object]:
        ep = self._ep()
        try:
            call = ep.call()
        except LocalProtocolError as e:
            raise CommandError(str(e)) from None
        session = self.phone.sessions.get(call.call_id)
        if session is None:
            raise CommandError("no call with media")
        if call.call_id in self.phone.early:
            self.phone.early[call.call_id] = on  # silent until answered; then as asked
        else:
            session.mute(on)
        return {"call_id": call.call_id, "muted": on}

    def answer(self) -> dict[str, object]:
        return self._act("answer")

    def hangup(self) -> dict[str, object]:
        return self._act("hangup")

    def _act(self, what: str) -> dict[str, object]:
        ep = self._ep()
        try:
            call = ep.call()
            getattr(ep, what)(self.phone.now(), call.call_id)
        except LocalProtocolError as e:
            raise CommandError(str(e)) from None
        finally:
            self.phone._pump()
        return {"call_id": call.call_id}


def _redact(data: bytes) -> str:
    """A message for the debug log, digest responses blanked (no secrets in logs)."""
    text = data.decode("utf-8", "replace")
    import re

    return re.sub(r'(response|cnonce)="[^"]*"', r'\1="…"', text)
