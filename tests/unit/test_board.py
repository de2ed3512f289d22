"""board/ is generated from the firmware's pin map (tools/board.py): the overlay compiles
with dtc and sets exactly the pins PinMap names, no pin is asked for by two pin groups that
can be enabled together (whatever the overlay's parameters), and the committed files are up
to date.

The expected pin settings are worked out here from PinMap's fields and the display's SPI
wiring, not from board.py's own tables, so a slip in the generator shows up as a
difference. The overlay's parameters are applied here as the Pi's firmware loader applies
them (fdtoverlay knows nothing of __overrides__): a "<0>,"..." override toggles fragments
("+N" on, "-N" off, "=N" on when the value is true, "!N" on when it is false), which is
renaming __dormant__ to __overlay__ or back.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path

import pytest
from tools_loader import load_tool

from deskphone.hw.display import SPI_GPIO_DC, SPI_GPIO_RST
from deskphone.hw.pins import PinMap

ROOT = Path(__file__).resolve().parents[2]
BOARD_PY = ROOT / "tools" / "board.py"
BOARD_DIR = ROOT / "board"

IN, OUT, ALT0 = 0, 1, 4
NONE, DOWN, UP = 0, 1, 2

SPI0_MUXED = {8, 10, 11}  # CE0 (a GPIO chip select), MOSI, SCLK: one CS, no MISO
SPI_OPTION = SPI0_MUXED | {SPI_GPIO_DC} | ({SPI_GPIO_RST} - {None})
"""Every pin an SPI display takes: SPI0 as oled_spi muxes it, and luma.oled's DC/RST."""

SPI_READY = PinMap(  # the SPI display's pins left free: no I2S HAT, rows and a key moved
    keypad_rows=(9, 16, 18, 20), function_keys={"redial": 5, "hold": 6, "mute": 7,
                                                "speaker": 21},
    reserved={"hat_id_sd": 0, "hat_id_sc": 1, "uart_txd": 14, "uart_rxd": 15})


board = load_tool("board", "deskphone_tools_board")


def _tool(name: str) -> str:
    """The path of a device-tree-compiler tool: skip without it, except on CI."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not installed (apt-get install device-tree-compiler)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _compile(dts_text: str, tmp_path: Path, name: str = "deskphone") -> Path:
    dts = tmp_path / f"{name}.dts"
    dts.write_text(dts_text, encoding="utf-8")
    out = tmp_path / f"{name}.dtbo"
    result = subprocess.run([_tool("dtc"), "-@", "-I", "dts", "-O", "dtb", "-o", str(out),
                             str(dts)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    # the only warning dtc gives: the dormant (parameter) fragments have no reg, as in
    # every Raspberry Pi overlay with parameters
    for line in result.stderr.splitlines():
        assert "unit_address_vs_reg" in line and "/fragment@" in line, line
    return out


class Dtbo:
    """A compiled overlay (or merged tree) read back with fdtget."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fdtget = _tool("fdtget")

    def _get(self, *args: str) -> str:
        result = subprocess.run([self.fdtget, *args], capture_output=True, text=True,
                                check=False)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def ints(self, node: str, prop: str) -> list[int]:
        return [int(v) for v in self._get("-t", "u", str(self.path), node, prop).split()]

    def string(self, node: str, prop: str) -> str:
        return self._get("-t", "s", str(self.path), node, prop)

    def subnodes(self, node: str) -> list[str]:
        return self._get("-l", str(self.path), node).split()

    def props(self, node: str) -> list[str]:
        return self._get("-p", str(self.path), node).split()

    def fragments(self) -> dict[int, tuple[str, str]]:
        """fragment number -> (the base-tree label it targets, "__overlay__" or
        "__dormant__"), from __fixups__ and the fragment's one subnode."""
        out = {}
        for label in self.props("/__fixups__"):
            for number in re.findall(r"/fragment@(\d+):target:0", self.string("/__fixups__",
                                                                              label)):
                (node,) = self.subnodes(f"/fragment@{number}")
                out[int(number)] = (label, node)
        assert sorted(out) == list(range(len(out))), out
        return out

    def targets(self, label: str) -> list[int]:
        return sorted(n for n, (t, _) in self.fragments().items() if t == label)

    def target(self, label: str) -> str:
        """The one fragment whose target is the base tree's ``label``."""
        (number,) = self.targets(label)
        return f"/fragment@{number}"

    def toggles(self, param: str) -> list[tuple[str, int]]:
        """A fragment-toggling parameter's operations: [("!", 1), ("=", 2), ...]."""
        value = self.string("/__overrides__", param).lstrip("\0")  # after the <0> cell
        assert re.fullmatch(r"(?:[-+=!]\d+)+", value), value
        return [(op, int(n)) for op, n in re.findall(r"([-+=!])(\d+)", value)]

    def enabled(self, params: Mapping[str, bool]) -> set[int]:
        """The fragments the firmware merges with ``params`` given (absent: not given)."""
        on = {n for n, (_, node) in self.fragments().items() if node == "__overlay__"}
        for param, value in params.items():
            for op, n in self.toggles(param):
                if op == "+" or (op == "=" and value) or (op == "!" and not value):
                    on.add(n)
                else:
                    on.discard(n)
        return on

    def groups(self) -> dict[str, dict[str, list[int]]]:
        """Every pin group the &gpio fragments define: name -> pins, function, pull,
        phandle."""
        out = {}
        for number in self.targets("gpio"):
            (body,) = self.subnodes(f"/fragment@{number}")
            for name in self.subnodes(f"/fragment@{number}/{body}"):
                node = f"/fragment@{number}/{body}/{name}"
                out[name] = {p: self.ints(node, p) for p in
                             ("brcm,pins", "brcm,function", "brcm,pull", "phandle")}
        return out

    def pinctrl(self, params: Mapping[str, bool]) -> dict[str, list[str]]:
        """label -> the pin groups its pinctrl-0 names, over the fragments enabled with
        ``params``; at most one enabled fragment may set a label's pinctrl-0 (a second
        would silently replace the first)."""
        by_phandle = {g["phandle"][0]: name for name, g in self.groups().items()}
        frags = self.fragments()
        out: dict[str, list[str]] = {}
        for number in sorted(self.enabled(params)):
            label, body = frags[number]
            node = f"/fragment@{number}/{body}"
            if "pinctrl-0" in self.props(node):
                assert label not in out, f"two enabled fragments set {label}'s pinctrl-0"
                out[label] = [by_phandle[p] for p in self.ints(node, "pinctrl-0")]
        return out

    def hog(self, params: Mapping[str, bool] | None = None) -> list[str]:
        """The pin groups the GPIO controller hogs with ``params``."""
        return self.pinctrl(params or {})["gpio"]

    def cs_gpios(self, params: Mapping[str, bool]) -> list[int]:
        """The chip-select GPIOs SPI0 requests with ``params`` (none while it is off)."""
        (number,) = self.targets("spi0")
        if number not in self.enabled(params):
            return []
        (body,) = self.subnodes(f"/fragment@{number}")
        cells = self.ints(f"/fragment@{number}/{body}", "cs-gpios")
        return cells[1::3]  # <&gpio pin flags> each


def _pin_settings(groups: dict[str, dict[str, list[int]]],
                  names: list[str]) -> dict[int, tuple[int, int]]:
    """BCM pin -> (function, pull) over the named groups (one value may cover all pins)."""
    out: dict[int, tuple[int, int]] = {}
    for name in names:
        g = groups[name]
        pins = g["brcm,pins"]
        funcs = g["brcm,function"] * len(pins) if len(g["brcm,function"]) == 1 \
            else g["brcm,function"]
        pulls = g["brcm,pull"] * len(pins) if len(g["brcm,pull"]) == 1 else g["brcm,pull"]
        for pin, func, pull in zip(pins, funcs, pulls, strict=True):
            assert pin not in out, f"GPIO {pin} is set twice"
            out[pin] = (func, pull)
    return out


def _expected_phone_pins(pm: PinMap) -> dict[int, tuple[int, int]]:
    """What the firmware needs of each pin it reads or drives, from PinMap alone."""
    want: dict[int, tuple[int, int]] = {}
    want.update({p: (OUT, UP) for p in pm.keypad_rows})      # driven low; released: pull-up
    want.update({p: (IN, UP) for p in pm.keypad_cols})
    want[pm.hook] = (IN, UP)
    want.update({p: (IN, UP) for p in pm.function_keys.values()})
    want.update({p: (OUT, DOWN) for p in pm.leds.values()})
    want[pm.relay] = (IN, UP) if pm.relay_active_low else (OUT, DOWN)
    want[pm.ringer] = (OUT, DOWN)  # lgpio software PWM: a plain output, held low
    return want


@pytest.fixture(scope="module")
def default_dtbo(tmp_path_factory: pytest.TempPathFactory) -> Dtbo:
    committed = (BOARD_DIR / "deskphone.dts").read_text(encoding="utf-8")
    return Dtbo(_compile(committed, tmp_path_factory.mktemp("dtbo")))


# --------------------------------------------------------------------------- the header


def test_header_table_known_pins() -> None:
    assert board.physical_pin(4) == 7
    assert board.physical_pin(12) == 32
    assert board.physical_pin(2) == 3
    assert board.physical_pin(14) == 8
    assert sorted(board.PHYSICAL) == list(range(28))


def test_header_table_matches_gpiozero() -> None:
    from gpiozero.pins.mock import MockFactory

    for revision in ("902120", "a020d3", "c03111", "d04170"):  # Zero 2 W, 3B+, 4B, 5
        factory = MockFactory(revision=revision)
        try:
            pins = factory.board_info.headers["J8"].pins
            assert {n: p.name for n, p in pins.items()} == dict(enumerate(board.HEADER, 1))
        finally:
            factory.close()


# --------------------------------------------------------------------------- the overlay


def test_committed_overlay_compiles(default_dtbo: Dtbo) -> None:
    assert default_dtbo.path.stat().st_size > 0
    assert board.GENERATED in (BOARD_DIR / "deskphone.dts").read_text(encoding="utf-8")


def test_overlay_pins_equal_the_pin_map(default_dtbo: Dtbo) -> None:
    groups = default_dtbo.groups()
    assert _pin_settings(groups, default_dtbo.hog()) == _expected_phone_pins(PinMap())


def test_overlay_binds_no_driver_to_the_phone_pins(default_dtbo: Dtbo) -> None:
    # only the GPIO controller, I2C1, UART0 and the SPI option are touched: no node of
    # its own (gpio-keys, matrix-keypad), no "gpios" property anywhere, and no PWM block
    fragments = [n for n in default_dtbo.subnodes("/") if n.startswith("fragment@")]
    targets = sorted(default_dtbo.props("/__fixups__"))
    assert targets == ["gpio", "i2c_arm", "spi0", "spidev1", "uart0"]
    assert len(fragments) == len(default_dtbo.fragments()) == 7
    for fragment in fragments:
        assert "target-path" not in default_dtbo.props(f"/{fragment}")


def test_overlay_enables_i2c1_and_uart0(default_dtbo: Dtbo) -> None:
    groups = default_dtbo.groups()
    by_phandle = {g["phandle"][0]: g for g in groups.values()}

    def interface(label: str) -> tuple[str, dict[str, list[int]]]:
        node = default_dtbo.target(label) + "/__overlay__"
        assert default_dtbo.string(node, "status") == "okay"
        return node, by_phandle[default_dtbo.ints(node, "pinctrl-0")[0]]

    node, pins = interface("i2c_arm")
    assert default_dtbo.ints(node, "clock-frequency") == [400000]
    assert pins["brcm,pins"] == [2, 3] and pins["brcm,function"] == [ALT0]
    _, pins = interface("uart0")
    assert pins["brcm,pins"] == [14, 15] and pins["brcm,function"] == [ALT0]


def test_spi_is_a_parameter_off_by_default(default_dtbo: Dtbo) -> None:
    spi = default_dtbo.target("spi0")
    assert default_dtbo.subnodes(spi) == ["__dormant__"]
    assert int(spi.rpartition("@")[2]) not in default_dtbo.enabled({})
    assert default_dtbo.cs_gpios({"oled_spi": True}) == [8]
    assert "spi0" not in default_dtbo.pinctrl({})


PARAMS = [{k: v for k, v in zip(("oled_spi", "uart0"), values, strict=True) if v is not None}
          for values in itertools.product((None, True, False), repeat=2)]
"""Every way config.txt can give the overlay's parameters (None: not given)."""


@pytest.mark.parametrize("pm", [PinMap(), SPI_READY, PinMap(ringer_kind="relay"),
                                PinMap(hook=13)],
                         ids=["default", "spi-ready", "relay", "hook-on-dc"])
def test_no_gpio_in_two_pin_groups_enabled_together(pm: PinMap, tmp_path: Path) -> None:
    dtbo = Dtbo(_compile(board.render_overlay(pm), tmp_path))
    groups = dtbo.groups()
    for params in PARAMS:
        owners: dict[int, str] = {}
        for label, names in dtbo.pinctrl(params).items():
            pins = [p for name in names for p in groups[name]["brcm,pins"]]
            if label == "spi0":
                pins += [p for p in dtbo.cs_gpios(params) if p not in pins]
            assert len(pins) == len(set(pins)), (params, label, names)
            for pin in pins:
                assert pin not in owners, (f"GPIO {pin} is claimed by {owners[pin]} and "
                                           f"{label} with {params}")
                owners[pin] = label
        hogged = set(_pin_settings(groups, dtbo.hog(params)))
        if params.get("oled_spi"):  # nothing else on SPI0's pins, the display's DC/RST
            assert hogged.isdisjoint(SPI_OPTION), params
            assert set(_pin_settings(groups, dtbo.pinctrl(params)["spi0"])) == SPI0_MUXED
        else:  # every phone pin set up at boot
            assert _pin_settings(groups, dtbo.hog(params)) == _expected_phone_pins(pm)
            assert "spi0" not in dtbo.pinctrl(params)


def test_oled_spi_swaps_the_hog_for_one_without_the_spi_pins(default_dtbo: Dtbo) -> None:
    pm = PinMap()
    groups = default_dtbo.groups()
    frags = default_dtbo.fragments()
    shared = set(_expected_phone_pins(pm)) & SPI_OPTION
    assert shared == {8, 10, 11}  # F-key speaker, keypad rows 2 and 3
    # their own group, hogged by default and left out of the hog oled_spi swaps in
    assert set(groups["deskphone_spi_shared"]["brcm,pins"]) == shared
    gpio = default_dtbo.targets("gpio")
    assert [frags[n][1] for n in gpio] == ["__overlay__", "__overlay__", "__dormant__"]
    groups_only, hog_off, hog_on = gpio
    assert "pinctrl-0" not in default_dtbo.props(f"/fragment@{groups_only}/__overlay__")
    (spi,), (spidev1,) = default_dtbo.targets("spi0"), default_dtbo.targets("spidev1")
    assert default_dtbo.toggles("oled_spi") == [("!", hog_off), ("=", hog_on), ("=", spi),
                                                ("=", spidev1)]
    on, off = default_dtbo.enabled({"oled_spi": True}), default_dtbo.enabled({})
    assert {hog_on, spi, spidev1} <= on and hog_off not in on
    assert hog_off in off and off.isdisjoint({hog_on, spi, spidev1})
    assert default_dtbo.enabled({"oled_spi": False}) == off
    assert "deskphone_spi_shared" in default_dtbo.hog()
    assert default_dtbo.hog({"oled_spi": True}) == [g for g in default_dtbo.hog()
                                                    if g != "deskphone_spi_shared"]
    dts = (BOARD_DIR / "deskphone.dts").read_text(encoding="utf-8")
    readme = (BOARD_DIR / "README.md").read_text(encoding="utf-8")
    for doc in (dts, readme):  # the collisions are named, and the way to move them
        assert "function_keys.speaker" in doc and "keypad_rows[2]" in doc
        assert "--config phone.toml --out" in doc


def test_a_map_that_frees_the_spi_pins_hogs_the_same_either_way(tmp_path: Path) -> None:
    assert set(_expected_phone_pins(SPI_READY)).isdisjoint(SPI_OPTION)
    dtbo = Dtbo(_compile(board.render_overlay(SPI_READY), tmp_path))
    assert "deskphone_spi_shared" not in dtbo.groups()
    (spi,), (spidev1,) = dtbo.targets("spi0"), dtbo.targets("spidev1")
    assert dtbo.toggles("oled_spi") == [("=", spi), ("=", spidev1)]
    assert dtbo.hog({"oled_spi": True}) == dtbo.hog()
    readme = board.render_readme(SPI_READY, (BOARD_DIR / "README.md").read_text("utf-8"))
    assert "This pin map leaves them free" in readme


BASE_DTS = """/dts-v1/;
/ {
\tcompatible = "raspberrypi,4-model-b", "brcm,bcm2711";
\t#address-cells = <1>;
\t#size-cells = <1>;
\tgpio: gpio@7e200000 { reg = <0x7e200000 0xb4>; gpio-controller; #gpio-cells = <2>; };
\tpwm: pwm@7e20c000 { reg = <0x7e20c000 0x28>; status = "disabled"; };
\ti2c_arm: i2c@7e804000 { reg = <0x7e804000 0x1000>; clock-frequency = <100000>;
\t\tstatus = "disabled"; };
\tuart0: serial@7e201000 { reg = <0x7e201000 0x200>; status = "okay"; };
\tspi0: spi@7e204000 { reg = <0x7e204000 0x200>; #address-cells = <1>; #size-cells = <0>;
\t\tstatus = "disabled";
\t\tspidev0: spidev@0 { reg = <0>; };
\t\tspidev1: spidev@1 { reg = <1>; };
\t};
};
"""


def _with_params(dtbo: Dtbo, params: Mapping[str, bool], tmp_path: Path) -> Path:
    """The overlay as the firmware loader has it after applying ``params``: each
    fragment's __overlay__/__dormant__ node renamed, and so the paths to it in
    __local_fixups__ (a mirror of the tree), __fixups__ and __symbols__."""
    enabled = dtbo.enabled(params)
    text = subprocess.run([_tool("dtc"), "-I", "dtb", "-O", "dts", str(dtbo.path)],
                          capture_output=True, text=True, check=True).stdout
    for match in reversed(list(re.finditer(r"\bfragment@(\d+) \{", text))):
        depth, end = 0, match.end() - 1
        for end in range(match.end() - 1, len(text)):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            if depth == 0:
                break
        body = "__overlay__" if int(match[1]) in enabled else "__dormant__"
        block = re.sub(r"\b(__overlay__|__dormant__) \{", f"{body} {{",
                       text[match.end():end], count=1)
        text = text[:match.end()] + block + text[end:]
    text = re.sub(r"/fragment@(\d+)/(?:__overlay__|__dormant__)\b",
                  lambda m: f"/fragment@{m[1]}/"
                            + ("__overlay__" if int(m[1]) in enabled else "__dormant__"), text)
    source = tmp_path / "applied.dts"
    source.write_text(text, encoding="utf-8")
    out = tmp_path / "applied.dtbo"
    subprocess.run([_tool("dtc"), "-I", "dts", "-O", "dtb", "-o", str(out), str(source)],
                   check=True, capture_output=True)
    return out


def _merge(overlay: Path, tmp_path: Path) -> Dtbo:
    # a stand-in for the Pi's base tree with the labels the overlay targets (a real one
    # is built from raspberrypi/linux); fdtoverlay resolves the fixups as the firmware does
    base = tmp_path / "base.dts"
    base.write_text(BASE_DTS, encoding="utf-8")
    subprocess.run([_tool("dtc"), "-@", "-I", "dts", "-O", "dtb", "-o", str(tmp_path / "b.dtb"),
                    str(base)], check=True, capture_output=True)
    merged = tmp_path / "merged.dtb"
    result = subprocess.run([_tool("fdtoverlay"), "-i", str(tmp_path / "b.dtb"), "-o",
                             str(merged), str(overlay)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return Dtbo(merged)


def _merged_pins(tree: Dtbo, node: str) -> set[int]:
    """The pins of the groups ``node``'s pinctrl-0 names, in a merged tree."""
    gpio = "/gpio@7e200000"
    by_phandle = {tree.ints(f"{gpio}/{g}", "phandle")[0]: g for g in tree.subnodes(gpio)}
    return {p for ph in tree.ints(node, "pinctrl-0")
            for p in tree.ints(f"{gpio}/{by_phandle[ph]}", "brcm,pins")}


def test_overlay_applies_to_a_base_tree(default_dtbo: Dtbo, tmp_path: Path) -> None:
    tree = _merge(default_dtbo.path, tmp_path)
    assert "deskphone_hook" in tree.subnodes("/gpio@7e200000")
    assert tree.ints("/gpio@7e200000/deskphone_hook", "brcm,pins") == [PinMap().hook]
    assert _merged_pins(tree, "/gpio@7e200000") == set(_expected_phone_pins(PinMap()))
    assert tree.string("/i2c@7e804000", "status") == "okay"
    assert tree.ints("/i2c@7e804000", "clock-frequency") == [400000]
    assert tree.string("/pwm@7e20c000", "status") == "disabled"  # no hardware PWM
    assert tree.string("/spi@7e204000", "status") == "disabled"  # oled_spi is off


@pytest.mark.parametrize("value", [True, False])
def test_oled_spi_applied_to_a_base_tree(default_dtbo: Dtbo, tmp_path: Path,
                                         value: bool) -> None:
    tree = _merge(_with_params(default_dtbo, {"oled_spi": value}, tmp_path), tmp_path)
    hogged = _merged_pins(tree, "/gpio@7e200000")
    phone = set(_expected_phone_pins(PinMap()))
    if not value:
        assert hogged == phone
        assert tree.string("/spi@7e204000", "status") == "disabled"
        return
    spi = "/spi@7e204000"
    assert tree.string(spi, "status") == "okay"
    assert tree.string(f"{spi}/spidev@1", "status") == "disabled"  # one chip select
    assert _merged_pins(tree, spi) == SPI0_MUXED
    cs = tree.ints(spi, "cs-gpios")[1::3]
    assert cs == [8]
    # spi0's pins, its chip select and the display's DC/RST are claimed by nothing else;
    # the rest of the phone keeps its pin settings
    assert hogged.isdisjoint(SPI0_MUXED | set(cs) | SPI_OPTION)
    assert hogged == phone - SPI_OPTION


def test_a_moved_hook_moves_in_the_overlay(tmp_path: Path) -> None:
    pm = PinMap(hook=5, function_keys={"redial": 4, "hold": 6, "mute": 7, "speaker": 8})
    dtbo = Dtbo(_compile(board.render_overlay(pm), tmp_path))
    groups = dtbo.groups()
    assert groups["deskphone_hook"]["brcm,pins"] == [5]
    settings = _pin_settings(groups, dtbo.hog())
    assert settings[5] == (IN, UP) and settings[4] == (IN, UP)  # hook and redial swapped
    assert settings == _expected_phone_pins(pm)


def test_a_hook_on_the_displays_dc_pin_leaves_the_hog_with_oled_spi(tmp_path: Path) -> None:
    pm = PinMap(hook=SPI_GPIO_DC)
    dtbo = Dtbo(_compile(board.render_overlay(pm), tmp_path))
    groups = dtbo.groups()
    assert "deskphone_hook" not in groups  # its one pin is in the SPI-shared group
    assert SPI_GPIO_DC in groups["deskphone_spi_shared"]["brcm,pins"]
    assert _pin_settings(groups, dtbo.hog())[SPI_GPIO_DC] == (IN, UP)
    assert SPI_GPIO_DC not in _pin_settings(groups, dtbo.hog({"oled_spi": True}))


def test_relay_ringer_and_active_low_relay(tmp_path: Path) -> None:
    pm = PinMap(ringer_kind="relay", relay_active_low=True)
    dtbo = Dtbo(_compile(board.render_overlay(pm), tmp_path))
    settings = _pin_settings(dtbo.groups(), dtbo.hog())
    want = _expected_phone_pins(pm)
    want[pm.ringer] = (OUT, DOWN)  # idle: kept low
    assert settings == want
    assert settings[pm.relay] == (IN, UP)  # an active-low relay stays off until driven


@pytest.mark.parametrize("ringer", [12, 13, 4])  # PWM0, PWM1 and a pin without PWM
def test_the_ringer_is_a_plain_output_and_claims_no_pwm(tmp_path: Path, ringer: int) -> None:
    # the firmware rings with lgpio software PWM (deskphone.hw.ringer): hardware PWM
    # muxed on the pin would be a second owner and take the analogue audio's PWM block
    pm = PinMap(ringer=ringer, hook=12 if ringer == 4 else 4)
    dtbo = Dtbo(_compile(board.render_overlay(pm), tmp_path))
    assert "pwm" not in dtbo.props("/__fixups__")
    groups = dtbo.groups()
    group = "deskphone_spi_shared" if ringer in SPI_OPTION else "deskphone_outputs"
    assert ringer in groups[group]["brcm,pins"]
    assert _pin_settings(groups, dtbo.hog())[ringer] == (OUT, DOWN)
    settings = [s for s in board.render_config_txt(pm).splitlines()
                if s and not s.startswith("#")]
    assert not any(s.startswith("dtparam=audio") for s in settings)


# --------------------------------------------------------------------------- the CLI


def test_committed_files_are_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    assert board.main(["--check"]) == 0, capsys.readouterr().out


def test_check_names_a_stale_file_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "board"
    shutil.copytree(BOARD_DIR, out)
    (out / "deskphone.dts").write_text("stale\n", encoding="utf-8")
    result = subprocess.run([sys.executable, str(BOARD_PY), "--check", "--out", str(out)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "deskphone.dts" in result.stdout and "config.txt" not in result.stdout
    assert (out / "deskphone.dts").read_text(encoding="utf-8") == "stale\n"


def test_generate_then_check_for_a_board_of_ones_own(tmp_path: Path) -> None:
    config = tmp_path / "phone.toml"
    config.write_text("[hardware]\nhook = 13\nrelay_active_low = true\n", encoding="utf-8")
    out = tmp_path / "myboard"
    assert board.main(["--config", str(config), "--out", str(out)]) == 0
    assert "GPIO13 = pin 33: hook" in (out / "deskphone.dts").read_text(encoding="utf-8")
    assert board.main(["--config", str(config), "--out", str(out), "--check"]) == 0
    assert board.main(["--out", str(out), "--check"]) == 1  # the default map differs


def test_dtbo_option_compiles_and_reports_dtc_errors(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    _tool("dtc")
    out = tmp_path / "deskphone.dtbo"
    assert board.main(["--dtbo", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\xd0\x0d\xfe\xed"  # the FDT magic
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "deskphone.dts").write_text("/dts-v1/;\n/ { oops\n", encoding="utf-8")
    assert board.main(["--dtbo", str(tmp_path / "x.dtbo"), "--out", str(broken)]) != 0
    err = capsys.readouterr().err
    assert "deskphone.dts" in err and "dtc failed" in err


# --------------------------------------------------------------------------- the docs


def test_svg_parses_and_names_every_pin() -> None:
    root = ET.parse(BOARD_DIR / "wiring.svg").getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    pins = {g.get("data-pin", ""): g for g in root.iter("{http://www.w3.org/2000/svg}g")
            if g.get("class") == "pin"}
    assert sorted(int(p) for p in pins) == list(range(1, 41))
    text = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    for function, bcm in PinMap().all_pins():
        g = pins[str(board.physical_pin(bcm))]
        assert g.get("data-bcm") == str(bcm)
        assert g.get("data-function") == function
        assert f"GPIO{bcm}" in text
        wires = [w for w in root.iter("{http://www.w3.org/2000/svg}polyline")
                 if w.get("data-function") == function]
        assert len(wires) == 1, function


def _readme_pin_rows() -> dict[int, list[str]]:
    text = (BOARD_DIR / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- board.py:begin pins -->")[1].split("<!-- board.py:end pins")[0]
    rows = {}
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0].isdigit():
            rows[int(cells[0])] = cells
    return rows


def test_readme_pin_table_has_every_pin_on_its_header_pin() -> None:
    rows = _readme_pin_rows()
    for function, bcm in PinMap().all_pins():
        assert rows[bcm][1] == str(board.physical_pin(bcm)), function
        assert rows[bcm][2] == f"`{function}`"
    assert rows[4][1] == "7" and rows[12][1] == "32" and rows[2][1] == "3" and rows[14][1] == "8"
    assert rows[9][4].startswith("out")  # the firmware drives the rows
    assert rows[24][4] == "in" and rows[24][5] == "up"


def test_config_txt_has_the_lines_that_enable_it_all() -> None:
    lines = (BOARD_DIR / "config.txt").read_text(encoding="utf-8").splitlines()
    settings = [line for line in lines if line and not line.startswith("#")]
    assert settings[:2] == ["[all]", "dtoverlay="]  # self-contained when appended
    for wanted in ("dtparam=i2c_arm=on", "dtparam=i2c_arm_baudrate=400000", "enable_uart=1",
                   "dtoverlay=deskphone", "dtoverlay=disable-bt",
                   "dtparam=uart0_console"):
        assert wanted in settings
    # base-tree dtparams come before any overlay, whose scope would capture them
    first_overlay = next(i for i, s in enumerate(settings)
                         if s.startswith("dtoverlay=") and s != "dtoverlay=")
    # no audio=off: nothing claims the PWM block the analogue audio output uses
    assert not any(s.startswith("dtparam=audio") for s in settings)
    assert all(not s.startswith("dtparam=i2c")
               for s in settings[first_overlay:])
    # every phone pin gets its boot state before Linux too
    early: set[int] = set()
    for s in settings:
        if s.startswith("gpio="):
            for part in s[5:].split("=")[0].split(","):
                lo, _, hi = part.partition("-")
                early.update(range(int(lo), int(hi or lo) + 1))
    assert set(_expected_phone_pins(PinMap())) <= early


def test_readme_asound_conf_blocks_parse(tmp_path: Path) -> None:
    aplay = shutil.which("aplay")
    if aplay is None:
        pytest.skip("aplay (alsa-utils) not installed")
    text = (BOARD_DIR / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```\n(# /etc/asound.conf:.*?)```", text, re.S)
    assert len(blocks) == 2  # USB and WM8960
    for i, block in enumerate(blocks):
        conf = tmp_path / f"asound{i}.conf"
        conf.write_text("</usr/share/alsa/alsa.conf>\n" + block, encoding="utf-8")
        result = subprocess.run([aplay, "-L"], capture_output=True, text=True, check=False,
                                env={**os.environ, "ALSA_CONFIG_PATH": str(conf)})
        assert result.returncode == 0 and "error" not in result.stderr.lower(), result.stderr
        assert "phone" in result.stdout.split()
