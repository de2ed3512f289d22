"""Power loss at each instant of an atomic write: a child process killed at a store step.

The child runs ``KILL_AT`` and then the test's code, which passes ``step`` to the writer;
``step`` sends the child SIGKILL when the store reaches the stage named in ``sys.argv[1]``.
SIGKILL, not an exception: no ``finally`` runs, as after a real power cut.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from deskphone.config.store import STEPS, temp_path

KILL_AT = """\
import os, signal, sys
def step(name):
    if name == sys.argv[1]:
        os.kill(os.getpid(), signal.SIGKILL)
"""


def killed_at(step: str, code: str, *args: str) -> None:
    """Run ``code`` in a child killed at ``step``; ``sys.argv[2:]`` are ``args``."""
    assert step in STEPS
    result = subprocess.run([sys.executable, "-c", KILL_AT + code, step, *args],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == -signal.SIGKILL, result.stderr  # it got there, and died


def new_file_expected(step: str) -> bool:
    """Whether the target holds the new bytes once the writer died at ``step``."""
    return STEPS.index(step) >= STEPS.index("renamed")


def left_behind(target: Path) -> list[str]:
    """Every file beside ``target`` but the target itself: temp files a write left."""
    return sorted(name for name in os.listdir(target.parent) if name != target.name)


def temp_file(target: Path) -> Path:
    return Path(temp_path(target))
