"""The phone's circuit on mock pins: what the drivers' tests and the simulator stand on."""

from __future__ import annotations

import pytest
from gpiozero import DigitalInputDevice, DigitalOutputDevice
from gpiozero.pins.mock import MockFactory, MockPin, MockPWMPin

from deskphone.hw.pins import PinMap
from deskphone.hw.sim import PhoneSim, PinRecorder, observe_pin

PINS = PinMap()
ROWS, COLS = PINS.keypad_rows, PINS.keypad_cols


def test_sim_never_touches_pins_no_device_has_claimed(factory: MockFactory) -> None:
    sim = PhoneSim(factory, PINS)
    for key in sim.keys:
        sim.press(key)
    sim.lift()
    sim.release_all()
    sim.hang_up()
    # nothing drives the rows: every line keeps its reset level, floating
    assert all(factory.pin(p).function == "input" for p in (*ROWS, *COLS))
    assert sim.contention == []


def test_hook_level_follows_the_pin_map_polarity(factory: MockFactory) -> None:
    hook = DigitalInputDevice(PINS.hook, pull_up=True, pin_factory=factory)
    sim = PhoneSim(factory, PINS)
    assert not hook.is_active
    sim.lift()
    assert hook.is_active and factory.pin(PINS.hook).state == 0
    sim.hang_up()
    assert not hook.is_active
    hook.close()


def test_level_set_before_the_device_survives_its_pull_up(factory: MockFactory) -> None:
    sim = PhoneSim(factory, PINS)
    sim.lift()
    sim.press("redial")
    hook = DigitalInputDevice(PINS.hook, pull_up=True, pin_factory=factory)
    redial = DigitalInputDevice(PINS.function_keys["redial"], pull_up=True,
                                pin_factory=factory)
    assert hook.is_active and redial.is_active
    hook.close()
    redial.close()


def test_matrix_contact_joins_a_driven_row_to_its_column(factory: MockFactory) -> None:
    sim = PhoneSim(factory, PINS)
    row = DigitalOutputDevice(ROWS[1], active_high=False, initial_value=False,
                              pin_factory=factory)
    col = DigitalInputDevice(COLS[2], pull_up=True, pin_factory=factory)
    sim.press("6")                # row 1, column 2
    assert not col.is_active      # row released: high
    row.on()                      # drive it low
    assert col.is_active
    row.off()                     # push-pull high
    assert not col.is_active
    row.close()
    col.close()


def test_push_pull_rows_joined_by_two_keys_are_a_short(factory: MockFactory) -> None:
    sim = PhoneSim(factory, PINS)
    r0 = DigitalOutputDevice(ROWS[0], active_high=False, initial_value=False,
                             pin_factory=factory)
    r1 = DigitalOutputDevice(ROWS[1], active_high=False, initial_value=False,
                             pin_factory=factory)
    col = DigitalInputDevice(COLS[0], pull_up=True, pin_factory=factory)
    sim.press("1", "4")           # both in column 0
    r0.on()                       # row 0 low, row 1 high: the naive scan
    assert sim.contention == [frozenset({ROWS[0], ROWS[1], COLS[0]})]
    for d in (r0, r1, col):
        d.close()


def test_observe_pin_works_before_and_after_the_device(factory: MockFactory) -> None:
    seen: list[bool] = []
    pin = observe_pin(factory, 20, lambda p: seen.append(bool(p.state)))
    led = DigitalOutputDevice(20, pin_factory=factory)
    assert led.pin is pin and isinstance(pin, MockPWMPin)
    led.on()
    other = DigitalOutputDevice(21, pin_factory=factory)
    late = observe_pin(factory, 21, lambda p: seen.append(bool(p.state)))
    assert other.pin is late
    other.on()
    assert seen[-1] is True and True in seen[:-1]
    led.close()
    other.close()


def test_observe_pin_needs_a_mock_factory() -> None:
    with pytest.raises(TypeError, match="the phone sim needs gpiozero's MockFactory"):
        observe_pin(object(), 4, lambda p: None)  # type: ignore[arg-type]


def test_plain_mock_pins_work_too() -> None:
    f = MockFactory(pin_class=MockPin)
    try:
        sim = PhoneSim(f, PINS)
        hook = DigitalInputDevice(PINS.hook, pull_up=True, pin_factory=f)
        sim.lift()
        assert hook.is_active
        hook.close()
    finally:
        f.reset()


def test_pin_recorder_stamps_changes_with_the_given_clock(factory: MockFactory) -> None:
    now = [0.0]
    rec = PinRecorder(factory, 22, lambda: now[0])
    led = DigitalOutputDevice(22, pin_factory=factory)
    now[0] = 1.5
    led.on()
    now[0] = 2.0
    led.on()     # no change: not recorded
    led.off()
    assert rec.changes == [(0.0, 0.0), (1.5, 1.0), (2.0, 0.0)]
    rec.close()
    led.on()
    assert rec.changes[-1] == (2.0, 0.0)
    led.close()


def test_unknown_key(factory: MockFactory) -> None:
    sim = PhoneSim(factory, PINS)
    with pytest.raises(ValueError, match="no key 'transfer' on this phone"):
        sim.press("transfer")
