"""One phone call (an INVITE session, RFC 3261 §13-15) as the endpoint tracks it."""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from ..sdp import NegotiatedMedia, SessionDescription
from .dialog import Dialog
from .message import Request
from .transaction import Addr, ServerTransaction
from .uri import Address


class CallState(enum.Enum):
    DIALING = "dialing"  # INVITE sent, nothing back yet
    RINGING_OUT = "ringing"  # 180/183: the far end is alerting
    INCOMING = "incoming"  # INVITE received, we are ringing
    ANSWERED = "answered"  # 200 sent, waiting for the ACK
    CONNECTED = "connected"
    ENDED = "ended"


class Direction(enum.Enum):
    OUTGOING = "outgoing"
    INCOMING = "incoming"


@dataclass(slots=True, eq=False)
class Call:
    call_id: str
    direction: Direction
    remote: Address
    local_tag: str
    state: CallState
    local_port: int  # our RTP port
    local_sdp: SessionDescription | None = None  # our offer or answer
    remote_sdp: SessionDescription | None = None
    media: NegotiatedMedia | None = None
    early_media: NegotiatedMedia | None = None  # from an SDP answer in a 18x
    early_tag: str | None = None  # ... and the To tag of that 18x (its fork)
    dialog: Dialog | None = None
    # outgoing side
    invite: Request | None = None  # the INVITE in flight (the latest, after auth)
    invite_addr: Addr | None = None
    ack: Request | None = None  # our ACK for the 2xx, resent on 2xx retransmits
    ack_addr: Addr | None = None
    cancel_pending: bool = False  # hung up before any 1xx: CANCEL when one comes
    got_provisional: bool = False
    # incoming side
    invite_tx: ServerTransaction | None = None
    reinvite_tx: ServerTransaction | None = None  # the far end's re-INVITE we answer
    reinvite_out: Request | None = None  # our own re-INVITE in flight
    reinvite_offer: SessionDescription | None = None
    remote_offer_in_ack: bool = False
    # DTMF by SIP INFO, one digit at a time: (digit, duration ms, gap ms) still to send
    info_digits: deque[tuple[str, int, int]] = field(default_factory=deque)
    info_busy: bool = False  # an INFO is out, its final response not in
    info_next_at: float | None = None  # when the next digit leaves (the gap after one)

    @property
    def live(self) -> bool:
        return self.state is not CallState.ENDED

    def info(self) -> dict[str, object]:
        """What the console's ``status`` shows about the call."""
        out: dict[str, object] = {
            "call_id": self.call_id,
            "state": self.state.value,
            "direction": self.direction.value,
            "remote": str(self.remote.uri),
        }
        if self.remote.display_name:
            out["remote_name"] = self.remote.display_name
        if self.media is not None:
            out["codec"] = self.media.codec.encoding
            out["remote_media"] = f"{self.media.remote_address}:{self.media.remote_port}"
            out["local_rtp_port"] = self.media.local_port
        return out
