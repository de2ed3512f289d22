"""RTCP (RFC 3550 §6): SR, RR, SDES, BYE; compound packets; the report schedule; RTT.

Pure: the caller passes ``now`` (wall-clock seconds since the Unix epoch, as
``time.time()`` gives; it is also the NTP timestamp of our sender reports) and
an ``Rng`` for the randomised report interval.

Packets of other types (APP, the RFC 4585 feedback messages, XR) parse as
``RtcpUnknownPacket`` and serialise back unchanged, so a compound packet from a
richer peer does not fail as a whole. Padding (the P bit, RFC 3550 §6.4.1) is
checked and stripped; it is not kept, so such a packet does not round-trip.
"""

from __future__ import annotations

import math
import struct
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Final

from .rtp import ReceiveStats, Rng

__all__ = [
    "NTP_EPOCH_OFFSET",
    "RtcpByePacket",
    "RtcpPacket",
    "RtcpReportBlock",
    "RtcpRrPacket",
    "RtcpSdesChunk",
    "RtcpSdesItem",
    "RtcpSdesPacket",
    "RtcpSenderInfo",
    "RtcpSrPacket",
    "RtcpState",
    "RtcpUnknownPacket",
    "is_rtcp",
    "ntp_compact",
    "ntp_from_unix",
    "ntp_to_unix",
    "parse_compound",
    "serialize_compound",
]

RTCP_SR: Final = 200
RTCP_RR: Final = 201
RTCP_SDES: Final = 202
RTCP_BYE: Final = 203

SDES_END: Final = 0
SDES_CNAME: Final = 1

NTP_EPOCH_OFFSET: Final = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01

_HEADER: Final = struct.Struct("!BBH")
_SSRC: Final = struct.Struct("!I")
_SENDER_INFO: Final = struct.Struct("!QIII")
_REPORT_BLOCK: Final = struct.Struct("!IIIIII")

Buffer = bytes | bytearray | memoryview


def _invalid(why: str) -> ValueError:
    return ValueError(f"RTCP packet is invalid: {why}")


def _check_u32(name: str, value: int) -> None:
    if not 0 <= value <= 0xFFFFFFFF:
        raise _invalid(f"{name} {value} is not 0..2^32-1")


# -- time ---------------------------------------------------------------------------------

def ntp_from_unix(wall: float) -> int:
    """The 64-bit NTP timestamp (RFC 3550 §4: seconds since 1900, 32.32 fixed point)."""
    seconds = math.floor(wall)
    fraction = int((wall - seconds) * (1 << 32))
    return (((seconds + NTP_EPOCH_OFFSET) & 0xFFFFFFFF) << 32) | fraction


def ntp_to_unix(ntp: int) -> float:
    """Back from a 64-bit NTP timestamp to Unix seconds (era 0, i.e. up to 2036)."""
    return (ntp >> 32) - NTP_EPOCH_OFFSET + (ntp & 0xFFFFFFFF) / (1 << 32)


def ntp_compact(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp (16.16 seconds): the unit of LSR and of the
    arrival time A in the round-trip computation (RFC 3550 §6.4.1)."""
    return (ntp >> 16) & 0xFFFFFFFF


# -- packets ------------------------------------------------------------------------------

def _header(count: int, packet_type: int, body: bytes) -> bytes:
    """The common header (RFC 3550 §6.4.1): V=2, P=0, count, type, length in words - 1."""
    return _HEADER.pack(0x80 | count, packet_type, len(body) // 4) + body


def _check_count(kind: str, items: tuple[object, ...]) -> None:
    if len(items) > 31:
        raise _invalid(f"{kind} with {len(items)} entries exceeds the 5-bit count")


def _check_words(kind: str, data: bytes) -> None:
    if len(data) % 4:
        raise _invalid(f"{kind} of {len(data)} bytes is not whole 32-bit words")


@dataclass(frozen=True, slots=True)
class RtcpReportBlock:
    """One reception report (RFC 3550 §6.4.1), about the source ``ssrc``."""

    SIZE: ClassVar[int] = 24

    ssrc: int
    fraction_lost: int  # since the previous report, 8-bit fixed point (lost * 256 / expected)
    packets_lost: int  # cumulative, signed 24-bit (negative with duplicates)
    highest_sequence: int  # extended highest sequence number received
    jitter: int  # interarrival jitter, timestamp units
    lsr: int  # compact NTP of the last SR from ``ssrc`` (0: none yet)
    dlsr: int  # delay since that SR, 1/65536 s

    def __post_init__(self) -> None:
        if not 0 <= self.fraction_lost <= 255:
            raise _invalid(f"fraction lost {self.fraction_lost} is not 0..255")
        if not -0x800000 <= self.packets_lost <= 0x7FFFFF:
            raise _invalid(f"packets lost {self.packets_lost} is not a signed 24-bit number")
        for name in ("ssrc", "highest_sequence", "jitter", "lsr", "dlsr"):
            _check_u32(name, getattr(self, name))

    @classmethod
    def parse(cls, data: Buffer, offset: int = 0) -> RtcpReportBlock:
        if len(data) - offset < cls.SIZE:
            raise _invalid(f"report block needs 24 bytes, has {len(data) - offset}")
        ssrc, lost, highest, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(data, offset)
        packets_lost = (lost & 0xFFFFFF) - ((lost & 0x800000) << 1)  # sign-extend 24 bits
        return cls(ssrc, lost >> 24, packets_lost, highest, jitter, lsr, dlsr)

    def __bytes__(self) -> bytes:
        return _REPORT_BLOCK.pack(self.ssrc,
                                  (self.fraction_lost << 24) | (self.packets_lost & 0xFFFFFF),
                                  self.highest_sequence, self.jitter, self.lsr, self.dlsr)


@dataclass(frozen=True, slots=True)
class RtcpSenderInfo:
    """The sender half of an SR (RFC 3550 §6.4.1)."""

    ntp_timestamp: int  # 64-bit NTP time at which rtp_timestamp was the media clock
    rtp_timestamp: int
    packet_count: int  # packets sent since starting
    octet_count: int  # payload octets sent since starting

    def __post_init__(self) -> None:
        if not 0 <= self.ntp_timestamp < 1 << 64:
            raise _invalid(f"NTP timestamp {self.ntp_timestamp} is not 64-bit")
        for name in ("rtp_timestamp", "packet_count", "octet_count"):
            _check_u32(name, getattr(self, name))


def _parse_blocks(kind: str, count: int, body: Buffer, pos: int) -> tuple[
        tuple[RtcpReportBlock, ...], bytes]:
    need = pos + RtcpReportBlock.SIZE * count
    if need > len(body):
        raise _invalid(f"{kind} with {count} report blocks needs {need + 4} bytes, "
                       f"has {len(body) + 4}")
    blocks = tuple(RtcpReportBlock.parse(body, pos + RtcpReportBlock.SIZE * i)
                   for i in range(count))
    return blocks, bytes(body[need:])  # what is left: profile-specific extensions


@dataclass(frozen=True, slots=True)
class RtcpSrPacket:
    """Sender report (RFC 3550 §6.4.1); ``extension``: profile-specific words after the
    report blocks, kept as they came."""

    packet_type: ClassVar[int] = RTCP_SR

    ssrc: int
    sender_info: RtcpSenderInfo
    reports: tuple[RtcpReportBlock, ...] = ()
    extension: bytes = b""

    def __post_init__(self) -> None:
        _check_u32("SSRC", self.ssrc)
        _check_count("SR", self.reports)
        _check_words("SR extension", self.extension)

    @classmethod
    def parse(cls, data: Buffer) -> RtcpSrPacket:
        packet = _parse_single(data)
        if not isinstance(packet, cls):
            raise _invalid(f"packet type {_type_of(data)} is not SR (200)")
        return packet

    @classmethod
    def _from_body(cls, count: int, body: Buffer) -> RtcpSrPacket:
        if len(body) < 24:
            raise _invalid(f"SR with {count} report blocks needs "
                           f"{28 + RtcpReportBlock.SIZE * count} bytes, has {len(body) + 4}")
        ssrc, = _SSRC.unpack_from(body)
        info = RtcpSenderInfo(*_SENDER_INFO.unpack_from(body, 4))
        reports, extension = _parse_blocks("SR", count, body, 24)
        return cls(ssrc, info, reports, extension)

    def __bytes__(self) -> bytes:
        i = self.sender_info
        body = b"".join((_SSRC.pack(self.ssrc),
                         _SENDER_INFO.pack(i.ntp_timestamp, i.rtp_timestamp, i.packet_count,
                                           i.octet_count),
                         *map(bytes, self.reports), self.extension))
        return _header(len(self.reports), RTCP_SR, body)


@dataclass(frozen=True, slots=True)
class RtcpRrPacket:
    """Receiver report (RFC 3550 §6.4.2)."""

    packet_type: ClassVar[int] = RTCP_RR

    ssrc: int
    reports: tuple[RtcpReportBlock, ...] = ()
    extension: bytes = b""

    def __post_init__(self) -> None:
        _check_u32("SSRC", self.ssrc)
        _check_count("RR", self.reports)
        _check_words("RR extension", self.extension)

    @classmethod
    def parse(cls, data: Buffer) -> RtcpRrPacket:
        packet = _parse_single(data)
        if not isinstance(packet, cls):
            raise _invalid(f"packet type {_type_of(data)} is not RR (201)")
        return packet

    @classmethod
    def _from_body(cls, count: int, body: Buffer) -> RtcpRrPacket:
        if len(body) < 4:
            raise _invalid(f"RR with {count} report blocks needs "
                           f"{8 + RtcpReportBlock.SIZE * count} bytes, has {len(body) + 4}")
        ssrc, = _SSRC.unpack_from(body)
        reports, extension = _parse_blocks("RR", count, body, 4)
        return cls(ssrc, reports, extension)

    def __bytes__(self) -> bytes:
        body = b"".join((_SSRC.pack(self.ssrc), *map(bytes, self.reports), self.extension))
        return _header(len(self.reports), RTCP_RR, body)


@dataclass(frozen=True, slots=True)
class RtcpSdesItem:
    """One SDES item (RFC 3550 §6.5): type (1 CNAME, 2 NAME, ... 8 PRIV) and up to 255 bytes."""

    type: int
    value: bytes

    def __post_init__(self) -> None:
        if not 1 <= self.type <= 255:
            raise _invalid(f"SDES item type {self.type} is not 1..255")
        if len(self.value) > 255:
            raise _invalid(f"SDES item of {len(self.value)} bytes exceeds 255")


@dataclass(frozen=True, slots=True)
class RtcpSdesChunk:
    """The items describing one source (RFC 3550 §6.5)."""

    ssrc: int
    items: tuple[RtcpSdesItem, ...] = ()

    def __post_init__(self) -> None:
        _check_u32("SSRC", self.ssrc)

    @property
    def cname(self) -> str | None:
        """The CNAME item (§6.5.1), decoded as UTF-8, if there is one."""
        for item in self.items:
            if item.type == SDES_CNAME:
                return item.value.decode("utf-8", "replace")
        return None

    def __bytes__(self) -> bytes:
        items = b"".join(bytes((item.type, len(item.value))) + item.value for item in self.items)
        # the item list ends with a null octet, then nulls up to a 32-bit boundary (§6.5)
        return _SSRC.pack(self.ssrc) + items + bytes(4 - len(items) % 4)


@dataclass(frozen=True, slots=True)
class RtcpSdesPacket:
    """Source description (RFC 3550 §6.5)."""

    packet_type: ClassVar[int] = RTCP_SDES

    chunks: tuple[RtcpSdesChunk, ...] = ()

    def __post_init__(self) -> None:
        _check_count("SDES", self.chunks)

    @classmethod
    def cname(cls, ssrc: int, cname: str) -> RtcpSdesPacket:
        """The SDES every compound packet carries: our CNAME (§6.1, §6.5.1)."""
        return cls((RtcpSdesChunk(ssrc, (RtcpSdesItem(SDES_CNAME, cname.encode()),)),))

    @classmethod
    def parse(cls, data: Buffer) -> RtcpSdesPacket:
        packet = _parse_single(data)
        if not isinstance(packet, cls):
            raise _invalid(f"packet type {_type_of(data)} is not SDES (202)")
        return packet

    @classmethod
    def _from_body(cls, count: int, body: Buffer) -> RtcpSdesPacket:
        chunks = []
        pos = 0
        size = len(body)
        for _ in range(count):
            if pos + 4 > size:
                raise _invalid("SDES chunk runs past the end")
            ssrc, = _SSRC.unpack_from(body, pos)
            pos += 4
            items = []
            while True:
                if pos >= size:
                    raise _invalid("SDES chunk has no end")
                item_type = body[pos]
                if item_type == SDES_END:
                    pos = (pos + 4) & ~3  # the null octet, then to the next 32-bit boundary
                    break
                if pos + 2 > size or pos + 2 + body[pos + 1] > size:
                    raise _invalid("SDES item runs past the end")
                end = pos + 2 + body[pos + 1]
                items.append(RtcpSdesItem(item_type, bytes(body[pos + 2:end])))
                pos = end
            chunks.append(RtcpSdesChunk(ssrc, tuple(items)))
        return cls(tuple(chunks))

    def __bytes__(self) -> bytes:
        return _header(len(self.chunks), RTCP_SDES, b"".join(map(bytes, self.chunks)))


@dataclass(frozen=True, slots=True)
class RtcpByePacket:
    """Goodbye (RFC 3550 §6.6): the sources leaving, and an optional reason."""

    packet_type: ClassVar[int] = RTCP_BYE

    sources: tuple[int, ...]
    reason: bytes = b""

    def __post_init__(self) -> None:
        _check_count("BYE", self.sources)
        for ssrc in self.sources:
            _check_u32("SSRC", ssrc)
        if len(self.reason) > 255:
            raise _invalid(f"BYE reason of {len(self.reason)} bytes exceeds 255")

    @classmethod
    def parse(cls, data: Buffer) -> RtcpByePacket:
        packet = _parse_single(data)
        if not isinstance(packet, cls):
            raise _invalid(f"packet type {_type_of(data)} is not BYE (203)")
        return packet

    @classmethod
    def _from_body(cls, count: int, body: Buffer) -> RtcpByePacket:
        pos = 4 * count
        if pos > len(body):
            raise _invalid(f"BYE with {count} sources needs {pos + 4} bytes, "
                           f"has {len(body) + 4}")
        sources: tuple[int, ...] = struct.unpack_from(f"!{count}I", body)
        reason = b""
        if pos < len(body):
            end = pos + 1 + body[pos]
            if end > len(body):
                raise _invalid("BYE reason runs past the end")
            reason = bytes(body[pos + 1:end])
        return cls(sources, reason)

    def __bytes__(self) -> bytes:
        body = struct.pack(f"!{len(self.sources)}I", *self.sources)
        if self.reason:
            reason = bytes((len(self.reason),)) + self.reason
            body += reason + bytes(-len(reason) % 4)
        return _header(len(self.sources), RTCP_BYE, body)


@dataclass(frozen=True, slots=True)
class RtcpUnknownPacket:
    """Any other RTCP packet (APP, RTPFB/PSFB, XR...): kept whole, so it round-trips."""

    packet_type: int  # an instance field here, a ClassVar on the known kinds
    count: int  # the 5-bit field after P (a subtype or count, by type)
    body: bytes  # everything after the 4-byte header

    def __post_init__(self) -> None:
        if not 0 <= self.count <= 31:
            raise _invalid(f"count {self.count} is not 0..31")
        if not 0 <= self.packet_type <= 255:
            raise _invalid(f"packet type {self.packet_type} is not 0..255")
        _check_words(f"packet type {self.packet_type} body", self.body)

    @classmethod
    def parse(cls, data: Buffer) -> RtcpUnknownPacket:
        packet = _parse_single(data)
        if not isinstance(packet, cls):
            raise _invalid(f"packet type {_type_of(data)} is a known type")
        return packet

    def __bytes__(self) -> bytes:
        return _header(self.count, self.packet_type, self.body)


RtcpPacket = RtcpSrPacket | RtcpRrPacket | RtcpSdesPacket | RtcpByePacket | RtcpUnknownPacket

_PARSERS: Final[Mapping[int, Callable[[int, memoryview], RtcpPacket]]] = {
    RTCP_SR: RtcpSrPacket._from_body,
    RTCP_RR: RtcpRrPacket._from_body,
    RTCP_SDES: RtcpSdesPacket._from_body,
    RTCP_BYE: RtcpByePacket._from_body,
}


def _type_of(data: Buffer) -> int:
    return data[1] if len(data) > 1 else -1


def _parse_one(data: Buffer, pos: int) -> tuple[RtcpPacket, int]:
    """Parse the packet at ``pos``; returns it and where the next one starts."""
    size = len(data)
    if size - pos < 4:
        raise _invalid(f"{size - pos} bytes at offset {pos} is shorter than the 4-byte header")
    first, packet_type, words = _HEADER.unpack_from(data, pos)
    version = first >> 6
    if version != 2:
        raise _invalid(f"version is {version}, not 2")
    end = pos + 4 * (words + 1)
    if end > size:
        raise _invalid(f"length of {words + 1} words at offset {pos} runs past the end "
                       f"of {size} bytes")
    body_end = end
    if first & 0x20:
        padding = data[end - 1]
        if padding == 0:
            raise _invalid("padding length is 0")
        if padding > end - pos - 4:
            raise _invalid(f"padding length {padding} exceeds the {end - pos - 4}-byte body")
        body_end -= padding
    count = first & 0x1F
    body = memoryview(data)[pos + 4:body_end]
    parser = _PARSERS.get(packet_type)
    packet: RtcpPacket
    if parser is None:
        packet = RtcpUnknownPacket(packet_type, count, bytes(body) + bytes(-len(body) % 4))
    else:
        packet = parser(count, body)
    return packet, end


def _parse_single(data: Buffer) -> RtcpPacket:
    packet, end = _parse_one(data, 0)
    if end != len(data):
        raise _invalid(f"{len(data) - end} bytes follow the packet")
    return packet


def parse_compound(data: Buffer) -> list[RtcpPacket]:
    """Split and parse a compound RTCP packet (RFC 3550 §6.1): every packet's length must
    land exactly on the next. The first need not be SR/RR (RFC 5506 reduced-size RTCP)."""
    if not data:
        raise _invalid("empty")
    packets = []
    pos = 0
    while pos < len(data):
        packet, pos = _parse_one(data, pos)
        packets.append(packet)
    return packets


def serialize_compound(packets: Iterable[RtcpPacket]) -> bytes:
    return b"".join(map(bytes, packets))


def is_rtcp(data: Buffer) -> bool:
    """On a port shared by RTP and RTCP (rtcp-mux, RFC 5761 §4): RTCP if the second octet
    is 192..223, i.e. what would be an RTP payload type of 64..95 (never used for RTP)."""
    return len(data) >= 2 and 192 <= data[1] <= 223


# -- the session --------------------------------------------------------------------------

class RtcpState:
    """Our RTCP for one two-party call (RFC 3550 §6): when to report, what to report, and
    what the peer's reports tell us (round-trip time, its view of our stream, its BYE).

    Every report is a compound packet (§6.1): SR if we sent RTP since the last report or
    the one before it (§6.4), else RR, with a report block on the source we receive once it
    passed probation; then SDES with our CNAME. The interval (§6.3.1, §6.2) is the 5 s
    minimum, halved before the first report, times a uniform 0.5..1.5; at 64 kbit/s
    between two parties the bandwidth share never asks for longer, so there is no timer
    reconsideration and no e - 3/2 compensation.

    Two clocks. ``now`` everywhere is a monotonic clock: it schedules reports, times how
    long we held the peer's SR (DLSR) and when our own SRs left, so that a round trip is
    measured on one clock that never steps. ``wall`` (the real-time clock) gives only the
    NTP timestamp our SRs carry; a Pi has no RTC and NTP may step it mid-call, which would
    otherwise stop our reports or corrupt the round-trip time. Without ``wall``, ``now``
    serves for both (a caller with one clock).
    """

    def __init__(self, ssrc: int, cname: str, rng: Rng, now: float, *,
                 min_interval: float = 5.0) -> None:
        self.ssrc = ssrc
        self.cname = cname
        self.min_interval = min_interval
        self._rng = rng
        self._sent_counts = (0, 0)  # packets_sent at the report before last, and at the last
        # the peer's last SR: its SSRC, its compact NTP time (our LSR), when it arrived
        self._last_sr: tuple[int, int, float] | None = None
        self.rtt: float | None = None  # seconds, from the latest usable report block
        self.remote_report: RtcpReportBlock | None = None  # the peer's latest block on us
        self.bye_received = False
        self.reports_sent = 0
        self.next_report_at = now + self._interval(initial=True)
        # our last SRs: their compact NTP time (what the peer echoes as LSR) -> ``now`` sent
        self._srs_sent: deque[tuple[int, float]] = deque(maxlen=8)

    def _interval(self, initial: bool = False) -> float:
        """RFC 3550 §6.3.1: the deterministic interval times a uniform 0.5..1.5."""
        td = self.min_interval / 2 if initial else self.min_interval
        return td * (0.5 + self._rng.random())

    def get_timer(self) -> float:
        """When the next report is due."""
        return self.next_report_at

    def report_due(self, now: float) -> bool:
        return now >= self.next_report_at

    def build_report(self, now: float, *, packets_sent: int, octets_sent: int,
                     rtp_timestamp: int, stats: ReceiveStats | None = None,
                     wall: float | None = None) -> bytes:
        """The next compound report, and schedule the one after it.

        ``packets_sent``/``octets_sent``: our totals so far (``RtpSender`` keeps them);
        ``rtp_timestamp``: our media clock at ``now`` (the sender's next timestamp);
        ``wall``: the real-time clock now, for an SR's NTP timestamp.
        """
        packets = self._report(now, wall, packets_sent, octets_sent, rtp_timestamp, stats)
        self.next_report_at = now + self._interval()
        return serialize_compound(packets)

    def build_bye(self, now: float, *, packets_sent: int, octets_sent: int,
                  rtp_timestamp: int, stats: ReceiveStats | None = None,
                  reason: str = "", wall: float | None = None) -> bytes:
        """A last report with BYE at its end (RFC 3550 §6.1, §6.6)."""
        packets = self._report(now, wall, packets_sent, octets_sent, rtp_timestamp, stats)
        packets.append(RtcpByePacket((self.ssrc,), reason.encode()[:255]))
        return serialize_compound(packets)

    def _report(self, now: float, wall: float | None, packets_sent: int, octets_sent: int,
                rtp_timestamp: int, stats: ReceiveStats | None) -> list[RtcpPacket]:
        before_last, last = self._sent_counts
        we_sent = packets_sent != before_last  # in the last two intervals (§6.4)
        self._sent_counts = (last, packets_sent)
        self.reports_sent += 1
        blocks: tuple[RtcpReportBlock, ...] = ()
        if stats is not None and stats.valid:
            blocks = (self._report_block(now, stats),)
        report: RtcpPacket
        if we_sent:
            ntp = ntp_from_unix(now if wall is None else wall)
            self._srs_sent.append((ntp_compact(ntp), now))
            info = RtcpSenderInfo(ntp, rtp_timestamp & 0xFFFFFFFF,
                                  packets_sent & 0xFFFFFFFF, octets_sent & 0xFFFFFFFF)
            report = RtcpSrPacket(self.ssrc, info, blocks)
        else:
            report = RtcpRrPacket(self.ssrc, blocks)
        return [report, RtcpSdesPacket.cname(self.ssrc, self.cname)]

    def _report_block(self, now: float, stats: ReceiveStats) -> RtcpReportBlock:
        assert stats.ssrc is not None
        lsr = dlsr = 0
        if self._last_sr is not None and self._last_sr[0] == stats.ssrc:
            _, lsr, arrived = self._last_sr
            dlsr = min(max(0, int((now - arrived) * 65536)), 0xFFFFFFFF)
        return RtcpReportBlock(
            ssrc=stats.ssrc,
            fraction_lost=stats.fraction_lost_since_last_report(),
            packets_lost=min(max(stats.lost, -0x800000), 0x7FFFFF),
            highest_sequence=stats.extended_max_seq & 0xFFFFFFFF,
            jitter=min(int(stats.jitter), 0xFFFFFFFF),
            lsr=lsr, dlsr=dlsr)

    def receive(self, packets: Iterable[RtcpPacket], arrival: float) -> None:
        """Take in the peer's compound packet (parsed), which arrived at ``arrival`` (on
        the monotonic clock): when it came, not when it was read, for it is A of the
        round trip (§6.4.1) and, for an SR, where the DLSR we report counts from."""
        for packet in packets:
            if isinstance(packet, RtcpSrPacket | RtcpRrPacket):
                if packet.ssrc == self.ssrc:
                    continue  # our own, looped back
                if isinstance(packet, RtcpSrPacket):
                    self._last_sr = (packet.ssrc, ntp_compact(packet.sender_info.ntp_timestamp),
                                     arrival)
                for block in packet.reports:
                    if block.ssrc == self.ssrc:
                        self.remote_report = block
                        rtt = self._round_trip(block, arrival)
                        if rtt is not None:
                            self.rtt = rtt
            elif isinstance(packet, RtcpByePacket) and any(s != self.ssrc
                                                            for s in packet.sources):
                self.bye_received = True

    def _round_trip(self, block: RtcpReportBlock, arrival: float) -> float | None:
        """RFC 3550 §6.4.1's A - LSR - DLSR, with A - LSR taken on the monotonic clock: the
        time since the SR the peer names (by its LSR) left. None for an LSR that is none of
        our recent SRs (0: the peer has had none) or a negative result."""
        if block.lsr == 0:
            return None
        for compact, sent in reversed(self._srs_sent):
            if compact == block.lsr:
                rtt = arrival - sent - block.dlsr / 65536.0
                return rtt if rtt >= 0.0 else None
        return None

    def __repr__(self) -> str:
        rtt = "none" if self.rtt is None else f"{self.rtt * 1000:.1f} ms"
        return (f"RtcpState(ssrc={self.ssrc:#010x}, cname={self.cname!r}, "
                f"next_report_at={self.next_report_at:.3f}, rtt={rtt}, "
                f"reports_sent={self.reports_sent})")
