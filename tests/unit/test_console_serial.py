"""The serial console over a pty pair and socket://: the test holds the terminal's end.

No loop:// here: it reads back whatever is written, so every reply would come back as a
command (the console refuses it, see test_loop_url_is_refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
import serial

from deskphone.console import ConsoleCommands, LineTooLong, SerialConsole, encode_line
from deskphone.console.serial import TerminalSplitter, crlf

LOGGER = "deskphone.console.serial"
STATUS = {"ok": True, "registered": True, "call": None}


class FakePhone:
    """A PhoneControl that records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def status(self) -> dict[str, object]:
        self.calls.append(("status",))
        return {"registered": True, "call": None}

    def dial(self, target: str) -> dict[str, object]:
        self.calls.append(("dial", target))
        return {"call_id": "c1"}

    def answer(self) -> dict[str, object]:
        self.calls.append(("answer",))
        return {}

    def hangup(self) -> dict[str, object]:
        self.calls.append(("hangup",))
        return {}


# --- framing: CR, LF, CRLF --------------------------------------------------------------


def split_bytewise(data: bytes, max_line: int = 8) -> list[bytes | LineTooLong]:
    splitter = TerminalSplitter(max_line)
    return [line for i in range(len(data)) for line in splitter.feed(data[i : i + 1])]


def split_whole(data: bytes, max_line: int = 8) -> list[bytes | LineTooLong]:
    return TerminalSplitter(max_line).feed(data)


@pytest.mark.parametrize("split", [split_bytewise, split_whole])
def test_terminal_line_ends(split: Callable[[bytes], list[bytes | LineTooLong]]) -> None:
    assert split(b"help\r\nstatus\ranswer\nhangup\r") == [
        b"help", b"status", b"answer", b"hangup"]
    # CR CR and LF CR are a line and a blank line (which gets no reply).
    assert split(b"a\r\rb\n\rc\r\n\r\n") == [b"a", b"", b"b", b"", b"c", b""]
    assert split(b"12345678\r123456789\r\nok\r") == [b"12345678", LineTooLong(8), b"ok"]
    assert split(b"no end yet") == []
    assert split(b"no end yet\r") == [LineTooLong(8)]  # reported when its end comes
    assert split(b"") == []


def test_cr_ends_the_line_at_once_and_its_lf_may_follow_later() -> None:
    splitter = TerminalSplitter()
    assert splitter.feed(b"status\r") == [b"status"]  # no waiting for a LF that never comes
    assert splitter.feed(b"\n") == []  # the rest of that CRLF
    assert splitter.feed(b"\n") == [b""]  # a LF of its own: a blank line
    assert splitter.feed(b"dial 1\r") == [b"dial 1"]
    assert splitter.feed(b"\nanswer\r") == [b"answer"]
    splitter.feed(b"half a li")
    splitter.reset()
    assert splitter.feed(b"ne\r") == [b"ne"]


def test_replies_end_in_crlf() -> None:
    assert crlf(encode_line({"ok": True, "text": "a\nb"})) == b'{"ok": true, "text": "a\\nb"}\r\n'


# --- helpers ----------------------------------------------------------------------------

TIMEOUT = 20.0


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run one async test with a hard timeout, so a broken console fails instead of hangs."""

    async def bounded() -> None:
        await asyncio.wait_for(test(), TIMEOUT)

    asyncio.run(bounded())


async def until(condition: Callable[[], bool]) -> None:
    """Wait for the console's threads to get somewhere (bounded by the test's timeout)."""
    while not condition():
        await asyncio.sleep(0.005)


class Terminal:
    """The far end of the line, read and written as a raw descriptor (pty master, socket)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()
        os.set_blocking(fd, False)

    def send(self, data: bytes) -> None:
        """Write it all; a blocking write is fine, the console reads in its own thread."""
        os.set_blocking(self.fd, True)
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        finally:
            os.set_blocking(self.fd, False)

    async def receive_line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self.buffer += await self._read()
        line, _, rest = bytes(self.buffer).partition(b"\r\n")
        self.buffer[:] = rest
        assert b"\r" not in line and b"\n" not in line, line
        return line

    async def receive(self) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(await self.receive_line())
        return message

    async def ask(self, command: bytes) -> dict[str, Any]:
        self.send(command)
        return await self.receive()

    async def _read(self) -> bytes:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(self.fd, wake)
        try:
            await ready
        finally:
            loop.remove_reader(self.fd)
        data = os.read(self.fd, 65536)
        assert data, "the console closed the line"
        return data


class Pty:
    """A pty pair: the console opens the slave's path, the test is the master."""

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()  # the slave fd keeps the pair alive
        self.path = os.ttyname(self._slave)
        self.terminal = Terminal(self.master)

    def console_can_write(self) -> bool:
        """Whether the console's end has room for output (the test shares that tty)."""
        return select.select([], [self._slave], [], 0)[1] != []

    def unplug(self) -> None:
        os.close(self.master)
        self.master = -1

    def close(self) -> None:
        if self.master >= 0:
            os.close(self.master)
        os.close(self._slave)


@contextlib.contextmanager
def pty() -> Iterator[Pty]:
    pair = Pty()
    try:
        yield pair
    finally:
        pair.close()


def console_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("console-")]


def help_texts() -> dict[str, Any]:
    reply = ConsoleCommands(FakePhone()).handle_line("help")
    assert reply is not None
    return reply


# --- over a pty -------------------------------------------------------------------------


def test_commands_over_a_pty() -> None:
    async def test() -> None:
        phone = FakePhone()
        with pty() as pair:
            async with SerialConsole(ConsoleCommands(phone), pair.path) as console:
                assert console.connected
                term = pair.terminal
                assert await term.ask(b"help\r\n") == help_texts()
                assert await term.ask(b"status\r") == STATUS  # CR only, as minicom sends
                assert await term.ask(b"dial 1002\n") == {"ok": True, "call_id": "c1"}
                assert await term.ask(b"\r\n\r\r\nanswer\r\n") == {"ok": True}  # blanks: silent
                assert await term.ask(b"\xff\xfe\r") == {
                    "ok": False, "error": "line is not valid UTF-8"}
                assert await term.ask(b"frobnicate\r") == {
                    "ok": False, "error": 'unknown command "frobnicate" (try "help")'}
                assert await term.ask(b"dial " + b"1" * 5000 + b"\r") == {
                    "ok": False, "error": "line too long (limit 4096 bytes)"}
                term.send(b"sta")  # a line typed slowly arrives in pieces
                term.send(b"tus")
                assert await term.ask(b"\r") == STATUS
                assert phone.calls == [("status",), ("dial", "1002"), ("answer",), ("status",)]
            assert console_threads() == []

    run(test)


def test_events_reach_the_terminal_in_order_with_replies() -> None:
    async def test() -> None:
        phone = FakePhone()
        with pty() as pair:
            async with SerialConsole(ConsoleCommands(phone), pair.path) as console:
                term = pair.terminal
                console.broadcast({"event": "registered"})
                term.send(b"status\r")
                await until(lambda: phone.calls != [])  # the reply is queued with the call
                console.broadcast({"event": "call_state", "state": "ringing", "from": "Zoë"})
                assert await term.receive() == {"event": "registered"}
                assert await term.receive() == STATUS
                assert await term.receive() == {
                    "event": "call_state", "state": "ringing", "from": "Zoë"}
                with pytest.raises(ValueError, match='an event needs an "event" name'):
                    console.broadcast({"ok": True})
                assert console.dropped_events == 0

    run(test)


def test_a_terminal_that_never_reads_does_not_block_broadcast(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def test() -> None:
        phone = FakePhone()
        with pty() as pair:
            console = SerialConsole(ConsoleCommands(phone), pair.path, max_buffer=4096)
            await console.start()
            try:
                await stuck_terminal(console, pair, phone, caplog)
            finally:
                await console.close()
        assert caplog.records[-1].getMessage() == (
            f"serial console {pair.path}: dropped {console.dropped_events - 1} events and"
            f" {console.dropped_replies} replies (the line is not keeping up, or the port is gone)"
        )

    run(test)


async def stuck_terminal(
    console: SerialConsole, pair: Pty, phone: FakePhone, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    # Fill the pty (some 15 KB, taken in as the kernel moves it along), then the queue,
    # until the writer is stuck: broadcast returns every time.
    sent = 0
    while True:
        dropped = console.dropped_events
        while console.dropped_events == dropped:
            console.broadcast({"event": "blob", "n": sent, "data": "x" * 1000})
            sent += 1
            assert sent < 100_000
        queued = console.queued_bytes
        await asyncio.sleep(0.05)
        if console.queued_bytes == queued and not pair.console_can_write():
            break
    dropped = console.dropped_events
    started = time.monotonic()
    for _ in range(1000):
        console.broadcast({"event": "blob", "n": sent, "data": "x" * 1000})
    assert time.monotonic() - started < 1.0
    assert console.queued_bytes <= 4096
    assert console.dropped_events == dropped + 1000
    # Replies push queued events out; once only replies are queued, they drop too.
    reply = crlf(encode_line(STATUS))
    fit = 4096 // len(reply)
    pair.terminal.send(b"status\r" * 100)
    await until(lambda: len(phone.calls) == 100)
    assert console.dropped_replies == 100 - fit
    assert console.queued_bytes == fit * len(reply)
    # One warning for the whole burst: the interval has not passed.
    assert [r.getMessage() for r in caplog.records] == [
        f"serial console {pair.path}: dropped 1 events and 0 replies"
        " (the line is not keeping up, or the port is gone)"
    ]
    # Reading now gets whole lines: the events that made it, then the replies.
    lines: list[dict[str, Any]] = []
    while len(lines) <= fit or lines[-fit:] != [STATUS] * fit:
        lines.append(await pair.terminal.receive())
    events = lines[:-fit]
    assert all(e["event"] == "blob" for e in events)
    numbers = [e["n"] for e in events]
    assert numbers == sorted(numbers) and len(numbers) == len(set(numbers))


def test_close_is_prompt_even_with_a_stuck_terminal() -> None:
    async def test() -> None:
        with pty() as pair:
            idle = SerialConsole(ConsoleCommands(FakePhone()), pair.path)
            await idle.start()
            started = time.monotonic()
            await idle.close()
            assert time.monotonic() - started < 1.0
            await idle.close()  # twice is fine

            stuck = SerialConsole(ConsoleCommands(FakePhone()), pair.path, max_buffer=4096)
            await stuck.start()
            while stuck.dropped_events == 0:
                stuck.broadcast({"event": "blob", "data": "x" * 1000})
            started = time.monotonic()
            await stuck.close()
            assert time.monotonic() - started < 1.0
            assert console_threads() == []
            stuck.broadcast({"event": "after close"})  # ignored, not an error

    run(test)


def test_a_port_that_disappears_is_retried_quietly_until_close(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def test() -> None:
        attempts: list[str] = []
        unplugged = False

        def opener(url: str, **options: Any) -> Any:
            attempts.append(url)
            if unplugged:  # the adapter is gone: its device node with it
                raise serial.SerialException(f"could not open port {url}: No such file")
            return serial.serial_for_url(url, **options)

        with pty() as pair:
            console = SerialConsole(
                ConsoleCommands(FakePhone()), pair.path, retry_interval=0.02, opener=opener
            )
            await console.start()
            caplog.set_level(logging.DEBUG, logger=LOGGER)
            assert await pair.terminal.ask(b"status\r") == STATUS
            unplugged = True
            pair.unplug()
            await until(lambda: len(attempts) >= 4)
            assert not console.connected
            console.broadcast({"event": "nobody to tell"})
            assert console.dropped_events == 1
            started = time.monotonic()
            await console.close()
            assert time.monotonic() - started < 1.0
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        # how the kernel reports the pty's other end gone depends on timing: pyserial's
        # "readiness but no data" or a plain EIO; either way, one line, then quiet
        assert warnings in (
            [f"serial console {pair.path}: port lost (device reports readiness to read but"
             " returned no data (device disconnected or multiple access on port?));"
             " retrying every 0.02 s"],
            [f"serial console {pair.path}: port lost (read failed: [Errno 5] Input/output"
             " error); retrying every 0.02 s"],
        ), warnings
        retries = [r.getMessage() for r in caplog.records if "still cannot open" in r.getMessage()]
        assert len(retries) >= 3

    run(test)


# --- over socket:// ---------------------------------------------------------------------


@contextlib.contextmanager
def listening() -> Iterator[socket.socket]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    try:
        yield server
    finally:
        server.close()


def test_socket_url() -> None:
    async def test() -> None:
        loop = asyncio.get_running_loop()
        with listening() as server:
            url = f"socket://127.0.0.1:{server.getsockname()[1]}"
            async with SerialConsole(ConsoleCommands(FakePhone()), url) as console:
                conn, _ = await loop.sock_accept(server)
                with conn:
                    term = Terminal(conn.fileno())
                    assert await term.ask(b"status\r\n") == STATUS
                    console.broadcast({"event": "registered"})
                    assert await term.receive() == {"event": "registered"}
                    assert await term.ask(b"hangup\r") == {"ok": True}

    run(test)


def test_socket_url_reconnects_after_the_peer_goes(caplog: pytest.LogCaptureFixture) -> None:
    async def test() -> None:
        loop = asyncio.get_running_loop()
        caplog.set_level(logging.INFO, logger=LOGGER)
        with listening() as server:
            url = f"socket://127.0.0.1:{server.getsockname()[1]}"
            console = SerialConsole(ConsoleCommands(FakePhone()), url, retry_interval=0.05)
            await console.start()
            first, _ = await loop.sock_accept(server)
            with first:
                Terminal(first.fileno()).send(b"sta")  # half a line, lost with the port
            second, _ = await loop.sock_accept(server)  # the console dialled again
            with second:
                await until(lambda: console.connected)
                term = Terminal(second.fileno())
                assert await term.ask(b"tus\r") == {
                    "ok": False, "error": 'unknown command "tus" (try "help")'}
                assert await term.ask(b"status\r") == STATUS
                await console.close()  # before this end goes too
        messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert messages == [
            f"serial console {url}: port lost (read failed: socket disconnected); retrying"
            " every 0.05 s",
            f"serial console {url}: port is back",
        ]

    run(test)


# --- opening ----------------------------------------------------------------------------


def test_unopenable_urls_name_the_url() -> None:
    async def test() -> None:
        console = SerialConsole(ConsoleCommands(FakePhone()), "/nonexistent/tty0")
        with pytest.raises(OSError) as info:
            await console.start()
        assert str(info.value) == (
            "serial console: cannot open /nonexistent/tty0: [Errno 2] could not open port"
            " /nonexistent/tty0: [Errno 2] No such file or directory: '/nonexistent/tty0'"
        )
        assert isinstance(info.value.__cause__, serial.SerialException)
        assert not console.connected
        assert console_threads() == []

        with pytest.raises(OSError) as info:
            await SerialConsole(ConsoleCommands(FakePhone()), "foo://bar").start()
        assert str(info.value) == (
            "serial console: cannot open foo://bar: invalid URL, protocol 'foo' not known"
        )

        def refuse(url: str, **options: Any) -> Any:
            assert options == {"baudrate": 9600, "timeout": 0.1}
            raise PermissionError(13, "Permission denied")

        console = SerialConsole(
            ConsoleCommands(FakePhone()), "/dev/serial0", baudrate=9600, opener=refuse
        )
        with pytest.raises(OSError) as info:
            await console.start()
        assert str(info.value) == (
            "serial console: cannot open /dev/serial0: [Errno 13] Permission denied"
        )
        await console.close()  # closing a console that never started is fine

    run(test)


def test_double_start() -> None:
    async def test() -> None:
        with pty() as pair:
            async with SerialConsole(ConsoleCommands(FakePhone()), pair.path) as console:
                with pytest.raises(RuntimeError, match="already started"):
                    await console.start()

    run(test)


@pytest.mark.parametrize("url", ["loop://", "spy://loop://?file=/dev/null", "LOOP://"])
def test_loop_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError) as info:
        SerialConsole(ConsoleCommands(FakePhone()), url)
    assert str(info.value) == (
        f"serial console: {url} echoes every reply back in as a command;"
        " use a pty or socket:// to test"
    )
