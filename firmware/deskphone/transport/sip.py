"""SIP over UDP and TCP with asyncio: the only SIP code that touches sockets.

The transport moves whole messages. UDP datagrams go up as they are; a TCP
stream is cut into messages by ``StreamFramer`` (Content-Length). Up means
``on_message(data, source)``; a destination we cannot reach is reported with
``on_error(addr)`` so the SIP core can fail the transaction at once rather
than wait for Timer B/F.

TCP connections are kept per remote address, so a response goes back on the
connection its request came in on (RFC 3261 §18.2.2). Connections we open
send a CRLFCRLF keep-alive every ``keepalive`` seconds (RFC 5626 §3.5.1) and
we answer the peer's pings with CRLF.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable

from ..sip.errors import RemoteProtocolError
from ..sip.message import StreamFramer
from ..sip.transaction import Addr

log = logging.getLogger(__name__)

OnMessage = Callable[[bytes, Addr], None]
OnError = Callable[[Addr], None]


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, owner: SipTransport) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self.owner._on_message(data, Addr("udp", addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable on a connected-less socket: not tied to an address
        log.debug("UDP error: %s", exc)


class _TcpConnection(asyncio.Protocol):
    def __init__(self, owner: SipTransport, outbound: Addr | None = None) -> None:
        self.owner = owner
        self.framer = StreamFramer()
        self.transport: asyncio.Transport | None = None
        self.peer: Addr | None = outbound
        self.outbound = outbound is not None
        self._keepalive: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        host, port = transport.get_extra_info("peername")[:2]
        if self.peer is None:
            self.peer = Addr("tcp", host, port)
        self.owner._tcp[(host, port)] = self
        if self.outbound:
            self._schedule_keepalive()

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None and self.transport is not None
        try:
            frames = self.framer.feed(data)
        except RemoteProtocolError as e:
            log.warning("closing TCP connection from %s: %s", self.peer, e)
            self.transport.close()
            return
        for frame in frames:
            if frame == StreamFramer.PING:
                self.transport.write(b"\r\n")
            else:
                self.owner._on_message(frame, self.peer)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
        if self.peer is not None:
            key = (self.peer.host, self.peer.port)
            if self.owner._tcp.get(key) is self:
                del self.owner._tcp[key]

    def _schedule_keepalive(self) -> None:
        loop = asyncio.get_running_loop()
        self._keepalive = loop.call_later(self.owner.keepalive, self._send_keepalive)

    def _send_keepalive(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(StreamFramer.PING)
            self._schedule_keepalive()


class SipTransport:
    """UDP socket + TCP listener on one address, plus TCP connections we open."""

    def __init__(self, host: str, port: int, on_message: OnMessage, on_error: OnError,
                 *, udp: bool = True, tcp: bool = True, keepalive: float = 30.0) -> None:
        self.host = host
        self.port = port
        self._on_message = on_message
        self._on_error = on_error
        self._want_udp = udp
        self._want_tcp = tcp
        self.keepalive = keepalive
        self._udp: asyncio.DatagramTransport | None = None
        self._server: asyncio.Server | None = None
        self._tcp: dict[tuple[str, int], _TcpConnection] = {}
        self._connecting: dict[tuple[str, int], list[bytes]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        if self._want_udp:
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(self), local_addr=(self.host, self.port), family=family)
            self._udp = udp
            if self.port == 0:
                self.port = udp.get_extra_info("sockname")[1]
        if self._want_tcp:
            self._server = await loop.create_server(
                lambda: _TcpConnection(self), self.host, self.port, family=family,
                reuse_address=True)
            if self.port == 0:  # TCP only, on a port the kernel chose
                self.port = self._server.sockets[0].getsockname()[1]

    def send(self, data: bytes, addr: Addr) -> None:
        if addr.transport == "udp":
            if self._udp is None:
                self._on_error(addr)
                return
            self._udp.sendto(data, (addr.host, addr.port))
            return
        key = (addr.host, addr.port)
        conn = self._tcp.get(key)
        if conn is not None and conn.transport is not None and not conn.transport.is_closing():
            conn.transport.write(data)
            return
        if key in self._connecting:
            self._connecting[key].append(data)
            return
        self._connecting[key] = [data]
        task = asyncio.get_running_loop().create_task(self._connect(addr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, addr: Addr) -> None:
        key = (addr.host, addr.port)
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(loop.create_connection(
                lambda: _TcpConnection(self, outbound=addr), addr.host, addr.port), 10)
        except (TimeoutError, OSError) as e:
            log.warning("cannot connect to %s: %s", addr, e)
            self._connecting.pop(key, None)
            self._on_error(addr)
            return
        for data in self._connecting.pop(key, []):
            assert conn.transport is not None
            conn.transport.write(data)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._udp is not None:
            self._udp.close()
        for conn in list(self._tcp.values()):
            if conn.transport is not None:
                conn.transport.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1)


def local_address_towards(host: str, port: int) -> str:
    """The local IP the kernel would use to reach host:port (no packet is sent)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.connect((host, port))
            return str(s.getsockname()[0])
        except OSError:
            return "127.0.0.1" if family == socket.AF_INET else "::1"
