"""Hook switch: debounce, knocks, flash and hang-up on fake time, then on mock pins."""

from __future__ import annotations

import pytest
from gpiozero.pins.mock import MockFactory

from deskphone.hw.hook import HookDetector, HookState, HookSwitch
from deskphone.hw.pins import PinMap
from deskphone.hw.sim import PhoneSim
from deskphone.hw.timing import ManualScheduler
from deskphone.phone.events import HardwareEvent, HookFlash, HookOff, HookOn

Log = list[tuple[float, HardwareEvent]]


# ------------------------------------------------------------------ HookDetector (pure)


def run(det: HookDetector, readings: list[tuple[float, bool]], until: float) -> Log:
    """Feed readings at their times and fire the timer whenever it falls due."""
    out: Log = []
    for t, level in [*readings, (until, None)]:
        while (deadline := det.get_timer()) is not None and deadline <= t:
            out += [(deadline, e) for e in det.handle_timer(deadline)]
        if level is not None:
            out += [(t, e) for e in det.feed(level, t)]
    return out


def test_detector_lift_and_hang_up() -> None:
    det = HookDetector()
    assert run(det, [(0.0, False), (1.0, True), (3.0, False)], until=5.0) == [
        (1.03, HookOff()), (3.6, HookOn())]
    assert det.state is HookState.ON_HOOK and not det.offhook


def test_detector_ignores_a_glitch_shorter_than_debounce() -> None:
    det = HookDetector()
    out = run(det, [(0.0, True), (1.0, False), (1.02, True)], until=3.0)
    assert out == [(0.03, HookOff())]
    assert det.state is HookState.OFF_HOOK


@pytest.mark.parametrize(("down_for", "expected"), [
    (0.05, []),                 # a knock: passes the debounce, shorter than flash_min
    (0.1, [HookFlash()]),
    (0.3, [HookFlash()]),
    (0.59, [HookFlash()]),      # up before flash_max, confirmed only after it
])
def test_detector_flash_window(down_for: float, expected: list[HardwareEvent]) -> None:
    det = HookDetector()
    out = run(det, [(0.0, True), (1.0, False), (1.0 + down_for, True)], until=4.0)
    assert [e for _, e in out] == [HookOff(), *expected]
    assert det.offhook


def test_detector_flash_reported_when_the_lift_is_certain() -> None:
    det = HookDetector()
    out = run(det, [(0.0, True), (1.0, False), (1.3, True)], until=2.0)
    assert out == [(0.03, HookOff()), (1.33, HookFlash())]


def test_detector_hang_up_reported_at_flash_max() -> None:
    det = HookDetector()
    out = run(det, [(0.0, True), (1.0, False), (2.0, True)], until=3.0)
    assert out == [(0.03, HookOff()), (1.6, HookOn()), (2.03, HookOff())]


def test_detector_bounce_up_just_before_flash_max_that_falls_back_is_a_hang_up() -> None:
    det = HookDetector()
    out = run(det, [(0.0, True), (1.0, False), (1.59, True), (1.6, False)], until=3.0)
    assert out == [(0.03, HookOff()), (1.6, HookOn())]


def test_detector_late_caller_still_gets_the_hang_up() -> None:
    det = HookDetector()
    det.feed(True, 0.0)
    det.handle_timer(0.03)
    det.feed(False, 1.0)
    det.feed(False, 1.03)
    # nobody ran the timer at 1.6; the handset is seen back up at 2.0
    assert det.feed(True, 2.0) == []
    assert det.handle_timer(2.03) == [HookOn(), HookOff()]


def test_detector_rejects_a_bad_window() -> None:
    with pytest.raises(ValueError, match="flash window must have 0 <= flash_min < flash_max"):
        HookDetector(flash_min=0.6, flash_max=0.1)


# ------------------------------------------------------------- HookSwitch on mock pins


def make(factory: MockFactory, sched: ManualScheduler, log: Log,
         pinmap: PinMap | None = None) -> HookSwitch:
    pins = pinmap or PinMap()
    return HookSwitch(pins.hook, pin_factory=factory, scheduler=sched,
                      on_event=lambda e: log.append((sched.now(), e)),
                      offhook_when_active=pins.hook_active_when_offhook)


def test_lift_flash_knock_and_hang_up(factory: MockFactory, sched: ManualScheduler) -> None:
    sim = PhoneSim(factory)
    log: Log = []
    with make(factory, sched, log) as hook:
        assert not hook.is_offhook
        sched.advance(1.0)
        sim.lift()
        sched.advance(1.0)          # 1.0: lifted
        assert hook.is_offhook
        sim.hang_up()
        sched.advance(0.05)         # 2.0: a 50 ms drop, a knock
        sim.lift()
        sched.advance(1.0)
        sim.hang_up()
        sched.advance(0.3)          # 3.05: a 300 ms drop, a flash
        sim.lift()
        sched.advance(1.0)
        sim.hang_up()               # 4.35: hung up for good
        sched.advance(1.0)
        assert not hook.is_offhook
    assert log == [(1.03, HookOff()), (3.38, HookFlash()), (4.95, HookOn())]
    assert sched.pending == 0


def test_bouncing_lift_gives_one_hookoff(factory: MockFactory,
                                         sched: ManualScheduler) -> None:
    sim = PhoneSim(factory)
    log: Log = []
    with make(factory, sched, log):
        for _ in range(5):
            sim.lift()
            sched.advance(0.002)
            sim.hang_up()
            sched.advance(0.003)
        sim.lift()
        sched.advance(1.0)
    assert log == [(0.055, HookOff())]


def test_handset_already_lifted_at_boot(factory: MockFactory,
                                        sched: ManualScheduler) -> None:
    sim = PhoneSim(factory)
    sim.lift()
    sched.advance(5.0)
    log: Log = []
    with make(factory, sched, log) as hook:
        sched.advance(0.1)
        assert hook.is_offhook
    assert log == [(5.03, HookOff())]


def test_handset_on_hook_at_boot_reports_nothing(factory: MockFactory,
                                                 sched: ManualScheduler) -> None:
    PhoneSim(factory)
    log: Log = []
    with make(factory, sched, log):
        sched.advance(2.0)
    assert log == [] and sched.pending == 0


def test_switch_closed_when_on_hook(factory: MockFactory, sched: ManualScheduler) -> None:
    pins = PinMap(hook_active_when_offhook=False)
    sim = PhoneSim(factory, pins)
    assert factory.pin(pins.hook).state == 0  # on-hook: contact closed to GND
    log: Log = []
    with make(factory, sched, log, pins):
        sched.advance(1.0)
        sim.lift()
        sched.advance(1.0)
        sim.hang_up()
        sched.advance(1.0)
    assert log == [(1.03, HookOff()), (2.6, HookOn())]


def test_hook_made_before_the_sim(factory: MockFactory, sched: ManualScheduler) -> None:
    log: Log = []
    with make(factory, sched, log):
        sim = PhoneSim(factory)
        sim.lift()
        sched.advance(0.1)
    assert log == [(0.03, HookOff())]
