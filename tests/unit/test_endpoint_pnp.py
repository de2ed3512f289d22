"""SIP plug-and-play on the endpoint (issue 10): a SUBSCRIBE for ua-profile to the SIP
multicast group, retransmitted as any non-INVITE request; the server's NOTIFY carries the
provisioning URL. Matched by Call-ID and tag, never by source: any host may answer a
multicast request. A fake PnP server stands in for the LAN (plain unicast, fake clock)."""

from __future__ import annotations

import pytest
from sipfakes import drain_events, endpoint

from deskphone import __version__
from deskphone.sip import events as ev
from deskphone.sip.endpoint import PNP_PENDING_MAX, PNP_WINDOW, Endpoint
from deskphone.sip.errors import LocalProtocolError
from deskphone.sip.message import Headers, Request, Response, parse_message
from deskphone.sip.transaction import Addr

MAC = "B8:27:EB:12:34:56"
GROUP = Addr("udp", "224.0.1.75", 5060)
SERVER = Addr("udp", "192.168.1.1", 5060)  # the PnP server answers from its own address
URL = "https://prov.example.com/deskphone/{mac}.toml"


def subscribe(ep: Endpoint, now: float = 0.0) -> tuple[str, Request]:
    call_id = ep.pnp_subscribe(now, MAC)
    [(raw, addr)] = ep.datagrams_to_send(now)
    assert addr == GROUP
    sub = parse_message(raw)
    assert isinstance(sub, Request)
    return call_id, sub


def ok(sub: Request, status: int = 200) -> bytes:
    h = sub.headers
    return bytes(Response(status, "OK" if status < 300 else "No", Headers([
        ("Via", h.get("Via") or ""), ("From", h.get("From") or ""),
        ("To", f"{h.get('To')};tag=srv"), ("Call-ID", sub.call_id),
        ("CSeq", h.get("CSeq") or ""), ("Expires", "0")])))


def pnp_notify(sub: Request, body: bytes = URL.encode(), *,
               content_type: str = "application/url", event: str | None = "ua-profile",
               call_id: str | None = None, to: str | None = None,
               branch: str = "z9hG4bKn1") -> bytes:
    """The server's NOTIFY: to our Contact, To = our From (with our tag)."""
    h = sub.headers
    headers = [("Via", f"SIP/2.0/UDP {SERVER.host}:{SERVER.port};branch={branch}"),
               ("From", f"{h.get('To')};tag=srv"), ("To", to or h.get("From") or ""),
               ("Call-ID", call_id or sub.call_id), ("CSeq", "1 NOTIFY"),
               ("Max-Forwards", "70"),
               ("Subscription-State", "terminated;reason=timeout"),
               ("Content-Type", content_type)]
    if event is not None:
        headers.append(("Event", event))
    return bytes(Request("NOTIFY", sub.contacts[0].uri, Headers(headers), body))


def answer(ep: Endpoint, data: bytes, source: Addr = SERVER,
           now: float = 1.0) -> list[Response]:
    ep.receive(data, source, now)
    out = []
    for raw, addr in ep.datagrams_to_send(now):
        msg = parse_message(raw)
        assert isinstance(msg, Response)
        assert addr == source
        out.append(msg)
    return out


def offers(ep: Endpoint) -> list[ev.Event]:
    return [e for e in drain_events(ep) if isinstance(e, ev.ProvisioningUrlOffered)]


def test_pnp_subscribe_goes_to_the_sip_multicast_group() -> None:
    ep = endpoint("1001", "192.168.1.20", port=5062)
    call_id, sub = subscribe(ep)
    assert sub.method == "SUBSCRIBE" and sub.call_id == call_id
    assert str(sub.uri) == "sip:b827eb123456@224.0.1.75"
    assert str(sub.from_.uri) == str(sub.to.uri) == "sip:b827eb123456@224.0.1.75"
    assert sub.from_.tag and not sub.to.tag
    assert sub.headers.get("Event") == (
        f'ua-profile;profile-type="device";vendor="deskphone";model="pi";'
        f'version="{__version__}"')
    assert sub.headers.get("Accept") == "application/url"
    assert sub.expires == 0
    via = sub.top_via
    assert (via.transport, via.host, via.port) == ("UDP", "192.168.1.20", 5062)
    assert (via.branch or "").startswith("z9hG4bK")
    assert str(sub.contacts[0].uri) == "sip:b827eb123456@192.168.1.20:5062"


def test_a_bad_mac_is_our_mistake() -> None:
    ep = endpoint("1001", "127.0.0.1")
    with pytest.raises(LocalProtocolError) as e:
        ep.pnp_subscribe(0.0, "nope")
    assert str(e.value) == "MAC address 'nope' is invalid"
    assert ep.datagrams_to_send(0.0) == []


def test_the_target_may_be_a_unicast_stand_in() -> None:
    ep = endpoint("1001", "127.0.0.1", pnp_target=Addr("udp", "127.0.0.9", 5070))
    ep.pnp_subscribe(0.0, MAC)
    [(_, addr)] = ep.datagrams_to_send(0.0)
    assert addr == Addr("udp", "127.0.0.9", 5070)


def test_the_subscribe_is_retransmitted_until_a_response_comes() -> None:
    """RFC 3261 §17.1.2.2: Timer E from T1 (0.5 s), doubling; a 200 from any address
    (the server's unicast, not the group) stops it."""
    ep = endpoint("1001", "127.0.0.1")
    _, sub = subscribe(ep)
    first = bytes(sub)
    sent_at = []
    for _ in range(3):
        t = ep.get_timer()
        assert t is not None
        ep.handle_timer(t)
        [(raw, addr)] = ep.datagrams_to_send(t)
        assert (raw, addr) == (first, GROUP)
        sent_at.append(t)
    assert sent_at == [0.5, 1.5, 3.5]
    ep.receive(ok(sub), SERVER, 4.0)
    assert ep.datagrams_to_send(4.0) == []
    t = ep.get_timer()
    assert t is not None
    ep.handle_timer(t)  # Timer K: the transaction ends, nothing more is sent
    assert ep.datagrams_to_send(t) == []
    assert ep.get_timer() is None
    assert not [e for e in drain_events(ep) if isinstance(e, ev.ProtocolWarning)]


def test_no_response_is_logged_and_the_notify_may_still_come() -> None:
    ep = endpoint("1001", "127.0.0.1")
    _, sub = subscribe(ep)
    sent_at = []
    while (t := ep.get_timer()) is not None:
        ep.handle_timer(t)
        sent_at += [t for _ in ep.datagrams_to_send(t)]
    # Timer E doubles up to T2 (4 s), Timer F gives up at 64*T1 (32 s)
    assert sent_at == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert [e.text for e in drain_events(ep) if isinstance(e, ev.ProtocolWarning)] == [
        "plug-and-play SUBSCRIBE: no response"]
    assert [r.status for r in answer(ep, pnp_notify(sub), now=60.0)] == [200]
    assert offers(ep) == [ev.ProvisioningUrlOffered(URL, SERVER)]


def test_the_notify_with_the_url_is_answered_and_offered() -> None:
    ep = endpoint("1001", "127.0.0.1")
    _, sub = subscribe(ep)
    ep.receive(ok(sub, 202), SERVER, 0.1)
    [resp] = answer(ep, pnp_notify(sub))
    assert resp.status == 200
    assert resp.to.tag == sub.from_.tag  # the NOTIFY's To tag, kept
    assert offers(ep) == [ev.ProvisioningUrlOffered(URL, SERVER)]


def test_a_notify_without_an_event_header_for_our_subscription_is_taken() -> None:
    """Some PnP servers leave Event out; pnp_url_from_notify takes those too."""
    ep = endpoint("1001", "127.0.0.1")
    _, sub = subscribe(ep)
    [resp] = answer(ep, pnp_notify(sub, event=None))
    assert resp.status == 200
    assert offers(ep) == [ev.ProvisioningUrlOffered(URL, SERVER)]


@pytest.mark.parametrize("case", ["call-id", "to-tag", "no-to-tag"])
def test_a_notify_of_no_subscription_of_ours_gets_481(case: str) -> None:
    ep = endpoint("1001", "127.0.0.1")
    _, sub = subscribe(ep)
    if case == "call-id":
        raw = pnp_notify(sub, call_id="someone-else")
    elif case == "to-tag":
        raw = pnp_notify(sub, to="<sip:b827eb123456@224.0.1.75>;tag=guess")
    else:
        raw = pnp_notify(sub, to="<sip:b827eb123456@224.0.1.75>")
    [resp] = answer(ep, raw)
    assert resp.status == 481
    assert offers(ep) == []
    # the real one is still welcome
    assert [r.status for r in answer(ep, pnp_notify(sub, branch="z9hG4bKn2"))] == [200]
    assert offers(ep) == [ev.ProvisioningUrlOffered(URL, SERVER)]


def test_an_unsolicited_ua_profile_notify_gets_481() -> None:
    ep = endpoint("1001", "127.0.0.1")
    _, sub = subscribe(ep)
    other = endpoint("1001", "127.0.0.1", seed=9)
    _, theirs = subscribe(other)
    [resp] = answer(ep, pnp_notify(theirs))
    assert resp.status == 481
    assert offers(ep) == []


@pytest.mark.parametrize("body", [b"file:///etc/shadow", b"http://a.example/ and more",
                                  b"\xff\xfe", b"", b"not a url"])
def test_a_body_that_is_no_url_gets_400_and_the_subscription_waits_on(body: bytes) -> None:
    ep = endpoint("1001", "127.0.0.1")
    _, sub = subscribe(ep)
    [resp] = answer(ep, pnp_notify(sub, body))
    assert (resp.status, resp.reason) == (400, "Bad URL")
    events = drain_events(ep)
    assert not [e for e in events if isinstance(e, ev.ProvisioningUrlOffered)]
    assert [e.text for e in events if isinstance(e, ev.ProtocolWarning)] == [
        "plug-and-play NOTIFY without a usable URL refused"]
    [resp] = answer(ep, pnp_notify(sub, branch="z9hG4bKn2"))
    assert resp.status == 200
    assert offers(ep) == [ev.ProvisioningUrlOffered(URL, SERVER)]


def test_a_body_of_another_type_gets_415() -> None:
    ep = endpoint("1001", "127.0.0.1")
    _, sub = subscribe(ep)
    [resp] = answer(ep, pnp_notify(sub, content_type="text/plain"))
    assert resp.status == 415
    assert resp.headers.get("Accept") == "application/url"
    assert offers(ep) == []


def test_the_first_url_wins_and_its_retransmission_is_answered_again() -> None:
    """One URL per SUBSCRIBE (Expires: 0). A second server answering later gets 481."""
    ep = endpoint("1001", "127.0.0.1")
    _, sub = subscribe(ep)
    raw = pnp_notify(sub)
    assert [r.status for r in answer(ep, raw)] == [200]
    assert [r.status for r in answer(ep, raw, now=1.5)] == [200]  # same transaction
    rogue = Addr("udp", "192.168.1.66", 5060)
    late = pnp_notify(sub, b"http://evil.example/", branch="z9hG4bKrogue")
    assert [r.status for r in answer(ep, late, rogue)] == [481]
    assert offers(ep) == [ev.ProvisioningUrlOffered(URL, SERVER)]


def test_a_notify_after_the_window_gets_481() -> None:
    ep = endpoint("1001", "127.0.0.1")
    _, sub = subscribe(ep, now=10.0)
    [resp] = answer(ep, pnp_notify(sub), now=10.0 + PNP_WINDOW + 1)
    assert resp.status == 481
    assert offers(ep) == []


def test_accept_from_proxy_still_takes_the_pnp_server_s_notify() -> None:
    """The PnP server is not the proxy (there may be none yet): our tag is the match."""
    ep = endpoint("1001", "127.0.0.1", accept_from="proxy", proxy=None, registrar=None)
    _, sub = subscribe(ep)
    assert [r.status for r in answer(ep, pnp_notify(sub))] == [200]
    assert offers(ep) == [ev.ProvisioningUrlOffered(URL, SERVER)]


def test_only_the_latest_subscriptions_are_kept() -> None:
    ep = endpoint("1001", "127.0.0.1")
    subs = [subscribe(ep)[1] for _ in range(PNP_PENDING_MAX + 1)]
    assert [r.status for r in answer(ep, pnp_notify(subs[0]))] == [481]
    assert [r.status for r in answer(ep, pnp_notify(subs[-1], branch="z9hG4bKn2"))] == [200]
    assert offers(ep) == [ev.ProvisioningUrlOffered(URL, SERVER)]


class FakePnpServer:
    """What a PnP server does with a SUBSCRIBE: 200, then a NOTIFY with the URL."""

    def __init__(self, addr: Addr, url: str) -> None:
        self.addr, self.url = addr, url
        self.got: list[Request | Response] = []

    def handle(self, raw: bytes) -> list[bytes]:
        msg = parse_message(raw)
        self.got.append(msg)
        if not isinstance(msg, Request) or msg.method != "SUBSCRIBE":
            return []
        assert (msg.headers.get("Event") or "").startswith("ua-profile;")
        return [ok(msg), pnp_notify(msg, self.url.encode(), branch="z9hG4bKsrv")]


def test_end_to_end_with_a_fake_server_over_a_lossy_link() -> None:
    """The first SUBSCRIBE is lost; the retransmission reaches the server; the phone
    answers the NOTIFY and offers the URL once."""
    stand_in = Addr("udp", "127.0.0.9", 5060)
    ep = endpoint("1001", "127.0.0.1", pnp_target=stand_in)
    server = FakePnpServer(stand_in, URL)
    now = 0.0
    call_id = ep.pnp_subscribe(now, MAC)
    dropped = 0
    events: list[ev.Event] = []
    while True:
        for raw, addr in ep.datagrams_to_send(now):
            assert addr == stand_in
            if dropped == 0:
                dropped += 1
                continue
            for reply in server.handle(raw):
                ep.receive(reply, stand_in, now)
        events += drain_events(ep)
        t = ep.get_timer()
        if t is None:
            break
        now = t
        ep.handle_timer(now)
    assert [e for e in events if isinstance(e, ev.ProvisioningUrlOffered)] == [
        ev.ProvisioningUrlOffered(URL, stand_in)]
    assert not [e for e in events if isinstance(e, ev.ProtocolWarning)]
    subs = [m for m in server.got if isinstance(m, Request)]
    assert [m.call_id for m in subs] == [call_id]  # one retransmission got through
    assert [m.status for m in server.got if isinstance(m, Response)] == [200]
