"""Who may use the TCP console: HTTP rejection, the token, client limits and timeouts.

The session is pure and tested line by line; the server over 127.0.0.1 with the fake phone
of test_console.py, asserting what the fake phone was (not) asked to do.
"""

from __future__ import annotations

import asyncio
import hmac
import logging

import pytest
from test_console import Client, FakePhone, run, serving, until

from deskphone.console import (
    Close,
    ConsoleCommands,
    ConsoleServer,
    ConsoleSession,
    LineTooLong,
    Verdict,
    looks_like_http,
)
from deskphone.console.server import _Lockouts, _Throttle

TOKEN = "0123456789abcdef0123"
AUTH_REQUIRED: dict[str, object] = {"ok": False, "error": "auth required"}
STATUS: dict[str, object] = {"ok": True, "registered": True, "call": None}
LOGGER = "deskphone.console.server"

BROWSER_POST = (
    b"POST /console HTTP/1.1\r\n"
    b"Host: 127.0.0.1:5099\r\n"
    b"Origin: http://evil.example\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: 22\r\n"
    b"\r\n"
    b"dial 0900123456\nanswer\n"
)


# --- spotting HTTP ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        b"GET / HTTP/1.1",
        b"POST /console HTTP/1.1",
        b"OPTIONS * HTTP/1.1",
        b"PRI * HTTP/2.0",
        b"GET /",  # HTTP/0.9
        b"DELETE",
        b"dial /x HTTP/1.0",  # any method: the version at the end gives it away
        b"Host: 127.0.0.1:5099",
        b"content-type: text/plain",
        b"Origin:",
        b"X-Requested-With:\tXMLHttpRequest",
    ],
)
def test_http_lines_are_spotted(line: bytes) -> None:
    assert looks_like_http(line)


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"   ",
        b"status",
        b"dial 1002",
        b"dial sip:1002@127.0.0.1:5060",
        b"sip:1002@127.0.0.1",  # a URI typed without "dial" is not a header
        b"get volume",  # methods are upper case: a lower-case command stays free
        b"auth 0123456789abcdef",
        b"dial http://example.com/ HTTP",
    ],
)
def test_console_lines_are_not_http(line: bytes) -> None:
    assert not looks_like_http(line)


# --- the session, line by line ----------------------------------------------------------


def session(token: str | None = None) -> tuple[FakePhone, ConsoleSession]:
    phone = FakePhone()
    return phone, ConsoleSession(ConsoleCommands(phone), token)


def test_http_first_closes_without_a_word() -> None:
    phone, s = session()
    assert s.handle(b"POST / HTTP/1.1") == Verdict(None, Close.HTTP)
    phone2, s2 = session()
    assert s2.handle(b"") == Verdict(None)
    assert s2.handle(b"Host: 127.0.0.1") == Verdict(None, Close.HTTP)
    assert phone.calls == phone2.calls == []


def test_after_a_known_command_http_lines_are_just_unknown_commands() -> None:
    phone, s = session()
    assert s.handle(b"status") == Verdict(STATUS)
    assert s.handle(b"GET / HTTP/1.1") == Verdict(
        {"ok": False, "error": 'unknown command "GET" (try "help")'})


def test_an_unknown_command_does_not_end_the_http_watch() -> None:
    _, s = session()
    assert s.handle(b"stauts") == Verdict({"ok": False, "error": 'unknown command "stauts"'
                                                                 ' (try "help")'})
    assert s.handle(b"Host: x").close is Close.HTTP


def test_without_a_token_auth_is_accepted_and_does_nothing() -> None:
    phone, s = session()
    assert s.authenticated
    assert s.handle(b"auth anything") == Verdict({"ok": True})
    assert s.handle(b"dial 1002") == Verdict({"ok": True, "call_id": "c1"})
    assert phone.calls == [("dial", "1002")]


def test_with_a_token_nothing_runs_before_auth() -> None:
    phone, s = session(TOKEN)
    assert not s.authenticated
    for line in (b"status", b"help", b"dial 1002", b"nonsense", b"\xff\xfe", LineTooLong(8)):
        assert s.handle(line) == Verdict(AUTH_REQUIRED), line
    assert s.handle(b"  ") == Verdict(None)  # a blank line still gets no reply
    assert s.handle(b"auth") == Verdict(
        {"ok": False, "error": "auth: expected 1 argument, got 0 (usage: auth <token>)"})
    assert s.failures == 0  # not a guess
    assert phone.calls == []
    assert s.handle(f"auth {TOKEN}".encode()) == Verdict({"ok": True})
    assert s.authenticated
    assert s.handle(b"dial 1002") == Verdict({"ok": True, "call_id": "c1"})
    assert phone.calls == [("dial", "1002")]


def test_three_wrong_tokens_close() -> None:
    phone, s = session(TOKEN)
    wrong = {"ok": False, "error": "wrong token"}
    assert s.handle(b"auth guess1") == Verdict(wrong)
    assert s.handle(f"auth {TOKEN[:-1]}".encode()) == Verdict(wrong)  # nearly: still wrong
    assert s.handle(b"auth guess3") == Verdict(
        {"ok": False, "error": "wrong token (3 tries); closing"}, Close.AUTH_FAILED)
    assert (s.failures, s.authenticated, phone.calls) == (3, False, [])


def test_tokens_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def compare(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", compare)  # as commands.py calls it
    _, s = session("tökén-0123456789abc")
    assert s.handle("auth tökén-0123456789abc".encode()) == Verdict({"ok": True})
    assert seen == [("tökén-0123456789abc".encode(),) * 2]


# --- the server: browsers ---------------------------------------------------------------


def test_a_browsers_post_is_closed_and_nothing_runs(caplog: pytest.LogCaptureFixture) -> None:
    async def body(server: ConsoleServer, phone: FakePhone) -> None:
        for _ in range(2):
            browser = await Client.connect(server.port)
            await browser.send(BROWSER_POST)
            assert await browser.at_eof()  # and not a byte came back first
            await browser.close()
        await until(lambda: server.client_count == 0)
        assert phone.calls == []
        lab = await Client.connect(server.port)  # the console itself still works
        assert await lab.ask("status") == STATUS
        await lab.close()

    with caplog.at_level(logging.WARNING, LOGGER):
        run(serving(body))
    warnings = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(warnings) == 1, warnings  # rate-limited: one line for both browsers
    assert warnings[0].startswith("console: closed 1 connection(s) that spoke HTTP")


def test_a_browsers_post_byte_by_byte_is_closed_too() -> None:
    async def body(server: ConsoleServer, phone: FakePhone) -> None:
        browser = await Client.connect(server.port)
        for i in range(len(BROWSER_POST)):
            try:
                await browser.send(BROWSER_POST[i : i + 1])
            except ConnectionError:
                break
        assert await browser.at_eof()
        await browser.close()
        assert phone.calls == []

    run(serving(body))


def test_a_request_line_too_long_to_read_is_caught_by_its_host_field() -> None:
    async def body(server: ConsoleServer, phone: FakePhone) -> None:
        browser = await Client.connect(server.port)
        await browser.send(b"POST /" + b"a" * 5000 + b" HTTP/1.1\r\n" + BROWSER_POST.split(
            b"\r\n", 1)[1])
        assert await browser.receive() == {"ok": False,
                                           "error": "line too long (limit 4096 bytes)"}
        assert await browser.at_eof()
        await browser.close()
        assert phone.calls == []

    run(serving(body))


# --- the server: the token --------------------------------------------------------------


def test_auth_required_and_no_events_until_auth() -> None:
    async def body(server: ConsoleServer, phone: FakePhone) -> None:
        client = await Client.connect(server.port)
        assert await client.ask("dial 1002") == AUTH_REQUIRED
        assert await client.ask("help") == AUTH_REQUIRED
        server.broadcast({"event": "incoming", "from": "sip:1002@127.0.0.1"})
        # the next line is the reply, not the event: the event never went out
        assert await client.ask("status") == AUTH_REQUIRED
        assert phone.calls == []
        assert await client.ask(f"auth {TOKEN}") == {"ok": True}
        server.broadcast({"event": "registered"})
        assert await client.receive() == {"event": "registered"}
        assert await client.ask("dial 1002") == {"ok": True, "call_id": "c1"}
        assert phone.calls == [("dial", "1002")]
        await client.close()

    run(serving(body, token=TOKEN))


def test_three_wrong_tokens_close_and_the_address_waits() -> None:
    async def body(server: ConsoleServer, phone: FakePhone) -> None:
        client = await Client.connect(server.port)
        assert await client.ask("auth guess1") == {"ok": False, "error": "wrong token"}
        assert await client.ask("auth guess2") == {"ok": False, "error": "wrong token"}
        assert await client.ask(f"auth {TOKEN}x") == {
            "ok": False, "error": "wrong token (3 tries); closing"}
        assert await client.at_eof()
        await client.close()
        again = await Client.connect(server.port)
        assert await again.receive() == {
            "ok": False, "error": "too many wrong tokens; try again in 60 s"}
        assert await again.at_eof()
        await again.close()
        assert phone.calls == []

    run(serving(body, token=TOKEN, lockout=60))


def test_lockouts_double_and_are_forgiven() -> None:
    locks = _Lockouts(2.0, 10.0)
    assert locks.remaining("10.0.0.1", 0.0) is None
    assert locks.lock("10.0.0.1", 0.0) == 2.0
    assert locks.remaining("10.0.0.1", 1.5) == 0.5
    assert locks.remaining("10.0.0.2", 1.5) is None  # per address
    assert locks.remaining("10.0.0.1", 2.0) is None
    assert [locks.lock("10.0.0.1", t) for t in (3.0, 8.0, 17.0, 28.0)] == [4.0, 8.0, 10.0, 10.0]
    assert locks.lock("10.0.0.1", 28.0 + 10.0 + 10.0 + 1) == 2.0  # quiet for long: afresh
    locks.forgive("10.0.0.1")
    assert locks.remaining("10.0.0.1", 50.0) is None
    assert _Lockouts(0.0, 10.0).lock("10.0.0.1", 0.0) == 0.0  # lock-outs off


def test_lockouts_remember_a_bounded_number_of_addresses() -> None:
    locks = _Lockouts(5.0, 10.0, max_entries=2)
    locks.lock("a", 0.0)
    locks.lock("b", 1.0)
    locks.lock("c", 2.0)  # "a", freed first, is forgotten
    assert [locks.remaining(h, 3.0) for h in "abc"] == [None, 3.0, 4.0]


def test_throttle_reports_at_most_once_an_interval() -> None:
    throttle = _Throttle(60.0)
    assert [throttle.due(t) for t in (0.0, 1.0, 2.0, 59.0, 60.0, 61.0)] == [1, 0, 0, 0, 4, 0]


def test_a_right_token_after_a_wrong_one_forgives() -> None:
    async def body(server: ConsoleServer, phone: FakePhone) -> None:
        client = await Client.connect(server.port)
        assert await client.ask("auth nope") == {"ok": False, "error": "wrong token"}
        assert await client.ask(f"auth {TOKEN}") == {"ok": True}
        assert await client.ask("status") == STATUS
        await client.close()

    run(serving(body, token=TOKEN, lockout=60))


def test_no_auth_in_time_closes() -> None:
    async def body(server: ConsoleServer, phone: FakePhone) -> None:
        client = await Client.connect(server.port)
        assert await client.receive() == {"ok": False, "error": "no auth within 0.2 s; closing"}
        assert await client.at_eof()
        await client.close()

    run(serving(body, token=TOKEN, auth_timeout=0.2))


# --- the server: limits -----------------------------------------------------------------


def test_the_ninth_client_is_turned_away(caplog: pytest.LogCaptureFixture) -> None:
    async def body(server: ConsoleServer, phone: FakePhone) -> None:
        clients = [await Client.connect(server.port) for _ in range(8)]
        for client in clients:
            assert await client.ask("status") == STATUS
        ninth = await Client.connect(server.port)
        assert await ninth.receive() == {
            "ok": False, "error": "too many console clients (8); try again later"}
        assert await ninth.at_eof()
        await ninth.close()
        assert server.client_count == 8
        await clients.pop().close()
        await until(lambda: server.client_count == 7)
        tenth = await Client.connect(server.port)
        assert await tenth.ask("status") == STATUS
        for client in [*clients, tenth]:
            await client.close()

    with caplog.at_level(logging.WARNING, LOGGER):
        run(serving(body))
    (warning,) = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert warning.startswith(
        "console: turned away 1 connection(s): 8 clients already (the last from ('127.0.0.1'")


def test_an_idle_client_is_closed() -> None:
    async def body(server: ConsoleServer, phone: FakePhone) -> None:
        client = await Client.connect(server.port)
        assert await client.receive() == {"ok": False, "error": "idle for 0.2 s; closing"}
        assert await client.at_eof()
        await client.close()
        assert server.client_count == 0

    run(serving(body, idle_timeout=0.2))


def test_a_client_that_keeps_talking_stays() -> None:
    async def body(server: ConsoleServer, phone: FakePhone) -> None:
        client = await Client.connect(server.port)
        loop = asyncio.get_running_loop()
        end = loop.time() + 1.2  # well past the idle timeout
        while loop.time() < end:
            await client.send(b"\n")  # a blank line: no reply, but the client is there
            await asyncio.sleep(0.05)
        assert await client.ask("status") == STATUS
        await client.close()

    run(serving(body, idle_timeout=0.5))


# --- where the server may listen --------------------------------------------------------


@pytest.mark.parametrize(("host", "shown"), [("0.0.0.0", "0.0.0.0"), ("::", "::"),
                                             ("192.168.1.20", "192.168.1.20"),
                                             ("", "every address")])
def test_listening_beyond_loopback_needs_a_token(host: str, shown: str) -> None:
    with pytest.raises(ValueError) as info:
        ConsoleServer(ConsoleCommands(FakePhone()), host, 0)
    assert str(info.value) == (
        f"console: listening on {shown} without a token would let anyone who reaches the "
        "port dial, answer and listen to the room; set [console] token")
    ConsoleServer(ConsoleCommands(FakePhone()), host, 0, token=TOKEN)  # fine (not started)


def test_events_go_to_every_authenticated_client_only() -> None:
    async def body(server: ConsoleServer, phone: FakePhone) -> None:
        a, b = await Client.connect(server.port), await Client.connect(server.port)
        assert await a.ask(f"auth {TOKEN}") == {"ok": True}
        await until(lambda: server.client_count == 2)
        server.broadcast({"event": "ringing"})
        assert await a.receive() == {"event": "ringing"}
        assert await b.ask("status") == AUTH_REQUIRED
        for client in (a, b):
            await client.close()

    run(serving(body, token=TOKEN))
