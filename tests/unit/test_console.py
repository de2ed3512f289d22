"""The console: the pure command table and framing, then the TCP server over 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import struct
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest

from deskphone.console import (
    BUILTIN_COMMANDS,
    Command,
    CommandError,
    ConsoleCommands,
    ConsoleServer,
    LineSplitter,
    LineTooLong,
    PhoneControl,
    encode_line,
    event_line,
)


class FakePhone:
    """A PhoneControl that records calls; ``fail`` makes the next call raise it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.fail: BaseException | None = None
        self.result: Any = None

    def _do(self, *call: str) -> dict[str, object]:
        self.calls.append(call)
        if self.fail is not None:
            raise self.fail
        if self.result is not None:
            return self.result  # type: ignore[no-any-return]
        return {}

    def status(self) -> dict[str, object]:
        self._do("status")
        return {"registered": True, "call": None}

    def dial(self, target: str) -> dict[str, object]:
        return self._do("dial", target) or {"call_id": "c1"}

    def answer(self) -> dict[str, object]:
        return self._do("answer")

    def hangup(self) -> dict[str, object]:
        return self._do("hangup")


def make() -> tuple[FakePhone, ConsoleCommands]:
    phone = FakePhone()
    control: PhoneControl = phone  # checked by mypy: FakePhone satisfies the protocol
    return phone, ConsoleCommands(control)


# --- commands ---------------------------------------------------------------------------


def test_commands_reach_the_phone() -> None:
    phone, console = make()
    assert console.handle_line("status") == {"ok": True, "registered": True, "call": None}
    assert console.handle_line("dial 1002") == {"ok": True, "call_id": "c1"}
    assert console.handle_line("  dial   sip:1002@127.0.0.1:5060 \r") == {
        "ok": True,
        "call_id": "c1",
    }
    assert console.handle_line("answer") == {"ok": True}
    assert console.handle_line("hangup") == {"ok": True}
    assert phone.calls == [
        ("status",),
        ("dial", "1002"),
        ("dial", "sip:1002@127.0.0.1:5060"),
        ("answer",),
        ("hangup",),
    ]


@pytest.mark.parametrize("line", ["", "   ", "\t\r"])
def test_blank_lines_get_no_reply(line: str) -> None:
    phone, console = make()
    assert console.handle_line(line) is None
    assert phone.calls == []


def test_unknown_command() -> None:
    _, console = make()
    assert console.handle_line("foo") == {
        "ok": False,
        "error": 'unknown command "foo" (try "help")',
    }
    assert console.handle_line('say "hi"') == {
        "ok": False,
        "error": 'unknown command "say" (try "help")',
    }
    assert console.handle_line('a"b') == {
        "ok": False,
        "error": 'unknown command "a\\"b" (try "help")',
    }


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("dial", "dial: expected 1 argument, got 0 (usage: dial <target>)"),
        ("dial 1002 1003", "dial: expected 1 argument, got 2 (usage: dial <target>)"),
        ("status now", "status: expected no arguments, got 1 (usage: status)"),
        ("hangup all calls", "hangup: expected no arguments, got 2 (usage: hangup)"),
        ("help me", "help: expected no arguments, got 1 (usage: help)"),
    ],
)
def test_wrong_argument_count(line: str, error: str) -> None:
    phone, console = make()
    assert console.handle_line(line) == {"ok": False, "error": error}
    assert phone.calls == []


def test_help_lists_every_command() -> None:
    _, console = make()
    assert console.handle_line("help") == {
        "ok": True,
        "commands": {
            "status": "status: show registration and call state",
            "dial": "dial <target>: call a number (1002) or a SIP URI (sip:1002@host)",
            "answer": "answer: answer the ringing call",
            "hangup": "hangup: end, reject or cancel the call",
            "help": "help: list the commands",
        },
    }


def test_command_error_is_the_reply() -> None:
    phone, console = make()
    phone.fail = CommandError("no call to answer")
    assert console.handle_line("answer") == {"ok": False, "error": "no call to answer"}


def test_other_exceptions_are_internal_errors_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    phone, console = make()
    phone.fail = ZeroDivisionError("oops")
    with caplog.at_level(logging.ERROR, logger="deskphone.console"):
        assert console.handle_line("hangup") == {
            "ok": False,
            "error": "internal error: ZeroDivisionError",
        }
    (record,) = caplog.records
    assert record.getMessage() == "console command 'hangup' failed"
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError
    phone.fail = None
    assert console.handle_line("hangup") == {"ok": True}  # the console carries on


@pytest.mark.parametrize(
    ("result", "error"),
    [
        (["not", "a", "dict"], "internal error: TypeError"),
        ({"when": object()}, "internal error: TypeError"),
        ({"level": float("nan")}, "internal error: ValueError"),
    ],
)
def test_replies_that_cannot_be_sent_are_internal_errors(result: object, error: str) -> None:
    phone, console = make()
    phone.result = result
    assert console.handle_line("answer") == {"ok": False, "error": error}


def test_controller_cannot_override_ok() -> None:
    phone, console = make()
    phone.result = {"ok": False, "state": "idle"}
    assert console.handle_line("hangup") == {"ok": True, "state": "idle"}


def test_table_is_extensible() -> None:
    phone = FakePhone()
    table = {
        **BUILTIN_COMMANDS,
        "key": Command(lambda control, args: {"pressed": args[0]}, ("digit",), "press a key"),
    }
    console = ConsoleCommands(phone, table)
    assert console.handle_line("key 5") == {"ok": True, "pressed": "5"}
    assert console.handle_line("key") == {
        "ok": False,
        "error": "key: expected 1 argument, got 0 (usage: key <digit>)",
    }
    help_reply = console.handle_line("help")
    assert help_reply is not None
    assert help_reply["commands"]["key"] == "key <digit>: press a key"  # type: ignore[index]
    with pytest.raises(ValueError, match='"help" is built in'):
        ConsoleCommands(phone, {"help": table["key"]})


def test_handle_bytes() -> None:
    _, console = make()
    assert console.handle_bytes(b"status") == {"ok": True, "registered": True, "call": None}
    assert console.handle_bytes(b"dial \xff") == {"ok": False, "error": "line is not valid UTF-8"}
    assert console.handle_bytes(LineTooLong(4096)) == {
        "ok": False,
        "error": "line too long (limit 4096 bytes)",
    }
    assert console.handle_bytes(b"dial caf\xc3\xa9") == {"ok": True, "call_id": "c1"}


# --- wire encoding ----------------------------------------------------------------------


def test_encode_line_is_one_utf8_json_line() -> None:
    data = encode_line({"ok": True, "name": "Zoë\nline two"})
    assert data == '{"ok": true, "name": "Zoë\\nline two"}\n'.encode()
    assert data.count(b"\n") == 1


def test_event_line() -> None:
    assert event_line({"event": "ringing", "from": "1002"}) == (
        b'{"event": "ringing", "from": "1002"}\n'
    )
    with pytest.raises(ValueError, match='an event needs an "event" name'):
        event_line({"name": "ringing"})
    with pytest.raises(ValueError, match="event is not JSON"):
        event_line({"event": "x", "when": object()})


# --- framing ----------------------------------------------------------------------------


def split_bytewise(data: bytes, max_line: int = 8) -> list[bytes | LineTooLong]:
    splitter = LineSplitter(max_line)
    lines: list[bytes | LineTooLong] = []
    for i in range(len(data)):
        lines += splitter.feed(data[i : i + 1])
    return lines + splitter.finish()


def split_whole(data: bytes, max_line: int = 8) -> list[bytes | LineTooLong]:
    splitter = LineSplitter(max_line)
    return splitter.feed(data) + splitter.finish()


@pytest.mark.parametrize("split", [split_bytewise, split_whole])
def test_splitter(split: Callable[[bytes], list[bytes | LineTooLong]]) -> None:
    assert split(b"status\ndial 1\r\n\nanswer") == [b"status", b"dial 1", b"", b"answer"]
    assert split(b"12345678\n123456789\r\n12345678\r\nok\n") == [
        b"12345678",
        LineTooLong(8),
        b"12345678",
        b"ok",
    ]
    assert split(b"x" * 100 + b"\nstatus\n") == [LineTooLong(8), b"status"]
    assert split(b"x" * 100) == [LineTooLong(8)]
    assert split(b"") == []


def test_splitter_holds_no_more_than_a_line() -> None:
    splitter = LineSplitter(4096)
    for _ in range(100):
        assert splitter.feed(b"x" * 65536) == []
        assert len(splitter._buffer) <= 4097
    assert splitter.feed(b"\nstatus\n") == [LineTooLong(4096), b"status"]


# --- the TCP server ---------------------------------------------------------------------

TIMEOUT = 10.0


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run one async test with a hard timeout, so a broken server fails instead of hangs."""

    async def bounded() -> None:
        await asyncio.wait_for(test(), TIMEOUT)

    asyncio.run(bounded())


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def receive(self) -> dict[str, Any]:
        line = await self.reader.readline()
        assert line.endswith(b"\n"), line
        message: dict[str, Any] = json.loads(line.decode("utf-8"))
        return message

    async def ask(self, command: str) -> dict[str, Any]:
        await self.send(command.encode() + b"\n")
        return await self.receive()

    async def at_eof(self) -> bool:
        try:
            return await self.reader.read() == b""
        except ConnectionResetError:
            return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def until(condition: Callable[[], bool]) -> None:
    """Let the loop run until the server has caught up (bounded by the test's timeout)."""
    while not condition():
        await asyncio.sleep(0)


def serving(
    body: Callable[[ConsoleServer, FakePhone], Awaitable[None]], **options: Any
) -> Callable[[], Coroutine[Any, Any, None]]:
    async def test() -> None:
        phone = FakePhone()
        server = ConsoleServer(ConsoleCommands(phone), "127.0.0.1", 0, **options)
        await server.start()
        try:
            await body(server, phone)
        finally:
            await server.close()

    return test


def test_port_zero_gives_a_real_port() -> None:
    async def body(server: ConsoleServer, phone: FakePhone) -> None:
        assert server.port != 0
        client = await Client.connect(server.port)
        assert await client.ask("status") == {"ok": True, "registered": True, "call": None}
        await client.close()

    run(serving(body))


def test_two_clients_get_their_own_replies_and_every_event() -> None:
    async def body(server: ConsoleServer, phone: FakePhone) -> None:
        a = await Client.connect(server.port)
        b = await Client.connect(server.port)
        await a.send(b"status\n")
        await b.send(b"dial 1002\n")
        assert await b.receive() == {"ok": True, "call_id": "c1"}
        assert await a.receive() == {"ok": True, "registered": True, "call": None}
        server.broadcast({"event": "call_state", "state": "ringing"})
        assert await a.receive() == {"event": "call_state", "state": "ringing"}
        assert await b.receive() == {"event": "call_state", "state": "ringing"}
        assert await a.ask("\n\nhelp") == {"ok": True, "commands": help_texts()}
        await a.close()
        await b.close()

    run(serving(body))


def help_texts() -> dict[str, str]:
    reply = ConsoleCommands(FakePhone()).handle_line("help")
    assert reply is not None
    return reply["commands"]  # type: ignore[return-value]


def test_a_client_leaving_mid_line_does_not_disturb_the_others() -> None:
    async def body(server: ConsoleServer, phone: FakePhone) -> None:
        a = await Client.connect(server.port)
        b = await Client.connect(server.port)
        await a.send(b"sta")
        assert await b.ask("status") == {"ok": True, "registered": True, "call": None}
        # Leave abruptly: SO_LINGER 0 sends a RST instead of a FIN.
        sock = a.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        a.writer.transport.abort()
        await until(lambda: server.client_count == 1)
        server.broadcast({"event": "registered"})
        assert await b.receive() == {"event": "registered"}
        assert await b.ask("hangup") == {"ok": True}
        await b.close()
        await until(lambda: server.client_count == 0)

    run(serving(body))


def test_last_line_without_newline_is_answered_at_eof() -> None:
    async def body(server: ConsoleServer, phone: FakePhone) -> None:
        client = await Client.connect(server.port)
        await client.send(b"status\nanswer")
        client.writer.write_eof()
        assert await client.receive() == {"ok": True, "registered": True, "call": None}
        assert await client.receive() == {"ok": True}
        assert await client.at_eof()
        await client.close()

    run(serving(body))


def test_bad_utf8_and_overlong_lines_keep_the_connection() -> None:
    async def body(server: ConsoleServer, phone: FakePhone) -> None:
        client = await Client.connect(server.port)
        await client.send(b"dial \xff\xfe\n")
        assert await client.receive() == {"ok": False, "error": "line is not valid UTF-8"}
        await client.send(b"dial " + b"1" * 5000 + b"\n")
        assert await client.receive() == {"ok": False, "error": "line too long (limit 4096 bytes)"}
        await client.send(b"dial " + b"1" * 4091 + b"\r\n")  # exactly 4096 bytes is fine
        assert await client.receive() == {"ok": True, "call_id": "c1"}
        assert await client.ask("status") == {"ok": True, "registered": True, "call": None}
        assert phone.calls == [("dial", "1" * 4091), ("status",)]
        await client.close()

    run(serving(body))


def test_a_client_that_stops_reading_is_dropped() -> None:
    big = {"event": "blob", "data": "x" * 65536}

    async def body(server: ConsoleServer, phone: FakePhone) -> None:
        reader = await Client.connect(server.port)
        stuck = socket.create_connection(("127.0.0.1", server.port))
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            await until(lambda: server.client_count == 2)
            for _ in range(2000):  # at most ~128 MiB; the kernel buffers a few MiB at most
                server.broadcast(big)
                assert await reader.receive() == big
                if server.client_count == 1:
                    break
            assert server.client_count == 1
            server.broadcast({"event": "still here"})
            assert await reader.receive() == {"event": "still here"}
            assert await reader.ask("status") == {"ok": True, "registered": True, "call": None}
        finally:
            stuck.close()
        await reader.close()

    run(serving(body, max_buffer=65536))


def test_close_closes_every_client_and_stops_listening() -> None:
    async def test() -> None:
        server = ConsoleServer(ConsoleCommands(FakePhone()), "127.0.0.1", 0)
        await server.start()
        port = server.port
        a = await Client.connect(port)
        b = await Client.connect(port)
        assert await a.ask("status") == {"ok": True, "registered": True, "call": None}
        await until(lambda: server.client_count == 2)
        await server.close()
        assert server.client_count == 0
        assert await a.at_eof()
        assert await b.at_eof()
        with pytest.raises(ConnectionRefusedError):
            await Client.connect(port)
        await a.close()
        await b.close()

    run(test)


def test_context_manager_and_double_start() -> None:
    async def test() -> None:
        async with ConsoleServer(ConsoleCommands(FakePhone()), "127.0.0.1", 0) as server:
            with pytest.raises(RuntimeError, match="already started"):
                await server.start()
            client = await Client.connect(server.port)
            assert await client.ask("answer") == {"ok": True}
        assert await client.at_eof()
        await client.close()

    run(test)


def test_broadcast_with_no_clients_and_bad_events() -> None:
    async def body(server: ConsoleServer, phone: FakePhone) -> None:
        server.broadcast({"event": "nobody listening"})
        with pytest.raises(ValueError, match='an event needs an "event" name'):
            server.broadcast({"ok": True})

    run(serving(body))


class _MediaPhone:
    """A controller with the in-call commands, recording what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def status(self) -> dict[str, object]:
        return {"registered": True, "call": None}

    def dial(self, target: str) -> dict[str, object]:
        return {}

    def answer(self) -> dict[str, object]:
        return {}

    def hangup(self) -> dict[str, object]:
        return {}

    def stats(self) -> dict[str, object]:
        self.calls.append(("stats", None))
        return {"codec": "PCMU"}

    def dtmf(self, digits: str) -> dict[str, object]:
        self.calls.append(("dtmf", digits))
        return {"digits": digits}

    def hold(self, on: bool) -> dict[str, object]:
        self.calls.append(("hold", on))
        return {"hold": on}

    def mute(self, on: bool) -> dict[str, object]:
        self.calls.append(("mute", on))
        return {"muted": on}


def test_in_call_commands_reach_the_controller() -> None:
    from deskphone.console import BUILTIN_COMMANDS, CALL_COMMANDS

    phone = _MediaPhone()
    cmds = ConsoleCommands(phone, {**BUILTIN_COMMANDS, **CALL_COMMANDS})
    assert cmds.handle_line("stats") == {"ok": True, "codec": "PCMU"}
    assert cmds.handle_line("dtmf 12#") == {"ok": True, "digits": "12#"}
    assert cmds.handle_line("hold") == {"ok": True, "hold": True}
    assert cmds.handle_line("resume") == {"ok": True, "hold": False}
    assert cmds.handle_line("mute") == {"ok": True, "muted": True}
    assert cmds.handle_line("unmute") == {"ok": True, "muted": False}
    assert phone.calls == [("stats", None), ("dtmf", "12#"), ("hold", True), ("hold", False),
                           ("mute", True), ("mute", False)]
    assert cmds.handle_line("dtmf") == {
        "ok": False, "error": "dtmf: expected 1 argument, got 0 (usage: dtmf <digits>)"}


def test_in_call_commands_on_a_phone_without_media() -> None:
    from deskphone.console import BUILTIN_COMMANDS, CALL_COMMANDS

    class Plain:
        def status(self) -> dict[str, object]:
            return {"registered": False, "call": None}

        def dial(self, target: str) -> dict[str, object]:
            return {}

        def answer(self) -> dict[str, object]:
            return {}

        def hangup(self) -> dict[str, object]:
            return {}

    cmds = ConsoleCommands(Plain(), {**BUILTIN_COMMANDS, **CALL_COMMANDS})
    assert cmds.handle_line("stats") == {"ok": False, "error": "this phone has no media path"}
