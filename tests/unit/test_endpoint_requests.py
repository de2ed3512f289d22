"""How the endpoint answers requests it gets: OPTIONS, bad input, unknown things."""

from __future__ import annotations

from sipfakes import drain_events, endpoint

from deskphone.sip import events as ev
from deskphone.sip.dialog import Dialog
from deskphone.sip.endpoint import Endpoint
from deskphone.sip.message import Headers, Request, Response, parse_message
from deskphone.sip.transaction import Addr
from deskphone.sip.uri import Address, SipUri

PEER = Addr("udp", "10.0.0.9", 5090)


def request(method: str, *extra: tuple[str, str], to_tag: str | None = None,
            via: str = "SIP/2.0/UDP 10.0.0.9:5090;branch=z9hG4bKx1;rport",
            cseq: str | None = None, body: bytes = b"") -> bytes:
    to = "<sip:1001@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    headers = [("Via", via), ("From", "<sip:9@10.0.0.9>;tag=ft"), ("To", to),
               ("Call-ID", "cid-1"), ("CSeq", cseq or f"1 {method}"),
               ("Max-Forwards", "70"), *extra]
    return bytes(Request(method, SipUri.parse("sip:1001@127.0.0.1:5060"), Headers(headers),
                         body))


def answers(ep: Endpoint, data: bytes, source: Addr = PEER) -> list[tuple[Response, Addr]]:
    ep.receive(data, source, 0.0)
    out = []
    for raw, addr in ep.datagrams_to_send(0.0):
        msg = parse_message(raw)
        assert isinstance(msg, Response)
        out.append((msg, addr))
    return out


def test_options_gets_200_with_allow_and_accept() -> None:
    ep = endpoint("1001", "127.0.0.1")
    [(resp, addr)] = answers(ep, request("OPTIONS"))
    assert resp.status == 200
    assert "INVITE" in (resp.headers.get("Allow") or "")
    assert resp.headers.get("Accept") == "application/sdp"
    assert resp.to.tag  # §8.2.6.2: a tag on the To of a final response
    assert addr == PEER  # rport: back to where it came from
    # the Via we echo notes the real source (RFC 3581)
    assert resp.top_via.param("rport") == "5090"


def test_response_goes_back_to_the_source_even_without_rport() -> None:
    """We answer symmetrically (as RFC 3581 would) rather than to the sent-by
    port of §18.2.2: a phone behind NAT has no other way back."""
    ep = endpoint("1001", "127.0.0.1")
    data = request("OPTIONS", via="SIP/2.0/UDP somehost.example:5070;branch=z9hG4bKx2")
    [(resp, addr)] = answers(ep, data, Addr("udp", "10.0.0.9", 40000))
    assert resp.top_via.param("received") == "10.0.0.9"
    assert addr == Addr("udp", "10.0.0.9", 40000)


def test_a_forged_via_cannot_aim_our_response_at_a_third_party() -> None:
    """Reflection: a Via naming a victim's host and port, sent from the attacker's, is
    answered to the attacker's address, never to the victim's (issue: hardening, item 14)."""
    ep = endpoint("1001", "127.0.0.1")
    data = request("OPTIONS", via="SIP/2.0/UDP 192.0.2.50:53;branch=z9hG4bKx3")
    [(_, addr)] = answers(ep, data, Addr("udp", "10.0.0.9", 40001))
    assert addr == Addr("udp", "10.0.0.9", 40001)


def test_garbage_is_dropped_and_logged() -> None:
    ep = endpoint("1001", "127.0.0.1")
    assert answers(ep, b"\x00\xffhello there") == []
    [warning] = drain_events(ep)
    assert isinstance(warning, ev.ProtocolWarning)
    assert warning.text.startswith("unparsable message dropped:")


def test_broken_cseq_gets_400_with_a_warning_header() -> None:
    ep = endpoint("1001", "127.0.0.1")
    [(resp, _)] = answers(ep, request("OPTIONS", cseq="abc OPTIONS"))
    assert resp.status == 400
    assert resp.headers.get("Warning") == "399 deskphone \"bad CSeq: 'abc OPTIONS'\""
    assert resp.headers.get("CSeq") == "abc OPTIONS"  # echoed as it came


def test_cseq_method_mismatch_gets_400() -> None:
    ep = endpoint("1001", "127.0.0.1")
    [(resp, _)] = answers(ep, request("OPTIONS", cseq="1 INVITE"))
    assert resp.status == 400
    assert "does not match" in (resp.headers.get("Warning") or "")


def test_unparsable_request_line_with_readable_headers_gets_400() -> None:
    ep = endpoint("1001", "127.0.0.1")
    data = request("OPTIONS").replace(b"OPTIONS sip:1001@127.0.0.1:5060 SIP/2.0",
                                      b"OPTIONS sip:1001@127.0.0.1:5060 SIP/2.0 extra")
    [(resp, _)] = answers(ep, data)
    assert resp.status == 400 and resp.headers.get("Call-ID") == "cid-1"


def test_wrong_version_gets_505() -> None:
    ep = endpoint("1001", "127.0.0.1")
    data = request("OPTIONS").replace(b" SIP/2.0\r\n", b" SIP/3.0\r\n", 1)
    [(resp, _)] = answers(ep, data)
    assert resp.status == 505


def test_a_broken_response_is_dropped_silently() -> None:
    ep = endpoint("1001", "127.0.0.1")
    assert answers(ep, b"SIP/2.0 200 OK\r\nVia: nonsense\r\n\r\n") == []
    assert answers(ep, b"SIP/2.0 2000 OK\r\n\r\n") == []


def test_ack_is_never_answered_even_when_broken() -> None:
    ep = endpoint("1001", "127.0.0.1")
    assert answers(ep, request("ACK", cseq="x ACK")) == []
    assert answers(ep, request("ACK")) == []


def test_unknown_method_gets_501_and_unsupported_known_one_405() -> None:
    ep = endpoint("1001", "127.0.0.1")
    [(resp, _)] = answers(ep, request("FOOBAR"))
    assert resp.status == 501
    [(resp, _)] = answers(ep, request("SUBSCRIBE").replace(b"z9hG4bKx1", b"z9hG4bKx3"))
    assert resp.status == 405 and "INVITE" in (resp.headers.get("Allow") or "")


def test_require_of_an_unknown_extension_gets_420() -> None:
    ep = endpoint("1001", "127.0.0.1")
    [(resp, _)] = answers(ep, request("OPTIONS", ("Require", "100rel, foo")))
    assert resp.status == 420 and resp.headers.get("Unsupported") == "100rel, foo"


def test_bye_for_an_unknown_dialog_gets_481() -> None:
    ep = endpoint("1001", "127.0.0.1")
    [(resp, _)] = answers(ep, request("BYE", to_tag="nope"))
    assert resp.status == 481


def test_unsolicited_mwi_notify_gets_200() -> None:
    ep = endpoint("1001", "127.0.0.1")
    [(resp, _)] = answers(ep, request(
        "NOTIFY", ("Event", "message-summary"),
        ("Content-Type", "application/simple-message-summary"),
        to_tag="x", body=b"Messages-Waiting: yes\r\n"))
    assert resp.status == 200


def test_cancel_for_nothing_gets_481() -> None:
    ep = endpoint("1001", "127.0.0.1")
    [(resp, _)] = answers(ep, request("CANCEL"))
    assert resp.status == 481


def test_the_phone_keeps_working_after_bad_input() -> None:
    ep = endpoint("1001", "127.0.0.1")
    for junk in (b"", b"\r\n\r\n", b"INVITE", b"SIP/2.0", request("OPTIONS")[:40],
                 b"INVITE sip:x SIP/2.0\r\nContent-Length: 99\r\n\r\nshort"):
        ep.receive(junk, PEER, 0.0)
    ep.datagrams_to_send(0.0)
    [(resp, _)] = answers(ep, request("OPTIONS").replace(b"z9hG4bKx1", b"z9hG4bKok"))
    assert resp.status == 200


def test_in_dialog_requests_follow_the_record_route() -> None:
    invite = Request("INVITE", SipUri.parse("sip:1001@127.0.0.1:5080"), Headers([
        ("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKp"),
        ("Via", "SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bKc"),
        ("Record-Route", "<sip:127.0.0.1:5060;lr;ftag=ft>"),
        ("From", "<sip:1002@127.0.0.1>;tag=ft"), ("To", "<sip:1001@127.0.0.1>"),
        ("Call-ID", "c9"), ("CSeq", "2 INVITE"), ("Contact", "<sip:1002@127.0.0.1:5061>")]))
    d = Dialog.from_uas(invite, "mytag")
    bye, hop = d.new_request("BYE", "SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKb", None)
    assert str(bye.uri) == "sip:1002@127.0.0.1:5061"  # loose routing: target stays R-URI
    assert bye.headers.get_all("Route") == ["<sip:127.0.0.1:5060;lr;ftag=ft>"]
    assert str(hop) == "sip:127.0.0.1:5060;lr;ftag=ft"  # sent to the proxy
    assert bye.from_.tag == "mytag" and bye.to.tag == "ft"
    assert bye.cseq.seq == 1  # our own CSeq space starts afresh
    # a strict router (no ;lr) becomes the Request-URI, the target goes last (§12.2.1.1)
    d.route_set = [Address(SipUri.parse("sip:10.0.0.1")), Address(SipUri.parse("sip:10.0.0.2;lr"))]
    req, hop = d.new_request("INFO", "SIP/2.0/UDP h;branch=z9hG4bKi", None)
    assert str(req.uri) == "sip:10.0.0.1"
    assert req.headers.get_all("Route") == ["<sip:10.0.0.2;lr>", "<sip:1002@127.0.0.1:5061>"]
    # §12.2.2: a lower CSeq from the peer is out of order
    late = invite.with_headers(invite.headers.set("CSeq", "1 BYE"))
    assert not d.check_remote_seq(Request("BYE", late.uri, late.headers))
