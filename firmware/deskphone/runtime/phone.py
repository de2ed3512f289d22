"""The running phone's core loop: the SIP pump and the controller's actions, carried out.

Theory of operation
-------------------
Everything here runs on the asyncio loop's thread. Inputs arrive through four doors:
``sip_received`` (the transport), ``hardware_event`` (gpiozero threads hop here with
``call_soon_threadsafe``), ``command`` (the consoles) and ``media_event`` (the media
threads hop here the same way). Each goes to the SIP endpoint or the phone controller,
and then ``_pump`` runs to a standstill: datagrams out to the transport, endpoint events
to the console, the log and the controller, the controller's actions carried out (which
may make more endpoint events), and one loop timer set for the earliest deadline of the
endpoint and the controller. The screen is recomputed after every turn and redrawn only
when it changed.

Resources follow the SIP core's reports: when it says ``CallEnded`` the call's media
thread stops and its RTP port pair is freed, here, never inside ``Endpoint.receive``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import re
from collections.abc import Callable
from typing import Any

from ..phone import actions as act
from ..phone import events as pe
from ..phone.controller import PhoneController, PhoneError, State
from ..phone.screens import Screen, screen_for
from ..sip import events as ev
from ..sip.endpoint import Endpoint
from ..sip.errors import LocalProtocolError
from ..sip.transaction import Addr
from .console_events import event_to_console, hardware_to_console
from .devices import DisplayLike, LedsLike, RingerLike
from .history import CallHistory, HistoryEntry
from .media import MediaPlant

log = logging.getLogger("deskphone")


class PhoneRuntime:
    def __init__(self, endpoint: Endpoint, controller: PhoneController, *,
                 send: Callable[[bytes, Addr], None], clock: Callable[[], float],
                 time_scale: float = 1.0, media: MediaPlant | None = None,
                 ringer: RingerLike | None = None, ring_cadence: Any = (),
                 leds: LedsLike | None = None, display: DisplayLike | None = None,
                 history: CallHistory | None = None,
                 broadcast: Callable[[dict[str, Any]], None] = lambda e: None,
                 wallclock: Callable[[], datetime.datetime] = datetime.datetime.now,
                 address: str = "", ringtone: bool = False,
                 on_provisioning: Callable[[ev.Event], None] = lambda e: None) -> None:
        self.endpoint = endpoint
        self.controller = controller
        self.media = media
        self.ringer = ringer
        self.ring_cadence = ring_cadence
        self.leds = leds
        self.display = display
        self.history = history or CallHistory(None)
        self.broadcast = broadcast
        self.address = address
        self.ringtone = ringtone  # also ring through the sound device
        self._send = send
        self._on_provisioning = on_provisioning  # check-sync, a plug-and-play URL
        self._clock = clock
        self._scale = time_scale
        self._wallclock = wallclock
        self._timer: asyncio.TimerHandle | None = None
        self._tick: asyncio.TimerHandle | None = None
        self._ports: dict[str, int] = {}  # call_id -> its RTP port, freed on CallEnded
        self._placed: pe.CallPlaced | pe.CallFailed | None = None
        self._pumping = False
        self._dirty = True  # the screen may be out of date (any input but a datagram)
        self._armed_for: float | None = None  # the deadline the loop timer is set for
        self._closed = False
        self._booted = False
        self.last_dtmf_method: act.DtmfMethod | None = None  # how the last digits went out
        self._failures: list[str] | None = None  # what went wrong carrying out a command
        self.screen: Screen | None = None
        self._notice: tuple[str, float] | None = None  # (text, until) on the idle screen
        self.unregistered = asyncio.Event()
        self.ringing = False

    # --------------------------------------------------------------- doors in

    def sip_received(self, data: bytes, source: Addr) -> None:
        self.endpoint.receive(data, source, self._clock())
        self._pump()

    def transport_error(self, addr: Addr) -> None:
        self.endpoint.transport_error(addr, self._clock())
        self._pump()

    def hardware_event(self, event: pe.HardwareEvent) -> None:
        self._dirty = True
        line = hardware_to_console(event)
        if line is not None:
            self.broadcast(line)
        self._feed(event)
        self._pump()

    def command(self, event: object) -> None:
        """A console command: raises PhoneError (the reply's error) if it does not apply,
        or if the SIP side refused what it asked for (the script must not read "ok")."""
        self._placed = None
        self._dirty = True
        self._failures = []
        try:
            self._feed(event, strict=True)
        finally:
            self._pump()
            failures, self._failures = self._failures, None
        if failures:
            raise PhoneError("; ".join(failures))

    def media_event(self, call_id: str, e: dict[str, Any]) -> None:
        e = {**e, "call_id": call_id}
        log.info("media event %s", e)
        self.broadcast(e)
        if e.get("event") == "dtmf":
            self.broadcast({**e, "event": "dtmf_received"})
            self._feed(ev.DtmfReceived(call_id, str(e.get("digit", "")),
                                       int(e.get("duration_ms", 0) or 0)))
            self._pump()

    def start(self) -> None:
        if not self._booted:
            self._booted = True
            self._execute(self.controller.boot())
        self.endpoint.register(self._clock())
        self._pump()

    def registration_unavailable(self, reason: str, retry_in: float) -> None:
        """No REGISTER can go out (the registrar's name does not resolve): the phone says
        so as it would of a registrar that does not answer."""
        self._dirty = True
        self._on_sip_event(ev.RegistrationFailed(None, reason, retry_in))
        self._pump()

    def plug_and_play(self, mac: str) -> None:
        """Ask the LAN's SIP plug-and-play server for a provisioning URL (RFC 6080)."""
        try:
            self.endpoint.pnp_subscribe(self._clock(), mac)
        except LocalProtocolError as e:
            log.warning("plug-and-play: %s", e)
        self._pump()

    def flush(self) -> None:
        """After the owner called into the endpoint directly (shutdown): send and report."""
        self._pump()

    @property
    def last_placed(self) -> pe.CallPlaced | pe.CallFailed | None:
        """What the last console command's PlaceCall came to (for the dial reply)."""
        return self._placed

    # ------------------------------------------------------------------ pump

    def _feed(self, event: object, *, strict: bool = False) -> None:
        try:
            actions = self.controller.handle(event, self._clock())
        except PhoneError:
            if strict:
                raise
            log.exception("controller refused %r", event)
            return
        self._execute(actions)

    def _pump(self) -> None:
        if self._pumping:
            return  # an action inside the pump made more work: the loop below takes it
        self._pumping = True
        try:
            ep = self.endpoint
            while True:
                for data, addr in ep.datagrams_to_send(self._clock()):
                    if log.isEnabledFor(logging.DEBUG):
                        log.debug("send %s:\n%s", addr, redact(data))
                    self._send(data, addr)
                event = ep.next_event()
                if event is None:
                    break
                self._on_sip_event(event)
                self._dirty = True
            self._arm_timer()
            if self._dirty:
                # the screen changes with events only (and the 1 s tick): a datagram that
                # changed nothing (a flood's, dropped) costs no screen rebuild
                self._dirty = False
                self._refresh_screen()
        finally:
            self._pumping = False

    def _on_sip_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.ProtocolWarning):
            log.warning("%s (from %s)", event.text, event.source)
            return
        if isinstance(event, ev.CheckSyncRequested | ev.ProvisioningUrlOffered):
            log.info("event %s", event)
            self._on_provisioning(event)  # the phone's provisioning client, not the controller
            return
        if isinstance(event, ev.Unregistered):
            self.unregistered.set()
        elif isinstance(event, ev.IncomingCall):
            self._note_port(event.call_id)
        line = event_to_console(event)
        log.info("event %s", line)
        if line is not None:
            self.broadcast(line)
        self._feed(event)
        if isinstance(event, ev.CallEnded):
            self._release(event.call_id)
        elif isinstance(event, ev.DtmfReceived):
            self.broadcast({"event": "dtmf_received", "call_id": event.call_id,
                            "digit": event.digit, "duration_ms": event.duration_ms})

    def _note_port(self, call_id: str) -> None:
        with contextlib.suppress(LocalProtocolError):
            self._ports[call_id] = self.endpoint.call(call_id).local_port

    def _release(self, call_id: str) -> None:
        if self.media is not None:
            self.media.stop(call_id)
        port = self._ports.pop(call_id, None)
        if port is not None and self.media is not None:
            self.media.release(port)

    # ------------------------------------------------------------- timers

    def _arm_timer(self) -> None:
        times = [t for t in (self.endpoint.get_timer(), self.controller.get_timer())
                 if t is not None]
        deadline = min(times) if times else None
        if self._timer is not None and deadline == self._armed_for:
            return  # already set for it: no cancel and re-create per datagram
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._armed_for = deadline
        if deadline is not None:
            loop = asyncio.get_running_loop()
            delay = max(0.0, deadline - self._clock()) / self._scale
            self._timer = loop.call_later(delay, self._on_timer)
        if self._tick is None and not self._closed:
            # the screen's clock and call timer: one wake-up a second, nothing more
            self._tick = asyncio.get_running_loop().call_later(1.0, self._on_tick)

    def _on_timer(self) -> None:
        self._timer = None
        self._armed_for = None
        self._dirty = True
        now = self._clock()
        ep = self.endpoint
        deadline = ep.get_timer()
        if deadline is not None and deadline <= now:
            ep.handle_timer(now)
        self._execute(self.controller.handle_timer(now))
        self._pump()

    def _on_tick(self) -> None:
        self._tick = None
        if self._closed:
            return
        self._refresh_screen()
        self._tick = asyncio.get_running_loop().call_later(1.0, self._on_tick)

    def close(self) -> None:
        self._closed = True
        for handle in (self._timer, self._tick):
            if handle is not None:
                handle.cancel()
        self._timer = self._tick = None
        if self.ringer is not None:
            self.ringer.stop()

    # ------------------------------------------------------------- screen

    def idle(self) -> bool:
        """No call up and the handset down: a good moment to rebuild the SIP side."""
        return not self.endpoint.calls and self.controller.state in (State.IDLE,
                                                                     State.PREDIAL)

    def refresh(self) -> None:
        """Redraw after a change from outside (a provisioned setting)."""
        self._dirty = True
        self._refresh_screen()

    def notice(self, text: str, seconds: float = 10.0) -> None:
        """Show ``text`` on the idle screen for ``seconds`` (the 1 s tick takes it away):
        a passing message such as a failed provisioning, which is no phone state."""
        self._notice = (text, self._clock() + seconds * self._scale)
        self._refresh_screen()

    def current_screen(self) -> Screen:
        now = self._clock()
        wall = self._wallclock()
        notice = ""
        if self._notice is not None:
            if now < self._notice[1]:
                notice = self._notice[0]
            else:
                self._notice = None
        return screen_for(self.controller.view(), now, clock=wall.strftime("%H:%M"),
                          address=self.address, notice=notice)

    def _refresh_screen(self) -> None:
        screen = self.current_screen()
        if screen == self.screen:
            return
        self.screen = screen
        if self.display is not None:
            try:
                self.display.show(screen)
            except Exception:  # a display that fails must not take the phone with it
                log.exception("display failed")
        self.broadcast({"event": "screen", "lines": screen.text_lines()})

    # ------------------------------------------------------------ actions

    def _execute(self, actions: list[act.Action]) -> None:
        for a in actions:
            try:
                self._do(a)
            except LocalProtocolError as e:
                log.warning("%s: %s", type(a).__name__, e)
                if self._failures is not None:
                    self._failures.append(str(e))
            except Exception:  # a device that fails must not stop the actions after it
                log.exception("%s failed", type(a).__name__)
                if self._failures is not None:
                    self._failures.append(f"{type(a).__name__} failed")

    def _do(self, a: act.Action) -> None:  # noqa: C901 - one branch per action
        ep, now, media = self.endpoint, self._clock(), self.media
        if isinstance(a, act.PlaceCall):
            try:
                call_id = ep.dial(a.target, now)
            except (LocalProtocolError, OSError) as e:
                feedback: pe.CallPlaced | pe.CallFailed = pe.CallFailed(a.target, str(e))
            else:
                self._note_port(call_id)
                feedback = pe.CallPlaced(call_id, a.target, str(ep.call(call_id).remote.uri))
            self._placed = feedback
            self._feed(feedback)
        elif isinstance(a, act.Alert):
            ep.ring(now, a.call_id)
        elif isinstance(a, act.Answer):
            ep.answer(now, a.call_id)
        elif isinstance(a, act.Reject):
            ep.reject(now, a.code, a.call_id)
        elif isinstance(a, act.Hangup):
            ep.hangup(now, a.call_id)
        elif isinstance(a, act.Hold):
            ep.hold(now, a.on, a.call_id)
        elif isinstance(a, act.SendDtmf):
            self._send_dtmf(a)
        elif isinstance(a, act.StartMedia):
            if media is not None:
                media.start(a.call_id, a.media, muted=a.muted)
        elif isinstance(a, act.StopMedia):
            if media is not None:
                media.stop(a.call_id)
        elif isinstance(a, act.Mute | act.MediaHold):
            session = media.session(a.call_id) if media is not None else None
            if session is not None:
                (session.mute if isinstance(a, act.Mute) else session.hold)(a.on)
        elif isinstance(a, act.PlayTone):
            if media is not None:
                media.play_tone(a.name, a.seconds)
        elif isinstance(a, act.StopTone):
            if media is not None:
                media.stop_tone()
        elif isinstance(a, act.Ring):
            self._ring(a.on)
        elif isinstance(a, act.SetLed):
            if self.leds is not None:
                self.leds.set(a.name, a.mode.value)
        elif isinstance(a, act.LogCall):
            self.history.add(HistoryEntry(
                a.kind.value, a.remote, a.name,
                self._wallclock().isoformat(timespec="seconds"), a.duration, a.reason))

    def _ring(self, on: bool) -> None:
        if on == self.ringing:
            return
        self.ringing = on
        if self.ringer is not None:
            if on:
                self.ringer.ring(self.ring_cadence)
            else:
                self.ringer.stop()
        if self.ringtone and self.media is not None:
            if on:
                self.media.play_ringtone(tuple(self.ring_cadence))
            else:
                self.media.stop_tone()
        self.broadcast({"event": "ringer", "on": on})

    def _send_dtmf(self, a: act.SendDtmf) -> None:
        session = self.media.session(a.call_id) if self.media is not None else None
        if a.method is act.DtmfMethod.RFC4733 and session is not None:
            session.send_dtmf(a.digits)
            self.last_dtmf_method = act.DtmfMethod.RFC4733
            return
        self.last_dtmf_method = act.DtmfMethod.INFO
        # the far end takes no telephone-events: SIP INFO, one digit at a time
        self.endpoint.send_dtmf_info(self._clock(), a.digits, a.call_id)


def redact(data: bytes) -> str:
    """A message for the debug log, digest responses blanked (no secrets in logs)."""
    text = data.decode("utf-8", "replace")
    return re.sub(r'(response|cnonce)="[^"]*"', r'\1="…"', text)
