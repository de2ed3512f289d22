"""Real SIP peers for the integration tests: Kamailio, SIPp and baresip on 127.0.0.1.

Theory of operation: every test gets its own runtime directory (under pytest's tmp_path) and
its own ports, so pytest-xdist workers never share a peer. Ports come from a range that is
neither the kernel's ephemeral range (32768-60999: outgoing connections) nor baresip's RTP
range (10000-20000); each xdist worker takes its own slice of it and checks each port by
binding it before handing it out. Kamailio runs in the foreground in its own process group,
so it stops in milliseconds (SIGTERM to the group; SIGKILL after 1 s). SIPp and baresip log
into the runtime directory, and the failures raised here quote those logs.

The peers themselves (cfg, accounts, scenarios, start scripts) live in ../shared/peers,
which may be read-only: nothing here writes there. Kamailio's db_text only reads it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[2]

# Ports handed out to tests: 21000-31999, one slice of 1000 per xdist worker (gw0..gw9),
# the last slice for a run without xdist.
_PORT_BASE = 21000
_PORT_SLICE = 1000
_PORT_SLICES = 11

# sun_path is 108 bytes; a deep tmp_path can exceed it
_MAX_UNIX_PATH = 100


def shared_dir() -> Path:
    """The shared/ directory laid beside the repo ($SHARED_DIR overrides)."""
    return Path(os.environ.get("SHARED_DIR") or REPO.parent / "shared").resolve()


def peers_dir() -> Path:
    return shared_dir() / "peers"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def find_binary(name: str) -> str | None:
    """Like shutil.which, but also looks in the sbin dirs (kamailio is /usr/sbin/kamailio)."""
    return shutil.which(name) or shutil.which(name, path="/usr/local/sbin:/usr/sbin:/sbin")


def missing_peers(*binaries: str) -> list[str]:
    """What is missing to run these peers: binaries, or the shared peers dir itself."""
    missing = [b for b in binaries if find_binary(b) is None]
    if not (peers_dir() / "README.md").is_file():
        missing.append(f"{peers_dir()} (set SHARED_DIR)")
    return missing


# ---------------------------------------------------------------------------------------------
# ports


def port_is_free(port: int, *, udp: bool = True, tcp: bool = True) -> bool:
    """True if `port` can be bound on every address (no SO_REUSEADDR: TIME_WAIT counts as busy)."""
    kinds = ([socket.SOCK_DGRAM] if udp else []) + ([socket.SOCK_STREAM] if tcp else [])
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                return False
    return True


class PortAllocator:
    """Hands out ports of this worker's slice, round-robin, each checked free when handed out.

    A port handed out is not handed out again until the cursor wraps around the slice
    (1000 ports), long after the test that used it has stopped its peers.
    """

    def __init__(self, worker: str | None = None, *, rng: random.Random | None = None) -> None:
        if worker and worker.startswith("gw") and worker[2:].isdigit():
            index = int(worker[2:]) % (_PORT_SLICES - 1)
        else:
            index = _PORT_SLICES - 1
        self.low = _PORT_BASE + index * _PORT_SLICE
        self.high = self.low + _PORT_SLICE
        # start at a random place so two sessions on one machine rarely meet
        self._next = self.low + (rng or random.Random()).randrange(_PORT_SLICE)

    def take(
        self, count: int = 1, *, udp: bool = True, tcp: bool = True, even: bool = False
    ) -> int:
        """First port P of `count` consecutive free ports P..P+count-1 (P even if asked)."""
        for _ in range(2 * _PORT_SLICE):
            port = self._next
            if even and port % 2:
                port += 1
            if port + count > self.high:
                self._next = self.low
                continue
            self._next = port + count
            if all(port_is_free(p, udp=udp, tcp=tcp) for p in range(port, port + count)):
                return port
        raise RuntimeError(f"no {count} free port(s) in {self.low}-{self.high - 1}")


def _wait_until(predicate: Any, timeout: float, interval: float = 0.005) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _tail(path: Path, n: int) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(lines[-n:])


def _short_unix_path(wanted: Path) -> Path:
    if len(str(wanted)) <= _MAX_UNIX_PATH:
        return wanted
    return Path(tempfile.mkdtemp(prefix="peers-")) / wanted.name


# ---------------------------------------------------------------------------------------------
# Kamailio


def parse_kamcmd(text: str) -> list[tuple[str, Any]]:
    """kamcmd's structured output as nested (key, value) lists; repeated keys are kept.

    `Key: {` opens a group, `}` closes it, `Key: value` is a leaf (value a str).
    """
    root: list[tuple[str, Any]] = []
    stack = [root]
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line == "{":
            continue
        if line == "}":
            if len(stack) > 1:
                stack.pop()
            continue
        key, sep, value = line.partition(":")
        value = value.strip()
        if sep and value == "{":
            group: list[tuple[str, Any]] = []
            stack[-1].append((key, group))
            stack.append(group)
        else:
            stack[-1].append((key, value))
    return root


def _contact_value(value: str) -> str | int | None:
    if value == "[not set]":
        return None
    try:
        return int(value)
    except ValueError:
        return value


def parse_ul_dump(text: str) -> dict[str, list[dict[str, Any]]]:
    """`kamcmd ul.dump` -> {AoR: [contact, ...]}.

    A contact has kamcmd's fields with keys lower-cased and '-' -> '_' (address, expires
    (seconds left), q, call_id, cseq, user_agent, received, path, socket, ...), "[not set]"
    as None and numbers as int, plus `uri` (= address).
    """
    result: dict[str, list[dict[str, Any]]] = {}

    def walk(node: list[tuple[str, Any]]) -> None:
        for key, value in node:
            if key == "Info" and isinstance(value, list):
                aor = next(v for k, v in value if k == "AoR")
                contacts = []
                for ck, cv in value:
                    if ck != "Contacts":
                        continue
                    for k, fields in cv:
                        if k == "Contact":
                            c = {f.lower().replace("-", "_"): _contact_value(v) for f, v in fields}
                            c["uri"] = c.get("address")
                            contacts.append(c)
                result.setdefault(aor, []).extend(contacts)
            elif isinstance(value, list):
                walk(value)

    walk(parse_kamcmd(text))
    return result


def stop_group(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM to a process started in its own group, SIGKILL after ``timeout`` s; then
    SIGKILL to what is left of the group (children outlive their parent by a few ms)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _options_ping(port: int, timeout: float = 0.2) -> bool:
    """Does a SIP server answer an OPTIONS for itself on UDP 127.0.0.1:port with a 200?"""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        s.settimeout(timeout)
        local = s.getsockname()[1]
        msg = (
            f"OPTIONS sip:{HOST}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {HOST}:{local};branch=z9hG4bK-ping{random.getrandbits(32)}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:ping@{HOST}:{local}>;tag=ping\r\n"
            f"To: <sip:{HOST}:{port}>\r\n"
            f"Call-ID: ping-{random.getrandbits(48)}@{HOST}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        try:
            s.sendto(msg.encode(), (HOST, port))
            data = s.recv(65535)
        except OSError:
            return False
        return data.startswith(b"SIP/2.0 200")


class Kamailio:
    """Kamailio 5.6 from ../shared/peers/kamailio/kamailio.cfg on udp+tcp 127.0.0.1:port.

    The same options as start-kamailio.sh, but in the foreground (-DD) and in its own
    process group, so stop() is one killpg and takes milliseconds.
    """

    host = HOST

    def __init__(self, run_dir: Path, port: int) -> None:
        self.run_dir = run_dir
        self.port = port
        self.log_path = run_dir / "kamailio.log"
        self.ctl_path = _short_unix_path(run_dir / "kamailio_ctl")
        self.pid_path = run_dir / "kamailio.pid"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def domain(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def uri(self) -> str:
        return f"sip:{self.domain}"

    @property
    def ctl(self) -> str:
        return f"unix:{self.ctl_path}"

    def start(self, timeout: float = 5.0) -> Kamailio:
        binary = find_binary("kamailio")
        if binary is None:
            raise RuntimeError("kamailio not installed (bash ../shared/peers/install.sh)")
        here = peers_dir() / "kamailio"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.ctl_path.unlink(missing_ok=True)
        args = [
            binary, "-DD", "-E",
            "-f", str(here / "kamailio.cfg"),
            "-P", str(self.pid_path),
            "-m", "32", "-M", "8",
            "-A", f"SIP_PORT={self.port}",
            "-A", f'DBURL="text://{here / "db"}"',
            "-A", f'CTL_SOCK="{self.ctl}"',
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.run_dir,
                start_new_session=True,
            )
        proc = self.proc

        def ready() -> bool:
            if proc.poll() is not None:
                return True
            return self.ctl_path.exists() and _options_ping(self.port) and self._tcp_listening()

        if not _wait_until(ready, timeout) or proc.poll() is not None:
            rc = proc.poll()
            self.stop()
            state = f"exited with {rc}" if rc is not None else f"not ready after {timeout} s"
            raise RuntimeError(
                f"kamailio on {self.domain} {state}; {self.log_path}:\n{self.log_tail(30)}"
            )
        return self

    def _tcp_listening(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def stop(self, timeout: float = 1.0) -> None:
        """SIGTERM to the whole process group, SIGKILL after `timeout` s."""
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_group(proc, timeout)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kamcmd(self, *args: str, timeout: float = 5.0) -> str:
        binary = find_binary("kamcmd") or "kamcmd"
        done = subprocess.run(
            [binary, "-s", self.ctl, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"kamcmd {' '.join(args)} failed ({done.returncode}): {done.stderr or done.stdout}"
            )
        return done.stdout

    def locations(self) -> dict[str, list[dict[str, Any]]]:
        """Registered contacts, {AoR: [contact dict, ...]} (see parse_ul_dump)."""
        return parse_ul_dump(self.kamcmd("ul.dump"))

    def log_tail(self, n: int = 30) -> str:
        return _tail(self.log_path, n)


# ---------------------------------------------------------------------------------------------
# SIPp


class SippFailed(AssertionError):
    pass


@dataclass
class SippResult:
    """One finished SIPp run. `log` = its error trace plus the tail of its message trace."""

    args: list[str] = field(repr=False)
    returncode: int
    stdout: str = field(repr=False)
    stderr: str = field(repr=False)
    log: str = field(repr=False)
    port: int
    media_port: int | None

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def describe(self) -> str:
        return (
            f"sipp exited {self.returncode}: {' '.join(self.args)}\n"
            f"--- stderr ---\n{self.stderr[-3000:]}\n"
            f"--- stdout (tail) ---\n{self.stdout[-2000:]}\n"
            f"--- traces ---\n{self.log}"
        )

    def check(self) -> SippResult:
        if not self.ok:
            raise SippFailed(self.describe())
        return self


class SippProcess:
    """A SIPp running in the background; wait() gives its SippResult."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        args: list[str],
        files: dict[str, Path],
        port: int,
        media_port: int | None,
        timeout: float,
    ) -> None:
        self.proc = proc
        self.args = args
        self.files = files
        self.port = port
        self.media_port = media_port
        self.timeout = timeout

    def wait(self, timeout: float | None = None, *, check: bool = False) -> SippResult:
        """Wait for SIPp to exit (killing it after `timeout`, exit code then -9)."""
        try:
            self.proc.wait(self.timeout if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        result = SippResult(
            args=self.args,
            returncode=self.proc.returncode,
            stdout=_read(self.files["stdout"]),
            stderr=_read(self.files["stderr"]),
            log=(
                f"{self.files['errors']}:\n{_tail(self.files['errors'], 40)}\n"
                f"{self.files['messages']} (tail):\n{_tail(self.files['messages'], 60)}"
            ),
            port=self.port,
            media_port=self.media_port,
        )
        return result.check() if check else result

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


_DEFAULT: Any = object()


class Sipp:
    """Runs SIPp scenarios (../shared/peers/sipp/NAME.xml, or an absolute path).

    Every call gets its own SIP port (-p), RTP ports (-mp, even, the 4 ports from it free:
    SIPp binds -mp and -mp+2), control port (-cp) and trace files in the run dir.
    `remote` (host:port) is the default target; pass remote=None for a UAS scenario.
    """

    def __init__(self, run_dir: Path, ports: PortAllocator, remote: str | None = None) -> None:
        self.run_dir = run_dir
        self.ports = ports
        self.remote = remote
        self._count = itertools.count(1)
        self.running: list[SippProcess] = []

    def scenario(self, name: str) -> Path:
        path = Path(name)
        if path.is_absolute():
            return path
        if path.suffix != ".xml":
            path = path.with_suffix(".xml")
        return peers_dir() / "sipp" / path

    def start(
        self,
        scenario: str,
        *args: str,
        port: int | None = None,
        media_port: int | None = None,
        transport: str = "udp",
        remote: str | None = _DEFAULT,
        calls: int = 1,
        timeout: float = 30.0,
        wait_bound: bool = True,
    ) -> SippProcess:
        """Start SIPp in the background; returns once its SIP port is bound."""
        binary = find_binary("sipp")
        if binary is None:
            raise RuntimeError("sipp not installed (bash ../shared/peers/install.sh)")
        if transport not in ("udp", "tcp"):
            raise ValueError(f"transport {transport!r} is not udp or tcp")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        port = port or self.ports.take()
        media_port = media_port or self.ports.take(4, tcp=False, even=True)
        control_port = self.ports.take(tcp=False)
        path = self.scenario(scenario)
        stem = self.run_dir / f"sipp-{next(self._count)}-{path.stem}"
        files = {
            "stdout": stem.with_suffix(".out"),
            "stderr": stem.with_suffix(".err"),
            "errors": stem.with_suffix(".errors.log"),
            "messages": stem.with_suffix(".messages.log"),
        }
        argv = [
            binary, "-sf", str(path),
            "-i", HOST, "-p", str(port),
            "-mi", HOST, "-mp", str(media_port),
            "-cp", str(control_port),
            "-m", str(calls),
            "-timeout", f"{timeout:g}s",
            "-nostdin",
            "-trace_err", "-error_file", str(files["errors"]),
            "-trace_msg", "-message_file", str(files["messages"]),
        ]  # fmt: skip
        if transport == "tcp":
            argv += ["-t", "t1"]
        argv += list(args)
        target = self.remote if remote is _DEFAULT else remote
        if target:
            argv.append(target)
        with open(files["stdout"], "wb") as out, open(files["stderr"], "wb") as err:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=self.run_dir
            )
        handle = SippProcess(proc, argv, files, port, media_port, timeout + 5)
        self.running.append(handle)
        if wait_bound:
            udp, tcp = transport == "udp", transport == "tcp"
            _wait_until(
                lambda: proc.poll() is not None or not port_is_free(port, udp=udp, tcp=tcp),
                timeout=3.0,
            )
        return handle

    def run(self, scenario: str, *args: str, check: bool = True, **kwargs: Any) -> SippResult:
        """Run a scenario in the foreground; raises SippFailed on a non-zero exit if `check`."""
        handle = self.start(scenario, *args, wait_bound=False, **kwargs)
        return handle.wait(check=check)

    def register(
        self,
        user: str,
        password: str | None = None,
        port: int | None = None,
        expires: int = 3600,
        transport: str = "udp",
        *,
        check: bool = True,
        **kwargs: Any,
    ) -> SippResult:
        """REGISTER `user` (register.xml) with Contact sip:user@127.0.0.1:port.

        result.port is the contact's port: start a uas.xml there to take the calls.
        """
        return self.run(
            "register.xml",
            "-s", user,
            "-ap", password if password is not None else f"secret{user}",
            "-key", "expires", str(expires),
            port=port,
            transport=transport,
            check=check,
            **{"timeout": 10.0, **kwargs},
        )  # fmt: skip

    def kill_all(self) -> None:
        for handle in self.running:
            handle.kill()
        self.running.clear()


# ---------------------------------------------------------------------------------------------
# baresip


class BaresipError(AssertionError):
    pass


@dataclass
class Baresip:
    """A baresip UA started by ../shared/peers/start-baresip.sh, driven over ctrl_tcp.

    baresip's ctrl_tcp serves one connection at a time (a new one replaces the old), so
    commands and events share one persistent connection: events that arrive while a command
    waits for its response are queued for wait_event(). Do not use `start-baresip.sh cmd`
    on an instance a test also drives from here.
    """

    run_dir: Path
    user: str
    sip_port: int
    ctrl_port: int
    registrar: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.dir = self.run_dir / f"baresip-{self.user}"
        self.log_path = self.dir / "baresip.log"
        self.pid: int | None = None
        self._sock: socket.socket | None = None
        self._buf = b""
        self._pending: deque[dict[str, Any]] = deque()
        self._tokens = itertools.count(1)

    @property
    def uri(self) -> str:
        """Where it takes calls directly, without the registrar."""
        return f"sip:{self.user}@{HOST}:{self.sip_port}"

    def start(self, timeout: float = 15.0) -> Baresip:
        script = peers_dir() / "start-baresip.sh"
        env = dict(os.environ)
        env.update(self.env)
        env["PEERS_RUN"] = str(self.run_dir)
        env["BARESIP_REGISTRAR"] = self.registrar or "none"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            done = subprocess.run(
                ["sh", str(script), self.user, str(self.sip_port), str(self.ctrl_port)],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as e:
            self._read_pid()
            self.stop(timeout=0)
            raise BaresipError(f"start-baresip.sh {self.user} hung: {e}\n{self.log_tail()}") from e
        if done.returncode != 0:
            raise BaresipError(
                f"start-baresip.sh {self.user} {self.sip_port} {self.ctrl_port} failed "
                f"({done.returncode}):\n{done.stdout}{done.stderr}"
            )
        self._read_pid()
        self._sock = socket.create_connection((HOST, self.ctrl_port), timeout=5)
        return self

    def _read_pid(self) -> None:
        try:
            self.pid = int((self.dir / "baresip.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            self.pid = None

    # -- ctrl_tcp: netstrings "LEN:JSON," ------------------------------------------------------

    def _send(self, obj: dict[str, Any]) -> None:
        if self._sock is None:
            raise BaresipError(f"baresip {self.user} is not running")
        data = json.dumps(obj).encode()
        self._sock.sendall(b"%d:%s," % (len(data), data))

    def _next_message(self, deadline: float) -> dict[str, Any] | None:
        """The next netstring from baresip, or None at the deadline."""
        assert self._sock is not None
        while True:
            length, colon, rest = self._buf.partition(b":")
            if colon:
                if not length.isdigit():
                    raise BaresipError(f"baresip {self.user}: bad netstring {self._buf[:80]!r}")
                n = int(length)
                if len(rest) >= n + 1:
                    payload, self._buf = rest[:n], rest[n + 1 :]
                    message: dict[str, Any] = json.loads(payload)
                    return message
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._sock.settimeout(left)
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                return None
            if not data:
                self._sock = None
                raise BaresipError(
                    f"baresip {self.user} closed ctrl_tcp (exited, or another ctrl_tcp client "
                    f"connected: it serves one at a time); log:\n{self.log_tail()}"
                )
            self._buf += data

    def command(
        self, cmd: str, params: str = "", *, timeout: float = 5.0, check: bool = True
    ) -> dict[str, Any]:
        """Run a baresip command; returns its response ({"ok":..., "data":...})."""
        token = f"t{next(self._tokens)}"
        self._send({"command": cmd, "params": params, "token": token})
        deadline = time.monotonic() + timeout
        while True:
            msg = self._next_message(deadline)
            if msg is None:
                raise BaresipError(
                    f"baresip {self.user}: no response to {cmd} {params} in {timeout} s"
                )
            if msg.get("event"):
                self.events.append(msg)
                self._pending.append(msg)
            elif msg.get("response") and msg.get("token", token) == token:
                if check and not msg.get("ok"):
                    raise BaresipError(f"baresip {self.user}: {cmd} {params} failed: {msg}")
                return msg

    def wait_event(self, types: str | Iterable[str], timeout: float = 10.0) -> dict[str, Any]:
        """The next event of one of `types`; events before it are dropped (see .events)."""
        wanted = {types} if isinstance(types, str) else set(types)
        while self._pending:
            event = self._pending.popleft()
            if event.get("type") in wanted:
                return event
        deadline = time.monotonic() + timeout
        while True:
            msg = self._next_message(deadline)
            if msg is None:
                seen = [e.get("type") for e in self.events]
                raise BaresipError(
                    f"baresip {self.user}: no {'/'.join(sorted(wanted))} in {timeout} s; "
                    f"events so far: {seen}; log:\n{self.log_tail()}"
                )
            if msg.get("event"):
                self.events.append(msg)
                if msg.get("type") in wanted:
                    return msg

    def stop(self, timeout: float = 1.5) -> None:
        """SIGTERM (baresip unregisters first, ~1 s), SIGKILL after `timeout` s (0: at once)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        pid, self.pid = self.pid, None
        if pid is None:
            return
        signals = (signal.SIGTERM, signal.SIGKILL) if timeout > 0 else (signal.SIGKILL,)
        for sig in signals:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            if _wait_until(lambda: not _alive(pid), timeout if sig == signal.SIGTERM else 2):
                return

    def log_tail(self, n: int = 30) -> str:
        return _tail(self.log_path, n)


def _alive(pid: int) -> bool:
    """Whether pid still runs (a zombie counts as gone: baresip is not our child)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False
