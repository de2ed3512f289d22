"""RFC 3264 offer/answer: real offers answered, answers checked, both sides agreeing."""

from __future__ import annotations

import pytest
import sdp_bodies as bodies
from hypothesis import given
from hypothesis import strategies as st
from sdp_bodies import crlf

from deskphone.sdp import (
    PCMA,
    PCMU,
    TELEPHONE_EVENT,
    Codec,
    Connection,
    Direction,
    MediaCaps,
    NegotiatedMedia,
    NoCommonCodec,
    SdpError,
    SessionDescription,
    accept_answer,
    make_answer,
    make_offer,
)

CAPS = MediaCaps()
US = "192.168.1.50"




def parse(text: str) -> SessionDescription:
    return SessionDescription.parse(crlf(text))


def offer_of(*lines: str, connection: str = "c=IN IP4 192.168.1.20") -> SessionDescription:
    """An offer from 192.168.1.20 with the given media sections."""
    head = ["v=0", "o=- 1 1 IN IP4 192.168.1.20", "s=-", connection, "t=0 0"]
    return SessionDescription.parse("\r\n".join([*head, *lines]) + "\r\n")


def answer(
    offer: SessionDescription, caps: MediaCaps = CAPS, hold: bool = False
) -> tuple[SessionDescription, NegotiatedMedia]:
    """Our answer from 192.168.1.50:10000."""
    return make_answer(offer, caps, US, 10000, 42, 42, hold)


ASTERISK_OFFER = SessionDescription.parse(bodies.ASTERISK_OFFER)

SIPP_OFFER = SessionDescription.parse(bodies.SIPP_OFFER)

BARESIP_OFFER = SessionDescription.parse(bodies.BARESIP_OFFER)


# -- offers ------------------------------------------------------------------------


def test_offer() -> None:
    offer = make_offer(CAPS, US, 10000, 42, 42)
    assert bytes(offer) == crlf("""
v=0
o=deskphone 42 42 IN IP4 192.168.1.50
s=-
c=IN IP4 192.168.1.50
t=0 0
m=audio 10000 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv
""")
    assert SessionDescription.parse(bytes(offer)) == offer


def test_offer_ipv6() -> None:
    offer = make_offer(CAPS, "2001:db8::50", 10000, 1, 2)
    assert offer.origin.addrtype == "IP6"
    assert offer.connection == Connection("IN", "IP6", "2001:db8::50")
    assert b"\r\nc=IN IP6 2001:db8::50\r\n" in bytes(offer)


def test_offer_hold_with_other_caps() -> None:
    caps = MediaCaps(codecs=(PCMA,), telephone_event=False, ptime=30)
    offer = make_offer(caps, US, 10002, 7, 8, Direction.SENDONLY, username="alice")
    assert bytes(offer) == crlf("""
v=0
o=alice 7 8 IN IP4 192.168.1.50
s=-
c=IN IP4 192.168.1.50
t=0 0
m=audio 10002 RTP/AVP 8
a=rtpmap:8 PCMA/8000
a=ptime:30
a=sendonly
""")


def test_caps_need_an_audio_codec() -> None:
    with pytest.raises(ValueError) as info:
        MediaCaps(codecs=(TELEPHONE_EVENT,))
    assert str(info.value) == "MediaCaps needs at least one audio codec"


# -- answers to real offers ----------------------------------------------------------


def test_answer_asterisk() -> None:
    sdp, media = answer(ASTERISK_OFFER)
    assert bytes(sdp) == crlf("""
v=0
o=deskphone 42 42 IN IP4 192.168.1.50
s=-
c=IN IP4 192.168.1.50
t=0 0
m=audio 10000 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv
""")
    assert media == NegotiatedMedia(
        remote_address="192.168.1.20",
        remote_port=16384,
        local_port=10000,
        codec=PCMU,
        telephone_event_pt=101,
        ptime=20,
        direction=Direction.SENDRECV,
        rtcp_mux=False,
        remote_rtcp_port=16385,
    )
    assert media.active and media.sends and media.receives
    assert SessionDescription.parse(bytes(sdp)) == sdp


def test_answer_sipp_echoes_its_telephone_event() -> None:
    sdp, media = answer(SIPP_OFFER)
    (m,) = sdp.media
    assert m.codecs == (PCMU, PCMA, Codec(101, "telephone-event", 8000, fmtp="0-15"))
    assert (m.ptime, m.direction) == (20, Direction.SENDRECV)
    assert (media.remote_address, media.remote_port) == ("127.0.0.1", 6000)
    assert (media.codec, media.telephone_event_pt) == (PCMU, 101)


def test_answer_baresip_keeps_none_of_its_attributes() -> None:
    sdp, media = answer(BARESIP_OFFER)
    assert sdp.attributes == () and sdp.media[0].attributes == ()
    assert sdp.media[0].formats == ("0", "8", "101")
    assert (media.remote_port, media.codec, media.ptime) == (12068, PCMU, 20)


def test_answer_follows_the_offerers_order() -> None:
    """§6.1: the offerer's preference, not ours (we prefer PCMU)."""
    offer = offer_of("m=audio 5004 RTP/AVP 8 0 101", "a=rtpmap:101 telephone-event/8000")
    sdp, media = answer(offer)
    assert sdp.media[0].formats == ("8", "0", "101")
    assert media.codec == PCMA


def test_answer_drops_what_we_lack() -> None:
    offer = offer_of(
        "m=audio 5004 RTP/AVP 18 96 0 13 101",
        "a=rtpmap:96 opus/48000/2",
        "a=rtpmap:101 telephone-event/8000",
    )
    sdp, media = answer(offer)
    assert sdp.media[0].formats == ("0", "101")
    assert media.codec == PCMU


def test_answer_uses_the_offerers_payload_types() -> None:
    offer = offer_of(
        "m=audio 5004 RTP/AVP 98 96",
        "a=rtpmap:98 PCMU/8000",
        "a=rtpmap:96 telephone-event/8000",
        "a=fmtp:96 0-15",
    )
    sdp, media = answer(offer)
    assert sdp.media[0].formats == ("98", "96")
    assert (media.codec, media.telephone_event_pt) == (Codec(98, "PCMU", 8000), 96)


def test_telephone_event_clock_must_match_the_codec() -> None:
    """RFC 4733 §2.1."""
    offer = offer_of(
        "m=audio 5004 RTP/AVP 0 100 101",
        "a=rtpmap:100 telephone-event/48000",
        "a=rtpmap:101 telephone-event/8000",
    )
    sdp, media = answer(offer)
    assert sdp.media[0].formats == ("0", "101")
    assert media.telephone_event_pt == 101


def test_no_telephone_event_unless_both_want_it() -> None:
    sdp, media = answer(ASTERISK_OFFER, caps=MediaCaps(telephone_event=False))
    assert (sdp.media[0].formats, media.telephone_event_pt) == (("0", "8"), None)
    sdp, media = answer(offer_of("m=audio 5004 RTP/AVP 0 8"))
    assert (sdp.media[0].formats, media.telephone_event_pt) == (("0", "8"), None)


# -- no common codec -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            ["m=audio 5004 RTP/AVP 18", "a=rtpmap:18 G729/8000", "a=fmtp:18 annexb=no"],
            "no common codec: offered G729/8000; we support PCMU/8000, PCMA/8000",
        ),
        (  # telephone-event alone does not make a call; G.729 needs no rtpmap
            ["m=audio 5004 RTP/AVP 18 101", "a=rtpmap:101 telephone-event/8000"],
            "no common codec: offered G729/8000, telephone-event/8000; "
            "we support PCMU/8000, PCMA/8000",
        ),
        (
            ["m=audio 5004 RTP/AVP 101", "a=rtpmap:101 telephone-event/8000"],
            "no common codec: offered telephone-event/8000; we support PCMU/8000, PCMA/8000",
        ),
        (  # a dynamic type with no rtpmap is unknown
            ["m=audio 5004 RTP/AVP 96"],
            "no common codec: offered 96; we support PCMU/8000, PCMA/8000",
        ),
        (
            ["m=audio 5004 RTP/SAVP 0", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x"],
            "unsupported audio protocol: RTP/SAVP",
        ),
        (["m=video 5006 RTP/AVP 31"], "no audio stream in the offer"),
        ([], "no audio stream in the offer"),
    ],
)
def test_no_common_codec(lines: list[str], message: str) -> None:
    with pytest.raises(NoCommonCodec) as info:
        answer(offer_of(*lines))
    assert str(info.value) == message
    assert isinstance(info.value, SdpError)


def test_g729_only_with_our_g729_caps_is_fine() -> None:
    g729 = Codec(18, "G729", 8000)
    _, media = answer(offer_of("m=audio 5004 RTP/AVP 18"), caps=MediaCaps(codecs=(g729,)))
    assert media.codec == g729


# -- direction, hold -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "hold", "ours"),
    [
        ("sendrecv", False, Direction.SENDRECV),
        ("sendonly", False, Direction.RECVONLY),
        ("recvonly", False, Direction.SENDONLY),
        ("inactive", False, Direction.INACTIVE),
        ("sendrecv", True, Direction.SENDONLY),
        ("sendonly", True, Direction.INACTIVE),
        ("recvonly", True, Direction.SENDONLY),
        ("inactive", True, Direction.INACTIVE),
    ],
)
def test_direction_is_mirrored(offered: str, hold: bool, ours: Direction) -> None:
    offer = offer_of("m=audio 5004 RTP/AVP 0", f"a={offered}")
    sdp, media = answer(offer, hold=hold)
    assert sdp.media[0].direction is ours
    assert f"a={ours.value}\r\n".encode() in bytes(sdp)
    assert media.direction is ours
    assert media.active is (ours is not Direction.INACTIVE)


def test_session_level_direction_counts() -> None:
    offer = offer_of("a=sendonly", "m=audio 5004 RTP/AVP 0")
    _, media = answer(offer)
    assert media.direction is Direction.RECVONLY


@pytest.mark.parametrize(
    ("offered", "ours"),
    [
        ("sendrecv", Direction.RECVONLY),
        ("sendonly", Direction.RECVONLY),
        ("recvonly", Direction.INACTIVE),
    ],
)
def test_old_style_hold_address(offered: str, ours: Direction) -> None:
    """RFC 3264 §8.4: c=0.0.0.0 (RFC 2543 hold) means they will not receive."""
    offer = offer_of("m=audio 5004 RTP/AVP 0", f"a={offered}", connection="c=IN IP4 0.0.0.0")
    _, media = answer(offer)
    assert media.direction is ours
    assert media.remote_address == "0.0.0.0"
    assert not media.sends


# -- several streams, port 0 -------------------------------------------------------------


def test_video_is_refused_with_port_0() -> None:
    """The offer we sent baresip; baresip answered m=video 0 too."""
    offer = offer_of(
        "m=audio 6000 RTP/AVP 8 0 101",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
        "a=sendrecv",
        "m=video 6002 RTP/AVP 96",
        "a=rtpmap:96 H264/90000",
        "a=fmtp:96 profile-level-id=42e01f",
    )
    sdp, media = answer(offer)
    assert bytes(sdp).endswith(b"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n")
    audio, video = sdp.media
    assert (audio.port, audio.formats) == (10000, ("8", "0", "101"))
    assert (video.media, video.port, video.attributes) == ("video", 0, ())
    assert (media.remote_port, media.codec) == (6000, PCMA)
    assert SessionDescription.parse(bytes(sdp)) == sdp


def test_stream_order_is_kept() -> None:
    offer = offer_of("m=video 5006 RTP/AVP 31", "m=audio 5004 RTP/AVP 0", "m=image 5008 udptl t38")
    sdp, media = answer(offer)
    assert [(m.media, m.port) for m in sdp.media] == [("video", 0), ("audio", 10000), ("image", 0)]
    assert sdp.media[2].formats == ("t38",)
    assert media.remote_port == 5004


def test_offered_port_0_stays_port_0_and_the_next_audio_is_taken() -> None:
    offer = offer_of("m=audio 0 RTP/AVP 0", "m=audio 5006 RTP/AVP 8")
    sdp, media = answer(offer)
    assert [m.port for m in sdp.media] == [0, 10000]
    assert (media.remote_port, media.codec) == (5006, PCMA)


def test_only_one_audio_stream_is_taken() -> None:
    offer = offer_of("m=audio 5004 RTP/AVP 0", "m=audio 5006 RTP/AVP 8")
    sdp, media = answer(offer)
    assert [m.port for m in sdp.media] == [10000, 0]
    assert media.remote_port == 5004


def test_srtp_stream_refused_plain_one_taken() -> None:
    offer = offer_of("m=audio 5004 RTP/SAVP 0", "m=audio 5006 RTP/AVP 0")
    sdp, media = answer(offer)
    assert [(m.proto, m.port) for m in sdp.media] == [("RTP/SAVP", 0), ("RTP/AVP", 10000)]
    assert media.remote_port == 5006


def test_every_audio_stream_disabled() -> None:
    """§8.2: a stream removed with port 0 is answered with port 0; nothing flows."""
    offer = offer_of("m=audio 0 RTP/AVP 0 8 101", "a=rtpmap:101 telephone-event/8000")
    sdp, media = answer(offer)
    assert [m.port for m in sdp.media] == [0]
    assert sdp.media[0].formats == ("0", "8", "101")
    assert media.remote_port == 0 and media.local_port == 0
    assert media.direction is Direction.INACTIVE
    assert not media.active and not media.sends and not media.receives


# -- ptime, rtcp, addresses ----------------------------------------------------------------


def test_ptime_from_the_offer() -> None:
    sdp, media = answer(offer_of("m=audio 5004 RTP/AVP 0", "a=ptime:30"))
    assert (sdp.media[0].ptime, media.ptime) == (30, 30)


def test_ptime_capped_by_maxptime() -> None:
    sdp, media = answer(offer_of("m=audio 5004 RTP/AVP 0", "a=maxptime:10"))
    assert (sdp.media[0].ptime, media.ptime) == (10, 10)


def test_ptime_ours_when_not_offered() -> None:
    _, media = answer(offer_of("m=audio 5004 RTP/AVP 0"), caps=MediaCaps(ptime=40))
    assert media.ptime == 40


def test_rtcp_mux_accepted_when_offered() -> None:
    sdp, media = answer(offer_of("m=audio 5004 RTP/AVP 0", "a=rtcp:5005", "a=rtcp-mux"))
    assert sdp.media[0].rtcp_mux
    assert b"\r\na=rtcp-mux\r\n" in bytes(sdp)
    assert (media.rtcp_mux, media.remote_rtcp_port) == (True, 5004)


def test_rtcp_port_from_the_offer() -> None:
    sdp, media = answer(offer_of("m=audio 5004 RTP/AVP 0", "a=rtcp:5011"))
    assert not sdp.media[0].rtcp_mux
    assert (media.rtcp_mux, media.remote_rtcp_port) == (False, 5011)


def test_media_level_address_wins() -> None:
    offer = offer_of("m=audio 5004 RTP/AVP 0", "c=IN IP4 10.9.9.9")
    _, media = answer(offer)
    assert media.remote_address == "10.9.9.9"


def test_offer_without_address_is_an_error() -> None:
    offer = offer_of("m=audio 5004 RTP/AVP 0", connection="b=AS:64")
    with pytest.raises(SdpError) as info:
        answer(offer)
    assert str(info.value) == "offer m= line 1 has no c= line"
    assert not isinstance(info.value, NoCommonCodec)


def test_ipv6_offer_and_answer() -> None:
    offer = offer_of("m=audio 5004 RTP/AVP 0", connection="c=IN IP6 2001:db8::20")
    sdp, media = make_answer(offer, CAPS, "2001:db8::50", 10000, 1, 1)
    assert media.remote_address == "2001:db8::20"
    assert sdp.connection == Connection("IN", "IP6", "2001:db8::50")
    assert sdp.origin.addrtype == "IP6"


# -- accept_answer -----------------------------------------------------------------------

OUR_OFFER = make_offer(CAPS, US, 10000, 42, 42)


def answer_of(*lines: str, connection: str = "c=IN IP4 192.168.1.20") -> SessionDescription:
    return offer_of(*lines, connection=connection)


def test_accept_real_answer() -> None:
    """The 200 OK body from the SIP corpus (06_200_ok_sdp.sip)."""
    corpus_answer = parse("""
v=0
o=PiPhone 8000 8001 IN IP4 192.168.1.50
s=PiPhone
c=IN IP4 192.168.1.50
t=0 0
m=audio 10000 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=sendrecv
""")
    offer = make_offer(CAPS, "192.168.1.20", 16384, 1, 1)
    assert accept_answer(offer, corpus_answer) == NegotiatedMedia(
        remote_address="192.168.1.50",
        remote_port=10000,
        local_port=16384,
        codec=PCMU,
        telephone_event_pt=101,
        ptime=20,
        direction=Direction.SENDRECV,
        rtcp_mux=False,
        remote_rtcp_port=10001,
    )


def test_accept_baresip_answer() -> None:
    """baresip 1.0.0's captured 200 OK to an offer of PCMA, PCMU, events and H.264."""
    offer = offer_of(
        "m=audio 6000 RTP/AVP 8 0 101",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
        "a=sendrecv",
        "m=video 6002 RTP/AVP 96",
        "a=rtpmap:96 H264/90000",
    )
    baresip_answer = SessionDescription.parse(bodies.BARESIP_ANSWER)
    media = accept_answer(offer, baresip_answer)
    assert (media.remote_address, media.remote_port, media.local_port) == ("127.0.0.1", 11996, 6000)
    assert (media.codec, media.telephone_event_pt, media.direction) == (
        PCMA,
        101,
        Direction.SENDRECV,
    )


@pytest.mark.parametrize(
    ("answered", "ours"),
    [
        ("sendrecv", Direction.SENDRECV),
        ("recvonly", Direction.SENDONLY),
        ("sendonly", Direction.RECVONLY),
        ("inactive", Direction.INACTIVE),
    ],
)
def test_accept_answer_direction(answered: str, ours: Direction) -> None:
    media = accept_answer(OUR_OFFER, answer_of("m=audio 7000 RTP/AVP 0", f"a={answered}"))
    assert media.direction is ours


def test_accept_answer_to_our_hold() -> None:
    offer = make_offer(CAPS, US, 10000, 42, 43, Direction.SENDONLY)
    media = accept_answer(offer, answer_of("m=audio 7000 RTP/AVP 0", "a=recvonly"))
    assert media.direction is Direction.SENDONLY
    # an answer that ignores our hold still cannot make us receive
    media = accept_answer(offer, answer_of("m=audio 7000 RTP/AVP 0", "a=sendrecv"))
    assert media.direction is Direction.SENDONLY


def test_accept_answer_old_style_hold_address() -> None:
    sdp = answer_of("m=audio 7000 RTP/AVP 0", connection="c=IN IP4 0.0.0.0")
    media = accept_answer(OUR_OFFER, sdp)
    assert media.direction is Direction.RECVONLY


def test_accept_answer_with_other_payload_type_and_extra_formats() -> None:
    """§6.1: the answer may list formats we did not offer; we send the first we did,
    with the answer's payload type."""
    sdp = answer_of("m=audio 7000 RTP/AVP 18 97", "a=rtpmap:97 PCMA/8000", "a=ptime:30")
    media = accept_answer(OUR_OFFER, sdp)
    assert media.codec == Codec(97, "PCMA", 8000)
    assert media.ptime == 30
    assert media.telephone_event_pt is None


def test_accept_answer_ptime_falls_back_to_ours() -> None:
    offer = make_offer(MediaCaps(ptime=30), US, 10000, 1, 1)
    assert accept_answer(offer, answer_of("m=audio 7000 RTP/AVP 0")).ptime == 30


def test_accept_answer_refusing_our_audio() -> None:
    media = accept_answer(OUR_OFFER, answer_of("m=audio 0 RTP/AVP 0"))
    assert (media.remote_port, media.local_port, media.direction) == (0, 10000, Direction.INACTIVE)
    assert not media.active


def test_accept_answer_rtcp_mux_only_if_we_offered_it() -> None:
    media = accept_answer(OUR_OFFER, answer_of("m=audio 7000 RTP/AVP 0", "a=rtcp-mux"))
    assert (media.rtcp_mux, media.remote_rtcp_port) == (False, 7001)


@pytest.mark.parametrize(
    ("sdp", "message"),
    [
        (
            answer_of("m=audio 7000 RTP/AVP 0", "m=video 0 RTP/AVP 31"),
            "answer has 2 m= lines, the offer had 1",
        ),
        (answer_of(), "answer has 0 m= lines, the offer had 1"),
        (
            answer_of("m=video 7000 RTP/AVP 31"),
            "answer m= line 1 is 'video', the offer's is 'audio'",
        ),
        (
            answer_of("m=audio 7000 RTP/AVP 18 101", "a=rtpmap:101 telephone-event/8000"),
            "answer m= line 1 has no codec from the offer: offered PCMU/8000, PCMA/8000; "
            "answered G729/8000, telephone-event/8000",
        ),
        (
            answer_of("m=audio 7000 RTP/AVP 96"),
            "answer m= line 1 has no codec from the offer: offered PCMU/8000, PCMA/8000; "
            "answered 96",
        ),
        (
            answer_of("m=audio 7000 RTP/AVP 0", connection="b=AS:64"),
            "answer m= line 1 has no c= line",
        ),
    ],
)
def test_accept_bad_answer(sdp: SessionDescription, message: str) -> None:
    with pytest.raises(SdpError) as info:
        accept_answer(OUR_OFFER, sdp)
    assert str(info.value) == message


# -- both sides: offer, answer, accept ------------------------------------------------------

POOL = [
    PCMU,
    PCMA,
    Codec(9, "G722", 8000),
    Codec(18, "G729", 8000, fmtp="annexb=no"),
    Codec(96, "opus", 48000, 2),
    Codec(97, "iLBC", 8000, fmtp="mode=30"),
]
CAPS_STRATEGY = st.builds(
    MediaCaps,
    codecs=st.lists(st.sampled_from(POOL), min_size=1, unique=True).map(tuple),
    telephone_event=st.booleans(),
    ptime=st.sampled_from([10, 20, 30, 60]),
)


@given(
    CAPS_STRATEGY,
    CAPS_STRATEGY,
    st.sampled_from(Direction),
    st.booleans(),
)
def test_both_sides_agree(
    offerer: MediaCaps, answerer: MediaCaps, direction: Direction, hold: bool
) -> None:
    """Two phones joined by a fake link: offer, answer from bytes, accept from bytes."""
    offer = make_offer(offerer, "10.0.0.1", 4000, 1, 1, direction)
    common = [c for c in offerer.codecs if answerer.supports(c)]
    received_offer = SessionDescription.parse(bytes(offer))
    if not common:
        with pytest.raises(NoCommonCodec):
            make_answer(received_offer, answerer, "10.0.0.2", 5000, 2, 2, hold)
        return
    answer, at_answerer = make_answer(received_offer, answerer, "10.0.0.2", 5000, 2, 2, hold)
    at_offerer = accept_answer(offer, SessionDescription.parse(bytes(answer)))

    assert at_answerer.codec == common[0]
    assert at_offerer.codec == at_answerer.codec
    expected = direction.reverse()
    if hold:
        expected = Direction.from_flags(send=expected.sends, recv=False)
    assert at_answerer.direction is expected
    assert at_offerer.direction is at_answerer.direction.reverse()
    events = offerer.telephone_event and answerer.telephone_event and common[0].clock_rate == 8000
    assert at_answerer.telephone_event_pt == at_offerer.telephone_event_pt
    assert at_offerer.telephone_event_pt == (101 if events else None)
    assert at_offerer.ptime == at_answerer.ptime == offerer.ptime
    assert (at_offerer.remote_address, at_offerer.remote_port) == ("10.0.0.2", 5000)
    assert (at_answerer.remote_address, at_answerer.remote_port) == ("10.0.0.1", 4000)
    assert (at_offerer.local_port, at_answerer.local_port) == (4000, 5000)
