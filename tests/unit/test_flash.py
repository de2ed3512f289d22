"""tools/flash.py on small generated SD-card images: never a real device.

Images are made as Raspberry Pi OS's are laid out (an MBR, a FAT boot partition with
cmdline.txt and config.txt, a second partition) with sfdisk, mkfs.vfat and mtools. Block
devices are faked by a file plus a fake sysfs and mount table handed in through
``flash.System``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import lzma
import os
import re
import shutil
import subprocess
import tomllib
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from tools_loader import STANDIN_CONFIG_TXT, STANDIN_DTS, load_tool

REPO = Path(__file__).resolve().parents[2]
MIB = 1 << 20
BOOT_START = 2048  # sectors: the boot partition at 1 MiB
BOOT_SECTORS = 32768  # 16 MiB: FAT16
IMAGE_SIZE = 20 * MIB
CMDLINE = "console=serial0,115200 console=tty1 root=PARTUUID=0badcafe-02 rootfstype=ext4 rootwait\n"
CONFIG = "# For more options see http://rptl.io/configtxt\ndtparam=audio=on\narm_64bit=1\n"
SIP_PASSWORD = "never-on-the-card-1003"


flash = load_tool("flash")
dist = load_tool("dist")


def need(*tools: str) -> None:
    """Skip without a tool on a developer's machine; in CI a missing tool is a failure."""
    missing = [t for t in tools if shutil.which(t) is None
               and not any(Path(d, t).exists() for d in ("/usr/sbin", "/sbin"))]
    if missing:
        message = f"needs {', '.join(missing)} (tools/bootstrap.sh installs them)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _tool(name: str) -> str:
    found = shutil.which(name) or next(
        (str(Path(d, name)) for d in ("/usr/sbin", "/sbin") if Path(d, name).exists()), name)
    return found


MTOOLS_ENV = {**os.environ, "MTOOLS_SKIP_CHECK": "1", "MTOOLSRC": os.devnull}


def mtype(image: Path, name: str, offset: int = BOOT_START * 512) -> bytes | None:
    result = subprocess.run(["mtype", "-i", f"{image}@@{offset}", f"::{name}"],
                            capture_output=True, env=MTOOLS_ENV, check=False)
    return None if result.returncode else result.stdout


def mcopy_in(image: Path, name: str, data: bytes, tmp: Path) -> None:
    src = tmp / "mcopy-src"
    src.write_bytes(data)
    subprocess.run(["mcopy", "-o", "-i", f"{image}@@{BOOT_START * 512}", str(src), f"::{name}"],
                   check=True, capture_output=True, env=MTOOLS_ENV)


def make_image(path: Path) -> Path:
    """A 20 MiB card image: MBR, FAT16 'bootfs' (cmdline.txt, config.txt), a data partition."""
    need("sfdisk", "mkfs.vfat", "mcopy", "mtype")
    with open(path, "wb") as file:
        file.truncate(IMAGE_SIZE)
    table = (f"label: dos\nstart={BOOT_START}, size={BOOT_SECTORS}, type=c\n"
             f"start={BOOT_START + BOOT_SECTORS}, type=83\n")
    subprocess.run([_tool("sfdisk"), "-q", str(path)], input=table, text=True, check=True,
                   capture_output=True)
    subprocess.run([_tool("mkfs.vfat"), "-F", "16", "-n", "BOOTFS", "-h", str(BOOT_START),
                    "--offset", str(BOOT_START), str(path), str(BOOT_SECTORS // 2)],
                   check=True, capture_output=True)
    # something recognisable in the root partition, to check it arrives intact
    with open(path, "r+b") as file:
        file.seek((BOOT_START + BOOT_SECTORS) * 512)
        file.write(b"rootfs" + bytes(range(256)) * 64)
    mcopy_in(path, "cmdline.txt", CMDLINE.encode(), path.parent)
    mcopy_in(path, "config.txt", CONFIG.encode(), path.parent)
    return path


@pytest.fixture(scope="session")
def base_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image(tmp_path_factory.mktemp("img") / "raspios.img")


@pytest.fixture
def image(base_image: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "raspios.img"
    shutil.copyfile(base_image, copy)
    return copy


@pytest.fixture
def image_xz(image: Path) -> Path:
    out = image.with_name("raspios.img.xz")
    out.write_bytes(lzma.compress(image.read_bytes(), preset=1))
    return out


# -- a bundle made by dist.py from stand-ins for the unit and the overlay




def fake_wheel(path: Path, version: str = "0.1.0") -> Path:
    wheel = path / f"deskphone-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("deskphone/__init__.py", f'__version__ = "{version}"\n')
        archive.writestr(f"deskphone-{version}.dist-info/METADATA",
                         f"Metadata-Version: 2.1\nName: deskphone\nVersion: {version}\n")
    return wheel


def standin_inputs(root: Path) -> object:
    """A repo-shaped directory: stand-in unit and overlay, the real scripts and example."""
    (root / "firmware" / "deskphone").mkdir(parents=True)
    (root / "firmware" / "deskphone" / "__init__.py").write_text('__version__ = "0.1.0"\n')
    (root / "firmware" / "systemd").mkdir(parents=True)
    (root / "firmware" / "systemd" / "deskphone.service").write_text(
        "[Service]\nExecStart=/opt/deskphone/bin/deskphone run -c /etc/deskphone/phone.toml\n")
    (root / "firmware" / "etc").mkdir(parents=True)
    shutil.copyfile(REPO / "firmware" / "etc" / "phone.example.toml",
                    root / "firmware" / "etc" / "phone.example.toml")
    (root / "board").mkdir()
    (root / "board" / "deskphone.dts").write_text(STANDIN_DTS)
    (root / "board" / "config.txt").write_text(STANDIN_CONFIG_TXT)
    shutil.copytree(REPO / "board" / "firstboot", root / "board" / "firstboot")
    return dist.Inputs.from_repo(root)


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need("dtc")
    root = tmp_path_factory.mktemp("repo")
    inputs = standin_inputs(root)
    return dist.build_bundle(inputs, root / "dist", wheel=fake_wheel(root))


INVENTORY = f"""mac,extension,display_name,password,audio.tones
aa:bb:cc:00:00:01,1001,Reception,change-me-1001,
# a comment line
AA-BB-CC-00-00-03,1003,"Lab bench, rack 2",{SIP_PASSWORD},gb
"""


# -- a fake block device


class FakeDisk:
    """A file standing in for /dev/sdz, with the sysfs entries flash.py reads about it.

    Other fake block devices (a second card, loop devices, the system's partition) are
    plain files too; ``system()`` maps their inodes to device numbers, as a real block
    device's stat carries its st_rdev.
    """

    def __init__(self, tmp: Path, size: int = 64 * MIB, ro: bool = False,
                 name: str = "sdz", major_minor: str = "8:240") -> None:
        self.tmp = tmp
        self.sysfs = tmp / "sys"
        self.classes = self.sysfs / "class" / "block"
        self.classes.mkdir(parents=True)
        (self.sysfs / "dev" / "block").mkdir(parents=True)
        self.blocks: dict[Path, int] = {}
        self.disk = self.add_disk(name, major_minor, size=size, ro=ro)
        self.node = tmp / name
        self.rdev = self.blocks[self.node]
        # the system's own disk, sda, with / on sda2
        sda = self.sysfs / "devices" / "pci0" / "block" / "sda"
        (sda / "sda2" / "holders").mkdir(parents=True)
        (sda / "sda2" / "partition").write_text("2\n")
        (sda / "size").write_text("1000000000\n")
        (self.classes / "sda").symlink_to(sda)
        (self.classes / "sda2").symlink_to(sda / "sda2")
        (self.sysfs / "dev" / "block" / "8:2").symlink_to(sda / "sda2")

    def add_disk(self, name: str, major_minor: str, size: int = 64 * MIB, ro: bool = False,
                 parts: int = 2) -> Path:
        """A removable disk ``name`` with ``parts`` partitions, and its node in tmp."""
        disk = self.sysfs / "devices" / "platform" / "usb1" / "block" / name
        (disk / "device").mkdir(parents=True)
        (disk / "holders").mkdir()
        (disk / "size").write_text(f"{size // 512}\n")
        (disk / "ro").write_text("1\n" if ro else "0\n")
        (disk / "removable").write_text("1\n")
        (disk / "device" / "vendor").write_text("Generic \n")
        (disk / "device" / "model").write_text("STORAGE DEVICE  \n")
        (self.classes / name).symlink_to(disk)
        major, minor = (int(n) for n in major_minor.split(":"))
        (self.sysfs / "dev" / "block" / major_minor).symlink_to(disk)
        for number in range(1, parts + 1):
            part = disk / f"{name}{number}"
            (part / "holders").mkdir(parents=True)
            (part / "partition").write_text(f"{number}\n")
            (self.classes / part.name).symlink_to(part)
            (self.sysfs / "dev" / "block" / f"{major}:{minor + number}").symlink_to(part)
        self.block(self.tmp / name, os.makedev(major, minor))
        return disk

    def add_loop(self, name: str, minor: int, backing: Path | str) -> Path:
        """/dev/loop<minor> attached to ``backing`` (virtual, no partitions)."""
        loop = self.sysfs / "devices" / "virtual" / "block" / name
        (loop / "loop").mkdir(parents=True)
        (loop / "holders").mkdir()
        (loop / "loop" / "backing_file").write_text(f"{backing}\n")
        (loop / "size").write_text(f"{64 * MIB // 512}\n")
        (loop / "ro").write_text("0\n")
        (loop / "removable").write_text("0\n")
        (self.classes / name).symlink_to(loop)
        (self.sysfs / "dev" / "block" / f"7:{minor}").symlink_to(loop)
        return self.block(self.tmp / name, os.makedev(7, minor))

    def block(self, path: Path, rdev: int) -> Path:
        """``path`` (created empty if need be) passes for the block device ``rdev``."""
        if not path.exists():
            path.write_bytes(b"")
        self.blocks[path] = rdev
        return path

    def system(self, mounts: str = "/dev/sda2 / ext4 rw 0 0\n",
               root_dev: int = os.makedev(8, 2), **changes: object) -> object:
        ids = {(st.st_dev, st.st_ino): rdev for path, rdev in self.blocks.items()
               for st in [path.stat()]}
        return flash.System(sysfs=self.sysfs, mounts=mounts, root_dev=root_dev,
                            block_rdev=lambda st: ids.get((st.st_dev, st.st_ino)),
                            lock_wait=0.3, **changes)


def run_flash(*args: object, system: object | None = None, stdin: str = "") -> tuple[
        int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = flash.run([str(a) for a in args], system=system or flash.System(mounts=""),
                       stdin=io.StringIO(stdin), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


@contextlib.contextmanager
def open_rw(path: Path) -> Iterator[int]:
    fd = os.open(path, os.O_RDWR)
    try:
        yield fd
    finally:
        os.close(fd)


def boot_files(target: Path) -> dict[str, bytes]:
    """Every file on the target's boot partition, copied out with mcopy -s."""
    out = target.parent / "boot-out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    subprocess.run(["mcopy", "-s", "-n", "-i", f"{target}@@{BOOT_START * 512}", "::*", str(out)],
                   check=True, capture_output=True, env=MTOOLS_ENV)
    return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}


def outside_boot(data: bytes) -> bytes:
    """The image without its boot partition: what configuring must leave alone."""
    start, end = BOOT_START * 512, (BOOT_START + BOOT_SECTORS) * 512
    return data[:start] + data[end:]


# --------------------------------------------------------------------------------------
# The whole run, on image files


def test_write_verify_configure_and_read_the_boot_files_back(
        image: Path, bundle: Path, tmp_path: Path) -> None:
    target = tmp_path / "card.img"
    inventory = tmp_path / "inventory.csv"
    inventory.write_text(INVENTORY)
    key = tmp_path / "id_ed25519.pub"
    key.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDeskphoneTestKeyOnly admin@bench\n")
    password_hash = "$6$saltsalt$" + "a" * 86
    status, out, err = run_flash(
        image, target, "--bundle", bundle, "--inventory", inventory, "--mac", "aabbcc000003",
        "--provisioning-url", "https://prov.example.com/phones/{mac}/", "--user", "admin",
        "--password-hash", password_hash, "--ssh-key", key, "--yes", "--quiet",
        "--sha256", hashlib.sha256(image.read_bytes()).hexdigest())
    assert status == 0, err
    assert err == ""
    assert "verified: the read-back matches" in out
    written = target.read_bytes()
    assert len(written) == IMAGE_SIZE
    assert outside_boot(written) == outside_boot(image.read_bytes())

    files = boot_files(target)
    config = files["config.txt"].decode()
    assert config.startswith(CONFIG)  # the image's own lines stay first
    assert config.count(flash.MARK_BEGIN) == 1 and config.count(flash.MARK_END) == 1
    assert STANDIN_CONFIG_TXT.strip() in config
    cmdline = files["cmdline.txt"].decode()
    assert cmdline.count("\n") == 1
    assert cmdline == CMDLINE.rstrip("\n") + " " + " ".join(flash.FIRSTRUN_ARGS) + "\n"
    assert files["ssh"] == b""
    assert files["userconf.txt"] == f"admin:{password_hash}\n".encode()
    assert files["firstrun.sh"] == (REPO / "board" / "firstboot" / "firstrun.sh").read_bytes()
    members = flash.read_bundle(bundle).files
    assert files["overlays/deskphone.dtbo"] == members["deskphone.dtbo"]
    for name, data in members.items():
        assert files[f"deskphone/{name}"] == data, name
    assert files["deskphone/device.conf"].decode().splitlines()[1:] == [
        "hostname=deskphone-1003", "admin_user=admin", f"admin_password_hash={password_hash}",
        "ssh=1"]
    assert files["deskphone/authorized_keys"] == key.read_bytes()

    from deskphone.config.load import parse_config

    phone = files["deskphone/phone.toml"].decode()
    config_obj = parse_config(phone)
    assert config_obj.provisioning.url == "https://prov.example.com/phones/aabbcc000003/"
    assert tomllib.loads(phone)["account"] == tomllib.loads(
        (REPO / "firmware" / "etc" / "phone.example.toml").read_text())["account"]
    # the inventory's SIP password goes nowhere near the card
    assert SIP_PASSWORD.encode() not in written
    assert all(SIP_PASSWORD.encode() not in data for data in files.values())


def test_an_xz_image_is_streamed_and_checked_against_its_own_hash(
        image: Path, image_xz: Path, tmp_path: Path) -> None:
    target = tmp_path / "card.img"
    status, out, err = run_flash(image_xz, target, "--yes", "--quiet", "--config-txt",
                                 _config_txt(tmp_path), "--dts", _dts(tmp_path), "--sha256",
                                 hashlib.sha256(image_xz.read_bytes()).hexdigest())
    assert status == 0, err
    assert f"(xz, 21.0 MB raw, {IMAGE_SIZE} bytes)" in out
    assert outside_boot(target.read_bytes()) == outside_boot(image.read_bytes())
    files = boot_files(target)
    assert "dtoverlay=deskphone" in files["config.txt"].decode()
    assert files["overlays/deskphone.dtbo"][:4] == b"\xd0\x0d\xfe\xed"  # FDT magic
    assert files["cmdline.txt"].decode() == CMDLINE  # no bundle: no first-boot hook
    assert "firstrun.sh" not in files
    assert "no --bundle: the firmware is not installed at first boot" in out


def _config_txt(tmp: Path) -> Path:
    path = tmp / "config.txt"
    path.write_text(STANDIN_CONFIG_TXT)
    return path


def _dts(tmp: Path) -> Path:
    path = tmp / "deskphone.dts"
    path.write_text(STANDIN_DTS)
    return path


def test_an_existing_larger_target_file_is_cut_to_the_image(image: Path, tmp_path: Path) -> None:
    target = tmp_path / "card.img"
    target.write_bytes(b"\xff" * (IMAGE_SIZE + MIB))
    status, _, err = run_flash(image, target, "--yes", "--quiet", "--config-txt",
                               _config_txt(tmp_path), "--dts", _dts(tmp_path))
    assert status == 0, err
    assert target.stat().st_size == IMAGE_SIZE


def test_configuring_twice_changes_nothing_the_second_time(
        image: Path, bundle: Path, tmp_path: Path) -> None:
    payload = flash.BootPayload(STANDIN_CONFIG_TXT, b"dtbo", flash.DeviceSettings(),
                                flash.read_bundle(bundle), None, "systemd")
    with open_rw(image) as fd:
        flash.configure_boot(fd, payload, lambda _: None)
    first = boot_files(image)
    with open_rw(image) as fd:
        flash.configure_boot(fd, payload, lambda _: None)
    second = boot_files(image)
    assert first == second
    assert second["config.txt"].decode().count(flash.MARK_BEGIN) == 1
    assert second["cmdline.txt"].decode().count("systemd.run=") == 1


def test_cloud_init_images_get_user_data_instead_of_the_cmdline_hook(
        image: Path, bundle: Path, tmp_path: Path) -> None:
    mcopy_in(image, "meta-data", b"instance-id: rpi-imager-1\n", tmp_path)
    target = tmp_path / "card.img"
    key = tmp_path / "k.pub"
    key.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey admin@bench\n")
    status, out, err = run_flash(image, target, "--bundle", bundle, "--hostname", "phone-7",
                                 "--user", "admin", "--ssh-key", key, "--yes", "--quiet")
    assert status == 0, err
    files = boot_files(target)
    user_data = files["user-data"].decode()
    assert user_data.startswith("#cloud-config\n")
    assert "hostname: phone-7" in user_data
    assert "- name: admin" in user_data and "lock_passwd: true" in user_data
    assert '- "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey admin@bench"' in user_data
    assert "deskphone-firstboot.sh" in user_data
    assert files["meta-data"] == b"instance-id: rpi-imager-1\n"
    assert files["cmdline.txt"].decode() == CMDLINE
    assert "firstrun.sh" not in files


# --------------------------------------------------------------------------------------
# Write and verify


class Chunks(io.RawIOBase):
    """A source that gives ``good`` bytes, then raises ``error``."""

    def __init__(self, good: int, error: BaseException) -> None:
        self.left, self.error = good, error

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self.left <= 0:
            raise self.error
        n = min(len(buffer), self.left, flash.CHUNK)
        memoryview(buffer)[:n] = b"\x5a" * n
        self.left -= n
        return n


def quiet(total: int) -> object:
    return flash.Progress("test", total, None)


def test_verify_fails_on_a_corrupted_byte(image: Path, tmp_path: Path) -> None:
    target = tmp_path / "card.img"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        with open(image, "rb") as source:
            digest = flash.write_image(source, fd, IMAGE_SIZE, quiet(IMAGE_SIZE))
    finally:
        os.close(fd)
    assert digest == hashlib.sha256(image.read_bytes()).hexdigest()
    fd = os.open(target, os.O_RDWR)
    try:
        flash.verify_written(fd, target, IMAGE_SIZE, digest, quiet(IMAGE_SIZE))  # intact
        byte = os.pread(fd, 1, 12345678)
        os.pwrite(fd, bytes([byte[0] ^ 0x01]), 12345678)
        with pytest.raises(flash.FlashError, match=r"^verify failed: what was read back from "
                           r".*differs from what was written"):
            flash.verify_written(fd, target, IMAGE_SIZE, digest, quiet(IMAGE_SIZE))
    finally:
        os.close(fd)


def test_verify_fails_on_a_target_shorter_than_the_image(tmp_path: Path) -> None:
    target = tmp_path / "short.img"
    target.write_bytes(b"x" * 1000)
    fd = os.open(target, os.O_RDONLY)
    try:
        with pytest.raises(flash.FlashError, match="ends after 1000 of 2000 bytes"):
            flash.verify_written(fd, target, 2000, "0" * 64, quiet(2000))
    finally:
        os.close(fd)


def test_an_interrupted_write_says_so_and_leaves_no_partition_table(tmp_path: Path) -> None:
    target = tmp_path / "card.img"
    target.write_bytes(b"\x55\xaa" * 4096)  # an old card's first sectors
    fd = os.open(target, os.O_WRONLY)
    try:
        with pytest.raises(flash.FlashError, match=r"^interrupted after writing 4194304 of "
                           r"8388608 bytes: the card is not usable as it is; write it again"):
            flash.write_image(Chunks(4 * MIB, KeyboardInterrupt()), fd, 8 * MIB, quiet(8 * MIB))
    finally:
        os.close(fd)
    data = target.read_bytes()
    assert data[:flash.HEAD] == bytes(flash.HEAD)  # the head is written last: still zeros
    assert data[flash.HEAD:4 * MIB] == b"\x5a" * (4 * MIB - flash.HEAD)


def test_a_read_error_mid_image_is_a_clear_error(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "card.img", os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(flash.FlashError, match=r"^write failed after 4194304 of"):
            flash.write_image(Chunks(4 * MIB, OSError(errno.EIO, "Input/output error")), fd,
                              8 * MIB, quiet(8 * MIB))
    finally:
        os.close(fd)


def test_a_full_device_is_a_clear_error() -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    fd = os.open("/dev/full", os.O_WRONLY)
    try:
        with pytest.raises(flash.FlashError, match=r"^write failed after 0 of 1048576 bytes: "
                           r"the device is full \(smaller than the image\?\)"):
            flash.write_image(io.BytesIO(bytes(MIB)), fd, MIB, quiet(MIB))
    finally:
        os.close(fd)


def test_a_short_write_that_makes_no_progress_fails() -> None:
    calls: list[int] = []

    def write(fd: int, data: bytes | memoryview, offset: int) -> int:
        calls.append(len(data))
        return 3 if len(calls) == 1 else 0

    with pytest.raises(flash.FlashError, match="short write: the device took no more bytes "
                       "at offset 3"):
        flash.write_all(-1, b"0123456789", 0, write)
    assert calls == [10, 7]


def test_a_truncated_image_is_reported(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "card.img", os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(flash.FlashError, match="the image ended after 1000 of 5000 bytes"):
            flash.write_image(io.BytesIO(b"x" * 1000), fd, 5000, quiet(5000))
    finally:
        os.close(fd)


def test_open_errors_in_words(tmp_path: Path) -> None:
    path = tmp_path / "sdz"
    assert "read-only" in str(flash.open_error(OSError(errno.EROFS, "x"), path))
    assert "permission denied" in str(flash.open_error(OSError(errno.EACCES, "x"), path))
    assert "busy: mounted" in str(flash.open_error(OSError(errno.EBUSY, "x"), path))
    assert "no medium" in str(flash.open_error(OSError(errno.ENOMEDIUM, "x"), path))


# --------------------------------------------------------------------------------------
# Refusals, before anything is written


def test_a_bad_checksum_stops_before_writing(image: Path, tmp_path: Path) -> None:
    target = tmp_path / "card.img"
    status, _, err = run_flash(image, target, "--yes", "--quiet", "--sha256", "ab" * 32)
    assert status == 1
    assert re.fullmatch(r"flash\.py: error: checksum mismatch for .*raspios\.img: SHA-256 is "
                        r"[0-9a-f]{64}, expected (ab){32} \(a damaged or different download\); "
                        r"nothing was written\n", err)
    assert not target.exists()


def test_an_image_without_a_fat_partition_is_refused_before_writing(tmp_path: Path) -> None:
    plain = tmp_path / "plain.img"
    plain.write_bytes(bytes(MIB))
    target = tmp_path / "card.img"
    status, _, err = run_flash(plain, target, "--yes", "--config-txt", _config_txt(tmp_path),
                               "--dts", _dts(tmp_path))
    assert (status, err) == (1, "flash.py: error: no MBR partition table (boot signature 55 aa "
                                "missing)\n")
    assert not target.exists()


def test_a_missing_image_is_an_error(tmp_path: Path) -> None:
    status, _, err = run_flash(tmp_path / "nope.img.xz", tmp_path / "card.img", "--yes")
    assert (status, err) == (1, f"flash.py: error: image {tmp_path / 'nope.img.xz'} not found\n")


def test_a_device_smaller_than_the_image_is_refused(image: Path, tmp_path: Path) -> None:
    disk = FakeDisk(tmp_path, size=16 * MIB)
    status, _, err = run_flash(image, disk.node, "--yes", system=disk.system())
    assert status == 1
    assert err == (f"flash.py: error: {disk.node} is too small: it holds 16.8 MB (16777216 "
                   f"bytes), the image needs 21.0 MB ({IMAGE_SIZE} bytes)\n")
    assert disk.node.read_bytes() == b""


def test_a_read_only_device_is_refused(image: Path, tmp_path: Path) -> None:
    disk = FakeDisk(tmp_path, ro=True)
    status, _, err = run_flash(image, disk.node, "--yes", system=disk.system())
    assert status == 1
    assert "is read-only (an SD card's lock switch" in err
    assert disk.node.read_bytes() == b""


def test_a_mounted_device_is_refused(image: Path, tmp_path: Path) -> None:
    disk = FakeDisk(tmp_path)
    mounts = "/dev/sda2 / ext4 rw 0 0\n/dev/sdz1 /media/me/boot\\040fs vfat rw 0 0\n"
    status, _, err = run_flash(image, disk.node, "--yes", system=disk.system(mounts=mounts))
    assert status == 1
    assert err == (f"flash.py: error: {disk.node} is in use: /dev/sdz1 on /media/me/boot fs; "
                   "unmount it first (udisksctl unmount -b DEVICE, or umount)\n")


def test_a_device_held_by_device_mapper_is_refused(image: Path, tmp_path: Path) -> None:
    disk = FakeDisk(tmp_path)
    (disk.disk / "sdz2" / "holders" / "dm-0").mkdir()
    status, _, err = run_flash(image, disk.node, "--yes", system=disk.system())
    assert status == 1
    assert "is in use by dm-0" in err


def test_the_system_disk_is_refused(image: Path, tmp_path: Path) -> None:
    disk = FakeDisk(tmp_path)
    # "/" on sdz1 (8:241): the fake card is the running system's disk
    status, _, err = run_flash(image, disk.node, "--yes",
                               system=disk.system(mounts="", root_dev=os.makedev(8, 241)))
    assert status == 1
    assert err == (f"flash.py: error: {disk.node} is the disk the running system is on: "
                   "refusing to overwrite it\n")


def test_a_partition_is_refused(image: Path, tmp_path: Path) -> None:
    disk = FakeDisk(tmp_path)
    part = disk.block(tmp_path / "sdz1", os.makedev(8, 241))
    status, _, err = run_flash(image, part, "--yes", system=disk.system())
    assert status == 1
    assert "is a partition (sdz1): give the whole device, /dev/sdz" in err


def test_the_image_itself_is_not_a_target(image: Path) -> None:
    status, _, err = run_flash(image, image, "--yes")
    assert (status, err) == (1, f"flash.py: error: {image} is the image itself\n")


def test_a_fake_device_is_written_after_confirmation(image: Path, tmp_path: Path) -> None:
    disk = FakeDisk(tmp_path)
    status, out, err = run_flash(image, disk.node, "--quiet", "--config-txt",
                                 _config_txt(tmp_path), "--dts", _dts(tmp_path),
                                 system=disk.system(), stdin="yes\n")
    assert status == 0, err
    assert (f"About to overwrite {disk.node}: Generic STORAGE DEVICE, 67.1 MB (67108864 bytes, "
            "removable)") in out
    assert f"eject {disk.node}" in out
    assert outside_boot(disk.node.read_bytes()) == outside_boot(image.read_bytes())


def test_declining_the_prompt_writes_nothing(image: Path, tmp_path: Path) -> None:
    disk = FakeDisk(tmp_path)
    status, out, _ = run_flash(image, disk.node, "--config-txt", _config_txt(tmp_path),
                               "--dts", _dts(tmp_path), system=disk.system(), stdin="no\n")
    assert status == 1
    assert "Type 'yes' to continue" in out
    assert "not confirmed: nothing written" in out
    assert disk.node.read_bytes() == b""


def test_dry_run_prints_every_step_and_writes_nothing(
        image_xz: Path, bundle: Path, tmp_path: Path) -> None:
    disk = FakeDisk(tmp_path)
    status, out, err = run_flash(image_xz, disk.node, "--bundle", bundle, "--hostname",
                                 "desk-1", "--provisioning-url", "https://p.example/{mac}",
                                 "--dry-run", system=disk.system())
    assert status == 0, err
    assert disk.node.read_bytes() == b""
    lines = out.splitlines()
    assert all(line.startswith("[dry run] ") for line in lines)
    for step in ("image: ", "target: ", f"would write {IMAGE_SIZE} bytes to",
                 "boot partition: #1 (type 0x0c) at byte 1048576", "boot:config.txt",
                 "boot:overlays/deskphone.dtbo", "boot:ssh", "boot:deskphone/MANIFEST",
                 "boot:deskphone/device.conf", "boot:deskphone/phone.toml", "boot:firstrun.sh",
                 "boot:cmdline.txt: + systemd.run=/boot/firstrun.sh", "nothing written"):
        assert any(step in line for line in lines), step
    assert "Type 'yes'" not in out


def test_options_are_checked_before_writing(image: Path, bundle: Path, tmp_path: Path) -> None:
    target = tmp_path / "card.img"
    private = tmp_path / "id_ed25519"
    private.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE=\n")
    inventory = tmp_path / "inventory.csv"
    inventory.write_text(INVENTORY)
    cases = {
        ("--hostname", "Desk_1"): "--hostname 'Desk_1': lower-case letters",
        ("--user", "root"): "--user 'root'",
        ("--user", "admin", "--password-hash", "secret"): "--password-hash is not a crypt(3)",
        ("--password-hash", "$6$a$b"): "--password-hash and --ssh-key need --user",
        ("--user", "admin", "--ssh-key", str(private)): "not an OpenSSH public key line",
        ("--inventory", str(inventory), "--mac", "aa:bb:cc:00:00:09"): "no row for MAC",
        ("--mac", "zz"): "--mac 'zz'",
        ("--provisioning-url", "ftp://x/"): "the phone.toml for the card is not valid",
    }
    for args, message in cases.items():
        status, _, err = run_flash(image, target, "--bundle", bundle, "--yes", "--quiet", *args)
        assert status == 1, args
        assert message in err, (args, err)
        assert not target.exists(), args
    status, _, err = run_flash(image, target, "--hostname", "desk-1", "--yes")
    assert status == 1 and "give --bundle" in err


def test_a_tampered_bundle_is_refused(bundle: Path, tmp_path: Path) -> None:
    unpacked = tmp_path / "bundle"
    unpacked.mkdir()
    for name, data in flash.read_bundle(bundle).files.items():
        (unpacked / name).write_bytes(data)
    flash.read_bundle(unpacked)  # an unpacked directory is a bundle too
    (unpacked / "deskphone.service").write_text("[Service]\nExecStart=/bin/evil\n")
    with pytest.raises(flash.FlashError, match="deskphone.service does not match its MANIFEST"):
        flash.read_bundle(unpacked)
    (unpacked / "deskphone.service").unlink()
    with pytest.raises(flash.FlashError, match="lacks deskphone.service"):
        flash.read_bundle(unpacked)


# --------------------------------------------------------------------------------------
# The pieces


def test_xz_size_comes_from_the_index_across_streams_and_padding(tmp_path: Path) -> None:
    one, two = os.urandom(300_000), bytes(2 * MIB)
    path = tmp_path / "multi.img.xz"
    path.write_bytes(lzma.compress(one) + bytes(8) + lzma.compress(two, preset=0))
    image = flash.inspect_image(path)
    assert (image.compressed, image.size) == (True, len(one) + len(two))
    with image.open() as source:
        assert source.read() == one + two  # lzma.open() would stop at the padding
    path.write_bytes(lzma.compress(one)[:-20])
    with pytest.raises(flash.FlashError, match=r"is not a valid \.xz file"):
        flash.inspect_image(path)


def test_a_damaged_xz_stream_is_reported_while_writing(tmp_path: Path) -> None:
    data = bytearray(lzma.compress(os.urandom(200_000)))
    data[len(data) // 2] ^= 0xFF
    path = tmp_path / "bad.img.xz"
    path.write_bytes(bytes(data))
    image = flash.inspect_image(path)  # the index is intact
    fd = os.open(tmp_path / "card.img", os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(flash.FlashError, match="the image is damaged"), image.open() as src:
            flash.write_image(src, fd, image.size, quiet(image.size))
    finally:
        os.close(fd)


def test_progress_shows_bytes_rate_and_time_left_at_most_five_times_a_second() -> None:
    now = [100.0]
    stream = io.StringIO()
    bar = flash.Progress("writing", 100_000_000, stream, clock=lambda: now[0], live=True)
    for t, done in ((100.5, 10_000_000), (100.6, 11_000_000), (100.65, 12_000_000),
                    (101.0, 20_000_000)):
        now[0] = t
        bar.update(done)
    shown = stream.getvalue().split("\r")[1:]
    assert len(shown) == 2  # 100.6 and 100.65 fell within 0.2 s of the last update
    assert "10.0 MB / 100.0 MB" in shown[0] and "20.0 MB/s" in shown[0]
    assert "0:05 left" in shown[0]  # 90 MB more at 20 MB/s
    now[0] = 105.0
    bar.done = 100_000_000
    bar.finish()
    assert stream.getvalue().endswith("100.0 MB / 100.0 MB    20.0 MB/s  0:05 total\x1b[K\n")
    logged = io.StringIO()
    off_tty = flash.Progress("writing", 10, logged, clock=lambda: 0.0)
    off_tty.update(5)
    assert logged.getvalue() == ""  # a log gets the final line only


def test_config_txt_block_is_replaced_not_repeated() -> None:
    once = flash.merge_config_txt(CONFIG, "dtparam=i2c_arm=on\n")
    assert once == (CONFIG + f"\n{flash.MARK_BEGIN}\n# added by deskphone's tools/flash.py; "
                    "running it again replaces this block\ndtparam=i2c_arm=on\n"
                    f"{flash.MARK_END}\n")
    twice = flash.merge_config_txt(once, "dtparam=i2c_arm=on\nenable_uart=1\n")
    assert twice.count(flash.MARK_BEGIN) == 1
    assert twice.startswith(CONFIG) and "enable_uart=1" in twice
    assert flash.merge_config_txt("", "x=1").startswith(flash.MARK_BEGIN)


def test_cmdline_stays_one_line_with_one_hook() -> None:
    hooked = flash.add_firstrun(CMDLINE)
    assert hooked == CMDLINE.rstrip("\n") + " " + " ".join(flash.FIRSTRUN_ARGS) + "\n"
    assert flash.add_firstrun(hooked) == hooked
    assert flash.add_firstrun("a b\r\nstray second line\n") == "a b " + " ".join(
        flash.FIRSTRUN_ARGS) + "\n"


def test_partition_tables() -> None:
    mbr = bytearray(512)
    with pytest.raises(flash.FlashError, match="boot signature 55 aa missing"):
        flash.read_partitions(bytes(mbr))
    mbr[510:512] = b"\x55\xaa"
    mbr[0x1BE + 4] = 0xEE
    with pytest.raises(flash.FlashError, match="a GPT disk"):
        flash.read_partitions(bytes(mbr))
    mbr[0x1BE + 4] = 0x83
    mbr[0x1BE + 8:0x1BE + 16] = (2048).to_bytes(4, "little") + (100).to_bytes(4, "little")
    with pytest.raises(flash.FlashError, match="no FAT partition"):
        flash.boot_partition(bytes(mbr))
    mbr[0x1CE + 4] = 0x0C
    mbr[0x1CE + 8:0x1CE + 16] = (8192).to_bytes(4, "little") + (100).to_bytes(4, "little")
    assert flash.boot_partition(bytes(mbr)) == flash.Partition(2, 0x0C, 8192, 100)
    assert flash.boot_partition(bytes(mbr)).offset == 8192 * 512


def test_the_provisioning_url_lands_in_the_provisioning_section() -> None:
    example = (REPO / "firmware" / "etc" / "phone.example.toml").read_text()
    text = flash.phone_toml(example, "https://prov.example.com/{mac}", "aabbcc000003")
    assert tomllib.loads(text)["provisioning"]["url"] == "https://prov.example.com/aabbcc000003"
    again = flash.phone_toml(text, "https://other.example.com/", None)
    assert tomllib.loads(again)["provisioning"]["url"] == "https://other.example.com/"
    assert len(re.findall(r"^url = ", again, re.MULTILINE)) == 1
    bare = flash.phone_toml('[account]\nuser = "1"\npassword = "p"\ndomain = "pbx"\n',
                            "http://p.example/{mac}", None)
    assert tomllib.loads(bare)["provisioning"] == {"url": "http://p.example/{mac}"}
    assert flash.phone_toml(example, None, "aabbcc000003") == example


def test_inventory_rows_give_hostname_and_mac_never_the_password() -> None:
    row = flash.inventory_row(INVENTORY, "inv.csv", "aa-bb-cc-00-00-03")
    assert flash.settings_from_inventory(row, "inv.csv") == ("deskphone-1003", "aabbcc000003")
    with pytest.raises(flash.FlashError, match="no 'mac' column"):
        flash.inventory_row("extension,password\n1,2\n", "inv.csv", "aabbcc000003")
    with pytest.raises(flash.FlashError, match="does not make a hostname"):
        flash.settings_from_inventory({"mac": "aabbcc000003", "extension": "1 003"}, "inv.csv")
    conf = flash.device_conf(flash.DeviceSettings(hostname="deskphone-1003"))
    assert SIP_PASSWORD not in conf


def test_firstrun_survives_the_imager_fixup_rewrite(tmp_path: Path) -> None:
    """raspberrypi-sys-mods' initramfs imager_fixup cuts firstrun.sh at its first line
    matching rm.*firstrun.sh$ and appends its own clean-up: the install must come first."""
    script = (REPO / "board" / "firstboot" / "firstrun.sh").read_text()
    lines = script.splitlines()
    cut = next(i for i, line in enumerate(lines) if re.search(r"rm.*firstrun\.sh$", line))
    assert lines[cut] == "rm -f /boot/firmware/firstrun.sh /boot/firstrun.sh"
    kept = "\n".join(lines[:cut])
    assert "deskphone-firstboot.sh" in kept and "sed -i 's| systemd\\.run.*||g'" in kept
    fixed = tmp_path / "firstrun.sh"
    fixed.write_text(kept + "\nrm -f /boot/firmware/firstrun.sh\n"
                     "sed -i 's| systemd\\.[^ ]*||g' /boot/firmware/cmdline.txt\nexit 0\n")
    subprocess.run(["bash", "-n", str(fixed)], check=True)


# --------------------------------------------------------------------------------------
# One fd, locked, from the first byte written to the last file configured


def _logging_mtools(tmp: Path, locked: Path) -> tuple[Path, Path]:
    """mtools wrappers that log their -i argument and whether ``locked`` is flock()ed, as
    udev would find it (flock -n -s on its own open of the device), then run the real tool."""
    bindir, log = tmp / "bin", tmp / "mtools.log"
    bindir.mkdir()
    for tool in ("mtype", "mcopy", "mmd", "mdir"):
        script = bindir / tool
        script.write_text(
            "#!/bin/sh\n"
            f"state=locked; flock -n -s '{locked}' true && state=unlocked\n"
            f"printf '%s %s %s\\n' {tool} \"$state\" \"$2\" >> '{log}'\n"
            f"exec {shutil.which(tool)} \"$@\"\n")
        script.chmod(0o755)
    return bindir, log


def test_the_device_stays_locked_and_mtools_gets_the_fd_not_the_name(
        image: Path, bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    need("flock")
    disk = FakeDisk(tmp_path)
    bindir, log = _logging_mtools(tmp_path, disk.node)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    status, out, err = run_flash(image, disk.node, "--bundle", bundle, "--yes", "--quiet",
                                 system=disk.system())
    assert status == 0, err
    calls = log.read_text().splitlines()
    assert len(calls) > 20  # every mcopy, its read-back, and the final read-back
    for call in calls:
        tool, state, spec = call.split(" ", 2)
        # udev's LOCK_SH|LOCK_NB fails all along: it neither probes nor re-reads the table
        assert state == "locked", call
        assert re.fullmatch(r"/proc/self/fd/\d+@@1048576", spec), call
    assert "verified: the boot partition and the" in out
    # the files mtools wrote are read back once the cache is dropped, after the last write
    files = boot_files(disk.node)
    assert files["cmdline.txt"].decode().endswith(" ".join(flash.FIRSTRUN_ARGS) + "\n")
    last_write = max(i for i, c in enumerate(calls) if c.startswith("mcopy"))
    after = calls[last_write + 1:]
    assert all(c.startswith("mtype ") for c in after)
    assert len(after) >= 1 + len(files)  # its own read-back, then every file again
    # and the lock went with the fd
    subprocess.run(["flock", "-n", "-x", str(disk.node), "true"], check=True)


def test_a_device_someone_else_has_locked_is_not_written(image: Path, tmp_path: Path) -> None:
    import fcntl

    disk = FakeDisk(tmp_path)
    with open(disk.node, "rb") as other:
        fcntl.flock(other, fcntl.LOCK_SH)  # as udev holds it while probing
        status, _, err = run_flash(image, disk.node, "--yes", "--quiet", "--config-txt",
                                   _config_txt(tmp_path), "--dts", _dts(tmp_path),
                                   system=disk.system())
    assert status == 1
    assert err == (f"flash.py: error: {disk.node} is locked by another program (udev probing "
                   "it, or a partitioning or imaging tool): nothing written; close it or try "
                   "again in a moment\n")
    assert disk.node.read_bytes() == b""


def test_each_file_written_is_read_back_after_configuring(
        image: Path, bundle: Path, tmp_path: Path) -> None:
    payload = flash.BootPayload(STANDIN_CONFIG_TXT, b"dtbo", flash.DeviceSettings(),
                                flash.read_bundle(bundle), None, "systemd")
    with open_rw(image) as fd:
        part, fs = flash.configure_boot(fd, payload, lambda _: None)
        assert fs is not None
        assert set(fs.written) >= {"config.txt", "cmdline.txt", "firstrun.sh", "ssh",
                                   "overlays/deskphone.dtbo", "deskphone/MANIFEST"}
        flash.verify_boot(fd, fs, part, quiet(part.sectors * 512))  # as written: passes
        fs.written["deskphone/device.conf"] += b"x"  # what the card holds is not what we meant
        with pytest.raises(flash.FlashError, match=r"^verify failed: deskphone/device\.conf on "
                           "the boot partition reads back different"):
            flash.verify_boot(fd, fs, part, quiet(part.sectors * 512))


def _losetup(backing: Path) -> str:
    """Attach ``backing`` (a file under tmp) to a free loop device; skip where that cannot be
    done (not root, no loop driver, a container without /dev/loop*)."""
    losetup = _tool("losetup")
    if os.geteuid() != 0 or not Path(losetup).exists():
        pytest.skip("needs root and losetup for a loop device")
    result = subprocess.run([losetup, "--find", "--show", str(backing)], capture_output=True,
                            text=True, check=False)
    loop = result.stdout.strip()
    if result.returncode or not re.fullmatch(r"/dev/loop\d+", loop):
        pytest.skip(f"no loop device: {result.stderr.strip()}")
    sysfs_backing = Path("/sys/block", Path(loop).name, "loop", "backing_file")
    if sysfs_backing.read_text().strip() != str(backing):  # pragma: no cover - a race
        subprocess.run([losetup, "-d", loop], check=False)
        pytest.skip(f"{loop} is not attached to {backing}")
    return loop


def test_a_real_loop_device_end_to_end(image: Path, tmp_path: Path) -> None:
    """A real block device, safely: a loop device over a file in tmp. O_EXCL, flock, mtools on
    /proc/self/fd/N of a block device, BLKFLSBUF, and the real sysfs's loop checks."""
    backing = tmp_path / "card-behind-loop.img"
    backing.write_bytes(bytes(IMAGE_SIZE + MIB))
    loop = _losetup(backing)
    try:
        status, out, err = run_flash(image, loop, "--yes", "--quiet", "--config-txt",
                                     _config_txt(tmp_path), "--dts", _dts(tmp_path),
                                     system=flash.System())
        assert status == 0, err
        assert "verified: the boot partition" in out
        # the file behind it is refused as a target, and so is a loop over the image itself
        status, _, err = run_flash(image, backing, "--yes", system=flash.System())
        assert status == 1
        assert f"{backing} is attached to {loop}: writing it would change a disk in use" in err
    finally:
        subprocess.run([_tool("losetup"), "-d", loop], check=True)
    written = backing.read_bytes()
    assert outside_boot(written[:IMAGE_SIZE]) == outside_boot(image.read_bytes())
    assert "dtoverlay=deskphone" in boot_files(backing)["config.txt"].decode()


# --------------------------------------------------------------------------------------
# The wrong device, by other routes


def test_a_loop_device_over_the_system_disk_is_refused(image: Path, tmp_path: Path) -> None:
    disk = FakeDisk(tmp_path)
    sda2 = disk.block(tmp_path / "sda2", os.makedev(8, 2))
    loop = disk.add_loop("loop3", 3, sda2)
    status, _, err = run_flash(image, loop, "--yes", system=disk.system())
    assert status == 1
    assert err == (f"flash.py: error: {loop} (loop device on {sda2}) is the disk the running "
                   "system is on: refusing to overwrite it\n")
    assert loop.read_bytes() == b""


def test_a_loop_device_over_a_mounted_card_is_refused(image: Path, tmp_path: Path) -> None:
    disk = FakeDisk(tmp_path)
    disk.add_disk("sdy", "8:224")
    loop = disk.add_loop("loop3", 3, tmp_path / "sdy")
    mounts = "/dev/sda2 / ext4 rw 0 0\n/dev/sdy1 /media/me/bootfs vfat rw 0 0\n"
    status, _, err = run_flash(image, loop, "--yes", system=disk.system(mounts=mounts))
    assert status == 1
    assert err == (f"flash.py: error: {loop} (loop device on {tmp_path / 'sdy'}) is in use: "
                   "/dev/sdy1 on /media/me/bootfs; unmount it first (udisksctl unmount -b "
                   "DEVICE, or umount)\n")


def test_a_loop_device_over_a_file_another_mounted_loop_reads_is_refused(
        image: Path, tmp_path: Path) -> None:
    disk = FakeDisk(tmp_path)
    shared = tmp_path / "vm-disk.img"
    shared.write_bytes(bytes(MIB))
    loop = disk.add_loop("loop3", 3, shared)
    disk.add_loop("loop4", 4, shared)
    mounts = "/dev/sda2 / ext4 rw 0 0\n/dev/loop4 /mnt/vm ext4 rw 0 0\n"
    status, _, err = run_flash(image, loop, "--yes", system=disk.system(mounts=mounts))
    assert status == 1
    assert (f"{loop} (loop device on {shared}), also attached as /dev/loop4, is in use: "
            "/dev/loop4 on /mnt/vm") in err
    # and over the image itself
    loop5 = disk.add_loop("loop5", 5, image)
    status, _, err = run_flash(image, loop5, "--yes", system=disk.system())
    assert (status, err) == (1, f"flash.py: error: {loop5} (loop device on {image}): that is "
                                "the image itself\n")


def test_a_loop_device_over_a_spare_file_is_a_target(image: Path, tmp_path: Path) -> None:
    disk = FakeDisk(tmp_path)
    spare = tmp_path / "spare.img"
    spare.write_bytes(b"")
    loop = disk.add_loop("loop3", 3, spare)
    target = flash.probe_target(loop, flash.inspect_image(image), disk.system())
    assert (target.is_device, target.rdev) == (True, os.makedev(7, 3))


def test_a_file_attached_to_a_loop_device_is_refused(image: Path, tmp_path: Path) -> None:
    disk = FakeDisk(tmp_path)
    card = tmp_path / "card.img"
    card.write_bytes(b"old")
    disk.add_loop("loop3", 3, card)
    status, _, err = run_flash(image, tmp_path / "." / "card.img", "--yes",
                               system=disk.system())
    assert status == 1
    assert err == (f"flash.py: error: {tmp_path / '.' / 'card.img'} is attached to /dev/loop3: "
                   "writing it would change a disk in use; detach it first (umount, then "
                   "losetup -d /dev/loop3)\n")
    assert card.read_bytes() == b"old"


def test_a_missing_or_odd_name_under_dev_is_never_created(image: Path, tmp_path: Path) -> None:
    disk = FakeDisk(tmp_path)
    devdir = tmp_path / "dev"
    devdir.mkdir()
    system = replace(disk.system(), devdir=devdir)
    status, _, err = run_flash(image, devdir / "sdc", "--yes", system=system)
    assert (status, err) == (1, f"flash.py: error: {devdir / 'sdc'}: no such device (a typo, "
                                "or the card is not in the reader? lsblk lists the disks); not "
                                f"creating a file in {devdir}\n")
    assert not (devdir / "sdc").exists()
    (devdir / "sdd").write_bytes(b"")  # a stray regular file where a disk should be
    status, _, err = run_flash(image, devdir / "sdd", "--yes", system=system)
    assert status == 1 and "sdd is not a block device" in err
    assert (devdir / "sdd").read_bytes() == b""
    # the real /dev, with the real System: refused before anything could be created
    status, _, err = run_flash(image, "/dev/sdzq-deskphone-test", "--yes")
    assert status == 1 and "no such device" in err
    assert not Path("/dev/sdzq-deskphone-test").exists()


class Answer(io.StringIO):
    """The confirmation prompt's stdin: runs ``meanwhile`` (the world changing while the user
    reads the prompt), then answers yes."""

    def __init__(self, meanwhile: Callable[[], None]) -> None:
        super().__init__()
        self.meanwhile = meanwhile

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        self.meanwhile()
        return "yes\n"


def run_answering(meanwhile: Callable[[], None], *args: object, system: object) -> tuple[
        int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = flash.run([str(a) for a in args], system=system, stdin=Answer(meanwhile),
                       stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def test_a_card_swapped_during_the_prompt_is_not_written(image: Path, tmp_path: Path) -> None:
    disk = FakeDisk(tmp_path)
    other = disk.add_disk("sdy", "8:224")
    assert other.exists()
    aside = tmp_path / "sdz-was"
    system = disk.system()

    def swap() -> None:  # /dev/sdz is now another disk (the card re-enumerated, say)
        os.rename(disk.node, aside)
        os.rename(tmp_path / "sdy", disk.node)

    status, _, err = run_answering(swap, image, disk.node, "--quiet", "--config-txt",
                                   _config_txt(tmp_path), "--dts", _dts(tmp_path),
                                   system=system)
    assert status == 1
    assert err == (f"flash.py: error: {disk.node} is not the device that was checked (8:240); "
                   "it is now device 8:224 (card swapped?): nothing written; run again\n")
    assert disk.node.read_bytes() == b"" and aside.read_bytes() == b""


def test_a_target_file_changed_during_the_prompt_is_not_written(
        image: Path, tmp_path: Path) -> None:
    target = tmp_path / "card.img"
    common = ("--quiet", "--config-txt", _config_txt(tmp_path), "--dts", _dts(tmp_path))
    system = flash.System(mounts="")
    precious = tmp_path / "precious"
    precious.write_bytes(b"keep")

    def appear() -> None:
        target.write_bytes(b"someone else's")

    status, _, err = run_answering(appear, image, target, *common, system=system)
    assert (status, err) == (1, f"flash.py: error: {target} appeared after it was checked: "
                                "nothing written; run again\n")
    assert target.read_bytes() == b"someone else's"

    def replaced() -> None:  # what a save by a program (a new file renamed over) does
        new = tmp_path / "card.img.new"
        new.write_bytes(b"a new file")
        os.replace(new, target)

    status, _, err = run_answering(replaced, image, target, *common, system=system)
    assert (status, err) == (1, f"flash.py: error: {target} was replaced after it was checked: "
                                "nothing written; run again\n")

    def symlinked() -> None:
        target.unlink()
        target.symlink_to(precious)

    target.write_bytes(b"")
    status, _, err = run_answering(symlinked, image, target, *common, system=system)
    assert (status, err) == (1, f"flash.py: error: {target} became a symlink after it was "
                                "checked: nothing written\n")
    assert precious.read_bytes() == b"keep"


# --------------------------------------------------------------------------------------
# --sha256 is checked on the bytes that are written


def test_an_image_changed_after_its_checksum_was_checked_is_refused(
        image: Path, image_xz: Path, tmp_path: Path) -> None:
    good = hashlib.sha256(image_xz.read_bytes()).hexdigest()
    target = tmp_path / "card.img"

    def swap_download() -> None:  # same size and layout, one byte of the root fs different
        data = bytearray(image.read_bytes())
        data[(BOOT_START + BOOT_SECTORS) * 512] ^= 0xFF
        image_xz.write_bytes(lzma.compress(bytes(data), preset=1))

    status, out, err = run_answering(swap_download, image_xz, target, "--sha256", good,
                                     "--quiet", "--config-txt", _config_txt(tmp_path), "--dts",
                                     _dts(tmp_path), system=flash.System(mounts=""))
    assert status == 1
    assert "checksum: SHA-256 matches --sha256" in out  # the early check passed
    assert re.fullmatch(rf"flash\.py: error: checksum mismatch for .*raspios\.img\.xz as it was "
                        rf"written: SHA-256 is [0-9a-f]{{64}}, expected {good} \(the file "
                        r"changed after it was checked\?\); the partition table was not "
                        r"written: the card is not usable as it is\n", err)
    written = target.read_bytes()
    assert written[:flash.HEAD] == bytes(flash.HEAD)  # no partition table
    with pytest.raises(flash.FlashError, match="no MBR partition table"):
        flash.read_partitions(written[:512])


def _write_while(image: flash.Image, target: Path, expected: str,
                 meanwhile: Callable[[], None]) -> None:
    """write_image with the in-stream check, running ``meanwhile`` after the first chunk has
    gone to the target (the rest of the file is not read yet)."""
    calls = []

    def write(fd: int, data: bytes | memoryview, offset: int) -> int:
        if not calls:
            meanwhile()
        calls.append(offset)
        return os.pwrite(fd, data, offset)

    fd = os.open(target, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        with image.open() as source:
            flash.write_image(source, fd, image.size, quiet(image.size), write,
                              before_head=flash.in_stream_sha256(source, image.path, expected))
    finally:
        os.close(fd)


def test_an_image_changed_during_the_write_is_refused(image: Path, tmp_path: Path) -> None:
    good = hashlib.sha256(image.read_bytes()).hexdigest()
    inspected = flash.inspect_image(image)
    target = tmp_path / "card.img"

    def change() -> None:  # in place, beyond what has been read
        with open(image, "r+b") as file:
            file.seek(IMAGE_SIZE - 100)
            file.write(b"changed")

    with pytest.raises(flash.FlashError, match="as it was written: SHA-256 is"):
        _write_while(inspected, target, good, change)
    assert target.read_bytes()[:flash.HEAD] == bytes(flash.HEAD)
    assert target.read_bytes()[IMAGE_SIZE - 100:IMAGE_SIZE - 93] == b"changed"


def test_the_xz_hash_is_of_the_compressed_bytes_read_for_the_write(tmp_path: Path) -> None:
    """The same decompressed image from different .xz bytes (padding moved between streams):
    only a hash of the compressed bytes as read for the write tells them apart."""
    big = lzma.compress(os.urandom(10 * MIB), preset=0, check=lzma.CHECK_NONE)
    small = lzma.compress(b"tail" * 1000)
    path = tmp_path / "two.img.xz"
    path.write_bytes(big + small + bytes(8))
    good = hashlib.sha256(path.read_bytes()).hexdigest()
    image = flash.inspect_image(path)
    target = tmp_path / "card.img"
    _write_while(image, target, good, lambda: None)  # unchanged: passes

    def move_padding() -> None:
        with open(path, "r+b") as file:
            file.seek(len(big))
            file.write(bytes(4) + small + bytes(4))

    with pytest.raises(flash.FlashError, match="as it was written: SHA-256 is"):
        _write_while(image, tmp_path / "card2.img", good, move_padding)
    with image.open() as source:  # what it decompresses to did not change
        assert hashlib.sha256(source.read()).hexdigest() == hashlib.sha256(
            target.read_bytes()).hexdigest()
