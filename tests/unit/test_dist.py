"""tools/dist.py's bundle, and the first-boot installer that unpacks it on the phone.

The installer (board/firstboot/deskphone-firstboot.sh) runs here against a directory standing
in for the phone's root file system (DESKPHONE_ROOT) with stand-ins for the commands that
would change the machine (useradd, usermod, systemctl, chown, python3) on PATH: they log
their arguments and edit the stand-in /etc as the real ones would.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from tools_loader import load_tool

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "board" / "firstboot"


dist = load_tool("dist")
flash = load_tool("flash")


def need(*tools: str) -> None:
    """Skip without a tool on a developer's machine; in CI a missing tool is a failure."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        message = f"needs {', '.join(missing)} (tools/bootstrap.sh installs them)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


DTS = """/dts-v1/;
/plugin/;
/ {
\tcompatible = "brcm,bcm2835";
\tfragment@0 {
\t\ttarget = <&gpio>;
\t\t__overlay__ {
\t\t\thook_pin: hook_pin { brcm,pins = <4>; brcm,function = <0>; brcm,pull = <2>; };
\t\t};
\t};
};
"""
CONFIG_TXT = "[all]\ndtparam=i2c_arm=on\nenable_uart=1\ndtoverlay=deskphone\n"
UNIT = "[Service]\nExecStart=/opt/deskphone/bin/deskphone run -c /etc/deskphone/phone.toml\n"


def fake_wheel(path: Path, version: str = "0.1.0") -> Path:
    wheel = path / f"deskphone-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("deskphone/__init__.py", f'__version__ = "{version}"\n')
    return wheel


def standin_repo(root: Path, version: str = "0.1.0") -> object:
    """A repo-shaped directory with stand-ins for the unit and the overlay."""
    (root / "firmware" / "deskphone").mkdir(parents=True)
    (root / "firmware" / "deskphone" / "__init__.py").write_text(
        f'"""stand-in."""\n\n__version__ = "{version}"\n')
    (root / "firmware" / "systemd").mkdir()
    (root / "firmware" / "systemd" / "deskphone.service").write_text(UNIT)
    (root / "firmware" / "etc").mkdir()
    shutil.copyfile(REPO / "firmware" / "etc" / "phone.example.toml",
                    root / "firmware" / "etc" / "phone.example.toml")
    (root / "board").mkdir()
    (root / "board" / "deskphone.dts").write_text(DTS)
    (root / "board" / "config.txt").write_text(CONFIG_TXT)
    shutil.copytree(SCRIPTS, root / "board" / "firstboot")
    return dist.Inputs.from_repo(root)


@pytest.fixture
def inputs(tmp_path: Path) -> object:
    need("dtc")
    return standin_repo(tmp_path / "repo")


def members(bundle: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(bundle) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_the_bundle_holds_everything_first_boot_installs(inputs: object,
                                                          tmp_path: Path) -> None:
    wheel = fake_wheel(tmp_path)
    bundle = dist.build_bundle(inputs, tmp_path / "dist", wheel=wheel)
    assert bundle == tmp_path / "dist" / "deskphone-bundle-0.1.0.tar.gz"
    infos = members(bundle)
    top = "deskphone-bundle-0.1.0"
    assert sorted(infos) == [top] + [f"{top}/{name}" for name in sorted([
        "MANIFEST", "config.txt", "deskphone-0.1.0-py3-none-any.whl", "deskphone-firstboot.sh",
        "deskphone.dtbo", "deskphone.service", "firstrun.sh", "phone.example.toml"])]
    for name, info in infos.items():
        assert (info.mtime, info.uid, info.gid, info.uname) == (dist.DEFAULT_EPOCH, 0, 0, "root")
        executable = name.endswith(".sh") or name == top
        assert info.mode == (0o755 if executable else 0o644), name
    with tarfile.open(bundle) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    unpacked = tmp_path / "x" / top
    assert (unpacked / "deskphone.service").read_text() == UNIT
    assert (unpacked / "config.txt").read_text() == CONFIG_TXT
    assert (unpacked / "deskphone.dtbo").read_bytes()[:4] == b"\xd0\x0d\xfe\xed"
    assert (unpacked / "deskphone-0.1.0-py3-none-any.whl").read_bytes() == wheel.read_bytes()
    assert (unpacked / "deskphone-firstboot.sh").read_bytes() == (
        SCRIPTS / "deskphone-firstboot.sh").read_bytes()
    # MANIFEST is sha256sum's own format: the phone checks the bundle with it
    manifest = (unpacked / "MANIFEST").read_text().splitlines()
    assert len(manifest) == 7
    assert f"{hashlib.sha256(UNIT.encode()).hexdigest()}  deskphone.service" in manifest
    need("sha256sum")
    subprocess.run(["sha256sum", "--check", "--strict", "--quiet", "MANIFEST"], cwd=unpacked,
                   check=True)
    flash.read_bundle(bundle)  # and flash.py takes it


def test_the_bundle_is_byte_for_byte_reproducible(inputs: object, tmp_path: Path) -> None:
    wheel = fake_wheel(tmp_path)
    one = dist.build_bundle(inputs, tmp_path / "a", wheel=wheel)
    two = dist.build_bundle(inputs, tmp_path / "b", wheel=wheel)
    assert one.read_bytes() == two.read_bytes()
    assert one.read_bytes()[4:8] == bytes(4)  # gzip header: no timestamp
    later = dist.build_bundle(inputs, tmp_path / "c", wheel=wheel, epoch=1700000000)
    assert {m.mtime for m in members(later).values()} == {1700000000}
    assert dist.source_date_epoch({"SOURCE_DATE_EPOCH": "1234"}) == 1234
    assert dist.source_date_epoch({}) == dist.DEFAULT_EPOCH


def test_missing_inputs_are_all_named(inputs: object, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    inputs.unit.unlink()
    inputs.dts.unlink()
    with pytest.raises(dist.DistError) as caught:
        dist.build_bundle(inputs, tmp_path / "dist", wheel=fake_wheel(tmp_path))
    assert str(caught.value) == (
        f"cannot build the bundle: missing the systemd unit {inputs.unit}; "
        f"the overlay source {inputs.dts}")
    assert not (tmp_path / "dist").exists()
    status = dist.main(["--repo", str(inputs.root), "--out", str(tmp_path / "dist"),
                        "--wheel", str(fake_wheel(tmp_path))])
    assert status == 1
    assert capsys.readouterr().err.startswith("dist.py: error: cannot build the bundle: "
                                              "missing the systemd unit ")


def test_a_wheel_of_another_version_is_refused(inputs: object, tmp_path: Path) -> None:
    with pytest.raises(dist.DistError, match=r"deskphone-0\.2\.0-py3-none-any\.whl is version "
                       r"0\.2\.0 but firmware/deskphone/__init__\.py says 0\.1\.0"):
        dist.build_bundle(inputs, tmp_path / "dist", wheel=fake_wheel(tmp_path, "0.2.0"))


def test_an_overlay_that_does_not_compile_is_an_error(inputs: object, tmp_path: Path) -> None:
    inputs.dts.write_text("/dts-v1/;\n/ { broken\n")
    with pytest.raises(dist.DistError, match="dtc could not compile"):
        dist.build_bundle(inputs, tmp_path / "dist", wheel=fake_wheel(tmp_path))


def test_the_version_is_read_as_text(tmp_path: Path) -> None:
    (tmp_path / "firmware" / "deskphone").mkdir(parents=True)
    init = tmp_path / "firmware" / "deskphone" / "__init__.py"
    init.write_text("import numpy  # never imported by dist.py\n__version__ = '2.3.4'\n")
    assert dist.read_version(tmp_path) == "2.3.4"
    init.write_text("VERSION = 1\n")
    with pytest.raises(dist.DistError, match="no __version__"):
        dist.read_version(tmp_path)


REAL = dist.Inputs.from_repo(REPO)


@pytest.mark.skipif(not (REAL.unit.is_file() and REAL.dts.is_file() and REAL.config_txt.is_file()),
                    reason="the real unit, overlay or config.txt lines are not written yet")
def test_the_real_bundle_from_this_checkout(tmp_path: Path) -> None:
    """What `make dist` makes: the real wheel (pip wheel), unit, overlay and config lines."""
    need("dtc")
    bundle = dist.build_bundle(REAL, tmp_path / "dist")
    version = dist.read_version(REPO)
    loaded = flash.read_bundle(bundle)
    assert loaded.version == version
    wheel = loaded.files[f"deskphone-{version}-py3-none-any.whl"]
    with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
        names = archive.namelist()
    assert "deskphone/cli.py" in names and "deskphone/config/schema.py" in names
    assert not any("__pycache__" in name for name in names)
    assert any(name.endswith("entry_points.txt") for name in names)
    assert loaded.files["deskphone.service"] == REAL.unit.read_bytes()
    assert loaded.files["config.txt"] == REAL.config_txt.read_bytes()
    assert loaded.files["deskphone.dtbo"][:4] == b"\xd0\x0d\xfe\xed"
    assert flash.config_lines_ok(REAL.config_txt.read_text(), "board/config.txt") == []
    assert b"ExecStart=/opt/deskphone/bin/deskphone run" in loaded.files["deskphone.service"]


# --------------------------------------------------------------------------------------
# The first-boot installer, against a stand-in root file system

FAKES = {
    # useradd [--prefix P] ... NAME: add NAME to P/etc/passwd (home from --home-dir or /home)
    "useradd": r"""
prefix=""; home=""; system=0; args=("$@")
while [ $# -gt 1 ]; do
  case "$1" in
    --prefix) prefix="$2"; shift ;;
    --home-dir) home="$2"; shift ;;
    --system) system=1 ;;
    --shell|--groups|--password) shift ;;
  esac
  shift
done
name="$1"; [ -n "$home" ] || home="/home/$name"
uid=$([ "$system" = 1 ] && echo 990 || echo 1001)
echo "$name:x:$uid:$uid::$home:/bin/sh" >>"$prefix/etc/passwd"
echo "$name:x:$uid:" >>"$prefix/etc/group"
echo "useradd ${args[*]}" >>"$FAKE_LOG"
""",
    # usermod [--prefix P] --append --groups G NAME
    "usermod": r"""
prefix=""; group=""; args=("$@")
while [ $# -gt 1 ]; do
  case "$1" in --prefix) prefix="$2"; shift ;; --groups) group="$2"; shift ;; esac
  shift
done
sed -i -e "/^$group:/ s/:\$/:$1/" -e "/^$group:.*[^:]\$/ {/[:,]$1\(,\|\$\)/! s/\$/,$1/}" \
  "$prefix/etc/group"
echo "usermod ${args[*]}" >>"$FAKE_LOG"
""",
    "systemctl": 'echo "systemctl $*" >>"$FAKE_LOG"\n',
    "chown": 'echo "chown $*" >>"$FAKE_LOG"\n',
    # must not run at all when DESKPHONE_ROOT is set: it would rename the test machine
    "hostname": 'echo "hostname $*" >>"$FAKE_LOG"; exit 99\n',
    "python3": r"""
echo "python3 $*" >>"$FAKE_LOG"
if [ "$1 $2" = "-m venv" ]; then
  dir="${*: -1}"
  mkdir -p "$dir/bin"
  cat >"$dir/bin/python" <<'EOF'
#!/bin/bash
echo "venv-python $*" >>"$FAKE_LOG"
[ "$3" != install ] || exit "${FAKE_PIP_STATUS:-0}"
EOF
  chmod +x "$dir/bin/python"
fi
""",
}
USERCONF = r"""#!/bin/bash
# stand-in for /usr/lib/userconf-pi/userconf NEWNAME HASH: rename uid 1000, home and all
old=$(awk -F: '$3 == 1000 { print $1 }' "$DESKPHONE_ROOT/etc/passwd")
sed -i "s|^$old:\(.*\):/home/$old:|$1:\1:/home/$1:|" "$DESKPHONE_ROOT/etc/passwd"
echo "userconf $*" >>"$FAKE_LOG"
"""
PASSWD = "root:x:0:0:root:/root:/bin/bash\npi:x:1000:1000:,,,:/home/pi:/bin/bash\n"
GROUP = ("root:x:0:\nsudo:x:27:pi\naudio:x:29:pi\ndialout:x:20:pi\ngpio:x:997:pi\n"
         "i2c:x:998:\ninput:x:105:pi\n")  # no spi group on this image
HASH = "$6$saltsalt$" + "b" * 86
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFirstBootKey admin@bench"


class Phone:
    """A stand-in root file system with a card's boot partition under boot/firmware."""

    def __init__(self, tmp: Path, bundle: Path) -> None:
        self.root = tmp / "root"
        for d in ("etc", "boot/firmware", "usr/lib/userconf-pi", "home/pi"):
            (self.root / d).mkdir(parents=True)
        (self.root / "etc" / "passwd").write_text(PASSWD)
        (self.root / "etc" / "group").write_text(GROUP)
        (self.root / "etc" / "hostname").write_text("raspberrypi\n")
        (self.root / "etc" / "hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\traspberrypi\n")
        self.boot = self.root / "boot" / "firmware"
        (self.boot / "config.txt").write_text("dtparam=audio=on\n")
        userconf = self.root / "usr" / "lib" / "userconf-pi" / "userconf"
        userconf.write_text(USERCONF)
        userconf.chmod(0o755)
        self.bundle = self.boot / "deskphone"
        self.bundle.mkdir()
        for name, data in flash.read_bundle(bundle).files.items():
            (self.bundle / name).write_bytes(data)
        device = flash.DeviceSettings(hostname="deskphone-1003", admin_user="admin",
                                      password_hash=HASH, ssh_keys=(KEY,))
        (self.bundle / "device.conf").write_text(flash.device_conf(device))
        (self.bundle / "authorized_keys").write_text(KEY + "\n")
        example = (self.bundle / "phone.example.toml").read_text()
        self.phone_toml = flash.phone_toml(example, "https://prov.example.com/{mac}",
                                           "aabbcc000003")
        (self.bundle / "phone.toml").write_text(self.phone_toml)
        self.bin = tmp / "bin"
        self.bin.mkdir()
        for name, body in FAKES.items():
            (self.bin / name).write_text("#!/bin/bash\n" + body)
            (self.bin / name).chmod(0o755)
        self.log = tmp / "commands.log"

    def install(self, **env: str) -> subprocess.CompletedProcess[str]:
        self.log.write_text("")
        return subprocess.run(
            ["bash", str(self.bundle / "deskphone-firstboot.sh")], capture_output=True,
            text=True, timeout=60, check=False,
            env={"PATH": f"{self.bin}:{os.environ['PATH']}", "DESKPHONE_ROOT": str(self.root),
                 "FAKE_LOG": str(self.log), **env})

    def commands(self) -> list[str]:
        return self.log.read_text().replace(str(self.root), "ROOT").splitlines()

    def read(self, path: str) -> str:
        return (self.root / path).read_text()


@pytest.fixture
def phone(inputs: object, tmp_path: Path) -> Phone:
    need("sha256sum")
    bundle = dist.build_bundle(inputs, tmp_path / "dist", wheel=fake_wheel(tmp_path))
    return Phone(tmp_path, bundle)


def test_first_boot_installs_the_phone(phone: Phone) -> None:
    result = phone.install()
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("deskphone-firstboot: done: deskphone 0.1.0 starts at the "
                                  "next boot (systemctl start deskphone to start now)\n")
    assert phone.read("etc/hostname") == "deskphone-1003\n"
    assert "127.0.1.1\tdeskphone-1003\n" in phone.read("etc/hosts")
    commands = phone.commands()
    assert f"userconf admin {HASH}" in commands  # the image's uid 1000, renamed
    assert "admin:x:1000:1000:,,,:/home/admin:/bin/bash" in phone.read("etc/passwd")
    keys = phone.root / "home" / "admin" / ".ssh" / "authorized_keys"
    assert keys.read_text() == KEY + "\n"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert "systemctl --root=ROOT enable ssh.service" in commands
    assert ("useradd --prefix ROOT --system --user-group --home-dir /var/lib/deskphone "
            "--no-create-home --shell /usr/sbin/nologin deskphone") in commands
    groups = {line.split(":")[0]: line.split(":")[3].split(",")
              for line in phone.read("etc/group").splitlines()}
    assert [g for g, users in groups.items() if "deskphone" in users] == [
        "audio", "dialout", "gpio", "i2c", "input"]
    assert phone.read("etc/modules") == "i2c-dev\n"
    assert (phone.boot / "overlays" / "deskphone.dtbo").read_bytes() == (
        phone.bundle / "deskphone.dtbo").read_bytes()
    config = phone.read("boot/firmware/config.txt")
    assert config.startswith("dtparam=audio=on\n")
    assert config.count(flash.MARK_BEGIN) == 1 and CONFIG_TXT in config
    toml = phone.root / "etc" / "deskphone" / "phone.toml"
    assert toml.read_text() == phone.phone_toml
    assert stat.S_IMODE(toml.stat().st_mode) == 0o600
    assert "chown deskphone:deskphone ROOT/etc/deskphone/phone.toml" in commands
    assert "chown deskphone:deskphone ROOT/etc/deskphone" not in commands  # root's (the unit)
    assert stat.S_IMODE((phone.root / "etc" / "deskphone").stat().st_mode) == 0o755
    assert "python3 -m venv --system-site-packages ROOT/opt/deskphone" in commands
    assert (f"venv-python -m pip install --disable-pip-version-check --no-cache-dir --no-index "
            f"--find-links {phone.bundle} deskphone==0.1.0").replace(
                str(phone.root), "ROOT") in commands
    assert phone.read("etc/systemd/system/deskphone.service") == UNIT
    assert "systemctl --root=ROOT enable deskphone.service" in commands
    assert not any(c.startswith("hostname") for c in commands)
    # the hash and the keys are not left on the card
    assert not (phone.bundle / "device.conf").exists()
    assert not (phone.bundle / "authorized_keys").exists()


def test_first_boot_run_again_changes_nothing(phone: Phone) -> None:
    assert phone.install().returncode == 0
    toml = phone.root / "etc" / "deskphone" / "phone.toml"
    toml.write_text("# provisioned since\n")
    files = {p: p.read_bytes() for p in phone.root.rglob("*") if p.is_file()}
    result = phone.install()
    assert result.returncode == 0, result.stderr
    assert "config: /etc/deskphone/phone.toml exists, kept" in result.stdout
    assert {p: p.read_bytes() for p in phone.root.rglob("*") if p.is_file()} == files
    commands = phone.commands()
    assert not [c for c in commands if c.startswith(("useradd", "usermod", "python3"))]


def test_first_boot_refuses_a_damaged_bundle(phone: Phone) -> None:
    (phone.bundle / "deskphone.service").write_text("[Service]\nExecStart=/bin/sh\n")
    result = phone.install()
    assert result.returncode == 1
    assert "does not match its MANIFEST (a damaged card? write it again)" in result.stderr
    assert not (phone.root / "etc" / "systemd").exists()
    assert phone.read("etc/hostname") == "raspberrypi\n"


def test_first_boot_reads_device_conf_as_data(phone: Phone) -> None:
    (phone.bundle / "device.conf").write_text("hostname=x;reboot\n")
    result = phone.install()
    assert result.returncode == 1
    assert "device.conf: bad hostname" in result.stderr
    assert phone.read("etc/hostname") == "raspberrypi\n"


def test_first_boot_says_when_pip_cannot_install(phone: Phone) -> None:
    result = phone.install(FAKE_PIP_STATUS="1")
    assert result.returncode == 1
    assert "pip could not install deskphone 0.1.0" in result.stderr
    assert "--with-deps" in result.stderr
    assert "systemctl --root=ROOT enable deskphone.service" not in phone.commands()


@pytest.mark.parametrize("script", ["deskphone-firstboot.sh", "firstrun.sh"])
def test_the_scripts_parse_and_pass_shellcheck(script: str) -> None:
    subprocess.run(["bash", "-n", str(SCRIPTS / script)], check=True)
    if shutil.which("shellcheck"):  # optional: the Debian package shellcheck
        result = subprocess.run(["shellcheck", "-s", "bash", str(SCRIPTS / script)],
                                capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout


def test_flash_and_dist_agree_on_the_bundle_layout() -> None:
    assert set(flash.BUNDLE_REQUIRED) - {"MANIFEST"} <= {
        "deskphone.service", "deskphone.dtbo", "phone.example.toml", "deskphone-firstboot.sh",
        "firstrun.sh", "config.txt"}
    assert {"deskphone-firstboot.sh", "firstrun.sh"} == dist.EXECUTABLE
    installer = (SCRIPTS / "deskphone-firstboot.sh").read_text()
    assert f"MARK_BEGIN='{flash.MARK_BEGIN}'" in installer
    assert f"MARK_END='{flash.MARK_END}'" in installer


def test_gzip_member_has_no_name(inputs: object, tmp_path: Path) -> None:
    bundle = dist.build_bundle(replace(inputs), tmp_path / "dist", wheel=fake_wheel(tmp_path))
    raw = bundle.read_bytes()
    assert raw[3] & 0x08 == 0  # FNAME flag clear: the temp file's name is not recorded
    assert gzip.decompress(raw)[:len("deskphone-bundle-0.1.0")] == b"deskphone-bundle-0.1.0"
