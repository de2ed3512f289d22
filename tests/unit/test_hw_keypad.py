"""Matrix keypad and function keys: the pure debouncer/ghost filter, then the GPIO half.

The GPIO tests press keys on ``PhoneSim`` (the circuit on mock pins) and move fake time
with ``ManualScheduler``: no sleeps, exact times.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from deskphone.hw.keypad import (
    FunctionKeys,
    KeyDebouncer,
    KeyMatrixState,
    MatrixKeypad,
    ghost_suspects,
)
from deskphone.hw.pins import PinMap
from deskphone.hw.sim import PhoneSim, PinRecorder
from deskphone.hw.timing import ManualScheduler
from deskphone.phone.events import DIGIT_KEYS, HardwareEvent, KeyHeld, KeyPressed, KeyReleased

PINS = PinMap()
ROWS, COLS = PINS.keypad_rows, PINS.keypad_cols

Log = list[tuple[float, HardwareEvent]]


@pytest.fixture
def log() -> Log:
    return []


@pytest.fixture
def sim(factory: MockFactory) -> PhoneSim:
    return PhoneSim(factory, PINS)


@pytest.fixture
def keypad(factory: MockFactory, sched: ManualScheduler, log: Log,
           sim: PhoneSim) -> Iterator[MatrixKeypad]:
    with MatrixKeypad(ROWS, COLS, pin_factory=factory, scheduler=sched,
                      on_event=lambda e: log.append((sched.now(), e))) as kp:
        yield kp


def events(log: Log) -> list[HardwareEvent]:
    return [e for _, e in log]


# ----------------------------------------------------------------- KeyDebouncer (pure)


def test_debouncer_reports_a_key_once_stable_for_the_debounce_time() -> None:
    d = KeyDebouncer(debounce=0.02)
    assert d.update({"5"}, 0.0) == []
    assert d.get_timer() == 0.02
    assert d.update({"5"}, 0.019) == []
    assert d.handle_timer(0.02) == [KeyPressed("5")]
    assert d.down == ("5",)
    assert d.update(set(), 0.1) == []
    assert d.handle_timer(0.12) == [KeyReleased("5")]
    assert d.idle and d.get_timer() is None


def test_debouncer_bouncing_contact_gives_one_press() -> None:
    d = KeyDebouncer(debounce=0.02)
    out: list[HardwareEvent] = []
    # the contact makes and breaks for 16 ms, then stays made
    for t, down in [(0.0, True), (0.002, False), (0.004, True), (0.007, False),
                    (0.011, True), (0.015, False), (0.016, True)]:
        out += d.update({"1"} if down else set(), t)
    out += d.handle_timer(0.035)
    assert out == []
    assert d.get_timer() == pytest.approx(0.036)  # 20 ms after the last bounce
    assert d.handle_timer(0.036) == [KeyPressed("1")]


def test_debouncer_hold_fires_once_after_hold_time() -> None:
    d = KeyDebouncer(debounce=0.02, hold_time=1.0)
    d.update({"hold"}, 0.0)
    assert d.handle_timer(0.02) == [KeyPressed("hold")]
    assert d.get_timer() == 1.0
    assert d.handle_timer(0.999) == []
    assert d.handle_timer(1.0) == [KeyHeld("hold")]
    assert d.handle_timer(5.0) == []
    assert d.get_timer() is None
    d.update(set(), 5.0)
    assert d.handle_timer(5.02) == [KeyReleased("hold")]


def test_debouncer_late_update_reports_in_the_order_things_happened() -> None:
    d = KeyDebouncer(debounce=0.02, hold_time=0.05)
    d.update({"1"}, 0.0)
    d.update({"1", "2"}, 0.01)
    # nobody looked until 0.1: 1 pressed (0.02), 2 pressed (0.03), 1 held (0.05), 2 held
    # (0.06); then 1 is seen up (at 0.1)
    assert d.update({"2"}, 0.1) == [KeyPressed("1"), KeyPressed("2"), KeyHeld("1"),
                                     KeyHeld("2")]
    assert d.handle_timer(0.12) == [KeyReleased("1")]


def test_debouncer_key_seen_up_at_the_next_look_still_counts_if_it_was_down_long_enough(
) -> None:
    d = KeyDebouncer(debounce=0.02)
    d.update({"7"}, 0.0)
    assert d.update(set(), 0.02) == [KeyPressed("7")]
    assert d.handle_timer(0.04) == [KeyReleased("7")]


def test_debouncer_rejects_bad_timing() -> None:
    with pytest.raises(ValueError, match="debounce must be >= 0 s, got -1"):
        KeyDebouncer(debounce=-1)
    with pytest.raises(ValueError, match="hold_time must be > 0 s"):
        KeyDebouncer(hold_time=0)


# -------------------------------------------------------------- ghosting (pure)


def test_ghost_suspects_are_the_corners_of_full_rectangles() -> None:
    assert ghost_suspects({(0, 0), (0, 1), (1, 0)}) == set()
    square = {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert ghost_suspects(square) == square
    assert ghost_suspects(square | {(3, 2)}) == square
    # two rows sharing columns 0 and 2 only
    assert ghost_suspects({(1, 0), (1, 2), (3, 0), (3, 2), (3, 1)}) == {
        (1, 0), (1, 2), (3, 0), (3, 2)}


def test_matrix_state_does_not_report_a_phantom_fourth_key() -> None:
    m = KeyMatrixState(debounce=0.02)
    p = m.position_of
    out = m.update({p("1"), p("2")}, 0.0)
    out += m.update({p("1"), p("2")}, 0.02)
    assert out == [KeyPressed("1"), KeyPressed("2")]
    # "4" goes down: on a diode-less matrix "5" reads down as well
    ambiguous = {p("1"), p("2"), p("4"), p("5")}
    out = m.update(ambiguous, 0.03) + m.update(ambiguous, 0.2)
    assert out == [] and m.ambiguous
    # "2" goes up: the rectangle is gone, "4" is certain now
    out = m.update({p("1"), p("4")}, 0.21) + m.update({p("1"), p("4")}, 0.25)
    assert out == [KeyReleased("2"), KeyPressed("4")]  # one instant: in key order
    assert not m.ambiguous


def test_matrix_state_is_idle_only_when_nothing_reads_down() -> None:
    m = KeyMatrixState()
    rect = {(0, 0), (0, 1), (1, 0), (1, 1)}
    m.update(rect, 0.0)  # all ambiguous and new: nothing reported, but keys are down
    assert not m.idle
    m.update(set(), 0.01)
    assert m.idle


def test_matrix_state_rejects_a_bad_shape() -> None:
    with pytest.raises(ValueError, match="12 keys do not fill a matrix 5 columns wide"):
        KeyMatrixState(DIGIT_KEYS, cols=5)
    with pytest.raises(ValueError, match="outside the 4x3 matrix"):
        KeyMatrixState().update({(4, 0)}, 0.0)


# ----------------------------------------------------------- MatrixKeypad on mock pins


@pytest.mark.parametrize("key", list(DIGIT_KEYS))
def test_every_key_of_the_matrix(key: str, keypad: MatrixKeypad, sim: PhoneSim,
                                 sched: ManualScheduler, log: Log) -> None:
    sched.advance(1.0)
    sim.press(key)
    sched.advance(0.1)
    sim.release(key)
    sched.advance(0.1)
    assert log == [(1.02, KeyPressed(key)), (1.125, KeyReleased(key))]
    assert keypad.resting


def test_rollover_reports_in_press_order(keypad: MatrixKeypad, sim: PhoneSim,
                                         sched: ManualScheduler, log: Log) -> None:
    sim.press("1")
    sched.advance(0.01)
    sim.press("9")       # down before "1" is even reported
    sched.advance(0.015)
    sim.release("1")     # up before "9" is reported
    sched.advance(0.01)
    sim.press("0")
    sched.advance(0.005)
    sim.release("9")
    sched.advance(0.2)
    sim.release("0")
    sched.advance(0.1)
    assert events(log) == [KeyPressed("1"), KeyPressed("9"), KeyReleased("1"),
                           KeyPressed("0"), KeyReleased("9"), KeyReleased("0")]
    assert keypad.resting


def test_keys_sharing_a_row_or_a_column_all_count(keypad: MatrixKeypad, sim: PhoneSim,
                                                   sched: ManualScheduler,
                                                   log: Log) -> None:
    sim.press("2", "5", "8")  # one column: no rectangle, nothing ambiguous
    sched.advance(0.1)
    assert keypad.down == ("2", "5", "8")
    sim.release_all()
    sim.press("4", "5", "6")  # one row
    sched.advance(0.1)
    assert keypad.down == ("5", "4", "6")  # "5" never went up: no scan saw it up
    # released rows float rather than drive high: rows joined through a column never
    # fight (with push-pull rows, "2"+"5" would short a high row to the scanned one)
    assert sim.contention == []


def test_ghost_rectangle_gives_no_phantom(keypad: MatrixKeypad, sim: PhoneSim,
                                          sched: ManualScheduler, log: Log) -> None:
    sim.press("1", "3")
    sched.advance(0.1)
    sim.press("*")       # corners 1, 3, * of the 1-3-#-* rectangle: # reads down too
    sched.advance(0.5)
    assert events(log) == [KeyPressed("1"), KeyPressed("3")]
    sim.release("3")     # rectangle broken: * is certain
    sched.advance(0.1)
    sim.release_all()
    sched.advance(0.1)
    # "3" up and "*" certain in one scan: same instant, reported in key order
    assert events(log) == [KeyPressed("1"), KeyPressed("3"), KeyReleased("3"),
                           KeyPressed("*"), KeyReleased("1"), KeyReleased("*")]
    assert KeyPressed("#") not in events(log)
    assert sim.contention == []


def test_bouncing_key_gives_exactly_one_press(keypad: MatrixKeypad, sim: PhoneSim,
                                              sched: ManualScheduler, log: Log) -> None:
    for _ in range(4):   # 8 edges within 16 ms of fake time
        sim.press("8")
        sched.advance(0.001)
        sim.release("8")
        sched.advance(0.003)
    sim.press("8")
    sched.advance(0.2)
    assert events(log) == [KeyPressed("8")]


def test_held_key_reports_keyheld_once(factory: MockFactory, sched: ManualScheduler,
                                       log: Log, sim: PhoneSim) -> None:
    with MatrixKeypad(ROWS, COLS, pin_factory=factory, scheduler=sched,
                      on_event=lambda e: log.append((sched.now(), e)),
                      hold_time=1.0):
        sched.advance(0.5)
        sim.press("0")
        sched.advance(2.0)
        sim.release("0")
        sched.advance(0.1)
    assert log == [(0.52, KeyPressed("0")), (1.5, KeyHeld("0")), (2.525, KeyReleased("0"))]


def test_no_scanning_at_rest(factory: MockFactory, keypad: MatrixKeypad, sim: PhoneSim,
                             sched: ManualScheduler) -> None:
    rows = [PinRecorder(factory, p, sched.now) for p in ROWS]
    sched.advance(10.0)
    assert keypad.scans == 0 and sched.pending == 0
    assert all(r.changes == [(0.0, 0.0)] for r in rows)  # all rows low, untouched
    sim.press("2")
    sched.advance(0.05)
    sim.release("2")
    sched.advance(0.05)
    assert keypad.resting
    scans, history = keypad.scans, [list(r.changes) for r in rows]
    sched.advance(60.0)
    assert keypad.scans == scans and sched.pending == 0
    assert [r.changes for r in rows] == history
    assert all(r.changes[-1][1] == 0.0 for r in rows)  # back to rest: all rows low


def test_column_edges_during_a_scan_start_no_second_scan(
        keypad: MatrixKeypad, sim: PhoneSim, sched: ManualScheduler) -> None:
    sim.press("5", "6")  # each scan moves both columns: many edges per scan
    assert sched.pending == 1  # the wake-up
    for _ in range(40):
        sched.advance(0.005)
        assert sched.pending == 1  # only ever the next scan
    assert keypad.scans == 41  # at 0, 0.005, ... 0.2: one per interval, no extras
    # a scan wakes nothing: a column edge caused by it was seen and ignored
    sim.release("5", "6")
    sched.advance(0.1)
    assert keypad.resting and sched.pending == 0


def test_scan_timing_follows_scan_interval(factory: MockFactory, sched: ManualScheduler,
                                           log: Log, sim: PhoneSim) -> None:
    with MatrixKeypad(ROWS, COLS, pin_factory=factory, scheduler=sched,
                      on_event=lambda e: log.append((sched.now(), e)),
                      scan_interval=0.01, debounce=0.05) as kp:
        sim.press("3")
        sched.advance(0.3)
        assert kp.scans == 31
    assert log == [(0.05, KeyPressed("3"))]


def test_key_down_at_boot_is_reported(factory: MockFactory, sched: ManualScheduler,
                                      log: Log, sim: PhoneSim) -> None:
    sim.press("#")
    with MatrixKeypad(ROWS, COLS, pin_factory=factory, scheduler=sched,
                      on_event=lambda e: log.append((sched.now(), e))):
        sched.advance(0.1)
    assert events(log) == [KeyPressed("#")]


def test_keypad_made_before_the_sim(factory: MockFactory, sched: ManualScheduler,
                                    log: Log) -> None:
    with MatrixKeypad(ROWS, COLS, pin_factory=factory, scheduler=sched,
                      on_event=lambda e: log.append((sched.now(), e))) as kp:
        sim = PhoneSim(factory, PINS)
        sim.press("7")
        sched.advance(0.1)
        sim.release("7")
        sched.advance(0.1)
        assert events(log) == [KeyPressed("7"), KeyReleased("7")]
        assert kp.resting


def test_close_gives_back_the_pins(factory: MockFactory, sched: ManualScheduler,
                                   sim: PhoneSim) -> None:
    kp = MatrixKeypad(ROWS, COLS, pin_factory=factory, scheduler=sched,
                      on_event=lambda e: None)
    sim.press("1")
    sched.advance(0.01)
    kp.close()
    sched.advance(1.0)  # the pending scan was cancelled: nothing runs on closed pins
    assert sched.pending == 0
    MatrixKeypad(ROWS, COLS, pin_factory=factory, scheduler=sched,
                 on_event=lambda e: None).close()


def test_keypad_shape_must_match_the_keys(factory: MockFactory,
                                          sched: ManualScheduler) -> None:
    with pytest.raises(ValueError, match="4 rows x 2 columns do not fit 12 keys"):
        MatrixKeypad(ROWS, COLS[:2], pin_factory=factory, scheduler=sched,
                     on_event=lambda e: None)


def test_a_failing_consumer_does_not_break_the_keypad(
        factory: MockFactory, sched: ManualScheduler, sim: PhoneSim,
        caplog: pytest.LogCaptureFixture) -> None:
    seen: list[HardwareEvent] = []

    def consumer(event: HardwareEvent) -> None:
        seen.append(event)
        raise RuntimeError("bug downstream")

    with MatrixKeypad(ROWS, COLS, pin_factory=factory, scheduler=sched,
                      on_event=consumer) as kp:
        sim.press("1")
        sched.advance(0.05)
        sim.release("1")
        sched.advance(0.05)
        assert seen == [KeyPressed("1"), KeyReleased("1")]
        assert kp.resting
    assert "bug downstream" in caplog.text


# -------------------------------------------------------------------- FunctionKeys


@pytest.fixture
def fkeys(factory: MockFactory, sched: ManualScheduler, log: Log,
          sim: PhoneSim) -> Iterator[FunctionKeys]:
    with FunctionKeys(PINS.function_keys, pin_factory=factory, scheduler=sched,
                      on_event=lambda e: log.append((sched.now(), e))) as keys:
        yield keys


def test_function_key_press_hold_release(fkeys: FunctionKeys, sim: PhoneSim,
                                         sched: ManualScheduler, log: Log) -> None:
    sim.press("redial")
    sched.advance(2.0)
    sim.release("redial")
    sched.advance(0.1)
    assert log == [(0.02, KeyPressed("redial")), (1.0, KeyHeld("redial")),
                   (2.02, KeyReleased("redial"))]
    assert sched.pending == 0


def test_function_key_bounce_is_debounced_on_fake_time(
        fkeys: FunctionKeys, sim: PhoneSim, sched: ManualScheduler, log: Log) -> None:
    for _ in range(5):
        sim.press("mute")
        sched.advance(0.002)
        sim.release("mute")
        sched.advance(0.002)
    sim.press("mute")
    sched.advance(0.5)
    assert log == [(0.04, KeyPressed("mute"))]


def test_function_keys_rollover(fkeys: FunctionKeys, sim: PhoneSim,
                                sched: ManualScheduler, log: Log) -> None:
    sim.press("hold")
    sched.advance(0.01)
    sim.press("speaker")
    sched.advance(0.05)
    sim.release("hold", "speaker")
    sched.advance(0.05)
    assert events(log) == [KeyPressed("hold"), KeyPressed("speaker"), KeyReleased("hold"),
                           KeyReleased("speaker")]


def test_function_keys_names_are_checked(factory: MockFactory,
                                         sched: ManualScheduler) -> None:
    with pytest.raises(ValueError, match="function key 'boss' is not one of hold, "):
        FunctionKeys({"boss": 5}, pin_factory=factory, scheduler=sched,
                     on_event=lambda e: None)
