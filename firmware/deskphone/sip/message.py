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

from .errors import RemoteProtocolError
from .uri import (
    Address,
    Params,
    Uri,
    format_params,
    get_param,
    is_token,
    parse_params,
    parse_uri,
    set_param,
    split_outside_quotes,
)

SIP_VERSION = "SIP/2.0"
MAX_MESSAGE = 65535  # RFC 3261 §18.1.1: the largest UDP datagram we accept

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

    def with_param(self, name: str, value: str | None) -> Via:
        return replace(self, params=set_param(self.params, name, value))


def split_host_port(text: str, what: str) -> tuple[str, int | None]:
    """``host:port`` / ``[v6]:port`` / ``host`` -> (host, port or None)."""
    from .uri import valid_host

    if text.startswith("["):
        end = text.find("]")
        host, rest = text[: end + 1], text[end + 1 :]
        if end < 0 or (rest and not rest.startswith(":")):
            raise RemoteProtocolError(f"{what}: bad host {text!r}")
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_ = text.partition(":")
        port_text = port_text_ if colon else None
    if not valid_host(host):
        raise RemoteProtocolError(f"{what}: bad host {host!r}")
    if port_text is None:
        return host.lower(), None
    port_text = port_text.strip()
    if not port_text.isdigit() or not 0 < int(port_text) <= 65535:
        raise RemoteProtocolError(f"{what}: bad port {port_text!r}")
    return host.lower(), int(port_text)


@dataclass(frozen=True, slots=True)
class CSeq:
    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        parts = text.split()
        if len(parts) != 2 or not parts[0].isdigit() or not _METHOD_RE.match(parts[1]):
            raise RemoteProtocolError(f"bad CSeq: {text!r}")
        seq = int(parts[0])
        if seq >= 2**31:
            raise RemoteProtocolError(f"bad CSeq: {text!r} (number too large)")
        return cls(seq, parts[1])

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


class _Message:
    """Accessors shared by requests and responses."""

    __slots__ = ()
    headers: Headers
    body: bytes

    @property
    def call_id(self) -> str:
        v = self.headers.get("Call-ID")
        if not v:
            raise RemoteProtocolError("missing Call-ID")
        return v.strip()

    @property
    def cseq(self) -> CSeq:
        v = self.headers.get("CSeq")
        if v is None:
            raise RemoteProtocolError("missing CSeq")
        return CSeq.parse(v)

    @property
    def from_(self) -> Address:
        return self._address("From")

    @property
    def to(self) -> Address:
        return self._address("To")

    def _address(self, name: str) -> Address:
        v = self.headers.get(name)
        if v is None:
            raise RemoteProtocolError(f"missing {name}")
        return Address.parse(v, name)

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


def parse_message(data: bytes, *, stream: bool = False) -> Message:
    """Parse one whole message (a UDP datagram, or one frame cut by ``StreamFramer``).

    For a datagram a missing Content-Length means "the body runs to the end",
    and bytes past Content-Length are ignored (RFC 3261 §18.3). With
    ``stream=True`` Content-Length is mandatory.
    """
    if len(data) > MAX_MESSAGE:
        raise RemoteProtocolError(f"message too large ({len(data)} bytes)", 513)
    end = data.find(b"\r\n\r\n")
    if end >= 0:
        head_bytes, body = data[:end], data[end + 4 :]
    else:
        end = data.find(b"\n\n")
        if end < 0:
            # a header block with no blank line after it: tolerate a datagram that
            # ends right after the last header line (no body).
            if data.endswith(b"\r\n") or data.endswith(b"\n"):
                head_bytes, body = data.rstrip(b"\r\n"), b""
            else:
                raise RemoteProtocolError("no end of header block")
        else:
            head_bytes, body = data[:end], data[end + 2 :]
    try:
        head = head_bytes.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RemoteProtocolError(f"header block is not UTF-8 ({e.reason} at byte {e.start})") from None
    n_lf = head.count("\n")
    if head.count("\r\n") == n_lf == head.count("\r"):
        lines = head.split("\r\n")
    else:
        head = head.replace("\r\n", "\n")
        if "\r" in head:
            raise RemoteProtocolError("bare CR in header block")
        lines = head.split("\n")
    # RFC 3261 §7.5: ignore CRLFs before the start line (keep-alives, sloppy senders)
    first = 0
    while first < len(lines) and not lines[first]:
        first += 1
    if first == len(lines):
        raise RemoteProtocolError("empty message")
    start = lines[first]

    items: list[tuple[str, str]] = []
    append = items.append
    canon = CANONICAL.get
    fast = _PARSE_NAMES.get
    clen_text: str | None = None
    for line in lines[first + 1 :]:
        name, colon, value = line.partition(":")
        cname = fast(name) or canon(name.lower())
        if cname is None:
            if line[:1] in (" ", "\t"):
                # RFC 3261 §7.3.1 folding: a continuation line joins the previous value
                if not items:
                    raise RemoteProtocolError("header block starts with a continuation line")
                n, v = items[-1]
                items[-1] = (n, f"{v} {line.strip()}" if v else line.strip())
                if n == "Content-Length":
                    clen_text = items[-1][1]
                continue
            if not colon:
                raise RemoteProtocolError(f"header line without ':': {line[:60]!r}")
            name = name.rstrip(" \t")
            cname = canon(name.lower())
            if cname is None:
                if not _METHOD_RE.match(name):
                    raise RemoteProtocolError(f"bad header name {name!r}")
                cname = name
        value = value.strip()
        if cname == "Content-Length" and clen_text is None:
            clen_text = value
        append((cname, value))
    headers = Headers._trusted(tuple(items))

    if clen_text is not None:
        if not clen_text.isdigit():
            raise RemoteProtocolError(f"bad Content-Length: {clen_text!r}")
        clen = int(clen_text)
        if clen > len(body):
            raise RemoteProtocolError(
                f"Content-Length {clen} but only {len(body)} body bytes")
        body = body[:clen]
    elif stream:
        raise RemoteProtocolError("missing Content-Length on a stream transport")

    if start.startswith("SIP/"):
        return _parse_status_line(start, headers, body)
    return _parse_request_line(start, headers, body)


def _parse_status_line(start: str, headers: Headers, body: bytes) -> Response:
    parts = start.split(" ", 2)
    if len(parts) < 2:
        raise RemoteProtocolError(f"bad status line: {start[:80]!r}")
    version, code = parts[0], parts[1]
    if version.upper() != SIP_VERSION:
        raise RemoteProtocolError(f"unsupported version {version!r}", 505)
    if len(code) != 3 or not code.isdigit() or code[0] == "0":
        raise RemoteProtocolError(f"bad status code {code!r}")
    return Response(int(code), parts[2] if len(parts) == 3 else "", headers, body)


def _parse_request_line(start: str, headers: Headers, body: bytes) -> Request:
    parts = start.split(" ")
    if len(parts) != 3:
        raise RemoteProtocolError(f"bad request line: {start[:80]!r}")
    method, uri_text, version = parts
    if not _METHOD_RE.match(method):
        raise RemoteProtocolError(f"bad method {method!r}")
    if version != SIP_VERSION:
        if _VERSION_RE.match(version) and version.upper() != SIP_VERSION:
            raise RemoteProtocolError(f"unsupported version {version!r}", 505)
        if version.upper() != SIP_VERSION:
            raise RemoteProtocolError(f"bad request line: {start[:80]!r}")
    uri = parse_uri(uri_text)
    if uri.scheme not in ("sip", "sips", "tel"):
        raise RemoteProtocolError(f"unsupported URI scheme in {uri_text!r}", 416)
    return Request(method, uri, headers, body)


def parse_header_params(value: str) -> tuple[str, Params]:
    """``value;a=b`` -> ("value", params): Expires-like headers, Event, Reason..."""
    head, semi, rest = value.partition(";")
    return head.strip(), parse_params(semi + rest, "header")


class StreamFramer:
    """Cuts a TCP byte stream into messages by Content-Length (RFC 3261 §18.3).

    ``feed`` returns complete frames; ``PING`` stands for a CRLFCRLF keep-alive
    (RFC 5626 §3.5.1), which the transport answers with a single CRLF. Bytes of
    a partial message wait for the next ``feed``.
    """

    PING = b"\r\n\r\n"

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        self._buf = bytearray()
        self._max = max_message

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        buf = self._buf
        while buf:
            # keep-alives and stray line ends between messages
            if buf[:1] in (b"\r", b"\n"):
                if buf[:4] == b"\r\n\r\n":
                    del buf[:4]
                    out.append(self.PING)
                    continue
                if len(buf) < 4 and buf in (b"\r", b"\r\n", b"\r\n\r"):
                    break  # maybe the start of a ping
                del buf[: 2 if buf[:2] == b"\r\n" else 1]
                continue
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > self._max:
                    raise RemoteProtocolError("header block too large on stream", 513)
                break
            head = bytes(buf[:end])
            clen = _stream_content_length(head)
            total = end + 4 + clen
            if total > self._max:
                raise RemoteProtocolError(f"message too large ({total} bytes)", 513)
            if len(buf) < total:
                break
            out.append(bytes(buf[:total]))
            del buf[:total]
        return out

    @property
    def pending(self) -> int:
        return len(self._buf)


_CLEN_RE = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(\S*)", re.IGNORECASE | re.MULTILINE)


def _stream_content_length(head: bytes) -> int:
    m = _CLEN_RE.search(head)
    if m is None:
        raise RemoteProtocolError("missing Content-Length on a stream transport")
    if not m[1].isdigit():
        raise RemoteProtocolError(f"bad Content-Length: {m[1].decode(errors='replace')!r}")
    return int(m[1])
