"""provision.fetch against a real nginx serving the shipped site config (nginx.py).

Small stdlib servers stand in for what nginx will not do: Digest auth (Debian's nginx has
no digest module), a server that never answers, a body cut short, an endless chunked body.
One nginx and one test PKI per module.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import http.server
import re
import secrets
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from nginx import CLIENT_MAC, LISTENERS, Listener, Nginx, has_ipv6, make_pki, require_nginx
from peers import PortAllocator

from deskphone import __version__
from deskphone.provision.fetch import Fetched, FetchError, FetchOptions, fetch

COMMON = b'[account]\ndomain = "pbx.example.org"\n'
OWN = b'[account]\nuser = "1001"\npassword = "sip-secret-1001"\n'
OTHER_MAC = "b827eb000002"
BIG_MAC = "b827eb0000ff"
LIMIT = 1000  # max_bytes for the size tests

# test-only locations, appended to the shipped server block (auth_basic off: reached without)
EXTRA = """\
    location = /loop { auth_basic off; return 302 /loop; }
    location = /old { auth_basic off; return 301 /deskphone.toml; }
    location = /to-http { auth_basic off; return 302 http://127.0.0.1:@PORT:http-open@/deskphone.toml; }
    location = /elsewhere { auth_basic off; return 302 https://localhost:@PORT:https@/deskphone.toml; }
    location = /busy { auth_basic off; add_header Retry-After 30 always; return 503; }
"""  # noqa: E501


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, port_allocator: PortAllocator
) -> Iterator[Nginx]:
    require_nginx()
    tmp = tmp_path_factory.mktemp("nginx")
    root = tmp / "configs"
    root.mkdir()
    (root / "deskphone.toml").write_bytes(COMMON)
    (root / f"{CLIENT_MAC}.toml").write_bytes(OWN)
    (root / f"{OTHER_MAC}.toml").write_bytes(b"# another phone's\n")
    (root / f"{BIG_MAC}.toml").write_bytes(b"#" * (LIMIT + 1))
    (root / "notes.txt").write_bytes(b"not for phones\n")
    listeners = (
        Listener("https", extra=EXTRA),
        *LISTENERS[1:],
        Listener("http-open", tls=False, auth=False),
        Listener("wrong-name", cert="wrong_name"),
        Listener("bound", client_ca="ca", bind_mac=True),
    )
    nginx = Nginx(tmp / "run", root=root, pki=make_pki(tmp / "pki"), ports=port_allocator,
                  listeners=listeners)  # fmt: skip
    nginx.start()
    yield nginx
    nginx.stop()


def options(site: Nginx, name: str = "https", **changes: Any) -> FetchOptions:
    return FetchOptions(**{**site.client_settings(name), **changes})


def fails(url: str, opts: FetchOptions, **kw: Any) -> FetchError:
    with pytest.raises(FetchError) as info:
        fetch(url, opts, **kw)
    return info.value


# --- nginx: the shipped site ----------------------------------------------------------------


def test_a_file_comes_with_its_etag(site: Nginx) -> None:
    before = len(site.access_log())
    got = fetch(f"{site.url()}/{CLIENT_MAC}.toml", options(site))
    assert (got.status, got.body) == (200, OWN)
    assert got.url == f"{site.url()}/{CLIENT_MAC}.toml"
    assert got.etag is not None and re.fullmatch(r'"[0-9a-f]+-[0-9a-f]+"', got.etag)
    line = site.access_log(wait_for=before + 2)[-1]  # the 401, then the 200
    assert f'"GET /{CLIENT_MAC}.toml HTTP/1.1" 200 ' in line
    assert line.endswith(f'"deskphone/{__version__}"')


def test_the_same_etag_costs_a_304(site: Nginx) -> None:
    url = f"{site.url()}/deskphone.toml"
    first = fetch(url, options(site))
    before = len(site.access_log(wait_for=1))
    again = fetch(url, options(site), etag=first.etag)
    assert again == Fetched(url, 304, None, first.etag, "basic")
    assert '"GET /deskphone.toml HTTP/1.1" 304 ' in site.access_log(wait_for=before + 2)[-1]
    assert fetch(url, options(site), etag='"stale-1"').status == 200


def test_a_missing_file_is_an_answer(site: Nginx) -> None:
    assert fetch(f"{site.url()}/aaaaaaaaaaaa.toml", options(site)) == Fetched(
        f"{site.url()}/aaaaaaaaaaaa.toml", 404, None, None
    )


@pytest.mark.parametrize("path", ["/", "/notes.txt", "/B827EB000001.toml", "/configs/"])
def test_the_site_serves_nothing_else(site: Nginx, path: str) -> None:
    e = fails(f"{site.url()}{path}", options(site))
    assert str(e) == f"{site.url()}{path}: server answered 403 Forbidden"
    assert not e.transient


def test_the_files_are_toml_and_never_cached(site: Nginx) -> None:
    # the shipped headers, seen by a client that is not ours
    conn = http.client.HTTPSConnection(
        "127.0.0.1", site.ports["https"],
        context=ssl.create_default_context(cafile=str(site.pki.ca.cert)), timeout=5,
    )  # fmt: skip
    token = base64.b64encode(f"{site.username}:{site.password}".encode()).decode()
    conn.request("GET", "/deskphone.toml", headers={"Authorization": f"Basic {token}"})
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type") == "application/toml"
    assert response.getheader("Cache-Control") == "no-store"
    conn.close()


def test_ipv6_literal_host(site: Nginx) -> None:
    if not site.ipv6:
        pytest.skip("no IPv6 on this machine")
    url = f"{site.url(ipv6=True)}/deskphone.toml"
    assert url.startswith("https://[::1]:")
    got = fetch(url, options(site))
    assert (got.url, got.status, got.body) == (url, 200, COMMON)


def test_a_dns_name_in_the_certificate(site: Nginx) -> None:
    url = f"https://localhost:{site.ports['https']}/deskphone.toml"
    assert fetch(url, options(site)).body == COMMON


# --- certificates ---------------------------------------------------------------------------


def test_a_certificate_from_another_ca_is_refused(site: Nginx) -> None:
    e = fails(f"{site.url()}/deskphone.toml", options(site, ca_file=str(site.pki.other_ca.cert)))
    assert str(e) == (
        f"{site.url()}/deskphone.toml: TLS certificate verify failed: unable to get local "
        f"issuer certificate (checked against the CA file {site.pki.other_ca.cert})"
    )
    assert not e.transient


def test_the_system_store_does_not_know_the_test_ca(site: Nginx) -> None:
    e = fails(f"{site.url()}/deskphone.toml", options(site, ca_file=""))
    assert "TLS certificate verify failed" in str(e) and "the system store" in str(e)
    assert not e.transient


def test_a_certificate_for_another_name_is_refused(site: Nginx) -> None:
    e = fails(f"{site.url('wrong-name')}/deskphone.toml", options(site))
    assert str(e) == (
        f"{site.url('wrong-name')}/deskphone.toml: TLS hostname mismatch: the server's "
        "certificate is not valid for 127.0.0.1"
    )
    assert not e.transient


def test_a_ca_file_that_is_not_there(site: Nginx, tmp_path: Path) -> None:
    e = fails(f"{site.url()}/deskphone.toml", options(site, ca_file=str(tmp_path / "no.pem")))
    assert str(e).endswith(f"cannot load CA file {tmp_path / 'no.pem'}: No such file or directory")
    assert not e.transient


def test_mutual_tls(site: Nginx) -> None:
    url = f"{site.url('mtls')}/deskphone.toml"
    assert fetch(url, options(site, "mtls")).body == COMMON
    e = fails(url, options(site, "mtls", client_cert="", client_key=""))
    assert str(e) == (
        f"{url}: server answered 400 Bad Request (the server may require a client "
        "certificate; none is configured)"
    )
    assert not e.transient
    other = site.pki.other_client
    e = fails(url, options(site, "mtls", client_cert=str(other.cert), client_key=str(other.key)))
    assert str(e) == (
        f"{url}: server answered 400 Bad Request (the server may have refused the client "
        "certificate)"
    )


def test_a_client_certificate_reads_only_its_own_file(site: Nginx) -> None:
    base = site.url("bound")
    bound = options(site, "bound")
    assert fetch(f"{base}/{CLIENT_MAC}.toml", bound).body == OWN
    assert fetch(f"{base}/deskphone.toml", bound).body == COMMON
    e = fails(f"{base}/{OTHER_MAC}.toml", bound)
    assert str(e) == f"{base}/{OTHER_MAC}.toml: server answered 403 Forbidden"


# --- basic auth -----------------------------------------------------------------------------


def test_basic_auth(site: Nginx) -> None:
    url = f"{site.url()}/deskphone.toml"
    e = fails(url, options(site, username="", password=""))
    assert str(e) == f"{url}: authentication required (401), but no username is configured"
    e = fails(url, options(site, password="wrong-pw-1234"))
    assert str(e) == f"{url}: authentication failed (user 'phones' refused)"
    assert not e.transient
    assert fetch(url, options(site)).body == COMMON


def test_basic_up_front_saves_the_401_round_trip(site: Nginx) -> None:
    """A server that took Basic before gets it with the first request: one request a
    file, not two; a wrong password still fails plainly."""
    url = f"{site.url()}/deskphone.toml"
    seen = len(site.access_log("https"))
    got = fetch(url, options(site, basic_up_front=True))
    assert (got.status, got.auth) == (200, "basic")
    log = site.access_log("https", wait_for=seen + 1)[seen:]
    assert [line.split('"')[2].split()[0] for line in log] == ["200"]
    e = fails(url, options(site, password="wrong-pw-1234", basic_up_front=True))
    assert str(e) == f"{url}: authentication failed (user 'phones' refused)"


def test_credentials_in_the_url_are_used_and_never_shown(site: Nginx) -> None:
    port = site.ports["https"]
    plain = options(site, username="", password="")
    got = fetch(f"https://{site.username}:{site.password}@127.0.0.1:{port}/deskphone.toml", plain)
    assert got.url == f"https://127.0.0.1:{port}/deskphone.toml"
    e = fails(f"https://phones:wrong-pw-1234@127.0.0.1:{port}/deskphone.toml", plain)
    assert str(e) == f"https://127.0.0.1:{port}/deskphone.toml: authentication failed (user 'phones' refused)"  # noqa: E501
    assert "wrong-pw-1234" not in repr(e)


def test_basic_auth_over_plain_http_is_refused(site: Nginx) -> None:
    url = f"{site.url('http')}/deskphone.toml"
    e = fails(url, options(site, "http"))
    assert str(e) == (
        f"{url}: refusing to send a password with Basic authentication over plain http "
        "(anyone on the path could read it): use an https URL"
    )
    assert not e.transient
    # one request: the 401; no second one carrying the password
    assert [line.split('"')[1] for line in site.access_log("http", wait_for=1)] == [
        "GET /deskphone.toml HTTP/1.1"
    ]


def test_plain_http_without_auth(site: Nginx) -> None:
    assert fetch(f"{site.url('http-open')}/deskphone.toml", FetchOptions()).body == COMMON


# --- redirects, sizes, server errors --------------------------------------------------------


def test_a_relative_redirect_is_followed(site: Nginx) -> None:
    got = fetch(f"{site.url()}/old", options(site))
    assert (got.url, got.status, got.body) == (f"{site.url()}/deskphone.toml", 200, COMMON)


def test_a_redirect_loop_is_cut_short(site: Nginx) -> None:
    before = len(site.access_log(wait_for=1))
    e = fails(f"{site.url()}/loop", options(site))
    assert str(e) == f"{site.url()}/loop: too many redirects (more than 3; stopped at {site.url()}/loop)"  # noqa: E501
    assert not e.transient
    assert len(site.access_log(wait_for=before + 4)) - before == 4


def test_a_redirect_from_https_to_http_is_refused(site: Nginx) -> None:
    e = fails(f"{site.url()}/to-http", options(site))
    assert str(e) == (
        f"{site.url()}/to-http: refusing a redirect from https to http "
        f"({site.url('http-open')}/deskphone.toml)"
    )


def test_credentials_go_only_to_the_configured_server(site: Nginx) -> None:
    e = fails(f"{site.url()}/elsewhere", options(site))
    port = site.ports["https"]
    assert str(e) == (
        f"https://localhost:{port}/deskphone.toml: authentication required, but credentials "
        f"go only to {site.url()}/elsewhere's server, not to a redirect elsewhere"
    )
    assert not e.transient


def test_a_file_over_the_limit_is_refused_before_reading(site: Nginx) -> None:
    url = f"{site.url()}/{BIG_MAC}.toml"
    e = fails(url, options(site, max_bytes=LIMIT))
    assert str(e) == f"{url}: larger than {LIMIT} bytes (Content-Length: {LIMIT + 1})"
    assert not e.transient
    assert fetch(url, options(site, max_bytes=LIMIT + 1)).body == b"#" * (LIMIT + 1)


def test_a_busy_server_is_transient(site: Nginx) -> None:
    e = fails(f"{site.url()}/busy", options(site))
    assert str(e) == f"{site.url()}/busy: server answered 503 Service Temporarily Unavailable"
    assert (e.transient, e.retry_after) == (True, 30)


# --- stdlib servers: what nginx does not do ---------------------------------------------------


@contextmanager
def raw_server(serve: Callable[[socket.socket], None]) -> Iterator[int]:
    """A TCP server on 127.0.0.1 that hands each connection to ``serve``; yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.02)  # so the loop sees `stop` (a close does not wake accept)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                serve(conn)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()
        thread.join(2)


def read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_a_server_that_is_down_is_transient() -> None:
    with socket.socket() as bound:  # bound, never listening: nobody answers on this port
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        e = fails(f"http://127.0.0.1:{port}/deskphone.toml", FetchOptions())
    assert str(e) == f"http://127.0.0.1:{port}/deskphone.toml: connection refused (is the server down?)"  # noqa: E501
    assert e.transient


def test_a_server_that_never_answers_is_transient() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel accepts; nobody reads
        port = silent.getsockname()[1]
        e = fails(f"http://127.0.0.1:{port}/x.toml", FetchOptions(timeout=0.3))
    assert str(e) == f"http://127.0.0.1:{port}/x.toml: timed out after 0.3 s"
    assert e.transient


def test_a_server_that_trickles_is_cut_off_at_the_deadline() -> None:
    """One byte every 0.1 s never trips the per-read timeout; the whole-fetch deadline
    ends it (a hostile server cannot hold the phone's provisioning for days)."""
    def serve(conn: socket.socket) -> None:
        read_request(conn)
        with contextlib.suppress(OSError):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            for _ in range(100):
                conn.sendall(b"x")
                time.sleep(0.1)

    with raw_server(serve) as port:
        start = time.monotonic()
        e = fails(f"http://127.0.0.1:{port}/x.toml", FetchOptions(timeout=1, deadline=0.8))
        took = time.monotonic() - start
    assert str(e) == f"http://127.0.0.1:{port}/x.toml: took longer than 0.8 s in all"
    assert e.transient
    assert took < 3


def test_a_tls_handshake_that_never_ends_is_cut_off_at_the_deadline() -> None:
    """The deadline holds while the socket is still being set up (a TLS server that
    accepts and says nothing), not only once the request is out."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        start = time.monotonic()
        e = fails(f"https://127.0.0.1:{port}/x.toml", FetchOptions(timeout=5, deadline=0.5))
        took = time.monotonic() - start
    assert str(e) == f"https://127.0.0.1:{port}/x.toml: took longer than 0.5 s in all"
    assert e.transient and took < 2


def test_a_body_cut_short() -> None:
    def serve(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)

    with raw_server(serve) as port:
        e = fails(f"http://127.0.0.1:{port}/x.toml", FetchOptions())
    assert str(e) == f"http://127.0.0.1:{port}/x.toml: truncated: got 10 of 100 bytes"
    assert e.transient


def test_a_chunked_body_is_capped_while_it_is_read() -> None:
    def serve(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            for _ in range(100):
                conn.sendall(b"200\r\n" + b"y" * 0x200 + b"\r\n")
            conn.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the client hung up once it had enough

    with raw_server(serve) as port:
        e = fails(f"http://127.0.0.1:{port}/x.toml", FetchOptions(max_bytes=LIMIT))
        assert str(e) == f"http://127.0.0.1:{port}/x.toml: larger than {LIMIT} bytes"
        assert fetch(f"http://127.0.0.1:{port}/x.toml", FetchOptions()).body == b"y" * 0x200 * 100


# --- Digest (RFC 7616), served by http.server ------------------------------------------------


@dataclass
class DigestSite:
    """A server-side Digest check written from RFC 7616 §3.4 with hashlib, independent of
    the client's code; ``stale_once`` answers the first good response with stale=true."""

    algorithm: str = "MD5"
    username: str = "phone"
    password: str = "digest-pw"
    realm: str = "deskphone"
    stale_once: bool = False
    seen: list[dict[str, str]] = field(default_factory=list)
    nonces: set[str] = field(default_factory=set)

    def challenge(self, stale: bool = False) -> str:
        nonce = secrets.token_hex(12)
        self.nonces.add(nonce)
        extra = ", stale=true" if stale else ""
        return (f'Digest realm="{self.realm}", nonce="{nonce}", qop="auth", '
                f'algorithm={self.algorithm}, opaque="op4que"{extra}')  # fmt: skip

    def check(self, header: str, method: str) -> str:
        """'ok', 'stale' or 'bad'."""
        if not header.startswith("Digest "):
            return "bad"
        pairs = re.findall(r'(\w+)=(?:"([^"]*)"|([^\s,]*))', header[len("Digest "):])
        p = {name: quoted or bare for name, quoted, bare in pairs}
        self.seen.append(p)
        name = {"MD5": "md5", "MD5-SESS": "md5", "SHA-256": "sha256"}[self.algorithm.upper()]

        def h(s: str) -> str:
            return hashlib.new(name, s.encode()).hexdigest()

        ha1 = h(f"{self.username}:{self.realm}:{self.password}")
        if self.algorithm.upper().endswith("-SESS"):
            ha1 = h(f"{ha1}:{p['nonce']}:{p['cnonce']}")
        ha2 = h(f"{method}:{p['uri']}")
        want = h(f"{ha1}:{p['nonce']}:{p['nc']}:{p['cnonce']}:{p['qop']}:{ha2}")
        if p.get("username") != self.username or p.get("response") != want:
            return "bad"
        if p.get("opaque") != "op4que" or p.get("nonce") not in self.nonces:
            return "bad"
        if self.stale_once:
            self.stale_once = False
            self.nonces.discard(p["nonce"])
            return "stale"
        return "ok"


@contextmanager
def digest_server(digest: DigestSite) -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            verdict = digest.check(self.headers.get("Authorization", ""), "GET")
            if verdict == "ok":
                body = b"digest = true\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", '"d1"')
                self.end_headers()
                self.wfile.write(body)
                return
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="x"')
            self.send_header("WWW-Authenticate", digest.challenge(stale=verdict == "stale"))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(2)


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256", "MD5-sess"])
def test_digest_auth(algorithm: str) -> None:
    site = DigestSite(algorithm=algorithm)
    with digest_server(site) as port:
        url = f"http://127.0.0.1:{port}/conf/{CLIENT_MAC}.toml?v=1"
        got = fetch(url, FetchOptions(username="phone", password="digest-pw"))
    assert (got.status, got.body, got.etag) == (200, b"digest = true\n", '"d1"')
    (p,) = site.seen
    assert (p["uri"], p["qop"], p["nc"], p["algorithm"]) == (
        f"/conf/{CLIENT_MAC}.toml?v=1", "auth", "00000001", algorithm)  # fmt: skip


def test_digest_with_a_wrong_password() -> None:
    with digest_server(DigestSite()) as port:
        url = f"http://127.0.0.1:{port}/x.toml"
        e = fails(url, FetchOptions(username="phone", password="not-the-pw"))
    assert str(e) == f"{url}: authentication failed (user 'phone' refused)"
    assert "not-the-pw" not in repr(e) and not e.transient


def test_digest_answers_a_stale_nonce_again() -> None:
    site = DigestSite(algorithm="SHA-256", stale_once=True)
    with digest_server(site) as port:
        got = fetch(f"http://127.0.0.1:{port}/x.toml",
                    FetchOptions(username="phone", password="digest-pw"))  # fmt: skip
    assert got.status == 200
    assert len(site.seen) == 2 and site.seen[0]["nonce"] != site.seen[1]["nonce"]


def test_the_request_says_who_asks_and_what_it_takes() -> None:
    seen: list[bytes] = []

    def serve(conn: socket.socket) -> None:
        seen.append(read_request(conn))
        conn.sendall(b"HTTP/1.1 304 Not Modified\r\nETag: \"e1\"\r\n\r\n")

    with raw_server(serve) as port:
        got = fetch(f"http://127.0.0.1:{port}/a/b.toml?x=1", FetchOptions(), etag='"e1"')
    assert got == Fetched(f"http://127.0.0.1:{port}/a/b.toml?x=1", 304, None, '"e1"')
    head = seen[0].decode().split("\r\n")
    assert head[0] == "GET /a/b.toml?x=1 HTTP/1.1"
    assert f"User-Agent: deskphone/{__version__}" in head
    assert "Accept: application/toml, text/plain" in head
    assert 'If-None-Match: "e1"' in head
    assert f"Host: 127.0.0.1:{port}" in head


def test_ipv6_host_header() -> None:
    if not has_ipv6():
        pytest.skip("no IPv6 on this machine")
    seen: list[bytes] = []
    listener = socket.create_server(("::1", 0), family=socket.AF_INET6)
    port = listener.getsockname()[1]

    def run() -> None:
        conn, _ = listener.accept()
        with conn:
            seen.append(read_request(conn))
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        got = fetch(f"http://[::1]:{port}/x.toml", FetchOptions())
    finally:
        thread.join(2)
        listener.close()
    assert got == Fetched(f"http://[::1]:{port}/x.toml", 404, None, None)
    assert f"Host: [::1]:{port}" in seen[0].decode().split("\r\n")


def test_a_client_key_the_phone_cannot_use(site: Nginx, tmp_path: Path) -> None:
    url = f"{site.url('mtls')}/deskphone.toml"
    encrypted = tmp_path / "encrypted.key"
    subprocess.run(["openssl", "pkey", "-in", str(site.pki.client.key), "-aes256",
                    "-passout", "pass:x", "-out", str(encrypted)], check=True)  # fmt: skip
    cert = site.pki.client.cert
    e = fails(url, options(site, "mtls", client_key=str(encrypted)))
    assert str(e) == (
        f"{url}: cannot load client certificate {cert}: the client key is encrypted; "
        "the phone needs it unencrypted"
    )
    e = fails(url, options(site, "mtls", client_key=""))
    assert str(e) == (
        f"{url}: cannot load client certificate {cert}: no PEM certificate, or no private key "
        "that fits it (client_key is not set)"
    )
    assert not e.transient
