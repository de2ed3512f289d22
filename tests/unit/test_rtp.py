"""RTP (RFC 3550 §5, Appendix A.1/A.8): exact round trips, exact errors, wrap-around,
the sender's numbering, and reception statistics against hand-computed values."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_purity import FORBIDDEN, PACKAGE, imported_modules

from deskphone.media.g711 import ulaw_encode, ulaw_encode_into
from deskphone.media.rtp import (
    HEADER_SIZE,
    Arrival,
    ReceiveStats,
    RtpExtension,
    RtpPacket,
    RtpSender,
    seq_add,
    seq_diff,
    ts_add,
    ts_diff,
)


class FakeRng:
    """Hands out the given values for getrandbits, in order."""

    def __init__(self, *bits: int, uniform: float = 0.5) -> None:
        self._bits = list(bits)
        self._uniform = uniform

    def getrandbits(self, k: int, /) -> int:
        value = self._bits.pop(0)
        assert 0 <= value < 1 << k
        return value

    def random(self) -> float:
        return self._uniform


def hx(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# -- packets: round trips ------------------------------------------------------------------

PLAIN = hx("80 00 04d2 00003e80 deadbeef  fffefdfc")
MARKER_PCMA = hx("80 88 ffff ffffffff 00000001  d5d5d5d5d5d5")
WITH_CSRCS = hx("82 00 0001 00000002 00000003  11111111 22222222  abcd")
WITH_EXTENSION = hx("90 00 0001 00000002 00000003  bede 0001 10aa0000  ff")
WITH_PADDING = hx("a0 00 0001 00000002 00000003  010203  0000000005")
EVERYTHING = hx("b1 e5 0001 00000002 00000003  44444444  1000 0002 0102030405060708"
                " cafe  000003")
EMPTY_PAYLOAD = hx("80 0d 0001 00000002 00000003")  # RFC 3389 comfort noise, say

ROUND_TRIPS = [PLAIN, MARKER_PCMA, WITH_CSRCS, WITH_EXTENSION, WITH_PADDING, EVERYTHING,
               EMPTY_PAYLOAD]


@pytest.mark.parametrize("data", ROUND_TRIPS)
def test_round_trip(data: bytes) -> None:
    packet = RtpPacket.parse(data)
    assert bytes(packet) == data
    assert RtpPacket.parse(bytearray(data)) == packet
    assert RtpPacket.parse(memoryview(data)) == packet


def test_plain_packet_fields() -> None:
    assert RtpPacket.parse(PLAIN) == RtpPacket(
        payload_type=0, sequence_number=1234, timestamp=16000, ssrc=0xDEADBEEF,
        payload=hx("fffefdfc"))


def test_marker_and_maximum_numbers() -> None:
    packet = RtpPacket.parse(MARKER_PCMA)
    assert packet.marker and packet.payload_type == 8
    assert (packet.sequence_number, packet.timestamp) == (65535, 2**32 - 1)


def test_csrcs_extension_and_padding_fields() -> None:
    assert RtpPacket.parse(WITH_CSRCS).csrc == (0x11111111, 0x22222222)
    assert RtpPacket.parse(WITH_CSRCS).payload == hx("abcd")
    ext = RtpPacket.parse(WITH_EXTENSION)
    assert ext.extension == RtpExtension(0xBEDE, hx("10aa0000"))
    assert ext.payload == b"\xff"
    padded = RtpPacket.parse(WITH_PADDING)
    assert (padded.payload, padded.padding) == (hx("010203"), 5)
    everything = RtpPacket.parse(EVERYTHING)
    assert everything == RtpPacket(
        padding=3, extension=RtpExtension(0x1000, hx("0102030405060708")), marker=True,
        payload_type=101, sequence_number=1, timestamp=2, ssrc=3, csrc=(0x44444444,),
        payload=hx("cafe"))


def test_readable_repr() -> None:
    assert repr(RtpPacket.parse(PLAIN)) == (
        "RtpPacket(pt=0, seq=1234, ts=16000, ssrc=0xdeadbeef, payload=4 bytes)")
    assert repr(RtpPacket.parse(EVERYTHING)) == (
        "RtpPacket(pt=101, seq=1, ts=2, ssrc=0x00000003, marker, csrc=[0x44444444], "
        "extension=0x1000/8 bytes, padding=3, payload=2 bytes)")


packets = st.builds(
    RtpPacket,
    padding=st.integers(0, 255),
    extension=st.none() | st.builds(RtpExtension, st.integers(0, 0xFFFF),
                                    st.binary(max_size=40).map(lambda b: b[:len(b) // 4 * 4])),
    marker=st.booleans(),
    payload_type=st.integers(0, 127),
    sequence_number=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    csrc=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15).map(tuple),
    payload=st.binary(max_size=200),
)


@given(packets)
def test_any_packet_round_trips(packet: RtpPacket) -> None:
    data = bytes(packet)
    assert RtpPacket.parse(data) == packet
    assert bytes(RtpPacket.parse(data)) == data


@given(st.binary(max_size=80))
def test_garbage_parses_or_raises_value_error(data: bytes) -> None:
    try:
        RtpPacket.parse(data)
    except ValueError as exc:
        assert str(exc).startswith("RTP packet is invalid: ")


# -- packets: malformed ------------------------------------------------------------------------

@pytest.mark.parametrize(("data", "why"), [
    (b"", "0 bytes is shorter than the 12-byte header"),
    (hx("80 00 0001 00000002 000000"), "11 bytes is shorter than the 12-byte header"),
    (hx("40 00 0001 00000002 00000003"), "version is 1, not 2"),
    (hx("c0 00 0001 00000002 00000003"), "version is 3, not 2"),
    (hx("8f 00 0001 00000002 00000003 11111111 22222222"),
     "CSRC count 15 needs 72 bytes, packet has 20"),
    (hx("90 00 0001 00000002 00000003 bede"), "extension header runs past the end"),
    (hx("90 00 0001 00000002 00000003 bede 0002 10aa0000"),
     "extension of 2 words runs past the end"),
    (hx("a0 00 0001 00000002 00000003 000009"),
     "padding length 9 exceeds the 3 bytes after the header"),
    (hx("a0 00 0001 00000002 000000ef"),
     "padding length 239 exceeds the 0 bytes after the header"),
    (hx("a0 00 0001 00000002 00000003 ff00"), "padding length is 0"),
])
def test_malformed_packets(data: bytes, why: str) -> None:
    with pytest.raises(ValueError) as caught:
        RtpPacket.parse(data)
    assert str(caught.value) == f"RTP packet is invalid: {why}"


@pytest.mark.parametrize(("fields", "why"), [
    ({"payload_type": 128}, "payload type 128 is not 0..127"),
    ({"sequence_number": 65536}, "sequence number 65536 is not 0..65535"),
    ({"timestamp": -1}, "timestamp -1 is not 0..2^32-1"),
    ({"ssrc": 2**32}, "SSRC 4294967296 is not 0..2^32-1"),
    ({"padding": 256}, "padding 256 is not 0..255"),
    ({"csrc": tuple(range(16))},
     "CSRC list (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15) "
     "is not up to 15 32-bit values"),
])
def test_building_an_impossible_packet_fails(fields: dict[str, object], why: str) -> None:
    base: dict[str, object] = {"payload_type": 0, "sequence_number": 0, "timestamp": 0,
                               "ssrc": 0}
    with pytest.raises(ValueError) as caught:
        RtpPacket(**(base | fields))  # type: ignore[arg-type]
    assert str(caught.value) == f"RTP packet is invalid: {why}"


def test_extension_data_must_be_whole_words() -> None:
    with pytest.raises(ValueError) as caught:
        RtpExtension(0xBEDE, b"abc")
    assert str(caught.value) == (
        "RTP packet is invalid: extension data of 3 bytes is not whole 32-bit words")


# -- wrap-around -------------------------------------------------------------------------------

def test_sequence_wrap_around() -> None:
    assert seq_add(65535, 1) == 0
    assert seq_add(0, -1) == 65535
    assert seq_diff(0, 65535) == 1
    assert seq_diff(65535, 0) == -1
    assert seq_diff(5, 5) == 0
    assert seq_diff(100, 65500) == 136
    assert seq_diff(32767, 0) == 32767
    assert seq_diff(32768, 0) == -32768


def test_timestamp_wrap_around() -> None:
    assert ts_add(2**32 - 1, 160) == 159
    assert ts_diff(159, 2**32 - 1) == 160
    assert ts_diff(2**32 - 1, 159) == -160
    assert ts_diff(2**31 - 1, 0) == 2**31 - 1
    assert ts_diff(2**31, 0) == -(2**31)


@given(st.integers(0, 0xFFFF), st.integers(-32768, 32767))
def test_seq_diff_inverts_seq_add(seq: int, n: int) -> None:
    assert seq_diff(seq_add(seq, n), seq) == n


@given(st.integers(0, 0xFFFFFFFF), st.integers(-(2**31), 2**31 - 1))
def test_ts_diff_inverts_ts_add(ts: int, n: int) -> None:
    assert ts_diff(ts_add(ts, n), ts) == n


# -- the sender --------------------------------------------------------------------------------

def test_sender_starts_from_the_injected_rng() -> None:
    sender = RtpSender(0, random.Random(7))
    expected = random.Random(7)
    assert sender.ssrc == expected.getrandbits(32)
    assert sender.sequence_number == expected.getrandbits(16)
    assert sender.timestamp == expected.getrandbits(32)
    assert RtpSender(0, random.Random(7)).ssrc == sender.ssrc


def test_sender_numbers_wrap_and_marks_the_first_packet() -> None:
    sender = RtpSender(0, FakeRng(0x1234ABCD, 65534, 2**32 - 160))
    sent = [RtpPacket.parse(sender.packet(b"\xff" * 160, 160)) for _ in range(3)]
    assert [p.sequence_number for p in sent] == [65534, 65535, 0]
    assert [p.timestamp for p in sent] == [2**32 - 160, 0, 160]
    assert [p.marker for p in sent] == [True, False, False]
    assert {p.ssrc for p in sent} == {0x1234ABCD}
    assert {p.payload_type for p in sent} == {0}
    assert (sender.sequence_number, sender.timestamp) == (1, 320)
    assert (sender.packets_sent, sender.octets_sent) == (3, 480)


def test_talk_spurt_after_silence_suppression_or_hold() -> None:
    sender = RtpSender(8, FakeRng(1, 100, 1000))
    first = RtpPacket.parse(sender.packet(b"\xd5" * 160, 160))
    sender.skip(800)  # 100 ms of silence not sent
    resumed = RtpPacket.parse(sender.packet(b"\xd5" * 160, 160))
    after = RtpPacket.parse(sender.packet(b"\xd5" * 160, 160))
    explicit = RtpPacket.parse(sender.packet(b"\xd5" * 160, 160, marker=True))
    assert (first.marker, resumed.marker, after.marker, explicit.marker) == (
        True, True, False, True)
    assert [p.timestamp for p in (first, resumed, after)] == [1000, 1960, 2120]
    assert [p.sequence_number for p in (first, resumed, after)] == [100, 101, 102]


def test_event_packets_share_the_sequence_but_carry_their_own_timestamp() -> None:
    """RFC 4733 §2.3.1: telephone-events keep the event's start time across its packets."""
    sender = RtpSender(0, FakeRng(9, 10, 5000))
    sender.packet(b"\xff" * 160, 160)
    start = sender.timestamp
    events = [RtpPacket.parse(sender.packet(b"\x05\x0a\x00\xa0", 160, marker=i == 0,
                                            payload_type=101, timestamp=start))
              for i in range(3)]
    assert [p.timestamp for p in events] == [start] * 3
    assert [p.payload_type for p in events] == [101] * 3
    assert [p.marker for p in events] == [True, False, False]
    assert [p.sequence_number for p in events] == [11, 12, 13]
    voice = RtpPacket.parse(sender.packet(b"\xff" * 160, 160))
    assert (voice.payload_type, voice.timestamp, voice.marker) == (0, 5000 + 4 * 160, False)


def test_pack_into_and_header_into_write_the_same_bytes() -> None:
    pcm = (np.sin(np.arange(160) / 5) * 10000).astype(np.int16)
    a, b, c = (RtpSender(0, FakeRng(7, 8, 9)) for _ in range(3))
    expected = [a.packet(ulaw_encode(pcm), 160) for _ in range(2)]

    buf = bytearray(HEADER_SIZE + 160)
    assert [bytes(buf[:b.pack_into(buf, ulaw_encode(pcm), 160)]) for _ in range(2)] == expected

    # the zero-copy path: G.711 written straight into the packet's payload
    packet = bytearray(HEADER_SIZE + 160)
    payload = np.frombuffer(packet, np.uint8, offset=HEADER_SIZE)
    sent = []
    for _ in range(2):
        ulaw_encode_into(pcm, payload)
        assert c.header_into(packet, 160, 160) == 172
        sent.append(bytes(packet))
    assert sent == expected


def test_sender_repr() -> None:
    sender = RtpSender(0, FakeRng(0xAB, 1, 2))
    assert repr(sender) == "RtpSender(pt=0, ssrc=0x000000ab, next seq=1, next ts=2, sent=0)"


# -- reception statistics ----------------------------------------------------------------------

def rtp(seq: int, ts: int = 0, ssrc: int = 0x5EED) -> RtpPacket:
    return RtpPacket(payload_type=0, sequence_number=seq, timestamp=ts, ssrc=ssrc)


def feed(stats: ReceiveStats, *seqs: int, ssrc: int = 0x5EED) -> list[Arrival]:
    """Packets 20 ms apart, arriving exactly on time (no jitter)."""
    return [stats.update(rtp(s, 160 * s % 2**32, ssrc), 160 * s) for s in seqs]


def test_probation_needs_two_in_a_row() -> None:
    stats = ReceiveStats()
    assert feed(stats, 100) == [Arrival.NEW_SOURCE]
    assert not stats.valid and stats.expected == 0 and stats.received == 0
    assert feed(stats, 101) == [Arrival.IN_ORDER]
    assert stats.valid
    # A.1: the probation packets are not counted; the base is the packet that validated
    assert (stats.base_seq, stats.extended_max_seq, stats.expected, stats.received,
            stats.lost) == (101, 101, 1, 1, 0)


def test_probation_restarts_when_out_of_sequence() -> None:
    stats = ReceiveStats()
    assert feed(stats, 100, 105, 107, 108) == [
        Arrival.NEW_SOURCE, Arrival.PROBATION, Arrival.PROBATION, Arrival.IN_ORDER]
    assert (stats.base_seq, stats.received) == (108, 1)


def test_probation_across_the_wrap() -> None:
    stats = ReceiveStats()
    assert feed(stats, 65535, 0) == [Arrival.NEW_SOURCE, Arrival.IN_ORDER]
    assert stats.valid and stats.extended_max_seq == 0


def test_loss_and_fraction_lost() -> None:
    stats = ReceiveStats()
    feed(stats, 100, 101, 102, 104, 105)  # 103 lost
    assert (stats.extended_max_seq, stats.expected, stats.received, stats.lost) == (
        105, 5, 4, 1)
    assert stats.fraction_lost_since_last_report() == 51  # 1/5 * 256, truncated
    feed(stats, 106, 107)
    assert stats.fraction_lost_since_last_report() == 0  # none lost in this interval
    feed(stats, 110, 111)  # 108, 109 lost: 2 of 4
    assert stats.fraction_lost_since_last_report() == 128
    assert stats.lost == 3
    assert stats.fraction_lost_since_last_report() == 0  # nothing expected since


def test_reordering_is_late_not_lost() -> None:
    stats = ReceiveStats()
    assert feed(stats, 100, 101, 102, 104, 103, 105) == [
        Arrival.NEW_SOURCE, Arrival.IN_ORDER, Arrival.IN_ORDER, Arrival.IN_ORDER,
        Arrival.LATE, Arrival.IN_ORDER]
    assert (stats.lost, stats.late, stats.duplicates) == (0, 1, 0)
    assert stats.fraction_lost_since_last_report() == 0


def test_duplicates_count_as_received_so_loss_goes_negative() -> None:
    stats = ReceiveStats()
    assert feed(stats, 100, 101, 102, 102, 103, 102) == [
        Arrival.NEW_SOURCE, Arrival.IN_ORDER, Arrival.IN_ORDER, Arrival.DUPLICATE,
        Arrival.IN_ORDER, Arrival.DUPLICATE]
    assert (stats.expected, stats.received, stats.lost, stats.duplicates) == (3, 5, -2, 2)
    assert stats.fraction_lost_since_last_report() == 0
    assert [a.counted for a in (Arrival.DUPLICATE, Arrival.LATE, Arrival.PROBATION,
                                Arrival.JUMP)] == [True, True, False, False]


def test_late_after_a_late_is_a_duplicate() -> None:
    stats = ReceiveStats()
    assert feed(stats, 1, 2, 5, 3, 3, 4) == [
        Arrival.NEW_SOURCE, Arrival.IN_ORDER, Arrival.IN_ORDER, Arrival.LATE,
        Arrival.DUPLICATE, Arrival.LATE]
    assert (stats.late, stats.duplicates, stats.lost) == (2, 1, -1)


def test_sequence_cycles_at_the_wrap() -> None:
    stats = ReceiveStats()
    feed(stats, 65533, 65534, 65535, 0, 2)  # 1 lost
    assert stats.cycles == 65536
    assert stats.extended_max_seq == 65538
    assert (stats.expected, stats.received, stats.lost) == (5, 4, 1)
    assert feed(stats, 65535) == [Arrival.DUPLICATE]  # behind the wrap, still remembered
    assert feed(stats, 1) == [Arrival.LATE]
    assert stats.lost == -1


def test_a_very_large_jump_needs_a_second_packet() -> None:
    stats = ReceiveStats()
    feed(stats, 100, 101, 102)
    assert feed(stats, 5000) == [Arrival.JUMP]
    assert stats.extended_max_seq == 102 and stats.received == 2  # ignored
    assert feed(stats, 103) == [Arrival.IN_ORDER]  # a stray: carry on
    assert feed(stats, 9000, 9001) == [Arrival.JUMP, Arrival.RESTART]
    assert (stats.base_seq, stats.extended_max_seq, stats.received, stats.lost) == (
        9001, 9001, 1, 0)


def test_too_old_is_a_jump() -> None:
    stats = ReceiveStats()
    feed(stats, 300, 301)
    assert feed(stats, 301 - 100) == [Arrival.JUMP]  # beyond MAX_MISORDER
    assert feed(stats, 301 - 99) == [Arrival.LATE]


def test_ssrc_change_resets_and_is_reported() -> None:
    stats = ReceiveStats()
    feed(stats, 100, 101, 102, 104)
    assert feed(stats, 7, ssrc=0xB0B) == [Arrival.NEW_SOURCE]
    assert (stats.ssrc, stats.ssrc_changes, stats.valid, stats.received, stats.lost) == (
        0xB0B, 1, False, 0, 0)
    assert feed(stats, 8, ssrc=0xB0B) == [Arrival.IN_ORDER]
    assert (stats.base_seq, stats.received) == (8, 1)


def test_interarrival_jitter() -> None:
    """RFC 3550 §6.4.1: J += (|D| - J) / 16, by hand."""
    stats = ReceiveStats(clock_rate=8000)
    arrivals = [(0, 1000), (160, 1160), (320, 1336), (480, 1480), (640, 1640)]
    jitters = []
    for i, (ts, arrival) in enumerate(arrivals):
        stats.update(rtp(10 + i, ts), arrival)
        jitters.append(stats.jitter)
    # D: -, 0, +16, -16, 0
    assert jitters == [0.0, 0.0, 1.0, 1.9375, 1.81640625]
    assert stats.jitter_ms == pytest.approx(1.81640625 / 8)


def test_jitter_across_the_timestamp_wrap() -> None:
    stats = ReceiveStats()
    for i, ts in enumerate([2**32 - 320, 2**32 - 160, 0, 160]):
        stats.update(rtp(i, ts), 50_000.0 + 160 * i)
    assert stats.jitter == 0.0
    stats.update(rtp(4, 320), 50_000.0 + 160 * 4 + 32)
    assert stats.jitter == 2.0


def test_stats_repr() -> None:
    stats = ReceiveStats()
    assert repr(stats) == (
        "ReceiveStats(ssrc=none, valid=False, highest=0, received=0, lost=0, "
        "duplicates=0, late=0, jitter=0.0)")


@pytest.mark.parametrize("module", ["g711", "rtp", "rtcp"])
def test_media_protocol_modules_are_pure(module: str) -> None:
    """No clock, socket, randomness or threads: ``now`` and an ``Rng`` are passed in."""
    path: Path = PACKAGE / "media" / f"{module}.py"
    assert imported_modules(path) & FORBIDDEN == set()


class _GeneralOnly(ReceiveStats):
    """ReceiveStats without its fast path for the usual packet."""

    update_fields = ReceiveStats._update_fields


def test_the_fast_path_agrees_with_the_general_one() -> None:
    """Packets in order, lost, late, duplicated, across the sequence wrap, a jump and an
    SSRC change: the same results and the same state, to the last bit of the jitter."""
    rng = random.Random(5)
    fast, general = ReceiveStats(), _GeneralOnly()
    seq, ts, arrival, ssrc = 65000, 4_294_960_000, 0.0, 0x5EED
    for k in range(3000):
        if k == 1500:
            ssrc = 0xBEEF
        if k == 2200:
            seq += 5000  # a jump, then a restart on the next
        roll = rng.random()
        step = 0 if roll < 0.03 else -2 if roll < 0.06 else 2 if roll < 0.1 else 1
        seq, ts = (seq + step) & 0xFFFF, (ts + 160 * step) & 0xFFFFFFFF
        arrival += 160 + rng.uniform(-40.0, 40.0)
        assert fast.update_fields(seq, ts, ssrc, arrival) is \
            general.update_fields(seq, ts, ssrc, arrival)
        assert repr(fast) == repr(general)
        assert all(getattr(fast, a) == getattr(general, a) for a in ReceiveStats.__slots__)
