"""The ringer: a PWM-driven ringer circuit or a bell relay, switched to a cadence.

The cadence is the same shape as ``ToneSpec.cadence`` (``media/tones.py``): (on_ms,
off_ms) steps, repeated. Edges are timed by the Scheduler from the planned start, not
from when the previous callback happened to run, so the cadence does not drift on a
busy Pi -- and on ``ManualScheduler`` every edge falls on the exact millisecond.
gpiozero's ``blink()``/``beep()`` would start a thread per device and time it from the
wall clock; they are not used.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from .timing import Alarm, Scheduler

if TYPE_CHECKING:
    from gpiozero import Factory

__all__ = ["RINGER_KINDS", "Cadence", "Ringer", "check_cadence"]

RINGER_KINDS: Final = ("pwm", "relay")

Cadence = Sequence[tuple[float, float]]
"""(on_ms, off_ms) steps, repeated; empty means ring continuously."""

PWM_DUTY: Final = 0.5


def check_cadence(cadence: Cadence) -> tuple[tuple[float, float], ...]:
    """The cadence as a tuple, or ValueError naming the step that cannot be rung."""
    steps = tuple((float(on), float(off)) for on, off in cadence)
    for i, (on, off) in enumerate(steps):
        if on < 0 or off < 0:
            raise ValueError(f"cadence step {i} ({on:g}, {off:g}) has a negative time")
    if steps and not any(on > 0 for on, _ in steps):
        raise ValueError("cadence never rings: every on time is 0")
    if steps and not any(off > 0 for _, off in steps):
        raise ValueError("cadence never pauses: use an empty cadence to ring continuously")
    return steps


class Ringer:
    """Rings to a cadence until ``stop()``; ``on_change(bool)`` when ringing starts/stops.

    ``kind="pwm"`` drives a PWMOutputDevice at ``frequency`` Hz, duty 0.5 while on (the
    ringer circuit makes the 25 Hz ring signal from it); ``kind="relay"`` switches an
    OutputDevice (``active_high=False`` for an active-low relay module).
    """

    def __init__(self, pin: int, *, kind: str = "pwm", pin_factory: Factory,
                 scheduler: Scheduler, frequency: float = 25.0, active_high: bool = True,
                 on_change: Callable[[bool], None] | None = None) -> None:
        if kind not in RINGER_KINDS:
            raise ValueError(f"ringer kind must be one of {', '.join(RINGER_KINDS)}, "
                             f"got {kind!r}")
        self.kind = kind
        self.on_change = on_change
        """Called (bool) when ringing starts or stops, from the thread that caused it."""
        self._scheduler = scheduler
        self._lock = threading.RLock()
        self._alarm = Alarm(scheduler, self._next_edge, self._lock)
        self._ringing = False
        self._on = False
        self._steps: tuple[tuple[float, float], ...] = ()
        self._step = 0
        self._start = 0.0    # when ring() started the cadence
        self._elapsed_ms = 0.0  # planned time of the next edge, from _start (exact in ms)
        self._closed = False
        self._device: Any
        if kind == "pwm":
            from gpiozero import PWMOutputDevice

            self._device = PWMOutputDevice(pin, active_high=active_high, initial_value=0,
                                           frequency=frequency, pin_factory=pin_factory)
        else:
            from gpiozero import OutputDevice

            self._device = OutputDevice(pin, active_high=active_high, initial_value=False,
                                        pin_factory=pin_factory)

    @property
    def ringing(self) -> bool:
        """Between ``ring()`` and ``stop()``, whether or not the bell sounds right now."""
        return self._ringing

    @property
    def sounding(self) -> bool:
        """Whether the output is on at this moment (in an on part of the cadence)."""
        return self._on

    def ring(self, cadence: Cadence = ((2000, 4000),)) -> None:
        """Start ringing from the first step (again, if already ringing)."""
        steps = check_cadence(cadence)
        with self._lock:
            if self._closed:
                raise RuntimeError("ringer is closed")
            started = not self._ringing
            self._alarm.cancel()
            self._ringing, self._steps, self._step = True, steps, 0
            self._start, self._elapsed_ms = self._scheduler.now(), 0.0
            if not steps:
                self._output(True)
            else:
                self._enter_phase(on=True)
            if started:
                self._notify(True)

    def stop(self) -> None:
        """Silence at once and drop the pending edges."""
        with self._lock:
            self._alarm.cancel()
            if not self._closed:
                self._output(False)
            if self._ringing:
                self._ringing = False
                self._notify(False)

    def close(self) -> None:
        with self._lock:
            self.stop()
            self._closed = True
            self._device.close()

    def __enter__(self) -> Ringer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _enter_phase(self, *, on: bool) -> None:
        """Switch to the on or off part of the current step, skipping empty parts."""
        while True:
            on_ms, off_ms = self._steps[self._step]
            length = on_ms if on else off_ms
            if length > 0:
                break
            if not on:
                self._step = (self._step + 1) % len(self._steps)
            on = not on
        self._output(on)
        self._elapsed_ms += length
        self._alarm.set(self._start + self._elapsed_ms / 1000)

    def _next_edge(self) -> None:
        if not self._ringing:
            return
        if self._on:
            self._enter_phase(on=False)
        else:
            self._step = (self._step + 1) % len(self._steps)
            self._enter_phase(on=True)

    def _output(self, on: bool) -> None:
        if on != self._on or not on:
            if self.kind == "pwm":
                self._device.value = PWM_DUTY if on else 0
            else:
                self._device.value = on
        self._on = on

    def _notify(self, ringing: bool) -> None:
        if self.on_change is not None:
            self.on_change(ringing)
