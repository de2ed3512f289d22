"""SIP/SIPS URIs (RFC 3261 §19.1, §25.1) and name-addr values (§20.10).

A URI is kept close to its wire text: parameters and headers stay in the
order they came, with their original spelling, so that ``str(parse(s))`` only
normalises what RFC 3261 calls equivalent (scheme and host case).
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
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
# RFC 3261 §25.1 host: hostname (toplabel starts with a letter) / IPv4address / IPv6reference
_HOST_RE = re.compile(
    rf"(?:{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}"
    rf"|(?:{_LABEL}\.)*[A-Za-z](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.?"
    r"|\[[0-9A-Fa-f:.]+\])\Z")
_SIP_URI_RE = re.compile(
    r"(?P<scheme>[sS][iI][pP][sS]?):"
    r"(?:(?P<userinfo>[^@]*)@)?"
    r"(?P<host>\[[^\]]*\]|[^;?:]*)"
    r"(?::(?P<port>[^;?]*))?"
    r"(?P<params>;[^?]*)?"
    r"(?:\?(?P<headers>.*))?\Z",
    re.DOTALL,
)
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*:")
_USER_CHARS = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/%]*\Z")


def is_token(text: str) -> bool:
    return _TOKEN_RE.match(text) is not None


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
    """``;a=b;c`` -> (("a", "b"), ("c", None)). Values may be quoted strings."""
    out: list[tuple[str, str | None]] = []
    if not text:
        return ()
    for part in split_outside_quotes(text, ";")[1:]:
        name, eq, value = part.partition("=")
        name = name.strip()
        if not name or not is_token(name):
            raise RemoteProtocolError(f"{what}: bad parameter {part!r}")
        out.append((name, value.strip() if eq else None))
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
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


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

        Results are memoised (bounded): a phone sees the same few URIs in every
        message (its own Contact as Request-URI, the registrar's), and a frozen
        SipUri is safe to share.
        """
        cached = _URI_CACHE.get(text)
        if cached is not None:
            return cached
        uri = cls._parse(text)
        if len(_URI_CACHE) >= _URI_CACHE_SIZE:
            _URI_CACHE.clear()
        _URI_CACHE[text] = uri
        return uri

    @classmethod
    def _parse(cls, text: str) -> SipUri:
        m = _SIP_URI_RE.match(text.strip())
        if m is None:
            raise RemoteProtocolError(f"not a SIP URI: {text!r}")
        host = m["host"]
        if not valid_host(host):
            raise RemoteProtocolError(f"SIP URI {text!r}: bad host {host!r}")
        port: int | None = None
        if m["port"] is not None:
            p = m["port"]
            if not p.isdigit() or not 0 < int(p) <= 65535:
                raise RemoteProtocolError(f"SIP URI {text!r}: bad port {p!r}")
            port = int(p)
        user = password = None
        userinfo = m["userinfo"]
        if userinfo is not None:
            user, colon, pw = userinfo.partition(":")
            if not user or not _USER_CHARS.match(user) or (colon and not _USER_CHARS.match(pw)):
                raise RemoteProtocolError(f"SIP URI {text!r}: bad user part {userinfo!r}")
            password = pw if colon else None
        headers: tuple[tuple[str, str], ...] = ()
        if m["headers"]:
            hs = []
            for h in m["headers"].split("&"):
                k, eq, v = h.partition("=")
                if not eq or not k:
                    raise RemoteProtocolError(f"SIP URI {text!r}: bad header {h!r}")
                hs.append((k, v))
            headers = tuple(hs)
        return cls(
            host=host.lower(),
            user=user,
            port=port,
            params=parse_params(m["params"] or "", f"SIP URI {text!r}"),
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


def parse_uri(text: str) -> Uri:
    text = text.strip()
    if text[:4].lower() in ("sip:", "sips"):
        return SipUri.parse(text)
    if not _SCHEME_RE.match(text) or any(c in text for c in " \t<>\"") or text.endswith(":"):
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
        text = text.strip()
        lt = _find_unquoted(text, "<")
        if lt >= 0:
            gt = text.find(">", lt)
            if gt < 0:
                raise RemoteProtocolError(f"{what}: unclosed '<' in {text!r}")
            name_part = text[:lt].strip()
            display: str | None = None
            if name_part:
                if name_part[0] == '"':
                    if len(name_part) < 2 or name_part[-1] != '"':
                        raise RemoteProtocolError(f"{what}: bad display name in {text!r}")
                    display = unquote(name_part)
                else:
                    if not all(is_token(w) for w in name_part.split()):
                        raise RemoteProtocolError(f"{what}: bad display name in {text!r}")
                    display = " ".join(name_part.split())
            uri = parse_uri(text[lt + 1 : gt])
            rest = text[gt + 1 :].strip()
            if rest and rest[0] != ";":
                raise RemoteProtocolError(f"{what}: unexpected text after '>' in {text!r}")
            return cls(uri, display, parse_params(rest, what))
        # addr-spec: the URI ends at the first ';' (or '?' is not allowed here)
        if any(c in text for c in " \t,?"):
            raise RemoteProtocolError(f"{what}: URI with ',', '?' or spaces needs <...>: {text!r}")
        uri_text, _, params = text.partition(";")
        return cls(parse_uri(uri_text), None, parse_params(";" + params if params else "", what))

    def __str__(self) -> str:
        name = ""
        if self.display_name:
            name = (self.display_name if all(is_token(w) for w in self.display_name.split())
                    else quote(self.display_name)) + " "
        return f"{name}<{self.uri}>{format_params(self.params)}"

    def param(self, name: str) -> str | None:
        return get_param(self.params, name)

    @property
    def tag(self) -> str | None:
        return self.param("tag")

    def with_param(self, name: str, value: str | None = None) -> Address:
        return replace(self, params=set_param(self.params, name, value))

    @property
    def sip_uri(self) -> SipUri:
        if not isinstance(self.uri, SipUri):
            raise RemoteProtocolError(f"not a SIP URI: {self.uri}", 416)
        return self.uri


def _find_unquoted(text: str, ch: str) -> int:
    if '"' not in text:
        return text.find(ch)
    in_quote = False
    i = 0
    while i < len(text):
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
    return -1
