"""The one atomic file writer: a power cut leaves the old file or the new, never half of one.

Theory of operation: the bytes go to a temp file beside the target, created with its final
mode from the first instant (a password is never briefly world-readable), written, fsynced,
then renamed over the target; the rename is only durable once the directory itself is
fsynced. A crash can leave the temp file behind; it has one name per target,
``.<name>.tmp``, so the next write to that target removes it without listing the directory
(a fleet's 10,000 files). So: one writer per target at a time.

``step(name)`` is called after each stage, in ``STEPS`` order: tests stop the process there
to check that every instant of a write leaves a usable file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Final

STEPS: Final = ("created", "written", "synced", "renamed", "dir-synced")
"""The stages of a write, in order, as passed to ``step``."""

Step = Callable[[str], None]


def temp_path(path: str | os.PathLike[str]) -> str:
    """The temp file a write to ``path`` uses, beside it: ``.<name>.tmp``."""
    target = os.fspath(path)
    directory, name = os.path.split(target)
    return os.path.join(directory, f".{name}.tmp")


def _create(temp: str, mode: int) -> int:
    """Create the temp file, first removing one a crashed write left behind."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temp)
    return os.open(temp, flags, mode)


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make a rename or unlink in ``directory`` durable: fsync the directory itself."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o600,
                 step: Step | None = None, gid: int | None = None) -> None:
    """Replace ``path`` with ``data`` atomically and durably, leaving it with ``mode``
    (and group ``gid``, when given: a web server's group may read a 0640 secret).

    An error (OSError, or whatever ``step`` raises) before the rename leaves the target as it
    was and no temp file; one from the directory fsync comes after the new file is in place.
    The directory must exist.
    """
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    temp = temp_path(target)
    fd = _create(temp, mode)
    try:
        try:
            if gid is not None:
                os.fchown(fd, -1, gid)
            os.fchmod(fd, mode)  # exactly ``mode``: the umask only took bits away above
            if step is not None:
                step("created")
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if step is not None:
                step("written")
            os.fsync(fd)
        finally:
            os.close(fd)
        if step is not None:
            step("synced")
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    if step is not None:
        step("renamed")
    fsync_dir(directory)
    if step is not None:
        step("dir-synced")
