"""The Makefile's targets, as a user meets them: `make help` lists each with one line."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TARGETS = ("install", "run", "demo", "test", "bench", "board", "dist", "flash", "lint")

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make")


def make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "-s", "-C", str(REPO), *args], capture_output=True,
                          text=True, timeout=60)


def test_help_is_the_default_and_lists_every_target_with_one_line() -> None:
    done = make()
    assert done.returncode == 0, done.stderr
    lines = {line.split()[1]: line for line in done.stdout.splitlines()
             if line.startswith("  make ")}
    for target in TARGETS:
        assert target in lines, f"make help does not list {target}"
        assert len(lines[target].split(None, 2)[2]) > 10  # says what it does


def test_flash_and_install_build_nothing_and_say_what_is_missing(tmp_path: Path) -> None:
    usage = make("flash")
    assert usage.returncode != 0 and "usage: make flash IMAGE=" in usage.stdout
    missing = tmp_path / "none.tar.gz"
    done = make("flash", "IMAGE=x.img", "TARGET=card.img", f"BUNDLE={missing}")
    assert done.returncode != 0
    assert f"no {missing}: run make dist first" in done.stdout
    assert not (REPO / "dist" / "none.tar.gz").exists()


def test_test_runs_the_lint_first() -> None:
    done = make("-n", "test", "PYTEST_ARGS=-k nothing")
    assert done.returncode == 0, done.stderr
    ruff = done.stdout.find("ruff check")
    pytest_at = done.stdout.find("-m pytest")
    assert 0 <= ruff < pytest_at, done.stdout
    assert "mypy --strict" in done.stdout
