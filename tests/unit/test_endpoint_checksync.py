"""NOTIFY Event: check-sync (issue 10): the registrar/outbound proxy tells the phone to fetch
its configuration again. Obeyed from the proxy's own address only, whatever accept_from says:
anyone who could trigger it could make the phone reboot at will."""

from __future__ import annotations

import pytest
from sipfakes import REGISTRAR, drain_events, endpoint

from deskphone.sip import events as ev
from deskphone.sip.endpoint import Endpoint
from deskphone.sip.message import Headers, Request, Response, parse_message
from deskphone.sip.transaction import Addr
from deskphone.sip.uri import SipUri

STRANGER = Addr("udp", "10.6.6.6", 5060)


def notify(event: str | None = "check-sync", *extra: tuple[str, str],
           source: Addr = REGISTRAR, branch: str = "z9hG4bKcs1", to_tag: str | None = None,
           ruri: str = "sip:1001@127.0.0.1:5060") -> bytes:
    to = "<sip:1001@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    headers = [("Via", f"SIP/2.0/UDP {source.host}:{source.port};branch={branch}"),
               ("From", "<sip:1001@127.0.0.1>;tag=srv"), ("To", to),
               ("Call-ID", f"cs-{branch}"), ("CSeq", "1 NOTIFY"), ("Max-Forwards", "70"),
               *extra]
    if event is not None:
        headers.append(("Event", event))
    return bytes(Request("NOTIFY", SipUri.parse(ruri), Headers(headers)))


def answer(ep: Endpoint, data: bytes, source: Addr = REGISTRAR,
           now: float = 0.0) -> list[tuple[Response, Addr]]:
    ep.receive(data, source, now)
    out = []
    for raw, addr in ep.datagrams_to_send(now):
        msg = parse_message(raw)
        assert isinstance(msg, Response)
        out.append((msg, addr))
    return out


def syncs(ep: Endpoint) -> list[ev.Event]:
    return [e for e in drain_events(ep) if isinstance(e, ev.CheckSyncRequested)]


@pytest.mark.parametrize(("event", "reboot"), [
    ("check-sync", None),
    ("check-sync;reboot=true", True),
    ("check-sync;reboot=false", False),
    ("Check-Sync;Reboot=TRUE", True),
    ("check-sync ; reboot = False", False),
    ('check-sync;reboot="true"', True),
    ("check-sync;id=7;reboot=true", True),
])
def test_check_sync_from_the_proxy_is_answered_and_reported(event: str,
                                                            reboot: bool | None) -> None:
    ep = endpoint("1001", "127.0.0.1")
    [(resp, addr)] = answer(ep, notify(event))
    assert (resp.status, addr) == (200, REGISTRAR)
    assert resp.to.tag
    assert syncs(ep) == [ev.CheckSyncRequested(reboot)]


def test_a_reboot_value_that_is_neither_true_nor_false_is_taken_as_unsaid() -> None:
    """The sync still happens (200), the phone decides whether to restart; the log says."""
    ep = endpoint("1001", "127.0.0.1")
    [(resp, _)] = answer(ep, notify("check-sync;reboot=yes"))
    assert resp.status == 200
    events = drain_events(ep)
    assert [e for e in events if isinstance(e, ev.CheckSyncRequested)] == [
        ev.CheckSyncRequested(None)]
    assert [e.text for e in events if isinstance(e, ev.ProtocolWarning)] == [
        "check-sync reboot='yes' is neither true nor false: taken as unsaid"]


@pytest.mark.parametrize("extra", [
    (("Subscription-State", "terminated;reason=timeout"),),  # Asterisk's
    (("Subscription-State", "active"), ("Content-Type", "application/simple-message-summary")),
    (),  # Polycom and Yealink servers send it bare, unsolicited
])
def test_no_subscription_is_needed(extra: tuple[tuple[str, str], ...]) -> None:
    ep = endpoint("1001", "127.0.0.1")
    [(resp, _)] = answer(ep, notify("check-sync", *extra))
    assert resp.status == 200
    assert syncs(ep) == [ev.CheckSyncRequested(None)]


def test_compact_event_header_and_a_to_tag_are_accepted() -> None:
    ep = endpoint("1001", "127.0.0.1")
    raw = notify(None, ("o", "check-sync;reboot=false"), to_tag="old")
    [(resp, _)] = answer(ep, raw)
    assert resp.status == 200
    assert syncs(ep) == [ev.CheckSyncRequested(False)]


def test_kamailio_s_relay_counts_by_where_the_datagram_came_from() -> None:
    """The proxy relays an application server's NOTIFY with a Via of its own on top."""
    ep = endpoint("1001", "127.0.0.1")
    raw = notify("check-sync;reboot=true", source=REGISTRAR, branch="z9hG4bKkam")
    msg = parse_message(raw)
    assert isinstance(msg, Request)
    relayed = msg.with_headers(msg.headers.add(
        "Via", "SIP/2.0/UDP 10.9.9.9:5080;branch=z9hG4bKapp"))
    [(resp, addr)] = answer(ep, bytes(relayed))
    assert (resp.status, addr) == (200, REGISTRAR)
    assert syncs(ep) == [ev.CheckSyncRequested(True)]


@pytest.mark.parametrize("source", [
    STRANGER,
    Addr("udp", REGISTRAR.host, 5070),  # the proxy's host, another port: a local user
    Addr("udp", "127.0.0.2", REGISTRAR.port),
])
@pytest.mark.parametrize("accept_from", ["any", "proxy"])
def test_check_sync_from_anywhere_else_is_forbidden(source: Addr, accept_from: str) -> None:
    ep = endpoint("1001", "127.0.0.1", accept_from=accept_from)
    out = answer(ep, notify("check-sync;reboot=true", source=source), source)
    if accept_from == "proxy" and source.host != REGISTRAR.host:
        # the stranger's out-of-dialog request is dropped before it is read: no answer
        assert out == []
        assert ep.dropped_requests == 1
    else:
        assert [(r.status, a) for r, a in out] == [(403, source)]
    assert syncs(ep) == []


def test_a_forged_via_naming_the_proxy_does_not_help() -> None:
    ep = endpoint("1001", "127.0.0.1")
    raw = notify("check-sync", source=REGISTRAR)  # the Via says the proxy
    [(resp, addr)] = answer(ep, raw, STRANGER)  # the datagram says otherwise
    assert (resp.status, addr) == (403, STRANGER)
    assert syncs(ep) == []


def test_the_refusal_is_logged_rate_limited() -> None:
    ep = endpoint("1001", "127.0.0.1")
    answer(ep, notify(source=STRANGER, branch="z9hG4bKa"), STRANGER, 0.0)
    assert [e.text for e in drain_events(ep) if isinstance(e, ev.ProtocolWarning)] == [
        "check-sync NOTIFY from an address that is not the proxy refused"]
    [(resp, _)] = answer(ep, notify(source=STRANGER, branch="z9hG4bKb"), STRANGER, 1.0)
    assert resp.status == 403
    assert drain_events(ep) == []  # answered, not logged again within 10 s
    answer(ep, notify(source=STRANGER, branch="z9hG4bKc"), STRANGER, 11.0)
    assert [e.text for e in drain_events(ep) if isinstance(e, ev.ProtocolWarning)] == [
        "check-sync NOTIFY from an address that is not the proxy refused "
        "(and 1 more from there since the last)"]


def test_without_a_proxy_nobody_may_trigger_a_sync() -> None:
    ep = endpoint("1001", "127.0.0.1", proxy=None, registrar=None)
    [(resp, _)] = answer(ep, notify("check-sync;reboot=false"))
    assert resp.status == 403
    assert syncs(ep) == []


def test_a_check_sync_for_someone_else_gets_404() -> None:
    ep = endpoint("1001", "127.0.0.1")
    [(resp, _)] = answer(ep, notify("check-sync", ruri="sip:1002@127.0.0.1"))
    assert resp.status == 404
    assert syncs(ep) == []


def test_a_retransmission_is_answered_again_and_reported_once() -> None:
    ep = endpoint("1001", "127.0.0.1")
    raw = notify("check-sync;reboot=true")
    [(first, _)] = answer(ep, raw, now=0.0)
    [(again, _)] = answer(ep, raw, now=0.5)
    assert first.status == again.status == 200
    assert again.to.tag == first.to.tag  # the transaction's own response, repeated
    assert syncs(ep) == [ev.CheckSyncRequested(True)]


@pytest.mark.parametrize(("event", "warning"), [
    ("check-sync;=true", "header: bad parameter '=true'"),
    ("check sync", "bad Event type 'check sync'"),
    ("", "bad Event type ''"),
    ("check-sync, presence", "bad Event type 'check-sync, presence'"),
    (None, "missing Event header"),
])
def test_a_malformed_event_header_gets_400(event: str | None, warning: str) -> None:
    ep = endpoint("1001", "127.0.0.1")
    [(resp, _)] = answer(ep, notify(event))
    assert (resp.status, resp.reason) == (400, "Bad Event Header")
    assert resp.headers.get("Warning") == f'399 deskphone "{warning}"'
    assert syncs(ep) == []


def test_two_event_headers_get_400() -> None:
    ep = endpoint("1001", "127.0.0.1")
    [(resp, _)] = answer(ep, notify("check-sync", ("Event", "check-sync;reboot=true")))
    assert resp.status == 400
    assert resp.headers.get("Warning") == '399 deskphone "more than one Event header"'
    assert syncs(ep) == []


@pytest.mark.parametrize("event", ["presence", "resync", "talk", "check-sync.x"])
def test_an_unknown_event_package_gets_489(event: str) -> None:
    """RFC 6665 §8.2.1: 489 Bad Event, with the packages we take in Allow-Events."""
    ep = endpoint("1001", "127.0.0.1")
    [(resp, _)] = answer(ep, notify(event))
    assert (resp.status, resp.reason) == (489, "Bad Event")
    assert resp.headers.get("Allow-Events") == "check-sync, ua-profile, message-summary"
    assert syncs(ep) == []


def test_unsolicited_mwi_out_of_dialog_is_still_answered_200() -> None:
    ep = endpoint("1001", "127.0.0.1")
    [(resp, _)] = answer(ep, notify("message-summary", source=STRANGER), STRANGER)
    assert resp.status == 200
    assert syncs(ep) == []


def test_the_flood_caps_apply_to_check_sync_too() -> None:
    """A proxy's host at its cap of live transactions gets 503, and nothing is acted on."""
    ep = endpoint("1001", "127.0.0.1", max_server_tx_per_source=1)
    invite = Request("INVITE", SipUri.parse("sip:1001@127.0.0.1"), Headers([
        ("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKinv"),
        ("From", "<sip:1002@127.0.0.1>;tag=c"), ("To", "<sip:1001@127.0.0.1>"),
        ("Call-ID", "held"), ("CSeq", "1 INVITE"), ("Max-Forwards", "70")]))
    ep.receive(bytes(invite), REGISTRAR, 0.0)  # rings: its transaction stays live
    ep.datagrams_to_send(0.0)
    drain_events(ep)
    [(resp, _)] = answer(ep, notify("check-sync;reboot=true"))
    assert resp.status == 503
    assert syncs(ep) == []
