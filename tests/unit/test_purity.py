"""The pure packages stay pure: no sockets, clocks, randomness or threads.

Time arrives as ``now`` and randomness from an injected ``random.Random``, so
the SIP core runs the same under asyncio and under a test's fake clock.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "firmware" / "deskphone"
PURE = ["sip", "sdp", "phone"]
FORBIDDEN = {"asyncio", "socket", "time", "random", "threading", "selectors", "subprocess"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


# the pure half of media/: protocol and signal code, no sockets or clocks
PURE_MEDIA = ["g711", "rtp", "rtcp", "jitterbuffer", "plc", "dtmf", "tones"]


@pytest.mark.parametrize("module", PURE_MEDIA)
def test_pure_media_module_imports_no_io(module: str) -> None:
    path = PACKAGE / "media" / f"{module}.py"
    assert imported_modules(path) & FORBIDDEN == set()


@pytest.mark.parametrize("package", PURE)
def test_pure_package_imports_no_io(package: str) -> None:
    files = sorted((PACKAGE / package).rglob("*.py"))
    assert files or package == "phone"
    offenders = {str(f.relative_to(PACKAGE)): sorted(imported_modules(f) & FORBIDDEN)
                 for f in files}
    assert {f: m for f, m in offenders.items() if m} == {}


def test_the_check_itself_sees_an_import() -> None:
    transport = PACKAGE / "transport" / "sip.py"
    assert {"asyncio", "socket"} <= imported_modules(transport)
