"""Calls through Kamailio between the phone and SIPp: both directions, hang-up from either
side, CANCEL from either side, and 486 Busy Here for a second caller."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from peers import Kamailio, Sipp
from phone import PhoneProcess, scenario, sipp_callee, sipp_caller, sipp_received

Factory = Callable[..., Any]
TRANSPORTS = pytest.mark.parametrize("transport", ["udp", "tcp"])


@TRANSPORTS
def test_phone_calls_sipp_and_hangs_up(
    kamailio: Kamailio, sipp: Sipp, phone: Factory, transport: str
) -> None:
    p: PhoneProcess = phone("1001", transport=transport)
    uas = sipp_callee(sipp, "uas.xml", "-rtp_echo", transport=transport)

    reply = p.console.command("dial 1002")
    assert reply["to"] == f"sip:1002@{kamailio.domain}"
    call_id = reply["call_id"]
    assert p.console.wait_event("ringing") == {"event": "ringing", "call_id": call_id,
                                               "status": 180}
    connected = p.console.wait_event("connected")
    assert connected == {"event": "connected", "call_id": call_id, "codec": "PCMU",
                         "remote_media": f"127.0.0.1:{uas.media_port}",
                         "direction": "sendrecv"}
    call = p.console.status()["call"]
    assert call["state"] == "connected"
    assert call["direction"] == "outgoing"
    assert call["remote"] == f"sip:1002@{kamailio.domain}"

    sipp_received(uas, "ACK")
    p.console.command("hangup")
    ended = p.console.wait_event("ended")
    assert ended == {"event": "ended", "call_id": call_id, "reason": "local hangup",
                     "status": None}
    uas.wait(10, check=True)  # the BYE reached it through the route set and was answered
    assert p.console.status()["call"] is None
    # the INVITE was challenged (407) once and sent again with credentials
    invites = p.sent("INVITE")
    assert [i.cseq for i in invites] == ["1 INVITE", "2 INVITE"]
    assert "proxy-authorization" in invites[1].headers


@TRANSPORTS
def test_sipp_calls_phone_and_hangs_up(
    kamailio: Kamailio, sipp: Sipp, phone: Factory, transport: str
) -> None:
    p: PhoneProcess = phone("1001", transport=transport)
    uac = sipp_caller(sipp, "uac-call-auth.xml", "-d", "200", transport=transport)

    incoming = p.console.wait_event("incoming")
    assert incoming["from"] == f"sip:1002@{kamailio.domain}"
    call = p.console.status()["call"]
    assert call["state"] == "incoming"
    assert call["direction"] == "incoming"
    p.console.command("answer")
    connected = p.console.wait_event("connected", call_id=incoming["call_id"])
    assert connected["codec"] == "PCMU"
    assert connected["remote_media"] == f"127.0.0.1:{uac.media_port}"

    ended = p.console.wait_event("ended", call_id=incoming["call_id"])
    assert ended["reason"] == "remote hangup"
    uac.wait(15, check=True)  # BYE answered 200
    assert p.console.status()["call"] is None


@TRANSPORTS
def test_sipp_calls_phone_and_phone_hangs_up(
    kamailio: Kamailio, sipp: Sipp, phone: Factory, transport: str
) -> None:
    p: PhoneProcess = phone("1001", transport=transport)
    uac = sipp_caller(sipp, scenario("uac-call-auth-wait-bye.xml"), transport=transport)

    incoming = p.console.wait_event("incoming")
    p.console.command("answer")
    p.console.wait_event("connected", call_id=incoming["call_id"])
    p.console.command("hangup")
    ended = p.console.wait_event("ended", call_id=incoming["call_id"])
    assert ended["reason"] == "local hangup"
    uac.wait(10, check=True)  # got our BYE (through Kamailio's route) and answered it


@TRANSPORTS
def test_caller_cancels_before_answer(
    kamailio: Kamailio, sipp: Sipp, phone: Factory, transport: str
) -> None:
    p: PhoneProcess = phone("1001", transport=transport)
    uac = sipp_caller(sipp, scenario("uac-cancel-auth-any-order.xml"), "-d", "300",
                      transport=transport)

    incoming = p.console.wait_event("incoming")
    assert p.console.status()["call"]["state"] == "incoming"
    ended = p.console.wait_event("ended", call_id=incoming["call_id"])
    assert ended["reason"] == "cancelled"
    assert ended["status"] == 487
    uac.wait(10, check=True)  # 200 to the CANCEL, 487 to the INVITE
    p.console.no_event("connected")
    assert p.console.status()["call"] is None


@TRANSPORTS
def test_phone_cancels_while_ringing(
    kamailio: Kamailio, sipp: Sipp, phone: Factory, transport: str
) -> None:
    p: PhoneProcess = phone("1001", transport=transport)
    uas = sipp_callee(sipp, "uas-ring.xml", transport=transport)

    call_id = p.console.command("dial 1002")["call_id"]
    p.console.wait_event("ringing", call_id=call_id)
    p.console.command("hangup")
    ended = p.console.wait_event("ended", call_id=call_id)
    assert ended["reason"] == "cancelled"
    uas.wait(10, check=True)  # CANCEL answered 200, 487 sent and ACKed
    (cancel,) = p.sent("CANCEL")
    (_, invite) = p.sent("INVITE")  # the one with credentials, which rang
    assert cancel.cseq == invite.cseq.replace("INVITE", "CANCEL")  # §9.1
    assert cancel.headers["via"] == invite.headers["via"]
    p.console.no_event("connected")


def test_phone_cancels_before_ringing(kamailio: Kamailio, sipp: Sipp, phone: Factory) -> None:
    """Hang up after 100 Trying, before any 180: CANCEL at once (RFC 3261 §9.1)."""
    p: PhoneProcess = phone("1001")
    uas = sipp_callee(sipp, scenario("uas-trying-cancel.xml"))

    call_id = p.console.command("dial 1002")["call_id"]
    sipp_received(uas, "INVITE")  # Kamailio said 100 Trying before it relayed the INVITE
    assert p.console.status()["call"]["state"] == "dialing"
    p.console.command("hangup")
    assert p.console.wait_event("ended", call_id=call_id)["reason"] == "cancelled"
    uas.wait(10, check=True)  # got the CANCEL: 200, then 487 for the INVITE, ACKed
    p.console.no_event("ringing")


def test_second_caller_gets_busy_here(kamailio: Kamailio, sipp: Sipp, phone: Factory) -> None:
    p: PhoneProcess = phone("1001")
    first = sipp_caller(sipp, scenario("uac-call-auth-wait-bye.xml"), caller="1002")
    incoming = p.console.wait_event("incoming")
    p.console.command("answer")
    p.console.wait_event("connected", call_id=incoming["call_id"])

    second = sipp_caller(sipp, scenario("uac-busy-auth.xml"), caller="1003")
    second.wait(10, check=True)  # 486 Busy Here, ACKed
    assert "SIP/2.0 180" not in second.files["messages"].read_text()  # at once, no ringing
    # the phone kept the first call and never rang for the second
    assert [e["event"] for e in p.console.events if e["event"] == "incoming"] == ["incoming"]
    call = p.console.status()["call"]
    assert call["call_id"] == incoming["call_id"]
    assert call["state"] == "connected"
    assert p.console.command("dial 1003", check=False) == {"ok": False,
                                                          "error": "already in a call"}

    p.console.command("hangup")
    p.console.wait_event("ended", call_id=incoming["call_id"])
    first.wait(10, check=True)


def test_phone_rejects_a_ringing_call(kamailio: Kamailio, sipp: Sipp, phone: Factory) -> None:
    p: PhoneProcess = phone("1001")
    uac = sipp_caller(sipp, scenario("uac-busy-auth.xml"))
    incoming = p.console.wait_event("incoming")
    p.console.command("hangup")
    ended = p.console.wait_event("ended", call_id=incoming["call_id"])
    assert (ended["reason"], ended["status"]) == ("rejected", 486)
    uac.wait(10, check=True)  # 486 Busy Here reached the caller, which ACKed it


def test_dialling_a_number_nobody_registered(kamailio: Kamailio, phone: Factory) -> None:
    p: PhoneProcess = phone("1001")
    call_id = p.console.command("dial 1003")["call_id"]
    ended = p.console.wait_event("ended", call_id=call_id)
    assert (ended["reason"], ended["status"]) == ("not found", 404)
    assert p.console.status()["call"] is None
    p.console.no_event("ringing")


@pytest.mark.parametrize(("phone_transport", "sipp_transport"), [("udp", "tcp"), ("tcp", "udp")])
def test_call_across_transports(
    kamailio: Kamailio, sipp: Sipp, phone: Factory, phone_transport: str, sipp_transport: str
) -> None:
    """Kamailio bridges UDP and TCP with two Record-Routes: the BYE must follow both."""
    p: PhoneProcess = phone("1001", transport=phone_transport)
    uas = sipp_callee(sipp, "uas.xml", transport=sipp_transport)
    call_id = p.console.command("dial 1002")["call_id"]
    p.console.wait_event("connected", call_id=call_id)
    sipp_received(uas, "ACK")
    p.console.command("hangup")
    p.console.wait_event("ended", call_id=call_id)
    uas.wait(10, check=True)


@TRANSPORTS
def test_sigterm_in_a_call_hangs_up_and_unregisters(
    kamailio: Kamailio, sipp: Sipp, phone: Factory, transport: str
) -> None:
    p: PhoneProcess = phone("1001", transport=transport)
    uac = sipp_caller(sipp, scenario("uac-call-auth-wait-bye.xml"), transport=transport)
    incoming = p.console.wait_event("incoming")
    p.console.command("answer")
    p.console.wait_event("connected", call_id=incoming["call_id"])

    assert p.stop() == 0
    uac.wait(10, check=True)  # got the phone's BYE
    assert "1001" not in kamailio.locations()


@TRANSPORTS
def test_phone_calls_phone(kamailio: Kamailio, phone: Factory, transport: str) -> None:
    alice: PhoneProcess = phone("1001", transport=transport)
    bob: PhoneProcess = phone("1002", transport=transport)

    call_id = alice.console.command("dial 1002")["call_id"]
    incoming = bob.console.wait_event("incoming", call_id=call_id)
    assert incoming["from"] == f"sip:1001@{kamailio.domain}"
    alice.console.wait_event("ringing", call_id=call_id)
    bob.console.command("answer")
    a = alice.console.wait_event("connected", call_id=call_id)
    b = bob.console.wait_event("connected", call_id=call_id)
    assert a["codec"] == b["codec"] == "PCMU"
    # each sends to an even port of the other's range (chosen at random: not guessable)
    assert a["remote_media"] in {f"127.0.0.1:{bob.settings.rtp_port + k}" for k in (0, 2)}
    assert b["remote_media"] in {f"127.0.0.1:{alice.settings.rtp_port + k}" for k in (0, 2)}

    bob.console.command("hangup")
    assert bob.console.wait_event("ended", call_id=call_id)["reason"] == "local hangup"
    assert alice.console.wait_event("ended", call_id=call_id)["reason"] == "remote hangup"


def test_late_offer_the_phone_offers_in_its_200(
    kamailio: Kamailio, sipp: Sipp, phone: Factory
) -> None:
    """An INVITE without SDP: our 200 carries the offer, the caller answers in the ACK."""
    p: PhoneProcess = phone("1001")
    uac = sipp_caller(sipp, scenario("uac-late-offer-wait-bye.xml"))
    incoming = p.console.wait_event("incoming")
    p.console.command("answer")
    connected = p.console.wait_event("connected", call_id=incoming["call_id"])
    assert connected["codec"] == "PCMU"
    assert connected["remote_media"] == f"127.0.0.1:{uac.media_port}"  # from the ACK
    p.console.command("hangup")
    p.console.wait_event("ended", call_id=incoming["call_id"])
    uac.wait(10, check=True)


def test_forked_call_answered_elsewhere_stops_ringing(
    kamailio: Kamailio, phone: Factory, baresip: Callable[..., Any]
) -> None:
    """1002 on two devices: baresip answers at once, so Kamailio CANCELs the ringing phone."""
    alice: PhoneProcess = phone("1001")
    bob: PhoneProcess = phone("1002")
    ua = baresip("1002")  # auto-answers
    assert len(kamailio.locations()["1002"]) == 2

    call_id = alice.console.command("dial 1002")["call_id"]
    connected = alice.console.wait_event("connected", call_id=call_id)
    assert connected["remote_media"] not in {  # baresip's, not bob's
        f"127.0.0.1:{bob.settings.rtp_port + k}" for k in (0, 2)}
    ua.wait_event("CALL_ESTABLISHED", timeout=5)
    bob.console.wait_event("incoming", call_id=call_id)
    ended = bob.console.wait_event("ended", call_id=call_id)
    assert ended["reason"] == "cancelled"
    assert bob.console.status()["call"] is None

    alice.console.command("hangup")
    alice.console.wait_event("ended", call_id=call_id)
    ua.wait_event("CALL_CLOSED", timeout=5)
