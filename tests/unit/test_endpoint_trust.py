"""What the phone trusts on the network: digest answers only to our proxy, for our realm,
with qop; out-of-dialog requests only from the proxy (accept_from); a Request-URI that
names us. Each of these was an attack that worked (issue: hardening)."""

from __future__ import annotations

from sipfakes import REGISTRAR, drain_events, endpoint

from deskphone.sdp import MediaCaps, make_offer
from deskphone.sip import events as ev
from deskphone.sip.endpoint import Endpoint
from deskphone.sip.message import Headers, Request, Response, parse_message
from deskphone.sip.transaction import Addr
from deskphone.sip.uri import SipUri

OURS = 'Digest realm="127.0.0.1", nonce="n1", qop="auth", algorithm=MD5'
FOREIGN = 'Digest realm="evil.example", nonce="n2", qop="auth", algorithm=MD5'
NO_QOP = 'Digest realm="127.0.0.1", nonce="n3", algorithm=MD5'
STRANGER = Addr("udp", "10.6.6.6", 5060)


def sent(ep: Endpoint) -> list[tuple[Request | Response, Addr]]:
    return [(parse_message(d), a) for d, a in ep.datagrams_to_send(0.0)]  # type: ignore[misc]


def challenge(ep: Endpoint, req: Request, source: Addr, status: int, value: str) -> None:
    h = req.headers
    name = "Proxy-Authenticate" if status == 407 else "WWW-Authenticate"
    headers = [("Via", h.get("Via") or ""), ("From", h.get("From") or ""),
               ("To", (h.get("To") or "") + ";tag=px"), ("Call-ID", req.call_id),
               ("CSeq", h.get("CSeq") or ""), (name, value)]
    ep.receive(bytes(Response(status, "Auth", Headers(headers))), source, 0.0)


def dialled(ep: Endpoint, target: str) -> tuple[str, Request, Addr]:
    call_id = ep.dial(target, 0.0)
    [(invite, addr)] = sent(ep)
    assert isinstance(invite, Request)
    return call_id, invite, addr


def test_a_callee_s_challenge_gets_no_digest_of_our_password() -> None:
    """A URI the person was tricked into dialling answers 401: no response over its nonce."""
    ep = endpoint("1001", "127.0.0.1")
    call_id, invite, addr = dialled(ep, "sip:bob@10.6.6.6")
    assert addr == Addr("udp", "10.6.6.6", 5060)
    challenge(ep, invite, addr, 401, OURS)
    out = sent(ep)
    assert [m.method for m, _ in out if isinstance(m, Request)] == ["ACK"]  # no retry
    ended = [e for e in drain_events(ep) if isinstance(e, ev.CallEnded)]
    assert ended == [ev.CallEnded(call_id, "auth refused: not our proxy", 401)]


def test_our_proxy_asking_for_a_foreign_realm_is_refused() -> None:
    ep = endpoint("1001", "127.0.0.1", realm="127.0.0.1")
    call_id, invite, addr = dialled(ep, "1002")
    assert addr == REGISTRAR
    challenge(ep, invite, addr, 407, FOREIGN)
    assert [m.method for m, _ in sent(ep) if isinstance(m, Request)] == ["ACK"]
    assert ev.CallEnded(call_id, "auth refused: foreign realm", 407) in drain_events(ep)


def test_the_realm_is_learnt_from_the_registrar_and_held_to() -> None:
    ep = endpoint("1001", "127.0.0.1")
    ep.register(0.0)
    [(reg, _)] = sent(ep)
    assert isinstance(reg, Request)
    challenge(ep, reg, REGISTRAR, 401, OURS)
    [(again, _)] = sent(ep)
    assert "Authorization" in again.headers  # the registrar's realm: answered
    call_id, invite, _ = dialled(ep, "1002")
    challenge(ep, invite, REGISTRAR, 407, FOREIGN)
    assert ev.CallEnded(call_id, "auth refused: foreign realm", 407) in drain_events(ep)


def test_the_proxy_s_challenge_in_our_realm_is_answered() -> None:
    ep = endpoint("1001", "127.0.0.1", realm="127.0.0.1")
    _, invite, _ = dialled(ep, "1002")
    challenge(ep, invite, REGISTRAR, 407, OURS)
    invites = [m for m, _ in sent(ep) if isinstance(m, Request) and m.method == "INVITE"]
    assert len(invites) == 1 and "Proxy-Authorization" in invites[0].headers


def test_rfc2069_challenges_only_when_allowed() -> None:
    ep = endpoint("1001", "127.0.0.1", realm="127.0.0.1")
    call_id, invite, _ = dialled(ep, "1002")
    challenge(ep, invite, REGISTRAR, 407, NO_QOP)
    assert ev.CallEnded(call_id, "auth refused: no qop (RFC 2069)", 407) in drain_events(ep)
    lax = endpoint("1001", "127.0.0.1", realm="127.0.0.1", allow_rfc2069=True)
    _, invite, _ = dialled(lax, "1002")
    challenge(lax, invite, REGISTRAR, 407, NO_QOP)
    assert any(isinstance(m, Request) and m.method == "INVITE" for m, _ in sent(lax))


def test_a_401_to_our_bye_is_not_answered() -> None:
    from sipfakes import EndpointPair

    p = EndpointPair()
    call_id = p.connect()
    p.a.ep.hangup(p.now, call_id)
    [(bye_raw, addr)] = p.a.ep.datagrams_to_send(p.now)
    bye = parse_message(bye_raw)
    assert isinstance(bye, Request) and bye.method == "BYE"
    challenge(p.a.ep, bye, addr, 401, OURS)
    assert p.a.ep.datagrams_to_send(p.now) == []


def invite_from(source: Addr, ruri: str = "sip:1001@127.0.0.1:5060") -> bytes:
    offer = make_offer(MediaCaps(), source.host, 4000, 1, 1)
    headers = [("Via", f"SIP/2.0/UDP {source.host}:{source.port};branch=z9hG4bKg1"),
               ("From", "<sip:100@scanner>;tag=s1"), ("To", "<sip:1001@127.0.0.1>"),
               ("Call-ID", "ghost-1"), ("CSeq", "1 INVITE"), ("Max-Forwards", "70"),
               ("Contact", f"<sip:100@{source.host}:{source.port}>"),
               ("Content-Type", "application/sdp")]
    return bytes(Request("INVITE", SipUri.parse(ruri), Headers(headers), bytes(offer)))


def test_a_ghost_call_from_a_stranger_is_dropped_without_a_word() -> None:
    ep = endpoint("1001", "127.0.0.1", accept_from="proxy")
    ep.receive(invite_from(STRANGER), STRANGER, 0.0)
    assert ep.datagrams_to_send(0.0) == []  # no 100, no 486: nothing to reflect
    events = drain_events(ep)
    assert not [e for e in events if isinstance(e, ev.IncomingCall)]
    assert ep.dropped_requests == 1
    assert [e.text for e in events if isinstance(e, ev.ProtocolWarning)] == [
        "INVITE from a host that is not the proxy dropped (1 so far)"]
    ep.receive(invite_from(STRANGER), STRANGER, 1.0)  # the warning is rate-limited
    assert not [e for e in drain_events(ep) if isinstance(e, ev.ProtocolWarning)]


def test_the_proxy_s_call_rings() -> None:
    ep = endpoint("1001", "127.0.0.1", accept_from="proxy")
    ep.receive(invite_from(REGISTRAR), REGISTRAR, 0.0)
    assert [m.status for m, _ in sent(ep)] == [100]  # type: ignore[union-attr]
    assert [type(e) for e in drain_events(ep)] == [ev.IncomingCall]


def test_a_request_uri_that_is_not_ours_gets_404() -> None:
    ep = endpoint("1001", "127.0.0.1")  # accept_from "any": a lab bench
    ep.receive(invite_from(STRANGER, "sip:100@127.0.0.1"), STRANGER, 0.0)
    assert [m.status for m, _ in sent(ep)] == [404]  # type: ignore[union-attr]
    assert not [e for e in drain_events(ep) if isinstance(e, ev.IncomingCall)]
