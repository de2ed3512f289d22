"""Registration: digest challenge, refresh, back-off, NAT rewrite, un-register.

The registrar here is the test: it reads what the endpoint sends and answers by
hand, with a fake clock, so every timer can be checked exactly.
"""

from __future__ import annotations

import hashlib

from sipfakes import REGISTRAR, drain_events, endpoint

from deskphone.sip import events as ev
from deskphone.sip.endpoint import Endpoint
from deskphone.sip.message import Headers, Request, Response, parse_message
from deskphone.sip.registration import RegState
from deskphone.sip.transaction import Addr
from deskphone.sip.uri import SipUri

CHALLENGE = 'Digest realm="127.0.0.1", nonce="abc123", qop="auth", algorithm=MD5'


def sent(ep: Endpoint, now: float = 0.0) -> list[Request]:
    out = []
    for data, addr in ep.datagrams_to_send(now):
        assert addr == REGISTRAR
        msg = parse_message(data)
        assert isinstance(msg, Request)
        out.append(msg)
    return out


def reply(ep: Endpoint, req: Request, status: int, *extra: tuple[str, str],
          now: float = 0.0, via: str | None = None) -> None:
    h = req.headers
    to = h.get("To") or ""
    if status > 100:
        to += ";tag=reg1"
    headers = [("Via", via or h.get("Via") or ""), ("From", h.get("From") or ""),
               ("To", to), ("Call-ID", req.call_id), ("CSeq", h.get("CSeq") or ""), *extra]
    ep.receive(bytes(Response(status, "X", Headers(headers))), REGISTRAR, now)


def register_ok(ep: Endpoint, now: float = 0.0, expires: int = 3600) -> Request:
    [req] = sent(ep, now)
    contact = req.headers.get("Contact") or ""
    reply(ep, req, 200, ("Contact", f"{contact};expires={expires}"), now=now)
    return req


def test_register_answers_the_challenge_once_and_reports_registered() -> None:
    ep = endpoint("1001", "127.0.0.1", port=5080)
    ep.register(0.0)
    [first] = sent(ep)
    assert str(first.uri) == "sip:127.0.0.1:5060"
    assert first.to.uri == SipUri.parse("sip:1001@127.0.0.1")
    assert first.headers.get("Contact") == "<sip:1001@127.0.0.1:5080>"
    assert first.headers.get("Expires") == "3600"
    assert "Authorization" not in first.headers
    reply(ep, first, 401, ("WWW-Authenticate", CHALLENGE))
    [second] = sent(ep)
    assert second.call_id == first.call_id  # §10.2.4: one Call-ID per binding
    assert second.cseq.seq == first.cseq.seq + 1
    assert second.top_via.branch != first.top_via.branch
    auth = second.headers.get("Authorization") or ""
    assert 'username="1001"' in auth and 'uri="sip:127.0.0.1:5060"' in auth
    # the response is the RFC 2617 digest of secret1001
    fields = dict(p.strip().split("=", 1) for p in auth[len("Digest "):].split(","))
    ha1 = hashlib.md5(b"1001:127.0.0.1:secret1001").hexdigest()
    ha2 = hashlib.md5(b"REGISTER:sip:127.0.0.1:5060").hexdigest()
    cnonce, nc = fields["cnonce"].strip('"'), fields["nc"]
    expect = hashlib.md5(f"{ha1}:abc123:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()
    assert fields["response"].strip('"') == expect
    contact = second.headers.get("Contact")
    reply(ep, second, 200, ("Contact", f"{contact};expires=120"))
    assert drain_events(ep) == [
        ev.Registered("sip:1001@127.0.0.1", "sip:1001@127.0.0.1:5080", 120)]
    assert ep.registered


def test_refresh_before_expiry_with_the_same_call_id() -> None:
    ep = endpoint("1001", "127.0.0.1")
    ep.register(0.0)
    first = register_ok(ep, expires=120)
    assert ep.reg.refresh_at == 60.0  # short bindings refresh halfway
    ep.handle_timer(59.9)
    assert sent(ep, 59.9) == []
    ep.handle_timer(60.0)
    [refresh] = sent(ep, 60.0)
    assert refresh.call_id == first.call_id and refresh.cseq.seq == first.cseq.seq + 1
    reply(ep, refresh, 200, ("Expires", "3600"), now=60.0)
    drain_events(ep)
    assert ep.reg.refresh_at == 60.0 + 3600 - 60  # long ones a minute early


def test_wrong_password_fails_once_then_backs_off() -> None:
    ep = endpoint("1001", "127.0.0.1")
    ep.register(0.0)
    [r1] = sent(ep)
    reply(ep, r1, 401, ("WWW-Authenticate", CHALLENGE))
    [r2] = sent(ep)
    reply(ep, r2, 401, ("WWW-Authenticate", CHALLENGE.replace("abc123", "def456")))
    assert sent(ep) == []  # no loop
    [failed] = drain_events(ep)
    assert isinstance(failed, ev.RegistrationFailed)
    assert failed.status == 401 and failed.reason == "auth failed"
    assert failed.retry_in is not None and 15.0 <= failed.retry_in <= 30.0
    assert not ep.registered and ep.reg.state is RegState.RETRY_WAIT
    # the retry comes when the back-off says, not before
    t = ep.reg.retry_at
    assert t is not None and abs(t - failed.retry_in) <= 0.05
    ep.handle_timer(t - 0.01)
    assert sent(ep, t) == []
    ep.handle_timer(t)
    [r3] = sent(ep, t)
    reply(ep, r3, 401, ("WWW-Authenticate", CHALLENGE), now=t)
    [r4] = sent(ep, t)
    reply(ep, r4, 403, now=t)
    [failed2] = drain_events(ep)
    assert isinstance(failed2, ev.RegistrationFailed) and failed2.status == 403
    assert failed2.retry_in is not None and 30.0 <= failed2.retry_in <= 60.0  # doubled


def test_stale_nonce_is_answered_again() -> None:
    ep = endpoint("1001", "127.0.0.1")
    ep.register(0.0)
    [r1] = sent(ep)
    reply(ep, r1, 401, ("WWW-Authenticate", CHALLENGE))
    [r2] = sent(ep)
    reply(ep, r2, 401, ("WWW-Authenticate", CHALLENGE.replace("abc123", "n2") + ", stale=true"))
    [r3] = sent(ep)
    assert 'nonce="n2"' in (r3.headers.get("Authorization") or "")


def test_timeout_is_reported_and_retried() -> None:
    ep = endpoint("1001", "127.0.0.1")
    ep.register(0.0)
    sent(ep)
    now = 0.0
    while not (events := drain_events(ep)):
        t = ep.get_timer()
        assert t is not None
        now = t
        ep.handle_timer(now)
        sent(ep, now)
    assert now == 32.0  # Timer F
    assert isinstance(events[0], ev.RegistrationFailed) and events[0].status is None


def test_423_interval_too_brief_retries_with_min_expires() -> None:
    ep = endpoint("1001", "127.0.0.1", expires=30)
    ep.register(0.0)
    [r1] = sent(ep)
    reply(ep, r1, 423, ("Min-Expires", "60"))
    [r2] = sent(ep)
    assert r2.headers.get("Expires") == "60"


def test_nat_rewrite_registers_the_address_the_registrar_saw() -> None:
    ep = endpoint("1001", "192.168.1.50")
    ep.register(0.0)
    [r1] = sent(ep)
    via = (r1.headers.get("Via") or "").replace(";rport", ";rport=40000;received=203.0.113.7")
    reply(ep, r1, 200, ("Expires", "3600"), via=via)
    [r2] = sent(ep)
    assert r2.headers.get_all("Contact") == [
        "<sip:1001@203.0.113.7:40000>", "<sip:1001@192.168.1.50:5060>;expires=0"]
    assert drain_events(ep) == []  # not registered until the new binding is confirmed
    reply(ep, r2, 200, ("Expires", "3600"),
          via=(r2.headers.get("Via") or "").replace(";rport", ";rport=40000;received=203.0.113.7"))
    [reg] = drain_events(ep)
    assert isinstance(reg, ev.Registered) and reg.contact == "sip:1001@203.0.113.7:40000"


def test_unregister_sends_expires_zero() -> None:
    ep = endpoint("1001", "127.0.0.1")
    ep.register(0.0)
    register_ok(ep)
    drain_events(ep)
    ep.unregister(1.0)
    [req] = sent(ep, 1.0)
    assert req.headers.get("Expires") == "0"
    reply(ep, req, 200, now=1.0)
    assert drain_events(ep) == [ev.Unregistered("un-registered")]
    assert not ep.registered and ep.get_timer() is not None  # only transaction timers left
    ep.handle_timer(100.0)
    assert sent(ep, 100.0) == []  # no refresh after un-register


def test_unregister_when_never_registered_says_so_at_once() -> None:
    ep = endpoint("1001", "127.0.0.1")
    ep.unregister(0.0)
    assert drain_events(ep) == [ev.Unregistered("not registered")]


def test_register_over_tcp_has_a_tcp_contact_and_no_retransmissions() -> None:
    ep = endpoint("1001", "127.0.0.1", transport="tcp", proxy=Addr("tcp", "127.0.0.1", 5060))
    ep.register(0.0)
    out = ep.datagrams_to_send(0.0)
    [(data, addr)] = out
    msg = parse_message(data)
    assert isinstance(msg, Request)
    assert msg.headers.get("Contact") == "<sip:1001@127.0.0.1:5060;transport=tcp>"
    assert msg.top_via.transport == "TCP"
    ep.handle_timer(5.0)
    assert ep.datagrams_to_send(5.0) == []
