"""What the SIP endpoint tells the phone (``Endpoint.next_event()``)."""

from __future__ import annotations

from dataclasses import dataclass

from ..sdp import NegotiatedMedia


@dataclass(frozen=True, slots=True)
class Registered:
    aor: str
    contact: str
    expires: int


@dataclass(frozen=True, slots=True)
class RegistrationFailed:
    status: int | None  # None: no response (timeout, transport error)
    reason: str
    retry_in: float | None  # seconds until the next attempt; None: no retry


@dataclass(frozen=True, slots=True)
class Unregistered:
    reason: str


@dataclass(frozen=True, slots=True)
class IncomingCall:
    call_id: str
    remote_uri: str
    display_name: str | None


@dataclass(frozen=True, slots=True)
class CallRinging:
    """The far end is alerting (180/183 to our INVITE), or a provisional response
    brought early media: ``media`` is then what its SDP answer negotiated (RFC 3960:
    play the far end's audio, an announcement or its own ringback, instead of a
    local ringback tone)."""

    call_id: str
    status: int
    media: NegotiatedMedia | None = None


@dataclass(frozen=True, slots=True)
class CallConnected:
    call_id: str
    media: NegotiatedMedia | None


@dataclass(frozen=True, slots=True)
class CallUpdated:
    """A re-INVITE changed the media (hold, new address)."""

    call_id: str
    media: NegotiatedMedia | None


@dataclass(frozen=True, slots=True)
class CallUpdateFailed:
    """Our re-INVITE (hold, resume) was refused (491, 488...): the media is unchanged."""

    call_id: str
    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class CallEnded:
    call_id: str
    reason: str  # "local hangup", "remote hangup", "cancelled", "busy", "rejected", ...
    status: int | None = None


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    call_id: str
    digit: str
    duration_ms: int


@dataclass(frozen=True, slots=True)
class ProtocolWarning:
    """A message we dropped or answered with an error; for the log."""

    text: str
    source: str


Event = (Registered | RegistrationFailed | Unregistered | IncomingCall | CallRinging
         | CallConnected | CallUpdated | CallUpdateFailed | CallEnded | DtmfReceived
         | ProtocolWarning)
