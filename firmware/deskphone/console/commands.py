"""The console's command table and line protocol: pure, no sockets.

Theory of operation: a front end (TCP now, serial later) cuts its byte stream into lines with
``LineSplitter`` and hands each to ``ConsoleCommands.handle_bytes``. Every non-empty line gets
exactly one reply, ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``, so a lab script
can pair replies with commands by counting. Events are separate lines shaped
``{"event": "<name>", ...}``; a script tells them apart by the key. Nothing a client sends
and nothing a controller raises can stop the console: the worst is an error reply.

Adding a command means adding a ``Command`` to a table (see ``BUILTIN_COMMANDS``) and, if it
needs the phone, a method to ``PhoneControl``.

A network client is not trusted the way a serial terminal is: ``ConsoleSession`` stands in
front of the table for each TCP connection. It closes a connection that speaks HTTP (a web
page's cross-protocol POST) and, when a token is set, answers nothing but ``auth <token>``
until the client has sent it.
"""

from __future__ import annotations

import enum
import hmac
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Protocol

log = logging.getLogger(__name__)

MAX_LINE: Final = 4096
"""Longest command line in bytes, without its line ending; enough for any SIP URI."""


class CommandError(Exception):
    """The phone refused a command; ``str(e)`` is the reason the person reads."""


class PhoneControl(Protocol):
    """What the console needs from the phone; the phone controller implements it."""

    def status(self) -> dict[str, object]:
        """Must include "registered": bool and "call": None or a dict."""
        ...

    def dial(self, target: str) -> dict[str, object]:
        """Place a call to a number or SIP URI; returns e.g. {"call_id": "..."}."""
        ...

    def answer(self) -> dict[str, object]: ...

    def hangup(self) -> dict[str, object]: ...


Handler = Callable[[PhoneControl, Sequence[str]], Mapping[str, object]]
"""Runs a command: gets the controller and the arguments the Command names (its optional
ones only when given)."""


@dataclass(frozen=True, slots=True)
class Command:
    """One console command: what runs, the arguments it takes (by name), and its help."""

    handler: Handler
    args: tuple[str, ...]
    help: str
    optional: tuple[str, ...] = ()  # trailing arguments that may be left out


def _status(control: PhoneControl, args: Sequence[str]) -> Mapping[str, object]:
    return control.status()


def _dial(control: PhoneControl, args: Sequence[str]) -> Mapping[str, object]:
    return control.dial(args[0])


def _answer(control: PhoneControl, args: Sequence[str]) -> Mapping[str, object]:
    return control.answer()


def _hangup(control: PhoneControl, args: Sequence[str]) -> Mapping[str, object]:
    return control.hangup()


BUILTIN_COMMANDS: Final[Mapping[str, Command]] = MappingProxyType(
    {
        "status": Command(_status, (), "show registration and call state"),
        "dial": Command(_dial, ("target",), "call a number (1002) or a SIP URI (sip:1002@host)"),
        "answer": Command(_answer, (), "answer the ringing call"),
        "hangup": Command(_hangup, (), "end, reject or cancel the call"),
    }
)
"""The commands every console has; ``help`` is added by ConsoleCommands itself."""



class CallControl(PhoneControl, Protocol):
    """What the in-call commands need: a phone with a media path."""

    def stats(self) -> dict[str, object]: ...

    def dtmf(self, digits: str) -> dict[str, object]: ...

    def hold(self, on: bool) -> dict[str, object]: ...

    def mute(self, on: bool) -> dict[str, object]: ...


def _call(control: PhoneControl) -> CallControl:
    if not all(hasattr(control, m) for m in ("stats", "dtmf", "hold", "mute")):
        raise CommandError("this phone has no media path")
    return control  # type: ignore[return-value]


CALL_COMMANDS: Final[Mapping[str, Command]] = MappingProxyType(
    {
        "stats": Command(lambda c, a: _call(c).stats(), (),
                         "RTP statistics of the call (codec, packets, loss, jitter, RTT)"),
        "dtmf": Command(lambda c, a: _call(c).dtmf(a[0]), ("digits",),
                        "send DTMF digits (0-9 * # A-D) in the call"),
        "hold": Command(lambda c, a: _call(c).hold(True), (), "put the call on hold"),
        "resume": Command(lambda c, a: _call(c).hold(False), (), "take the call off hold"),
        "mute": Command(lambda c, a: _call(c).mute(True), (), "stop sending the microphone"),
        "unmute": Command(lambda c, a: _call(c).mute(False), (), "send the microphone again"),
    }
)
"""In-call commands of a phone with a media path (added to the builtin table)."""

class HardwareControl(PhoneControl, Protocol):
    """What the commands for the phone's hardware need: a phone with hook and keys."""

    def hook(self, state: str) -> dict[str, object]: ...

    def key(self, keys: str) -> dict[str, object]: ...

    def screen(self) -> dict[str, object]: ...

    def redial(self) -> dict[str, object]: ...

    def history(self) -> dict[str, object]: ...


def _hw(control: PhoneControl) -> HardwareControl:
    if not all(hasattr(control, m) for m in ("hook", "key", "screen", "redial", "history")):
        raise CommandError("this phone has no hook and keys")
    return control  # type: ignore[return-value]


PHONE_COMMANDS: Final[Mapping[str, Command]] = MappingProxyType(
    {
        "hook": Command(lambda c, a: _hw(c).hook(a[0]), ("on|off|flash",),
                        "put the handset down, lift it, or flash the hook"),
        "key": Command(lambda c, a: _hw(c).key(a[0]), ("keys",),
                       "press keys in order: digits (1002#) or one function key (redial, "
                       "hold, mute, speaker, transfer, vol_up, vol_down, messages)"),
        "screen": Command(lambda c, a: _hw(c).screen(), (), "the display's text, top to bottom"),
        "redial": Command(lambda c, a: _hw(c).redial(), (), "call the last number dialled"),
        "history": Command(lambda c, a: _hw(c).history(), (),
                           "the last 50 calls, newest first (missed, received, dialled)"),
    }
)
"""Commands of a phone with hardware (real or simulated): the hook, keys and display."""


class ProvisionControl(PhoneControl, Protocol):
    """What ``provision`` needs: a phone with a provisioning client."""

    def provision(self, url: str | None) -> dict[str, object]: ...


def _provision(control: PhoneControl, args: Sequence[str]) -> Mapping[str, object]:
    if not hasattr(control, "provision"):
        raise CommandError("this phone has no provisioning client")
    return control.provision(args[0] if args else None)  # type: ignore[no-any-return]


PROVISION_COMMANDS: Final[Mapping[str, Command]] = MappingProxyType(
    {
        "provision": Command(_provision, (), "fetch the config from the provisioning server "
                             "now (from url, if given); the outcome comes as events "
                             "(provisioning, provisioned, provision_failed)", ("url",)),
    }
)
"""Zero-touch provisioning on demand."""

_HELP: Final = "list the commands"


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _plural(count: int) -> str:
    if count == 0:
        return "no arguments"
    return "1 argument" if count == 1 else f"{count} arguments"


class ConsoleCommands:
    """Turns command lines into replies by calling the phone through ``PhoneControl``."""

    def __init__(
        self, control: PhoneControl, table: Mapping[str, Command] = BUILTIN_COMMANDS
    ) -> None:
        if "help" in table:
            raise ValueError('"help" is built in')
        self._control = control
        self._table: Mapping[str, Command] = MappingProxyType(
            {**table, "help": Command(self._help, (), _HELP)}
        )

    @property
    def table(self) -> Mapping[str, Command]:
        return self._table

    def usage(self, name: str) -> str:
        command = self._table[name]
        return " ".join([name, *(f"<{arg}>" for arg in command.args),
                         *(f"[{arg}]" for arg in command.optional)])

    def handle_bytes(self, line: bytes | LineTooLong) -> dict[str, object] | None:
        """Handle one line as it came off the wire (see LineSplitter)."""
        if isinstance(line, LineTooLong):
            return _error(f"line too long (limit {line.limit} bytes)")
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            return _error("line is not valid UTF-8")
        return self.handle_line(text)

    def handle_line(self, line: str) -> dict[str, object] | None:
        """The reply to one command line; None for a blank line, which gets no reply."""
        words = line.split()
        if not words:
            return None
        name, args = words[0], words[1:]
        command = self._table.get(name)
        if command is None:
            return _error(f'unknown command {_quote(name)} (try "help")')
        least, most = len(command.args), len(command.args) + len(command.optional)
        if not least <= len(args) <= most:
            expected = _plural(least) if least == most else f"{least} to {most} arguments"
            return _error(
                f"{name}: expected {expected}, got {len(args)}"
                f" (usage: {self.usage(name)})"
            )
        try:
            reply: dict[str, object] = {"ok": True, **command.handler(self._control, args)}
            reply["ok"] = True
            encode_line(reply)  # a reply that cannot be sent is our bug, not the client's
        except CommandError as exc:
            return _error(str(exc))
        except Exception as exc:
            log.exception("console command %r failed", name)
            return _error(f"internal error: {type(exc).__name__}")
        return reply

    def _help(self, control: PhoneControl, args: Sequence[str]) -> Mapping[str, object]:
        commands = {name: f"{self.usage(name)}: {cmd.help}" for name, cmd in self._table.items()}
        return {"commands": commands}


def _error(message: str) -> dict[str, object]:
    return {"ok": False, "error": message}


def encode_line(message: Mapping[str, object]) -> bytes:
    """One JSON object as one UTF-8 line; json escapes any newline inside strings."""
    return (json.dumps(message, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def event_line(event: Mapping[str, object]) -> bytes:
    """Encode an event for every client; a malformed event is the caller's bug (ValueError)."""
    if not isinstance(event.get("event"), str):
        raise ValueError(f'an event needs an "event" name, got {event!r}')
    try:
        return encode_line(event)
    except TypeError as exc:
        raise ValueError(f"event is not JSON: {exc}") from None


# --------------------------------------------------------------------------------------
# One network client: HTTP rejection and the token

AUTH_REQUIRED: Final = "auth required"
MAX_AUTH_FAILURES: Final = 3

# RFC 9110 §9 methods and HTTP/2's preface; upper case only (methods are case-sensitive),
# so a future lower-case console command such as "get" is never mistaken for one.
_HTTP_METHODS: Final = frozenset(
    b"GET HEAD POST PUT DELETE CONNECT OPTIONS TRACE PATCH PRI".split())
# RFC 9112 §3: request-line = method SP request-target SP HTTP-version
_HTTP_VERSION: Final = re.compile(rb"[ \t]HTTP/\d(?:\.\d)?\Z")
# RFC 9112 §5: field-line = field-name ":" OWS field-value (a token, then the colon)
_HTTP_FIELD: Final = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+:(?:[ \t]|\Z)")


def looks_like_http(line: bytes) -> bool:
    """Whether a line is an HTTP request line or header field: never a console command.

    A web page can make a browser POST to the console's port, and a line protocol would
    run the body's lines as commands; the request line or the Host field comes first.
    """
    words = line.split(maxsplit=1)
    if not words:
        return False
    return (words[0] in _HTTP_METHODS or _HTTP_VERSION.search(line) is not None
            or _HTTP_FIELD.match(line) is not None)


class Close(enum.Enum):
    """Why a session wants its connection closed."""

    HTTP = "http"  # close without a word: a browser gets nothing to read
    AUTH_FAILED = "auth failed"  # after the reply that says so


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a front end does with one line: send ``reply`` (if any), then close (if asked)."""

    reply: dict[str, object] | None
    close: Close | None = None


class ConsoleSession:
    """One network client's view of the console: sans-I/O, fed lines, returns Verdicts.

    Until the client's first known command (or ``auth``), a line that looks like HTTP
    closes the connection. With a token, every line but ``auth <token>`` gets "auth
    required" until the token has been sent, and the front end sends no events to the
    client meanwhile; ``max_failures`` wrong tokens close the connection. Tokens are
    compared in constant time. Without a token, ``auth`` is accepted and does nothing, so
    one script serves phones with and without one.
    """

    def __init__(
        self,
        commands: ConsoleCommands,
        token: str | None = None,
        *,
        max_failures: int = MAX_AUTH_FAILURES,
    ) -> None:
        self._commands = commands
        self._token = token.encode("utf-8") if token else None
        self._max_failures = max_failures
        self._authenticated = self._token is None
        self._failures = 0
        self._greeted = False  # sent a known command: a console client, not a browser

    @property
    def authenticated(self) -> bool:
        """Whether the client may run commands and hear events."""
        return self._authenticated

    @property
    def failures(self) -> int:
        """Wrong tokens sent so far on this connection."""
        return self._failures

    def handle(self, line: bytes | LineTooLong) -> Verdict:
        """The verdict on one line as it came off the wire (see LineSplitter)."""
        if isinstance(line, bytes):
            if not self._greeted and looks_like_http(line):
                return Verdict(None, Close.HTTP)
            words = line.split()
            if not words:
                return Verdict(None)
            name = words[0].decode("utf-8", "replace")
            if name == "auth" or name in self._commands.table:
                self._greeted = True
            if name == "auth":
                return self._auth(words[1:])
        if not self._authenticated:
            return Verdict(_error(AUTH_REQUIRED))
        return Verdict(self._commands.handle_bytes(line))

    def _auth(self, args: Sequence[bytes]) -> Verdict:
        if self._token is None:
            return Verdict({"ok": True})
        if len(args) != 1:
            return Verdict(_error(f"auth: expected 1 argument, got {len(args)}"
                                  " (usage: auth <token>)"))
        if hmac.compare_digest(args[0], self._token):
            self._authenticated = True
            return Verdict({"ok": True})
        self._failures += 1
        if self._failures >= self._max_failures:
            return Verdict(_error(f"wrong token ({self._failures} tries); closing"),
                           Close.AUTH_FAILED)
        return Verdict(_error("wrong token"))


# --------------------------------------------------------------------------------------
# Framing


@dataclass(frozen=True, slots=True)
class LineTooLong:
    """Stands in for a line longer than ``limit`` bytes, which was dropped unread."""

    limit: int


class LineSplitter:
    """Cuts a byte stream into lines, never holding more than one line's limit in memory.

    Lines end with "\\n" (a "\\r" before it is dropped). An overlong line is discarded as it
    arrives and reported once, as LineTooLong, when its end comes, so the reply still
    lands in order and the connection carries on.
    """

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._max = max_line
        self._buffer = bytearray()
        self._discarding = False

    def feed(self, data: bytes) -> list[bytes | LineTooLong]:
        *complete, rest = data.split(b"\n")
        lines = [self._end_line(part) for part in complete]
        self._append(rest)
        return lines

    def finish(self) -> list[bytes | LineTooLong]:
        """The unterminated last line at end of stream, if any."""
        if not self._buffer and not self._discarding:
            return []
        return [self._end_line(b"")]

    def _append(self, part: bytes) -> None:
        if self._discarding:
            return
        self._buffer += part
        if len(self._buffer) > self._max + 1:  # + 1: room for the "\r" of "\r\n"
            self._buffer.clear()
            self._discarding = True

    def _end_line(self, tail: bytes) -> bytes | LineTooLong:
        if self._discarding:
            self._discarding = False
            return LineTooLong(self._max)
        line = bytes(self._buffer) + tail
        self._buffer.clear()
        line = line.removesuffix(b"\r")
        return LineTooLong(self._max) if len(line) > self._max else line
