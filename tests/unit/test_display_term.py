"""The OLED frame as terminal text: exact characters for known pixels."""

from __future__ import annotations

from PIL import Image

from deskphone.hw.termframe import braille_lines, frame_text, half_block_lines


def picture(rows: list[str]) -> Image.Image:
    """A 1-bit image from rows of "#" (lit) and "." (dark)."""
    image = Image.new("1", (len(rows[0]), len(rows)))
    for y, row in enumerate(rows):
        for x, c in enumerate(row):
            image.putpixel((x, y), 1 if c == "#" else 0)
    return image


def test_half_blocks_pair_two_pixel_rows() -> None:
    image = picture(["#.#.",
                     "##..",
                     "....",
                     ".#.#"])
    assert half_block_lines(image) == ["█▄▀ ", " ▄ ▄"]


def test_an_odd_last_row_is_the_top_half() -> None:
    assert half_block_lines(picture(["#.", ".#", "##"])) == ["▀▄", "▀▀"]


def test_border_frames_the_picture() -> None:
    assert half_block_lines(picture(["#.", ".#"]), border=True) == ["┌──┐", "│▀▄│", "└──┘"]


def test_braille_keeps_every_pixel_of_a_2x4_cell() -> None:
    image = picture(["#..#",
                     "....",
                     "....",
                     ".#.."])
    # left cell: dots 1 (0,0) and 8 (1,3); right cell: dot 4 (1,0)
    assert braille_lines(image) == [chr(0x2800 + 0x01 + 0x80) + chr(0x2800 + 0x08)]
    assert braille_lines(picture(["..", ".."])) == [" "]
    assert braille_lines(picture(["###", "###", "###", "###", "###"]), border=True) == [
        "┌──┐", "│⣿⡇│", "│⠉⠁│", "└──┘"]


def test_a_whole_frame_is_128_columns_by_32_lines() -> None:
    frame = Image.new("1", (128, 64))
    frame.paste(1, (0, 11, 128, 12))  # the top bar's rule
    lines = half_block_lines(frame)
    assert len(lines) == 32 and {len(line) for line in lines} == {128}
    assert lines[5] == "▄" * 128
    compact = frame_text(frame, compact=True).split("\n")
    assert len(compact) == 16 and {len(line) for line in compact} == {64}
    assert frame_text(frame) == "\n".join(lines)


def test_grey_and_colour_images_are_thresholded_not_dithered() -> None:
    grey = Image.new("L", (2, 2), 100)
    grey.putpixel((0, 0), 200)
    assert half_block_lines(grey) == ["▀ "]
    assert half_block_lines(grey.convert("RGB")) == ["▀ "]
