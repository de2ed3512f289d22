"""SIP digest authentication, client side (RFC 3261 §22; RFC 2617, RFC 7616, RFC 8760).

Theory of operation. A 401 carries ``WWW-Authenticate`` challenges, a 407
``Proxy-Authenticate`` ones; each names a realm and a nonce. The UAC retries the
request with one ``Authorization`` / ``Proxy-Authorization`` header per
challenged realm (RFC 3261 §22.3). ``DigestClient`` (one per account) turns the
challenges of one response into those headers, remembers the last challenge of
each realm so later requests can carry credentials up front (RFC 3261 §22.3,
"preemptively"), and counts how often each nonce was used (``nc``, RFC 7616
§3.4). It refuses to loop: if the challenged request already carried
credentials for a realm and the server challenges that realm again without
``stale=true``, the password is wrong and ``answer`` gives up (returns None).

Sans-I/O: no clock, no sockets, no ``random``; the client nonce comes from an
injected callable. Passwords and HA1 are never stored in anything with a repr.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "ALGORITHMS",
    "AUTHORIZATION",
    "PROXY_AUTHENTICATE",
    "PROXY_AUTHORIZATION",
    "WWW_AUTHENTICATE",
    "AuthError",
    "Challenge",
    "Credentials",
    "DigestClient",
    "build_credentials",
    "digest_response",
    "parse_auth_params",
    "parse_authorization",
]

WWW_AUTHENTICATE = "WWW-Authenticate"
PROXY_AUTHENTICATE = "Proxy-Authenticate"
AUTHORIZATION = "Authorization"
PROXY_AUTHORIZATION = "Proxy-Authorization"

# RFC 3261 §22.2/§22.3: the credentials header that answers each challenge header.
_ANSWERED_BY = {WWW_AUTHENTICATE: AUTHORIZATION, PROXY_AUTHENTICATE: PROXY_AUTHORIZATION}
_CHALLENGE_HEADERS = {name.lower(): name for name in _ANSWERED_BY}
_CREDENTIALS_HEADERS = {cred.lower(): chal for chal, cred in _ANSWERED_BY.items()}

# RFC 7616 §3.2 / RFC 8760 §2.1: algorithm -> hashlib name, strongest first. The
# order is our local policy for picking among challenges of one realm (RFC 8760 §2.4).
_HASHES = {"SHA-512-256": "sha512_256", "SHA-256": "sha256", "MD5": "md5"}
_RANK = {alg: rank for rank, alg in enumerate(_HASHES)}
# Some OpenSSL builds lack SHA-512/256; such a challenge is then simply unanswerable.
_AVAILABLE = frozenset(a for a, h in _HASHES.items() if h in hashlib.algorithms_available)
# How each algorithm is spelt on the wire (Challenge.algorithm is upper-cased).
_SPELLING = {key: spelt for a in _HASHES for key, spelt in ((a, a), (a + "-SESS", a + "-sess"))}
ALGORITHMS: tuple[str, ...] = tuple(_SPELLING.values())

_WS = " \t\r\n"  # LWS, once a folded header is unfolded it is just SP / HTAB
_FORBIDDEN = "\r\n\0"  # can never be echoed back inside a quoted-string
_TOKEN = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
)  # RFC 3261 §25.1 token


class AuthError(ValueError):
    """A challenge or credentials header that cannot be parsed or answered."""


# --- auth-param parsing (RFC 3261 §25.1, RFC 7235 §2.1) ---------------------


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def _read_token(text: str, i: int) -> tuple[str, int]:
    start = i
    while i < len(text) and text[i] in _TOKEN:
        i += 1
    return text[start:i], i


def _split_scheme(value: str) -> tuple[str, int]:
    """The auth-scheme token and where its params start (after at least one LWS)."""
    scheme, i = _read_token(value, _skip_ws(value, 0))
    if i < len(value) and value[i] not in _WS:
        return "", i  # e.g. 'realm="x"' with no scheme: not a token followed by LWS
    return scheme, i


def _parse_params(header: str, text: str, i: int) -> dict[str, str]:
    """``name = (token / quoted-string)`` pairs separated by commas; names lower-cased.

    Lenient where it costs nothing: empty list elements (RFC 7230 §7) and unquoted
    values that are not strict tokens (base64 nonces) are accepted.
    """
    params: dict[str, str] = {}
    n = len(text)
    while True:
        i = _skip_ws(text, i)
        if i >= n:
            return params
        if text[i] == ",":
            i += 1
            continue
        name, i = _read_token(text, i)
        if not name:
            raise AuthError(f"{header}: malformed auth-param at {text[i:]!r}")
        i = _skip_ws(text, i)
        if i >= n or text[i] != "=":
            raise AuthError(f"{header}: auth-param {name!r} has no value")
        i = _skip_ws(text, i + 1)
        if i < n and text[i] == '"':
            # RFC 3261 §25.1 quoted-string: quoted-pair is "\" followed by any char.
            chars: list[str] = []
            i += 1
            while True:
                if i >= n:
                    raise AuthError(f"{header}: unterminated quoted-string in {name!r}")
                c = text[i]
                if c == '"':
                    i += 1
                    break
                if c in "\r\n":  # RFC 3261 §7.3.1: a fold (with its LWS) is one SP
                    while chars and chars[-1] in " \t":
                        chars.pop()
                    while i < n and text[i] in _WS:
                        i += 1
                    chars.append(" ")
                    continue
                if c == "\\" and i + 1 < n:
                    i += 1
                    c = text[i]
                chars.append(c)
                i += 1
            val = "".join(chars)
        else:
            start = i
            while i < n and text[i] != "," and text[i] not in _WS:
                i += 1
            val = text[start:i]
            if not val:
                raise AuthError(f"{header}: auth-param {name!r} has no value")
        if any(c in val for c in _FORBIDDEN):
            raise AuthError(f"{header}: control character in auth-param {name!r}")
        key = name.lower()
        if key in params:
            raise AuthError(f"{header}: duplicate auth-param {key!r}")
        params[key] = val
        i = _skip_ws(text, i)
        if i < n and text[i] != ",":
            raise AuthError(f"{header}: expected ',' after auth-param {name!r}")


def parse_auth_params(header_name: str, value: str) -> tuple[str, dict[str, str]]:
    """Split a challenge or credentials value into its scheme and its auth-params.

    Param names are lower-cased, quoted values unescaped; the scheme is returned
    as written. ``header_name`` only labels error messages.
    """
    scheme, i = _split_scheme(value)
    if not scheme:
        raise AuthError(f"{header_name}: no auth-scheme in {value!r}")
    return scheme, _parse_params(header_name, value, i)


def _digest_params(header_name: str, value: str, what: str) -> dict[str, str]:
    scheme, i = _split_scheme(value)
    if scheme.lower() != "digest":
        raise AuthError(f"{header_name}: not a Digest {what}: {value!r}")
    return _parse_params(header_name, value, i)


def parse_authorization(header_name: str, value: str) -> dict[str, str]:
    """The params of a Digest ``Authorization`` / ``Proxy-Authorization`` value.

    For tests and a server side (RFC 3261 §22.4); names lower-cased, values unquoted.
    """
    return _digest_params(header_name, value, "credentials")


# --- the wire objects -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Challenge:
    """One Digest challenge (RFC 7616 §3.3; RFC 3261 §20.27, §20.44)."""

    realm: str
    nonce: str
    opaque: str | None = None
    algorithm: str = "MD5"  # upper-cased: "MD5", "MD5-SESS", "SHA-256", ...
    qop: tuple[str, ...] = ()  # lower-cased qop-options; () = RFC 2069 compatibility
    stale: bool = False
    header: str = WWW_AUTHENTICATE  # or PROXY_AUTHENTICATE

    @classmethod
    def parse(cls, header_name: str, value: str) -> Challenge:
        """Parse a ``WWW-Authenticate`` or ``Proxy-Authenticate`` value; unknown params ignored."""
        header = _CHALLENGE_HEADERS.get(header_name.lower())
        if header is None:
            raise AuthError(f"{header_name}: not an authentication challenge header")
        params = _digest_params(header, value, "challenge")
        realm = params.get("realm")
        if realm is None:
            raise AuthError(f"{header}: Digest challenge has no realm")
        nonce = params.get("nonce")
        if nonce is None:
            raise AuthError(f"{header}: Digest challenge has no nonce")
        qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
        return cls(
            realm=realm,
            nonce=nonce,
            opaque=params.get("opaque"),
            algorithm=params.get("algorithm", "MD5").upper(),
            qop=qop,
            stale=params.get("stale", "").lower() == "true",
            header=header,
        )

    @property
    def credentials_header(self) -> str:
        """``Authorization`` for a 401 challenge, ``Proxy-Authorization`` for a 407 one."""
        return _ANSWERED_BY[self.header]


@dataclass(frozen=True, slots=True)
class Credentials:
    """An account's digest username and password; the password stays out of repr.

    ``realm``, when set, restricts the credentials to challenges of that realm.
    """

    username: str
    password: str = field(repr=False)
    realm: str | None = None

    def __post_init__(self) -> None:
        if any(c in self.username for c in _FORBIDDEN):
            raise ValueError("Credentials: username contains CR, LF or NUL")


# --- the computation (RFC 7616 §3.4.1-§3.4.3, RFC 2617 §3.2.2) ---------------


def _h(algorithm: str, data: str | bytes) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.new(_HASHES[algorithm], data).hexdigest()


def _check_algorithm(algorithm: str) -> tuple[str, bool]:
    """(base algorithm, is -sess) for a supported algorithm, else AuthError."""
    upper = algorithm.upper()
    base = upper.removesuffix("-SESS")
    if base not in _AVAILABLE:
        raise AuthError(f"unsupported digest algorithm {algorithm!r}")
    return base, upper != base


def _choose_qop(challenge: Challenge) -> str | None:
    """RFC 3261 §22.4: prefer auth; auth-int only when it is all that is offered."""
    if not challenge.qop:
        return None
    for qop in ("auth", "auth-int"):
        if qop in challenge.qop:
            return qop
    raise AuthError(f"{challenge.header}: unsupported qop {','.join(challenge.qop)!r}")


def digest_response(
    *,
    algorithm: str,
    username: str,
    password: str,
    realm: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None = None,
    nc: int = 1,
    cnonce: str = "",
    body: bytes = b"",
) -> str:
    """The ``response`` value: KD(HA1, ...) per RFC 7616 §3.4.1, or RFC 2069 without qop."""
    base, sess = _check_algorithm(algorithm)
    ha1 = _h(base, f"{username}:{realm}:{password}")
    if sess:  # RFC 7616 §3.4.2
        ha1 = _h(base, f"{ha1}:{nonce}:{cnonce}")
    if qop is None or qop == "auth":
        ha2 = _h(base, f"{method}:{uri}")
    elif qop == "auth-int":  # RFC 7616 §3.4.3
        ha2 = _h(base, f"{method}:{uri}:{_h(base, body)}")
    else:
        raise AuthError(f"unsupported qop {qop!r}")
    if qop is None:  # RFC 2617 §3.2.2.1, RFC 2069 compatibility
        return _h(base, f"{ha1}:{nonce}:{ha2}")
    return _h(base, f"{ha1}:{nonce}:{nc:08x}:{cnonce}:{qop}:{ha2}")


def _quote(value: str) -> str:
    """RFC 3261 §25.1 quoted-string; CR, LF and NUL cannot be carried at all."""
    if any(c in value for c in _FORBIDDEN):
        raise AuthError(f"cannot quote {value!r}: it contains CR, LF or NUL")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_credentials(
    challenge: Challenge,
    credentials: Credentials,
    *,
    method: str,
    uri: str,
    cnonce: str,
    nc: int = 1,
    body: bytes = b"",
) -> tuple[str, str]:
    """The (name, value) answering ``challenge`` (RFC 3261 §22.4, RFC 7616 §3.4).

    ``uri`` is the Request-URI exactly as sent. Without qop, cnonce and nc are
    left out (RFC 2617 §3.2.2) except that a -sess algorithm still needs cnonce.
    """
    base, sess = _check_algorithm(challenge.algorithm)
    qop = _choose_qop(challenge)
    response = digest_response(
        algorithm=challenge.algorithm,
        username=credentials.username,
        password=credentials.password,
        realm=challenge.realm,
        nonce=challenge.nonce,
        method=method,
        uri=uri,
        qop=qop,
        nc=nc,
        cnonce=cnonce,
        body=body,
    )
    parts = [
        f"username={_quote(credentials.username)}",
        f"realm={_quote(challenge.realm)}",
        f"nonce={_quote(challenge.nonce)}",
        f"uri={_quote(uri)}",
        f'response="{response}"',
        f"algorithm={_SPELLING[base + ('-SESS' if sess else '')]}",
    ]
    if qop is not None or sess:
        parts.append(f"cnonce={_quote(cnonce)}")
    if challenge.opaque is not None:
        parts.append(f"opaque={_quote(challenge.opaque)}")
    if qop is not None:
        parts.append(f"qop={qop}")
        parts.append(f"nc={nc:08x}")
    return challenge.credentials_header, "Digest " + ", ".join(parts)


# --- the stateful client ----------------------------------------------------


@dataclass(slots=True)
class _NonceUse:
    count: int  # the last nc sent with this nonce
    cnonce: str  # kept for the nonce's lifetime so a -sess HA1 stays the same


class DigestClient:
    """Answers 401/407 challenges for one account and keeps what later requests need."""

    __slots__ = ("_credentials", "_cnonce_source", "_cache", "_nonces")

    def __init__(self, credentials: Credentials, cnonce_source: Callable[[], str]) -> None:
        self._credentials = credentials
        self._cnonce_source = cnonce_source
        # (challenge header, realm) -> last accepted challenge; nonce -> its use.
        self._cache: dict[tuple[str, str], Challenge] = {}
        self._nonces: dict[str, _NonceUse] = {}

    def __repr__(self) -> str:
        realms = sorted(realm for _, realm in self._cache)
        return f"DigestClient(username={self._credentials.username!r}, realms={realms!r})"

    def _answerable(self, challenge: Challenge) -> bool:
        wanted = self._credentials.realm
        if wanted is not None and challenge.realm != wanted:
            return False
        try:
            _check_algorithm(challenge.algorithm)
            _choose_qop(challenge)
        except AuthError:
            return False
        return True

    def _credentials_for(
        self, challenge: Challenge, method: str, uri: str, body: bytes
    ) -> tuple[str, str]:
        """Sign with the next nc of ``challenge.nonce`` (RFC 7616 §3.4: nc counts up)."""
        _, sess = _check_algorithm(challenge.algorithm)
        use = self._nonces.get(challenge.nonce)
        if use is None:
            cnonce = self._cnonce_source()
            use = self._nonces[challenge.nonce] = _NonceUse(0, cnonce)
        else:
            cnonce = use.cnonce if sess else self._cnonce_source()
        use.count += 1
        return build_credentials(
            challenge,
            self._credentials,
            method=method,
            uri=uri,
            cnonce=cnonce,
            nc=use.count,
            body=body,
        )

    def answer(
        self,
        challenges: Sequence[tuple[str, str]],
        method: str,
        uri: str,
        body: bytes = b"",
        sent: Sequence[tuple[str, str]] = (),
    ) -> list[tuple[str, str]] | None:
        """The credentials headers for retrying a request that got a 401/407, or None.

        ``challenges``: every WWW-/Proxy-Authenticate (name, value) of the response;
        ``sent``: the Authorization / Proxy-Authorization pairs the request carried.
        The result replaces all of those on the retried request: one header per
        challenged realm, plus the uncontested ones of ``sent`` (re-signed if cached).
        None means give up: a realm already answered is challenged again without
        stale=true (RFC 3261 §22.3: wrong password, do not retry), or nothing is
        answerable (RFC 8760 §2.4). Raises AuthError only if ``uri`` holds CR, LF or NUL.
        """
        sent_nonce: dict[tuple[str, str], str] = {}
        sent_pairs: list[tuple[tuple[str, str] | None, tuple[str, str]]] = []
        for name, value in sent:
            key: tuple[str, str] | None = None
            header = _CREDENTIALS_HEADERS.get(name.lower())
            if header is not None:
                try:
                    params = parse_authorization(name, value)
                except AuthError:
                    params = {}
                if "realm" in params:
                    key = (header, params["realm"])
                    sent_nonce[key] = params.get("nonce", "")
            sent_pairs.append((key, (name, value)))

        groups: dict[tuple[str, str], list[Challenge]] = {}
        for name, value in challenges:
            try:
                challenge = Challenge.parse(name, value)
            except AuthError:
                continue  # Basic, garbage, or not a challenge header at all
            if self._answerable(challenge):
                groups.setdefault((challenge.header, challenge.realm), []).append(challenge)
        if not groups:
            return None

        chosen: list[Challenge] = []
        for key, group in groups.items():
            if key in sent_nonce:
                # RFC 3261 §22.3 / RFC 7616 §3.3: only a stale nonce excuses a second
                # challenge, and only if it brings a nonce we have not just used.
                group = [c for c in group if c.stale and c.nonce != sent_nonce[key]]
                if not group:
                    return None
            # Strongest algorithm first, then the topmost (min() keeps the first).
            chosen.append(min(group, key=lambda c: _RANK[c.algorithm.removesuffix("-SESS")]))

        result: list[tuple[str, str]] = []
        resigned: set[tuple[str, str]] = set()
        for key, pair in sent_pairs:
            if key is not None and key in groups:
                continue  # replaced by the new answer below
            if key is not None and key in self._cache:
                # Still valid for its realm, but a repeated nc would look like a replay.
                if key not in resigned:
                    resigned.add(key)
                    result.append(self._credentials_for(self._cache[key], method, uri, body))
                continue
            result.append(pair)
        for challenge in chosen:
            self._cache[(challenge.header, challenge.realm)] = challenge
            result.append(self._credentials_for(challenge, method, uri, body))
        live = {c.nonce for c in self._cache.values()}
        for nonce in [n for n in self._nonces if n not in live]:
            del self._nonces[nonce]
        return result

    def preauthorize(self, method: str, uri: str, body: bytes = b"") -> list[tuple[str, str]]:
        """Credentials for every cached realm, nc+1 (RFC 3261 §22.3); [] if none cached."""
        return [
            self._credentials_for(challenge, method, uri, body)
            for challenge in self._cache.values()
        ]
