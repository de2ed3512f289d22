"""What the phone controller is told: the person's hands (hook, keys) and the console.

SIP events come straight from ``sip.events``; these are the rest. Hardware drivers
(``hw/``) and the console produce them; ``phone.controller`` consumes them. Frozen
dataclasses: they cross from gpiozero's callback threads to the asyncio loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

DIGIT_KEYS: Final = "123456789*0#"
"""The 4x3 matrix, row by row."""

FUNCTION_KEYS: Final = ("hold", "transfer", "redial", "mute", "speaker", "vol_up",
                        "vol_down", "messages")
"""Optional keys beside the matrix, each on a GPIO of its own."""

KEYS: Final = frozenset(DIGIT_KEYS) | frozenset(FUNCTION_KEYS)


@dataclass(frozen=True, slots=True)
class HookOff:
    """The handset was lifted (debounced)."""


@dataclass(frozen=True, slots=True)
class HookOn:
    """The handset was put down and stayed down past the flash window: hang up."""


@dataclass(frozen=True, slots=True)
class HookFlash:
    """The handset went down and up again within the flash window (100-600 ms)."""


@dataclass(frozen=True, slots=True)
class KeyPressed:
    key: str  # one of KEYS


@dataclass(frozen=True, slots=True)
class KeyReleased:
    key: str


@dataclass(frozen=True, slots=True)
class KeyHeld:
    """The key has been down for the long-press time (reported once per press)."""

    key: str


HardwareEvent = HookOff | HookOn | HookFlash | KeyPressed | KeyReleased | KeyHeld


# ------------------------------------------------------------------- console
# Commands a person or a lab script gives through the console; the hardware keys and hook
# arrive as the events above (``key 1002#`` is KeyPressed events, ``hook off`` HookOff).


@dataclass(frozen=True, slots=True)
class DialCommand:
    """``dial <target>``: place a call now, hands-free if the handset is down."""

    target: str


@dataclass(frozen=True, slots=True)
class AnswerCommand:
    """``answer``: take the ringing call, hands-free if the handset is down."""


@dataclass(frozen=True, slots=True)
class HangupCommand:
    """``hangup``: end, cancel or reject the call."""


@dataclass(frozen=True, slots=True)
class HoldCommand:
    on: bool


@dataclass(frozen=True, slots=True)
class MuteCommand:
    on: bool


@dataclass(frozen=True, slots=True)
class DtmfCommand:
    digits: str


@dataclass(frozen=True, slots=True)
class RedialCommand:
    """``redial`` (or the redial key): call the last number dialled again."""


# ----------------------------------------------------------------- feedback
# What the runtime reports back after carrying out an action.


@dataclass(frozen=True, slots=True)
class CallPlaced:
    """``PlaceCall`` went out as an INVITE: the endpoint's Call-ID and the URI called."""

    call_id: str
    target: str
    uri: str


@dataclass(frozen=True, slots=True)
class CallFailed:
    """``PlaceCall`` could not be sent (a target that is no URI, no RTP port...)."""

    target: str
    reason: str


CommandEvent = (DialCommand | AnswerCommand | HangupCommand | HoldCommand | MuteCommand
                | DtmfCommand | RedialCommand)
FeedbackEvent = CallPlaced | CallFailed
