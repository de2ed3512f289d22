"""PNG pictures of screens for the docs, drawn by the same ``Display`` the phone uses.

The frame comes from a luma dummy device, then each OLED pixel becomes a ``scale`` x
``scale`` block (nearest neighbour: no blur) in a pale blue on black, like the panel.
"""

from __future__ import annotations

import os

from PIL import Image

from deskphone.hw.display import Display, Fonts, open_device
from deskphone.phone.screens import Screen

Colour = tuple[int, int, int]

OLED_ON: Colour = (150, 215, 255)  # a lit pixel of a "blue" SSD1306, light enough to read
OLED_OFF: Colour = (4, 6, 12)


def render_png(screen: Screen, path: str | os.PathLike[str], *, scale: int = 4,
               fonts: Fonts | None = None, width: int = 128, height: int = 64,
               on: Colour = OLED_ON, off: Colour = OLED_OFF) -> Image.Image:
    """Save ``screen`` as a PNG ``scale`` times the panel's size; returns the picture."""
    if scale < 1:
        raise ValueError(f"scale must be at least 1, got {scale}")
    display = Display(open_device("dummy", width=width, height=height), fonts=fonts)
    display.show(screen)
    frame = display.frame
    assert frame is not None  # a first show always draws
    picture = Image.new("P", frame.size, 0)
    picture.putpalette([*off, *on])
    picture.paste(1, mask=frame)
    picture = picture.resize((width * scale, height * scale), Image.Resampling.NEAREST)
    picture.save(path, format="PNG")
    return picture
