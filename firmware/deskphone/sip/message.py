"""SIP messages: parse and serialise (RFC 3261 §7, §20, §25).

Parsing is shallow on purpose: the start line and the header block are split
and checked, header names are made canonical (case, compact forms), and the
values stay text until somebody asks for them (``msg.via``, ``msg.cseq``...).
That keeps a received datagram cheap (the phone gets OPTIONS pings and NOTIFYs
it never looks into) and makes every structured accessor the one place its
header's grammar lives.

Invariant (the fuzz tests hold us to it): ``parse_message`` returns a message
or raises ``RemoteProtocolError``, never anything else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from .errors import RemoteProtocolError
from .uri import (
    _HOSTNAME,
    _IPV4,
    _PARAMS,
    _URI_CACHE,
    FAST_SIP_URI,
    Address,
    Params,
    SipUri,
    Uri,
    _split_params,
    format_params,
    get_param,
    is_digits,
    is_token,
    parse_delta_seconds,
    parse_params,
    parse_port,
    parse_uint,
    parse_uri,
    set_param,
    split_outside_quotes,
    valid_host,
)

SIP_VERSION = "SIP/2.0"
MAX_MESSAGE = 65535  # RFC 3261 §18.1.1: the largest UDP datagram we accept
# Numbers in headers, as (max digits, smallest, largest); uri.parse_uint says
# why the length comes first. Ports and delta-seconds are in uri.py.
CSEQ_NUMBER = (10, 0, 2**32 - 1)  # RFC 3261 §8.1.1.5: a 32-bit unsigned integer
MAX_FORWARDS = (3, 0, 255)  # RFC 3261 §20.22
RSEQ = (10, 1, 2**32 - 1)  # RFC 3262 §7.1: starts in 1..2**31-1, goes up by one
# Content-Length: digits only; the message size (MAX_MESSAGE, the body we
# have) bounds the value
CONTENT_LENGTH_DIGITS = 10

# RFC 3261 §7.3.3 compact forms, plus the ones later RFCs registered.
COMPACT = {
    "a": "Accept-Contact", "b": "Referred-By", "c": "Content-Type", "d": "Request-Disposition",
    "e": "Content-Encoding", "f": "From", "i": "Call-ID", "j": "Reject-Contact", "k": "Supported",
    "l": "Content-Length", "m": "Contact", "n": "Identity-Info", "o": "Event", "r": "Refer-To",
    "s": "Subject", "t": "To", "u": "Allow-Events", "v": "Via", "x": "Session-Expires",
    "y": "Identity",
}
_KNOWN = [
    "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Allow-Events",
    "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact",
    "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length",
    "Content-Type", "CSeq", "Date", "Error-Info", "Event", "Expires", "From", "In-Reply-To",
    "Max-Forwards", "Min-Expires", "Min-SE", "MIME-Version", "Organization", "P-Asserted-Identity",
    "Priority", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "Reason",
    "Record-Route", "Refer-To", "Referred-By", "Reply-To", "Require", "Retry-After", "Route",
    "RSeq", "RAck", "Server", "Session-Expires", "Subject", "Subscription-State", "Supported",
    "Timestamp", "To", "Unsupported", "User-Agent", "Via", "Warning", "WWW-Authenticate",
]
CANONICAL: dict[str, str] = {n.lower(): n for n in _KNOWN}
CANONICAL.update(COMPACT)
_KNOWN_SET = frozenset(CANONICAL.values())
# lookup table for the parser: the canonical spellings map to themselves too, so
# the common case needs no .lower()
_PARSE_NAMES: dict[str, str] = {**CANONICAL, **{n: n for n in _KNOWN_SET}}

# Headers whose value is a comma-separated list (RFC 3261 §7.3.1). The auth
# headers are not: their params are separated by commas.
LIST_HEADERS = frozenset({
    "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Allow-Events",
    "Call-Info", "Contact", "Content-Encoding", "Content-Language", "Error-Info", "In-Reply-To",
    "Proxy-Require", "Reason", "Record-Route", "Require", "Route", "Supported", "Unsupported",
    "Via", "Warning",
})

_METHOD_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
_VERSION_RE = re.compile(r"SIP/(\d+)\.(\d+)\Z", re.IGNORECASE)
# methods seen every day: a set lookup instead of the token regex
_COMMON_METHODS = frozenset({
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE",
    "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE",
})
# RFC 3261 §21: status codes are 100-699
_STATUS_CODES = {str(c): c for c in range(100, 700)}
_CL = CANONICAL["content-length"]
# The usual request line: a token method, a Request-URI that SipUri.parse
# accepts without headers (uri.FAST_SIP_URI: the common form, lower-case
# scheme, port in range), and exactly SIP/2.0.
_FAST_REQUEST_LINE_RE = re.compile(
    rf"([A-Za-z0-9\-.!%*_+`'~]++) ({FAST_SIP_URI}) SIP/2\.0\Z")
_CR_LF = (13, 10)
_new_object = object.__new__


def canonical_name(name: str) -> str:
    """``via``/``v``/``VIA`` -> ``Via``; unknown names keep their spelling."""
    return CANONICAL.get(name.lower(), name)


class Headers:
    """An ordered, immutable list of (canonical name, value) pairs.

    Lookups are case-insensitive and understand compact forms; methods that
    change something return a new ``Headers``.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: tuple[tuple[str, str], ...] = tuple(
            (canonical_name(n), v) for n, v in items)

    @classmethod
    def _trusted(cls, items: tuple[tuple[str, str], ...]) -> Headers:
        h = cls.__new__(cls)
        h._items = items
        return h

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._items == other._items

    def __hash__(self) -> int:
        return hash(self._items)

    def __repr__(self) -> str:
        return f"Headers({list(self._items)!r})"

    def _match(self, name: str) -> str:
        return canonical_name(name)

    def get(self, name: str) -> str | None:
        """The first value of ``name`` (for a list header: the whole first line)."""
        key = canonical_name(name)
        if key in _KNOWN_SET:  # stored names of known headers are canonical
            for n, v in self._items:
                if n == key:
                    return v
            return None
        lkey = key.lower()
        for n, v in self._items:
            if n.lower() == lkey:
                return v
        return None

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``; list headers are split at top-level commas."""
        key = canonical_name(name)
        lkey = key.lower()
        known = key in _KNOWN_SET
        split = key in LIST_HEADERS
        out: list[str] = []
        for n, v in self._items:
            if n == key or (not known and n.lower() == lkey):
                if split and "," in v:
                    out.extend(p.strip() for p in split_outside_quotes(v, ",") if p.strip())
                else:
                    out.append(v)
        return out

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def add(self, name: str, value: str, *, first: bool = False) -> Headers:
        item = (canonical_name(name), value)
        return Headers._trusted((item, *self._items) if first else (*self._items, item))

    def remove(self, name: str) -> Headers:
        lkey = self._match(name).lower()
        return Headers._trusted(tuple(i for i in self._items if i[0].lower() != lkey))

    def set(self, name: str, value: str) -> Headers:
        """Replace every ``name`` header by one, in the place of the first."""
        key = self._match(name)
        lkey = key.lower()
        out: list[tuple[str, str]] = []
        done = False
        for item in self._items:
            if item[0].lower() == lkey:
                if not done:
                    out.append((key, value))
                    done = True
            else:
                out.append(item)
        if not done:
            out.append((key, value))
        return Headers._trusted(tuple(out))

    def replace_first(self, name: str, value: str) -> Headers:
        """Replace only the first occurrence (e.g. the top Via)."""
        lkey = self._match(name).lower()
        out = list(self._items)
        for i, (n, _) in enumerate(out):
            if n.lower() == lkey:
                out[i] = (n, value)
                return Headers._trusted(tuple(out))
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class Via:
    """One Via value: ``SIP/2.0/UDP host:port;branch=...;rport``."""

    transport: str
    host: str
    port: int | None = None
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> Via:
        m = _FAST_VIA_RE.match(text)
        if m is None:
            return cls._parse_full(text)
        transport, host, port_text, params = m.groups()
        port = None
        if port_text is not None:
            port = int(port_text)  # [0-9]{1,5}: the regex bounds it
            if not 0 < port <= 65535:
                return cls._parse_full(text)  # for its error
        via = _new_object(Via)
        s_transport, s_host, s_port, s_params = _SET_VIA
        s_transport(via, transport.upper())
        s_host(via, host.lower())
        s_port(via, port)
        s_params(via, _split_params(params) if params else ())
        return via

    @classmethod
    def _parse_full(cls, text: str) -> Via:
        """The full parser: LWS around '/', ':' and ';', IPv6, quoted parameters."""
        proto, _, rest = text.strip().partition(" ")
        parts = [p.strip() for p in proto.split("/")]
        rest = rest.strip()
        if len(parts) != 3 or parts[0].upper() != "SIP" or not rest:
            # "SIP / 2.0 / UDP host" is legal (LWS around '/'): retry without spaces
            m = re.match(r"\s*SIP\s*/\s*2\.0\s*/\s*([A-Za-z0-9\-.!%*_+`'~]+)\s+(.*)\Z",
                         text, re.IGNORECASE | re.DOTALL)
            if m is None:
                raise RemoteProtocolError(f"bad Via: {text!r}")
            transport, rest = m[1], m[2].strip()
        else:
            if parts[1] != "2.0" or not is_token(parts[2]):
                raise RemoteProtocolError(f"bad Via: {text!r}")
            transport = parts[2]
        sent_by, semi, params = rest.partition(";")
        sent_by = sent_by.strip()
        host, port = split_host_port(sent_by, f"Via {text!r}")
        return cls(transport.upper(), host, port, parse_params(semi + params, f"Via {text!r}"))

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/2.0/{self.transport} {self.host}{port}{format_params(self.params)}"

    def param(self, name: str) -> str | None:
        return get_param(self.params, name)

    @property
    def branch(self) -> str | None:
        return self.param("branch")

    @property
    def rport(self) -> int | None:
        """RFC 3581 §4: the source port a server filled in; None when absent,
        or empty (a request asking for it)."""
        v = self.param("rport")
        return parse_port(v, "Via rport") if v else None

    def with_param(self, name: str, value: str | None) -> Via:
        return replace(self, params=set_param(self.params, name, value))


_SET_VIA = tuple(Via.__dict__[f].__set__ for f in ("transport", "host", "port", "params"))
# the usual Via: no LWS but the one SP, a hostname or IPv4 sent-by, plain params
_FAST_VIA_RE = re.compile(
    r"SIP/2\.0/([A-Za-z0-9\-.!%*_+`'~]+) "
    rf"({_IPV4}|{_HOSTNAME})(?::([0-9]{{1,5}}))?({_PARAMS})\Z")


def split_host_port(text: str, what: str) -> tuple[str, int | None]:
    """``host:port`` / ``[v6]:port`` / ``host`` -> (host, port or None)."""
    if text.startswith("["):
        end = text.find("]")
        host, rest = text[: end + 1], text[end + 1 :]
        if end < 0 or (rest and not rest.startswith(":")):
            raise RemoteProtocolError(f"{what}: bad host {text!r}")
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_ = text.partition(":")
        host = host.rstrip(" \t")  # COLON is SWS ":" SWS (RFC 3261 §25.1)
        port_text = port_text_ if colon else None
    if not valid_host(host):
        raise RemoteProtocolError(f"{what}: bad host {host!r}")
    if port_text is None:
        return host.lower(), None
    return host.lower(), parse_port(port_text.strip(), what)


@dataclass(frozen=True, slots=True)
class CSeq:
    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        parts = text.split()
        if (len(parts) != 2 or not is_digits(parts[0])
                or (parts[1] not in _COMMON_METHODS and not _METHOD_RE.match(parts[1]))):
            raise RemoteProtocolError(f"bad CSeq: {text!r}")
        seq_text = parts[0]
        if len(seq_text) <= 9:  # the usual case: digits, and any 9 fit 32 bits
            seq = int(seq_text)
        else:
            max_digits, low, high = CSEQ_NUMBER
            seq = parse_uint(seq_text, max_digits, "CSeq number", low=low, high=high)
        c = _new_object(CSeq)
        _SET_CSEQ_SEQ(c, seq)
        _SET_CSEQ_METHOD(c, parts[1])
        return c

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


# delta-seconds, then LWS and a comment or parameters, or nothing
_RETRY_AFTER_RE = re.compile(r"([^\s(;]*)[ \t]*(?:[(;]|\Z)")
_SET_CSEQ_SEQ = CSeq.__dict__["seq"].__set__
_SET_CSEQ_METHOD = CSeq.__dict__["method"].__set__


class _Message:
    """Accessors shared by requests and responses."""

    __slots__ = ()
    headers: Headers
    body: bytes

    def _single(self, name: str) -> str:
        """The value of a header that must appear exactly once (RFC 4475 multi01)."""
        found: str | None = None
        for n, v in self.headers._items:
            if n == name:
                if found is not None:
                    raise RemoteProtocolError(f"more than one {name} header")
                found = v
        if found is None:
            raise RemoteProtocolError(f"missing {name}")
        return found

    @property
    def call_id(self) -> str:
        v = self._single("Call-ID")
        if not v:
            raise RemoteProtocolError("missing Call-ID")
        if len(v.split()) != 1:
            raise RemoteProtocolError(f"bad Call-ID: {v!r}")
        return v

    @property
    def cseq(self) -> CSeq:
        return CSeq.parse(self._single("CSeq"))

    @property
    def from_(self) -> Address:
        return self._address("From")

    @property
    def to(self) -> Address:
        return self._address("To")

    def _address(self, name: str) -> Address:
        return Address.parse(self._single(name), name)

    @property
    def vias(self) -> list[Via]:
        return [Via.parse(v) for v in self.headers.get_all("Via")]

    @property
    def top_via(self) -> Via:
        v = self.headers.get_all("Via")
        if not v:
            raise RemoteProtocolError("missing Via")
        return Via.parse(v[0])

    @property
    def contacts(self) -> list[Address]:
        return [Address.parse(v, "Contact") for v in self.headers.get_all("Contact")
                if v.strip() != "*"]

    def addresses(self, name: str) -> list[Address]:
        return [Address.parse(v, name) for v in self.headers.get_all(name)]

    @property
    def content_type(self) -> str | None:
        v = self.headers.get("Content-Type")
        return v.split(";", 1)[0].strip().lower() if v else None

    # Numeric headers: None when absent, RemoteProtocolError when malformed.

    @property
    def expires(self) -> int | None:
        """Expires (RFC 3261 §20.19)."""
        v = self.headers.get("Expires")
        return None if v is None else parse_delta_seconds(v, "Expires")

    @property
    def min_expires(self) -> int | None:
        """Min-Expires of a 423 (RFC 3261 §20.23)."""
        v = self.headers.get("Min-Expires")
        return None if v is None else parse_delta_seconds(v, "Min-Expires")

    @property
    def retry_after(self) -> int | None:
        """The delta-seconds of Retry-After (RFC 3261 §20.33); the comment and
        the parameters after it are not read."""
        v = self.headers.get("Retry-After")
        if v is None:
            return None
        m = _RETRY_AFTER_RE.match(v)
        return parse_delta_seconds(v if m is None else m[1], "Retry-After")

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards (RFC 3261 §20.22)."""
        v = self.headers.get("Max-Forwards")
        if v is None:
            return None
        max_digits, low, high = MAX_FORWARDS
        return parse_uint(v, max_digits, "Max-Forwards", low=low, high=high)

    @property
    def rseq(self) -> int | None:
        """RSeq of a reliable provisional response (RFC 3262 §7.1)."""
        v = self.headers.get("RSeq")
        if v is None:
            return None
        max_digits, low, high = RSEQ
        return parse_uint(v, max_digits, "RSeq", low=low, high=high)

    def _serialise(self, start: str) -> bytes:
        lines = [start]
        for n, v in self.headers:
            if n != "Content-Length":
                lines.append(f"{n}: {v}")
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


@dataclass(frozen=True, slots=True)
class Request(_Message):
    method: str
    uri: Uri
    headers: Headers
    body: bytes = b""

    @property
    def cseq(self) -> CSeq:
        """The CSeq, whose method must be the request's (RFC 3261 §8.1.1.5, RFC 4475
        mismatch01/02)."""
        c = CSeq.parse(self._single("CSeq"))
        if c.method != self.method:
            raise RemoteProtocolError(
                f"CSeq method {c.method!r} does not match request method {self.method!r}")
        return c

    def __bytes__(self) -> bytes:
        return self._serialise(f"{self.method} {self.uri} {SIP_VERSION}")

    def with_headers(self, headers: Headers) -> Request:
        return replace(self, headers=headers)


@dataclass(frozen=True, slots=True)
class Response(_Message):
    status: int
    reason: str
    headers: Headers
    body: bytes = b""

    def __bytes__(self) -> bytes:
        return self._serialise(f"{SIP_VERSION} {self.status} {self.reason}")

    def with_headers(self, headers: Headers) -> Response:
        return replace(self, headers=headers)


Message = Request | Response


class _UnbuiltUri(str):
    """A Request-URI that ``_FAST_REQUEST_LINE_RE`` has checked but nobody has read."""

    __slots__ = ()


# The parser does not build a Request or Response through its __init__: a
# frozen dataclass's __init__ goes through object.__setattr__ for every field
# (~0.12 µs each here), which is a fifth of a small message's parse time.
# Instead it fills a plain object with the same slots (same base, same
# __slots__, so the same memory layout) and then makes it a Request or a
# Response by assigning __class__, which Python allows between such classes.
# That is ~0.13 µs cheaper than filling the frozen object through the slot
# descriptors. The objects are exactly as immutable as ones built by __init__.


class _RequestSlots(_Message):
    __slots__ = ("method", "uri", "headers", "body")
    method: str
    uri: Uri | _UnbuiltUri
    headers: Headers
    body: bytes


class _ResponseSlots(_Message):
    __slots__ = ("status", "reason", "headers", "body")
    status: int
    reason: str
    headers: Headers
    body: bytes


assert _RequestSlots.__slots__ == Request.__slots__
assert _ResponseSlots.__slots__ == Response.__slots__


class _LazyRequestUri:
    """``Request.uri``, in place of the slot's own descriptor.

    The parser may leave a checked Request-URI in the slot as text (an
    ``_UnbuiltUri``); the first read builds the SipUri with ``SipUri.parse``,
    which accepts any text the check accepts (a property test holds us to
    that), and keeps it in the slot. The phone never reads the Request-URI of
    most requests it gets (OPTIONS pings, NOTIFYs, in-dialog ACKs and BYEs),
    and building one costs several times what checking it does. Whatever reads
    the field (``==``, ``hash``, ``repr``, ``bytes``, ``dataclasses.replace``,
    pickling) sees the SipUri; ``Request(...)`` stores the Uri it is given.
    """

    __slots__ = ("_get", "_set")

    def __init__(self, slot: Any) -> None:
        self._get = slot.__get__
        self._set = slot.__set__

    def __get__(self, obj: Request | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        uri = self._get(obj)
        if type(uri) is _UnbuiltUri:
            uri = SipUri.parse(str(uri))
            self._set(obj, uri)
        return uri

    def __set__(self, obj: Request, value: Uri) -> None:
        self._set(obj, value)  # Request.__init__ (frozen: nothing else gets here)


setattr(Request, "uri", _LazyRequestUri(Request.__dict__["uri"]))  # noqa: B010


def parse_message(data: bytes, *, stream: bool = False) -> Message:
    """Parse one whole message (a UDP datagram, or one frame cut by ``StreamFramer``).

    For a datagram a missing Content-Length means "the body runs to the end",
    and bytes past Content-Length are ignored (RFC 3261 §18.3). With
    ``stream=True`` Content-Length is mandatory.

    Every header line is checked (a token name, a ':', folding joined, RFC 3261
    §7.3.1), Content-Length is checked against the body, the start line is
    parsed and the Request-URI checked in full; the other header values are
    checked when read. A Request-URI in the usual form is built when ``.uri``
    is first read (that cannot fail: the check here is the one that can).
    """
    if len(data) > MAX_MESSAGE:
        raise RemoteProtocolError(f"message too large ({len(data)} bytes)", 513)
    if not data or data[0] in _CR_LF:
        # RFC 3261 §7.5: ignore CRLFs before the start line
        data = data.lstrip(b"\r\n")
        if not data:
            raise RemoteProtocolError("empty message")
    head_bytes, blank, body = data.partition(b"\r\n\r\n")
    if blank:
        try:
            head = head_bytes.decode()
        except UnicodeDecodeError:
            head = _decode_head(head_bytes)  # raises, with where
        lines = head.split("\r\n")
        joined = "".join(lines)
        if "\n" in joined or "\r" in joined:  # a bare CR or LF somewhere
            lines, body = _split_lenient(data)
    else:
        lines, body = _split_lenient(data)

    items: list[tuple[str, str]] = []
    append = items.append
    fast = _PARSE_NAMES.get
    clens: list[int] = []
    it = iter(lines)
    start = next(it)
    for line in it:
        # fast path: "Known-Name: value"
        name, sep, value = line.partition(": ")
        cname = fast(name)
        if cname is None or not sep:
            if line[:1] in " \t":
                # RFC 3261 §7.3.1 folding: a continuation line joins the previous value
                if not items:
                    raise RemoteProtocolError("header block starts with a continuation line")
                more = line.strip(" \t")
                if more:
                    n, v = items[-1]
                    items[-1] = (n, f"{v} {more}" if v else more)
                continue
            name, colon, value = line.partition(":")
            if not colon:
                raise RemoteProtocolError(f"header line without ':': {line[:60]!r}")
            name = name.rstrip(" \t")
            cname = CANONICAL.get(name.lower())
            if cname is None:
                if _METHOD_RE.match(name) is None:
                    raise RemoteProtocolError(f"bad header name {name[:60]!r}")
                cname = name
        if cname is _CL:
            clens.append(len(items))
        append((cname, value.strip(" \t")))
    headers = _new_object(Headers)
    headers._items = tuple(items)

    if clens:
        clen_text = items[clens[0]][1]
        if len(clens) > 1 and any(items[i][1] != clen_text for i in clens):
            # RFC 4475 mcl01: two lengths, no way to know the body's
            raise RemoteProtocolError("conflicting Content-Length headers")
        if len(clen_text) <= 9 and clen_text.isascii() and clen_text.isdigit():
            clen = int(clen_text)  # the usual case, in short
        else:
            clen = parse_uint(clen_text, CONTENT_LENGTH_DIGITS, "Content-Length")
        if clen > len(body):
            raise RemoteProtocolError(
                f"Content-Length {clen} but only {len(body)} body bytes")
        if clen < len(body):
            body = body[:clen]
    elif stream:
        raise RemoteProtocolError("missing Content-Length on a stream transport")

    # the usual start lines; the functions below take every other one (and say
    # what is wrong with it)
    if start[:8] == "SIP/2.0 ":
        status = _STATUS_CODES.get(start[8:11])
        if status is not None and start[11:12] in (" ", ""):
            resp = _new_object(_ResponseSlots)
            resp.status = status
            resp.reason = start[12:]
            resp.headers = headers
            resp.body = body
            resp.__class__ = Response  # type: ignore[assignment]
            return resp  # type: ignore[return-value]
    elif (m := _FAST_REQUEST_LINE_RE.match(start)) is not None:
        method, uri_text = m.groups()
        req = _new_object(_RequestSlots)
        req.method = method
        req.uri = _UnbuiltUri(uri_text)  # checked now, built when req.uri is read
        req.headers = headers
        req.body = body
        req.__class__ = Request  # type: ignore[assignment]
        return req  # type: ignore[return-value]
    if start.startswith("SIP/"):
        return _parse_status_line(start, headers, body)
    return _parse_request_line(start, headers, body)


def _decode_head(head: bytes) -> str:
    try:
        return head.decode()
    except UnicodeDecodeError as e:
        raise RemoteProtocolError(
            f"header block is not UTF-8 ({e.reason} at byte {e.start})") from None


def _split_lenient(data: bytes) -> tuple[list[str], bytes]:
    """Header lines and body when line ends are not all CRLF.

    Bare LF line ends are tolerated (the blank line may be LF LF or LF CRLF);
    a bare CR is not (RFC 3261 §7: CRLF).
    """
    ends = [i for i in (data.find(b"\r\n\r\n"), data.find(b"\n\n"), data.find(b"\n\r\n"))
            if i >= 0]
    if ends:
        end = min(ends)
        rest = data[end:]
        blank = next(b for b in (b"\r\n\r\n", b"\n\r\n", b"\n\n") if rest.startswith(b))
        head_bytes, body = data[:end], rest[len(blank) :]
        if head_bytes.endswith(b"\r"):  # CRLF, then an LF blank line
            head_bytes = head_bytes[:-1]
    elif data.endswith(b"\n"):
        # a header block with no blank line after it: tolerate a datagram that
        # ends right after the last header line (no body)
        head_bytes, body = data, b""
    else:
        raise RemoteProtocolError("no end of header block")
    head = _decode_head(head_bytes).replace("\r\n", "\n")
    if head.endswith("\n"):
        head = head[:-1]
    if "\r" in head:
        raise RemoteProtocolError("bare CR in header block")
    return head.split("\n"), body


def _parse_status_line(start: str, headers: Headers, body: bytes) -> Response:
    version, _, rest = start.partition(" ")
    code, _, reason = rest.partition(" ")
    if version != SIP_VERSION:
        if version[:4].upper() != "SIP/" or not version[4:]:
            raise RemoteProtocolError(f"bad status line: {start[:80]!r}")
        if version.upper() != SIP_VERSION:
            raise RemoteProtocolError(f"unsupported version {version[:20]!r}", 505)
    status = _STATUS_CODES.get(code)
    if status is None:
        raise RemoteProtocolError(f"bad status code {code[:20]!r}")
    resp = _new_object(_ResponseSlots)
    resp.status = status
    resp.reason = reason
    resp.headers = headers
    resp.body = body
    resp.__class__ = Response  # type: ignore[assignment]
    return resp  # type: ignore[return-value]


def _parse_request_line(start: str, headers: Headers, body: bytes) -> Message:
    """Any request line (parse_message has a fast path for the usual ones)."""
    parts = start.split(" ")
    if len(parts) != 3:
        raise RemoteProtocolError(f"bad request line: {start[:80]!r}")
    method, uri_text, version = parts
    if method not in _COMMON_METHODS and not _METHOD_RE.match(method):
        if method[:4].upper() == "SIP/":  # SIP-Version is case-insensitive (§7.1)
            return _parse_status_line(start, headers, body)
        raise RemoteProtocolError(f"bad method {method[:40]!r}")
    if version != SIP_VERSION:
        if _VERSION_RE.match(version) and version.upper() != SIP_VERSION:
            raise RemoteProtocolError(f"unsupported version {version!r}", 505)
        if version.upper() != SIP_VERSION:
            raise RemoteProtocolError(f"bad request line: {start[:80]!r}")
    uri: Uri | None = _URI_CACHE.get(uri_text)
    if uri is None:
        if uri_text[:4] == "sip:":
            uri = SipUri.parse(uri_text)
        elif uri_text[:1] == "<":
            raise RemoteProtocolError(f"Request-URI in <...>: {uri_text[:80]!r}")  # ltgtruri
        else:
            uri = parse_uri(uri_text)
            if type(uri) is not SipUri and uri.scheme != "tel":
                raise RemoteProtocolError(f"unsupported URI scheme in {uri_text[:80]!r}", 416)
    if type(uri) is SipUri and uri.headers:
        # RFC 3261 §19.1.1: headers are not allowed in a Request-URI (RFC 4475 escruri)
        raise RemoteProtocolError(f"Request-URI with headers: {uri_text[:80]!r}")
    req = _new_object(_RequestSlots)
    req.method = method
    req.uri = uri
    req.headers = headers
    req.body = body
    req.__class__ = Request  # type: ignore[assignment]
    return req  # type: ignore[return-value]


def parse_header_params(value: str) -> tuple[str, Params]:
    """``value;a=b`` -> ("value", params): Expires-like headers, Event, Reason..."""
    head, semi, rest = value.partition(";")
    return head.strip(), parse_params(semi + rest, "header")


class StreamFramer:
    """Cuts a TCP byte stream into messages by Content-Length (RFC 3261 §18.3).

    ``feed`` returns complete frames; ``PING`` stands for a CRLFCRLF keep-alive
    (RFC 5626 §3.5.1), which the transport answers with a single CRLF. Bytes of
    a partial message wait for the next ``feed``; a lone CRLF between messages
    (a keep-alive pong) is dropped.

    The work per ``feed`` is proportional to the new bytes, not to what is
    buffered: the search for the blank line resumes where it stopped, and once
    a head is seen the frame's length is remembered. A peer that trickles a
    huge header block one byte at a time costs O(n), and is cut off with a 513
    at ``max_message`` bytes.
    """

    PING = b"\r\n\r\n"

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        self._buf = bytearray()
        self._max = max_message
        self._scan = 0  # the blank line is not before this offset
        self._need = -1  # length of the frame at the front, once its head is in

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf += data
        out: list[bytes] = []
        while buf:
            if self._need < 0:
                if buf[0] in _CR_LF:
                    # keep-alives and stray line ends between messages
                    if buf[:4] == b"\r\n\r\n":
                        del buf[:4]
                        out.append(self.PING)
                        continue
                    if len(buf) < 4 and bytes(buf) in (b"\r", b"\r\n", b"\r\n\r"):
                        break  # maybe the start of a ping
                    del buf[: 2 if buf[:2] == b"\r\n" else 1]
                    continue
                end = buf.find(b"\r\n\r\n", self._scan)
                if end < 0:
                    if len(buf) > self._max:
                        raise RemoteProtocolError("header block too large on stream", 513)
                    self._scan = max(0, len(buf) - 3)
                    break
                total = end + 4 + _stream_content_length(bytes(buf[:end]))
                if total > self._max:
                    raise RemoteProtocolError(f"message too large ({total} bytes)", 513)
                self._need = total
            if len(buf) < self._need:
                break
            out.append(bytes(buf[: self._need]))
            del buf[: self._need]
            self._need = -1
            self._scan = 0
        return out

    @property
    def pending(self) -> int:
        return len(self._buf)

    @property
    def head_pending(self) -> bool:
        """A message has begun and its header block is not complete: what a
        transport times (slowloris). Line ends waiting to become a keep-alive
        are no message."""
        return self._need < 0 and bool(self._buf) and self._buf[0] not in _CR_LF


# Content-Length lines (any case, compact "l", LWS and folding before the
# value): the rest of the line, which must be the number parse_message reads
_CLEN_RE = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(?:\r?\n[ \t]+)*([^\r\n]*)",
                      re.IGNORECASE | re.MULTILINE)


def _stream_content_length(head: bytes) -> int:
    found = {v.strip(b" \t") for v in _CLEN_RE.findall(head)}
    if not found:
        raise RemoteProtocolError("missing Content-Length on a stream transport")
    if len(found) > 1:
        raise RemoteProtocolError("conflicting Content-Length headers")
    value = found.pop().decode(errors="replace")
    return parse_uint(value, CONTENT_LENGTH_DIGITS, "Content-Length")
