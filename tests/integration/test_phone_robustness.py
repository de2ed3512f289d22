"""What the phone does with bad input on its UDP port: garbage is dropped, a request with a
broken header gets 400 Bad Request, a broken response is dropped, and afterwards the phone
still works. OPTIONS (a capability probe) gets 200 with Allow and Accept.

The test talks to the phone's SIP port from a raw UDP socket. The phone handles datagrams
one at a time in arrival order, so "no answer to X" is shown without waiting: after X the
test sends an OPTIONS, and the first datagram back must be the answer to that OPTIONS.
"""

from __future__ import annotations

import itertools
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from peers import HOST, Kamailio, Sipp
from phone import PhoneProcess, sipp_caller

Factory = Callable[..., Any]
_ids = itertools.count(1)


class RawSip:
    """A UDP socket aimed at the phone: send text, read back one parsed response."""

    def __init__(self, phone_port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.port = self.sock.getsockname()[1]
        self.phone = (HOST, phone_port)

    def send(self, data: bytes | str) -> None:
        self.sock.sendto(data.encode() if isinstance(data, str) else data, self.phone)

    def receive(self, timeout: float = 5.0) -> tuple[str, dict[str, list[str]]]:
        """(status line, {lower-case header name: [values]}) of the next datagram."""
        self.sock.settimeout(timeout)
        data, _ = self.sock.recvfrom(65535)
        head = data.decode("utf-8", "replace").split("\r\n\r\n", 1)[0]
        first, *lines = head.split("\r\n")
        headers: dict[str, list[str]] = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
        return first, headers

    def request(self, method: str, *, via: str | None = None, cseq: str | None = None,
                call_id: str | None = None, extra: str = "") -> str:
        n = next(_ids)
        via = via or f"SIP/2.0/UDP {HOST}:{self.port};branch=z9hG4bK-raw-{n};rport"
        return (
            f"{method} sip:1001@{HOST}:{self.phone[1]} SIP/2.0\r\n"
            f"Via: {via}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:tester@{HOST}:{self.port}>;tag=raw{n}\r\n"
            f"To: <sip:1001@{HOST}:{self.phone[1]}>\r\n"
            f"Call-ID: {call_id or f'raw-{n}@test'}\r\n"
            f"CSeq: {cseq or f'1 {method}'}\r\n"
            f"{extra}"
            "Content-Length: 0\r\n\r\n"
        )

    def options(self) -> tuple[str, dict[str, list[str]]]:
        """Send an OPTIONS; the next datagram must be its answer."""
        call_id = f"options-{next(_ids)}@test"
        self.send(self.request("OPTIONS", call_id=call_id, extra="Accept: application/sdp\r\n"))
        first, headers = self.receive()
        assert headers.get("call-id") == [call_id], (first, headers)
        return first, headers

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw() -> Iterator[Callable[[int], RawSip]]:
    opened: list[RawSip] = []

    def open_(port: int) -> RawSip:
        opened.append(RawSip(port))
        return opened[-1]

    yield open_
    for r in opened:
        r.close()


def test_options_gets_200_with_allow_and_accept(
    kamailio: Kamailio, phone: Factory, raw: Callable[[int], RawSip]
) -> None:
    p: PhoneProcess = phone("1001")
    sip = raw(p.sip_port)
    first, headers = sip.options()
    assert first == "SIP/2.0 200 OK"
    allow = {m.strip() for v in headers["allow"] for m in v.split(",")}
    assert {"INVITE", "ACK", "CANCEL", "BYE", "OPTIONS"} <= allow
    assert headers["accept"] == ["application/sdp"]
    # §8.2.6.2: Via copied (rport filled in, RFC 3581), To tagged, CSeq copied
    (via,) = headers["via"]
    assert via.startswith(f"SIP/2.0/UDP {HOST}:{sip.port};branch=z9hG4bK-raw-")
    assert f"rport={sip.port}" in via
    assert ";tag=" in headers["to"][0]
    assert headers["cseq"] == ["1 OPTIONS"]


def test_bad_input_is_refused_and_the_phone_keeps_working(
    kamailio: Kamailio, sipp: Sipp, phone: Factory, raw: Callable[[int], RawSip]
) -> None:
    p: PhoneProcess = phone("1001")
    sip = raw(p.sip_port)

    # garbage datagrams: no answer (the next datagram back answers the OPTIONS)
    for junk in (b"\x00\x01\x02\xff\xfe garbage", b"hello\r\n\r\n", b"\r\n\r\n",
                 b"INVITE\r\n\r\n", b"SIP/2.0\r\n\r\n", b"\xff" * 2000):
        sip.send(junk)
        assert sip.options()[0] == "SIP/2.0 200 OK", junk

    # a request whose CSeq does not parse: 400, its headers copied as they were
    sip.send(sip.request("INVITE", cseq="abc INVITE", call_id="bad-cseq@test"))
    first, headers = sip.receive()
    assert first.startswith("SIP/2.0 400 "), first
    assert headers["call-id"] == ["bad-cseq@test"]
    assert headers["cseq"] == ["abc INVITE"]
    assert headers["via"][0].startswith(f"SIP/2.0/UDP {HOST}:{sip.port};branch=z9hG4bK-raw-")
    assert ";tag=" in headers["to"][0]
    assert headers["warning"][0].startswith("399 ")

    # a Via without branch whose host is not a host: 400, sent back to where it came from
    sip.send(sip.request("OPTIONS", via="SIP/2.0/UDP bad_host!!:xyz", call_id="bad-via@test"))
    first, headers = sip.receive()
    assert first.startswith("SIP/2.0 400 "), first
    assert headers["call-id"] == ["bad-via@test"]
    assert headers["via"] == ["SIP/2.0/UDP bad_host!!:xyz"]

    # responses that do not parse, or match nothing: dropped without an answer
    n = next(_ids)
    for junk in (
        "SIP/2.0 abc Broken\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKx\r\n\r\n",
        "SIP/2.0 200 OK\r\nVia: ???\r\nCSeq: x\r\nContent-Length: 0\r\n\r\n",
        f"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {HOST}:{p.sip_port};branch=z9hG4bK-nope{n}\r\n"
        f"From: <sip:1001@{HOST}>;tag=a\r\nTo: <sip:x@{HOST}>;tag=b\r\nCall-ID: nope{n}\r\n"
        "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        "SIP/2.0 200 OK\r\nContent-Length: 99999\r\n\r\nshort",
    ):
        sip.send(junk)
        assert sip.options()[0] == "SIP/2.0 200 OK", junk

    # and the phone still works: console, registration, a whole call
    status = p.console.status()
    assert status["registered"] is True
    assert status["call"] is None
    uac = sipp_caller(sipp, "uac-call-auth.xml", "-d", "200")
    incoming = p.console.wait_event("incoming")
    p.console.command("answer")
    p.console.wait_event("connected", call_id=incoming["call_id"])
    assert p.console.wait_event("ended", call_id=incoming["call_id"])["reason"] == \
        "remote hangup"
    uac.wait(15, check=True)
    assert p.running
