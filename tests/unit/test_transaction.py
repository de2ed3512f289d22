"""RFC 3261 §17 transaction state machines, driven by a fake clock."""

from __future__ import annotations

import pytest

from deskphone.sip.message import Headers, Request, Response, parse_message
from deskphone.sip.transaction import (
    TIMEOUT,
    Addr,
    ClientTransaction,
    ServerTransaction,
    TimerValues,
    TxState,
    ack_for,
)
from deskphone.sip.uri import SipUri

T = TimerValues()  # T1 0.5, T2 4, T4 5
UDP = Addr("udp", "127.0.0.1", 5060)
TCP = Addr("tcp", "127.0.0.1", 5060)


def request(method: str = "INVITE", branch: str = "z9hG4bKabc") -> Request:
    return Request(method, SipUri.parse("sip:1002@127.0.0.1"), Headers([
        ("Via", f"SIP/2.0/UDP 127.0.0.1:5080;branch={branch};rport"),
        ("Route", "<sip:127.0.0.1;lr>"),
        ("From", "<sip:1001@127.0.0.1>;tag=f1"),
        ("To", "<sip:1002@127.0.0.1>"),
        ("Call-ID", "c1"),
        ("CSeq", f"1 {method}"),
        ("Max-Forwards", "70"),
    ]))


def response(req: Request, code: int, to_tag: str = "t1") -> Response:
    h = req.headers
    to = h.get("To") or ""
    if code > 100:
        to += f";tag={to_tag}"
    return Response(code, "X", Headers([
        ("Via", h.get("Via") or ""), ("From", h.get("From") or ""), ("To", to),
        ("Call-ID", "c1"), ("CSeq", h.get("CSeq") or "")]))


class Wire:
    def __init__(self) -> None:
        self.sent: list[tuple[Request | Response, Addr]] = []

    def __call__(self, msg: Request | Response, addr: Addr) -> None:
        self.sent.append((msg, addr))

    def kinds(self) -> list[str]:
        return [m.method if isinstance(m, Request) else str(m.status) for m, _ in self.sent]


def run_timers(tx: ClientTransaction | ServerTransaction, until: float) -> list[float]:
    """Fire every timer up to ``until``; returns when each fired."""
    fired = []
    while (d := tx.deadline()) is not None and d <= until:
        fired.append(round(d, 3))
        tx.on_timer(d)
    return fired


def test_invite_client_retransmits_with_timer_a_doubling_then_b_times_out() -> None:
    wire = Wire()
    tx = ClientTransaction(request(), UDP, wire, T, now=0.0)
    assert set(tx.timers) == {"A", "B"}
    assert tx.timers["B"] == 32.0  # 64*T1
    result = None
    times = []
    while (d := tx.deadline()) is not None:
        times.append(d)
        result = tx.on_timer(d)
    # A fires at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 (doubling, no T2 cap for INVITE); B at 32
    assert times == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5, 32.0]
    assert wire.kinds() == ["INVITE"] * 7
    assert result is TIMEOUT
    assert tx.state is TxState.TERMINATED


def test_invite_client_over_tcp_does_not_retransmit() -> None:
    wire = Wire()
    tx = ClientTransaction(request(), TCP, wire, T, now=0.0)
    assert set(tx.timers) == {"B"}


def test_invite_client_1xx_stops_a_and_non2xx_is_acked_inside_the_transaction() -> None:
    wire = Wire()
    req = request()
    tx = ClientTransaction(req, UDP, wire, T, now=0.0)
    assert tx.receive(response(req, 180), 0.1) is not None
    assert tx.state is TxState.PROCEEDING and "A" not in tx.timers
    final = response(req, 486)
    assert tx.receive(final, 0.2) is final
    assert tx.state is TxState.COMPLETED
    ack = wire.sent[-1][0]
    assert isinstance(ack, Request) and ack.method == "ACK"
    # §17.1.1.3: same branch, Request-URI, Route; To with the response's tag; CSeq ACK
    assert ack.top_via.branch == "z9hG4bKabc"
    assert str(ack.uri) == "sip:1002@127.0.0.1"
    assert ack.headers.get_all("Route") == ["<sip:127.0.0.1;lr>"]
    assert ack.to.tag == "t1"
    assert str(ack.cseq) == "1 ACK"
    # a retransmitted 486 is absorbed and re-ACKed
    assert tx.receive(final, 1.0) is None
    assert wire.kinds() == ["INVITE", "ACK", "ACK"]
    # Timer D: 32 s over UDP
    assert tx.timers == {"D": pytest.approx(32.2)}
    run_timers(tx, 40)
    assert tx.terminated


def test_invite_client_2xx_goes_to_accepted_and_passes_retransmissions_up() -> None:
    wire = Wire()
    req = request()
    tx = ClientTransaction(req, UDP, wire, T, now=0.0)
    ok = response(req, 200)
    assert tx.receive(ok, 0.1) is ok
    assert tx.state is TxState.ACCEPTED
    assert tx.receive(ok, 0.6) is ok  # RFC 6026: the TU ACKs each 2xx
    assert wire.kinds() == ["INVITE"]  # the transaction itself never ACKs a 2xx
    assert tx.timers == {"M": pytest.approx(32.1)}


def test_non_invite_client_timer_e_caps_at_t2_and_f_times_out() -> None:
    wire = Wire()
    tx = ClientTransaction(request("REGISTER"), UDP, wire, T, now=0.0)
    times = []
    result = None
    while (d := tx.deadline()) is not None:
        times.append(d)
        result = tx.on_timer(d)
    gaps = [round(b - a, 3) for a, b in zip([0.0, *times], times, strict=False)]
    assert gaps[:5] == [0.5, 1.0, 2.0, 4.0, 4.0]  # doubling, capped at T2
    assert times[-1] == 32.0 and result is TIMEOUT


def test_non_invite_client_proceeding_retransmits_every_t2() -> None:
    wire = Wire()
    req = request("BYE")
    tx = ClientTransaction(req, UDP, wire, T, now=0.0)
    tx.receive(response(req, 100), 0.1)
    tx.on_timer(0.5)
    assert tx.timers["E"] == pytest.approx(4.5)


def test_non_invite_client_completed_absorbs_retransmissions_until_timer_k() -> None:
    wire = Wire()
    req = request("BYE")
    tx = ClientTransaction(req, UDP, wire, T, now=0.0)
    ok = response(req, 200)
    assert tx.receive(ok, 0.1) is ok
    assert tx.receive(ok, 0.2) is None
    assert tx.timers == {"K": pytest.approx(5.1)}  # T4
    tcp = ClientTransaction(req, TCP, Wire(), T, now=0.0)
    tcp.receive(ok, 0.1)
    assert tcp.terminated  # Timer K is 0 over TCP


def test_invite_server_non2xx_retransmits_with_g_until_ack_then_i() -> None:
    wire = Wire()
    req = request()
    tx = ServerTransaction(req, UDP, wire, T)
    tx.respond(response(req, 100), 0.0)
    tx.respond(response(req, 486), 0.0)
    assert tx.state is TxState.COMPLETED
    assert set(tx.timers) == {"G", "H"} and tx.timers["H"] == 32.0
    tx.on_timer(0.5)
    tx.on_timer(1.5)
    assert tx.timers["G"] == pytest.approx(3.5)
    assert wire.kinds() == ["100", "486", "486", "486"]
    ack = ack_for(req, response(req, 486))
    tx.receive(ack, 2.0)
    assert tx.state is TxState.CONFIRMED and tx.timers == {"I": 7.0}
    tx.on_timer(7.0)
    assert tx.terminated


def test_invite_server_timer_h_times_out_without_ack() -> None:
    req = request()
    tx = ServerTransaction(req, UDP, Wire(), T)
    tx.respond(response(req, 603), 0.0)
    results = []
    while (d := tx.deadline()) is not None:
        results.append(tx.on_timer(d))
    assert results[-1] is TIMEOUT


def test_invite_server_resends_2xx_until_the_tu_sees_the_ack() -> None:
    wire = Wire()
    req = request()
    tx = ServerTransaction(req, UDP, wire, T)
    tx.respond(response(req, 200), 0.0)
    assert tx.state is TxState.ACCEPTED
    tx.on_timer(0.5)
    tx.on_timer(1.5)
    tx.on_timer(3.5)
    tx.on_timer(7.5)
    assert tx.timers["2xx"] == pytest.approx(11.5)  # capped at T2
    tx.acked()
    assert "2xx" not in tx.timers
    # an INVITE retransmission in Accepted is absorbed (RFC 6026)
    n = len(wire.sent)
    tx.receive(req, 8.0)
    assert len(wire.sent) == n
    assert tx.on_timer(32.0) is None and tx.terminated


def test_invite_server_2xx_never_acked_reports_timeout() -> None:
    req = request()
    tx = ServerTransaction(req, TCP, Wire(), T)
    tx.respond(response(req, 200), 0.0)
    assert "2xx" in tx.timers  # end to end: also over TCP
    result = None
    while (d := tx.deadline()) is not None:
        result = tx.on_timer(d)
    assert result is TIMEOUT


def test_non_invite_server_answers_retransmissions_from_completed_until_j() -> None:
    wire = Wire()
    req = request("OPTIONS")
    tx = ServerTransaction(req, UDP, wire, T)
    tx.receive(req, 0.0)  # nothing to resend yet
    assert wire.sent == []
    tx.respond(response(req, 200), 0.1)
    tx.receive(req, 0.2)
    assert wire.kinds() == ["200", "200"]
    tx.respond(response(req, 500), 0.3)  # a second final response is ignored
    assert wire.kinds() == ["200", "200"]
    assert tx.timers == {"J": pytest.approx(32.1)}
    run_timers(tx, 40)
    assert tx.terminated


def test_server_matches_on_sent_by() -> None:
    req = request("OPTIONS")
    tx = ServerTransaction(req, UDP, Wire(), T)
    other = req.with_headers(req.headers.replace_first(
        "Via", "SIP/2.0/UDP 10.0.0.9:5080;branch=z9hG4bKabc"))
    assert tx.matches(req) and not tx.matches(other)


def test_messages_from_a_transaction_serialise_and_parse() -> None:
    wire = Wire()
    req = request()
    ClientTransaction(req, UDP, wire, T, now=0.0).receive(response(req, 404), 0.1)
    for msg, _ in wire.sent:
        assert bytes(parse_message(bytes(msg))) == bytes(msg)
