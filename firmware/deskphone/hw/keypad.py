"""The 4x3 matrix keypad and the function keys.

Theory of operation
-------------------
The keys are plain contacts, no diodes. At rest every row is driven low and the
columns sit on their pull-ups, so pressing any key pulls a column low; that edge wakes
the scanner -- nothing runs while nobody touches the phone. While a key is down (or a
change is still being debounced) the scanner reads the whole matrix every
``scan_interval``: rows are released (input, pull-up), then each row in turn is driven
low and the columns read. A released row is never driven high, so two keys in one
column cannot short a high output to a low one. When everything is released and
stable, all rows go low again and the scanner sleeps until the next edge. Column edges
caused by the scan itself arrive while the scanner is awake and are ignored.

What the scan saw goes to the pure half: ``KeyMatrixState`` (ghost filter) feeding a
``KeyDebouncer`` (per-key debounce and long press, events in press order). Neither
reads a clock or a pin, so tests feed them sets and times. ``FunctionKeys`` (one GPIO
per key) reuses the ``KeyDebouncer`` because gpiozero's ``bounce_time`` does nothing on
mock pins and differs between pin libraries.

Ghosting: without diodes, three keys on the corners of a rectangle connect the fourth
corner's row and column through the other three, so the scan sees four keys. Any
position on a rectangle whose four corners read down is ambiguous; an ambiguous key that
was not already down is not reported until the ambiguity clears. Keys on no rectangle
are certain, so rollover of two keys (or any keys not forming a rectangle) loses nothing.
"""

from __future__ import annotations

import functools
import itertools
import logging
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..phone.events import (
    DIGIT_KEYS,
    FUNCTION_KEYS,
    HardwareEvent,
    KeyHeld,
    KeyPressed,
    KeyReleased,
)
from .timing import Alarm, Scheduler, TimerHandle

if TYPE_CHECKING:
    from gpiozero import Factory

__all__ = [
    "EventSink",
    "FunctionKeys",
    "KeyDebouncer",
    "KeyMatrixState",
    "MatrixKeypad",
    "ghost_suspects",
]

log = logging.getLogger(__name__)

EventSink = Callable[[HardwareEvent], None]
"""Where a driver reports: called from gpiozero's callback thread or the timer thread."""

Position = tuple[int, int]
"""(row, column) in the matrix, from 0."""

_EPS = 1e-9  # float slack when comparing "now" with a computed deadline


def emit_all(on_event: EventSink, events: Iterable[HardwareEvent]) -> None:
    """Report events; a consumer that raises is logged so the driver's state stays sound."""
    for event in events:
        try:
            on_event(event)
        except Exception:
            log.exception("on_event(%r) failed", event)


# --------------------------------------------------------------------------- pure half


@dataclass(slots=True)
class _Key:
    order: int          # first seen: breaks ties in press order
    raw: bool           # last level seen
    since: float        # when ``raw`` last changed
    down: bool = False  # last level reported
    pressed_at: float = 0.0
    held: bool = False


class KeyDebouncer:
    """Per-key debounce and long press over any set of keys (pure: fed sets and times).

    A key is reported pressed (or released) once it has read the same for ``debounce``
    seconds, so a contact bouncing for a few ms gives one press. ``KeyHeld`` follows once,
    ``hold_time`` after the press began, if the key is still down. Every key has its own
    timer, so n-key rollover works and events come out in the order they happened.
    """

    def __init__(self, *, debounce: float = 0.02, hold_time: float | None = 1.0) -> None:
        if debounce < 0:
            raise ValueError(f"debounce must be >= 0 s, got {debounce}")
        if hold_time is not None and hold_time <= 0:
            raise ValueError(f"hold_time must be > 0 s (or None), got {hold_time}")
        self.debounce = debounce
        self.hold_time = hold_time
        self._keys: dict[str, _Key] = {}
        self._raw: frozenset[str] = frozenset()
        self._order = itertools.count()

    @property
    def raw_down(self) -> frozenset[str]:
        """The keys the last update saw down (reported or not yet)."""
        return self._raw

    @property
    def down(self) -> tuple[str, ...]:
        """The keys reported down, in press order."""
        keys = [(k.pressed_at, k.order, name) for name, k in self._keys.items() if k.down]
        return tuple(name for _, _, name in sorted(keys))

    @property
    def idle(self) -> bool:
        """Nothing down and nothing waiting to settle: the scanner may sleep."""
        return not self._keys

    def update(self, raw_down: Iterable[str], now: float) -> list[HardwareEvent]:
        """Take what the pins read now; return what became certain, in time order.

        The previous reading is taken to have lasted until ``now`` (that is when the
        change was seen), so a key seen up one look after its debounce time still
        counts as pressed.
        """
        ordered = list(dict.fromkeys(raw_down))  # keys new at one instant: given order
        raw = frozenset(ordered)
        events = self.handle_timer(now) if raw != self._raw else []
        for name in (k for k in ordered if k not in self._raw):
            key = self._keys.get(name)
            if key is None:
                self._keys[name] = _Key(next(self._order), True, now)
            else:
                key.raw, key.since = True, now
        for name in self._raw - raw:
            key = self._keys[name]
            key.raw, key.since = False, now
        self._raw = raw
        return events + self.handle_timer(now)

    def handle_timer(self, now: float) -> list[HardwareEvent]:
        """Report what matured by ``now`` without a new reading (the pins did not move)."""
        due: list[tuple[float, int, int, HardwareEvent]] = []
        for name, key in list(self._keys.items()):
            if key.raw != key.down and now + _EPS >= key.since + self.debounce:
                key.down = key.raw
                at = key.since + self.debounce
                if key.down:
                    key.pressed_at, key.held = key.since, False
                    due.append((at, key.order, 0, KeyPressed(name)))
                else:
                    due.append((at, key.order, 2, KeyReleased(name)))
            hold_at = self._hold_at(key)
            if hold_at is not None and now + _EPS >= hold_at:
                key.held = True
                due.append((hold_at, key.order, 1, KeyHeld(name)))
            if not key.raw and not key.down:
                del self._keys[name]
        due.sort(key=lambda d: d[:3])
        return [event for *_, event in due]

    def get_timer(self) -> float | None:
        """When ``handle_timer`` next has something to report, if the pins stay put."""
        deadlines = []
        for key in self._keys.values():
            if key.raw != key.down:
                deadlines.append(key.since + self.debounce)
            hold_at = self._hold_at(key)
            if hold_at is not None:
                deadlines.append(hold_at)
        return min(deadlines, default=None)

    def _hold_at(self, key: _Key) -> float | None:
        # a key reading up is possibly bouncing open: hold waits until it reads down again
        if self.hold_time is None or not key.down or not key.raw or key.held:
            return None
        return key.pressed_at + self.hold_time


def ghost_suspects(down: Collection[Position]) -> set[Position]:
    """The positions on some rectangle whose four corners all read down.

    On a diode-less matrix any of them may be a phantom (three real keys make the
    fourth read down); positions on no such rectangle are certainly pressed.
    """
    cols_by_row: dict[int, set[int]] = {}
    for row, col in down:
        cols_by_row.setdefault(row, set()).add(col)
    rows = sorted(cols_by_row)
    suspects: set[Position] = set()
    for i, r1 in enumerate(rows):
        for r2 in rows[i + 1:]:
            shared = cols_by_row[r1] & cols_by_row[r2]
            if len(shared) >= 2:
                suspects.update((r, c) for r in (r1, r2) for c in shared)
    return suspects


class KeyMatrixState:
    """What a matrix scan means: positions -> keys, minus ghosts, debounced (pure)."""

    def __init__(self, keys: str = DIGIT_KEYS, *, cols: int = 3, debounce: float = 0.02,
                 hold_time: float | None = 1.0) -> None:
        if cols <= 0 or len(keys) % cols or not keys:
            raise ValueError(f"{len(keys)} keys do not fill a matrix {cols} columns wide")
        if len(set(keys)) != len(keys):
            raise ValueError(f"keys {keys!r} name a key twice")
        self.keys = keys
        self.cols = cols
        self.rows = len(keys) // cols
        self._debouncer = KeyDebouncer(debounce=debounce, hold_time=hold_time)
        self._seen: frozenset[Position] = frozenset()
        self.ambiguous = False
        """Whether the last scan held a rectangle of keys (for diagnostics and tests)."""

    def key_at(self, position: Position) -> str:
        row, col = position
        if not (0 <= row < self.rows and 0 <= col < self.cols):
            raise ValueError(f"position {position} is outside the {self.rows}x{self.cols} "
                             "matrix")
        return self.keys[row * self.cols + col]

    def position_of(self, key: str) -> Position:
        index = self.keys.index(key)
        return divmod(index, self.cols)

    @property
    def down(self) -> tuple[str, ...]:
        return self._debouncer.down

    @property
    def idle(self) -> bool:
        """Nothing reads down and nothing is settling: the scanner may go to rest."""
        return self._debouncer.idle and not self._seen

    def update(self, down: Iterable[Position], now: float) -> list[HardwareEvent]:
        """Take one scan (the positions that read down) at time ``now``."""
        seen = frozenset(down)
        suspects = ghost_suspects(seen)
        known = self._debouncer.raw_down
        raw = []
        for position in sorted(seen):  # keys new in one scan: in matrix order
            key = self.key_at(position)
            if position not in suspects or key in known:
                raw.append(key)
        self._seen = seen
        self.ambiguous = bool(suspects)
        return self._debouncer.update(raw, now)

    def get_timer(self) -> float | None:
        return self._debouncer.get_timer()


# --------------------------------------------------------------------- gpiozero half


@functools.cache
def _scan_line_class() -> type[Any]:
    """A gpiozero device for one row: driven low, or released to an input with pull-up.

    Built on first use so that gpiozero is imported only when a keypad is made.
    """
    from gpiozero import GPIODevice

    class ScanLine(GPIODevice):  # type: ignore[misc]
        """Open drain emulated: low, or let go. Never high, so rows cannot fight."""

        def __init__(self, pin: int, *, pin_factory: Factory) -> None:
            super().__init__(pin, pin_factory=pin_factory)
            self._driven = False
            try:
                self.drive()
            except BaseException:
                self.close()
                raise

        def drive(self) -> None:
            if not self._driven:
                pin = self.pin
                pin.function = "output"  # lgpio claims an output at level 0: no glitch high
                pin.state = False
                self._driven = True

        def release(self) -> None:
            if self._driven:
                pin = self.pin
                pin.function = "input"
                if pin.pull != "up":
                    pin.pull = "up"
                self._driven = False

        @property
        def value(self) -> int:
            return int(self._driven)

    return ScanLine


class MatrixKeypad:
    """The matrix on GPIO: rows driven, columns read, asleep until a column edge.

    ``rows`` and ``cols`` are BCM pins; ``keys`` lists the keys row by row. Events go to
    ``on_event`` from the scheduler's thread (all scanning happens there; a column edge
    only schedules the first scan).
    """

    def __init__(self, rows: Sequence[int], cols: Sequence[int], keys: str = DIGIT_KEYS, *,
                 pin_factory: Factory, scheduler: Scheduler, on_event: EventSink,
                 debounce: float = 0.02, hold_time: float | None = 1.0,
                 scan_interval: float = 0.005) -> None:
        from gpiozero import DigitalInputDevice

        if len(rows) * len(cols) != len(keys):
            raise ValueError(f"{len(rows)} rows x {len(cols)} columns do not fit "
                             f"{len(keys)} keys")
        if scan_interval <= 0:
            raise ValueError(f"scan_interval must be > 0 s, got {scan_interval}")
        self._state = KeyMatrixState(keys, cols=len(cols), debounce=debounce,
                                     hold_time=hold_time)
        self._scheduler = scheduler
        self._on_event = on_event
        self.scan_interval = scan_interval
        self.scans = 0
        """Full scans made so far (the tests' and the curious reader's proof of rest)."""
        # _lock: scan state; held by the timer thread while scanning. _wake_lock: only
        # guards the one pending wake-up, so the edge callback never waits for a scan.
        self._lock = threading.RLock()
        self._wake_lock = threading.Lock()
        self._wake: TimerHandle | None = None
        self._next_scan = Alarm(scheduler, self._scan, self._lock)
        self._resting = False
        self._closed = False
        self._rows: list[Any] = []
        self._cols: list[Any] = []
        line_class = _scan_line_class()
        try:
            for pin in rows:
                self._rows.append(line_class(pin, pin_factory=pin_factory))
            for pin in cols:
                self._cols.append(DigitalInputDevice(pin, pull_up=True,
                                                     pin_factory=pin_factory))
            with self._lock:
                for col in self._cols:
                    col.when_activated = self._on_column_edge
                self._go_to_rest()
        except BaseException:
            self.close()
            raise

    @property
    def down(self) -> tuple[str, ...]:
        """Keys reported down, in press order."""
        with self._lock:
            return self._state.down

    @property
    def resting(self) -> bool:
        """True while asleep: all rows low, waiting for a column edge."""
        return self._resting

    def close(self) -> None:
        """Stop scanning and give back every pin. Keys still down get no KeyReleased."""
        with self._lock:
            self._closed = True
            self._resting = False
            self._next_scan.cancel()
            with self._wake_lock:
                if self._wake is not None:
                    self._wake.cancel()
                    self._wake = None
            for device in self._cols + self._rows:
                device.close()
            self._cols.clear()
            self._rows.clear()

    def __enter__(self) -> MatrixKeypad:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _on_column_edge(self) -> None:
        """gpiozero's thread: a key went down at rest, or our own scan moved a column.

        Lock-free on the scan state: during a scan (``_resting`` False) the edge is ours
        and ignored; at rest, hand over to the timer thread.
        """
        if not self._resting:
            return
        with self._wake_lock:
            if self._wake is None and not self._closed:
                self._wake = self._scheduler.call_later(0.0, self._wake_up)

    def _wake_up(self) -> None:
        with self._lock:
            with self._wake_lock:
                self._wake = None
            if self._closed or not self._resting:
                return
            self._resting = False
            self._scan()

    def _scan(self) -> None:
        if self._closed:
            return
        now = self._scheduler.now()  # the matrix is read as of the scan's start
        down = self._read_matrix()
        events = self._state.update(down, now)
        emit_all(self._on_event, events)
        if self._state.idle:
            self._go_to_rest()
            return
        # every scan_interval from the last scan's start, or sooner when a debounce or
        # long-press deadline falls first: a press is reported when its debounce ends,
        # not up to a scan later (that cost ~5 ms of key-to-screen, bench/keypress.py)
        when = now + self.scan_interval
        deadline = self._state.get_timer()
        if deadline is not None and deadline < when:
            when = deadline
        self._next_scan.set(max(when, self._scheduler.now()))

    def _read_matrix(self) -> set[Position]:
        self.scans += 1
        for row in self._rows:
            row.release()
        down: set[Position] = set()
        for r, row in enumerate(self._rows):
            row.drive()
            # Python's call overhead (tens of us) outlasts the line's settling time
            down.update((r, c) for c, col in enumerate(self._cols) if col.is_active)
            row.release()
        return down

    def _go_to_rest(self) -> None:
        for row in self._rows:
            row.drive()
        self._resting = True
        if any(col.is_active for col in self._cols):
            # pressed between the last scan and now (or a column stuck low): scan again,
            # one interval later so a fault cannot spin the timer thread
            self._resting = False
            self._next_scan.set(self._scheduler.now() + self.scan_interval)


class FunctionKeys:
    """Keys on a GPIO each (to GND, pull-up), debounced and long-pressed like the matrix.

    Edges arrive on gpiozero's thread; debounce and hold deadlines on the timer thread.
    Both take the one lock, and every edge re-reads all the keys, so a missed bounce
    cannot leave a key stuck.
    """

    def __init__(self, pins: Mapping[str, int], *, pin_factory: Factory,
                 scheduler: Scheduler, on_event: EventSink, debounce: float = 0.02,
                 hold_time: float | None = 1.0) -> None:
        from gpiozero import DigitalInputDevice

        for name in pins:
            if name not in FUNCTION_KEYS:
                raise ValueError(f"function key {name!r} is not one of "
                                 f"{', '.join(FUNCTION_KEYS)}")
        self._debouncer = KeyDebouncer(debounce=debounce, hold_time=hold_time)
        self._scheduler = scheduler
        self._on_event = on_event
        self._lock = threading.RLock()
        self._alarm = Alarm(scheduler, self._on_timer, self._lock)
        self._closed = False
        self._devices: dict[str, Any] = {}
        try:
            for name, pin in pins.items():
                self._devices[name] = DigitalInputDevice(pin, pull_up=True,
                                                         pin_factory=pin_factory)
            with self._lock:
                for device in self._devices.values():
                    device.when_activated = self._on_edge
                    device.when_deactivated = self._on_edge
                self._read(self._scheduler.now())
        except BaseException:
            self.close()
            raise

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._devices)

    @property
    def down(self) -> tuple[str, ...]:
        with self._lock:
            return self._debouncer.down

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._alarm.cancel()
            for device in self._devices.values():
                device.close()
            self._devices.clear()

    def __enter__(self) -> FunctionKeys:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _on_edge(self) -> None:
        with self._lock:
            if not self._closed:
                self._read(self._scheduler.now())

    def _on_timer(self) -> None:
        if not self._closed:
            self._after(self._debouncer.handle_timer(self._scheduler.now()))

    def _read(self, now: float) -> None:
        down = [name for name, device in self._devices.items() if device.is_active]
        self._after(self._debouncer.update(down, now))

    def _after(self, events: list[HardwareEvent]) -> None:
        emit_all(self._on_event, events)
        self._alarm.set(self._debouncer.get_timer())
