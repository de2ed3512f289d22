"""SDP parse/serialise (RFC 4566): real bodies, exact errors, hypothesis round trips."""

from __future__ import annotations

import string
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sdp_bodies import ASTERISK_OFFER, BARESIP_ANSWER, BARESIP_OFFER, SIPP_OFFER, crlf

from deskphone.sdp import (
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

# Newer baresip (and most other UAs) with RTCP on a named port and b=AS.
# Written by hand in baresip's layout; not a capture.
BARESIP_STYLE_RTCP = crlf("""
v=0
o=- 1895453637 2121064640 IN IP4 10.0.0.2
s=-
c=IN IP4 10.0.0.2
t=0 0
a=tool:baresip 3.10.1
m=audio 11962 RTP/AVP 96 0 8 101
b=AS:128
a=rtpmap:96 opus/48000/2
a=fmtp:96 stereo=1;sprop-stereo=1
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=rtcp:11963
a=sendrecv
a=label:1
a=ssrc:1938296214 cname:sip:alice@example.com
a=rtcp-rsize
a=ptime:20
""")


# -- real bodies -------------------------------------------------------------------


def test_asterisk_offer_parses() -> None:
    sd = SessionDescription.parse(ASTERISK_OFFER)
    assert sd.origin == Origin("-", 1234567890, 1234567890, "IN", "IP4", "192.168.1.20")
    assert sd.session_name == "Asterisk"
    assert sd.connection == Connection("IN", "IP4", "192.168.1.20")
    assert sd.timing == "0 0"
    assert sd.direction is None
    (m,) = sd.media
    assert (m.media, m.port, m.proto, m.formats) == ("audio", 16384, "RTP/AVP", ("0", "8", "101"))
    assert m.codecs == (PCMU, PCMA, Codec(101, "telephone-event", 8000, fmtp="0-16"))
    assert (m.ptime, m.maxptime, m.direction) == (20, 150, Direction.SENDRECV)
    assert m.connection is None and not m.rtcp_mux and m.rtcp_port is None
    assert m.attributes == () and m.extra_lines == ()
    assert sd.media_address(m) == "192.168.1.20"
    assert sd.media_direction(m) is Direction.SENDRECV


@pytest.mark.parametrize("body", [ASTERISK_OFFER, SIPP_OFFER])
def test_real_bodies_in_canonical_order_serialise_byte_for_byte(body: bytes) -> None:
    sd = SessionDescription.parse(body)
    assert bytes(sd) == body
    assert SessionDescription.parse(bytes(sd)) == sd


def test_sipp_offer() -> None:
    sd = SessionDescription.parse(SIPP_OFFER)
    assert sd.origin.username == "sipp-uac"
    assert sd.origin.session_version == 2353687637
    (m,) = sd.media
    assert m.codecs[2] == Codec(101, "telephone-event", 8000, fmtp="0-15")
    assert m.ptime is None and m.maxptime is None


@pytest.mark.parametrize("body", [BARESIP_OFFER, BARESIP_ANSWER, BARESIP_STYLE_RTCP])
def test_baresip_bodies_lose_no_line(body: bytes) -> None:
    sd = SessionDescription.parse(body)
    out = bytes(sd)
    assert SessionDescription.parse(out) == sd
    # canonical order may move a line (ptime before the direction), never drop one
    assert sorted(out.split(b"\r\n")) == sorted(body.split(b"\r\n"))


def test_baresip_offer_keeps_unknown_attributes() -> None:
    sd = SessionDescription.parse(BARESIP_OFFER)
    assert sd.attributes == (("tool", "baresip 1.0.0"),)
    (m,) = sd.media
    assert m.attributes == (
        ("label", "1"),
        ("rtcp-rsize", None),
        ("ssrc", "3016373859 cname:sip:2390@127.0.0.1:5390"),
        ("minptime", "20"),
    )
    assert m.ptime == 20 and m.direction is Direction.SENDRECV


def test_baresip_style_rtcp_bandwidth_and_opus() -> None:
    (m,) = SessionDescription.parse(BARESIP_STYLE_RTCP).media
    assert m.rtcp_port == 11963 and m.rtcp_connection is None
    assert m.bandwidth == ("AS:128",)
    opus = m.codecs[0]
    assert opus == Codec(96, "opus", 48000, 2, "stereo=1;sprop-stereo=1")
    assert str(opus) == "opus/48000/2"


def test_baresip_answer_refused_video_has_no_codec() -> None:
    sd = SessionDescription.parse(BARESIP_ANSWER)
    audio, video = sd.media
    assert [c.encoding for c in audio.codecs] == ["PCMA", "PCMU", "telephone-event"]
    # PT 0 is PCMU only in an audio section (RFC 3551 §6)
    assert (video.port, video.formats, video.codecs) == (0, ("0",), ())


# -- line ends, encodings --------------------------------------------------------------


def test_lf_line_ends_and_trailing_blank_lines() -> None:
    lf = ASTERISK_OFFER.replace(b"\r\n", b"\n") + b"\n\n"
    assert SessionDescription.parse(lf) == SessionDescription.parse(ASTERISK_OFFER)


def test_trailing_blank_crlf_lines_ignored() -> None:
    sd = SessionDescription.parse(SIPP_OFFER + b"\r\n\r\n")
    assert bytes(sd) == SIPP_OFFER


def test_parse_accepts_str() -> None:
    assert SessionDescription.parse(SIPP_OFFER.decode()) == SessionDescription.parse(SIPP_OFFER)


def test_latin1_session_name_is_read_not_refused() -> None:
    body = b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=T\xe9l\xe9phone\r\nt=0 0\r\n"
    sd = SessionDescription.parse(body)
    assert sd.session_name == "Téléphone"
    assert bytes(sd) == "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=Téléphone\r\nt=0 0\r\n".encode()


def test_missing_s_and_t_get_defaults() -> None:
    sd = SessionDescription.parse(b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\n")
    assert (sd.session_name, sd.timing, sd.media) == ("-", "0 0", ())
    assert bytes(sd) == b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\n"


# -- connection, IPv6, direction -----------------------------------------------------

IPV6_OFFER = crlf("""
v=0
o=alice 2890844526 2890844526 IN IP6 2001:db8::10
s=-
c=IN IP6 2001:db8::10
t=0 0
m=audio 49170 RTP/AVP 0
a=rtpmap:0 PCMU/8000
""")


def test_ipv6_connection() -> None:
    sd = SessionDescription.parse(IPV6_OFFER)
    assert sd.connection == Connection("IN", "IP6", "2001:db8::10")
    assert sd.origin.addrtype == "IP6" and sd.origin.address == "2001:db8::10"
    assert sd.media_address(sd.media[0]) == "2001:db8::10"
    assert bytes(sd) == IPV6_OFFER


def test_connection_for_address() -> None:
    assert Connection.for_address("192.0.2.1") == Connection("IN", "IP4", "192.0.2.1")
    assert Connection.for_address("2001:db8::1") == Connection("IN", "IP6", "2001:db8::1")
    assert str(Connection.for_address("2001:db8::1")) == "IN IP6 2001:db8::1"


TWO_STREAMS = crlf("""
v=0
o=- 1 1 IN IP4 10.0.0.1
s=-
c=IN IP4 10.0.0.1
t=0 0
a=recvonly
m=audio 5004 RTP/AVP 0
c=IN IP4 10.0.0.2
a=rtpmap:0 PCMU/8000
a=sendonly
m=audio 5006 RTP/AVP 8
a=rtpmap:8 PCMA/8000
""")


def test_media_level_overrides_session_level() -> None:
    sd = SessionDescription.parse(TWO_STREAMS)
    first, second = sd.media
    assert sd.direction is Direction.RECVONLY
    assert sd.media_direction(first) is Direction.SENDONLY
    assert sd.media_direction(second) is Direction.RECVONLY
    assert sd.media_address(first) == "10.0.0.2"
    assert sd.media_address(second) == "10.0.0.1"
    assert sd.media_connection(first) == Connection("IN", "IP4", "10.0.0.2")
    assert bytes(sd) == TWO_STREAMS


def test_no_direction_anywhere_means_sendrecv() -> None:
    sd = SessionDescription.parse(SIPP_OFFER.replace(b"a=sendrecv\r\n", b""))
    assert sd.media[0].direction is None
    assert sd.media_direction(sd.media[0]) is Direction.SENDRECV


def test_no_connection_anywhere() -> None:
    body = b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 5004 RTP/AVP 0\r\n"
    sd = SessionDescription.parse(body)
    assert sd.media_address(sd.media[0]) is None


@pytest.mark.parametrize(
    ("direction", "reverse"),
    [
        (Direction.SENDRECV, Direction.SENDRECV),
        (Direction.SENDONLY, Direction.RECVONLY),
        (Direction.RECVONLY, Direction.SENDONLY),
        (Direction.INACTIVE, Direction.INACTIVE),
    ],
)
def test_direction_reverse(direction: Direction, reverse: Direction) -> None:
    assert direction.reverse() is reverse
    assert reverse.reverse() is direction
    assert Direction.from_flags(send=direction.sends, recv=direction.receives) is direction


# -- codecs --------------------------------------------------------------------------


def media_of(m_line: str, *attributes: str) -> MediaDescription:
    body = "\n".join(["v=0", "o=- 1 1 IN IP4 10.0.0.1", "s=-", "t=0 0", m_line, *attributes])
    return SessionDescription.parse(body).media[0]


def test_static_payload_types_need_no_rtpmap() -> None:
    m = media_of("m=audio 5004 RTP/AVP 0 8 18 3 13 9", "a=fmtp:18 annexb=no")
    assert [str(c) for c in m.codecs] == [
        "PCMU/8000",
        "PCMA/8000",
        "G729/8000",
        "GSM/8000",
        "CN/8000",
        "G722/8000",
    ]
    assert m.codec(18) == Codec(18, "G729", 8000, fmtp="annexb=no")
    assert m.attributes == ()


def test_static_table_is_rfc_3551() -> None:
    audio = STATIC_PAYLOAD_TYPES["audio"]
    assert sorted(audio) == [0, *range(3, 19)]
    assert audio[10] == Codec(10, "L16", 44100, 2)
    assert sorted(STATIC_PAYLOAD_TYPES["video"]) == [25, 26, 28, 31, 32, 33, 34]
    assert media_of("m=video 5006 RTP/AVP 31 34").codecs == (
        Codec(31, "H261", 90000),
        Codec(34, "H263", 90000),
    )


def test_rtpmap_overrides_the_static_table_and_keeps_case() -> None:
    m = media_of("m=audio 5004 RTP/AVP 0", "a=rtpmap:0 pcmu/8000")
    assert m.codecs == (Codec(0, "pcmu", 8000),)
    assert m.codecs[0].matches(PCMU)
    assert not m.codecs[0].matches(PCMA)


def test_dynamic_payload_type_without_rtpmap_has_no_codec() -> None:
    m = media_of("m=audio 5004 RTP/AVP 96 0", "a=fmtp:96 mode=30")
    assert m.formats == ("96", "0")
    assert m.codecs == (PCMU,)
    assert m.attributes == (("fmtp", "96 mode=30"),)


def test_fmtp_before_rtpmap() -> None:
    m = media_of("m=audio 5004 RTP/AVP 97", "a=fmtp:97 mode=20", "a=rtpmap:97 iLBC/8000")
    assert m.codecs == (Codec(97, "iLBC", 8000, fmtp="mode=20"),)


def test_rtpmap_for_unlisted_payload_type_is_kept_verbatim() -> None:
    m = media_of("m=audio 5004 RTP/AVP 0", "a=rtpmap:97 iLBC/8000", "a=rtpmap:x nonsense")
    assert m.codecs == (PCMU,)
    assert m.attributes == (("rtpmap", "97 iLBC/8000"), ("rtpmap", "x nonsense"))


def test_repeated_attributes_first_wins_rest_kept() -> None:
    m = media_of(
        "m=audio 5004 RTP/AVP 0",
        "a=sendonly",
        "a=recvonly",
        "a=ptime:30",
        "a=ptime:20",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:0 PCMA/8000",
    )
    assert (m.direction, m.ptime, m.codecs) == (Direction.SENDONLY, 30, (PCMU,))
    assert m.attributes == (("recvonly", None), ("ptime", "20"), ("rtpmap", "0 PCMA/8000"))


def test_non_numeric_ptime_is_kept_not_refused() -> None:
    m = media_of("m=audio 5004 RTP/AVP 0", "a=ptime:20.5", "a=maxptime: 40 ")
    assert (m.ptime, m.maxptime) == (None, 40)
    assert m.attributes == (("ptime", "20.5"),)


def test_rtcp_attribute_forms() -> None:
    m = media_of("m=audio 5004 RTP/AVP 0", "a=rtcp:9 IN IP4 0.0.0.0", "a=rtcp-mux")
    assert (m.rtcp_port, m.rtcp_connection, m.rtcp_mux) == (
        9,
        Connection("IN", "IP4", "0.0.0.0"),
        True,
    )
    m = media_of("m=audio 5004 RTP/AVP 0", "a=rtcp:nope")
    assert m.rtcp_port is None and m.attributes == (("rtcp", "nope"),)


def test_port_count() -> None:
    m = media_of("m=audio 49170/2 RTP/AVP 0")
    assert (m.port, m.port_count) == (49170, 2)


def test_non_rtp_media_keeps_formats() -> None:
    m = media_of("m=image 5008 udptl t38", "a=T38FaxVersion:0")
    assert (m.formats, m.codecs) == (("t38",), ())
    assert m.attributes == (("T38FaxVersion", "0"),)


def test_codec_helpers() -> None:
    assert str(PCMU) == "PCMU/8000"
    assert Codec(101, "Telephone-Event", 8000).is_telephone_event
    assert not PCMA.is_telephone_event


def test_media_description_takes_formats_from_codecs() -> None:
    m = MediaDescription("audio", 5004, codecs=(PCMA, PCMU))
    assert m.formats == ("8", "0")


def test_media_description_refuses_codecs_the_formats_do_not_list() -> None:
    with pytest.raises(ValueError) as info:
        MediaDescription("audio", 5004, formats=("8",), codecs=(PCMU,))
    assert str(info.value) == "codec 0 PCMU/8000 is not in the m= formats '8' (or is out of order)"
    with pytest.raises(ValueError):
        MediaDescription("audio", 5004, formats=("0", "8"), codecs=(PCMA, PCMU))


# -- unknown lines ---------------------------------------------------------------------

EVERYTHING = crlf("""
v=0
o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5
s=SDP Seminar
i=A Seminar on the session description protocol
u=http://www.example.com/seminars/sdp.pdf
e=j.doe@example.com (Jane Doe)
p=+1 617 555-6011
c=IN IP4 224.2.17.12/127
b=CT:128
t=2873397496 2873404696
r=604800 3600 0 90000
t=2873397496 2873404697
z=2882844526 -1h 2898848070 0
k=prompt
x=an unknown line type
a=recvonly
a=charset:UTF-8
m=audio 49170 RTP/AVP 0
i=the audio
c=IN IP4 224.2.17.13/127
b=AS:64
k=clear:secret
a=rtpmap:0 PCMU/8000
a=ptime:20
a=rtcp-rsize
m=video 51372 RTP/AVP 99
a=rtpmap:99 h263-1998/90000
""")


def test_unknown_and_rare_lines_round_trip_byte_for_byte() -> None:
    sd = SessionDescription.parse(EVERYTHING)
    assert sd.information == "A Seminar on the session description protocol"
    assert sd.bandwidth == ("CT:128",)
    assert sd.timing == "2873397496 2873404696"
    assert sd.extra_lines == (
        ("u", "http://www.example.com/seminars/sdp.pdf"),
        ("e", "j.doe@example.com (Jane Doe)"),
        ("p", "+1 617 555-6011"),
        ("r", "604800 3600 0 90000"),
        ("t", "2873397496 2873404697"),
        ("z", "2882844526 -1h 2898848070 0"),
        ("k", "prompt"),
        ("x", "an unknown line type"),
    )
    assert sd.attributes == (("charset", "UTF-8"),)
    audio = sd.media[0]
    assert audio.extra_lines == (("i", "the audio"), ("k", "clear:secret"))
    assert audio.bandwidth == ("AS:64",)
    assert audio.connection == Connection("IN", "IP4", "224.2.17.13/127")
    assert bytes(sd) == EVERYTHING


def test_out_of_order_lines_are_put_in_order() -> None:
    body = crlf("""
v=0
t=0 0
k=prompt
s=-
o=- 1 1 IN IP4 10.0.0.1
u=http://example.com
""")
    sd = SessionDescription.parse(body)
    assert bytes(sd) == crlf("""
v=0
o=- 1 1 IN IP4 10.0.0.1
s=-
u=http://example.com
t=0 0
k=prompt
""")


# -- errors ----------------------------------------------------------------------------

HEAD = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\n"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "SDP has no v= line"),
        ("\r\n\r\n", "SDP has no v= line"),
        ("o=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\n", "SDP has no v= line"),
        ("o=- 1 1 IN IP4 10.0.0.1\r\nv=0\r\n", "SDP line 2: v= must be the first line"),
        (
            "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ngarbage\r\n",
            "SDP line 3: expected 'type=value', got 'garbage'",
        ),
        ("V=0\r\n", "SDP line 1: expected 'type=value', got 'V=0'"),
        (HEAD + " a=sendrecv\r\n", "SDP line 5: expected 'type=value', got ' a=sendrecv'"),
        (HEAD + "a\r\n", "SDP line 5: expected 'type=value', got 'a'"),
        (HEAD + "ab=cd\r\n", "SDP line 5: expected 'type=value', got 'ab=cd'"),
        ("v=1\r\n", "SDP line 1: unsupported version '1' (only v=0)"),
        ("v=0\r\ns=-\r\nt=0 0\r\n", "SDP has no o= line"),
        (
            "v=0\r\no=- 1 IN IP4 10.0.0.1\r\n",
            (
                "SDP line 2: expected 'o=<username> <sess-id> <sess-version> <nettype> <addrtype>"
                " <address>', got 'o=- 1 IN IP4 10.0.0.1'"
            ),
        ),
        (
            "v=0\r\no=- abc 1 IN IP4 10.0.0.1\r\n",
            "SDP line 2: o= session id is not a number: 'abc'",
        ),
        (
            "v=0\r\no=- 1 -2 IN IP4 10.0.0.1\r\n",
            "SDP line 2: o= session version is not a number: '-2'",
        ),
        (
            HEAD + "c=IN IP4\r\n",
            "SDP line 5: expected 'c=<nettype> <addrtype> <address>', got 'c=IN IP4'",
        ),
        (
            HEAD + "m=audio 5004 RTP/AVP 0\r\nc=IN\r\n",
            "SDP line 6: expected 'c=<nettype> <addrtype> <address>', got 'c=IN'",
        ),
        (
            HEAD + "m=audio\r\n",
            "SDP line 5: expected 'm=<media> <port> <proto> <fmt> ...', got 'm=audio'",
        ),
        (HEAD + "m=audio 65536 RTP/AVP 0\r\n", "SDP line 5: m= port is not in 0-65535: '65536'"),
        (HEAD + "m=audio five RTP/AVP 0\r\n", "SDP line 5: m= port is not a number: 'five'"),
        (
            HEAD + "m=audio 5004 RTP/AVP 96\r\na=rtpmap:96 opus\r\n",
            (
                "SDP line 6: expected 'a=rtpmap:<payload type> <encoding>/<clock rate>"
                "[/<channels>]', got 'a=rtpmap:96 opus'"
            ),
        ),
        (
            HEAD + "m=audio 5004 RTP/AVP 96\r\na=rtpmap:96 opus/fast\r\n",
            (
                "SDP line 6: expected 'a=rtpmap:<payload type> <encoding>/<clock rate>"
                "[/<channels>]', got 'a=rtpmap:96 opus/fast'"
            ),
        ),
    ],
)
def test_malformed_sdp(body: str, message: str) -> None:
    with pytest.raises(SdpError) as info:
        SessionDescription.parse(body.encode())
    assert str(info.value) == message


def test_first_bad_line_is_reported() -> None:
    body = "v=0\r\no=- x 1 IN IP4 10.0.0.1\r\ns=-\r\nm=audio\r\n"
    with pytest.raises(SdpError) as info:
        SessionDescription.parse(body)
    assert str(info.value) == "SDP line 2: o= session id is not a number: 'x'"


def test_sdp_error_is_a_value_error() -> None:
    assert issubclass(SdpError, ValueError)


# -- hypothesis: round trip over generated descriptions ------------------------------

TOKEN = st.text(string.ascii_letters + string.digits + "-._+*#!~", min_size=1, max_size=10)
TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=16)
MEDIA_RESERVED = {
    "rtpmap", "fmtp", "ptime", "maxptime", "rtcp", "rtcp-mux",
    "sendrecv", "sendonly", "recvonly", "inactive",
}  # fmt: skip
SESSION_RESERVED = {"sendrecv", "sendonly", "recvonly", "inactive"}
SESSION_SLOTS = "vosiuepcbtzka"


def attributes(reserved: set[str]) -> st.SearchStrategy[tuple[tuple[str, str | None], ...]]:
    name = TOKEN.filter(lambda n: n not in reserved)
    return st.lists(st.tuples(name, st.none() | TEXT), max_size=4).map(tuple)


def connections() -> st.SearchStrategy[Connection]:
    return st.builds(Connection, TOKEN, TOKEN, TOKEN)


@st.composite
def codecs_for(draw: st.DrawFn, pt: int) -> Codec:
    return Codec(
        pt,
        draw(TOKEN),
        draw(st.integers(1, 10**6)),
        draw(st.integers(1, 8)),
        draw(st.none() | TEXT),
    )


@st.composite
def media_descriptions(draw: st.DrawFn) -> MediaDescription:
    media = draw(st.sampled_from(["audio", "video", "image"]) | TOKEN)
    static = STATIC_PAYLOAD_TYPES.get(media, {})
    codec_by_format: dict[str, Codec] = {}
    formats: list[str] = []
    for pt in draw(st.lists(st.integers(0, 127), unique=True, max_size=5)):
        if pt in static and draw(st.booleans()):
            codec_by_format[str(pt)] = replace(static[pt], fmtp=draw(st.none() | TEXT))
        elif pt in static or draw(st.booleans()):
            codec_by_format[str(pt)] = draw(codecs_for(pt))
        formats.append(str(pt))  # a dynamic type with no rtpmap has no codec
    formats += draw(st.lists(TOKEN.filter(lambda f: not f.isdigit()), max_size=2))
    formats = draw(st.permutations(formats))
    rtcp_port = draw(st.none() | st.integers(0, 65535))
    extras = draw(st.lists(st.tuples(st.sampled_from("ikxyzsotuv"), TEXT), max_size=3))
    return MediaDescription(
        media=media,
        port=draw(st.integers(0, 65535)),
        proto=draw(st.sampled_from(["RTP/AVP", "RTP/SAVP", "udptl"]) | TOKEN),
        formats=tuple(formats),
        connection=draw(st.none() | connections()),
        codecs=tuple(codec_by_format[f] for f in formats if f in codec_by_format),
        direction=draw(st.none() | st.sampled_from(Direction)),
        ptime=draw(st.none() | st.integers(0, 1000)),
        maxptime=draw(st.none() | st.integers(0, 1000)),
        rtcp_mux=draw(st.booleans()),
        rtcp_port=rtcp_port,
        rtcp_connection=draw(st.none() | connections()) if rtcp_port is not None else None,
        port_count=draw(st.none() | st.integers(1, 16)),
        bandwidth=tuple(draw(st.lists(TEXT, max_size=2))),
        attributes=draw(attributes(MEDIA_RESERVED)),
        # i= first, the rest before the a= lines (RFC 4566 §5 order)
        extra_lines=tuple(sorted(extras, key=lambda line: line[0] != "i")),
    )


@st.composite
def session_descriptions(draw: st.DrawFn) -> SessionDescription:
    def slot(kind: str) -> int:
        kind = "t" if kind == "r" else kind
        return SESSION_SLOTS.index(kind if kind in SESSION_SLOTS else "k")

    extras = draw(st.lists(st.tuples(st.sampled_from("vostuepzrkxyw"), TEXT), max_size=4))
    return SessionDescription(
        origin=Origin(
            draw(TOKEN),
            draw(st.integers(0, 2**64)),
            draw(st.integers(0, 2**64)),
            draw(TOKEN),
            draw(TOKEN),
            draw(TOKEN),
        ),
        session_name=draw(TEXT),
        media=tuple(draw(st.lists(media_descriptions(), max_size=3))),
        connection=draw(st.none() | connections()),
        direction=draw(st.none() | st.sampled_from(Direction)),
        information=draw(st.none() | TEXT),
        timing=draw(TEXT),
        bandwidth=tuple(draw(st.lists(TEXT, max_size=2))),
        attributes=draw(attributes(SESSION_RESERVED)),
        extra_lines=tuple(sorted(extras, key=lambda line: slot(line[0]))),
    )


@given(session_descriptions())
def test_round_trip(sd: SessionDescription) -> None:
    data = bytes(sd)
    assert SessionDescription.parse(data) == sd
    assert SessionDescription.parse(data.replace(b"\r\n", b"\n")) == sd


# -- hypothesis: fuzzing -------------------------------------------------------------


@given(st.binary(max_size=400))
def test_fuzz_bytes_parse_or_sdp_error(data: bytes) -> None:
    try:
        SessionDescription.parse(b"v=0\r\n" + data)
        SessionDescription.parse(data)
    except SdpError:
        pass


ATTRIBUTE_NAMES = [*sorted(MEDIA_RESERVED), " sendrecv", "label", ""]
ATTRIBUTE_VALUES = [
    "0 PCMU/8000", "8 PCMA/8000", "96 opus/48000/2", "96 opus/48000/1", "101 0-16", "101",
    "96 x", "20", " 30 ", "-1", "abc", "5005", "9 IN IP4 0.0.0.0", "9 IN", "", "200 foo/1",
]  # fmt: skip
FORMATS = ["0", "8", "18", "96", "101", "127", "128", "007", "t38", "*"]
LINE = st.one_of(
    st.builds(
        lambda n, v: f"a={n}" if v is None else f"a={n}:{v}",
        st.sampled_from(ATTRIBUTE_NAMES) | TOKEN,
        st.none() | st.sampled_from(ATTRIBUTE_VALUES) | TEXT,
    ),
    st.builds(
        lambda media, port, proto, formats: " ".join([f"m={media}", port, proto, *formats]),
        st.sampled_from(["audio", "video", "image"]),
        st.sampled_from(["0", "5004", "5004/2", "65535", "70000", "x"]),
        st.sampled_from(["RTP/AVP", "udptl"]),
        st.lists(st.sampled_from(FORMATS), max_size=4),
    ),
    st.sampled_from(["c=IN IP4 10.0.0.1", "c=IN IP6 ::1", "c=IN IP4 0.0.0.0", "c=bad", "t=0 0"]),
    st.sampled_from(["o=- 1 1 IN IP4 10.0.0.1", "s=-", "i=info", "b=AS:64", "v=0", ""]),
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from("vosicbtamkzruxe"), TEXT),
    TEXT,
)


@given(st.lists(LINE, max_size=14), st.sampled_from(["\r\n", "\n"]), st.booleans())
def test_fuzz_lines_parse_or_sdp_error_and_canonical_form_is_stable(
    lines: list[str], eol: str, with_head: bool
) -> None:
    head = ["v=0", "o=- 1 1 IN IP4 10.0.0.1"] if with_head else []
    try:
        sd = SessionDescription.parse(eol.join([*head, *lines]))
    except SdpError:
        return
    data = bytes(sd)
    assert SessionDescription.parse(data) == sd
    assert bytes(SessionDescription.parse(data)) == data
