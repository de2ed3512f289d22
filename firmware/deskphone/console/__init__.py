"""The line console: a pure command table plus front ends (TCP now, serial later)."""

from deskphone.console.commands import (
    BUILTIN_COMMANDS,
    CALL_COMMANDS,
    MAX_LINE,
    PHONE_COMMANDS,
    PROVISION_COMMANDS,
    CallControl,
    Close,
    Command,
    CommandError,
    ConsoleCommands,
    ConsoleSession,
    LineSplitter,
    LineTooLong,
    PhoneControl,
    Verdict,
    encode_line,
    event_line,
    looks_like_http,
)
from deskphone.console.serial import SerialConsole
from deskphone.console.server import ConsoleServer

__all__ = [
    "BUILTIN_COMMANDS",
    "CALL_COMMANDS",
    "PHONE_COMMANDS",
    "PROVISION_COMMANDS",
    "MAX_LINE",
    "CallControl",
    "Close",
    "Command",
    "CommandError",
    "ConsoleCommands",
    "ConsoleServer",
    "ConsoleSession",
    "LineSplitter",
    "LineTooLong",
    "PhoneControl",
    "SerialConsole",
    "Verdict",
    "encode_line",
    "event_line",
    "looks_like_http",
]
