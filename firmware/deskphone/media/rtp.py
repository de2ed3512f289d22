"""RTP data packets (RFC 3550 §5), our sending state, and reception statistics.

Three parts, all pure (no clock, no socket, no global randomness):

- ``RtpPacket``: one packet, ``parse()`` / ``bytes()``, exact round trip for
  packets whose padding octets are zero (the only kind RFC 3550 §5.1 suggests).
- ``RtpSender``: SSRC, sequence number, timestamp and marker bit of the stream
  we send (§5.1, §8). Its ``pack_into`` / ``header_into`` write into a buffer
  the caller keeps, so the 50-packets-a-second path allocates next to nothing.
- ``ReceiveStats``: the stream we receive, per Appendix A.1 (sequence
  validation and loss) and A.8 (interarrival jitter), feeding RTCP reports.

Sequence numbers wrap at 2^16 and timestamps at 2^32; every comparison of
either goes through ``seq_diff`` / ``ts_diff`` below.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Final, Protocol

__all__ = [
    "HEADER_SIZE",
    "MAX_DROPOUT",
    "MAX_MISORDER",
    "MIN_SEQUENTIAL",
    "Arrival",
    "ReceiveStats",
    "Rng",
    "RtpExtension",
    "RtpPacket",
    "RtpSender",
    "seq_add",
    "seq_diff",
    "ts_add",
    "ts_diff",
]

RTP_VERSION: Final = 2
HEADER_SIZE: Final = 12  # fixed header, no CSRCs (RFC 3550 §5.1)
SEQ_MOD: Final = 1 << 16
TS_MOD: Final = 1 << 32

# RFC 3550 Appendix A.1
MIN_SEQUENTIAL: Final = 2
MAX_DROPOUT: Final = 3000
MAX_MISORDER: Final = 100

_HEADER: Final = struct.Struct("!BBHII")
_EXTENSION_HEADER: Final = struct.Struct("!HH")
_WINDOW: Final = 128  # sequence numbers remembered behind the newest, to spot duplicates
_WINDOW_MASK: Final = (1 << _WINDOW) - 1

Buffer = bytes | bytearray | memoryview


class Rng(Protocol):
    """What the media code needs of ``random.Random``; injected, so tests repeat."""

    def random(self) -> float: ...

    def getrandbits(self, k: int, /) -> int: ...


# -- wrap-around arithmetic: the one place it is done ---------------------------------------

def seq_add(seq: int, n: int) -> int:
    """``seq + n`` modulo 2^16."""
    return (seq + n) & 0xFFFF


def seq_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` modulo 2^16, in -32768..32767 (positive: ``a`` is newer)."""
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


def ts_add(ts: int, n: int) -> int:
    """``ts + n`` modulo 2^32."""
    return (ts + n) & 0xFFFFFFFF


def ts_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` modulo 2^32, in -2^31..2^31-1 (positive: ``a`` is later)."""
    return ((a - b + 0x80000000) & 0xFFFFFFFF) - 0x80000000


def _invalid(why: str) -> ValueError:
    return ValueError(f"RTP packet is invalid: {why}")


# -- the packet -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RtpExtension:
    """The header extension (RFC 3550 §5.3.1): a profile-defined 16-bit tag and its words."""

    profile: int
    data: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.profile <= 0xFFFF:
            raise _invalid(f"extension profile {self.profile} is not 0..65535")
        if len(self.data) % 4 or len(self.data) > 4 * 0xFFFF:
            raise _invalid(f"extension data of {len(self.data)} bytes is not whole 32-bit words")


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class RtpPacket:
    """One RTP data packet (RFC 3550 §5.1); fields in header order. The version is always 2.

    ``padding`` counts the padding octets including the final count octet (0: the P bit
    is clear); they are written as zeros followed by the count.
    """

    padding: int = 0
    extension: RtpExtension | None = None
    marker: bool = False
    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    csrc: tuple[int, ...] = ()
    payload: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.payload_type <= 127:
            raise _invalid(f"payload type {self.payload_type} is not 0..127")
        if not 0 <= self.sequence_number <= 0xFFFF:
            raise _invalid(f"sequence number {self.sequence_number} is not 0..65535")
        if not 0 <= self.timestamp <= 0xFFFFFFFF:
            raise _invalid(f"timestamp {self.timestamp} is not 0..2^32-1")
        if not 0 <= self.ssrc <= 0xFFFFFFFF:
            raise _invalid(f"SSRC {self.ssrc} is not 0..2^32-1")
        if len(self.csrc) > 15 or not all(0 <= c <= 0xFFFFFFFF for c in self.csrc):
            raise _invalid(f"CSRC list {self.csrc!r} is not up to 15 32-bit values")
        if not 0 <= self.padding <= 255:
            raise _invalid(f"padding {self.padding} is not 0..255")

    @classmethod
    def parse(cls, data: Buffer) -> RtpPacket:
        """Parse one packet, checking what RFC 3550 §5.1 and Appendix A.1 say to check."""
        size = len(data)
        if size < HEADER_SIZE:
            raise _invalid(f"{size} bytes is shorter than the 12-byte header")
        first, second, sequence_number, timestamp, ssrc = _HEADER.unpack_from(data)
        version = first >> 6
        if version != RTP_VERSION:
            raise _invalid(f"version is {version}, not 2")
        count = first & 0x0F
        pos = HEADER_SIZE + 4 * count
        if pos > size:
            raise _invalid(f"CSRC count {count} needs {pos} bytes, packet has {size}")
        csrc: tuple[int, ...] = struct.unpack_from(f"!{count}I", data, HEADER_SIZE) if count else ()
        extension = None
        if first & 0x10:
            if pos + 4 > size:
                raise _invalid("extension header runs past the end")
            profile, words = _EXTENSION_HEADER.unpack_from(data, pos)
            pos += 4
            end = pos + 4 * words
            if end > size:
                raise _invalid(f"extension of {words} words runs past the end")
            extension = RtpExtension(profile, bytes(data[pos:end]))
            pos = end
        padding = 0
        end = size
        if first & 0x20:
            padding = data[-1]
            if padding == 0:
                raise _invalid("padding length is 0")
            if padding > size - pos:
                raise _invalid(f"padding length {padding} exceeds the {size - pos} bytes "
                               "after the header")
            end -= padding
        return cls(padding=padding, extension=extension, marker=bool(second & 0x80),
                   payload_type=second & 0x7F, sequence_number=sequence_number,
                   timestamp=timestamp, ssrc=ssrc, csrc=csrc, payload=bytes(data[pos:end]))

    def __bytes__(self) -> bytes:
        first = 0x80 | len(self.csrc)
        if self.padding:
            first |= 0x20
        if self.extension is not None:
            first |= 0x10
        second = self.payload_type | (0x80 if self.marker else 0)
        parts = [_HEADER.pack(first, second, self.sequence_number, self.timestamp, self.ssrc)]
        if self.csrc:
            parts.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
        if self.extension is not None:
            data = self.extension.data
            parts += (_EXTENSION_HEADER.pack(self.extension.profile, len(data) // 4), data)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes((self.padding,)))
        return b"".join(parts)

    def __repr__(self) -> str:
        extras = ""
        if self.marker:
            extras += ", marker"
        if self.csrc:
            extras += ", csrc=[" + ", ".join(f"{c:#010x}" for c in self.csrc) + "]"
        if self.extension is not None:
            extras += (f", extension={self.extension.profile:#06x}"
                       f"/{len(self.extension.data)} bytes")
        if self.padding:
            extras += f", padding={self.padding}"
        return (f"RtpPacket(pt={self.payload_type}, seq={self.sequence_number}, "
                f"ts={self.timestamp}, ssrc={self.ssrc:#010x}{extras}, "
                f"payload={len(self.payload)} bytes)")


# -- sending ------------------------------------------------------------------------------

class RtpSender:
    """The stream we send (RFC 3550 §5.1): random initial SSRC, sequence and timestamp (§8,
    §5.1 "SHOULD be random"), advanced per packet; the marker set on each talk-spurt start
    (RFC 3551 §4.1): the first packet, and the first after ``skip()``.

    ``sequence_number`` and ``timestamp`` are those the *next* packet will carry.
    ``packets_sent`` / ``octets_sent`` (payload octets) feed the RTCP sender report (§6.4.1).
    """

    __slots__ = ("_buffer", "_marker_pending", "octets_sent", "packets_sent", "payload_type",
                 "sequence_number", "ssrc", "timestamp")

    def __init__(self, payload_type: int, rng: Rng, *, max_payload: int = 1460) -> None:
        if not 0 <= payload_type <= 127:
            raise ValueError(f"payload type {payload_type} is not 0..127")
        self.payload_type = payload_type
        self.ssrc: int = rng.getrandbits(32)
        self.sequence_number: int = rng.getrandbits(16)
        self.timestamp: int = rng.getrandbits(32)
        self.packets_sent = 0
        self.octets_sent = 0
        self._marker_pending = True
        self._buffer = bytearray(HEADER_SIZE + max_payload)

    def skip(self, samples: int) -> None:
        """Send nothing for ``samples`` sampling periods (silence suppression, hold): the
        timestamp runs on (RFC 3550 §5.1) and the next packet starts a talk spurt."""
        self.timestamp = ts_add(self.timestamp, samples)
        self._marker_pending = True

    def header_into(self, buf: bytearray | memoryview, payload_size: int, samples: int,
                    marker: bool = False, *, payload_type: int | None = None,
                    timestamp: int | None = None) -> int:
        """Write the next header into ``buf[0:12]``, the payload already being at
        ``buf[12:12 + payload_size]`` (e.g. encoded there through a numpy view), and advance.
        Returns the packet's length.

        ``payload_type`` / ``timestamp`` override this packet's only, for RFC 4733 events,
        which share the sequence space but carry the event's start time; the media
        timestamp still advances by ``samples``.
        """
        ts = self.timestamp
        _HEADER.pack_into(
            buf, 0, 0x80,
            (self.payload_type if payload_type is None else payload_type)
            | (0x80 if marker or self._marker_pending else 0),
            self.sequence_number, ts if timestamp is None else timestamp, self.ssrc)
        self._marker_pending = False
        self.sequence_number = (self.sequence_number + 1) & 0xFFFF
        self.timestamp = (ts + samples) & 0xFFFFFFFF
        self.packets_sent += 1
        self.octets_sent += payload_size
        return HEADER_SIZE + payload_size

    def pack_into(self, buf: bytearray | memoryview, payload: Buffer, samples: int,
                  marker: bool = False, *, payload_type: int | None = None,
                  timestamp: int | None = None) -> int:
        """Write the next packet (header and ``payload``) into ``buf``; returns its length."""
        size = len(payload)
        buf[HEADER_SIZE:HEADER_SIZE + size] = payload
        return self.header_into(buf, size, samples, marker,
                                payload_type=payload_type, timestamp=timestamp)

    def packet(self, payload: Buffer, samples: int, marker: bool = False, *,
               payload_type: int | None = None, timestamp: int | None = None) -> bytes:
        """The next packet as new ``bytes``."""
        size = self.pack_into(self._buffer, payload, samples, marker,
                              payload_type=payload_type, timestamp=timestamp)
        return bytes(memoryview(self._buffer)[:size])

    def __repr__(self) -> str:
        return (f"RtpSender(pt={self.payload_type}, ssrc={self.ssrc:#010x}, "
                f"next seq={self.sequence_number}, next ts={self.timestamp}, "
                f"sent={self.packets_sent})")


# -- receiving ----------------------------------------------------------------------------

class Arrival(enum.Enum):
    """What ``ReceiveStats.update`` made of a packet."""

    NEW_SOURCE = "new_source"  # first packet of an SSRC (the first, or a change): on probation
    PROBATION = "probation"    # the source has not yet sent MIN_SEQUENTIAL packets in a row
    IN_ORDER = "in_order"      # the newest packet so far (gaps before it are losses, for now)
    LATE = "late"              # older than the newest, not seen before (reordered)
    DUPLICATE = "duplicate"    # seen before
    JUMP = "jump"              # a very large jump in sequence: ignored unless the next follows
    RESTART = "restart"        # ... it did: the sender restarted, the counters start again

    @property
    def counted(self) -> bool:
        """Whether RFC 3550 A.1 counts the packet as received (duplicates are, hence the
        possibly negative loss)."""
        return self in _COUNTED


_IN_ORDER: Final = Arrival.IN_ORDER
_COUNTED: Final = frozenset({Arrival.IN_ORDER, Arrival.LATE, Arrival.DUPLICATE, Arrival.RESTART})


class ReceiveStats:
    """Reception statistics for the one source we receive (RFC 3550 Appendix A.1, A.3, A.8).

    Fed each packet with its arrival time in the stream's timestamp units (e.g. seconds
    * 8000, any origin). A new SSRC starts everything again (``ssrc_changes`` counts it;
    ``update`` says ``NEW_SOURCE``). Differences from the appendix's C: sequence arithmetic
    is done modulo 2^16 throughout (the C compares ``seq == max_seq + 1`` in ``int`` and so
    fails probation across a wrap), and duplicates and late packets are also counted
    separately, from a window of the last 128 sequence numbers.
    """

    __slots__ = ("_bad_seq", "_prev_arrival", "_prev_timestamp", "_seen", "base_seq",
                 "clock_rate", "cycles", "duplicates", "expected_prior", "jitter", "late",
                 "max_seq", "probation", "received", "received_prior", "ssrc", "ssrc_changes")

    def __init__(self, clock_rate: int = 8000) -> None:
        self.clock_rate = clock_rate
        self.ssrc: int | None = None
        self.ssrc_changes = 0
        self._reset()

    def _reset(self) -> None:
        self.probation = MIN_SEQUENTIAL
        self.base_seq = 0
        self.max_seq = 0
        self._bad_seq = SEQ_MOD + 1  # no sequence number equals it
        self.cycles = 0  # count of wraps, times 2^16
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0
        self.duplicates = 0
        self.late = 0
        self.jitter = 0.0  # RFC 3550 §6.4.1 J, in timestamp units
        self._seen = 0  # bit k: extended sequence number (newest - k) was received
        self._prev_arrival: float | None = None
        self._prev_timestamp = 0

    def _init_seq(self, seq: int) -> None:
        """RFC 3550 A.1 ``init_seq``."""
        self.base_seq = seq
        self.max_seq = seq
        self._bad_seq = SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0
        self._seen = 1

    @property
    def valid(self) -> bool:
        """Whether the source passed probation (only then is it reported on)."""
        return self.ssrc is not None and self.probation == 0

    @property
    def extended_max_seq(self) -> int:
        """Extended highest sequence number received: cycles + max_seq (A.3)."""
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        """Packets expected since the source became valid (A.3)."""
        return self.extended_max_seq - self.base_seq + 1 if self.valid else 0

    @property
    def lost(self) -> int:
        """Cumulative packets lost (A.3); negative when duplicates outnumber losses."""
        return self.expected - self.received

    @property
    def jitter_ms(self) -> float:
        return self.jitter * 1000.0 / self.clock_rate

    def fraction_lost_since_last_report(self) -> int:
        """Fraction lost since the previous call, as the 8-bit fixed-point number an RTCP
        report block carries (A.3). Moves the interval on: call once per report."""
        expected = self.expected
        expected_interval = expected - self.expected_prior
        self.expected_prior = expected
        received_interval = self.received - self.received_prior
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval <= 0 or lost_interval <= 0:
            return 0
        return (lost_interval << 8) // expected_interval

    def update(self, packet: RtpPacket, arrival: float) -> Arrival:
        """Account for one received packet; ``arrival`` in timestamp units."""
        return self.update_fields(packet.sequence_number, packet.timestamp, packet.ssrc,
                                  arrival)

    def update_fields(self, seq: int, timestamp: int, ssrc: int, arrival: float) -> Arrival:
        """``update`` from the header fields alone (the media thread's fast path)."""
        if ssrc == self.ssrc and not self.probation and seq and \
                (seq - self.max_seq) & 0xFFFF == 1:
            # the usual packet, the next in sequence and not wrapping: what _update_seq and
            # _update_jitter do for it, in one call (the media thread runs it on cold caches)
            self.max_seq = seq
            self._seen = ((self._seen << 1) | 1) & _WINDOW_MASK
            self.received += 1
            prev = self._prev_arrival
            if prev is not None:
                d = (arrival - prev) - (((timestamp - self._prev_timestamp + 0x80000000)
                                         & 0xFFFFFFFF) - 0x80000000)
                self.jitter += ((d if d >= 0.0 else -d) - self.jitter) / 16.0
            self._prev_arrival = arrival
            self._prev_timestamp = timestamp
            return _IN_ORDER
        return self._update_fields(seq, timestamp, ssrc, arrival)

    def update_sequence(self, seq: int, ssrc: int) -> Arrival | None:
        """Account for a packet of the source that has no place in the jitter: an RFC 4733
        event, whose packets all carry the event's start timestamp (§2.5.1.2), which A.8
        would read as the stream stalling. Its sequence number counts all the same: A.1
        covers every packet of the SSRC, and the audio either side of a digit is in
        sequence, not a loss. None, and nothing counted, for another SSRC than the one
        received (or before any): events never start or switch the source."""
        if ssrc != self.ssrc:
            return None
        result = self._update_seq(seq)
        if result is Arrival.RESTART:
            self._prev_arrival = None  # as _update_fields: the timestamps restarted too
        return result

    def _update_fields(self, seq: int, timestamp: int, ssrc: int, arrival: float) -> Arrival:
        """``update_fields`` for every case."""
        if ssrc != self.ssrc:
            if self.ssrc is not None:
                self.ssrc_changes += 1
                self._reset()
            self.ssrc = ssrc
            # A.1: a new source starts on probation, as if the previous packet were seq - 1
            self._init_seq(seq)
            self.max_seq = seq_add(seq, -1)
            self.probation = MIN_SEQUENTIAL
            self._update_seq(seq)
            self._update_jitter(timestamp, arrival)
            return Arrival.NEW_SOURCE
        result = self._update_seq(seq)
        if result is Arrival.RESTART:
            self._prev_arrival = None  # the timestamps restarted too; don't count the step
        if result is not Arrival.JUMP:
            self._update_jitter(timestamp, arrival)
        return result

    def _update_seq(self, seq: int) -> Arrival:
        """RFC 3550 A.1 ``update_seq``, plus the duplicate/late window."""
        udelta = (seq - self.max_seq) & 0xFFFF
        if self.probation:
            # the packet must be in sequence to go on (A.1)
            if udelta == 1:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self._init_seq(seq)
                    self.received += 1
                    return Arrival.IN_ORDER
            else:
                self.probation = MIN_SEQUENTIAL - 1
                self.max_seq = seq
            return Arrival.PROBATION
        if udelta < MAX_DROPOUT:
            if udelta == 0:
                result = Arrival.DUPLICATE
                self.duplicates += 1
            else:
                # in order, with a permissible gap
                if seq < self.max_seq:
                    self.cycles += SEQ_MOD  # sequence number wrapped
                self.max_seq = seq
                self._seen = ((self._seen << udelta) | 1) & _WINDOW_MASK
                result = Arrival.IN_ORDER
        elif udelta <= SEQ_MOD - MAX_MISORDER:
            # the sequence number made a very large jump
            if seq != self._bad_seq:
                self._bad_seq = (seq + 1) & 0xFFFF
                return Arrival.JUMP
            # two sequential packets: assume the other side restarted without telling us
            self._init_seq(seq)
            result = Arrival.RESTART
        else:
            # duplicate or reordered packet
            bit = 1 << (SEQ_MOD - udelta)
            if self._seen & bit:
                self.duplicates += 1
                result = Arrival.DUPLICATE
            else:
                self._seen |= bit
                self.late += 1
                result = Arrival.LATE
        self.received += 1
        return result

    def _update_jitter(self, timestamp: int, arrival: float) -> None:
        """RFC 3550 §6.4.1 / A.8: J += (|D| - J) / 16, D the change in transit time."""
        if self._prev_arrival is not None:
            d = (arrival - self._prev_arrival) - ts_diff(timestamp, self._prev_timestamp)
            self.jitter += (abs(d) - self.jitter) / 16.0
        self._prev_arrival = arrival
        self._prev_timestamp = timestamp

    def __repr__(self) -> str:
        ssrc = "none" if self.ssrc is None else f"{self.ssrc:#010x}"
        return (f"ReceiveStats(ssrc={ssrc}, valid={self.valid}, "
                f"highest={self.extended_max_seq}, received={self.received}, "
                f"lost={self.lost}, duplicates={self.duplicates}, late={self.late}, "
                f"jitter={self.jitter:.1f})")
