"""The provisioning client's sync: a fake HTTP server (a dict of files), the real merge,
validation and state file. Real nginx and Kamailio: tests/integration/test_provisioning.py."""

from __future__ import annotations

import asyncio
import json
import random
import stat
import struct
from pathlib import Path
from typing import Any

import pytest

from deskphone.config import ConfigError, PhoneConfig, config_from_document
from deskphone.provision.boot import local_config, local_document
from deskphone.provision.client import Backoff, ProvisioningClient, redact, resync_delay
from deskphone.provision.fetch import Fetched, FetchError, FetchOptions
from deskphone.provision.host import lease_url, primary_mac

MAC = "b827eb123456"
BASE = "https://prov.example.com/phones"
LOCAL = '[provisioning]\nurl = "https://prov.example.com/phones"\n'
COMMON = '[account]\ndomain = "pbx.example.com"\nregistrar = "sip:pbx.example.com"\n' \
         '[audio]\ntones = "de"\n'
OWN = '[account]\nuser = "1001"\npassword = "s3cret-pw"\ndisplay_name = "Ann"\n'


class Server:
    """Files by URL; ETag = a hash of the body; 304 on a matching If-None-Match."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.down = False
        self.requests: list[tuple[str, str | None]] = []
        self.options: list[FetchOptions] = []

    def put(self, name: str, text: str | bytes) -> None:
        self.files[f"{BASE}/{name}"] = text.encode() if isinstance(text, str) else text

    def __call__(self, url: str, options: FetchOptions, etag: str | None) -> Fetched:
        self.requests.append((url, etag))
        self.options.append(options)
        if self.down:
            raise FetchError(f"{url}: connection refused", transient=True)
        body = self.files.get(redact(url))  # userinfo is for auth, not the path
        if body is None:
            return Fetched(url, 404, None, None)
        tag = f'"{hash(body) & 0xffffffff:x}"'
        if etag == tag:
            return Fetched(url, 304, None, tag)
        return Fetched(url, 200, body, tag)


async def until(predicate: Any, tries: int = 300) -> None:
    """Let the loop run (10 ms steps) until ``predicate()``; the client's clock runs fast."""
    for _ in range(tries):
        await asyncio.sleep(0.01)
        if predicate():
            return


class Harness:
    def __init__(self, tmp: Path, server: Server, local: str = LOCAL) -> None:
        self.local = local_document(local, "local.toml")
        self.config: PhoneConfig = local_config(self.local, "local.toml")
        self.applied: list[tuple[PhoneConfig, list[Any], bool | None]] = []
        self.events: list[dict[str, Any]] = []
        self.state = tmp / "provisioning.json"
        self.client = ProvisioningClient(
            local=self.local, state_path=self.state, current=lambda: self.config,
            apply=self._apply, broadcast=self.events.append, mac=lambda: MAC,
            fetcher=server, rng=random.Random(1))

    async def _apply(self, cfg: PhoneConfig, changes: list[Any], reboot: bool | None) -> None:
        self.config = cfg
        self.applied.append((cfg, changes, reboot))

    def sync(self, **kw: Any) -> Any:
        return asyncio.run(self.client.sync(**kw))

    def names(self) -> list[str]:
        return [e["event"] for e in self.events]


@pytest.fixture
def server() -> Server:
    s = Server()
    s.put("deskphone.toml", COMMON)
    s.put(f"{MAC}.toml", OWN)
    return s


def test_first_sync_applies_per_mac_over_common_over_local(tmp_path: Path,
                                                           server: Server) -> None:
    h = Harness(tmp_path, server)
    assert h.config.account.user == "unprovisioned"
    outcome = h.sync(reason="start")
    assert outcome.ok and outcome.changed
    cfg = h.config
    assert (cfg.account.user, cfg.account.domain, cfg.account.display_name) == (
        "1001", "pbx.example.com", "Ann")
    assert cfg.audio.tones == "de"
    assert cfg.provisioning.url == BASE  # the local file's key stays
    assert h.names() == ["provisioning", "provisioned"]
    assert h.events[0]["url"] == BASE
    assert {u for u, _ in server.requests} == {f"{BASE}/deskphone.toml", f"{BASE}/{MAC}.toml"}
    changes = h.events[1]["changes"]
    assert "account.password changed" in changes
    assert "s3cret-pw" not in json.dumps(h.events)
    assert stat.S_IMODE(h.state.stat().st_mode) == 0o600


def test_unchanged_files_cost_a_304_and_no_apply(tmp_path: Path, server: Server) -> None:
    h = Harness(tmp_path, server)
    h.sync()
    server.requests.clear()
    outcome = h.sync()
    assert outcome.ok and not outcome.changed
    assert len(h.applied) == 1
    assert all(etag is not None for _, etag in server.requests)  # If-None-Match sent
    assert h.events[-1] == {"event": "provisioned", "url": BASE, "changed": False,
                            "changes": [], "reboot": False}


def test_changed_file_is_applied_and_one_file_304_is_merged_from_the_saved_copy(
        tmp_path: Path, server: Server) -> None:
    h = Harness(tmp_path, server)
    h.sync()
    server.put("deskphone.toml", COMMON.replace('"de"', '"gb"'))
    outcome = h.sync()
    assert outcome.ok and outcome.changed
    assert h.config.audio.tones == "gb"
    assert h.config.account.user == "1001"  # the per-MAC file came back 304
    assert h.events[-1]["changes"] == ['audio.tones: "de" -> "gb"']


def test_missing_per_mac_file_falls_back_to_the_common_one(tmp_path: Path,
                                                          server: Server) -> None:
    del server.files[f"{BASE}/{MAC}.toml"]
    server.put("deskphone.toml", COMMON.replace("[account]\n", '[account]\nuser = "1001"\n'
                                                'password = "s3cret-pw"\n')
               + '[phone]\ndigit_map = "[1-9]xxx"\n')
    h = Harness(tmp_path, server)
    outcome = h.sync()
    assert outcome.ok
    assert h.config.phone.digit_map == "[1-9]xxx"
    assert h.config.account.user == "1001"


def test_the_unprovisioned_placeholder_is_never_a_base(tmp_path: Path, server: Server) -> None:
    """A 404 for the per-MAC file and a common file without a user: refused, not an
    account "unprovisioned" with an empty password at the office's PBX."""
    del server.files[f"{BASE}/{MAC}.toml"]
    h = Harness(tmp_path, server)
    outcome = h.sync()
    assert not outcome.ok
    assert "account.user: missing (required)" in outcome.error
    assert h.config.account.user == "unprovisioned" and h.applied == []


@pytest.mark.parametrize("name, body, words", [
    (f"{MAC}.toml", '[account]\nuser = "1001"\npassword = \n', [f"{MAC}.toml", "line 3"]),
    (f"{MAC}.toml", '[phone]\ninterdigit_timeout = "soon"\n',
     [f"{MAC}.toml", "phone.interdigit_timeout"]),
    ("deskphone.toml", "", ["deskphone.toml", "empty"]),
    ("deskphone.toml", '[audio]\ntones = "xx"\n', ["deskphone.toml", "audio.tones"]),
    ("deskphone.toml", '[account]\nuser = "1001"\n[bogus]\nx = 1\n',
     ["deskphone.toml", "bogus"]),
    (f"{MAC}.toml", '[account]\npassword = 42\n', [f"{MAC}.toml", "account.password"]),
    (f"{MAC}.toml", '[phone]\nstate_dir = "/tmp/x"\n', [f"{MAC}.toml", "phone.state_dir"]),
    (f"{MAC}.toml", b"[account]\nuser = \"\xff\"\n", [f"{MAC}.toml", "line 2"]),
])
def test_a_bad_file_changes_nothing_and_says_which_file(
        tmp_path: Path, server: Server, name: str, body: str | bytes,
        words: list[str]) -> None:
    h = Harness(tmp_path, server)
    h.sync()
    good = h.config
    saved = h.state.read_bytes()
    server.put(name, body)
    outcome = h.sync()
    assert not outcome.ok and not outcome.transient
    assert h.config is good and len(h.applied) == 1
    assert h.state.read_bytes() == saved
    assert h.client.status()["last_sync"] == "failed"
    assert h.client.status()["url"] == BASE
    failed = h.events[-1]
    assert failed["event"] == "provision_failed"
    for word in words:
        assert word in failed["reason"], failed["reason"]
    assert "s3cret-pw" not in json.dumps(h.events)


def test_an_oversized_file_is_refused(tmp_path: Path, server: Server) -> None:
    h = Harness(tmp_path, server)
    h.client._max_bytes = 1024
    server.put("deskphone.toml", COMMON + "#" * 2000 + "\n")
    outcome = h.sync()
    assert not outcome.ok
    assert "deskphone.toml" in outcome.error


def test_server_down_is_transient_and_keeps_the_last_good_config(
        tmp_path: Path, server: Server) -> None:
    h = Harness(tmp_path, server)
    h.sync()
    good = h.config
    server.down = True
    outcome = h.sync()
    assert not outcome.ok and outcome.transient
    assert h.config is good
    assert h.events[-1]["event"] == "provision_failed" and h.events[-1]["retry"] is True


def test_last_good_config_boots_after_a_restart_with_the_server_down(
        tmp_path: Path, server: Server) -> None:
    h = Harness(tmp_path, server)
    h.sync()
    cfg, why = ProvisioningClient.boot_config(h.local, h.state)
    assert why == "" and cfg is not None
    assert cfg.account.user == "1001" and cfg.audio.tones == "de"
    h.state.write_text("{ not json")
    cfg, why = ProvisioningClient.boot_config(h.local, h.state)
    assert cfg is None and why


def test_nothing_to_fetch_from(tmp_path: Path, server: Server) -> None:
    h = Harness(tmp_path, server, local="[phone]\n")
    outcome = h.sync(reason="console")
    assert not outcome.ok
    assert "no provisioning server" in outcome.error
    assert server.requests == []
    outcome = h.sync(reason="console", url=BASE)  # provision <url> on the console
    assert outcome.ok and h.config.account.user == "1001"
    # the URL that worked is used from now on
    server.requests.clear()
    assert h.sync(reason="resync").ok and server.requests


def test_both_files_missing_is_a_failure(tmp_path: Path) -> None:
    h = Harness(tmp_path, Server())
    outcome = h.sync()
    assert not outcome.ok and "404" in outcome.error


def test_mac_and_credentials_come_from_the_config(tmp_path: Path, server: Server) -> None:
    server.put("aabbccddeeff.toml", OWN)
    local = (LOCAL + 'mac = "AA:BB:CC:DD:EE:FF"\nusername = "phones"\npassword = "pw-2"\n'
             'ca_file = "/etc/ca.pem"\n')
    h = Harness(tmp_path, server, local)
    assert h.sync().ok
    assert f"{BASE}/aabbccddeeff.toml" in [u for u, _ in server.requests]
    opts = server.options[0]
    assert (opts.username, opts.password, opts.ca_file) == ("phones", "pw-2", "/etc/ca.pem")
    assert "pw-2" not in json.dumps(h.events)


def test_url_with_mac_placeholder_and_credentials_is_redacted(tmp_path: Path,
                                                              server: Server) -> None:
    server.files = {k.replace(BASE, f"{BASE}/{MAC}"): v for k, v in server.files.items()}
    url = "https://admin:hunter2@prov.example.com/phones/{mac}"
    with pytest.raises(ConfigError, match="use \\[provisioning\\] username"):
        Harness(tmp_path, server, f'[provisioning]\nurl = "{url}"\n')
    h = Harness(tmp_path, server, "[phone]\n")
    assert h.sync(reason="console", url=url).ok  # a URL typed on the console may hold them
    assert "hunter2" not in json.dumps(h.events)
    assert h.events[0]["url"] == f"{BASE}/{MAC}"
    assert redact("https://a:b@h:1/x") == "https://h:1/x"


def test_backoff_grows_with_jitter_and_caps() -> None:
    b = Backoff(random.Random(3))
    delays = [b.next() for _ in range(12)]
    assert 15 <= delays[0] <= 30
    assert 30 <= delays[1] <= 60
    assert all(1800 <= d <= 3600 for d in delays[8:])
    b.reset()
    assert b.next() <= 30
    spread = {round(resync_delay(3600, random.Random(seed))) for seed in range(20)}
    assert len(spread) > 10 and min(spread) >= 3600 and max(spread) <= 3960


def test_the_loop_retries_a_down_server_then_resyncs(tmp_path: Path, server: Server) -> None:
    """start() syncs at once (after a little jitter); a down server is tried again with
    back-off; a console request jumps the queue. The loop runs 10,000 times fast."""
    server.down = True
    h = Harness(tmp_path, server)
    h.client._scale = 10000.0

    async def run() -> None:
        h.client.start()
        await until(lambda: h.client.syncs >= 2)
        server.down = False
        await until(lambda: h.applied)
        await h.client.close()

    asyncio.run(run())
    assert h.applied and h.config.account.user == "1001"
    assert h.names().count("provision_failed") >= 2


# -- the machine: MAC and DHCP lease ------------------------------------------------


def test_primary_mac_is_the_default_route_interface(tmp_path: Path) -> None:
    net = tmp_path / "net"
    for name, mac in (("lo", "00:00:00:00:00:00"), ("eth0", "b8:27:eb:00:00:01"),
                      ("wlan0", "B8:27:EB:00:00:02")):
        (net / name).mkdir(parents=True)
        (net / name / "address").write_text(mac + "\n")
    route = tmp_path / "route"
    route.write_text("Iface\tDestination\tGateway\n"
                     "wlan0\t0001A8C0\t00000000\nwlan0\t00000000\t0101A8C0\n")
    assert primary_mac(net, route) == "b827eb000002"
    assert primary_mac(net, tmp_path / "none") == "b827eb000001"
    assert primary_mac(tmp_path / "nothing", tmp_path / "none") is None


def _lease(options: bytes) -> bytes:
    header = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 2, 1, 6, 0, 1, 0, 0, bytes(4),
                         bytes(4), bytes(4), bytes(4), bytes(16), b"", b"")
    return header + bytes((99, 130, 83, 99)) + options + b"\xff"


def test_lease_url_from_a_dhcpcd_lease(tmp_path: Path) -> None:
    dhcpcd = tmp_path / "dhcpcd"
    dhcpcd.mkdir()
    url = b"https://prov.example.com/{mac}"
    (dhcpcd / "eth0.lease").write_bytes(_lease(bytes((160, len(url))) + url))
    route = tmp_path / "route"
    route.write_text("Iface\tDestination\neth0\t00000000\n")
    assert lease_url(dhcpcd=dhcpcd, networkmanager=tmp_path / "nm", nmcli=None,
                     route=route) == url.decode()
    (dhcpcd / "eth0.lease").write_bytes(b"garbage")
    assert lease_url(dhcpcd=dhcpcd, networkmanager=tmp_path / "nm", nmcli=None,
                     route=route) is None


def test_no_url_anywhere_asks_plug_and_play_quietly(tmp_path: Path, server: Server) -> None:
    """No [provisioning] url, no DHCP option: at start the phone SUBSCRIBEs on the LAN
    and says nothing on the console; a URL the plug-and-play NOTIFY brings is used."""
    asked: list[str] = []
    h = Harness(tmp_path, server, local="[phone]\n")
    h.client._plug_and_play = asked.append
    outcome = h.sync(reason="start")
    assert not outcome.ok and asked == [MAC] and h.events == []
    assert server.requests == []
    h.client.offered_url = BASE  # what ProvisioningUrlOffered hands to offer_url()
    assert h.sync(reason="plug-and-play").ok
    assert h.config.account.user == "1001"
    assert h.events[0]["source"] == "plug-and-play"


def test_a_local_file_without_an_account_is_an_unprovisioned_phone() -> None:
    from deskphone.app import endpoint_config
    from deskphone.provision.boot import unprovisioned

    cfg = local_config(local_document(LOCAL, "local.toml"), "local.toml")
    assert unprovisioned(cfg) and cfg.account.registrar == ""
    assert endpoint_config(cfg, "192.0.2.7", 5060, None).accept_from == "proxy"
    full = config_from_document(local_document(
        LOCAL + OWN + 'domain = "pbx.example.com"\n', "x"), "x")
    assert not unprovisioned(full)


def test_credentials_go_only_to_the_configured_server(tmp_path: Path, server: Server) -> None:
    """A URL from the console (or DHCP, or plug-and-play) is fetched without the
    configured password and client certificate."""
    local = (LOCAL + 'username = "phones"\npassword = "pw-2"\nclient_cert = "/c.pem"\n'
             'client_key = "/k.pem"\n')
    h = Harness(tmp_path, server, local)
    assert h.sync().ok
    assert server.options[-1].password == "pw-2" and server.options[-1].client_cert
    server.files = {k.replace("prov.example.com", "other.example.net"): v
                    for k, v in server.files.items()}
    h.sync(reason="console", url="https://other.example.net/phones")
    elsewhere = server.options[-1]
    assert (elsewhere.username, elsewhere.password, elsewhere.client_cert) == ("", "", "")


def test_requests_coalesce_into_one_sync(tmp_path: Path, server: Server) -> None:
    """Twenty check-syncs before the loop gets to them are one fetch; one of them asking
    for a reboot is enough."""
    h = Harness(tmp_path, server)
    h.client._scale = 10000.0

    async def run() -> None:
        h.client.start()
        for i in range(20):
            h.client.request("check-sync", reboot=(i == 7))
        await until(lambda: h.client.syncs >= 1)
        await asyncio.sleep(0.05)
        await h.client.close()

    asyncio.run(run())
    assert h.client.syncs == 1
    assert len(server.requests) == 2  # two files, once
    assert h.applied[0][2] is True
    assert h.events[0]["reason"] == "check-sync"


def test_a_config_that_does_not_start_is_not_kept(tmp_path: Path, server: Server) -> None:
    """The phone could not start the new config and went back: provision_failed, nothing
    saved; the same files again are not tried again (each try restarts the SIP side);
    new files are."""
    from deskphone.provision.client import ApplyError

    h = Harness(tmp_path, server)

    async def refuse(cfg: PhoneConfig, changes: Any, reboot: Any) -> None:
        raise ApplyError("Cannot assign requested address")

    h.client._apply = refuse
    outcome = h.sync()
    assert not outcome.ok and "did not start: Cannot assign" in outcome.error
    assert not h.state.exists()
    assert h.events[-1]["event"] == "provision_failed"
    h.client._apply = h._apply
    server.requests.clear()
    again = h.sync()
    assert not again.ok and "is the one that did not start" in again.error
    assert h.applied == [] and all(etag for _, etag in server.requests)  # 304s
    server.put("deskphone.toml", COMMON.replace('"de"', '"fr"'))
    assert h.sync().changed and h.config.audio.tones == "fr"


def test_a_saved_set_the_phone_did_not_boot_from_waits_for_a_new_one(
        tmp_path: Path, server: Server) -> None:
    """The phone booted from its local file because the saved set did not start: the
    same set is not applied again; a changed one is."""
    h = Harness(tmp_path, server)
    h.sync()
    again = ProvisioningClient(local=h.local, state_path=h.state, current=lambda: h.config,
                               apply=h._apply, broadcast=h.events.append, mac=lambda: MAC,
                               fetcher=server, rng=random.Random(1), state_in_force=False)
    assert again.state is None
    outcome = asyncio.run(again.sync())
    assert not outcome.ok and "did not start when the phone booted" in outcome.error
    assert len(h.applied) == 1
    server.put(f"{MAC}.toml", OWN.replace("Ann", "Anne"))
    assert asyncio.run(again.sync()).ok and len(h.applied) == 2


def test_credentials_are_not_sent_where_a_provisioned_file_points(
        tmp_path: Path, server: Server) -> None:
    """The server's own file moves the phone to another server: the local password does
    not follow it there."""
    local = LOCAL + 'username = "phones"\npassword = "pw-2"\n'
    moved = "https://evil.example.net/x"
    server.put("deskphone.toml", COMMON + f'[provisioning]\nurl = "{moved}"\n')
    server.files.update({f"{moved}/deskphone.toml": COMMON.encode(),
                         f"{moved}/{MAC}.toml": OWN.encode()})
    h = Harness(tmp_path, server, local)
    assert h.sync().ok and h.config.provisioning.url == moved
    h.sync()
    assert server.requests[-1][0].startswith(moved)
    assert (server.options[-1].username, server.options[-1].password) == ("", "")


def test_check_sync_reboot_restarts_even_when_nothing_changed(tmp_path: Path,
                                                              server: Server) -> None:
    h = Harness(tmp_path, server)
    h.sync()
    assert h.sync(reason="check-sync", reboot=True).ok
    assert h.applied[-1][1:] == ([], True)
    assert h.events[-1]["reboot"] is True


def test_a_retry_asks_what_was_asked(tmp_path: Path, server: Server) -> None:
    """provision <url> while that server is down: the back-off retries that URL."""
    h = Harness(tmp_path, server, local="[phone]\n")
    h.client._scale = 10000.0
    server.down = True

    async def run() -> None:
        h.client.start()
        await asyncio.sleep(0.02)  # the start sync: no URL anywhere
        h.client.request("console", url=BASE)
        await until(lambda: h.names().count("provision_failed") >= 2)
        server.down = False
        await until(lambda: h.applied)
        await h.client.close()

    asyncio.run(run())
    assert h.applied and h.config.account.user == "1001"


def test_a_set_that_could_not_be_saved_is_saved_again(tmp_path: Path, server: Server) -> None:
    h = Harness(tmp_path, server)
    h.state.mkdir()  # a directory where the file should be: the save fails
    assert h.sync().ok and h.client._unsaved
    h.state.rmdir()
    assert h.sync().ok and not h.client._unsaved
    assert h.state.is_file()


def test_hostile_nesting_is_a_named_failure(tmp_path: Path, server: Server) -> None:
    server.put("deskphone.toml", "[phone]\nx = " + "[" * 5000 + "]" * 5000 + "\n")
    h = Harness(tmp_path, server)
    outcome = h.sync()
    assert not outcome.ok and not outcome.transient
    assert outcome.error.startswith("deskphone.toml: ")


def test_no_server_anywhere_is_retried_with_back_off(tmp_path: Path, server: Server) -> None:
    h = Harness(tmp_path, server, local="[phone]\n")
    outcome = h.sync(reason="start")
    assert not outcome.ok and outcome.transient  # DHCP may bring a URL later


def test_the_dhcp_url_comes_before_the_last_sync_s(tmp_path: Path, server: Server) -> None:
    h = Harness(tmp_path, server, local="[phone]\n")
    assert h.sync(reason="console", url=BASE).ok
    moved = "https://new.example.com/p"
    h.client._lease_url = lambda: moved
    server.files.update({k.replace(BASE, moved): v for k, v in server.files.items()})
    h.sync(reason="resync")
    assert server.requests[-1][0].startswith(moved)
    assert h.events[-2]["source"] == "DHCP"


def test_a_phone_set_up_by_hand_does_not_go_looking(tmp_path: Path, server: Server) -> None:
    """An account in the local file and no URL anywhere: no plug-and-play on the LAN, no
    back-off polling; the resync timer looks at DHCP again."""
    asked: list[str] = []
    h = Harness(tmp_path, server, local=OWN.replace("[account]\n", "[account]\n"
                                                    'domain = "pbx.example.com"\n'))
    h.client._plug_and_play = asked.append
    outcome = h.sync(reason="start")
    assert not outcome.ok and not outcome.transient
    assert asked == [] and h.events == []
