"""The two ways a SIP exchange goes wrong (after h11's split).

``RemoteProtocolError``: the peer sent something we cannot accept. It carries
the status code a UAS should answer with (400 unless the problem has a more
precise one, e.g. 505 for a wrong SIP version); for a response or an ACK
nothing is answered, the message is dropped and logged.

``LocalProtocolError``: our own code asked for something the protocol does not
allow (answering a call that is not ringing, a second REGISTER in flight...).
"""

from __future__ import annotations


class SipError(Exception):
    """Base class of every error the SIP core raises."""


class RemoteProtocolError(SipError):
    """The peer sent a malformed or unacceptable message."""

    def __init__(self, message: str, status_hint: int = 400) -> None:
        super().__init__(message)
        self.status_hint = status_hint


class LocalProtocolError(SipError):
    """The caller misused the SIP core."""
