"""The phone's wiring on gpiozero mock pins: keys, hook and contacts as a circuit.

Used by the unit tests and by the simulated phone: a person (or a test) presses keys
and lifts the handset here, the drivers see only pin levels, as on the board.

The model is the circuit, not the keypad's scanning logic: each key or contact is a
switch between two nets (a row and a column, or a pin and GND). A net is low when it
holds GND or an output driven low; an input pin on it then reads low, else it reads
its pull. Ghosting therefore appears as it does on a real diode-less matrix, and an
output driven high against a low one is recorded in ``contention`` (a short that
would damage the pins).

Creation order does not matter. gpiozero's ``MockFactory.pin()`` caches one pin per
number and refuses a second pin class for it, so the sim cannot bring its own pin
class; instead it re-classes the factory's pin object in place (to a subclass that
reports every state, function and pull change). Whether the drivers were created before
or after the sim, they and the sim share that one pin object.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..phone.events import DIGIT_KEYS
from .pins import PinMap

if TYPE_CHECKING:
    from gpiozero.pins.mock import MockFactory

__all__ = ["PhoneSim", "PinRecorder", "observe_pin", "unobserve_pin"]

PinObserver = Callable[[Any], None]

_GND = "GND"
_MAX_PASSES = 8  # re-evaluations of the circuit in one update (it settles in two)


@functools.cache
def _observed_class(base: type) -> type:
    """``base`` plus a report to the observers after anything that may move the pin."""

    class Observed(base):  # type: ignore[misc, valid-type]
        _sim_observers: list[PinObserver]

        def _notify(self) -> None:
            for observer in list(self._sim_observers):
                observer(self)

        def _set_state(self, value: Any) -> None:
            self._sim_written = True
            super()._set_state(value)
            self._notify()

        def _set_function(self, value: Any) -> None:
            self._sim_written = False  # a new output has no level until written
            super()._set_function(value)
            self._notify()

        def _set_pull(self, value: Any) -> None:
            super()._set_pull(value)
            self._notify()

        def _set_frequency(self, value: Any) -> None:
            super()._set_frequency(value)
            self._notify()

        def drive_high(self) -> None:
            super().drive_high()
            self._notify()

        def drive_low(self) -> None:
            super().drive_low()
            self._notify()

    Observed.__name__ = Observed.__qualname__ = f"Observed{base.__name__}"
    return Observed


def observe_pin(factory: MockFactory, number: int, observer: PinObserver) -> Any:
    """Call ``observer(pin)`` after every change to mock pin ``number``; return the pin.

    Works on a pin a device already uses (its class is swapped for a reporting subclass
    in place) and on one no device has asked for yet (created now, reused later).
    """
    from gpiozero.pins.mock import MockFactory, MockPin

    if not isinstance(factory, MockFactory):
        raise TypeError(f"the phone sim needs gpiozero's MockFactory, not "
                        f"{type(factory).__name__}")
    pin = factory.pin(number)
    if not isinstance(pin, MockPin):
        raise TypeError(f"pin {number} is a {type(pin).__name__}, not a mock pin")
    if not hasattr(pin, "_sim_observers"):
        pin._sim_observers = []
        pin._sim_written = pin.function == "output"
        pin.__class__ = _observed_class(pin.__class__)
    pin._sim_observers.append(observer)
    return pin


def unobserve_pin(pin: Any, observer: PinObserver) -> None:
    observers = getattr(pin, "_sim_observers", [])
    if observer in observers:
        observers.remove(observer)


class PinRecorder:
    """The level changes of one pin, stamped with a clock (the test's ManualScheduler).

    MockPin keeps its own history, but stamped with the real monotonic clock; cadences
    and blinks are checked on fake time, so this records ``(clock(), state)``.
    """

    def __init__(self, factory: MockFactory, number: int, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.pin = observe_pin(factory, number, self._seen)
        self.changes: list[tuple[float, float]] = [(clock(), float(self.pin.state))]

    def _seen(self, pin: Any) -> None:
        state = float(pin.state)
        if state != self.changes[-1][1]:
            self.changes.append((self._clock(), state))

    def close(self) -> None:
        unobserve_pin(self.pin, self._seen)


class PhoneSim:
    """The person's side of the phone: ``press``/``release`` keys, ``lift``/``hang_up``.

    ``press("5")`` closes the matrix contact of key 5; ``press("redial")`` the redial
    key's contact to GND. Time is the caller's: with a ManualScheduler, advance it
    between actions (a press shorter than the debounce time is a bounce).
    """

    def __init__(self, factory: MockFactory, pinmap: PinMap | None = None) -> None:
        self.pinmap = pinmap if pinmap is not None else PinMap()
        self._factory = factory
        self._lock = threading.RLock()
        self._busy = False
        self._again = False
        self._pressed: set[str] = set()
        self._offhook = False
        self.contention: list[frozenset[int]] = []
        """Nets where an output drove high against a low: each would be a short."""
        self._switches: dict[str, tuple[int | str, int | str]] = {}
        rows, cols = self.pinmap.keypad_rows, self.pinmap.keypad_cols
        for i, key in enumerate(DIGIT_KEYS):
            self._switches[key] = (rows[i // len(cols)], cols[i % len(cols)])
        for name, pin in self.pinmap.function_keys.items():
            self._switches[name] = (pin, _GND)
        self._pins: dict[int, Any] = {}
        numbers = [*rows, *cols, self.pinmap.hook, *self.pinmap.function_keys.values()]
        with self._lock:
            for number in numbers:
                self._pins[number] = observe_pin(factory, number, self._changed)
            self._update()

    # ----------------------------------------------------------- the person's side

    @property
    def keys(self) -> tuple[str, ...]:
        """Every key the sim can press: the digits, then the function keys fitted."""
        return tuple(self._switches)

    @property
    def pressed(self) -> frozenset[str]:
        return frozenset(self._pressed)

    @property
    def offhook(self) -> bool:
        return self._offhook

    def press(self, *keys: str) -> None:
        """Close the contacts of ``keys`` (all at the same instant)."""
        self._set_keys(keys, True)

    def release(self, *keys: str) -> None:
        self._set_keys(keys, False)

    def release_all(self) -> None:
        self._set_keys(tuple(self._pressed), False)

    def lift(self) -> None:
        """Take the handset off the cradle."""
        with self._lock:
            self._offhook = True
            self._update()

    def hang_up(self) -> None:
        """Put the handset back on the cradle."""
        with self._lock:
            self._offhook = False
            self._update()

    def level(self, number: int) -> float:
        """What pin ``number`` carries now (0.0-1.0; a PWM pin its duty cycle)."""
        return float(self._factory.pin(number).state)

    def close(self) -> None:
        """Stop modelling the circuit (the pins keep their last levels)."""
        with self._lock:
            for pin in self._pins.values():
                unobserve_pin(pin, self._changed)
            self._pins.clear()

    # ------------------------------------------------------------------ the circuit

    def _set_keys(self, keys: Iterable[str], down: bool) -> None:
        for key in keys:
            if key not in self._switches:
                raise ValueError(f"no key {key!r} on this phone (have: "
                                 f"{' '.join(self._switches)})")
        with self._lock:
            for key in keys:
                if down:
                    self._pressed.add(key)
                else:
                    self._pressed.discard(key)
            self._update()

    def _changed(self, pin: Any) -> None:
        with self._lock:
            self._update()

    def _closed_switches(self) -> list[tuple[int | str, int | str]]:
        closed = [self._switches[k] for k in self._pressed]
        if self._offhook == self.pinmap.hook_active_when_offhook:
            closed.append((self.pinmap.hook, _GND))
        return closed

    def _update(self) -> None:
        """Drive every input pin to the level its net gives it (until nothing moves).

        Driving an input fires the drivers' callbacks, which may move pins again (and
        call back here): that is noted and the circuit evaluated once more.
        """
        if self._busy:
            self._again = True
            return
        self._busy = True
        try:
            for _ in range(_MAX_PASSES):
                self._again = False
                self._settle()
                if not self._again:
                    break
        finally:
            self._busy = False

    def _settle(self) -> None:
        parent: dict[int | str, int | str] = {}

        def find(node: int | str) -> int | str:
            while parent.get(node, node) != node:
                node = parent[node]
            return node

        for a, b in self._closed_switches():
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[ra] = rb
        nets: dict[int | str, list[int | str]] = {}
        nodes: list[int | str] = [*self._pins, _GND]
        for node in nodes:
            nets.setdefault(find(node), []).append(node)
        for members in nets.values():
            pins = [self._pins[n] for n in members if isinstance(n, int)]
            low = _GND in members or any(_drives(p) is False for p in pins)
            high = any(_drives(p) is True for p in pins)
            if low and high:
                short = frozenset(int(n) for n in members if n != _GND)
                if not self.contention or self.contention[-1] != short:
                    self.contention.append(short)
            for pin in pins:
                if pin.function != "input":
                    continue
                level = _pull_level(pin) if not (low or high) else not low
                if level is None or bool(pin.state) == level:
                    continue
                if level:
                    pin.drive_high()
                else:
                    pin.drive_low()


def _drives(pin: Any) -> bool | None:
    """The level an output forces on its net, or None (an input, or not yet written)."""
    if pin.function != "output" or not getattr(pin, "_sim_written", True):
        return None
    return bool(pin.state)


def _pull_level(pin: Any) -> bool | None:
    pull = pin.pull
    return True if pull == "up" else False if pull == "down" else None
