"""Reading and writing config files: the I/O edge around the pure schema."""

from __future__ import annotations

import os
import re
import tomllib
from typing import Any

from deskphone.config.schema import ConfigError, PhoneConfig, Problem, config_from_document
from deskphone.config.store import Step, atomic_write

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


def decode_text(data: bytes, source: str) -> str:
    """Bytes of a config file as text; ConfigError (with the line) if they are not UTF-8."""
    try:
        # utf-8-sig: tolerate the BOM some editors add; TOML itself must be UTF-8.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(source, [Problem(None, "not UTF-8 text", line)]) from None


def parse_document(text: str, source: str) -> dict[str, Any]:
    """Parse TOML text into a document, not yet checked; a syntax error names its line."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [_syntax_problem(exc, text)]) from None
    except RecursionError:  # arrays or tables nested thousands deep: hostile, not a config
        raise ConfigError(source, [Problem(None, "nested too deeply to be a config")]) \
            from None


def parse_config(text: str, source: str = "<config>") -> PhoneConfig:
    """Parse TOML text into a PhoneConfig; ``source`` names it in error messages."""
    return config_from_document(parse_document(text, source), source)


def read_config_text(path: str | os.PathLike[str]) -> str:
    """A config file's text; ConfigError naming the file if it cannot be read or is not
    UTF-8."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as file:
            data = file.read()
    except OSError as exc:
        raise ConfigError(source, [Problem(None, f"cannot read: {exc.strerror or exc}")]) from None
    return decode_text(data, source)


def load_config(path: str | os.PathLike[str]) -> PhoneConfig:
    """Read and parse a config file; every failure is a ConfigError naming the file."""
    return parse_config(read_config_text(path), os.fspath(path))


def atomic_write_config(path: str | os.PathLike[str], text: str, *,
                        step: Step | None = None) -> PhoneConfig:
    """Replace a config file so a power cut leaves the old file or the new, never half of one.

    The text is validated first (ConfigError if bad) so provisioning can never install a
    config the phone would refuse at boot. The file is written 0600: it holds a password.
    ``step`` is the store's test hook. Returns the parsed config.
    """
    target = os.fspath(path)
    config = parse_config(text, target)
    atomic_write(target, text.encode("utf-8"), mode=0o600, step=step)
    return config
