"""The asyncio SIP transport over real loopback sockets: framing, keep-alive, errors."""

from __future__ import annotations

import asyncio
import socket

from deskphone.sip.transaction import Addr
from deskphone.transport.sip import SipTransport

MSG = (b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n"
       b"Content-Length: 4\r\n\r\nbody")


def run(coro: object) -> None:
    asyncio.run(asyncio.wait_for(coro, 10))  # type: ignore[arg-type]


def test_udp_in_and_out() -> None:
    async def main() -> None:
        got: asyncio.Queue[tuple[bytes, Addr]] = asyncio.Queue()
        t = SipTransport("127.0.0.1", 0, lambda d, a: got.put_nowait((d, a)), lambda a: None,
                         tcp=False)
        await t.start()
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        peer.setblocking(False)
        peer.sendto(b"hello", ("127.0.0.1", t.port))
        data, src = await got.get()
        assert data == b"hello" and src == Addr("udp", "127.0.0.1", peer.getsockname()[1])
        t.send(b"back", src)
        loop = asyncio.get_running_loop()
        assert await loop.sock_recv(peer, 100) == b"back"
        peer.close()
        await t.close()

    run(main())


async def _peer_server() -> tuple[asyncio.Server, int, bytearray,
                                   list[asyncio.StreamWriter]]:
    received = bytearray()
    writers: list[asyncio.StreamWriter] = []

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        while data := await reader.read(4096):
            received.extend(data)

    server = await asyncio.start_server(peer, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], received, writers


async def _until(cond: object, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if cond():  # type: ignore[operator]
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met")


def test_tcp_framing_and_keepalive() -> None:
    async def main() -> None:
        got: asyncio.Queue[tuple[bytes, Addr]] = asyncio.Queue()
        server, port, received, writers = await _peer_server()
        t = SipTransport("127.0.0.1", 0, lambda d, a: got.put_nowait((d, a)), lambda a: None,
                         udp=False, keepalive=0.05)
        await t.start()
        dest = Addr("tcp", "127.0.0.1", port)
        t.send(MSG, dest)  # opens the connection
        # RFC 5626 §3.5.1: a CRLFCRLF keep-alive follows on the connection we opened
        await _until(lambda: bytes(received).startswith(MSG + b"\r\n\r\n"))
        # from the peer: two messages in one segment, then one cut in three
        w = writers[0]
        w.write(MSG + MSG[:10])
        w.write(MSG[10:30])
        w.write(MSG[30:])
        await w.drain()
        frames = [await got.get() for _ in range(2)]
        assert [f[0] for f in frames] == [MSG] * 2
        assert frames[0][1] == dest  # replies go back on this connection
        await t.close()
        for w in writers:
            w.close()
        server.close()
        await server.wait_closed()

    run(main())


def test_tcp_ping_gets_a_pong() -> None:
    async def main() -> None:
        server, port, received, writers = await _peer_server()
        t = SipTransport("127.0.0.1", 0, lambda d, a: None, lambda a: None, udp=False,
                         keepalive=60)
        await t.start()
        t.send(MSG, Addr("tcp", "127.0.0.1", port))
        await _until(lambda: bytes(received) == MSG)
        writers[0].write(b"\r\n\r\n")
        await writers[0].drain()
        await _until(lambda: bytes(received) == MSG + b"\r\n")
        await t.close()
        for w in writers:
            w.close()
        server.close()
        await server.wait_closed()

    run(main())


def test_unreachable_tcp_destination_is_reported() -> None:
    async def main() -> None:
        errors: asyncio.Queue[Addr] = asyncio.Queue()
        t = SipTransport("127.0.0.1", 0, lambda d, a: None, errors.put_nowait, udp=False)
        await t.start()
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there now
        dest = Addr("tcp", "127.0.0.1", port)
        t.send(MSG, dest)
        assert await errors.get() == dest
        await t.close()

    run(main())


def test_garbage_on_a_tcp_connection_closes_it() -> None:
    async def main() -> None:
        t = SipTransport("127.0.0.1", 0, lambda d, a: None, lambda a: None, udp=False)
        await t.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", t.port)
        writer.write(b"INVITE sip:x SIP/2.0\r\nContent-Length: 99999999\r\n\r\n")
        await writer.drain()
        assert await reader.read() == b""  # closed by the phone
        writer.close()
        await t.close()

    run(main())
