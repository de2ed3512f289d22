"""The phone controller on a fake clock: events in, actions out, as a person uses a desk phone."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deskphone.phone import actions as act
from deskphone.phone import events as pe
from deskphone.phone._state import TRANSITIONS, State
from deskphone.phone.controller import PhoneController, PhoneError, PhoneSettings, Registration
from deskphone.phone.dialplan import DigitMap
from deskphone.phone.screens import screen_for
from deskphone.sdp import PCMU, Direction, NegotiatedMedia
from deskphone.sip import events as sip

CALL = "c1@test"
MEDIA = NegotiatedMedia("127.0.0.2", 4000, 16384, PCMU, 101, 20, Direction.SENDRECV, False)
NO_EVENTS = NegotiatedMedia("127.0.0.2", 4000, 16384, PCMU, None, 20, Direction.SENDRECV,
                            False)


class Phone:
    """A controller with a clock and a record of every action."""

    def __init__(self, **kw: object) -> None:
        self.c = PhoneController(PhoneSettings(**kw), aor="sip:1001@pbx")  # type: ignore[arg-type]
        self.now = 0.0
        self.log: list[act.Action] = []

    def __call__(self, event: object) -> list[act.Action]:
        out = self.c.handle(event, self.now)
        self.log += out
        return out

    def keys(self, text: str) -> list[act.Action]:
        out: list[act.Action] = []
        for k in text:
            out += self(pe.KeyPressed(k))
        return out

    def advance(self, seconds: float) -> list[act.Action]:
        end = self.now + seconds
        out: list[act.Action] = []
        while (t := self.c.get_timer()) is not None and t <= end:
            self.now = t
            out += self.c.handle_timer(t)
        self.now = end
        self.log += out
        return out

    @property
    def state(self) -> State:
        return self.c.state

    def placed(self, call_id: str = CALL) -> None:
        """The runtime carried out PlaceCall."""
        target = next(a.target for a in reversed(self.log) if isinstance(a, act.PlaceCall))
        self(pe.CallPlaced(call_id, target, f"sip:{target}@pbx"))


def only(actions: list[act.Action], kind: type) -> list[act.Action]:
    return [a for a in actions if isinstance(a, kind)]


def no_leds(actions: list[act.Action]) -> list[act.Action]:
    return [a for a in actions if not isinstance(a, act.SetLed)]


# ----------------------------------------------------------------- dialling


def test_off_hook_plays_dial_tone_and_the_first_digit_stops_it() -> None:
    p = Phone()
    assert no_leds(p(pe.HookOff())) == [act.PlayTone("dial")]
    assert p.state is State.DIALTONE
    assert no_leds(p(pe.KeyPressed("1"))) == [act.StopTone()]
    assert p.state is State.COLLECTING


def test_hash_dials_what_was_typed() -> None:
    p = Phone()
    p(pe.HookOff())
    out = p.keys("1002#")
    assert only(out, act.PlaceCall) == [act.PlaceCall("1002")]
    assert p.state is State.CALLING


def test_interdigit_timeout_dials() -> None:
    p = Phone(interdigit_timeout=4.0)
    p(pe.HookOff())
    p.keys("1002")
    assert only(p.advance(3.9), act.PlaceCall) == []
    assert only(p.advance(0.2), act.PlaceCall) == [act.PlaceCall("1002")]


def test_each_digit_restarts_the_interdigit_timer() -> None:
    p = Phone(interdigit_timeout=4.0)
    p(pe.HookOff())
    p.keys("1")
    p.advance(3.0)
    p.keys("0")
    assert only(p.advance(3.0), act.PlaceCall) == []
    assert only(p.advance(1.1), act.PlaceCall) == [act.PlaceCall("10")]


def test_digit_map_dials_as_soon_as_it_matches() -> None:
    p = Phone(digit_map=DigitMap.parse("[2-9]xxx|0T|*xx"))
    p(pe.HookOff())
    assert only(p.keys("100"), act.PlaceCall) == []  # 1xxx is not in the map
    p(pe.HookOn())
    p(pe.HookOff())
    assert only(p.keys("2002"), act.PlaceCall) == [act.PlaceCall("2002")]


def test_digit_map_t_waits_for_the_short_timer() -> None:
    p = Phone(digit_map=DigitMap.parse("[2-9]xxx|0T"), digit_map_timeout=2.0,
              interdigit_timeout=4.0)
    p(pe.HookOff())
    p.keys("0")
    assert only(p.advance(1.9), act.PlaceCall) == []
    assert only(p.advance(0.2), act.PlaceCall) == [act.PlaceCall("0")]


def test_on_hook_while_dialling_abandons() -> None:
    p = Phone()
    p(pe.HookOff())
    p.keys("100")
    out = p(pe.HookOn())
    assert p.state is State.IDLE and only(out, act.PlaceCall) == []
    assert p.advance(10) == [] or only(p.log, act.PlaceCall) == []


def test_predial_digits_on_hook_then_lift_places_the_call() -> None:
    p = Phone()
    assert no_leds(p.keys("1002")) == []  # no tone on-hook: the screen shows the digits
    assert p.state is State.PREDIAL
    assert screen_for(p.c.view(), p.now).title == "1002"
    out = p(pe.HookOff())
    assert only(out, act.PlaceCall) == [act.PlaceCall("1002")]
    assert only(out, act.PlayTone) == []  # no dial tone: the number goes out at once


def test_predial_hash_places_the_call_hands_free() -> None:
    p = Phone()
    p.keys("1002#")
    assert only(p.log, act.PlaceCall) == [act.PlaceCall("1002")]
    assert p.c.view().speaker


def test_predial_is_forgotten_after_its_timeout() -> None:
    p = Phone(predial_timeout=30.0)
    p.keys("55")
    p.advance(31)
    assert p.state is State.IDLE and p.c.view().digits == ""


def test_dial_tone_gives_up_after_its_timeout() -> None:
    p = Phone(dialtone_timeout=30.0)
    p(pe.HookOff())
    out = p.advance(31)
    assert p.state is State.ENDED
    assert act.PlayTone("congestion", 30.0) in out


# -------------------------------------------------------------- outgoing calls


def outgoing(p: Phone, media: NegotiatedMedia = MEDIA) -> None:
    p(pe.HookOff())
    p.keys("1002#")
    p.placed()
    p(sip.CallRinging(CALL, 180))
    p(sip.CallConnected(CALL, media))


def test_outgoing_call_ringback_then_media() -> None:
    p = Phone()
    p(pe.HookOff())
    p.keys("1002#")
    p.placed()
    assert p.state is State.CALLING
    assert no_leds(p(sip.CallRinging(CALL, 180))) == [act.PlayTone("ringback")]
    out = no_leds(p(sip.CallConnected(CALL, MEDIA)))
    assert out == [act.StopTone(), act.StartMedia(CALL, MEDIA, muted=False)]
    assert p.state is State.TALKING


def test_early_media_is_heard_but_the_room_is_not_until_the_answer() -> None:
    p = Phone()
    p(pe.HookOff())
    p.keys("1002#")
    p.placed()
    out = no_leds(p(sip.CallRinging(CALL, 183, MEDIA)))
    assert out == [act.StopTone(), act.StartMedia(CALL, MEDIA, muted=True)]
    p(pe.KeyPressed("mute"))  # muted while it rings: stays muted after the answer
    out = no_leds(p(sip.CallConnected(CALL, MEDIA)))
    assert out[-1] == act.Mute(CALL, True)


def test_on_hook_in_a_call_hangs_up_and_logs_it() -> None:
    p = Phone()
    outgoing(p)
    p.advance(65)
    out = p(pe.HookOn())
    assert act.Hangup(CALL) in out
    log = only(out, act.LogCall)
    assert log == [act.LogCall(act.CallKind.DIALLED, "1002", "", 65.0, "local hangup")]
    assert p.state is State.IDLE


def test_busy_plays_the_busy_tone_until_on_hook() -> None:
    p = Phone()
    p(pe.HookOff())
    p.keys("1002#")
    p.placed()
    out = p(sip.CallEnded(CALL, "busy", 486))
    assert act.PlayTone("busy", 30.0) in out
    assert p.state is State.ENDED
    assert screen_for(p.c.view(), p.now).title == "Busy"
    assert no_leds(p(pe.HookOn()))[0] == act.StopTone()
    assert p.state is State.IDLE


def test_failure_shows_the_reason_and_plays_congestion() -> None:
    p = Phone()
    p(pe.HookOff())
    p.keys("1009#")
    p.placed()
    out = p(sip.CallEnded(CALL, "not found", 404))
    assert act.PlayTone("congestion", 30.0) in out
    assert screen_for(p.c.view(), p.now).title == "Number not found (404)"


def test_a_target_that_cannot_be_called_ends_with_its_reason() -> None:
    p = Phone()
    p(pe.HookOff())
    p.keys("1#")
    p(pe.CallFailed("1", "no RTP port"))
    assert p.state is State.ENDED and p.c.view().end_reason == "no RTP port"


def test_keys_in_a_call_send_dtmf_by_the_negotiated_method() -> None:
    p = Phone()
    outgoing(p)
    assert only(p.keys("5"), act.SendDtmf) == [act.SendDtmf(CALL, "5", act.DtmfMethod.RFC4733)]
    q = Phone()
    outgoing(q, NO_EVENTS)
    assert only(q.keys("#"), act.SendDtmf) == [act.SendDtmf(CALL, "#", act.DtmfMethod.INFO)]


def test_hook_flash_holds_and_resumes() -> None:
    p = Phone()
    outgoing(p)
    out = no_leds(p(pe.HookFlash()))
    assert out == [act.Hold(CALL, True), act.MediaHold(CALL, True)]
    assert p.state is State.HELD
    assert "HOLD" in screen_for(p.c.view(), p.now).indicators
    assert no_leds(p(pe.HookFlash())) == []  # one re-INVITE at a time (§14.1)
    p(sip.CallUpdated(CALL, MEDIA))  # the hold was answered
    assert no_leds(p(pe.HookFlash())) == [act.Hold(CALL, False), act.MediaHold(CALL, False)]
    assert p.state is State.TALKING


def test_a_refused_hold_puts_the_phone_and_the_microphone_back() -> None:
    p = Phone()
    outgoing(p)
    p(pe.HoldCommand(True))
    with pytest.raises(PhoneError, match="already in progress"):
        p(pe.HoldCommand(False))
    out = no_leds(p(sip.CallUpdateFailed(CALL, 488, "Not Acceptable Here")))
    assert out == [act.MediaHold(CALL, False)]
    assert p.state is State.TALKING and "HOLD" not in screen_for(p.c.view(), 0).indicators


def test_no_hold_or_dtmf_before_the_call_is_connected() -> None:
    """Answered, the ACK not in yet: a re-INVITE or an INFO would be refused by the SIP
    side, so the phone refuses first instead of showing a hold that never happened."""
    p = Phone()
    ring(p)
    p(pe.AnswerCommand())
    with pytest.raises(PhoneError, match="not connected yet"):
        p(pe.HoldCommand(True))
    with pytest.raises(PhoneError, match="not connected yet"):
        p(pe.DtmfCommand("5"))
    assert no_leds(p(pe.HookFlash())) == [] and p.state is State.TALKING
    assert only(p.keys("5"), act.SendDtmf) == []
    p(sip.CallConnected(CALL, MEDIA))
    assert only(p(pe.HoldCommand(True)), act.Hold) == [act.Hold(CALL, True)]


def test_an_unanswered_incoming_call_stops_ringing_after_the_ring_timeout() -> None:
    p = Phone(ring_timeout=60.0)
    ring(p)
    assert only(p.advance(59.9), act.Reject) == []
    out = p.advance(0.2)
    assert only(out, act.Reject) == [act.Reject(CALL, 480)]
    assert act.Ring(False) in out and p.state is State.IDLE
    assert p.c.view().missed == 1


def test_an_outgoing_call_nobody_answers_is_cancelled() -> None:
    p = Phone(no_answer_timeout=180.0)
    p(pe.DialCommand("1002"))
    p.placed()
    p(sip.CallRinging(CALL, 180))
    out = p.advance(180.1)
    assert act.Hangup(CALL) in out and act.StopTone() in out
    assert p.c.view().end_reason == "no answer"


def test_remote_hangup_while_hands_free_returns_to_idle_after_the_linger() -> None:
    p = Phone(ended_linger=4.0)
    p(pe.DialCommand("1002"))
    p.placed()
    p(sip.CallConnected(CALL, MEDIA))
    p(sip.CallEnded(CALL, "remote hangup"))
    assert p.state is State.ENDED
    p.advance(4.1)
    assert p.state is State.IDLE and not p.c.view().speaker


def test_redial_calls_the_last_number_again() -> None:
    p = Phone()
    with pytest.raises(PhoneError, match="nothing to redial"):
        p(pe.RedialCommand())
    p(pe.HookOff())
    p.keys("1002#")
    p.placed()
    p(pe.HookOn())
    out = p(pe.KeyPressed("redial"))
    assert only(out, act.PlaceCall) == [act.PlaceCall("1002")]


# -------------------------------------------------------------- incoming calls


def ring(p: Phone, call_id: str = CALL) -> list[act.Action]:
    return p(sip.IncomingCall(call_id, "sip:1003@pbx", "Carol"))


def test_incoming_call_rings_and_shows_the_caller() -> None:
    p = Phone()
    out = no_leds(ring(p))
    assert out == [act.Alert(CALL), act.Ring(True)]
    assert p.state is State.RINGING
    screen = screen_for(p.c.view(), p.now)
    assert screen.title == "1003" and "Carol" in screen.lines


def test_off_hook_answers_and_stops_the_ringer_first() -> None:
    p = Phone()
    ring(p)
    out = no_leds(p(pe.HookOff()))
    assert out == [act.Ring(False), act.Answer(CALL)]
    assert p.state is State.TALKING


def test_a_second_call_while_busy_gets_486_and_is_logged_missed() -> None:
    p = Phone()
    outgoing(p)
    out = p(sip.IncomingCall("c2@test", "sip:1004@pbx", None))
    assert only(out, act.Reject) == [act.Reject("c2@test", 486)]
    assert only(out, act.LogCall)[0].kind is act.CallKind.MISSED  # type: ignore[union-attr]
    assert p.state is State.TALKING and p.c.call_id == CALL
    # the SIP core's report of the rejected call's end is not ours
    assert p(sip.CallEnded("c2@test", "rejected", 486)) == []
    assert p.state is State.TALKING


def test_off_hook_with_dial_tone_is_busy_too() -> None:
    p = Phone()
    p(pe.HookOff())
    assert only(ring(p), act.Reject) == [act.Reject(CALL, 486)]


def test_caller_gives_up_a_missed_call_and_the_lamp_blinks() -> None:
    p = Phone()
    ring(p)
    out = p(sip.CallEnded(CALL, "cancelled", 487))
    assert out[0] == act.Ring(False)
    assert only(out, act.LogCall)[0].kind is act.CallKind.MISSED  # type: ignore[union-attr]
    assert act.SetLed("mwi", act.LedMode.BLINK) in out
    assert "1 missed call" in screen_for(p.c.view(), p.now).lines


def test_console_answer_is_hands_free_and_hangup_rejects() -> None:
    p = Phone()
    ring(p)
    p(pe.AnswerCommand())
    assert p.c.view().speaker and p.state is State.TALKING
    q = Phone()
    ring(q)
    out = q(pe.HangupCommand())
    assert act.Reject(CALL, 486) in out
    assert only(out, act.LogCall)[0].kind is act.CallKind.RECEIVED  # type: ignore[union-attr]
    assert q.state is State.IDLE and q.c.view().missed == 0  # turned away, not missed


def test_hands_free_call_goes_on_when_the_handset_is_put_down() -> None:
    p = Phone()
    ring(p)
    p(pe.KeyPressed("speaker"))
    p(pe.HookOff())  # lifted: to the handset
    p(pe.KeyPressed("speaker"))  # speaker on again
    assert only(p(pe.HookOn()), act.Hangup) == []
    assert p.state is State.TALKING


# ----------------------------------------------------------------- commands


def test_commands_that_do_not_apply_are_refused_with_a_reason() -> None:
    p = Phone()
    with pytest.raises(PhoneError, match="^no call$"):
        p(pe.HangupCommand())
    outgoing(p)
    with pytest.raises(PhoneError, match="already in a call"):
        p(pe.DialCommand("1003"))
    with pytest.raises(PhoneError, match="not on hold"):
        p(pe.HoldCommand(False))
    with pytest.raises(PhoneError, match="not DTMF"):
        p(pe.DtmfCommand("12x"))


def test_registration_state_reaches_the_screen_and_the_line_lamp() -> None:
    p = Phone()
    out = p(sip.RegistrationFailed(None, "no response from registrar", 30.0))
    assert act.SetLed("line", act.LedMode.BLINK_FAST) in out
    view = p.c.view()
    assert view.registration is Registration.FAILED
    assert "No response from registrar" in screen_for(view, 0).lines
    out = p(sip.Registered("sip:1001@pbx", "sip:1001@1.2.3.4", 3600))
    assert act.SetLed("line", act.LedMode.ON) in out
    assert screen_for(p.c.view(), 0).indicators == "REG"


# ------------------------------------------------------- the table holds


EVENTS = st.sampled_from([
    pe.HookOff(), pe.HookOn(), pe.HookFlash(), *(pe.KeyPressed(k) for k in "19#*"),
    *(pe.KeyPressed(k) for k in pe.FUNCTION_KEYS), pe.KeyHeld("5"),
    pe.DialCommand("1002"), pe.AnswerCommand(), pe.HangupCommand(), pe.HoldCommand(True),
    pe.HoldCommand(False), pe.MuteCommand(True), pe.DtmfCommand("1"), pe.RedialCommand(),
    sip.IncomingCall(CALL, "sip:9@x", None), sip.IncomingCall("c9", "sip:8@x", None),
    sip.CallRinging(CALL, 180), sip.CallRinging(CALL, 183, MEDIA),
    sip.CallConnected(CALL, MEDIA), sip.CallUpdated(CALL, MEDIA),
    sip.CallEnded(CALL, "busy", 486), sip.CallEnded(CALL, "remote hangup"),
    sip.Registered("a", "b", 60), sip.CallUpdateFailed(CALL, 491, "Request Pending"),
    pe.CallFailed("1002", "no route"), "advance",
])


@settings(max_examples=300)
@given(st.lists(EVENTS, max_size=40))
def test_any_sequence_stays_inside_the_table(events: list[object]) -> None:
    """Whatever happens, in whatever order: only PhoneError for a command, a state the
    table allows, a call id while in a call, and the ringer on exactly while ringing."""
    p = Phone()
    ringing = False
    for e in events:
        before = p.state
        try:
            if e == "advance":
                out = p.advance(40)
            else:
                out = p(e)
                if isinstance(out, list) and any(isinstance(a, act.PlaceCall) for a in out):
                    p.placed()
        except PhoneError:
            assert isinstance(e, pe.CommandEvent)
            assert p.state is before
            continue
        for a in p.log:
            if isinstance(a, act.Ring):
                ringing = a.on
        p.log.clear()
        assert p.state in TRANSITIONS
        assert ringing == (p.state is State.RINGING)
        if p.state in (State.TALKING, State.HELD, State.RINGING):
            assert p.c.call_id is not None


def test_the_lamps_have_a_state_from_the_start() -> None:
    c = PhoneController(PhoneSettings(), aor="sip:1001@pbx")
    assert c.boot() == [act.SetLed("line", act.LedMode.BLINK),
                        act.SetLed("in_use", act.LedMode.OFF),
                        act.SetLed("mwi", act.LedMode.OFF)]
    offline = PhoneController(PhoneSettings(), aor="sip:100@192.0.2.10:5062", registrar=False)
    assert act.SetLed("line", act.LedMode.ON) in offline.boot()
