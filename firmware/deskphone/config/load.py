"""Reading and writing config files: the I/O edge around the pure schema."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import tomllib

from deskphone.config.schema import ConfigError, PhoneConfig, Problem, config_from_document

_WHERE = re.compile(
    r"^(?P<what>.*) \(at (?:line (?P<line>\d+), column (?P<col>\d+)|end of document)\)$"
)


def _syntax_problem(exc: tomllib.TOMLDecodeError, text: str) -> Problem:
    """Turn tomllib's "msg (at line L, column C)" into a line-located problem."""
    match = _WHERE.match(str(exc))
    if match is None:
        return Problem(None, f"TOML syntax error: {exc}")
    if match["line"] is None:
        last = text.count("\n") + (0 if text.endswith("\n") else 1)
        return Problem(None, f"TOML syntax error: {match['what']} (at end of file)", max(last, 1))
    return Problem(
        None, f"TOML syntax error: {match['what']} (column {match['col']})", int(match["line"])
    )


def parse_config(text: str, source: str = "<config>") -> PhoneConfig:
    """Parse TOML text into a PhoneConfig; ``source`` names it in error messages."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [_syntax_problem(exc, text)]) from None
    return config_from_document(document, source)


def load_config(path: str | os.PathLike[str]) -> PhoneConfig:
    """Read and parse a config file; every failure is a ConfigError naming the file."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as file:
            data = file.read()
    except OSError as exc:
        raise ConfigError(source, [Problem(None, f"cannot read: {exc.strerror or exc}")]) from None
    try:
        # utf-8-sig: tolerate the BOM some editors add; TOML itself must be UTF-8.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(source, [Problem(None, "not UTF-8 text", line)]) from None
    return parse_config(text, source)


def atomic_write_config(path: str | os.PathLike[str], text: str) -> PhoneConfig:
    """Replace a config file so a power cut leaves the old file or the new, never half of one.

    The text is validated first (ConfigError if bad) so provisioning can never install a
    config the phone would refuse at boot. The file is created 0600: it holds a password.
    Returns the parsed config.
    """
    target = os.fspath(path)
    config = parse_config(text, target)
    directory = os.path.dirname(os.path.abspath(target))
    name = os.path.basename(target)
    fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(text.encode("utf-8"))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    # The rename is only durable once the directory entry itself reaches the disk.
    dir_fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return config
