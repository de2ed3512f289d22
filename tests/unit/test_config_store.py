"""The one atomic writer: old file or new at every instant, private from the first byte."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from powercut import killed_at, left_behind, new_file_expected, temp_file

from deskphone.config import atomic_write_config, load_config
from deskphone.config.store import STEPS, atomic_write

OLD = """\
[account]
user = "1001"
password = "old-secret"
domain = "127.0.0.1"
"""
NEW = OLD.replace("1001", "1002").replace("old-secret", "new-secret") + '\n[audio]\ntones = "gb"\n'


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


# --------------------------------------------------------------------------------------
# power loss at every step


@pytest.mark.parametrize("step", STEPS)
def test_killed_at_any_step_leaves_the_old_or_the_new_config(tmp_path: Path, step: str) -> None:
    target = tmp_path / "phone.toml"
    atomic_write_config(target, OLD)
    killed_at(step, "from deskphone.config import atomic_write_config\n"
                    "atomic_write_config(sys.argv[2], sys.argv[3], step=step)\n",
              str(target), NEW)
    expected = NEW if new_file_expected(step) else OLD
    assert target.read_text() == expected
    assert load_config(target).account.user == ("1002" if expected is NEW else "1001")
    assert mode(target) == 0o600
    # the next write succeeds and sweeps away what the dead one left
    atomic_write_config(target, OLD.replace("1001", "1003"))
    assert load_config(target).account.user == "1003"
    assert os.listdir(tmp_path) == ["phone.toml"]


def test_a_write_killed_before_the_rename_leaves_its_temp_file_until_the_next(
        tmp_path: Path) -> None:
    target = tmp_path / "phone.toml"
    atomic_write_config(target, OLD)
    killed_at("written", "from deskphone.config.store import atomic_write\n"
                         "atomic_write(sys.argv[2], b'x', step=step)\n", str(target))
    assert left_behind(target) == [".phone.toml.tmp"]
    assert mode(temp_file(target)) == 0o600  # private even half-written
    atomic_write(target, NEW.encode())
    assert left_behind(target) == []


# --------------------------------------------------------------------------------------
# one write


def test_the_steps_come_in_order_ending_with_the_directory_fsync(tmp_path: Path) -> None:
    seen: list[str] = []
    atomic_write(tmp_path / "f", b"data", step=seen.append)
    assert tuple(seen) == STEPS == ("created", "written", "synced", "renamed", "dir-synced")


def test_a_new_file_is_0600_by_default(tmp_path: Path, umask_022: None) -> None:
    atomic_write(tmp_path / "f", b"data")
    assert (tmp_path / "f").read_bytes() == b"data"
    assert mode(tmp_path / "f") == 0o600


def test_the_mode_is_exact_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        atomic_write(tmp_path / "common.toml", b"data", mode=0o644)
    finally:
        os.umask(old)
    assert mode(tmp_path / "common.toml") == 0o644


def test_a_replaced_file_takes_the_new_mode(tmp_path: Path, umask_022: None) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")
    target.chmod(0o644)
    atomic_write(target, b"new")
    assert mode(target) == 0o600


def test_the_temp_file_is_private_from_its_creation(tmp_path: Path, umask_022: None) -> None:
    target = tmp_path / "f"
    modes: dict[str, int] = {}

    def look(step: str) -> None:
        if temp_file(target).exists():
            modes[step] = mode(temp_file(target))

    atomic_write(target, b"secret", step=look)
    assert modes == {"created": 0o600, "written": 0o600, "synced": 0o600}


def test_large_data_is_written_whole(tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    atomic_write(tmp_path / "f", data)
    assert (tmp_path / "f").read_bytes() == data


@pytest.mark.parametrize("failing", ["created", "written", "synced"])
def test_an_error_before_the_rename_leaves_the_target_untouched(tmp_path: Path,
                                                                failing: str) -> None:
    target = tmp_path / "phone.toml"
    target.write_text(OLD)

    def fail(step: str) -> None:
        if step == failing:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_write(target, NEW.encode(), step=fail)
    assert target.read_text() == OLD
    assert os.listdir(tmp_path) == ["phone.toml"]


def test_a_failed_rename_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "phone.toml"
    target.mkdir()  # os.replace onto a directory fails
    with pytest.raises(OSError):
        atomic_write(target, b"x")
    assert os.listdir(tmp_path) == ["phone.toml"]


def test_a_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "absent" / "f", b"x")


def test_a_stale_temp_file_is_replaced_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text("keep")
    (tmp_path / ".phone.toml.tmp").symlink_to(outside)  # left there, or planted
    (tmp_path / ".other.toml.tmp").write_text("another target's")
    atomic_write(tmp_path / "phone.toml", b"new")
    assert outside.read_text() == "keep"
    assert sorted(os.listdir(tmp_path)) == [".other.toml.tmp", "outside", "phone.toml"]
    assert (tmp_path / "phone.toml").read_bytes() == b"new"
