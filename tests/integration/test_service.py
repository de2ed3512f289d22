"""The phone as systemd runs it (firmware/systemd/deskphone.service), with this test as
systemd's end of NOTIFY_SOCKET.

`deskphone run` sends READY=1 once it is up, then WATCHDOG=1 every WATCHDOG_USEC/2 from its
event loop, every message from its main process (NotifyAccess=main), and STOPPING=1 on
SIGTERM before it exits 0. A phone whose loop is blocked sends no ping until the loop runs
again: that is what lets WatchdogSec= restart a hung phone. The unit file is checked for
what the issue asks of it, and by `systemd-analyze verify` where systemd is installed.

No SIP peer is needed: the phone runs without a registrar on ports the kernel picks.
"""

from __future__ import annotations

import asyncio
import configparser
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from phone import FIRMWARE

UNIT = FIRMWARE / "systemd" / "deskphone.service"
UCRED = struct.Struct("iII")  # struct ucred: pid, uid, gid
Message = tuple[bytes, int, float]  # what was sent, the sender's pid, when it arrived


class NotifySocket:
    """systemd's end of NOTIFY_SOCKET: a bound datagram socket that also learns, as systemd
    does (SO_PASSCRED), which process sent each message."""

    def __init__(self) -> None:
        # under /tmp, not tmp_path: sun_path holds 108 bytes
        self.directory = tempfile.mkdtemp(prefix="dp-notify-")
        self.path = os.path.join(self.directory, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(self.path)

    def recv(self, timeout: float) -> Message:
        """(message, sender pid, arrival time); TimeoutError if none in ``timeout`` s."""
        self.sock.settimeout(max(timeout, 1e-3))
        data, ancdata, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(UCRED.size))
        pid = -1
        for level, kind, value in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = UCRED.unpack(value[:UCRED.size])[0]
        return data, pid, time.monotonic()

    def until(self, want: Callable[[bytes], bool], timeout: float) -> list[Message]:
        """Every message up to and including the first that ``want`` accepts."""
        got: list[Message] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                got.append(self.recv(deadline - time.monotonic()))
            except TimeoutError:
                raise AssertionError(f"not received in {timeout} s; got "
                                     f"{[m for m, _, _ in got]}") from None
            if want(got[-1][0]):
                return got

    def drain(self) -> list[bytes]:
        out: list[bytes] = []
        self.sock.setblocking(False)
        while True:
            try:
                out.append(self.sock.recv(4096))
            except BlockingIOError:
                return out

    def close(self) -> None:
        self.sock.close()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    s = NotifySocket()
    yield s
    s.close()


def phone_toml(state_dir: Path, rtp_port: int) -> str:
    """An offline phone (no registrar) on kernel-chosen SIP and console ports."""
    return (
        '[account]\nuser = "100"\npassword = ""\ndomain = "127.0.0.1"\n'
        '[sip]\nlisten = "127.0.0.1:0"\n'
        f"rtp_port_min = {rtp_port}\nrtp_port_max = {rtp_port + 2}\n"
        '[console]\nlisten = "tcp:127.0.0.1:0"\n'
        f'[phone]\nstate_dir = "{state_dir}"\n'
        '[hardware]\ngpio = "none"\ndisplay = "none"\n'
        '[audio]\nbackend = "null"\n'
    )


def test_the_service_says_ready_pings_the_watchdog_and_says_stopping(
        tmp_path: Path, notify_socket: NotifySocket, free_port: Callable[..., int]) -> None:
    config = tmp_path / "phone.toml"
    config.write_text(phone_toml(tmp_path / "state", free_port(4, tcp=False, even=True)))
    config.chmod(0o600)
    env = {**os.environ, "PYTHONPATH": str(FIRMWARE), "NOTIFY_SOCKET": notify_socket.path,
           "WATCHDOG_USEC": "200000"}  # a ping every 100 ms
    env.pop("WATCHDOG_PID", None)
    log_path = tmp_path / "phone.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "deskphone.cli", "run", "-c",
                                 str(config)], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    try:
        try:
            first, pid, ready_at = notify_socket.recv(20.0)
        except TimeoutError:
            raise AssertionError(f"no READY=1 in 20 s:\n{log_path.read_text()}") from None
        assert first == b"READY=1\nSTATUS=started"
        assert pid == proc.pid  # NotifyAccess=main accepts the main process only

        pings: list[Message] = []
        deadline = ready_at + 1.0
        while time.monotonic() < deadline:
            try:
                pings.append(notify_socket.recv(deadline - time.monotonic()))
            except TimeoutError:
                break
        assert [m for m, _, _ in pings] == [b"WATCHDOG=1"] * len(pings)
        assert len(pings) >= 3, f"{len(pings)} pings in 1 s\n{log_path.read_text()}"
        assert {p for _, p, _ in pings} == {proc.pid}

        proc.send_signal(signal.SIGTERM)
        tail = notify_socket.until(lambda m: m == b"STOPPING=1", 10.0)
        assert tail[-1][1] == proc.pid
        assert proc.wait(15.0) == 0, log_path.read_text()
        assert b"WATCHDOG=1" not in notify_socket.drain()  # no ping after STOPPING=1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_stalled_loop_stops_the_pings_and_they_resume(
        tmp_path: Path, notify_socket: NotifySocket, free_port: Callable[..., int]) -> None:
    if str(FIRMWARE) not in sys.path:
        sys.path.insert(0, str(FIRMWARE))
    from deskphone.app import Phone
    from deskphone.config import parse_config
    from deskphone.runtime.sdnotify import SdNotifier

    cfg = parse_config(phone_toml(tmp_path / "state", free_port(4, tcp=False, even=True)))
    phone = Phone(cfg)
    # as systemd would set it up for this process, without touching os.environ
    phone.notifier = SdNotifier({"NOTIFY_SOCKET": notify_socket.path,
                                 "WATCHDOG_USEC": "200000"})
    loops: list[asyncio.AbstractEventLoop] = []
    errors: list[BaseException] = []

    async def main() -> None:
        loops.append(asyncio.get_running_loop())
        await phone.run()

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as e:  # reported below
            errors.append(e)

    thread = threading.Thread(target=run, name="phone-loop", daemon=True)
    thread.start()
    try:
        got = notify_socket.until(lambda m: m == b"WATCHDOG=1", 20.0)
        assert got[0][0] == b"READY=1\nSTATUS=started", errors
        notify_socket.until(lambda m: m == b"WATCHDOG=1", 1.0)  # the 100 ms rhythm

        during: list[list[bytes]] = []
        block: list[float] = []
        done = threading.Event()

        def stall() -> None:  # on the phone's loop: a callback that hangs for 1 s
            notify_socket.drain()
            block.append(time.monotonic())
            time.sleep(1.0)
            block.append(time.monotonic())
            during.append(notify_socket.drain())  # what reached systemd meanwhile
            done.set()

        loops[0].call_soon_threadsafe(stall)
        assert done.wait(10.0)
        assert during == [[]]  # ten intervals, no ping

        resumed = notify_socket.until(lambda m: m == b"WATCHDOG=1", 1.0)
        assert resumed[-1][2] - block[0] >= 1.0  # the gap covers the block
        for _ in range(3):  # and the rhythm is back
            notify_socket.until(lambda m: m == b"WATCHDOG=1", 1.0)
    finally:
        if loops:
            loops[0].call_soon_threadsafe(phone.request_stop)
        thread.join(15.0)
    assert not thread.is_alive() and not errors, errors
    last = notify_socket.drain()
    assert b"STOPPING=1" in last, last
    assert b"WATCHDOG=1" not in last[last.index(b"STOPPING=1"):]


def test_status_says_where_the_phone_registered(
        phone: Callable[..., Any], kamailio: Any, notify_socket: NotifySocket) -> None:
    """What `systemctl status deskphone` shows under the unit once Kamailio said 200."""
    p = phone("1001", env={"NOTIFY_SOCKET": notify_socket.path})  # returns once registered
    got = notify_socket.until(lambda m: m.startswith(b"STATUS=registered"), 10.0)
    assert got[0][0] == b"READY=1\nSTATUS=started"
    assert got[-1][0] == f"STATUS=registered as sip:1001@{kamailio.domain}".encode()
    assert {pid for _, pid, _ in got} == {p.proc.pid}
    assert b"WATCHDOG=1" not in [m for m, _, _ in got]  # no WATCHDOG_USEC: no pings
    assert p.stop() == 0
    tail = notify_socket.until(lambda m: m == b"STOPPING=1", 10.0)
    assert [m for m, _, _ in tail] == [b"STOPPING=1"]


# ---------------------------------------------------------------------------------------------
# the unit file


def unit_settings() -> dict[str, dict[str, list[str]]]:
    """section -> key -> every value given (systemd keys repeat; comments dropped)."""
    out: dict[str, dict[str, list[str]]] = {}
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            out.setdefault(section, {})
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not KEY=value: {raw!r}"
        out[section].setdefault(key.strip(), []).append(value.strip())
    return out


def test_the_unit_file_says_what_the_issue_asks() -> None:
    unit = unit_settings()
    service, first = unit["Service"], unit["Unit"]
    one = {key: values[-1] for key, values in service.items()}
    assert one["Type"] == "notify"
    assert one["NotifyAccess"] == "main"
    assert one["WatchdogSec"] == "30"
    assert one["Restart"] == "on-failure"
    assert one["RestartSec"] == "2"
    assert one["User"] == one["Group"] == "deskphone"
    assert set(one["SupplementaryGroups"].split()) >= {"gpio", "i2c", "spi", "audio",
                                                        "dialout"}
    assert one["ExecStart"] == "/opt/deskphone/bin/deskphone run -c /etc/deskphone/phone.toml"
    assert one["StateDirectory"] == one["ConfigurationDirectory"] == "deskphone"
    assert one["StandardOutput"] == "journal" and one["SyslogIdentifier"] == "deskphone"
    assert "network-online.target" in " ".join(first["After"]).split()
    assert "network-online.target" in " ".join(first["Wants"]).split()
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "ProtectKernelTunables",
                "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups",
                "LockPersonality"):
        assert one[key] == "yes", key
    assert one["ProtectSystem"] == "strict"
    assert one["CapabilityBoundingSet"] == ""
    assert one["RestrictAddressFamilies"].split() == ["AF_UNIX", "AF_INET", "AF_INET6",
                                                      "AF_NETLINK"]
    # what would hide /dev/gpiochip*, /dev/i2c-*, /dev/snd or the groups that open them
    assert one.get("PrivateDevices", "no") == "no"
    assert one.get("PrivateUsers", "no") == "no"
    assert one.get("ProcSubset", "all") == "all"
    # ProtectClock= implies a DeviceAllow= and with it (before systemd#18142) an allow list
    assert one.get("ProtectClock", "no") == "no" or "DevicePolicy" in one
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_the_unit_file_parses_as_ini() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    assert parser.sections() == ["Unit", "Service", "Install"]


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("no systemd-analyze here")
    # the same unit with ExecStart= on a binary that exists (verify checks it does)
    text = UNIT.read_text().replace("ExecStart=/opt/deskphone/bin/deskphone ",
                                    f"ExecStart={sys.executable} -m deskphone.cli ")
    assert text != UNIT.read_text()
    unit = tmp_path / "deskphone.service"
    unit.write_text(text)
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    # verify warns about unknown keys and bad values on stderr without failing
    problems = [line for line in result.stderr.splitlines() if str(unit) in line]
    assert problems == [], result.stderr
