"""Session descriptions (RFC 4566) and the offer/answer model (RFC 3264).

Pure: no sockets, no clock. ``SessionDescription.parse`` / ``bytes(sd)`` for the
wire form; ``make_offer``, ``make_answer`` and ``accept_answer`` for the
negotiation, which ends in a ``NegotiatedMedia`` for the media engine.
"""

from .offer_answer import (
    TELEPHONE_EVENT,
    MediaCaps,
    NegotiatedMedia,
    NoCommonCodec,
    accept_answer,
    make_answer,
    make_offer,
)
from .session import (
    PCMA,
    PCMU,
    STATIC_PAYLOAD_TYPES,
    Codec,
    Connection,
    Direction,
    MediaDescription,
    Origin,
    SdpError,
    SessionDescription,
)

__all__ = [
    "PCMA",
    "PCMU",
    "STATIC_PAYLOAD_TYPES",
    "TELEPHONE_EVENT",
    "Codec",
    "Connection",
    "Direction",
    "MediaCaps",
    "MediaDescription",
    "NegotiatedMedia",
    "NoCommonCodec",
    "Origin",
    "SdpError",
    "SessionDescription",
    "accept_answer",
    "make_answer",
    "make_offer",
]
