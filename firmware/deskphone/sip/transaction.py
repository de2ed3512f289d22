"""SIP transactions (RFC 3261 §17, with the RFC 6026 "Accepted" states).

Theory of operation
-------------------
A transaction is one request and its responses, retransmitted over UDP until
the other side shows it got them. The four kinds are four small state
machines; each keeps its running timers as named deadlines ("A", "B", ...)
so the endpoint can find the next one, and so tests can check exactly which
timer runs when.

The endpoint owns the transactions. It feeds them messages and the current
time and hands them a ``send`` callable that only queues bytes; what a
transaction gives back (a response for the TU, a timeout) is the return value
of the call that caused it. Nothing here reads a clock or touches a socket.

    client INVITE      Calling -1xx-> Proceeding -2xx-> Accepted (M) -> Terminated
                          |  A,B          |   >=300: ACK -> Completed (D) -> Terminated
    client non-INVITE  Trying -1xx-> Proceeding -final-> Completed (K) -> Terminated
                          E,F            E(T2),F
    server INVITE      Proceeding -2xx-> Accepted (2xx retransmit, L) -> Terminated
                            | >=300 -> Completed (G,H) -ACK-> Confirmed (I) -> Terminated
    server non-INVITE  Trying -1xx-> Proceeding -final-> Completed (J) -> Terminated
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .message import Headers, Request, Response
from .uri import host_port


@dataclass(frozen=True, slots=True)
class Addr:
    """A transport address: where a message came from or goes to."""

    transport: str  # "udp" | "tcp"
    host: str
    port: int

    @property
    def reliable(self) -> bool:
        return self.transport != "udp"

    def __str__(self) -> str:
        return f"{self.transport}:{host_port(self.host, self.port)}"


@dataclass(frozen=True, slots=True)
class TimerValues:
    """RFC 3261 §17.1.1.1 / Table 4; shorter values make tests quick."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0


class TxState(enum.Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


Send = Callable[[Request | Response, Addr], None]


class Timeout(Exception):
    """Not raised: a marker returned by ``on_timer`` when B, F or H fires."""


TIMEOUT = Timeout()


class Timers(dict[str, float]):
    """A transaction's running timers (name -> deadline) that tell ``changed`` of every
    change, so the endpoint keeps one heap of deadlines instead of scanning every
    transaction at every wake-up (a flood made that quadratic)."""

    __slots__ = ("changed",)

    def __init__(self) -> None:
        super().__init__()
        self.changed: Callable[[], None] | None = None

    def _note(self) -> None:
        if self.changed is not None:
            self.changed()

    def __setitem__(self, key: str, value: float) -> None:
        super().__setitem__(key, value)
        self._note()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._note()

    def pop(self, key: str, *default: Any) -> Any:
        had = key in self
        value = super().pop(key, *default)
        if had:
            self._note()
        return value

    def clear(self) -> None:
        super().clear()
        self._note()


class _Transaction:
    def __init__(self, request: Request, addr: Addr, send: Send, timers: TimerValues) -> None:
        self.request = request
        self.addr = addr
        self._send = send
        self._t = timers
        self.timers = Timers()
        self.state = TxState.TRYING
        via = request.top_via
        self.branch = via.branch or ""
        self.method = request.method

    @property
    def reliable(self) -> bool:
        return self.addr.reliable

    @property
    def terminated(self) -> bool:
        return self.state is TxState.TERMINATED

    def deadline(self) -> float | None:
        return min(self.timers.values()) if self.timers else None

    def _terminate(self) -> None:
        self.state = TxState.TERMINATED
        self.timers.clear()

    def _due(self, name: str, now: float) -> bool:
        t = self.timers.get(name)
        if t is not None and t <= now:
            del self.timers[name]
            return True
        return False


class ClientTransaction(_Transaction):
    """§17.1: sends a request, retransmits it over UDP, passes responses up."""

    def __init__(self, request: Request, addr: Addr, send: Send, timers: TimerValues,
                 now: float) -> None:
        super().__init__(request, addr, send, timers)
        self.invite = request.method == "INVITE"
        self.state = TxState.CALLING if self.invite else TxState.TRYING
        self._interval = timers.t1
        self.ack: Request | None = None
        self.last_response: Response | None = None
        send(request, addr)
        retransmit, timeout = ("A", "B") if self.invite else ("E", "F")
        if not self.reliable:
            self.timers[retransmit] = now + self._interval
        self.timers[timeout] = now + 64 * timers.t1

    def receive(self, response: Response, now: float) -> Response | None:
        """Feed a matching response; returns it if the TU should see it."""
        code = response.status
        st = self.state
        if st is TxState.TERMINATED:
            return None
        if self.invite:
            if st in (TxState.CALLING, TxState.PROCEEDING):
                self.last_response = response
                if code < 200:
                    # §17.1.1.2: Timer B times out the Calling state only; once the far
                    # end rings, how long to wait is the TU's call (the phone's no-answer
                    # timer, a CANCEL), not 64*T1
                    self.state = TxState.PROCEEDING
                    self.timers.pop("A", None)
                    self.timers.pop("B", None)
                    return response
                if code < 300:
                    # RFC 6026 §8.4: stay to pass 2xx retransmissions to the TU
                    self.state = TxState.ACCEPTED
                    self.timers.clear()
                    self.timers["M"] = now + 64 * self._t.t1
                    return response
                self.ack = ack_for(self.request, response)
                self._send(self.ack, self.addr)
                self.state = TxState.COMPLETED
                self.timers.clear()
                self.timers["D"] = now + (0 if self.reliable else 32.0)
                if self.reliable:
                    self._terminate()
                return response
            if st is TxState.ACCEPTED:
                return response if 200 <= code < 300 else None
            if st is TxState.COMPLETED and code >= 300 and self.ack is not None:
                self._send(self.ack, self.addr)  # the ACK got lost: send it again
            return None
        # non-INVITE
        if st in (TxState.TRYING, TxState.PROCEEDING):
            self.last_response = response
            if code < 200:
                self.state = TxState.PROCEEDING
                return response
            self.state = TxState.COMPLETED
            self.timers.clear()
            if self.reliable:
                self._terminate()
            else:
                self.timers["K"] = now + self._t.t4
            return response
        return None

    def on_timer(self, now: float) -> Timeout | None:
        t = self._t
        if self._due("A", now):
            self._send(self.request, self.addr)
            self._interval *= 2
            self.timers["A"] = now + self._interval
        if self._due("E", now):
            self._send(self.request, self.addr)
            # §17.1.2.2: doubles up to T2; in Proceeding it stays at T2
            self._interval = t.t2 if self.state is TxState.PROCEEDING else min(
                self._interval * 2, t.t2)
            self.timers["E"] = now + self._interval
        if self._due("B", now) or self._due("F", now):
            self._terminate()
            return TIMEOUT
        if self._due("D", now) or self._due("K", now) or self._due("M", now):
            self._terminate()
        return None

    def transport_error(self) -> None:
        self._terminate()


class ServerTransaction(_Transaction):
    """§17.2: absorbs request retransmissions, retransmits our final response."""

    def __init__(self, request: Request, addr: Addr, send: Send, timers: TimerValues) -> None:
        super().__init__(request, addr, send, timers)
        self.invite = request.method == "INVITE"
        self.state = TxState.PROCEEDING if self.invite else TxState.TRYING
        self.last_response: Response | None = None
        self._interval = timers.t1
        self.sent_by = request.top_via

    def matches(self, request: Request) -> bool:
        """§17.2.3: same branch (checked by the caller's lookup) and sent-by."""
        via = request.top_via
        return (via.host, via.port) == (self.sent_by.host, self.sent_by.port)

    def respond(self, response: Response, now: float) -> None:
        if self.state in (TxState.TERMINATED, TxState.CONFIRMED):
            return
        if self.state in (TxState.COMPLETED, TxState.ACCEPTED) and response.status >= 200:
            return  # one final response only
        code = response.status
        self.last_response = response
        self._send(response, self.addr)
        if code < 200:
            self.state = TxState.PROCEEDING
            return
        t = self._t
        if self.invite:
            if code < 300:
                # RFC 6026 §7.1 + RFC 3261 §13.3.1.4: resend the 2xx until the ACK
                # (end to end, so over TCP too: a later hop may be UDP)
                self.state = TxState.ACCEPTED
                self.timers["2xx"] = now + self._interval
                self.timers["L"] = now + 64 * t.t1
            else:
                self.state = TxState.COMPLETED
                if not self.reliable:
                    self.timers["G"] = now + self._interval
                self.timers["H"] = now + 64 * t.t1
        else:
            self.state = TxState.COMPLETED
            if self.reliable:
                self._terminate()
            else:
                self.timers["J"] = now + 64 * t.t1

    def receive(self, request: Request, now: float) -> None:
        """A retransmission of our request (or the ACK of a non-2xx final)."""
        if request.method == "ACK":
            if self.state is TxState.COMPLETED:
                self.state = TxState.CONFIRMED
                self.timers.clear()
                if self.reliable:
                    self._terminate()
                else:
                    self.timers["I"] = now + self._t.t4
            return
        if self.last_response is not None and self.state in (
                TxState.PROCEEDING, TxState.TRYING, TxState.COMPLETED):
            self._send(self.last_response, self.addr)

    def acked(self) -> None:
        """The TU saw the ACK for our 2xx: stop retransmitting it."""
        if self.state is TxState.ACCEPTED:
            self.timers.pop("2xx", None)

    def on_timer(self, now: float) -> Timeout | None:
        t = self._t
        for name in ("G", "2xx"):
            if self._due(name, now) and self.last_response is not None:
                self._send(self.last_response, self.addr)
                self._interval = min(self._interval * 2, t.t2)
                self.timers[name] = now + self._interval
        if self._due("H", now):
            self._terminate()
            return TIMEOUT
        if self._due("L", now):
            acked = "2xx" not in self.timers
            self._terminate()
            return None if acked else TIMEOUT
        if self._due("I", now) or self._due("J", now):
            self._terminate()
        return None


def ack_for(invite: Request, response: Response) -> Request:
    """§17.1.1.3: the ACK for a non-2xx final response, part of the transaction."""
    h = invite.headers
    headers = [
        ("Via", h.get_all("Via")[0]),
        *(("Route", r) for r in h.get_all("Route")),
        ("Max-Forwards", "70"),
        ("From", h.get("From") or ""),
        ("To", response.headers.get("To") or ""),
        ("Call-ID", h.get("Call-ID") or ""),
        ("CSeq", f"{invite.cseq.seq} ACK"),
    ]
    return Request("ACK", invite.uri, Headers(headers))

