"""The phone's behaviour: one sans-I/O controller (``handle(event, now) -> actions``).

Theory of operation
-------------------
The controller is told everything that happens to the phone: the person's hands
(``phone.events``: hook, keys), console commands, the SIP endpoint's reports
(``sip.events``), the runtime's feedback after an action, and the time. It answers
with ``phone.actions`` for the runtime to carry out, in order, and keeps the one
``State`` the transition table (``_state.py``) allows. It decides everything a person
would call the phone's behaviour: when a dialled number is complete (the digit map and
the interdigit timers), that an incoming call rings (180 and the ringer) or is turned
away (486 while busy), which tone plays, that early media is heard but the room is not,
how DTMF is sent, what the history records. The SIP core reports; the phone decides.

Nothing here opens a socket, reads a clock or touches a pin: time arrives as ``now``
(monotonic seconds), ``get_timer()`` says when to call ``handle_timer``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ..sdp import NegotiatedMedia
from ..sip import events as sip
from . import actions as act
from . import events as pe
from ._state import IN_CALL, TRANSITIONS, State
from .dialplan import DigitMap, Match


class PhoneError(Exception):
    """A console command that does not apply now; ``str(e)`` says why."""


@dataclass(frozen=True, slots=True)
class PhoneSettings:
    """The controller's part of the config ([phone])."""

    interdigit_timeout: float = 4.0  # no digit for this long: the number is complete
    digit_map_timeout: float = 2.0  # the digit map's T: a shorter pause completes it
    digit_map: DigitMap | None = None  # None: only # and the timeout complete a number
    predial_timeout: float = 30.0  # digits typed on-hook are forgotten after this
    dialtone_timeout: float = 30.0  # off-hook with nothing dialled: give up (congestion)
    ended_linger: float = 4.0  # hands-free: how long the end of a call stays on screen
    ring_timeout: float = 60.0  # an unanswered incoming call is turned away (480)
    no_answer_timeout: float = 180.0  # an outgoing call nobody answers is cancelled
    fail_tone_seconds: float = 30.0  # busy/congestion tone with the handset still up


class Registration(enum.Enum):
    NONE = "none"  # no registrar configured (direct SIP URIs only)
    REGISTERING = "registering"
    REGISTERED = "registered"
    FAILED = "failed"
    UNREGISTERED = "unregistered"


@dataclass(slots=True)
class _Call:
    direction: act.CallKind  # DIALLED or RECEIVED
    remote: str  # a URI, or the digits as dialled until the endpoint says the URI
    name: str
    started: float
    call_id: str | None = None  # None until the runtime reports CallPlaced
    dialled: str = ""  # what was dialled (for redial and the history)
    connected_at: float | None = None
    media: NegotiatedMedia | None = None
    early: bool = False  # playing the far end's early media (we send silence)
    muted: bool = False
    sip_connected: bool = False  # the SIP side is up (2xx, or our 2xx ACKed)
    pending_hold: bool | None = None  # a hold (True) or resume (False) not yet answered


@dataclass(frozen=True, slots=True)
class PhoneView:
    """What the phone shows: the input of ``screens.screen_for`` and of ``status``."""

    state: State
    aor: str
    registration: Registration
    reg_status: int | None = None
    reg_reason: str = ""
    digits: str = ""
    direction: str = ""  # "outgoing" | "incoming" | ""
    remote: str = ""
    remote_name: str = ""
    call_id: str | None = None
    connected_at: float | None = None
    codec: str = ""
    muted: bool = False
    held: bool = False
    speaker: bool = False
    offhook: bool = False
    early_media: bool = False
    end_reason: str = ""
    end_status: int | None = None
    missed: int = 0


# SIP end reasons that get a tone while the handset is still up
_BUSY_REASONS: Final = frozenset({sip.EndReason.BUSY, sip.EndReason.REMOTE_HANGUP})
_SILENT_REASONS: Final = frozenset({sip.EndReason.CANCELLED, sip.EndReason.REJECTED,
                                    sip.EndReason.LOCAL_HANGUP})


class PhoneController:
    def __init__(self, settings: PhoneSettings, *, aor: str, registrar: bool = True,
                 last_dialled: str = "", missed: int = 0) -> None:
        self.settings = settings
        self.state = State.IDLE
        self._aor = aor
        self._reg = Registration.REGISTERING if registrar else Registration.NONE
        self._reg_status: int | None = None
        self._reg_reason = ""
        self._digits = ""
        self._call: _Call | None = None
        self._held = False
        self._offhook = False
        self._speaker = False
        self._end_reason = ""
        self._end_status: int | None = None
        self._missed = missed
        self.last_dialled = last_dialled
        self._timers: dict[str, float] = {}
        self._leds: dict[str, act.LedMode] = {}
        self._out: list[act.Action] = []

    # ------------------------------------------------------------------ API

    def handle(self, event: object, now: float) -> list[act.Action]:
        """Feed one event; returns the actions to carry out, in order."""
        self._out = []
        kind = self._kind(event)
        if kind is None:
            self._side_effects(event, now)
            self._update_leds()
            return self._out
        row = TRANSITIONS[self.state]
        if kind not in row:
            if isinstance(event, pe.CommandEvent):
                if kind in ("dial", "redial") and self.state in IN_CALL:
                    raise PhoneError("already in a call")
                if self._call is None and kind in ("answer", "hangup", "hold", "mute",
                                                   "dtmf"):
                    raise PhoneError("no call")
                raise PhoneError(f"cannot {_COMMAND_NAMES.get(kind, kind)} while "
                                 f"{self.state.value}")
            return []
        handler: Callable[[object, float], State] = getattr(self, f"_on_{kind}")
        before = self.state
        new = handler(event, now)
        if new not in row[kind]:
            raise AssertionError(f"{before.value} --{kind}--> {new.value} is not in the "
                                 f"transition table")
        self._enter(before, new, now)
        self._update_leds()
        return self._out

    def boot(self) -> list[act.Action]:
        """What the phone shows before anything happens: its lamps' first states."""
        self._out = []
        self._update_leds()
        return self._out

    def get_timer(self) -> float | None:
        return min(self._timers.values()) if self._timers else None

    def handle_timer(self, now: float) -> list[act.Action]:
        out: list[act.Action] = []
        for name, deadline in sorted(self._timers.items(), key=lambda kv: kv[1]):
            if deadline <= now and self._timers.get(name) == deadline:
                del self._timers[name]
                out += self.handle(_Timer(name), now)
        return out

    @property
    def call_id(self) -> str | None:
        return self._call.call_id if self._call is not None else None

    def view(self) -> PhoneView:
        c = self._call
        return PhoneView(
            state=self.state, aor=self._aor, registration=self._reg,
            reg_status=self._reg_status, reg_reason=self._reg_reason, digits=self._digits,
            direction=("" if c is None else
                       "outgoing" if c.direction is act.CallKind.DIALLED else "incoming"),
            remote=c.remote if c else "", remote_name=c.name if c else "",
            call_id=c.call_id if c else None, connected_at=c.connected_at if c else None,
            codec=c.media.codec.encoding if c and c.media else "",
            muted=c.muted if c else False, held=self._held, speaker=self._speaker,
            offhook=self._offhook, early_media=c.early if c else False,
            end_reason=self._end_reason, end_status=self._end_status, missed=self._missed)

    # ---------------------------------------------------------- classifying

    def _kind(self, event: object) -> str | None:
        """The table's name for an event; None for one that never changes the state."""
        if isinstance(event, pe.HookOff):
            return "hook_off"
        if isinstance(event, pe.HookOn):
            return "hook_on"
        if isinstance(event, pe.HookFlash):
            return "hook_flash"
        if isinstance(event, pe.KeyPressed):
            if event.key in pe.DIGIT_KEYS:
                return "digit"
            return _KEY_KINDS.get(event.key)
        if isinstance(event, _Timer):
            return "timer"
        if isinstance(event, pe.DialCommand):
            return "dial"
        if isinstance(event, pe.RedialCommand):
            return "redial"
        if isinstance(event, pe.AnswerCommand):
            return "answer"
        if isinstance(event, pe.HangupCommand):
            return "hangup"
        if isinstance(event, pe.HoldCommand):
            if event.on != (self.state is State.TALKING):
                raise PhoneError("not on hold" if not event.on else
                                 f"cannot hold while {self.state.value}")
            self._can_reinvite(strict=True)
            return "hold"
        if isinstance(event, pe.MuteCommand):
            return "mute"
        if isinstance(event, pe.DtmfCommand):
            return "dtmf"
        if isinstance(event, pe.CallPlaced | pe.CallFailed):
            return "call_placed" if isinstance(event, pe.CallPlaced) else "call_failed"
        if isinstance(event, sip.IncomingCall):
            return "incoming"
        if isinstance(event, sip.CallRinging | sip.CallConnected | sip.CallUpdated
                      | sip.CallEnded):
            if self._call is None or event.call_id != self._call.call_id:
                return None  # a call we turned away, or one already over for us
            return _SIP_KINDS[type(event)]
        if isinstance(event, sip.CallUpdateFailed):
            if self._call is None or event.call_id != self._call.call_id:
                return None
            return "update_failed"
        return None

    def _side_effects(self, event: object, now: float) -> None:
        """Events that change what is shown, never the state."""
        if isinstance(event, sip.Registered):
            self._reg, self._reg_status, self._reg_reason = Registration.REGISTERED, None, ""
        elif isinstance(event, sip.RegistrationFailed):
            self._reg, self._reg_status = Registration.FAILED, event.status
            self._reg_reason = event.reason
        elif isinstance(event, sip.Unregistered):
            self._reg, self._reg_reason = Registration.UNREGISTERED, event.reason

    # ------------------------------------------------------------ handlers
    # each returns the new state; _enter does what entering and leaving a state means

    def _on_hook_off(self, event: object, now: float) -> State:
        self._offhook = True
        st = self.state
        if st is State.PREDIAL:
            return self._place(self._digits, now)
        if st is State.RINGING:
            return self._answer(now)
        if st in (State.IDLE, State.ENDED):
            self._speaker = False
            return State.DIALTONE
        self._speaker = False  # from hands-free to the handset
        return st

    def _on_hook_on(self, event: object, now: float) -> State:
        self._offhook = False
        if self._speaker and self.state is not State.ENDED:
            return self.state  # hands-free carries on
        if self.state in IN_CALL:
            self._hangup("local hangup", now)
        return State.IDLE

    def _on_hook_flash(self, event: object, now: float) -> State:
        st = self.state
        if st in (State.TALKING, State.HELD):
            return self._hold(st is State.TALKING) if self._can_reinvite() else st
        if st in (State.COLLECTING, State.ENDED):
            self._digits = ""
            return State.DIALTONE  # a flash clears what was typed: dial tone again
        return st

    def _on_speaker(self, event: object, now: float) -> State:
        st = self.state
        if st is State.IDLE:
            self._speaker = True
            return State.DIALTONE
        if st is State.PREDIAL:
            self._speaker = True
            return self._place(self._digits, now)
        if st is State.RINGING:
            self._speaker = not self._offhook
            return self._answer(now)
        self._speaker = not self._speaker
        if self._speaker or self._offhook:
            return st
        if st in IN_CALL:
            self._hangup("local hangup", now)
        return State.IDLE

    def _on_digit(self, event: object, now: float) -> State:
        assert isinstance(event, pe.KeyPressed)
        key, st = event.key, self.state
        if st is State.TALKING:
            if self._call is not None and self._call.sip_connected:
                self._send_dtmf(key)
            return st
        if st is State.IDLE:
            if key == "#":
                return st
            self._missed = 0
            self._digits = key
            self._timers["predial"] = now + self.settings.predial_timeout
            return State.PREDIAL
        if st is State.PREDIAL:
            if key == "#":
                self._speaker = True
                return self._place(self._digits, now)
            self._digits += key
            self._timers["predial"] = now + self.settings.predial_timeout
            return st
        # DIALTONE / COLLECTING
        if key == "#":
            return self._place(self._digits, now) if self._digits else st
        self._digits += key
        return self._check_number(now)

    def _check_number(self, now: float) -> State:
        dm = self.settings.digit_map
        result = dm.match(self._digits) if dm is not None else Match.PARTIAL
        if result is Match.COMPLETE:
            return self._place(self._digits, now)
        timeout = (self.settings.digit_map_timeout if result is Match.COMPLETE_ON_TIMER
                   else self.settings.interdigit_timeout)
        self._timers["interdigit"] = now + timeout
        return State.COLLECTING

    def _on_timer(self, event: object, now: float) -> State:
        assert isinstance(event, _Timer)
        st = self.state
        if event.name == "interdigit" and st is State.COLLECTING:
            return self._place(self._digits, now)
        if event.name == "predial" and st is State.PREDIAL:
            self._digits = ""
            return State.IDLE
        if event.name == "dialtone" and st is State.DIALTONE:
            return self._ended("dialling timed out", None, now, tone="congestion")
        if event.name == "ended" and st is State.ENDED:
            self._speaker = False
            return State.IDLE
        if event.name == "ring" and st is State.RINGING:
            c = self._call
            assert c is not None and c.call_id is not None
            self._out.append(act.Reject(c.call_id, 480))  # Temporarily Unavailable
            self._finish(act.CallKind.MISSED, "no answer", now)
            self._missed += 1
            return State.IDLE
        if event.name == "no_answer" and st in (State.CALLING, State.RINGBACK):
            self._hangup("no answer", now)
            return self._ended("no answer", None, now, tone=None)
        return st

    def _on_dial(self, event: object, now: float) -> State:
        assert isinstance(event, pe.DialCommand)
        if not event.target.strip():
            raise PhoneError("nothing to dial")
        if not self._offhook:
            self._speaker = True
        return self._place(event.target.strip(), now)

    def _on_redial(self, event: object, now: float) -> State:
        if not self.last_dialled:
            if isinstance(event, pe.RedialCommand):
                raise PhoneError("nothing to redial")
            return self.state
        if not self._offhook:
            self._speaker = True
        return self._place(self.last_dialled, now)

    def _on_answer(self, event: object, now: float) -> State:
        self._speaker = not self._offhook
        return self._answer(now)

    def _on_hangup(self, event: object, now: float) -> State:
        st = self.state
        if st is State.RINGING:
            c = self._call
            assert c is not None and c.call_id is not None
            self._out.append(act.Reject(c.call_id, 486))
            self._finish(act.CallKind.RECEIVED, "rejected", now)  # seen, turned away
            return State.IDLE
        if st in IN_CALL:
            self._hangup("local hangup", now)
        self._digits = ""
        if self._offhook and st in IN_CALL:
            return self._ended("local hangup", None, now, tone=None)
        if self._offhook:
            return State.DIALTONE if st is not State.ENDED else State.ENDED
        self._speaker = False
        return State.IDLE

    def _on_hold(self, event: object, now: float) -> State:
        if not self._can_reinvite():  # a key: nothing happens (a command was refused)
            return self.state
        return self._hold(self.state is State.TALKING)

    def _can_reinvite(self, *, strict: bool = False) -> bool:
        """Hold and resume need a call the SIP side has connected, with no hold or resume
        of ours still unanswered (one re-INVITE at a time, RFC 3261 §14.1)."""
        c = self._call
        why = ("no call" if c is None else
               "the call is not connected yet" if not c.sip_connected else
               "a hold or resume is already in progress" if c.pending_hold is not None else
               "")
        if why and strict:
            raise PhoneError(why)
        return not why

    def _on_update_failed(self, event: object, now: float) -> State:
        """Our hold or resume was refused: the media is as it was, and so are we."""
        c = self._call
        assert c is not None and c.call_id is not None
        asked, c.pending_hold = c.pending_hold, None
        if asked is None:
            return self.state
        self._out.append(act.MediaHold(c.call_id, not asked))
        return State.TALKING if asked else State.HELD

    def _on_mute(self, event: object, now: float) -> State:
        c = self._call
        if c is None:
            raise PhoneError("no call")
        on = event.on if isinstance(event, pe.MuteCommand) else not c.muted
        c.muted = on
        if c.call_id is not None and c.media is not None and not c.early:
            self._out.append(act.Mute(c.call_id, on))
        return self.state

    def _on_dtmf(self, event: object, now: float) -> State:
        assert isinstance(event, pe.DtmfCommand)
        digits = event.digits.upper()
        if not digits or any(d not in "0123456789*#ABCD" for d in digits):
            raise PhoneError(f"not DTMF digits: {event.digits!r} (use 0-9 * # A-D)")
        if self._call is None or not self._call.sip_connected:
            raise PhoneError("the call is not connected yet")
        self._send_dtmf(digits)
        return self.state

    def _on_call_placed(self, event: object, now: float) -> State:
        assert isinstance(event, pe.CallPlaced) and self._call is not None
        self._call.call_id = event.call_id
        self._call.remote = event.uri
        self.last_dialled = event.target
        return State.CALLING

    def _on_call_failed(self, event: object, now: float) -> State:
        assert isinstance(event, pe.CallFailed)
        self._call = None
        return self._ended(event.reason, None, now, tone="congestion")

    def _on_incoming(self, event: object, now: float) -> State:
        assert isinstance(event, sip.IncomingCall)
        st = self.state
        if st in (State.IDLE, State.PREDIAL) or (st is State.ENDED and not self._offhook):
            self._digits = ""
            self._speaker = False
            self._call = _Call(act.CallKind.RECEIVED, event.remote_uri,
                               event.display_name or "", now, call_id=event.call_id)
            self._out.append(act.Alert(event.call_id))
            return State.RINGING
        # busy: the person is on the phone or has the handset up (call waiting comes later)
        self._out.append(act.Reject(event.call_id, 486))
        self._out.append(act.LogCall(act.CallKind.MISSED, event.remote_uri,
                                     event.display_name or "", 0.0, "busy"))
        self._missed += 1
        return st

    def _on_ringing(self, event: object, now: float) -> State:
        assert isinstance(event, sip.CallRinging) and self._call is not None
        c = self._call
        assert c.call_id is not None
        if event.media is not None and event.media.active and not c.early:
            # early media: the far end's announcement or ringback instead of ours; the
            # room is not heard before the answer (we send silence, which opens NAT)
            c.early, c.media = True, event.media
            self._out += [act.StopTone(), act.StartMedia(c.call_id, event.media, muted=True)]
        elif not c.early and self.state is State.CALLING:
            self._out.append(act.PlayTone("ringback"))
        return State.RINGBACK

    def _on_connected(self, event: object, now: float) -> State:
        assert isinstance(event, sip.CallConnected) and self._call is not None
        c = self._call
        assert c.call_id is not None
        if c.connected_at is None:
            c.connected_at = now
        c.sip_connected = True
        self._out.append(act.StopTone())
        if event.media is not None:
            c.media = event.media
            self._out.append(act.StartMedia(c.call_id, event.media, muted=c.muted))
            if c.early:
                c.early = False
                self._out.append(act.Mute(c.call_id, c.muted))
        return State.TALKING if self.state is not State.HELD else State.HELD

    def _on_updated(self, event: object, now: float) -> State:
        assert isinstance(event, sip.CallUpdated) and self._call is not None
        c = self._call
        assert c.call_id is not None
        c.pending_hold = None  # our re-INVITE's answer (the far end's own gets a 491 then)
        if event.media is not None:
            c.media = event.media
            self._out.append(act.StartMedia(c.call_id, event.media, muted=c.muted))
        return self.state

    def _on_ended(self, event: object, now: float) -> State:
        assert isinstance(event, sip.CallEnded) and self._call is not None
        c = self._call
        assert c.call_id is not None
        was = self.state
        self._out.append(act.StopMedia(c.call_id))
        if was is State.RINGING:
            self._finish(act.CallKind.MISSED, event.reason, now)
            self._missed += 1
            return State.IDLE
        self._finish(c.direction, event.reason, now)
        reason = str(event.reason)
        tone = (None if reason in _SILENT_REASONS else
                "busy" if reason in _BUSY_REASONS else
                "congestion" if (event.status or 0) >= 400 or reason else None)
        if reason == sip.EndReason.REMOTE_HANGUP and not self._offhook:
            tone = None  # hands-free: no tone needed to tell the far end hung up
        return self._ended(reason, event.status, now, tone=tone)

    # ------------------------------------------------------------ helpers

    def _place(self, target: str, now: float) -> State:
        self._digits = ""
        if not target:
            return self._ended("nothing to dial", None, now, tone="congestion")
        self._call = _Call(act.CallKind.DIALLED, target, "", now, dialled=target)
        self._out.append(act.PlaceCall(target))
        return State.CALLING

    def _answer(self, now: float) -> State:
        c = self._call
        assert c is not None and c.call_id is not None
        c.connected_at = now
        self._out.append(act.Answer(c.call_id))
        return State.TALKING

    def _hangup(self, reason: str, now: float) -> None:
        c = self._call
        if c is None:
            return
        if c.call_id is not None:
            self._out += [act.Hangup(c.call_id), act.StopMedia(c.call_id)]
        self._finish(c.direction, reason, now)

    def _hold(self, on: bool) -> State:
        c = self._call
        assert c is not None and c.call_id is not None
        c.pending_hold = on
        self._out += [act.Hold(c.call_id, on), act.MediaHold(c.call_id, on)]
        return State.HELD if on else State.TALKING

    def _send_dtmf(self, digits: str) -> None:
        c = self._call
        if c is None or c.call_id is None or self.state is not State.TALKING:
            raise PhoneError("no call to send DTMF in")
        method = (act.DtmfMethod.RFC4733 if c.media is not None
                  and c.media.telephone_event_pt is not None else act.DtmfMethod.INFO)
        self._out.append(act.SendDtmf(c.call_id, digits, method))

    def _finish(self, kind: act.CallKind, reason: str, now: float) -> None:
        """The call is over for the person: record it, forget it."""
        c = self._call
        if c is None:
            return
        talked = now - c.connected_at if c.connected_at is not None else 0.0
        remote = c.dialled or c.remote
        self._out.append(act.LogCall(kind, remote, c.name, round(talked, 1), str(reason)))
        self._call = None

    def _ended(self, reason: str, status: int | None, now: float, *,
               tone: str | None) -> State:
        self._end_reason, self._end_status = str(reason), status
        path_open = self._offhook or self._speaker
        if not path_open:
            return State.IDLE
        if tone is not None:
            seconds = (self.settings.fail_tone_seconds if self._offhook
                       else min(self.settings.ended_linger, 3.0))
            self._out.append(act.PlayTone(tone, seconds))
        return State.ENDED

    def _enter(self, before: State, new: State, now: float) -> None:
        """What leaving ``before`` and entering ``new`` means, whatever the input."""
        self.state = new
        if before is new:
            return
        if before is State.DIALTONE or (before is State.RINGBACK and new is not State.TALKING):
            self._out.insert(0, act.StopTone())
        if before is State.ENDED:
            self._out.insert(0, act.StopTone())
        if before is State.RINGING:
            self._out.insert(0, act.Ring(False))
        if new is State.RINGING:
            self._out.append(act.Ring(True))
        if new is State.DIALTONE:
            self._out.append(act.PlayTone("dial"))
            self._timers["dialtone"] = now + self.settings.dialtone_timeout
        if new is State.ENDED and not self._offhook:
            self._timers["ended"] = now + self.settings.ended_linger
        if new is State.RINGING:
            self._timers["ring"] = now + self.settings.ring_timeout
        if new is State.CALLING:
            self._timers["no_answer"] = now + self.settings.no_answer_timeout
        if new is State.HELD or before is State.HELD:
            self._held = new is State.HELD
        if new not in (State.ENDED,) and before is State.ENDED:
            self._end_reason, self._end_status = "", None
        # timers that belong to the states left
        for name, states in _TIMER_STATES.items():
            if new not in states:
                self._timers.pop(name, None)
        if new is State.IDLE:
            self._speaker = False
            self._held = False
            self._digits = ""

    def _update_leds(self) -> None:
        st = self.state
        line = {Registration.REGISTERED: act.LedMode.ON,
                Registration.REGISTERING: act.LedMode.BLINK,
                Registration.FAILED: act.LedMode.BLINK_FAST,
                Registration.UNREGISTERED: act.LedMode.OFF,
                Registration.NONE: act.LedMode.ON}[self._reg]
        in_use = (act.LedMode.BLINK_FAST if st is State.RINGING else
                  act.LedMode.BLINK if st is State.HELD else
                  act.LedMode.ON if st in IN_CALL or self._offhook or self._speaker else
                  act.LedMode.OFF)
        mwi = act.LedMode.BLINK if self._missed else act.LedMode.OFF
        for name, mode in (("line", line), ("in_use", in_use), ("mwi", mwi)):
            if self._leds.get(name) is not mode:
                self._leds[name] = mode
                self._out.append(act.SetLed(name, mode))


@dataclass(frozen=True, slots=True)
class _Timer:
    name: str


_TIMER_STATES: Final = {"interdigit": {State.COLLECTING}, "predial": {State.PREDIAL},
                        "dialtone": {State.DIALTONE}, "ended": {State.ENDED},
                        "ring": {State.RINGING},
                        "no_answer": {State.CALLING, State.RINGBACK}}
_KEY_KINDS: Final = {"speaker": "speaker", "hold": "hold", "mute": "mute",
                     "redial": "redial"}
_SIP_KINDS: Final[dict[type, str]] = {sip.CallRinging: "ringing",
                                      sip.CallConnected: "connected",
                                      sip.CallUpdated: "updated", sip.CallEnded: "ended"}
_COMMAND_NAMES: Final = {"dial": "dial", "redial": "redial", "answer": "answer",
                         "hangup": "hang up", "hold": "hold", "mute": "mute",
                         "dtmf": "send DTMF"}

__all__ = ["PhoneController", "PhoneError", "PhoneSettings", "PhoneView",
           "Registration"]
