"""What the phone controller asks for: the runtime carries each action out.

Every action is a frozen dataclass; ``runtime/`` executes them against the SIP endpoint,
the media engine and the hardware, in the order the controller returned them. The
controller never learns how: a test reads the list.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..sdp import NegotiatedMedia

# ------------------------------------------------------------------ SIP


@dataclass(frozen=True, slots=True)
class PlaceCall:
    """Dial ``target`` (digits or a SIP URI); the runtime answers with ``CallPlaced`` or
    ``CallFailed`` (phone.events) fed back to the controller."""

    target: str


@dataclass(frozen=True, slots=True)
class Alert:
    """Tell the caller we are ringing (180 Ringing)."""

    call_id: str


@dataclass(frozen=True, slots=True)
class Answer:
    call_id: str


@dataclass(frozen=True, slots=True)
class Reject:
    """Refuse an incoming call: 486 Busy Here, 480, 603 Decline..."""

    call_id: str
    code: int


@dataclass(frozen=True, slots=True)
class Hangup:
    """End a call in whatever state it is: CANCEL, or BYE."""

    call_id: str


@dataclass(frozen=True, slots=True)
class Hold:
    call_id: str
    on: bool


class DtmfMethod(enum.Enum):
    RFC4733 = "rfc4733"  # telephone-events in the RTP stream
    INFO = "info"  # SIP INFO application/dtmf-relay, when the far end takes no events


@dataclass(frozen=True, slots=True)
class SendDtmf:
    call_id: str
    digits: str
    method: DtmfMethod


# ---------------------------------------------------------------- media


@dataclass(frozen=True, slots=True)
class StartMedia:
    """Start (or update, if running) the call's media thread."""

    call_id: str
    media: NegotiatedMedia
    muted: bool = False


@dataclass(frozen=True, slots=True)
class StopMedia:
    call_id: str


@dataclass(frozen=True, slots=True)
class Mute:
    """Send silence instead of the microphone (or the microphone again)."""

    call_id: str
    on: bool


@dataclass(frozen=True, slots=True)
class MediaHold:
    """Our hold: keep the stream but send no microphone (RFC 3264 §8.4 sendonly)."""

    call_id: str
    on: bool


@dataclass(frozen=True, slots=True)
class PlayTone:
    """A call-progress tone of the configured country (dial, ringback, busy, congestion);
    ``seconds`` None plays until ``StopTone``."""

    name: str
    seconds: float | None = None


@dataclass(frozen=True, slots=True)
class StopTone:
    pass


# ------------------------------------------------------------- hardware


@dataclass(frozen=True, slots=True)
class Ring:
    """Start (True) or stop (False) the ringer; the cadence is the configured country's."""

    on: bool


class LedMode(enum.Enum):
    OFF = "off"
    ON = "on"
    BLINK = "blink"
    BLINK_FAST = "blink_fast"


@dataclass(frozen=True, slots=True)
class SetLed:
    name: str  # "line", "mwi", "in_use"
    mode: LedMode


# -------------------------------------------------------------- history


class CallKind(enum.Enum):
    MISSED = "missed"
    RECEIVED = "received"
    DIALLED = "dialled"


@dataclass(frozen=True, slots=True)
class LogCall:
    """One finished call for the history (the runtime stamps the wall time and keeps it)."""

    kind: CallKind
    remote: str  # what to dial to reach them again
    name: str
    duration: float  # seconds talked; 0 if never connected
    reason: str


Action = (PlaceCall | Alert | Answer | Reject | Hangup | Hold | SendDtmf | StartMedia
          | StopMedia | Mute | MediaHold | PlayTone | StopTone | Ring | SetLed | LogCall)
