"""``[console] allow_direct_uris = false``: the console's dial reaches the account's domain only.

The check is pure (``direct_uri_refusal``) and judges the URI the endpoint would call, so a
table of what people type, run through a real endpoint's ``target_uri``, covers it.
"""

from __future__ import annotations

import pytest
from sipfakes import endpoint

from deskphone.console import ConsoleCommands
from deskphone.phone import events as pe
from deskphone.runtime.control import RuntimeControl, direct_uri_refusal
from deskphone.sip.errors import LocalProtocolError
from deskphone.sip.uri import SipUri

OFF = "direct SIP URIs are off (console.allow_direct_uris = false): "


def refusal(target: str, domain: str = "pbx.example.com", transport: str = "udp") -> str | None:
    ep = endpoint("1001", "127.0.0.1", domain=domain, transport=transport)
    return direct_uri_refusal(ep.target_uri(target), SipUri.parse(ep.aor), transport)


@pytest.mark.parametrize(
    "target",
    [
        "1002",
        "*97",
        "1002@pbx.example.com",
        "sip:1002@pbx.example.com",
        "sip:1002@PBX.Example.com",
        "sips:1002@pbx.example.com",
        "sip:1002@pbx.example.com;transport=udp",
        "sip:1002@pbx.example.com;transport=UDP",
        "sip:1002;maddr=10.0.0.9@pbx.example.com",  # inside the user part: not a parameter
    ],
)
def test_numbers_and_the_domains_uris_dial(target: str) -> None:
    assert refusal(target) is None


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("sip:1002@10.0.0.9", "sip:1002@10.0.0.9 is not at the account's domain "
                              "pbx.example.com"),
        ("1002@evil.example", "sip:1002@evil.example is not at the account's domain "
                              "pbx.example.com"),
        ("sip:[2001:db8::1]", "sip:[2001:db8::1] is not at the account's domain "
                              "pbx.example.com"),
        ("sip:1002@pbx.example.com.evil.example",
         "sip:1002@pbx.example.com.evil.example is not at the account's domain "
         "pbx.example.com"),
        ("sip:1002@pbx.example.com:5070", "sip:1002@pbx.example.com:5070 names port 5070; "
                                          "the account's domain is pbx.example.com"),
        ("sip:1002@pbx.example.com:5060", "sip:1002@pbx.example.com:5060 names port 5060; "
                                          "the account's domain is pbx.example.com"),
        ("sip:1002@pbx.example.com;maddr=10.0.0.9",
         "sip:1002@pbx.example.com;maddr=10.0.0.9 has maddr, which sends the call to "
         "another host"),
        ("sip:1002@pbx.example.com;transport=tcp",
         "sip:1002@pbx.example.com;transport=tcp asks for transport=tcp; the account uses udp"),
        ("sip:1002@pbx.example.com?Route=%3Csip:10.0.0.9%3E",
         "sip:1002@pbx.example.com?Route=%3Csip:10.0.0.9%3E carries headers"),
    ],
)
def test_other_hosts_ports_and_routes_are_refused(target: str, reason: str) -> None:
    assert refusal(target) == OFF + reason


def test_a_domain_with_a_port() -> None:
    domain = "pbx.example.com:5160"
    assert refusal("1002", domain) is None
    assert refusal("sip:1002@pbx.example.com:5160", domain) is None
    assert refusal("sip:1002@pbx.example.com", domain) is None  # routed to the domain too
    assert refusal("sip:1002@pbx.example.com:5060", domain) == (
        OFF + "sip:1002@pbx.example.com:5060 names port 5060; the account's domain is "
        "pbx.example.com:5160")


def test_an_ipv6_domain_and_a_tcp_account() -> None:
    assert refusal("1002", "[2001:db8::1]") is None
    assert refusal("sip:1002@[2001:DB8::1]", "[2001:db8::1]") is None
    assert refusal("sip:1002@pbx.example.com;transport=tcp", transport="tcp") is None
    assert refusal("sip:1002@pbx.example.com;transport=udp", transport="tcp") == (
        OFF + "sip:1002@pbx.example.com;transport=udp asks for transport=udp; the account "
        "uses tcp")


# --- where the console's dial meets it --------------------------------------------------


class FakeRuntime:
    """What RuntimeControl.dial touches: the endpoint, command(), last_placed."""

    def __init__(self) -> None:
        self.endpoint = endpoint("1001", "127.0.0.1", domain="pbx.example.com")
        self.commands: list[object] = []
        self.last_placed: object = None

    def command(self, event: object) -> None:
        """Place the call as the runtime would: the endpoint's URI, or why it cannot."""
        self.commands.append(event)
        assert isinstance(event, pe.DialCommand)
        try:
            uri = str(self.endpoint.target_uri(event.target))
        except LocalProtocolError as exc:
            self.last_placed = pe.CallFailed(event.target, str(exc))
        else:
            self.last_placed = pe.CallPlaced("c1", event.target, uri)


def console(allow_direct_uris: bool) -> tuple[FakeRuntime, ConsoleCommands]:
    rt = FakeRuntime()
    control = RuntimeControl(rt, allow_direct_uris=allow_direct_uris)  # type: ignore[arg-type]
    return rt, ConsoleCommands(control)


def test_dial_refuses_before_anything_is_placed() -> None:
    rt, cmds = console(allow_direct_uris=False)
    assert cmds.handle_line("dial sip:1002@10.0.0.9:5070;transport=tcp") == {
        "ok": False,
        "error": OFF + "sip:1002@10.0.0.9:5070;transport=tcp is not at the account's domain "
        "pbx.example.com",
    }
    assert rt.commands == []
    assert cmds.handle_line("dial 1002") == {
        "ok": True, "call_id": "c1", "to": "sip:1002@pbx.example.com"}
    assert rt.commands == [pe.DialCommand("1002")]


def test_dial_leaves_what_is_no_uri_to_the_dial_itself() -> None:
    rt, cmds = console(allow_direct_uris=False)
    reply = cmds.handle_line("dial sip:@")
    assert reply is not None and reply["ok"] is False
    assert str(reply["error"]).startswith("cannot dial 'sip:@': ")
    assert rt.commands == [pe.DialCommand("sip:@")]


def test_direct_uris_dial_by_default() -> None:
    rt, cmds = console(allow_direct_uris=True)
    assert cmds.handle_line("dial sip:1002@10.0.0.9") == {
        "ok": True, "call_id": "c1", "to": "sip:1002@10.0.0.9"}
    assert rt.commands == [pe.DialCommand("sip:1002@10.0.0.9")]
