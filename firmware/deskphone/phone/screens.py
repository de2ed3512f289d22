"""What the OLED shows, as text: the pure view model (state -> Screen).

A ``Screen`` is what a person reads on the 128x64 display, independent of pixels:
``hw/display.py`` lays it out in pixels, the console's ``screen`` command prints
``text_lines()``, the simulator draws the pixels with block characters.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Screen:
    """One frame of the display.

    ``status``: the top bar's left side (account, or what the phone is doing);
    ``indicators``: the top bar's right side, short flags ("REG", "MUTE", "HOLD", "!");
    ``title``: the one big line (the digits dialled, the remote number, the clock);
    ``lines``: up to three small lines below it (name, duration, codec, a reason).
    """

    status: str = ""
    indicators: str = ""
    title: str = ""
    lines: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.lines) > 3:
            raise ValueError(f"a screen has at most 3 small lines, got {len(self.lines)}")

    def text_lines(self) -> list[str]:
        """The screen as plain text, top to bottom (console ``screen``, tests)."""
        top = self.status
        if self.indicators:
            top = f"{top}  {self.indicators}" if top else self.indicators
        return [top, self.title, *self.lines]
