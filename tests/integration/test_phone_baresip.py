"""Calls between the phone and baresip (a real C SIP UA) through Kamailio."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from peers import Baresip, Kamailio
from phone import PhoneProcess

Factory = Callable[..., Any]
# baresip's close reason when the far end sent BYE: libre reports it as ECONNRESET
BYE_RECEIVED = "Connection reset by peer"


@pytest.mark.parametrize("hangs_up", ["baresip", "phone"])
def test_baresip_calls_phone(
    kamailio: Kamailio, baresip: Callable[..., Baresip], phone: Factory, hangs_up: str
) -> None:
    p: PhoneProcess = phone("1001")
    ua = baresip("1003")

    ua.command("dial", f"sip:1001@{kamailio.domain}")
    incoming = p.console.wait_event("incoming")
    assert incoming["from"] == f"sip:1003@{kamailio.domain}"
    ua.wait_event("CALL_RINGING", timeout=5)  # our 180 reached it
    p.console.command("answer")
    established = ua.wait_event("CALL_ESTABLISHED", timeout=5)
    assert established["direction"] == "outgoing"
    connected = p.console.wait_event("connected", call_id=incoming["call_id"])
    assert connected["codec"] in ("PCMU", "PCMA")
    assert connected["remote_media"].startswith("127.0.0.1:")

    if hangs_up == "baresip":
        ua.command("hangup")
        ended = p.console.wait_event("ended", call_id=incoming["call_id"])
        assert ended["reason"] == "remote hangup"
    else:
        p.console.command("hangup")
        assert p.console.wait_event("ended", call_id=incoming["call_id"])["reason"] == \
            "local hangup"
    closed = ua.wait_event("CALL_CLOSED", timeout=5)
    if hangs_up == "phone":
        assert closed["param"] == BYE_RECEIVED, closed  # our BYE, not an error
    assert p.console.status()["call"] is None


def test_phone_calls_baresip_and_hangs_up(
    kamailio: Kamailio, baresip: Callable[..., Baresip], phone: Factory
) -> None:
    p: PhoneProcess = phone("1001")
    ua = baresip("1003")  # auto-answers

    call_id = p.console.command("dial 1003")["call_id"]
    connected = p.console.wait_event("connected", call_id=call_id)
    assert connected["codec"] in ("PCMU", "PCMA")
    established = ua.wait_event("CALL_ESTABLISHED", timeout=5)
    assert established["direction"] == "incoming"
    assert established["peeruri"] == f"sip:1001@{kamailio.domain}"

    p.console.command("hangup")
    assert p.console.wait_event("ended", call_id=call_id)["reason"] == "local hangup"
    closed = ua.wait_event("CALL_CLOSED", timeout=5)
    assert closed["param"] == BYE_RECEIVED, closed


def test_baresip_puts_the_phone_on_hold_and_resumes(
    kamailio: Kamailio, baresip: Callable[..., Baresip], phone: Factory
) -> None:
    """Re-INVITEs in the dialog (RFC 3264 §8.4): sendonly offer -> we answer recvonly."""
    p: PhoneProcess = phone("1001")
    ua = baresip("1003")
    ua.command("dial", f"sip:1001@{kamailio.domain}")
    call_id = p.console.wait_event("incoming")["call_id"]
    p.console.command("answer")
    ua.wait_event("CALL_ESTABLISHED", timeout=5)
    p.console.wait_event("connected", call_id=call_id)

    ua.command("hold")
    held = p.console.wait_event("updated", call_id=call_id)
    assert (held["codec"], held["direction"]) == ("PCMU", "recvonly")
    ua.command("resume")
    resumed = p.console.wait_event("updated", call_id=call_id)
    assert resumed["direction"] == "sendrecv"
    assert p.console.status()["call"]["state"] == "connected"

    p.console.command("hangup")
    p.console.wait_event("ended", call_id=call_id)
    assert ua.wait_event("CALL_CLOSED", timeout=5)["param"] == BYE_RECEIVED
