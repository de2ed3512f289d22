"""Lamps: on/off, blink timing on fake time, blinking lamps in step, bad names."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from deskphone.hw.leds import Leds
from deskphone.hw.pins import PinMap
from deskphone.hw.sim import PinRecorder
from deskphone.hw.timing import ManualScheduler

PINS = PinMap().leds


@pytest.fixture
def leds(factory: MockFactory, sched: ManualScheduler) -> Iterator[Leds]:
    with Leds(PINS, pin_factory=factory, scheduler=sched) as leds:
        yield leds


def test_on_and_off(leds: Leds, factory: MockFactory, sched: ManualScheduler) -> None:
    assert leds.names == ("line", "mwi", "in_use")
    leds.set("line", "on")
    assert factory.pin(PINS["line"]).state == 1 and leds.is_lit("line")
    sched.advance(10.0)
    assert factory.pin(PINS["line"]).state == 1 and sched.pending == 0
    leds.set("line", "off")
    assert factory.pin(PINS["line"]).state == 0 and leds.mode("line") == "off"


def test_blink_timing(leds: Leds, factory: MockFactory, sched: ManualScheduler) -> None:
    mwi = PinRecorder(factory, PINS["mwi"], sched.now)
    line = PinRecorder(factory, PINS["line"], sched.now)
    leds.set("mwi", "blink")
    leds.set("line", "blink_fast")
    sched.advance(2.0)
    assert mwi.changes == [(0.0, 0.0), (0.0, 1.0), (0.5, 0.0), (1.0, 1.0), (1.5, 0.0),
                           (2.0, 1.0)]
    assert line.changes == [(0.0, 0.0)] + [(i * 0.125, float(i % 2 == 0))
                                           for i in range(17)]
    leds.set("mwi", "off")
    sched.advance(2.0)
    assert mwi.changes[-1] == (2.0, 0.0)
    assert sched.pending == 1  # only the fast blink goes on


def test_lamps_blinking_at_one_rate_blink_together(leds: Leds, factory: MockFactory,
                                                   sched: ManualScheduler) -> None:
    leds.set("mwi", "blink")
    sched.advance(0.2)
    in_use = PinRecorder(factory, PINS["in_use"], sched.now)
    leds.set("in_use", "blink")   # set mid-way: lit until the shared edge at 0.5
    sched.advance(0.4)
    sched.advance(0.6)            # 1.2: in the second lit half-period
    assert in_use.changes == [(0.2, 0.0), (0.2, 1.0), (0.5, 0.0), (1.0, 1.0)]
    assert leds.is_lit("mwi") and leds.is_lit("in_use")
    leds.set("in_use", "blink")   # the same mode again changes nothing
    assert in_use.changes[-1] == (1.0, 1.0) and sched.pending == 2


def test_set_late_in_a_dark_half_period_starts_dark(leds: Leds,
                                                    sched: ManualScheduler) -> None:
    sched.advance(0.7)
    leds.set("line", "blink")
    assert not leds.is_lit("line")
    sched.advance(0.3)
    assert leds.is_lit("line")


def test_unknown_lamp_and_mode(leds: Leds) -> None:
    with pytest.raises(ValueError, match="no LED named 'power' \\(have: line, mwi, in_use\\)"):
        leds.set("power", "on")
    with pytest.raises(ValueError, match="LED mode must be one of off, on, blink, "
                                         "blink_fast, got 'flash'"):
        leds.set("line", "flash")


def test_close_stops_blinking_and_frees_the_pins(factory: MockFactory,
                                                 sched: ManualScheduler) -> None:
    leds = Leds(PINS, pin_factory=factory, scheduler=sched)
    leds.set("mwi", "blink_fast")
    leds.close()
    sched.advance(1.0)
    assert sched.pending == 0
    with pytest.raises(RuntimeError, match="LEDs are closed"):
        leds.set("mwi", "on")
    Leds(PINS, pin_factory=factory, scheduler=sched).close()
