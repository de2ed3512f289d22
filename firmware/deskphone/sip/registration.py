"""Registration state (RFC 3261 §10) and its retry policy (RFC 5626 §4.5)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from .errors import RemoteProtocolError
from .message import Response
from .uri import SipUri


class Rng(Protocol):
    """What the core needs of ``random.Random``; injected, so tests are repeatable."""

    def random(self) -> float: ...

    def getrandbits(self, k: int, /) -> int: ...


class RegState(enum.Enum):
    IDLE = "idle"
    REGISTERING = "registering"
    REGISTERED = "registered"
    RETRY_WAIT = "retry_wait"  # failed; trying again at ``retry_at``
    UNREGISTERING = "unregistering"
    UNREGISTERED = "unregistered"


@dataclass(slots=True)
class Registration:
    call_id: str  # one Call-ID for every REGISTER of this binding (§10.2.4)
    contact: SipUri
    expires: int  # what we ask for
    state: RegState = RegState.IDLE
    cseq: int = 0
    granted: int = 0  # what the registrar gave
    refresh_at: float | None = None
    retry_at: float | None = None
    failures: int = 0
    old_contact: SipUri | None = None  # to remove after a NAT rewrite
    nat_rewritten: bool = False

    def next_cseq(self) -> int:
        self.cseq += 1
        return self.cseq


def granted_expires(response: Response, contact: SipUri, requested: int) -> int:
    """§10.2.4: our Contact's expires param, else the Expires header, else ours. A value
    that does not parse (a 5,000-digit number, '²') counts as absent."""
    ours = (contact.user, contact.host, contact.port)
    for c in response.contacts:
        u = c.uri
        if isinstance(u, SipUri) and (u.user, u.host, u.port) == ours:
            try:
                granted = c.expires
            except RemoteProtocolError:
                granted = None
            if granted is not None:
                return granted
    try:
        header = response.expires
    except RemoteProtocolError:
        header = None
    return header if header is not None else requested


def refresh_delay(expires: int) -> float:
    """Refresh well before expiry: halfway for short bindings, a minute early else."""
    if expires <= 120:
        return expires / 2
    return float(expires - 60)


def retry_delay(failures: int, base: float, cap: float, rng: Rng) -> float:
    """RFC 5626 §4.5: min(cap, base * 2^n) scaled by a random 50-100 %."""
    upper = min(cap, base * 2.0 ** max(0, failures - 1))
    return upper * (0.5 + 0.5 * rng.random())


def via_nat_address(response: Response) -> tuple[str, int] | None:
    """(received, rport) of our top Via: how the registrar sees us (RFC 3581). An rport
    that does not parse (or is out of range) is no NAT information at all."""
    via = response.top_via
    received = via.param("received")
    try:
        rport = via.rport
    except RemoteProtocolError:
        return None
    if not received and rport is None:
        return None
    host = received or via.host
    return host, rport if rport is not None else (via.port or 5060)
