"""Digit maps: when is a dialled number complete? (RFC 3435 §2.1.5, as desk phones use it)

A digit map is alternatives separated by ``|``, optionally wrapped in one pair of
parentheses: ``[2-9]xxx|0T|00x.T|*xx|911|1[2-9]xx[2-9]xxxxxx``. In each alternative:

- ``0``-``9``, ``*``, ``#``: that key;
- ``x``: any digit 0-9; ``[2-9]``, ``[135]``, ``[1-36-8]``, ``[0*#]``: any key of the set;
- ``.`` after a position: that position zero or more times (``00x.`` is 00 and any digits);
- ``T`` last in an alternative: the number is complete once the person pauses (the short
  interdigit timer). ``T`` anywhere else is an error.

``x`` and ``T`` may be written in either case; whitespace is an error, as in the RFC.
Errors are ``ValueError("digit map: <problem> at <index>")``, the index counting from 0.
``str()`` gives the canonical text: no parentheses, ``x`` for ``[0-9]``, a one-key set as
the key, sets sorted with runs as ranges (``[3-589]``); parsing it gives an equal map.

Theory of operation. ``match(digits)`` runs every alternative over the digits as a small
NFA (a set of positions; ``.`` adds the skip), linear in the digits times the map size, and
sums up the alternatives:

- COMPLETE: some alternative matches, none ends in ``T``, and no alternative could match a
  longer number: dial now.
- COMPLETE_ON_TIMER: some alternative matches, and either it ends in ``T`` or some
  alternative (the same or another) could still take more digits: dial when the short
  timer expires unless another key comes first. So ``911|911x`` waits after "911" rather
  than dialling a number the person may still be typing, and ``9x.`` (no ``T``) behaves
  like ``9x.T``: nothing can tell it is finished but a pause.
- PARTIAL: nothing matches yet but more digits could: keep collecting; dial on the long
  interdigit timer or ``#``.
- NO_MATCH: no digits added could ever match.

Two decisions beyond the RFC: nothing dialled ("") is PARTIAL even where ``x.`` would match
it, as there is no number to call; and the empty map ("") has no alternatives and answers
PARTIAL to everything, so a phone without a digit map dials on ``#`` or the long timer.
``#`` is matched like any key; using it as "dial now" is the controller's choice.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Final

DIGITS: Final = "0123456789"
KEYS: Final = DIGITS + "*#"
"""The keys a digit map speaks about, in canonical order."""

_ANY_DIGIT: Final = frozenset(DIGITS)


class Match(enum.Enum):
    """How far the dialled digits are from a number to call (see the module docstring)."""

    COMPLETE = "complete"
    COMPLETE_ON_TIMER = "complete on timer"
    PARTIAL = "partial"
    NO_MATCH = "no match"


@dataclass(frozen=True, slots=True)
class Position:
    """One place in an alternative: the keys it takes, and whether ``.`` repeats it."""

    keys: frozenset[str]
    repeat: bool = False

    def __str__(self) -> str:
        return _keys_text(self.keys) + ("." if self.repeat else "")


@dataclass(frozen=True, slots=True)
class Pattern:
    """One alternative of a digit map; ``timer`` when it ends in ``T``."""

    positions: tuple[Position, ...]
    timer: bool = False

    def __str__(self) -> str:
        return "".join(map(str, self.positions)) + ("T" if self.timer else "")

    def states(self, digits: str) -> frozenset[int]:
        """Where the digits can leave the NFA: indexes into ``positions``; len() is the end."""
        current = self._closure({0})
        for key in digits:
            if not current:
                break
            moved = set()
            for index in current:
                if index < len(self.positions) and key in self.positions[index].keys:
                    moved.add(index if self.positions[index].repeat else index + 1)
            current = self._closure(moved)
        return frozenset(current)

    def _closure(self, states: set[int]) -> set[int]:
        """Add the places reached by skipping repeated positions (``.`` is zero or more)."""
        closed = set(states)
        for index in states:
            while index < len(self.positions) and self.positions[index].repeat:
                index += 1
                closed.add(index)
        return closed


@dataclass(frozen=True, slots=True)
class DigitMap:
    """A parsed digit map: ``DigitMap.parse(text).match(digits)``."""

    patterns: tuple[Pattern, ...] = ()

    @classmethod
    def parse(cls, text: str) -> DigitMap:
        return _Parser(text).parse()

    def __str__(self) -> str:
        return "|".join(map(str, self.patterns))

    def match(self, digits: str) -> Match:
        if not self.patterns or not digits:
            return Match.PARTIAL
        complete = on_timer = more = False
        for pattern in self.patterns:
            states = pattern.states(digits)
            end = len(pattern.positions)
            if end in states:
                complete = True
                on_timer = on_timer or pattern.timer
            # Every position takes some key, so any place short of the end can still finish.
            more = more or any(state < end for state in states)
        if complete:
            return Match.COMPLETE_ON_TIMER if on_timer or more else Match.COMPLETE
        return Match.PARTIAL if more else Match.NO_MATCH


def _keys_text(keys: frozenset[str]) -> str:
    if keys == _ANY_DIGIT:
        return "x"
    if len(keys) == 1:
        return next(iter(keys))
    parts: list[str] = []
    digits = [int(d) for d in sorted(keys & _ANY_DIGIT)]
    start = 0
    while start < len(digits):
        end = start
        while end + 1 < len(digits) and digits[end + 1] == digits[end] + 1:
            end += 1
        if end - start >= 2:
            parts.append(f"{digits[start]}-{digits[end]}")
        else:
            parts.extend(str(d) for d in digits[start : end + 1])
        start = end + 1
    parts.extend(key for key in "*#" if key in keys)
    return "[" + "".join(parts) + "]"


def _show(char: str) -> str:
    return f'"{char}"' if char.isprintable() and char != '"' else repr(char)


class _Parser:
    """Recursive descent over the grammar in the module docstring, one character at a time."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._at = 0

    def _error(self, problem: str, at: int) -> ValueError:
        return ValueError(f"digit map: {problem} at {at}")

    def _peek(self) -> str | None:
        return self._text[self._at] if self._at < len(self._text) else None

    def parse(self) -> DigitMap:
        if not self._text:
            return DigitMap()
        wrapped = self._peek() == "("
        if wrapped:
            self._at += 1
        patterns = [self._pattern()]
        while self._peek() == "|":
            self._at += 1
            patterns.append(self._pattern())
        char = self._peek()
        if wrapped:
            if char is None:
                raise self._error('unclosed "("', 0)
            self._at += 1  # the ")": _pattern stops only at "|", ")" or the end
            char = self._peek()
        if char is not None:
            raise self._error(f"unexpected {_show(char)}", self._at)
        return DigitMap(tuple(patterns))

    def _pattern(self) -> Pattern:
        start = self._at
        positions: list[Position] = []
        timer_at: int | None = None
        while (char := self._peek()) not in (None, "|", ")"):
            assert char is not None
            if timer_at is not None:
                raise self._error('"T" must end a pattern', timer_at)
            if char in KEYS:
                positions.append(Position(frozenset(char)))
            elif char in "xX":
                positions.append(Position(_ANY_DIGIT))
            elif char == "[":
                positions.append(Position(self._set()))
                continue
            elif char in "tT":
                timer_at = self._at
            elif char == ".":
                if not positions or positions[-1].repeat:
                    raise self._error('"." has nothing to repeat', self._at)
                positions[-1] = replace(positions[-1], repeat=True)
            else:
                raise self._error(f"unexpected {_show(char)}", self._at)
            self._at += 1
        if not positions:
            if timer_at is not None:
                raise self._error('"T" needs a digit before it', timer_at)
            raise self._error("empty pattern", start)
        return Pattern(tuple(positions), timer_at is not None)

    def _set(self) -> frozenset[str]:
        opened = self._at
        if "]" not in self._text[opened:]:
            raise self._error('unclosed "["', opened)
        self._at += 1
        keys: set[str] = set()
        while (char := self._text[self._at]) != "]":  # there is a "]" ahead: no IndexError
            if char in DIGITS and self._text.startswith("-", self._at + 1):
                high = self._text[self._at + 2]  # the "]" is at + 2 or later
                if high not in DIGITS:
                    raise self._error(f"unexpected {_show(high)}", self._at + 2)
                if high < char:
                    raise self._error(f'backwards range "{char}-{high}"', self._at)
                keys.update(DIGITS[int(char) : int(high) + 1])
                self._at += 3
            elif char in KEYS:
                keys.add(char)
                self._at += 1
            else:
                raise self._error(f"unexpected {_show(char)}", self._at)
        if not keys:
            raise self._error('empty "[]"', opened)
        self._at += 1
        return frozenset(keys)
