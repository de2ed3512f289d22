"""Hardware in the loop: the phone's real drivers on gpiozero's mock pins and luma's dummy
OLED, against Kamailio and SIPp. A person's hands are ``hw.sim.PhoneSim`` driving the far
end of the wires: the keypad matrix is scanned, the hook debounced, the ringer toggled by
the same code as on a Pi; only the pin factory and the display device differ."""

from __future__ import annotations

import json
import os
import select
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from peers import Kamailio, PortAllocator, Sipp
from phone import PhoneSettings, PhoneThread, sipp_callee, sipp_caller, sipp_received

from deskphone.hw.mockboard import MockBoard

Factory = Callable[..., Any]


class MockPhoneHardware(MockBoard):
    """The mock board, and a person's typing on it."""

    def tap(self, keys: str) -> None:
        """Press and release each key as a person types (a key's contact closed 80 ms)."""
        for key in keys:
            self.sim.press(key)
            time.sleep(0.08)
            self.sim.release(key)
            time.sleep(0.06)  # released and debounced before the next, even the same key


def wait_screen(p: PhoneThread, top: str) -> list[str]:
    """The screen's lines once its top line starts with ``top`` (screen events in order)."""
    if p.console.command("screen")["lines"][0].startswith(top):
        return list(p.console.command("screen")["lines"])
    while True:
        lines = p.console.wait_event("screen")["lines"]
        if lines[0].startswith(top):
            return list(lines)


@pytest.fixture
def board() -> Iterator[MockPhoneHardware]:
    b = MockPhoneHardware()
    yield b
    b.close()


def test_lift_type_on_the_keypad_and_hang_up(
    kamailio: Kamailio, sipp: Sipp, phone: Factory, board: MockPhoneHardware
) -> None:
    p: PhoneThread = phone("1001", hardware=board.build)
    uas = sipp_callee(sipp, "uas.xml", "-rtp_echo")

    board.sim.lift()
    assert p.console.wait_event("hook") == {"event": "hook", "state": "off"}
    assert p.console.command("screen")["lines"][2] == "Dial a number"
    board.tap("1002#")
    keys = [p.console.wait_event("key")["key"] for _ in range(5)]
    assert keys == list("1002#")  # one event per key: no bounce, no ghost, none lost
    connected = p.console.wait_event("connected")
    assert connected["codec"] == "PCMU"
    sipp_received(uas, "ACK")
    assert wait_screen(p, "In call")[1] == "1002"
    assert board.display.screen.title == "1002"  # the OLED shows who we talk to

    board.sim.hang_up()
    assert p.console.wait_event("hook") == {"event": "hook", "state": "on"}
    ended = p.console.wait_event("ended", call_id=connected["call_id"])
    assert ended["reason"] == "local hangup"
    uas.wait(10, check=True)  # the BYE reached SIPp and was answered
    calls = p.console.command("history")["calls"]
    assert calls[0]["kind"] == "dialled" and calls[0]["remote"] == "1002"


def test_incoming_call_rings_the_bell_and_lifting_answers(
    kamailio: Kamailio, sipp: Sipp, phone: Factory, board: MockPhoneHardware
) -> None:
    p: PhoneThread = phone("1001", hardware=board.build)
    uac = sipp_caller(sipp, "uac-call-auth.xml", "-d", "500")

    incoming = p.console.wait_event("incoming")
    assert p.console.wait_event("ringer") == {"event": "ringer", "on": True}
    # the ringer pin is driven at the cadence's first burst (US: 2 s on): PWM at 50 %
    assert board.ringer_level() == 0.5
    lines = wait_screen(p, "Incoming call")
    assert lines[1] == "1002"  # the caller's number, big
    assert board.display.screen.title == "1002"  # ... and the OLED drew that frame

    board.sim.lift()
    assert p.console.wait_event("ringer") == {"event": "ringer", "on": False}
    assert board.ringer_level() == 0.0  # silent at once, not at the end of a burst
    p.console.wait_event("connected", call_id=incoming["call_id"])
    ended = p.console.wait_event("ended", call_id=incoming["call_id"])
    assert ended["reason"] == "remote hangup"
    uac.wait(15, check=True)
    board.sim.hang_up()
    p.console.wait_event("hook", state="on")
    assert p.console.command("status")["phone"] == "idle"


def test_hook_flash_is_not_a_hang_up_and_a_long_down_is(
    kamailio: Kamailio, phone: Factory, board: MockPhoneHardware
) -> None:
    p: PhoneThread = phone("1001", hardware=board.build)
    board.sim.lift()
    p.console.wait_event("hook", state="off")
    board.tap("12")
    assert wait_screen(p, "1001@")[1] == "12"
    board.sim.hang_up()  # a flash: down for 300 ms (100-600 ms)
    time.sleep(0.3)
    board.sim.lift()
    p.console.wait_event("hook", state="flash")
    assert p.console.command("screen")["lines"][2] == "Dial a number"  # digits cleared
    assert not [e for e in p.console.events if e["event"] == "hook" and e["state"] == "on"]
    board.sim.hang_up()  # and down for good: on-hook once 600 ms have passed
    p.console.wait_event("hook", state="on")
    assert p.console.command("status")["phone"] == "idle"


def test_a_bouncing_key_is_one_digit_and_a_held_key_is_a_long_press(
    kamailio: Kamailio, phone: Factory, board: MockPhoneHardware
) -> None:
    p: PhoneThread = phone("1001", hardware=board.build)
    board.sim.lift()
    p.console.wait_event("hook", state="off")
    for _ in range(5):  # a worn contact chattering for well under the 20 ms debounce
        board.sim.press("7")
        board.sim.release("7")
    board.sim.press("7")
    time.sleep(0.1)
    board.sim.release("7")
    assert p.console.wait_event("key") == {"event": "key", "key": "7", "action": "pressed"}
    board.sim.press("5")
    time.sleep(1.3)  # past the 1 s long-press time
    board.sim.release("5")
    assert p.console.wait_event("key") == {"event": "key", "key": "5", "action": "pressed"}
    assert p.console.wait_event("key") == {"event": "key", "key": "5", "action": "held"}
    time.sleep(0.1)
    assert [e["key"] for e in p.console.events if e["event"] == "key"] == ["7", "5", "5"]
    assert wait_screen(p, "1001@")[1] == "75"


def test_serial_console_on_a_pty(
    kamailio: Kamailio, peers_run: Path, port_allocator: PortAllocator
) -> None:
    """[console] serial on a pseudo-terminal: a person at minicom (CR line ends)."""
    master, slave = os.openpty()
    settings = PhoneSettings.allocate(port_allocator, user="1001", password=None,
                                      domain=kamailio.domain)
    settings.console_serial = os.ttyname(slave)
    board = MockPhoneHardware()
    p = PhoneThread(peers_run, settings, name="serial-phone", hardware=board.build)
    try:
        p.start()
        p.wait_registered()
        os.write(master, b"hook off\r")
        line = read_json_line(master, "ok")
        assert line == {"ok": True, "hook": "off", "phone": "dialtone"}
        os.write(master, b"screen\r")
        assert read_json_line(master, "ok")["lines"][2] == "Dial a number"
    finally:
        assert p.stop() == 0
        board.close()
        os.close(master)
        os.close(slave)


def read_json_line(fd: int, key: str, timeout: float = 5.0) -> dict[str, Any]:
    """The next JSON line from ``fd`` that has ``key`` (events in between are skipped)."""
    deadline = time.monotonic() + timeout
    buf = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            buf += os.read(fd, 4096)
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            text = line.strip(b"\r").decode()
            if text:
                msg = json.loads(text)
                if key in msg:
                    return dict(msg)
    raise AssertionError(f"no line with {key!r} in {timeout} s; left: {buf!r}")


def test_no_registrar_answering_is_on_the_screen(
    peers_run: Path, port_allocator: PortAllocator
) -> None:
    """The example config's registrar is not there: the screen says so, it is not silent."""
    silent = port_allocator.take()  # nothing listens there
    settings = PhoneSettings.allocate(port_allocator, user="1001", password=None,
                                      domain=f"127.0.0.1:{silent}")
    board = MockPhoneHardware()
    # the phone's clock 16x: Timer F's 32 s of REGISTER retransmissions take 2 s
    p = PhoneThread(peers_run, settings, name="lonely-phone", time_scale=16.0,
                    hardware=board.build)
    try:
        p.start()
        assert p.console.command("screen")["lines"][2] == "Registering..."
        lines = wait_screen_line(p, "No response from registrar", timeout=15)
        assert "!" in lines[0]  # the top bar's warning flag
        assert board.hardware.leds.mode("line") == "blink_fast"
    finally:
        assert p.stop() == 0
        board.close()


def wait_screen_line(p: PhoneThread, text: str, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = list(p.console.command("screen")["lines"])
        if text in lines:
            return lines
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never on the screen: {lines}")


def test_a_registrar_that_does_not_resolve_is_no_network_and_retried(
    peers_run: Path, port_allocator: PortAllocator
) -> None:
    """Booted before DNS works (the .invalid name never resolves, RFC 2606): the phone
    starts, says No network, and keeps trying instead of exiting."""
    settings = PhoneSettings.allocate(port_allocator, user="1001", password=None,
                                      domain="no-such-host.invalid")
    board = MockPhoneHardware()
    p = PhoneThread(peers_run, settings, name="offline-phone", time_scale=16.0,
                    hardware=board.build)
    try:
        p.start()
        lines = wait_screen_line(p, "No network", timeout=5)
        assert "!" in lines[0]
        first = p.console.wait_event("registration_failed")
        assert first["reason"].startswith("no network: cannot resolve no-such-host.invalid")
        assert first["retry_in"] == 10.0
        p.console.wait_event("registration_failed", timeout=5)  # tried again
        assert p.console.command("status")["phone"] == "idle"
    finally:
        assert p.stop() == 0
        board.close()
