"""Every number a peer sends is bounded before int() (issue 9, "Hardening").

Python's int() refuses more than 4,300 digits with a ValueError, '²' passes
str.isdigit() and fails int(), and '٣' passes both. The invariant (h11's fuzz
harness): the SIP parser parses or raises RemoteProtocolError, the SDP parser
parses or raises SdpError, never anything else, whatever is put in a numeric
field; and what is accepted is plain ASCII digits, within the field's range.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deskphone.sdp import SdpError, SessionDescription
from deskphone.sip.errors import RemoteProtocolError
from deskphone.sip.message import Request, Response, StreamFramer, parse_message
from deskphone.sip.uri import SipUri, parse_uint

# ---------------------------------------------------------------- number-shaped text

# characters str.isdigit() says yes to that are no ASCII digit: Arabic-Indic
# three (int() reads it), superscript two (int() refuses it), fullwidth five,
# NKo zero, Devanagari one
UNICODE_DIGITS = "٣²５߀१"
EDGES = ["", "0", "00", "-0", "-1", "+1", "+0", " 1", "1 ", "\t1", "1\t", "1 2", "1.5", "1e3",
         "0x10", "1_000", "٣", "²", "５", "1²", "٣٣٣", "255", "256", "65535", "65536", "127",
         "128", "4294967295", "4294967296", "99999999999", "9" * 4300, "9" * 4301,
         "0" * 5000 + "1", "0" * 5000, "1" + "0" * 5000, "-" + "9" * 5000, "+" + "9" * 5000]


def _huge(digit: str, n: int) -> str:
    return digit * n


numbers = st.one_of(
    st.sampled_from(EDGES),
    st.integers(0, 2**80).map(str),
    st.integers(-(2**40), -1).map(str),
    st.builds(_huge, st.sampled_from("0123456789"), st.integers(4000, 6000)),
    st.builds(lambda zeros, n: "0" * zeros + str(n), st.integers(1, 5000), st.integers(0, 2**40)),
    st.builds(lambda sign, n, pad: f"{sign}{n}{pad}", st.sampled_from(["+", "-", " ", "\t", ""]),
              st.integers(0, 2**70), st.sampled_from(["", " ", "\t", "+", "-"])),
    st.text(st.sampled_from("0123456789+- \t." + UNICODE_DIGITS), max_size=12),
)


def plain_digits(text: str) -> str | None:
    """The ASCII digits a field may hold after its LWS, or None if it is not that."""
    core = text.strip(" \t")
    return core if core.isascii() and core.isdigit() else None


def first_word(text: str) -> str:
    """What a parser that splits at blanks reads as the field."""
    words = text.split()
    return words[0] if words else text


# ---------------------------------------------------------------- SIP fields

HEAD = ("Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\nTo: <sip:a@b.example.com>\r\n"
        "From: <sip:a@b.example.com>;tag=1\r\nCall-ID: c1\r\n")


def request(*headers: str, start: str = "OPTIONS sip:a@b.example.com SIP/2.0",
            cseq: str = "1 OPTIONS", body: str = "") -> bytes:
    lines = [start, HEAD + f"CSeq: {cseq}", *headers, f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def response(*headers: str, status: str = "200") -> bytes:
    lines = [f"SIP/2.0 {status} OK", HEAD + "CSeq: 1 OPTIONS", *headers, "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def via_port(n: str) -> int | None:
    m = parse_message(request().replace(b"h.example.com;", f"h.example.com:{n};".encode()))
    return m.top_via.port


def rport(n: str) -> int | None:
    m = parse_message(request().replace(b"h.example.com;", f"h.example.com;rport={n};".encode()))
    return m.top_via.rport


def request_uri_port(n: str) -> int | None:
    m = parse_message(request(start=f"OPTIONS sip:a@b.example.com:{n} SIP/2.0"))
    assert isinstance(m, Request) and isinstance(m.uri, SipUri)
    return m.uri.port


def contact_port(n: str) -> int | None:
    uri = parse_message(request(f"Contact: <sip:a@h.example.com:{n}>")).contacts[0].uri
    assert isinstance(uri, SipUri)
    return uri.port


def contact_expires(n: str) -> int | None:
    return parse_message(request(f"Contact: <sip:a@h.example.com>;expires={n}")).contacts[0].expires


def content_length(n: str) -> int | None:
    m = parse_message(request(body="hello").replace(b"Content-Length: 5", f"l: {n}".encode()))
    return len(m.body)


def stream_content_length(n: str) -> int | None:
    data = request(body="hello").replace(b"Content-Length: 5", f"l: {n}".encode())
    frames = StreamFramer().feed(data)
    return len(frames[0]) - data.index(b"\r\n\r\n") - 4 if frames else None


def status_code(n: str) -> int | None:
    m = parse_message(response(status=n))
    assert isinstance(m, Response)
    return m.status


def cseq(n: str) -> int | None:
    return parse_message(request(cseq=f"{n} OPTIONS")).cseq.seq


def header(name: str, read: Callable[[Request | Response], int | None],
           suffix: str = "") -> Callable[[str], int | None]:
    return lambda n: read(parse_message(request(f"{name}: {n}{suffix}")))


# field -> (read it from a message carrying n, smallest, largest accepted)
SIP_FIELDS: dict[str, tuple[Callable[[str], int | None], int, int | None]] = {
    "Via port": (via_port, 1, 65535),
    "Via rport": (rport, 1, 65535),
    "Request-URI port": (request_uri_port, 1, 65535),
    "Contact port": (contact_port, 1, 65535),
    "Contact expires": (contact_expires, 0, 2**32 - 1),
    "Content-Length": (content_length, 0, 5),  # the body has five bytes
    "Content-Length on a stream": (stream_content_length, 0, None),
    "status code": (status_code, 100, 699),
    "CSeq": (cseq, 0, 2**32 - 1),
    "Expires": (header("Expires", lambda m: m.expires), 0, 2**32 - 1),
    "Min-Expires": (header("Min-Expires", lambda m: m.min_expires), 0, 2**32 - 1),
    "Retry-After": (header("Retry-After", lambda m: m.retry_after, " (lunch);duration=60"),
                    0, 2**32 - 1),
    "Max-Forwards": (header("Max-Forwards", lambda m: m.max_forwards), 0, 255),
    "RSeq": (header("RSeq", lambda m: m.rseq), 1, 2**32 - 1),
}


def check_sip(field: str, n: str) -> None:
    read, low, high = SIP_FIELDS[field]
    try:
        value = read(n)
    except RemoteProtocolError:
        return
    if value is None:  # a stream frame still waiting for its body
        assert field == "Content-Length on a stream"
        return
    digits = plain_digits(n)  # every field allows LWS around its number, or no blank at all
    assert digits is not None, f"{field} accepted {n[:40]!r}"
    assert value == int(digits.lstrip("0") or "0")
    assert low <= value and (high is None or value <= high)


@settings(max_examples=60)
@pytest.mark.parametrize("field", sorted(SIP_FIELDS))
@given(n=numbers)
def test_sip_numeric_field_parses_or_raises_remote_protocol_error(field: str, n: str) -> None:
    check_sip(field, n)


@pytest.mark.parametrize("field", sorted(SIP_FIELDS))
@pytest.mark.parametrize("n", EDGES)
def test_sip_numeric_field_edges(field: str, n: str) -> None:
    check_sip(field, n)


# ---------------------------------------------------------------- SIP: exact errors


def raised(read: Callable[[], object]) -> tuple[str, int]:
    with pytest.raises(RemoteProtocolError) as e:
        read()
    return str(e.value), e.value.status_hint


HUGE = "9" * 5000


@pytest.mark.parametrize(("read", "message"), [
    (lambda: content_length(HUGE), "bad Content-Length: 5000 digits (at most 10)"),
    (lambda: content_length("+5"), "bad Content-Length: '+5'"),
    (lambda: content_length("٣"), "bad Content-Length: '٣'"),
    (lambda: stream_content_length(HUGE), "bad Content-Length: 5000 digits (at most 10)"),
    (lambda: stream_content_length("٣"), "bad Content-Length: '٣'"),
    (lambda: cseq(HUGE), "bad CSeq number: 5000 digits (at most 10)"),
    (lambda: cseq("4294967296"), "bad CSeq number: '4294967296' (not in 0-4294967295)"),
    (lambda: cseq("٣"), "bad CSeq: '٣ OPTIONS'"),
    (lambda: cseq("-1"), "bad CSeq: '-1 OPTIONS'"),
    (lambda: via_port(HUGE), "bad port in Via 'SIP/2.0/UDP h.example.com:"
                             f"{HUGE};branch=z9hG4bK1': 5000 digits (at most 5)"),
    (lambda: via_port("٣"),
     "bad port in Via 'SIP/2.0/UDP h.example.com:٣;branch=z9hG4bK1': '٣'"),
    (lambda: rport("65536"), "bad port in Via rport: '65536' (not in 1-65535)"),
    (lambda: rport(HUGE), "bad port in Via rport: 5000 digits (at most 5)"),
    (lambda: rport("+1"), "bad port in Via rport: '+1'"),
    (lambda: request_uri_port("0"),
     "bad port in SIP URI 'sip:a@b.example.com:0': '0' (not in 1-65535)"),
    (lambda: request_uri_port("٣"), "bad port in SIP URI 'sip:a@b.example.com:٣': '٣'"),
    (lambda: contact_port("1" + "0" * 5000),
     f"bad port in SIP URI 'sip:a@h.example.com:1{'0' * 5000}': 5001 digits (at most 5)"),
    (lambda: contact_expires(HUGE), "bad expires parameter: 5000 digits (at most 10)"),
    (lambda: contact_expires("-1"), "bad expires parameter: '-1'"),
    (lambda: contact_expires("4294967296"),
     "bad expires parameter: '4294967296' (not in 0-4294967295)"),
    (lambda: status_code(HUGE), f"bad status code '{'9' * 20}'"),
    (lambda: status_code("٣٣٣"), "bad status code '٣٣٣'"),
    (lambda: header("Expires", lambda m: m.expires)(HUGE),
     "bad Expires: 5000 digits (at most 10)"),
    (lambda: header("Expires", lambda m: m.expires)("1 2"), "bad Expires: '1 2'"),
    (lambda: header("Expires", lambda m: m.expires)("x" * 100),
     f"bad Expires: '{'x' * 40}'... (100 characters)"),
    (lambda: header("Min-Expires", lambda m: m.min_expires)("²"), "bad Min-Expires: '²'"),
    (lambda: header("Retry-After", lambda m: m.retry_after)("-5 (no)"), "bad Retry-After: '-5'"),
    (lambda: header("Retry-After", lambda m: m.retry_after)(HUGE + ";duration=1"),
     "bad Retry-After: 5000 digits (at most 10)"),
    (lambda: header("Max-Forwards", lambda m: m.max_forwards)("256"),
     "bad Max-Forwards: '256' (not in 0-255)"),
    (lambda: header("Max-Forwards", lambda m: m.max_forwards)("+70"),
     "bad Max-Forwards: '+70'"),
    (lambda: header("RSeq", lambda m: m.rseq)("0"), "bad RSeq: '0' (not in 1-4294967295)"),
    (lambda: header("RSeq", lambda m: m.rseq)("٣"), "bad RSeq: '٣'"),
])
def test_sip_numeric_errors(read: Callable[[], object], message: str) -> None:
    assert raised(read) == (message, 400)


def test_sip_numbers_that_are_fine() -> None:
    m = parse_message(request("Max-Forwards: 0068", "Expires: 0", "Min-Expires: 3600",
                              "Retry-After: 120 (I'm in a meeting);duration=3600",
                              "RSeq: 4294967295", "Contact: <sip:a@h.example.com>;expires=60"))
    assert (m.max_forwards, m.expires, m.min_expires, m.retry_after, m.rseq) == (
        68, 0, 3600, 120, 2**32 - 1)  # RFC 4475 wsinv: leading zeros are legal
    assert m.contacts[0].expires == 60
    assert m.top_via.rport is None
    bare = parse_message(request("Max-Forwards: 70"))
    assert (bare.expires, bare.min_expires, bare.retry_after, bare.rseq) == (None,) * 4
    asking = parse_message(request().replace(b"h.example.com;", b"h.example.com;rport;"))
    assert asking.top_via.rport is None  # ";rport" without a value: a request asking for it
    assert rport("000000000000000000005060") == 5060
    assert cseq("0" * 5000 + "7") == 7
    assert content_length("0" * 5000 + "5") == 5


def test_parse_uint_is_the_one_place() -> None:
    assert parse_uint("0042", 2, "x", high=99) == 42
    for text, message in [("", "bad x: ''"), ("+1", "bad x: '+1'"), (" 1", "bad x: ' 1'"),
                          ("٣", "bad x: '٣'"), ("123", "bad x: 3 digits (at most 2)"),
                          ("7", "bad x: '7' (not in 10-99)")]:
        with pytest.raises(RemoteProtocolError) as e:
            parse_uint(text, 2, "x", low=10, high=99)
        assert str(e.value) == message


# ---------------------------------------------------------------- SDP fields

SDP = ("v=0\r\no=- {sid} {sver} IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
       "m=audio {port} RTP/AVP 0 {fmt}\r\na=rtpmap:{rtpmap_pt} opus/{rate}/{channels}\r\n"
       "a=fmtp:{fmtp_pt} useinbandfec=1\r\na=ptime:{ptime}\r\na=maxptime:{maxptime}\r\n"
       "a=rtcp:{rtcp}\r\n")
SDP_DEFAULTS = {"sid": "1", "sver": "2", "port": "5004", "fmt": "96", "rtpmap_pt": "96",
                "rate": "48000", "channels": "2", "fmtp_pt": "96", "ptime": "20",
                "maxptime": "40", "rtcp": "5005"}


def sdp(**fields: str) -> SessionDescription:
    return SessionDescription.parse(SDP.format(**{**SDP_DEFAULTS, **fields}).encode())


def opus_rate(d: SessionDescription) -> int | None:
    codec = d.media[0].codec(96)
    return None if codec is None else codec.clock_rate


def opus_channels(d: SessionDescription) -> int | None:
    codec = d.media[0].codec(96)
    return None if codec is None else codec.channels


# field -> (read the value back or None, the text the parser reads as the
# number, smallest, largest). None: a strict field raised, or a liberal one
# (payload types, ptime, a=rtcp) did not take the text as its number.
SDP_FIELDS: dict[str, tuple[Callable[[SessionDescription], int | None], Callable[[str], str],
                            int, int | None]] = {
    "sid": (lambda d: d.origin.session_id, first_word, 0, 10**20 - 1),
    "sver": (lambda d: d.origin.session_version, first_word, 0, 10**20 - 1),
    "port": (lambda d: d.media[0].port, first_word, 0, 65535),
    "rate": (opus_rate, str, 1, 2**32 - 1),
    "channels": (opus_channels, lambda n: n.strip(" \t"), 1, 255),
    "rtpmap_pt": (lambda d: 96 if opus_rate(d) else None, first_word, 96, 96),
    "fmtp_pt": (lambda d: 96 if d.media[0].codecs[1].fmtp else None,
                lambda n: n.partition(" ")[0], 96, 96),
    "ptime": (lambda d: d.media[0].ptime, lambda n: n.strip(" \t"), 0, 9999),
    "maxptime": (lambda d: d.media[0].maxptime, lambda n: n.strip(" \t"), 0, 9999),
    "rtcp": (lambda d: d.media[0].rtcp_port, first_word, 0, 65535),
    "fmt": (lambda d: None, str, 0, None),  # any text: the m= formats are kept as text
}


def check_sdp(field: str, n: str) -> None:
    read, number_text, low, high = SDP_FIELDS[field]
    try:
        d = sdp(**{field: n})
    except SdpError:
        return
    value = read(d)
    if value is None:
        return
    digits = number_text(n)
    assert digits.isascii() and digits.isdigit(), f"{field} accepted {n[:40]!r}"
    assert value == int(digits.lstrip("0") or "0")
    assert low <= value and (high is None or value <= high)


@settings(max_examples=60)
@pytest.mark.parametrize("field", sorted(SDP_FIELDS))
@given(n=numbers.filter(lambda n: "\n" not in n))
def test_sdp_numeric_field_parses_or_raises_sdp_error(field: str, n: str) -> None:
    check_sdp(field, n)


@pytest.mark.parametrize("field", sorted(SDP_FIELDS))
@pytest.mark.parametrize("n", EDGES)
def test_sdp_numeric_field_edges(field: str, n: str) -> None:
    check_sdp(field, n)


@pytest.mark.parametrize(("fields", "message"), [
    ({"sid": HUGE}, "SDP line 2: o= session id has 5000 digits (at most 20)"),
    ({"sid": "٣"}, "SDP line 2: o= session id is not a number: '٣'"),
    ({"sver": "+1"}, "SDP line 2: o= session version is not a number: '+1'"),
    ({"sver": "1" * 21}, "SDP line 2: o= session version has 21 digits (at most 20)"),
    ({"port": HUGE}, "SDP line 6: m= port has 5000 digits (at most 5)"),
    ({"port": "65536"}, "SDP line 6: m= port is not in 0-65535: '65536'"),
    ({"port": "-1"}, "SDP line 6: m= port is not a number: '-1'"),
    ({"port": "５００４"}, "SDP line 6: m= port is not a number: '５００４'"),
    ({"port": "5004/0"}, "SDP line 6: m= port count is not in 1-65535: '0'"),
    ({"port": "5004/" + HUGE}, "SDP line 6: m= port count has 5000 digits (at most 5)"),
    ({"port": "5004/"}, "SDP line 6: m= port count is not a number: ''"),
    ({"rate": HUGE}, "SDP line 7: a=rtpmap clock rate has 5000 digits (at most 10)"),
    ({"rate": "0"}, "SDP line 7: a=rtpmap clock rate is not in 1-4294967295: '0'"),
    ({"rate": "4294967296"},
     "SDP line 7: a=rtpmap clock rate is not in 1-4294967295: '4294967296'"),
    ({"channels": "0"}, "SDP line 7: a=rtpmap channels is not in 1-255: '0'"),
    ({"channels": HUGE}, "SDP line 7: a=rtpmap channels has 5000 digits (at most 3)"),
])
def test_sdp_numeric_errors(fields: dict[str, str], message: str) -> None:
    with pytest.raises(SdpError) as e:
        sdp(**fields)
    assert str(e.value) == message


def test_sdp_liberal_numbers_out_of_bounds_stay_text() -> None:
    """Numbers offer/answer can do without are kept as text when out of bounds,
    as a non-numeric a=ptime always was."""
    d = sdp(ptime=HUGE, maxptime="10000", rtcp="65536", fmtp_pt="0" * 5000 + "96", fmt=HUGE)
    m = d.media[0]
    assert (m.ptime, m.maxptime, m.rtcp_port) == (None, None, None)
    assert m.formats == ("0", HUGE)
    assert m.codec(96) is None  # 96 is not listed: its rtpmap is not read
    assert [name for name, _ in m.attributes] == ["rtpmap", "fmtp", "ptime", "maxptime",
                                                  "rtcp"]
    fine = sdp(sid="0" * 30 + "7", ptime="0020", rtcp="00005005", port="05004/02")
    assert fine.origin.session_id == 7
    assert (fine.media[0].ptime, fine.media[0].rtcp_port) == (20, 5005)
    assert (fine.media[0].port, fine.media[0].port_count) == (5004, 2)
    assert sdp(sid=str(10**20 - 1)).origin.session_id == 10**20 - 1
