"""The line console: a pure command table plus front ends (TCP now, serial later)."""

from deskphone.console.commands import (
    BUILTIN_COMMANDS,
    CALL_COMMANDS,
    MAX_LINE,
    PHONE_COMMANDS,
    CallControl,
    Command,
    CommandError,
    ConsoleCommands,
    LineSplitter,
    LineTooLong,
    PhoneControl,
    encode_line,
    event_line,
)
from deskphone.console.serial import SerialConsole
from deskphone.console.server import ConsoleServer

__all__ = [
    "BUILTIN_COMMANDS",
    "CALL_COMMANDS",
    "PHONE_COMMANDS",
    "MAX_LINE",
    "CallControl",
    "Command",
    "CommandError",
    "ConsoleCommands",
    "ConsoleServer",
    "LineSplitter",
    "LineTooLong",
    "PhoneControl",
    "SerialConsole",
    "encode_line",
    "event_line",
]
