"""Attacks on the running phone from the LAN, with raw sockets beside Kamailio (issue:
hardening). The registrar is Kamailio on 127.0.0.1; strangers are other loopback hosts
(127.0.0.2, 127.0.0.3), which the phone must tell apart from its proxy."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from peers import HOST, Kamailio
from phone import PhoneProcess

Factory = Callable[..., Any]


def udp(host: str) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    return s


def invite_text(src: socket.socket, phone_port: int, call_id: str) -> bytes:
    host, port = src.getsockname()
    sdp = (f"v=0\r\no=- 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
           f"m=audio 40000 RTP/AVP 0\r\n")
    return (f"INVITE sip:1001@{HOST}:{phone_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK-{call_id};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: \"Your Bank\" <sip:100@{host}>;tag=evil\r\n"
            f"To: <sip:1001@{HOST}>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\n"
            f"Contact: <sip:100@{host}:{port}>\r\n"
            "Content-Type: application/sdp\r\n"
            f"Content-Length: {len(sdp)}\r\n\r\n{sdp}").encode()


def nothing_for(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        sock.recvfrom(65535)
    except TimeoutError:
        return True
    return False


def test_a_ghost_call_from_the_lan_does_not_ring(kamailio: Kamailio, phone: Factory) -> None:
    """svwar/sipvicious style: an INVITE straight to the phone's port from another host
    gets no answer at all (nothing to reflect, nothing to learn) and rings nothing."""
    p: PhoneProcess = phone("1001")
    stranger = udp("127.0.0.2")
    try:
        stranger.sendto(invite_text(stranger, p.settings.sip_port, "ghost-1"),
                        (HOST, p.settings.sip_port))
        assert p.console.command("status")["call"] is None
        assert nothing_for(stranger, 1.0)
        assert not [e for e in p.console.events if e["event"] == "incoming"]
        assert "INVITE from a host that is not the proxy dropped" in p.log_text()
    finally:
        stranger.close()
    assert p.console.command("status")["registered"] is True  # and the phone goes on


def test_a_callee_asking_for_our_password_gets_no_digest(
        kamailio: Kamailio, phone: Factory) -> None:
    """A URI the person dials answers 401 with a nonce of its choosing: the phone must not
    send a digest of its password over it (offline cracking), and says why the call ended."""
    p: PhoneProcess = phone("1001")
    evil = udp("127.0.0.3")
    evil.settimeout(5.0)
    try:
        host, port = evil.getsockname()
        reply = p.console.command(f"dial sip:bob@{host}:{port}")
        data, src = evil.recvfrom(65535)
        text = data.decode()
        assert text.startswith("INVITE ")
        head = dict(line.split(": ", 1) for line in text.split("\r\n\r\n")[0].split("\r\n")[1:])
        challenge = (
            "SIP/2.0 401 Unauthorized\r\n"
            f"Via: {head['Via']}\r\nFrom: {head['From']}\r\nTo: {head['To']};tag=e1\r\n"
            f"Call-ID: {head['Call-ID']}\r\nCSeq: {head['CSeq']}\r\n"
            'WWW-Authenticate: Digest realm="127.0.0.1", nonce="chosen", qop="auth"\r\n'
            "Content-Length: 0\r\n\r\n")
        evil.sendto(challenge.encode(), src)
        ended = p.console.wait_event("ended", call_id=reply["call_id"])
        assert ended["reason"] == "auth refused: not our proxy" and ended["status"] == 401
        seen = []
        evil.settimeout(1.0)
        try:
            while True:
                seen.append(evil.recvfrom(65535)[0].decode())
        except TimeoutError:
            pass
        assert [m.split(" ", 1)[0] for m in seen] == ["ACK"]  # the 401 ACKed, no retry
        assert not any("Authorization" in m for m in seen)
    finally:
        evil.close()
