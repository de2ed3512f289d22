"""The OLED's frame as terminal text, for the simulator: pure, an image in, strings out.

``half_block_lines``: two pixel rows per character ("▀" top lit, "▄" bottom lit, "█" both,
" " neither), so 128x64 becomes 128 columns by 32 lines and, in a terminal whose cells
are twice as tall as wide, pixels stay square. ``braille_lines``: 2x4 pixels per
character (64 columns by 16 lines), every pixel still kept, for narrow terminals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

# index: top pixel lit * 2 + bottom pixel lit
HALF_BLOCKS = (" ", "▄", "▀", "█")
# Unicode braille: dot bit for the pixel at (dx, dy) in a 2x4 cell
_BRAILLE_BITS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))
_BRAILLE_BASE = 0x2800


def _lit(image: Image.Image) -> tuple[int, int, list[bool]]:
    """Width, height and a row-major lit flag per pixel (grey >= 128 is lit)."""
    grey = image if image.mode == "L" else image.convert("L")
    return image.width, image.height, [v >= 128 for v in grey.tobytes()]


def _framed(lines: list[str], width: int, border: bool) -> list[str]:
    if not border:
        return lines
    return ["┌" + "─" * width + "┐", *("│" + line + "│" for line in lines),
            "└" + "─" * width + "┘"]


def half_block_lines(image: Image.Image, *, border: bool = False) -> list[str]:
    """One string per two pixel rows; an odd last row is paired with an unlit one."""
    width, height, lit = _lit(image)

    def at(x: int, y: int) -> bool:
        return y < height and lit[y * width + x]

    lines = ["".join(HALF_BLOCKS[at(x, y) * 2 + at(x, y + 1)] for x in range(width))
             for y in range(0, height, 2)]
    return _framed(lines, width, border)


def braille_lines(image: Image.Image, *, border: bool = False) -> list[str]:
    """One braille character per 2x4 pixels; an empty cell is a space, not U+2800."""
    width, height, lit = _lit(image)
    lines = []
    for y0 in range(0, height, 4):
        cells = []
        for x0 in range(0, width, 2):
            bits = 0
            for dy, row in enumerate(_BRAILLE_BITS):
                for dx, bit in enumerate(row):
                    x, y = x0 + dx, y0 + dy
                    if x < width and y < height and lit[y * width + x]:
                        bits |= bit
            cells.append(chr(_BRAILLE_BASE + bits) if bits else " ")
        lines.append("".join(cells))
    return _framed(lines, (width + 1) // 2, border)


def frame_text(image: Image.Image, *, border: bool = False, compact: bool = False) -> str:
    """The frame as one string: half blocks, or braille if ``compact``."""
    render = braille_lines if compact else half_block_lines
    return "\n".join(render(image, border=border))
