"""runtime.sdnotify against a socket bound here, as systemd binds NOTIFY_SOCKET: the exact
datagrams, the abstract namespace, silence without systemd, WATCHDOG_PID, and a Watchdog on a
real event loop that pings on time and stops while the loop is blocked."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator

import pytest

from deskphone.runtime.sdnotify import (
    SdNotifier,
    Watchdog,
    one_line,
    socket_address,
    status_for,
    watchdog_interval,
)


class Receiver:
    """A bound AF_UNIX datagram socket: systemd's end of NOTIFY_SOCKET."""

    def __init__(self, sock: socket.socket, name: str) -> None:
        self.sock = sock
        self.name = name  # what NOTIFY_SOCKET says: "/path" or "@name"

    def recv(self, timeout: float = 2.0) -> bytes:
        self.sock.settimeout(timeout)
        return self.sock.recv(4096)

    def drain(self) -> list[bytes]:
        """Every datagram queued now, without waiting."""
        out: list[bytes] = []
        self.sock.setblocking(False)
        while True:
            try:
                out.append(self.sock.recv(4096))
            except BlockingIOError:
                return out


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A loop that is never run: for calls that must not schedule anything on it."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def path_socket() -> Iterator[Receiver]:
    # under /tmp, not tmp_path: sun_path holds 108 bytes
    directory = tempfile.mkdtemp(prefix="sdn-")
    path = os.path.join(directory, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    yield Receiver(sock, path)
    sock.close()
    shutil.rmtree(directory)


@pytest.fixture
def abstract_socket() -> Iterator[Receiver]:
    name = f"deskphone-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    yield Receiver(sock, "@" + name)
    sock.close()


def test_every_message_is_one_exact_datagram(path_socket: Receiver) -> None:
    n = SdNotifier({"NOTIFY_SOCKET": path_socket.name})
    assert n.enabled
    assert n.ready(status="started")
    assert path_socket.recv() == b"READY=1\nSTATUS=started"
    assert n.ready()
    assert path_socket.recv() == b"READY=1"
    assert n.status("registered as sip:100@example.com")
    assert path_socket.recv() == b"STATUS=registered as sip:100@example.com"
    assert n.watchdog()
    assert path_socket.recv() == b"WATCHDOG=1"
    assert n.stopping()
    assert path_socket.recv() == b"STOPPING=1"
    assert n.stopping(status="shutting down")
    assert path_socket.recv() == b"STOPPING=1\nSTATUS=shutting down"


def test_an_abstract_socket_is_named_with_an_at(abstract_socket: Receiver) -> None:
    assert socket_address(abstract_socket.name) == "\0" + abstract_socket.name[1:]
    n = SdNotifier({"NOTIFY_SOCKET": abstract_socket.name})
    assert n.ready(status="started")
    assert abstract_socket.recv() == b"READY=1\nSTATUS=started"


def test_a_status_cannot_smuggle_another_line(path_socket: Receiver) -> None:
    n = SdNotifier({"NOTIFY_SOCKET": path_socket.name})
    n.status("registration failed: 403 Forbidden\nREADY=1\r\nWATCHDOG=trigger")
    assert path_socket.recv() == (
        b"STATUS=registration failed: 403 Forbidden READY=1 WATCHDOG=trigger")
    assert len(one_line("x" * 1000)) == 200
    assert one_line("x" * 1000).endswith("...")


def test_without_notify_socket_nothing_is_sent(loop: asyncio.AbstractEventLoop) -> None:
    n = SdNotifier({"WATCHDOG_USEC": "30000000"})
    assert not n.enabled
    assert n.watchdog_interval is None
    assert not n.ready(status="started")
    assert not n.watchdog()
    assert not n.stopping()
    n.phone_event({"event": "registered", "aor": "sip:100@example.com"})
    assert n.start_watchdog(loop) is None


@pytest.mark.parametrize("value", ["vsock:2:1234", "relative/path", "@"])
def test_an_address_we_cannot_use_turns_notification_off(
        value: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="deskphone.sdnotify"):
        n = SdNotifier({"NOTIFY_SOCKET": value, "WATCHDOG_USEC": "30000000"})
    assert not n.enabled and n.watchdog_interval is None
    assert [r.getMessage() for r in caplog.records] == [
        f"NOTIFY_SOCKET={value!r} is not a path or @name: not notifying systemd"]


def test_a_send_error_is_logged_once_and_never_raised(
        caplog: pytest.LogCaptureFixture) -> None:
    gone = os.path.join(tempfile.gettempdir(), f"sdn-gone-{uuid.uuid4().hex}")
    n = SdNotifier({"NOTIFY_SOCKET": gone})
    with caplog.at_level(logging.WARNING, logger="deskphone.sdnotify"):
        assert not n.ready()
        assert not n.watchdog()
        assert not n.watchdog()
    assert [r.getMessage() for r in caplog.records] == [
        f"cannot notify systemd at {gone}: No such file or directory"]


def test_watchdog_interval_is_half_of_watchdog_usec_for_our_pid() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}, 42) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "42"}, 42) == 0.1
    # another process's watchdog (we inherited its environment): not ours to feed
    assert watchdog_interval({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "41"}, 42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "x"}, 42) is None
    for usec in ("", "0", "-5", "1.5", "lots"):
        assert watchdog_interval({"WATCHDOG_USEC": usec}, 42) is None
    assert watchdog_interval({}, 42) is None


def test_the_notifier_reads_our_own_pid_by_default(
        path_socket: Receiver, loop: asyncio.AbstractEventLoop) -> None:
    env = {"NOTIFY_SOCKET": path_socket.name, "WATCHDOG_USEC": "200000"}
    assert SdNotifier({**env, "WATCHDOG_PID": str(os.getpid())}).watchdog_interval == 0.1
    assert SdNotifier({**env, "WATCHDOG_PID": str(os.getpid() + 1)}).watchdog_interval is None
    assert SdNotifier(env, pid=7).watchdog_interval == 0.1
    mismatched = SdNotifier({**env, "WATCHDOG_PID": "8"}, pid=7)
    assert mismatched.start_watchdog(loop) is None
    assert mismatched.ready()  # READY and STATUS still go out
    assert path_socket.recv() == b"READY=1"


def test_registration_events_become_status_lines(path_socket: Receiver) -> None:
    assert status_for({"event": "registered", "aor": "sip:100@example.com",
                       "contact": "sip:100@192.0.2.7:5062", "expires": 3600}) == (
        "registered as sip:100@example.com")
    assert status_for({"event": "registration_failed", "status": 403, "reason": "Forbidden",
                       "retry_in": 30.0}) == "registration failed: 403 Forbidden (retry in 30 s)"
    assert status_for({"event": "registration_failed", "status": None,
                       "reason": "no network: cannot resolve pbx.example.com",
                       "retry_in": None}) == (
        "registration failed: no network: cannot resolve pbx.example.com")
    assert status_for({"event": "unregistered", "reason": "shutdown"}) == (
        "unregistered: shutdown")
    assert status_for({"event": "incoming", "call_id": "a", "from": "sip:200@x"}) is None

    n = SdNotifier({"NOTIFY_SOCKET": path_socket.name})
    n.phone_event({"event": "incoming", "call_id": "a", "from": "sip:200@x"})
    n.phone_event({"event": "registered", "aor": "sip:100@example.com"})
    assert path_socket.drain() == [b"STATUS=registered as sip:100@example.com"]


def test_watchdog_rejects_a_non_positive_interval(loop: asyncio.AbstractEventLoop) -> None:
    with pytest.raises(ValueError, match="watchdog interval must be positive, got 0"):
        Watchdog(SdNotifier({}), loop, 0)


class RecordingNotifier(SdNotifier):
    """Also notes when (monotonic) each ping went out."""

    def __init__(self, name: str, usec: int) -> None:
        super().__init__({"NOTIFY_SOCKET": name, "WATCHDOG_USEC": str(usec)})
        self.pings: list[float] = []

    def watchdog(self) -> bool:
        self.pings.append(time.monotonic())
        return super().watchdog()


def test_watchdog_pings_every_half_watchdog_usec_from_the_loop(path_socket: Receiver) -> None:
    n = RecordingNotifier(path_socket.name, 100_000)  # a ping every 50 ms

    async def main() -> None:
        wd = n.start_watchdog(asyncio.get_running_loop())
        assert wd is not None and wd.running and wd.interval == 0.05
        await asyncio.sleep(0.33)
        n.stopping()
        assert not wd.running
        await asyncio.sleep(0.12)  # no ping after STOPPING=1

    asyncio.run(main())
    got = path_socket.drain()
    assert got == [b"WATCHDOG=1"] * len(n.pings) + [b"STOPPING=1"]
    assert len(n.pings) >= 4  # at 0, 50, 100, ... 300 ms: 7 on an idle machine
    gaps = [b - a for a, b in zip(n.pings, n.pings[1:], strict=False)]
    assert min(gaps) >= 0.045, gaps  # never early


def test_a_blocked_loop_sends_no_ping_until_it_runs_again(path_socket: Receiver) -> None:
    n = RecordingNotifier(path_socket.name, 100_000)
    during: list[list[bytes]] = []
    block: list[float] = []

    def stall() -> None:  # a callback that hogs the loop for 0.4 s (8 intervals)
        path_socket.drain()
        block.append(time.monotonic())
        time.sleep(0.4)
        block.append(time.monotonic())
        during.append(path_socket.drain())  # what reached the socket meanwhile

    async def main() -> None:
        n.start_watchdog(asyncio.get_running_loop())
        await asyncio.sleep(0.12)
        asyncio.get_running_loop().call_soon(stall)
        while not during:
            await asyncio.sleep(0)
        await asyncio.sleep(0.2)  # after the block: pings again
        n.stopping()

    asyncio.run(main())
    start, end = block
    assert during == [[]]
    assert not [t for t in n.pings if start < t < end]
    before = [t for t in n.pings if t <= start]
    after = [t for t in n.pings if t >= end]
    assert len(before) >= 2 and len(after) >= 2, n.pings
    assert after[0] - before[-1] >= 0.4  # the gap covers the block
    assert after[0] - end < 0.1  # the overdue ping goes out as soon as the loop runs
    assert path_socket.drain()[-1] == b"STOPPING=1"


def test_start_twice_is_one_chain_and_stop_cancels_the_next_ping(
        path_socket: Receiver) -> None:
    n = RecordingNotifier(path_socket.name, 40_000)
    at_stop: list[int] = []

    async def main() -> None:
        wd = Watchdog(n, asyncio.get_running_loop(), 0.02)
        wd.start()
        wd.start()  # already running: no second chain
        await asyncio.sleep(0.07)
        wd.stop()
        wd.stop()
        at_stop.append(len(n.pings))
        await asyncio.sleep(0.06)

    asyncio.run(main())
    assert at_stop == [len(n.pings)] and len(n.pings) >= 2
    assert min(b - a for a, b in zip(n.pings, n.pings[1:], strict=False)) >= 0.018
    assert path_socket.drain() == [b"WATCHDOG=1"] * len(n.pings)
