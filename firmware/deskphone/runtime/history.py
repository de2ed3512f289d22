"""The call history: the last calls (missed, received, dialled), kept across restarts.

One JSON file in the phone's state directory, replaced with the config store's atomic
writer (0600: who called whom is private), so a power cut leaves the old list or the new
one, never half of either. A file that cannot be read is set aside (``.bad``), logged,
and the phone starts with an empty history rather than not at all.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ..config.store import atomic_write

log = logging.getLogger("deskphone.history")

LIMIT = 50
_KINDS = ("missed", "received", "dialled")


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    kind: str  # "missed" | "received" | "dialled"
    remote: str  # what to dial to call back
    name: str
    time: str  # ISO 8601 local wall time when the call ended
    duration: float  # seconds talked
    reason: str


def _entry(raw: object) -> HistoryEntry | None:
    if not isinstance(raw, dict):
        return None
    try:
        e = HistoryEntry(kind=str(raw["kind"]), remote=str(raw["remote"]),
                         name=str(raw.get("name", "")), time=str(raw.get("time", "")),
                         duration=float(raw.get("duration", 0.0)),
                         reason=str(raw.get("reason", "")))
    except (KeyError, TypeError, ValueError):
        return None
    return e if e.kind in _KINDS else None


class CallHistory:
    """Newest first; at most ``limit`` entries."""

    def __init__(self, path: Path | None, limit: int = LIMIT) -> None:
        self.path = path
        self.limit = limit
        self.entries: list[HistoryEntry] = []
        if path is not None:
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            raw = data["calls"] if isinstance(data, dict) else None
            if not isinstance(raw, list):
                raise ValueError("no list of calls")
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, RecursionError) as e:
            bad = path.with_suffix(path.suffix + ".bad")
            log.warning("call history %s unreadable (%s); set aside as %s", path, e, bad)
            with contextlib.suppress(OSError):
                os.replace(path, bad)
            return
        self.entries = [e for e in map(_entry, raw) if e is not None][: self.limit]

    def add(self, entry: HistoryEntry) -> None:
        self.entries.insert(0, entry)
        del self.entries[self.limit:]
        self._save()

    def last_dialled(self) -> str:
        return next((e.remote for e in self.entries if e.kind == "dialled"), "")

    def missed_since_last_answer(self) -> int:
        count = 0
        for e in self.entries:
            if e.kind != "missed":
                break
            count += 1
        return count

    def as_dicts(self) -> list[dict[str, object]]:
        return [asdict(e) for e in self.entries]

    def _save(self) -> None:
        if self.path is None:
            return
        text = json.dumps({"version": 1, "calls": self.as_dicts()}, ensure_ascii=False,
                          indent=1)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, text.encode("utf-8"), mode=0o600)
        except OSError as e:
            log.warning("call history not saved to %s: %s", self.path, e)
