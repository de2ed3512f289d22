"""SDP session descriptions: parse and serialise (RFC 4566).

Theory of operation: ``SessionDescription.parse`` reads the lines into a session
section and one section per ``m=`` line, models what offer/answer needs
(origin, c=, codecs from the m= formats plus a=rtpmap/a=fmtp, direction, ptime,
rtcp, rtcp-mux) and keeps everything else verbatim: unmodelled attributes in
``attributes``, unmodelled lines (u=, e=, p=, r=, z=, k=, unknown letters,
repeats of single lines) in ``extra_lines``. ``bytes(sd)`` writes the canonical
order of RFC 4566 §5 with CRLF line ends, so no line is lost, only reordered.

Invariants (the hypothesis tests hold us to them): ``parse`` returns a
``SessionDescription`` or raises ``SdpError``, never anything else; and
``SessionDescription.parse(bytes(sd)) == sd``.

Parsing is strict where offer/answer must understand the value (v=, o=, c=,
m=, a=rtpmap of a listed payload type) and liberal elsewhere: blank lines are
skipped, a non-numeric a=ptime is kept as an unknown attribute, bytes that are
not UTF-8 are read as Latin-1 (old phones put ISO 8859-1 in s=).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from itertools import pairwise
from types import MappingProxyType

__all__ = [
    "PCMA",
    "PCMU",
    "STATIC_PAYLOAD_TYPES",
    "Codec",
    "Connection",
    "Direction",
    "MediaDescription",
    "Origin",
    "SdpError",
    "SessionDescription",
]


class SdpError(ValueError):
    """The session description is malformed (a UAS answers 400), or, for the
    offer/answer subclass ``NoCommonCodec``, unacceptable (488)."""


class Direction(enum.Enum):
    """Media direction attributes (RFC 4566 §6, RFC 3264 §5.1), from the point
    of view of the side that wrote them."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    @classmethod
    def from_flags(cls, *, send: bool, recv: bool) -> Direction:
        if send:
            return cls.SENDRECV if recv else cls.SENDONLY
        return cls.RECVONLY if recv else cls.INACTIVE

    def reverse(self) -> Direction:
        """The direction the other side sees: sendonly <-> recvonly (RFC 3264 §6.1)."""
        return Direction.from_flags(send=self.receives, recv=self.sends)


_DIRECTIONS = {d.value: d for d in Direction}


@dataclass(frozen=True, slots=True)
class Codec:
    """One RTP payload format: ``a=rtpmap:<pt> <encoding>/<clock>[/<channels>]``
    plus its ``a=fmtp`` parameters (RFC 4566 §6)."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int = 1
    fmtp: str | None = None

    def __str__(self) -> str:
        channels = f"/{self.channels}" if self.channels != 1 else ""
        return f"{self.encoding}/{self.clock_rate}{channels}"

    @property
    def is_telephone_event(self) -> bool:
        """RFC 4733 DTMF events, which ride along with a codec but are not one."""
        return self.encoding.lower() == "telephone-event"

    def matches(self, other: Codec) -> bool:
        """Same format, whatever the payload type: encoding names are
        case-insensitive (RFC 4566 §6, rtpmap)."""
        return (
            self.encoding.lower() == other.encoding.lower()
            and self.clock_rate == other.clock_rate
            and self.channels == other.channels
        )


PCMU = Codec(0, "PCMU", 8000)
PCMA = Codec(8, "PCMA", 8000)

# RFC 3551 §6, Tables 4 and 5: payload types that need no a=rtpmap, by media.
_STATIC_AUDIO = (
    PCMU,
    Codec(3, "GSM", 8000),
    Codec(4, "G723", 8000),
    Codec(5, "DVI4", 8000),
    Codec(6, "DVI4", 16000),
    Codec(7, "LPC", 8000),
    PCMA,
    Codec(9, "G722", 8000),
    Codec(10, "L16", 44100, 2),
    Codec(11, "L16", 44100),
    Codec(12, "QCELP", 8000),
    Codec(13, "CN", 8000),
    Codec(14, "MPA", 90000),
    Codec(15, "G728", 8000),
    Codec(16, "DVI4", 11025),
    Codec(17, "DVI4", 22050),
    Codec(18, "G729", 8000),
)
_STATIC_VIDEO = (
    Codec(25, "CelB", 90000),
    Codec(26, "JPEG", 90000),
    Codec(28, "nv", 90000),
    Codec(31, "H261", 90000),
    Codec(32, "MPV", 90000),
    Codec(33, "MP2T", 90000),
    Codec(34, "H263", 90000),
)
STATIC_PAYLOAD_TYPES: Mapping[str, Mapping[int, Codec]] = MappingProxyType(
    {
        "audio": MappingProxyType({c.payload_type: c for c in _STATIC_AUDIO}),
        "video": MappingProxyType({c.payload_type: c for c in _STATIC_VIDEO}),
    }
)


@dataclass(frozen=True, slots=True)
class Origin:
    """``o=`` (RFC 4566 §5.2). The version goes up by one with every new
    offer in a dialog (RFC 3264 §8)."""

    username: str
    session_id: int
    session_version: int
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "0.0.0.0"

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass(frozen=True, slots=True)
class Connection:
    """``c=`` (RFC 4566 §5.7). ``address`` is kept as written (a multicast
    ``/ttl`` suffix stays on it)."""

    nettype: str
    addrtype: str
    address: str

    @classmethod
    def for_address(cls, address: str) -> Connection:
        """``IN IP6`` for an address with a colon in it, else ``IN IP4``."""
        return cls("IN", "IP6" if ":" in address else "IP4", address)

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


Attribute = tuple[str, str | None]  # a=name:value, or a=name (value None)
Line = tuple[str, str]  # an unmodelled <type>=<value> line


# Numbers, as (max digits, smallest, largest), bounded by length before int():
# Python refuses to convert more than 4,300 digits (a ValueError that is no
# SdpError) and the conversion is quadratic below that. Leading zeros are
# legal (1*DIGIT) and do not count.
SESSION_NUMBER = (20, 0, None)  # o= sess-id, sess-version (§5.2): 64-bit NTP times fit
PORT = (5, 0, 65535)  # m= (0: a rejected stream, RFC 3264 §6), a=rtcp (RFC 3605)
PORT_COUNT = (5, 1, 65535)  # m=<media> <port>/<number of ports>
PAYLOAD_TYPE = (3, 0, 127)  # RFC 3550 §5.1: seven bits
CLOCK_RATE = (10, 1, 2**32 - 1)  # a=rtpmap; RTP timestamps are 32 bits, and 0 divides
CHANNELS = (3, 1, 255)  # a=rtpmap
PTIME = (4, 0, None)  # a=ptime, a=maxptime in ms; 10 s per packet is no RTP stream
Bounds = tuple[int, int, int | None]


def _uint(text: str, bounds: Bounds) -> int | None:
    """``text`` as a number within ``bounds`` (ASCII digits only), else None.

    The one place SDP text becomes a number; ``_parse_uint`` is its strict form.
    """
    max_digits, low, high = bounds
    if not text.isascii() or not text.isdigit():
        return None
    digits = text.lstrip("0") or "0"
    if len(digits) > max_digits:
        return None
    value = int(digits)
    return value if value >= low and (high is None or value <= high) else None


def _parse_uint(number: int, text: str, what: str, bounds: Bounds) -> int:
    """``_uint`` for a number offer/answer needs: SdpError saying what is wrong."""
    value = _uint(text, bounds)
    if value is not None:
        return value
    max_digits, low, high = bounds
    if not text.isascii() or not text.isdigit():
        raise SdpError(f"SDP line {number}: {what} is not a number: {_shown(text)}")
    digits = text.lstrip("0")
    if len(digits) > max_digits:
        raise SdpError(
            f"SDP line {number}: {what} has {len(digits)} digits (at most {max_digits})")
    raise SdpError(f"SDP line {number}: {what} is not in {low}-{high}: {text!r}")


def _shown(text: str, limit: int = 40) -> str:
    """``text`` for an error message: its repr, cut to ``limit`` characters."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def _payload_type(fmt: str) -> int | None:
    """The RTP payload type an m= format names, or None if it names none."""
    return _uint(fmt, PAYLOAD_TYPE)


def _numeric_formats(formats: Iterable[str]) -> list[int]:
    """The payload types among ``formats``, each once, in order."""
    seen: list[int] = []
    for fmt in formats:
        pt = _payload_type(fmt)
        if pt is not None and pt not in seen:
            seen.append(pt)
    return seen


@dataclass(frozen=True, slots=True)
class MediaDescription:
    """One media section, an ``m=`` line and what follows it (RFC 4566 §5.14).

    ``codecs`` follows the order of ``formats`` (the m= order is the sender's
    preference, RFC 3264 §5.1); leave ``formats`` empty to take it from the
    codecs. ``direction`` None means no direction attribute in this section
    (the session's applies: ``SessionDescription.media_direction``).
    """

    media: str
    port: int
    proto: str = "RTP/AVP"
    formats: tuple[str, ...] = ()
    connection: Connection | None = None
    codecs: tuple[Codec, ...] = ()
    direction: Direction | None = None
    ptime: int | None = None
    maxptime: int | None = None
    rtcp_mux: bool = False
    rtcp_port: int | None = None  # a=rtcp (RFC 3605)
    rtcp_connection: Connection | None = None  # a=rtcp:<port> <nettype> <addrtype> <address>
    port_count: int | None = None  # m=<media> <port>/<number of ports> ...
    bandwidth: tuple[str, ...] = ()  # b= values, e.g. "AS:64"
    attributes: tuple[Attribute, ...] = ()
    extra_lines: tuple[Line, ...] = ()

    def __post_init__(self) -> None:
        if not self.formats and self.codecs:
            object.__setattr__(self, "formats", tuple(str(c.payload_type) for c in self.codecs))
        # Each codec must describe one listed payload type, in m= order, so that
        # what we write is what we read back.
        listed = iter(_numeric_formats(self.formats))
        for codec in self.codecs:
            if codec.payload_type not in listed:
                raise ValueError(
                    f"codec {codec.payload_type} {codec} is not in the m= formats "
                    f"{' '.join(self.formats)!r} (or is out of order)"
                )

    def codec(self, payload_type: int) -> Codec | None:
        """The codec with this payload type, if the section describes one."""
        for codec in self.codecs:
            if codec.payload_type == payload_type:
                return codec
        return None


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """A whole SDP body (RFC 4566 §5). ``bytes(sd)`` is the wire form."""

    origin: Origin
    session_name: str = "-"
    media: tuple[MediaDescription, ...] = ()
    connection: Connection | None = None
    direction: Direction | None = None
    information: str | None = None  # i=
    timing: str = "0 0"  # the first t= line; RFC 3264 §5: "0 0" for SIP
    bandwidth: tuple[str, ...] = ()
    attributes: tuple[Attribute, ...] = ()
    extra_lines: tuple[Line, ...] = ()
    version: int = 0

    # -- helpers ------------------------------------------------------------

    def media_direction(self, m: MediaDescription) -> Direction:
        """RFC 3264 §5.1: media level, else session level, else sendrecv."""
        return m.direction or self.direction or Direction.SENDRECV

    def media_connection(self, m: MediaDescription) -> Connection | None:
        """RFC 4566 §5.7: a media-level c= overrides the session-level one."""
        return m.connection or self.connection

    def media_address(self, m: MediaDescription) -> str | None:
        connection = self.media_connection(m)
        return connection.address if connection is not None else None

    # -- parse --------------------------------------------------------------

    @classmethod
    def parse(cls, data: bytes | str) -> SessionDescription:
        """Parse an SDP body; CRLF or LF line ends, blank lines ignored.

        Raises ``SdpError`` and nothing else on bad input.
        """
        if isinstance(data, str):
            text = data
        else:
            try:
                text = bytes(data).decode("utf-8")
            except UnicodeDecodeError:
                text = bytes(data).decode("latin-1")
        lines = _split_lines(text)
        if not lines or lines[0][1] != "v":
            for number, kind, _ in lines:
                if kind == "v":
                    raise SdpError(f"SDP line {number}: v= must be the first line")
            raise SdpError("SDP has no v= line")
        starts = [i for i, (_, kind, _) in enumerate(lines) if kind == "m"]
        session_lines = lines[: starts[0]] if starts else lines
        media_sections = [lines[a:b] for a, b in pairwise([*starts, len(lines)])]
        return _parse_session(session_lines, media_sections)

    # -- serialise ----------------------------------------------------------

    def __bytes__(self) -> bytes:
        """RFC 4566 §5 order (v o s i u e p c b t r z k a, then each m=), CRLF ends."""
        out: list[str] = []
        for slot in _SESSION_SLOTS:
            if slot == "v":
                out.append(f"v={self.version}")
            elif slot == "o":
                out.append(f"o={self.origin}")
            elif slot == "s":
                out.append(f"s={self.session_name}")
            elif slot == "i" and self.information is not None:
                out.append(f"i={self.information}")
            elif slot == "c" and self.connection is not None:
                out.append(f"c={self.connection}")
            elif slot == "b":
                out.extend(f"b={b}" for b in self.bandwidth)
            elif slot == "t":
                out.append(f"t={self.timing}")
            elif slot == "a":
                if self.direction is not None:
                    out.append(f"a={self.direction.value}")
                out.extend(_attribute_lines(self.attributes))
            out.extend(
                f"{kind}={value}" for kind, value in self.extra_lines if _session_slot(kind) == slot
            )
        for m in self.media:
            out.extend(_media_lines(m))
        return ("\r\n".join(out) + "\r\n").encode("utf-8")


# -- line handling --------------------------------------------------------------

# RFC 4566 §5: the order of the session lines. r= goes with t=; unknown letters
# and repeats of lines we model go in the slot of their letter, or k='s.
_SESSION_SLOTS = "vosiuepcbtzka"
_MEDIA_SLOTS = "micbka"


def _session_slot(kind: str) -> str:
    if kind == "r":
        return "t"
    return kind if kind in _SESSION_SLOTS else "k"


def _media_slot(kind: str) -> str:
    return kind if kind in "ic" else "k"


_Parsed = tuple[int, str, str]  # (line number, type letter, value)


def _split_lines(text: str) -> list[_Parsed]:
    """RFC 4566 §5: ``<type>=<value>``, type one lowercase letter."""
    lines: list[_Parsed] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if line.endswith("\r"):
            line = line[:-1]
        if not line:
            continue
        kind = line[0]
        if len(line) < 2 or line[1] != "=" or not ("a" <= kind <= "z"):
            raise SdpError(f"SDP line {number}: expected 'type=value', got {line!r}")
        lines.append((number, kind, line[2:]))
    return lines


def _attribute(value: str) -> Attribute:
    """RFC 4566 §5.13: ``a=<attribute>`` or ``a=<attribute>:<value>``."""
    name, sep, rest = value.partition(":")
    return (name, rest if sep else None)


def _attribute_lines(attributes: Iterable[Attribute]) -> list[str]:
    return [f"a={n}" if v is None else f"a={n}:{v}" for n, v in attributes]


def _sorted_extras(
    extras: list[Line], order: str, slot_of: Callable[[str], str]
) -> tuple[Line, ...]:
    """Group kept lines by the slot they are written in; stable, so the lines
    of one slot keep their order and a second parse sees the same tuple."""
    return tuple(sorted(extras, key=lambda line: order.index(slot_of(line[0]))))


def _parse_version(number: int, value: str) -> int:
    if value.strip() != "0":
        raise SdpError(f"SDP line {number}: unsupported version {value!r} (only v=0)")
    return 0


def _parse_origin(number: int, value: str) -> Origin:
    fields = value.split()
    if len(fields) != 6:
        raise SdpError(
            f"SDP line {number}: expected 'o=<username> <sess-id> <sess-version> "
            f"<nettype> <addrtype> <address>', got {'o=' + value!r}"
        )
    username, sid, sversion, nettype, addrtype, address = fields
    session_id = _parse_uint(number, sid, "o= session id", SESSION_NUMBER)
    session_version = _parse_uint(number, sversion, "o= session version", SESSION_NUMBER)
    return Origin(username, session_id, session_version, nettype, addrtype, address)


def _parse_connection(number: int, value: str) -> Connection:
    fields = value.split()
    if len(fields) != 3:
        raise SdpError(
            f"SDP line {number}: expected 'c=<nettype> <addrtype> <address>', got {'c=' + value!r}"
        )
    return Connection(*fields)


def _parse_session(lines: list[_Parsed], media_sections: list[list[_Parsed]]) -> SessionDescription:
    number, _, value = lines[0]
    version = _parse_version(number, value)
    origin: Origin | None = None
    session_name: str | None = None
    information: str | None = None
    connection: Connection | None = None
    timing: str | None = None
    direction: Direction | None = None
    bandwidth: list[str] = []
    attributes: list[Attribute] = []
    extras: list[Line] = []
    for number, kind, value in lines[1:]:
        if kind == "o" and origin is None:
            origin = _parse_origin(number, value)
        elif kind == "s" and session_name is None:
            session_name = value
        elif kind == "i" and information is None:
            information = value
        elif kind == "c" and connection is None:
            connection = _parse_connection(number, value)
        elif kind == "t" and timing is None:
            timing = value
        elif kind == "b":
            bandwidth.append(value)
        elif kind == "a":
            name, attr_value = _attribute(value)
            as_direction = _DIRECTIONS.get(name.strip())
            if as_direction is not None and attr_value is None and direction is None:
                direction = as_direction
            else:
                attributes.append((name, attr_value))
        else:
            extras.append((kind, value))
    media = tuple(_parse_media(section) for section in media_sections)  # errors in line order
    if origin is None:
        raise SdpError("SDP has no o= line")
    return SessionDescription(
        origin=origin,
        # liberal: RFC 4566 requires s= and t=, but their absence hurts nobody
        session_name="-" if session_name is None else session_name,
        media=media,
        connection=connection,
        direction=direction,
        information=information,
        timing="0 0" if timing is None else timing,
        bandwidth=tuple(bandwidth),
        attributes=tuple(attributes),
        extra_lines=_sorted_extras(extras, _SESSION_SLOTS, _session_slot),
        version=version,
    )


# the numbers' text, any length: _parse_uint bounds them
_RTPMAP = re.compile(r"\s*([0-9]+)\s+([^/\s]+)/([0-9]+)(?:/([0-9]+))?\s*", re.ASCII)


def _parse_m_line(number: int, value: str) -> tuple[str, int, int | None, str, tuple[str, ...]]:
    fields = value.split()
    if len(fields) < 3:
        raise SdpError(
            f"SDP line {number}: expected 'm=<media> <port> <proto> <fmt> ...', "
            f"got {'m=' + value!r}"
        )
    media, port_field, proto, *formats = fields
    port_text, slash, count = port_field.partition("/")
    port = _parse_uint(number, port_text, "m= port", PORT)
    port_count = _parse_uint(number, count, "m= port count", PORT_COUNT) if slash else None
    return media, port, port_count, proto, tuple(formats)


def _parse_media(lines: list[_Parsed]) -> MediaDescription:
    number, _, value = lines[0]
    media, port, port_count, proto, formats = _parse_m_line(number, value)
    listed = _numeric_formats(formats)
    connection: Connection | None = None
    bandwidth: list[str] = []
    attrs: list[tuple[int, str, str | None]] = []
    extras: list[Line] = []
    for number, kind, value in lines[1:]:
        if kind == "c" and connection is None:
            connection = _parse_connection(number, value)
        elif kind == "b":
            bandwidth.append(value)
        elif kind == "a":
            attrs.append((number, *_attribute(value)))
        else:
            extras.append((kind, value))

    # Pass 1: a=rtpmap for listed payload types (the first one for each wins).
    rtpmaps: dict[int, Codec] = {}
    used: set[int] = set()
    for index, (number, name, attr_value) in enumerate(attrs):
        if name.strip() != "rtpmap" or attr_value is None:
            continue
        head = attr_value.split(None, 1)
        pt = _payload_type(head[0]) if head else None
        if pt is None or pt not in listed or pt in rtpmaps:
            continue
        match = _RTPMAP.fullmatch(attr_value)
        if match is None:
            raise SdpError(
                f"SDP line {number}: expected 'a=rtpmap:<payload type> <encoding>/<clock rate>"
                f"[/<channels>]', got {'a=rtpmap:' + attr_value!r}"
            )
        clock_rate = _parse_uint(number, match.group(3), "a=rtpmap clock rate", CLOCK_RATE)
        channels = match.group(4)
        rtpmaps[pt] = Codec(
            pt,
            match.group(2),
            clock_rate,
            _parse_uint(number, channels, "a=rtpmap channels", CHANNELS) if channels else 1,
        )
        used.add(index)
    static = STATIC_PAYLOAD_TYPES.get(media, {})
    known = {pt: rtpmaps.get(pt) or static.get(pt) for pt in listed}
    codecs = {pt: codec for pt, codec in known.items() if codec is not None}

    # Pass 2: everything else, in order; repeats stay unknown attributes.
    fmtps: dict[int, str] = {}
    direction: Direction | None = None
    ptime: int | None = None
    maxptime: int | None = None
    rtcp_mux = False
    rtcp_port: int | None = None
    rtcp_connection: Connection | None = None
    attributes: list[Attribute] = []
    for index, (_, name, attr_value) in enumerate(attrs):
        if index in used:
            continue
        key = name.strip()
        if key == "fmtp" and attr_value is not None:
            pt_text, _, params = attr_value.partition(" ")
            pt = _payload_type(pt_text)
            if pt is not None and pt in codecs and pt not in fmtps:
                fmtps[pt] = params
                continue
        elif key in _DIRECTIONS and attr_value is None and direction is None:
            direction = _DIRECTIONS[key]
            continue
        elif key == "ptime" and ptime is None and attr_value is not None:
            ptime = _uint(attr_value.strip(), PTIME)
            if ptime is not None:
                continue
        elif key == "maxptime" and maxptime is None and attr_value is not None:
            maxptime = _uint(attr_value.strip(), PTIME)
            if maxptime is not None:
                continue
        elif key == "rtcp-mux" and attr_value is None and not rtcp_mux:
            rtcp_mux = True
            continue
        elif key == "rtcp" and attr_value is not None and rtcp_port is None:
            # RFC 3605 §2.1: a=rtcp:<port> [<nettype> <addrtype> <address>]
            fields = attr_value.split()
            port_value = _uint(fields[0], PORT) if fields else None
            if port_value is not None and len(fields) in (1, 4):
                rtcp_port = port_value
                rtcp_connection = Connection(*fields[1:]) if len(fields) == 4 else None
                continue
        attributes.append((name, attr_value))

    return MediaDescription(
        media=media,
        port=port,
        proto=proto,
        formats=formats,
        connection=connection,
        codecs=tuple(replace(codec, fmtp=fmtps.get(pt)) for pt, codec in codecs.items()),
        direction=direction,
        ptime=ptime,
        maxptime=maxptime,
        rtcp_mux=rtcp_mux,
        rtcp_port=rtcp_port,
        rtcp_connection=rtcp_connection,
        port_count=port_count,
        bandwidth=tuple(bandwidth),
        attributes=tuple(attributes),
        extra_lines=_sorted_extras(extras, _MEDIA_SLOTS, _media_slot),
    )


def _media_lines(m: MediaDescription) -> list[str]:
    """One media section in RFC 4566 §5 order (m i c b k a). The attributes we
    model come before the kept ones, so a kept repeat stays a repeat."""
    out: list[str] = []
    for slot in _MEDIA_SLOTS:
        if slot == "m":
            port = f"{m.port}/{m.port_count}" if m.port_count is not None else str(m.port)
            out.append("m=" + " ".join([m.media, port, m.proto, *m.formats]))
        elif slot == "c" and m.connection is not None:
            out.append(f"c={m.connection}")
        elif slot == "b":
            out.extend(f"b={b}" for b in m.bandwidth)
        elif slot == "a":
            for codec in m.codecs:
                out.append(f"a=rtpmap:{codec.payload_type} {codec}")
                if codec.fmtp is not None:
                    params = f" {codec.fmtp}" if codec.fmtp else ""
                    out.append(f"a=fmtp:{codec.payload_type}{params}")
            if m.ptime is not None:
                out.append(f"a=ptime:{m.ptime}")
            if m.maxptime is not None:
                out.append(f"a=maxptime:{m.maxptime}")
            if m.rtcp_port is not None:
                where = f" {m.rtcp_connection}" if m.rtcp_connection is not None else ""
                out.append(f"a=rtcp:{m.rtcp_port}{where}")
            if m.rtcp_mux:
                out.append("a=rtcp-mux")
            if m.direction is not None:
                out.append(f"a={m.direction.value}")
            out.extend(_attribute_lines(m.attributes))
        out.extend(f"{kind}={value}" for kind, value in m.extra_lines if _media_slot(kind) == slot)
    return out
