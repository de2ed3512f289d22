"""The lamps: line, message waiting, in use. Each off, on, or blinking.

Blinking is phase-locked to the scheduler's clock (on during even half-periods), so
two lamps blinking at one rate blink together, as on a desk phone, whenever each was
set. Setting the mode a lamp already has changes nothing, so the runtime may re-apply
its whole lamp state after every event without restarting a blink.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Mapping
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, Final

from .timing import Alarm, Scheduler

if TYPE_CHECKING:
    from gpiozero import Factory

__all__ = ["BLINK_HALF_PERIOD", "LED_MODES", "Leds"]

LED_MODES: Final = ("off", "on", "blink", "blink_fast")

BLINK_HALF_PERIOD: Final = MappingProxyType({"blink": 0.5, "blink_fast": 0.125})
"""Seconds on (and then off) per blink: 1 Hz for waiting messages, 4 Hz for alerts."""

_EPS = 1e-9


class _Lamp:
    def __init__(self, device: Any, alarm: Alarm) -> None:
        self.device = device
        self.alarm = alarm
        self.mode = "off"


class Leds:
    """Named lamps on GPIOs (active high unless ``active_high=False``)."""

    def __init__(self, pins: Mapping[str, int], *, pin_factory: Factory,
                 scheduler: Scheduler, active_high: bool = True) -> None:
        from gpiozero import DigitalOutputDevice

        self._scheduler = scheduler
        self._lock = threading.RLock()
        self._lamps: dict[str, _Lamp] = {}
        self._closed = False
        try:
            for name, pin in pins.items():
                device = DigitalOutputDevice(pin, active_high=active_high,
                                             initial_value=False, pin_factory=pin_factory)
                alarm = Alarm(scheduler, functools.partial(self._toggle, name), self._lock)
                self._lamps[name] = _Lamp(device, alarm)
        except BaseException:
            self.close()
            raise

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._lamps)

    def mode(self, name: str) -> str:
        with self._lock:
            return self._lamp(name).mode

    def is_lit(self, name: str) -> bool:
        """Whether the lamp is on at this moment (blinking lamps alternate)."""
        with self._lock:
            return bool(self._lamp(name).device.value)

    def set(self, name: str, mode: str) -> None:
        """Put a lamp in ``mode`` ("off", "on", "blink", "blink_fast")."""
        if mode not in LED_MODES:
            raise ValueError(f"LED mode must be one of {', '.join(LED_MODES)}, got {mode!r}")
        with self._lock:
            if self._closed:
                raise RuntimeError("LEDs are closed")
            lamp = self._lamp(name)
            if lamp.mode == mode:
                return
            lamp.mode = mode
            lamp.alarm.cancel()
            if mode in ("on", "off"):
                lamp.device.value = mode == "on"
            else:
                self._blink(lamp, self._scheduler.now())

    def all_off(self) -> None:
        for name in self.names:
            self.set(name, "off")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for lamp in self._lamps.values():
                lamp.alarm.cancel()
                lamp.device.close()
            self._lamps.clear()

    def __enter__(self) -> Leds:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _lamp(self, name: str) -> _Lamp:
        try:
            return self._lamps[name]
        except KeyError:
            raise ValueError(f"no LED named {name!r} (have: {', '.join(self._lamps)})") \
                from None

    def _blink(self, lamp: _Lamp, now: float) -> None:
        half = BLINK_HALF_PERIOD[lamp.mode]
        k = math.floor(now / half + _EPS)
        lamp.device.value = k % 2 == 0
        lamp.alarm.set((k + 1) * half)

    def _toggle(self, name: str) -> None:
        lamp = self._lamps.get(name)
        if lamp is not None and lamp.mode in BLINK_HALF_PERIOD:
            # computed from the deadline's own half-period, so a late callback cannot drift
            self._blink(lamp, self._scheduler.now())
