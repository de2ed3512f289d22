"""tools/dist.py's bundle, and the first-boot installer that unpacks it on the phone.

The installer (board/firstboot/deskphone-firstboot.sh) runs here against a directory standing
in for the phone's root file system (DESKPHONE_ROOT) with stand-ins for the commands that
would change the machine (useradd, usermod, groupadd, systemctl, chown, python3) on PATH: they
log their arguments and edit the stand-in /etc as the real ones would. The venv's python runs
the installer's dependency check with this interpreter, so it sees this venv's packages.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from tools_loader import STANDIN_CONFIG_TXT as CONFIG_TXT
from tools_loader import STANDIN_DTS as DTS
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


UNIT = ("[Service]\nExecStart=/opt/deskphone/bin/deskphone run -c /etc/deskphone/phone.toml\n"
        "User=deskphone\nSupplementaryGroups=gpio i2c spi audio dialout\n")
# what the test venv has (pytest) and what no image has; the extra's is never asked for
REQUIRES = ("pytest>=1", 'lgpio>=0.2; extra == "pi"')


def fake_wheel(path: Path, version: str = "0.1.0", requires: tuple[str, ...] = REQUIRES,
               build: str = "") -> Path:
    wheel = path / f"deskphone-{version}-py3-none-any.whl"
    metadata = "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("deskphone/__init__.py", f'__version__ = "{version}"\n# {build}\n')
        archive.writestr(f"deskphone-{version}.dist-info/METADATA",
                         f"Metadata-Version: 2.1\nName: deskphone\nVersion: {version}\n"
                         f"{metadata}\nRequires-Dist: not-a-header (the description)\n")
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
        "BUNDLE-INFO", "MANIFEST", "config.txt", "deskphone-0.1.0-py3-none-any.whl",
        "deskphone-firstboot.sh", "deskphone.dtbo", "deskphone.service", "firstrun.sh",
        "phone.example.toml"])]
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
    assert len(manifest) == 8
    # built without --with-deps, and it says so (same file name as a --with-deps bundle)
    assert (unpacked / "BUNDLE-INFO").read_text().splitlines()[1:] == [
        "version=0.1.0", "with_deps=0"]
    assert f"{hashlib.sha256(UNIT.encode()).hexdigest()}  deskphone.service" in manifest
    need("sha256sum")
    subprocess.run(["sha256sum", "--check", "--strict", "--quiet", "MANIFEST"], cwd=unpacked,
                   check=True)
    flash.read_bundle(bundle)  # and flash.py takes it


def test_a_bundle_with_dependency_wheels_says_so(inputs: object, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def download_deps(wheel: Path, out: Path) -> list[Path]:  # no network in the tests
        out.mkdir(parents=True, exist_ok=True)
        names = ("numpy-1.26.4-cp311-cp311-manylinux_2_17_aarch64.whl",
                 "luma.oled-3.13.0-py2.py3-none-any.whl")
        for name in names:
            (out / name).write_bytes(name.encode())
        return sorted(out / name for name in names)

    monkeypatch.setattr(dist, "download_deps", download_deps)
    bundle = dist.build_bundle(inputs, tmp_path / "dist", wheel=fake_wheel(tmp_path),
                               with_deps=True)
    assert bundle.name == "deskphone-bundle-0.1.0.tar.gz"  # the name the Makefile expects
    files = flash.read_bundle(bundle).files
    info = files["BUNDLE-INFO"].decode().splitlines()
    assert info[1:3] == ["version=0.1.0", "with_deps=1"]
    assert info[3].startswith("dependency_target=cp311 manylinux2014_aarch64")
    assert info[4:] == ["dependency=luma.oled-3.13.0-py2.py3-none-any.whl",
                        "dependency=numpy-1.26.4-cp311-cp311-manylinux_2_17_aarch64.whl"]
    assert "luma.oled-3.13.0-py2.py3-none-any.whl" in files


def test_dist_says_a_bundle_without_dependency_wheels_is_not_for_bookworm(
        inputs: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = dist.main(["--repo", str(inputs.root), "--out", str(tmp_path / "dist"),
                        "--wheel", str(fake_wheel(tmp_path))])
    assert status == 0
    out, err = capsys.readouterr()
    assert out.strip().endswith("deskphone-bundle-0.1.0.tar.gz")
    assert "no dependency wheels" in err and "make dist DIST_ARGS=--with-deps" in err


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
    # groupadd [--prefix P] -f --system NAME: add NAME to P/etc/group unless there
    "groupadd": r"""
prefix=""; args=("$@")
while [ $# -gt 1 ]; do
  case "$1" in --prefix) prefix="$2"; shift ;; esac
  shift
done
grep -q "^$1:" "$prefix/etc/group" || echo "$1:x:$((900 + $(wc -l <"$prefix/etc/group"))):" \
  >>"$prefix/etc/group"
echo "groupadd ${args[*]}" >>"$FAKE_LOG"
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
# python -c CODE ARGS (the dependency check) runs for real, with the test's interpreter
if [ "$1" = -c ]; then
  echo "venv-python -c CHECK ${*:3}" >>"$FAKE_LOG"
  exec "$FAKE_PYTHON" "$@"
fi
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

    def install(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        self.log.write_text("")
        return subprocess.run(
            ["bash", str(self.bundle / "deskphone-firstboot.sh"), *args], capture_output=True,
            text=True, timeout=60, check=False,
            env={"PATH": f"{self.bin}:{os.environ['PATH']}", "DESKPHONE_ROOT": str(self.root),
                 "FAKE_LOG": str(self.log), "FAKE_PYTHON": sys.executable, **env})

    def put_bundle(self, bundle: Path) -> None:
        """Another bundle on the card in place of the first (the per-card files stay)."""
        for old in self.bundle.iterdir():
            if old.name not in ("device.conf", "authorized_keys", "phone.toml"):
                old.unlink()
        for name, data in flash.read_bundle(bundle).files.items():
            (self.bundle / name).write_bytes(data)

    def card_secrets(self) -> list[str]:
        """What of the per-card files is still on the fake boot partition."""
        return sorted(name for name in ("device.conf", "authorized_keys", "phone.toml")
                      if (self.bundle / name).exists())

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
    # the image has no spi group: systemd would refuse the unit (216/GROUP), so it is made,
    # before the service user is put in the unit's groups
    assert [c for c in commands if c.startswith("groupadd")] == [
        "groupadd --prefix ROOT -f --system spi"]
    assert commands.index("groupadd --prefix ROOT -f --system spi") < commands.index(
        "usermod --prefix ROOT --append --groups spi deskphone")
    assert "group spi created (deskphone.service needs it)" in result.stdout
    groups = {line.split(":")[0]: line.split(":")[3].split(",")
              for line in phone.read("etc/group").splitlines()}
    assert sorted(g for g, users in groups.items() if "deskphone" in users) == [
        "audio", "dialout", "gpio", "i2c", "input", "spi"]
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
    # the bundle has no dependency wheels: the image's packages are checked before pip runs
    assert "bundle: no dependency wheels (built without --with-deps)" in result.stdout
    assert "dependencies: all from the image" in result.stdout
    wheel = phone.bundle / "deskphone-0.1.0-py3-none-any.whl"
    check = commands.index(f"venv-python -c CHECK {wheel}".replace(str(phone.root), "ROOT"))
    pips = [c for c in commands if " pip install " in c]
    assert pips == [(f"venv-python -m pip install --disable-pip-version-check --no-cache-dir "
                     f"--no-index --find-links {phone.bundle} deskphone==0.1.0").replace(
                         str(phone.root), "ROOT")]  # a new venv: no forced reinstall
    assert check < commands.index(pips[0])
    assert (phone.root / "opt" / "deskphone" / ".deskphone-wheel.sha256").read_text() == (
        hashlib.sha256(wheel.read_bytes()).hexdigest() + "\n")
    assert phone.read("etc/systemd/system/deskphone.service") == UNIT
    assert "systemctl --root=ROOT enable deskphone.service" in commands
    assert not any(c.startswith("hostname") for c in commands)
    # not the test machine's systemd: the reload and the restart are only logged
    assert [c for c in commands if "daemon-reload" in c or "try-restart" in c] == []
    assert ("not run (DESKPHONE_ROOT is set): systemctl daemon-reload\n"
            "deskphone-firstboot: not run (DESKPHONE_ROOT is set): systemctl try-restart "
            "deskphone.service\n") in result.stdout
    # the hash, the keys and the phone's config (now in /etc/deskphone) are not left on the card
    assert phone.card_secrets() == []


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
    # the secrets go even so; the config stays, as nothing installed it yet
    assert phone.card_secrets() == ["phone.toml"]


def test_first_boot_reads_device_conf_as_data(phone: Phone) -> None:
    (phone.bundle / "device.conf").write_text("hostname=x;reboot\n")
    result = phone.install()
    assert result.returncode == 1
    assert "device.conf: bad hostname" in result.stderr
    assert phone.read("etc/hostname") == "raspberrypi\n"
    assert phone.card_secrets() == ["phone.toml"]


def test_first_boot_says_when_pip_cannot_install(phone: Phone) -> None:
    result = phone.install(FAKE_PIP_STATUS="1")
    assert result.returncode == 1
    assert "pip could not install deskphone 0.1.0" in result.stderr
    assert "--with-deps" in result.stderr
    assert "systemctl --root=ROOT enable deskphone.service" not in phone.commands()
    # a failed install leaves no password hash, keys or config on the card either
    assert phone.card_secrets() == []
    assert "device.conf deleted from" in result.stdout
    assert not (phone.root / "opt" / "deskphone" / ".deskphone-wheel.sha256").exists()
    # and a run by hand after the fix completes it (the secrets were used, or are gone)
    result = phone.install()
    assert result.returncode == 0, result.stderr
    assert [c for c in phone.commands() if " pip install " in c] == [
        (f"venv-python -m pip install --disable-pip-version-check --no-cache-dir --no-index "
         f"--find-links {phone.bundle} deskphone==0.1.0").replace(str(phone.root), "ROOT"),
        (f"venv-python -m pip install --disable-pip-version-check --no-cache-dir --no-index "
         f"--no-deps --force-reinstall {phone.bundle}/deskphone-0.1.0-py3-none-any.whl").replace(
             str(phone.root), "ROOT")]


def test_first_boot_says_which_dependencies_the_image_lacks(inputs: object,
                                                            tmp_path: Path) -> None:
    need("sha256sum")
    wheel = fake_wheel(tmp_path, requires=(
        "pytest>=1", "pytest>=999", "deskphone-test-absent>=1.0", 'absent-too; extra == "pi"',
        'deskphone-absent-on-this-python; python_version < "3"'))
    phone = Phone(tmp_path, dist.build_bundle(inputs, tmp_path / "dist", wheel=wheel))
    result = phone.install()
    assert result.returncode == 1
    have = subprocess.run([sys.executable, "-c", "import pytest; print(pytest.__version__)"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert result.stderr == (
        "deskphone-firstboot: error: this bundle has no dependency wheels (it was built without "
        "--with-deps) and the image lacks:\n"
        f"  pytest>=999 (the image has {have})\n"
        "  deskphone-test-absent>=1.0 (not installed)\n"
        "deskphone-firstboot: error: build the bundle with: make dist DIST_ARGS=--with-deps "
        "(python tools/dist.py --with-deps), put it on the card and run this again; nothing "
        "was installed\n")
    assert not [c for c in phone.commands() if " pip " in c]  # said before pip runs
    assert phone.card_secrets() == []


def test_first_boot_with_dependency_wheels_leaves_them_to_pip(
        inputs: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    need("sha256sum")

    def download_deps(wheel: Path, out: Path) -> list[Path]:
        out.mkdir(parents=True, exist_ok=True)
        (out / "deskphone_test_absent-1.0-py3-none-any.whl").write_bytes(b"stand-in")
        return [out / "deskphone_test_absent-1.0-py3-none-any.whl"]

    monkeypatch.setattr(dist, "download_deps", download_deps)
    wheel = fake_wheel(tmp_path, requires=("deskphone-test-absent>=1.0",))
    phone = Phone(tmp_path, dist.build_bundle(inputs, tmp_path / "dist", wheel=wheel,
                                              with_deps=True))
    result = phone.install()
    assert result.returncode == 0, result.stderr
    assert "bundle: with dependency wheels (dist.py --with-deps)" in result.stdout
    assert not [c for c in phone.commands() if "CHECK" in c]


def test_first_boot_upgrades_from_a_newer_bundle(inputs: object, phone: Phone,
                                                 tmp_path: Path) -> None:
    assert phone.install("--first-boot").returncode == 0
    # first boot: a reboot follows, nothing to reload or restart
    assert "not run (DESKPHONE_ROOT is set)" not in phone.install("--first-boot").stdout
    first = phone.read("boot/firmware/config.txt")
    assert phone.install().stdout.count("not run") == 0  # unchanged: nothing to restart
    assert phone.read("boot/firmware/config.txt") == first

    # a newer bundle: other config.txt lines, another unit, a rebuilt wheel of the same version
    new_lines = "[all]\ndtparam=i2c_arm=on\ndtoverlay=deskphone,oled_spi\n"
    inputs.config_txt.write_text(new_lines)
    inputs.unit.write_text(UNIT + "RestartSec=5\n")
    (tmp_path / "rebuilt").mkdir()
    newer = dist.build_bundle(inputs, tmp_path / "dist2",
                              wheel=fake_wheel(tmp_path / "rebuilt", build="rebuilt"))
    phone.put_bundle(newer)
    result = phone.install()
    assert result.returncode == 0, result.stderr
    config = phone.read("boot/firmware/config.txt")
    assert config.count(flash.MARK_BEGIN) == 1 and config.count(flash.MARK_END) == 1
    assert new_lines in config and "enable_uart=1" not in config
    assert config.startswith("dtparam=audio=on\n\n" + flash.MARK_BEGIN + "\n")
    assert phone.read("etc/systemd/system/deskphone.service") == UNIT + "RestartSec=5\n"
    commands = phone.commands()
    assert (f"venv-python -m pip install --disable-pip-version-check --no-cache-dir --no-index "
            f"--no-deps --force-reinstall {phone.bundle}/deskphone-0.1.0-py3-none-any.whl"
            ).replace(str(phone.root), "ROOT") in commands
    # the running phone gets the new unit and code: logged, not run, under DESKPHONE_ROOT
    assert "not run (DESKPHONE_ROOT is set): systemctl daemon-reload" in result.stdout
    assert "not run (DESKPHONE_ROOT is set): systemctl try-restart deskphone.service" in (
        result.stdout)
    assert [c for c in commands if c.startswith("systemctl")] == [
        "systemctl --root=ROOT enable deskphone.service"]
    # and once more: nothing changes
    files = {p: p.read_bytes() for p in phone.root.rglob("*") if p.is_file()}
    result = phone.install()
    assert "not run" not in result.stdout
    assert {p: p.read_bytes() for p in phone.root.rglob("*") if p.is_file()} == files


@pytest.mark.skipif(not REAL.unit.is_file(), reason="the real unit is not written yet")
def test_first_boot_makes_every_group_the_real_unit_needs(inputs: object,
                                                          tmp_path: Path) -> None:
    """systemd fails the unit with 216/GROUP if one SupplementaryGroups= group is missing."""
    need("sha256sum")
    shutil.copyfile(REAL.unit, inputs.unit)
    phone = Phone(tmp_path, dist.build_bundle(inputs, tmp_path / "dist",
                                              wheel=fake_wheel(tmp_path)))
    (phone.root / "etc" / "group").write_text("root:x:0:\nsudo:x:27:pi\naudio:x:29:pi\n")
    result = phone.install()
    assert result.returncode == 0, result.stderr
    wanted = next(line.split("=", 1)[1].split() for line in REAL.unit.read_text().splitlines()
                  if line.startswith("SupplementaryGroups="))
    groups = {line.split(":")[0]: line.split(":")[3].split(",")
              for line in phone.read("etc/group").splitlines()}
    assert [g for g in wanted if "deskphone" not in groups.get(g, [])] == []
    assert sorted(c.split()[-1] for c in phone.commands() if c.startswith("groupadd")) == sorted(
        g for g in wanted if g != "audio")
    assert "input" not in groups  # optional: joined when the image has it, never made


def test_first_boot_keeps_the_block_flash_py_wrote(phone: Phone) -> None:
    lines = (phone.bundle / "config.txt").read_text()
    written = flash.merge_config_txt("dtparam=audio=on\n", lines)
    (phone.boot / "config.txt").write_text(written)
    assert phone.install().returncode == 0
    assert phone.read("boot/firmware/config.txt") == written  # same lines: left as it is
    # two blocks (an old hand edit) and an unclosed one become the bundle's one block
    (phone.boot / "config.txt").write_text(
        f"a=1\n{flash.MARK_BEGIN}\nold=1\n{flash.MARK_END}\nb=2\n{flash.MARK_BEGIN}  \r\n"
        f"old=2\n")
    assert phone.install().returncode == 0
    config = phone.read("boot/firmware/config.txt")
    assert config.startswith("a=1\nb=2\n\n" + flash.MARK_BEGIN + "\n")
    assert config.endswith(lines + flash.MARK_END + "\n")
    assert "old=" not in config and config.count(flash.MARK_BEGIN) == 1


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
