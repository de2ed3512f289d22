"""What the OLED shows, as text: the pure view model (state -> Screen).

A ``Screen`` is what a person reads on the 128x64 display, independent of pixels:
``hw/display.py`` lays it out in pixels, the console's ``screen`` command prints
``text_lines()``, the simulator draws the pixels with block characters.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._state import State
from .controller import PhoneView, Registration


@dataclass(frozen=True, slots=True)
class Screen:
    """One frame of the display.

    ``status``: the top bar's left side (account, or what the phone is doing);
    ``indicators``: the top bar's right side, short flags ("REG", "MUTE", "HOLD", "!");
    ``title``: the one big line (the digits dialled, the remote number, the clock);
    ``lines``: up to three small lines below it (name, duration, codec, a reason).
    """

    status: str = ""
    indicators: str = ""
    title: str = ""
    lines: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.lines) > 3:
            raise ValueError(f"a screen has at most 3 small lines, got {len(self.lines)}")

    def text_lines(self) -> list[str]:
        """The screen as plain text, top to bottom (console ``screen``, tests)."""
        top = self.status
        if self.indicators:
            top = f"{top}  {self.indicators}" if top else self.indicators
        return [top, self.title, *self.lines]


# ------------------------------------------------------------------ view model

_END_TEXT = {
    "busy": "Busy", "remote hangup": "Call ended", "local hangup": "Call ended",
    "cancelled": "Cancelled", "rejected": "Rejected", "declined": "Declined",
    "not found": "Number not found", "timeout": "No answer", "unavailable": "Unavailable",
    "not acceptable": "No common codec", "media negotiation failed": "No common codec",
    "auth failed": "Authentication failed", "no ACK": "Call lost (no ACK)",
    "far end gone": "Call lost", "dialling timed out": "Dialling timed out",
    "nothing to dial": "Nothing to dial",
}


def end_text(reason: str, status: int | None) -> str:
    """The reason a call ended, as a person reads it."""
    text = _END_TEXT.get(reason)
    if text is None:
        text = reason[:1].upper() + reason[1:] if reason else "Call ended"
    if status is not None and status >= 400 and reason not in ("busy",):
        text = f"{text} ({status})"
    return text


def number_of(uri: str) -> str:
    """What a person calls a SIP URI: its user part, or the host for a bare host."""
    rest = uri.split(":", 1)[1] if uri.lower().startswith(("sip:", "sips:")) else uri
    rest = rest.split(";", 1)[0].split("?", 1)[0]
    user, at, host = rest.rpartition("@")
    return user if at and user else host


def duration_text(seconds: float) -> str:
    s = max(0, int(seconds))
    h, rem = divmod(s, 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}" if h else f"{rem // 60:02d}:{rem % 60:02d}"


def registration_text(view: PhoneView) -> str:
    reg = view.registration
    if reg is Registration.REGISTERED:
        return "Registered"
    if reg is Registration.REGISTERING:
        return "Registering..."
    if reg is Registration.NONE:
        return "No registrar: direct calls"
    if reg is Registration.UNREGISTERED:
        return "Not registered"
    if view.reg_status is None:
        if view.reg_reason.startswith("no network"):
            return "No network"
        return "No response from registrar" if "response" in view.reg_reason \
            else f"Registration failed: {view.reg_reason}"
    return f"Registration failed: {view.reg_status} {view.reg_reason}".rstrip()


def screen_for(view: PhoneView, now: float, *, clock: str = "", address: str = "",
               notice: str = "") -> Screen:
    """The display for ``view`` at monotonic ``now``; ``clock`` is the wall time to show
    when idle ("14:05"), ``address`` the phone's IP address, ``notice`` a passing message
    for the idle screen ("Provisioning failed"), shown first."""
    flags = {Registration.REGISTERED: "REG", Registration.REGISTERING: "...",
             Registration.FAILED: "!", Registration.UNREGISTERED: "-",
             Registration.NONE: ""}[view.registration]
    extra = [f for f, on in (("MUTE", view.muted), ("HOLD", view.held),
                             ("SPK", view.speaker)) if on]
    indicators = " ".join([*extra, flags]).strip()
    account = view.aor.split(":", 1)[-1]
    st = view.state
    who = number_of(view.remote) if view.remote else ""
    name = view.remote_name
    if st is State.IDLE:
        lines = [notice] if notice else []
        lines.append(registration_text(view))
        if view.missed:
            lines.append(f"{view.missed} missed call{'s' if view.missed > 1 else ''}")
        if address:
            lines.append(address)
        return Screen(account, indicators, clock, tuple(lines[:3]))
    if st is State.PREDIAL:
        return Screen(account, indicators, view.digits, ("Lift handset or # to dial",))
    if st is State.DIALTONE:
        return Screen(account, indicators, "", ("Dial a number",))
    if st is State.COLLECTING:
        return Screen(account, indicators, view.digits, ("# to dial now",))
    if st in (State.CALLING, State.RINGBACK):
        doing = ("Ringing..." if st is State.RINGBACK and not view.early_media else
                 "Early media..." if view.early_media else "Calling...")
        return Screen("Calling", indicators, who, tuple(x for x in (name, doing) if x))
    if st is State.RINGING:
        ringing = tuple(x for x in (name, view.remote if name else "") if x)
        return Screen("Incoming call", indicators, who, ringing[:3])
    if st in (State.TALKING, State.HELD):
        since = view.connected_at if view.connected_at is not None else now
        talk = duration_text(now - since)
        if view.codec:
            talk += f"  {view.codec}"
        lines = [x for x in (name, talk) if x]
        if st is State.HELD:
            lines.append("On hold")
        return Screen("In call", indicators, who, tuple(lines[:3]))
    # ENDED
    return Screen(account, indicators, end_text(view.end_reason, view.end_status),
                  ("Hang up to finish",) if view.offhook else ())
