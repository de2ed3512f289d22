"""Digest authentication client: RFC vectors, the no-loop rule, parsing edge cases."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deskphone.sip.auth import (
    ALGORITHMS,
    AuthError,
    Challenge,
    Credentials,
    DigestClient,
    build_credentials,
    digest_response,
    parse_auth_params,
    parse_authorization,
)

WWW = "WWW-Authenticate"
PROXY = "Proxy-Authenticate"

# RFC 2617 §3.5
RFC2617_CHALLENGE = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)
RFC2617_CREDENTIALS = (
    'Digest username="Mufasa", realm="testrealm@host.com", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", '
    'response="6629fae49393a05397450978507c4ef1", algorithm=MD5, cnonce="0a4f113b", '
    'opaque="5ccc069c403ebaf9f0171e9517f40e41", qop=auth, nc=00000001'
)

# RFC 7616 §3.9.1, folded as printed there (SHA-256 first: the server's preference).
RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


def rfc7616_challenge(algorithm: str) -> str:
    return (
        "Digest\r\n"
        '       realm="http-auth@example.org",\r\n'
        '       qop="auth, auth-int",\r\n'
        f"       algorithm={algorithm},\r\n"
        f'       nonce="{RFC7616_NONCE}",\r\n'
        f'       opaque="{RFC7616_OPAQUE}"'
    )


RFC7616_RESPONSES = {
    "MD5": "8ca523f5e9506fed4657c9700eebdbec",
    "SHA-256": "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
}


def fixed(*values: str) -> Callable[[], str]:
    """A cnonce source that yields the given values, then cn1, cn2, ..."""
    it = itertools.chain(values, (f"cn{i}" for i in itertools.count(1)))
    return lambda: next(it)


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def h(name: str, data: str | bytes) -> str:
    return hashlib.new(name, data.encode() if isinstance(data, str) else data).hexdigest()


ALICE = Credentials("alice", "s3cr3t")


def challenge(realm: str = "atlanta.com", nonce: str = "n1", **extra: str) -> str:
    params = [f"realm={quote(realm)}", f"nonce={quote(nonce)}"]
    params += [f"{k}={v}" for k, v in extra.items()]
    return "Digest " + ", ".join(params)


def params_of(pairs: list[tuple[str, str]] | None, index: int = 0) -> dict[str, str]:
    assert pairs is not None
    name, value = pairs[index]
    return parse_authorization(name, value)


# --- published vectors -------------------------------------------------------


def test_rfc2617_vector_exact_header() -> None:
    client = DigestClient(Credentials("Mufasa", "Circle Of Life"), fixed("0a4f113b"))
    got = client.answer([(WWW, RFC2617_CHALLENGE)], "GET", "/dir/index.html")
    assert got == [("Authorization", RFC2617_CREDENTIALS)]


def test_rfc2617_vector_digest_response() -> None:
    assert (
        digest_response(
            algorithm="MD5",
            username="Mufasa",
            password="Circle Of Life",
            realm="testrealm@host.com",
            nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
            method="GET",
            uri="/dir/index.html",
            qop="auth",
            nc=1,
            cnonce="0a4f113b",
        )
        == "6629fae49393a05397450978507c4ef1"
    )


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_rfc7616_vectors(algorithm: str) -> None:
    client = DigestClient(Credentials("Mufasa", "Circle of Life"), fixed(RFC7616_CNONCE))
    got = client.answer([(WWW, rfc7616_challenge(algorithm))], "GET", "/dir/index.html")
    assert got == [
        (
            "Authorization",
            'Digest username="Mufasa", realm="http-auth@example.org", '
            f'nonce="{RFC7616_NONCE}", uri="/dir/index.html", '
            f'response="{RFC7616_RESPONSES[algorithm]}", algorithm={algorithm}, '
            f'cnonce="{RFC7616_CNONCE}", opaque="{RFC7616_OPAQUE}", qop=auth, nc=00000001',
        )
    ]


def test_rfc7616_both_challenges_sha256_chosen() -> None:
    # RFC 7616 §3.9.1 sends SHA-256 and MD5 challenges together; RFC 8760 §2.4.
    client = DigestClient(Credentials("Mufasa", "Circle of Life"), fixed(RFC7616_CNONCE))
    challenges = [(WWW, rfc7616_challenge("MD5")), (WWW, rfc7616_challenge("SHA-256"))]
    got = params_of(client.answer(challenges, "GET", "/dir/index.html"))
    assert got["algorithm"] == "SHA-256"
    assert got["response"] == RFC7616_RESPONSES["SHA-256"]


# --- SIP vectors computed independently here ---------------------------------


def test_sip_md5_without_qop_rfc2069_compatible() -> None:
    # RFC 3261 §20.44 example challenge: no qop, empty opaque, stale=FALSE.
    value = (
        'Digest realm="atlanta.com", domain="sip:boxesbybob.com", '
        'nonce="f84f1cec41e6cbe5aea9c8e88d359", opaque="", stale=FALSE, algorithm=MD5'
    )
    client = DigestClient(Credentials("bob", "zanzibar"), fixed("unused"))
    got = client.answer([(WWW, value)], "REGISTER", "sip:atlanta.com")
    ha1 = h("md5", "bob:atlanta.com:zanzibar")
    ha2 = h("md5", "REGISTER:sip:atlanta.com")
    response = h("md5", f"{ha1}:f84f1cec41e6cbe5aea9c8e88d359:{ha2}")
    assert got == [
        (
            "Authorization",
            'Digest username="bob", realm="atlanta.com", nonce="f84f1cec41e6cbe5aea9c8e88d359", '
            f'uri="sip:atlanta.com", response="{response}", algorithm=MD5, opaque=""',
        )
    ]


@pytest.mark.skipif("sha512_256" not in hashlib.algorithms_available, reason="no SHA-512/256")
def test_sip_sha512_256_with_qop_auth() -> None:
    value = challenge("biloxi.com", "abc/def==", algorithm="SHA-512-256", qop='"auth"')
    client = DigestClient(Credentials("bob", "zanzibar"), fixed("0a4f113b"))
    got = client.answer([(PROXY, value)], "INVITE", "sip:bob@biloxi.com")
    ha1 = h("sha512_256", "bob:biloxi.com:zanzibar")
    ha2 = h("sha512_256", "INVITE:sip:bob@biloxi.com")
    response = h("sha512_256", f"{ha1}:abc/def==:00000001:0a4f113b:auth:{ha2}")
    assert got == [
        (
            "Proxy-Authorization",
            'Digest username="bob", realm="biloxi.com", nonce="abc/def==", '
            f'uri="sip:bob@biloxi.com", response="{response}", algorithm=SHA-512-256, '
            'cnonce="0a4f113b", qop=auth, nc=00000001',
        )
    ]


@pytest.mark.parametrize(
    ("algorithm", "hashname"), [("MD5-sess", "md5"), ("SHA-256-sess", "sha256")]
)
def test_sess_algorithms(algorithm: str, hashname: str) -> None:
    value = challenge(algorithm=algorithm.lower(), qop="auth")
    client = DigestClient(ALICE, fixed("c1", "c2"))
    got = params_of(client.answer([(WWW, value)], "REGISTER", "sip:atlanta.com"))
    ha1 = h(hashname, f"{h(hashname, 'alice:atlanta.com:s3cr3t')}:n1:c1")
    ha2 = h(hashname, "REGISTER:sip:atlanta.com")
    assert got["algorithm"] == algorithm  # spelt as in the RFC, whatever the challenge said
    assert got["response"] == h(hashname, f"{ha1}:n1:00000001:c1:auth:{ha2}")
    # RFC 2617 §3.2.2.2: the session key is fixed for the nonce, so the cnonce is too.
    again = params_of(client.preauthorize("REGISTER", "sip:atlanta.com"))
    assert (again["cnonce"], again["nc"]) == ("c1", "00000002")


def test_md5_sess_without_qop_still_sends_cnonce() -> None:
    client = DigestClient(ALICE, fixed("c1"))
    got = params_of(client.answer([(WWW, challenge(algorithm="MD5-sess"))], "BYE", "sip:x"))
    ha1 = h("md5", f"{h('md5', 'alice:atlanta.com:s3cr3t')}:n1:c1")
    assert got["cnonce"] == "c1"
    assert "qop" not in got and "nc" not in got
    assert got["response"] == h("md5", f"{ha1}:n1:{h('md5', 'BYE:sip:x')}")


def test_auth_int_when_it_is_the_only_qop() -> None:
    body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"
    client = DigestClient(ALICE, fixed("c1"))
    got = params_of(client.answer([(WWW, challenge(qop='"auth-int"'))], "INVITE", "sip:b", body))
    ha2 = h("md5", f"INVITE:sip:b:{h('md5', body)}")
    ha1 = h("md5", "alice:atlanta.com:s3cr3t")
    assert got["qop"] == "auth-int"
    assert got["response"] == h("md5", f"{ha1}:n1:00000001:c1:auth-int:{ha2}")


def test_auth_preferred_over_auth_int() -> None:
    client = DigestClient(ALICE, fixed())
    got = params_of(client.answer([(WWW, challenge(qop='"auth-int, auth"'))], "INVITE", "sip:b"))
    assert got["qop"] == "auth"


def test_server_can_verify_the_credentials() -> None:
    client = DigestClient(ALICE, fixed("xyz"))
    got = params_of(client.answer([(WWW, challenge(qop="auth"))], "REGISTER", "sip:atlanta.com"))
    expected = digest_response(
        algorithm=got["algorithm"],
        username="alice",
        password="s3cr3t",
        realm=got["realm"],
        nonce=got["nonce"],
        method="REGISTER",
        uri=got["uri"],
        qop=got["qop"],
        nc=int(got["nc"], 16),
        cnonce=got["cnonce"],
    )
    assert got["response"] == expected


# --- choosing among challenges -----------------------------------------------


@pytest.mark.parametrize("md5_first", [True, False])
def test_sha256_preferred_over_md5(md5_first: bool) -> None:
    pairs = [
        (WWW, challenge(nonce="m", algorithm="MD5")),
        (WWW, challenge(nonce="s", algorithm="SHA-256")),
    ]
    if not md5_first:
        pairs.reverse()
    got = params_of(DigestClient(ALICE, fixed()).answer(pairs, "REGISTER", "sip:a"))
    assert (got["algorithm"], got["nonce"]) == ("SHA-256", "s")


@pytest.mark.skipif("sha512_256" not in hashlib.algorithms_available, reason="no SHA-512/256")
def test_sha512_256_preferred_over_sha256() -> None:
    pairs = [
        (WWW, challenge(nonce="a", algorithm="SHA-256")),
        (WWW, challenge(nonce="b", algorithm="SHA-512-256")),
        (WWW, challenge(nonce="c", algorithm="MD5")),
    ]
    got = params_of(DigestClient(ALICE, fixed()).answer(pairs, "REGISTER", "sip:a"))
    assert got["algorithm"] == "SHA-512-256"


def test_same_strength_takes_the_topmost() -> None:
    pairs = [(WWW, challenge(nonce="first")), (WWW, challenge(nonce="second"))]
    got = DigestClient(ALICE, fixed()).answer(pairs, "REGISTER", "sip:a")
    assert got is not None and len(got) == 1
    assert params_of(got)["nonce"] == "first"


def test_unknown_algorithm_skipped_when_another_is_usable() -> None:
    pairs = [(WWW, challenge(nonce="x", algorithm="SHA-1")), (WWW, challenge(nonce="y"))]
    got = params_of(DigestClient(ALICE, fixed()).answer(pairs, "REGISTER", "sip:a"))
    assert (got["algorithm"], got["nonce"]) == ("MD5", "y")


@pytest.mark.parametrize(
    "pairs",
    [
        [],
        [(WWW, challenge(algorithm="SHA-1"))],
        [(WWW, challenge(algorithm="AKAv1-MD5"))],
        [(WWW, challenge(qop='"auth-conf"'))],
        [(WWW, 'Basic realm="x"')],
        [(WWW, "Digest garbage")],
        [("Server", challenge())],
    ],
    ids=["none", "sha1", "aka", "qop-auth-conf", "basic", "garbage", "wrong-header"],
)
def test_nothing_answerable_gives_none(pairs: list[tuple[str, str]]) -> None:
    assert DigestClient(ALICE, fixed()).answer(pairs, "REGISTER", "sip:a") is None


def test_basic_challenge_next_to_digest_is_ignored() -> None:
    pairs = [(WWW, 'Basic realm="atlanta.com"'), (WWW, challenge())]
    got = DigestClient(ALICE, fixed()).answer(pairs, "REGISTER", "sip:a")
    assert got is not None and len(got) == 1


def test_one_header_per_realm() -> None:
    pairs = [(PROXY, challenge("a.example", "na")), (PROXY, challenge("b.example", "nb"))]
    got = DigestClient(ALICE, fixed()).answer(pairs, "INVITE", "sip:bob@b.example")
    assert got is not None
    assert [name for name, _ in got] == ["Proxy-Authorization", "Proxy-Authorization"]
    assert [params_of(got, i)["realm"] for i in range(2)] == ["a.example", "b.example"]


def test_credentials_realm_restricts_the_answer() -> None:
    creds = Credentials("alice", "s3cr3t", realm="b.example")
    pairs = [(WWW, challenge("a.example")), (WWW, challenge("b.example"))]
    got = DigestClient(creds, fixed()).answer(pairs, "REGISTER", "sip:a")
    assert got is not None and len(got) == 1
    assert params_of(got)["realm"] == "b.example"
    only_other = [(WWW, challenge("a.example"))]
    assert DigestClient(creds, fixed()).answer(only_other, "REGISTER", "sip:a") is None


# --- header names: 401 vs 407 ------------------------------------------------


@pytest.mark.parametrize(
    ("challenge_header", "credentials_header"),
    [
        ("WWW-Authenticate", "Authorization"),
        ("Proxy-Authenticate", "Proxy-Authorization"),
        ("www-authenticate", "Authorization"),
        ("PROXY-AUTHENTICATE", "Proxy-Authorization"),
    ],
)
def test_header_name_mapping(challenge_header: str, credentials_header: str) -> None:
    got = DigestClient(ALICE, fixed()).answer([(challenge_header, challenge())], "INVITE", "sip:b")
    assert got is not None and got[0][0] == credentials_header
    parsed = Challenge.parse(challenge_header, challenge())
    assert parsed.header in (WWW, PROXY)
    assert parsed.credentials_header == credentials_header


# --- the no-loop rule (RFC 3261 §22.3) and stale nonces ------------------------


def test_second_challenge_after_credentials_gives_up() -> None:
    client = DigestClient(ALICE, fixed())
    first = client.answer([(WWW, challenge(nonce="n1", qop="auth"))], "REGISTER", "sip:a")
    assert first is not None
    again = [(WWW, challenge(nonce="n2", qop="auth"))]
    assert client.answer(again, "REGISTER", "sip:a", sent=first) is None
    explicit_false = [(WWW, challenge(nonce="n2", qop="auth", stale="FALSE"))]
    assert client.answer(explicit_false, "REGISTER", "sip:a", sent=first) is None


def test_stale_challenge_is_answered_with_the_new_nonce() -> None:
    client = DigestClient(ALICE, fixed())
    first = client.answer([(WWW, challenge(nonce="n1", qop="auth"))], "REGISTER", "sip:a")
    assert first is not None
    stale = [(WWW, challenge(nonce="n2", qop="auth", stale="true"))]
    retried = client.answer(stale, "REGISTER", "sip:a", sent=first)
    got = params_of(retried)
    assert (got["nonce"], got["nc"]) == ("n2", "00000001")
    # and the refresh after that uses the new nonce too
    assert params_of(client.preauthorize("REGISTER", "sip:a"))["nonce"] == "n2"


def test_stale_with_the_nonce_just_used_gives_up() -> None:
    client = DigestClient(ALICE, fixed())
    first = client.answer([(WWW, challenge(nonce="n1"))], "REGISTER", "sip:a")
    assert first is not None
    same = [(WWW, challenge(nonce="n1", stale="TRUE"))]
    assert client.answer(same, "REGISTER", "sip:a", sent=first) is None


def test_wrong_password_after_preauthorize_gives_up() -> None:
    client = DigestClient(ALICE, fixed())
    client.answer([(WWW, challenge(nonce="n1"))], "REGISTER", "sip:a")
    sent = client.preauthorize("REGISTER", "sip:a")
    assert client.answer([(WWW, challenge(nonce="n1"))], "REGISTER", "sip:a", sent=sent) is None


def test_proxy_then_uas_challenge_carries_both() -> None:
    # INVITE -> 407 (proxy realm) -> retry -> 401 (UAS realm): the second retry still
    # needs the proxy's credentials, re-signed with the next nc.
    client = DigestClient(ALICE, fixed())
    p1 = client.answer([(PROXY, challenge("proxy.example", "pn", qop="auth"))], "INVITE", "sip:b")
    assert p1 is not None
    got = client.answer(
        [(WWW, challenge("uas.example", "un", qop="auth"))], "INVITE", "sip:b", sent=p1
    )
    assert got is not None
    assert [name for name, _ in got] == ["Proxy-Authorization", "Authorization"]
    assert (params_of(got, 0)["realm"], params_of(got, 0)["nc"]) == ("proxy.example", "00000002")
    assert (params_of(got, 1)["realm"], params_of(got, 1)["nc"]) == ("uas.example", "00000001")


def test_same_realm_in_www_and_proxy_are_different_protection_spaces() -> None:
    client = DigestClient(ALICE, fixed())
    p1 = client.answer([(PROXY, challenge("example.com", "pn"))], "INVITE", "sip:b")
    assert p1 is not None
    got = client.answer([(WWW, challenge("example.com", "wn"))], "INVITE", "sip:b", sent=p1)
    assert got is not None
    assert [name for name, _ in got] == ["Proxy-Authorization", "Authorization"]


def test_unknown_sent_credentials_pass_through_unchanged() -> None:
    foreign = ("Proxy-Authorization", 'Digest username="x", realm="other", nonce="q"')
    junk = ("Authorization", "Bearer abc")
    got = DigestClient(ALICE, fixed()).answer(
        [(WWW, challenge())], "INVITE", "sip:b", sent=[foreign, junk]
    )
    assert got is not None
    assert got[:2] == [foreign, junk]
    assert params_of(got, 2)["realm"] == "atlanta.com"


# --- nonce count and preauthorize ----------------------------------------------


def test_nc_counts_per_nonce() -> None:
    client = DigestClient(ALICE, fixed())
    assert client.preauthorize("REGISTER", "sip:a") == []
    first = client.answer([(WWW, challenge(nonce="n1", qop="auth"))], "REGISTER", "sip:a")
    assert params_of(first)["nc"] == "00000001"
    assert params_of(client.preauthorize("REGISTER", "sip:a"))["nc"] == "00000002"
    assert params_of(client.preauthorize("INVITE", "sip:b"))["nc"] == "00000003"
    # A new (not stale) challenge with a fresh nonce, sent nothing: counting restarts.
    fresh = client.answer([(WWW, challenge(nonce="n9", qop="auth"))], "REGISTER", "sip:a")
    assert params_of(fresh)["nc"] == "00000001"
    # The server re-challenging with a nonce we already used: counting continues.
    same = client.answer([(WWW, challenge(nonce="n9", qop="auth"))], "REGISTER", "sip:a")
    assert params_of(same)["nc"] == "00000002"


def test_fresh_cnonce_per_request_for_plain_algorithms() -> None:
    client = DigestClient(ALICE, fixed("c1", "c2", "c3"))
    client.answer([(WWW, challenge(qop="auth"))], "REGISTER", "sip:a")
    assert params_of(client.preauthorize("REGISTER", "sip:a"))["cnonce"] == "c2"
    assert params_of(client.preauthorize("REGISTER", "sip:a"))["cnonce"] == "c3"


def test_preauthorize_covers_every_cached_realm() -> None:
    client = DigestClient(ALICE, fixed())
    p1 = client.answer([(PROXY, challenge("p.example", "pn"))], "INVITE", "sip:b")
    assert p1 is not None
    client.answer([(WWW, challenge("u.example", "un"))], "INVITE", "sip:b", sent=p1)
    pre = client.preauthorize("INVITE", "sip:c")
    assert sorted(name for name, _ in pre) == ["Authorization", "Proxy-Authorization"]
    assert {params_of(pre, i)["uri"] for i in range(2)} == {"sip:c"}


def test_preauthorize_signs_the_new_method_and_body() -> None:
    client = DigestClient(ALICE, fixed("c1", "c2"))
    client.answer([(WWW, challenge(qop='"auth-int"'))], "REGISTER", "sip:a")
    got = params_of(client.preauthorize("MESSAGE", "sip:b", b"hi"))
    ha1 = h("md5", "alice:atlanta.com:s3cr3t")
    ha2 = h("md5", f"MESSAGE:sip:b:{h('md5', b'hi')}")
    assert got["response"] == h("md5", f"{ha1}:n1:00000002:c2:auth-int:{ha2}")


# --- no secrets in repr --------------------------------------------------------


def test_repr_hides_the_password() -> None:
    creds = Credentials("alice", "hunter2", realm="atlanta.com")
    assert repr(creds) == "Credentials(username='alice', realm='atlanta.com')"
    assert "hunter2" not in str(creds)
    client = DigestClient(creds, fixed())
    got = client.answer([(WWW, challenge())], "REGISTER", "sip:a")
    assert repr(client) == "DigestClient(username='alice', realms=['atlanta.com'])"
    ha1 = h("md5", "alice:atlanta.com:hunter2")
    assert got is not None
    for text in (repr(client), str(client), repr(got)):
        assert "hunter2" not in text and ha1 not in text


def test_username_with_line_break_is_refused() -> None:
    with pytest.raises(ValueError) as excinfo:
        Credentials("alice\r\nVia: evil", "x")
    assert str(excinfo.value) == "Credentials: username contains CR, LF or NUL"


def test_username_and_uri_are_escaped() -> None:
    client = DigestClient(Credentials('a"b\\c', "pw"), fixed())
    got = client.answer([(WWW, challenge())], "INVITE", 'sip:"x"@b')
    assert got is not None
    [(name, value)] = got
    assert 'username="a\\"b\\\\c"' in value
    assert 'uri="sip:\\"x\\"@b"' in value
    assert parse_authorization(name, value)["username"] == 'a"b\\c'


# --- parsing -----------------------------------------------------------------


def test_parse_full_challenge() -> None:
    value = (
        'Digest realm="atlanta.com", domain="sip:ss1.carrier.com", qop="auth,auth-int", '
        'nonce="f84f1cec41e6cbe5aea9c8e88d359", opaque="xyz", stale=TRUE, algorithm=md5-sess'
    )
    assert Challenge.parse("Proxy-Authenticate", value) == Challenge(
        realm="atlanta.com",
        nonce="f84f1cec41e6cbe5aea9c8e88d359",
        opaque="xyz",
        algorithm="MD5-SESS",
        qop=("auth", "auth-int"),
        stale=True,
        header="Proxy-Authenticate",
    )


def test_parse_defaults() -> None:
    got = Challenge.parse(WWW, 'Digest realm="r", nonce="n"')
    assert got == Challenge(realm="r", nonce="n")
    assert (got.opaque, got.algorithm, got.qop, got.stale, got.header) == (
        None,
        "MD5",
        (),
        False,
        WWW,
    )
    assert Challenge.parse(WWW, 'Digest realm="", nonce="", opaque=""').opaque == ""


def test_parse_escapes_and_commas_inside_quotes() -> None:
    value = r'Digest realm="a \"quoted\", realm\\x", nonce="n,1\,2", opaque="\o"'
    got = Challenge.parse(WWW, value)
    assert got.realm == 'a "quoted", realm\\x'
    assert got.nonce == "n,1,2"
    assert got.opaque == "o"


def test_parse_odd_whitespace_and_mixed_case() -> None:
    value = (
        '  dIgEsT   ReAlM = "x" ,NONCE=\t"y",  qop = auth ,Algorithm=sha-256,STALE=true ,,'
        " foo=bar, userhash=false ,"
    )
    got = Challenge.parse("www-AUTHENTICATE", value)
    assert got == Challenge(
        realm="x", nonce="y", algorithm="SHA-256", qop=("auth",), stale=True, header=WWW
    )


def test_parse_folded_value() -> None:
    got = Challenge.parse(WWW, rfc7616_challenge("SHA-256"))
    assert (got.realm, got.qop, got.algorithm) == (
        "http-auth@example.org",
        ("auth", "auth-int"),
        "SHA-256",
    )
    folded = Challenge.parse(WWW, 'Digest realm="a  \r\n   b", nonce="n"')
    assert folded.realm == "a b"


def test_parse_unquoted_tokens() -> None:
    got = Challenge.parse(WWW, "Digest realm=atlanta.com, nonce=abc/def==, opaque=o1")
    assert (got.realm, got.nonce, got.opaque) == ("atlanta.com", "abc/def==", "o1")


@pytest.mark.parametrize(
    ("header", "value", "message"),
    [
        (
            "Proxy-Authenticate",
            'Basic realm="x"',
            "Proxy-Authenticate: not a Digest challenge: 'Basic realm=\"x\"'",
        ),
        ("WWW-Authenticate", "", "WWW-Authenticate: not a Digest challenge: ''"),
        (
            "WWW-Authenticate",
            'realm="x", nonce="y"',
            'WWW-Authenticate: not a Digest challenge: \'realm="x", nonce="y"\'',
        ),
        ("WWW-Authenticate", 'Digest realm="x"', "WWW-Authenticate: Digest challenge has no nonce"),
        ("www-authenticate", 'Digest realm="x"', "WWW-Authenticate: Digest challenge has no nonce"),
        ("WWW-Authenticate", 'Digest nonce="y"', "WWW-Authenticate: Digest challenge has no realm"),
        (
            "WWW-Authenticate",
            'Digest realm="x, nonce="y"',
            "WWW-Authenticate: expected ',' after auth-param 'realm'",
        ),
        (
            "WWW-Authenticate",
            'Digest realm="x", nonce="y',
            "WWW-Authenticate: unterminated quoted-string in 'nonce'",
        ),
        ("WWW-Authenticate", "Digest realm", "WWW-Authenticate: auth-param 'realm' has no value"),
        (
            "WWW-Authenticate",
            "Digest realm=, nonce=y",
            "WWW-Authenticate: auth-param 'realm' has no value",
        ),
        (
            "WWW-Authenticate",
            'Digest realm="x", Realm="y", nonce="z"',
            "WWW-Authenticate: duplicate auth-param 'realm'",
        ),
        (
            "WWW-Authenticate",
            'Digest realm="x" nonce="y"',
            "WWW-Authenticate: expected ',' after auth-param 'realm'",
        ),
        (
            "WWW-Authenticate",
            'Digest realm="x", ="y"',
            "WWW-Authenticate: malformed auth-param at '=\"y\"'",
        ),
        (
            "WWW-Authenticate",
            'Digest realm="a\\\rb", nonce="y"',
            "WWW-Authenticate: control character in auth-param 'realm'",
        ),
        (
            "Authorization",
            'Digest realm="x"',
            "Authorization: not an authentication challenge header",
        ),
    ],
)
def test_parse_errors(header: str, value: str, message: str) -> None:
    with pytest.raises(AuthError) as excinfo:
        Challenge.parse(header, value)
    assert str(excinfo.value) == message
    assert isinstance(excinfo.value, ValueError)


def test_parse_auth_params_keeps_the_scheme() -> None:
    assert parse_auth_params("Authorization", 'Digest username="u", NC=00000001') == (
        "Digest",
        {"username": "u", "nc": "00000001"},
    )
    with pytest.raises(AuthError) as excinfo:
        parse_auth_params("Authorization", '"Digest"')
    assert str(excinfo.value) == "Authorization: no auth-scheme in '\"Digest\"'"


def test_parse_authorization() -> None:
    assert parse_authorization("Authorization", RFC2617_CREDENTIALS) == {
        "username": "Mufasa",
        "realm": "testrealm@host.com",
        "nonce": "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        "uri": "/dir/index.html",
        "response": "6629fae49393a05397450978507c4ef1",
        "algorithm": "MD5",
        "cnonce": "0a4f113b",
        "opaque": "5ccc069c403ebaf9f0171e9517f40e41",
        "qop": "auth",
        "nc": "00000001",
    }
    with pytest.raises(AuthError) as excinfo:
        parse_authorization("Proxy-Authorization", "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
    assert str(excinfo.value) == (
        "Proxy-Authorization: not a Digest credentials: 'Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=='"
    )


# --- computation errors ----------------------------------------------------------


def test_digest_response_errors() -> None:
    def compute(algorithm: str, qop: str | None) -> str:
        return digest_response(
            algorithm=algorithm,
            username="u",
            password="p",
            realm="r",
            nonce="n",
            method="M",
            uri="sip:x",
            qop=qop,
        )

    with pytest.raises(AuthError) as excinfo:
        compute("SHA-1", None)
    assert str(excinfo.value) == "unsupported digest algorithm 'SHA-1'"
    with pytest.raises(AuthError) as excinfo:
        compute("MD5", "auth-conf")
    assert str(excinfo.value) == "unsupported qop 'auth-conf'"


def test_build_credentials_errors() -> None:
    only_conf = Challenge.parse(WWW, 'Digest realm="r", nonce="n", qop="auth-conf, x"')
    with pytest.raises(AuthError) as excinfo:
        build_credentials(only_conf, ALICE, method="INVITE", uri="sip:b", cnonce="c")
    assert str(excinfo.value) == "WWW-Authenticate: unsupported qop 'auth-conf,x'"
    ok = Challenge.parse(WWW, 'Digest realm="r", nonce="n"')
    with pytest.raises(AuthError) as excinfo:
        build_credentials(ok, ALICE, method="INVITE", uri="sip:b\r\nX: y", cnonce="c")
    assert str(excinfo.value) == "cannot quote 'sip:b\\r\\nX: y': it contains CR, LF or NUL"


def test_algorithm_table() -> None:
    assert ALGORITHMS == (
        "SHA-512-256",
        "SHA-512-256-sess",
        "SHA-256",
        "SHA-256-sess",
        "MD5",
        "MD5-sess",
    )


# --- properties ------------------------------------------------------------------


@given(st.text())
def test_challenge_parse_only_raises_auth_error(value: str) -> None:
    for text in (value, "Digest " + value):
        with contextlib.suppress(AuthError):
            Challenge.parse(WWW, text)


_safe = st.text(st.characters(exclude_characters="\r\n\0", exclude_categories=["Cs"]))


@given(username=_safe, realm=_safe, nonce=_safe, opaque=_safe, uri=_safe)
def test_round_trip_through_quoting(
    username: str, realm: str, nonce: str, opaque: str, uri: str
) -> None:
    value = (
        f"Digest realm={quote(realm)}, nonce={quote(nonce)}, opaque={quote(opaque)}, "
        'qop="auth", algorithm=SHA-256'
    )
    parsed = Challenge.parse(WWW, value)
    assert (parsed.realm, parsed.nonce, parsed.opaque) == (realm, nonce, opaque)
    client = DigestClient(Credentials(username, "pw"), fixed())
    got = params_of(client.answer([(WWW, value)], "INVITE", uri))
    assert (got["username"], got["realm"], got["nonce"], got["opaque"], got["uri"]) == (
        username,
        realm,
        nonce,
        opaque,
        uri,
    )
    assert got["response"] == digest_response(
        algorithm="SHA-256",
        username=username,
        password="pw",
        realm=realm,
        nonce=nonce,
        method="INVITE",
        uri=uri,
        qop="auth",
        nc=1,
        cnonce=got["cnonce"],
    )
