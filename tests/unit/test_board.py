"""board/ is generated from the firmware's pin map (tools/board.py): the overlay compiles
with dtc and sets exactly the pins PinMap names, and the committed files are up to date.

The expected pin settings are worked out here from PinMap's fields, not from board.py's
own tables, so a slip in the generator shows up as a difference.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from tools_loader import load_tool

from deskphone.hw.pins import PinMap

ROOT = Path(__file__).resolve().parents[2]
BOARD_PY = ROOT / "tools" / "board.py"
BOARD_DIR = ROOT / "board"

IN, OUT, ALT0 = 0, 1, 4
NONE, DOWN, UP = 0, 1, 2


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


def _compile(dts_text: str, tmp_path: Path) -> Path:
    dts = tmp_path / "deskphone.dts"
    dts.write_text(dts_text, encoding="utf-8")
    out = tmp_path / "deskphone.dtbo"
    result = subprocess.run([_tool("dtc"), "-@", "-I", "dts", "-O", "dtb", "-o", str(out),
                             str(dts)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    # the only warning dtc gives: the dormant (parameter) fragments have no reg, as in
    # every Raspberry Pi overlay with parameters
    for line in result.stderr.splitlines():
        assert "unit_address_vs_reg" in line and "/fragment@" in line, line
    return out


class Dtbo:
    """A compiled overlay read back with fdtget."""

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

    def target(self, label: str) -> str:
        """The fragment whose target is the base tree's ``label`` (from __fixups__)."""
        fixup = self.string("/__fixups__", label)
        fragments = re.findall(r"(/fragment@\d+):target:0", fixup)
        assert len(fragments) == 1, fixup
        return fragments[0]

    def groups(self) -> dict[str, dict[str, list[int]]]:
        """Every pin group of the &gpio fragment: name -> pins, function, pull, phandle."""
        gpio = self.target("gpio") + "/__overlay__"
        out = {}
        for name in self.subnodes(gpio):
            node = f"{gpio}/{name}"
            out[name] = {p: self.ints(node, p) for p in
                         ("brcm,pins", "brcm,function", "brcm,pull", "phandle")}
        return out


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
    want[pm.ringer] = (ALT0, DOWN) if pm.ringer in (12, 13) else (OUT, DOWN)
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
    pm = PinMap()
    groups = default_dtbo.groups()
    gpio = default_dtbo.target("gpio") + "/__overlay__"
    hogged = set(default_dtbo.ints(gpio, "pinctrl-0"))
    phone = [n for n, g in groups.items() if g["phandle"][0] in hogged]
    ringer = default_dtbo.ints(default_dtbo.target("pwm") + "/__overlay__", "pinctrl-0")
    phone += [n for n, g in groups.items() if g["phandle"] == ringer]
    assert _pin_settings(groups, phone) == _expected_phone_pins(pm)


def test_overlay_binds_no_driver_to_the_phone_pins(default_dtbo: Dtbo) -> None:
    # only the GPIO controller, PWM, I2C1, UART0 and the SPI option are touched: no node
    # of its own (gpio-keys, matrix-keypad) and no "gpios" property anywhere
    fragments = [n for n in default_dtbo.subnodes("/") if n.startswith("fragment@")]
    targets = sorted(default_dtbo.props("/__fixups__"))
    assert targets == ["gpio", "i2c_arm", "pwm", "spi0", "spidev1", "uart0"]
    assert len(fragments) == 6
    for fragment in fragments:
        assert "target-path" not in default_dtbo.props(f"/{fragment}")


def test_overlay_enables_i2c1_uart0_and_pwm(default_dtbo: Dtbo) -> None:
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
    _, pins = interface("pwm")
    assert pins["brcm,pins"] == [12] and pins["brcm,function"] == [ALT0]


def test_spi_is_a_parameter_off_by_default(default_dtbo: Dtbo) -> None:
    spi = default_dtbo.target("spi0")
    assert default_dtbo.subnodes(spi) == ["__dormant__"]
    number = spi.rpartition("@")[2]
    assert default_dtbo.string("/__overrides__", "oled_spi").endswith(f"={number}="
                                                                       f"{int(number) + 1}")
    assert default_dtbo.ints(f"{spi}/__dormant__", "cs-gpios")[1:] == [8, 1]


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


def test_overlay_applies_to_a_base_tree(default_dtbo: Dtbo, tmp_path: Path) -> None:
    # a stand-in for the Pi's base tree with the labels the overlay targets (a real one
    # is built from raspberrypi/linux); fdtoverlay resolves the fixups as the firmware does
    base = tmp_path / "base.dts"
    base.write_text(BASE_DTS, encoding="utf-8")
    subprocess.run([_tool("dtc"), "-@", "-I", "dts", "-O", "dtb", "-o", str(tmp_path / "b.dtb"),
                    str(base)], check=True, capture_output=True)
    merged = tmp_path / "merged.dtb"
    result = subprocess.run([_tool("fdtoverlay"), "-i", str(tmp_path / "b.dtb"), "-o",
                             str(merged), str(default_dtbo.path)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    tree = Dtbo(merged)
    assert "deskphone_hook" in tree.subnodes("/gpio@7e200000")
    assert tree.ints("/gpio@7e200000/deskphone_hook", "brcm,pins") == [PinMap().hook]
    assert tree.string("/i2c@7e804000", "status") == "okay"
    assert tree.ints("/i2c@7e804000", "clock-frequency") == [400000]
    assert tree.string("/pwm@7e20c000", "status") == "okay"
    assert tree.string("/spi@7e204000", "status") == "disabled"  # oled_spi is off


def test_a_moved_hook_moves_in_the_overlay(tmp_path: Path) -> None:
    pm = PinMap(hook=13)
    dtbo = Dtbo(_compile(board.render_overlay(pm), tmp_path))
    groups = dtbo.groups()
    assert groups["deskphone_hook"]["brcm,pins"] == [13]
    hogged = set(dtbo.ints(dtbo.target("gpio") + "/__overlay__", "pinctrl-0"))
    settings = _pin_settings(groups, [n for n, g in groups.items()
                                      if g["phandle"][0] in hogged])
    assert settings[13] == (IN, UP)
    assert 4 not in settings


def test_relay_ringer_and_active_low_relay(tmp_path: Path) -> None:
    pm = PinMap(ringer_kind="relay", relay_active_low=True)
    dtbo = Dtbo(_compile(board.render_overlay(pm), tmp_path))
    assert "pwm" not in dtbo.props("/__fixups__")  # no PWM block without a PWM ringer
    groups = dtbo.groups()
    hogged = set(dtbo.ints(dtbo.target("gpio") + "/__overlay__", "pinctrl-0"))
    settings = _pin_settings(groups, [n for n, g in groups.items()
                                      if g["phandle"][0] in hogged])
    want = _expected_phone_pins(pm)
    want[pm.ringer] = (OUT, DOWN)  # idle: kept low
    assert settings == want
    assert settings[pm.relay] == (IN, UP)  # an active-low relay stays off until driven


def test_the_ringer_gets_hardware_pwm_only_where_the_pin_has_it(tmp_path: Path) -> None:
    dtbo = Dtbo(_compile(board.render_overlay(PinMap(ringer=13)), tmp_path))  # PWM1
    pwm = dtbo.ints(dtbo.target("pwm") + "/__overlay__", "pinctrl-0")
    ringer = [g for g in dtbo.groups().values() if g["phandle"] == pwm]
    assert ringer[0]["brcm,pins"] == [13] and ringer[0]["brcm,function"] == [ALT0]

    pm = PinMap(ringer=4, hook=13)  # GPIO 4 has no PWM: software PWM on an output
    dtbo = Dtbo(_compile(board.render_overlay(pm), tmp_path))
    assert "pwm" not in dtbo.props("/__fixups__")
    assert 4 in dtbo.groups()["deskphone_outputs"]["brcm,pins"]
    assert "dtparam=audio=off" not in board.render_config_txt(pm)


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
    assert "deskphone_hook" in (out / "deskphone.dts").read_text(encoding="utf-8")
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
                   "dtparam=audio=off", "dtoverlay=deskphone", "dtoverlay=disable-bt",
                   "dtparam=uart0_console"):
        assert wanted in settings
    # base-tree dtparams come before any overlay, whose scope would capture them
    first_overlay = next(i for i, s in enumerate(settings)
                         if s.startswith("dtoverlay=") and s != "dtoverlay=")
    assert all(not s.startswith("dtparam=i2c") and s != "dtparam=audio=off"
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
