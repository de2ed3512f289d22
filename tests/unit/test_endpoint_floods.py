"""Floods: transactions expire from a heap of deadlines (cost linear in what is due, not
in what is live), live server transactions are capped overall and per source, and a
flood reflects nothing (issue: hardening). Timings are bench/floods.py's business."""

from __future__ import annotations

from sipfakes import REGISTRAR, drain_events, endpoint

from deskphone.sip import events as ev
from deskphone.sip.message import Headers, Request, parse_message
from deskphone.sip.transaction import Addr
from deskphone.sip.uri import SipUri


def options(n: int, source: Addr) -> bytes:
    headers = [("Via", f"SIP/2.0/UDP {source.host}:{source.port};branch=z9hG4bKf{n}"),
               ("From", f"<sip:s@{source.host}>;tag=f{n}"), ("To", "<sip:1001@127.0.0.1>"),
               ("Call-ID", f"flood-{n}"), ("CSeq", "1 OPTIONS"), ("Max-Forwards", "70")]
    return bytes(Request("OPTIONS", SipUri.parse("sip:1001@127.0.0.1"), Headers(headers)))


def invite(n: int, source: Addr) -> bytes:
    headers = [("Via", f"SIP/2.0/UDP {source.host}:{source.port};branch=z9hG4bKi{n}"),
               ("From", f"<sip:s@{source.host}>;tag=i{n}"), ("To", "<sip:1001@127.0.0.1>"),
               ("Call-ID", f"inv-{n}"), ("CSeq", "1 INVITE"), ("Max-Forwards", "70"),
               ("Contact", f"<sip:s@{source.host}>")]
    return bytes(Request("INVITE", SipUri.parse("sip:1001@127.0.0.1"), Headers(headers)))


def test_live_transactions_from_one_host_are_capped_and_the_rest_not_answered() -> None:
    ep = endpoint("1001", "127.0.0.1", max_server_tx_per_source=10)
    flood = Addr("udp", "10.1.1.1", 5060)
    for n in range(50):  # INVITEs left ringing: each holds a live transaction
        ep.receive(invite(n, flood), flood, 0.0)
    answered = ep.datagrams_to_send(0.0)
    assert len(answered) == 10  # a 100 Trying for each admitted one, nothing for the rest
    assert ep.overload_drops == 40
    warnings = [e for e in drain_events(ep) if isinstance(e, ev.ProtocolWarning)]
    assert len(warnings) == 1  # rate-limited: one line, with a count, per 10 s
    other = Addr("udp", "10.2.2.2", 5060)  # another host is not starved by it
    ep.receive(options(99, other), other, 0.0)
    assert len(ep.datagrams_to_send(0.0)) == 1


def test_answered_transactions_give_way_to_new_requests_at_the_cap() -> None:
    """An OPTIONS flood fills the cap with transactions that only wait to repeat their
    200 (Timer J, 32 s): they give way, so a real INVITE from the same proxy still gets
    in instead of a 503 (bench/floods.py found calls refused for the whole flood)."""
    ep = endpoint("1001", "127.0.0.1", max_server_tx_per_source=10)
    for n in range(50):
        ep.receive(options(n, REGISTRAR), REGISTRAR, 0.0)
    assert len(ep._server_tx) <= 10  # noqa: SLF001
    ep.datagrams_to_send(0.0)
    ep.receive(invite(1, REGISTRAR), REGISTRAR, 0.0)
    statuses = [parse_message(d).status for d, _ in ep.datagrams_to_send(0.0)]  # type: ignore[union-attr]
    assert statuses == [100]
    assert [type(e) for e in drain_events(ep) if isinstance(e, ev.IncomingCall)]


def test_the_proxy_over_the_cap_is_told_to_retry() -> None:
    ep = endpoint("1001", "127.0.0.1", max_server_tx=5)
    for n in range(6):
        ep.receive(invite(n, REGISTRAR), REGISTRAR, 0.0)
    statuses = [parse_message(d).status for d, _ in ep.datagrams_to_send(0.0)]  # type: ignore[union-attr]
    assert statuses == [100] * 5 + [503]


def test_expired_transactions_free_their_slots() -> None:
    ep = endpoint("1001", "127.0.0.1", max_server_tx_per_source=10)
    flood = Addr("udp", "10.1.1.1", 5060)
    for n in range(10):
        ep.receive(options(n, flood), flood, 0.0)
    assert len(ep._server_tx) == 10  # noqa: SLF001
    ep.datagrams_to_send(0.0)
    t = 0.0
    while (deadline := ep.get_timer()) is not None and deadline < 60.0:
        t = deadline
        ep.handle_timer(t)
    assert ep._server_tx == {} and t == 32.0  # noqa: SLF001 - Timer J: 64*T1
    ep.receive(options(50, flood), flood, t)
    assert len(ep.datagrams_to_send(t)) == 1


def test_expiry_work_is_linear_in_the_transactions() -> None:
    """4,000 transactions cost ~97 s of CPU to expire when every wake-up scanned them
    all; counted here in heap entries touched, not seconds."""
    ep = endpoint("1001", "127.0.0.1", max_server_tx=10_000,
                  max_server_tx_per_source=10_000)
    flood = Addr("udp", "10.1.1.1", 5060)
    n = 4000
    for i in range(n):
        ep.receive(options(i, flood), flood, i * 0.001)
    ep.datagrams_to_send(0.0)
    pushed = len(ep._deadlines)  # noqa: SLF001
    assert pushed <= 3 * n  # a few deadline changes per transaction, not one per wake-up
    wakeups = 0
    while (deadline := ep.get_timer()) is not None and deadline < 100.0:
        ep.handle_timer(deadline)
        wakeups += 1
    assert ep._server_tx == {} and ep._deadlines == []  # noqa: SLF001
    assert wakeups <= n + 1


def test_a_live_call_s_bye_gets_in_even_at_the_cap() -> None:
    from sipfakes import EndpointPair

    p = EndpointPair(b_kw={"max_server_tx_per_source": 3})
    call_id = p.connect()
    for n in range(10):  # the same host floods B with calls left ringing
        p.b.ep.receive(invite(n, p.a.addr), p.a.addr, p.now)
    p.b.ep.datagrams_to_send(p.now)
    assert p.b.ep.overload_drops > 0
    p.a.ep.hangup(p.now, call_id)
    p.pump()
    assert ev.CallEnded(call_id, "remote hangup", None) in p.b.events
