"""The last good provisioned set, kept across restarts in ONE file: ``provisioning.json``.

One file, not one per fetched file, so a power cut can never pair a new common file with
an old per-MAC file: the store's atomic write leaves the old set or the new. It is 0600:
the fetched texts hold passwords. A file that cannot be read or has the wrong shape is set
aside (``.bad``), logged without its contents, and the phone boots from its local config.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ..config.store import Step, atomic_write

log = logging.getLogger("deskphone.provision")

STATE_FILE: Final = "provisioning.json"
"""Its name in the phone's state directory."""

VERSION: Final = 1

_SHA256: Final = re.compile(r"[0-9a-f]{64}")
_BOM: Final = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class ProvisionedFile:
    """One file of a sync as fetched: ``text`` None when the server answered 404.

    ``sha256`` is the hex digest of the body as fetched ("" for a 404), compared with the
    next fetch; ``text`` is that body decoded (a UTF-8 BOM may have been dropped).
    ``url`` is for showing: without credentials.
    """

    name: str
    url: str
    etag: str | None
    sha256: str
    text: str | None = field(repr=False)  # it holds passwords

    @classmethod
    def fetched(cls, name: str, url: str, etag: str | None, body: bytes) -> ProvisionedFile:
        """A file the server sent; UnicodeDecodeError if the body is not UTF-8."""
        return cls(name, url, etag, hashlib.sha256(body).hexdigest(), body.decode("utf-8-sig"))

    @classmethod
    def missing(cls, name: str, url: str) -> ProvisionedFile:
        """A file the server does not have (404): the other file of the set stands alone."""
        return cls(name, url, None, "", None)

    @property
    def body(self) -> bytes | None:
        """The text as bytes again, for ``merge.parse_remote``; None for a 404."""
        return None if self.text is None else self.text.encode("utf-8")


@dataclass(frozen=True, slots=True)
class ProvisionState:
    """The set in force: where it came from, its files in order, when it was applied."""

    base_url: str
    mac: str
    files: tuple[ProvisionedFile, ...]
    applied_at: str  # ISO 8601, from the caller's clock


def state_path(state_dir: str | os.PathLike[str]) -> Path:
    return Path(state_dir) / STATE_FILE


# --------------------------------------------------------------------------------------
# JSON shape


def _to_json(state: ProvisionState) -> dict[str, object]:
    return {
        "version": VERSION,
        "base_url": state.base_url,
        "mac": state.mac,
        "applied_at": state.applied_at,
        "files": [{"name": f.name, "url": f.url, "etag": f.etag, "sha256": f.sha256,
                   "text": f.text} for f in state.files],
    }


def _field(raw: dict[str, Any], name: str, types: type | tuple[type, ...]) -> Any:
    if name not in raw:
        raise ValueError(f"no {name}")
    value = raw[name]
    if not isinstance(value, types):
        raise ValueError(f"{name} has the wrong type")
    return value


def _file(raw: object) -> ProvisionedFile:
    if not isinstance(raw, dict):
        raise ValueError("a file is not an object")
    f = ProvisionedFile(_field(raw, "name", str), _field(raw, "url", str),
                        _field(raw, "etag", (str, type(None))), _field(raw, "sha256", str),
                        _field(raw, "text", (str, type(None))))
    if f.text is None:
        if f.sha256 != "":
            raise ValueError(f"{f.name}: a 404 with a digest")
        return f
    if not _SHA256.fullmatch(f.sha256):
        raise ValueError(f"{f.name}: the digest is not a sha256")
    data = f.text.encode("utf-8")  # UnicodeEncodeError for a lone surrogate: refused
    if f.sha256 not in (hashlib.sha256(data).hexdigest(),
                        hashlib.sha256(_BOM + data).hexdigest()):
        raise ValueError(f"{f.name}: the text does not match its digest")
    return f


def _from_json(raw: object) -> ProvisionState:
    if not isinstance(raw, dict):
        raise ValueError("not an object")
    if raw.get("version") != VERSION:
        raise ValueError("an unknown version")
    files = _field(raw, "files", list)
    return ProvisionState(_field(raw, "base_url", str), _field(raw, "mac", str),
                          tuple(_file(f) for f in files), _field(raw, "applied_at", str))


# --------------------------------------------------------------------------------------
# The file


def load_state(path: str | os.PathLike[str]) -> ProvisionState | None:
    """The saved set, or None: none saved yet, or one that could not be used (set aside)."""
    target = Path(path)
    try:
        data = target.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("provisioned state %s unreadable (%s); booting from the local config",
                    target, exc.strerror or exc)
        return None
    try:
        return _from_json(json.loads(data.decode("utf-8")))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError, JSONDecodeError too
        # the reason names a position or a field, never a value: the texts hold passwords
        why = "not UTF-8 text" if isinstance(exc, UnicodeError) else exc
        bad = target.with_name(target.name + ".bad")
        log.warning("provisioned state %s unusable (%s); set aside as %s", target, why, bad)
        with contextlib.suppress(OSError):
            os.replace(target, bad)
        return None


def save_state(path: str | os.PathLike[str], state: ProvisionState, *,
               step: Step | None = None) -> None:
    """Replace the saved set atomically (0600); OSError if it cannot be written.

    The state directory is created (0700) if need be.
    """
    target = Path(path)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    text = json.dumps(_to_json(state), indent=1)  # ASCII: \u escapes for the rest
    atomic_write(target, text.encode("ascii"), mode=0o600, step=step)
