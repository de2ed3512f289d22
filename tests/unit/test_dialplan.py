"""The digit map: syntax, errors, matching, and properties against simple oracles."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deskphone.phone.dialplan import KEYS, DigitMap, Match, Pattern, Position

COMPLETE = Match.COMPLETE
ON_TIMER = Match.COMPLETE_ON_TIMER
PARTIAL = Match.PARTIAL
NO_MATCH = Match.NO_MATCH

EXAMPLE = "[2-9]xxx|0T|00x.T|*xx|911|1[2-9]xx[2-9]xxxxxx"


@pytest.mark.parametrize(
    ("digits", "result"),
    [
        ("", PARTIAL),  # nothing dialled is never a number
        ("2", PARTIAL),
        ("23", PARTIAL),
        ("234", PARTIAL),
        ("2345", COMPLETE),  # an extension: dial at once
        ("9999", COMPLETE),
        ("23456", NO_MATCH),
        ("0", ON_TIMER),  # the operator, unless 00... follows
        ("00", ON_TIMER),  # 00x.T: x. takes zero digits too
        ("001", ON_TIMER),
        ("0044207946000", ON_TIMER),
        ("01", NO_MATCH),
        ("0*", NO_MATCH),
        ("00#", NO_MATCH),
        ("*", PARTIAL),
        ("*7", PARTIAL),
        ("*72", COMPLETE),
        ("*720", NO_MATCH),
        ("**", NO_MATCH),
        ("9", PARTIAL),
        ("91", PARTIAL),
        ("911", ON_TIMER),  # 911 matches, but [2-9]xxx could still take a fourth digit
        ("9112", COMPLETE),  # ... which it did: extension 9112
        ("91123", NO_MATCH),
        ("1", PARTIAL),
        ("11", NO_MATCH),
        ("12", PARTIAL),
        ("1212555", PARTIAL),
        ("1212155", NO_MATCH),  # the exchange must start with 2-9
        ("12125551234", COMPLETE),
        ("121255512345", NO_MATCH),
        ("#", NO_MATCH),
        ("2#", NO_MATCH),
    ],
)
def test_example_map(digits: str, result: Match) -> None:
    assert DigitMap.parse(EXAMPLE).match(digits) is result


def match(text: str, digits: str) -> Match:
    return DigitMap.parse(text).match(digits)


# --- each syntax element ----------------------------------------------------------------


def test_literal_keys() -> None:
    assert match("*6#", "*6#") is COMPLETE
    assert match("*6#", "*6") is PARTIAL
    assert match("*6#", "*5") is NO_MATCH
    assert match("0", "0") is COMPLETE


@pytest.mark.parametrize("digit", "0123456789")
def test_x_is_any_digit_and_not_star_or_hash(digit: str) -> None:
    assert match("1x", "1" + digit) is COMPLETE
    assert match("1X", "1" + digit) is COMPLETE  # either case
    assert match("1x", "1*") is NO_MATCH
    assert match("1x", "1#") is NO_MATCH


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        ("[2-9]", "23456789"),
        ("[135]", "135"),
        ("[1-36-8]", "123678"),
        ("[0*#]", "0*#"),
        ("[5-5]", "5"),
        ("[0-9]", "0123456789"),
    ],
)
def test_sets_and_ranges(text: str, keys: str) -> None:
    for key in KEYS:
        assert match(text, key) is (COMPLETE if key in keys else NO_MATCH), key


def test_dot_repeats_zero_or_more_times() -> None:
    assert match("12.3", "13") is COMPLETE
    assert match("12.3", "123") is COMPLETE
    assert match("12.3", "12223") is COMPLETE
    assert match("12.3", "1") is PARTIAL
    assert match("12.3", "122") is PARTIAL
    assert match("12.3", "1224") is NO_MATCH
    assert match("[12].", "1212") is ON_TIMER  # complete, but another digit could follow


def test_repeated_sets_and_adjacent_repeats() -> None:
    assert match("9[2-4].x", "9") is PARTIAL
    assert match("9[2-4].x", "95") is COMPLETE  # [2-4]. took nothing; x took 5
    assert match("9[2-4].x", "93") is ON_TIMER  # x took 3, or [2-4]. did and x is to come
    assert match("9[2-4].x", "9233") is ON_TIMER  # ... or the 3 is x, or still [2-4]
    assert match("1.2.3", "3") is COMPLETE
    assert match("1.2.3", "1122") is PARTIAL
    assert match("1.2.3", "1121") is NO_MATCH


def test_x_dot_t_completes_only_on_the_timer() -> None:
    digit_map = DigitMap.parse("x.T")
    assert digit_map.match("") is PARTIAL
    for digits in ["0", "5", "12", "0123456789" * 3]:
        assert digit_map.match(digits) is ON_TIMER
    assert digit_map.match("1*") is NO_MATCH


def test_timer_patterns_never_complete_at_once() -> None:
    assert match("0T", "0") is ON_TIMER
    assert match("0t", "0") is ON_TIMER
    assert match("0T", "00") is NO_MATCH
    assert match("123T", "12") is PARTIAL
    assert match("123T", "123") is ON_TIMER


def test_dot_without_t_waits_for_the_timer_too() -> None:
    # Nothing but a pause can tell that 9x. is finished.
    assert match("9x.", "9") is ON_TIMER
    assert match("9x.", "9555") is ON_TIMER


def test_overlapping_alternatives_wait_for_the_timer() -> None:
    digit_map = DigitMap.parse("911|911x")
    assert digit_map.match("91") is PARTIAL
    assert digit_map.match("911") is ON_TIMER  # 911 matches; 911x still could
    assert digit_map.match("9115") is COMPLETE
    assert digit_map.match("91155") is NO_MATCH
    # The order of the alternatives does not matter.
    assert match("911x|911", "911") is ON_TIMER
    # A complete alternative beside a dead one dials at once.
    assert match("911|912x", "911") is COMPLETE


def test_parentheses_are_optional() -> None:
    assert DigitMap.parse("(911|[2-9]xxx)") == DigitMap.parse("911|[2-9]xxx")
    assert DigitMap.parse("(x.T)") == DigitMap.parse("x.T")


def test_empty_map_is_partial_for_everything() -> None:
    # No digit map configured: collect until "#" or the long timer.
    empty = DigitMap.parse("")
    assert empty == DigitMap()
    assert str(empty) == ""
    for digits in ["", "1", "911", "*#", "12125551234"]:
        assert empty.match(digits) is PARTIAL


def test_keys_outside_the_keypad_never_match() -> None:
    assert match("x.T", "1A") is NO_MATCH
    assert match("x.T", "+1") is NO_MATCH


def test_parsed_structure() -> None:
    assert DigitMap.parse("1[2-3]x.T|*") == DigitMap(
        (
            Pattern(
                (
                    Position(frozenset("1")),
                    Position(frozenset("23")),
                    Position(frozenset("0123456789"), repeat=True),
                ),
                timer=True,
            ),
            Pattern((Position(frozenset("*")),)),
        )
    )


# --- canonical text ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        (EXAMPLE, EXAMPLE),
        ("(911|X.t)", "911|x.T"),
        ("[0-9]", "x"),
        ("[9876543210]", "x"),
        ("[5]", "5"),
        ("[5-5].", "5."),
        ("[#*21]", "[12*#]"),
        ("[1-36-8]", "[1-36-8]"),
        ("[1-2]", "[12]"),
        ("[3-589]", "[3-589]"),
        ("[0-24-79]", "[0-24-79]"),
        ("[0-9*]", "[0-9*]"),
        ("", ""),
    ],
)
def test_str_is_the_canonical_text(text: str, canonical: str) -> None:
    digit_map = DigitMap.parse(text)
    assert str(digit_map) == canonical
    assert DigitMap.parse(canonical) == digit_map


# --- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("911|[2-9xxx", 'digit map: unclosed "[" at 4'),
        ("[2-", 'digit map: unclosed "[" at 0'),
        ("(911|x.T", 'digit map: unclosed "(" at 0'),
        ("911)", 'digit map: unexpected ")" at 3'),
        ("(911)x", 'digit map: unexpected "x" at 5'),
        ("9(11)", 'digit map: unexpected "(" at 1'),
        ("((911))", 'digit map: unexpected "(" at 1'),
        ("911||0", "digit map: empty pattern at 4"),
        ("|911", "digit map: empty pattern at 0"),
        ("911|", "digit map: empty pattern at 4"),
        ("()", "digit map: empty pattern at 1"),
        ("0|T", 'digit map: "T" needs a digit before it at 2'),
        ("0T1", 'digit map: "T" must end a pattern at 1'),
        ("0T.", 'digit map: "T" must end a pattern at 1'),
        ("0TT", 'digit map: "T" must end a pattern at 1'),
        (".1", 'digit map: "." has nothing to repeat at 0'),
        ("1|.", 'digit map: "." has nothing to repeat at 2'),
        ("x..", 'digit map: "." has nothing to repeat at 2'),
        ("[9-2]", 'digit map: backwards range "9-2" at 1'),
        ("1[]", 'digit map: empty "[]" at 1'),
        ("[1-]", 'digit map: unexpected "]" at 3'),
        ("[1-x]", 'digit map: unexpected "x" at 3'),
        ("[-5]", 'digit map: unexpected "-" at 1'),
        ("[x]", 'digit map: unexpected "x" at 1'),
        ("[1[2]]", 'digit map: unexpected "[" at 2'),
        ("[T]", 'digit map: unexpected "T" at 1'),
        ("]", 'digit map: unexpected "]" at 0'),
        ("911 | 0T", 'digit map: unexpected " " at 3'),
        ("+1x.T", 'digit map: unexpected "+" at 0'),
        ("1A", 'digit map: unexpected "A" at 1'),
        ('1"', "digit map: unexpected '\"' at 1"),
        ("1\n", "digit map: unexpected '\\n' at 1"),
        ("١", 'digit map: unexpected "١" at 0'),  # an Arabic-Indic one is not a key
    ],
)
def test_errors_name_the_problem_and_the_place(text: str, error: str) -> None:
    with pytest.raises(ValueError) as info:
        DigitMap.parse(text)
    assert str(info.value) == error


# --- properties -------------------------------------------------------------------------

key_strings = st.text(alphabet=KEYS, min_size=1, max_size=6)


@given(st.lists(key_strings, min_size=1, max_size=5), st.data())
def test_literal_alternatives_against_an_oracle(
    alternatives: list[str], data: st.DataObject
) -> None:
    digit_map = DigitMap.parse("|".join(alternatives))
    prefixes = [a[:n] for a in alternatives for n in range(len(a) + 1)]
    digits = data.draw(st.sampled_from(prefixes) | st.text(alphabet=KEYS, max_size=7))
    longer = any(a.startswith(digits) and a != digits for a in alternatives)
    if digits in alternatives:
        expected = ON_TIMER if longer else COMPLETE
    else:
        expected = PARTIAL if longer or digits == "" else NO_MATCH
    assert digit_map.match(digits) is expected


positions = st.builds(
    Position, st.frozensets(st.sampled_from(KEYS), min_size=1), st.booleans()
)
patterns = st.builds(Pattern, st.lists(positions, min_size=1, max_size=5).map(tuple), st.booleans())
digit_maps = st.builds(DigitMap, st.lists(patterns, max_size=4).map(tuple))


@given(digit_maps)
def test_canonical_text_round_trips(digit_map: DigitMap) -> None:
    text = str(digit_map)
    assert DigitMap.parse(text) == digit_map
    assert str(DigitMap.parse(text)) == text
    if digit_map.patterns:
        assert DigitMap.parse(f"({text})") == digit_map


def as_regex(pattern: Pattern) -> str:
    return "".join(
        "[" + "".join(re.escape(k) for k in sorted(p.keys)) + "]" + ("*" if p.repeat else "")
        for p in pattern.positions
    )


@given(digit_maps, st.text(alphabet=KEYS, min_size=1, max_size=8))
def test_complete_iff_some_alternative_matches_in_full(digit_map: DigitMap, digits: str) -> None:
    full = any(re.fullmatch(as_regex(p), digits) for p in digit_map.patterns)
    result = digit_map.match(digits)
    assert (result in (COMPLETE, ON_TIMER)) == full
    if any(p.timer and re.fullmatch(as_regex(p), digits) for p in digit_map.patterns):
        assert result is ON_TIMER


@given(digit_maps, st.text(alphabet=KEYS, max_size=8), st.sampled_from(KEYS))
def test_matching_only_narrows_as_digits_are_added(
    digit_map: DigitMap, digits: str, key: str
) -> None:
    before, after = digit_map.match(digits), digit_map.match(digits + key)
    if before in (NO_MATCH, COMPLETE):
        # Nothing can follow a complete number, and nothing revives a dead one.
        assert after is NO_MATCH
    if after is not NO_MATCH:
        # Every proper prefix of a possible number is still being collected.
        assert before in (PARTIAL, ON_TIMER)


@given(st.text(alphabet=KEYS + "xXtT.[]-()|A +", max_size=14))
def test_parse_gives_a_map_or_a_digit_map_error_and_nothing_else(text: str) -> None:
    try:
        digit_map = DigitMap.parse(text)
    except ValueError as exc:
        assert re.fullmatch(r"digit map: .+ at \d+", str(exc)), exc
        return
    assert DigitMap.parse(str(digit_map)) == digit_map
