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
