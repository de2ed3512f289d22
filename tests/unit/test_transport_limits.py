"""What a peer's TCP connections may hold (issue 9): a connection cap, an idle
timeout, a header timeout (slowloris) and accept() failures logged once per
interval. Real sockets on 127.0.0.1, free ports, test-small timeouts; the
checks are on behaviour (closed or served), never on how long something took.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from deskphone.sip.transaction import Addr
from deskphone.transport import sip as sip_transport
from deskphone.transport.sip import SipTransport

MSG = (b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n"
       b"Content-Length: 4\r\n\r\nbody")


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 20))


async def until(cond: Callable[[], bool]) -> None:
    while not cond():
        await asyncio.sleep(0.01)


async def closed_by_phone(reader: asyncio.StreamReader) -> bool:
    """Reads until the phone closes the connection (run()'s timeout if it never does)."""
    try:
        while await reader.read(4096):
            pass
    except ConnectionResetError:
        pass
    return True


def transport(got: asyncio.Queue[tuple[bytes, Addr]] | None = None,
              **limits: Any) -> SipTransport:
    on_message = (lambda d, a: got.put_nowait((d, a))) if got is not None else (lambda d, a: None)
    return SipTransport("127.0.0.1", 0, on_message, lambda a: None, udp=False, **limits)


# ---------------------------------------------------------------- connection cap


def test_the_65th_connection_is_closed_at_once(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        got: asyncio.Queue[tuple[bytes, Addr]] = asyncio.Queue()
        t = transport(got)  # the default cap: 64
        await t.start()
        conns = [await asyncio.open_connection("127.0.0.1", t.port) for _ in range(64)]
        await until(lambda: t.inbound_connections == 64)
        reader, writer = await asyncio.open_connection("127.0.0.1", t.port)
        assert await closed_by_phone(reader)
        writer.close()
        assert t.inbound_connections == 64
        # the 64 are served
        conns[63][1].write(MSG)
        assert (await got.get())[0] == MSG
        # one goes, and there is room for one more
        conns[0][1].close()
        await until(lambda: t.inbound_connections == 63)
        reader, writer = await asyncio.open_connection("127.0.0.1", t.port)
        writer.write(MSG)
        data, source = await got.get()
        assert data == MSG and source.port == writer.get_extra_info("sockname")[1]
        writer.close()
        for _, w in conns[1:]:
            w.close()
        await t.close()

    with caplog.at_level(logging.WARNING, logger=sip_transport.__name__):
        run(main())
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 1
    assert refused[0].startswith("TCP connection refused (64 open): last from tcp:127.0.0.1:")


def test_a_smaller_cap_from_the_constructor() -> None:
    async def main() -> None:
        t = transport(max_connections=1)
        await t.start()
        _, first = await asyncio.open_connection("127.0.0.1", t.port)
        await until(lambda: t.inbound_connections == 1)
        reader, second = await asyncio.open_connection("127.0.0.1", t.port)
        assert await closed_by_phone(reader)
        first.close()
        second.close()
        await t.close()

    run(main())


# ---------------------------------------------------------------- header timeout


def test_half_a_header_then_nothing_is_closed_by_the_header_timeout() -> None:
    async def main() -> None:
        t = transport(header_timeout=0.2, idle_timeout=3600)
        await t.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", t.port)
        writer.write(MSG[:40])
        assert await closed_by_phone(reader)
        writer.close()
        await t.close()

    run(main())


def test_slowloris_that_keeps_trickling_is_closed_before_its_header_ends() -> None:
    async def main() -> None:
        t = transport(header_timeout=0.3, idle_timeout=3600)
        await t.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", t.port)
        header = MSG[:-4] + b"X-Padding: " + b"y" * 2000  # never ends
        closed = asyncio.ensure_future(closed_by_phone(reader))
        sent = 0
        while not closed.done() and sent < len(header):
            writer.write(header[sent : sent + 1])  # activity all the time: idle never fires
            sent += 1
            await asyncio.sleep(0.005)
        assert closed.done() and sent < len(header)
        writer.close()
        await t.close()

    run(main())


def test_whole_messages_and_a_lone_crlf_do_not_start_the_header_timer() -> None:
    async def main() -> None:
        got: asyncio.Queue[tuple[bytes, Addr]] = asyncio.Queue()
        t = transport(got, header_timeout=0.1, idle_timeout=3600)
        await t.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", t.port)
        writer.write(MSG + MSG[:30])
        writer.write(MSG[30:] + b"\r\n")  # ends in a pong-like CRLF that waits for more
        assert [(await got.get())[0] for _ in range(2)] == [MSG, MSG]
        await asyncio.sleep(0.5)  # several header timeouts
        writer.write(MSG)
        assert (await got.get())[0] == MSG  # still open
        assert not reader.at_eof()
        writer.close()
        await t.close()

    run(main())


# ---------------------------------------------------------------- idle timeout


def test_an_idle_connection_from_a_peer_is_closed() -> None:
    async def main() -> None:
        got: asyncio.Queue[tuple[bytes, Addr]] = asyncio.Queue()
        t = transport(got, idle_timeout=0.2, header_timeout=3600)
        await t.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", t.port)
        writer.write(MSG)
        assert (await got.get())[0] == MSG
        assert await closed_by_phone(reader)
        await until(lambda: t.inbound_connections == 0)
        writer.close()
        await t.close()

    run(main())


def test_a_connection_we_opened_is_not_closed_when_idle() -> None:
    async def main() -> None:
        received = bytearray()
        peers: list[asyncio.StreamWriter] = []
        eof = asyncio.Event()

        async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peers.append(writer)
            while data := await reader.read(4096):
                received.extend(data)
            eof.set()

        server = await asyncio.start_server(peer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        t = transport(idle_timeout=0.1, keepalive=3600)
        await t.start()
        t.send(MSG, Addr("tcp", "127.0.0.1", port))
        await until(lambda: bytes(received) == MSG)
        await asyncio.sleep(0.5)  # several idle timeouts: the keep-alive owns this one
        assert not eof.is_set()
        t.send(MSG, Addr("tcp", "127.0.0.1", port))
        await until(lambda: bytes(received) == MSG * 2)
        assert len(peers) == 1  # the same connection
        await t.close()
        peers[0].close()
        server.close()
        await server.wait_closed()

    run(main())


# ---------------------------------------------------------------- accept() failures


@pytest.mark.skipif(not hasattr(os, "sysconf"), reason="needs POSIX rlimits")
def test_out_of_descriptors_is_logged_once_and_served_after(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A real EMFILE: the descriptor limit is lowered to the lowest free
    descriptor, so the phone's accept() fails until it is raised again."""
    import resource

    monkeypatch.setattr(sip_transport, "ACCEPT_RETRY_DELAY", 0.01)
    monkeypatch.setattr(sip_transport, "TROUBLE_LOG_INTERVAL", 3600.0)

    async def main() -> None:
        got: asyncio.Queue[tuple[bytes, Addr]] = asyncio.Queue()
        t = transport(got)
        await t.start()
        loop = asyncio.get_running_loop()
        client = socket.socket()  # made before the limit comes down
        client.setblocking(False)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        lowest_free = os.open(os.devnull, os.O_RDONLY)
        os.close(lowest_free)
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
        try:
            await loop.sock_connect(client, ("127.0.0.1", t.port))
            await until(lambda: t.accept_failures >= 10)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        await loop.sock_sendall(client, MSG)
        assert (await got.get())[0] == MSG  # accepted once descriptors are back
        client.close()
        await t.close()

    with caplog.at_level(logging.WARNING, logger=sip_transport.__name__):
        run(main())
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("TCP accept")]
    assert len(lines) == 2, lines  # the first failure, then the count when it is over
    emfile = f"[Errno {errno.EMFILE}] {os.strerror(errno.EMFILE)}"
    assert lines[0] == f"TCP accept failed: {emfile}"
    assert lines[1].startswith(f"TCP accept failed: {emfile} (")
    assert lines[1].endswith(" s; over now)")


def test_repeated_trouble_is_one_line_per_interval_with_a_count(
        caplog: pytest.LogCaptureFixture) -> None:
    trouble = sip_transport._Trouble("TCP accept failed")  # noqa: SLF001
    with caplog.at_level(logging.WARNING, logger=sip_transport.__name__):
        for now in range(26):  # once a second for 26 s; the interval is 10 s
            trouble.note(float(now), "[Errno 24] Too many open files")
        trouble.flush(30.0)
        trouble.note(40.0, "[Errno 23] Too many open files in system")
    assert [r.getMessage() for r in caplog.records] == [
        "TCP accept failed: [Errno 24] Too many open files",
        "TCP accept failed: [Errno 24] Too many open files (10 times in the last 9 s)",
        "TCP accept failed: [Errno 24] Too many open files (10 times in the last 9 s)",
        "TCP accept failed: [Errno 24] Too many open files (5 times in the last 9 s; over now)",
        "TCP accept failed: [Errno 23] Too many open files in system",
    ]
    assert trouble.total == 27
