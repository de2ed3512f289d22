"""The deskphone command: help text, config errors, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from deskphone.cli import EXIT_CONFIG, build_parser, main

REPO = Path(__file__).resolve().parents[2]
GOOD = """
[account]
user = "1001"
password = "secret1001"
domain = "127.0.0.1"
registrar = "sip:127.0.0.1:5060"
"""


def test_help_explains_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "run" in out and "check-config" in out
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    assert "--config" in out and "--log-level" in out and "SIGTERM" in out
    for action in build_parser()._actions:  # every option has help text
        assert action.help, action


def test_missing_key_names_the_key_and_the_file_and_exits_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "phone.toml"
    cfg.write_text(GOOD.replace('password = "secret1001"\n', ""))
    assert main(["run", "-c", str(cfg)]) == EXIT_CONFIG == 2
    err = capsys.readouterr().err
    assert f"{cfg}: account.password: missing (required)" in err
    assert "secret" not in err


def test_wrong_value_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "phone.toml"
    cfg.write_text(GOOD + 'transport = "sctp"\n')
    assert main(["check-config", "-c", str(cfg)]) == 2
    assert 'account.transport: must be one of "udp", "tcp", got "sctp"' in capsys.readouterr().err


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "-c", str(tmp_path / "nope.toml")]) == 2
    assert "cannot read: No such file or directory" in capsys.readouterr().err


def test_check_config_accepts_the_example() -> None:
    assert main(["check-config", "-c", str(REPO / "firmware/etc/phone.example.toml")]) == 0


def test_console_script_entry_point_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "deskphone.cli", "--version"],
                         capture_output=True, text=True, timeout=30,
                         env={"PYTHONPATH": str(REPO / "firmware")})
    assert out.returncode == 0 and out.stdout.startswith("deskphone ")


def test_a_config_with_a_password_readable_by_others_is_warned_about(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import os

    path = tmp_path / "phone.toml"
    path.write_text('[account]\nuser = "1001"\npassword = "secret"\ndomain = "127.0.0.1"\n')
    os.chmod(path, 0o644)
    assert main(["check-config", "-c", str(path)]) == 0
    err = capsys.readouterr().err
    assert "readable by others (mode 644): chmod 600" in err and "secret" not in err
    os.chmod(path, 0o600)
    assert main(["check-config", "-c", str(path)]) == 0
    assert capsys.readouterr().err == ""
