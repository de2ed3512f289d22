"""Zero-touch provisioning end to end: the real phone (``deskphone run``), a real nginx
serving the files through the shipped site config (TLS with a CA made here, basic auth) and
a real Kamailio it registers to. A phone boots with nothing but the provisioning URL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from nginx import CLIENT_MAC, PASSWORD, Listener, Nginx, make_pki, require_nginx
from peers import HOST, Kamailio, PortAllocator, Sipp
from phone import PhoneProcess, scenario

pytestmark = pytest.mark.peers

SIP_PASSWORD = "secret1001"


@dataclass
class LocalSettings:
    """The phone's own file: where it listens and where its server is, no account."""

    sip_port: int
    console_port: int
    rtp_port: int
    url: str
    provisioning: dict[str, str]
    resync_interval: int = 0
    user: str = "1001"  # the Contact the tests expect (phone.py's _PhoneBase.contact)
    transport: str = "udp"

    def toml(self, state_dir: Path | None = None) -> str:
        keys = "".join(f"{k} = {json.dumps(v)}\n" for k, v in self.provisioning.items())
        state = f"state_dir = {json.dumps(str(state_dir))}\n" if state_dir else ""
        return (
            "[sip]\n"
            f'listen = "{HOST}:{self.sip_port}"\n'
            f"rtp_port_min = {self.rtp_port}\nrtp_port_max = {self.rtp_port + 2}\n"
            f'[console]\nlisten = "tcp:{HOST}:{self.console_port}"\n'
            f"[phone]\n{state}"
            f'[provisioning]\nurl = {json.dumps(self.url)}\nmac = "{CLIENT_MAC}"\n'
            f"resync_interval = {self.resync_interval}\n{keys}"
            '[log]\nlevel = "debug"\n'
        )


def account(kamailio: Kamailio, user: str = "1001", password: str = SIP_PASSWORD,
            extra: str = "") -> str:
    return (f'[account]\nuser = "{user}"\npassword = "{password}"\n'
            f'domain = "{kamailio.domain}"\nregistrar = "sip:{kamailio.domain}"\n'
            f"register_expires = 3600\n{extra}")


COMMON = '# the whole office\n[audio]\ntones = "de"\n'


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    require_nginx()
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def site(tmp_path: Path, pki, port_allocator: PortAllocator) -> Iterator[Nginx]:  # type: ignore[no-untyped-def]
    root = tmp_path / "configs"
    root.mkdir()
    listeners = (Listener("https"), Listener("wrong", cert="wrong_name"))
    with Nginx(tmp_path / "nginx", root=root, pki=pki, ports=port_allocator,
               listeners=listeners, ipv6=False) as server:
        yield server


def put(site: Nginx, name: str, text: str | bytes) -> None:
    """Replace a served file as the fleet tool does: a new file renamed over the old."""
    data = text.encode() if isinstance(text, str) else text
    temp = site.root / f".{name}.tmp"
    temp.write_bytes(data)
    temp.rename(site.root / name)


def new_phone(tmp_path: Path, site: Nginx, port_allocator: PortAllocator, *,
              url: str | None = None, resync_interval: int = 0,
              name: str = "phone") -> PhoneProcess:
    settings = LocalSettings(
        sip_port=port_allocator.take(), console_port=port_allocator.take(udp=False),
        rtp_port=port_allocator.take(4, tcp=False, even=True),
        url=url or site.url("https"), provisioning=site.client_settings("https"),
        resync_interval=resync_interval)
    return PhoneProcess(tmp_path / "phone", settings, name=name)  # type: ignore[arg-type]


def provisioned_phone(tmp_path: Path, site: Nginx, kamailio: Kamailio,
                      port_allocator: PortAllocator, **kw: object) -> PhoneProcess:
    """A phone started on the office's files (COMMON, account 1001), provisioned and
    registered."""
    put(site, "deskphone.toml", COMMON)
    put(site, f"{CLIENT_MAC}.toml", account(kamailio))
    p = new_phone(tmp_path, site, port_allocator, **kw).start()  # type: ignore[arg-type]
    try:
        provisioned(p)
        p.wait_registered(10)
    except BaseException:
        p.stop()
        raise
    return p


def wait_for(predicate, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def contacts(kamailio: Kamailio, user: str) -> list[str]:
    return [c["uri"] for c in kamailio.locations().get(user, [])]


def assert_no_secret(p: PhoneProcess, *secrets: str) -> None:
    status = json.dumps(p.console.status())
    events = json.dumps(p.console.events)
    log = p.log_text()
    for secret in (*secrets, PASSWORD):
        assert secret not in status and secret not in events, secret
        assert secret not in log, f"{secret!r} in the phone's log"


def provisioned(p: PhoneProcess, timeout: float = 10.0) -> dict:  # type: ignore[type-arg]
    return p.console.wait_event("provisioned", timeout)


def failed(p: PhoneProcess, timeout: float = 10.0) -> dict:  # type: ignore[type-arg]
    return p.console.wait_event("provision_failed", timeout)


# ---------------------------------------------------------------------------------------


def test_first_boot_with_only_a_url_registers_the_provisioned_account(
        tmp_path: Path, site: Nginx, kamailio: Kamailio, port_allocator: PortAllocator,
        sipp: Sipp) -> None:
    put(site, "deskphone.toml", COMMON)
    put(site, f"{CLIENT_MAC}.toml", account(kamailio, extra='display_name = "Reception"\n'))
    p = new_phone(tmp_path, site, port_allocator).start()
    try:
        started = p.console.wait_event("provisioning", 10)
        assert started["url"] == site.url("https")
        done = provisioned(p)
        assert done["changed"] is True
        assert "account.password changed" in done["changes"]
        p.wait_registered(10)
        assert contacts(kamailio, "1001") == [f"sip:1001@{HOST}:{p.sip_port}"]
        status = p.console.status()
        assert status["aor"] == f"sip:1001@{kamailio.domain}"
        assert status["provisioning"]["url"] == site.url("https")
        assert status["provisioning"]["last_sync"] == "ok"
        assert "Registered" in p.console.command("screen")["lines"]
        # the same files again: a 304 each, nothing applied; the server took Basic the
        # first time, so it goes with the first request now (no 401 round trip)
        seen = len(site.access_log("https", wait_for=4))
        p.console.command("provision")
        again = provisioned(p)
        assert again["changed"] is False
        log = site.access_log("https", wait_for=seen + 2)[seen:]
        assert sorted(line.split('"')[2].split()[0] for line in log) == ["304", "304"]

        # a check-sync from the registrar (Kamailio relays the admin's NOTIFY)
        put(site, f"{CLIENT_MAC}.toml", account(kamailio, "1003", "secret1003"))
        sipp.run(scenario("notify-check-sync-auth.xml"), "-s", "1001", "-au", "1002",
                 "-ap", "secret1002", "-key", "caller", "1002", "-key", "reboot", "false",
                 remote=kamailio.domain, timeout=10)
        p.console.wait_event("provisioning", 10, reason="check-sync")
        changes = provisioned(p)["changes"]
        assert 'account.user: "1001" -> "1003"' in changes
        assert wait_for(lambda: contacts(kamailio, "1003") != [], 10), p.describe()
        assert contacts(kamailio, "1001") == []  # the old account un-registered
        assert p.console.status()["aor"] == f"sip:1003@{kamailio.domain}"

        # the same NOTIFY straight from another address: 403, nothing fetched
        before = len(site.access_log("https"))
        syncs = [e for e in p.console.events if e["event"] == "provisioning"]
        sipp.run(scenario("notify-check-sync-direct.xml"), "-s", "1003",
                 remote=f"{HOST}:{p.sip_port}", timeout=10)
        p.console.command("status")  # the phone has handled the NOTIFY by now
        time.sleep(0.3)
        assert len(site.access_log("https")) == before
        assert [e for e in p.console.events if e["event"] == "provisioning"] == syncs
        assert "check-sync" in p.log_text() and "403" in p.log_text()
        assert_no_secret(p, SIP_PASSWORD, "secret1003")
    finally:
        assert p.stop() == 0


BAD_FILES = [
    ("syntax error", "[account]\nuser = \n", ["line 2", "TOML syntax error"]),
    ("wrong type", '[phone]\ninterdigit_timeout = "soon"\n', ["phone.interdigit_timeout"]),
    ("out of range", "[phone]\ninterdigit_timeout = 999\n", ["phone.interdigit_timeout"]),
    ("empty", "", ["empty file"]),
    ("truncated", '[account]\nuser = "10', ["line 2"]),
    ("unknown key", "[audio]\ntone = \"de\"\n", ["audio.tone", "unknown key"]),
    ("huge", "#" * (300 * 1024) + "\n", ["larger than"]),
]


def test_bad_files_leave_the_phone_registered_on_its_last_good_config(
        tmp_path: Path, site: Nginx, kamailio: Kamailio,
        port_allocator: PortAllocator) -> None:
    p = provisioned_phone(tmp_path, site, kamailio, port_allocator)
    try:
        good = p.console.status()["aor"]
        for what, text, words in BAD_FILES:
            put(site, f"{CLIENT_MAC}.toml", text)
            p.console.command("provision")
            reason = failed(p)["reason"]
            assert f"{CLIENT_MAC}.toml" in reason, (what, reason)
            for word in words:
                assert word in reason, (what, reason)
            status = p.console.status()
            assert status["registered"] and status["aor"] == good, what
        # a valid config that does not start here (an address not on this machine): the
        # phone goes back to the one it had, and says so
        put(site, f"{CLIENT_MAC}.toml", account(kamailio) + '[sip]\nlisten = "192.0.2.55:5060"\n')
        p.console.command("provision")
        assert "did not start" in failed(p, 15)["reason"]
        assert wait_for(lambda: p.console.status()["registered"], 10), p.describe()
        assert p.console.status()["aor"] == good
        # a bad common file is named as such
        put(site, f"{CLIENT_MAC}.toml", account(kamailio))
        put(site, "deskphone.toml", '[audio]\ntones = "klingon"\n')
        p.console.command("provision")
        assert "deskphone.toml: audio.tones" in failed(p)["reason"]
        # the display says so, briefly
        assert any("Provisioning failed" in line
                   for line in p.console.command("screen")["lines"])
        # no per-MAC file (404): the common file alone is the phone's config
        (site.root / f"{CLIENT_MAC}.toml").unlink()
        put(site, "deskphone.toml", COMMON + account(kamailio, "1002", "secret1002"))
        p.console.command("provision")
        assert 'account.user: "1001" -> "1002"' in provisioned(p)["changes"]
        assert wait_for(lambda: contacts(kamailio, "1002") != [], 10), p.describe()
        # wrong certificate name, server down: failures, still registered
        p.console.command(f"provision {site.url('wrong')}")
        assert "certificate" in failed(p)["reason"].lower()
        dead = f"https://{HOST}:{port_allocator.take()}"
        p.console.command(f"provision {dead}")
        gone = failed(p)
        assert gone["retry"] is True
        assert p.console.status()["registered"]
        assert_no_secret(p, SIP_PASSWORD, "secret1002")
    finally:
        assert p.stop() == 0


def test_resync_interval_and_the_last_good_config_across_a_restart(
        tmp_path: Path, site: Nginx, kamailio: Kamailio,
        port_allocator: PortAllocator) -> None:
    p = provisioned_phone(tmp_path, site, kamailio, port_allocator, resync_interval=1)
    try:
        # the timer fetches again by itself (1 s + up to 10% jitter)
        p.console.wait_event("provisioning", 5, reason="resync")
        put(site, "deskphone.toml", '[audio]\ntones = "gb"\n')
        for _ in range(10):  # the next resync brings it, without being asked
            if 'audio.tones: "de" -> "gb"' in provisioned(p, 5)["changes"]:
                break
        else:
            raise AssertionError("the resync did not bring the new tones")
    finally:
        assert p.stop() == 0
    # restart with the server gone: it boots from the last good config and registers
    dead = f"https://{HOST}:{port_allocator.take()}"
    q = new_phone(tmp_path, site, port_allocator, url=dead)
    q.settings.sip_port = p.settings.sip_port
    q.start()
    try:
        q.wait_registered(10)
        assert q.console.status()["aor"] == f"sip:1001@{kamailio.domain}"
        assert "provisioned config" in q.log_text()
        assert q.console.wait_event("provision_failed", 15)["retry"] is True
        assert_no_secret(q, SIP_PASSWORD)
    finally:
        assert q.stop() == 0


def test_check_sync_sent_by_kamailio_itself_with_kamcmd(
        tmp_path: Path, site: Nginx, kamailio: Kamailio,
        port_allocator: PortAllocator) -> None:
    """The admin guide's way: kamcmd tm.t_uac_start on the registrar's host sends the
    NOTIFY from Kamailio's own address, which the phone trusts; reboot=true restarts it."""
    p = provisioned_phone(tmp_path, site, kamailio, port_allocator)
    try:
        contact = contacts(kamailio, "1001")[0]
        put(site, "deskphone.toml", '[audio]\ntones = "fr"\n')
        out = kamailio.kamcmd(
            "tm.t_uac_start", "NOTIFY", contact, ".", ".",
            f"From: <sip:provisioning@{kamailio.domain}>;tag=cs1\r\n"
            f"To: <sip:1001@{kamailio.domain}>\r\n"
            "Event: check-sync;reboot=true\r\nSubscription-State: terminated\r\n"
            "Contact: <sip:provisioning@127.0.0.1>\r\nContent-Type: text/plain\r\n")
        assert out == ""
        assert wait_for(lambda: "restarting the phone" in p.log_text(), 10), p.describe()
        assert wait_for(lambda: 'audio.tones: "de" -> "fr"' in p.log_text(), 10)
        p.connect(10)  # the restart closed the console
        p.wait_registered(10)
        assert contacts(kamailio, "1001") == [contact]
    finally:
        assert p.stop() == 0


def test_a_phone_that_never_reached_its_server_says_so(
        tmp_path: Path, site: Nginx, port_allocator: PortAllocator) -> None:
    dead = f"https://{HOST}:{port_allocator.take()}"
    p = new_phone(tmp_path, site, port_allocator, url=dead).start()
    try:
        failed(p, 15)
        lines = p.console.command("screen")["lines"]
        assert lines[0].startswith("Not provisioned"), lines
        assert "Provisioning failed" in lines
        status = p.console.status()
        assert status["registered"] is False
        assert status["provisioning"]["last_sync"] == "failed"
    finally:
        assert p.stop() == 0
