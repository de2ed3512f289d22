"""A real nginx serving provisioning files for the integration tests, from the shipped config.

Theory of operation: :func:`make_pki` makes a throw-away PKI with the openssl CLI (a test
CA, server certificates for the right and a wrong name, a client certificate, an unrelated
second CA). :class:`Nginx` renders ``provisioning/nginx/deskphone.conf`` -- the file
admins install -- once per :class:`Listener`: each line ending in ``# @NAME@`` gets the
test's value (:func:`render_site`), so what is tested is what ships. It wraps those server
blocks in a minimal nginx.conf whose every path (pid, logs, temp dirs) is under the run
directory and runs ``nginx -g 'daemon off;'`` in its own process group on ports from
peers.PortAllocator; ``stop()`` is one killpg.

    pki = make_pki(tmp / "pki")
    with Nginx(tmp / "nginx", root=configs_dir, pki=pki, ports=port_allocator) as site:
        site.url("https")                 # "https://127.0.0.1:P": TLS + basic auth
        site.url("mtls")                  # the same, and a client certificate required
        site.url("http")                  # plain http + basic auth (phones must refuse)
        site.client_settings("mtls")      # {"ca_file", "username", "password",
                                          #  "client_cert", "client_key"}: FetchOptions(**s)
                                          #  and [provisioning] take these keys
        site.access_log("https")          # the requests nginx logged, one line each

Other sets of listeners: ``Nginx(..., listeners=(Listener("https", extra=...), ...))``
(a wrong-name certificate, a client CA, per-MAC binding, basic auth off, test-only
locations). Tests call :func:`require_nginx` first: a missing nginx or openssl skips them,
or fails them when CI is set. As root, nginx's workers run as root too, so they read the
0600 files the fleet tool writes.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from peers import HOST, REPO, PortAllocator, find_binary, in_ci, stop_group

SITE_CONF = REPO / "provisioning" / "nginx" / "deskphone.conf"
USERNAME = "phones"
PASSWORD = "provisioning-secret"  # a test value: basic auth of the default site
CLIENT_MAC = "b827eb000001"  # the CN of the client certificate (see Listener.bind_mac)

__all__ = [
    "CLIENT_MAC",
    "LISTENERS",
    "PASSWORD",
    "SITE_CONF",
    "USERNAME",
    "CertPair",
    "Listener",
    "Nginx",
    "NginxError",
    "Pki",
    "has_ipv6",
    "htpasswd_line",
    "make_pki",
    "missing_tools",
    "render_site",
    "require_nginx",
]


class NginxError(RuntimeError):
    """nginx or openssl failed; the message quotes their output or log."""


def missing_tools() -> list[str]:
    return [tool for tool in ("nginx", "openssl") if find_binary(tool) is None]


def require_nginx() -> None:
    """Skip the calling test (locally) or fail it (CI set) unless nginx and openssl exist."""
    import pytest

    missing = missing_tools()
    if missing:
        msg = f"missing: {', '.join(missing)} (Debian: apt install nginx-light openssl)"
        if in_ci():
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)


def has_ipv6() -> bool:
    """Can a socket bind ::1 here (containers often lack IPv6)?"""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# the PKI


@dataclass(frozen=True, slots=True)
class CertPair:
    cert: Path  # PEM
    key: Path  # PEM, unencrypted


@dataclass(frozen=True, slots=True)
class Pki:
    """A test PKI (EC P-256, valid for 3 days), every file under ``dir``."""

    dir: Path
    ca: CertPair  # the test CA: signs server, wrong_name and client
    server: CertPair  # SAN IP:127.0.0.1, IP:::1, DNS:localhost
    wrong_name: CertPair  # SAN DNS:other.example only
    client: CertPair  # clientAuth, CN=CLIENT_MAC
    other_ca: CertPair  # an unrelated CA
    other_client: CertPair  # clientAuth, CN=CLIENT_MAC, signed by other_ca


_OPENSSL_CNF = """\
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, IP:::1, DNS:localhost
[wrong_name]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
extendedKeyUsage = serverAuth
subjectAltName = DNS:other.example
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
extendedKeyUsage = clientAuth
"""


def _openssl(*args: str, cwd: Path, stdin: str | None = None) -> str:
    binary = find_binary("openssl")
    if binary is None:
        raise NginxError("openssl not installed")
    done = subprocess.run(
        [binary, *args], cwd=cwd, input=stdin, capture_output=True, text=True, timeout=30
    )
    if done.returncode != 0:
        raise NginxError(f"openssl {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


_NEW_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")


def _make_ca(d: Path, name: str, subject: str) -> CertPair:
    pair = CertPair(d / f"{name}.crt", d / f"{name}.key")
    _openssl("req", "-x509", "-new", *_NEW_KEY, "-config", "openssl.cnf", "-extensions", "ca",
             "-keyout", pair.key.name, "-out", pair.cert.name, "-days", "3", "-subj", subject,
             cwd=d)  # fmt: skip
    return pair


def _make_leaf(d: Path, name: str, subject: str, ca: CertPair, section: str) -> CertPair:
    pair = CertPair(d / f"{name}.crt", d / f"{name}.key")
    _openssl("req", "-new", *_NEW_KEY, "-config", "openssl.cnf", "-keyout", pair.key.name,
             "-out", f"{name}.csr", "-subj", subject, cwd=d)  # fmt: skip
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", str(ca.cert), "-CAkey", str(ca.key),
             "-set_serial", f"0x{secrets.token_hex(8)}", "-days", "3",
             "-extfile", "openssl.cnf", "-extensions", section, "-out", pair.cert.name,
             cwd=d)  # fmt: skip
    return pair


def make_pki(directory: Path) -> Pki:
    """Make a fresh test PKI in ``directory`` with the openssl CLI (about 0.1 s)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "openssl.cnf").write_text(_OPENSSL_CNF)
    ca = _make_ca(directory, "ca", "/CN=deskphone test CA")
    other_ca = _make_ca(directory, "other-ca", "/CN=unrelated test CA")
    return Pki(
        dir=directory,
        ca=ca,
        server=_make_leaf(directory, "server", "/CN=localhost", ca, "server"),
        wrong_name=_make_leaf(directory, "wrong-name", "/CN=other.example", ca, "wrong_name"),
        client=_make_leaf(directory, "client", f"/O=deskphone/CN={CLIENT_MAC}", ca, "client"),
        other_ca=other_ca,
        other_client=_make_leaf(
            directory, "other-client", f"/CN={CLIENT_MAC}", other_ca, "client"
        ),
    )


def htpasswd_line(user: str, password: str) -> str:
    """``user:$apr1$...`` as nginx's auth_basic_user_file wants it (openssl passwd -apr1)."""
    hashed = _openssl("passwd", "-apr1", "-stdin", cwd=Path("/"), stdin=password + "\n")
    return f"{user}:{hashed.strip()}\n"


# ---------------------------------------------------------------------------------------------
# rendering the shipped site config

_MARKED = re.compile(
    r"^(?P<indent>[ \t]*)(?P<hash>#)?(?P<directive>[a-z_]+)(?P<args>.*?)(?P<end>[;}])"
    r"[ \t]*#[ \t]*@(?P<name>[A-Z0-9_]+)@[ \t]*$\n?",
    re.MULTILINE,
)
_PORT_REF = re.compile(r"@PORT:([\w-]+)@")


def render_site(template: str, values: Mapping[str, str | bool], extra: str = "") -> str:
    """The site config with each ``# @NAME@`` line that ``values`` names substituted.

    A str replaces the directive's arguments (and uncomments the line); True uncomments it
    as it is; False drops it. Lines not named stay as shipped (commented ones stay off).
    ``extra`` (nginx directives, e.g. test-only locations) goes at the end of the server
    block. ValueError if ``values`` names a marker the file does not have.
    """
    seen: set[str] = set()

    def substitute(m: re.Match[str]) -> str:
        name = m["name"]
        if name not in values:
            return m[0]
        seen.add(name)
        value = values[name]
        if value is False:
            return ""
        if value is True:
            return f"{m['indent']}{m['directive']}{m['args']}{m['end']}\n"
        if m["end"] != ";":
            raise ValueError(f"@{name}@ is a block: it can be switched on or off, not set")
        return f"{m['indent']}{m['directive']} {value};\n"

    text = _MARKED.sub(substitute, template)
    unknown = set(values) - seen
    if unknown:
        raise ValueError(f"{SITE_CONF.name} has no marker(s) {', '.join(sorted(unknown))}")
    if extra:
        end = text.rstrip().rfind("\n}")
        if end < 0:
            raise ValueError(f"{SITE_CONF.name} does not end with its server block")
        text = f"{text[:end]}\n\n    # --- test-only ---\n{extra.rstrip()}\n{text[end:]}"
    return text


@dataclass(frozen=True, slots=True)
class Listener:
    """One rendering of the shipped site: its server block on a port of its own."""

    name: str
    tls: bool = True
    cert: str = "server"  # the Pki pair nginx presents: "server" or "wrong_name"
    client_ca: str = ""  # "ca" or "other_ca": ssl_verify_client on against that CA
    bind_mac: bool = False  # a client certificate reads only <its CN>.toml
    auth: bool = True  # basic auth as shipped; False: auth_basic off
    extra: str = ""  # test-only directives for the server block; @PORT:<name>@ = that port


LISTENERS: tuple[Listener, ...] = (
    Listener("https"),
    Listener("mtls", client_ca="ca"),
    Listener("http", tls=False),
)

_MAIN_CONF = """\
{user}worker_processes 1;
pid {run}/nginx.pid;
lock_file {run}/nginx.lock;
error_log {run}/error.log info;
events {{ worker_connections 128; }}
http {{
    client_body_temp_path {run}/tmp/body;
    proxy_temp_path {run}/tmp/proxy;
    fastcgi_temp_path {run}/tmp/fastcgi;
    uwsgi_temp_path {run}/tmp/uwsgi;
    scgi_temp_path {run}/tmp/scgi;
    access_log off;
    keepalive_timeout 5;
{includes}}}
"""


class Nginx:
    """nginx serving ``root`` through the shipped site config, once per listener."""

    host = HOST

    def __init__(
        self,
        run_dir: Path,
        *,
        root: Path,
        pki: Pki,
        ports: PortAllocator,
        listeners: Sequence[Listener] = LISTENERS,
        users: Mapping[str, str] | None = None,
        ipv6: bool | None = None,
    ) -> None:
        """``users``: basic-auth user -> password (default USERNAME: PASSWORD); ``ipv6``:
        also listen on [::1] (default: if this machine has IPv6)."""
        self.run_dir = run_dir
        self.root = root
        self.pki = pki
        self.listeners = {listener.name: listener for listener in listeners}
        self.users = dict(users) if users is not None else {USERNAME: PASSWORD}
        self.ipv6 = has_ipv6() if ipv6 is None else ipv6
        self.ports: dict[str, int] = {}
        self._allocator = ports
        self.conf_path = run_dir / "nginx.conf"
        self.log_path = run_dir / "error.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- what tests use -----------------------------------------------------------------------

    def url(self, name: str = "https", *, ipv6: bool = False) -> str:
        """The listener's base URL (no trailing slash): ``https://127.0.0.1:P`` or ``[::1]``."""
        listener = self.listeners[name]
        host = "[::1]" if ipv6 else self.host
        return f"{'https' if listener.tls else 'http'}://{host}:{self.ports[name]}"

    @property
    def username(self) -> str:
        return next(iter(self.users))

    @property
    def password(self) -> str:
        return self.users[self.username]

    def client_settings(self, name: str = "https") -> dict[str, str]:
        """What a phone needs to fetch from the listener, as [provisioning] keys (no url)."""
        listener = self.listeners[name]
        settings = {"username": self.username, "password": self.password}
        if listener.tls:
            settings["ca_file"] = str(self.pki.ca.cert)
        if listener.client_ca:
            settings["client_cert"] = str(self.pki.client.cert)
            settings["client_key"] = str(self.pki.client.key)
        return settings

    def access_log(
        self, name: str = "https", *, wait_for: int = 0, timeout: float = 2.0
    ) -> list[str]:
        """The listener's access log lines (nginx's combined format), oldest first.

        nginx logs a request after it has answered, so a client can be faster than the log:
        ``wait_for=n`` waits (up to ``timeout``) until there are at least n lines.
        """
        path = self.run_dir / f"access-{name}.log"
        deadline = time.monotonic() + timeout
        while True:
            try:
                lines = path.read_text().splitlines()
            except FileNotFoundError:
                lines = []
            if len(lines) >= wait_for or time.monotonic() >= deadline:
                return lines
            time.sleep(0.005)

    def log_tail(self, n: int = 30) -> str:
        """The last ``n`` lines of nginx's error log (startup errors included)."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return f"({self.log_path} does not exist)"

    # -- running it ---------------------------------------------------------------------------

    def render(self, listener: Listener) -> str:
        """The shipped site config as this listener serves it."""
        port = self.ports[listener.name]
        pair = getattr(self.pki, listener.cert)
        ssl = " ssl" if listener.tls else ""
        values: dict[str, str | bool] = {
            "LISTEN": f"{self.host}:{port}{ssl}",
            "LISTEN6": f"[::1]:{port}{ssl}" if self.ipv6 else False,
            "CERT": str(pair.cert),
            "KEY": str(pair.key),
            "ROOT": str(self.root),
            "ACCESS_LOG": str(self.run_dir / f"access-{listener.name}.log"),
            "HTPASSWD": str(self.run_dir / "htpasswd"),
        }
        if not listener.auth:
            values["AUTH_BASIC"] = "off"
        if listener.client_ca:
            values["CLIENT_CA"] = str(getattr(self.pki, listener.client_ca).cert)
            values["VERIFY_CLIENT"] = "on"
        if listener.bind_mac:
            values["BIND_MAC"] = True
        extra = _PORT_REF.sub(lambda m: str(self.ports[m[1]]), listener.extra)
        return render_site(SITE_CONF.read_text(), values, extra)

    def _write_conf(self) -> None:
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.run_dir / "tmp" / sub).mkdir(parents=True, exist_ok=True)
        (self.run_dir / "htpasswd").write_text(
            "".join(htpasswd_line(user, pw) for user, pw in self.users.items())
        )
        includes = []
        for listener in self.listeners.values():
            site = self.run_dir / f"site-{listener.name}.conf"
            site.write_text(self.render(listener))
            includes.append(f"    include {site};\n")
        # as root, workers would run as nobody and could not read the 0600 keys and files
        user = "user root;\n" if os.geteuid() == 0 else ""
        self.conf_path.write_text(
            _MAIN_CONF.format(user=user, run=self.run_dir, includes="".join(includes))
        )

    def start(self, timeout: float = 5.0) -> Nginx:
        """Start on fresh ports; ports lost to a race with another process are taken again."""
        binary = find_binary("nginx")
        if binary is None:
            raise NginxError("nginx not installed (Debian: apt install nginx-light)")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            self.ports = {name: self._allocator.take(udp=False) for name in self.listeners}
            self._write_conf()
            try:
                return self._run(binary, timeout)
            except NginxError as e:
                if "Address already in use" not in str(e) or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _run(self, binary: str, timeout: float) -> Nginx:
        args = [binary, "-p", str(self.run_dir), "-c", str(self.conf_path),
                "-e", str(self.log_path), "-g", "daemon off;"]  # fmt: skip
        with open(self.run_dir / "nginx.out", "ab") as out:
            self.proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.run_dir, start_new_session=True,
            )  # fmt: skip
        proc = self.proc
        addresses = [(HOST, port) for port in self.ports.values()]
        if self.ipv6:
            addresses += [("::1", port) for port in self.ports.values()]

        def ready() -> bool:
            return proc.poll() is not None or all(_accepts(a) for a in addresses)

        deadline = time.monotonic() + timeout
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.01)
        if proc.poll() is not None or not ready():
            rc = proc.poll()
            self.stop()
            state = f"exited with {rc}" if rc is not None else f"not ready after {timeout} s"
            raise NginxError(f"nginx {state}; {self.log_path}:\n{self.log_tail()}")
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """SIGTERM (fast shutdown) to the whole process group, SIGKILL after ``timeout`` s."""
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_group(proc, timeout)  # workers too: the whole process group


def _accepts(address: tuple[str, int]) -> bool:
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        try:
            s.connect(address)
            return True
        except OSError:
            return False
