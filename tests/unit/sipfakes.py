"""Test doubles for the sans-I/O SIP core: a fake clock and a fake link.

``EndpointPair`` joins two endpoints the way h11's tests join two connections:
what one sends is delivered to the other (or dropped, when a test says so),
time moves only when the test moves it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from deskphone.sdp import MediaCaps
from deskphone.sip import events as ev
from deskphone.sip.endpoint import Endpoint, EndpointConfig
from deskphone.sip.message import Message, Request, Response, parse_message
from deskphone.sip.transaction import Addr, TimerValues
from deskphone.sip.uri import SipUri

REGISTRAR = Addr("udp", "127.0.0.1", 5060)


def config(user: str, host: str, port: int = 5060, transport: str = "udp",
           **kw: object) -> EndpointConfig:
    base = EndpointConfig(
        user=user, domain="127.0.0.1", password=f"secret{user}",
        registrar=SipUri.parse("sip:127.0.0.1:5060"), proxy=REGISTRAR,
        local=Addr(transport, host, port), timers=TimerValues(), media=MediaCaps(),
        retry_base=30.0)
    return replace(base, **kw)  # type: ignore[arg-type]


def endpoint(user: str, host: str, seed: int = 1, **kw: object) -> Endpoint:
    return Endpoint(config(user, host, **kw), random.Random(seed), 0.0)


def drain_events(ep: Endpoint) -> list[ev.Event]:
    out = []
    while (e := ep.next_event()) is not None:
        out.append(e)
    return out


@dataclass
class Side:
    ep: Endpoint
    addr: Addr
    events: list[ev.Event] = field(default_factory=list)
    received: list[Message] = field(default_factory=list)

    def of(self, kind: type) -> list[ev.Event]:
        return [e for e in self.events if isinstance(e, kind)]

    def requests(self, method: str) -> list[Request]:
        return [m for m in self.received if isinstance(m, Request) and m.method == method]

    def responses(self, status: int) -> list[Response]:
        return [m for m in self.received if isinstance(m, Response) and m.status == status]


class EndpointPair:
    """Phone A (1001 at 127.0.0.1) and phone B (1002 at 127.0.0.2) on a fake UDP link."""

    def __init__(self, a_kw: dict[str, object] | None = None,
                 b_kw: dict[str, object] | None = None, seed: int = 1) -> None:
        self.now = 0.0
        self.a = Side(endpoint("1001", "127.0.0.1", seed=seed, **(a_kw or {})),
                      Addr("udp", "127.0.0.1", 5060))
        self.b = Side(endpoint("1002", "127.0.0.2", seed=2, **(b_kw or {})),
                      Addr("udp", "127.0.0.2", 5060))
        # drop(msg, sender) -> True drops the datagram on the wire
        self.drop: Callable[[Message, Side], bool] = lambda m, s: False
        self.wire: list[tuple[str, Message]] = []
        # what the phone layer decides for an incoming call: ring it while idle, 486 when
        # busy (the SIP core only reports); False leaves each call to the test
        self.phone_policy = True

    def _decide(self, side: Side, events: list[ev.Event]) -> bool:
        acted = False
        for e in events:
            if isinstance(e, ev.IncomingCall):
                busy = any(c.call_id != e.call_id for c in side.ep.calls)
                if busy:
                    side.ep.reject(self.now, 486, e.call_id)
                else:
                    side.ep.ring(self.now, e.call_id)
                acted = True
        return acted

    def other(self, side: Side) -> Side:
        return self.b if side is self.a else self.a

    def pump(self) -> None:
        """Deliver until nothing is in flight."""
        moved = True
        while moved:
            moved = False
            for side in (self.a, self.b):
                for data, addr in side.ep.datagrams_to_send(self.now):
                    msg = parse_message(data)
                    self.wire.append(("A" if side is self.a else "B", msg))
                    if self.drop(msg, side):
                        continue
                    dest = self.other(side)
                    assert (addr.host, addr.port) == (dest.addr.host, dest.addr.port), addr
                    dest.received.append(msg)
                    dest.ep.receive(data, side.addr, self.now)
                    moved = True
                new = drain_events(side.ep)
                side.events += new
                if self.phone_policy:
                    moved |= self._decide(side, new)

    def advance(self, seconds: float) -> None:
        """Move the clock, firing every timer on the way, in order."""
        end = self.now + seconds
        while True:
            due = [t for t in (self.a.ep.get_timer(), self.b.ep.get_timer())
                   if t is not None and t <= end]
            if not due:
                break
            self.now = max(self.now, min(due))
            for side in (self.a, self.b):
                t = side.ep.get_timer()
                if t is not None and t <= self.now:
                    side.ep.handle_timer(self.now)
            self.pump()
        self.now = end
        self.pump()

    def call_b(self) -> str:
        call_id = self.a.ep.dial("sip:1002@127.0.0.2", self.now)
        self.pump()
        return call_id

    def connect(self) -> str:
        call_id = self.call_b()
        self.b.ep.answer(self.now)
        self.pump()
        return call_id
