"""The phone under test, driven through its line console, for the integration tests.

Theory of operation: `PhoneProcess` runs the real firmware as a device would, the command
`python -m deskphone.cli run -c FILE --log-level debug`, with a TOML config written into the
test's run directory: its own SIP port (UDP+TCP), console port and RTP ports from the
worker's port slice, the account at the test's Kamailio, and the [audio] section of its
`AudioSettings` (the null backend unless a media test gives it WAV files or ALSA PCMs).
Its stdout+stderr (the debug log: every SIP message it sends, digest responses blanked) go
to a file that the tests read and that a failed test prints. `stop()` is SIGTERM, as
systemd stops the phone.

`PhoneThread` runs the same `deskphone.app.Phone` in this process, on an asyncio loop in a
thread, for the one thing a subprocess cannot do in test time: run the phone's clock faster
(`Phone(time_scale=N)`) so a registration refresh that Kamailio's 60 s minimum puts 30 s away
comes after 30/N s. Both have the same face: `.console`, `.start()`, `.stop()`, `.log_text()`.

`Console` is a client of the line console: one JSON line per command reply, events as
`{"event": ...}` lines in between. Events are kept in arrival order (`.events`); a command
or wait that reads past an event keeps it for a later `wait_event`.

At the end, SIPp around the phone: a callee registered at Kamailio (`sipp_callee`), a
caller through Kamailio (`sipp_caller`), and our own scenarios (scenarios/, `scenario()`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peers import HOST, REPO, Kamailio, PortAllocator, Sipp, SippProcess

FIRMWARE = REPO / "firmware"


class PhoneError(AssertionError):
    pass


# ---------------------------------------------------------------------------------------------
# console client


class Console:
    """A line-console client: `command("dial 1002")` -> reply dict, `wait_event(...)` -> event.

    Every event read is appended to `events` (all of them, for assertions on the sequence)
    and to an unconsumed queue that `wait_event` takes from, first match first, so events
    that arrive while a command waits for its reply are not lost.
    """

    def __init__(self, sock: socket.socket, name: str = "phone",
                 describe: Callable[[], str] = lambda: "") -> None:
        self._sock = sock
        self._buf = b""
        self.name = name
        self.events: list[dict[str, Any]] = []
        self._pending: list[dict[str, Any]] = []
        self._describe = describe

    @classmethod
    def connect(cls, port: int, *, timeout: float = 10.0, name: str = "phone",
                alive: Callable[[], bool] = lambda: True,
                describe: Callable[[], str] = lambda: "") -> Console:
        """Connect as soon as the console listens (polls every 5 ms while `alive()`)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                sock = socket.create_connection((HOST, port), timeout=1.0)
                return cls(sock, name, describe)
            except OSError as e:
                if not alive():
                    raise PhoneError(f"{name} exited before its console listened\n"
                                     f"{describe()}") from e
                if time.monotonic() >= deadline:
                    raise PhoneError(f"{name}: console tcp:{HOST}:{port} not listening after "
                                     f"{timeout} s: {e}\n{describe()}") from e
                time.sleep(0.005)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()

    def _read_line(self, deadline: float) -> dict[str, Any] | None:
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._sock.settimeout(left)
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                return None
            if not data:
                raise PhoneError(f"{self.name}: console closed the connection\n"
                                 f"{self._describe()}")
            self._buf += data
        line, _, self._buf = self._buf.partition(b"\n")
        message: dict[str, Any] = json.loads(line)
        if "event" in message:
            self.events.append(message)
            self._pending.append(message)
        return message

    def command(self, line: str, *, timeout: float = 5.0, check: bool = True) -> dict[str, Any]:
        """Send one command line; its reply (raises PhoneError on ok=false if `check`)."""
        self._sock.sendall(line.encode() + b"\n")
        deadline = time.monotonic() + timeout
        while True:
            message = self._read_line(deadline)
            if message is None:
                raise PhoneError(f"{self.name}: no reply to {line!r} in {timeout} s\n"
                                 f"{self._describe()}")
            if "event" not in message:
                if check and not message.get("ok"):
                    raise PhoneError(f"{self.name}: {line!r} failed: {message}")
                return message

    def status(self) -> dict[str, Any]:
        return self.command("status")

    def wait_event(self, name: str, timeout: float = 10.0, *, take: bool = True,
                   **match: Any) -> dict[str, Any]:
        """The first not yet taken event `name` whose fields equal `match`; waits for it.

        `take=False` leaves it for the next wait_event.
        """

        def wanted(e: dict[str, Any]) -> bool:
            return e["event"] == name and all(e.get(k) == v for k, v in match.items())

        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self._pending):
                if wanted(event):
                    if take:
                        del self._pending[i]
                    return event
            if self._read_line(deadline) is None:
                seen = [e["event"] for e in self.events]
                raise PhoneError(f"{self.name}: no {name} event {match or ''} in {timeout} s; "
                                 f"events so far: {seen}\n{self._describe()}")

    def wait_stats(self, timeout: float = 5.0, **at_least: int) -> dict[str, Any]:
        """The call's `stats` once every named counter is at least that high.

        `wait_stats(rx_packets=50)`: a second of received audio. The media thread refreshes
        its snapshot five times a second; this asks every 50 ms.
        """
        deadline = time.monotonic() + timeout
        while True:
            stats = self.command("stats", check=False)
            if stats.get("ok") and all(stats.get(k, 0) >= v for k, v in at_least.items()):
                return stats
            if time.monotonic() >= deadline:
                raise PhoneError(f"{self.name}: stats never reached {at_least} in {timeout} s; "
                                 f"last: {stats}\n{self._describe()}")
            time.sleep(0.05)

    def forget(self) -> None:
        """Drop the events not yet taken (they stay in `events`): wait for new ones only."""
        self._pending.clear()

    def no_event(self, name: str) -> None:
        """Assert that no `name` event has arrived (of those read so far)."""
        hits = [e for e in self.events if e["event"] == name]
        if hits:
            raise PhoneError(f"{self.name}: unexpected {name} event(s): {hits}")


@contextlib.contextmanager
def registrar_paused(kamailio: Kamailio) -> Iterator[None]:
    """Kamailio stopped (SIGSTOP) inside the block; requests wait in its socket buffers.

    "The registrar has not answered yet" then lasts as long as the test needs instead of the
    millisecond it takes on loopback: a phone started inside the block whose console client
    got a reply (so the phone's loop has taken the client in, not only the kernel) before the
    block ends has that client see every registration event.
    """
    assert kamailio.proc is not None
    pgid = kamailio.proc.pid  # its own process group (start_new_session)
    os.killpg(pgid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(pgid, signal.SIGCONT)


# ---------------------------------------------------------------------------------------------
# config


@dataclass(frozen=True)
class AudioSettings:
    """The phone's [audio] section: `null` (the default), `file` (input/output WAVs) or
    `alsa` (device, or capture_device/playback_device). Empty strings are left out."""

    backend: str = "null"
    input: str | os.PathLike[str] = ""
    output: str | os.PathLike[str] = ""
    device: str = ""
    capture_device: str = ""
    playback_device: str = ""

    def toml(self) -> str:
        lines = ["[audio]", f"backend = {_toml_str(self.backend)}"]
        for key in ("input", "output", "device", "capture_device", "playback_device"):
            value = str(getattr(self, key))
            if value:
                lines.append(f"{key} = {_toml_str(value)}")
        return "\n".join(lines) + "\n"


def _toml_str(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's for what a path can hold)."""
    return json.dumps(value, ensure_ascii=False)


@dataclass
class PhoneSettings:
    """What a test phone's TOML says; the ports come from the worker's port allocator."""

    user: str
    password: str
    domain: str  # the account's domain: Kamailio's host:port
    registrar: str  # sip:host:port
    transport: str
    sip_port: int
    console_port: int
    rtp_port: int  # rtp_port_min; RTP ports rtp_port .. rtp_port + 3
    expires: int = 3600
    audio: AudioSettings = field(default_factory=AudioSettings)
    console_serial: str = ""  # [console] serial: a pty's path, say

    def toml(self, state_dir: Path | None = None) -> str:
        """``state_dir``: the phone's call history, inside the test's run directory."""
        phone = f"\n[phone]\nstate_dir = {_toml_str(str(state_dir))}\n" if state_dir else ""
        return (
            "# written by tests/integration/phone.py\n"
            "[account]\n"
            f'user = "{self.user}"\n'
            f'password = "{self.password}"\n'
            f'domain = "{self.domain}"\n'
            f'registrar = "{self.registrar}"\n'
            f'transport = "{self.transport}"\n'
            f"register_expires = {self.expires}\n"
            "\n[sip]\n"
            f'listen = "{HOST}:{self.sip_port}"\n'
            f"rtp_port_min = {self.rtp_port}\n"
            f"rtp_port_max = {self.rtp_port + 2}\n"
            "\n[console]\n"
            f'listen = "tcp:{HOST}:{self.console_port}"\n'
            + (f"serial = {_toml_str(self.console_serial)}\n" if self.console_serial else "")
            + phone
            + "\n" + self.audio.toml()
            + "\n[log]\n"
            'level = "debug"\n'
        )

    @classmethod
    def allocate(cls, ports: PortAllocator, *, user: str, password: str | None, domain: str,
                 transport: str = "udp", expires: int = 3600,
                 audio: AudioSettings | None = None) -> PhoneSettings:
        return cls(
            user=user,
            password=password if password is not None else f"secret{user}",
            domain=domain,
            registrar=f"sip:{domain}",
            transport=transport,
            sip_port=ports.take(),
            console_port=ports.take(udp=False),
            rtp_port=ports.take(4, tcp=False, even=True),
            expires=expires,
            audio=audio or AudioSettings(),
        )


# the debug log has one "send <addr>:" line per message, the message on the next line
# a log record starts a line with its timestamp; a "send" record is followed by the message
_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ", re.M)
_SEND = re.compile(r"DEBUG deskphone: send (\S+):\n")


@dataclass(frozen=True)
class Sent:
    """One SIP message the phone sent, as its debug log shows it."""

    dest: str  # "udp:127.0.0.1:5060"
    start_line: str
    headers: dict[str, str]  # lower-case name -> first value

    @property
    def method(self) -> str:  # "REGISTER", or "SIP/2.0" for a response
        return self.start_line.split(" ", 1)[0]

    @property
    def cseq(self) -> str:
        return self.headers.get("cseq", "")


class _PhoneBase:
    settings: PhoneSettings
    log_path: Path
    console: Console
    name: str

    @property
    def sip_port(self) -> int:
        return self.settings.sip_port

    @property
    def contact(self) -> str:
        """The Contact the phone registers (see Endpoint._contact_uri)."""
        s = self.settings
        tail = "" if s.transport == "udp" else f";transport={s.transport}"
        return f"sip:{s.user}@{HOST}:{s.sip_port}{tail}"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    def describe(self) -> str:
        return f"--- {self.log_path} (tail) ---\n{self.log_tail()}"

    def sent(self, method: str | None = None, *, retransmissions: bool = False) -> list[Sent]:
        """The SIP messages the phone sent, in order, from its debug log.

        `method` filters ("REGISTER", or "SIP/2.0" for responses). A retransmission (the
        same bytes again) is left out unless `retransmissions`.
        """
        out: list[Sent] = []
        seen: set[str] = set()
        for record in _RECORD.split(self.log_text()):
            m = _SEND.match(record)
            if m is None:
                continue
            text = record[m.end():].replace("\r\n", "\n")
            if text in seen and not retransmissions:
                continue
            seen.add(text)
            start, *lines = text.split("\n\n", 1)[0].split("\n")
            headers: dict[str, str] = {}
            for line in lines:
                name, _, value = line.partition(":")
                headers.setdefault(name.strip().lower(), value.strip())
            sent = Sent(m.group(1), start, headers)
            if method is None or sent.method == method:
                out.append(sent)
        return out

    def wait_registered(self, timeout: float = 10.0) -> dict[str, Any]:
        """Once registered: the status reply. The `registered` event is left for the test."""
        status = self.console.status()
        if not status["registered"]:
            self.console.wait_event("registered", timeout, take=False)
            status = self.console.status()
        if not status["registered"]:
            raise PhoneError(f"{self.name}: registered event, but status says {status}\n"
                             f"{self.describe()}")
        return status

    def new_console(self) -> Console:
        return Console.connect(self.settings.console_port, name=f"{self.name} (2nd console)",
                               describe=self.describe)


# ---------------------------------------------------------------------------------------------
# the phone as a process


class PhoneProcess(_PhoneBase):
    """`deskphone run` in a subprocess; start() returns once its console is connected.

    `env`: variables added to the phone's environment (e.g. ALSA_CONFIG_PATH).
    """

    def __init__(self, run_dir: Path, settings: PhoneSettings, name: str = "phone",
                 env: Mapping[str, str] | None = None) -> None:
        self.run_dir = run_dir
        self.settings = settings
        self.name = name
        self.env = dict(env or {})
        self.config_path = run_dir / f"{name}.toml"
        self.log_path = run_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None

    def start(self, timeout: float = 10.0, *, connect: bool = True) -> PhoneProcess:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.settings.toml(self.run_dir / f"{self.name}-state"))
        self.config_path.chmod(0o600)
        env = dict(os.environ)
        env.update(self.env)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(FIRMWARE), env.get("PYTHONPATH", "")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        argv = [sys.executable, "-m", "deskphone.cli", "run", "-c", str(self.config_path),
                "--log-level", "debug"]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=env, cwd=self.run_dir)
        if connect:
            self.connect(timeout)
        return self

    def connect(self, timeout: float = 10.0) -> Console:
        proc = self.proc
        assert proc is not None
        self.console = Console.connect(self.settings.console_port, timeout=timeout,
                                       name=self.name, alive=lambda: proc.poll() is None,
                                       describe=self.describe)
        return self.console

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 8.0) -> int:
        """SIGTERM (the phone un-registers, ends calls and exits); SIGKILL after `timeout`."""
        proc = self.proc
        if proc is None:
            return self.returncode if self.returncode is not None else 0
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if getattr(self, "console", None) is not None:
            self.console.close()
        self.proc = None
        self.returncode = proc.returncode
        return proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------------------------------------
# the phone in this process


class PhoneThread(_PhoneBase):
    """`deskphone.app.Phone` on an asyncio loop in a thread; `time_scale` speeds its clock.

    Its log (logger "deskphone" at DEBUG, the same lines as the process writes) goes to
    `log_path`. One at a time per test process: it sets the level of the "deskphone" logger.
    """

    def __init__(self, run_dir: Path, settings: PhoneSettings, *, time_scale: float = 1.0,
                 name: str = "phone", hardware: Any = None) -> None:
        self.hardware = hardware  # app.HardwareBuilder: the mocked GPIO and display
        self.run_dir = run_dir
        self.settings = settings
        self.time_scale = time_scale
        self.name = name
        self.config_path = run_dir / f"{name}.toml"
        self.log_path = run_dir / f"{name}.log"
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._phone: Any = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._handler: logging.Handler | None = None
        self._old_level = logging.NOTSET

    def start(self, timeout: float = 10.0) -> PhoneThread:
        if str(FIRMWARE) not in sys.path:
            sys.path.insert(0, str(FIRMWARE))
        from deskphone.app import Phone
        from deskphone.config import load_config

        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.settings.toml(self.run_dir / f"{self.name}-state"))
        cfg = load_config(str(self.config_path))
        logger = logging.getLogger("deskphone")
        self._handler = logging.FileHandler(self.log_path)
        self._handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self._old_level = logger.level
        logger.setLevel(logging.DEBUG)
        logger.addHandler(self._handler)

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._phone = Phone(cfg, time_scale=self.time_scale, hardware=self.hardware)
            self._started.set()
            await self._phone.run()  # until request_stop(); un-registers on the way out

        def run() -> None:
            try:
                asyncio.run(main())
            except BaseException as e:  # reported by start()/stop()
                self._error = e
                self._started.set()

        self._thread = threading.Thread(target=run, name=f"{self.name}-loop", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout) or self._error is not None:
            raise PhoneError(f"{self.name} did not start: {self._error!r}\n{self.describe()}")
        thread = self._thread  # the console listens once Phone.start() is through
        self.console = Console.connect(self.settings.console_port, timeout=timeout,
                                       name=self.name, alive=thread.is_alive,
                                       describe=self.describe)
        return self

    def describe(self) -> str:
        error = f"--- {self.name} raised {self._error!r} ---\n" if self._error else ""
        return error + super().describe()

    def stop(self, timeout: float = 8.0) -> int:
        """What SIGTERM does to the process: un-register and stop; 0 if it ended cleanly."""
        if self._thread is None:
            return 0
        if self._loop is not None and self._phone is not None and self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # loop already closed
                self._loop.call_soon_threadsafe(self._phone.request_stop)
        self._thread.join(timeout)
        alive = self._thread.is_alive()
        self._thread = None
        if getattr(self, "console", None) is not None:
            self.console.close()
        if self._handler is not None:
            logger = logging.getLogger("deskphone")
            logger.removeHandler(self._handler)
            logger.setLevel(self._old_level)
            self._handler.close()
            self._handler = None
        if alive or self._error is not None:
            return 1
        return 0


# ---------------------------------------------------------------------------------------------
# SIPp around the phone

SCENARIOS = Path(__file__).resolve().parent / "scenarios"


def scenario(name: str) -> str:
    """A scenario of ours (tests/integration/scenarios), as Sipp.start takes it."""
    return str(SCENARIOS / name)


def sipp_callee(sipp: Sipp, scenario_name: str = "uas.xml", *args: str, user: str = "1002",
                transport: str = "udp") -> SippProcess:
    """A SIPp UAS registered at Kamailio as `user` (register.xml, then the UAS on its port).

    Returns once the UAS has bound the registered port: Kamailio can route `user` to it.
    """
    for attempt in range(_BIND_ATTEMPTS):
        reg = sipp.register(user, transport=transport, check=False)
        if not reg.ok:
            if _BIND_FAILED in reg.stderr and attempt + 1 < _BIND_ATTEMPTS:
                continue
            raise PhoneError(reg.describe())
        uas = _start_bound(sipp, scenario_name, "-s", user, *args, port=reg.port,
                           transport=transport, remote=None)
        if uas is not None:
            return uas
        # the port went to another process between the REGISTER and the UAS: the stale
        # contact stays in Kamailio (Kamailio forks to it too; it never answers)
    raise PhoneError(f"SIPp {scenario_name}: no free port in {_BIND_ATTEMPTS} attempts")


def sipp_caller(sipp: Sipp, scenario_name: str, *args: str, caller: str = "1002",
                callee: str = "1001", transport: str = "udp") -> SippProcess:
    """A SIPp UAC calling `callee` through Kamailio as `caller` (407 answered).

    Returns once SIPp has bound its port (it sends its INVITE at once).
    """
    for _ in range(_BIND_ATTEMPTS):
        uac = _start_bound(sipp, scenario_name, "-s", callee, "-au", caller, "-ap",
                           f"secret{caller}", "-key", "caller", caller, *args,
                           transport=transport)
        if uac is not None:
            return uac
    raise PhoneError(f"SIPp {scenario_name}: no free port in {_BIND_ATTEMPTS} attempts")


_BIND_FAILED = "Unable to bind"
_BIND_ATTEMPTS = 3


def _start_bound(sipp: Sipp, scenario_name: str, *args: str, transport: str,
                 timeout: float = 5.0, **kwargs: Any) -> SippProcess | None:
    """Sipp.start, then wait until that SIPp owns a socket on its SIP port.

    None if it could not bind the port: the allocator found it free, but a process outside
    this test run (the machine is shared) took it first; the caller tries another port.
    Sipp.start's own check ("the port is not free any more") cannot tell those apart, nor
    a TCP port that only lingers in TIME_WAIT after a register.xml run from it.
    """
    handle = sipp.start(scenario_name, *args, transport=transport, wait_bound=False,
                        **kwargs)
    deadline = time.monotonic() + timeout
    while not socket_owned_by(handle.proc.pid, handle.port, transport):
        if handle.proc.poll() is not None:  # done already, or failed: the test sees which
            return None if _BIND_FAILED in handle.wait(0).stderr else handle
        if time.monotonic() > deadline:
            handle.kill()
            raise PhoneError(f"SIPp {scenario_name} did not bind {transport} {handle.port} "
                             f"in {timeout} s:\n{handle.wait(0).describe()}")
        time.sleep(0.005)
    return handle


def socket_owned_by(pid: int, port: int, transport: str) -> bool:
    """Whether process `pid` has an IPv4 `transport` socket on local `port`.

    From /proc (the socket's inode among the process's fds): no probe packet or
    connection, which SIPp would take for a peer.
    """
    suffix = f":{port:04X}"
    inodes = set()
    with open(f"/proc/net/{transport}") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[1].endswith(suffix) and fields[9] != "0":
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return False
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except FileNotFoundError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"{fd_dir}/{fd}") in inodes:
                return True
    return False


def sipp_received(uas: SippProcess, method: str, timeout: float = 5.0) -> None:
    """Wait until SIPp's message trace (-trace_msg) shows a `method` request received.

    Hang up only once the callee has the ACK: an ACK and a BYE sent back to back can
    overtake each other inside Kamailio (parallel workers), and uas.xml fails on a BYE
    that comes first.
    """
    pattern = re.compile(rf"message received \[\d+\] bytes :\s*\n{method} ")
    deadline = time.monotonic() + timeout
    while True:
        try:
            if pattern.search(uas.files["messages"].read_text(errors="replace")):
                return
        except FileNotFoundError:
            pass
        if uas.proc.poll() is not None or time.monotonic() > deadline:
            raise PhoneError(f"SIPp never got {method}:\n{uas.wait(0).describe()}")
        time.sleep(0.005)
