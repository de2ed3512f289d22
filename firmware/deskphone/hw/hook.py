"""The hook switch: off-hook, on-hook and hook flash from one contact.

Theory of operation
-------------------
The contact bounces, gets knocked, and is used on purpose for a flash (a short press
of the cradle: "recall", to hold or transfer). ``HookDetector`` is pure and sees the
contact as (level, time) readings:

1. debounce: a level counts once it has held for ``debounce`` s; its start time is that
   of the first reading of the level, so durations below are the contact's own.
2. from off-hook, the handset going down starts the flash window:
   - back up within ``flash_min``: a knock; nothing is reported.
   - back up after ``flash_min`` but by ``flash_max``: ``HookFlash``.
   - still down at ``flash_max``: ``HookOn``, reported at ``flash_max`` after it went down.
3. from on-hook, lifting is ``HookOff``.

The detector starts on-hook (the phone's idle state); the driver feeds the contact's
level at start, so a handset already lifted at boot is reported as ``HookOff`` after
the debounce time.
"""

from __future__ import annotations

import enum
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..phone.events import HardwareEvent, HookFlash, HookOff, HookOn
from .keypad import EventSink, emit_all
from .timing import Alarm, Scheduler

if TYPE_CHECKING:
    from gpiozero import Factory

__all__ = ["HookDetector", "HookState", "HookSwitch"]

_EPS = 1e-9


class HookState(enum.Enum):
    ON_HOOK = "on-hook"
    OFF_HOOK = "off-hook"
    DOWN = "down"  # went down from off-hook: flash or hang-up, not decided yet


class HookDetector:
    """Debounce plus flash timing for the hook contact (pure: fed levels and times)."""

    def __init__(self, *, debounce: float = 0.03, flash_min: float = 0.1,
                 flash_max: float = 0.6) -> None:
        if debounce < 0:
            raise ValueError(f"debounce must be >= 0 s, got {debounce}")
        if not 0 <= flash_min < flash_max:
            raise ValueError(f"flash window must have 0 <= flash_min < flash_max, got "
                             f"{flash_min}..{flash_max}")
        self.debounce = debounce
        self.flash_min = flash_min
        self.flash_max = flash_max
        self.state = HookState.ON_HOOK
        self._raw = False             # off-hook as last read
        self._raw_since = float("-inf")
        self._stable = False          # debounced level
        self._down_at = 0.0           # when the handset went down (DOWN state)

    @property
    def offhook(self) -> bool:
        """What the phone has been told: True after HookOff, until HookOn."""
        return self.state is not HookState.ON_HOOK

    def feed(self, offhook: bool, now: float) -> list[HardwareEvent]:
        """The contact reads ``offhook`` at ``now`` (readings may repeat)."""
        if offhook != self._raw:
            self._raw, self._raw_since = offhook, now
        return self.handle_timer(now)

    def handle_timer(self, now: float) -> list[HardwareEvent]:
        events: list[HardwareEvent] = []
        if self._raw != self._stable and now + _EPS >= self._raw_since + self.debounce:
            self._stable = self._raw
            self._settled(self._stable, self._raw_since, events)
        if (self.state is HookState.DOWN and not self._raw
                and now + _EPS >= self._down_at + self.flash_max):
            self.state = HookState.ON_HOOK
            events.append(HookOn())
        return events

    def get_timer(self) -> float | None:
        """When ``handle_timer`` must run next if no new reading comes, or None."""
        if self._raw != self._stable:
            return self._raw_since + self.debounce
        if self.state is HookState.DOWN:
            return self._down_at + self.flash_max
        return None

    def _settled(self, offhook: bool, since: float, events: list[HardwareEvent]) -> None:
        if not offhook:
            if self.state is HookState.OFF_HOOK:
                self.state, self._down_at = HookState.DOWN, since
            return
        if self.state is HookState.ON_HOOK:
            events.append(HookOff())
        elif self.state is HookState.DOWN:
            down_for = since - self._down_at
            if down_for > self.flash_max + _EPS:
                # the window closed without a timer run (a late caller): it was a hang-up
                events += [HookOn(), HookOff()]
            elif down_for + _EPS >= self.flash_min:
                events.append(HookFlash())
            # else: shorter than flash_min, a knock on the cradle
        self.state = HookState.OFF_HOOK


class HookSwitch:
    """The hook contact on a GPIO (to GND, pull-up) reporting through ``HookDetector``.

    ``offhook_when_active``: True when the contact closes as the handset is lifted (the
    usual cradle switch), False when it closes under the handset's weight.
    """

    def __init__(self, pin: int, *, pin_factory: Factory, scheduler: Scheduler,
                 on_event: EventSink, offhook_when_active: bool = True,
                 debounce: float = 0.03, flash_min: float = 0.1,
                 flash_max: float = 0.6) -> None:
        from gpiozero import DigitalInputDevice

        self._detector = HookDetector(debounce=debounce, flash_min=flash_min,
                                      flash_max=flash_max)
        self._scheduler = scheduler
        self._on_event = on_event
        self._offhook_when_active = offhook_when_active
        self._lock = threading.RLock()
        self._alarm = Alarm(scheduler, self._on_timer, self._lock)
        self._closed = False
        self._device: Any = DigitalInputDevice(pin, pull_up=True, pin_factory=pin_factory)
        try:
            with self._lock:
                self._device.when_activated = self._on_edge
                self._device.when_deactivated = self._on_edge
                self._read()  # the handset may already be lifted at boot
        except BaseException:
            self.close()
            raise

    @property
    def is_offhook(self) -> bool:
        """The debounced state last reported (a flash does not change it)."""
        with self._lock:
            return self._detector.offhook

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._alarm.cancel()
            self._device.close()

    def __enter__(self) -> HookSwitch:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _on_edge(self) -> None:
        with self._lock:
            if not self._closed:
                self._read()

    def _on_timer(self) -> None:
        if not self._closed:
            self._after(self._detector.handle_timer(self._scheduler.now()))

    def _read(self) -> None:
        offhook = bool(self._device.is_active) == self._offhook_when_active
        self._after(self._detector.feed(offhook, self._scheduler.now()))

    def _after(self, events: list[HardwareEvent]) -> None:
        emit_all(self._on_event, events)
        self._alarm.set(self._detector.get_timer())
