"""Idle CPU and memory of the running phone, against pyVoIP 1.6.8's VoIPPhone.

Two child processes registered at one Kamailio on 127.0.0.1, no call, measured over
the same window after start-up has settled:

- deskphone: ``app.Phone`` as the simulator and the HIL tests build it: keypad, hook,
  ringer and lamps on gpiozero's MockFactory with ``hw.sim.PhoneSim`` on the far end
  of the wires, the OLED renderer on luma's dummy device, the TCP console listening
  with a client (this script) connected;
- pyVoIP: ``VoIPPhone`` (its SIP thread polls its socket with ``sleep(0.01)``).

CPU is the sum over the child's threads of ``/proc/<pid>/task/*/schedstat`` (run
time in ns; ``utime+stime`` of ``/proc/<pid>/stat`` is shown too, but its 10 ms ticks
are coarse for a figure of tens of ms over 30 s). Wake-ups are context switches
(voluntary + involuntary) of all threads. Memory is ``VmRSS``/``VmHWM`` of
``/proc/<pid>/status`` at the end of the window.

    python bench/idle.py [--seconds 30] [--settle 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "firmware"))
sys.path.insert(0, str(REPO / "tests" / "integration"))  # the peers' helpers

from peers import HOST, Kamailio, PortAllocator, missing_peers  # noqa: E402

CPU_TARGET = 0.2  # % of one core
RSS_TARGET = 60.0  # MB


# the mock board: the firmware's own (simulator, HIL tests and benches build alike)
from deskphone.hw.mockboard import MockBoard  # noqa: E402


def phone_toml(user: str, kamailio: Kamailio, sip_port: int, console_port: int,
               rtp_port: int, state_dir: Path) -> str:
    return (
        "[account]\n"
        f'user = "{user}"\npassword = "secret{user}"\n'
        f'domain = "{kamailio.domain}"\nregistrar = "{kamailio.uri}"\n'
        'transport = "udp"\nregister_expires = 3600\n'
        "[sip]\n"
        f'listen = "{HOST}:{sip_port}"\n'
        f"rtp_port_min = {rtp_port}\nrtp_port_max = {rtp_port + 2}\n"
        "[console]\n"
        f'listen = "tcp:{HOST}:{console_port}"\n'
        "[phone]\n"
        f'state_dir = "{state_dir}"\n'
        "[audio]\n"
        'backend = "null"\n'
    )


@contextmanager
def kamailio(run_dir: Path, ports: PortAllocator) -> Iterator[Kamailio]:
    """Kamailio on a free port of 127.0.0.1 (tests/integration/peers.py), stopped after."""
    missing = missing_peers("kamailio")
    if missing:
        print(f"needs Kamailio: missing {', '.join(missing)} "
              "(bash ../shared/peers/install.sh)", file=sys.stderr)
        sys.exit(2)
    for attempt in range(3):
        k = Kamailio(run_dir, ports.take())
        try:
            k.start()
            break
        except RuntimeError:
            if attempt == 2:
                raise
    try:
        yield k
    finally:
        k.stop()


# ----------------------------------------------------------------------- children


def child_deskphone(config: str) -> None:
    """The phone as `deskphone run` runs it, on the mock board: until SIGTERM."""
    import asyncio
    import logging

    from deskphone.app import Phone
    from deskphone.config import load_config

    cfg = load_config(config)
    logging.basicConfig(level=cfg.log.level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    board = MockBoard()
    asyncio.run(Phone(cfg, hardware=board.build).run())  # SIGTERM: un-register, close


def child_pyvoip(server_port: int, user: str, sip_port: int, rtp_port: int) -> None:
    """pyVoIP's phone registered, then idle until SIGTERM."""
    import pyVoIP.VoIP  # noqa: F401  (import order avoids pyVoIP's circular import)
    from pyVoIP.VoIP import PhoneStatus, VoIPPhone

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    phone = VoIPPhone(HOST, server_port, user, f"secret{user}", myIP=HOST, sipPort=sip_port,
                      rtpPortLow=rtp_port, rtpPortHigh=rtp_port + 3)
    phone.start()  # returns once REGISTER got its 200
    status = phone.get_status()
    print("registered" if status == PhoneStatus.REGISTERED else f"not registered: {status}",
          flush=True)
    while not stop.wait(3600):
        pass
    phone.stop()


# ------------------------------------------------------------------- measurements


@dataclass
class Sample:
    at: float  # monotonic s
    run_ns: int  # sum of the threads' schedstat run time
    ticks: int  # utime + stime, clock ticks (includes threads gone)
    switches: int  # context switches of the threads alive
    threads: int
    rss_kb: int
    hwm_kb: int


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def sample(pid: int) -> Sample:
    run_ns = switches = threads = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            run_ns += int(_read(f"/proc/{pid}/task/{task}/schedstat").split()[0])
            status = _read(f"/proc/{pid}/task/{task}/status")
        except (FileNotFoundError, ProcessLookupError):
            continue
        threads += 1
        for line in status.splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                switches += int(line.split()[1])
    stat = _read(f"/proc/{pid}/stat")
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    mem = {}
    for line in _read(f"/proc/{pid}/status").splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            mem[key] = int(value.split()[0])
    return Sample(time.monotonic(), run_ns, ticks, switches, threads, mem["VmRSS"],
                  mem["VmHWM"])


@dataclass
class Figures:
    cpu: float  # % of one core, schedstat
    cpu_ticks: float  # % of one core, utime+stime
    wakeups: float  # context switches per second
    threads: int
    rss_mb: float
    hwm_mb: float


def figures(a: Sample, b: Sample) -> Figures:
    span = b.at - a.at
    hz = os.sysconf("SC_CLK_TCK")
    return Figures(cpu=(b.run_ns - a.run_ns) / 1e9 / span * 100,
                   cpu_ticks=(b.ticks - a.ticks) / hz / span * 100,
                   wakeups=(b.switches - a.switches) / span, threads=b.threads,
                   rss_mb=b.rss_kb / 1024, hwm_mb=b.hwm_kb / 1024)


# -------------------------------------------------------------------------- parent


def stop_child(proc: subprocess.Popen[Any], timeout: float = 8.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(seconds: float, settle: float) -> tuple[Figures, Figures]:
    from phone import Console

    ports = PortAllocator()
    procs: list[subprocess.Popen[Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp_name:
        tmp = Path(tmp_name)
        with kamailio(tmp / "kamailio", ports) as k:
            try:
                sip, console_port = ports.take(), ports.take(udp=False)
                rtp = ports.take(4, tcp=False, even=True)
                config = tmp / "deskphone.toml"
                config.write_text(phone_toml("1001", k, sip, console_port, rtp, tmp / "state"))
                log_path = tmp / "deskphone.log"
                with open(log_path, "wb") as log:
                    ours = subprocess.Popen(
                        [sys.executable, __file__, "--child", "deskphone", str(config)],
                        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
                procs.append(ours)
                py_sip, py_rtp = ports.take(), ports.take(4, tcp=False, even=True)
                theirs = subprocess.Popen(
                    [sys.executable, __file__, "--child", "pyvoip", str(k.port), "1002",
                     str(py_sip), str(py_rtp)],
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
                procs.append(theirs)

                def describe() -> str:
                    return log_path.read_text(errors="replace")[-3000:]

                console = Console.connect(console_port, alive=lambda: ours.poll() is None,
                                          describe=describe)
                if not console.status()["registered"]:
                    console.wait_event("registered", 10.0)
                assert theirs.stdout is not None
                line = theirs.stdout.readline().strip()
                if line != "registered":
                    raise RuntimeError(f"pyVoIP: {line or 'exited'}")
                time.sleep(settle)  # imports done, first frame drawn, pyVoIP's thread up
                a = {p.pid: sample(p.pid) for p in procs}
                time.sleep(seconds)
                b = {p.pid: sample(p.pid) for p in procs}
                if not console.status()["registered"]:
                    raise RuntimeError("deskphone lost its registration during the window")
                console.close()
                return (figures(a[ours.pid], b[ours.pid]),
                        figures(a[theirs.pid], b[theirs.pid]))
            finally:
                for proc in reversed(procs):
                    stop_child(proc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="measuring window (30)")
    ap.add_argument("--settle", type=float, default=3.0,
                    help="seconds after registering before the window opens (3)")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        kind, *args = a.child
        if kind == "deskphone":
            child_deskphone(args[0])
        else:
            child_pyvoip(int(args[0]), args[1], int(args[2]), int(args[3]))
        return

    ours, theirs = run(a.seconds, a.settle)
    print(f"idle, registered at Kamailio, no call, over {a.seconds:g} s "
          f"(after {a.settle:g} s to settle)")
    print(f"{'':28}{'deskphone':>12}{'pyVoIP 1.6.8':>14}")
    rows = [
        ("CPU, % of one core", f"{ours.cpu:.3f}", f"{theirs.cpu:.3f}"),
        ("  (utime+stime, 10 ms ticks)", f"{ours.cpu_ticks:.3f}", f"{theirs.cpu_ticks:.3f}"),
        ("wake-ups / s", f"{ours.wakeups:.1f}", f"{theirs.wakeups:.1f}"),
        ("threads", str(ours.threads), str(theirs.threads)),
        ("VmRSS, MB", f"{ours.rss_mb:.1f}", f"{theirs.rss_mb:.1f}"),
        ("VmHWM, MB", f"{ours.hwm_mb:.1f}", f"{theirs.hwm_mb:.1f}"),
    ]
    for name, x, y in rows:
        print(f"{name:28}{x:>12}{y:>14}")
    ratio = theirs.cpu / ours.cpu if ours.cpu > 0 else float("inf")
    print(f"pyVoIP uses {ratio:.0f}x the CPU")
    cpu_ok = "met" if ours.cpu <= CPU_TARGET else "MISSED"
    rss_ok = "met" if ours.rss_mb <= RSS_TARGET else "MISSED"
    print(f"target CPU <= {CPU_TARGET} %: {cpu_ok}; target RSS <= {RSS_TARGET:g} MB: {rss_ok}")


if __name__ == "__main__":
    main()
