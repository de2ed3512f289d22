"""The whole GPIO side from one pin map, driven through the simulated phone."""

from __future__ import annotations

import pytest
from gpiozero import LED
from gpiozero.exc import GPIOPinInUse
from gpiozero.pins.mock import MockFactory

from deskphone.hw.hardware import Hardware, HardwareTiming
from deskphone.hw.pins import PinMap
from deskphone.hw.sim import PhoneSim
from deskphone.hw.timing import ManualScheduler
from deskphone.phone.events import HardwareEvent, HookOff, HookOn, KeyPressed, KeyReleased

Log = list[tuple[float, HardwareEvent]]


def test_a_call_from_the_hands_side(factory: MockFactory, sched: ManualScheduler) -> None:
    pins = PinMap()
    sim = PhoneSim(factory, pins)
    log: Log = []
    with Hardware(pins, pin_factory=factory, scheduler=sched,
                  on_event=lambda e: log.append((sched.now(), e))) as hw:
        sim.lift()
        sched.advance(0.5)
        for digit in "12#":
            sim.press(digit)
            sched.advance(0.08)
            sim.release(digit)
            sched.advance(0.08)
        sim.press("speaker")
        sched.advance(0.1)
        sim.release("speaker")
        sim.hang_up()
        sched.advance(1.0)
        assert hw.keypad.resting and not hw.hook.is_offhook
    assert [e for _, e in log] == [
        HookOff(), KeyPressed("1"), KeyReleased("1"), KeyPressed("2"), KeyReleased("2"),
        KeyPressed("#"), KeyReleased("#"), KeyPressed("speaker"), KeyReleased("speaker"),
        HookOn()]


def test_ringer_and_lamps_on_their_pins(factory: MockFactory, sched: ManualScheduler) -> None:
    pins = PinMap()
    changes: list[bool] = []
    with Hardware(pins, pin_factory=factory, scheduler=sched, on_event=lambda e: None,
                  on_ringer_change=changes.append) as hw:
        hw.ringer.ring(((1000, 2000),))
        hw.leds.set("line", "blink")
        assert factory.pin(pins.ringer).state == 0.5
        assert factory.pin(pins.leds["line"]).state == 1
        sched.advance(1.2)
        assert factory.pin(pins.ringer).state == 0
        hw.on_ringer_change = None
        hw.ringer.stop()
    assert changes == [True]


def test_relay_ringer_from_the_pin_map(factory: MockFactory, sched: ManualScheduler) -> None:
    pins = PinMap.from_overrides({"ringer_kind": "relay", "relay_active_low": True})
    with Hardware(pins, pin_factory=factory, scheduler=sched, on_event=lambda e: None) as hw:
        assert factory.pin(17).state == 1
        hw.ringer.ring()
        assert factory.pin(17).state == 0
        assert 12 not in factory.pins or factory.pin(12).function == "input"


def test_boot_with_the_handset_lifted(factory: MockFactory, sched: ManualScheduler) -> None:
    pins = PinMap()
    PhoneSim(factory, pins).lift()
    log: Log = []
    with Hardware(pins, pin_factory=factory, scheduler=sched,
                  on_event=lambda e: log.append((sched.now(), e)),
                  timing=HardwareTiming(hook_debounce=0.05)) as hw:
        sched.advance(1.0)
        assert hw.hook.is_offhook
    assert log == [(0.05, HookOff())]


def test_close_gives_back_every_pin(factory: MockFactory, sched: ManualScheduler) -> None:
    pins = PinMap()
    hw = Hardware(pins, pin_factory=factory, scheduler=sched, on_event=lambda e: None)
    hw.leds.set("mwi", "blink")
    hw.ringer.ring()
    hw.close()
    hw.close()  # twice is fine
    assert sched.pending == 0
    for function, pin in pins.all_pins():
        if not function.startswith(("reserved.", "oled.")):
            LED(pin, pin_factory=factory).close()  # would raise GPIOPinInUse if held


def test_a_failed_build_leaves_no_pin_claimed(factory: MockFactory,
                                              sched: ManualScheduler) -> None:
    pins = PinMap()
    squatter = LED(pins.hook, pin_factory=factory)   # the hook is built last
    with pytest.raises(GPIOPinInUse):
        Hardware(pins, pin_factory=factory, scheduler=sched, on_event=lambda e: None)
    squatter.close()
    Hardware(pins, pin_factory=factory, scheduler=sched, on_event=lambda e: None).close()
