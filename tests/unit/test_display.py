"""The OLED renderer on luma's dummy device and on the real SSD1306/SH1106 drivers
fed a recording bus: bands, redraw-on-change, fitting, fonts, panels, the golden frame."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from luma.core.device import dummy
from luma.oled.device import sh1106, ssd1306
from PIL import Image, ImageChops, ImageFont, features

from deskphone.hw import display as display_module
from deskphone.hw.display import (
    DEJAVU_DIR,
    TITLE_MIN_SIZE,
    Display,
    Fonts,
    Layout,
    fit_text,
    fit_title,
    is_dialled,
    open_device,
    printable,
    text_width,
)
from deskphone.hw.screenshot import OLED_OFF, OLED_ON, render_png
from deskphone.hw.termframe import half_block_lines
from deskphone.phone.screens import Screen

REPO = Path(__file__).resolve().parents[2]
GOLDEN_DIR = Path(__file__).parent / "golden"
REGEN_ENV = "DESKPHONE_REGEN_GOLDEN"
HAVE_DEJAVU = (DEJAVU_DIR / "DejaVuSans.ttf").is_file() and (
    DEJAVU_DIR / "DejaVuSans-Bold.ttf").is_file()
needs_dejavu = pytest.mark.skipif(not HAVE_DEJAVU, reason=f"no DejaVu fonts in {DEJAVU_DIR}")

CALL = Screen("1001@pbx.example", "REG", "1002", ("Alice Example", "00:42  PCMU"))


@pytest.fixture(scope="module")
def fonts() -> Fonts:
    return Fonts()


class CountingDevice:
    """A dummy panel that counts the frames it was sent."""

    def __init__(self, width: int = 128, height: int = 64, mode: str = "1") -> None:
        self.inner = dummy(width=width, height=height, mode=mode)
        self.width, self.height, self.mode = width, height, mode
        self.frames: list[Image.Image] = []

    def display(self, image: Image.Image) -> None:
        self.frames.append(image)
        self.inner.display(image)


class RecordingSerial:
    """Stands in for luma's i2c(port=1, address=0x3C): keeps what the driver sends."""

    def __init__(self) -> None:
        self.commands: list[tuple[int, ...]] = []
        self.chunks: list[bytes] = []
        self.cleaned = False

    def command(self, *cmd: int) -> None:
        self.commands.append(cmd)

    def data(self, data: Any) -> None:
        self.chunks.append(bytes(data))

    def cleanup(self) -> None:
        self.cleaned = True


def ink(image: Image.Image, rule_y: int | None = None) -> tuple[int, int, int, int] | None:
    """The bbox of lit pixels, leaving out the top bar's rule."""
    image = image.copy()
    if rule_y is not None:
        image.paste(0, (0, rule_y, image.width, rule_y + 1))
    return image.getbbox()


def shown(screen: Screen, width: int = 128, height: int = 64,
          fonts: Fonts | None = None) -> Display:
    display = Display(dummy(width=width, height=height, mode="1"), fonts=fonts)
    assert display.show(screen)
    return display


def decode_pages(data: bytes, width: int, height: int) -> Image.Image:
    """SSD1306 page-major framebuffer (8 rows per byte, LSB on top) back to a picture."""
    image = Image.new("1", (width, height))
    for page in range(height // 8):
        for x in range(width):
            byte = data[page * width + x]
            for bit in range(8):
                if byte >> bit & 1:
                    image.putpixel((x, page * 8 + bit), 1)
    return image


# ---- layout: where each part of the screen lands --------------------------------------

@needs_dejavu
def test_bands_on_a_128x64_panel(fonts: Fonts) -> None:
    display = Display(dummy(width=128, height=64, mode="1"), fonts=fonts)
    assert display.layout == Layout(width=128, height=64, rule_y=11, title_top=13,
                                    title_bottom=31, line_tops=(32, 43, 54))


@needs_dejavu
def test_bands_on_a_128x32_panel_keep_one_small_line(fonts: Fonts) -> None:
    display = Display(dummy(width=128, height=32, mode="1"), fonts=fonts)
    assert display.layout == Layout(width=128, height=32, rule_y=10, title_top=11,
                                    title_bottom=22, line_tops=(22,))


def test_status_left_indicators_right_in_the_top_bar(fonts: Fonts) -> None:
    display = shown(Screen(status="1001@pbx", indicators="REG"), fonts=fonts)
    lay, frame = display.layout, display.frame
    assert frame is not None
    left, top, right, bottom = ink(frame, lay.rule_y) or (0, 0, 0, 0)
    assert left <= 2 and top == 0 and right == 128 and bottom <= lay.rule_y  # "1" bears 2 px
    assert frame.crop((0, 0, 40, lay.rule_y)).getbbox() is not None  # status
    assert frame.crop((100, 0, 128, lay.rule_y)).getbbox() is not None  # indicators
    assert frame.crop((60, 0, 95, lay.rule_y)).getbbox() is None  # the space between
    # the rule: one full lit row
    assert frame.crop((0, lay.rule_y, 128, lay.rule_y + 1)).convert("L").getextrema() == (255,
                                                                                        255)


def test_title_inks_only_its_band(fonts: Fonts) -> None:
    display = shown(Screen(title="1002"), fonts=fonts)
    lay, frame = display.layout, display.frame
    assert frame is not None
    left, top, right, bottom = ink(frame, lay.rule_y) or (0, 0, 0, 0)
    assert lay.title_top <= top and bottom <= lay.title_bottom
    assert left <= 2 and right < 64  # four big digits, left-aligned ("1" bears 2 px)
    assert bottom - top >= 12  # big: the small lines' capitals are 7 rows


def test_small_lines_each_in_their_row(fonts: Fonts) -> None:
    display = shown(Screen(lines=("Alice Example", "00:42  PCMU", "Busy")), fonts=fonts)
    lay, frame = display.layout, display.frame
    assert frame is not None
    pitch = lay.line_tops[1] - lay.line_tops[0]
    for y in lay.line_tops:
        band = frame.crop((0, y, 128, y + pitch - 1))
        assert band.getbbox() is not None
    assert (ink(frame, lay.rule_y) or (0, 0, 0, 0))[1] >= lay.line_tops[0]


def test_a_newline_in_a_display_name_stays_on_its_line(fonts: Fonts) -> None:
    display = shown(Screen(lines=("Mallory\nEvil\r\tName",)), fonts=fonts)
    lay, frame = display.layout, display.frame
    assert frame is not None
    box = ink(frame, lay.rule_y)
    assert box is not None and box[3] <= lay.line_tops[1]
    assert printable("a\nb\x00c", fonts.small) == "a b c"


# ---- redraw only on change -----------------------------------------------------------

def test_identical_screen_is_not_sent_again(fonts: Fonts) -> None:
    device = CountingDevice()
    display = Display(device, fonts=fonts)
    assert display.show(CALL) is True
    assert display.show(Screen(CALL.status, CALL.indicators, CALL.title, CALL.lines)) is False
    assert len(device.frames) == 1
    assert display.frame is device.frames[0]
    assert display.frame.tobytes() == device.inner.image.tobytes()


def test_changed_screen_is_sent_as_one_whole_frame(fonts: Fonts) -> None:
    device = CountingDevice()
    display = Display(device, fonts=fonts)
    display.show(CALL)
    later = Screen(CALL.status, CALL.indicators, CALL.title, ("Alice Example", "00:43  PCMU"))
    assert display.show(later) is True
    assert len(device.frames) == 2
    first, second = device.frames
    # no blank frame between: the second differs from the first only in the timer's line
    diff = ImageChops.difference(first.convert("L"), second.convert("L")).getbbox()
    assert diff is not None and diff[1] >= display.layout.line_tops[1]
    assert display.show(later, force=True) is True
    assert len(device.frames) == 3


def test_a_new_screen_with_the_same_pixels_is_not_sent(fonts: Fonts) -> None:
    device = CountingDevice(height=32)  # one small line: the timer below it is not shown
    display = Display(device, fonts=fonts)
    assert display.show(Screen("1001", "REG", "1002", ("Alice", "00:42")))
    assert display.show(Screen("1001", "REG", "1002", ("Alice", "00:43"))) is False
    assert len(device.frames) == 1
    assert display.screen == Screen("1001", "REG", "1002", ("Alice", "00:43"))


def test_an_rgb_device_gets_an_rgb_frame(fonts: Fonts) -> None:
    device = dummy(width=128, height=64, mode="RGB")
    display = Display(device, fonts=fonts)
    assert display.show(CALL)
    assert device.image.mode == "RGB" and display.frame is not None
    assert device.image.convert("1").tobytes() == display.frame.tobytes()


class FlakyBus:
    """A panel whose bus fails a number of writes (an unplugged I2C cable)."""

    def __init__(self, failures: int) -> None:
        self.width, self.height, self.mode = 128, 64, "1"
        self.failures, self.frames = failures, 0

    def display(self, image: Image.Image) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError(121, "Remote I/O error")
        self.frames += 1


def test_a_failing_bus_is_logged_once_and_retried(fonts: Fonts,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    device = FlakyBus(failures=2)
    display = Display(device, fonts=fonts)
    with caplog.at_level(logging.INFO, logger="deskphone.hw.display"):
        assert display.show(CALL) is False
        assert display.show(CALL) is False  # same screen, but the panel never got it
        assert display.show(CALL) is True
    assert device.frames == 1
    assert [r.getMessage() for r in caplog.records] == [
        "display write failed: [Errno 121] Remote I/O error", "display writes work again"]


# ---- fitting text ---------------------------------------------------------------------

@needs_dejavu
def test_fit_text_keeps_what_fits_and_marks_the_cut(fonts: Fonts) -> None:
    small = fonts.small
    assert fit_text("Busy", small, 128) == "Busy"
    cut = fit_text("No response from registrar", small, 80)
    assert cut.endswith("…") and "No response from registrar".startswith(cut[:-1])
    assert text_width(small, cut) <= 80
    # the longest such prefix: one more character would not fit
    longer = "No response from registrar"[:len(cut)].rstrip() + "…"
    assert text_width(small, longer) > 80
    tail = fit_text("0123456789012345678901234567", small, 60, keep_end=True)
    assert tail.startswith("…") and "0123456789012345678901234567".endswith(tail[1:])
    assert text_width(small, tail) <= 60
    assert fit_text("anything", small, 3) == ""


@needs_dejavu
def test_long_dialled_number_shows_its_end(fonts: Fonts) -> None:
    text, font = fit_title("+4930123456789012", fonts, 128, 18)
    assert isinstance(font, ImageFont.FreeTypeFont) and font.size == TITLE_MIN_SIZE
    assert text == "…30123456789012"
    display = shown(Screen(title="+4930123456789012"), fonts=fonts)
    assert display.frame is not None
    box = ink(display.frame, display.layout.rule_y)
    assert box is not None and box[0] >= 0 and box[2] <= 128


@needs_dejavu
def test_long_name_title_shows_its_start(fonts: Fonts) -> None:
    text, _ = fit_title("alice@pbx.example.com", fonts, 128, 18)
    assert text == "alice@pbx.exam…"


@needs_dejavu
def test_title_shrinks_before_it_is_cut(fonts: Fonts) -> None:
    short, big = fit_title("1002", fonts, 128, 18)
    ten, smaller = fit_title("0123456789", fonts, 128, 18)
    assert (short, ten) == ("1002", "0123456789")
    assert isinstance(big, ImageFont.FreeTypeFont) and isinstance(smaller, ImageFont.FreeTypeFont)
    assert big.size == 19 and TITLE_MIN_SIZE <= smaller.size < big.size
    assert text_width(smaller, ten) <= 128


def test_is_dialled() -> None:
    assert is_dialled("*97#") and is_dialled("+49 30 1234")
    assert not is_dialled("alice") and not is_dialled("14:05") and not is_dialled("")


# ---- fonts ----------------------------------------------------------------------------

def test_missing_font_dir_falls_back_to_pillows_font(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="deskphone.hw.display"):
        fonts = Fonts(tmp_path)
    assert fonts.fallback and fonts.files == ()
    assert [r.getMessage() for r in caplog.records] == [
        f"no DejaVuSans.ttf in {tmp_path}: the display uses Pillow's default font"]
    display = shown(CALL, fonts=fonts)
    assert display.frame is not None
    assert display.frame.crop((0, display.layout.title_top, 128,
                               display.layout.title_bottom)).getbbox() is not None
    assert len(display.layout.line_tops) == 3


@needs_dejavu
def test_missing_bold_uses_the_regular_face(tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "DejaVuSans.ttf").symlink_to(DEJAVU_DIR / "DejaVuSans.ttf")
    with caplog.at_level(logging.INFO, logger="deskphone.hw.display"):
        fonts = Fonts(tmp_path)
    assert not fonts.fallback and fonts.files == (tmp_path / "DejaVuSans.ttf",)
    assert len(caplog.records) == 1 and "DejaVuSans-Bold.ttf" in caplog.records[0].getMessage()
    assert shown(CALL, fonts=fonts).frame is not None


def test_latin1_bitmap_font_draws_any_text(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Pillow without FreeType: one 6x11 Latin-1 bitmap, "..." for the ellipsis."""
    monkeypatch.setattr(ImageFont, "load_default",
                        lambda size=None: ImageFont.load_default_imagefont())
    fonts = Fonts(tmp_path)
    assert not isinstance(fonts.small, ImageFont.FreeTypeFont)
    screen = Screen("Łukasz Żółć at a very long host name", "REG", "+49301234567890123",
                    ("Ringing…", "Ünïcødé ✓"))
    display = shown(screen, fonts=fonts)
    assert display.frame is not None and display.frame.getbbox() is not None
    assert fit_text("0123456789" * 3, fonts.small, 60, keep_end=True).startswith("...")
    assert printable("Ł…", fonts.small) == "?..."


# ---- other panels ---------------------------------------------------------------------

def test_128x32_shows_top_bar_title_and_the_first_line(fonts: Fonts) -> None:
    screen = Screen("1001@pbx.example", "REG", "1002", ("Alice Example", "00:42", "x"))
    display = shown(screen, height=32, fonts=fonts)
    lay, frame = display.layout, display.frame
    assert frame is not None and frame.size == (128, 32)
    assert len(lay.line_tops) == 1
    assert frame.crop((0, 0, 128, lay.rule_y)).getbbox() is not None
    assert frame.crop((0, lay.title_top, 128, lay.title_bottom)).getbbox() is not None
    assert frame.crop((0, lay.line_tops[0], 128, 32)).getbbox() is not None


@pytest.mark.parametrize("size", [(128, 16), (64, 32), (96, 48), (128, 128), (8, 8)])
def test_odd_panel_sizes_do_not_crash(fonts: Fonts, size: tuple[int, int]) -> None:
    screen = Screen("1001@pbx.example", "REG MUTE HOLD", "+4930123456789", ("a", "b", "c"))
    display = shown(screen, *size, fonts=fonts)
    assert display.frame is not None and display.frame.size == size


def test_fallback_font_on_128x32_does_not_crash(tmp_path: Path) -> None:
    display = shown(CALL, height=32, fonts=Fonts(tmp_path))
    assert display.frame is not None and display.frame.getbbox() is not None


# ---- the real drivers, on a recording bus ---------------------------------------------

@pytest.mark.parametrize("driver", [ssd1306, sh1106])
@pytest.mark.parametrize("height", [64, 32])
def test_real_driver_sends_the_same_picture(fonts: Fonts, driver: Any, height: int) -> None:
    bus = RecordingSerial()
    oled = driver(bus, width=128, height=height)
    oled.persist = True  # luma's exit hook would otherwise switch the recording off
    bus.commands.clear()
    bus.chunks.clear()
    assert Display(oled, fonts=fonts).show(CALL)
    sent = b"".join(bus.chunks)
    assert len(sent) == 128 * height // 8  # 1024 bytes on 128x64
    reference = shown(CALL, height=height, fonts=fonts).frame
    assert reference is not None
    assert decode_pages(sent, 128, height).tobytes() == reference.tobytes()


def test_close_keeps_the_picture_on_a_real_panel(fonts: Fonts) -> None:
    bus = RecordingSerial()
    oled = ssd1306(bus, width=128, height=64)
    display = Display(oled, fonts=fonts)
    display.show(CALL)
    bus.commands.clear()
    bus.chunks.clear()
    display.close(final=Screen(title="Stopped"))
    assert oled.persist is True and bus.cleaned
    assert 0xAE not in {c for cmd in bus.commands for c in cmd}  # no DISPLAYOFF
    assert decode_pages(b"".join(bus.chunks), 128, 64).getbbox() is not None


def test_close_blank_switches_the_panel_off(fonts: Fonts) -> None:
    bus = RecordingSerial()
    oled = ssd1306(bus, width=128, height=64)
    display = Display(oled, fonts=fonts)
    display.show(CALL)
    bus.commands.clear()
    display.close(blank=True)
    assert (0xAE,) in bus.commands and bus.cleaned
    display.close()  # again: nothing
    with pytest.raises(RuntimeError, match="^the display is closed$"):
        display.show(CALL)


def test_close_on_the_dummy_and_as_a_context_manager(fonts: Fonts) -> None:
    device = dummy(width=128, height=64, mode="1")
    with Display(device, fonts=fonts) as display:
        display.show(CALL)
        picture = device.image.tobytes()
    assert device.persist is True and device.image.tobytes() == picture


# ---- open_device ------------------------------------------------------------------------

def test_open_device_dummy() -> None:
    device = open_device("dummy", width=128, height=32)
    assert (device.width, device.height, device.mode) == (128, 32, "1")


def test_open_device_rejects_unknown_kinds() -> None:
    with pytest.raises(ValueError, match=r"^unknown display kind 'ssd1331': expected one of "
                                         r"\('ssd1306', 'sh1106', 'dummy'\)$"):
        open_device("ssd1331")
    with pytest.raises(ValueError, match=r"^unknown display interface 'usb': expected one of "
                                         r"\('i2c', 'spi'\)$"):
        open_device("ssd1306", interface="usb")


@pytest.mark.parametrize(("kind", "interface", "expected"), [
    ("ssd1306", "i2c", ("i2c", {"port": 1, "address": 0x3C})),
    ("sh1106", "spi", ("spi", {"port": 0, "device": 0, "gpio_DC": 13, "gpio_RST": 19})),
])
def test_open_device_builds_the_driver_on_its_bus(monkeypatch: pytest.MonkeyPatch, kind: str,
                                                  interface: str, expected: Any) -> None:
    from luma.core.interface import serial as luma_serial

    made: list[tuple[str, dict[str, Any]]] = []

    def fake(name: str) -> Any:
        def build(**kwargs: Any) -> RecordingSerial:
            made.append((name, kwargs))
            return RecordingSerial()
        return build

    monkeypatch.setattr(luma_serial, "i2c", fake("i2c"))
    monkeypatch.setattr(luma_serial, "spi", fake("spi"))
    device: Any = open_device(kind, interface=interface, height=32)
    device.persist = True
    assert made == [expected]
    assert type(device) is {"ssd1306": ssd1306, "sh1106": sh1106}[kind]
    assert (device.width, device.height) == (128, 32)


def test_spi_pins_clash_with_nothing_in_the_pin_plan() -> None:
    plan = {9, 10, 11, 16, 24, 25, 26, 4, 5, 6, 7, 8, 12, 17, 22, 23, 27}
    assert {display_module.SPI_GPIO_DC, display_module.SPI_GPIO_RST} & plan == set()


def test_importing_the_display_does_not_import_luma() -> None:
    code = ("import sys, deskphone.hw.display, deskphone.hw.termframe; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'luma'))")
    env = dict(os.environ, PYTHONPATH=str(REPO / "firmware"))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"


# ---- pictures for the docs ----------------------------------------------------------------

def test_render_png_is_the_frame_scaled_up(fonts: Fonts, tmp_path: Path) -> None:
    path = tmp_path / "call.png"
    picture = render_png(CALL, path, scale=3, fonts=fonts)
    saved = Image.open(path)
    assert saved.size == picture.size == (384, 192)
    rgb = saved.convert("RGB")
    assert set(c for _, c in rgb.getcolors() or []) == {OLED_ON, OLED_OFF}
    frame = shown(CALL, fonts=fonts).frame
    assert frame is not None
    lit = rgb.resize((128, 64), Image.Resampling.NEAREST).convert("L").point(
        lambda v: 255 if v > 128 else 0).convert("1")
    assert lit.tobytes() == frame.tobytes()
    with pytest.raises(ValueError, match="^scale must be at least 1, got 0$"):
        render_png(CALL, path, scale=0)


# ---- golden frame ---------------------------------------------------------------------------

GOLDEN_SCREEN = Screen("1001@pbx.example", "REG MUTE", "+4930123456789012",
                       ("Alice Example", "00:42  PCMU", "No response from registrar"))
GOLDEN_PNG = GOLDEN_DIR / "display_128x64.png"
GOLDEN_JSON = GOLDEN_DIR / "display_128x64.json"


def rendering_fingerprint(fonts: Fonts) -> dict[str, Any]:
    """What the pixels depend on besides our code: the font files and the rasterizer."""
    return {
        "fonts": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in fonts.files},
        "freetype": features.version("freetype2"),
        "raqm": bool(features.check("raqm")),
    }


@needs_dejavu
def test_golden_frame(fonts: Fonts, tmp_path: Path) -> None:
    """Pixel-exact against tests/unit/golden/display_128x64.png.

    Regenerate (after a deliberate layout change): DESKPHONE_REGEN_GOLDEN=1 pytest -k golden
    """
    frame = shown(GOLDEN_SCREEN, fonts=fonts).frame
    assert frame is not None
    fingerprint = rendering_fingerprint(fonts)
    if os.environ.get(REGEN_ENV):
        GOLDEN_DIR.mkdir(exist_ok=True)
        frame.save(GOLDEN_PNG)
        GOLDEN_JSON.write_text(json.dumps(fingerprint, indent=2, sort_keys=True) + "\n")
        pytest.skip(f"{REGEN_ENV} set: wrote {GOLDEN_PNG.name}; review it and commit")
    made_with = json.loads(GOLDEN_JSON.read_text())
    if made_with != fingerprint:
        pytest.skip(f"golden frame was drawn with other fonts or FreeType ({made_with}) than "
                    f"these ({fingerprint}); regenerate with {REGEN_ENV}=1 to compare here")
    golden = Image.open(GOLDEN_PNG).convert("1")
    if golden.tobytes() != frame.tobytes():
        frame.save(tmp_path / "actual.png")
        diff = ImageChops.difference(golden.convert("L"), frame.convert("L"))
        changed = sum(1 for v in diff.tobytes() if v)
        pytest.fail(
            f"frame differs from {GOLDEN_PNG.name} in {changed} pixels within {diff.getbbox()}; "
            f"actual saved as {tmp_path / 'actual.png'}; if the change is deliberate, rerun "
            f"with {REGEN_ENV}=1 and commit the new golden\nexpected:\n"
            + "\n".join(half_block_lines(golden, border=True)) + "\nactual:\n"
            + "\n".join(half_block_lines(frame, border=True)))
