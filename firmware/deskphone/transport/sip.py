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

Connections the peers open are limited (issue 9): at most ``max_connections``
at a time (one more is closed as soon as it is accepted), each closed after
``idle_timeout`` seconds without data either way, and any connection that
takes more than ``header_timeout`` seconds from the first byte of a message to
the end of its header block is closed (slowloris). The listener is our own
accept loop rather than ``loop.create_server``: asyncio reports a failed
accept (EMFILE when the file descriptors run out) through the loop's
exception handler, a traceback a second; ours counts the failures and logs
them once per ``TROUBLE_LOG_INTERVAL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import math
import socket
from collections.abc import Callable

from ..sip.errors import RemoteProtocolError
from ..sip.message import StreamFramer
from ..sip.transaction import Addr

log = logging.getLogger(__name__)

OnMessage = Callable[[bytes, Addr], None]
OnError = Callable[[Addr], None]

BACKLOG = 100  # what loop.create_server listens with
ACCEPT_RETRY_DELAY = 1.0  # s to wait after an accept ran out of descriptors (asyncio's)
TROUBLE_LOG_INTERVAL = 10.0  # s between two log lines about the same trouble
# accept() errors that say "not now", not "never" (asyncio's list)
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class _Trouble:
    """One kind of trouble that may repeat fast, logged at most once per
    ``TROUBLE_LOG_INTERVAL`` with the count since the last line: a full file
    descriptor table fails every accept, and a flood of connections over the
    limit is a flood of refusals, neither of which may fill the log."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.total = 0
        self.unreported = 0
        self._since = 0.0  # when the first unreported one happened
        self._quiet_until = -math.inf
        self._detail = ""

    def note(self, now: float, detail: str) -> None:
        self.total += 1
        if self.unreported == 0:
            self._since = now
        self.unreported += 1
        self._detail = detail
        if now >= self._quiet_until:
            self._report(now, "")
            self._quiet_until = now + TROUBLE_LOG_INTERVAL

    def flush(self, now: float) -> None:
        """The trouble is over: say how often it happened since the last line."""
        if self.unreported:
            self._report(now, "; over now")
        self._quiet_until = -math.inf

    def _report(self, now: float, end: str) -> None:
        n = self.unreported
        count = (f" ({n} time{'s' if n != 1 else ''} in the last {now - self._since:.0f} s{end})"
                 if n > 1 or end else "")
        log.warning("%s: %s%s", self.what, self._detail, count)
        self.unreported = 0


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, owner: SipTransport) -> None:
        self.owner = owner
        self.closed = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        # the socket is closed now (asyncio closes it a loop turn after close())
        if not self.closed.done():
            self.closed.set_result(None)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self.owner._on_message(data, Addr("udp", addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable on a connected-less socket: not tied to an address
        log.debug("UDP error: %s", exc)


class _TcpConnection(asyncio.Protocol):
    """One TCP connection, either way. ``peer`` is the key in the owner's table."""

    def __init__(self, owner: SipTransport, peer: Addr, *, outbound: bool) -> None:
        self.owner = owner
        self.framer = StreamFramer()
        self.transport: asyncio.Transport | None = None
        self.peer = peer
        self.outbound = outbound
        self._keepalive: asyncio.TimerHandle | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._header: asyncio.TimerHandle | None = None
        self._last_active = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.owner._tcp[(self.peer.host, self.peer.port)] = self
        loop = asyncio.get_running_loop()
        self._last_active = loop.time()
        if self.outbound:
            self._schedule_keepalive()
        else:  # ours stay up for the keep-alive; a peer's go when idle
            self._idle = loop.call_later(self.owner.idle_timeout, self._check_idle)

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self._last_active = asyncio.get_running_loop().time()
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self._last_active = asyncio.get_running_loop().time()
        try:
            frames = self.framer.feed(data)
        except RemoteProtocolError as e:
            log.warning("closing TCP connection from %s: %s", self.peer, e)
            self.transport.close()
            return
        self._time_header(restart=bool(frames))
        for frame in frames:
            if frame == StreamFramer.PING:
                self.write(b"\r\n")
            else:
                self.owner._on_message(frame, self.peer)

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._keepalive, self._idle, self._header):
            if timer is not None:
                timer.cancel()
        key = (self.peer.host, self.peer.port)
        if self.owner._tcp.get(key) is self:
            del self.owner._tcp[key]
        self.owner._inbound.discard(self)

    def _time_header(self, *, restart: bool) -> None:
        """Run the header timer while a header block is coming in. After a
        frame is complete, a pending head is the next message's: time it anew."""
        if not self.framer.head_pending:
            if self._header is not None:
                self._header.cancel()
                self._header = None
        elif self._header is None or restart:
            if self._header is not None:
                self._header.cancel()
            self._header = asyncio.get_running_loop().call_later(
                self.owner.header_timeout, self._header_too_slow)

    def _header_too_slow(self) -> None:
        self._header = None
        if self.transport is not None and not self.transport.is_closing():
            loop = asyncio.get_running_loop()
            self.owner._slow_headers.note(loop.time(), f"last from {self.peer}")
            self.transport.close()

    def _check_idle(self) -> None:
        """One timer per connection, moved on rather than reset for every segment."""
        if self.transport is None or self.transport.is_closing():
            return
        loop = asyncio.get_running_loop()
        idle_for = loop.time() - self._last_active
        if idle_for >= self.owner.idle_timeout:
            log.debug("closing TCP connection from %s: idle for %.0f s", self.peer, idle_for)
            self.transport.close()
        else:
            self._idle = loop.call_later(self.owner.idle_timeout - idle_for, self._check_idle)

    def _schedule_keepalive(self) -> None:
        loop = asyncio.get_running_loop()
        self._keepalive = loop.call_later(self.owner.keepalive, self._send_keepalive)

    def _send_keepalive(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.write(StreamFramer.PING)
            self._schedule_keepalive()


class SipTransport:
    """UDP socket + TCP listener on one address, plus TCP connections we open.

    ``max_connections``, ``idle_timeout`` and ``header_timeout`` bound what
    peers' TCP connections may hold (module docstring); the idle timeout is
    64*T1, after which no transaction that used the connection is alive.
    """

    def __init__(self, host: str, port: int, on_message: OnMessage, on_error: OnError,
                 *, udp: bool = True, tcp: bool = True, keepalive: float = 30.0,
                 max_connections: int = 64, idle_timeout: float = 64.0,
                 header_timeout: float = 10.0) -> None:
        self.host = host
        self.port = port
        self._on_message = on_message
        self._on_error = on_error
        self._want_udp = udp
        self._want_tcp = tcp
        self.keepalive = keepalive
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.header_timeout = header_timeout
        self._udp: asyncio.DatagramTransport | None = None
        self._listener: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._tcp: dict[tuple[str, int], _TcpConnection] = {}
        self._inbound: set[_TcpConnection] = set()  # from accept(), before connection_made
        self._connecting: dict[tuple[str, int], list[bytes]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._accept_failures = _Trouble("TCP accept failed")
        self._refused = _Trouble(f"TCP connection refused ({max_connections} open)")
        self._slow_headers = _Trouble(
            f"TCP connection closed (no complete header within {header_timeout:g} s)")

    @property
    def inbound_connections(self) -> int:
        """TCP connections peers opened to us, counting those being set up."""
        return len(self._inbound)

    @property
    def accept_failures(self) -> int:
        """accept() calls that failed since start (EMFILE...), logged or not."""
        return self._accept_failures.total

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
            self._listener = _listen(family, self.host, self.port)
            if self.port == 0:  # TCP only, on a port the kernel chose
                self.port = self._listener.getsockname()[1]
            self._accepting = loop.create_task(self._accept_loop(self._listener))

    async def _accept_loop(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, addr = await loop.sock_accept(listener)
            except ConnectionAbortedError:
                continue  # reset before we got to it
            except OSError as e:
                self._accept_failures.note(loop.time(), str(e))
                # Out of descriptors (or buffers): the connection stays in the
                # backlog and the socket readable; wait rather than spin. Any other
                # error is the failed connection's own (accept(2): treat as EAGAIN).
                await asyncio.sleep(ACCEPT_RETRY_DELAY if e.errno in _OUT_OF_RESOURCES else 0)
                continue
            self._accept_failures.flush(loop.time())
            self._accepted(conn, Addr("tcp", addr[0], addr[1]))

    def _accepted(self, conn: socket.socket, peer: Addr) -> None:
        loop = asyncio.get_running_loop()
        if len(self._inbound) >= self.max_connections:
            self._refused.note(loop.time(), f"last from {peer}")
            conn.close()
            return
        self._refused.flush(loop.time())
        proto = _TcpConnection(self, peer, outbound=False)
        self._inbound.add(proto)
        task = loop.create_task(self._serve(conn, proto))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, conn: socket.socket, proto: _TcpConnection) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(lambda: proto, sock=conn)
        except asyncio.CancelledError:  # close()
            self._inbound.discard(proto)
            conn.close()
            raise
        except OSError as e:
            self._inbound.discard(proto)
            conn.close()
            log.debug("TCP connection from %s lost while set up: %s", proto.peer, e)

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
            conn.write(data)
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
                lambda: _TcpConnection(self, addr, outbound=True), addr.host, addr.port), 10)
        except (TimeoutError, OSError) as e:
            log.warning("cannot connect to %s: %s", addr, e)
            self._connecting.pop(key, None)
            self._on_error(addr)
            return
        for data in self._connecting.pop(key, []):
            conn.write(data)

    async def close(self) -> None:
        if self._accepting is not None:
            self._accepting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accepting
        if self._listener is not None:
            self._listener.close()
        for task in list(self._tasks):
            task.cancel()
        for conn in list(self._tcp.values()):
            if conn.transport is not None:
                conn.transport.close()
        if self._udp is not None:
            self._udp.close()
            # the port is free once the socket is closed: a SIP side rebuilt on the same
            # port (a provisioned account) binds it again right after
            protocol = self._udp.get_protocol()
            if isinstance(protocol, _Udp):
                await protocol.closed


def _listen(family: socket.AddressFamily, host: str, port: int) -> socket.socket:
    """A listening socket set up as ``loop.create_server`` sets one up."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def local_address_towards(host: str, port: int) -> str:
    """The local IP the kernel would use to reach host:port (no packet is sent)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.connect((host, port))
            return str(s.getsockname()[0])
        except OSError:
            return "127.0.0.1" if family == socket.AF_INET else "::1"
