"""The call history: the last 50 calls, across restarts, never lost to a bad file."""

from __future__ import annotations

import json
from pathlib import Path

from deskphone.runtime.history import CallHistory, HistoryEntry


def entry(n: int, kind: str = "dialled") -> HistoryEntry:
    return HistoryEntry(kind, f"10{n:02d}", "", f"2026-12-07T09:{n % 60:02d}:00", 1.5, "x")


def test_newest_first_kept_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "state" / "history.json"
    h = CallHistory(path)
    h.add(entry(1))
    h.add(entry(2, "missed"))
    again = CallHistory(path)
    assert [e.remote for e in again.entries] == ["1002", "1001"]
    assert again.last_dialled() == "1001"
    assert again.missed_since_last_answer() == 1


def test_only_the_last_fifty(tmp_path: Path) -> None:
    h = CallHistory(tmp_path / "h.json")
    for n in range(60):
        h.add(entry(n))
    again = CallHistory(tmp_path / "h.json")
    assert len(again.entries) == 50 and again.entries[0].remote == "1059"


def test_an_unreadable_file_is_set_aside_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "h.json"
    path.write_text("{not json")
    h = CallHistory(path)
    assert h.entries == []
    assert (tmp_path / "h.json.bad").read_text() == "{not json"  # kept for a person to see
    h.add(entry(3))
    assert json.loads(path.read_text())["calls"][0]["remote"] == "1003"


def test_entries_of_an_unknown_shape_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "h.json"
    good = {"kind": "received", "remote": "sip:1@x", "time": "t", "duration": 3}
    path.write_text(json.dumps({"calls": [good, {"kind": "bogus", "remote": "2"}, 7]}))
    assert [e.remote for e in CallHistory(path).entries] == ["sip:1@x"]


def test_no_temporary_files_left_behind(tmp_path: Path) -> None:
    h = CallHistory(tmp_path / "h.json")
    for n in range(3):
        h.add(entry(n))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.json"]


def test_a_read_only_state_dir_costs_the_history_not_the_phone(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    h = CallHistory(blocker / "h.json")  # a directory that cannot exist
    h.add(entry(1))  # logged, not raised
    assert h.entries[0].remote == "1001"


def test_a_deeply_nested_file_is_set_aside_too(tmp_path: Path) -> None:
    path = tmp_path / "h.json"
    path.write_text("[" * 100_000)  # json recurses: RecursionError, not ValueError
    assert CallHistory(path).entries == []
    assert (tmp_path / "h.json.bad").exists()
