"""The OLED: lays a ``Screen`` out in pixels and hands whole frames to a luma device.

The device is injected: luma.oled's ``ssd1306``/``sh1106`` on the Pi, luma.core's ``dummy``
in tests, the simulator and the docs (``open_device`` builds any of them). luma is imported
only inside ``open_device``, so this module imports on a laptop without it.

Each frame is composed whole in a 1-bit PIL image and sent once (no clear-then-draw
flicker), and only when the screen changed. Layout on 128x64, by pixel row::

    0-9      top bar: status left, indicators right (DejaVu Sans 10)
    11       rule
    13-30    title (DejaVu Sans Bold 19, shrunk to 12 to fit, then ellipsized)
    32-41    small line 1 (DejaVu Sans 10)
    43-52    small line 2
    54-63    small line 3

On 128x32 the one-pixel gaps go and one small line fits: top bar 0-9, rule 10,
title 11-21 (Bold 11), line 22-31. Rows are measured from the fonts, so Pillow's
fallback font lays out the same way.
"""

from __future__ import annotations

import functools
import logging
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TypeAlias

from PIL import Image, ImageDraw, ImageFont

from deskphone.phone.screens import Screen

log = logging.getLogger(__name__)

Font: TypeAlias = ImageFont.FreeTypeFont | ImageFont.ImageFont

# Debian's fonts-dejavu-core
DEJAVU_DIR = Path("/usr/share/fonts/truetype/dejavu")
REGULAR_FILE = "DejaVuSans.ttf"
BOLD_FILE = "DejaVuSans-Bold.ttf"

SMALL_SIZE = 9  # 7 px capitals, 10 rows with descenders; 10 px hints "m" like "rn"
FALLBACK_SMALL_SIZE = 10  # Pillow's default font (Aileron) loses its colons at 9
TITLE_MAX_SIZE = 24
TITLE_MIN_SIZE = 12  # below this the title is no bigger than the small lines: ellipsize
MAX_LINES = 3
TOP_BAR_GAP = 4  # pixels between the status and the indicators
ELLIPSIS = "…"
# what a line's height is measured on: capitals, ascenders, descenders, digits
_HEIGHT_SAMPLE = "Hbdfhklgjpqy0123456789@"
# a title made of these is a number being typed: when too long, its end is kept
_DIALLED = frozenset("0123456789*#+ ")

# SPI wiring. I2C (GPIO 2/3) clashes with nothing in the pin plan and is the default.
# SPI0 is GPIO 7-11 (CE1, CE0, MISO, MOSI, SCLK): it takes keypad rows 9/10/11 and F-keys
# 7/8, so an SPI panel needs the keypad and F-keys remapped. luma's own DC/RST defaults
# (24/25) are keypad columns; 13 and 19 are free in the plan (keypad 9,10,11,16 x 24,25,26,
# hook 4, F-keys 5-8, ringer 12, relay 17, LEDs 22,23,27). 19 is also SPI1 MISO and I2S
# LRCLK: with an I2S sound card, give the panel an RC reset and pass gpio_rst=None.
SPI_GPIO_DC = 13
SPI_GPIO_RST = 19

DISPLAY_KINDS = ("ssd1306", "sh1106", "dummy")
INTERFACES = ("i2c", "spi")


class LumaDevice(Protocol):
    """What ``Display`` needs of a luma device; ``cleanup()``/``persist`` are used if present."""

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...

    @property
    def mode(self) -> str: ...

    def display(self, image: Image.Image) -> None: ...


class Fonts:
    """The display's two faces: DejaVu Sans for small text, DejaVu Sans Bold for the title.

    Falls back to Pillow's own default font (one face, scalable when Pillow has FreeType,
    else a fixed 6x11 Latin-1 bitmap) when the files are missing from ``font_dir``.
    """

    def __init__(self, font_dir: str | os.PathLike[str] = DEJAVU_DIR, *,
                 small_size: int = SMALL_SIZE) -> None:
        self.font_dir = Path(font_dir)
        self._bold: dict[int, Font] = {}
        self._extents: dict[Font, tuple[int, int]] = {}
        self._regular_path: Path | None = self.font_dir / REGULAR_FILE
        self._bold_path: Path | None = self.font_dir / BOLD_FILE
        try:
            # checked first: given a missing path, Pillow searches the system's font dirs
            if not self._regular_path.is_file():
                raise FileNotFoundError(self._regular_path)
            self.small: Font = ImageFont.truetype(str(self._regular_path), small_size)
        except OSError:
            log.info("no %s in %s: the display uses Pillow's default font",
                     REGULAR_FILE, self.font_dir)
            self._regular_path = self._bold_path = None
            self.small = ImageFont.load_default(max(small_size, FALLBACK_SMALL_SIZE))
            return
        if not self._bold_path.is_file():
            log.info("no %s in %s: the display's title uses %s",
                     BOLD_FILE, self.font_dir, REGULAR_FILE)
            self._bold_path = self._regular_path

    @property
    def fallback(self) -> bool:
        """True when Pillow's default font stands in for DejaVu."""
        return self._regular_path is None

    @property
    def files(self) -> tuple[Path, ...]:
        """The font files in use (none for the fallback), e.g. to hash for golden images."""
        return tuple(dict.fromkeys(p for p in (self._regular_path, self._bold_path) if p))

    def bold(self, size: int) -> Font:
        """The title face at ``size`` pixels (the same font at every size for a bitmap)."""
        font = self._bold.get(size)
        if font is None:
            if self._bold_path is None:
                font = ImageFont.load_default(size)
            else:
                font = ImageFont.truetype(str(self._bold_path), size)
            self._bold[size] = font
        return font

    def extent(self, font: Font) -> tuple[int, int]:
        """Rows a line of ``font`` inks, (top, bottom), relative to where it is drawn."""
        if font not in self._extents:
            _, top, _, bottom = _bbox(font, _HEIGHT_SAMPLE)
            self._extents[font] = (top, bottom)
        return self._extents[font]

    def height(self, font: Font) -> int:
        top, bottom = self.extent(font)
        return bottom - top


@dataclass(frozen=True, slots=True)
class Layout:
    """Pixel rows of the bands; ``title`` is [top, bottom), each line starts at its row."""

    width: int
    height: int
    rule_y: int
    title_top: int
    title_bottom: int
    line_tops: tuple[int, ...]


def plan_layout(width: int, height: int, line_height: int) -> Layout:
    """Top bar, rule, title, then as many small lines (up to 3) as leave the title room.

    One-pixel gaps separate the bands; a panel too short for even one line with gaps
    (128x32) drops them, since a name or a reason is worth more than the air.
    """
    plans = []
    for gap in (1, 0):
        rule_y = line_height + gap
        title_top = rule_y + 1 + gap
        pitch = line_height + gap
        room = height - title_top - (line_height + 1)  # once the smallest title fits
        count = max(0, min(MAX_LINES, room // pitch))
        title_bottom = height - count * pitch
        tops = tuple(title_bottom + gap + i * pitch for i in range(count))
        plans.append(Layout(width, height, rule_y, title_top, max(title_top, title_bottom), tops))
    return plans[0] if plans[0].line_tops or not plans[1].line_tops else plans[1]


@functools.lru_cache(maxsize=1024)
def _bbox(font: Font, text: str) -> tuple[int, int, int, int]:
    """The pixels ``text`` inks when drawn at (0, 0) with fontmode "1"; getbbox() is not
    it: across, it spans the advance, side bearings included. Cached: fitting a line
    measures it many times, and rasterising to measure is most of a frame's cost
    (3.0 -> 0.7 ms a frame here, bench/keypress.py); fonts are few and live as long as
    the display."""
    if isinstance(font, ImageFont.FreeTypeFont):
        mask, (dx, dy) = font.getmask2(text, mode="1")  # what ImageDraw.text pastes
    else:
        mask, (dx, dy) = font.getmask(text), (0, 0)
    box = mask.getbbox()
    if not box:
        return 0, 0, 0, 0
    left, top, right, bottom = box
    return dx + left, dy + top, dx + right, dy + bottom


def text_width(font: Font, text: str) -> int:
    """Columns from x=0 to the right edge of ``text``'s ink, counting any overhang left."""
    left, _, right, _ = _bbox(font, text)
    return right - min(0, left)


def printable(text: str, font: Font) -> str:
    """``text`` as one drawable line: controls become spaces (a SIP display name may hold
    a newline); for Pillow's Latin-1 bitmap font, other characters become "?"."""
    text = "".join(" " if unicodedata.category(c) == "Cc" else c for c in text)
    if not isinstance(font, ImageFont.FreeTypeFont):
        text = text.replace(ELLIPSIS, "...").encode("latin-1", "replace").decode("latin-1")
    return text


def _ellipsis(font: Font) -> str:
    return ELLIPSIS if isinstance(font, ImageFont.FreeTypeFont) else "..."


def fit_text(text: str, font: Font, max_width: int, *, keep_end: bool = False) -> str:
    """``text`` if it fits ``max_width`` pixels, else its start (or end) with an ellipsis."""
    text = printable(text, font)
    if text_width(font, text) <= max_width:
        return text
    mark = _ellipsis(font)

    def cut(n: int) -> str:  # keep n characters
        return mark + text[len(text) - n:].lstrip() if keep_end else text[:n].rstrip() + mark

    lo, hi = 0, len(text) - 1  # the most characters whose cut fits lies in [lo, hi]
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if text_width(font, cut(mid)) <= max_width:
            lo = mid
        else:
            hi = mid - 1
    best = cut(lo)
    return best if text_width(font, best) <= max_width else ""


def is_dialled(text: str) -> bool:
    """A number being typed or shown: digits, * # + and spaces."""
    return bool(text) and set(text) <= _DIALLED


def fit_title(text: str, fonts: Fonts, max_width: int, max_height: int) -> tuple[str, Font]:
    """The title and the face to draw it in: the biggest bold that fits the band's height,
    shrunk to ``TITLE_MIN_SIZE`` for width, then ellipsized, keeping a number's end."""
    largest = next((s for s in range(TITLE_MAX_SIZE, 6, -1)
                    if fonts.height(fonts.bold(s)) <= max_height), 6)
    smallest = min(largest, TITLE_MIN_SIZE)
    for size in range(largest, smallest - 1, -1):
        font = fonts.bold(size)
        line = printable(text, font)
        if text_width(font, line) <= max_width:
            return line, font
    font = fonts.bold(smallest)
    return fit_text(text, font, max_width, keep_end=is_dialled(text)), font


class Display:
    """Shows ``Screen``s on an injected luma device, sending a frame only on change.

    ``close()`` leaves the last picture on the panel (a restart does not flash black; pass
    ``final`` so a stopped phone does not show a stale call), or blanks it if asked.
    If the process exits without ``close()``, luma's own exit hook blanks the panel.
    """

    def __init__(self, device: LumaDevice, *, fonts: Fonts | None = None) -> None:
        self._device = device
        self._fonts = fonts if fonts is not None else Fonts()
        self.layout = plan_layout(device.width, device.height,
                                  self._fonts.height(self._fonts.small))
        self._screen: Screen | None = None
        self._frame: Image.Image | None = None
        self._failing = False
        self._closed = False

    @property
    def frame(self) -> Image.Image | None:
        """The last frame sent to the device (mode "1"), None before the first."""
        return self._frame

    @property
    def screen(self) -> Screen | None:
        """The last screen shown."""
        return self._screen

    def show(self, screen: Screen, *, force: bool = False) -> bool:
        """Draw ``screen`` unless it is the one on the panel; returns whether a frame went out.

        A new screen whose pixels equal the panel's (text past the last line of a 32-px
        panel) is not sent either. An I/O error on the bus is logged, not raised: the
        phone keeps working without its display, and the next ``show`` tries again.
        """
        if self._closed:
            raise RuntimeError("the display is closed")
        if screen == self._screen and not force:
            return False
        image = self.render(screen)
        same_pixels = self._frame is not None and image.tobytes() == self._frame.tobytes()
        if same_pixels and not force:
            self._screen = screen
            return False
        try:
            mode = self._device.mode
            self._device.display(image if mode == "1" else image.convert(mode))
        except OSError as exc:
            if not self._failing:
                log.warning("display write failed: %s", exc)
            self._failing = True
            self._screen = None  # unknown picture on the panel: redraw next time
            return False
        if self._failing:
            log.info("display writes work again")
            self._failing = False
        self._screen, self._frame = screen, image
        return True

    def render(self, screen: Screen) -> Image.Image:
        """Compose ``screen`` as a 1-bit frame of the device's size; no I/O."""
        lay, fonts, small = self.layout, self._fonts, self._fonts.small
        image = Image.new("1", (lay.width, lay.height), 0)
        draw = ImageDraw.Draw(image)
        draw.fontmode = "1"  # no anti-aliasing: a 1-bit canvas would threshold it unevenly
        small_top = fonts.extent(small)[0]

        def text(x: int, y: int, line: str, font: Font, top: int) -> None:
            if line:  # y is the row the ink starts on; x the column
                left = _bbox(font, line)[0]
                draw.text((x - min(0, left), y - top), line, font=font, fill=1)

        indicators = fit_text(screen.indicators, small, lay.width)
        used = text_width(small, indicators)
        if indicators:
            text(lay.width - used, 0, indicators, small, small_top)
        room = lay.width - (used + TOP_BAR_GAP if indicators else 0)
        text(0, 0, fit_text(screen.status, small, room), small, small_top)
        draw.line((0, lay.rule_y, lay.width - 1, lay.rule_y), fill=1)

        band = lay.title_bottom - lay.title_top
        if screen.title and band > 0:
            title, font = fit_title(screen.title, fonts, lay.width, band)
            top, bottom = fonts.extent(font)
            y = lay.title_top + max(0, (band - (bottom - top)) // 2)
            text(0, y, title, font, top)

        for y, line in zip(lay.line_tops, screen.lines, strict=False):
            text(0, y, fit_text(line, small, lay.width), small, small_top)
        return image

    def close(self, final: Screen | None = None, *, blank: bool = False) -> None:
        """Release the device, leaving ``final`` (or the last frame) lit unless ``blank``.

        luma's ``cleanup()`` switches the panel off unless ``persist`` is set; a person
        looking at a restarting phone wants the picture kept, a stopped one an honest
        ``final`` screen ("Stopped"), the app decides which.
        """
        if self._closed:
            return
        if final is not None:
            self.show(final)
        self._closed = True
        device: Any = self._device
        try:
            if hasattr(device, "persist"):
                device.persist = not blank
            cleanup = getattr(device, "cleanup", None)
            if cleanup is not None:
                cleanup()
            elif blank:
                device.display(Image.new(device.mode, (device.width, device.height)))
        except OSError as exc:
            log.warning("display cleanup failed: %s", exc)

    def __enter__(self) -> Display:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def open_device(kind: str, *, interface: str = "i2c", width: int = 128, height: int = 64,
                i2c_port: int = 1, i2c_address: int = 0x3C, spi_port: int = 0,
                spi_device: int = 0, gpio_dc: int = SPI_GPIO_DC,
                gpio_rst: int | None = SPI_GPIO_RST, rotate: int = 0) -> LumaDevice:
    """A luma device for ``kind`` "ssd1306" | "sh1106" over ``interface`` "i2c" | "spi",
    or "dummy" (keeps the last frame in ``.image``; the simulator and tests).

    luma is imported here, not at module import. SPI goes through luma's RPi.GPIO for DC
    and RST (on a Pi 5, Debian's rpi-lgpio provides that module); see ``SPI_GPIO_DC``.
    """
    if kind not in DISPLAY_KINDS:
        raise ValueError(f"unknown display kind {kind!r}: expected one of {DISPLAY_KINDS}")
    if kind == "dummy":
        from luma.core.device import dummy

        device: LumaDevice = dummy(width=width, height=height, rotate=rotate, mode="1")
        return device
    if interface not in INTERFACES:
        raise ValueError(f"unknown display interface {interface!r}: expected one of {INTERFACES}")
    from luma.core.interface import serial as luma_serial
    from luma.oled import device as luma_oled

    if interface == "i2c":
        bus = luma_serial.i2c(port=i2c_port, address=i2c_address)
    else:
        bus = luma_serial.spi(port=spi_port, device=spi_device,
                              gpio_DC=gpio_dc, gpio_RST=gpio_rst)
    driver = luma_oled.ssd1306 if kind == "ssd1306" else luma_oled.sh1106
    device = driver(bus, width=width, height=height, rotate=rotate)
    return device
