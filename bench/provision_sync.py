"""Milliseconds a phone spends on a provisioning sync when nothing changed (issue 10).

    .venv/bin/python bench/provision_sync.py [SYNCS]

A real nginx (Debian's, through the shipped site config, TLS with a CA made here, basic
auth) serves a common and a per-MAC file. The phone's provisioning client syncs once (200s,
validated, applied, saved), then SYNCS more times (default 50): each sends If-None-Match
for both files, gets two 304s and applies nothing. Printed: the median and 90th percentile
of those syncs, beside curl making the same two conditional HTTPS requests (the floor: a
TLS handshake and a request each, nothing of ours). Then the same from outside: a real
``deskphone run`` process, ``provision`` typed on its console, until its ``provisioned``
event arrives.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))

from nginx import CLIENT_MAC, Nginx, make_pki, missing_tools  # noqa: E402
from peers import HOST, PortAllocator  # noqa: E402
from phone import Console  # noqa: E402

from deskphone.config import PhoneConfig  # noqa: E402
from deskphone.provision.boot import local_config, local_document  # noqa: E402
from deskphone.provision.client import ProvisioningClient  # noqa: E402

COMMON = '[account]\ndomain = "pbx.example.org"\nregistrar = "sip:pbx.example.org"\n' \
         '[audio]\ntones = "de"\n'
OWN = '[account]\nuser = "1001"\npassword = "pw-1001"\ndisplay_name = "Desk 1"\n'


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def black_box(tmp: Path, site: Nginx, settings: dict[str, str], syncs: int) -> list[float]:
    """``provision`` on a running phone's console until its ``provisioned`` event."""
    ports = PortAllocator(None)
    sip, console, rtp = ports.take(), ports.take(udp=False), ports.take(4, tcp=False, even=True)
    keys = "".join(f'{k} = "{v}"\n' for k, v in settings.items())
    config = tmp / "phone.toml"
    config.write_text(
        f'[sip]\nlisten = "{HOST}:{sip}"\nrtp_port_min = {rtp}\nrtp_port_max = {rtp + 2}\n'
        f'[console]\nlisten = "tcp:{HOST}:{console}"\n[phone]\nstate_dir = "{tmp}/state"\n'
        f'[provisioning]\nurl = "{site.url("https")}"\nmac = "{CLIENT_MAC}"\n'
        f"resync_interval = 0\n{keys}")
    config.chmod(0o600)
    proc = subprocess.Popen([sys.executable, "-m", "deskphone.cli", "run", "-c", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        con = Console.connect(console, alive=lambda: proc.poll() is None)
        con.wait_event("provisioned", 20)  # the first sync, at start
        times = []
        for _ in range(syncs):
            start = time.perf_counter()
            con.command("provision")
            event = con.wait_event("provisioned", 10)
            times.append(time.perf_counter() - start)
            assert event["changed"] is False, event
        con.close()
        return times
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    syncs = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    missing = missing_tools()
    if missing:
        print(f"provision_sync: skipped, missing {', '.join(missing)}")
        return
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        root = tmp / "configs"
        root.mkdir()
        (root / "deskphone.toml").write_text(COMMON)
        (root / f"{CLIENT_MAC}.toml").write_text(OWN)
        pki = make_pki(tmp / "pki")
        with Nginx(tmp / "nginx", root=root, pki=pki, ports=PortAllocator(None),
                   ipv6=False) as site:
            settings = site.client_settings("https")
            keys = "".join(f'{k} = "{v}"\n' for k, v in settings.items())
            local = local_document(f'[provisioning]\nurl = "{site.url("https")}"\n'
                                   f'mac = "{CLIENT_MAC}"\n{keys}', "bench.toml")
            config: list[PhoneConfig] = [local_config(local, "bench.toml")]

            async def apply(cfg: PhoneConfig, changes: Any, reboot: Any) -> None:
                config[0] = cfg

            client = ProvisioningClient(local=local, state_path=tmp / "provisioning.json",
                                        current=lambda: config[0], apply=apply)

            async def run() -> list[float]:
                first = await client.sync("start")
                assert first.ok and first.changed, first
                times = []
                for _ in range(syncs):
                    start = time.perf_counter()
                    outcome = await client.sync("resync")
                    times.append(time.perf_counter() - start)
                    assert outcome.ok and not outcome.changed, outcome
                return times

            ours = asyncio.run(run())
            statuses = [line.split('"')[2].split()[0] for line in site.access_log("https")]
            # the first sync: 401 + 200 a file; every later one: 304 (Basic goes with the
            # first request once the server has taken it)
            assert set(statuses[4:]) == {"304"}, statuses[:8]
            curl = shutil.which("curl")
            floor: list[float] = []
            if curl:
                etags = {}
                for name in ("deskphone.toml", f"{CLIENT_MAC}.toml"):
                    head = subprocess.run(
                        [curl, "-sI", "--cacert", settings["ca_file"], "-u",
                         f"{settings['username']}:{settings['password']}",
                         f"{site.url('https')}/{name}"], capture_output=True, text=True)
                    etags[name] = next(line.split(":", 1)[1].strip()
                                       for line in head.stdout.splitlines()
                                       if line.lower().startswith("etag:"))
                for _ in range(syncs):
                    start = time.perf_counter()
                    for name, etag in etags.items():
                        subprocess.run(
                            [curl, "-s", "-o", "/dev/null", "--cacert", settings["ca_file"],
                             "-u", f"{settings['username']}:{settings['password']}",
                             "-H", f"If-None-Match: {etag}", f"{site.url('https')}/{name}"],
                            check=True)
                    floor.append(time.perf_counter() - start)
            outside = black_box(tmp, site, settings, syncs)
    print(f"provisioning sync, nothing changed (2 x 304 over HTTPS + basic auth), {syncs} "
          f"syncs: median {statistics.median(ours) * 1000:.1f} ms, "
          f"p90 {percentile(ours, 0.9) * 1000:.1f} ms")
    print(f"  from outside: a deskphone run process, provision on its console -> provisioned "
          f"event: median {statistics.median(outside) * 1000:.1f} ms, "
          f"p90 {percentile(outside, 0.9) * 1000:.1f} ms")
    if floor:
        print(f"  reference: curl, the same two conditional requests one after the other: "
              f"median {statistics.median(floor) * 1000:.1f} ms, "
              f"p90 {percentile(floor, 0.9) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
