"""Floods (issue 9, "Hardening: load and floods"): what a flood costs the phone.

1. Transaction cost against n, in-process (sans-I/O, no sockets): n INVITEs with
   distinct branches and Call-IDs from the proxy's host (the caps raised), each turned
   away 486 as the phone layer does when busy, and never ACKed, as a flood does; then
   the timers run until every transaction has expired. Also the same INVITEs from a
   stranger under ``accept_from = "proxy"``. CPU per transaction at each n and the
   ratio 4000/500 (linear: ~1; quadratic: ~8). The baseline is the SIP core of the
   commit before the heap of deadlines (0963188^), in the same run, up to
   ``--baseline-max``. Each contender runs in a child interpreter of its own.
2. OPTIONS floods against the running phone (``app.Phone`` on idle.py's mock board,
   registered at Kamailio): 200/s for 30 s from the proxy's host (127.0.0.1, admitted up
   to the caps) and from a stranger (127.0.0.2, dropped); the phone's CPU during the
   flood and in the 30 s after it; what the sender got back per request sent.
3. An INVITE flood from a stranger (127.0.0.2), 200/s for 20 s: the same figures, and
   meanwhile real calls through Kamailio, one each way (SIPp calls the phone, which
   answers on its console; the phone dials a SIPp callee), which must connect.
4. The phone's VmHWM after each flood (a fresh phone for each).

Before the floods, a floor: a bare asyncio UDP endpoint (this interpreter) that drops
everything, under the same stranger's INVITEs, to tell the phone's own work per datagram
from the wake-up and the loop's turn. ``--only invite-proxy`` adds an INVITE flood from
the proxy's host; ``--only options-baseline`` the proxy host's OPTIONS flood against the
whole firmware of 0963188^; ``--profile DIR`` samples each phone with py-spy.

CPU is the sum of ``/proc/<pid>/task/*/schedstat`` run time over the phone's threads (as
idle.py), but over a window in which a call's media thread came and went it is
``utime+stime``, which counts threads gone. Every request loop is bounded in count and
time; every address is loopback; every process started is stopped.

    python bench/floods.py [--seconds 30] [--invite-seconds 20] [--after 30] [--rate 200]
                           [--only txcost|options|invite|invite-proxy|options-baseline]
                           [--baseline-max 1000] [--repeat 3] [--profile DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BASELINE_COMMIT = "0963188^"  # the SIP core before the heap of deadlines and the caps
SIZES = (500, 1000, 2000, 4000)
PROXY_HOST = "127.0.0.1"  # Kamailio's host: the phone admits out-of-dialog requests
STRANGER = "127.0.0.2"  # any other host: dropped under accept_from = "proxy"

AFTER_TARGET = 2.0  # s of CPU in the 30 s after a 200/s OPTIONS flood of 30 s
INVITE_CPU_TARGET = 20.0  # % of one core during a stranger's INVITE flood
RSS_TARGET = 60.0  # MB, VmHWM

SDP = ("v=0\r\no=flood 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
       "m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
       "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n")


def request(method: str, n: int, tag: str, src: tuple[str, int],
            dst: tuple[str, int]) -> bytes:
    """One out-of-dialog request of a flood: its own branch, Call-ID and From tag."""
    host, port = src
    body = SDP.format(host=host) if method == "INVITE" else ""
    lines = [
        f"{method} sip:1001@{dst[0]}:{dst[1]} SIP/2.0",
        f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK-{tag}-{n}",
        "Max-Forwards: 70",
        f"From: <sip:flood@{host}>;tag={tag}{n}",
        f"To: <sip:1001@{dst[0]}:{dst[1]}>",
        f"Call-ID: {tag}-{n}@{host}",
        f"CSeq: 1 {method}",
    ]
    if method == "INVITE":
        lines += [f"Contact: <sip:flood@{host}:{port}>", "Content-Type: application/sdp"]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


# ------------------------------------------------------------ 1. transaction cost


def child_txcost(firmware: str, sizes: list[int], repeat: int) -> None:
    """In a fresh interpreter on ``firmware``'s SIP core: one JSON line per (source, n)."""
    sys.path.insert(0, firmware)
    import dataclasses

    from deskphone.sip import events as ev
    from deskphone.sip.endpoint import Endpoint, EndpointConfig
    from deskphone.sip.transaction import Addr
    from deskphone.sip.uri import SipUri

    names = {f.name for f in dataclasses.fields(EndpointConfig)}
    proxy = Addr("udp", PROXY_HOST, 5060)
    local = Addr("udp", PROXY_HOST, 5070)

    def endpoint(**caps: int) -> Any:
        cfg = EndpointConfig(user="1001", domain=f"{PROXY_HOST}:5060", password="x",
                             registrar=SipUri.parse(f"sip:{PROXY_HOST}:5060"), proxy=proxy,
                             local=local, accept_from="proxy")
        cfg = dataclasses.replace(cfg, **{k: v for k, v in caps.items() if k in names})
        return Endpoint(cfg, random.Random(1), 0.0)

    def run(n: int, source: Addr, **caps: int) -> dict[str, float]:
        ep = endpoint(**caps)
        msgs = [request("INVITE", i, "tx", (source.host, source.port), (local.host, 5070))
                for i in range(n)]
        sent = wakeups = 0
        c0 = time.process_time()
        for i, data in enumerate(msgs):  # 1 ms apart: all live at once (Timer H: 32 s)
            now = i * 0.001
            ep.receive(data, source, now)
            # what the runtime's pump does after every datagram
            sent += len(ep.datagrams_to_send(now))
            while (e := ep.next_event()) is not None:
                if isinstance(e, ev.IncomingCall):  # the phone is busy: 486
                    ep.reject(now, 486, e.call_id)
            sent += len(ep.datagrams_to_send(now))
            ep.get_timer()
        c1 = time.process_time()
        while (t := ep.get_timer()) is not None and wakeups < 100 * n:
            ep.handle_timer(t)
            wakeups += 1
            sent += len(ep.datagrams_to_send(t))
            while ep.next_event() is not None:
                pass
        c2 = time.process_time()
        live = len(ep._server_tx)  # noqa: SLF001
        return {"feed": c1 - c0, "expire": c2 - c1, "sent": sent, "wakeups": wakeups,
                "live": live}

    big = 10 ** 9
    for label, source, caps in (("proxy", Addr("udp", PROXY_HOST, 5999), {
            "max_server_tx": big, "max_server_tx_per_source": big}),
            ("stranger", Addr("udp", STRANGER, 5060), {})):
        best: dict[int, dict[str, float]] = {}
        for _ in range(repeat):  # round-robin: a busy moment hits every n alike
            for n in sizes:
                r = run(n, source, **caps)
                if n not in best or r["feed"] + r["expire"] < best[n]["feed"] + best[n]["expire"]:
                    best[n] = r
        for n in sizes:
            print(json.dumps({"source": label, "n": n, **best[n]}), flush=True)


def baseline_tree(tmp: Path) -> Path | None:
    """firmware/ of BASELINE_COMMIT, extracted into ``tmp`` (None: no git history)."""
    try:
        data = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar",
                               BASELINE_COMMIT, "firmware/deskphone"], capture_output=True,
                              check=True, timeout=60).stdout
    except (subprocess.CalledProcessError, FileNotFoundError, subprocess.TimeoutExpired):
        return None
    tmp.mkdir(parents=True, exist_ok=True)
    tar_path = tmp / "baseline.tar"
    tar_path.write_bytes(data)
    with tarfile.open(tar_path) as tar:
        tar.extractall(tmp, filter="data")
    return tmp / "firmware"


def txcost(sizes: list[int], baseline_max: int, repeat: int) -> None:
    def measure(firmware: Path, ns: list[int], reps: int) -> list[dict[str, Any]]:
        out = subprocess.run(
            [sys.executable, __file__, "--child", "txcost", str(firmware), str(reps),
             *map(str, ns)], capture_output=True, text=True, check=True, timeout=1800)
        return [json.loads(line) for line in out.stdout.splitlines()]

    ours = measure(REPO / "firmware", sizes, repeat)
    theirs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-floods-") as tmp:
        tree = baseline_tree(Path(tmp)) if baseline_max else None
        if tree is not None:
            theirs = measure(tree, [n for n in sizes if n <= baseline_max], 1)
    print("1. transaction cost: n INVITEs 1 ms apart, each 486 (busy) and never ACKed, "
          "then timers until all expired")
    print("   CPU per INVITE, µs (feed + expire), the best of --repeat runs; datagrams sent "
          "per INVITE; timer wake-ups")
    for source, what in (("proxy", "from the proxy's host, caps raised"),
                         ("stranger", 'from a stranger, accept_from = "proxy"')):
        print(f"   {what}:")
        print(f"   {'n':>6}  {'µs/INVITE':>12} {'(feed':>7} {'expire)':>8} {'sent/tx':>8} "
              f"{'wake-ups':>9}  {BASELINE_COMMIT + ' µs/INVITE':>20}")
        rows = {r["n"]: r for r in ours if r["source"] == source}
        base = {r["n"]: r for r in theirs if r["source"] == source}
        for n in sizes:
            r = rows[n]
            per = (r["feed"] + r["expire"]) / n * 1e6
            b = base.get(n)
            bs = f"{(b['feed'] + b['expire']) / n * 1e6:.0f}" if b else "-"
            print(f"   {n:>6}  {per:>12.1f} {r['feed'] / n * 1e6:>7.1f} "
                  f"{r['expire'] / n * 1e6:>8.1f} {r['sent'] / n:>8.1f} {r['wakeups']:>9}"
                  f"  {bs:>20}")
        lo, hi = min(sizes), max(sizes)

        def per_tx(r: dict[str, Any]) -> float:
            return (r["feed"] + r["expire"]) / r["n"]

        ratio = per_tx(rows[hi]) / per_tx(rows[lo])
        line = f"   ratio {hi}/{lo} of µs/INVITE: ours {ratio:.2f}"
        bn = sorted(base)
        if len(bn) >= 2:
            line += (f"; {BASELINE_COMMIT} {bn[-1]}/{bn[0]}: "
                     f"{per_tx(base[bn[-1]]) / per_tx(base[bn[0]]):.2f}")
        print(line + "  (linear ~1, quadratic ~n ratio)")
    print()


# --------------------------------------------------------------- the flood sender


@dataclass
class FloodStats:
    sent: int = 0
    send_errors: int = 0
    seconds: float = 0.0  # from the first send to the last
    got: Counter[str] = field(default_factory=Counter)  # status code -> responses received
    got_during: int = 0  # responses received before the last send

    @property
    def received(self) -> int:
        return sum(self.got.values())


class Flood:
    """``rate`` requests a second for ``seconds`` (at most rate*seconds of them, and
    never past seconds + 5 s) from ``host`` to the phone, in a thread; it keeps counting
    responses (retransmissions too) until ``stop()``."""

    def __init__(self, method: str, host: str, dst: tuple[str, int], rate: float,
                 seconds: float) -> None:
        self.method, self.dst, self.rate, self.seconds = method, dst, rate, seconds
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.stats = FloodStats()
        self.sending_done = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"flood-{method}", daemon=True)
        self._tag = f"f{random.getrandbits(32):08x}"

    def start(self) -> Flood:
        self._thread.start()
        return self

    def _drain(self) -> None:
        while True:
            try:
                data = self.sock.recv(65535)
            except BlockingIOError:
                return
            parts = data.split(b" ", 2)
            code = parts[1].decode(errors="replace") if data.startswith(b"SIP/2.0 ") else "req"
            self.stats.got[code] += 1

    def _run(self) -> None:
        self.sock.setblocking(False)
        src = self.sock.getsockname()
        total = int(self.rate * self.seconds)
        st = self.stats
        t0 = time.monotonic()
        end = t0 + self.seconds + 5.0
        try:
            while st.sent < total and not self._stop.is_set() and time.monotonic() < end:
                wait = t0 + st.sent / self.rate - time.monotonic()
                if wait > 0:
                    if select.select([self.sock], [], [], wait)[0]:
                        self._drain()
                    continue
                try:
                    self.sock.sendto(request(self.method, st.sent, self._tag, src, self.dst),
                                     self.dst)
                except OSError:
                    st.send_errors += 1
                st.sent += 1
            st.seconds = time.monotonic() - t0
            self._drain()
            st.got_during = st.received
        finally:
            self.sending_done.set()
        while not self._stop.is_set():
            if select.select([self.sock], [], [], 0.2)[0]:
                self._drain()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.sock.close()


# ------------------------------------------------------------ 2-4. the running phone


@dataclass
class CallResult:
    way: str
    connected: bool
    setup_ms: float | None  # from starting the caller to the phone's connected event
    clean: bool  # hung up and SIPp exited 0
    detail: str = ""


@dataclass
class PhoneFigures:
    label: str
    flood: FloodStats
    flood_only_s: float  # window: flood start to the calls
    flood_only_cpu: float  # s, schedstat
    flood_only_user: float  # s, utime (the rest of utime+stime is the kernel's: stime)
    flood_only_system: float  # s, stime
    flood_all_s: float  # window: the whole flood, calls included
    flood_all_cpu: float  # s, utime+stime (the call's media thread is gone by then)
    after_s: float
    after_cpu: float  # s, schedstat
    after_cpu_ticks: float
    rss_before_mb: float
    rss_mb: float
    hwm_mb: float
    calls: list[CallResult]
    registered: bool
    log_lines: int  # lines the phone logged from the flood's start to the end
    warnings: list[str]


def user_system(pid: int) -> tuple[float, float]:
    """utime, stime of the whole process (threads gone included), s."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    hz = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / hz, int(fields[12]) / hz


def _sipp_statuses(sipp_proc: Any) -> str:
    """The responses a SIPp received, in order, from its message trace."""
    import re

    try:
        text = sipp_proc.files["messages"].read_text(errors="replace")
    except FileNotFoundError:
        return ""
    codes = re.findall(r"message received \[\d+\] bytes :\s*\n(SIP/2.0 \d+|[A-Z]+ )", text)
    return " ".join(c.replace("SIP/2.0 ", "").strip() for c in codes)


def call_in(sipp: Any, console: Any, caller: str) -> CallResult:
    """SIPp (1002) calls the phone through Kamailio; the phone answers on its console."""
    from phone import PhoneError, sipp_caller

    console.forget()
    t0 = time.monotonic()
    uac = sipp_caller(sipp, "uac-call-auth.xml", "-d", "500")
    connected_at = None
    try:
        incoming = console.wait_event("incoming", 5.0, **{"from": caller})
        console.command("answer")
        console.wait_event("connected", 5.0, call_id=incoming["call_id"])
        connected_at = time.monotonic()
        try:
            console.wait_event("ended", 5.0, call_id=incoming["call_id"])
            hung_up = ""
        except PhoneError:
            console.command("hangup", check=False)
            hung_up = "the caller's BYE never ended the call; "
        result = uac.wait(10)
        return CallResult("SIPp -> phone", True, (connected_at - t0) * 1000,
                          result.ok and not hung_up,
                          hung_up + ("" if result.ok else f"SIPp exit {result.returncode}: "
                                                          f"{_sipp_statuses(uac)}"))
    except PhoneError as e:
        uac.kill()
        console.command("hangup", check=False)
        return CallResult("SIPp -> phone", connected_at is not None, None, False,
                          f"{str(e).splitlines()[0][:120]}; SIPp got: {_sipp_statuses(uac)}")


def call_out(sipp: Any, console: Any) -> CallResult:
    """The phone dials 1002, a SIPp callee registered at Kamailio, and hangs up."""
    from phone import PhoneError, sipp_callee, sipp_received

    console.forget()
    uas = sipp_callee(sipp, "uas.xml")
    t0 = time.monotonic()
    try:
        call_id = console.command("dial 1002")["call_id"]
        console.wait_event("connected", 5.0, call_id=call_id)
        setup = (time.monotonic() - t0) * 1000
        sipp_received(uas, "ACK")
        console.command("hangup")
        console.wait_event("ended", 5.0, call_id=call_id)
        result = uas.wait(10)
        return CallResult("phone -> SIPp", True, setup, result.ok,
                          "" if result.ok else f"SIPp exit {result.returncode}")
    except PhoneError as e:
        uas.kill()
        console.command("hangup", check=False)
        return CallResult("phone -> SIPp", False, None, False, str(e).splitlines()[0][:160])


def phone_config(k: Any, ports: Any, tmp: Path, name: str) -> tuple[Path, int, int]:
    """The phone's TOML (idle.py's, logging at info as a device does): path, SIP port,
    console port."""
    import idle

    sip, console_port = ports.take(), ports.take(udp=False)
    rtp = ports.take(4, tcp=False, even=True)
    path = tmp / f"{name}.toml"
    path.write_text(idle.phone_toml("1001", k, sip, console_port, rtp, tmp / f"{name}-state")
                    + '[log]\nlevel = "info"\n')
    return path, sip, console_port


def py_spy(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    """py-spy sampling the phone for ``seconds`` into ``out`` (collapsed stacks)."""
    import shutil

    binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(binary).exists():
        print("--profile needs py-spy (pip install py-spy)", file=sys.stderr)
        return None
    return subprocess.Popen([binary, "record", "-p", str(pid), "-d", str(max(1, int(seconds))),
                             "-r", "250", "-f", "raw", "-o", str(out)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def profile_summary(path: Path, top: int = 14) -> None:
    """Where the samples were: by the innermost frame (self) and by function (total)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    n = others = 0
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        print(f"     (no profile in {path})")
        return
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        c = int(count)
        if not stack.startswith("<module>"):  # not the asyncio loop's thread
            others += c
            continue
        frames = []
        for frame in stack.split(";"):  # "Class.func (path/file.py:123)"
            func, _, where = frame.partition(" (")
            frames.append(f"{func} ({where.rsplit('/', 1)[-1].split(':')[0]})")
        n += c
        if frames:
            own[frames[-1]] += c
        for f in set(frames):
            total[f] += c
    if not n:
        print(f"     (no samples of the loop's thread in {path})")
        return
    print(f"     py-spy, the loop's thread: {n} samples at 250/s, other threads {others} "
          f"({path}):")
    print("       self:  " + "; ".join(f"{f} {c / n:.0%}" for f, c in own.most_common(top)))
    print("       total: " + "; ".join(f"{f} {c / n:.0%}" for f, c in total.most_common(top)))


def flood_phone(k: Any, ports: Any, tmp: Path, label: str, method: str, host: str,
                rate: float, seconds: float, after: float, settle: float,
                profile: Path | None = None, firmware: Path | None = None) -> PhoneFigures:
    """A fresh phone, registered; a flood; calls halfway through; the window after.
    ``firmware``: another tree's firmware/ (the baseline's) instead of this one's."""
    import idle
    from peers import Sipp
    from phone import Console

    name = f"phone-{method.lower()}-{host}" + ("-baseline" if firmware else "")
    config, sip_port, console_port = phone_config(k, ports, tmp, name)
    log_path = tmp / f"{name}.log"
    tree = [str(firmware)] if firmware else []
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, __file__, "--child", "phone", str(config),
                                 *tree],
                                stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT)
    flood: Flood | None = None
    sipp = Sipp(tmp / f"{name}-sipp", ports, remote=k.domain)
    try:
        def describe() -> str:
            return log_path.read_text(errors="replace")[-3000:]

        console = Console.connect(console_port, alive=lambda: proc.poll() is None,
                                  describe=describe)
        if not console.status()["registered"]:
            console.wait_event("registered", 10.0)
        time.sleep(settle)
        log_start = log_path.stat().st_size
        s0, us0 = idle.sample(proc.pid), user_system(proc.pid)
        flood = Flood(method, host, (PROXY_HOST, sip_port), rate, seconds).start()
        first_half = max(1.0, seconds / 2)
        spy = py_spy(proc.pid, first_half - 0.5, profile / f"{name}.txt") if profile else None
        time.sleep(first_half)
        s1, us1 = idle.sample(proc.pid), user_system(proc.pid)
        if spy is not None:
            spy.wait(30)
        calls = [call_in(sipp, console, f"sip:1002@{k.domain}"), call_out(sipp, console)]
        flood.sending_done.wait(seconds + 10)
        s2 = idle.sample(proc.pid)
        time.sleep(after)
        s3 = idle.sample(proc.pid)
        registered = bool(console.status()["registered"])
        console.close()
        flood.stop()
        hz = os.sysconf("SC_CLK_TCK")
        text = log_path.read_bytes()[log_start:].decode(errors="replace")
        warnings = [line.split(" WARNING ", 1)[1] for line in text.splitlines()
                    if " WARNING " in line]
        return PhoneFigures(
            label=label, flood=flood.stats,
            flood_only_s=s1.at - s0.at, flood_only_cpu=(s1.run_ns - s0.run_ns) / 1e9,
            flood_only_user=us1[0] - us0[0], flood_only_system=us1[1] - us0[1],
            flood_all_s=s2.at - s0.at, flood_all_cpu=(s2.ticks - s0.ticks) / hz,
            after_s=s3.at - s2.at, after_cpu=(s3.run_ns - s2.run_ns) / 1e9,
            after_cpu_ticks=(s3.ticks - s2.ticks) / hz,
            rss_before_mb=s0.rss_kb / 1024, rss_mb=s3.rss_kb / 1024, hwm_mb=s3.hwm_kb / 1024,
            calls=calls, registered=registered, log_lines=text.count("\n"),
            warnings=warnings)
    finally:
        sipp.kill_all()
        if flood is not None and flood.sock.fileno() != -1:
            flood.stop()
        idle.stop_child(proc)


def child_floor(port: int) -> None:
    """A bare asyncio UDP endpoint that drops what it gets: the floor of a datagram's cost
    (wake-up, recvfrom, the loop's turn) for the same interpreter. Until SIGTERM."""
    import asyncio
    import signal

    class Drop(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
            pass

    async def run() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        transport, _ = await loop.create_datagram_endpoint(Drop, local_addr=(PROXY_HOST, port))
        print("ready", flush=True)
        await stop.wait()
        transport.close()

    asyncio.run(run())


def floor_cost(ports: Any, method: str, rate: float, seconds: float) -> tuple[float, float]:
    """CPU of the bare endpoint under the stranger's flood: (s, window s)."""
    import idle

    port = ports.take()
    proc = subprocess.Popen([sys.executable, __file__, "--child", "floor", str(port)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    flood: Flood | None = None
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the floor's endpoint did not start")
        time.sleep(0.5)
        a = idle.sample(proc.pid)
        flood = Flood(method, STRANGER, (PROXY_HOST, port), rate, seconds).start()
        flood.sending_done.wait(seconds + 10)
        b = idle.sample(proc.pid)
        return (b.run_ns - a.run_ns) / 1e9, b.at - a.at
    finally:
        if flood is not None:
            flood.stop()
        idle.stop_child(proc)


def report(f: PhoneFigures, seconds: float) -> None:
    st = f.flood
    rate = st.sent / st.seconds if st.seconds else 0.0
    got = ", ".join(f"{code}: {n}" for code, n in sorted(st.got.items())) or "nothing"
    print(f"   {f.label}: sent {st.sent} in {st.seconds:.1f} s ({rate:.0f}/s"
          + (f", {st.send_errors} send errors" if st.send_errors else "") + ")")
    print(f"     got back {st.received} datagrams ({got}); "
          f"reflection {st.received / max(st.sent, 1):.2f} per request "
          f"({st.got_during} while sending)")
    print(f"     phone CPU during the flood (no call): {f.flood_only_cpu:.2f} s over "
          f"{f.flood_only_s:.1f} s = {f.flood_only_cpu / f.flood_only_s * 100:.1f} % of a "
          f"core (user {f.flood_only_user:.2f} s, kernel {f.flood_only_system:.2f} s), "
          f"{f.flood_only_cpu * 1e6 / max(rate * f.flood_only_s, 1):.0f} µs per request")
    print(f"     whole flood with the calls: {f.flood_all_cpu:.2f} s over "
          f"{f.flood_all_s:.1f} s ({f.flood_all_cpu / f.flood_all_s * 100:.1f} %)")
    print(f"     phone CPU in the {f.after_s:.1f} s after: {f.after_cpu:.3f} s "
          f"(utime+stime {f.after_cpu_ticks:.2f} s)")
    print(f"     VmRSS {f.rss_before_mb:.1f} MB before, {f.rss_mb:.1f} after; "
          f"VmHWM {f.hwm_mb:.1f} MB; still registered: {'yes' if f.registered else 'NO'}; "
          f"log: {f.log_lines} lines, {len(f.warnings)} warnings")
    for w in f.warnings[:4]:
        print(f"       {w[:150]}")
    for c in f.calls:
        setup = f"{c.setup_ms:.0f} ms to connect" if c.setup_ms is not None else ""
        state = "connected" if c.connected else "DID NOT CONNECT"
        print(f"     call {c.way}: {state} {setup}"
              + ("" if c.clean else " (not clean)") + (f": {c.detail}" if c.detail else ""))


def floods(kinds: set[str], rate: float, seconds: float, invite_seconds: float,
           after: float, settle: float, profile: Path | None) -> list[PhoneFigures]:
    sys.path.insert(0, str(REPO / "bench"))
    import idle
    from peers import PortAllocator, missing_peers

    missing = missing_peers("kamailio", "sipp")
    if missing:
        print(f"the floods need Kamailio and SIPp: missing {', '.join(missing)} "
              "(bash ../shared/peers/install.sh)", file=sys.stderr)
        sys.exit(2)

    plan: list[tuple[str, str, str, float, bool]] = []
    if "options" in kinds:
        plan += [("OPTIONS from the proxy's host 127.0.0.1", "OPTIONS", PROXY_HOST, seconds,
                  False),
                 ("OPTIONS from a stranger 127.0.0.2", "OPTIONS", STRANGER, seconds, False)]
    if "options-baseline" in kinds:
        plan.append((f"OPTIONS from the proxy's host 127.0.0.1, {BASELINE_COMMIT}'s firmware",
                     "OPTIONS", PROXY_HOST, seconds, True))
    if "invite" in kinds:
        plan.append(("INVITE from a stranger 127.0.0.2", "INVITE", STRANGER, invite_seconds,
                     False))
    if "invite-proxy" in kinds:
        plan.append(("INVITE from the proxy's host 127.0.0.1", "INVITE", PROXY_HOST,
                     invite_seconds, False))
    out = []
    ports = PortAllocator()
    floor_s = max(1.0, min(seconds, invite_seconds) / 2)
    cpu, span = floor_cost(ports, "INVITE", rate, floor_s)
    print(f"   floor: a bare asyncio UDP endpoint (this interpreter, drops everything) "
          f"under the stranger's INVITEs, {rate:g}/s for {floor_s:g} s: {cpu:.2f} s of CPU = "
          f"{cpu / span * 100:.1f} % of a core, {cpu * 1e6 / (rate * floor_s):.0f} µs per "
          f"datagram\n", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-floods-") as tmp_name:
        tmp = Path(tmp_name)
        with idle.kamailio(tmp / "kamailio", ports) as k:
            for label, method, host, secs, baseline in plan:
                tree = baseline_tree(tmp / "baseline") if baseline else None
                if baseline and tree is None:
                    print(f"no {BASELINE_COMMIT} in git: its flood left out\n")
                    continue
                f = flood_phone(k, ports, tmp, label, method, host, rate, secs, after, settle,
                                profile, tree)
                print(f"{len(out) + 2}. {method} flood, {rate:g}/s for {secs:g} s, a fresh "
                      f"phone registered at Kamailio")
                report(f, secs)
                if profile is not None:
                    suffix = "-baseline" if baseline else ""
                    profile_summary(profile / f"phone-{method.lower()}-{host}{suffix}.txt")
                print(flush=True)
                out.append(f)
    return out


def verdict(results: list[PhoneFigures]) -> None:
    print("targets:")
    for f in results:
        if f.flood.seconds and "OPTIONS" in f.label:
            ok = f.after_cpu < AFTER_TARGET * f.after_s / 30.0
            print(f"   {f.label}: CPU after < {AFTER_TARGET:g} s per 30 s: "
                  f"{'met' if ok else 'MISSED'} ({f.after_cpu:.3f} s in {f.after_s:.0f} s)")
        if "INVITE from a stranger" in f.label:
            pct = f.flood_only_cpu / f.flood_only_s * 100
            print(f"   {f.label}: CPU < {INVITE_CPU_TARGET:g} % of a core: "
                  f"{'met' if pct < INVITE_CPU_TARGET else 'MISSED'} ({pct:.1f} %); "
                  f"nothing reflected: {'met' if f.flood.received == 0 else 'MISSED'} "
                  f"({f.flood.received})")
        calls = all(c.connected for c in f.calls)
        print(f"   {f.label}: calls during the flood connect: "
              f"{'met' if calls else 'MISSED'}; VmHWM <= {RSS_TARGET:g} MB: "
              f"{'met' if f.hwm_mb <= RSS_TARGET else 'MISSED'} ({f.hwm_mb:.1f} MB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="OPTIONS floods (30)")
    ap.add_argument("--invite-seconds", type=float, default=20.0, help="INVITE flood (20)")
    ap.add_argument("--after", type=float, default=30.0,
                    help="window after a flood whose CPU is counted (30)")
    ap.add_argument("--rate", type=float, default=200.0, help="requests per second (200)")
    ap.add_argument("--settle", type=float, default=2.0,
                    help="seconds after registering before a flood (2)")
    ap.add_argument("--only", action="append",
                    choices=("txcost", "options", "invite", "invite-proxy", "options-baseline"),
                    help="one part (repeatable); invite-proxy and options-baseline (the proxy "
                         f"host's OPTIONS flood on {BASELINE_COMMIT}'s firmware) run only "
                         "when named")
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)))
    ap.add_argument("--baseline-max", type=int, default=1000,
                    help=f"largest n run on {BASELINE_COMMIT}'s core, 0: none (1000)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each n, best counts (3)")
    ap.add_argument("--profile", type=Path, metavar="DIR",
                    help="py-spy the phone in each flood's first half (its figures then "
                         "include py-spy's pauses: not for the record)")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        kind, *args = a.child
        if kind == "txcost":
            child_txcost(args[0], [int(x) for x in args[2:]], int(args[1]))
        elif kind == "floor":
            child_floor(int(args[0]))
        else:
            sys.path.insert(0, str(REPO / "bench"))
            import idle  # puts this tree's firmware/ first on sys.path

            if len(args) > 1:  # the baseline's firmware/ before it
                sys.path.insert(0, args[1])
            idle.child_deskphone(args[0])
        return
    only = set(a.only or ("txcost", "options", "invite"))
    head = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                          capture_output=True, text=True).stdout.strip()
    print(f"floods on {head or 'this tree'}, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} cores\n")
    if "txcost" in only:
        txcost([int(x) for x in a.sizes.split(",")], a.baseline_max, a.repeat)
    kinds = only - {"txcost"}
    if kinds:
        if a.profile:
            a.profile.mkdir(parents=True, exist_ok=True)
        results = floods(kinds, a.rate, a.seconds, a.invite_seconds, a.after, a.settle,
                         a.profile)
        verdict(results)


if __name__ == "__main__":
    main()
