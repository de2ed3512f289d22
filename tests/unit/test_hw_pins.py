"""The pin map: plan A defaults, validation of [hardware] overrides, the pin factory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from deskphone.hw.pins import PinMap, is_raspberry_pi, make_pin_factory


def test_plan_a_defaults() -> None:
    p = PinMap()
    assert p.keypad_rows == (9, 10, 11, 16) and p.keypad_cols == (24, 25, 26)
    assert p.hook == 4 and p.hook_active_when_offhook
    assert dict(p.function_keys) == {"redial": 5, "hold": 6, "mute": 7, "speaker": 8}
    assert p.ringer_kind == "pwm" and p.ringer_pin == 12
    assert dict(p.leds) == {"line": 22, "mwi": 23, "in_use": 27}
    assert (p.oled_i2c_bus, p.oled_i2c_address, p.oled_i2c_pins) == (1, 0x3C, (2, 3))


def test_all_pins_lists_every_function_once() -> None:
    pins = PinMap().all_pins()
    assert pins[:8] == (("keypad_rows[0]", 9), ("keypad_rows[1]", 10),
                        ("keypad_rows[2]", 11), ("keypad_rows[3]", 16),
                        ("keypad_cols[0]", 24), ("keypad_cols[1]", 25),
                        ("keypad_cols[2]", 26), ("hook", 4))
    d = dict(pins)
    assert d["function_keys.mute"] == 7 and d["ringer"] == 12 and "relay" not in d
    assert d["leds.in_use"] == 27 and d["oled.sda"] == 2 and d["reserved.i2s_bclk"] == 18
    assert len({pin for _, pin in pins}) == len(pins)
    # plan A's budget of 17 GPIOs (board/README.md §2) less the relay a PWM ringer
    # leaves free, plus the I2C pair
    assert len([f for f, _ in pins if not f.startswith("reserved.")]) == 16 + 2


def test_relay_ringer_frees_the_pwm_pin() -> None:
    p = PinMap.from_overrides({"ringer_kind": "relay", "relay_active_low": True,
                               "leds": {"line": 12, "mwi": 23}})
    assert p.ringer_pin == 17
    assert ("relay", 17) in p.all_pins() and ("leds.line", 12) in p.all_pins()


def test_overrides_replace_mappings_whole() -> None:
    p = PinMap.from_overrides({"function_keys": {"transfer": 13}, "keypad_rows": [5, 6, 7, 8]})
    assert dict(p.function_keys) == {"transfer": 13}
    assert p.keypad_rows == (5, 6, 7, 8)
    with pytest.raises(TypeError):
        p.function_keys["hold"] = 6  # type: ignore[index]  # frozen all the way down


@pytest.mark.parametrize(("overrides", "message"), [
    ({"hook": 9}, "pin 9 is used by both keypad_rows[0] and hook"),
    ({"leds": {"line": 5}}, "pin 5 is used by both function_keys.redial and leds.line"),
    ({"hook": 14}, "pin 14 is used by both hook and reserved.uart_txd"),
    ({"keypad_cols": [24, 25, 24]},
     "pin 24 is used by both keypad_cols[0] and keypad_cols[2]"),
    ({"hook": 28}, "hook: pin 28 is not a header GPIO (0-27)"),
    ({"function_keys": {"mute": -1}}, "function_keys.mute: pin -1 is not a header GPIO"),
    ({"hook": True}, "hook: expected an integer, got True"),
    ({"hook": "4"}, "hook: expected an integer, got '4'"),
    ({"keypad_rows": [9, 10, 11]}, "keypad_rows: expected 4 pins, got 3"),
    ({"keypad_cols": 24}, "keypad_cols: expected a list of 3 pins, got 24"),
    ({"function_keys": {"boss": 13}}, "function_keys.boss: unknown name (known: hold, "),
    ({"leds": {"power": 13}}, "leds.power: unknown name (known: line, mwi, in_use)"),
    ({"leds": [22]}, "leds: expected a table of name = pin, got [22]"),
    ({"ringer_kind": "bell"}, "ringer_kind: expected one of pwm, relay, got 'bell'"),
    ({"hook_active_when_offhook": 1}, "hook_active_when_offhook: expected true or false"),
    ({"oled_i2c_address": 0x80}, "oled_i2c_address: 0x80 is not a 7-bit I2C device"),
    ({"hookpin": 4}, "hookpin: unknown pin map setting (known: function_keys, hook, "),
])
def test_validation_names_the_field(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as info:
        PinMap.from_overrides(overrides)
    assert str(info.value).startswith(message)


def test_moving_a_reserved_pin_out_of_the_way() -> None:
    p = PinMap.from_overrides({"reserved": {}, "hook": 14})
    assert p.hook == 14


def test_make_pin_factory_mock() -> None:
    f = make_pin_factory("mock")
    try:
        assert isinstance(f, MockFactory) and f.pin_class is MockPWMPin
    finally:
        f.reset()


def test_make_pin_factory_auto_off_a_pi_is_mock(tmp_path: Path) -> None:
    f = make_pin_factory("auto", model_path=str(tmp_path / "missing"))
    assert isinstance(f, MockFactory)
    f.reset()


def test_make_pin_factory_auto_on_a_pi_without_lgpio_falls_back_loudly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    model = tmp_path / "model"
    model.write_bytes(b"Raspberry Pi 4 Model B Rev 1.5\x00")
    assert is_raspberry_pi(str(model))
    monkeypatch.setitem(sys.modules, "lgpio", None)  # import lgpio -> ImportError
    f = make_pin_factory("auto", model_path=str(model))
    assert isinstance(f, MockFactory)
    assert "without the lgpio module" in caplog.text
    f.reset()


def test_make_pin_factory_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="pin factory: expected one of auto, mock, lgpio, "
                                         "got 'rpigpio'"):
        make_pin_factory("rpigpio")


def test_pin_map_imports_without_gpiozero() -> None:
    code = ("import sys, deskphone.hw.pins as p; p.PinMap().all_pins(); "
            "import deskphone.hw.hardware; assert 'gpiozero' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
