"""Calls between two sans-I/O endpoints over a fake link (no sockets, fake clock)."""

from __future__ import annotations

import pytest
from sdp_bodies import crlf
from sipfakes import EndpointPair

from deskphone.sdp import PCMA, PCMU, MediaCaps
from deskphone.sip import events as ev
from deskphone.sip.call import CallState
from deskphone.sip.errors import LocalProtocolError
from deskphone.sip.message import Request, Response, parse_message


def test_call_answer_and_hang_up_from_the_caller() -> None:
    p = EndpointPair()
    call_id = p.call_b()
    assert [type(e) for e in p.b.events] == [ev.IncomingCall]
    incoming = p.b.of(ev.IncomingCall)[0]
    assert incoming.remote_uri == "sip:1001@127.0.0.1"
    assert p.a.of(ev.CallRinging) == [ev.CallRinging(call_id, 180)]
    assert [m.status for m in p.a.received if isinstance(m, Response)] == [100, 180]

    p.b.ep.answer(p.now)
    p.pump()
    a_conn = p.a.of(ev.CallConnected)[0]
    b_conn = p.b.of(ev.CallConnected)[0]
    assert a_conn.media is not None and b_conn.media is not None
    assert a_conn.media.codec.encoding == b_conn.media.codec.encoding == "PCMU"
    # each side sends RTP to the port the other put in its SDP
    assert a_conn.media.remote_port == b_conn.media.local_port
    assert b_conn.media.remote_port == a_conn.media.local_port
    assert p.b.ep.call().state is CallState.CONNECTED

    p.a.ep.hangup(p.now)
    p.pump()
    assert p.a.of(ev.CallEnded) == [ev.CallEnded(call_id, "local hangup", None)]
    assert p.b.of(ev.CallEnded) == [ev.CallEnded(call_id, "remote hangup", None)]
    assert [m.status for m in p.a.received if isinstance(m, Response)][-1] == 200
    assert p.a.ep.calls == [] and p.b.ep.calls == []


def test_callee_hangs_up_with_bye_in_the_dialog() -> None:
    p = EndpointPair()
    call_id = p.connect()
    b_tag, a_tag = p.b.ep.call(call_id).local_tag, p.a.ep.call(call_id).local_tag
    p.b.ep.hangup(p.now)
    p.pump()
    bye = p.a.requests("BYE")[0]
    # §12.2.1.1: the BYE goes to the caller's Contact, tags swapped, CSeq new
    assert str(bye.uri) == "sip:1001@127.0.0.1:5060"
    assert (bye.from_.tag, bye.to.tag) == (b_tag, a_tag)
    assert bye.cseq.method == "BYE" and bye.call_id == call_id
    assert p.a.of(ev.CallEnded) == [ev.CallEnded(call_id, "remote hangup", None)]


def test_second_call_gets_486_busy_here() -> None:
    p = EndpointPair()
    p.connect()
    c = EndpointPair(seed=7)  # a third phone calls our B
    c.b = p.b
    c.a.ep.dial("sip:1002@127.0.0.2", c.now)
    c.pump()
    ended = c.a.of(ev.CallEnded)
    assert ended and ended[0].status == 486 and ended[0].reason == "busy"
    # the 486 was ACKed inside the transaction and B's first call still stands
    assert [m.method for m in c.b.received if isinstance(m, Request)][-1] == "ACK"
    assert p.b.ep.call().state is CallState.CONNECTED


def test_cancel_while_ringing() -> None:
    p = EndpointPair()
    call_id = p.call_b()
    p.a.ep.hangup(p.now)
    p.pump()
    assert p.a.of(ev.CallEnded) == [ev.CallEnded(call_id, "cancelled", None)]
    assert p.b.of(ev.CallEnded) == [ev.CallEnded(call_id, "cancelled", 487)]
    # CANCEL answered 200, INVITE answered 487 and ACKed
    assert p.a.responses(200) and p.a.responses(487)
    assert [m.method for m in p.b.received if isinstance(m, Request)] == [
        "INVITE", "CANCEL", "ACK"]
    cancel = p.b.requests("CANCEL")[0]
    invite = p.b.requests("INVITE")[0]
    assert cancel.top_via.branch == invite.top_via.branch  # §9.1
    assert cancel.cseq.seq == invite.cseq.seq


def test_hangup_before_any_provisional_sends_cancel_once_one_arrives() -> None:
    p = EndpointPair()
    # the far end's responses are lost for now
    p.drop = lambda m, side: side is p.b
    call_id = p.a.ep.dial("sip:1002@127.0.0.2", p.now)
    p.pump()
    p.a.ep.hangup(p.now)
    p.pump()
    assert p.a.of(ev.CallEnded) == [ev.CallEnded(call_id, "cancelled", None)]
    assert p.b.requests("CANCEL") == []  # §9.1: no CANCEL before a 1xx
    p.drop = lambda m, side: False
    p.advance(0.6)  # Timer A: INVITE retransmitted; B re-sends its 180
    assert len(p.b.requests("CANCEL")) == 1
    assert p.b.of(ev.CallEnded)[0].status == 487


def test_lost_200_is_retransmitted_until_acked() -> None:
    p = EndpointPair()
    p.call_b()
    dropped: list[Response] = []

    def drop(m: object, side: object) -> bool:
        if isinstance(m, Response) and m.status == 200 and not dropped:
            dropped.append(m)
            return True
        return False

    p.drop = drop
    p.b.ep.answer(p.now)
    p.pump()
    assert p.a.of(ev.CallConnected) == []
    p.advance(0.6)  # B re-sends its 2xx after T1
    assert len(p.a.of(ev.CallConnected)) == 1
    assert len(p.b.of(ev.CallConnected)) == 1
    acks = len(p.b.requests("ACK"))
    p.advance(10)  # ACK seen: no more 2xx retransmissions
    assert len(p.b.requests("ACK")) == acks
    assert sum(1 for s, m in p.wire if isinstance(m, Response) and m.status == 200) == 2


def test_lost_ack_makes_the_callee_resend_200_and_the_caller_ack_again() -> None:
    p = EndpointPair()
    p.call_b()
    lost: list[Request] = []

    def drop(m: object, side: object) -> bool:
        if isinstance(m, Request) and m.method == "ACK" and not lost:
            lost.append(m)
            return True
        return False

    p.drop = drop
    p.b.ep.answer(p.now)
    p.pump()
    assert len(p.a.of(ev.CallConnected)) == 1 and p.b.of(ev.CallConnected) == []
    p.advance(0.6)
    assert len(p.b.of(ev.CallConnected)) == 1
    assert bytes(p.b.requests("ACK")[0]) == bytes(lost[0])  # the same ACK again


def test_no_ack_at_all_ends_the_call_with_bye() -> None:
    p = EndpointPair()
    call_id = p.call_b()
    p.drop = lambda m, side: isinstance(m, Request) and m.method == "ACK"
    p.b.ep.answer(p.now)
    p.pump()
    p.advance(40)  # 64*T1 without ACK: §13.3.1.4
    assert ev.CallEnded(call_id, "no ACK", 408) in p.b.events
    assert p.a.requests("BYE")


def test_no_common_codec_is_refused_with_488() -> None:
    p = EndpointPair(a_kw={"media": MediaCaps(codecs=(PCMA,), telephone_event=False)},
                     b_kw={"media": MediaCaps(codecs=(PCMU,))})
    call_id = p.call_b()
    assert p.b.events == [p.b.events[0]] and isinstance(p.b.events[0], ev.ProtocolWarning)
    resp = p.a.responses(488)[0]
    assert "no common codec" in (resp.headers.get("Warning") or "")
    assert p.a.of(ev.CallEnded) == [ev.CallEnded(call_id, "not acceptable", 488)]


def test_callee_rejects_with_486() -> None:
    p = EndpointPair()
    call_id = p.call_b()
    p.b.ep.hangup(p.now)
    p.pump()
    assert p.b.of(ev.CallEnded) == [ev.CallEnded(call_id, "rejected", 486)]
    assert p.a.of(ev.CallEnded) == [ev.CallEnded(call_id, "busy", 486)]


def test_invite_retransmission_is_absorbed_by_the_server_transaction() -> None:
    p = EndpointPair()
    p.drop = lambda m, side: side is p.b and isinstance(m, Response) and m.status == 100
    p.call_b()
    p.drop = lambda m, side: False
    invite = p.b.requests("INVITE")[0]
    p.b.ep.receive(bytes(invite), p.a.addr, p.now)
    p.pump()
    assert len(p.b.of(ev.IncomingCall)) == 1  # not a second call


def test_answer_when_nothing_rings_is_a_local_error() -> None:
    p = EndpointPair()
    with pytest.raises(LocalProtocolError, match="no call"):
        p.b.ep.answer(p.now)
    p.connect()
    with pytest.raises(LocalProtocolError, match="call is connected, not ringing"):
        p.b.ep.answer(p.now)


def test_dial_targets() -> None:
    p = EndpointPair()
    ep = p.a.ep
    assert str(ep.target_uri("1002")) == "sip:1002@127.0.0.1"
    assert str(ep.target_uri("1002@10.0.0.5:5070")) == "sip:1002@10.0.0.5:5070"
    assert str(ep.target_uri("sip:2000@127.0.0.1:5072")) == "sip:2000@127.0.0.1:5072"
    with pytest.raises(LocalProtocolError, match="nothing to dial"):
        ep.target_uri("  ")
    with pytest.raises(LocalProtocolError, match="cannot dial 'sip:@@'"):
        ep.target_uri("sip:@@")


def test_late_offer_invite_gets_our_offer_in_200_and_answer_in_ack() -> None:
    p = EndpointPair()
    call_id = p.a.ep.dial("sip:1002@127.0.0.2", p.now)
    # rewrite A's INVITE into one with no body (an offerless INVITE)
    out = p.a.ep.datagrams_to_send(p.now)
    from deskphone.sip.message import parse_message

    inv = parse_message(out[0][0])
    assert isinstance(inv, Request)
    bare = Request("INVITE", inv.uri, inv.headers.remove("Content-Type"), b"")
    p.b.ep.receive(bytes(bare), p.a.addr, p.now)
    p.b.ep.answer(p.now)
    sent = p.b.ep.datagrams_to_send(p.now)
    ok = parse_message(sent[-1][0])
    assert isinstance(ok, Response) and ok.status == 200
    assert b"m=audio" in ok.body
    del call_id


def test_hold_and_resume_with_re_invite() -> None:
    p = EndpointPair()
    call_id = p.connect()
    p.a.ep.hold(p.now, True)
    p.pump()
    reinvite = p.b.requests("INVITE")[-1]
    assert reinvite.to.tag and b"a=sendonly" in reinvite.body
    assert reinvite.cseq.seq == p.b.requests("INVITE")[0].cseq.seq + 1
    # B answers recvonly; both sides report the new media
    a_upd = p.a.of(ev.CallUpdated)[-1]
    b_upd = p.b.of(ev.CallUpdated)[-1]
    assert a_upd.call_id == b_upd.call_id == call_id
    assert a_upd.media is not None and a_upd.media.direction.value == "sendonly"
    assert b_upd.media is not None and b_upd.media.direction.value == "recvonly"
    assert p.b.requests("ACK")[-1].cseq.seq == reinvite.cseq.seq
    p.a.ep.hold(p.now, False)
    p.pump()
    media = p.a.of(ev.CallUpdated)[-1].media
    assert media is not None and media.direction.value == "sendrecv"
    # both sides of the call are still there afterwards
    p.b.ep.hangup(p.now)
    p.pump()
    assert p.a.of(ev.CallEnded)[-1].reason == "remote hangup"


def test_re_invite_glare_gets_491() -> None:
    p = EndpointPair()
    p.connect()
    p.drop = lambda m, side: True  # both re-INVITEs cross on the wire
    p.a.ep.hold(p.now, True)
    p.b.ep.hold(p.now, True)
    p.pump()
    p.drop = lambda m, side: False
    p.advance(0.6)  # retransmissions get through now, each into the other's pending one
    assert p.a.responses(491) and p.b.responses(491)


def test_hold_needs_a_connected_call() -> None:
    p = EndpointPair()
    p.call_b()
    with pytest.raises(LocalProtocolError, match="call is ringing, not connected"):
        p.a.ep.hold(p.now, True)


def test_info_dtmf_reaches_the_far_end_as_an_event() -> None:
    p = EndpointPair()
    call_id = p.connect()
    p.a.ep.send_info(p.now, "application/dtmf-relay", b"Signal=7\r\nDuration=160\r\n")
    p.pump()
    assert p.b.of(ev.DtmfReceived) == [ev.DtmfReceived(call_id, "7", 160)]
    assert p.a.responses(200)


def test_in_dialog_options_ping_and_a_gone_far_end() -> None:
    p = EndpointPair()
    call_id = p.connect()
    p.a.ep.ping(p.now)
    p.pump()
    assert p.b.requests("OPTIONS") and p.a.of(ev.CallEnded) == []
    p.drop = lambda m, side: True  # the far end vanished
    p.a.ep.ping(p.now)
    p.advance(40)
    assert p.a.of(ev.CallEnded) == [ev.CallEnded(call_id, "far end gone", 408)]


# --- early media (an SDP answer in a provisional response) -------------------------------

EARLY_ANSWER = crlf("""
v=0
o=pbx 1 1 IN IP4 127.0.0.9
s=-
c=IN IP4 127.0.0.9
t=0 0
m=audio 40000 RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=sendrecv
""")


def provisional(p: EndpointPair, status: int, body: bytes = b"") -> None:
    """B's 180 to A's INVITE, turned into ``status`` with ``body`` and given to A (what a
    PBX or gateway sends: our own endpoint answers 180 without SDP)."""
    ringing = next(m for who, m in p.wire if who == "B" and isinstance(m, Response)
                   and m.status == 180)
    headers = ringing.headers.remove("Content-Length").remove("Content-Type")
    if body:
        headers = headers.add("Content-Type", "application/sdp")
    headers = headers.add("Content-Length", str(len(body)))
    resp = Response(status, "Session Progress", headers, body)
    p.a.ep.receive(bytes(resp), p.b.addr, p.now)
    p.pump()


def test_183_with_sdp_brings_early_media_then_200_connects() -> None:
    p = EndpointPair()
    call_id = p.call_b()
    provisional(p, 183, EARLY_ANSWER)
    rings = p.a.of(ev.CallRinging)
    assert [r.status for r in rings] == [180, 183]
    early = rings[-1].media
    assert early is not None
    assert (early.remote_address, early.remote_port) == ("127.0.0.9", 40000)
    assert early.codec.encoding == "PCMA" and early.telephone_event_pt == 101
    assert p.a.ep.call().state is CallState.RINGING_OUT
    # a second answer in a 18x (a retransmission, another fork) changes nothing
    provisional(p, 183, EARLY_ANSWER.replace(b"40000", b"40002"))
    assert len(p.a.of(ev.CallRinging)) == 2
    p.b.ep.answer(p.now)
    p.pump()
    (conn,) = p.a.of(ev.CallConnected)
    assert conn.call_id == call_id and conn.media is not None
    assert conn.media.remote_address == "127.0.0.2"  # the 2xx's answer is the answer


def test_a_2xx_without_sdp_after_early_media_keeps_the_early_media() -> None:
    p = EndpointPair()
    call_id = p.call_b()
    provisional(p, 183, EARLY_ANSWER)
    early = p.a.of(ev.CallRinging)[-1].media
    # B answers; its 200 loses its SDP on the way (a UA that sent the answer only once)
    p.b.ep.answer(p.now)
    ok = None
    for data, _ in p.b.ep.datagrams_to_send(p.now):
        ok = parse_message(data)
    assert isinstance(ok, Response) and ok.status == 200
    headers = ok.headers.remove("Content-Type").remove("Content-Length").add(
        "Content-Length", "0")
    p.a.ep.receive(bytes(Response(200, "OK", headers, b"")), p.b.addr, p.now)
    p.pump()
    (conn,) = p.a.of(ev.CallConnected)
    assert conn.call_id == call_id and conn.media == early
    assert p.a.ep.call().state is CallState.CONNECTED


def test_bad_sdp_in_a_183_is_warned_about_and_the_call_goes_on() -> None:
    p = EndpointPair()
    p.call_b()
    provisional(p, 183, b"v=0\r\nthis is not sdp\r\n")
    assert [r.media for r in p.a.of(ev.CallRinging)] == [None]  # only the 180's
    assert any("bad SDP in 183" in w.text for w in p.a.of(ev.ProtocolWarning))
    p.b.ep.answer(p.now)
    p.pump()
    assert p.a.of(ev.CallConnected)[0].media is not None


def test_183_without_sdp_is_ringing_without_media() -> None:
    p = EndpointPair()
    p.a.ep.dial("sip:1002@127.0.0.2", p.now)
    p.drop = lambda m, side: isinstance(m, Response) and m.status == 180
    p.pump()
    p.drop = lambda m, side: False
    provisional(p, 183)
    assert p.a.of(ev.CallRinging) == [ev.CallRinging(p.a.ep.call().call_id, 183, None)]


def test_a_2xx_without_sdp_from_another_fork_is_not_the_early_medias_answer() -> None:
    """The 183 came from fork A; fork B answers 200 without SDP: A's early media is not
    B's answer (we would send to A, whom the proxy is cancelling)."""
    p = EndpointPair()
    p.call_b()
    provisional(p, 183, EARLY_ANSWER)  # B's 180 made a 183: B's To tag, fork "A"
    ok = None
    p.b.ep.answer(p.now)
    for data, _ in p.b.ep.datagrams_to_send(p.now):
        ok = parse_message(data)
    assert isinstance(ok, Response) and ok.status == 200
    to = ok.headers.get("To")
    assert to is not None
    headers = (ok.headers.remove("Content-Type").remove("Content-Length")
               .set("To", to.split(";tag=")[0] + ";tag=fork-b").add("Content-Length", "0"))
    p.a.ep.receive(bytes(Response(200, "OK", headers, b"")), p.b.addr, p.now)
    p.pump()
    assert not p.a.of(ev.CallConnected)
    (ended,) = p.a.of(ev.CallEnded)
    assert ended.reason == "media negotiation failed"


# ------------------------------------------------ the core reports, the phone decides


def test_an_incoming_call_gets_100_only_until_the_phone_rings_it() -> None:
    p = EndpointPair()
    p.phone_policy = False  # no phone layer: nothing decides for the core
    call_id = p.call_b()
    assert [m.status for m in p.a.received if isinstance(m, Response)] == [100]
    assert p.a.of(ev.CallRinging) == []
    p.b.ep.ring(p.now, call_id)
    p.pump()
    assert p.a.of(ev.CallRinging) == [ev.CallRinging(call_id, 180)]
    ringing = [m for m in p.a.received if isinstance(m, Response) and m.status == 180][0]
    assert ringing.to.tag == p.b.ep.call(call_id).local_tag  # the dialog's tag, early


def test_the_phone_turns_a_call_away_with_its_own_code() -> None:
    p = EndpointPair()
    p.phone_policy = False
    call_id = p.call_b()
    p.b.ep.reject(p.now, 603, call_id)
    p.pump()
    assert p.b.of(ev.CallEnded) == [ev.CallEnded(call_id, "rejected", 603)]
    assert p.a.of(ev.CallEnded) == [ev.CallEnded(call_id, "declined", 603)]
    with pytest.raises(LocalProtocolError, match="no call"):
        p.b.ep.ring(p.now, call_id)


def test_reject_takes_only_a_final_failure_code() -> None:
    p = EndpointPair()
    p.phone_policy = False
    call_id = p.call_b()
    with pytest.raises(LocalProtocolError, match="not a rejection code: 200"):
        p.b.ep.reject(p.now, 200, call_id)
    p.b.ep.answer(p.now, call_id)
    p.pump()
    with pytest.raises(LocalProtocolError, match="not ringing"):
        p.b.ep.ring(p.now, call_id)


class RecordingPorts:
    def __init__(self) -> None:
        self.next, self.released = 20000, []  # type: ignore[var-annotated]

    def allocate(self) -> int:
        self.next += 2
        return self.next

    def release(self, port: int) -> None:
        self.released.append(port)


def test_the_core_does_not_free_a_call_s_port_inside_receive() -> None:
    """Freeing a port stops the call's media thread (a join): the runtime does it when it
    sees CallEnded, never the pure core from inside receive()."""
    p = EndpointPair()
    ports = RecordingPorts()
    p.b.ep._ports = ports  # noqa: SLF001 - the PortSource the app would have injected
    p.connect()
    p.a.ep.hangup(p.now)
    p.pump()  # B's receive() takes the BYE and ends the call
    assert p.b.of(ev.CallEnded) and ports.released == []


# ------------------------------------------------ found by a review of the phone layer


def test_an_invite_reusing_a_live_call_id_does_not_replace_the_call() -> None:
    from deskphone.sip.transaction import Addr

    p = EndpointPair()
    call_id = p.connect()
    invite = next(m for m in p.b.received if isinstance(m, Request) and m.method == "INVITE")
    h = invite.headers
    h = h.replace_first("Via", h.get_all("Via")[0].replace("branch=z9hG4bK", "branch=z9hG4bKx"))
    h = h.replace_first("From", "<sip:666@127.0.0.9>;tag=other")
    p.b.ep.receive(bytes(invite.with_headers(h)), Addr("udp", "127.0.0.9", 5060), p.now)
    (data, _), = p.b.ep.datagrams_to_send(p.now)
    assert parse_message(data).status == 486  # type: ignore[union-attr]
    assert p.b.ep.call(call_id).state is CallState.CONNECTED
    assert p.b.ep.next_event() is None  # no CallEnded for the live call


def test_a_call_to_ourselves_is_a_loop_not_a_second_call() -> None:
    from sipfakes import endpoint

    from deskphone.sip.transaction import Addr

    a = endpoint("1001", "127.0.0.1")
    call_id = a.dial("sip:1001@127.0.0.1:5060", 0.0)
    (data, _), = a.datagrams_to_send(0.0)
    a.receive(data, Addr("udp", "127.0.0.1", 5060), 0.0)
    statuses = [parse_message(d).status for d, _ in a.datagrams_to_send(0.0)]  # type: ignore[union-attr]
    assert statuses == [482]
    assert [c.call_id for c in a.calls] == [call_id]
    assert not [e for e in iter(a.next_event, None) if isinstance(e, ev.CallEnded)]


def test_without_a_registrar_a_host_name_contact_is_reached_where_the_call_went() -> None:
    """No proxy to resolve bob.example: the ACK and the BYE go where the INVITE went."""
    from deskphone.sip.transaction import Addr

    p = EndpointPair(a_kw={"registrar": None, "proxy": None},
                     b_kw={"local": Addr("udp", "bob.example", 5060)})
    call_id = p.connect()
    assert p.a.ep.call(call_id).state is CallState.CONNECTED
    assert p.b.requests("ACK")
    p.a.ep.hangup(p.now)
    p.pump()
    assert p.b.of(ev.CallEnded) == [ev.CallEnded(call_id, "remote hangup", None)]


def test_a_ringing_call_is_not_timed_out_by_timer_b() -> None:
    """§17.1.1.2: Timer B ends the Calling state only; a phone may ring for minutes."""
    p = EndpointPair()
    call_id = p.call_b()
    p.advance(120.0)
    assert p.a.of(ev.CallEnded) == []
    p.b.ep.answer(p.now)
    p.pump()
    assert p.a.of(ev.CallConnected)[0].call_id == call_id


def test_a_refused_hold_is_reported() -> None:
    p = EndpointPair()
    call_id = p.connect()
    p.drop = lambda m, side: False
    p.a.ep.hold(p.now, True, call_id)
    reinvite = p.a.ep.datagrams_to_send(p.now)  # hold it back: answer it 488 ourselves
    (data, addr), = reinvite
    req = parse_message(data)
    assert isinstance(req, Request)
    h = req.headers
    resp = Response(488, "Not Acceptable Here", type(h)(
        [("Via", v) for v in h.get_all("Via")]
        + [("From", h.get("From") or ""), ("To", h.get("To") or ""),
           ("Call-ID", call_id), ("CSeq", h.get("CSeq") or "")]))
    p.a.ep.receive(bytes(resp), p.b.addr, p.now)
    events = list(iter(p.a.ep.next_event, None))
    assert ev.CallUpdateFailed(call_id, 488, "Not Acceptable Here") in events
    assert p.a.ep.call(call_id).state is CallState.CONNECTED
