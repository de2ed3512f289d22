"""Fetch one provisioning file over HTTP or HTTPS (issue 10, client side).

Standard library only (``http.client`` + ``ssl``), not requests/urllib3/httpx: it is on
every Pi image, so there is no dependency to keep patched, and this fetcher needs control
the big clients hide or make easy to get wrong: which hop gets the password and the client
certificate, that a redirect never downgrades to http, that the body is capped while it is
read, and that every error says plainly what failed without ever showing the password.

Theory of operation. :func:`fetch` sends one GET per hop, each on a fresh connection
(``Connection: close``), and loops over the answers: 200 reads the body (at most
``max_bytes``), 304 and 404/410 are answers, 301/302/303/307/308 move to the next hop (at
most ``max_redirects``), and a 401 is answered with Basic (RFC 7617, https only) or Digest
credentials (RFC 7616; the digest math is :mod:`deskphone.sip.auth`'s). Everything else
raises :class:`FetchError`, whose ``transient`` tells the sync loop whether waiting may help
(server down, timeout, 5xx, 429) or someone has to change something (a certificate, a
password, the server's config). Blocking: the caller runs it in a thread.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import re
import secrets
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from email.message import Message
from urllib.parse import unquote, urljoin, urlsplit

from deskphone import __version__
from deskphone.sip.auth import (
    AUTHORIZATION,
    WWW_AUTHENTICATE,
    AuthError,
    Credentials,
    DigestClient,
)
from deskphone.sip.uri import split_outside_quotes

__all__ = [
    "ACCEPT",
    "USER_AGENT",
    "FetchError",
    "FetchOptions",
    "Fetched",
    "fetch",
    "split_challenges",
    "strip_userinfo",
]

USER_AGENT = f"deskphone/{__version__}"
ACCEPT = "application/toml, text/plain"

REDIRECTS = frozenset({301, 302, 303, 307, 308})
NOT_FOUND = frozenset({404, 410})  # the per-MAC file may simply not exist (yet, or any more)
_TRANSIENT_STATUS = frozenset({408, 425, 429})  # and every 5xx: waiting may help
_DEFAULT_PORT = {"http": 80, "https": 443}
_AUTH_ROUNDS = 3  # 401s answered per hop: the first answer, then stale nonces (RFC 7616 §3.3)
_CHUNK = 64 * 1024
# OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH
_NAME_MISMATCH = frozenset({62, 64})
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")
_ANY_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*@")  # in a message
_BAD_TARGET = re.compile(r"[\x00-\x20\x7f]")  # what http.client refuses in a request line
_CHALLENGE_START = re.compile(r"\s*[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:\s+[^=\s]|\s*$)")
_DELTA_SECONDS = re.compile(r"\s*(\d{1,9})\s*")


@dataclass(frozen=True, slots=True)
class FetchOptions:
    """How to reach the provisioning server; the [provisioning] section minus url and mac."""

    ca_file: str = ""  # "" = the system store; a file = only the CAs in it
    client_cert: str = ""  # PEM; with client_key: mutual TLS (key may be in the same file)
    client_key: str = ""
    username: str = ""  # "" = the URL's userinfo, if any
    password: str = field(default="", repr=False)
    timeout: float = 10.0  # per connect and per read
    deadline: float = 30.0  # for the whole fetch: a server trickling bytes cannot stall it
    max_bytes: int = 256 * 1024
    max_redirects: int = 3
    # the server took Basic last time: send it with the first request (https, the URL's
    # own server only), which saves a 401 round trip a file
    basic_up_front: bool = False


@dataclass(frozen=True, slots=True)
class Fetched:
    """An answer: 200 (body), 304 (unchanged since ``etag``) or 404 (no such file; also 410)."""

    url: str  # the final URL, after redirects, without userinfo
    status: int
    body: bytes | None = field(repr=False)  # it holds the SIP password: never in a log line
    etag: str | None
    auth: str | None = None  # "basic" or "digest": how the answer was authorised


class FetchError(Exception):
    """No answer. ``str(e)`` is ``"<url>: <reason>"``: the URL without userinfo, no password.

    ``transient``: True if trying again later may succeed (server down or unreachable,
    timeout, connection cut, 5xx, 408, 429); False if something must be changed first
    (certificate, credentials, server config, URL). ``retry_after``: seconds from a 429/503
    ``Retry-After``, if the server sent one.
    """

    def __init__(
        self, message: str, *, transient: bool = False, retry_after: int | None = None
    ) -> None:
        super().__init__(_ANY_USERINFO.sub(r"\1", message))
        self.transient = transient
        self.retry_after = retry_after


def _error(url: str, reason: str, *, transient: bool, retry_after: int | None = None) -> FetchError:
    return FetchError(
        f"{strip_userinfo(url)}: {reason}", transient=transient, retry_after=retry_after
    )


def strip_userinfo(url: str) -> str:
    """``url`` without ``user:password@``: the one form of a URL that is shown or returned."""
    return _USERINFO.sub(r"\1", url, count=1)


def split_challenges(value: str) -> list[tuple[str, str]]:
    """One ``WWW-Authenticate`` value -> [(scheme lower-cased, challenge text)], in order.

    RFC 7235 §4.1: a header may carry several comma-separated challenges, and commas also
    separate one challenge's auth-params; a challenge starts at an element that is a token
    not followed by ``=``. Quoted commas are not separators.
    """
    challenges: list[list[str]] = []
    for element in split_outside_quotes(value, ","):
        if _CHALLENGE_START.match(element):
            challenges.append([element.strip()])
        elif challenges and element.strip():
            challenges[-1].append(element.strip())
    return [(parts[0].split(None, 1)[0].lower(), ", ".join(parts)) for parts in challenges]


# --- one hop ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Hop:
    url: str  # without userinfo
    scheme: str
    host: str  # lower-case, an IPv6 address without brackets
    port: int
    target: str  # the request-target: path and query

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    reason: str
    headers: Message
    body: bytes | None  # read for a 200 only


def _parse(url: str) -> _Hop:
    shown = strip_userinfo(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise _error(shown, f"not a valid URL ({e})", transient=False) from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORT:
        raise _error(shown, f"unsupported scheme {scheme!r}: only http and https", transient=False)
    if not parts.hostname:
        raise _error(shown, "not a valid URL (no host)", transient=False)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if _BAD_TARGET.search(target) or not target.isascii():
        raise _error(
            shown,
            "not a valid URL (spaces, controls or non-ASCII in the path: percent-encode them)",
            transient=False,
        )
    return _Hop(
        shown.partition("#")[0], scheme, parts.hostname, port or _DEFAULT_PORT[scheme], target
    )


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of ``url``, the port filled in: the server credentials go to.
    FetchError for a URL the fetcher would refuse."""
    return _parse(url).origin


def _no_key_password() -> bytes:
    raise ValueError("the client key is encrypted; the phone needs it unencrypted")


def _tls_context(options: FetchOptions, url: str, *, client_cert: bool) -> ssl.SSLContext:
    """Verifying context: the CA file or the system store, TLS 1.2+, the client cert if asked."""
    try:
        context = ssl.create_default_context(cafile=options.ca_file or None)
    except OSError as e:  # FileNotFoundError, ssl.SSLError (not PEM): both OSError
        raise _error(
            url, f"cannot load CA file {options.ca_file}: {_why(e)}", transient=False
        ) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if client_cert and (options.client_cert or options.client_key):
        if not options.client_cert:
            raise _error(url, "client_key is set but client_cert is not", transient=False)
        try:
            context.load_cert_chain(
                options.client_cert, options.client_key or None, password=_no_key_password
            )
        except (OSError, ValueError) as e:
            why = _why(e)
            if isinstance(e, ssl.SSLError) and "PEM lib" in why:  # all Python says of it
                why = "no PEM certificate, or no private key that fits it" + (
                    "" if options.client_key else " (client_key is not set)"
                )
            raise _error(
                url, f"cannot load client certificate {options.client_cert}: {why}",
                transient=False,
            ) from None
    return context


def _why(e: BaseException) -> str:
    if isinstance(e, ssl.SSLError) and e.reason:
        return e.reason.replace("_", " ").lower()
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__


def _exchange(
    hop: _Hop, headers: dict[str, str], context: ssl.SSLContext | None, options: FetchOptions,
    until: float,
) -> _Answer:
    """One request and its answer, cut off at ``until`` (time.monotonic()) however slowly
    the server sends: a timer shuts the socket down, which ends any blocked read."""
    remaining = until - time.monotonic()
    if remaining <= 0:
        raise _error(hop.url, f"took longer than {options.deadline:g} s in all", transient=True)
    conn: http.client.HTTPConnection
    timeout = min(options.timeout, remaining)
    if context is not None:
        conn = http.client.HTTPSConnection(hop.host, hop.port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(hop.host, hop.port, timeout=timeout)
    expired = threading.Event()
    lock = threading.Lock()  # cut() and close() never race for the descriptor
    closed = False

    def cut() -> None:
        with lock:
            expired.set()
            sock = conn.sock
            if sock is not None and not closed:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(remaining, cut)
    timer.daemon = True
    timer.start()
    try:
        conn.connect()  # bounded by the timeout; the deadline is checked as soon as it is up
        if expired.is_set():
            raise TimeoutError
        conn.request("GET", hop.target, headers=headers)
        response = conn.getresponse()
        body = _read_body(hop, response, options.max_bytes) if response.status == 200 else None
        if expired.is_set():  # a body that "ended" because the timer cut it
            raise _error(hop.url, f"took longer than {options.deadline:g} s in all",
                         transient=True)
        return _Answer(response.status, response.reason, response.msg, body)
    except (OSError, http.client.HTTPException, FetchError) as e:
        if expired.is_set():
            raise _error(hop.url, f"took longer than {options.deadline:g} s in all",
                         transient=True) from None
        if isinstance(e, FetchError):
            raise
        raise _transport_error(hop, e, options) from None
    finally:
        timer.cancel()
        with lock:
            closed = True
            conn.close()


def _read_body(hop: _Hop, response: http.client.HTTPResponse, max_bytes: int) -> bytes:
    """At most ``max_bytes``: a too-large Content-Length is refused before anything is read."""
    declared = response.length  # Content-Length; None for chunked or read-to-close
    if declared is not None and declared > max_bytes:
        raise _error(
            hop.url, f"larger than {max_bytes} bytes (Content-Length: {declared})", transient=False
        )
    limit = max_bytes + 1
    parts: list[bytes] = []
    got = 0
    try:
        while got < limit:
            chunk = response.read(min(_CHUNK, limit - got))
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
    except http.client.IncompleteRead as e:  # a chunked body cut short
        got += len(e.partial)
        raise _error(
            hop.url,
            f"truncated: got {got} bytes, then the connection closed inside a chunk",
            transient=True,
        ) from None
    if got > max_bytes:
        raise _error(hop.url, f"larger than {max_bytes} bytes", transient=False)
    if declared is not None and got < declared:
        raise _error(hop.url, f"truncated: got {got} of {declared} bytes", transient=True)
    return b"".join(parts)


def _transport_error(hop: _Hop, e: BaseException, options: FetchOptions) -> FetchError:
    """Map what the socket, TLS or HTTP layer raised to a FetchError that says it plainly."""
    if isinstance(e, ssl.SSLCertVerificationError):
        if e.verify_code in _NAME_MISMATCH:
            return _error(
                hop.url,
                f"TLS hostname mismatch: the server's certificate is not valid for {hop.host}",
                transient=False,
            )
        store = f"the CA file {options.ca_file}" if options.ca_file else "the system store"
        return _error(
            hop.url,
            f"TLS certificate verify failed: {e.verify_message} (checked against {store})",
            transient=False,
        )
    if isinstance(e, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return _error(hop.url, "the connection closed during the TLS handshake", transient=True)
    if isinstance(e, ssl.SSLError):
        hint = ""
        if "CERTIFICATE_REQUIRED" in (e.reason or "") and not options.client_cert:
            hint = " (the server wants a client certificate; none is configured)"
        return _error(hop.url, f"TLS failed: {_why(e)}{hint}", transient=False)
    if isinstance(e, http.client.RemoteDisconnected):
        return _error(hop.url, "the server closed the connection without answering", transient=True)
    if isinstance(e, TimeoutError):
        return _error(hop.url, f"timed out after {options.timeout:g} s", transient=True)
    if isinstance(e, ConnectionRefusedError):
        return _error(hop.url, "connection refused (is the server down?)", transient=True)
    if isinstance(e, socket.gaierror):
        return _error(hop.url, f"cannot resolve {hop.host}: {_why(e)}", transient=True)
    if isinstance(e, http.client.HTTPException):
        detail = str(e)[:80]
        return _error(
            hop.url,
            f"not a valid HTTP answer ({type(e).__name__}{': ' + detail if detail else ''})",
            transient=False,
        )
    return _error(hop.url, f"cannot connect: {_why(e)}", transient=True)


# --- the answers --------------------------------------------------------------------------


def _redirect(hop: _Hop, answer: _Answer) -> _Hop:
    location = (answer.headers.get("Location") or "").strip()
    if not location:
        raise _error(hop.url, f"{answer.status} redirect without a Location", transient=False)
    try:
        nxt = _parse(urljoin(hop.url, location))
    except FetchError as e:
        raise _error(hop.url, f"bad redirect to {e}", transient=False) from None
    if hop.scheme == "https" and nxt.scheme == "http":
        raise _error(
            hop.url, f"refusing a redirect from https to http ({nxt.url})", transient=False
        )
    return nxt


def _retry_after(headers: Message) -> int | None:
    """RFC 9110 §10.2.3 delta-seconds; an HTTP-date is ignored (the loop's back-off applies)."""
    match = _DELTA_SECONDS.fullmatch(headers.get("Retry-After") or "")
    return int(match[1]) if match else None


def _status_error(
    hop: _Hop, answer: _Answer, options: FetchOptions, authorized: bool
) -> FetchError:
    status = answer.status
    what = f"{status} {answer.reason}".strip()
    if status >= 500 or status in _TRANSIENT_STATUS:
        return _error(
            hop.url,
            f"server answered {what}",
            transient=True,
            retry_after=_retry_after(answer.headers),
        )
    hint = ""
    if status == 400 and hop.scheme == "https":  # how nginx's ssl_verify_client answers
        hint = (
            " (the server may have refused the client certificate)"
            if options.client_cert
            else " (the server may require a client certificate; none is configured)"
        )
    elif status == 403 and authorized:
        hint = " (after authentication: this user may not read this file)"
    return _error(hop.url, f"server answered {what}{hint}", transient=False)


class _Authenticator:
    """Answers a hop's 401s: Digest if offered and answerable, else Basic over https."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self._password = password
        self._digest: DigestClient | None = None

    def answer(self, hop: _Hop, answer: _Answer, sent: str | None) -> str:
        challenges = [
            c
            for value in answer.headers.get_all(WWW_AUTHENTICATE) or []
            for c in split_challenges(value)
        ]
        if not challenges:
            raise _error(hop.url, "401 without a WWW-Authenticate challenge", transient=False)
        failed = _error(
            hop.url, f"authentication failed (user {self.username!r} refused)", transient=False
        )
        schemes = [scheme for scheme, _ in challenges]
        digests = [(WWW_AUTHENTICATE, text) for scheme, text in challenges if scheme == "digest"]
        if digests:
            try:
                if self._digest is None:
                    self._digest = DigestClient(
                        Credentials(self.username, self._password), lambda: secrets.token_hex(8)
                    )
                headers = self._digest.answer(
                    digests, "GET", hop.target, sent=[(AUTHORIZATION, sent)] if sent else ()
                )
            except (AuthError, ValueError) as e:
                raise _error(
                    hop.url, f"cannot answer the Digest challenge: {e}", transient=False
                ) from None
            if headers:
                return headers[0][1]
            if sent is not None:
                raise failed
            if "basic" not in schemes:
                raise _error(
                    hop.url,
                    "no Digest challenge the phone can answer "
                    f"({'; '.join(text for _, text in digests)[:200]})",
                    transient=False,
                )
        if "basic" in schemes:
            if sent is not None:
                raise failed
            return self.basic(hop)
        raise _error(
            hop.url,
            f"unsupported authentication scheme(s): {', '.join(dict.fromkeys(schemes))}",
            transient=False,
        )

    def basic(self, hop: _Hop) -> str:
        """The Basic Authorization value: over https only."""
        if hop.scheme != "https":
            raise _error(
                hop.url,
                "refusing to send a password with Basic authentication over plain http "
                "(anyone on the path could read it): use an https URL",
                transient=False,
            )
        if ":" in self.username:
            raise _error(hop.url, "a Basic username cannot contain ':'", transient=False)
        token = base64.b64encode(f"{self.username}:{self._password}".encode()).decode()
        return f"Basic {token}"


def _credentials(url: str, options: FetchOptions) -> tuple[str, str] | None:
    """The configured username/password, else the URL's userinfo (as DHCP may hand it out)."""
    if options.username:
        return options.username, options.password
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.username:
        return unquote(parts.username), unquote(parts.password or "")
    return None


def fetch(url: str, options: FetchOptions, etag: str | None = None) -> Fetched:
    """GET ``url``: a 200 with its body, a 304 if ``etag`` still matches, or a 404.

    Raises FetchError for everything else. Credentials and the client certificate go only
    to the scheme, host and port of ``url`` itself, never to another hop of a redirect.
    """
    until = time.monotonic() + options.deadline
    hop = _parse(url)
    origin = hop.origin
    credentials = _credentials(url, options)
    authenticator = _Authenticator(*credentials) if credentials else None
    contexts: dict[bool, ssl.SSLContext] = {}
    redirects = 0
    authorization: str | None = None
    up_front = bool(options.basic_up_front and authenticator and hop.scheme == "https")
    if up_front:
        assert authenticator is not None
        authorization = authenticator.basic(hop)
    rounds = 0
    while True:
        home = hop.origin == origin
        headers = {"User-Agent": USER_AGENT, "Accept": ACCEPT, "Connection": "close"}
        if etag and _BAD_TARGET.search(etag) is None:  # RFC 9110 §8.8.3: no spaces, no controls
            headers["If-None-Match"] = etag
        if authorization:
            headers[AUTHORIZATION] = authorization
        context = None
        if hop.scheme == "https":
            if home not in contexts:
                contexts[home] = _tls_context(options, hop.url, client_cert=home)
            context = contexts[home]
        answer = _exchange(hop, headers, context, options, until)
        status = answer.status
        used = None if authorization is None else authorization.split(" ", 1)[0].lower()
        if status == 200:
            return Fetched(hop.url, 200, answer.body, answer.headers.get("ETag"), used)
        if status == 304:
            return Fetched(hop.url, 304, None, answer.headers.get("ETag") or etag, used)
        if status in NOT_FOUND:
            return Fetched(hop.url, 404, None, None)
        if status in REDIRECTS:
            redirects += 1
            if redirects > options.max_redirects:
                raise _error(
                    url,
                    f"too many redirects (more than {options.max_redirects}; stopped at {hop.url})",
                    transient=False,
                )
            hop = _redirect(hop, answer)
            authorization, rounds, up_front = None, 0, False
            continue
        if status == 401:
            if not home:
                raise _error(
                    hop.url,
                    "authentication required, but credentials go only "
                    f"to {strip_userinfo(url)}'s server, not to a redirect "
                    "elsewhere",
                    transient=False,
                )
            if authenticator is None:
                raise _error(
                    hop.url,
                    "authentication required (401), but no username is configured",
                    transient=False,
                )
            if up_front:  # Basic unasked was not it (the server moved to Digest): ask anew
                up_front, authorization = False, None
            rounds += 1
            if rounds > _AUTH_ROUNDS:
                raise _error(
                    hop.url,
                    f"authentication failed (user {authenticator.username!r}: "
                    f"challenged {_AUTH_ROUNDS} times)",
                    transient=False,
                )
            authorization = authenticator.answer(hop, answer, authorization)
            continue
        raise _status_error(hop, answer, options, authorization is not None)
