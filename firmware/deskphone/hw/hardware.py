"""All the phone's GPIO devices from one pin map: what app.py builds and closes.

The display is not here: it sits on I2C behind luma (``hw/display.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

from .hook import HookSwitch
from .keypad import EventSink, FunctionKeys, MatrixKeypad
from .leds import Leds
from .pins import PinMap
from .ringer import Ringer
from .timing import Scheduler

if TYPE_CHECKING:
    from gpiozero import Factory

__all__ = ["Hardware", "HardwareTiming"]


@dataclass(frozen=True, slots=True)
class HardwareTiming:
    """The drivers' timing, in seconds; the defaults suit a desk phone's contacts."""

    key_debounce: float = 0.02
    hold_time: float = 1.0
    scan_interval: float = 0.005
    hook_debounce: float = 0.03
    flash_min: float = 0.1
    flash_max: float = 0.6
    ring_frequency: float = 25.0


class Hardware:
    """Keypad, function keys, hook, ringer and lamps on ``pin_factory``.

    If one device cannot be made (a pin in use, say), those already made are closed
    before the error propagates, so no pin stays claimed.
    """

    def __init__(self, pinmap: PinMap, *, pin_factory: Factory, scheduler: Scheduler,
                 on_event: EventSink, timing: HardwareTiming | None = None,
                 on_ringer_change: Callable[[bool], None] | None = None) -> None:
        t = timing if timing is not None else HardwareTiming()
        self.pinmap = pinmap
        self.timing = t
        self._closers: list[Callable[[], None]] = []
        try:
            self.leds = Leds(pinmap.leds, pin_factory=pin_factory, scheduler=scheduler)
            self._closers.append(self.leds.close)
            self.ringer = Ringer(pinmap.ringer_pin, kind=pinmap.ringer_kind,
                                 pin_factory=pin_factory, scheduler=scheduler,
                                 frequency=t.ring_frequency,
                                 active_high=not (pinmap.ringer_kind == "relay"
                                                  and pinmap.relay_active_low),
                                 on_change=on_ringer_change)
            self._closers.append(self.ringer.close)
            self.keypad = MatrixKeypad(pinmap.keypad_rows, pinmap.keypad_cols,
                                       pin_factory=pin_factory, scheduler=scheduler,
                                       on_event=on_event, debounce=t.key_debounce,
                                       hold_time=t.hold_time, scan_interval=t.scan_interval)
            self._closers.append(self.keypad.close)
            self.function_keys = FunctionKeys(pinmap.function_keys, pin_factory=pin_factory,
                                              scheduler=scheduler, on_event=on_event,
                                              debounce=t.key_debounce, hold_time=t.hold_time)
            self._closers.append(self.function_keys.close)
            # last: its boot reading may report HookOff at once, when all else is ready
            self.hook = HookSwitch(pinmap.hook, pin_factory=pin_factory, scheduler=scheduler,
                                   on_event=on_event,
                                   offhook_when_active=pinmap.hook_active_when_offhook,
                                   debounce=t.hook_debounce, flash_min=t.flash_min,
                                   flash_max=t.flash_max)
            self._closers.append(self.hook.close)
        except BaseException:
            self.close()
            raise

    @property
    def on_ringer_change(self) -> Callable[[bool], None] | None:
        """Told True/False when ringing starts/stops (e.g. to show "Ringing" or log it)."""
        return self.ringer.on_change

    @on_ringer_change.setter
    def on_ringer_change(self, callback: Callable[[bool], None] | None) -> None:
        self.ringer.on_change = callback

    def close(self) -> None:
        """Silence the ringer, darken the lamps and give back every pin (idempotent)."""
        errors: list[BaseException] = []
        while self._closers:
            try:
                self._closers.pop()()
            except Exception as exc:  # close the rest regardless
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> Hardware:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
