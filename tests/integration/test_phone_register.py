"""The phone registers at Kamailio, refreshes its binding, un-registers, and stops on a bad
password instead of hammering the registrar."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
from peers import Kamailio
from phone import PhoneProcess, PhoneThread, registrar_paused

Factory = Callable[..., Any]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def contacts(kamailio: Kamailio, user: str) -> list[dict[str, Any]]:
    return kamailio.locations().get(user, [])


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_registers_with_its_contact_and_unregisters_on_sigterm(
    kamailio: Kamailio, phone: Factory, transport: str
) -> None:
    p: PhoneProcess = phone("1001", transport=transport, start=False)
    # A console client that connects at start-up sees the registration happen: the console
    # listens before the first REGISTER goes out (held here until the client is in).
    with registrar_paused(kamailio):
        p.start()
        assert p.console.status()["registered"] is False
    event = p.console.wait_event("registered", timeout=10)
    log = p.log_text()
    assert log.index("console listening") < log.index("send "), "REGISTER before console"

    assert event == {"event": "registered", "aor": f"sip:1001@{kamailio.domain}",
                     "contact": p.contact, "expires": 3600}
    (binding,) = contacts(kamailio, "1001")
    assert binding["uri"] == p.contact
    assert binding["socket"] == f"{transport}:{kamailio.domain}"
    assert 3590 <= binding["expires"] <= 3600
    assert binding["user_agent"] == "deskphone"  # no version for a scanner to look up
    status = p.console.status()
    assert status["registered"] is True
    assert status["aor"] == f"sip:1001@{kamailio.domain}"
    assert status["call"] is None

    assert p.stop() == 0
    assert "1001" not in kamailio.locations()
    assert "'event': 'unregistered', 'reason': 'un-registered'" in p.log_text()
    # one REGISTER pair (401 challenge, then with credentials) each way
    registers = [(r.cseq, r.headers["expires"]) for r in p.sent("REGISTER")]
    assert registers == [("1 REGISTER", "3600"), ("2 REGISTER", "3600"),
                         ("3 REGISTER", "0"), ("4 REGISTER", "0")]
    assert "authorization" in p.sent("REGISTER")[3].headers


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_refreshes_the_binding_before_it_expires(
    kamailio: Kamailio, phone: Factory, transport: str
) -> None:
    """Kamailio's minimum is 60 s: the phone's clock runs 20x (PhoneThread), so its refresh
    at half the granted time comes after 1.5 s instead of 30 s."""
    scale = 20.0
    p: PhoneThread = phone("1001", transport=transport, expires=60, time_scale=scale)
    t0 = time.monotonic()
    (before,) = contacts(kamailio, "1001")
    assert before["uri"] == p.contact
    assert 55 <= before["expires"] <= 60
    p.console.wait_event("registered")  # the first registration

    refreshed = p.console.wait_event("registered", timeout=10)
    elapsed = time.monotonic() - t0
    # halfway through the 60 s (phone time): well before the binding expires
    assert elapsed < 60 / scale, elapsed
    assert refreshed["expires"] == 60
    (after,) = contacts(kamailio, "1001")
    assert after["uri"] == before["uri"] == p.contact
    assert after["call_id"] == before["call_id"]  # same binding, §10.2.4
    assert after["cseq"] > before["cseq"]  # a new REGISTER
    assert after["expires"] >= 59  # restarted at the granted 60 s
    assert p.console.status()["registered"] is True

    # and again: refreshing keeps going
    p.console.wait_event("registered", timeout=10)
    (again,) = contacts(kamailio, "1001")
    assert again["cseq"] > after["cseq"]
    p.console.no_event("registration_failed")
    p.console.no_event("unregistered")

    assert p.stop() == 0
    assert "1001" not in kamailio.locations()


def test_wrong_password_fails_once_without_retrying_at_once(
    kamailio: Kamailio, phone: Factory
) -> None:
    p: PhoneProcess = phone("1001", password="not-the-password", registered=False)
    failed = p.console.wait_event("registration_failed", timeout=10)
    assert failed["status"] in (401, 403), failed
    assert failed["retry_in"] >= 10, failed  # backs off, RFC 5626 §4.5
    # one REGISTER, challenged; one with the wrong credentials, refused; then silence
    # (retransmissions, if any, are not attempts: counted by CSeq)
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        assert len(p.sent("REGISTER")) <= 2, p.log_tail()
        time.sleep(0.1)
    assert [r.cseq for r in p.sent("REGISTER")] == ["1 REGISTER", "2 REGISTER"]
    # Kamailio's log prefix is "{<msg type> <CSeq> <Call-ID>}"
    seen = re.findall(r"\{1 (\d+ REGISTER) \S+\} <script>: REQ REGISTER \S+ from "
                      rf"127\.0\.0\.1:{p.sip_port}/", kamailio.log_path.read_text())
    assert sorted(set(seen)) == ["1 REGISTER", "2 REGISTER"]
    status = p.console.status()
    assert status["registered"] is False
    assert status["registration"] == "retry_wait"
    assert "1001" not in kamailio.locations()
    assert p.stop() == 0


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_sigterm_before_the_registrar_answered_leaves_no_binding(
    kamailio: Kamailio, phone: Factory, transport: str
) -> None:
    """Stopped while its first REGISTER waits for an answer, the phone must not leave a
    binding behind (it did: the challenge to that REGISTER was answered with Expires: 3600
    after the un-REGISTER had gone out)."""
    p: PhoneProcess = phone("1001", transport=transport, start=False)
    with registrar_paused(kamailio):
        p.start()
        p.console.status()
        assert p.proc is not None
        p.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "INFO deskphone: stopping" in p.log_text(), 5, "the phone to stop")
    assert p.stop() == 0
    assert "1001" not in kamailio.locations()
    registers = p.sent("REGISTER")
    assert [r.headers["expires"] for r in registers] == ["3600", "0"]
    assert "authorization" in registers[-1].headers  # answered the first one's challenge
    assert "'event': 'unregistered', 'reason': 'un-registered'" in p.log_text()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_registrar_down_at_start_then_back(
    kamailio: Kamailio, phone: Factory, transport: str
) -> None:
    """No registrar at boot: the phone fails (UDP: Timer F; TCP: connection refused), backs
    off and registers once the registrar is back. Clock 20x: 32 s of Timer F take 1.6 s."""
    kamailio.stop()
    p: PhoneThread = phone("1001", transport=transport, time_scale=20.0, start=False)
    p.start()
    wait_for(lambda: p.console.status()["registration"] == "retry_wait", 10,
             "the first REGISTER to fail")
    kamailio.start()
    p.console.wait_event("registered", timeout=10)
    (binding,) = contacts(kamailio, "1001")
    assert binding["uri"] == p.contact
    # (a refused TCP connect fails at once, maybe before the console client is in)
    failures = [e for e in p.console.events if e["event"] == "registration_failed"]
    assert len(failures) <= 1
    for e in failures:
        assert (e["status"], e["reason"]) == (None, "no response from registrar")
    assert p.stop() == 0
    assert "1001" not in kamailio.locations()
