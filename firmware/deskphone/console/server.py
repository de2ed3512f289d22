"""The console's TCP front end: the only console code that touches sockets.

Every client gets its own replies and, once it may run commands, every event. Output is
written straight to each client's transport, whose buffer is the per-client queue: it is
bounded by ``max_buffer`` and a client that lets it overflow (not reading, or gone without
a FIN) is dropped, so one stuck lab script can never hold up the phone or the other clients.

A network client is a stranger until it shows otherwise (a serial terminal is trusted as
local). Each connection gets a ``ConsoleSession``, which closes it when it speaks HTTP (a
web page's cross-protocol POST) and asks for the token; the server adds what needs a
clock or sees more than one connection:

- listening beyond loopback without a token is refused, as the config refuses it;
- at most ``max_clients`` at once: the next one gets one error line and is closed;
- a client that sends nothing for ``idle_timeout`` seconds is closed, and with a token one
  that has not sent it within ``auth_timeout``, so idle strangers cannot hold every slot;
- a connection that used up its wrong tokens is closed and its address turned away for
  ``lockout`` seconds, doubling at each lock-out up to ``MAX_LOCKOUT``: guessing runs at
  a few tries a minute instead of line rate, and nothing ever sleeps on the loop;
- what strangers do is logged at most once per ``LOG_INTERVAL`` per kind, with a count.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping
from types import TracebackType
from typing import Final

from deskphone.config.schema import is_loopback_host
from deskphone.console.commands import (
    MAX_LINE,
    Close,
    ConsoleCommands,
    ConsoleSession,
    LineSplitter,
    LineTooLong,
    encode_line,
    event_line,
)

log = logging.getLogger(__name__)

READ_SIZE: Final = 65536
MAX_CLIENTS: Final = 8
IDLE_TIMEOUT: Final = 600.0
AUTH_TIMEOUT: Final = 10.0
"""Seconds a client has to send its token, when one is set."""
LOCKOUT: Final = 2.0
"""Seconds an address is turned away after its first connection used up its wrong tokens."""
MAX_LOCKOUT: Final = 300.0
MAX_LOCKED: Final = 1024
"""Addresses remembered for lock-outs; the oldest are forgotten first."""
LOG_INTERVAL: Final = 60.0


class _Client:
    """One connection: its writer, the task reading from it, its session and timers."""

    __slots__ = ("writer", "task", "peer", "host", "session", "last_heard", "idle_timer",
                 "auth_timer")

    def __init__(
        self, writer: asyncio.StreamWriter, task: asyncio.Task[None] | None,
        session: ConsoleSession, now: float,
    ) -> None:
        self.writer = writer
        self.task = task
        self.peer = writer.get_extra_info("peername")
        self.host = _host(self.peer)
        self.session = session
        self.last_heard = now
        self.idle_timer: asyncio.TimerHandle | None = None
        self.auth_timer: asyncio.TimerHandle | None = None

    def cancel_timers(self) -> None:
        for timer in (self.idle_timer, self.auth_timer):
            if timer is not None:
                timer.cancel()
        self.idle_timer = self.auth_timer = None


def _host(peer: object) -> str:
    """The address part of a peer name (IPv4 or IPv6 tuple), for lock-outs and logs."""
    if isinstance(peer, tuple) and peer and isinstance(peer[0], str):
        return peer[0]
    return str(peer)


class _Lockouts:
    """Addresses turned away for a while after a connection used up its wrong tokens.

    Each lock-out of an address doubles the last one, up to ``longest``; an address quiet
    for ``longest`` after its lock-out ends starts again at ``first``. A right token from
    an address forgives it.
    """

    def __init__(self, first: float, longest: float, max_entries: int = MAX_LOCKED) -> None:
        self._first = first
        self._longest = max(longest, first)
        self._max = max_entries
        self._entries: dict[str, tuple[float, float]] = {}  # host -> (until, its length)

    def remaining(self, host: str, now: float) -> float | None:
        """Seconds ``host`` is still turned away, or None."""
        until, _ = self._entries.get(host, (0.0, 0.0))
        return until - now if now < until else None

    def lock(self, host: str, now: float) -> float:
        """Turn ``host`` away; returns for how long."""
        if self._first <= 0:
            return 0.0
        self._forget_stale(now)
        until, last = self._entries.pop(host, (0.0, 0.0))
        fresh = last == 0 or now > until + self._longest
        length = self._first if fresh else min(2 * last, self._longest)
        if len(self._entries) >= self._max:  # many addresses: forget the one freed first
            del self._entries[min(self._entries, key=lambda h: self._entries[h][0])]
        self._entries[host] = (now + length, length)
        return length

    def forgive(self, host: str) -> None:
        self._entries.pop(host, None)

    def _forget_stale(self, now: float) -> None:
        stale = [h for h, (until, _) in self._entries.items() if now > until + self._longest]
        for host in stale:
            del self._entries[host]


class _Throttle:
    """Counts occurrences of one kind and says when to log them: at most once an interval."""

    def __init__(self, interval: float = LOG_INTERVAL) -> None:
        self._interval = interval
        self._count = 0
        self._next = -math.inf

    def due(self, now: float) -> int:
        """Count one; the number to report now, or 0 to stay quiet."""
        self._count += 1
        if now < self._next:
            return 0
        count, self._count = self._count, 0
        self._next = now + self._interval
        return count


class ConsoleServer:
    """Serves ConsoleCommands over TCP, one JSON line per reply or event.

    ``idle_timeout`` of 0 or None: clients may stay silent for ever. ``lockout`` of 0: no
    lock-outs (the connection is still closed after its wrong tokens).
    """

    def __init__(
        self,
        commands: ConsoleCommands,
        host: str,
        port: int,
        *,
        token: str | None = None,
        max_clients: int = MAX_CLIENTS,
        idle_timeout: float | None = IDLE_TIMEOUT,
        auth_timeout: float = AUTH_TIMEOUT,
        lockout: float = LOCKOUT,
        max_buffer: int = 1 << 20,
        max_line: int = MAX_LINE,
    ) -> None:
        if not token and not is_loopback_host(host):
            raise ValueError(
                f"console: listening on {host or 'every address'} without a token would let "
                "anyone who reaches the port dial, answer and listen to the room; "
                "set [console] token")
        if max_clients < 1:
            raise ValueError(f"console: max_clients must be at least 1, got {max_clients}")
        self._commands = commands
        self._host = host
        self._port = port
        self._token = token or None
        self._max_clients = max_clients
        self._idle_timeout = idle_timeout or None
        self._auth_timeout = auth_timeout
        self._lockouts = _Lockouts(lockout, MAX_LOCKOUT)
        self._max_buffer = max_buffer
        self._max_line = max_line
        self._server: asyncio.Server | None = None
        self._clients: dict[asyncio.StreamWriter, _Client] = {}
        self._closing = False
        self._http_log = _Throttle()
        self._full_log = _Throttle()
        self._locked_log = _Throttle()
        self._failed_log = _Throttle()

    @property
    def port(self) -> int:
        """The bound port once started (the real one when 0 was asked), else the one asked."""
        if self._server is not None and self._server.sockets:
            port: int = self._server.sockets[0].getsockname()[1]
            return port
        return self._port

    @property
    def client_count(self) -> int:
        return len(self._clients)

    async def start(self) -> None:
        """Listen; clients can connect as soon as this returns."""
        if self._server is not None:
            raise RuntimeError("console server already started")
        self._server = await asyncio.start_server(self._serve, self._host, self._port)
        log.info("console listening on %s:%d%s", self._host, self.port,
                 " (token required)" if self._token else "")

    def broadcast(self, event: Mapping[str, object]) -> None:
        """Send an event to every client that may hear it, without waiting; loop thread only."""
        line = event_line(event)
        for client in list(self._clients.values()):
            if client.session.authenticated:
                self._send(client, line)

    async def close(self) -> None:
        """Stop listening and close every client; buffered output to a stuck one is dropped."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        clients = list(self._clients.values())
        for client in clients:
            # Flush what is queued, unless that would wait on a client that stopped reading.
            self._disconnect(client, abort=client.writer.transport.get_write_buffer_size() > 0)
        # Each reader task sees end-of-stream once its transport is gone and ends by itself.
        # (Cancelling them instead makes Python 3.11's asyncio.streams log a spurious error.)
        current = asyncio.current_task()
        tasks = [c.task for c in clients if c.task is not None and c.task is not current]
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> ConsoleServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closing:
            writer.transport.abort()
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        client = _Client(writer, asyncio.current_task(),
                         ConsoleSession(self._commands, self._token), now)
        if not self._admit(client, now):
            return
        self._clients[writer] = client
        log.info("console client %s connected", client.peer)
        if self._idle_timeout is not None:
            client.idle_timer = loop.call_later(self._idle_timeout, self._check_idle, client)
        if not client.session.authenticated:
            client.auth_timer = loop.call_later(
                self._auth_timeout, self._expire, client,
                f"no auth within {self._auth_timeout:g} s; closing")
        splitter = LineSplitter(self._max_line)
        try:
            while writer in self._clients:
                data = await reader.read(READ_SIZE)
                if not data:
                    for line in splitter.finish():
                        self._answer(client, line)
                    break
                client.last_heard = loop.time()
                for line in splitter.feed(data):
                    self._answer(client, line)
        except ConnectionError:
            pass  # the client went away; nothing to tell it
        finally:
            self._disconnect(client)
            log.info("console client %s disconnected", client.peer)

    def _admit(self, client: _Client, now: float) -> bool:
        """Turn a new connection away, with one error line, if it is locked out or full."""
        wait = self._lockouts.remaining(client.host, now)
        if wait is not None:
            if count := self._locked_log.due(now):
                log.warning("console: turned away %d connection(s) from locked-out addresses"
                            " (the last from %s)", count, client.peer)
            self._refuse(client, f"too many wrong tokens; try again in {math.ceil(wait)} s")
            return False
        if len(self._clients) >= self._max_clients:
            if count := self._full_log.due(now):
                log.warning("console: turned away %d connection(s): %d clients already"
                            " (the last from %s)", count, self._max_clients, client.peer)
            self._refuse(client, f"too many console clients ({self._max_clients});"
                                 " try again later")
            return False
        return True

    def _refuse(self, client: _Client, message: str) -> None:
        client.writer.write(encode_line({"ok": False, "error": message}))
        client.writer.close()

    def _answer(self, client: _Client, line: bytes | LineTooLong) -> None:
        if client.writer not in self._clients:
            return  # dropped while its earlier lines were being answered
        session = client.session
        was_authenticated = session.authenticated
        verdict = session.handle(line)
        if verdict.reply is not None:
            self._send(client, encode_line(verdict.reply))
        if session.authenticated and not was_authenticated:
            if client.auth_timer is not None:
                client.auth_timer.cancel()
                client.auth_timer = None
            self._lockouts.forgive(client.host)
        if verdict.close is Close.HTTP:
            now = asyncio.get_running_loop().time()
            if count := self._http_log.due(now):
                log.warning("console: closed %d connection(s) that spoke HTTP, a web page"
                            " reaching for the console? (the last from %s)", count, client.peer)
            self._disconnect(client)
        elif verdict.close is Close.AUTH_FAILED:
            now = asyncio.get_running_loop().time()
            length = self._lockouts.lock(client.host, now)
            if count := self._failed_log.due(now):
                log.warning("console: closed %d connection(s) after %d wrong tokens"
                            " (the last from %s, turned away for %g s)",
                            count, session.failures, client.peer, length)
            self._disconnect(client)

    def _check_idle(self, client: _Client) -> None:
        client.idle_timer = None
        if client.writer not in self._clients or self._idle_timeout is None:
            return
        loop = asyncio.get_running_loop()
        left = client.last_heard + self._idle_timeout - loop.time()
        if left > 0:  # heard from since the timer was set: wait for the rest
            client.idle_timer = loop.call_later(left, self._check_idle, client)
            return
        self._expire(client, f"idle for {self._idle_timeout:g} s; closing")

    def _expire(self, client: _Client, message: str) -> None:
        if client.writer not in self._clients:
            return
        log.info("console client %s: %s", client.peer, message)
        self._send(client, encode_line({"ok": False, "error": message}))
        self._disconnect(client)

    def _send(self, client: _Client, data: bytes) -> None:
        transport = client.writer.transport
        if transport.is_closing():
            self._disconnect(client)
            return
        transport.write(data)
        if transport.get_write_buffer_size() > self._max_buffer:
            log.warning("console client %s is not reading; dropped", client.peer)
            self._disconnect(client, abort=True)

    def _disconnect(self, client: _Client, *, abort: bool = False) -> None:
        """Forget a client; close its connection after flushing, or at once if ``abort``."""
        self._clients.pop(client.writer, None)
        client.cancel_timers()
        if abort:
            client.writer.transport.abort()
        else:
            client.writer.close()
