"""Timers for the hardware drivers: one real timer thread, one fake clock for tests.

Debounce, key scanning, the hook's flash window, the ringer's cadence and LED blinking
all need "call this in N ms". They take a ``Scheduler`` rather than starting threads
(gpiozero's ``blink``/``beep``/``HoldThread`` each own one) so that the phone runs one
timer thread in all, and a test can move time by hand with ``ManualScheduler``: no
sleeps, exact times.

Callbacks run in the scheduler's thread (``ThreadScheduler``) or inside ``advance()``
(``ManualScheduler``); devices guard the state those callbacks share with gpiozero's
edge callbacks with a lock of their own.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Protocol

__all__ = ["Alarm", "ManualScheduler", "Scheduler", "ThreadScheduler", "Timer", "TimerHandle"]

log = logging.getLogger(__name__)

Callback = Callable[[], object]


class TimerHandle(Protocol):
    """What ``call_later`` returns: a way to take the call back before it runs."""

    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """A monotonic clock and one-shot timers: all the hardware drivers ask of time."""

    def now(self) -> float:
        """Monotonic seconds."""
        ...

    def call_later(self, delay: float, fn: Callback) -> TimerHandle:
        """Run ``fn()`` once, ``delay`` seconds from now (at once if ``delay <= 0``)."""
        ...


class Timer:
    """One pending call. Cancelling is a flag: the heap drops it when it reaches the top."""

    __slots__ = ("_cancelled", "fn", "seq", "when")

    def __init__(self, when: float, seq: int, fn: Callback) -> None:
        self.when = when
        self.seq = seq
        self.fn = fn
        self._cancelled = False

    def cancel(self) -> None:
        self._cancelled = True

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def __lt__(self, other: Timer) -> bool:
        # equal deadlines run in the order they were scheduled
        return (self.when, self.seq) < (other.when, other.seq)

    def __repr__(self) -> str:
        state = " cancelled" if self._cancelled else ""
        return f"<Timer at {self.when:.6f}{state} {self.fn!r}>"


class ThreadScheduler:
    """The real scheduler: one daemon thread sleeping on a condition until the next deadline.

    Nothing polls: the thread waits for exactly the time to the earliest deadline, or for
    ``call_later`` to bring an earlier one. A callback that raises is logged and the
    thread carries on, so one driver's bug cannot stop the others' timers.
    """

    _COMPACT_AT = 64  # rebuild the heap once this many cancelled timers sit in it

    def __init__(self, name: str = "deskphone-timers") -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[Timer] = []
        self._seq = itertools.count()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def now(self) -> float:
        return time.monotonic()

    def call_later(self, delay: float, fn: Callback) -> Timer:
        """Schedule ``fn``; after ``close()`` the call is dropped (returned cancelled).

        Dropping rather than raising: a gpiozero edge can still arrive while the phone
        shuts down, and its callback thread should not print a traceback for it.
        """
        with self._cond:
            timer = Timer(time.monotonic() + max(0.0, delay), next(self._seq), fn)
            if self._closed:
                timer.cancel()
                return timer
            heapq.heappush(self._heap, timer)
            if self._heap[0] is timer:
                self._cond.notify()
            self._compact_locked()
            return timer

    def close(self, timeout: float = 2.0) -> None:
        """Stop the thread; pending calls never run. Safe to call twice or from a callback."""
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> ThreadScheduler:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _compact_locked(self) -> None:
        if len(self._heap) >= self._COMPACT_AT:
            live = [t for t in self._heap if not t.cancelled]
            if len(live) * 2 < len(self._heap):
                heapq.heapify(live)
                self._heap = live

    def _run(self) -> None:
        while True:
            with self._cond:
                timer = None
                while timer is None:
                    if self._closed:
                        return
                    while self._heap and self._heap[0].cancelled:
                        heapq.heappop(self._heap)
                    if not self._heap:
                        self._cond.wait()
                        continue
                    wait = self._heap[0].when - time.monotonic()
                    if wait > 0:
                        self._cond.wait(wait)
                        continue
                    timer = heapq.heappop(self._heap)
            if timer.cancelled:  # cancelled between the pop and here: harmless race
                continue
            try:
                timer.fn()
            except Exception:
                log.exception("timer callback %r failed", timer.fn)


class ManualScheduler:
    """A fake clock for tests and the simulator: time moves only in ``advance()``.

    Time is kept in integer nanoseconds so that 200 steps of 5 ms land on exactly 1.0 s
    and a test can compare times with ``==``. Callbacks raise through ``advance()``: a
    test should see the traceback rather than a log line.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now_ns = _ns(start)
        self._heap: list[tuple[int, int, Timer]] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._advancing = False

    def now(self) -> float:
        return self._now_ns / 1e9

    def call_later(self, delay: float, fn: Callback) -> Timer:
        with self._lock:
            when_ns = self._now_ns + max(0, _ns(delay))
            timer = Timer(when_ns / 1e9, next(self._seq), fn)
            heapq.heappush(self._heap, (when_ns, timer.seq, timer))
            return timer

    def advance(self, seconds: float) -> None:
        """Move the clock forward, running every call that falls due, in deadline order.

        Calls scheduled by those callbacks run too if they fall within the window; each
        runs with ``now()`` equal to its own deadline.
        """
        if seconds < 0:
            raise ValueError(f"cannot advance by {seconds} s: time only moves forward")
        with self._lock:
            if self._advancing:
                raise RuntimeError("advance() is already running (called from a callback?)")
            self._advancing = True
            target = self._now_ns + _ns(seconds)
        try:
            while True:
                # the lock is released while a callback runs: it stays a leaf lock, so a
                # callback that takes a device's lock cannot deadlock with a thread
                # that holds that device's lock and calls call_later()
                with self._lock:
                    if not self._heap or self._heap[0][0] > target:
                        self._now_ns = target
                        return
                    when_ns, _, timer = heapq.heappop(self._heap)
                    if timer.cancelled:
                        continue
                    self._now_ns = when_ns
                timer.fn()
        finally:
            with self._lock:
                self._advancing = False

    def advance_to(self, when: float) -> None:
        """Advance to an absolute time (no-op if already there)."""
        self.advance(max(0.0, (_ns(when) - self._now_ns) / 1e9))

    @property
    def pending(self) -> int:
        """How many calls are waiting (cancelled ones excluded)."""
        with self._lock:
            return sum(1 for _, _, t in self._heap if not t.cancelled)

    def next_deadline(self) -> float | None:
        """The earliest pending deadline, if any."""
        with self._lock:
            live = [w for w, _, t in self._heap if not t.cancelled]
            return min(live) / 1e9 if live else None


class Alarm:
    """A device's one pending deadline: set it again and the old call is dropped.

    The drivers keep at most one timer each (next debounce expiry, next cadence edge...).
    ``set()`` and ``cancel()`` must be called holding ``lock``, the device's own lock;
    the callback runs holding it too, and a call that was superseded while it waited
    for the lock does nothing -- so a timer and a gpiozero edge cannot both act on
    stale state.
    """

    def __init__(self, scheduler: Scheduler, fn: Callback, lock: _LockLike) -> None:
        self._scheduler = scheduler
        self._fn = fn
        self._lock = lock
        self._when: float | None = None
        self._handle: TimerHandle | None = None
        self._token: object | None = None

    @property
    def when(self) -> float | None:
        """The pending deadline (scheduler time), or None."""
        return self._when

    def set(self, when: float | None) -> None:
        """Fire at ``when`` (None: never). Setting the pending deadline again is a no-op."""
        if when == self._when and self._handle is not None:
            return
        self.cancel()
        if when is None:
            return
        token = object()
        self._token, self._when = token, when
        delay = when - self._scheduler.now()
        self._handle = self._scheduler.call_later(delay, lambda: self._fire(token))

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._token = self._when = None

    def _fire(self, token: object) -> None:
        with self._lock:
            if token is not self._token:
                return
            self._handle = self._token = self._when = None
            self._fn()


class _LockLike(Protocol):
    def __enter__(self) -> object: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> object: ...


def _ns(seconds: float) -> int:
    return round(seconds * 1_000_000_000)
