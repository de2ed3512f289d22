"""Fixtures that start real SIP peers for one test each (the harness itself is peers.py).

    def test_call(kamailio, sipp, baresip):
        phone = baresip("1003")                  # registered at this test's Kamailio
        sipp.run("uac-call-auth.xml", "-s", "1003", "-au", "1001", "-ap", "secret1001",
                 "-key", "caller", "1001", "-d", "1000")   # SIPp's target: kamailio.domain
        phone.wait_event("CALL_CLOSED")

The phone itself (tests/integration/phone.py) comes from the `phone` factory:

    def test_dial(kamailio, phone):
        p = phone("1001", transport="tcp")       # `deskphone run`, registered at Kamailio
        p.console.command("dial 1002")
        p.console.wait_event("ringing")

Every test in this directory is marked `peers` (select with -m peers / -m "not peers").
A missing peer (binary or ../shared/peers) skips the test, or fails it when CI=true.
Runtime files (logs, traces, pidfiles) are in the test's tmp_path/peers; a failed test
prints the tails of the peers' logs in its teardown section.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from peers import (
    Baresip,
    Kamailio,
    PortAllocator,
    Sipp,
    in_ci,
    missing_peers,
)
from phone import (
    AudioSettings,
    PhoneError,
    PhoneProcess,
    PhoneSettings,
    PhoneThread,
    registrar_paused,
)

_HERE = Path(__file__).resolve().parent
_UNSET: Any = object()
_CALL_FAILED = pytest.StashKey[bool]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.peers)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed


def _failed(request: pytest.FixtureRequest) -> bool:
    return request.node.stash.get(_CALL_FAILED, False)


def require_peers(*binaries: str) -> None:
    """Skip (locally) or fail (CI=true) unless these peer binaries and shared/peers exist."""
    missing = missing_peers(*binaries)
    if missing:
        msg = f"SIP peers missing: {', '.join(missing)} (run: bash ../shared/peers/install.sh)"
        if in_ci():
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)


@pytest.fixture(scope="session")
def port_allocator() -> PortAllocator:
    return PortAllocator(os.environ.get("PYTEST_XDIST_WORKER"))


@pytest.fixture
def free_port(port_allocator: PortAllocator) -> Callable[..., int]:
    """free_port() -> a free UDP+TCP port; free_port(4, tcp=False, even=True) -> first of 4."""
    return port_allocator.take


@pytest.fixture
def peers_run(tmp_path: Path) -> Path:
    run = tmp_path / "peers"
    run.mkdir()
    return run


@pytest.fixture
def kamailio(
    request: pytest.FixtureRequest, peers_run: Path, port_allocator: PortAllocator
) -> Iterator[Kamailio]:
    """Kamailio (registrar + proxy, users 1001-1003) on its own udp+tcp port."""
    require_peers("kamailio", "kamcmd")
    for attempt in range(3):
        k = Kamailio(peers_run, port_allocator.take())
        try:
            k.start()
            break
        except RuntimeError as e:
            # lost a race for the port to another process: take another one
            if "in use" not in str(e) or attempt == 2:
                pytest.fail(str(e), pytrace=False)
    yield k
    if _failed(request):
        print(f"--- {k.log_path} (tail) ---\n{k.log_tail(40)}")
    k.stop()


@pytest.fixture
def sipp(
    request: pytest.FixtureRequest, peers_run: Path, port_allocator: PortAllocator
) -> Iterator[Sipp]:
    """SIPp runner; its default target is this test's Kamailio if the test uses `kamailio`."""
    require_peers("sipp")
    remote = None
    if "kamailio" in request.fixturenames:
        remote = request.getfixturevalue("kamailio").domain
    runner = Sipp(peers_run, port_allocator, remote)
    yield runner
    runner.kill_all()


@pytest.fixture
def baresip(
    request: pytest.FixtureRequest, peers_run: Path, port_allocator: PortAllocator
) -> Iterator[Callable[..., Baresip]]:
    """Factory: baresip(user, registrar=..., answer="manual", audio="echo", record=1, ...).

    Keyword options become BARESIP_<NAME> variables of start-baresip.sh (audio, answer,
    record, codecs, pass, siptrace). registrar defaults to this test's Kamailio if the test
    uses `kamailio`, else none (dial full URIs; the UA takes calls at .uri).
    """
    require_peers("baresip")
    default_registrar = None
    if "kamailio" in request.fixturenames:
        default_registrar = request.getfixturevalue("kamailio").domain
    started: list[Baresip] = []

    def start(user: str, *, registrar: str | None = _UNSET, **options: object) -> Baresip:
        env = {f"BARESIP_{k.upper()}": str(v) for k, v in options.items()}
        ua = Baresip(
            peers_run,
            user,
            sip_port=port_allocator.take(2),  # SIP udp+tcp on P, TLS listener on P+1
            ctrl_port=port_allocator.take(udp=False),
            registrar=default_registrar if registrar is _UNSET else registrar,
            env=env,
        )
        started.append(ua)
        return ua.start()

    yield start
    failed = _failed(request)
    for ua in started:
        ua.stop(timeout=0)  # the test's Kamailio goes too: no need to unregister
        if failed:
            print(f"--- {ua.log_path} (tail) ---\n{ua.log_tail(40)}")


@pytest.fixture
def phone(
    request: pytest.FixtureRequest, peers_run: Path, port_allocator: PortAllocator,
    kamailio: Kamailio,
) -> Iterator[Callable[..., PhoneProcess | PhoneThread]]:
    """Factory: phone(user="1001", transport="udp", password=None, expires=3600, ...).

    Starts the phone (`deskphone run` in a subprocess) registered at this test's Kamailio and
    returns it with `.console` connected; `registered=True` also waits for the registration.
    Kamailio is paused while the phone starts (registrar_paused), so the console client sees
    every event from the first REGISTER on. `start=False` returns it unstarted;
    `time_scale=N` runs it in this process instead, its clock N times faster (PhoneThread).
    `audio=AudioSettings(...)` is its [audio] section (default: the null backend);
    `env={...}` adds to its environment (a subprocess phone only).
    At teardown every phone still running gets SIGTERM and must exit 0; a failed test prints
    the tail of each phone's debug log.
    """
    started: list[PhoneProcess | PhoneThread] = []

    def start(
        user: str = "1001", *, transport: str = "udp", password: str | None = None,
        expires: int = 3600, registered: bool = True, start: bool = True,
        time_scale: float | None = None, name: str | None = None,
        audio: AudioSettings | None = None, env: dict[str, str] | None = None,
        hardware: Any = None,
    ) -> PhoneProcess | PhoneThread:
        label = name or f"phone-{user}-{len(started) + 1}"
        for attempt in range(3):
            settings = PhoneSettings.allocate(
                port_allocator, user=user, password=password, domain=kamailio.domain,
                transport=transport, expires=expires, audio=audio)
            ua: PhoneProcess | PhoneThread
            if time_scale is not None or hardware is not None:
                if env:
                    raise ValueError("env= needs a phone process, not time_scale=")
                ua = PhoneThread(peers_run, settings, time_scale=time_scale or 1.0,
                                 name=label, hardware=hardware)
            else:
                ua = PhoneProcess(peers_run, settings, name=label, env=env)
            if not start:
                started.append(ua)
                return ua
            try:
                with registrar_paused(kamailio):
                    ua.start()
                    # answered: the phone's loop has taken this client in (the connect
                    # alone is the kernel's doing), so it gets the registration's events
                    ua.console.status()
            except PhoneError:
                ua.stop()
                # a port found free, then taken by a process outside this run: again
                if "in use" in ua.describe() and attempt < 2:
                    continue
                print(ua.describe())
                raise
            started.append(ua)
            if registered:
                ua.wait_registered()
            return ua
        raise AssertionError("unreachable")

    yield start
    failed = _failed(request)
    bad = []
    for ua in started:
        rc = ua.stop()
        if rc != 0:
            bad.append(f"{ua.name} exited {rc}")
        if failed or rc != 0:
            print(ua.describe())
    if bad and not failed:
        pytest.fail("; ".join(bad), pytrace=False)
