"""Schedulers: the fake clock the hardware tests run on, and the one real timer thread."""

from __future__ import annotations

import threading

import pytest

from deskphone.hw.timing import Alarm, ManualScheduler, ThreadScheduler

# ------------------------------------------------------------------ ManualScheduler


def test_manual_scheduler_runs_due_calls_in_deadline_order() -> None:
    s = ManualScheduler()
    ran: list[tuple[str, float]] = []
    s.call_later(0.3, lambda: ran.append(("c", s.now())))
    s.call_later(0.1, lambda: ran.append(("a", s.now())))
    s.call_later(0.2, lambda: ran.append(("b", s.now())))
    s.call_later(0.2, lambda: ran.append(("b2", s.now())))  # same deadline: FIFO
    s.advance(0.25)
    assert ran == [("a", 0.1), ("b", 0.2), ("b2", 0.2)]
    assert s.now() == 0.25
    s.advance(0.05)
    assert ran[-1] == ("c", 0.3)


def test_manual_scheduler_runs_calls_scheduled_by_calls_within_the_window() -> None:
    s = ManualScheduler()
    ran: list[float] = []

    def tick() -> None:
        ran.append(s.now())
        s.call_later(0.005, tick)

    s.call_later(0.0, tick)
    assert ran == []  # nothing runs until time moves (or advance(0))
    s.advance(1.0)
    assert len(ran) == 201 and ran[-1] == 1.0  # integer ns: no drift over 200 steps
    assert s.pending == 1 and s.next_deadline() == 1.005


def test_manual_scheduler_cancel() -> None:
    s = ManualScheduler()
    ran: list[str] = []
    handle = s.call_later(0.1, lambda: ran.append("x"))
    s.call_later(0.2, lambda: ran.append("y"))
    handle.cancel()
    assert s.pending == 1
    s.advance(1.0)
    assert ran == ["y"] and s.pending == 0


def test_manual_scheduler_time_only_moves_forward() -> None:
    s = ManualScheduler(start=5.0)
    with pytest.raises(ValueError, match="cannot advance by -1 s"):
        s.advance(-1)
    s.advance_to(7.5)
    assert s.now() == 7.5
    s.advance_to(1.0)
    assert s.now() == 7.5


def test_manual_scheduler_refuses_advance_from_a_callback() -> None:
    s = ManualScheduler()
    s.call_later(0.1, lambda: s.advance(1.0))
    with pytest.raises(RuntimeError, match="advance\\(\\) is already running"):
        s.advance(1.0)


def test_alarm_keeps_one_deadline() -> None:
    s = ManualScheduler()
    lock = threading.RLock()
    fired: list[float] = []
    alarm = Alarm(s, lambda: fired.append(s.now()), lock)
    with lock:
        alarm.set(0.5)
        alarm.set(0.3)  # supersedes 0.5
        alarm.set(0.3)  # same deadline: kept, not rescheduled
    assert s.pending == 1 and alarm.when == 0.3
    s.advance(1.0)
    assert fired == [0.3] and alarm.when is None
    with lock:
        alarm.set(2.0)
        alarm.cancel()
    s.advance(5.0)
    assert fired == [0.3]


# ------------------------------------------------------------------ ThreadScheduler


def test_thread_scheduler_runs_one_call_and_cancels_another() -> None:
    with ThreadScheduler() as s:
        cancelled_ran = threading.Event()
        ran = threading.Event()
        order: list[str] = []

        def late() -> None:
            order.append("late")
            ran.set()

        handle = s.call_later(0.02, cancelled_ran.set)
        s.call_later(0.05, late)
        s.call_later(0.0, lambda: order.append("now"))
        handle.cancel()
        assert ran.wait(2.0)
        assert not cancelled_ran.is_set()
        assert order == ["now", "late"]
        assert s.now() > 0


def test_thread_scheduler_survives_a_failing_callback(
        caplog: pytest.LogCaptureFixture) -> None:
    with ThreadScheduler() as s:
        done = threading.Event()

        def boom() -> None:
            raise RuntimeError("driver bug")

        s.call_later(0.0, boom)
        s.call_later(0.01, done.set)
        assert done.wait(2.0)
    assert "driver bug" in caplog.text


def test_thread_scheduler_close_stops_the_thread_and_drops_calls() -> None:
    s = ThreadScheduler(name="test-timers")
    ran = threading.Event()
    s.call_later(0.05, ran.set)
    s.close()
    assert s.closed
    assert not any(t.name == "test-timers" for t in threading.enumerate())
    late = s.call_later(0.0, ran.set)  # after close: dropped, not raised
    assert late.cancelled
    assert not ran.wait(0.1)
    s.close()  # twice is fine
