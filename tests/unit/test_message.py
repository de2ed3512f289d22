"""SIP message parse and serialise (RFC 3261 §7, §18.3, §20, §25) and TCP framing."""

from __future__ import annotations

import copy
import dataclasses
import os
import pickle
from pathlib import Path

import pytest

from deskphone.sip import uri as uri_mod
from deskphone.sip.errors import RemoteProtocolError
from deskphone.sip.message import (
    COMPACT,
    MAX_MESSAGE,
    CSeq,
    Headers,
    Request,
    Response,
    StreamFramer,
    Via,
    _UnbuiltUri,
    canonical_name,
    parse_header_params,
    parse_message,
)
from deskphone.sip.uri import Address, GenericUri, SipUri

SHARED = Path(os.environ.get("SHARED_DIR") or Path(__file__).resolve().parents[3] / "shared")
CORPUS = sorted((SHARED / "corpus" / "sip").glob("*.sip"))


def msg(*lines: str, body: str = "") -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


INVITE = msg(
    "INVITE sip:bob@biloxi.example.com SIP/2.0",
    "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds",
    "Max-Forwards: 70",
    "To: Bob <sip:bob@biloxi.example.com>",
    "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774",
    "Call-ID: a84b4c76e66710@pc33.atlanta.example.com",
    "CSeq: 314159 INVITE",
    "Contact: <sip:alice@pc33.atlanta.example.com>",
    "Content-Type: application/sdp",
    "Content-Length: 4",
    body="v=0\r",
)


def rejects(data: bytes, message: str, hint: int = 400, *, stream: bool = False) -> None:
    with pytest.raises(RemoteProtocolError) as e:
        parse_message(data, stream=stream)
    assert str(e.value) == message
    assert e.value.status_hint == hint


def req(data: bytes) -> Request:
    m = parse_message(data)
    assert isinstance(m, Request)
    return m


def resp(data: bytes) -> Response:
    m = parse_message(data)
    assert isinstance(m, Response)
    return m


# ---------------------------------------------------------------- start lines


def test_request_line() -> None:
    r = req(INVITE)
    assert r.method == "INVITE"
    assert r.uri == SipUri(host="biloxi.example.com", user="bob")
    assert r.body == b"v=0\r"
    assert r.headers.get("max-forwards") == "70"


def test_status_line() -> None:
    r = resp(msg("SIP/2.0 180 Ringing", "Content-Length: 0"))
    assert (r.status, r.reason) == (180, "Ringing")
    r = resp(msg("SIP/2.0 486 Busy  Here, try later", "Content-Length: 0"))
    assert r.reason == "Busy  Here, try later"  # the rest of the line, as it came
    r = resp(msg("sip/2.0 200 OK", "l: 0"))  # SIP-Version is case-insensitive
    assert r.status == 200


def test_empty_reason_phrase() -> None:
    # RFC 4475 noreason: the SP after the code is required...
    assert resp(msg("SIP/2.0 100 ", "l: 0")).reason == ""
    # ...but a liberal receiver accepts it missing
    assert resp(msg("SIP/2.0 100", "l: 0")).reason == ""


def test_tel_request_uri() -> None:
    r = req(msg("INVITE tel:+12015550123 SIP/2.0", "l: 0"))
    assert r.uri == GenericUri("tel:+12015550123")


# ---------------------------------------------------------------- the lazy Request-URI

ACK_LINE = "ACK sip:1001@192.168.1.50:5060;transport=udp SIP/2.0"
ACK_URI = SipUri(host="192.168.1.50", user="1001", port=5060, params=(("transport", "udp"),))


def uri_slot(r: Request) -> object:
    """What the uri slot holds, without building it."""
    return Request.__dict__["uri"]._get(r)


def test_request_uri_is_built_on_first_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uri_mod, "_URI_CACHE_SIZE", 0)
    r = req(msg(ACK_LINE, "l: 0"))
    assert type(uri_slot(r)) is _UnbuiltUri
    assert uri_slot(r) == "sip:1001@192.168.1.50:5060;transport=udp"
    u = r.uri
    assert u == ACK_URI
    assert type(uri_slot(r)) is SipUri
    assert r.uri is u  # built once


@pytest.mark.parametrize("line", [
    "OPTIONS SIP:a@b.example.com SIP/2.0",  # upper-case scheme
    "OPTIONS sip:a@[2001:db8::1]:5061 SIP/2.0",  # IPv6
    "OPTIONS sip:a:pw@b.example.com SIP/2.0",  # password
    "OPTIONS sip:a@b.example.com:05060 SIP/2.0",  # leading zero in the port
    "OPTIONS sip:a@b.example.com;x=%41 SIP/2.0",  # escape in a parameter
    "OPTIONS sip:a@b.example.com sip/2.0",  # version in lower case
    "OPTIONS tel:+12015550123 SIP/2.0",
])
def test_other_request_uris_are_parsed_at_once(line: str) -> None:
    r = req(msg(line, "l: 0"))
    assert type(uri_slot(r)) in (SipUri, GenericUri)


def test_lazy_request_equals_one_built_by_hand() -> None:
    h = Headers([("Via", "SIP/2.0/UDP h.example.com;branch=z9hG4bK1"), ("CSeq", "1 ACK"),
                 ("Content-Length", "0")])
    by_hand = Request("ACK", ACK_URI, h, b"")

    def fresh() -> Request:  # the Request-URI not read yet
        r = req(msg(ACK_LINE, *(f"{n}: {v}" for n, v in h)))
        assert type(uri_slot(r)) is _UnbuiltUri
        return r

    assert fresh() == by_hand
    assert by_hand == fresh()
    assert hash(fresh()) == hash(by_hand)
    assert repr(fresh()) == repr(by_hand)
    assert bytes(fresh()) == bytes(by_hand)
    assert fresh().with_headers(Headers()) == Request("ACK", ACK_URI, Headers())
    assert dataclasses.replace(fresh(), method="BYE") == Request("BYE", ACK_URI, h)
    for clone in (pickle.loads(pickle.dumps(fresh())), copy.copy(fresh()),
                  copy.deepcopy(fresh())):
        assert type(uri_slot(clone)) is SipUri
        assert clone == by_hand


def test_parsed_messages_are_plain_frozen_requests_and_responses() -> None:
    r = req(msg(ACK_LINE, "l: 0"))
    s = resp(msg("SIP/2.0 200 OK", "l: 0"))
    assert type(r) is Request
    assert type(s) is Response
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.uri = ACK_URI  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.method = "BYE"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.status = 404  # type: ignore[misc]
    assert s == Response(200, "OK", Headers([("l", "0")]), b"")
    assert resp(msg("sip/2.0 200 OK", "l: 0")) == s  # the full status-line parser
    assert req(msg("ACK " + str(ACK_URI) + " sip/2.0", "l: 0")) == r  # the full request-line one


def test_request_built_by_hand_keeps_its_uri() -> None:
    u = SipUri(host="b.example.com", user="a")
    assert Request("INVITE", u, Headers()).uri is u
    g = GenericUri("tel:+12015550123")
    assert Request("INVITE", g, Headers()).uri is g


@pytest.mark.parametrize(("start", "message", "hint"), [
    ("INVITE sip:a@b.example.com", "bad request line: 'INVITE sip:a@b.example.com'", 400),
    ("INVITE  sip:a@b.example.com SIP/2.0",
     "bad request line: 'INVITE  sip:a@b.example.com SIP/2.0'", 400),
    ("INVITE sip:a@b.example.com SIP/2.0 ",
     "bad request line: 'INVITE sip:a@b.example.com SIP/2.0 '", 400),
    ("INV@ITE sip:a@b.example.com SIP/2.0", "bad method 'INV@ITE'", 400),
    ("INVITE sip:a@b.example.com SIP/3.0", "unsupported version 'SIP/3.0'", 505),
    ("INVITE sip:a@b.example.com HTTP/1.1",
     "bad request line: 'INVITE sip:a@b.example.com HTTP/1.1'", 400),
    ("INVITE <sip:a@b.example.com> SIP/2.0", "Request-URI in <...>: '<sip:a@b.example.com>'", 400),
    ("INVITE http://example.com SIP/2.0", "unsupported URI scheme in 'http://example.com'", 416),
    ("INVITE sip:a@b.example.com?Subject=x SIP/2.0",
     "Request-URI with headers: 'sip:a@b.example.com?Subject=x'", 400),
    ("INVITE sip:a@b:99999 SIP/2.0",
     "bad port in SIP URI 'sip:a@b:99999': '99999' (not in 1-65535)", 400),
    ("SIP/2.0 4294967301 big", "bad status code '4294967301'", 400),
    ("SIP/2.0 700 Too Far", "bad status code '700'", 400),
    ("SIP/2.0 099 Too Low", "bad status code '099'", 400),
    ("SIP/2.0 ²²² Unicode digits", "bad status code '²²²'", 400),
    ("SIP/2.0", "bad status code ''", 400),
    ("SIP/3.0 200 OK", "unsupported version 'SIP/3.0'", 505),
    ("SIP/ 200 OK", "bad status line: 'SIP/ 200 OK'", 400),
])
def test_bad_start_lines(start: str, message: str, hint: int) -> None:
    rejects(msg(start, "Content-Length: 0"), message, hint)


# ---------------------------------------------------------------- header names


@pytest.mark.parametrize(("letter", "name"), sorted(COMPACT.items()))
def test_compact_forms(letter: str, name: str) -> None:
    for spelling in (letter, letter.upper()):
        r = req(msg("OPTIONS sip:a@b.example.com SIP/2.0", f"{spelling}: value1", "l: 0")
                if name != "Content-Length" else msg("OPTIONS sip:a@b.example.com SIP/2.0",
                                                     f"{spelling}: 0"))
        assert r.headers.get(name) == ("0" if name == "Content-Length" else "value1")
        assert list(r.headers)[0][0] == name
        assert canonical_name(spelling) == name


def test_header_names_are_case_insensitive_and_canonical() -> None:
    r = req(msg("OPTIONS sip:a@b.example.com SIP/2.0", "VIA: SIP/2.0/UDP h.example.com",
                "call-id: abc", "cSeQ: 1 OPTIONS", "X-Custom-Thing: 1", "content-LENGTH: 0"))
    assert [n for n, _ in r.headers] == ["Via", "Call-ID", "CSeq", "X-Custom-Thing",
                                         "Content-Length"]
    assert r.headers.get("Call-Id") == "abc"
    assert r.headers.get("i") == "abc"
    assert r.headers.get("x-custom-thing") == "1"  # unknown names: looked up case-insensitively
    assert "x-CUSTOM-thing" in r.headers
    assert "Subject" not in r.headers


def test_lws_around_colon() -> None:
    r = req(msg("OPTIONS sip:a@b.example.com SIP/2.0", "To :  <sip:a@b.example.com>  ",
                "Call-ID:abc", "Subject:", "CSeq\t: 1 OPTIONS", "l: 0"))
    assert r.headers.get("To") == "<sip:a@b.example.com>"
    assert r.headers.get("Call-ID") == "abc"
    assert r.headers.get("Subject") == ""
    assert r.headers.get("CSeq") == "1 OPTIONS"


@pytest.mark.parametrize(("line", "message"), [
    ("Foobar roobar", "header line without ':': 'Foobar roobar'"),
    ("Via", "header line without ':': 'Via'"),  # a known name alone is no header
    ("Bad Name: x", "bad header name 'Bad Name'"),
    (": x", "bad header name ''"),
    ("X<y>: z", "bad header name 'X<y>'"),
])
def test_bad_header_lines(line: str, message: str) -> None:
    rejects(msg("OPTIONS sip:a@b.example.com SIP/2.0", "Call-ID: x", line, "l: 0"), message)


# ---------------------------------------------------------------- folding, line ends


def test_header_folding() -> None:
    r = req(msg("OPTIONS sip:a@b.example.com SIP/2.0",
                "Subject: I know you're there,",
                "      pick up the phone",
                "\tand talk to me!",
                "To:",
                " <sip:a@b.example.com>",
                "X-Empty: a",
                "   ",
                "l: 0"))
    assert r.headers.get("Subject") == "I know you're there, pick up the phone and talk to me!"
    assert r.headers.get("To") == "<sip:a@b.example.com>"
    assert r.headers.get("X-Empty") == "a"  # a blank continuation adds nothing
    assert bytes(r).count(b"\r\n") == 6  # folded lines come out unfolded


def test_folded_content_length() -> None:
    r = req(msg("OPTIONS sip:a@b.example.com SIP/2.0", "Content-Length:", "  3", body="abcdef"))
    assert r.body == b"abc"


def test_continuation_line_first() -> None:
    rejects(msg("OPTIONS sip:a@b.example.com SIP/2.0", " folded: x", "l: 0"),
            "header block starts with a continuation line")


def test_leading_crlfs_are_ignored() -> None:
    # RFC 3261 §7.5
    r = req(b"\r\n\r\n\r\n" + msg("OPTIONS sip:a@b.example.com SIP/2.0", "l: 0"))
    assert r.method == "OPTIONS"


def test_bare_lf_line_ends_are_tolerated() -> None:
    r = req(b"OPTIONS sip:a@b.example.com SIP/2.0\nVia: SIP/2.0/UDP h.example.com\n"
            b"Content-Length: 5\n\nhello")
    assert r.headers.get("Via") == "SIP/2.0/UDP h.example.com"
    assert r.body == b"hello"
    # mixed, with a CRLFCRLF in the body that must not be taken for the end of the head
    r = req(b"OPTIONS sip:a@b.example.com SIP/2.0\r\nl: 6\n\nab\r\n\r\n")
    assert r.headers.get("Content-Length") == "6"
    assert r.body == b"ab\r\n\r\n"
    r = req(b"OPTIONS sip:a@b.example.com SIP/2.0\r\nl: 2\r\n\nab")
    assert r.body == b"ab"


def test_datagram_ending_after_last_header_line() -> None:
    r = req(b"OPTIONS sip:a@b.example.com SIP/2.0\r\nCall-ID: x\r\n")
    assert r.headers.get("Call-ID") == "x"
    assert r.body == b""


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty message"),
    (b"\r\n\r\n", "empty message"),
    (b"OPTIONS sip:a@b.example.com SIP/2.0", "no end of header block"),
    (b"OPTIONS sip:a@b.example.com SIP/2.0\rl: 0\r\n\r\n", "bare CR in header block"),
    (b"OPTIONS sip:a@b.example.com SIP/2.0\r\nX: \xff\r\n\r\n",
     "header block is not UTF-8 (invalid start byte at byte 40)"),
])
def test_malformed_blocks(data: bytes, message: str) -> None:
    rejects(data, message)


def test_too_large() -> None:
    data = msg("OPTIONS sip:a@b.example.com SIP/2.0", "l: 0") + b"x" * MAX_MESSAGE
    rejects(data, f"message too large ({len(data)} bytes)", 513)


# ---------------------------------------------------------------- bodies


def test_body_delimited_by_content_length_extra_bytes_ignored() -> None:
    # RFC 3261 §18.3: octets past Content-Length in a datagram are discarded
    r = req(msg("MESSAGE sip:a@b.example.com SIP/2.0", "Content-Length: 5", body="hello world"))
    assert r.body == b"hello"


def test_body_without_content_length_runs_to_datagram_end() -> None:
    r = req(msg("MESSAGE sip:a@b.example.com SIP/2.0", "Call-ID: 1", body="hello\r\n\r\nworld"))
    assert r.body == b"hello\r\n\r\nworld"
    assert bytes(r).endswith(b"Content-Length: 14\r\n\r\nhello\r\n\r\nworld")


def test_binary_body() -> None:
    body = bytes(range(256)) * 2
    data = (b"MESSAGE sip:a@b.example.com SIP/2.0\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: 512\r\n\r\n" + body)
    assert req(data).body == body
    assert bytes(req(data)) == data


def test_body_shorter_than_content_length() -> None:
    rejects(msg("MESSAGE sip:a@b.example.com SIP/2.0", "Content-Length: 10", body="short"),
            "Content-Length 10 but only 5 body bytes")


def test_missing_content_length_on_stream() -> None:
    rejects(msg("OPTIONS sip:a@b.example.com SIP/2.0", "Call-ID: 1"),
            "missing Content-Length on a stream transport", stream=True)
    assert req(msg("OPTIONS sip:a@b.example.com SIP/2.0", "l: 0")).body == b""
    assert parse_message(msg("OPTIONS sip:a@b.example.com SIP/2.0", "l: 0"), stream=True)


@pytest.mark.parametrize(("value", "message"), [
    ("-1", "bad Content-Length: '-1'"),
    ("five", "bad Content-Length: 'five'"),
    ("", "bad Content-Length: ''"),
    ("+3", "bad Content-Length: '+3'"),
    ("3 4", "bad Content-Length: '3 4'"),
    ("²", "bad Content-Length: '²'"),  # str.isdigit() says yes; int() would not
    ("５", "bad Content-Length: '５'"),
])
def test_bad_content_length(value: str, message: str) -> None:
    rejects(msg("MESSAGE sip:a@b.example.com SIP/2.0", f"Content-Length: {value}",
                body="hello"), message)


def test_duplicate_content_length() -> None:
    # RFC 4475 mcl01: two different lengths -> no way to frame
    rejects(msg("MESSAGE sip:a@b.example.com SIP/2.0", "Content-Length: 3", "l: 5",
                body="hello"), "conflicting Content-Length headers")
    # the same value twice frames fine (as h11 does for HTTP)
    assert req(msg("MESSAGE sip:a@b.example.com SIP/2.0", "Content-Length: 3", "l: 3",
                   body="hello")).body == b"hel"


# ---------------------------------------------------------------- list headers


def test_comma_separated_values() -> None:
    r = req(msg("OPTIONS sip:a@b.example.com SIP/2.0",
                "Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/TCP b.example.com:5070",
                "v: SIP/2.0/UDP c.example.com",
                'Contact: "Doe, John" <sip:j@d.example.com>;q=0.5, <sip:x@y.example.com>',
                "Allow: INVITE,ACK , BYE",
                "Supported:",
                'WWW-Authenticate: Digest realm="r", nonce="n, with comma"',
                "l: 0"))
    h = r.headers
    assert h.get_all("via") == ["SIP/2.0/UDP a.example.com;branch=z9hG4bK1",
                                "SIP/2.0/TCP b.example.com:5070", "SIP/2.0/UDP c.example.com"]
    assert h.get("Via") == ("SIP/2.0/UDP a.example.com;branch=z9hG4bK1, "
                            "SIP/2.0/TCP b.example.com:5070")
    assert h.get_all("m") == ['"Doe, John" <sip:j@d.example.com>;q=0.5', "<sip:x@y.example.com>"]
    assert h.get_all("Allow") == ["INVITE", "ACK", "BYE"]
    assert h.get_all("Supported") == [""]
    # auth headers are not lists: their parameters are comma-separated
    assert h.get_all("WWW-Authenticate") == ['Digest realm="r", nonce="n, with comma"']
    assert h.get_all("Require") == []
    assert [v.host for v in r.vias] == ["a.example.com", "b.example.com", "c.example.com"]
    assert [c.display_name for c in r.contacts] == ["Doe, John", None]
    assert r.contacts[0].param("q") == "0.5"


def test_contact_star() -> None:
    r = req(msg("REGISTER sip:r.example.com SIP/2.0", "Contact: *", "Expires: 0", "l: 0"))
    assert r.contacts == []
    assert r.headers.get("Contact") == "*"


# ---------------------------------------------------------------- Via, CSeq, accessors


def test_via_with_rport_received_branch() -> None:
    v = Via.parse("SIP/2.0/UDP 192.168.1.50:5060;branch=z9hG4bK776asdhds;rport=5060"
                  ";received=192.0.2.1")
    assert (v.transport, v.host, v.port) == ("UDP", "192.168.1.50", 5060)
    assert v.branch == "z9hG4bK776asdhds"
    assert v.param("rport") == "5060"
    assert v.param("received") == "192.0.2.1"
    assert str(v) == ("SIP/2.0/UDP 192.168.1.50:5060;branch=z9hG4bK776asdhds;rport=5060"
                      ";received=192.0.2.1")


def test_via_variants() -> None:
    v = Via.parse("SIP/2.0/UDP 10.0.0.1;rport")
    assert v.param("rport") == ""  # valueless: the client asks for RFC 3581
    assert v.port is None
    assert str(v.with_param("rport", "5062").with_param("received", "1.2.3.4")) == \
        "SIP/2.0/UDP 10.0.0.1;rport=5062;received=1.2.3.4"
    v = Via.parse("sip/2.0/tls [2001:db8::1]:5061 ;branch=z9hG4bKx")
    assert (v.transport, v.host, v.port, v.branch) == ("TLS", "[2001:db8::1]", 5061, "z9hG4bKx")
    v = Via.parse("SIP / 2.0 / TCP  Host.Example.COM : 5060 ; branch = z9hG4bKy")
    assert (v.transport, v.host, v.port, v.branch) == ("TCP", "host.example.com", 5060, "z9hG4bKy")
    assert Via.parse("SIP/2.0/UDP iftgw.example.com").branch is None  # RFC 2543 style


@pytest.mark.parametrize(("text", "message"), [
    ("SIP/2.0/UDP", "bad Via: 'SIP/2.0/UDP'"),
    ("SIP/3.0/UDP h.example.com", "bad Via: 'SIP/3.0/UDP h.example.com'"),
    ("SIP/2.0/U@P h.example.com", "bad Via: 'SIP/2.0/U@P h.example.com'"),
    ("SIP/2.0/UDP h_x.com", "Via 'SIP/2.0/UDP h_x.com': bad host 'h_x.com'"),
    ("SIP/2.0/UDP h.example.com:0",
     "bad port in Via 'SIP/2.0/UDP h.example.com:0': '0' (not in 1-65535)"),
    ("SIP/2.0/UDP [::1", "Via 'SIP/2.0/UDP [::1': bad host '[::1'"),
    ("SIP/2.0/UDP h.example.com;;", "Via 'SIP/2.0/UDP h.example.com;;': bad parameter ''"),
])
def test_bad_via(text: str, message: str) -> None:
    with pytest.raises(RemoteProtocolError) as e:
        Via.parse(text)
    assert str(e.value) == message


def test_cseq() -> None:
    assert CSeq.parse("314159 INVITE") == CSeq(314159, "INVITE")
    assert CSeq.parse("  0009 \t INVITE ") == CSeq(9, "INVITE")
    assert CSeq.parse("4294967295 BYE").seq == 2**32 - 1
    assert str(CSeq(2, "REGISTER")) == "2 REGISTER"


@pytest.mark.parametrize(("text", "message"), [
    ("INVITE", "bad CSeq: 'INVITE'"),
    ("1", "bad CSeq: '1'"),
    ("-1 INVITE", "bad CSeq: '-1 INVITE'"),
    ("1 INVITE x", "bad CSeq: '1 INVITE x'"),
    ("1 IN@VITE", "bad CSeq: '1 IN@VITE'"),
    ("²3 INVITE", "bad CSeq: '²3 INVITE'"),
    ("4294967296 INVITE", "bad CSeq number: '4294967296' (not in 0-4294967295)"),
])
def test_bad_cseq(text: str, message: str) -> None:
    with pytest.raises(RemoteProtocolError) as e:
        CSeq.parse(text)
    assert str(e.value) == message


def test_accessors() -> None:
    r = req(INVITE)
    assert r.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert r.cseq == CSeq(314159, "INVITE")
    assert r.from_.tag == "1928301774"
    assert r.from_.display_name == "Alice"
    assert r.to.tag is None
    assert r.to.sip_uri.user == "bob"
    assert r.top_via.branch == "z9hG4bK776asdhds"
    assert r.content_type == "application/sdp"
    assert r.addresses("Contact") == r.contacts
    assert parse_header_params("active;expires=3540") == ("active", (("expires", "3540"),))


@pytest.mark.parametrize(("headers", "accessor", "message"), [
    ((), "call_id", "missing Call-ID"),
    ((), "cseq", "missing CSeq"),
    ((), "from_", "missing From"),
    ((), "to", "missing To"),
    ((), "top_via", "missing Via"),
    (("Call-ID:",), "call_id", "missing Call-ID"),
    (("Call-ID: a b",), "call_id", "bad Call-ID: 'a b'"),
    (("Call-ID: a", "i: b"), "call_id", "more than one Call-ID header"),
    (("To: <sip:a@b.example.com>", "t: <sip:c@d.example.com>"), "to", "more than one To header"),
    (("f: sip:a@b.example.com", "From: sip:a@b.example.com"), "from_",
     "more than one From header"),
    (("CSeq: 1 OPTIONS", "CSeq: 2 OPTIONS"), "cseq", "more than one CSeq header"),
    (("CSeq: 1 INVITE",), "cseq", "CSeq method 'INVITE' does not match request method 'OPTIONS'"),
    (("Via: SIP/2.0/UDP h.example.com;;",), "vias",
     "Via 'SIP/2.0/UDP h.example.com;;': bad parameter ''"),
    (("Contact: <sip:a@b.example.com>;;",), "contacts", "Contact: bad parameter ''"),
])
def test_accessor_errors(headers: tuple[str, ...], accessor: str, message: str) -> None:
    r = req(msg("OPTIONS sip:a@b.example.com SIP/2.0", *headers, "l: 0"))
    with pytest.raises(RemoteProtocolError) as e:
        getattr(r, accessor)
    assert str(e.value) == message
    assert e.value.status_hint == 400


def test_response_cseq_has_no_method_to_match() -> None:
    r = resp(msg("SIP/2.0 200 OK", "CSeq: 7 REGISTER", "l: 0"))
    assert r.cseq == CSeq(7, "REGISTER")


# ---------------------------------------------------------------- serialising


def test_serialise() -> None:
    r = req(msg("OPTIONS sip:A@B.Example.COM SIP/2.0", "v:   SIP/2.0/UDP h.example.com",
                "l: 99", "X-Foo: bar  ", body="x" * 99))
    out = bytes(r)
    assert out == msg("OPTIONS sip:A@b.example.com SIP/2.0", "Via: SIP/2.0/UDP h.example.com",
                      "X-Foo: bar", "Content-Length: 99", body="x" * 99)
    assert bytes(parse_message(out)) == out


def test_build_and_serialise() -> None:
    h = Headers([("v", "SIP/2.0/UDP h.example.com;branch=z9hG4bK1"), ("t", "<sip:b@c.example.com>"),
                 ("Content-Length", "123")])
    r = Request("MESSAGE", SipUri(host="c.example.com", user="b"), h, b"hi")
    assert bytes(r) == msg("MESSAGE sip:b@c.example.com SIP/2.0",
                           "Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1",
                           "To: <sip:b@c.example.com>", "Content-Length: 2", body="hi")
    ok = Response(200, "OK", h)
    assert bytes(ok).startswith(b"SIP/2.0 200 OK\r\nVia:")
    assert bytes(ok).endswith(b"Content-Length: 0\r\n\r\n")
    assert r.with_headers(Headers()).headers == Headers()


def test_headers_api() -> None:
    h = Headers([("Via", "a"), ("To", "t"), ("Via", "b"), ("X-A", "1")])
    assert h.add("v", "z", first=True).get_all("Via") == ["z", "a", "b"]
    assert h.add("x-a", "2").get_all("X-A") == ["1", "2"]
    assert list(h.remove("VIA")) == [("To", "t"), ("X-A", "1")]
    assert list(h.set("via", "c")) == [("Via", "c"), ("To", "t"), ("X-A", "1")]
    assert list(h.set("Subject", "s"))[-1] == ("Subject", "s")
    assert list(h.replace_first("Via", "new")) == [("Via", "new"), ("To", "t"), ("Via", "b"),
                                                   ("X-A", "1")]
    with pytest.raises(KeyError):
        h.replace_first("Route", "x")
    assert len(h) == 4
    assert h == Headers(list(h)) and hash(h) == hash(Headers(list(h)))
    assert h != list(h)
    assert "Headers([('Via', 'a')" in repr(h)


# ---------------------------------------------------------------- the corpus


@pytest.mark.skipif(not CORPUS, reason=f"no corpus in {SHARED}")
@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_corpus_parses_and_round_trips(path: Path) -> None:
    data = path.read_bytes()
    for stream in (False, True):
        m = parse_message(data, stream=stream)
        out = bytes(m)
        assert bytes(parse_message(out)) == out
        assert out == data  # the corpus is already in canonical form
    # every accessor works on every message
    m = parse_message(data)
    assert m.call_id and m.cseq.seq > 0 and m.from_.tag and m.top_via.branch
    m.to, m.contacts, m.vias  # noqa: B018


@pytest.mark.skipif(not CORPUS, reason=f"no corpus in {SHARED}")
def test_corpus_fields() -> None:
    by_name = {p.stem: parse_message(p.read_bytes()) for p in CORPUS}
    reg = by_name["01_register_auth"]
    assert isinstance(reg, Request) and reg.method == "REGISTER"
    assert reg.uri == SipUri(host="pbx.example.com")
    assert reg.top_via.param("rport") == ""
    assert reg.contacts[0].param("+sip.instance") == \
        '"<urn:uuid:00000000-0000-1000-8000-b827eb123456>"'
    assert reg.contacts[0].sip_uri.transport == "udp"
    assert reg.headers.get_all("Supported") == ["replaces", "timer"]
    assert (reg.headers.get("Authorization") or "").startswith('Digest username="1001"')
    ch = by_name["02_401_unauthorized"]
    assert isinstance(ch, Response) and (ch.status, ch.reason) == (401, "Unauthorized")
    assert ch.top_via.param("received") == "192.168.1.50"
    invite = by_name["04_invite_sdp"]
    assert isinstance(invite, Request)
    assert invite.uri == SipUri(host="192.168.1.50", user="1001", port=5060,
                                params=(("transport", "udp"),))
    assert [v.host for v in invite.vias] == ["192.168.1.10", "192.168.1.20"]
    assert invite.addresses("Record-Route")[0].sip_uri.loose_route
    assert invite.from_ == Address(SipUri(host="pbx.example.com", user="1002"), "Alice",
                                   (("tag", "9fxced76sl"),))
    assert len(invite.body) == 261 and invite.body.startswith(b"v=0\r\n")
    notify = by_name["10_notify_mwi"]
    assert notify.content_type == "application/simple-message-summary"
    assert parse_header_params(notify.headers.get("Subscription-State") or "") == \
        ("active", (("expires", "3540"),))
    bye = by_name["08_bye"]
    assert bye.headers.get("Reason") == 'Q.850;cause=16;text="Normal Clearing"'


# ---------------------------------------------------------------- TCP framing


def stream_of_messages() -> tuple[bytes, list[bytes]]:
    """Several messages back to back, with bodies, with keep-alive pings between."""
    a = msg("OPTIONS sip:a@b.example.com SIP/2.0", "Call-ID: 1", "Content-Length: 0")
    b = msg("MESSAGE sip:a@b.example.com SIP/2.0", "Call-ID: 2", "l: 14", body="hello\r\n\r\nworld")
    c = msg("SIP/2.0 200 OK", "Call-ID: 3", "content-length  :\t3", body="a\r\n")
    d = (b"INVITE sip:a@b.example.com SIP/2.0\r\nCall-ID: 4\r\nContent-Length:\r\n 2\r\n\r\n"
         b"\r\n")
    ping = StreamFramer.PING
    stream = ping + a + b + ping + ping + c + b"\r\n" + d + ping
    frames = [ping, a, b, ping, ping, c, d, ping]
    return stream, frames


def test_framer_one_byte_at_a_time() -> None:
    stream, frames = stream_of_messages()
    f = StreamFramer()
    out: list[bytes] = []
    for i in range(len(stream)):
        out += f.feed(stream[i : i + 1])
    assert out == frames
    assert f.pending == 0
    parsed = [parse_message(x, stream=True) for x in out if x != StreamFramer.PING]
    assert [m.headers.get("Call-ID") for m in parsed] == ["1", "2", "3", "4"]
    assert [m.body for m in parsed] == [b"", b"hello\r\n\r\nworld", b"a\r\n", b"\r\n"]


def test_framer_large_chunks() -> None:
    stream, frames = stream_of_messages()
    f = StreamFramer()
    assert f.feed(stream * 3) == frames * 3
    for size in (2, 3, 7, 64, 1000):
        f = StreamFramer()
        out: list[bytes] = []
        for i in range(0, len(stream), size):
            out += f.feed(stream[i : i + size])
        assert out == frames, size


def test_framer_waits_for_the_rest() -> None:
    f = StreamFramer()
    assert f.feed(INVITE[:-2]) == []
    assert f.pending == len(INVITE) - 2
    assert f.feed(INVITE[-2:]) == [INVITE]
    f = StreamFramer()
    assert f.feed(b"\r\n\r") == []  # maybe a ping
    assert f.pending == 3
    assert f.feed(b"\n") == [StreamFramer.PING]
    assert f.feed(b"\r\n") == []  # a lone CRLF (a pong) waits, then is dropped
    assert f.feed(INVITE) == [INVITE]
    assert f.pending == 0


def test_framer_says_when_a_header_block_is_coming_in() -> None:
    """What the TCP transport times against slowloris: from a message's first
    byte to the end of its header block; a keep-alive's CRLFs do not count."""
    f = StreamFramer()
    assert not f.head_pending
    head_end = INVITE.index(b"\r\n\r\n") + 4
    states = []
    for i in range(len(INVITE)):
        f.feed(INVITE[i : i + 1])
        states.append(f.head_pending)
    assert states == [True] * (head_end - 1) + [False] * (len(INVITE) - head_end + 1)
    assert not f.feed(b"\r\n") and not f.head_pending  # a pong waiting to be dropped
    assert not f.feed(b"OPT") and f.head_pending  # the pong dropped, a message begun
    f = StreamFramer()
    assert not f.feed(b"\r\n\r") and not f.head_pending  # maybe a ping
    assert f.feed(b"\nOPT") == [StreamFramer.PING] and f.head_pending


def test_framer_reads_the_content_length_line_as_parse_message_does() -> None:
    for value in ("5 5", "+5", "0x5", "5;x", "٣"):
        with pytest.raises(RemoteProtocolError) as e:
            StreamFramer().feed(msg("MESSAGE sip:a@b.example.com SIP/2.0",
                                    f"Content-Length: {value}", body="hello"))
        assert str(e.value) == f"bad Content-Length: {value!r}"
    data = msg("MESSAGE sip:a@b.example.com SIP/2.0", "Content-Length:  ", "  5\t", "l: 5",
               body="hello")
    assert StreamFramer().feed(data) == [data]  # folding, LWS
    data = msg("MESSAGE sip:a@b.example.com SIP/2.0", "l: 005", body="hello")
    assert StreamFramer().feed(data) == [data]  # leading zeros


def test_framer_oversize() -> None:
    f = StreamFramer(max_message=100)
    with pytest.raises(RemoteProtocolError) as e:
        f.feed(b"OPTIONS sip:a@b.example.com SIP/2.0\r\n" + b"X: y\r\n" * 20)
    assert (str(e.value), e.value.status_hint) == ("header block too large on stream", 513)
    f = StreamFramer(max_message=100)
    with pytest.raises(RemoteProtocolError) as e:
        f.feed(msg("MESSAGE sip:a@b.example.com SIP/2.0", "l: 60"))
    assert (str(e.value), e.value.status_hint) == ("message too large (106 bytes)", 513)
    f = StreamFramer()
    fed = 0
    with pytest.raises(RemoteProtocolError) as e:
        for _ in range(MAX_MESSAGE + 10):  # one byte at a time, never a blank line
            fed += 1
            f.feed(b"x")
    assert e.value.status_hint == 513
    assert fed == MAX_MESSAGE + 1


@pytest.mark.parametrize(("head", "message"), [
    (("OPTIONS sip:a@b.example.com SIP/2.0", "Call-ID: 1"),
     "missing Content-Length on a stream transport"),
    (("OPTIONS sip:a@b.example.com SIP/2.0", "Content-Length: -1"), "bad Content-Length: '-1'"),
    (("OPTIONS sip:a@b.example.com SIP/2.0", "Content-Length: 1", "l: 2"),
     "conflicting Content-Length headers"),
])
def test_framer_errors(head: tuple[str, ...], message: str) -> None:
    with pytest.raises(RemoteProtocolError) as e:
        StreamFramer().feed(msg(*head))
    assert str(e.value) == message
