"""Ringer cadences on fake time: every edge on its millisecond, stop() at once."""

from __future__ import annotations

import pytest
from gpiozero.pins.mock import MockFactory

from deskphone.hw.ringer import Ringer, check_cadence
from deskphone.hw.sim import PinRecorder
from deskphone.hw.timing import ManualScheduler

PWM_PIN, RELAY_PIN = 12, 17
US = ((2000, 4000),)
UK = ((400, 200), (400, 2000))


def test_us_cadence(factory: MockFactory, sched: ManualScheduler) -> None:
    rec = PinRecorder(factory, PWM_PIN, sched.now)
    with Ringer(PWM_PIN, pin_factory=factory, scheduler=sched) as ringer:
        assert factory.pin(PWM_PIN).frequency == 25.0
        sched.advance(1.0)
        ringer.ring(US)
        sched.advance(13.0)
    assert rec.changes == [(0.0, 0.0), (1.0, 0.5), (3.0, 0.0), (7.0, 0.5), (9.0, 0.0),
                           (13.0, 0.5), (14.0, 0.0)]  # the last: close() at 14.0


def test_uk_cadence(factory: MockFactory, sched: ManualScheduler) -> None:
    rec = PinRecorder(factory, PWM_PIN, sched.now)
    with Ringer(PWM_PIN, pin_factory=factory, scheduler=sched) as ringer:
        ringer.ring(UK)
        sched.advance(6.1)
        assert rec.changes == [(0.0, 0.0), (0.0, 0.5), (0.4, 0.0), (0.6, 0.5), (1.0, 0.0),
                               (3.0, 0.5), (3.4, 0.0), (3.6, 0.5), (4.0, 0.0), (6.0, 0.5)]


def test_cadence_does_not_drift_over_an_hour(factory: MockFactory,
                                             sched: ManualScheduler) -> None:
    rec = PinRecorder(factory, PWM_PIN, sched.now)
    with Ringer(PWM_PIN, pin_factory=factory, scheduler=sched) as ringer:
        ringer.ring(UK)
        sched.advance(3600.0)
        assert rec.changes[-1] == (3600.0, 0.5)  # 1200 cycles of 3 s, to the ns
        assert len(rec.changes) == 1 + 1200 * 4 + 1


def test_stop_switches_off_at_once_and_no_more_edges(factory: MockFactory,
                                                     sched: ManualScheduler) -> None:
    rec = PinRecorder(factory, PWM_PIN, sched.now)
    changes: list[tuple[float, bool]] = []
    with Ringer(PWM_PIN, pin_factory=factory, scheduler=sched,
                on_change=lambda on: changes.append((sched.now(), on))) as ringer:
        ringer.ring(US)
        sched.advance(0.5)
        assert ringer.ringing and ringer.sounding
        ringer.stop()
        assert factory.pin(PWM_PIN).state == 0  # before any time passes
        assert not ringer.ringing and sched.pending == 0
        sched.advance(20.0)
        ringer.stop()  # stopping twice tells nobody twice
    assert rec.changes == [(0.0, 0.0), (0.0, 0.5), (0.5, 0.0)]
    assert changes == [(0.0, True), (0.5, False)]


def test_stop_in_the_silent_part_tells_on_change(factory: MockFactory,
                                                 sched: ManualScheduler) -> None:
    changes: list[bool] = []
    with Ringer(PWM_PIN, pin_factory=factory, scheduler=sched,
                on_change=changes.append) as ringer:
        ringer.ring(US)
        sched.advance(2.5)
        assert ringer.ringing and not ringer.sounding
        ringer.stop()
    assert changes == [True, False]


def test_ring_again_restarts_the_cadence_without_a_second_start(
        factory: MockFactory, sched: ManualScheduler) -> None:
    rec = PinRecorder(factory, PWM_PIN, sched.now)
    changes: list[bool] = []
    with Ringer(PWM_PIN, pin_factory=factory, scheduler=sched,
                on_change=changes.append) as ringer:
        ringer.ring(US)
        sched.advance(2.5)
        ringer.ring(UK)  # a different caller's ring, say
        sched.advance(1.0)
    assert rec.changes == [(0.0, 0.0), (0.0, 0.5), (2.0, 0.0), (2.5, 0.5), (2.9, 0.0),
                           (3.1, 0.5), (3.5, 0.0)]
    assert changes == [True, False]


def test_relay_active_low(factory: MockFactory, sched: ManualScheduler) -> None:
    rec = PinRecorder(factory, RELAY_PIN, sched.now)
    with Ringer(RELAY_PIN, kind="relay", active_high=False, pin_factory=factory,
                scheduler=sched) as ringer:
        assert factory.pin(RELAY_PIN).state == 1  # idle: high, relay off
        ringer.ring(((1000, 2000),))
        sched.advance(3.5)
        ringer.stop()
        assert factory.pin(RELAY_PIN).state == 1
        # made (output high = off), rung at 0, 1 s on, 2 s off, on again, stopped at 3.5
        assert rec.changes[1:] == [(0.0, 1.0), (0.0, 0.0), (1.0, 1.0), (3.0, 0.0),
                                   (3.5, 1.0)]


def test_continuous_ring(factory: MockFactory, sched: ManualScheduler) -> None:
    with Ringer(RELAY_PIN, kind="relay", pin_factory=factory, scheduler=sched) as ringer:
        ringer.ring(())
        sched.advance(100.0)
        assert factory.pin(RELAY_PIN).state == 1 and sched.pending == 0
        ringer.stop()
        assert factory.pin(RELAY_PIN).state == 0


def test_zero_length_parts_merge(factory: MockFactory, sched: ManualScheduler) -> None:
    rec = PinRecorder(factory, PWM_PIN, sched.now)
    with Ringer(PWM_PIN, pin_factory=factory, scheduler=sched) as ringer:
        ringer.ring(((300, 0), (300, 400)))  # 600 ms on, 400 off
        sched.advance(1.1)
    assert rec.changes[1:] == [(0.0, 0.5), (0.6, 0.0), (1.0, 0.5), (1.1, 0.0)]


@pytest.mark.parametrize(("cadence", "message"), [
    (((100, -5),), "cadence step 0 (100, -5) has a negative time"),
    (((0, 100), (0, 200)), "cadence never rings: every on time is 0"),
    (((100, 0),), "cadence never pauses: use an empty cadence to ring continuously"),
])
def test_bad_cadence(cadence: tuple[tuple[int, int], ...], message: str) -> None:
    with pytest.raises(ValueError) as info:
        check_cadence(cadence)
    assert str(info.value) == message


def test_bad_kind_and_closed_ringer(factory: MockFactory, sched: ManualScheduler) -> None:
    with pytest.raises(ValueError, match="ringer kind must be one of pwm, relay, got 'bell'"):
        Ringer(PWM_PIN, kind="bell", pin_factory=factory, scheduler=sched)
    ringer = Ringer(PWM_PIN, pin_factory=factory, scheduler=sched)
    ringer.close()
    with pytest.raises(RuntimeError, match="ringer is closed"):
        ringer.ring(US)
    ringer.stop()  # harmless after close
