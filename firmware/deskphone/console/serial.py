"""The console's serial front end: the command table on a UART, a pty or ``socket://``.

Theory of operation. The port is opened with pyserial's ``serial_for_url`` (a device path
such as /dev/serial0, a pty path, ``socket://host:port``). Three threads meet here:

- the reader thread owns the port: it reads with a short timeout (so ``close()`` is
  prompt), hands the bytes to the loop with ``call_soon_threadsafe``, and is the only one
  that closes or reopens the port. When the port fails (a USB adapter pulled out) it logs
  once and tries to reopen it every ``retry_interval`` seconds until ``close()``;
- the asyncio loop cuts the bytes into lines and runs each through the command table,
  which calls into the phone, and queues the reply;
- the writer thread drains the outgoing queue. pyserial retries a full output buffer
  (EAGAIN) in a busy loop, so the writer waits for room with ``select()`` on the port's
  file descriptor and writes non-blocking (``write_timeout=0``).

The outgoing queue is bounded by ``max_buffer`` bytes, and ``broadcast()`` never waits: if
the line cannot keep up (a slow baud rate, a pty nobody reads, flow control holding us off)
or the port is gone, events are dropped, counted, and logged at most once per
``DROP_LOG_INTERVAL``. A reply is never dropped for an event: it pushes out queued events
to make room. Only a terminal that keeps typing commands and never reads fills the queue
with replies alone; then replies are dropped too, counted and logged the same way.

A person at a terminal ends lines with CR (minicom, screen), a script with LF or CRLF:
``TerminalSplitter`` takes all three, and replies end in CRLF so a terminal shows them as
lines. There is no echo. ``loop://`` is refused: it would feed every reply back in as a
command, forever.

The serial console is trusted as local, like the keypad: whoever holds the other end of
the wire holds the phone. It asks for no token and every line it gets is a command. Give
``socket://HOST:PORT`` only a host you trust: whoever serves that address is the terminal.
"""

from __future__ import annotations

import asyncio
import logging
import select
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Protocol

from deskphone.console.commands import (
    MAX_LINE,
    ConsoleCommands,
    LineSplitter,
    LineTooLong,
    encode_line,
    event_line,
)

log = logging.getLogger(__name__)

READ_TIMEOUT: Final = 0.1
"""How long one read waits for a byte: the reader notices ``close()`` within this."""
WRITE_POLL: Final = 0.1
"""How long the writer waits for room on the line before looking at the port again."""
READ_SIZE: Final = 4096
CLOSE_DRAIN: Final = 0.25
"""How long ``close()`` lets queued output drain before dropping it."""
JOIN_TIMEOUT: Final = 1.0
DROP_LOG_INTERVAL: Final = 10.0
RETRY_INTERVAL: Final = 2.0


class SerialPort(Protocol):
    """What the console uses of a pyserial port (``fileno`` and ``write_timeout`` if any)."""

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes) -> int | None: ...

    @property
    def in_waiting(self) -> int: ...

    def close(self) -> None: ...


Opener = Callable[..., SerialPort]
"""``opener(url, baudrate=..., timeout=...)``, as ``serial.serial_for_url``."""


def serial_for_url(url: str, **options: Any) -> SerialPort:
    """pyserial's opener, imported at the edge."""
    import serial

    port: SerialPort = serial.serial_for_url(url, **options)
    return port


class TerminalSplitter:
    """LineSplitter for terminals: CR, LF and CRLF each end one line.

    A CR ends its line at once (a person pressing Enter in minicom sends only CR and is
    waiting for the reply), and an LF right after it, even in the next chunk, is the rest
    of a CRLF and is dropped. Any other pairing (LF CR, CR CR) is a line and a blank line,
    and blank lines get no reply.
    """

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._max_line = max_line
        self._lines = LineSplitter(max_line)
        self._after_cr = False

    def feed(self, data: bytes) -> list[bytes | LineTooLong]:
        if not data:
            return []
        if self._after_cr and data.startswith(b"\n"):
            data = data[1:]
        self._after_cr = data.endswith(b"\r")
        return self._lines.feed(data.replace(b"\r\n", b"\n").replace(b"\r", b"\n"))

    def reset(self) -> None:
        """Forget a half-received line (the port was lost)."""
        self._lines = LineSplitter(self._max_line)
        self._after_cr = False


def crlf(line: bytes) -> bytes:
    """An encoded line with the terminal's line end."""
    return line.removesuffix(b"\n") + b"\r\n"


@dataclass(frozen=True, slots=True)
class _Out:
    data: bytes
    reply: bool


class SerialConsole:
    """Serves ConsoleCommands on a serial port, one JSON line (CRLF) per reply or event."""

    def __init__(
        self,
        commands: ConsoleCommands,
        url: str,
        *,
        baudrate: int = 115200,
        max_line: int = MAX_LINE,
        max_buffer: int = 1 << 16,
        retry_interval: float = RETRY_INTERVAL,
        opener: Opener | None = None,
    ) -> None:
        if "loop://" in url.lower():
            raise ValueError(
                f"serial console: {url} echoes every reply back in as a command; "
                "use a pty or socket:// to test"
            )
        self._commands = commands
        self._url = url
        self._baudrate = baudrate
        self._max_buffer = max_buffer
        self._retry_interval = retry_interval
        self._opener: Opener = opener if opener is not None else serial_for_url
        self._splitter = TerminalSplitter(max_line)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reader: threading.Thread | None = None
        self._writer: threading.Thread | None = None
        self._stop = threading.Event()
        # The port: set and cleared only by the reader thread (and close() at the end);
        # the writer holds _io_lock while it writes, so the port is never closed under a
        # write, and checks under it that the port is still the one it started the line on.
        self._io_lock = threading.Lock()
        self._port: SerialPort | None = None
        self._fd: int | None = None
        # The outgoing queue and connection state, shared by all three threads.
        self._cond = threading.Condition()
        self._queue: deque[_Out] = deque()
        self._queued = 0
        self._connected = False
        self._closing = False
        self._drain_until = 0.0
        self._write_error: Exception | None = None
        self._dropped_events = 0
        self._dropped_replies = 0
        self._unreported = (0, 0)
        self._next_report = 0.0

    @property
    def url(self) -> str:
        return self._url

    @property
    def connected(self) -> bool:
        """Whether the port is open now (False while it is gone and being retried)."""
        with self._cond:
            return self._connected

    @property
    def queued_bytes(self) -> int:
        with self._cond:
            return self._queued

    @property
    def dropped_events(self) -> int:
        with self._cond:
            return self._dropped_events

    @property
    def dropped_replies(self) -> int:
        with self._cond:
            return self._dropped_replies

    async def start(self) -> None:
        """Open the port and start serving; OSError naming the URL if it cannot be opened."""
        if self._loop is not None:
            raise RuntimeError("serial console already started")
        self._loop = asyncio.get_running_loop()
        try:
            port = await asyncio.to_thread(self._open)
        except (OSError, ValueError) as exc:  # pyserial's SerialException is an OSError
            self._loop = None
            raise OSError(f"serial console: cannot open {self._url}: {exc}") from exc
        self._attach(port)
        self._reader = threading.Thread(
            target=self._read_loop, name=f"console-rx {self._url}", daemon=True
        )
        self._writer = threading.Thread(
            target=self._write_loop, name=f"console-tx {self._url}", daemon=True
        )
        self._reader.start()
        self._writer.start()
        log.info("console on serial %s at %d baud", self._url, self._baudrate)

    def broadcast(self, event: Mapping[str, object]) -> None:
        """Queue an event for the terminal without waiting; dropped if the line is behind."""
        data = crlf(event_line(event))
        if self._loop is None:
            return
        with self._cond:
            if self._closing:
                return
            if self._connected and self._queued + len(data) <= self._max_buffer:
                self._append(_Out(data, reply=False))
            else:
                self._dropped_events += 1
                if self._connected:  # while the port is gone, its loss was logged instead
                    self._unreported = (self._unreported[0] + 1, self._unreported[1])
        self._report_drops()

    async def close(self) -> None:
        """Stop reading, let queued output drain for up to CLOSE_DRAIN, close the port."""
        if self._loop is None or self._closing:
            return
        with self._cond:
            self._closing = True
            self._drain_until = time.monotonic() + CLOSE_DRAIN
            self._cond.notify_all()
        self._stop.set()
        await asyncio.to_thread(self._join)
        with self._io_lock:
            port, self._port = self._port, None
        if port is not None:
            await asyncio.to_thread(_close_quietly, port)
        self._report_drops(final=True)
        log.info("console on serial %s closed", self._url)

    async def __aenter__(self) -> SerialConsole:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _join(self) -> None:
        """Wait for both threads (off the loop); one stuck in a driver is left behind."""
        for thread in (self._writer, self._reader):
            if thread is None:
                continue
            thread.join(JOIN_TIMEOUT + CLOSE_DRAIN)
            if thread.is_alive():
                log.warning("serial console %s: %s did not stop", self._url, thread.name)

    # --- the loop thread ---------------------------------------------------------------

    def _receive(self, data: bytes) -> None:
        if self._closing:
            return
        for line in self._splitter.feed(data):
            reply = self._commands.handle_bytes(line)
            if reply is not None:
                self._send_reply(crlf(encode_line(reply)))

    def _send_reply(self, data: bytes) -> None:
        with self._cond:
            if self._connected:
                while self._queued + len(data) > self._max_buffer and self._evict_event():
                    pass
                # An empty queue takes a reply of any size: the limit is for backlogs.
                if self._queued + len(data) <= self._max_buffer or not self._queue:
                    self._append(_Out(data, reply=True))
                    return
            self._dropped_replies += 1
            self._unreported = (self._unreported[0], self._unreported[1] + 1)
        self._report_drops()

    def _append(self, out: _Out) -> None:
        """Queue a line; call with _cond held."""
        self._queue.append(out)
        self._queued += len(out.data)
        self._cond.notify_all()

    def _evict_event(self) -> bool:
        """Drop the oldest queued event to make room; call with _cond held."""
        for index, out in enumerate(self._queue):
            if not out.reply:
                del self._queue[index]
                self._queued -= len(out.data)
                self._dropped_events += 1
                self._unreported = (self._unreported[0] + 1, self._unreported[1])
                return True
        return False

    def _report_drops(self, *, final: bool = False) -> None:
        now = time.monotonic()
        with self._cond:
            events, replies = self._unreported
            if not (events or replies) or (now < self._next_report and not final):
                return
            self._unreported = (0, 0)
            self._next_report = now + DROP_LOG_INTERVAL
        log.warning(
            "serial console %s: dropped %d events and %d replies"
            " (the line is not keeping up, or the port is gone)",
            self._url, events, replies,
        )

    def _reset_input(self) -> None:
        self._splitter.reset()

    def _post(self, callback: Callable[..., None], *args: Any) -> bool:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is closed: nobody left to serve
            return False
        return True

    # --- the reader thread -------------------------------------------------------------

    def _open(self) -> SerialPort:
        return self._opener(self._url, baudrate=self._baudrate, timeout=READ_TIMEOUT)

    def _attach(self, port: SerialPort) -> None:
        fd: int | None
        try:
            fd = port.fileno()  # type: ignore[attr-defined]
        except (AttributeError, OSError, ValueError):
            fd = None  # no descriptor to select on (rfc2217://, a fake): blocking writes
        if fd is not None:
            try:
                port.write_timeout = 0  # type: ignore[attr-defined]
            except (AttributeError, OSError, ValueError) as exc:
                log.debug("serial console %s: write_timeout=0 refused: %s", self._url, exc)
        with self._io_lock:
            if self._stop.is_set():  # close() ran while this port was being reopened
                _close_quietly(port)
                return
            self._port, self._fd = port, fd
        with self._cond:
            self._connected = True
            self._write_error = None
            self._cond.notify_all()

    def _read_loop(self) -> None:
        while not self._stop.is_set():
            port = self._port
            if port is None:
                self._reopen()
                continue
            with self._cond:
                failure = self._write_error
            try:
                if failure is not None:
                    raise failure
                data = self._read_some(port)
            except Exception as exc:  # SerialException, OSError, or whatever a driver raises
                self._lose(port, exc)
                continue
            if data and not self._post(self._receive, data):
                return

    def _read_some(self, port: SerialPort) -> bytes:
        data = port.read(1)  # returns at the first byte, or empty after READ_TIMEOUT
        if not data:
            return b""
        buffer = bytearray(data)
        while len(buffer) < READ_SIZE and (waiting := port.in_waiting):
            buffer += port.read(min(waiting, READ_SIZE - len(buffer)))
        return bytes(buffer)

    def _lose(self, port: SerialPort, exc: Exception) -> None:
        with self._io_lock:  # waits for a write in progress to give up the port
            self._port = self._fd = None
        with self._cond:
            self._connected = False
            self._write_error = None
            dropped = [out.reply for out in self._queue]
            self._queue.clear()
            self._queued = 0
            self._dropped_events += dropped.count(False)
            self._dropped_replies += dropped.count(True)
        log.warning(
            "serial console %s: port lost (%s); retrying every %g s",
            self._url, exc, self._retry_interval,
        )
        _close_quietly(port)
        self._post(self._reset_input)

    def _reopen(self) -> None:
        if self._stop.wait(self._retry_interval):
            return
        try:
            port = self._open()
        except Exception as exc:
            log.debug("serial console %s: still cannot open: %s", self._url, exc)
            return
        self._attach(port)
        if not self._stop.is_set():
            log.warning("serial console %s: port is back", self._url)

    # --- the writer thread -------------------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                while not self._writable() and not self._closing:
                    self._cond.wait()
                if not self._writable() or self._drain_expired():
                    return  # closing, and nothing more that can be written in time
                out = self._queue.popleft()
                self._queued -= len(out.data)
            self._write(out.data)

    def _writable(self) -> bool:
        return self._connected and self._write_error is None and bool(self._queue)

    def _drain_expired(self) -> bool:
        return self._closing and time.monotonic() >= self._drain_until

    def _write(self, data: bytes) -> None:
        """Write one line, waiting for room; give up if the port goes or close() runs out."""
        view = memoryview(data)
        started_on = self._port
        while view and not self._drain_expired():
            port, fd = self._port, self._fd
            if port is None or port is not started_on:
                return  # the line went with the port
            if fd is not None:
                # Outside the lock, so the reader can take the port away meanwhile; then
                # the check below sees it and nothing is written to a stale descriptor.
                try:
                    _, ready, _ = select.select([], [fd], [], WRITE_POLL)
                except (OSError, ValueError):
                    ready = [fd]  # closed under us, or broken: the write below tells
                if not ready:
                    continue
            with self._io_lock:
                if self._port is not port:
                    return
                try:
                    written = port.write(bytes(view))
                except Exception as exc:
                    with self._cond:  # the reader closes the port and retries
                        self._write_error = exc
                    return
            view = view[len(view) if written is None else written :]


def _close_quietly(port: SerialPort) -> None:
    try:
        port.close()
    except Exception as exc:
        log.debug("closing serial port: %s", exc)
