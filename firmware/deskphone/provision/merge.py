"""Provisioned files: parse each, overlay them on the local config, validate, diff, scope.

Theory of operation: a sync fetches the common ``deskphone.toml`` and the phone's own
``<mac>.toml``, both in the phone's own config schema. ``parse_remote`` turns one fetched
body into a TOML document or refuses it (empty, oversized, not UTF-8, bad syntax, keys
outside any section). ``provisioned_config`` checks each file alone with the schema (a
partial file may leave required keys to another), then validates local < common < per-MAC,
merged key by key, as the config the phone would run; every problem names the file that
set the key, and no problem message shows a secret. ``config_changes`` lists what differs
from the config in force and ``apply_scope`` says how much of the phone a change needs
restarted, from one table (``SCOPES``).

Pure: no I/O and no clock, so the sync loop, the boot path and the tests share it.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from deskphone.config.load import decode_text, parse_document
from deskphone.config.schema import (
    SCHEMA,
    ConfigError,
    PhoneConfig,
    Problem,
    _quote,
    config_from_document,
    validate,
)

LOCAL_ONLY: Final[Mapping[str, str]] = MappingProxyType({
    # where the provisioned state itself is kept: a server moving it would strand it
    "phone.state_dir": "set locally only",
    # the console drives the phone (dial, listen, provision from elsewhere): a server that
    # could open it to the network, or point the trusted serial console at a socket of its
    # choosing, would own the phone
    "console.*": "set locally only (the console is the phone's remote control)",
    # paths on the phone itself, and ALSA device names: alsa-lib's file plugin runs a
    # command given as "|cmd", so a device name from a server would be code on the phone
    "audio.input": "set locally only (a file on the phone)",
    "audio.output": "set locally only (a file on the phone)",
    "audio.device": "set locally only (an ALSA name can run a command)",
    "audio.capture_device": "set locally only (an ALSA name can run a command)",
    "audio.playback_device": "set locally only (an ALSA name can run a command)",
    # whom the phone trusts is not the server's to say
    "provisioning.ca_file": "set locally only (whom the phone trusts)",
    "provisioning.client_cert": "set locally only (a file on the phone)",
    "provisioning.client_key": "set locally only (a file on the phone)",
})
"""Keys a provisioning server may not set, with the message that refuses them
(``section.*``: the whole section)."""

_ALONE: Final = tuple(dataclasses.replace(section, check=None) for section in SCHEMA)
"""The schema without its cross-key checks, for one partial file: the rtp port range or
the console token may be completed by the other file, so those checks run on the merge."""


class SyncError(ConfigError):
    """Problems in one or more files of a sync: one ConfigError per file in ``errors``.

    As a ConfigError, ``path`` is the first file's and ``problems`` are all of them;
    str() has one ``file: key: message`` line per problem, each naming its own file.
    """

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        if not errors:
            raise ValueError("SyncError needs at least one ConfigError")
        super().__init__(errors[0].path, [p for e in errors for p in e.problems])
        self.errors: tuple[ConfigError, ...] = tuple(errors)
        self.args = ("\n".join(str(e) for e in self.errors),)


# --------------------------------------------------------------------------------------
# One fetched file

MAX_FILE_BYTES: Final = 256 * 1024
"""The largest config file a phone takes (and the fleet tool writes): far above any real
one, small enough that a hostile server cannot fill the phone's memory."""


def parse_remote(name: str, data: bytes, *, max_bytes: int) -> dict[str, object]:
    """The TOML document of one fetched file, not yet checked against the schema.

    ConfigError(name, ...) for a file that is larger than ``max_bytes``, not UTF-8, not
    TOML, sets keys outside any [section], or sets nothing at all (a body cut short to
    nothing, or to its header comments).
    """
    if len(data) > max_bytes:
        raise ConfigError(name, [Problem(None, f"larger than {max_bytes} bytes "
                                               f"({len(data)})")])
    document = parse_document(decode_text(data, name), name)
    loose = {key: value for key, value in document.items() if not isinstance(value, dict)}
    if loose:
        # the schema's own words ("unknown key outside any [section]"), never the value
        raise ConfigError(name, [p for p in validate(loose)[1] if p.key in loose])
    if not any(document.values()):
        raise ConfigError(name, [Problem(None, "empty file" if not document
                                         else "sets nothing (only empty sections)")])
    return document


# --------------------------------------------------------------------------------------
# Merging and validating


def merge_documents(*documents: Mapping[str, object]) -> dict[str, object]:
    """Later documents win key by key inside each section table.

    A table-valued key (hardware.function_keys, hardware.leds) is one value: replaced
    whole, never merged. The inputs are not changed.
    """
    merged: dict[str, object] = {}
    for document in documents:
        for section, table in document.items():
            base = merged.get(section)
            if isinstance(table, Mapping) and isinstance(base, Mapping):
                merged[section] = {**base, **table}
            else:
                merged[section] = dict(table) if isinstance(table, Mapping) else table
    return merged


def check_remote(document: Mapping[str, object]) -> list[Problem]:
    """Problems of one provisioned file alone: unknown sections and keys, wrong types and
    ranges, keys only the local file may set. Missing required keys are left to the merge."""
    problems = [p for p in validate(document, _ALONE)[1] if p.message != "missing (required)"]
    for section, table in document.items():
        if isinstance(table, Mapping):
            for name in table:
                dotted = f"{section}.{name}"
                why = LOCAL_ONLY.get(dotted) or LOCAL_ONLY.get(f"{section}.*")
                if why is not None:
                    problems.append(Problem(dotted, why))
    return problems


def _sets(document: Mapping[str, object], section: str, name: str | None) -> bool:
    table = document.get(section)
    if not isinstance(table, Mapping):
        return False
    return name in table if name is not None else bool(table)


def _source(problem: Problem, local: Mapping[str, object],
            files: Sequence[tuple[str, Mapping[str, object]]], local_name: str) -> str:
    """The file to blame: the last that set the key; for a key nobody set (a default, a
    missing key), the last remote file that set anything in its section; else local."""
    if problem.key is None:
        return local_name
    section, _, name = problem.key.partition(".")
    layers = [(local_name, local), *files]
    for file, document in reversed(layers):
        if _sets(document, section, name or None):
            return file
    for file, document in reversed(files):
        if _sets(document, section, None):
            return file
    return local_name


def _by_file(problems: Iterable[tuple[str, Problem]]) -> SyncError:
    grouped: dict[str, list[Problem]] = {}
    for file, problem in problems:
        grouped.setdefault(file, []).append(problem)
    return SyncError([ConfigError(file, found) for file, found in grouped.items()])


def provisioned_config(
    local: Mapping[str, object], files: Sequence[tuple[str, Mapping[str, object]]], *,
    local_name: str = "local config",
) -> tuple[PhoneConfig, dict[str, object]]:
    """The config the phone runs: ``files`` (common first, then per-MAC) over ``local``.

    Returns (that config, the remote files merged without the local one). Raises SyncError
    (a ConfigError) naming, for every problem, the file that set the key.
    """
    alone = [(name, p) for name, document in files for p in check_remote(document)]
    if alone:
        raise _by_file(alone)
    merged = merge_documents(local, *(document for _, document in files))
    try:
        config = config_from_document(merged, local_name)
    except ConfigError as exc:
        raise _by_file((_source(p, local, files, local_name), p)
                       for p in exc.problems) from None
    return config, merge_documents(*(document for _, document in files))


# --------------------------------------------------------------------------------------
# What changed, and how much of the phone that restarts


class Scope(enum.Enum):
    """How much of the phone a change needs restarted, least first."""

    NONE = "none"  # nothing changed
    LIVE = "live"  # read again where it is used; no call or registration disturbed
    SIP = "sip"  # the SIP side rebuilt: un-register, re-register
    RESTART = "restart"  # the whole phone: hardware, console, audio devices


_RANK: Final = (Scope.NONE, Scope.LIVE, Scope.SIP, Scope.RESTART)

SCOPES: Final[Mapping[str, Scope]] = MappingProxyType({
    # "section.*" covers a section; a "section.key" entry overrides it
    "phone.*": Scope.LIVE,  # digit map and timers: the controller's settings
    "phone.state_dir": Scope.RESTART,  # the history file is opened at start (local only)
    "audio.tones": Scope.LIVE,
    "audio.ringtone": Scope.LIVE,
    "audio.*": Scope.RESTART,  # the sound devices are opened at start
    "sip.ring_timeout": Scope.LIVE,
    "sip.*": Scope.SIP,
    "account.*": Scope.SIP,
    "log.level": Scope.LIVE,
    "provisioning.*": Scope.LIVE,  # read at the next sync
    "hardware.*": Scope.RESTART,
    "console.*": Scope.RESTART,
})


def scope_of(key: str) -> Scope:
    """The scope of a change to ``key`` ("section.key"); KeyError for a key not in SCOPES."""
    found = SCOPES.get(key) or SCOPES.get(key.partition(".")[0] + ".*")
    if found is None:
        raise KeyError(key)
    return found


def _show(value: object) -> str:
    """A value as TOML writes it, on one line (for logs)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return repr(value)


def _plain(value: object) -> object:
    """A value as JSON can carry it (tuples as lists, mappings as dicts)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True, slots=True, repr=False)
class Change:
    """One key whose value differs; a secret key's values are never shown."""

    key: str  # "section.key"
    secret: bool
    old: object
    new: object

    @property
    def scope(self) -> Scope:
        return scope_of(self.key)

    def describe(self) -> str:
        """For logs: 'audio.tones: "us" -> "gb"', or "account.password changed"."""
        if self.secret:
            return f"{self.key} changed"
        return f"{self.key}: {_show(self.old)} -> {_show(self.new)}"

    def as_event(self) -> dict[str, object]:
        """For console events (JSON): key, old, new; a secret: key and "secret": true."""
        if self.secret:
            return {"key": self.key, "secret": True}
        return {"key": self.key, "old": _plain(self.old), "new": _plain(self.new)}

    def __repr__(self) -> str:
        return f"Change({self.describe()})"


def config_changes(old: PhoneConfig, new: PhoneConfig) -> list[Change]:
    """Every schema key whose value differs, in schema order."""
    changes: list[Change] = []
    for section in SCHEMA:
        before, after = getattr(old, section.name), getattr(new, section.name)
        for key in section.keys:
            was, now = getattr(before, key.name), getattr(after, key.name)
            if was != now:
                changes.append(Change(f"{section.name}.{key.name}", key.secret, was, now))
    return changes


def apply_scope(changes: Iterable[Change]) -> Scope:
    """The most any of ``changes`` needs: NONE for no change."""
    return max((change.scope for change in changes), key=_RANK.index, default=Scope.NONE)
