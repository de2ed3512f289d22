"""The simulated phone as a person uses it: two ``deskphone sim`` in pseudo-terminals,
keys typed in, the screen's text read back. Phone 100 lifts its handset and types 200#;
phone 200 rings and is answered with the space bar; 100 hangs up and 200 sees it end."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from phone import FIRMWARE

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class SimTerminal:
    """One ``deskphone sim`` on a pty: ``type(keys)`` and ``wait(text)`` on its screen."""

    def __init__(self, args: list[str], log: Path) -> None:
        master, slave = pty.openpty()
        env = {**os.environ, "PYTHONPATH": str(FIRMWARE), "TERM": "xterm"}
        self.proc = subprocess.Popen([sys.executable, "-m", "deskphone.cli", "sim", *args,
                                      "--log-file", str(log)],
                                     stdin=slave, stdout=slave, stderr=slave, env=env,
                                     close_fds=True)
        os.close(slave)
        self.master = master
        self.output = ""
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self.output += data.decode("utf-8", "replace")

    def screen(self) -> str:
        """The last frame drawn (each draw starts by clearing the terminal)."""
        with self._lock:
            return ANSI.sub("", self.output.rsplit("\x1b[2J", 1)[-1])

    def wait(self, text: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shown = self.screen()
            if text in shown:
                return shown
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"{text!r} not on the screen in {timeout} s:\n{self.screen()}")

    def type(self, keys: str, gap: float = 0.25) -> None:
        for key in keys:  # a person's pace: each tap is a 120 ms contact closure
            os.write(self.master, key.encode())
            time.sleep(gap)

    def close(self) -> int:
        if self.proc.poll() is None:
            os.write(self.master, b"q")
            try:
                self.proc.wait(8)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        os.close(self.master)
        return self.proc.returncode


@pytest.fixture
def sims(tmp_path: Path, free_port: Callable[..., int]) -> Iterator[
        Callable[[str, int, int], SimTerminal]]:
    started: list[SimTerminal] = []

    def start(user: str, port: int, peer_port: int) -> SimTerminal:
        rtp = free_port(10, tcp=False, even=True)
        sim = SimTerminal(["--user", user, "--sip-port", str(port), "--peer",
                           f"127.0.0.1:{peer_port}", "--console-port", str(free_port()),
                           "--rtp-port", str(rtp), "--state-dir", str(tmp_path / user),
                           "--audio", "null"],
                          tmp_path / f"sim-{user}.log")
        started.append(sim)
        return sim

    yield start
    codes = [s.close() for s in started]
    assert codes == [0] * len(codes), [s.screen() for s in started]


def test_two_simulated_phones_dial_ring_answer_hang_up(
        sims: Callable[[str, int, int], SimTerminal], free_port: Callable[..., int]) -> None:
    port_a, port_b = free_port(), free_port()
    a = sims("100", port_a, port_b)
    b = sims("200", port_b, port_a)
    a.wait("No registrar: direct calls")
    b.wait("No registrar: direct calls")

    a.type(" ")
    a.wait("Dial a number")
    a.type("200#")
    b.wait("screen: Incoming call | 100")
    assert "ringer RINGING" in b.screen()
    a.wait("Ringing...")

    b.type(" ")
    b.wait("screen: In call | 100")
    a.wait("screen: In call | 200")
    assert "ringer off" in b.screen()

    a.type(" ")
    b.wait("Call ended")
    a.wait("handset down")
