"""The phone's devices as the runtime sees them: what a hardware builder hands over."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ..phone import events as pe
from ..phone.screens import Screen


class RingerLike(Protocol):
    def ring(self, cadence: Any) -> None: ...

    def stop(self) -> None: ...


class LedsLike(Protocol):
    def set(self, name: str, mode: str) -> None: ...


class DisplayLike(Protocol):
    def show(self, screen: Screen) -> bool: ...


class Devices:
    """Ringer, lamps and display; each optional (headless: none)."""

    def __init__(self, *, ringer: RingerLike | None = None, leds: LedsLike | None = None,
                 display: DisplayLike | None = None,
                 close: Callable[[], None] = lambda: None) -> None:
        self.ringer, self.leds, self.display, self._close = ringer, leds, display, close

    def close(self) -> None:
        self._close()


HardwareBuilder = Callable[[Callable[[pe.HardwareEvent], None]], Devices]
"""Builds the devices, given where their events go (called from their threads)."""
