#!/usr/bin/env python3
"""Write a Raspberry Pi OS image to an SD card (or an image file) and set it up for deskphone.

    python tools/flash.py IMAGE TARGET [--sha256 HEX] [--bundle dist/deskphone-bundle-V.tar.gz]
        [--hostname H | --inventory CSV --mac MAC] [--user U --password-hash HASH
        --ssh-key FILE] [--provisioning-url URL] [--yes] [--dry-run] [--quiet]

Theory of operation. Everything that can be checked is checked before the first byte is
written: the image (exists; its SHA-256 when given; its size, from the .xz index for a
compressed one), the target (not the system's disk, nothing mounted or stacked on it, not a
loop device over either, not a file a loop device is attached to, not a missing /dev name,
writable, big enough), and everything that will go on the boot partition (bundle MANIFEST,
overlay, phone.toml validated by the firmware's own schema). Then the user confirms, and the
target is opened ONCE for everything that follows: it must still be what was probed (same
device number, or same file), and a device is held with O_EXCL and flock(LOCK_EX), so udev
neither re-reads its partition table nor probes it for an automounter until flash.py is done.
The image is streamed onto it in 4 MiB chunks and hashed on the way; with --sha256 the file's
bytes are hashed as they are read, and a mismatch stops the write before the first 4 KiB,
the partition table, written last: an interrupted or refused write leaves no half-valid card.
Then fsync, and a read-back through the same fd to compare hashes. Last, the FAT boot
partition is found from the MBR and edited in place with mtools at its byte offset, through
/proc/self/fd/N of the same fd, without mounting it (no root, no loop devices, no
automounter races): config.txt lines, the overlay, ssh, userconf.txt, the bundle under
deskphone/ and the first-boot hook (firstrun.sh + cmdline.txt as Raspberry Pi Imager does on
bookworm, or cloud-init user-data for images that use it). Every file written is read back at
once, and again, with the whole boot partition, after the cache is dropped.

Per-phone settings come from --hostname/--provisioning-url or from the fleet tool's inventory
CSV (--inventory, --mac): its row gives the hostname (deskphone-<extension>) and the MAC for
the URL's {mac}. The row's SIP password is never written to the card: the phone gets it by
provisioning.

Every reading of the machine (sysfs, /proc/mounts, the root file system's device, whether a
stat is a block device's, where /dev is) goes through `System`, so tests fake a block device
in a directory.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import errno
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final, Literal, TextIO

REPO: Final = Path(__file__).resolve().parents[1]
CHUNK: Final = 4 << 20
HEAD: Final = 4096
"""Bytes held back and written last: the MBR and the sectors after it."""
SECTOR: Final = 512
FAT_TYPES: Final = frozenset({0x01, 0x04, 0x06, 0x0B, 0x0C, 0x0E})
XZ_MAGIC: Final = b"\xfd7zXZ\x00"

MARK_BEGIN: Final = "# >>> deskphone >>>"
MARK_END: Final = "# <<< deskphone <<<"
"""config.txt block delimiters; board/firstboot/deskphone-firstboot.sh looks for the same."""

OVERLAY_NAME: Final = "deskphone"
FIRSTRUN_ARGS: Final = ("systemd.run=/boot/firstrun.sh", "systemd.run_success_action=reboot",
                        "systemd.unit=kernel-command-line.target")
"""What Raspberry Pi Imager appends to cmdline.txt on bookworm (its "systemd" format)."""
BUNDLE_DIR: Final = "deskphone"
BUNDLE_REQUIRED: Final = ("MANIFEST", "deskphone.service", "deskphone.dtbo",
                          "phone.example.toml", "deskphone-firstboot.sh", "firstrun.sh")

HOSTNAME_RE: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
USER_RE: Final = re.compile(r"[a-z][a-z0-9-]{0,31}")  # userconf-pi's rule
CRYPT_RE: Final = re.compile(r"\$[0-9a-z]+\$[A-Za-z0-9./$=,-]+")
SSH_KEY_RE: Final = re.compile(r"(?:ssh-|ecdsa-|sk-)[A-Za-z0-9@.-]+ [A-Za-z0-9+/=]+(?: [^\n]*)?")

InitFormat = Literal["auto", "systemd", "cloud-init"]


class FlashError(Exception):
    """A problem to show the user as one clear line; the program exits 1."""


# --------------------------------------------------------------------------------------
# The machine, as flash.py sees it


def _block_rdev(st: os.stat_result) -> int | None:
    return st.st_rdev if stat.S_ISBLK(st.st_mode) else None


@dataclass(frozen=True)
class System:
    """Where flash.py reads about disks; tests point it at a fake sysfs and mount table."""

    sysfs: Path = Path("/sys")
    mounts: str | None = None
    """/proc/mounts text; None reads the real one."""
    root_dev: int | None = None
    """st_dev of "/"; None stats the real one."""
    devdir: Path = Path("/dev")
    """Where device nodes live: a path under it that is not a block device is a typo or a
    vanished card, never a place to create an image file."""
    block_rdev: Callable[[os.stat_result], int | None] = _block_rdev
    """The device number of a block device's stat (of a path, or fstat of an open fd); None
    for anything else. Tests make a plain file pass for one."""
    lock_wait: float = 5.0
    """Seconds to wait for a device's flock while udev briefly holds it to probe."""

    def mount_table(self) -> str:
        if self.mounts is not None:
            return self.mounts
        return Path("/proc/self/mounts").read_text(encoding="utf-8", errors="replace")

    def root_device(self) -> int:
        return os.stat("/").st_dev if self.root_dev is None else self.root_dev


def _read(path: Path, default: str = "") -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return default


def _human(size: float) -> str:
    """Decimal units, as SD cards are labelled (a "32 GB" card holds about 31.9 GB)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(size) < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"  # pragma: no cover


def disks_of_root(system: System) -> set[str]:
    """Names of the disks holding "/" (through dm/md slaves), e.g. {"mmcblk0"} or {"sda"}."""
    dev = system.root_device()
    node = system.sysfs / "dev" / "block" / f"{os.major(dev)}:{os.minor(dev)}"
    if not node.exists():
        return set()  # overlayfs, btrfs subvolumes...: the mount check still protects them
    return _disks_under(node.resolve(), system, depth=0)


def _disks_under(node: Path, system: System, depth: int) -> set[str]:
    if depth > 8:
        return set()
    slaves = node / "slaves"
    if slaves.is_dir() and any(slaves.iterdir()):
        found: set[str] = set()
        for slave in slaves.iterdir():
            found |= _disks_under(
                (system.sysfs / "class" / "block" / slave.name).resolve(), system, depth + 1)
        return found
    if (node / "partition").exists():
        return {node.parent.name}
    return {node.name}


def _partitions(node: Path) -> list[str]:
    return sorted(child.name for child in node.iterdir() if (child / "partition").exists())


def _unescape_mount(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def mounts_on(names: Iterable[str], mount_table: str) -> list[tuple[str, str]]:
    """(device, mount point) of every mount whose source is one of the named block devices."""
    wanted = set(names)
    found = []
    for line in mount_table.splitlines():
        fields = line.split()
        if len(fields) < 2 or not fields[0].startswith("/dev/"):
            continue
        source = _unescape_mount(fields[0])
        name = Path(os.path.realpath(source)).name if os.path.exists(source) else Path(source).name
        if name in wanted or Path(source).name in wanted:
            found.append((source, _unescape_mount(fields[1])))
    return found


@dataclass(frozen=True)
class Target:
    """Where the image goes: a whole block device (checked) or an image file."""

    path: Path
    is_device: bool
    capacity: int | None
    """Bytes the device holds; None for a file, which grows."""
    description: str
    rdev: int | None = None
    """The device number probed: the device opened after the prompt must have it."""
    file_id: tuple[int, int, int] | None = None
    """(st_dev, st_ino, st_ctime_ns) of an existing target file; None for a device or a new
    file. The ctime too, as a replaced file may get the freed inode number back."""


def _under(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


def probe_target(path: Path, image: Image, system: System) -> Target:
    """Refuse, with the reason, any target the image must not or cannot go to."""
    if path.exists() and image.path.exists() and os.path.samefile(path, image.path):
        raise FlashError(f"{path} is the image itself")
    try:
        st: os.stat_result | None = os.stat(path)  # follows /dev/disk/by-id/... links
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise FlashError(f"cannot look at {path}: {exc.strerror or exc}") from None
    rdev = system.block_rdev(st) if st is not None else None
    if rdev is not None:
        return _probe_device(path, rdev, image, system)
    real = Path(os.path.realpath(path))
    devdir = Path(os.path.realpath(system.devdir))
    if _under(real, devdir) or _under(Path(os.path.abspath(path)), system.devdir):
        # /dev/sdc with no sdc (a typo, a card not inserted) would otherwise become a
        # regular file in /dev, and the write would "succeed" into RAM
        if st is None:
            raise FlashError(f"{path}: no such device (a typo, or the card is not in the "
                             "reader? lsblk lists the disks); not creating a file in "
                             f"{system.devdir}")
        raise FlashError(f"{path} is not a block device (only whole disks and image files "
                         f"outside {system.devdir} can be written)")
    if path.is_symlink() and st is None:
        raise FlashError(f"{path} is a dangling symlink")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise FlashError(f"{path} is neither a block device nor a regular file")
    if not real.parent.is_dir():
        raise FlashError(f"{path.parent} does not exist (the target file's directory)")
    if st is not None:
        _refuse_loop_backing_file(path, real, st, system)
    what = f"image file {real}" + (f" (exists, {_human(st.st_size)}: replaced)"
                                   if st is not None else " (new)")
    return Target(real, False, None, what, file_id=_file_id(st) if st is not None else None)


def _file_id(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_dev, st.st_ino, st.st_ctime_ns


def _sysfs_node(rdev: int, system: System) -> Path | None:
    """The sysfs directory of a device number: the node of the very device, not of a name."""
    node = system.sysfs / "dev" / "block" / f"{os.major(rdev)}:{os.minor(rdev)}"
    return node.resolve() if node.exists() else None


def _probe_device(path: Path, rdev: int, image: Image, system: System) -> Target:
    node = _sysfs_node(rdev, system)
    if node is None:
        raise FlashError(f"{path}: device {os.major(rdev)}:{os.minor(rdev)} is not in "
                         f"{system.sysfs / 'dev' / 'block'}: not a disk this system knows")
    name = node.name
    if (node / "partition").exists():
        raise FlashError(f"{path} is a partition ({name}): give the whole device, "
                         f"/dev/{node.parent.name}")
    _refuse_in_use(str(path), node, image, system, depth=0)
    if _read(node / "ro") == "1":
        raise FlashError(f"{path} is read-only (an SD card's lock switch in the 'lock' "
                         "position, or a write-protected reader)")
    try:
        capacity = int(_read(node / "size", "0")) * SECTOR
    except ValueError:
        capacity = 0
    if capacity == 0:
        raise FlashError(f"{path} has no medium (is the card inserted?)")
    if capacity < image.size:
        raise FlashError(f"{path} is too small: it holds {_human(capacity)} "
                         f"({capacity} bytes), the image needs {_human(image.size)} "
                         f"({image.size} bytes)")
    model = " ".join(filter(None, (_read(node / "device" / "vendor"),
                                   _read(node / "device" / "model")))) or "unknown model"
    removable = ", removable" if _read(node / "removable") == "1" else ""
    return Target(path, True, capacity,
                  f"{path}: {model}, {_human(capacity)} ({capacity} bytes{removable})",
                  rdev=rdev)


def _refuse_in_use(what: str, node: Path, image: Image, system: System, depth: int) -> None:
    """The system's disk, mounts, holders; for a loop device, the same for what backs it.

    Writing /dev/loopN writes its backing device or file: a loop over the system's disk (or
    one of its partitions), over a mounted card, or over a file another mounted loop device
    reads, is as wrong a target as the disk itself.
    """
    if depth > 8:
        raise FlashError(f"{what}: loop devices nested too deep to check")
    name = node.name
    partition = (node / "partition").exists()
    disk = node.parent.name if partition else name
    if disk in disks_of_root(system):
        raise FlashError(f"{what} is the disk the running system is on: refusing to "
                         "overwrite it")
    parts = [] if partition else _partitions(node)
    mounted = mounts_on([name, *parts], system.mount_table())
    if mounted:
        where = ", ".join(f"{dev} on {point}" for dev, point in mounted)
        raise FlashError(f"{what} is in use: {where}; unmount it first "
                         f"(udisksctl unmount -b DEVICE, or umount)")
    holders = [h.name for n in [node, *(node / p for p in parts)]
               if (n / "holders").is_dir() for h in (n / "holders").iterdir()]
    if holders:
        raise FlashError(f"{what} is in use by {', '.join(sorted(holders))} "
                         "(device mapper, RAID or LVM): release it first")
    backing = _read(node / "loop" / "backing_file")
    if backing:
        _refuse_loop_backing(what, name, backing, image, system, depth)


def _refuse_loop_backing(what: str, loop: str, backing: str, image: Image, system: System,
                         depth: int) -> None:
    via = f"{what} (loop device on {backing})"
    if backing.endswith(" (deleted)"):
        return  # an unlinked file: nothing else can reach it by name
    try:
        st = os.stat(backing)
    except OSError:
        raise FlashError(f"{via}: cannot look at what backs it") from None
    rdev = system.block_rdev(st)
    if rdev is not None:
        node = _sysfs_node(rdev, system)
        if node is None:
            raise FlashError(f"{via}: {backing} is not a disk this system knows")
        _refuse_in_use(via, node, image, system, depth + 1)
        return
    if image.path.exists() and os.path.samefile(backing, image.path):
        raise FlashError(f"{via}: that is the image itself")
    for other in _loops_backed_by(Path(backing), st, system):
        if other.name != loop:
            _refuse_in_use(f"{via}, also attached as /dev/{other.name},", other, image,
                           system, depth + 1)


def _loops_backed_by(path: Path, st: os.stat_result, system: System) -> list[Path]:
    """sysfs nodes of the loop devices whose backing file is ``path`` (same inode)."""
    found = []
    classes = system.sysfs / "class" / "block"
    if not classes.is_dir():
        return []
    for entry in sorted(classes.iterdir()):
        backing = _read(entry / "loop" / "backing_file")
        if not backing or backing.endswith(" (deleted)"):
            continue
        try:
            other = os.stat(backing)
        except OSError:
            continue
        if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino) or Path(
                os.path.realpath(backing)) == Path(os.path.realpath(path)):
            found.append(entry.resolve())
    return found


def _refuse_loop_backing_file(path: Path, real: Path, st: os.stat_result,
                              system: System) -> None:
    """A file attached to a loop device is a disk in use: writing it rewrites that disk."""
    loops = [f"/dev/{node.name}" for node in _loops_backed_by(real, st, system)]
    if loops:
        raise FlashError(f"{path} is attached to {', '.join(loops)}: writing it would change "
                         f"a disk in use; detach it first (umount, then losetup -d "
                         f"{loops[0]})")


# --------------------------------------------------------------------------------------
# The image


@dataclass(frozen=True)
class Image:
    path: Path
    compressed: bool
    size: int
    """Bytes of the raw image (after decompression)."""

    def open(self) -> ImageSource:
        return ImageSource(self)


class HashedFile(io.RawIOBase):
    """The image file's bytes as they are read, hashed on the way.

    The SHA-256 that is checked against --sha256 is then the hash of the very bytes that were
    decompressed and written, not of an earlier read of a file that may since have changed.
    """

    def __init__(self, path: Path) -> None:
        self.file = open(path, "rb", buffering=0)  # noqa: SIM115 - closed in close()
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = self.file.readinto(buffer) or 0
        self.digest.update(memoryview(buffer)[:n])
        return n

    def sha256(self) -> str:
        """The whole file's hash: what has not been read yet (trailing padding) is read too."""
        while chunk := self.file.read(CHUNK):
            self.digest.update(chunk)
        return self.digest.hexdigest()

    def close(self) -> None:
        self.file.close()
        super().close()


class ImageSource(io.BufferedReader):
    """The raw image (decompressed if need be) from one open of the file, which it hashes."""

    def __init__(self, image: Image) -> None:
        self.hashed = HashedFile(image.path)
        super().__init__(XzReader(self.hashed) if image.compressed else self.hashed, CHUNK)

    def file_sha256(self) -> str:
        """SHA-256 of the image file as given (the .img.xz's, for a compressed one)."""
        return self.hashed.sha256()


class XzReader(io.RawIOBase):
    """Streaming .xz decompression of every stream, across stream padding.

    lzma.open() stops quietly at padding between concatenated streams (it takes the zeros for
    trailing garbage), which would cut the image short; xz(1) and the index walk in
    xz_uncompressed_size() do not.
    """

    def __init__(self, file: io.RawIOBase) -> None:
        self.file = file
        self.decompressor = lzma.LZMADecompressor(lzma.FORMAT_XZ)
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        while True:
            if self.decompressor.eof:
                rest = self.decompressor.unused_data.lstrip(b"\0")
                if not rest:
                    rest = (self.file.read(CHUNK) or b"").lstrip(b"\0")
                    while not rest:
                        more = self.file.read(CHUNK)
                        if not more:
                            return 0
                        rest = more.lstrip(b"\0")
                self.decompressor = lzma.LZMADecompressor(lzma.FORMAT_XZ)
                self.pending = rest
            if self.decompressor.needs_input and not self.pending:
                self.pending = self.file.read(CHUNK) or b""
                if not self.pending:
                    raise lzma.LZMAError("compressed data ended before the end of the stream")
            data = self.decompressor.decompress(self.pending, max_length=len(view))
            self.pending = b""
            if data:
                view[:len(data)] = data
                return len(data)

    def close(self) -> None:
        self.file.close()
        super().close()


def inspect_image(path: Path) -> Image:
    """Existence, kind and raw size; a .xz's size comes from its index, not a full decompress."""
    if not path.exists():
        raise FlashError(f"image {path} not found")
    if not path.is_file():
        raise FlashError(f"image {path} is not a file")
    with open(path, "rb") as file:
        compressed = file.read(len(XZ_MAGIC)) == XZ_MAGIC
        size = xz_uncompressed_size(file, path) if compressed else os.fstat(file.fileno()).st_size
    if size == 0:
        raise FlashError(f"image {path} is empty")
    return Image(path, compressed, size)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """xz's multibyte integer (xz file format 1.2.1): 7 bits a byte, little end first."""
    value = 0
    for i in range(9):
        if pos >= len(data):
            break
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos
    raise ValueError("bad integer in the index")


def xz_uncompressed_size(file: BinaryIO, path: Path) -> int:
    """Sum of the uncompressed sizes in every stream's index, walking back from the end.

    The .xz format (1.2.1, §2.1.2.4, §4) ends each stream with an index of (unpadded,
    uncompressed) sizes per block and a footer giving the index size; streams may be
    concatenated with zero padding in between.
    """
    end = file.seek(0, os.SEEK_END)
    total = 0
    streams = 0
    try:
        while True:
            while end >= 4:  # stream padding: zero bytes, a multiple of four
                file.seek(end - 4)
                if file.read(4) != b"\0\0\0\0":
                    break
                end -= 4
            if end == 0 and streams:
                break
            if end < 24:
                raise ValueError("too short")
            file.seek(end - 12)
            footer = file.read(12)
            if footer[10:12] != b"YZ" or zlib.crc32(footer[4:10]) != struct.unpack_from(
                    "<I", footer)[0]:
                raise ValueError("no stream footer at the end")
            index_size = (struct.unpack_from("<I", footer, 4)[0] + 1) * 4
            file.seek(end - 12 - index_size)
            index = file.read(index_size)
            if len(index) != index_size or index[0] != 0:
                raise ValueError("no index before the footer")
            if zlib.crc32(index[:-4]) != struct.unpack_from("<I", index, index_size - 4)[0]:
                raise ValueError("index checksum mismatch")
            count, pos = _varint(index, 1)
            blocks = 0
            for _ in range(count):
                unpadded, pos = _varint(index, pos)
                uncompressed, pos = _varint(index, pos)
                blocks += (unpadded + 3) & ~3
                total += uncompressed
            end -= 12 + blocks + index_size + 12
            if end < 0:
                raise ValueError("blocks larger than the file")
            file.seek(end)
            if file.read(6) != XZ_MAGIC:
                raise ValueError("no stream header where the index says")
            streams += 1
    except (ValueError, struct.error) as exc:
        raise FlashError(f"image {path} is not a valid .xz file ({exc})") from None
    return total


def sha256_file(path: Path, progress: Progress | None = None) -> str:
    digest = hashlib.sha256()
    done = 0
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress.update(done)
    if progress:
        progress.finish()
    return digest.hexdigest()


def sha256_arg(expected: str) -> str:
    want = expected.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", want):
        raise FlashError(f"--sha256 {expected!r} is not 64 hex digits")
    return want


def check_sha256(path: Path, expected: str, progress: Progress | None = None) -> None:
    """The hash of the file as given (Raspberry Pi publishes the .img.xz's), before writing.

    Only a fast fail: the file is read again to be written, so run() also checks the hash
    of that read (in_stream_sha256), which is the one that counts.
    """
    want = sha256_arg(expected)
    got = sha256_file(path, progress)
    if got != want:
        raise FlashError(f"checksum mismatch for {path}: SHA-256 is {got}, expected {want} "
                         "(a damaged or different download); nothing was written")


def in_stream_sha256(source: ImageSource, path: Path, expected: str) -> Callable[[], None]:
    """write_image's last step before the partition table: the hash of the bytes written."""
    want = sha256_arg(expected)

    def check() -> None:
        got = source.file_sha256()
        if got != want:
            raise FlashError(f"checksum mismatch for {path} as it was written: SHA-256 is "
                             f"{got}, expected {want} (the file changed after it was "
                             "checked?); the partition table was not written: the card is "
                             "not usable as it is")

    return check


# --------------------------------------------------------------------------------------
# Progress


class Progress:
    """One self-overwriting stderr line: bytes, percentage, MB/s and time left, <= 5 a second.

    Off a terminal (a log, a CI run) only the final line is written.
    """

    def __init__(self, label: str, total: int, stream: TextIO | None,
                 clock: Callable[[], float] = time.monotonic, interval: float = 0.2,
                 live: bool | None = None) -> None:
        self.label, self.total, self.stream = label, total, stream
        self.clock, self.interval = clock, interval
        self.live = live if live is not None else bool(stream and stream.isatty())
        self.start = clock()
        self.shown_at: float | None = None
        self.done = 0

    def update(self, done: int) -> None:
        self.done = done
        if self.stream is None or not self.live:
            return
        now = self.clock()
        if self.shown_at is not None and now - self.shown_at < self.interval:
            return
        self.shown_at = now
        self.stream.write("\r" + self.line(now) + "\x1b[K")
        self.stream.flush()

    def finish(self) -> None:
        if self.stream is None:
            return
        self.stream.write(("\r" if self.live else "") + self.line(self.clock())
                          + ("\x1b[K\n" if self.live else "\n"))
        self.stream.flush()

    def line(self, now: float) -> str:
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        fraction = self.done / self.total if self.total else 1.0
        width = 24
        filled = int(width * min(fraction, 1.0))
        bar = "#" * filled + "." * (width - filled)
        if self.done >= self.total:
            eta = f"{_clock(elapsed)} total"
        elif rate > 0:
            eta = f"{_clock((self.total - self.done) / rate)} left"
        else:
            eta = "--:-- left"
        return (f"{self.label:<9} [{bar}] {fraction * 100:5.1f}%  {_human(self.done)} / "
                f"{_human(self.total)}  {rate / 1e6:6.1f} MB/s  {eta}")


def _clock(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


# --------------------------------------------------------------------------------------
# Writing and verifying


def open_error(exc: OSError, path: Path) -> FlashError:
    """What an open() failure means for a card, in words."""
    if exc.errno == errno.EROFS:
        return FlashError(f"{path} is read-only (an SD card's lock switch?)")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return FlashError(f"{path}: permission denied (read-only, or run as root: sudo)")
    if exc.errno == errno.EBUSY:
        return FlashError(f"{path} is busy: mounted, used as swap or held by another program")
    if exc.errno == errno.ENOMEDIUM:
        return FlashError(f"{path} has no medium (is the card inserted?)")
    return FlashError(f"cannot open {path}: {exc.strerror or exc}")


def open_target(target: Target, image: Image, system: System) -> int:
    """Open the target once, for everything: writing, reading back and configuring.

    The prompt may have waited minutes, so what is opened is checked to be what was probed:
    the same device number (a card swapped in the reader, or a /dev/sdX name taken by
    another disk, is refused), or the same file (opened with O_NOFOLLOW; a new file with
    O_EXCL). A device is then locked (lock_device) and its in-use checks run again on the
    open device, by its number.
    """
    flags = os.O_RDWR | os.O_CLOEXEC
    if target.is_device:
        flags |= os.O_EXCL  # EBUSY if anything (a mount, swap, device mapper) holds it
    else:
        flags |= os.O_NOFOLLOW | (os.O_CREAT | os.O_EXCL if target.file_id is None else 0)
    try:
        fd = os.open(target.path, flags, 0o644)
    except FileExistsError:
        raise FlashError(f"{target.path} appeared after it was checked: nothing written; "
                         "run again") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP and not target.is_device:
            raise FlashError(f"{target.path} became a symlink after it was checked: nothing "
                             "written") from None
        raise open_error(exc, target.path) from None
    try:
        st = os.fstat(fd)
        if target.is_device:
            got, want = system.block_rdev(st), target.rdev
            if got is None or want is None or got != want:
                now = "not a block device" if got is None else (
                    f"device {os.major(got)}:{os.minor(got)}")
                was = f" ({os.major(want)}:{os.minor(want)})" if want is not None else ""
                raise FlashError(f"{target.path} is not the device that was checked{was}; it "
                                 f"is now {now} (card swapped?): nothing written; run again")
            lock_device(fd, target.path, system.lock_wait)
            node = _sysfs_node(got, system)
            if node is None:
                raise FlashError(f"{target.path} is gone from sysfs: nothing written")
            _refuse_in_use(str(target.path), node, image, system, depth=0)
        else:
            if not stat.S_ISREG(st.st_mode) or (
                    target.file_id is not None and _file_id(st) != target.file_id):
                raise FlashError(f"{target.path} was replaced after it was checked: nothing "
                                 "written; run again")
            _refuse_loop_backing_file(target.path, target.path, st, system)
    except BaseException:
        os.close(fd)
        raise
    return fd


def lock_device(fd: int, path: Path, wait: float) -> None:
    """flock(LOCK_EX) the whole disk for as long as flash.py has it open.

    systemd's convention (https://systemd.io/BLOCK_DEVICE_LOCKING/, udev since v214):
    systemd-udevd takes LOCK_SH|LOCK_NB on the whole disk before it processes an event for
    it or a partition, and refrains from processing while it cannot; it re-runs its rules
    on the IN_CLOSE_WRITE of a writer's close. So from the first byte written to the last
    file configured no partition table is re-read and no partition is probed, announced or
    automounted (udisks acts on udev's events), and udev looks at the finished card once
    flash.py closes it. udev holds its shared lock briefly while it probes: hence the wait.
    """
    import fcntl

    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise FlashError(f"{path} is locked by another program (udev probing it, "
                                 "or a partitioning or imaging tool): nothing written; close "
                                 "it or try again in a moment") from None
            time.sleep(0.1)
        except OSError as exc:
            raise FlashError(f"cannot lock {path}: {exc.strerror or exc}") from None


def write_all(fd: int, data: bytes | memoryview, offset: int,
              write: Callable[[int, bytes | memoryview, int], int] = os.pwrite) -> None:
    """Write every byte or fail: a device may accept part of a buffer, never none of it."""
    view = memoryview(data)
    while view:
        n = write(fd, view, offset)
        if n <= 0:
            raise FlashError(f"short write: the device took no more bytes at offset {offset}")
        view = view[n:]
        offset += n


def _readinto_full(source: BinaryIO, view: memoryview) -> int:
    got = 0
    while got < len(view):
        n = source.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            break
        got += n
    return got


def write_image(source: BinaryIO, fd: int, size: int, progress: Progress,
                write: Callable[[int, bytes | memoryview, int], int] = os.pwrite,
                before_head: Callable[[], None] | None = None) -> str:
    """Copy ``size`` bytes to ``fd``, returning their SHA-256; the first HEAD bytes go last.

    The target's own first HEAD bytes are zeroed first, so until the copy has finished the
    card has no partition table that could pass for the new one, or the old one.
    ``before_head`` runs when everything else is written and the source is exhausted (the
    in-stream --sha256 check): if it raises, the card is left with no partition table.
    """
    digest = hashlib.sha256()
    buffer = bytearray(min(CHUNK, size))
    view = memoryview(buffer)
    head = b""
    done = 0
    try:
        while done < size:
            n = _readinto_full(source, view[:min(len(view), size - done)])
            if n == 0:
                raise FlashError(f"the image ended after {done} of {size} bytes "
                                 "(a truncated download?)")
            chunk = view[:n]
            digest.update(chunk)
            if done == 0:
                head = bytes(chunk[:HEAD])
                write_all(fd, bytes(len(head)), 0, write)
                write_all(fd, chunk[len(head):], len(head), write)
            else:
                write_all(fd, chunk, done, write)
            done += n
            progress.update(done)
        if source.read(1):
            raise FlashError(f"the image holds more than the {size} bytes its index says")
        if before_head is not None:
            before_head()
        write_all(fd, head, 0, write)
        os.fsync(fd)
    except KeyboardInterrupt:
        raise FlashError(f"interrupted after writing {done} of {size} bytes: the card is not "
                         "usable as it is; write it again") from None
    except lzma.LZMAError as exc:
        raise FlashError(f"the image is damaged: {exc} (after {done} bytes)") from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            reason = "the device is full (smaller than the image?)"
        elif exc.errno == errno.EIO:
            reason = "I/O error (card removed, or faulty?)"
        elif exc.errno == errno.EROFS:
            reason = "the device is read-only"
        else:
            reason = exc.strerror or str(exc)
        raise FlashError(f"write failed after {done} of {size} bytes: {reason}") from None
    progress.finish()
    return digest.hexdigest()


def _drop_cache(fd: int) -> None:
    """Make the read-back come from the card, not from the page cache the write filled."""
    with contextlib.suppress(OSError):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    if stat.S_ISBLK(os.fstat(fd).st_mode):
        import fcntl

        with contextlib.suppress(OSError):
            fcntl.ioctl(fd, 0x1261)  # BLKFLSBUF: flush the block device's buffers (root only)


def hash_range(fd: int, offset: int, size: int, progress: Progress | None = None) -> str:
    """SHA-256 of ``size`` bytes of ``fd`` from ``offset``, read with pread (the fd's own
    offset is left alone)."""
    digest = hashlib.sha256()
    done = 0
    while done < size:
        data = os.pread(fd, min(CHUNK, size - done), offset + done)
        if not data:
            raise FlashError(f"it ends after {done} of {size} bytes")
        digest.update(data)
        done += len(data)
        if progress:
            progress.update(done)
    if progress:
        progress.finish()
    return digest.hexdigest()


def verify_written(fd: int, name: Path, size: int, expected: str, progress: Progress) -> None:
    """Read back exactly ``size`` bytes through the fd that wrote them; compare SHA-256."""
    try:
        _drop_cache(fd)
        got = hash_range(fd, 0, size, progress)
    except KeyboardInterrupt:
        raise FlashError(f"verify interrupted after {progress.done} of {size} bytes: the card "
                         "was written but is not checked") from None
    except FlashError as exc:
        raise FlashError(f"verify failed: {name}: {exc}") from None
    except OSError as exc:
        raise FlashError(f"verify failed: reading {name} at byte {progress.done}: "
                         f"{exc.strerror or exc}") from None
    if got != expected:
        raise FlashError(f"verify failed: what was read back from {name} (SHA-256 {got}) "
                         f"differs from what was written ({expected}): a faulty or fake "
                         "card, or a bad reader")


# --------------------------------------------------------------------------------------
# The boot partition


@dataclass(frozen=True)
class Partition:
    number: int
    type: int
    start: int
    sectors: int

    @property
    def offset(self) -> int:
        return self.start * SECTOR


def read_partitions(mbr: bytes) -> list[Partition]:
    """The four primary MBR entries in use (Raspberry Pi OS images are MBR, not GPT)."""
    if len(mbr) < SECTOR or mbr[510:512] != b"\x55\xaa":
        raise FlashError("no MBR partition table (boot signature 55 aa missing)")
    parts = []
    for i in range(4):
        _, _, kind, _, start, count = struct.unpack_from("<B3sB3sII", mbr, 0x1BE + 16 * i)
        if kind == 0xEE:
            raise FlashError("a GPT disk: only MBR images (as Raspberry Pi OS ships) are "
                             "supported")
        if kind and count:
            parts.append(Partition(i + 1, kind, start, count))
    return parts


def boot_partition(mbr: bytes) -> Partition:
    for part in read_partitions(mbr):
        if part.type in FAT_TYPES:
            return part
    raise FlashError("no FAT partition in the partition table (not a Raspberry Pi OS image?)")


class BootFs:
    """The FAT file system at a byte offset of the open target, through mtools (no mount).

    mtools gets the target as /proc/self/fd/N of the fd flash.py holds (inherited through
    pass_fds), never by its name, which could by now be another device or file. mtools
    4.0.32 takes no flock on an ``-i`` image (checked with strace, on a loop device too), so
    it works under the LOCK_EX that lock_device holds; a version that did lock would fail
    "busy" rather than write around the lock.
    """

    def __init__(self, fd: int, offset: int) -> None:
        if shutil.which("mcopy") is None:
            raise FlashError("mtools is not installed (apt-get install mtools)")
        if not os.path.exists(f"/proc/self/fd/{fd}"):
            raise FlashError("/proc is not mounted: mtools cannot be given the open target")
        self.fd, self.offset = fd, offset
        self.env = {**os.environ, "MTOOLS_SKIP_CHECK": "1", "MTOOLSRC": os.devnull}
        self.written: dict[str, bytes] = {}
        """Every file written, as last written: verify_boot reads them all back."""

    @property
    def spec(self) -> str:
        return f"/proc/self/fd/{self.fd}@@{self.offset}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        result = subprocess.run([args[0], "-i", self.spec, *args[1:]], capture_output=True,
                                env=self.env, check=False, pass_fds=(self.fd,))
        if check and result.returncode:
            message = result.stderr.decode(errors="replace").strip().replace("\n", "; ")
            raise FlashError(f"{' '.join(args[:1])} on the boot partition failed: {message}")
        return result

    def read(self, name: str) -> bytes | None:
        result = self._run("mtype", f"::{name}", check=False)
        if result.returncode:
            if b"not found" in result.stderr:
                return None
            raise FlashError(f"cannot read {name} from the boot partition: "
                             f"{result.stderr.decode(errors='replace').strip()}")
        return result.stdout

    def exists(self, name: str) -> bool:
        return self._run("mdir", "-b", f"::{name}", check=False).returncode == 0

    def mkdir(self, name: str) -> None:
        if not self.exists(name):
            self._run("mmd", f"::{name}")

    def write(self, name: str, data: bytes) -> None:
        with tempfile.NamedTemporaryFile(prefix="deskphone-boot-") as tmp:
            tmp.write(data)
            tmp.flush()
            self._run("mcopy", "-o", tmp.name, f"::{name}")
        if self.read(name) != data:  # as Imager does: what went on the card is what we meant
            raise FlashError(f"{name} on the boot partition reads back different")
        self.written[name] = data


def verify_boot(fd: int, fs: BootFs, part: Partition, progress: Progress) -> None:
    """After configuring: the boot partition on the card is what the kernel wrote, and every
    file written reads back as written.

    The first read-back covered the image as written; mtools then rewrote files, FAT and
    directories inside the boot partition only. So: flush, hash the partition (mostly the page
    cache: what was written), drop the cache, hash it again (from the card), compare; then
    read each file back through mtools, now from what the card returned.
    """
    size = part.sectors * SECTOR
    try:
        os.fsync(fd)
        written = hash_range(fd, part.offset, size)
        _drop_cache(fd)
        on_card = hash_range(fd, part.offset, size, progress)
    except FlashError as exc:
        raise FlashError(f"verify failed: the boot partition: {exc}") from None
    except OSError as exc:
        raise FlashError(f"verify failed: reading the boot partition: "
                         f"{exc.strerror or exc}") from None
    if on_card != written:
        raise FlashError("verify failed: the boot partition reads back different from what "
                         "was written to it: a faulty or fake card, or a bad reader")
    for name, data in fs.written.items():
        if fs.read(name) != data:
            raise FlashError(f"verify failed: {name} on the boot partition reads back "
                             "different from what was written")


def merge_config_txt(text: str, lines: str) -> str:
    """config.txt with our marked block replaced or appended: re-running adds nothing."""
    out: list[str] = []
    skipping = False
    for line in text.splitlines():
        if line.strip() == MARK_BEGIN:
            skipping = True
        elif skipping and line.strip() == MARK_END:
            skipping = False
        elif not skipping:
            out.append(line)
    while out and not out[-1].strip():
        out.pop()
    block = [MARK_BEGIN, "# added by deskphone's tools/flash.py; running it again replaces "
             "this block", *lines.strip("\n").splitlines(), MARK_END]
    return "\n".join([*out, "", *block]) + "\n" if out else "\n".join(block) + "\n"


def add_firstrun(cmdline: str) -> str:
    """cmdline.txt stays one line: drop earlier systemd.run* tokens, then append ours."""
    first = cmdline.replace("\r", "").split("\n", 1)[0]
    tokens = [t for t in first.split() if not t.startswith("systemd.run")
              and t != "systemd.unit=kernel-command-line.target"]
    return " ".join([*tokens, *FIRSTRUN_ARGS]) + "\n"


def _yaml_str(text: str) -> str:
    return json.dumps(text)  # a JSON string is a YAML double-quoted scalar


def cloud_init_user_data(device: DeviceSettings) -> str:
    """#cloud-config for images that configure themselves with cloud-init (later trixie)."""
    lines = ["#cloud-config", "# written by deskphone's tools/flash.py"]
    if device.hostname:
        lines += [f"hostname: {device.hostname}", "manage_etc_hosts: true"]
    if device.ssh:
        lines.append("enable_ssh: true")
    if device.admin_user:
        lines += ["users:", f"- name: {device.admin_user}",
                  "  groups: users,adm,dialout,audio,netdev,video,plugdev,input,gpio,spi,i2c,sudo",
                  "  shell: /bin/bash"]
        if device.password_hash:
            lines += ["  lock_passwd: false", f"  passwd: {_yaml_str(device.password_hash)}"]
        else:
            lines.append("  lock_passwd: true")
        if device.ssh_keys:
            lines.append("  ssh_authorized_keys:")
            lines += [f"  - {_yaml_str(key)}" for key in device.ssh_keys]
    lines += ["runcmd:",
              f"- [bash, /boot/firmware/{BUNDLE_DIR}/deskphone-firstboot.sh, --bundle, "
              f"/boot/firmware/{BUNDLE_DIR}, --boot, /boot/firmware]"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------
# What goes on the card for this phone


@dataclass(frozen=True)
class DeviceSettings:
    hostname: str | None = None
    admin_user: str | None = None
    password_hash: str | None = None
    ssh_keys: tuple[str, ...] = ()
    ssh: bool = True
    provisioning_url: str | None = None
    mac: str | None = None


def _import_deskphone() -> bool:
    """The firmware package from this checkout, for its config schema and MAC rules."""
    try:
        import deskphone  # noqa: F401
    except ImportError:
        firmware = str(REPO / "firmware")
        if firmware not in sys.path:
            sys.path.insert(0, firmware)
        try:
            import deskphone  # noqa: F401
        except ImportError:
            return False
    return True


def normalise_mac(text: str) -> str:
    if _import_deskphone():
        from deskphone.provision.fleet import normalise_mac as fleet_mac

        try:
            return fleet_mac(text.strip())
        except ValueError as exc:
            raise FlashError(f"--mac {text!r}: {exc}") from None
    digits = re.sub(r"[:.-]", "", text.strip()).lower()
    if not re.fullmatch(r"[0-9a-f]{12}", digits):
        raise FlashError(f"--mac {text!r} is not a MAC address")
    return digits


def inventory_row(text: str, source: str, mac: str) -> dict[str, str]:
    """The inventory row of ``mac`` (fleet tool format: mac, extension, display_name, ...)."""
    wanted = normalise_mac(mac)
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "mac" not in reader.fieldnames:
        raise FlashError(f"{source}: no 'mac' column (the fleet tool's inventory format)")
    for row in reader:
        cell = (row.get("mac") or "").strip()
        if not cell or cell.startswith("#"):
            continue
        try:
            if normalise_mac(cell) == wanted:
                return {k: (v or "").strip() for k, v in row.items() if k}
        except FlashError:
            continue
    raise FlashError(f"{source}: no row for MAC {mac}")


def settings_from_inventory(row: Mapping[str, str], source: str) -> tuple[str, str]:
    """(hostname, mac) of an inventory row; its password column is deliberately not read."""
    extension = row.get("extension", "")
    hostname = f"deskphone-{extension.lower()}"
    if not extension or not HOSTNAME_RE.fullmatch(hostname):
        raise FlashError(f"{source}: extension {extension!r} does not make a hostname "
                         "(letters, digits, '-'); give --hostname")
    return hostname, normalise_mac(row["mac"])


def phone_toml(example: str, url: str | None, mac: str | None) -> str:
    """The example config with ``[provisioning] url`` set ({mac} filled in when known)."""
    if not url:
        return example
    if mac:
        url = url.replace("{mac}", mac)
    entry = f"url = {json.dumps(url)}  # set by tools/flash.py"
    lines = example.splitlines()
    header = next((i for i, line in enumerate(lines)
                   if re.fullmatch(r"\s*\[provisioning\]\s*(#.*)?", line)), None)
    if header is None:
        text = example.rstrip("\n") + f"\n\n[provisioning]\n{entry}\n"
    else:
        end = next((i for i in range(header + 1, len(lines))
                    if re.match(r"\s*\[", lines[i])), len(lines))
        existing = next((i for i in range(header + 1, end)
                         if re.match(r"\s*url\s*=", lines[i])), None)
        if existing is None:
            lines.insert(header + 1, entry)
        else:
            lines[existing] = entry
        text = "\n".join(lines) + "\n"
    check_phone_toml(text, url)
    return text


def check_phone_toml(text: str, url: str | None) -> None:
    """Validate with the firmware's own parser: a card must not boot into a bad config."""
    if not _import_deskphone():
        if url and not re.match(r"https?://", url):
            raise FlashError(f"--provisioning-url {url!r} is not an http:// or https:// URL")
        return
    from deskphone.config.load import parse_config
    from deskphone.config.schema import ConfigError

    try:
        config = parse_config(text, "phone.toml")
    except ConfigError as exc:
        raise FlashError(f"the phone.toml for the card is not valid: {exc}") from None
    if url and config.provisioning.url != url:  # pragma: no cover - a bug in phone_toml
        raise FlashError("phone.toml: the provisioning URL did not land in [provisioning]")


def device_conf(device: DeviceSettings) -> str:
    """key=value lines for deskphone-firstboot.sh, which reads (never sources) them."""
    lines = ["# per-card settings from tools/flash.py, read by deskphone-firstboot.sh"]
    if device.hostname:
        lines.append(f"hostname={device.hostname}")
    if device.admin_user:
        lines.append(f"admin_user={device.admin_user}")
    if device.password_hash:
        lines.append(f"admin_password_hash={device.password_hash}")
    lines.append(f"ssh={int(device.ssh)}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Bundle:
    """The dist bundle's files by name, checked against its MANIFEST."""

    source: Path
    files: Mapping[str, bytes]

    @property
    def version(self) -> str:
        wheel = next(n for n in self.files if n.startswith("deskphone-") and n.endswith(".whl"))
        return wheel.split("-")[1]


def read_bundle(path: Path) -> Bundle:
    """Load a bundle (.tar.gz, or an unpacked directory) and check every MANIFEST hash."""
    files: dict[str, bytes] = {}
    if path.is_dir():
        for child in sorted(path.iterdir()):
            if child.is_file():
                files[child.name] = child.read_bytes()
    elif path.is_file():
        try:
            with tarfile.open(path, "r:*") as tar:
                for member in tar.getmembers():
                    if member.isdir():
                        continue
                    name = Path(member.name).name
                    if not member.isfile() or not re.fullmatch(r"[A-Za-z0-9._+-]+", name):
                        raise FlashError(f"bundle {path}: unexpected member {member.name!r}")
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    files[name] = extracted.read()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise FlashError(f"bundle {path} cannot be read: {exc}") from None
    else:
        raise FlashError(f"bundle {path} not found (make dist builds it)")
    missing = [n for n in BUNDLE_REQUIRED if n not in files]
    if not any(n.startswith("deskphone-") and n.endswith(".whl") for n in files):
        missing.append("deskphone-*.whl")
    if missing:
        raise FlashError(f"bundle {path} lacks {', '.join(missing)}")
    listed: dict[str, str] = {}
    for line in files["MANIFEST"].decode(errors="replace").splitlines():
        digest, _, name = line.partition("  ")
        if not re.fullmatch(r"[0-9a-f]{64}", digest) or not name:
            raise FlashError(f"bundle {path}: bad MANIFEST line {line!r}")
        listed[name] = digest
    for name, data in files.items():
        if name == "MANIFEST":
            continue
        if name not in listed:
            raise FlashError(f"bundle {path}: {name} is not in its MANIFEST")
        if hashlib.sha256(data).hexdigest() != listed[name]:
            raise FlashError(f"bundle {path}: {name} does not match its MANIFEST hash")
    absent = sorted(set(listed) - set(files))
    if absent:
        raise FlashError(f"bundle {path}: MANIFEST lists missing {', '.join(absent)}")
    return Bundle(path, files)


def compile_overlay(dts: Path) -> bytes:
    """dtc -@: keep the symbols so the firmware can resolve &gpio at boot."""
    if not dts.is_file():
        raise FlashError(f"overlay source {dts} not found")
    if shutil.which("dtc") is None:
        raise FlashError("dtc is not installed (apt-get install device-tree-compiler)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "overlay.dtbo"
        result = subprocess.run(["dtc", "-@", "-q", "-I", "dts", "-O", "dtb", "-o", str(out),
                                 str(dts)], capture_output=True, text=True, check=False)
        if result.returncode:
            raise FlashError(f"dtc could not compile {dts}: {result.stderr.strip()}")
        return out.read_bytes()


@dataclass(frozen=True)
class BootPayload:
    """Everything that goes on the boot partition, prepared (and checked) before writing."""

    config_lines: str
    overlay: bytes
    device: DeviceSettings
    bundle: Bundle | None = None
    phone_toml: str | None = None
    init_format: InitFormat = "auto"
    notes: tuple[str, ...] = field(default=())


def config_lines_ok(lines: str, source: str) -> list[str]:
    """Warnings about board/config.txt lines (the overlay must be loaded by our name)."""
    if not re.search(rf"^\s*dtoverlay={OVERLAY_NAME}(,|\s|$)", lines, re.MULTILINE):
        return [f"{source} has no 'dtoverlay={OVERLAY_NAME}' line: overlays/"
                f"{OVERLAY_NAME}.dtbo will not be loaded"]
    return []


def configure_boot(fd: int | None, payload: BootPayload, say: Callable[[str], None],
                   mbr: bytes | None = None) -> tuple[Partition, BootFs | None]:
    """Edit the boot partition of what was written to ``fd``, through that fd.

    With no fd (a dry run) only say what would be edited, from the image's ``mbr``.
    """
    if mbr is None:
        if fd is None:
            raise ValueError("a dry run needs the image's MBR")
        mbr = os.pread(fd, SECTOR, 0)
    part = boot_partition(mbr)
    say(f"boot partition: #{part.number} (type 0x{part.type:02x}) at byte {part.offset}, "
        f"{_human(part.sectors * SECTOR)}")
    device = payload.device
    if fd is None:
        fs = None
    else:
        fs = BootFs(fd, part.offset)
        if fs.read("config.txt") is None and fs.read("cmdline.txt") is None:
            say("note: neither config.txt nor cmdline.txt on the boot partition "
                "(not a Raspberry Pi OS image?)")

    def put(name: str, data: bytes, why: str) -> None:
        say(f"boot:{name}: {why} ({len(data)} bytes)")
        if fs is not None:
            fs.write(name, data)

    old_config = (fs.read("config.txt") if fs else None) or b""
    put("config.txt", merge_config_txt(old_config.decode(errors="replace"),
                                       payload.config_lines).encode(),
        "deskphone lines (I2C, UART, the overlay) in a marked block")
    if fs is not None:
        fs.mkdir("overlays")
    put(f"overlays/{OVERLAY_NAME}.dtbo", payload.overlay, "the compiled board overlay")
    if device.ssh:
        put("ssh", b"", "enables the SSH server at boot")
    if device.admin_user and device.password_hash:
        put("userconf.txt", f"{device.admin_user}:{device.password_hash}\n".encode(),
            f"creates the login user {device.admin_user}")
    bundle = payload.bundle
    if bundle is None:
        say("no --bundle: the firmware is not installed at first boot")
        return part, fs
    if fs is not None:
        fs.mkdir(BUNDLE_DIR)
    for name, data in sorted(bundle.files.items()):
        put(f"{BUNDLE_DIR}/{name}", data, f"bundle {bundle.version}")
    put(f"{BUNDLE_DIR}/device.conf", device_conf(device).encode(),
        "hostname, login user, ssh for deskphone-firstboot.sh")
    if device.ssh_keys:
        put(f"{BUNDLE_DIR}/authorized_keys", ("\n".join(device.ssh_keys) + "\n").encode(),
            f"SSH keys for {device.admin_user}")
    if payload.phone_toml is not None:
        put(f"{BUNDLE_DIR}/phone.toml", payload.phone_toml.encode(),
            "becomes /etc/deskphone/phone.toml (0600, owner deskphone)")
    init = payload.init_format
    if init == "auto":
        cloud = fs is not None and (fs.exists("meta-data") or fs.exists("user-data"))
        init = "cloud-init" if cloud else "systemd"
    if init == "cloud-init":
        put("user-data", cloud_init_user_data(device).encode(),
            "cloud-init runs deskphone-firstboot.sh at first boot")
        meta = (fs.read("meta-data") if fs else None) or b""
        if b"instance-id" not in meta:
            put("meta-data", f"instance-id: deskphone-{int(time.time())}\n".encode(),
                "a new cloud-init instance, so user-data is applied")
        return part, fs
    put("firstrun.sh", bundle.files["firstrun.sh"],
        "run once by systemd at first boot, then removed")
    cmdline = (fs.read("cmdline.txt") if fs else None)
    if fs is not None and cmdline is None:
        raise FlashError("no cmdline.txt on the boot partition: cannot add the first-boot hook")
    new = add_firstrun((cmdline or b"").decode(errors="replace"))
    put("cmdline.txt", new.encode(), "+ " + " ".join(FIRSTRUN_ARGS))
    return part, fs


# --------------------------------------------------------------------------------------
# The command


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="flash.py",
        description="Write a Raspberry Pi OS Lite image to an SD card (or an image file), "
                    "verify it, and set up its boot partition for deskphone.")
    parser.add_argument("image", type=Path, help="the .img or .img.xz to write")
    parser.add_argument("target", type=Path,
                        help="whole-disk block device (/dev/sdX, /dev/mmcblkN) or image file")
    parser.add_argument("--sha256", metavar="HEX",
                        help="expected SHA-256 of IMAGE as given (the published .img.xz hash)")
    parser.add_argument("--bundle", type=Path, metavar="TAR_GZ",
                        help="dist/deskphone-bundle-VERSION.tar.gz (make dist): installed "
                             "offline at first boot")
    parser.add_argument("--hostname", help="the phone's hostname")
    parser.add_argument("--inventory", type=Path, metavar="CSV",
                        help="the fleet tool's inventory: with --mac, the hostname "
                             "(deskphone-EXTENSION) and the MAC for the URL's {mac}")
    parser.add_argument("--mac", help="this phone's MAC address, as in the inventory")
    parser.add_argument("--provisioning-url", metavar="URL",
                        help="[provisioning] url in /etc/deskphone/phone.toml: the directory "
                        "the fleet files are served from (the phone fetches <url>/<mac>.toml "
                        "and <url>/deskphone.toml itself); no user:password@ in it")
    parser.add_argument("--user", help="login user to create (with --password-hash and/or "
                                       "--ssh-key)")
    parser.add_argument("--password-hash", metavar="HASH",
                        help="crypt(3) hash for --user, from: openssl passwd -6")
    parser.add_argument("--ssh-key", type=Path, action="append", default=[], metavar="FILE",
                        help="public key file(s) authorised for --user (repeatable)")
    parser.add_argument("--no-ssh", action="store_true", help="do not enable the SSH server")
    parser.add_argument("--first-boot", choices=("auto", "systemd", "cloud-init"),
                        default="auto",
                        help="first-boot mechanism: firstrun.sh via cmdline.txt (bookworm, "
                             "as Imager does) or cloud-init user-data; auto: cloud-init "
                             "when the image has meta-data/user-data")
    parser.add_argument("--config-txt", type=Path, default=REPO / "board" / "config.txt",
                        help="config.txt lines to add (default: board/config.txt, or the "
                             "bundle's)")
    parser.add_argument("--dts", type=Path, default=REPO / "board" / "deskphone.dts",
                        help="overlay source when no --bundle (default: board/deskphone.dts)")
    parser.add_argument("--example-config", type=Path,
                        default=REPO / "firmware" / "etc" / "phone.example.toml",
                        help="phone.toml template when no --bundle")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--dry-run", action="store_true",
                        help="check everything and print every step; write nothing")
    parser.add_argument("--no-verify", action="store_true", help="skip the read-back check")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.inventory is not None and args.mac is None:
        parser.error("--inventory needs --mac (which row is this phone?)")
    return args


def device_settings(args: argparse.Namespace) -> DeviceSettings:
    hostname, mac = args.hostname, None
    if args.inventory is not None:
        try:
            text = args.inventory.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise FlashError(f"cannot read {args.inventory}: {exc.strerror or exc}") from None
        row = inventory_row(text, str(args.inventory), args.mac)
        from_row, mac = settings_from_inventory(row, str(args.inventory))
        hostname = hostname or from_row
    elif args.mac is not None:
        mac = normalise_mac(args.mac)
    if hostname is not None and not HOSTNAME_RE.fullmatch(hostname):
        raise FlashError(f"--hostname {hostname!r}: lower-case letters, digits and '-', "
                         "at most 63, not starting or ending with '-'")
    if args.user is not None and (not USER_RE.fullmatch(args.user) or args.user == "root"):
        raise FlashError(f"--user {args.user!r}: a lower-case letter, then lower-case "
                         "letters, digits or '-' (at most 32); not root")
    if args.password_hash is not None and not CRYPT_RE.fullmatch(args.password_hash):
        raise FlashError("--password-hash is not a crypt(3) hash such as `openssl passwd -6` "
                         "prints ($6$...)")
    if (args.password_hash or args.ssh_key) and not args.user:
        raise FlashError("--password-hash and --ssh-key need --user")
    keys: list[str] = []
    for key_file in args.ssh_key:
        try:
            text = key_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise FlashError(f"cannot read --ssh-key {key_file}: {exc.strerror or exc}") from None
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if not SSH_KEY_RE.fullmatch(line):
                raise FlashError(f"--ssh-key {key_file}: not an OpenSSH public key line "
                                 "(a private key?)")
            keys.append(line)
    return DeviceSettings(hostname=hostname, admin_user=args.user,
                          password_hash=args.password_hash, ssh_keys=tuple(keys),
                          ssh=not args.no_ssh, provisioning_url=args.provisioning_url, mac=mac)


def prepare_payload(args: argparse.Namespace, device: DeviceSettings) -> BootPayload:
    notes: list[str] = []
    bundle = read_bundle(args.bundle) if args.bundle is not None else None
    if bundle is not None:
        overlay = bundle.files["deskphone.dtbo"]
        if "config.txt" in bundle.files and args.config_txt == REPO / "board" / "config.txt":
            lines, lines_source = bundle.files["config.txt"].decode(), f"{args.bundle}:config.txt"
        else:
            lines, lines_source = _read_text(args.config_txt, "config.txt lines"), str(
                args.config_txt)
        example = bundle.files["phone.example.toml"].decode()
    else:
        if device.hostname or device.admin_user or device.provisioning_url:
            raise FlashError("--hostname, --inventory, --user and --provisioning-url are "
                             "applied at first boot by the bundle: give --bundle "
                             "(make dist builds it)")
        overlay = compile_overlay(args.dts)
        lines, lines_source = _read_text(args.config_txt, "config.txt lines"), str(
            args.config_txt)
        example = None
    notes += config_lines_ok(lines, lines_source)
    toml = phone_toml(example, device.provisioning_url, device.mac) if example else None
    if toml is not None and device.provisioning_url is None:
        check_phone_toml(toml, None)
    return BootPayload(lines, overlay, device, bundle, toml, args.first_boot, tuple(notes))


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FlashError(f"{what}: {path} not found") from None
    except OSError as exc:
        raise FlashError(f"{what}: cannot read {path}: {exc.strerror or exc}") from None


def _image_mbr(image: Image) -> bytes:
    with image.open() as source:
        try:
            return source.read(SECTOR)
        except lzma.LZMAError as exc:
            raise FlashError(f"image {image.path} is damaged: {exc}") from None


def confirm(target: Target, image: Image, stdin: TextIO, stdout: TextIO) -> bool:
    stdout.write(f"\nAbout to overwrite {target.description}\nwith {image.path} "
                 f"({_human(image.size)}). Everything on it will be lost.\n"
                 "Type 'yes' to continue: ")
    stdout.flush()
    answer = stdin.readline()
    return answer.strip().lower() == "yes"


def run(argv: Sequence[str], system: System | None = None, stdin: TextIO | None = None,
        stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """The whole command; returns the exit status (tests call this with fakes)."""
    system = system or System()
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    args = parse_args(argv)
    bars = None if args.quiet else stderr

    def say(text: str) -> None:
        stdout.write(("[dry run] " if args.dry_run else "") + text + "\n")
        stdout.flush()

    try:
        image = inspect_image(args.image)
        say(f"image: {image.path} ({'xz, ' if image.compressed else ''}{_human(image.size)} "
            f"raw, {image.size} bytes)")
        if args.sha256:  # a fast fail; in_stream_sha256 checks the read that is written
            check_sha256(image.path, args.sha256, Progress("checksum", image.path.stat().st_size,
                                                           bars))
            say("checksum: SHA-256 matches --sha256")
        target = probe_target(args.target, image, system)
        say(f"target: {target.description}")
        device = device_settings(args)
        payload = prepare_payload(args, device)
        image_mbr = _image_mbr(image)
        boot_partition(image_mbr)  # an image we could not configure is refused before writing
        missing = [tool for tool in ("mtype", "mcopy", "mmd", "mdir") if not shutil.which(tool)]
        if missing:
            raise FlashError(f"{', '.join(missing)} not found: apt-get install mtools")
        for note in payload.notes:
            say(f"warning: {note}")
        if args.dry_run:
            say(f"would write {image.size} bytes to {target.path} (partition table last), "
                "fsync" + ("" if args.no_verify else ", then read back and compare SHA-256")
                + (", all through one locked fd" if target.is_device else ""))
            configure_boot(None, payload, say, mbr=image_mbr)
            say("nothing written")
            return 0
        if not args.yes and not confirm(target, image, stdin, stdout):
            say("not confirmed: nothing written")
            return 1
        # One fd from the first byte written to the last file configured: never reopened by
        # name, locked against udev for a device (open_target, lock_device)
        fd = open_target(target, image, system)
        try:
            with image.open() as source:
                check = in_stream_sha256(source, image.path, args.sha256) if args.sha256 \
                    else None
                digest = write_image(source, fd, image.size,
                                     Progress("writing", image.size, bars), before_head=check)
            if not target.is_device:
                os.ftruncate(fd, image.size)
            say(f"written: {image.size} bytes, SHA-256 {digest}"
                + ("; the image file as read for it matches --sha256" if args.sha256 else ""))
            if not args.no_verify:
                verify_written(fd, target.path, image.size, digest,
                               Progress("verifying", image.size, bars))
                say("verified: the read-back matches")
            part, fs = configure_boot(fd, payload, say)
            assert fs is not None
            if not args.no_verify:
                verify_boot(fd, fs, part, Progress("checking", part.sectors * SECTOR, bars))
                say(f"verified: the boot partition and the {len(fs.written)} files written to "
                    "it read back as written")
            os.fsync(fd)
        finally:
            os.close(fd)
        if target.is_device:
            say(f"done: eject the card (sync; eject {target.path}) and boot the phone with it")
        else:
            say(f"done: {target.path}")
        return 0
    except FlashError as exc:
        stderr.write(f"flash.py: error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        stderr.write("flash.py: interrupted\n")
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    return run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["BootFs", "BootPayload", "Bundle", "DeviceSettings", "FlashError", "HashedFile",
           "Image", "ImageSource", "Partition", "Progress", "System", "Target", "add_firstrun",
           "boot_partition", "check_sha256", "cloud_init_user_data", "configure_boot",
           "device_conf", "hash_range", "in_stream_sha256", "inspect_image", "inventory_row",
           "lock_device", "merge_config_txt", "mounts_on", "open_target", "phone_toml",
           "probe_target", "read_bundle", "read_partitions", "run", "verify_boot",
           "verify_written", "write_all", "write_image", "xz_uncompressed_size"]
