"""RTP/RTCP socket pairs, bound when a port goes into an SDP body.

The SIP core asks for a port when it builds an offer or an answer; binding
the pair right then means the port we advertise is one we hold (two phones on
one lab machine, or a port some other program took, cannot collide with us),
and early media can arrive before the call is answered.
"""

from __future__ import annotations

import logging
import socket

log = logging.getLogger(__name__)


class RtpPortPool:
    """Even RTP port + odd RTCP port, bound on ``host``, from [low, high]."""

    def __init__(self, host: str, low: int, high: int) -> None:
        if low % 2:
            low += 1
        self.host = host
        self.low, self.high = low, high
        self._next = low
        self._held: dict[int, tuple[socket.socket, socket.socket]] = {}

    def allocate(self) -> int:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        span = (self.high - self.low) // 2 + 1
        for _ in range(span):
            port = self._next
            self._next = port + 2 if port + 2 <= self.high else self.low
            if port in self._held:
                continue
            rtp = socket.socket(family, socket.SOCK_DGRAM)
            rtcp = socket.socket(family, socket.SOCK_DGRAM)
            try:
                rtp.bind((self.host, port))
                rtcp.bind((self.host, port + 1))
            except OSError:
                rtp.close()
                rtcp.close()
                continue
            self._held[port] = (rtp, rtcp)
            return port
        raise OSError(f"no free RTP port pair in {self.low}-{self.high} on {self.host}")

    def sockets(self, port: int) -> tuple[socket.socket, socket.socket]:
        return self._held[port]

    def release(self, port: int) -> None:
        pair = self._held.pop(port, None)
        if pair is not None:
            for s in pair:
                s.close()

    def close(self) -> None:
        for port in list(self._held):
            self.release(port)

    @property
    def held(self) -> list[int]:
        return sorted(self._held)
