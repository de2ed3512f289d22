#!/usr/bin/env python3
"""Build the firmware wheel and the offline install bundle a new phone's first boot uses.

    python tools/dist.py [--out dist] [--wheel FILE] [--with-deps]

Writes ``dist/deskphone-<version>-py3-none-any.whl`` and ``dist/deskphone-bundle-<version>.tar.gz``
holding, under ``deskphone-bundle-<version>/``: the wheel (and, with --with-deps, the aarch64
wheels of its dependencies for Raspberry Pi OS bookworm's Python 3.11), ``deskphone.service``,
``deskphone.dtbo`` (compiled from board/deskphone.dts), ``config.txt`` (board/config.txt's
lines), ``phone.example.toml``, the first-boot scripts (board/firstboot/), ``BUNDLE-INFO``
(key=value lines: the version, ``with_deps=1`` or ``0`` and the dependency wheels it holds)
and ``MANIFEST``, the SHA-256 of every other member in ``sha256sum -c`` form. tools/flash.py
puts the members on the card's boot partition; deskphone-firstboot.sh checks MANIFEST and
installs from them without a network.

Both kinds of bundle have the same file name (the Makefile and flash.py find it by name);
BUNDLE-INFO tells them apart, and the installer says, before pip runs, when a bundle without
dependency wheels meets an image that lacks a dependency. Raspberry Pi OS bookworm needs
--with-deps: luma.oled has no Debian package.

The tarball is reproducible: members sorted, mtime SOURCE_DATE_EPOCH (default 2020-01-01),
owner root, fixed modes, gzip without name or time; the wheel is built with the same
SOURCE_DATE_EPOCH. The version is firmware/deskphone/__init__.py's ``__version__``; a wheel
of another version (pyproject.toml out of step) is an error.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/: flash.py
import flash  # noqa: E402

REPO: Final = Path(__file__).resolve().parents[1]
DEFAULT_EPOCH: Final = 1577836800  # 2020-01-01 UTC
EXECUTABLE: Final = frozenset({"deskphone-firstboot.sh", "firstrun.sh"})
# Raspberry Pi OS bookworm (64-bit): CPython 3.11 on aarch64, glibc 2.36
DEP_PLATFORMS: Final = ("manylinux2014_aarch64", "manylinux_2_28_aarch64",
                        "manylinux_2_17_aarch64", "linux_aarch64")
DEP_PYTHON: Final = "311"
INFO_NAME: Final = "BUNDLE-INFO"
NO_DEPS_NOTE: Final = (
    "note: no dependency wheels in this bundle (BUNDLE-INFO: with_deps=0); it installs only "
    "on an image that has every dependency. Raspberry Pi OS bookworm does not (luma.oled has "
    "no Debian package): build with --with-deps (make dist DIST_ARGS=--with-deps)")


class DistError(Exception):
    """A clear, one-line reason the bundle cannot be built; exit status 1."""


@dataclass(frozen=True)
class Inputs:
    """The files a bundle is made of; each path can be pointed elsewhere (tests, a board)."""

    root: Path
    unit: Path
    dts: Path
    config_txt: Path
    example: Path
    firstboot: Path
    firstrun: Path

    @classmethod
    def from_repo(cls, root: Path = REPO) -> Inputs:
        return cls(root=root,
                   unit=root / "firmware" / "systemd" / "deskphone.service",
                   dts=root / "board" / "deskphone.dts",
                   config_txt=root / "board" / "config.txt",
                   example=root / "firmware" / "etc" / "phone.example.toml",
                   firstboot=root / "board" / "firstboot" / "deskphone-firstboot.sh",
                   firstrun=root / "board" / "firstboot" / "firstrun.sh")

    def check(self) -> None:
        """Every missing input at once, named by what it is and who makes it."""
        wanted = {
            "the systemd unit": self.unit,
            "the overlay source": self.dts,
            "the config.txt lines": self.config_txt,
            "the example config": self.example,
            "the first-boot installer": self.firstboot,
            "the first-boot hook": self.firstrun,
        }
        missing = [f"{what} {path}" for what, path in wanted.items() if not path.is_file()]
        if missing:
            raise DistError("cannot build the bundle: missing " + "; ".join(missing))


def read_version(root: Path) -> str:
    """``__version__`` from firmware/deskphone/__init__.py, read as text (no import)."""
    init = root / "firmware" / "deskphone" / "__init__.py"
    try:
        text = init.read_text(encoding="utf-8")
    except OSError as exc:
        raise DistError(f"cannot read {init}: {exc.strerror or exc}") from None
    match = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", text, re.MULTILINE)
    if match is None:
        raise DistError(f"no __version__ = \"...\" in {init}")
    return match[1]


def source_date_epoch(env: Mapping[str, str] = os.environ) -> int:
    value = env.get("SOURCE_DATE_EPOCH", "")
    return int(value) if value.isdigit() else DEFAULT_EPOCH


def build_wheel(root: Path, out: Path, epoch: int) -> Path:
    """``pip wheel --no-deps`` of a copy of the sources, so the shared tree gets no build/."""
    with tempfile.TemporaryDirectory(prefix="deskphone-wheel-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "setup.cfg"):
            if (root / name).is_file():
                shutil.copy2(root / name, src / name)
        shutil.copytree(root / "firmware" / "deskphone", src / "firmware" / "deskphone",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        built = Path(tmp) / "out"
        env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        result = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(built), str(src)],
            capture_output=True, text=True, env=env, check=False)
        if result.returncode:
            raise DistError(f"pip wheel failed:\n{result.stderr.strip() or result.stdout.strip()}")
        wheels = sorted(built.glob("deskphone-*.whl"))
        if len(wheels) != 1:
            raise DistError(f"pip wheel made {len(wheels)} deskphone wheels, expected one")
        out.mkdir(parents=True, exist_ok=True)
        target = out / wheels[0].name
        shutil.copyfile(wheels[0], target)
        return target


def wheel_version(wheel: Path) -> str:
    parts = wheel.name.split("-")
    if len(parts) < 3 or parts[0] != "deskphone" or wheel.suffix != ".whl":
        raise DistError(f"{wheel.name} is not a deskphone wheel (deskphone-VERSION-...whl)")
    return parts[1]


def compile_overlay(dts: Path) -> bytes:
    """The overlay compiled as flash.py compiles it (one copy of the dtc call)."""
    try:
        return flash.compile_overlay(dts)
    except flash.FlashError as e:
        raise DistError(str(e)) from None


def download_deps(wheel: Path, out: Path) -> list[Path]:
    """The wheel's dependencies as aarch64 cp311 wheels (network; not run by the tests)."""
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--only-binary=:all:",
               "--python-version", DEP_PYTHON, "--implementation", "cp", "--abi",
               f"cp{DEP_PYTHON}", "--dest", str(out)]
    for platform in DEP_PLATFORMS:
        command += ["--platform", platform]
    result = subprocess.run([*command, str(wheel)], capture_output=True, text=True, check=False)
    if result.returncode:
        raise DistError("pip download of the dependencies failed (a dependency with no "
                        f"aarch64 wheel needs its Debian package on the image):\n"
                        f"{result.stderr.strip()}")
    return sorted(p for p in out.glob("*.whl") if not p.name.startswith("deskphone-"))


def manifest(files: Mapping[str, bytes]) -> bytes:
    """``sha256sum`` format, so ``sha256sum --check --strict MANIFEST`` verifies a bundle."""
    lines = [f"{hashlib.sha256(data).hexdigest()}  {name}\n"
             for name, data in sorted(files.items())]
    return "".join(lines).encode()


def bundle_info(version: str, with_deps: bool, dependencies: Sequence[str]) -> bytes:
    """BUNDLE-INFO: what kind of bundle this is, as key=value lines the installer reads."""
    lines = ["# deskphone bundle, written by tools/dist.py; read by deskphone-firstboot.sh",
             f"version={version}", f"with_deps={int(with_deps)}"]
    if with_deps:
        lines.append(f"dependency_target=cp{DEP_PYTHON} {' '.join(DEP_PLATFORMS)}")
    lines += [f"dependency={name}" for name in sorted(dependencies)]
    return ("\n".join(lines) + "\n").encode()


def write_tar(path: Path, prefix: str, files: Mapping[str, bytes], epoch: int) -> None:
    """A byte-for-byte reproducible .tar.gz of ``files`` under ``prefix/``."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        top = tarfile.TarInfo(prefix)
        top.type, top.mode, top.mtime = tarfile.DIRTYPE, 0o755, epoch
        top.uname = top.gname = "root"
        tar.addfile(top)
        for name in sorted(files):
            info = tarfile.TarInfo(f"{prefix}/{name}")
            info.size = len(files[name])
            info.mode = 0o755 if name in EXECUTABLE else 0o644
            info.mtime = epoch
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(files[name]))
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as file, gzip.GzipFile(filename="", mode="wb", fileobj=file,
                                                 mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    os.replace(tmp, path)


def build_bundle(inputs: Inputs, out: Path, wheel: Path | None = None,
                 with_deps: bool = False, epoch: int | None = None) -> Path:
    """Check the inputs, build (or take) the wheel, and write the bundle; returns its path."""
    inputs.check()
    version = read_version(inputs.root)
    epoch = source_date_epoch() if epoch is None else epoch
    out.mkdir(parents=True, exist_ok=True)
    if wheel is None:
        wheel = build_wheel(inputs.root, out, epoch)
    elif not wheel.is_file():
        raise DistError(f"wheel {wheel} not found")
    if wheel_version(wheel) != version:
        raise DistError(f"{wheel.name} is version {wheel_version(wheel)} but "
                        f"firmware/deskphone/__init__.py says {version}: bring pyproject.toml's "
                        "version in step")
    files: dict[str, bytes] = {
        wheel.name: wheel.read_bytes(),
        "deskphone.service": inputs.unit.read_bytes(),
        "deskphone.dtbo": compile_overlay(inputs.dts),
        "config.txt": inputs.config_txt.read_bytes(),
        "phone.example.toml": inputs.example.read_bytes(),
        "deskphone-firstboot.sh": inputs.firstboot.read_bytes(),
        "firstrun.sh": inputs.firstrun.read_bytes(),
    }
    dependencies: list[str] = []
    if with_deps:
        with tempfile.TemporaryDirectory(prefix="deskphone-deps-") as tmp:
            for dep in download_deps(wheel, Path(tmp)):
                files[dep.name] = dep.read_bytes()
                dependencies.append(dep.name)
    files[INFO_NAME] = bundle_info(version, with_deps, dependencies)
    files["MANIFEST"] = manifest(files)
    prefix = f"deskphone-bundle-{version}"
    path = out / f"{prefix}.tar.gz"
    write_tar(path, prefix, files, epoch)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dist.py", description="Build the deskphone wheel and the offline install bundle.")
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="output directory")
    parser.add_argument("--wheel", type=Path, help="use this wheel instead of building one")
    parser.add_argument("--with-deps", action="store_true",
                        help="also bundle the dependencies' aarch64 wheels (pip download: "
                             "needs the network)")
    parser.add_argument("--repo", type=Path, default=REPO, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        path = build_bundle(Inputs.from_repo(args.repo), args.out, args.wheel, args.with_deps)
    except DistError as exc:
        print(f"dist.py: error: {exc}", file=sys.stderr)
        return 1
    if not args.with_deps:
        print(f"dist.py: {NO_DEPS_NOTE}", file=sys.stderr)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
