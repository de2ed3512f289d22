"""SIP/SIPS URIs, other URIs and name-addr values (RFC 3261 §19.1, §20.10, §25.1)."""

from __future__ import annotations

import pytest

from deskphone.sip import uri as uri_mod
from deskphone.sip.errors import RemoteProtocolError
from deskphone.sip.uri import (
    Address,
    GenericUri,
    SipUri,
    drop_param,
    get_param,
    parse_params,
    parse_uri,
    quote,
    set_param,
    unquote,
    valid_host,
)


def rejects(text: str, message: str, hint: int = 400) -> None:
    with pytest.raises(RemoteProtocolError) as e:
        SipUri.parse(text)
    assert str(e.value) == message
    assert e.value.status_hint == hint


# ---------------------------------------------------------------- SIP URIs


def test_full_sip_uri() -> None:
    u = SipUri.parse("sip:alice:secret@atlanta.example.com:5061;transport=tcp;lr?subject=hi&x=1")
    assert u == SipUri(
        host="atlanta.example.com", user="alice", password="secret", port=5061,
        params=(("transport", "tcp"), ("lr", None)),
        headers=(("subject", "hi"), ("x", "1")), scheme="sip")
    assert str(u) == "sip:alice:secret@atlanta.example.com:5061;transport=tcp;lr?subject=hi&x=1"
    assert u.transport == "tcp"
    assert u.loose_route
    assert u.aor() == "sip:alice@atlanta.example.com:5061"


def test_host_only() -> None:
    u = SipUri.parse("sip:pbx.example.com")
    assert (u.user, u.host, u.port, u.params, u.headers) == (None, "pbx.example.com", None, (), ())
    assert u.transport == "udp"  # RFC 3261 §19.1.2 default
    assert not u.loose_route
    assert u.aor() == "sip:pbx.example.com"


def test_ipv4_host_and_port() -> None:
    u = SipUri.parse("sip:1001@192.168.1.50:5060;transport=udp")
    assert (u.user, u.host, u.port) == ("1001", "192.168.1.50", 5060)
    assert u.param("TRANSPORT") == "udp"  # parameter names are case-insensitive


def test_ipv6_reference() -> None:
    u = SipUri.parse("sip:bob@[2001:DB8::10]:5070;maddr=[2001:db8::1]")
    assert u.host == "[2001:db8::10]"
    assert u.host_bare == "2001:db8::10"
    assert u.port == 5070
    assert u.param("maddr") == "[2001:db8::1]"
    assert str(u) == "sip:bob@[2001:db8::10]:5070;maddr=[2001:db8::1]"


def test_sips_defaults_to_tls() -> None:
    u = SipUri.parse("sips:alice@example.com")
    assert u.scheme == "sips"
    assert u.transport == "tls"
    assert SipUri.parse("sips:alice@example.com;transport=TCP").transport == "tcp"


def test_scheme_and_host_case_are_normalised_user_is_not() -> None:
    u = SipUri.parse("SIP:Alice@Example.COM")
    assert (u.scheme, u.user, u.host) == ("sip", "Alice", "example.com")
    assert str(u) == "sip:Alice@example.com"


def test_escapes_are_kept_as_they_came() -> None:
    # RFC 4475 esc01: the parser keeps %HH; comparing unescaped is the caller's job
    u = SipUri.parse("sip:sips%3Auser%40example.com@example.net")
    assert u.user == "sips%3Auser%40example.com"
    assert u.host == "example.net"


def test_user_part_may_hold_semicolons() -> None:
    # RFC 4475 semiuri: ";par=..." before the '@' belongs to the user part
    u = SipUri.parse("sip:user;par=u%40example.net@example.com")
    assert u.user == "user;par=u%40example.net"
    assert u.params == ()


def test_valueless_and_repeated_params() -> None:
    u = SipUri.parse("sip:h.example.com;lr;ob;foo=1;foo=2")
    assert u.param("lr") == ""
    assert u.param("foo") == "1"  # the first one
    assert u.param("nope") is None


def test_with_and_without_param() -> None:
    u = SipUri.parse("sip:a@b.example.com;transport=udp")
    v = u.with_param("lr").with_param("transport", "tcp")
    assert str(v) == "sip:a@b.example.com;lr;transport=tcp"
    assert str(v.without_param("LR")) == "sip:a@b.example.com;transport=tcp"
    assert str(u) == "sip:a@b.example.com;transport=udp"  # immutable


def test_uri_headers() -> None:
    u = SipUri.parse("sip:user@example.com?Route=%3Csip:sip.example.com%3E")
    assert u.headers == (("Route", "%3Csip:sip.example.com%3E"),)


@pytest.mark.parametrize("text", [
    "sip:a@b.example.com", "sip:a@b.example.com:5060", "sips:[::1]:5061;transport=tls",
    "sip:+1-212-555-1212:1234@gateway.com;user=phone", "sip:alice;day=tuesday@atlanta.com",
    "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
    "sip:host.example.com.", "sip:10.0.0.1;lr", "sip:%61lice@atlanta.com;transport=TCP",
])
def test_str_round_trips(text: str) -> None:
    assert str(SipUri.parse(text)) == text
    assert SipUri.parse(str(SipUri.parse(text))) == SipUri.parse(text)


@pytest.mark.parametrize("text", [
    "sip:1001@192.168.1.50:5060;transport=udp", "sip:pbx.example.com", "sip:192.168.1.10;lr",
    "sips:a%20b@h.example.com:1;x=y;z", "sip:user;par=u%40example.net@example.com",
    "sip:a@h.example.com:65535", "sip:h.example.com:99999", "sip:a@1.2.3.4.example",
    "sip:a@256.1.1.1", "sip:a@h;x=a=b",
])
def test_fast_path_agrees_with_full_parser(text: str) -> None:
    try:
        fast = uri_mod._parse_sip_uri(text)
    except RemoteProtocolError as e:
        with pytest.raises(RemoteProtocolError):
            SipUri._parse(text)
        assert "bad" in str(e)
        return
    assert fast == SipUri._parse(text)


def test_bad_uris() -> None:
    rejects("sip:", "SIP URI 'sip:': bad host ''")
    rejects("sip:a@b:0", "bad port in SIP URI 'sip:a@b:0': '0' (not in 1-65535)")
    rejects("sip:a@b:65536", "bad port in SIP URI 'sip:a@b:65536': '65536' (not in 1-65535)")
    rejects("sip:a@b:", "bad port in SIP URI 'sip:a@b:': ''")
    rejects("sip:a@b:²", "bad port in SIP URI 'sip:a@b:²': '²'")  # not int()'s ValueError
    rejects("sip:a@b_c.com", "SIP URI 'sip:a@b_c.com': bad host 'b_c.com'")
    rejects("sip:a@[1::2::3]", "SIP URI 'sip:a@[1::2::3]': bad host '[1::2::3]'")
    rejects("sip:@host.com", "SIP URI 'sip:@host.com': bad user part ''")
    rejects("sip:a%zz@host.com", "SIP URI 'sip:a%zz@host.com': bad user part 'a%zz'")
    rejects("sip:a b@host.com", "SIP URI 'sip:a b@host.com': whitespace inside")
    rejects("sip:a@host.com; lr", "SIP URI 'sip:a@host.com; lr': whitespace inside")
    rejects("sip:a@host.com;", "SIP URI 'sip:a@host.com;': bad parameter ''")
    rejects("sip:a@host.com;x=", "SIP URI 'sip:a@host.com;x=': bad parameter 'x='")
    rejects('sip:a@host.com;x="y"', """SIP URI 'sip:a@host.com;x="y"': bad parameter in ';x="y"'""")
    rejects("sip:a@host.com?x", "SIP URI 'sip:a@host.com?x': bad header 'x'")
    rejects("http://example.com", "not a SIP URI: 'http://example.com'")


# ---------------------------------------------------------------- cache


def test_parse_is_memoised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uri_mod, "_URI_CACHE", {})
    a = SipUri.parse("sip:cache-test@example.com")
    assert SipUri.parse("sip:cache-test@example.com") is a


def test_cache_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    cache: dict[str, SipUri] = {}
    monkeypatch.setattr(uri_mod, "_URI_CACHE", cache)
    monkeypatch.setattr(uri_mod, "_URI_CACHE_SIZE", 0)
    a = SipUri.parse("sip:nocache@example.com")
    b = SipUri.parse("sip:nocache@example.com")
    assert a == b and a is not b
    assert cache == {}


def test_cache_is_bounded_and_skips_long_uris(monkeypatch: pytest.MonkeyPatch) -> None:
    cache: dict[str, SipUri] = {}
    monkeypatch.setattr(uri_mod, "_URI_CACHE", cache)
    monkeypatch.setattr(uri_mod, "_URI_CACHE_SIZE", 4)
    for i in range(10):
        SipUri.parse(f"sip:u{i}@example.com")
        assert len(cache) <= 4
    cache.clear()
    SipUri.parse("sip:" + "a" * 300 + "@example.com")
    assert cache == {}


# ---------------------------------------------------------------- other URIs


def test_generic_uris() -> None:
    t = parse_uri("tel:+1-201-555-0123;phone-context=example.com")
    assert isinstance(t, GenericUri)
    assert t.scheme == "tel"
    assert str(t) == "tel:+1-201-555-0123;phone-context=example.com"
    assert parse_uri("urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6").scheme == "urn"
    assert isinstance(parse_uri(" sip:a@b.example.com "), SipUri)
    # "sipx:" is some other scheme, not a misspelt sip:
    assert parse_uri("sipx:whatever") == GenericUri("sipx:whatever")


@pytest.mark.parametrize(("text", "message"), [
    ("", "not a URI: ''"),
    ("nocolon", "not a URI: 'nocolon'"),
    ("tel:", "not a URI: 'tel:'"),
    ("1tel:123", "not a URI: '1tel:123'"),
    ("http://a b", "not a URI: 'http://a b'"),
    ("urn:<x>", "not a URI: 'urn:<x>'"),
])
def test_bad_generic_uris(text: str, message: str) -> None:
    with pytest.raises(RemoteProtocolError) as e:
        parse_uri(text)
    assert str(e.value) == message


def test_valid_host() -> None:
    for good in ("example.com", "a-b.example.com", "example.com.", "10.1.2.3", "[::1]",
                 "[2001:db8::1]", "localhost", "x1"):
        assert valid_host(good), good
    for bad in ("", "-a.com", "a-.com", "1.2.3.256x", "[::g]", "[1.2.3.4]", "a..b", "1abc"):
        assert not valid_host(bad), bad


# ---------------------------------------------------------------- params


def test_param_helpers() -> None:
    ps = parse_params(" ; tag = abc ;lr; q=0.5", "test")
    assert ps == (("tag", "abc"), ("lr", None), ("q", "0.5"))
    assert get_param(ps, "TAG") == "abc"
    assert get_param(ps, "lr") == ""
    assert get_param(ps, "x") is None
    assert set_param(ps, "Tag", "new") == (("lr", None), ("q", "0.5"), ("Tag", "new"))
    assert drop_param(ps, "LR") == (("tag", "abc"), ("q", "0.5"))
    assert parse_params("", "test") == ()


def test_quoted_param_values() -> None:
    ps = parse_params(';+sip.instance="<urn:uuid:1;2,3>";expires=60', "Contact")
    assert ps == (("+sip.instance", '"<urn:uuid:1;2,3>"'), ("expires", "60"))


@pytest.mark.parametrize(("text", "message"), [
    (";", "h: bad parameter ''"),
    (";;a", "h: bad parameter ''"),
    (";a b", "h: bad parameter 'a b'"),
    (";a=", "h: bad parameter 'a='"),
    (";a=b c", "h: bad parameter 'a=b c'"),
    (';a="b', """h: bad parameter 'a="b'"""),
    (';a="b"c', """h: bad parameter 'a="b"c'"""),
    (";a=<b>", "h: bad parameter 'a=<b>'"),
    (";a,b", "h: bad parameter 'a,b'"),
])
def test_bad_params(text: str, message: str) -> None:
    with pytest.raises(RemoteProtocolError) as e:
        parse_params(text, "h")
    assert str(e.value) == message


# ---------------------------------------------------------------- name-addr / addr-spec


def test_name_addr_with_quoted_display_name() -> None:
    a = Address.parse('"Desk 1001" <sip:1001@pbx.example.com;transport=udp>;tag=a73kszlfl', "From")
    assert a.display_name == "Desk 1001"
    assert a.uri == SipUri(host="pbx.example.com", user="1001", params=(("transport", "udp"),))
    assert a.params == (("tag", "a73kszlfl"),)
    assert a.tag == "a73kszlfl"
    # a display name of tokens needs no quotes (RFC 3261 §25.1 display-name)
    assert str(a) == "Desk 1001 <sip:1001@pbx.example.com;transport=udp>;tag=a73kszlfl"
    assert Address.parse(str(a)) == a


def test_display_name_escapes() -> None:
    a = Address.parse(r'"J Rosenberg \\\"" <sip:jdrosen@example.com>', "From")
    assert a.display_name == 'J Rosenberg \\"'
    assert str(a) == r'"J Rosenberg \\\"" <sip:jdrosen@example.com>'
    assert Address.parse(str(a)) == a


def test_unquoted_display_name_tokens() -> None:
    a = Address.parse("Alice  Smith <sip:alice@example.com>", "To")
    assert a.display_name == "Alice Smith"  # LWS between tokens is one SP
    # RFC 4475 lwsdisp: no LWS before '<' is fine
    assert Address.parse("caller<sip:caller@example.com>;tag=323").display_name == "caller"
    # RFC 4475 intmeth: every non-alphanumeric token character
    odd = Address.parse("token1~` token2'+_ token3*%!.- <sip:mundane@example.com>")
    assert odd.display_name == "token1~` token2'+_ token3*%!.-"


def test_display_name_that_needs_quotes_is_quoted_on_output() -> None:
    a = Address(SipUri(host="example.com", user="bob"), "Bob, the builder")
    assert str(a) == '"Bob, the builder" <sip:bob@example.com>'
    assert Address.parse(str(a)).display_name == "Bob, the builder"


def test_quote_escapes_controls_and_drops_line_ends() -> None:
    assert quote('a"b\\c') == r'"a\"b\\c"'
    assert quote("bel\x07 del\x7f") == '"bel\\\x07 del\\\x7f"'
    assert quote("two\r\nlines") == '"two  lines"'
    assert unquote(quote("nul\x00 \\ \"")) == "nul\x00 \\ \""
    assert unquote("plain") == "plain"


def test_addr_spec_params_belong_to_the_header() -> None:
    # RFC 3261 §20.10: without <>, ";tag" etc. are header parameters
    a = Address.parse("sip:+19725552222@gw1.example.net;unknownparam;tag=x", "Contact")
    assert a.uri == SipUri(host="gw1.example.net", user="+19725552222")
    assert a.params == (("unknownparam", None), ("tag", "x"))
    # inside <> they belong to the URI
    b = Address.parse("<sip:+19725552222@gw1.example.net;unknownparam>", "Contact")
    assert b.uri.params == (("unknownparam", None),)  # type: ignore[union-attr]
    assert b.params == ()


def test_addr_spec_with_lws_before_params() -> None:
    # RFC 4475 wsinv: LWS around ';' and '=' in an addr-spec To
    a = Address.parse("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n", "To")
    assert a.uri == SipUri(host="chair-dnrc.example.com", user="vivekg")
    assert a.tag == "1918181833n"


def test_non_sip_uri_in_address() -> None:
    a = Address.parse("isbn:2983792873", "To")
    assert a.uri == GenericUri("isbn:2983792873")
    with pytest.raises(RemoteProtocolError) as e:
        a.sip_uri  # noqa: B018
    assert str(e.value) == "not a SIP URI: isbn:2983792873"
    assert e.value.status_hint == 416
    assert Address.parse("<sip:a@b.example.com>").sip_uri.user == "a"


def test_with_param() -> None:
    a = Address.parse("<sip:a@b.example.com>;tag=1")
    assert str(a.with_param("tag", "2")) == "<sip:a@b.example.com>;tag=2"
    assert str(a.with_param("lr")) == "<sip:a@b.example.com>;tag=1;lr"


@pytest.mark.parametrize(("text", "message"), [
    ('"Mr. J. User <sip:j.user@example.com>',
     """To: unterminated quoted string in '"Mr. J. User <sip:j.user@example.com>'"""),
    ("<sip:a@b.example.com", "To: unclosed '<' in '<sip:a@b.example.com'"),
    ("Bell, Alexander <sip:a.g.bell@example.com>",
     "To: bad display name in 'Bell, Alexander <sip:a.g.bell@example.com>'"),
    ('"a" b <sip:a@b.example.com>', """To: bad display name in '"a" b <sip:a@b.example.com>'"""),
    ('"a"b" <sip:a@b.example.com>',
     """To: unterminated quoted string in '"a"b" <sip:a@b.example.com>'"""),
    ('"Watson" < sip:t.watson@example.org >',
     """To: spaces inside <...> in '"Watson" < sip:t.watson@example.org >'"""),
    ("<sip:a@b.example.com> junk", "To: unexpected text after '>' in '<sip:a@b.example.com> junk'"),
    ("sip:user@example.com?Route=%3Csip:sip.example.com%3E",
     "To: URI with ',', '?' or spaces needs <...>: "
     "'sip:user@example.com?Route=%3Csip:sip.example.com%3E'"),
    ("sip:a@b.example.com;;", "To: bad parameter ''"),
    ("", "not a URI: ''"),
])
def test_bad_addresses(text: str, message: str) -> None:
    with pytest.raises(RemoteProtocolError) as e:
        Address.parse(text, "To")
    assert str(e.value) == message
    assert e.value.status_hint == 400
