"""RFC 4733 telephone-events: exact payload bytes, the sender's packet sequence,
and a receiver that reports each digit once through loss, duplication and
reordering."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deskphone.media.dtmf import (
    FLASH,
    DtmfDigit,
    DtmfReceiver,
    DtmfSender,
    TelephoneEvent,
    digit_to_event,
    event_to_digit,
)

Packet = tuple[bytes, bool, int]
SSRC = 0x1234ABCD


def drain(sender: DtmfSender, calls: int = 1000) -> list[Packet]:
    """Every packet the sender makes while busy, one call per packet time."""
    packets: list[Packet] = []
    for _ in range(calls):
        if not sender.busy:
            break
        packet = sender.next_packet()
        if packet is not None:
            packets.append(packet)
    assert not sender.busy
    return packets


def decode(packets: list[Packet]) -> list[tuple[int, bool, int, bool, int]]:
    """(event, end, duration, marker, timestamp) of each one-event packet."""
    out = []
    for payload, marker, timestamp in packets:
        (event,) = TelephoneEvent.parse(payload)
        out.append((event.event, event.end, event.duration, marker, timestamp))
    return out


def feed_all(receiver: DtmfReceiver, packets: list[Packet], ssrc: int = SSRC) -> list[DtmfDigit]:
    digits: list[DtmfDigit] = []
    for payload, marker, timestamp in packets:
        digits.extend(receiver.feed(payload, timestamp, marker, ssrc))
    return digits


def press(digit: str, timestamp: int = 1000, duration_ms: int = 100) -> list[Packet]:
    sender = DtmfSender()
    sender.start(digit, timestamp, duration_ms)
    return drain(sender)


# --- the payload (RFC 4733 §2.3) ---------------------------------------------


def test_known_event_has_exact_bytes() -> None:
    # Digit 5, E bit, volume 10 (-10 dBm0), 800 units (100 ms at 8 kHz).
    event = TelephoneEvent(event=5, end=True, volume=10, duration=800)
    assert bytes(event) == bytes.fromhex("058a0320")
    assert TelephoneEvent.parse(bytes.fromhex("058a0320")) == (event,)
    assert event.digit == "5"


def test_event_without_end_bit() -> None:
    assert bytes(TelephoneEvent(11, end=False, volume=63, duration=0xFFFF)) == bytes.fromhex(
        "0b3fffff"
    )


def test_reserved_bit_is_ignored_on_receipt() -> None:
    # §2.3.3: R is sent as 0 and ignored by the receiver.
    (event,) = TelephoneEvent.parse(bytes.fromhex("05ca0320"))
    assert event == TelephoneEvent(5, end=True, volume=10, duration=800)


def test_several_events_in_one_payload() -> None:
    # §2.5.1.5: reports packed back to back, the earliest first.
    payload = bytes.fromhex("018a0320020a00a0")
    assert TelephoneEvent.parse(payload) == (
        TelephoneEvent(1, end=True, volume=10, duration=800),
        TelephoneEvent(2, end=False, volume=10, duration=160),
    )


def test_non_dtmf_event_parses_with_no_digit() -> None:
    (event,) = TelephoneEvent.parse(bytes.fromhex("200a0320"))  # 32: fax ANS (RFC 4734)
    assert event.event == 32
    assert event.digit is None


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "telephone-event payload is invalid: it is empty"),
        (
            bytes.fromhex("058a03"),
            "telephone-event payload is invalid: 3 bytes is not a whole number of 4-byte events",
        ),
        (
            bytes.fromhex("058a032001"),
            "telephone-event payload is invalid: 5 bytes is not a whole number of 4-byte events",
        ),
    ],
)
def test_malformed_payload_raises_exact_error(payload: bytes, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        TelephoneEvent.parse(payload)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"event": 256}, "telephone event is invalid: event 256 is not in 0..255"),
        ({"event": -1}, "telephone event is invalid: event -1 is not in 0..255"),
        ({"event": 1, "volume": 64}, "telephone event is invalid: volume 64 is not in 0..63"),
        (
            {"event": 1, "duration": 0x10000},
            "telephone event is invalid: duration 65536 is not in 0..65535",
        ),
    ],
)
def test_out_of_range_fields_raise_exact_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as raised:
        TelephoneEvent(**kwargs)
    assert str(raised.value) == message


events = st.builds(
    TelephoneEvent,
    event=st.integers(0, 255),
    end=st.booleans(),
    volume=st.integers(0, 63),
    duration=st.integers(0, 0xFFFF),
)


@given(st.lists(events, min_size=1, max_size=4))
def test_round_trip(reports: list[TelephoneEvent]) -> None:
    payload = b"".join(bytes(report) for report in reports)
    assert TelephoneEvent.parse(payload) == tuple(reports)


@given(st.binary(max_size=24))
def test_parse_returns_or_raises_value_error(data: bytes) -> None:
    try:
        reports = TelephoneEvent.parse(data)
    except ValueError:
        return
    # Whatever parses serialises back, R bits aside.
    cleared = bytes(b & ~0x40 if i % 4 == 1 else b for i, b in enumerate(data))
    assert b"".join(bytes(report) for report in reports) == cleared


# --- digits and events (RFC 4733 §3.2) ---------------------------------------


def test_digit_table() -> None:
    keys = "0123456789*#ABCD" + FLASH
    assert [digit_to_event(key) for key in keys] == list(range(17))
    assert "".join(event_to_digit(event) for event in range(17)) == keys
    assert FLASH == "!"
    assert digit_to_event("d") == 15


@pytest.mark.parametrize("bad", ["E", "", "12", " ", "+"])
def test_unknown_digit_raises(bad: str) -> None:
    with pytest.raises(ValueError) as raised:
        digit_to_event(bad)
    assert str(raised.value) == f"DTMF digit is invalid: {bad!r}"


def test_non_dtmf_event_has_no_digit() -> None:
    with pytest.raises(ValueError) as raised:
        event_to_digit(17)
    assert str(raised.value) == "DTMF event is invalid: 17 is not in 0..16"


# --- the sender (RFC 4733 §2.5.1) --------------------------------------------


def test_sender_sequence_for_100_ms_digit() -> None:
    packets = press("5", timestamp=1000)
    # Same timestamp throughout (§2.5.1.2), growing duration, marker only on
    # the first (§2.2.2), the E-bit packet three times (§2.5.1.4).
    assert decode(packets) == [
        (5, False, 160, True, 1000),
        (5, False, 320, False, 1000),
        (5, False, 480, False, 1000),
        (5, False, 640, False, 1000),
        (5, True, 800, False, 1000),
        (5, True, 800, False, 1000),
        (5, True, 800, False, 1000),
    ]
    assert packets[-1][0] == bytes.fromhex("058a0320")


def test_sender_is_idle_without_digits() -> None:
    sender = DtmfSender()
    assert not sender.busy
    assert sender.next_packet() is None


def test_duration_not_a_multiple_of_ptime_ends_exactly() -> None:
    durations = [d for _, _, d, _, _ in decode(press("1", duration_ms=110))]
    assert durations == [160, 320, 480, 640, 800, 880, 880, 880]


def test_short_digit_is_raised_to_40_ms() -> None:
    assert decode(press("#", timestamp=0, duration_ms=10)) == [
        (11, False, 160, True, 0),
        (11, True, 320, False, 0),
        (11, True, 320, False, 0),
        (11, True, 320, False, 0),
    ]


def test_queued_digits_follow_after_a_gap() -> None:
    sender = DtmfSender()
    sender.start("1", 8000)
    sender.start("2", 99999)  # ignored: the sender's own clock places it
    calls = [sender.next_packet() for _ in range(16)]
    stamps = [(p[2], p[1]) for p in calls if p is not None]
    assert [s for s, _ in stamps] == [8000] * 7 + [8000 + 800 + 320] * 7
    assert [m for _, m in stamps] == [True] + [False] * 6 + [True] + [False] * 6
    # The second digit starts the packet time after the third end packet:
    # 40 ms of silence after the first digit's 100 ms.
    assert calls[7] is not None and calls[7][2] == 9120
    assert calls[14] is None and not sender.busy


def test_longer_gap_leaves_empty_packet_times() -> None:
    sender = DtmfSender(gap_ms=100)
    sender.start("1", 0)
    sender.start("2", 0)
    calls = [sender.next_packet() for _ in range(20)]
    assert [c is None for c in calls[:12]] == [False] * 7 + [True] * 3 + [False] * 2
    second = calls[10]
    assert second is not None
    assert second[1] is True and second[2] == 800 + 800  # 100 ms tone + 100 ms gap


def test_volume_and_ptime_are_used() -> None:
    sender = DtmfSender(ptime_ms=50, volume=20)
    sender.start("9", 0, duration_ms=100)
    assert decode(drain(sender)) == [
        (9, False, 400, True, 0),
        (9, True, 800, False, 0),
        (9, True, 800, False, 0),
        (9, True, 800, False, 0),
    ]
    sender.start("9", 1120)  # the 40 ms pause after the first has passed
    payload, _, _ = sender.next_packet() or (b"", False, 0)
    assert TelephoneEvent.parse(payload)[0].volume == 20


def test_pause_is_kept_even_if_the_caller_restarts_early() -> None:
    sender = DtmfSender()
    sender.start("1", 0)
    drain(sender)
    sender.start("2", 800)  # 0 ms after the first ended: 40 ms too soon
    calls = [sender.next_packet() for _ in range(3)]
    assert calls[:2] == [None, None]
    assert calls[2] is not None and calls[2][1:] == (True, 1120)


def test_timestamp_wraps() -> None:
    sender = DtmfSender()
    sender.start("1", 0xFFFFFC00)
    sender.start("2", 0)
    stamps = sorted({ts for _, _, ts in drain(sender)})
    assert stamps == [(0xFFFFFC00 + 1120) % 2**32, 0xFFFFFC00]


def test_long_event_is_cut_into_segments() -> None:
    # §2.5.1.3: 10 s is 80000 units, more than the 16-bit field holds.
    packets = decode(press("0", timestamp=500, duration_ms=10_000))
    first = [p for p in packets if p[4] == 500]
    second = [p for p in packets if p[4] == 500 + 0xFFFF]
    assert len(first) + len(second) == len(packets)
    assert first[0][3] is True and not any(p[3] for p in packets[1:])
    assert first[-1] == (0, False, 0xFFFF, False, 500)  # closes the segment, no E bit
    assert not any(p[1] for p in first)
    assert [p[1] for p in second[-3:]] == [True] * 3
    assert second[-1][2] == 80000 - 0xFFFF
    assert all(a[2] < b[2] for a, b in zip(second[:-3], second[1:-2], strict=True))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"volume": 64}, "DTMF sender is invalid: volume 64 is not in 0..63"),
        (
            {"ptime_ms": 0},
            "DTMF sender is invalid: 0 ms is not a whole number of samples at 8000 Hz",
        ),
        (
            {"clock_rate": 8000, "ptime_ms": 1, "gap_ms": -1},
            "DTMF sender is invalid: gap -1 ms, minimum duration 40 ms",
        ),
        (
            {"clock_rate": 1500, "ptime_ms": 1},
            "DTMF sender is invalid: 1 ms is not a whole number of samples at 1500 Hz",
        ),
    ],
)
def test_sender_rejects_bad_settings(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError) as raised:
        DtmfSender(**kwargs)
    assert str(raised.value) == message


def test_sender_rejects_bad_digit_and_duration() -> None:
    sender = DtmfSender()
    with pytest.raises(ValueError, match="DTMF digit is invalid: 'x'"):
        sender.start("x", 0)
    with pytest.raises(ValueError) as raised:
        sender.start("1", 0, duration_ms=0)
    assert str(raised.value) == "DTMF duration is invalid: 0 ms"
    assert not sender.busy


# --- the receiver (RFC 4733 §2.5.2) ------------------------------------------


def test_receiver_reports_a_clean_digit_once_at_its_end() -> None:
    receiver = DtmfReceiver()
    packets = press("5", timestamp=1000)
    reports = [receiver.feed(p, ts, m, SSRC) for p, m, ts in packets]
    assert reports[:4] == [()] * 4
    assert reports[4] == (DtmfDigit("5", 100, 1000, end_seen=True),)
    assert reports[5:] == [(), ()]  # the retransmitted end packets


def test_receiver_sounding_shows_the_digit_in_progress() -> None:
    receiver = DtmfReceiver()
    packets = press("*")
    assert receiver.sounding is None
    receiver.feed(packets[0][0], packets[0][2], packets[0][1], SSRC)
    assert receiver.sounding == "*"
    feed_all(receiver, packets[1:])
    assert receiver.sounding is None


def test_every_packet_twice() -> None:
    packets = [p for p in press("7") for _ in range(2)]
    assert feed_all(DtmfReceiver(), packets) == [DtmfDigit("7", 100, 1000)]


@pytest.mark.parametrize("seed", range(20))
def test_reordered_packets(seed: int) -> None:
    sender = DtmfSender()
    for digit in "12":
        sender.start(digit, 1000)
    packets = drain(sender)
    first, second = packets[:7], packets[7:]
    rng = random.Random(seed)
    rng.shuffle(first)
    rng.shuffle(second)
    digits = feed_all(DtmfReceiver(), first + second)
    assert [(d.digit, d.timestamp) for d in digits] == [("1", 1000), ("2", 2120)]
    # Whichever end packet came first carries the full duration.
    assert [d.duration_ms for d in digits] == [100, 100]


def test_lost_first_packet_still_reports_once() -> None:
    packets = press("3")[1:]
    assert feed_all(DtmfReceiver(), packets) == [DtmfDigit("3", 100, 1000)]


def test_only_end_packets_arrive() -> None:
    packets = press("3")[4:]  # the three E-bit packets only
    receiver = DtmfReceiver()
    reports = [receiver.feed(p, ts, m, SSRC) for p, m, ts in packets]
    assert reports == [(DtmfDigit("3", 100, 1000),), (), ()]


def test_all_end_packets_lost_reports_after_timeout() -> None:
    receiver = DtmfReceiver(timeout_ms=200)
    assert feed_all(receiver, press("8", timestamp=1000)[:4]) == []
    heard_until = 1000 + 640
    assert receiver.tick(heard_until + 1600) == ()  # exactly 200 ms: not yet
    assert receiver.tick(heard_until + 1601) == (DtmfDigit("8", 80, 1000, end_seen=False),)
    assert receiver.tick(heard_until + 9999) == ()
    # An end packet that turns up even later is not a second digit.
    assert feed_all(receiver, press("8", timestamp=1000)[4:]) == []


def test_tick_without_a_digit_does_nothing() -> None:
    assert DtmfReceiver().tick(123456) == ()


def test_all_end_packets_lost_then_next_digit() -> None:
    sender = DtmfSender()
    sender.start("4", 0)
    sender.start("4", 0)  # the same key pressed twice
    packets = drain(sender)
    lossy = packets[:4] + packets[7:]  # the first press loses its three ends
    receiver = DtmfReceiver()
    reports = [receiver.feed(p, ts, m, SSRC) for p, m, ts in lossy]
    assert reports[4] == (DtmfDigit("4", 80, 0, end_seen=False),)  # on the next marker
    assert [d for r in reports for d in r] == [
        DtmfDigit("4", 80, 0, end_seen=False),
        DtmfDigit("4", 100, 1120),
    ]
    assert receiver.tick(10**6) == ()


def test_lost_ends_and_lost_start_of_next_digit() -> None:
    sender = DtmfSender()
    sender.start("1", 0)
    sender.start("2", 0)
    packets = drain(sender)
    lossy = packets[:3] + packets[8:]
    digits = feed_all(DtmfReceiver(), lossy)
    assert [(d.digit, d.timestamp, d.end_seen) for d in digits] == [
        ("1", 0, False),
        ("2", 1120, True),
    ]


def test_same_digit_twice_is_two_digits() -> None:
    sender = DtmfSender()
    sender.start("9", 0)
    sender.start("9", 0)
    digits = feed_all(DtmfReceiver(), drain(sender))
    assert [(d.digit, d.timestamp) for d in digits] == [("9", 0), ("9", 1120)]


def test_late_packet_of_an_earlier_digit_is_dropped() -> None:
    sender = DtmfSender()
    sender.start("1", 0)
    sender.start("2", 0)
    packets = drain(sender)
    late = packets[2]  # a mid-event packet of "1", delayed past the start of "2"
    order = packets[:2] + packets[3:9] + [late] + packets[9:]
    digits = feed_all(DtmfReceiver(), order)
    assert [d.digit for d in digits] == ["1", "2"]
    assert all(d.end_seen for d in digits)


def test_digit_first_heard_after_the_next_began_is_reported_in_order() -> None:
    sender = DtmfSender()
    sender.start("1", 0)
    sender.start("2", 0)
    packets = drain(sender)
    # "1" is heard only by one packet that arrives after "2" has begun; "2"
    # is still sounding, so "1" can be reported at once without reordering.
    receiver = DtmfReceiver()
    assert feed_all(receiver, packets[7:9]) == []
    assert feed_all(receiver, [packets[1]]) == [DtmfDigit("1", 40, 0, end_seen=False)]
    assert feed_all(receiver, packets[2:7] + packets[9:]) == [DtmfDigit("2", 100, 1120)]


def test_digit_first_heard_after_the_next_was_reported_is_dropped() -> None:
    sender = DtmfSender()
    sender.start("1", 0)
    sender.start("2", 0)
    packets = drain(sender)
    # Reporting "1" now would put it after "2": too late, dropped.
    digits = feed_all(DtmfReceiver(), packets[7:] + packets[4:7])
    assert [d.digit for d in digits] == ["2"]


def test_two_events_in_one_packet() -> None:
    # §2.5.1.5: "1" ended and "2" began within one packet; "2" starts where
    # "1" ended, at 5000 + 400.
    receiver = DtmfReceiver()
    payload = bytes(TelephoneEvent(1, True, 10, 400)) + bytes(TelephoneEvent(2, False, 10, 80))
    assert receiver.feed(payload, 5000, True, SSRC) == (DtmfDigit("1", 50, 5000),)
    end = bytes(TelephoneEvent(2, True, 10, 480))
    assert receiver.feed(end, 5400, False, SSRC) == (DtmfDigit("2", 60, 5400),)
    assert receiver.feed(payload, 5000, True, SSRC) == ()  # the packet again


def test_long_event_is_one_digit() -> None:
    packets = press("0", timestamp=500, duration_ms=10_000)
    assert feed_all(DtmfReceiver(), packets) == [DtmfDigit("0", 10_000, 500)]


def test_long_event_with_segment_end_lost() -> None:
    packets = press("0", timestamp=500, duration_ms=10_000)
    closing = [p for p in packets if p[2] == 500 and TelephoneEvent.parse(p[0])[0].duration > 65000]
    lossy = [p for p in packets if p not in closing]
    assert len(lossy) < len(packets)
    assert feed_all(DtmfReceiver(), lossy) == [DtmfDigit("0", 10_000, 500)]


def test_long_event_end_retransmission_is_not_a_new_digit() -> None:
    packets = press("0", timestamp=500, duration_ms=10_000)
    receiver = DtmfReceiver()
    assert len(feed_all(receiver, packets)) == 1
    assert feed_all(receiver, packets[-3:] + packets[100:103]) == []


def test_sources_are_kept_apart() -> None:
    receiver = DtmfReceiver()
    a = press("1", timestamp=0)
    b = press("1", timestamp=0)  # same timestamp, another SSRC: another digit
    assert len(feed_all(receiver, a, ssrc=1)) == 1
    assert feed_all(receiver, b, ssrc=2) == [DtmfDigit("1", 100, 0)]


def test_non_dtmf_events_are_ignored() -> None:
    receiver = DtmfReceiver()
    payload = bytes(TelephoneEvent(32, True, 10, 800))
    assert receiver.feed(payload, 0, True, SSRC) == ()
    assert receiver.sounding is None


def test_receiver_clock_rate_scales_durations() -> None:
    sender = DtmfSender(clock_rate=16000)
    sender.start("6", 0, duration_ms=120)
    assert feed_all(DtmfReceiver(clock_rate=16000), drain(sender)) == [DtmfDigit("6", 120, 0)]


def test_receiver_rejects_malformed_payload_and_keeps_state() -> None:
    receiver = DtmfReceiver()
    packets = press("2")
    feed_all(receiver, packets[:2])
    with pytest.raises(ValueError) as raised:
        receiver.feed(b"\x02\x0a", 1000, False, SSRC)
    assert str(raised.value) == (
        "telephone-event payload is invalid: 2 bytes is not a whole number of 4-byte events"
    )
    assert receiver.sounding == "2"
    assert feed_all(receiver, packets[2:]) == [DtmfDigit("2", 100, 1000)]


def test_receiver_wraps_timestamps() -> None:
    sender = DtmfSender()
    sender.start("1", 2**32 - 400)
    sender.start("2", 0)
    digits = feed_all(DtmfReceiver(), drain(sender))
    assert [(d.digit, d.timestamp) for d in digits] == [("1", 2**32 - 400), ("2", 720)]


@given(
    st.lists(st.sampled_from("0123456789*#ABCD"), min_size=1, max_size=5),
    st.integers(0, 2**32 - 1),
    st.randoms(use_true_random=False),
    st.floats(0, 0.3),
)
def test_loss_and_duplication_never_double_report(
    keys: list[str], start: int, rng: random.Random, loss: float
) -> None:
    sender = DtmfSender()
    for key in keys:
        sender.start(key, start)
    packets = drain(sender)
    mangled = [p for p in packets if rng.random() >= loss for _ in range(rng.choice((1, 1, 2)))]
    receiver = DtmfReceiver()
    digits = feed_all(receiver, mangled)
    digits.extend(receiver.tick((packets[-1][2] + 10_000) % 2**32))
    stamps = [d.timestamp for d in digits]
    assert len(stamps) == len(set(stamps))  # never twice
    heard = {ts for _, _, ts in mangled}
    assert set(stamps) == heard  # every digit any packet of which arrived


def test_end_lost_reports_the_digit_in_progress_once() -> None:
    rx = DtmfReceiver()
    assert rx.end_lost() == ()
    assert rx.feed(bytes(TelephoneEvent(3, False, 10, 320)), 1000, True, 7) == ()
    assert rx.sounding == "3"
    (digit,) = rx.end_lost()
    assert (digit.digit, digit.duration_ms, digit.end_seen) == ("3", 40, False)
    assert rx.sounding is None and rx.end_lost() == ()
    # its late end packets are not a second digit
    assert rx.feed(bytes(TelephoneEvent(3, True, 10, 800)), 1000, False, 7) == ()
