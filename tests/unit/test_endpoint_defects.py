"""Defects a reading of the SIP core found (issue: hardening), one regression test each."""

from __future__ import annotations

from sipfakes import EndpointPair, drain_events, endpoint

from deskphone.sdp import MediaCaps, make_offer
from deskphone.sip import events as ev
from deskphone.sip.call import CallState
from deskphone.sip.message import Headers, Request, Response, parse_message
from deskphone.sip.transaction import Addr
from deskphone.sip.uri import SipUri

PEER = Addr("udp", "127.0.0.1", 5060)


def invite(branch: str = "z9hG4bKd1", body: bytes | None = None) -> bytes:
    sdp = bytes(make_offer(MediaCaps(), "127.0.0.1", 4000, 1, 1)) if body is None else body
    headers = [("Via", f"SIP/2.0/UDP 127.0.0.1:5060;branch={branch}"),
               ("From", "<sip:9@127.0.0.1>;tag=f1"), ("To", "<sip:1001@127.0.0.1>"),
               ("Call-ID", "d-1"), ("CSeq", "1 INVITE"), ("Max-Forwards", "70"),
               ("Contact", "<sip:9@127.0.0.1:5060>"), ("Content-Type", "application/sdp")]
    return bytes(Request("INVITE", SipUri.parse("sip:1001@127.0.0.1"), Headers(headers),
                         sdp))


def responses(ep: object) -> list[Response]:
    out = [parse_message(d) for d, _ in ep.datagrams_to_send(0.0)]  # type: ignore[attr-defined]
    return [m for m in out if isinstance(m, Response)]


def test_an_ipv6_domain_keeps_its_port() -> None:
    ep = endpoint("1001", "127.0.0.1", domain="[::1]:5070")
    assert ep.aor == "sip:1001@[::1]:5070"
    assert str(ep.target_uri("1002")) == "sip:1002@[::1]:5070"


class NoPorts:
    def allocate(self) -> int:
        raise OSError("no free RTP port pair in 16384-16386 on 127.0.0.1")

    def release(self, port: int) -> None:
        pass


def test_no_rtp_port_left_is_503_not_an_unanswered_invite() -> None:
    ep = endpoint("1001", "127.0.0.1")
    ep._ports = NoPorts()  # noqa: SLF001 - the pool the app injects, exhausted
    ep.receive(invite(), PEER, 0.0)
    [resp] = responses(ep)
    assert resp.status == 503 and resp.headers.get("Retry-After") == "30"
    assert not [e for e in drain_events(ep) if isinstance(e, ev.IncomingCall)]


class Broken:
    def allocate(self) -> int:
        raise RuntimeError("a bug")

    def release(self, port: int) -> None:
        pass


def test_a_bug_inside_receive_answers_500_and_the_endpoint_goes_on() -> None:
    ep = endpoint("1001", "127.0.0.1")
    ep._ports = Broken()  # noqa: SLF001
    ep.receive(invite(), PEER, 0.0)
    assert [r.status for r in responses(ep)] == [500]
    [warning] = [e for e in drain_events(ep) if isinstance(e, ev.ProtocolWarning)]
    assert warning.text == ("internal error on a request: RuntimeError: a bug (1 so far)")
    ep._ports = NoPorts()  # noqa: SLF001
    ep.receive(invite("z9hG4bKd2"), PEER, 1.0)  # still taking requests
    assert [r.status for r in responses(ep)] == [503]


def test_the_200_to_cancel_carries_the_invite_s_to_tag() -> None:
    p = EndpointPair()
    call_id = p.call_b()
    p.a.ep.hangup(p.now, call_id)
    p.pump()
    ok = next(m for m in p.a.received if isinstance(m, Response) and m.cseq.method == "CANCEL")
    terminated = next(m for m in p.a.received if isinstance(m, Response) and m.status == 487)
    assert ok.status == 200 and ok.to.tag == terminated.to.tag


def test_a_cancel_from_another_sent_by_does_not_cancel() -> None:
    ep = endpoint("1001", "127.0.0.1")
    ep.receive(invite(), PEER, 0.0)
    responses(ep)
    drain_events(ep)
    headers = [("Via", "SIP/2.0/UDP 10.9.9.9:5060;branch=z9hG4bKd1"),
               ("From", "<sip:9@127.0.0.1>;tag=f1"), ("To", "<sip:1001@127.0.0.1>"),
               ("Call-ID", "d-1"), ("CSeq", "1 CANCEL"), ("Max-Forwards", "70")]
    cancel = Request("CANCEL", SipUri.parse("sip:1001@127.0.0.1"), Headers(headers))
    ep.receive(bytes(cancel), PEER, 0.0)
    assert [r.status for r in responses(ep)] == [481]
    assert ep.call("d-1").state is CallState.INCOMING


def test_a_2xx_without_contact_is_acked_byed_and_ended() -> None:
    p = EndpointPair()
    p.phone_policy = False
    call_id = p.call_b()

    def strip_contact(m: object, side: object) -> bool:
        if isinstance(m, Response) and m.status == 200 and m.cseq.method == "INVITE":
            fixed = m.with_headers(m.headers.remove("Contact"))
            p.a.ep.receive(bytes(fixed), p.b.addr, p.now)
            return True
        return False

    p.drop = strip_contact
    p.b.ep.answer(p.now, call_id)
    p.pump()
    p.drop = lambda m, s: False
    p.pump()
    ended = [e for e in drain_events(p.a.ep) + p.a.events if isinstance(e, ev.CallEnded)]
    assert ended and ended[0].reason == "bad answer (no Contact)"
    assert p.a.ep.calls == []
    assert p.b.requests("BYE")  # the far end is not left in a call


def test_a_warning_header_survives_quotes_in_the_reason() -> None:
    ep = endpoint("1001", "127.0.0.1")
    bad = b'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n' \
          b'm=audio 4000 RTP/AVP 99\r\na=rtpmap:99 "x\\\\y/8000\r\n'
    ep.receive(invite(body=bad), PEER, 0.0)
    for r in responses(ep):
        warning = r.headers.get("Warning")
        if warning:
            text = warning.split('"', 1)[1]
            assert text.endswith('"') and '"' not in text[:-1] and "\\" not in text


def test_hanging_up_before_the_ack_waits_for_it_to_send_bye() -> None:
    """§15: the callee must not BYE before its 2xx is ACKed; the late ACK used to find no
    call, and the 2xx went on being retransmitted for 32 s."""
    p = EndpointPair()
    call_id = p.call_b()
    acks = {"dropped": 0}

    def drop_first_ack(m: object, side: object) -> bool:
        if isinstance(m, Request) and m.method == "ACK" and acks["dropped"] == 0:
            acks["dropped"] = 1
            return True
        return False

    p.drop = drop_first_ack
    p.b.ep.answer(p.now, call_id)
    p.pump()
    p.b.ep.hangup(p.now, call_id)
    p.pump()
    assert not p.a.requests("BYE")  # not yet: the ACK is not in
    assert ev.CallEnded(call_id, "local hangup", None) in p.b.events  # over for the person
    p.advance(0.6)  # the 2xx is retransmitted, A ACKs again, and then the BYE goes
    assert len(p.a.requests("BYE")) == 1
    ok_count = len([m for m in p.a.received if isinstance(m, Response) and m.status == 200
                    and m.cseq.method == "INVITE"])
    p.advance(10.0)
    assert len([m for m in p.a.received if isinstance(m, Response) and m.status == 200
                and m.cseq.method == "INVITE"]) == ok_count  # retransmissions stopped
    assert p.a.of(ev.CallEnded) == [ev.CallEnded(call_id, "remote hangup", None)]


def test_the_answer_in_the_ack_of_an_offerless_reinvite_reaches_the_media() -> None:
    from deskphone.sdp import SessionDescription, make_answer

    p = EndpointPair()
    call_id = p.connect()
    b_call = p.b.ep.call(call_id)
    assert b_call.dialog is not None
    reinvite, _ = b_call.dialog.new_request("INVITE", p.b.ep._via(),  # noqa: SLF001
                                            "<sip:1002@127.0.0.2:5060>")
    p.a.ep.receive(bytes(reinvite), p.b.addr, p.now)
    [(raw, _)] = p.a.ep.datagrams_to_send(p.now)
    ok = parse_message(raw)
    assert isinstance(ok, Response) and ok.status == 200
    offer = SessionDescription.parse(ok.body)
    answer, _ = make_answer(offer, MediaCaps(), "127.0.0.2", 4100, 7, 2)  # a new port
    ack, _ = b_call.dialog.new_request("ACK", p.b.ep._via(), None,  # noqa: SLF001
                                       [("Content-Type", "application/sdp")], bytes(answer),
                                       cseq=reinvite.cseq.seq)
    drain_events(p.a.ep)
    p.a.ep.receive(bytes(ack), p.b.addr, p.now)
    updated = [e for e in drain_events(p.a.ep) if isinstance(e, ev.CallUpdated)]
    assert len(updated) == 1 and updated[0].media is not None
    assert updated[0].media.remote_port == 4100


def test_dtmf_by_info_goes_one_digit_at_a_time() -> None:
    """A burst of INFOs reached a far end reordered through a multi-worker proxy (132#
    for 123#): the next digit leaves only after the last one's final response."""
    p = EndpointPair()
    call_id = p.connect()
    p.wire.clear()
    p.a.ep.send_dtmf_info(p.now, "123#", call_id)
    [(data, _)] = p.a.ep.datagrams_to_send(p.now)  # one INFO out, the rest wait
    p.b.ep.receive(data, p.a.addr, p.now)
    p.pump()  # B's 200 comes back; the next digit waits out the gap
    assert [m.method for _, m in p.wire if isinstance(m, Request)] == []
    p.advance(1.0)
    flow = [("INFO", m.body.decode().split("\r\n")[0]) if isinstance(m, Request)
            else (m.status, m.cseq.method) for _, m in p.wire]
    assert flow == [(200, "INFO"), ("INFO", "Signal=2"), (200, "INFO"),
                    ("INFO", "Signal=3"), (200, "INFO"), ("INFO", "Signal=#"), (200, "INFO")]
    assert [e.digit for e in p.b.of(ev.DtmfReceived)] == ["1", "2", "3", "#"]


def test_a_registrar_answer_with_a_huge_number_leaves_registering_with_a_retry() -> None:
    """A 200 whose Expires has 5,000 digits used to leave the registration in
    REGISTERING for good (int() raised inside the transaction user)."""
    from sipfakes import REGISTRAR

    from deskphone.sip.registration import RegState

    ep = endpoint("1001", "127.0.0.1")
    ep.register(0.0)
    [(raw, _)] = ep.datagrams_to_send(0.0)
    req = parse_message(raw)
    assert isinstance(req, Request)
    h = req.headers
    headers = [("Via", h.get("Via") or ""), ("From", h.get("From") or ""),
               ("To", (h.get("To") or "") + ";tag=r"), ("Call-ID", req.call_id),
               ("CSeq", h.get("CSeq") or ""), ("Expires", "9" * 5000)]
    ep.receive(bytes(Response(200, "OK", Headers(headers))), REGISTRAR, 0.0)
    drain_events(ep)
    # an Expires that does not parse counts as absent: the binding lasts what we asked
    assert ep.reg.state is RegState.REGISTERED and ep.reg.granted == 3600
    assert ep.reg.refresh_at == 3600 - 60


def test_both_sides_on_hold_is_inactive_not_recvonly() -> None:
    """RFC 3264 §8.4: we hold (sendonly); the far end holds us too (sendonly): our answer
    is inactive. recvonly let the holding phone take the held party's audio."""
    from deskphone.sdp import Direction

    p = EndpointPair()
    call_id = p.connect()
    p.a.ep.hold(p.now, True, call_id)
    p.pump()
    assert p.a.ep.call(call_id).media.direction is Direction.SENDONLY  # type: ignore[union-attr]
    p.b.ep.hold(p.now, True, call_id)  # B holds A in turn
    p.pump()
    assert p.a.ep.call(call_id).media.direction is Direction.INACTIVE  # type: ignore[union-attr]
    p.b.ep.hold(p.now, False, call_id)  # B resumes; A still holds: A sends only
    p.pump()
    assert p.a.ep.call(call_id).media.direction is Direction.SENDONLY  # type: ignore[union-attr]



def test_numbers_a_peer_sends_never_raise_past_the_parsers() -> None:
    """Min-Expires, a Contact's expires, rport and a dtmf-relay Duration of 5,000 digits
    or unicode digits: read as absent or refused, never a ValueError out of receive()."""
    from sipfakes import REGISTRAR

    from deskphone.sip.registration import RegState

    for min_expires, rport in (("9" * 5000, "9" * 5000), ("²", "²"), ("99999", "99999")):
        ep = endpoint("1001", "127.0.0.1")
        ep.register(0.0)
        [(raw, _)] = ep.datagrams_to_send(0.0)
        req = parse_message(raw)
        assert isinstance(req, Request)
        h = req.headers
        common = [("From", h.get("From") or ""), ("To", (h.get("To") or "") + ";tag=r"),
                  ("Call-ID", req.call_id), ("CSeq", h.get("CSeq") or "")]
        via = [("Via", h.get("Via") or "")]
        ep.receive(bytes(Response(423, "Too Brief", Headers(
            via + common + [("Min-Expires", min_expires)]))), REGISTRAR, 0.0)
        assert ep.internal_errors == 0
        assert ep.reg.state is RegState.RETRY_WAIT  # an unreadable 423 is a failure
        ep2 = endpoint("1001", "127.0.0.1")
        ep2.register(0.0)
        [(raw, _)] = ep2.datagrams_to_send(0.0)
        req2 = parse_message(raw)
        assert isinstance(req2, Request)
        h2 = req2.headers
        via2 = (h2.get("Via") or "").replace(";rport", f";received=192.0.2.9;rport={rport}")
        ok = [("Via", via2),
              ("From", h2.get("From") or ""), ("To", (h2.get("To") or "") + ";tag=r"),
              ("Call-ID", req2.call_id), ("CSeq", h2.get("CSeq") or ""),
              ("Contact", f"<sip:1001@127.0.0.1:5060>;expires={min_expires}")]
        ep2.receive(bytes(Response(200, "OK", Headers(ok))), REGISTRAR, 0.0)
        assert ep2.internal_errors == 0
        assert ep2.reg.state is RegState.REGISTERED  # no NAT rewrite to a bogus port
        assert str(ep2.reg.contact) == "sip:1001@127.0.0.1:5060"
