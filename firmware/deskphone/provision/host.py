"""What the provisioning client asks of the machine: its MAC and its DHCP lease.

The I/O edge around ``discovery`` (pure parsing). Every path is a parameter with the
real one as default, so tests point them at a tmp_path tree instead of monkeypatching.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
from pathlib import Path

from . import discovery

log = logging.getLogger("deskphone.provision")

SYSFS_NET = Path("/sys/class/net")
PROC_ROUTE = Path("/proc/net/route")
DHCPCD_LEASES = Path("/var/lib/dhcpcd")
NM_LEASES = Path("/var/lib/NetworkManager")
MAX_FILE = 65536


def _read(path: Path, limit: int = MAX_FILE) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read(limit + 1)[:limit]
    except OSError:
        return None


def default_route_interface(route: Path = PROC_ROUTE) -> str | None:
    """The interface of the IPv4 default route (/proc/net/route: destination 00000000)."""
    data = _read(route)
    if data is None:
        return None
    for line in data.decode("ascii", "replace").splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 2 and fields[1] == "00000000":
            return fields[0]
    return None


def primary_mac(sysfs: Path = SYSFS_NET, route: Path = PROC_ROUTE) -> str | None:
    """The MAC of the interface the phone talks on: the default route's, else the first
    (by name) non-loopback interface with a real address; 12 lower-case hex digits."""
    names = []
    default = default_route_interface(route)
    if default:
        names.append(default)
    with contextlib.suppress(OSError):
        names += sorted(p.name for p in sysfs.iterdir())
    for name in names:
        if name == "lo" or "/" in name:
            continue
        raw = _read(sysfs / name / "address", 64)
        if raw is None:
            continue
        text = raw.decode("ascii", "replace").strip()
        try:
            mac = discovery.normalise_mac(text)
        except ValueError:
            continue
        if mac != "0" * 12:
            return mac
    return None


def lease_url(interface: str | None = None, *, dhcpcd: Path = DHCPCD_LEASES,
              networkmanager: Path = NM_LEASES, nmcli: str | None = "nmcli",
              route: Path = PROC_ROUTE) -> str | None:
    """The provisioning URL in the DHCP lease (option 160, then 66), or None.

    dhcpcd (Raspberry Pi OS up to bullseye) keeps the raw reply in
    ``/var/lib/dhcpcd/<iface>.lease``; NetworkManager (bookworm) reports option 66 only
    through ``nmcli -f DHCP4 device show`` (its lease files hold no options).
    """
    iface = interface or default_route_interface(route)
    candidates: list[Path] = []
    if iface:
        candidates.append(dhcpcd / f"{iface}.lease")
    with contextlib.suppress(OSError):
        candidates += sorted(p for p in dhcpcd.glob("*.lease") if p not in candidates)
    for path in candidates:
        data = _read(path, discovery.MAX_LEASE)
        if not data:
            continue
        try:
            url = discovery.provisioning_url(discovery.parse_dhcpcd_lease(data))
        except ValueError as e:
            log.warning("provisioning: %s: %s", path, e)
            continue
        if url:
            return url
    try:
        nm_files = sorted(networkmanager.glob("*.lease"))
    except OSError:
        nm_files = []
    for path in nm_files:  # the sd-dhcp client's KEY=VALUE lease (older NetworkManager)
        data = _read(path)
        if data:
            options = discovery.networkmanager_options(
                discovery.parse_networkmanager_lease(data.decode("utf-8", "replace")))
            url = discovery.provisioning_url(options)
            if url:
                return url
    if nmcli and iface and shutil.which(nmcli):
        try:
            out = subprocess.run([nmcli, "-f", "DHCP4", "device", "show", iface],
                                 capture_output=True, text=True, timeout=3,
                                 env={**os.environ, "LC_ALL": "C"})
        except (OSError, subprocess.SubprocessError):
            return None
        if out.returncode == 0:
            options = discovery.networkmanager_options(
                discovery.parse_networkmanager_lease(out.stdout[:MAX_FILE]))
            return discovery.provisioning_url(options)
    return None
