"""SIP/SIPS URIs (RFC 3261 §19.1, §25.1) and name-addr values (§20.10).

A URI is kept close to its wire text: parameters and headers stay in the
order they came, with their original spelling, so that ``str(parse(s))`` only
normalises what RFC 3261 calls equivalent (scheme and host case). Escapes
(``%41``) are kept as they came too: comparing user parts that way is what
RFC 3261 §19.1.4 calls equivalent only after unescaping, which is left to the
code that compares.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from .errors import RemoteProtocolError

Params = tuple[tuple[str, str | None], ...]

# RFC 3261 §25.1 token / host characters; the URI regex only splits the text,
# the parts are checked afterwards so errors can say which part is wrong.
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}"
# labels: alphanumeric runs joined by hyphens (so they neither start nor end
# with one), written with possessive quantifiers so a failed match does not
# backtrack through every split of a label
_LABEL = r"[A-Za-z0-9]++(?:-++[A-Za-z0-9]++)*+"
_HOSTNAME = rf"(?:{_LABEL}\.)*[A-Za-z][A-Za-z0-9]*+(?:-++[A-Za-z0-9]++)*+\.?"
# RFC 3261 §25.1 host: hostname (toplabel starts with a letter) / IPv4address / IPv6reference
_HOST_RE = re.compile(rf"(?:{_IPV4}|{_HOSTNAME}|\[[0-9A-Fa-f:.]+\])\Z")
_SIP_URI_RE = re.compile(
    r"(?P<scheme>[sS][iI][pP][sS]?):"
    r"(?:(?P<userinfo>[^@]*)@)?"
    r"(?P<host>\[[^\]]*\]|[^;?:]*)"
    r"(?::(?P<port>[^;?]*))?"
    r"(?P<params>;[^?]*)?"
    r"(?:\?(?P<headers>.*))?\Z",
    re.DOTALL,
)
# The common shape (lower-case scheme, no password, no IPv6, no escapes in
# parameters, no headers), checked in one match. Whatever it accepts the full
# parser below accepts too, with the same result (a property test holds us to
# that); anything else takes the full parser.
_FAST_USER = (r"(?!@)[A-Za-z0-9\-_.!~*'()&=+$,;?/]*+"
              r"(?:%[0-9A-Fa-f]{2}[A-Za-z0-9\-_.!~*'()&=+$,;?/]*+)*+")
_FAST_URI_PARAMS = r"(?:;[A-Za-z0-9\-.!*_+~']+(?:=[A-Za-z0-9\-_.!~*'()\[\]/:&+$]+)?)*"
_FAST_SIP_URI_RE = re.compile(
    rf"(sips?):(?:({_FAST_USER})@)?({_IPV4}|{_HOSTNAME})(?::([0-9]{{1,5}}))?"
    rf"({_FAST_URI_PARAMS})\Z")
# 1-65535, no leading zeros
_PORT = r"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
# The same form as a pattern without groups, and with the port range checked
# too: text it matches SipUri.parse accepts, and the URI it gives has no
# headers. message.py checks a Request-URI with it and builds the SipUri only
# when somebody reads it (a property test holds both to that).
FAST_SIP_URI = (rf"sips?:(?:{_FAST_USER}@)?(?:{_IPV4}|{_HOSTNAME})(?::{_PORT})?"
                rf"{_FAST_URI_PARAMS}")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*:")
# RFC 3261 §25.1 user / password: unreserved, escaped, user-unreserved
_USER_CHARS = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})*\Z")
_PASSWORD_CHARS = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,]|%[0-9A-Fa-f]{2})*\Z")
# hname / hvalue: hnv-unreserved, unreserved, escaped
_HNV_CHARS = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$]|%[0-9A-Fa-f]{2})*\Z")
# gen-value (§25.1: token / host / quoted-string), and URI pvalues: one word
# without LWS, quotes or separators, or one whole quoted-string
_PVALUE_RE = re.compile(r'(?:[^\s";,<>\\]+|"(?:[^"\\]|\\.)*")\Z', re.DOTALL)
_QUOTED_RE = re.compile(r'"(?:[^"\\]|\\.)*"\Z', re.DOTALL)
# parameters that need none of parse_params' care (no LWS, no quotes)
_PARAMS = r"(?:;[A-Za-z0-9\-.!%*_+`'~]+(?:=[^\s\";,<>\\]+)?)*"
_FAST_PARAMS_RE = re.compile(_PARAMS + r"\Z")
# the usual name-addr: ["quoted" or tokens] <uri> params, no LWS inside
_FAST_ADDRESS_RE = re.compile(
    r'(?:"((?:[^"\\\r\n]|\\[^\r\n])*)" *'
    r"|([A-Za-z0-9\-.!%*_+`'~]+(?: [A-Za-z0-9\-.!%*_+`'~]+)*) *)?"
    r'<([^<>"\s]+)>(' + _PARAMS + r")\Z")
_CTL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def is_token(text: str) -> bool:
    return _TOKEN_RE.match(text) is not None


def is_digits(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also says yes to '²', '５' and '٣'."""
    return text.isascii() and text.isdigit()


# Numbers on the wire (RFC 3261 §25.1: 1*DIGIT, no sign, no blanks), bounded by
# length before int(): Python refuses to convert more than 4,300 digits (a
# ValueError, not ours) and the conversion is quadratic below that. Leading
# zeros are legal (RFC 4475 wsinv: "Max-Forwards: 0068") and do not count.
# (max digits, smallest, largest) of each notion:
PORT = (5, 1, 65535)
DELTA_SECONDS = (10, 0, 2**32 - 1)  # RFC 3261 §20.19: 0 to (2**32)-1


def parse_uint(text: str, max_digits: int, what: str, *, low: int = 0,
               high: int | None = None) -> int:
    """``text`` as a number: ASCII digits, at most ``max_digits`` of them after
    any leading zeros, ``low`` to ``high``; anything else is a
    RemoteProtocolError (400) naming ``what``.

    The one place a SIP number is read. Callers strip the LWS their grammar
    allows; '+1', ' 1', '²' (isdigit, but int() refuses it) and '٣' (isdigit,
    and int() takes it) are refused here.
    """
    if not text.isascii() or not text.isdigit():
        raise RemoteProtocolError(f"bad {what}: {shown(text)}")
    digits = text.lstrip("0") or "0"
    if len(digits) > max_digits:
        raise RemoteProtocolError(f"bad {what}: {len(digits)} digits (at most {max_digits})")
    value = int(digits)
    if value < low or (high is not None and value > high):
        span = f"{low}-{high}" if high is not None else f"{low} or more"
        raise RemoteProtocolError(f"bad {what}: {text!r} (not in {span})")
    return value


def bracketed(host: str) -> str:
    """A host as it is written in a URI or a Via: an IPv6 address in brackets (RFC 3261
    §25.1 IPv6reference), anything else as it is. The one place brackets are added."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def host_port(host: str, port: int | None) -> str:
    """``host:port`` (``[v6]:port``), or the host alone without a port."""
    return f"{bracketed(host)}:{port}" if port else bracketed(host)


def parse_port(text: str, where: str) -> int:
    """A port (1-65535) in a URI, a Via sent-by or an rport parameter."""
    max_digits, low, high = PORT
    return parse_uint(text, max_digits, f"port in {where}", low=low, high=high)


def parse_delta_seconds(text: str, what: str) -> int:
    """delta-seconds (RFC 3261 §25.1): Expires, Min-Expires, Retry-After, expires=."""
    max_digits, low, high = DELTA_SECONDS
    return parse_uint(text, max_digits, what, low=low, high=high)


def shown(text: str, limit: int = 40) -> str:
    """``text`` for an error message: its repr, cut to ``limit`` characters."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def valid_host(host: str) -> bool:
    """True for a hostname, an IPv4 address or a bracketed IPv6 reference."""
    if _HOST_RE.match(host) is None:
        return False
    if host[0] == "[":
        return _valid_ipv6(host[1:-1])
    return True


def _valid_ipv6(text: str) -> bool:
    import ipaddress  # only for the rare IPv6 literal

    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def parse_params(text: str, what: str) -> Params:
    """``;a=b;c`` -> (("a", "b"), ("c", None)). Values may be quoted strings.

    LWS around ';' and '=' is allowed (RFC 3261 §25.1 SEMI, EQUAL); a name
    must be a token and a value one word or one quoted-string.
    """
    if not text:
        return ()
    if _FAST_PARAMS_RE.match(text) is not None:
        return _split_params(text)
    out: list[tuple[str, str | None]] = []
    for part in split_outside_quotes(text, ";")[1:]:
        name, eq, value = part.partition("=")
        name = name.strip(" \t")
        if not name or not is_token(name):
            raise RemoteProtocolError(f"{what}: bad parameter {part!r}")
        if eq:
            value = value.strip(" \t")
            if _PVALUE_RE.match(value) is None:
                raise RemoteProtocolError(f"{what}: bad parameter {part!r}")
            out.append((name, value))
        else:
            out.append((name, None))
    return tuple(out)


def _split_params(text: str) -> Params:
    """``;a=b;c`` already checked by a _FAST_PARAMS_RE-style regex."""
    out: list[tuple[str, str | None]] = []
    for part in text[1:].split(";"):
        name, eq, value = part.partition("=")
        out.append((name, value if eq else None))
    return tuple(out)


def format_params(params: Params) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


def get_param(params: Params, name: str) -> str | None:
    """Value of a parameter (case-insensitive name); "" for a valueless one."""
    lname = name.lower()
    for k, v in params:
        if k.lower() == lname:
            return "" if v is None else v
    return None


def set_param(params: Params, name: str, value: str | None) -> Params:
    lname = name.lower()
    kept = tuple(p for p in params if p[0].lower() != lname)
    return (*kept, (name, value))


def drop_param(params: Params, name: str) -> Params:
    lname = name.lower()
    return tuple(p for p in params if p[0].lower() != lname)


def split_outside_quotes(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside quoted strings and <...> (RFC 3261 §7.3.1)."""
    if '"' not in text and "<" not in text:
        return text.split(sep)
    parts: list[str] = []
    start = 0
    in_quote = False
    angle = 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if in_quote:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_quote = False
        elif ch == '"':
            in_quote = True
        elif ch == "<":
            angle += 1
        elif ch == ">" and angle:
            angle -= 1
        elif ch == sep and not angle:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def unquote(text: str) -> str:
    """The content of a quoted-string, with quoted-pairs resolved."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1], flags=re.DOTALL)
    return text


def quote(text: str) -> str:
    """A quoted-string for ``text`` (RFC 3261 §25.1 quoted-pair for '"', '\\' and
    controls). CR and LF cannot be carried at all, even quoted: they become spaces."""
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    if "\r" in text or "\n" in text:
        text = text.replace("\r", " ").replace("\n", " ")
    if _CTL_RE.search(text):
        text = _CTL_RE.sub(lambda m: "\\" + m[0], text)
    return '"' + text + '"'


@dataclass(frozen=True, slots=True)
class SipUri:
    """A sip: or sips: URI. ``host`` keeps IPv6 brackets: ``[2001:db8::1]``."""

    host: str
    user: str | None = None
    port: int | None = None
    params: Params = ()
    headers: tuple[tuple[str, str], ...] = ()
    scheme: str = "sip"
    password: str | None = None

    @classmethod
    def parse(cls, text: str) -> SipUri:
        """Parse a sip:/sips: URI; raises RemoteProtocolError.

        Results are memoised (bounded, short URIs only): a phone sees the same
        few URIs in every message (its own Contact as Request-URI, the
        registrar's), and a frozen SipUri is safe to share. ``_URI_CACHE_SIZE =
        0`` turns the cache off (the parse benchmark reports both).
        """
        cached = _URI_CACHE.get(text)
        if cached is not None:
            return cached
        uri = _parse_sip_uri(text)
        if _URI_CACHE_SIZE > 0 and len(text) <= _URI_CACHE_MAX_LEN:
            if len(_URI_CACHE) >= _URI_CACHE_SIZE:
                _URI_CACHE.clear()
            _URI_CACHE[text] = uri
        return uri

    @classmethod
    def _parse(cls, text: str) -> SipUri:
        """The full parser, without the cache or the fast path."""
        stripped = text.strip(" \t")
        m = _SIP_URI_RE.match(stripped)
        if m is None:
            raise RemoteProtocolError(f"not a SIP URI: {text!r}")
        if any(c in stripped for c in " \t\r\n"):
            raise RemoteProtocolError(f"SIP URI {text!r}: whitespace inside")
        host = m["host"]
        if not valid_host(host):
            raise RemoteProtocolError(f"SIP URI {text!r}: bad host {host!r}")
        port: int | None = None
        if m["port"] is not None:
            port = parse_port(m["port"], f"SIP URI {text!r}")
        user = password = None
        userinfo = m["userinfo"]
        if userinfo is not None:
            user, colon, pw = userinfo.partition(":")
            if (not user or not _USER_CHARS.match(user)
                    or (colon and not _PASSWORD_CHARS.match(pw))):
                raise RemoteProtocolError(f"SIP URI {text!r}: bad user part {userinfo!r}")
            password = pw if colon else None
        headers: tuple[tuple[str, str], ...] = ()
        if m["headers"]:
            hs = []
            for h in m["headers"].split("&"):
                k, eq, v = h.partition("=")
                if not eq or not k or not _HNV_CHARS.match(k) or not _HNV_CHARS.match(v):
                    raise RemoteProtocolError(f"SIP URI {text!r}: bad header {h!r}")
                hs.append((k, v))
            headers = tuple(hs)
        params = m["params"] or ""
        if '"' in params:  # pvalue (§25.1) has no quoted-string form
            raise RemoteProtocolError(f"SIP URI {text!r}: bad parameter in {params!r}")
        return cls(
            host=host.lower(),
            user=user,
            port=port,
            params=parse_params(params, f"SIP URI {text!r}"),
            headers=headers,
            scheme=m["scheme"].lower(),
            password=password,
        )

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out.append(":" + self.password)
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        out.append(format_params(self.params))
        if self.headers:
            out.append("?" + "&".join(f"{k}={v}" for k, v in self.headers))
        return "".join(out)

    def param(self, name: str) -> str | None:
        return get_param(self.params, name)

    def with_param(self, name: str, value: str | None = None) -> SipUri:
        return replace(self, params=set_param(self.params, name, value))

    def without_param(self, name: str) -> SipUri:
        return replace(self, params=drop_param(self.params, name))

    @property
    def transport(self) -> str:
        """Transport the URI asks for (RFC 3261 §19.1.2 default: udp; sips: tls)."""
        t = self.param("transport")
        if t:
            return t.lower()
        return "tls" if self.scheme == "sips" else "udp"

    @property
    def host_bare(self) -> str:
        """The host without IPv6 brackets, as socket APIs want it."""
        return self.host[1:-1] if self.host.startswith("[") else self.host

    @property
    def loose_route(self) -> bool:
        return self.param("lr") is not None

    def aor(self) -> str:
        """The address-of-record form: scheme:user@host[:port], no params."""
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"{self.scheme}:{user}{self.host}{port}"


# A frozen dataclass's __init__ sets each field through object.__setattr__
# (~0.12 µs a field here); the fast path fills the slots directly instead. The
# object is as immutable as one built by __init__.
_new_object = object.__new__
_SET_URI = tuple(SipUri.__dict__[f].__set__ for f in
                 ("host", "user", "port", "params", "headers", "scheme", "password"))


def _parse_sip_uri(text: str) -> SipUri:
    m = _FAST_SIP_URI_RE.match(text)
    if m is None:
        return SipUri._parse(text)
    scheme, user, host, port_text, params_text = m.groups()
    port = None
    if port_text is not None:
        port = int(port_text)  # [0-9]{1,5}: the regex bounds it
        if not 0 < port <= 65535:
            return SipUri._parse(text)  # for its error
    params = _split_params(params_text) if params_text else ()
    uri = _new_object(SipUri)
    s_host, s_user, s_port, s_params, s_headers, s_scheme, s_password = _SET_URI
    s_host(uri, host.lower())
    s_user(uri, user)
    s_port(uri, port)
    s_params(uri, params)
    s_headers(uri, ())
    s_scheme(uri, scheme)
    s_password(uri, None)
    return uri


@dataclass(frozen=True, slots=True)
class GenericUri:
    """Any other absolute URI (tel:, urn:, http:...): kept as text."""

    text: str

    @property
    def scheme(self) -> str:
        return self.text.partition(":")[0].lower()

    def __str__(self) -> str:
        return self.text


Uri = SipUri | GenericUri
_URI_CACHE: dict[str, SipUri] = {}
_URI_CACHE_SIZE = 512
_URI_CACHE_MAX_LEN = 256  # a peer cannot fill the cache with 64 KB URIs


def parse_uri(text: str) -> Uri:
    cached = _URI_CACHE.get(text)
    if cached is not None:
        return cached
    text = text.strip(" \t")
    lower = text[:5].lower()
    if lower[:4] == "sip:" or lower == "sips:":
        return SipUri.parse(text)
    if (not _SCHEME_RE.match(text) or text.endswith(":")
            or any(c in text for c in " \t\r\n<>\"")):
        raise RemoteProtocolError(f"not a URI: {text!r}")
    return GenericUri(text)


@dataclass(frozen=True, slots=True)
class Address:
    """A name-addr or addr-spec with header parameters: From, To, Contact, Route...

    RFC 3261 §20.10: without angle brackets, every ";param" after the URI is a
    header parameter, so the URI itself carries none.
    """

    uri: Uri
    display_name: str | None = None
    params: Params = ()

    @classmethod
    def parse(cls, text: str, what: str = "address") -> Address:
        m = _FAST_ADDRESS_RE.match(text)
        if m is None:
            return cls._parse_full(text, what)
        quoted, tokens, uri_text, params = m.groups()
        if quoted is not None:
            display: str | None = unquote('"' + quoted + '"') if "\\" in quoted else quoted
        else:
            display = tokens
        a = _new_object(Address)
        s_uri, s_display, s_params = _SET_ADDRESS
        s_uri(a, parse_uri(uri_text))
        s_display(a, display)
        s_params(a, _split_params(params) if params else ())
        return a

    @classmethod
    def _parse_full(cls, text: str, what: str = "address") -> Address:
        """The full parser: LWS, addr-spec, quoted parameters and the errors."""
        text = text.strip(" \t")
        lt = _find_unquoted(text, "<", what)
        if lt >= 0:
            gt = text.find(">", lt)
            if gt < 0:
                raise RemoteProtocolError(f"{what}: unclosed '<' in {text!r}")
            name_part = text[:lt].strip(" \t")
            display: str | None = None
            if name_part:
                if name_part[0] == '"':
                    if _QUOTED_RE.match(name_part) is None:
                        raise RemoteProtocolError(f"{what}: bad display name in {text!r}")
                    display = unquote(name_part)
                else:
                    words = name_part.split()
                    if not all(is_token(w) for w in words):
                        raise RemoteProtocolError(f"{what}: bad display name in {text!r}")
                    display = " ".join(words)
            inner = text[lt + 1 : gt]
            if inner != inner.strip():
                # RFC 4475 §3.1.2.14 (badaspec): no LWS inside <...>
                raise RemoteProtocolError(f"{what}: spaces inside <...> in {text!r}")
            uri = parse_uri(inner)
            rest = text[gt + 1 :].lstrip(" \t")
            if rest and rest[0] != ";":
                raise RemoteProtocolError(f"{what}: unexpected text after '>' in {text!r}")
            return cls(uri, display, parse_params(rest, what))
        # addr-spec: the URI ends at the first ';' (LWS may come before it), and
        # one with ',', '?' or ';' of its own needs <...> (§20.10)
        uri_text, semi, params = text.partition(";")
        uri_text = uri_text.rstrip(" \t")
        if any(c in uri_text for c in " \t,?"):
            raise RemoteProtocolError(f"{what}: URI with ',', '?' or spaces needs <...>: {text!r}")
        return cls(parse_uri(uri_text), None, parse_params(semi + params, what))

    def __str__(self) -> str:
        name = ""
        if self.display_name:
            words = self.display_name.split(" ")
            name = (self.display_name if all(is_token(w) for w in words)
                    else quote(self.display_name)) + " "
        return f"{name}<{self.uri}>{format_params(self.params)}"

    def param(self, name: str) -> str | None:
        return get_param(self.params, name)

    @property
    def tag(self) -> str | None:
        return self.param("tag")

    @property
    def expires(self) -> int | None:
        """A Contact's ``expires`` parameter (RFC 3261 §10.2.4), None when absent."""
        v = self.param("expires")
        return None if v is None else parse_delta_seconds(v, "expires parameter")

    def with_param(self, name: str, value: str | None = None) -> Address:
        return replace(self, params=set_param(self.params, name, value))

    @property
    def sip_uri(self) -> SipUri:
        if not isinstance(self.uri, SipUri):
            raise RemoteProtocolError(f"not a SIP URI: {self.uri}", 416)
        return self.uri


_SET_ADDRESS = tuple(Address.__dict__[f].__set__ for f in ("uri", "display_name", "params"))


def _find_unquoted(text: str, ch: str, what: str = "address") -> int:
    """Index of the first ``ch`` outside a quoted-string, or -1."""
    if '"' not in text:
        return text.find(ch)
    in_quote = False
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if in_quote:
            if c == "\\":
                i += 1
            elif c == '"':
                in_quote = False
        elif c == '"':
            in_quote = True
        elif c == ch:
            return i
        i += 1
    if in_quote:
        raise RemoteProtocolError(f"{what}: unterminated quoted string in {text!r}")
    return -1
