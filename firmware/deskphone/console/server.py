"""The console's TCP front end: the only console code that touches sockets.

Every client gets its own replies and every event. Output is written straight to each
client's transport, whose buffer is the per-client queue: it is bounded by ``max_buffer``
and a client that lets it overflow (not reading, or gone without a FIN) is dropped, so one
stuck lab script can never hold up the phone or the other clients.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from types import TracebackType

from deskphone.console.commands import (
    MAX_LINE,
    ConsoleCommands,
    LineSplitter,
    LineTooLong,
    encode_line,
    event_line,
)

log = logging.getLogger(__name__)

READ_SIZE = 65536


class _Client:
    """One connection: its writer and the task reading from it."""

    __slots__ = ("writer", "task", "peer")

    def __init__(self, writer: asyncio.StreamWriter, task: asyncio.Task[None] | None) -> None:
        self.writer = writer
        self.task = task
        self.peer = writer.get_extra_info("peername")


class ConsoleServer:
    """Serves ConsoleCommands over TCP, one JSON line per reply or event."""

    def __init__(
        self,
        commands: ConsoleCommands,
        host: str,
        port: int,
        *,
        max_buffer: int = 1 << 20,
        max_line: int = MAX_LINE,
    ) -> None:
        self._commands = commands
        self._host = host
        self._port = port
        self._max_buffer = max_buffer
        self._max_line = max_line
        self._server: asyncio.Server | None = None
        self._clients: dict[asyncio.StreamWriter, _Client] = {}
        self._closing = False

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
        log.info("console listening on %s:%d", self._host, self.port)

    def broadcast(self, event: Mapping[str, object]) -> None:
        """Send an event to every client without waiting; call from the loop thread."""
        line = event_line(event)
        for client in list(self._clients.values()):
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
        client = _Client(writer, asyncio.current_task())
        self._clients[writer] = client
        log.info("console client %s connected", client.peer)
        splitter = LineSplitter(self._max_line)
        try:
            while writer in self._clients:
                data = await reader.read(READ_SIZE)
                if not data:
                    for line in splitter.finish():
                        self._answer(client, line)
                    break
                for line in splitter.feed(data):
                    self._answer(client, line)
        except ConnectionError:
            pass  # the client went away; nothing to tell it
        finally:
            self._disconnect(client)
            log.info("console client %s disconnected", client.peer)

    def _answer(self, client: _Client, line: bytes | LineTooLong) -> None:
        if client.writer not in self._clients:
            return  # dropped while its earlier lines were being answered
        reply = self._commands.handle_bytes(line)
        if reply is not None:
            self._send(client, encode_line(reply))

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
        if abort:
            client.writer.transport.abort()
        else:
            client.writer.close()
