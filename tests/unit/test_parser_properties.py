"""Property tests of the SIP parser (hypothesis).

(a) serialising is stable: bytes(parse(bytes(parse(x)))) == bytes(parse(x));
(b) fuzz: parse_message, and every accessor of what it returns, raise
    RemoteProtocolError or nothing (h11's invariant);
(c) SipUri.parse(str(u)) == u, through the fast path and the full parser alike;
    the Request-URI check that lets parse_message build the SipUri later never
    accepts what SipUri.parse rejects, and the later SipUri is the eager one;
(d) StreamFramer cuts the same frames whatever the TCP segment boundaries.
"""

from __future__ import annotations

import os
import re
from contextlib import suppress
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deskphone.sip import uri as uri_mod
from deskphone.sip.errors import RemoteProtocolError
from deskphone.sip.message import (
    _FAST_REQUEST_LINE_RE,
    _KNOWN,
    COMPACT,
    Headers,
    Message,
    Request,
    Response,
    StreamFramer,
    Via,
    _parse_request_line,
    _UnbuiltUri,
    parse_message,
)
from deskphone.sip.uri import Address, SipUri

HERE = Path(__file__).parent
SHARED = Path(os.environ.get("SHARED_DIR") or HERE.resolve().parents[2] / "shared")
CORPUS = [p.read_bytes() for p in sorted((SHARED / "corpus" / "sip").glob("*.sip"))]
SEEDS = CORPUS + [p.read_bytes() for p in sorted((HERE / "torture").glob("*.sip"))]

FAST = settings(max_examples=100, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ---------------------------------------------------------------- strategies

ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
TOKEN_CHARS = ALNUM + "-.!%*_+`'~"
escaped = st.sampled_from("0123456789ABCDEFabcdef").map(str)
escape = st.tuples(escaped, escaped).map(lambda t: "%" + t[0] + t[1])


def chars_or_escapes(alphabet: str, min_size: int = 0) -> st.SearchStrategy[str]:
    return st.lists(st.one_of(st.sampled_from(alphabet), escape), min_size=min_size,
                    max_size=12).map("".join)


token = st.text(TOKEN_CHARS, min_size=1, max_size=10)
LOWER = "abcdefghijklmnopqrstuvwxyz"
hyphenated = st.sampled_from(["", "-a", "--9", "-x1"])  # a '-' never ends a label
label = st.builds(str.__add__, st.text(LOWER + "0123456789", min_size=1, max_size=6), hyphenated)
toplabel = st.builds(lambda a, b, c: a + b + c, st.sampled_from(LOWER),
                     st.text(LOWER + "0123456789", max_size=5), hyphenated)
hostname = st.builds(lambda ls, t: ".".join([*ls, t]), st.lists(label, max_size=3), toplabel)
host = st.one_of(
    hostname,
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a.compressed}]"),
)
user = chars_or_escapes(ALNUM + "-_.!~*'()&=+$,;?/", min_size=1)
password = chars_or_escapes(ALNUM + "-_.!~*'()&=+$,")
pvalue = chars_or_escapes(ALNUM + "-_.!~*'()[]/:&+$", min_size=1)
hnv = chars_or_escapes(ALNUM + "-_.!~*'()[]/?:+$")


@st.composite
def sip_uris(draw: st.DrawFn) -> SipUri:
    u = draw(st.none() | user)
    return SipUri(
        scheme=draw(st.sampled_from(["sip", "sips"])),
        user=u,
        password=draw(password) if u is not None and draw(st.booleans()) else None,
        host=draw(host),
        port=draw(st.none() | st.integers(1, 65535)),
        params=tuple(draw(st.lists(st.tuples(token, st.none() | pvalue), max_size=3))),
        headers=tuple(draw(st.lists(st.tuples(hnv.filter(bool), hnv), max_size=2))),
    )


# header values: any text but CR and LF (and no surrogates: they cannot be UTF-8)
value_text = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"),
                     max_size=30)
known_names = [n for n in _KNOWN if n != "Content-Length"]
compact_names = [c for c, n in COMPACT.items() if n != "Content-Length"]


@st.composite
def header_names(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["known", "compact", "unknown"]))
    if kind == "known":
        name = draw(st.sampled_from(known_names))
    elif kind == "compact":
        name = draw(st.sampled_from(compact_names))
    else:
        name = "X-" + draw(token)
    # header names are case-insensitive: mix the case
    flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    return "".join(c.swapcase() if f else c for c, f in zip(name, flips, strict=True))


@st.composite
def header_lines(draw: st.DrawFn) -> list[str]:
    name = draw(header_names())
    before = draw(st.sampled_from(["", " ", "\t", "  "]))
    after = draw(st.sampled_from(["", " ", "  ", "\t"]))
    value = draw(value_text)
    words = value.split(" ")
    if len(words) > 1 and draw(st.booleans()):
        # fold at a space: RFC 3261 §7.3.1 continuation lines
        cut = draw(st.integers(1, len(words) - 1))
        indent = draw(st.sampled_from([" ", "\t", "   "]))
        return [f"{name}{before}:{after}{' '.join(words[:cut])}",
                indent + " ".join(words[cut:])]
    return [f"{name}{before}:{after}{value}"]


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        method = draw(st.sampled_from(["INVITE", "ACK", "BYE", "OPTIONS", "REGISTER"]) | token)
        target = draw(st.one_of(sip_uris().map(lambda u: str(SipUri(
            host=u.host, user=u.user, port=u.port, params=u.params, scheme=u.scheme))),
            st.just("tel:+12015550123")))
        start = f"{method} {target} SIP/2.0"
    else:
        reason = draw(st.text(st.characters(blacklist_categories=["Cs"],
                                            blacklist_characters="\r\n"), max_size=20))
        start = f"SIP/2.0 {draw(st.integers(100, 699))} {reason}"
    lines = [start]
    for hl in draw(st.lists(header_lines(), max_size=8)):
        lines += hl
    body = draw(st.binary(max_size=40))
    clen = draw(st.sampled_from(["none", "exact", "short-body-extra"]))
    if clen != "none":
        spelling = draw(st.sampled_from(["Content-Length", "l", "content-length", "L"]))
        at = draw(st.integers(1, len(lines)))
        if lines[at:] and lines[at][:1] in " \t":
            at = len(lines)  # not between a header and its continuation
        n = len(body) if clen == "exact" else len(body) // 2
        lines.insert(at, f"{spelling}: {n}")
    eol = draw(st.sampled_from(["\r\n", "\r\n", "\n"]))
    lead = draw(st.sampled_from(["", "\r\n", "\r\n\r\n"]))
    return (lead + eol.join(lines) + eol + eol).encode() + body


# ---------------------------------------------------------------- (a) stability


@FAST
@given(messages())
def test_serialise_parse_is_stable(data: bytes) -> None:
    m = parse_message(data)
    once = bytes(m)
    m2 = parse_message(once)
    assert bytes(m2) == once
    assert m2.headers.remove("l") == m.headers.remove("l")
    assert m2.body == m.body
    if isinstance(m, Request):
        assert isinstance(m2, Request)
        assert (m2.method, m2.uri) == (m.method, m.uri)
    else:
        assert isinstance(m2, Response)
        assert (m2.status, m2.reason) == (m.status, m.reason)
    # and over a stream, framed by our own Content-Length
    assert StreamFramer().feed(once) == [once]
    assert bytes(parse_message(once, stream=True)) == once


# ---------------------------------------------------------------- (b) fuzz


def exercise(m: Message) -> None:
    """Read everything a caller might; only RemoteProtocolError may come out."""
    accessors = ["vias", "top_via", "from_", "to", "call_id", "cseq", "contacts",
                 "content_type", "expires", "min_expires", "retry_after", "max_forwards",
                 "rseq"]
    for name in accessors:
        with suppress(RemoteProtocolError):
            getattr(m, name)
    with suppress(RemoteProtocolError):
        for v in m.vias:
            v.rport  # noqa: B018
    with suppress(RemoteProtocolError):
        for c in m.contacts:
            c.expires  # noqa: B018
    for name in ("Route", "Record-Route", "Contact", "To"):
        with suppress(RemoteProtocolError):
            for a in m.addresses(name):
                str(a)
                a.tag  # noqa: B018
                with suppress(RemoteProtocolError):
                    a.sip_uri.transport  # noqa: B018
    for n, _ in m.headers:
        m.headers.get_all(n)
    if isinstance(m, Request):
        str(m.uri)
    # whatever parsed serialises, and that parses back to the same bytes
    once = bytes(m)
    assert bytes(parse_message(once)) == once


def parse_or_reject(data: bytes) -> None:
    for stream in (False, True):
        try:
            m = parse_message(data, stream=stream)
        except RemoteProtocolError:
            continue
        exercise(m)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data: bytes) -> None:
    parse_or_reject(data)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([b"\r\n", b"\n", b"\r", b":", b" ", b"\t", b";", b",", b"<",
                                 b">", b'"', b"\\", b"SIP/2.0", b"sip:", b"@", b"=",
                                 b"INVITE", b"Via", b"l", b"0", b"9", b"\xc2\xb2", b"\xff"]),
                max_size=60).map(b"".join))
def test_fuzz_sip_shaped_bytes(data: bytes) -> None:
    parse_or_reject(data)


# numbers that break naive code: signs, overflow, digits str.isdigit() likes but
# int() not ('²'), or int() too ('٣'), and more digits than int() converts (4,300)
NUMBERS = [b"", b"0", b"-1", b"+1", b"00", b"65536", b"4294967296", b"99999999999999999999999",
           b"1.5", b" 1", b"\xc2\xb2", b"\xef\xbc\x95", b"\xd9\xa3", b"1\xc2\xb2",
           b"9" * 4301, b"0" * 5000 + b"1", b"+" + b"9" * 5000]

NUMBER_FIELDS = [re.compile(p) for p in (
    rb"(Content-Length: *)[0-9]+", rb"(CSeq: *)[0-9]+", rb"(^SIP/2.0 )[0-9]+",
    rb"(sip:[^;>\s]*:)[0-9]+", rb"(SIP/2.0/[A-Z]+ [^;:\s]+:)[0-9]+", rb"(expires=)[0-9]+",
    rb"(rport=)[0-9]+", rb"(Max-Forwards: *)[0-9]+", rb"(Expires: *)[0-9]+",
    rb"(Min-Expires: *)[0-9]+", rb"(Retry-After: *)[0-9]+", rb"(RSeq: *)[0-9]+")]


@st.composite
def mutated_seeds(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "dup_line", "truncate", "swap",
                                   "number", "field"]))
        i = draw(st.integers(0, len(data)))
        if op == "field":
            # replace the number in a field that is read as one
            pattern = draw(st.sampled_from(NUMBER_FIELDS))
            number = draw(st.sampled_from(NUMBERS))
            data = bytearray(pattern.sub(lambda m, n=number: m[1] + n, bytes(data), count=1))
            continue
        if op == "number":
            # replace a run of digits (a port, a CSeq, a length, a status code...)
            start = next((j for j in range(i, len(data)) if 48 <= data[j] <= 57), None)
            if start is not None:
                end = start
                while end < len(data) and 48 <= data[end] <= 57:
                    end += 1
                data[start:end] = draw(st.sampled_from(NUMBERS))
            continue
        if op == "flip" and i < len(data):
            data[i] = draw(st.sampled_from([0, 9, 10, 13, 32, 34, 44, 58, 59, 60, 62, 64, 92,
                                            0x7F, 0xC2, 0xFF, data[i] ^ 0x20]))
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8) | st.sampled_from(
                [b"\r\n", b"\r\n ", b"\r\n\r\n", b";;", b",", b'"', b"<", b"%", b"\r"]))
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 20))]
        elif op == "dup_line":
            start = data.rfind(b"\r\n", 0, i) + 2
            end = data.find(b"\r\n", i)
            if start >= 2 and end > start:
                data[end:end] = b"\r\n" + data[start:end]
        elif op == "truncate":
            del data[i:]
        elif op == "swap" and len(data) > 1:
            j = draw(st.integers(0, len(data) - 1))
            if i < len(data):
                data[i], data[j] = data[j], data[i]
    return bytes(data)


@settings(max_examples=300, deadline=None)
@given(mutated_seeds())
def test_fuzz_mutated_corpus(data: bytes) -> None:
    parse_or_reject(data)


# ---------------------------------------------------------------- (c) URIs


@FAST
@given(sip_uris())
def test_sip_uri_round_trip(u: SipUri) -> None:
    text = str(u)
    assert SipUri._parse(text) == u
    assert uri_mod._parse_sip_uri(text) == u  # the fast path, when it applies
    assert SipUri.parse(text) == u
    assert SipUri.parse(text.upper().replace(u.host.upper(), u.host)).scheme == u.scheme


@FAST
@given(st.text(ALNUM + "-_.!~*'()&=+$,;?/:@[]%<> \"\\", max_size=40).map(lambda s: "sip:" + s))
def test_uri_fast_path_never_disagrees(text: str) -> None:
    same_outcome(uri_mod._parse_sip_uri, SipUri._parse, text)


def same_outcome(fast, full, text: str) -> None:  # type: ignore[no-untyped-def]
    """The fast path must give what the full parser gives, error or value."""
    def outcome(f):  # type: ignore[no-untyped-def]
        try:
            return f(text)
        except RemoteProtocolError:
            return "rejected"
    assert outcome(fast) == outcome(full)


# URIs a peer might send, and pieces to break them with: separators, escapes,
# ports out of range or with leading zeros, case, IPv6, whitespace, non-ASCII
URI_SEEDS = ["sip:1001@192.168.1.50:5060;transport=udp", "sip:pbx.example.com",
             "sips:alice@atlanta.example.com;lr;maddr=10.0.0.1", "sip:[2001:db8::1]:5061",
             "sip:a:pw@h.example.com", "sip:h.example.com?subject=x&priority=urgent",
             "sip:%61lice@h.example.com:65535;x=%41", "sip:255.255.255.255:1"]
URI_PIECES = ["@", ":", ";", "=", "?", "&", "%", "%4", "%41", "[", "]", ".", "-", "_", " ", "\t",
              "0", "1", "9", "00", "65535", "65536", "99999", "0.0", "256", "A", "é", "²", "<",
              ">", '"', "\\", "sip:", "SIP:", "sips:", "/", "..", "--", "a", "lr", ";lr",
              ":5060", ":0", ":05060"]


@st.composite
def mutated_uris(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(URI_SEEDS) | sip_uris().map(str))
    for _ in range(draw(st.integers(0, 4))):
        # often at an end or next to a separator, where a check goes wrong
        seps = [j for j, c in enumerate(text) if c in ":@;=?.[]"]
        i = draw(st.integers(0, len(text)) | st.sampled_from([4, len(text), *seps]))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = draw(st.sampled_from(URI_PIECES))
        if op == "insert":
            text = text[:i] + piece + text[i:]
        elif op == "delete":
            text = text[:i] + text[i + draw(st.integers(1, 6)) :]
        else:
            text = text[:i] + piece + text[i + len(piece) :]
    return text


def near(right: st.SearchStrategy[str], *wrong: str) -> st.SearchStrategy[str]:
    """Mostly ``right``, a quarter of the time one of ``wrong``."""
    return st.sampled_from([right, right, right, st.sampled_from(wrong)]).flatmap(lambda s: s)


# URI text put together part by part, each part right or nearly right
near_sip_uris = st.tuples(
    near(st.sampled_from(["sip", "sips"]), "SIP", "Sips", "sipx", "tel", ""),
    near(st.just("") | user.map(lambda u: u + "@")
         | st.tuples(user, password).map(lambda t: f"{t[0]}:{t[1]}@"),
         "@", "a b@", "a%4@", "é@", "a@b@", "a:b:c@", "<a>@"),
    near(host, "", "256.1.1.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "-b", "b-", "b..c", "b_c",
         "[::1", "[zz::1]", "b.example.com..", "é.example.com", "1.2.3.4a"),
    near(st.just("") | st.integers(1, 65535).map(lambda n: f":{n}"),
         ":", ":0", ":00", ":05060", ":65536", ":99999", ":123456", ":5060a", ": 5060", ":²"),
    st.lists(st.tuples(near(token, "", "a b", 'a"', "é"),
                       near(st.just("") | pvalue.map(lambda v: "=" + v),
                            "=", '="x"', "=%4", "=a b", "=a;b", "==", "=é"))
             .map(lambda t: ";" + t[0] + t[1]), max_size=3).map("".join),
    near(st.just("") | st.lists(st.tuples(hnv.filter(bool), hnv), min_size=1, max_size=2)
         .map(lambda hs: "?" + "&".join(f"{k}={v}" for k, v in hs)),
         ";", "?", "?x", "&", " ", "\t", ">"),
).map(lambda parts: parts[0] + ":" + "".join(parts[1:]))


def check_request_uri(text: str) -> None:
    """What parse_message's fast path makes of a Request-URI is what the full
    request-line parser makes of it: the same error, or an equal request whose
    URI SipUri.parse would give."""
    line = f"OPTIONS {text} SIP/2.0"
    if _FAST_REQUEST_LINE_RE.match(line) is not None:
        # the check accepts it: the full parser must, with no headers in the URI
        eager = SipUri._parse(text)
        assert eager.headers == ()
        assert uri_mod._parse_sip_uri(text) == eager
        m = parse_message(f"{line}\r\n\r\n".encode())
        assert isinstance(m, Request)
        assert type(Request.__dict__["uri"]._get(m)) is _UnbuiltUri
        assert m.uri == eager  # built now, and what the eager parse gives
        assert m.uri is m.uri
    same_outcome(lambda _: parse_message(f"{line}\r\n\r\n".encode()),
                 lambda _: _parse_request_line(line, Headers(), b""), text)


@settings(max_examples=500, deadline=None)
@given(mutated_uris())
def test_request_uri_check_never_accepts_what_the_parser_rejects(text: str) -> None:
    check_request_uri(text)


@FAST
@given(sip_uris())
def test_request_uri_check_on_generated_uris(u: SipUri) -> None:
    check_request_uri(str(u))


@settings(max_examples=1000, deadline=None)
@given(near_sip_uris)
def test_request_uri_check_on_nearly_right_uris(text: str) -> None:
    check_request_uri(text)


@FAST
@given(st.text(ALNUM + "-_.!~*'()&=+$,;?/:@[]%<> \"\\", max_size=40).map(lambda s: "sip:" + s))
def test_request_uri_check_on_random_text(text: str) -> None:
    check_request_uri(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([*URI_PIECES, "b", "h.example.com", "10.0.0.1", "x-y", "5060",
                                 "transport", "udp", "1001"]), max_size=10)
       .map(lambda parts: "sip:" + "".join(parts)))
def test_request_uri_check_on_uri_pieces(text: str) -> None:
    check_request_uri(text)


def test_request_uri_check_examples() -> None:
    for text in [*URI_SEEDS, "sip:a@b:0", "sip:a@b:65536", "sip:a@b:05060", "sip:a@b:",
                 "sip:@b", "sip:a@256.1.1.1", "sip:a@1.2.3.4.5", "sip:a@-b", "sip:a@b-",
                 "sip:a@b..c", "sip:a@b;x=", "sip:a@b;=x", "SIP:a@b", "sip:a@b;x=\"y\"",
                 "sip:a@b%41", "sip:a@b.example.com.", "sip:a@1b.example.com", "sip:a@b;",
                 "sip:a@b;;x", "sip:a@b;x;", "sip:a@b;x=y;", "sip:a@b:5060;", "sip:a@b?",
                 "sip:a@b:5060?x=y", "sip:a@@b", "sip:a@b@c", "sips:a@b.c:1;lr"]:
        check_request_uri(text)


def pieces(*parts: str) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(parts), max_size=12).map("".join)


@FAST
@given(pieces('"', "\\", " ", "a", "Bob", "<", ">", "sip:", "b@h.example.com", "tel:1", ";",
              "tag", "=", "x", ",", "%41", "\t", ":5060", "[::1]", "é"))
def test_address_fast_path_never_disagrees(text: str) -> None:
    same_outcome(Address.parse, Address._parse_full, text)


@FAST
@given(pieces("SIP/2.0/", "UDP", "tls", " ", "h.example.com", "10.0.0.1", "[::1]", ":", "5060",
              "99999", ";", "branch", "=", "z9hG4bK", "rport", '"', "/", "x", ",", "\t"))
def test_via_fast_path_never_disagrees(text: str) -> None:
    same_outcome(Via.parse, Via._parse_full, text)


# ---------------------------------------------------------------- (d) framing


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    parts: list[bytes] = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["corpus", "made", "ping"]))
        if kind == "corpus" and CORPUS:  # canonical, with Content-Length
            parts.append(draw(st.sampled_from(CORPUS)))
        elif kind == "made":
            body = draw(st.binary(max_size=30))
            parts.append(b"MESSAGE sip:a@b.example.com SIP/2.0\r\nl: %d\r\n\r\n" % len(body)
                         + body)
        else:
            parts.append(StreamFramer.PING)
    return b"".join(parts), parts


@FAST
@given(streams(), st.data())
def test_framer_split_points_do_not_matter(stream_parts: tuple[bytes, list[bytes]],
                                           data: st.DataObject) -> None:
    stream, parts = stream_parts
    whole = StreamFramer().feed(stream)
    assert whole == parts
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    f = StreamFramer()
    out: list[bytes] = []
    prev = 0
    for cut in [*cuts, len(stream)]:
        out += f.feed(stream[prev:cut])
        prev = cut
    assert out == whole
    assert f.pending == 0
