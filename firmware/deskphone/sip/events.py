"""What the SIP endpoint tells the phone (``Endpoint.next_event()``)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..sdp import NegotiatedMedia
from .transaction import Addr


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


class EndReason(enum.StrEnum):
    """Why a call ended, as the SIP core says it; a str, so logs and JSON show the text."""

    LOCAL_HANGUP = "local hangup"
    REMOTE_HANGUP = "remote hangup"
    CANCELLED = "cancelled"  # the caller gave up (487), or we did before an answer
    REJECTED = "rejected"  # we turned the call away
    BUSY = "busy"
    DECLINED = "declined"
    NOT_FOUND = "not found"
    UNAVAILABLE = "unavailable"
    NOT_ACCEPTABLE = "not acceptable"
    TIMEOUT = "timeout"
    FAILED = "failed"  # any other final failure response
    AUTH_FAILED = "auth failed"
    AUTH_NOT_OUR_PROXY = "auth refused: not our proxy"
    AUTH_FOREIGN_REALM = "auth refused: foreign realm"
    AUTH_NO_QOP = "auth refused: no qop (RFC 2069)"
    MEDIA_FAILED = "media negotiation failed"
    BAD_ANSWER = "bad answer (no Contact)"
    NO_ACK = "no ACK"
    FAR_END_GONE = "far end gone"


@dataclass(frozen=True, slots=True)
class CallEnded:
    call_id: str
    reason: EndReason
    status: int | None = None


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    call_id: str
    digit: str
    duration_ms: int


@dataclass(frozen=True, slots=True)
class CheckSyncRequested:
    """The registrar/outbound proxy sent ``NOTIFY`` with ``Event: check-sync``: fetch
    the configuration again. ``reboot``: True, restart with it; False, apply it live;
    None, the NOTIFY did not say (or said something else): the phone decides."""

    reboot: bool | None


@dataclass(frozen=True, slots=True)
class ProvisioningUrlOffered:
    """A SIP plug-and-play server answered ``Endpoint.pnp_subscribe``: its URL, already
    checked by ``provision.discovery.valid_url``, and where the NOTIFY came from.
    Trust on first use: anyone on the LAN may have sent it."""

    url: str
    source: Addr


@dataclass(frozen=True, slots=True)
class ProtocolWarning:
    """A message we dropped or answered with an error; for the log."""

    text: str
    source: str


Event = (Registered | RegistrationFailed | Unregistered | IncomingCall | CallRinging
         | CallConnected | CallUpdated | CallUpdateFailed | CallEnded | DtmfReceived
         | CheckSyncRequested | ProvisioningUrlOffered | ProtocolWarning)
