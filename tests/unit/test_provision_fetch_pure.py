"""provision.fetch without a server: challenge splitting, userinfo never shown, and the
errors raised before any connection is made (the real exchanges: tests/integration)."""

from __future__ import annotations

import pytest

from deskphone.provision.fetch import (
    Fetched,
    FetchError,
    FetchOptions,
    fetch,
    split_challenges,
    strip_userinfo,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('Basic realm="x"', [("basic", 'Basic realm="x"')]),
        ("Basic", [("basic", "Basic")]),
        (
            'Basic realm="a, b", Digest realm="r", nonce="n,1", qop="auth,auth-int"',
            [("basic", 'Basic realm="a, b"'),
             ("digest", 'Digest realm="r", nonce="n,1", qop="auth,auth-int"')],
        ),
        (
            'Negotiate abc==, Digest realm = "r" , nonce=n2, algorithm=SHA-256',
            [("negotiate", "Negotiate abc=="),
             ("digest", 'Digest realm = "r", nonce=n2, algorithm=SHA-256')],
        ),
        ('DIGEST realm="r",, nonce="n"', [("digest", 'DIGEST realm="r", nonce="n"')]),
        ('realm="no scheme"', []),
        ("", []),
    ],
)  # fmt: skip
def test_split_challenges(value: str, expected: list[tuple[str, str]]) -> None:
    # RFC 7235 §4.1: several challenges in one header, commas inside quotes are not splits
    assert split_challenges(value) == expected


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://u:p@host/x.toml", "https://host/x.toml"),
        ("https://u:p@ss@w0rd@host:8443/x", "https://host:8443/x"),
        ("http://phone@[::1]:80/x", "http://[::1]:80/x"),
        ("https://host/a@b.toml", "https://host/a@b.toml"),
        ("https://host/x?u=a@b", "https://host/x?u=a@b"),
        ("https://host", "https://host"),
    ],
)
def test_strip_userinfo(url: str, shown: str) -> None:
    assert strip_userinfo(url) == shown


def test_a_fetch_error_never_shows_userinfo() -> None:
    e = FetchError("https://phones:s3cret@host/x: refused (from https://a:b@other/y)")
    assert str(e) == "https://host/x: refused (from https://other/y)"
    assert (e.transient, e.retry_after) == (False, None)


def test_no_password_or_body_in_a_repr() -> None:
    assert "s3cret" not in repr(FetchOptions(username="phones", password="s3cret"))
    assert "s3cret" not in repr(Fetched("https://h/x", 200, b'password = "s3cret"', '"e"'))


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("tftp://10.0.0.1/x.toml", "unsupported scheme 'tftp': only http and https"),
        ("https:///x.toml", "not a valid URL (no host)"),
        ("https://host:99999/x", "not a valid URL (Port out of range 0-65535)"),
        ("https://[::1/x", "not a valid URL (Invalid IPv6 URL)"),
        ("https://host/a b.toml", "not a valid URL (spaces, controls or non-ASCII in the path: "
                                  "percent-encode them)"),
    ],
)  # fmt: skip
def test_a_bad_url_fails_before_connecting(url: str, reason: str) -> None:
    with pytest.raises(FetchError) as info:
        fetch(url, FetchOptions())
    assert str(info.value) == f"{url}: {reason}"
    assert not info.value.transient


def test_the_url_in_an_error_has_no_userinfo() -> None:
    with pytest.raises(FetchError) as info:
        fetch("ftp://phones:s3cret@host/x.toml", FetchOptions())
    assert str(info.value) == "ftp://host/x.toml: unsupported scheme 'ftp': only http and https"


def test_tls_settings_are_checked_before_connecting() -> None:
    url = "https://127.0.0.1:1/x.toml"  # nothing is ever sent there
    with pytest.raises(FetchError) as info:
        fetch(url, FetchOptions(client_key="/etc/deskphone/phone.key"))
    assert str(info.value) == f"{url}: client_key is set but client_cert is not"
    with pytest.raises(FetchError) as info:
        fetch(url, FetchOptions(ca_file="/nonexistent/ca.pem"))
    assert str(info.value) == (
        f"{url}: cannot load CA file /nonexistent/ca.pem: No such file or directory"
    )
    with pytest.raises(FetchError) as info:
        fetch(url, FetchOptions(client_cert="/nonexistent/phone.pem"))
    assert str(info.value) == (
        f"{url}: cannot load client certificate /nonexistent/phone.pem: No such file or directory"
    )
