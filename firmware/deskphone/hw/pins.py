"""The BCM pin map (the one place pins are numbered) and the choice of pin factory.

Defaults are plan A of the board notes (board/README.md §2): SPI0 given up so that its
pins serve the keypad and the function keys; I2C1 (GPIO 2/3) for the OLED, UART 14/15
for the serial console and I2S 18-21 for the audio HAT stay out of reach, listed in
``reserved`` so that a config override cannot put a key on them.

Electrical conventions the drivers assume:

- keypad rows are driven low one at a time (open-drain style: a row not being scanned
  is released to an input, never driven high, so two keys in one column cannot short
  two outputs together); columns are inputs with pull-ups. At rest every row is low, so
  any key pulls its column low and wakes the scanner.
- the hook switch, function keys and columns close to GND against the internal pull-up:
  a closed contact reads as "active".
- a phone's hook switch is normally closed while the handset is lifted (the cradle
  plunger opens it), hence ``hook_active_when_offhook=True``; a switch wired the other
  way round sets it False.
- the ringer relay defaults to active-high because GPIO 17's boot pull-down then keeps
  the bell silent while the Pi boots; a board with an active-low relay module sets
  ``relay_active_low``.

gpiozero is imported only inside ``make_pin_factory``: reading the pin map (for the
config check, a wiring table, a device-tree overlay) needs no GPIO library.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from ..phone.events import DIGIT_KEYS, FUNCTION_KEYS
from .ringer import RINGER_KINDS

if TYPE_CHECKING:
    from gpiozero import Factory

__all__ = [
    "LED_NAMES",
    "PIN_FACTORY_KINDS",
    "RINGER_KINDS",
    "PinMap",
    "is_raspberry_pi",
    "make_pin_factory",
]

log = logging.getLogger(__name__)

LED_NAMES: Final = ("line", "mwi", "in_use")
"""The lamps the phone knows how to drive: line (call state), message waiting, in use."""

PIN_FACTORY_KINDS: Final = ("auto", "mock", "lgpio")

KEYPAD_ROWS: Final = 4
KEYPAD_COLS: Final = 3
assert len(DIGIT_KEYS) == KEYPAD_ROWS * KEYPAD_COLS

MAX_GPIO: Final = 27
"""GPIO 0-27 reach the 40-pin header on every Pi from the B+ to the 5."""

_I2C_PINS: Final = {1: (2, 3)}  # bus -> (SDA, SCL) on the header

_MODEL_PATH: Final = "/proc/device-tree/model"


def _default_function_keys() -> Mapping[str, int]:
    return {"redial": 5, "hold": 6, "mute": 7, "speaker": 8}


def _default_leds() -> Mapping[str, int]:
    return {"line": 22, "mwi": 23, "in_use": 27}


def _default_reserved() -> Mapping[str, int]:
    return {"hat_id_sd": 0, "hat_id_sc": 1, "uart_txd": 14, "uart_rxd": 15,
            "i2s_bclk": 18, "i2s_lrclk": 19, "i2s_din": 20, "i2s_dout": 21}


@dataclass(frozen=True, slots=True)
class PinMap:
    """Which BCM GPIO does what. Validated on construction: every pin 0-27, none twice.

    ``function_keys``, ``leds`` and ``reserved`` are replaced whole by an override (so a
    board without a mute key simply leaves it out).
    """

    keypad_rows: tuple[int, ...] = (9, 10, 11, 16)
    keypad_cols: tuple[int, ...] = (24, 25, 26)
    hook: int = 4
    hook_active_when_offhook: bool = True
    function_keys: Mapping[str, int] = field(default_factory=_default_function_keys,
                                             hash=False)
    ringer_kind: str = "pwm"
    ringer: int = 12
    relay: int = 17
    relay_active_low: bool = False
    leds: Mapping[str, int] = field(default_factory=_default_leds, hash=False)
    oled_i2c_bus: int = 1
    oled_i2c_address: int = 0x3C
    reserved: Mapping[str, int] = field(default_factory=_default_reserved, hash=False)

    def __post_init__(self) -> None:
        rows = _pin_tuple("keypad_rows", self.keypad_rows, KEYPAD_ROWS)
        cols = _pin_tuple("keypad_cols", self.keypad_cols, KEYPAD_COLS)
        object.__setattr__(self, "keypad_rows", rows)
        object.__setattr__(self, "keypad_cols", cols)
        for name in ("function_keys", "leds", "reserved"):
            object.__setattr__(self, name, _pin_mapping(name, getattr(self, name)))
        _check_names("function_keys", self.function_keys, FUNCTION_KEYS)
        _check_names("leds", self.leds, LED_NAMES)
        for name in ("hook", "ringer", "relay", "oled_i2c_bus"):
            _check_int(name, getattr(self, name))
        for name in ("hook_active_when_offhook", "relay_active_low"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: expected true or false, got "
                                 f"{getattr(self, name)!r}")
        if self.ringer_kind not in RINGER_KINDS:
            raise ValueError(f"ringer_kind: expected one of {', '.join(RINGER_KINDS)}, "
                             f"got {self.ringer_kind!r}")
        _check_int("oled_i2c_address", self.oled_i2c_address)
        if not 0x03 <= self.oled_i2c_address <= 0x77:
            raise ValueError(f"oled_i2c_address: 0x{self.oled_i2c_address:02x} is not a "
                             "7-bit I2C device address (0x03-0x77)")
        seen: dict[int, str] = {}
        for function, pin in self.all_pins():
            if not 0 <= pin <= MAX_GPIO:
                raise ValueError(f"{function}: pin {pin} is not a header GPIO "
                                 f"(0-{MAX_GPIO})")
            if pin in seen:
                raise ValueError(f"pin {pin} is used by both {seen[pin]} and {function}")
            seen[pin] = function

    @classmethod
    def from_overrides(cls, overrides: Mapping[str, Any]) -> PinMap:
        """The plan A map with the config's ``[hardware]`` entries applied (and checked)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown pin map setting "
                             f"(known: {', '.join(sorted(known))})")
        return cls(**dict(overrides))

    @property
    def ringer_pin(self) -> int:
        """The pin the ringer driver claims: the PWM pin or the relay pin, by kind."""
        return self.ringer if self.ringer_kind == "pwm" else self.relay

    @property
    def oled_i2c_pins(self) -> tuple[int, int] | None:
        """(SDA, SCL) of the OLED's bus, where the header has them."""
        return _I2C_PINS.get(self.oled_i2c_bus)

    def all_pins(self) -> tuple[tuple[str, int], ...]:
        """Every pin the phone occupies, as (function, BCM pin), in header-wiring order.

        Only the ringer pin of the chosen kind is listed: the other is free for a
        board to reuse. The names are those the validation errors use.
        """
        pins: list[tuple[str, int]] = []
        pins += [(f"keypad_rows[{i}]", p) for i, p in enumerate(self.keypad_rows)]
        pins += [(f"keypad_cols[{i}]", p) for i, p in enumerate(self.keypad_cols)]
        pins.append(("hook", self.hook))
        pins += [(f"function_keys.{n}", p) for n, p in self.function_keys.items()]
        pins.append(("ringer" if self.ringer_kind == "pwm" else "relay", self.ringer_pin))
        pins += [(f"leds.{n}", p) for n, p in self.leds.items()]
        i2c = self.oled_i2c_pins
        if i2c is not None:
            pins += [("oled.sda", i2c[0]), ("oled.scl", i2c[1])]
        pins += [(f"reserved.{n}", p) for n, p in self.reserved.items()]
        return tuple(pins)


def _check_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}: expected an integer, got {value!r}")


def _pin_tuple(name: str, value: object, count: int) -> tuple[int, ...]:
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        raise ValueError(f"{name}: expected a list of {count} pins, got {value!r}")
    pins = tuple(value)
    if len(pins) != count:
        raise ValueError(f"{name}: expected {count} pins, got {len(pins)}")
    for i, pin in enumerate(pins):
        _check_int(f"{name}[{i}]", pin)
    return pins


def _pin_mapping(name: str, value: object) -> Mapping[str, int]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{name}: expected a table of name = pin, got {value!r}")
    for key, pin in value.items():
        if not isinstance(key, str):
            raise ValueError(f"{name}: names must be strings, got {key!r}")
        _check_int(f"{name}.{key}", pin)
    return MappingProxyType(dict(value))


def _check_names(name: str, value: Mapping[str, int], known: tuple[str, ...]) -> None:
    for key in value:
        if key not in known:
            raise ValueError(f"{name}.{key}: unknown name (known: {', '.join(known)})")


def is_raspberry_pi(model_path: str = _MODEL_PATH) -> bool:
    """True when the device tree names a Raspberry Pi (any model, including the 5)."""
    try:
        with open(model_path, "rb") as f:
            return f.read().startswith(b"Raspberry Pi")
    except OSError:
        return False


def make_pin_factory(kind: str = "auto", *, model_path: str = _MODEL_PATH) -> Factory:
    """The one place a gpiozero pin factory is chosen.

    ``mock``: MockFactory with PWM-capable pins (as lgpio gives software PWM on any
    pin). ``lgpio``: the real pins (Pi 3/4/5). ``auto``: lgpio on a Pi where the lgpio
    module imports, else mock (a laptop, CI) -- with a log line, since a Pi that falls
    back to mock pins looks dead rather than broken.
    """
    if kind not in PIN_FACTORY_KINDS:
        raise ValueError(f"pin factory: expected one of {', '.join(PIN_FACTORY_KINDS)}, "
                         f"got {kind!r}")
    if kind == "auto":
        if is_raspberry_pi(model_path):
            try:
                importlib.import_module("lgpio")  # only probing: the C library loads
            except ImportError:
                log.warning("Raspberry Pi without the lgpio module: using mock pins "
                            "(install python3-lgpio)")
                kind = "mock"
            else:
                kind = "lgpio"
        else:
            kind = "mock"
        log.info("pin factory: %s", kind)
    if kind == "lgpio":
        from gpiozero.pins.lgpio import LGPIOFactory

        return LGPIOFactory()
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    return MockFactory(pin_class=MockPWMPin)
