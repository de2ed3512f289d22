"""Where the call history lives: [phone] state_dir, else systemd's StateDirectory, else
$XDG_STATE_HOME (a user's own phone)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deskphone.app import state_dir
from deskphone.config import parse_config

ACCOUNT = '[account]\nuser = "1001"\npassword = "x"\ndomain = "127.0.0.1"\n'


def test_the_config_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/deskphone")
    cfg = parse_config(ACCOUNT + '[phone]\nstate_dir = "/srv/phone"\n')
    assert state_dir(cfg) == Path("/srv/phone")


def test_as_a_service_systemd_says_where(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/deskphone:/var/lib/other")
    assert state_dir(parse_config(ACCOUNT)) == Path("/var/lib/deskphone")


def test_for_a_user_xdg_state_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert state_dir(parse_config(ACCOUNT)) == tmp_path / "deskphone"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert state_dir(parse_config(ACCOUNT)) == tmp_path / ".local" / "state" / "deskphone"
