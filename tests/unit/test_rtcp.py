"""RTCP (RFC 3550 §6): exact round trips, exact errors, NTP/RTT arithmetic, the report
schedule and contents, and rtcp-mux demultiplexing (RFC 5761 §4)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deskphone.media.rtcp import (
    NTP_EPOCH_OFFSET,
    RtcpByePacket,
    RtcpPacket,
    RtcpReportBlock,
    RtcpRrPacket,
    RtcpSdesChunk,
    RtcpSdesItem,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    RtcpState,
    RtcpUnknownPacket,
    is_rtcp,
    ntp_compact,
    ntp_from_unix,
    ntp_to_unix,
    parse_compound,
    serialize_compound,
)
from deskphone.media.rtp import Arrival, ReceiveStats, RtpPacket, RtpSender


class FakeRng:
    def __init__(self, uniform: float = 0.5) -> None:
        self.uniform = uniform

    def random(self) -> float:
        return self.uniform

    def getrandbits(self, k: int, /) -> int:
        return 0x1234 & ((1 << k) - 1)


def hx(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


BLOCK = hx("55667788 40000005 00010064 00000020 b7052000 00054000")
RR = hx("81c9 0007 11223344") + BLOCK
SR = hx("81c8 000c 11223344 e7a12b3c80000000 00003e80 00000032 00001f40") + BLOCK
SR_NO_BLOCKS = hx("80c8 0006 11223344 e7a12b3c80000000 00003e80 00000032 00001f40")
RR_EMPTY = hx("80c9 0001 11223344")
RR_WITH_EXTENSION = hx("80c9 0002 11223344 abcdef01")  # profile-specific words
SDES = hx("81ca 0004 11223344 0109") + b"user@host" + hx("00")
SDES_FOUR_NULLS = hx("81ca 0005 11223344 010a") + b"a@10.0.0.1" + hx("00000000")
SDES_TWO_CHUNKS = hx("82ca 0006 11223344 0103616263 02016e 00000000 55667788 00000000")
BYE = hx("81cb 0001 11223344")
BYE_REASON = hx("81cb 0003 11223344 04") + b"gone" + hx("000000")
APP = hx("81cc 0002 11223344") + b"name"

ROUND_TRIPS = [RR, SR, SR_NO_BLOCKS, RR_EMPTY, RR_WITH_EXTENSION, SDES, SDES_FOUR_NULLS,
               SDES_TWO_CHUNKS, BYE, BYE_REASON, APP, SR + SDES, RR + SDES + BYE_REASON,
               SR + SDES + APP + BYE]


@pytest.mark.parametrize("data", ROUND_TRIPS)
def test_compound_round_trip(data: bytes) -> None:
    packets = parse_compound(data)
    assert serialize_compound(packets) == data
    assert b"".join(map(bytes, packets)) == data
    assert parse_compound(memoryview(data)) == packets


def test_report_block_fields() -> None:
    rr = RtcpRrPacket.parse(RR)
    assert rr == RtcpRrPacket(0x11223344, (RtcpReportBlock(
        ssrc=0x55667788, fraction_lost=0x40, packets_lost=5, highest_sequence=0x10064,
        jitter=32, lsr=0xB7052000, dlsr=0x54000),))


def test_sender_report_fields() -> None:
    sr = RtcpSrPacket.parse(SR)
    assert sr.ssrc == 0x11223344
    assert sr.sender_info == RtcpSenderInfo(0xE7A12B3C80000000, 16000, 50, 8000)
    assert sr.reports == RtcpRrPacket.parse(RR).reports
    assert RtcpRrPacket.parse(RR_WITH_EXTENSION).extension == hx("abcdef01")


def test_sdes_and_bye_fields() -> None:
    sdes = RtcpSdesPacket.parse(SDES)
    assert sdes == RtcpSdesPacket.cname(0x11223344, "user@host")
    assert sdes.chunks[0].cname == "user@host"
    two = RtcpSdesPacket.parse(SDES_TWO_CHUNKS)
    assert two.chunks == (
        RtcpSdesChunk(0x11223344, (RtcpSdesItem(1, b"abc"), RtcpSdesItem(2, b"n"))),
        RtcpSdesChunk(0x55667788, ()))
    assert two.chunks[1].cname is None
    assert RtcpByePacket.parse(BYE) == RtcpByePacket((0x11223344,))
    assert RtcpByePacket.parse(BYE_REASON) == RtcpByePacket((0x11223344,), b"gone")
    assert RtcpUnknownPacket.parse(APP) == RtcpUnknownPacket(204, 1, hx("11223344") + b"name")


def test_negative_cumulative_loss_is_signed_24_bit() -> None:
    block = RtcpReportBlock(1, 0, -2, 3, 4, 5, 6)
    assert bytes(block)[4:8] == hx("00fffffe")
    assert RtcpReportBlock.parse(bytes(block)) == block
    extremes = [RtcpReportBlock(1, 255, n, 0, 0, 0, 0) for n in (-0x800000, 0x7FFFFF)]
    assert [RtcpReportBlock.parse(bytes(b)) for b in extremes] == extremes


def test_padding_is_checked_and_stripped() -> None:
    padded = hx("a0c9 0002 11223344 00000004")
    assert parse_compound(padded) == [RtcpRrPacket(0x11223344)]
    assert bytes(parse_compound(padded)[0]) == RR_EMPTY


def test_readable_repr() -> None:
    assert repr(RtcpByePacket.parse(BYE_REASON)) == (
        "RtcpByePacket(sources=(287454020,), reason=b'gone')")


# -- hypothesis round trips and the parse-or-ValueError invariant --------------------------

u32 = st.integers(0, 0xFFFFFFFF)
words = st.binary(max_size=16).map(lambda b: b[:len(b) // 4 * 4])
blocks = st.builds(RtcpReportBlock, u32, st.integers(0, 255),
                   st.integers(-0x800000, 0x7FFFFF), u32, u32, u32, u32)
block_lists = st.lists(blocks, max_size=3).map(tuple)
any_packet: st.SearchStrategy[RtcpPacket] = st.one_of(
    st.builds(RtcpSrPacket, u32, st.builds(RtcpSenderInfo, st.integers(0, 2**64 - 1), u32, u32,
                                           u32), block_lists, words),
    st.builds(RtcpRrPacket, u32, block_lists, words),
    st.builds(RtcpSdesPacket, st.lists(st.builds(
        RtcpSdesChunk, u32, st.lists(st.builds(RtcpSdesItem, st.integers(1, 255),
                                               st.binary(max_size=20)),
                                     max_size=3).map(tuple)), max_size=3).map(tuple)),
    st.builds(RtcpByePacket, st.lists(u32, max_size=4).map(tuple), st.binary(max_size=20)),
    st.builds(RtcpUnknownPacket, st.integers(204, 210), st.integers(0, 31), words),
)


@given(st.lists(any_packet, min_size=1, max_size=4))
def test_any_compound_round_trips(packets: list[RtcpPacket]) -> None:
    data = serialize_compound(packets)
    assert parse_compound(data) == packets
    assert serialize_compound(parse_compound(data)) == data


@given(st.binary(max_size=120))
def test_garbage_parses_or_raises_value_error(data: bytes) -> None:
    try:
        parse_compound(data)
    except ValueError as exc:
        assert str(exc).startswith("RTCP packet is invalid: ")


# -- malformed ------------------------------------------------------------------------------

@pytest.mark.parametrize(("data", "why"), [
    (b"", "empty"),
    (hx("81c900"), "3 bytes at offset 0 is shorter than the 4-byte header"),
    (RR_EMPTY + hx("8100"), "2 bytes at offset 8 is shorter than the 4-byte header"),
    (hx("41c9 0001 11223344"), "version is 1, not 2"),
    (hx("81c9 0007 11223344 55667788"),
     "length of 8 words at offset 0 runs past the end of 12 bytes"),
    (RR_EMPTY + hx("81c9 0007 11223344"),
     "length of 8 words at offset 8 runs past the end of 16 bytes"),
    (hx("82c8 000c") + SR[4:], "SR with 2 report blocks needs 76 bytes, has 52"),
    (hx("80c8 0003 11223344 e7a12b3c80000000"),
     "SR with 0 report blocks needs 28 bytes, has 16"),
    (hx("81c9 0001 11223344"), "RR with 1 report blocks needs 32 bytes, has 8"),
    (hx("81c9 0000"), "RR with 1 report blocks needs 32 bytes, has 4"),
    (hx("83cb 0001 11223344"), "BYE with 3 sources needs 16 bytes, has 8"),
    (hx("81cb 0002 11223344 09414243"), "BYE reason runs past the end"),
    (hx("81ca 0002 11223344 01094142"), "SDES item runs past the end"),
    (hx("81ca 0002 11223344 01024142"), "SDES chunk has no end"),
    (hx("82ca 0002 11223344 01014100"), "SDES chunk runs past the end"),
    (hx("a0c9 0001 11223300"), "padding length is 0"),
    (hx("a0c9 0001 112233ff"), "padding length 255 exceeds the 4-byte body"),
])
def test_malformed_compound(data: bytes, why: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_compound(data)
    assert str(caught.value) == f"RTCP packet is invalid: {why}"


def test_single_packet_parse_checks_type_and_length() -> None:
    with pytest.raises(ValueError) as caught:
        RtcpSrPacket.parse(RR)
    assert str(caught.value) == "RTCP packet is invalid: packet type 201 is not SR (200)"
    with pytest.raises(ValueError) as caught:
        RtcpRrPacket.parse(RR + SDES)
    assert str(caught.value) == "RTCP packet is invalid: 20 bytes follow the packet"


@pytest.mark.parametrize(("build", "why"), [
    (lambda: RtcpReportBlock(1, 256, 0, 0, 0, 0, 0), "fraction lost 256 is not 0..255"),
    (lambda: RtcpReportBlock(1, 0, 0x800000, 0, 0, 0, 0),
     "packets lost 8388608 is not a signed 24-bit number"),
    (lambda: RtcpReportBlock(1, 0, 0, 0, -1, 0, 0), "jitter -1 is not 0..2^32-1"),
    (lambda: RtcpRrPacket(1, (), b"abc"), "RR extension of 3 bytes is not whole 32-bit words"),
    (lambda: RtcpByePacket(tuple(range(32))), "BYE with 32 entries exceeds the 5-bit count"),
    (lambda: RtcpSdesItem(0, b"x"), "SDES item type 0 is not 1..255"),
    (lambda: RtcpSdesItem(1, bytes(256)), "SDES item of 256 bytes exceeds 255"),
])
def test_building_an_impossible_packet_fails(build: object, why: str) -> None:
    with pytest.raises(ValueError) as caught:
        build()  # type: ignore[operator]
    assert str(caught.value) == f"RTCP packet is invalid: {why}"


# -- NTP time and round-trip time --------------------------------------------------------------

def test_ntp_timestamps() -> None:
    assert ntp_from_unix(0.0) == NTP_EPOCH_OFFSET << 32
    assert ntp_from_unix(1.5) == ((NTP_EPOCH_OFFSET + 1) << 32) | 0x80000000
    assert ntp_to_unix(ntp_from_unix(1_700_000_000.25)) == 1_700_000_000.25
    assert ntp_compact(0xAAAABBBBCCCCDDDD) == 0xBBBBCCCC
    assert ntp_compact(ntp_from_unix(1.5)) == ((NTP_EPOCH_OFFSET + 1) & 0xFFFF) << 16 | 0x8000


# -- demultiplexing on one port ----------------------------------------------------------------

def test_is_rtcp_on_a_muxed_port() -> None:
    rtp_packets = [bytes(RtpPacket(payload_type=pt, marker=m, sequence_number=1, timestamp=2,
                                   ssrc=3)) for pt in (0, 8, 13, 101, 127) for m in (False, True)]
    assert [is_rtcp(p) for p in rtp_packets] == [False] * 10
    assert all(is_rtcp(p) for p in (SR, RR, SDES, BYE, APP, hx("80cf 0000")))
    assert is_rtcp(hx("80c0")) and is_rtcp(hx("80df")) and not is_rtcp(hx("80e0"))
    assert not is_rtcp(b"") and not is_rtcp(b"\x80")


# -- the RTCP session --------------------------------------------------------------------------

T0 = 1_700_000_000.0
PEER = 0x5EED


def valid_stats(*seqs: int) -> ReceiveStats:
    stats = ReceiveStats()
    for seq in seqs:
        stats.update(RtpPacket(payload_type=0, sequence_number=seq, timestamp=160 * seq,
                               ssrc=PEER), 160 * seq)
    return stats


def test_report_interval_is_randomised_around_five_seconds() -> None:
    low = RtcpState(0xAB, "me@host", FakeRng(0.0), T0)
    assert low.get_timer() == T0 + 1.25  # first report: half the minimum (§6.2), * 0.5
    low.build_report(T0 + 1.25, packets_sent=0, octets_sent=0, rtp_timestamp=0)
    assert low.get_timer() == T0 + 1.25 + 2.5
    high = RtcpState(0xAB, "me@host", FakeRng(0.75), T0)
    assert high.get_timer() == T0 + 2.5 * 1.25
    high.build_report(T0 + 10, packets_sent=0, octets_sent=0, rtp_timestamp=0)
    assert high.get_timer() == T0 + 10 + 5 * 1.25
    assert not high.report_due(T0 + 16.24) and high.report_due(T0 + 16.25)
    rng = random.Random(3)
    state = RtcpState(1, "x", rng, 0.0)
    gaps = []
    for _ in range(200):
        now = state.get_timer()
        state.build_report(now, packets_sent=0, octets_sent=0, rtp_timestamp=0)
        gaps.append(state.get_timer() - now)
    assert 2.5 <= min(gaps) < 2.7 and 7.3 < max(gaps) <= 7.5


def test_sender_report_with_a_block_and_our_cname() -> None:
    state = RtcpState(0xAB, "me@host", FakeRng(), T0)
    stats = valid_stats(1, 2, 3, 5)
    report = parse_compound(state.build_report(
        T0 + 2, packets_sent=100, octets_sent=16000, rtp_timestamp=123456, stats=stats))
    assert report == [
        RtcpSrPacket(0xAB, RtcpSenderInfo(ntp_from_unix(T0 + 2), 123456, 100, 16000), (
            RtcpReportBlock(ssrc=PEER, fraction_lost=64, packets_lost=1, highest_sequence=5,
                            jitter=0, lsr=0, dlsr=0),)),
        RtcpSdesPacket.cname(0xAB, "me@host"),
    ]
    assert state.reports_sent == 1


def test_receiver_report_when_we_send_nothing_and_no_block_before_probation() -> None:
    state = RtcpState(0xAB, "me@host", FakeRng(), T0)
    stats = valid_stats(7)  # still on probation
    assert parse_compound(state.build_report(
        T0 + 2, packets_sent=0, octets_sent=0, rtp_timestamp=0, stats=stats)) == [
        RtcpRrPacket(0xAB), RtcpSdesPacket.cname(0xAB, "me@host")]


def test_sr_while_we_sent_in_the_last_two_intervals() -> None:
    """RFC 3550 §6.4: SR if we sent since the last report or the one before it."""
    state = RtcpState(0xAB, "me@host", FakeRng(), T0)
    kinds = []
    for i, sent in enumerate([50, 300, 300, 300, 301]):
        packets = parse_compound(state.build_report(
            T0 + 5 * i, packets_sent=sent, octets_sent=160 * sent, rtp_timestamp=0))
        kinds.append(type(packets[0]).__name__)
    assert kinds == ["RtcpSrPacket", "RtcpSrPacket", "RtcpSrPacket", "RtcpRrPacket",
                     "RtcpSrPacket"]


def test_negative_loss_and_interval_fraction_in_blocks() -> None:
    state = RtcpState(0xAB, "me", FakeRng(), T0)
    stats = valid_stats(1, 2, 3, 3, 3)
    first = parse_compound(state.build_report(T0 + 1, packets_sent=0, octets_sent=0,
                                              rtp_timestamp=0, stats=stats))[0]
    assert isinstance(first, RtcpRrPacket)
    assert (first.reports[0].packets_lost, first.reports[0].fraction_lost) == (-2, 0)
    for seq in (6, 7):  # 4, 5 lost: 2 of 4 expected in this interval
        stats.update(RtpPacket(payload_type=0, sequence_number=seq, timestamp=160 * seq,
                               ssrc=PEER), 160 * seq)
    second = parse_compound(state.build_report(T0 + 6, packets_sent=0, octets_sent=0,
                                               rtp_timestamp=0, stats=stats))[0]
    assert isinstance(second, RtcpRrPacket)
    assert (second.reports[0].packets_lost, second.reports[0].fraction_lost) == (0, 128)


def test_a_digits_packets_are_received_packets_not_losses_nor_jitter() -> None:
    """RFC 4733 events share the audio's SSRC and sequence numbers (a sender mostly sends
    them instead of its audio): RFC 3550 A.1 counts them as received, so the audio either
    side of a digit is no loss; they have no say in the jitter, for every packet of an
    event carries the event's start timestamp."""
    stats = valid_stats(*range(1, 11))  # audio 1..10, on time
    for seq in range(11, 19):  # the digit: 8 event packets, timestamp 160 * 11
        assert stats.update_sequence(seq, PEER) is Arrival.IN_ORDER
    for seq in range(19, 25):  # the audio goes on, its timestamps having run on
        stats.update(RtpPacket(payload_type=0, sequence_number=seq, timestamp=160 * seq,
                               ssrc=PEER), 160 * seq)
    # another source's events are not the stream's, nor do they start or switch it
    assert stats.update_sequence(25, 0x999) is None
    assert (stats.ssrc, stats.ssrc_changes, stats.extended_max_seq) == (PEER, 0, 24)
    state = RtcpState(0xAB, "me", FakeRng(), T0)
    rr = parse_compound(state.build_report(T0 + 1, packets_sent=0, octets_sent=0,
                                           rtp_timestamp=0, stats=stats))[0]
    assert isinstance(rr, RtcpRrPacket)
    block = rr.reports[0]
    assert (block.packets_lost, block.fraction_lost, block.highest_sequence,
            block.jitter) == (0, 0, 24, 0)
    assert stats.update_sequence(24, PEER) is Arrival.DUPLICATE


def test_lsr_and_dlsr_echo_the_peers_last_sender_report() -> None:
    state = RtcpState(0xAB, "me", FakeRng(), T0)
    peer_ntp = 0xE7A12B3C80000000
    state.receive([RtcpSrPacket(PEER, RtcpSenderInfo(peer_ntp, 0, 10, 1600)),
                   RtcpSdesPacket.cname(PEER, "peer")], arrival=T0 + 1)
    report = parse_compound(state.build_report(
        T0 + 3.5, packets_sent=0, octets_sent=0, rtp_timestamp=0,
        stats=valid_stats(1, 2)))[0]
    assert isinstance(report, RtcpRrPacket)
    assert report.reports[0].lsr == 0x2B3C8000
    assert report.reports[0].dlsr == int(2.5 * 65536)
    # an SR from some other source does not count as the one we receive
    state.receive([RtcpSrPacket(0x999, RtcpSenderInfo(1 << 40, 0, 0, 0))], arrival=T0 + 4)
    again = parse_compound(state.build_report(T0 + 5, packets_sent=0, octets_sent=0,
                                              rtp_timestamp=0, stats=valid_stats(1, 2)))[0]
    assert isinstance(again, RtcpRrPacket)
    assert (again.reports[0].lsr, again.reports[0].dlsr) == (0, 0)


def test_round_trip_time_from_the_peers_report_on_us() -> None:
    sender = RtpSender(0, random.Random(1))
    state = RtcpState(sender.ssrc, "me", random.Random(2), T0)
    sr = parse_compound(state.build_report(T0, packets_sent=10, octets_sent=1600,
                                           rtp_timestamp=sender.timestamp))[0]
    assert isinstance(sr, RtcpSrPacket)
    lsr = ntp_compact(sr.sender_info.ntp_timestamp)
    # the peer held our SR for 0.5 s; its RR reaches us 0.625 s after we sent: RTT 0.125 s
    block = RtcpReportBlock(sender.ssrc, 0, 0, 0, 0, lsr, 32768)
    assert state.rtt is None
    state.receive(parse_compound(bytes(RtcpRrPacket(PEER, (block,)))), arrival=T0 + 0.625)
    assert state.rtt == 0.125
    assert state.remote_report == block
    # a block from a peer that has had no SR from us yet leaves the RTT alone
    state.receive([RtcpRrPacket(PEER, (RtcpReportBlock(sender.ssrc, 0, 0, 0, 0, 0, 0),))],
                  arrival=T0 + 5)
    assert state.rtt == 0.125
    assert repr(state).endswith("rtt=125.0 ms, reports_sent=1)")


def test_round_trip_time_survives_a_wall_clock_step() -> None:
    """A Pi has no RTC: NTP may step the wall clock by an hour mid-call. The SR's NTP
    time comes from the wall clock, the round trip from the monotonic one."""
    state = RtcpState(0xAB, "me", random.Random(2), 100.0)
    sr = parse_compound(state.build_report(100.0, wall=T0, packets_sent=10, octets_sent=1600,
                                           rtp_timestamp=0))[0]
    assert isinstance(sr, RtcpSrPacket)
    assert sr.sender_info.ntp_timestamp == ntp_from_unix(T0)  # the SR carries wall time
    lsr = ntp_compact(sr.sender_info.ntp_timestamp)
    # 0.625 s later on the monotonic clock (the wall clock jumped 3600 s meanwhile): the
    # peer held it 0.5 s
    state.receive([RtcpRrPacket(PEER, (RtcpReportBlock(0xAB, 0, 0, 0, 0, lsr, 32768),))],
                  arrival=100.625)
    assert state.rtt == 0.125
    # an LSR that is none of our SRs (a confused or lying peer) gives no RTT
    state.receive([RtcpRrPacket(PEER, (RtcpReportBlock(0xAB, 0, 0, 0, 0, lsr + 7, 0),))],
                  arrival=101.0)
    assert state.rtt == 0.125
    # the schedule runs on the monotonic clock: the next report is due a few s after 100
    assert 100.0 < state.next_report_at < 108.0


def test_bye() -> None:
    state = RtcpState(0xAB, "me", FakeRng(), T0)
    state.receive([RtcpByePacket((0xAB,))], arrival=T0)  # our own, looped back
    assert not state.bye_received
    state.receive(parse_compound(RR + BYE), arrival=T0)
    assert state.bye_received
    last = parse_compound(state.build_bye(T0 + 1, packets_sent=5, octets_sent=800,
                                          rtp_timestamp=0, reason="hung up"))
    assert [type(p).__name__ for p in last] == ["RtcpSrPacket", "RtcpSdesPacket",
                                                "RtcpByePacket"]
    assert last[-1] == RtcpByePacket((0xAB,), b"hung up")
