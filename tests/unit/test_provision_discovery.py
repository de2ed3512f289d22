"""Where the provisioning server is: DHCP leases, URL checks, SIP plug-and-play."""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deskphone import __version__
from deskphone.provision import discovery as d
from deskphone.provision.discovery import (
    dhcpcd_env_options,
    expand_url,
    networkmanager_options,
    parse_dhcpcd_env,
    parse_dhcpcd_lease,
    parse_networkmanager_lease,
    pnp_subscribe,
    pnp_url_from_notify,
    provisioning_url,
    valid_url,
)
from deskphone.sip.message import Request, parse_message

COOKIE = bytes((99, 130, 83, 99))
URL160 = b"https://prov.example.com/cfg/{mac}.xml"


def opt(code: int, value: bytes) -> bytes:
    return bytes((code, len(value))) + value


def lease(options: bytes, *, op: int = 2, sname: bytes = b"", file: bytes = b"",
          cookie: bytes = COOKIE) -> bytes:
    """A DHCPACK as dhcpcd stores it: RFC 2131 §2 header, cookie, options."""
    header = struct.pack(
        "!BBBBIHH4s4s4s4s16s64s128s",
        op, 1, 6, 0, 0x12345678, 0, 0,
        bytes(4), bytes((192, 168, 1, 20)), bytes((192, 168, 1, 1)), bytes(4),
        bytes.fromhex("b827eb123456") + bytes(10), sname, file)
    assert len(header) == 236
    return header + cookie + options


ACK = lease(opt(53, b"\x05") + opt(1, bytes((255, 255, 255, 0)))
            + opt(66, b"tftp.example.com\x00") + b"\x00\x00" + opt(160, URL160)
            + b"\xff" + bytes(20))


# -- dhcpcd's binary lease ---------------------------------------------------------


def test_lease_options() -> None:
    assert parse_dhcpcd_lease(ACK) == {
        53: b"\x05", 1: bytes((255, 255, 255, 0)), 66: b"tftp.example.com\x00", 160: URL160}


def test_lease_without_end_option_at_the_end() -> None:
    assert parse_dhcpcd_lease(lease(opt(160, b"http://a.example/"))) == {
        160: b"http://a.example/"}


def test_lease_repeated_option_is_joined() -> None:
    # RFC 3396: a long option split into several
    data = lease(opt(160, b"http://a.example") + opt(160, b"/x.cfg") + b"\xff")
    assert parse_dhcpcd_lease(data) == {160: b"http://a.example/x.cfg"}


def test_lease_overload_file_and_sname() -> None:
    data = lease(opt(53, b"\x05") + opt(52, b"\x03") + opt(160, b"http://a") + b"\xff",
                 file=opt(160, b".example/") + opt(66, b"boot") + b"\xff",
                 sname=opt(66, b".lan") + opt(52, b"\x01") + b"\xff")
    # options, then file, then sname (RFC 3396 §5); 52 in the fields is ignored
    assert parse_dhcpcd_lease(data) == {
        53: b"\x05", 160: b"http://a.example/", 66: b"boot.lan"}


def test_lease_overload_sname_only_leaves_file_alone() -> None:
    data = lease(opt(52, b"\x02") + b"\xff", sname=opt(66, b"srv") + b"\xff",
                 file=b"pxelinux.0")
    assert parse_dhcpcd_lease(data) == {66: b"srv"}


def test_lease_without_overload_ignores_file_and_sname() -> None:
    data = lease(b"\xff", sname=opt(66, b"srv") + b"\xff")
    assert parse_dhcpcd_lease(data) == {}


@pytest.mark.parametrize(("data", "message"), [
    (b"", "DHCP lease is invalid: 0 bytes is shorter than the BOOTP header and magic cookie"),
    (ACK[:239], "DHCP lease is invalid: 239 bytes is shorter than the BOOTP header and "
                "magic cookie"),
    (lease(b"", cookie=b"\x63\x82\x53\x64"),
     "DHCP lease is invalid: magic cookie 63825364 is not 63825363"),
    (lease(b"", op=1), "DHCP lease is invalid: op 1 is not BOOTREPLY"),
    (lease(opt(160, URL160)[:-3]),
     "DHCP lease is invalid: option 160 in options needs 38 bytes, 35 left"),
    (lease(b"\x00\x42"), "DHCP lease is invalid: option 66 in options has no length"),
    (lease(opt(52, b"\x01") + b"\xff", file=bytes(120) + b"\x42\x10abc"),
     "DHCP lease is invalid: option 66 in file needs 16 bytes, 6 left"),
    (lease(opt(52, b"\x04")), "DHCP lease is invalid: option overload b'\\x04'"),
    (lease(opt(52, b"\x01\x02")), "DHCP lease is invalid: option overload b'\\x01\\x02'"),
    (ACK + bytes(70000), f"DHCP lease is invalid: {len(ACK) + 70000} bytes is too large"),
    (b"this is not a lease\n" * 20, "DHCP lease is invalid: op 116 is not BOOTREPLY"),
])
def test_lease_garbage_raises_value_error(data: bytes, message: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_dhcpcd_lease(data)
    assert str(e.value) == message


@given(st.binary(max_size=600), st.booleans())
def test_lease_arbitrary_bytes_parse_or_raise_value_error(data: bytes, shaped: bool) -> None:
    if shaped:  # past the header checks, into the options
        data = b"\x02" + data[1:236].ljust(235, b"\x00") + COOKIE + data[236:]
    with contextlib.suppress(ValueError):
        parse_dhcpcd_lease(data)


@given(st.binary(max_size=400), st.integers(0, 3))
def test_lease_arbitrary_options_parse_or_raise_value_error(tail: bytes, over: int) -> None:
    options = (opt(52, bytes((over,))) if over else b"") + tail
    try:
        result = parse_dhcpcd_lease(lease(options, file=tail[:128], sname=tail[:64]))
    except ValueError:
        return
    assert 0 not in result and 255 not in result and 52 not in result


# -- dhcpcd's and NetworkManager's text forms ---------------------------------------


DHCPCD_U = """\
broadcast_address='192.168.1.255'
dhcp_lease_time='86400'
ip_address='192.168.1.20'
tftp_server_name='tftp.example.com'
provisioning_url='https://prov.example.com/{mac}.cfg'
domain_name=example\\ com
"""


def test_dhcpcd_env() -> None:
    env = parse_dhcpcd_env(DHCPCD_U + "not a variable line\n# comment\n")
    assert env["tftp_server_name"] == "tftp.example.com"
    assert env["domain_name"] == "example com"
    assert "not a variable line" not in env
    assert dhcpcd_env_options(env) == {
        66: b"tftp.example.com", 160: b"https://prov.example.com/{mac}.cfg"}


def test_dhcpcd_hook_variables_have_new_prefix() -> None:
    env = parse_dhcpcd_env('new_tftp_server_name="http://10.0.0.2/"\nreason=BOUND\n')
    assert dhcpcd_env_options(env) == {66: b"http://10.0.0.2/"}
    assert provisioning_url(dhcpcd_env_options(env)) == "http://10.0.0.2/"


NM_LEASE = """\
# This is private data. Do not parse.
ADDRESS=192.168.1.20
NETMASK=255.255.255.0
SERVER_ADDRESS=192.168.1.1
NEXT_SERVER=192.168.1.1
OPTION_224=68747470
"""

NMCLI = """\
DHCP4.OPTION[1]:                        broadcast_address = 192.168.1.255
DHCP4.OPTION[2]:                        dhcp_lease_time = 86400
DHCP4.OPTION[3]:                        ip_address = 192.168.1.20
DHCP4.OPTION[4]:                        tftp_server_name = http://prov.example.com/p/
DHCP4.OPTION[5]:                        private_224 = 68:74:74:70
DHCP4.OPTION[6]:                        private_225 = not hex
"""


def test_networkmanager_lease_file() -> None:
    values = parse_networkmanager_lease(NM_LEASE)
    assert values["ADDRESS"] == "192.168.1.20"
    assert values["SERVER_ADDRESS"] == "192.168.1.1"
    assert networkmanager_options(values) == {224: b"http"}
    assert provisioning_url(networkmanager_options(values)) is None


def test_nmcli_dhcp4_options() -> None:
    values = parse_networkmanager_lease(NMCLI)
    assert values["dhcp_lease_time"] == "86400"
    assert values["tftp_server_name"] == "http://prov.example.com/p/"
    assert networkmanager_options(values) == {
        66: b"http://prov.example.com/p/", 224: b"http"}
    assert provisioning_url(networkmanager_options(values)) == "http://prov.example.com/p/"


# -- the URL ------------------------------------------------------------------------


@pytest.mark.parametrize(("options", "url"), [
    ({}, None),
    ({160: URL160, 66: b"http://other.example/"}, URL160.decode()),
    ({66: b"http://other.example/"}, "http://other.example/"),
    ({160: b"file:///etc/passwd", 66: b"http://other.example/"}, "http://other.example/"),
    ({160: b"  https://a.example/x  \x00\x00"}, "https://a.example/x"),
    ({66: b"tftp.example.com\x00"}, "tftp://tftp.example.com/"),
    ({66: b"10.0.0.5:6969"}, "tftp://10.0.0.5:6969/"),
    ({66: b"10.0.0.5:0"}, None),
    ({160: b"prov.example.com"}, None),  # 160 is a whole URL
    ({66: b"tftp://10.0.0.5/phones/"}, "tftp://10.0.0.5/phones/"),
    ({66: b"https://[2001:db8::5]:8443/p"}, "https://[2001:db8::5]:8443/p"),
    ({160: b"ftp://prov.example.com/"}, None),
    ({160: b"javascript:alert(1)"}, None),
    ({160: b"http://a.example/\x00x"}, None),
    ({160: "http://ex\u00e4mple.com/".encode()}, None),
    ({160: b"http://a.example/" + b"x" * 600}, None),
    ({66: b"bad host name"}, None),
])
def test_provisioning_url(options: dict[int, bytes], url: str | None) -> None:
    assert provisioning_url(options) == url


@pytest.mark.parametrize("url", [
    "http://prov.example.com/", "https://prov.example.com:8443/cfg/{mac}.xml",
    "tftp://10.0.0.5/", "http://user:secret@prov.example.com/x?a=1&b=%2F",
    "https://[2001:db8::1]/", "HTTPS://Prov.Example.com/",
])
def test_valid_urls(url: str) -> None:
    assert valid_url(url)


@pytest.mark.parametrize("url", [
    "", "file:///etc/passwd", "javascript:alert(1)", "data:text/plain,hi",
    "ftp://prov.example.com/", "http:/prov.example.com/", "http://", "http:///x",
    "http://a b.example/", "http://a.example/ x", "http://a.example/\r\nX: y",
    "http://a.example/#frag", "http://a.example/%zz", "http://a.example:0/",
    "http://a.example:70000/", "http://a.example:x/", "http://999.1.1.1/",
    "http://-bad-.example/", "http://[::1/", "http://[fe80::zz]/", "http://a.example/[x]",
    "http://a.example/<script>", "http://a.example/" + "x" * 600, "prov.example.com",
])
def test_invalid_urls(url: str) -> None:
    assert not valid_url(url)


@given(st.binary(max_size=300))
def test_provisioning_url_arbitrary_bytes(value: bytes) -> None:
    for options in ({160: value}, {66: value}):
        url = provisioning_url(options)
        assert url is None or valid_url(url)


@pytest.mark.parametrize("mac", [
    "b8:27:eb:12:34:56", "B8-27-EB-12-34-56", "b827eb123456", "B827EB123456"])
def test_expand_url(mac: str) -> None:
    assert expand_url("http://p.example/{mac}/{mac}.cfg", mac) == (
        "http://p.example/b827eb123456/b827eb123456.cfg")


def test_expand_url_leaves_other_braces() -> None:
    assert expand_url("http://p.example/{x}{0}", "b827eb123456") == "http://p.example/{x}{0}"


@pytest.mark.parametrize("mac", [
    "", "b8:27:eb:12:34", "b8:27:eb:12:34:5g", "b8:27-eb:12:34:56", "b8:27:eb:12:34:56:",
    "b827eb1234567", "b8.27.eb.12.34.56", " b827eb123456"])
def test_expand_url_bad_mac(mac: str) -> None:
    with pytest.raises(ValueError) as e:
        expand_url("http://p.example/{mac}", mac)
    assert str(e.value) == f"MAC address {mac!r} is invalid"


# -- SIP plug-and-play ----------------------------------------------------------------


def test_pnp_subscribe() -> None:
    raw = pnp_subscribe("B8:27:EB:12:34:56", "192.168.1.20", 5062, "cid1", "tag1", "abc")
    msg = parse_message(raw)
    assert isinstance(msg, Request)
    assert msg.method == "SUBSCRIBE"
    assert str(msg.uri) == "sip:b827eb123456@224.0.1.75"
    assert str(msg.from_.uri) == str(msg.to.uri) == "sip:b827eb123456@224.0.1.75"
    assert msg.from_.params == (("tag", "tag1"),)
    assert msg.call_id == "cid1"
    assert (msg.cseq.seq, msg.cseq.method) == (1, "SUBSCRIBE")
    via = msg.top_via
    assert (via.transport, via.host, via.port, via.branch) == (
        "UDP", "192.168.1.20", 5062, "z9hG4bKabc")
    assert str(msg.contacts[0].uri) == "sip:b827eb123456@192.168.1.20:5062"
    assert msg.headers.get("Event") == (
        f'ua-profile;profile-type="device";vendor="deskphone";model="pi";'
        f'version="{__version__}"')
    assert msg.headers.get("Accept") == "application/url"
    assert msg.expires == 0
    assert msg.max_forwards == 70
    assert msg.body == b""


def test_pnp_subscribe_ipv6_and_cookie_kept() -> None:
    msg = parse_message(pnp_subscribe("b827eb123456", "fe80::1", 5060, "c", "t",
                                      "z9hG4bKxyz", version="1.2"))
    assert str(msg.top_via) == "SIP/2.0/UDP [fe80::1]:5060;branch=z9hG4bKxyz;rport"
    assert 'version="1.2"' in (msg.headers.get("Event") or "")


@pytest.mark.parametrize(("args", "message"), [
    (("nope", "10.0.0.1", 5060, "c", "t", "b"), "MAC address 'nope' is invalid"),
    (("b827eb123456", "bad host", 5060, "c", "t", "b"), "local host 'bad host' is invalid"),
    (("b827eb123456", "10.0.0.1", 0, "c", "t", "b"), "local port 0 is invalid"),
    (("b827eb123456", "10.0.0.1", 5060, "c d", "t", "b"), "Call-ID 'c d' is invalid"),
    (("b827eb123456", "10.0.0.1", 5060, "c", "t\r\nX: y", "b"),
     "tag 't\\r\\nX: y' is invalid"),
    (("b827eb123456", "10.0.0.1", 5060, "c", "t", ""), "branch '' is invalid"),
])
def test_pnp_subscribe_bad_arguments(args: tuple[str, str, int, str, str, str],
                                     message: str) -> None:
    with pytest.raises(ValueError) as e:
        pnp_subscribe(*args)
    assert str(e.value) == message


def notify(body: bytes, *, content_type: str = "application/url",
           event: str | None = "ua-profile", method: str = "NOTIFY",
           call_id: str = "cid1") -> bytes:
    lines = [
        f"{method} sip:b827eb123456@192.168.1.20:5062 SIP/2.0",
        "Via: SIP/2.0/UDP 192.168.1.1:5060;branch=z9hG4bKn1",
        "From: <sip:b827eb123456@224.0.1.75>;tag=srv",
        "To: <sip:b827eb123456@224.0.1.75>;tag=tag1",
        f"Call-ID: {call_id}",
        f"CSeq: 1 {method}",
        "Subscription-State: terminated;reason=timeout",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
    ]
    if event is not None:
        lines.insert(5, f"Event: {event}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@pytest.mark.parametrize(("raw", "url"), [
    (notify(b"http://prov.example.com/snom/{mac}.xml"),
     "http://prov.example.com/snom/{mac}.xml"),
    (notify(b"https://prov.example.com/p\r\n"), "https://prov.example.com/p"),
    (notify(b"https://prov.example.com/p", content_type="Application/URL; charset=x"),
     "https://prov.example.com/p"),
    (notify(b"https://prov.example.com/p", event=None), "https://prov.example.com/p"),
    (notify(b"https://prov.example.com/p", content_type="text/plain"), None),
    (notify(b"https://prov.example.com/p", event="presence"), None),
    (notify(b"https://prov.example.com/p", method="MESSAGE"), None),
    (notify(b"file:///etc/shadow"), None),
    (notify(b"http://a.example/ and more"), None),
    (notify(b"\xff\xfe"), None),
    (notify(b""), None),
    (b"SIP/2.0 200 OK\r\nContent-Type: application/url\r\n\r\nhttp://a.example/", None),
    (b"\x00garbage", None),
    (b"", None),
])
def test_pnp_url_from_notify(raw: bytes, url: str | None) -> None:
    assert pnp_url_from_notify(raw) == url


def test_pnp_url_from_notify_checks_the_subscription() -> None:
    raw = notify(b"http://prov.example.com/p")
    assert pnp_url_from_notify(raw, call_id="cid1") == "http://prov.example.com/p"
    assert pnp_url_from_notify(raw, call_id="other") is None


@given(st.binary(max_size=400))
def test_pnp_url_from_notify_arbitrary_bytes(raw: bytes) -> None:
    url = pnp_url_from_notify(raw)
    assert url is None or valid_url(url)


def test_module_is_pure() -> None:
    import ast

    tree = ast.parse(Path(d.__file__).read_text())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
             for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree)
              if isinstance(n, ast.ImportFrom) and n.module}
    assert names & {"asyncio", "socket", "time", "random", "threading", "os", "io",
                    "subprocess", "selectors"} == set()
