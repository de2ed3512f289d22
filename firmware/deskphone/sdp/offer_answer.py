"""The offer/answer model (RFC 3264) for a phone with one audio stream.

Theory of operation: ``make_offer`` writes what we can receive; the other side
answers. ``make_answer`` is our side of someone else's offer: one m= line per
offered one, in the same order (§6), the first usable audio stream accepted,
everything else refused with port 0. ``accept_answer`` checks an answer to our
offer. Both of the latter return a ``NegotiatedMedia``: what the media engine
needs to start, stop or re-aim the RTP stream.

Directions are always seen from the side that wrote them: an offer's sendonly
becomes our recvonly (§6.1). A connection address of 0.0.0.0 is RFC 2543 hold
(RFC 3264 §8.4): the side that wrote it does not want to receive.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .session import (
    PCMA,
    PCMU,
    Codec,
    Connection,
    Direction,
    MediaDescription,
    Origin,
    SdpError,
    SessionDescription,
)

__all__ = [
    "TELEPHONE_EVENT",
    "MediaCaps",
    "NegotiatedMedia",
    "NoCommonCodec",
    "accept_answer",
    "make_answer",
    "make_offer",
]

# RFC 4733 §2.3: DTMF digits 0-9 * # A-D (0-15) and flash (16), at 8 kHz to go
# with G.711 (§2.1: the event clock is the audio clock).
TELEPHONE_EVENT = Codec(101, "telephone-event", 8000, fmtp="0-16")
OLD_HOLD_ADDRESS = "0.0.0.0"  # RFC 3264 §8.4 (RFC 2543 hold)
DEFAULT_PTIME = 20  # RFC 3551 §4.5: 20 ms unless told otherwise


class NoCommonCodec(SdpError):
    """We cannot take this offer: answer 488 Not Acceptable Here (RFC 3261 §13.3.1.3)."""


@dataclass(frozen=True, slots=True)
class MediaCaps:
    """What the phone can do. ``codecs`` is our order of preference (it
    orders our offers; an answer follows the offerer's order, §6.1)."""

    codecs: tuple[Codec, ...] = (PCMU, PCMA)
    telephone_event: bool = True
    ptime: int = DEFAULT_PTIME

    def __post_init__(self) -> None:
        if not _audio_codecs_of(self.codecs):
            raise ValueError("MediaCaps needs at least one audio codec")

    def supports(self, codec: Codec) -> bool:
        return any(codec.matches(ours) for ours in self.codecs)


@dataclass(frozen=True, slots=True)
class NegotiatedMedia:
    """The outcome of one offer/answer exchange, for the media engine.

    ``codec`` (with the peer's payload type) is what we send; ``direction`` is
    ours: what we may do. No media flows if ``remote_port`` is 0 or the
    direction is inactive (``active`` says so).
    """

    remote_address: str
    remote_port: int
    local_port: int
    codec: Codec
    telephone_event_pt: int | None
    ptime: int
    direction: Direction
    rtcp_mux: bool
    remote_rtcp_port: int | None = None  # where the peer wants RTCP; None if no stream

    @property
    def active(self) -> bool:
        return self.remote_port != 0 and self.direction is not Direction.INACTIVE

    @property
    def sends(self) -> bool:
        return self.active and self.direction.sends

    @property
    def receives(self) -> bool:
        return self.active and self.direction.receives


# -- offers ----------------------------------------------------------------------


def make_offer(
    caps: MediaCaps,
    address: str,
    port: int,
    session_id: int,
    session_version: int,
    direction: Direction = Direction.SENDRECV,
    username: str = "deskphone",
) -> SessionDescription:
    """One audio stream with every codec we have, in our order (RFC 3264 §5).

    For hold (§8.4) offer ``Direction.SENDONLY`` (or INACTIVE if the stream
    was recvonly) with ``session_version`` one higher.
    """
    codecs = caps.codecs
    if caps.telephone_event:
        codecs = (*codecs, TELEPHONE_EVENT)
    audio = MediaDescription(
        media="audio",
        port=port,
        codecs=codecs,
        ptime=caps.ptime,
        direction=direction,
    )
    return _session(username, session_id, session_version, address, (audio,))


def _session(
    username: str,
    session_id: int,
    session_version: int,
    address: str,
    media: tuple[MediaDescription, ...],
) -> SessionDescription:
    connection = Connection.for_address(address)
    origin = Origin(
        username, session_id, session_version, connection.nettype, connection.addrtype, address
    )
    return SessionDescription(origin=origin, connection=connection, media=media)


# -- answers ---------------------------------------------------------------------


def make_answer(
    offer: SessionDescription,
    caps: MediaCaps,
    address: str,
    port: int,
    session_id: int,
    session_version: int,
    hold: bool = False,
    username: str = "deskphone",
) -> tuple[SessionDescription, NegotiatedMedia]:
    """Answer ``offer`` (RFC 3264 §6): our answer and what it negotiated.

    ``hold=True`` answers with us not receiving (sendonly or inactive). Raises
    ``NoCommonCodec`` if no audio stream can be accepted, ``SdpError`` if an
    accepted stream has no connection address.
    """
    answered: list[MediaDescription] = []
    negotiated: NegotiatedMedia | None = None
    refusal: str | None = None
    for index, m in enumerate(offer.media, start=1):
        if negotiated is None and m.media == "audio" and m.port != 0:
            result = _answer_audio(offer, index, m, caps, port, hold)
            if isinstance(result, str):
                refusal = refusal or result
            else:
                answer_m, negotiated = result
                answered.append(answer_m)
                continue
        answered.append(_refused(m))
    answer = _session(username, session_id, session_version, address, tuple(answered))
    if negotiated is not None:
        return answer, negotiated
    if refusal is not None:
        raise NoCommonCodec(refusal)
    disabled = [m for m in offer.media if m.media == "audio"]
    if not disabled:
        raise NoCommonCodec("no audio stream in the offer")
    # §8.2: every audio stream offered with port 0 (disabled); so is ours.
    m = disabled[0]
    common = [c for c in _audio_codecs(m) if caps.supports(c)]
    return answer, NegotiatedMedia(
        remote_address=offer.media_address(m) or OLD_HOLD_ADDRESS,
        remote_port=0,
        local_port=0,
        codec=common[0] if common else _audio_codecs_of(caps.codecs)[0],
        telephone_event_pt=None,
        ptime=caps.ptime,
        direction=Direction.INACTIVE,
        rtcp_mux=False,
    )


def _answer_audio(
    offer: SessionDescription,
    index: int,
    m: MediaDescription,
    caps: MediaCaps,
    port: int,
    hold: bool,
) -> tuple[MediaDescription, NegotiatedMedia] | str:
    """Accept one offered audio stream, or say why not."""
    if m.proto.upper() != "RTP/AVP":
        return f"unsupported audio protocol: {m.proto}"
    # §6.1: the formats common to both, in the offerer's order.
    common = [c for c in _audio_codecs(m) if caps.supports(c)]
    if not common:
        offered = ", ".join(_describe(m, fmt) for fmt in m.formats)
        supported = ", ".join(str(c) for c in caps.codecs)
        return f"no common codec: offered {offered or 'nothing'}; we support {supported}"
    address = offer.media_address(m)
    if address is None:
        raise SdpError(f"offer m= line {index} has no c= line")
    codec = common[0]
    event = _telephone_event(m, codec) if caps.telephone_event else None

    theirs = offer.media_direction(m)
    if address == OLD_HOLD_ADDRESS:
        theirs = Direction.from_flags(send=theirs.sends, recv=False)
    ours = theirs.reverse()
    if hold:
        ours = Direction.from_flags(send=ours.sends, recv=False)

    ptime = m.ptime or caps.ptime
    if m.maxptime and ptime > m.maxptime:
        ptime = m.maxptime

    answer_m = MediaDescription(
        media=m.media,
        port=port,
        proto=m.proto,
        codecs=(*common, event) if event is not None else tuple(common),
        ptime=ptime,
        direction=ours,
        rtcp_mux=m.rtcp_mux,  # RFC 5761 §5.1.1: accept it if offered
    )
    return answer_m, NegotiatedMedia(
        remote_address=address,
        remote_port=m.port,
        local_port=port,
        codec=codec,
        telephone_event_pt=event.payload_type if event is not None else None,
        ptime=ptime,
        direction=ours,
        rtcp_mux=m.rtcp_mux,
        remote_rtcp_port=_rtcp_port(m, rtcp_mux=m.rtcp_mux),
    )


def _refused(m: MediaDescription) -> MediaDescription:
    """§6: a refused (or disabled) stream is answered with port 0 and the
    offered formats; rtpmaps but no other attributes."""
    codecs = tuple(replace(c, fmtp=None) for c in m.codecs)
    return MediaDescription(media=m.media, port=0, proto=m.proto, formats=m.formats, codecs=codecs)


def _describe(m: MediaDescription, fmt: str) -> str:
    """``PCMU/8000`` for a format we know the codec of, else the format."""
    for codec in m.codecs:
        if str(codec.payload_type) == fmt:
            return str(codec)
    return fmt


def _audio_codecs(m: MediaDescription) -> list[Codec]:
    """The codecs proper: telephone-event alone is no call."""
    return _audio_codecs_of(m.codecs)


def _audio_codecs_of(codecs: tuple[Codec, ...]) -> list[Codec]:
    return [c for c in codecs if not c.is_telephone_event]


def _offered(codec: Codec, m: MediaDescription) -> bool:
    return any(codec.matches(offered) for offered in m.codecs)


def _telephone_event(m: MediaDescription, codec: Codec) -> Codec | None:
    """RFC 4733 §2.1: the event stream's clock must be the audio codec's."""
    for candidate in m.codecs:
        if candidate.is_telephone_event and candidate.clock_rate == codec.clock_rate:
            return candidate
    return None


def _rtcp_port(m: MediaDescription, *, rtcp_mux: bool) -> int:
    """RFC 5761 §5.1.1 (muxed), RFC 3605 (a=rtcp), else RFC 3550 §11: RTP port + 1."""
    if rtcp_mux:
        return m.port
    if m.rtcp_port is not None:
        return m.rtcp_port
    return m.port + 1


# -- answers to our offers -------------------------------------------------------


def accept_answer(offer: SessionDescription, answer: SessionDescription) -> NegotiatedMedia:
    """Check the answer to our ``offer`` (RFC 3264 §6, §7) and say what it negotiated.

    Raises ``SdpError`` if the answer does not fit the offer.
    """
    if len(answer.media) != len(offer.media):
        raise SdpError(f"answer has {len(answer.media)} m= lines, the offer had {len(offer.media)}")
    for index, (ours, theirs) in enumerate(zip(offer.media, answer.media, strict=True), 1):
        if ours.media != theirs.media:
            raise SdpError(
                f"answer m= line {index} is {theirs.media!r}, the offer's is {ours.media!r}"
            )
    offered_audio = [
        (index, ours, theirs)
        for index, (ours, theirs) in enumerate(zip(offer.media, answer.media, strict=True), 1)
        if ours.media == "audio" and ours.port != 0
    ]
    if not offered_audio:
        raise SdpError("the offer has no audio stream")
    for index, ours, theirs in offered_audio:
        if theirs.port != 0:
            return _accept_audio(offer, answer, index, ours, theirs)
    # §6: they refused every audio stream; nothing flows.
    _, ours, theirs = offered_audio[0]
    return NegotiatedMedia(
        remote_address=answer.media_address(theirs) or OLD_HOLD_ADDRESS,
        remote_port=0,
        local_port=ours.port,
        codec=_audio_codecs(ours)[0] if _audio_codecs(ours) else PCMU,
        telephone_event_pt=None,
        ptime=ours.ptime or DEFAULT_PTIME,
        direction=Direction.INACTIVE,
        rtcp_mux=False,
    )


def _accept_audio(
    offer: SessionDescription,
    answer: SessionDescription,
    index: int,
    ours: MediaDescription,
    theirs: MediaDescription,
) -> NegotiatedMedia:
    address = answer.media_address(theirs)
    if address is None:
        raise SdpError(f"answer m= line {index} has no c= line")
    # §6.1: the answer may add formats we did not offer; we send the first
    # one we did offer, with the answer's payload type.
    answered_codecs = _audio_codecs(theirs)
    codec = next((c for c in answered_codecs if _offered(c, ours)), None)
    if codec is None:
        sent = ", ".join(str(c) for c in _audio_codecs(ours))
        got = ", ".join(_describe(theirs, fmt) for fmt in theirs.formats)
        raise SdpError(
            f"answer m= line {index} has no codec from the offer: offered {sent}; "
            f"answered {got or 'nothing'}"
        )
    event: Codec | None = None
    if any(c.is_telephone_event for c in ours.codecs):
        event = _telephone_event(theirs, codec)

    wanted = offer.media_direction(ours)
    granted = answer.media_direction(theirs)
    if address == OLD_HOLD_ADDRESS:
        granted = Direction.from_flags(send=granted.sends, recv=False)
    # What we offered to do, and they agreed to the other half of.
    direction = Direction.from_flags(
        send=wanted.sends and granted.receives,
        recv=wanted.receives and granted.sends,
    )
    # The ptime they want to receive, else the one we asked for.
    ptime = theirs.ptime or ours.ptime or DEFAULT_PTIME
    if theirs.maxptime and ptime > theirs.maxptime:
        ptime = theirs.maxptime
    rtcp_mux = ours.rtcp_mux and theirs.rtcp_mux
    return NegotiatedMedia(
        remote_address=address,
        remote_port=theirs.port,
        local_port=ours.port,
        codec=codec,
        telephone_event_pt=event.payload_type if event is not None else None,
        ptime=ptime,
        direction=direction,
        rtcp_mux=rtcp_mux,
        remote_rtcp_port=_rtcp_port(theirs, rtcp_mux=rtcp_mux),
    )
