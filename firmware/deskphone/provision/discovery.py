"""Where the provisioning server is (issue 10, client side): pure parsing.

The phone looks, in order, at ``[provisioning] url`` in its own config, at DHCP
option 160 or 66 in the DHCP client's lease, and at SIP plug-and-play. This
module is fed the lease bytes or text and the PnP NOTIFY, and returns values;
the caller reads the files and owns the socket.

Sources for the formats (checked against the clients' code):

- dhcpcd keeps ``/var/lib/dhcpcd/<iface>.lease`` as the raw DHCP message it
  accepted (BOOTP header, RFC 2131 §2, then options, RFC 2132).
- dhcpcd's hook variables and ``dhcpcd -U`` are named by
  ``dhcpcd-definitions.conf``: option 66 is ``tftp_server_name`` (type
  ``dname``); option 160 has no definition there, and dhcpcd exports no
  undefined option, so the image's dhcpcd.conf must add
  ``define 160 string provisioning_url`` (:data:`DHCPCD_160_NAME`). Hooks see
  the names with a ``new_`` prefix; ``-U`` prints them without.
- NetworkManager's internal client (n-dhcp4, nm-dhcp-nettools.c) writes only
  ``ADDRESS=`` to its lease file ("This is private data. Do not parse."); older
  releases (the sd-dhcp client) wrote systemd's KEY=VALUE lease with private
  options 224-254 as ``OPTION_<n>=<hex>``. Neither holds option 66 or 160;
  ``nmcli -f DHCP4 device show`` does: ``DHCP4.OPTION[n]: tftp_server_name =
  ...`` (names from nm-dhcp-options.c; private options as ``private_<n>`` in
  colon-separated hex). NetworkManager does not report option 160 at all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from deskphone import __version__
from deskphone.sip.errors import RemoteProtocolError
from deskphone.sip.message import Headers, Request, parse_message
from deskphone.sip.uri import SipUri, host_port, is_token, valid_host

# RFC 2131 §2: op..chaddr (44 bytes), sname (64), file (128), then the cookie
BOOTP_FIXED = 236
SNAME = slice(44, 108)
FILE = slice(108, 236)
MAGIC_COOKIE = bytes((99, 130, 83, 99))  # RFC 2131 §3
BOOTREPLY = 2
MAX_LEASE = 65536  # far above any DHCP message (RFC 2131 §2: 576 by default)

OPTION_PAD = 0
OPTION_END = 255
OPTION_OVERLOAD = 52  # RFC 2132 §9.3: 1 file, 2 sname, 3 both
OPTION_TFTP_SERVER = 66  # RFC 2132 §9.4
OPTION_PROVISIONING_URL = 160  # Polycom's convention (and Yealink's, Grandstream's)

DHCPCD_66_NAME = "tftp_server_name"  # dhcpcd-definitions.conf
DHCPCD_160_NAME = "provisioning_url"  # our `define 160 string provisioning_url`
NM_66_NAME = "tftp_server_name"  # nm-dhcp-options.c

URL_SCHEMES = frozenset({"http", "https", "tftp"})
MAX_URL = 512
MAC_PLACEHOLDER = "{mac}"
_MAC_STANDIN = "0" * 12

# RFC 3986 §2: unreserved, reserved and '%' (escapes are checked apart)
_URL_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*\Z")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_MAC_RE = re.compile(
    r"(?:[0-9A-Fa-f]{2}(?P<sep>[:-]))(?:[0-9A-Fa-f]{2}(?P=sep)){4}[0-9A-Fa-f]{2}\Z"
    r"|[0-9A-Fa-f]{12}\Z")

# SIP plug-and-play (draft-ietf-sipping-config-framework, RFC 6080 §4.1 and what
# Polycom and Snom send): SUBSCRIBE to the SIP multicast group
PNP_GROUP = "224.0.1.75"  # RFC 3261 §10.2.1 / IANA: "SIP" multicast address
PNP_PORT = 5060
PNP_VENDOR = "deskphone"
PNP_MODEL = "pi"
PNP_CONTENT_TYPE = "application/url"


# -- dhcpcd's binary lease -------------------------------------------------------


def parse_dhcpcd_lease(data: bytes) -> dict[int, bytes]:
    """Option code -> value of a DHCP reply as dhcpcd stores it.

    Options that appear more than once are joined (RFC 3396 §5), in the order
    options, file, sname when option 52 overloads those fields (RFC 3396 §5,
    RFC 2132 §9.3). Pad and end are not reported. A missing end option at the
    very end of the data is tolerated; an option cut short is not. Raises
    ValueError, and nothing else, on anything that is not such a message.
    """
    if len(data) > MAX_LEASE:
        raise ValueError(f"DHCP lease is invalid: {len(data)} bytes is too large")
    if len(data) < BOOTP_FIXED + len(MAGIC_COOKIE):
        raise ValueError(f"DHCP lease is invalid: {len(data)} bytes is shorter than "
                         f"the BOOTP header and magic cookie")
    if data[0] != BOOTREPLY:
        raise ValueError(f"DHCP lease is invalid: op {data[0]} is not BOOTREPLY")
    cookie = data[BOOTP_FIXED:BOOTP_FIXED + len(MAGIC_COOKIE)]
    if cookie != MAGIC_COOKIE:
        raise ValueError(f"DHCP lease is invalid: magic cookie {cookie.hex()} "
                         f"is not {MAGIC_COOKIE.hex()}")
    options: dict[int, bytearray] = {}
    _parse_options(data[BOOTP_FIXED + len(MAGIC_COOKIE):], "options", options)
    overload = options.pop(OPTION_OVERLOAD, None)
    if overload is not None:
        if len(overload) != 1 or overload[0] not in (1, 2, 3):
            raise ValueError(f"DHCP lease is invalid: option overload {bytes(overload)!r}")
        # options 52 inside file or sname mean nothing (RFC 2131 §4.1)
        if overload[0] & 1:
            _parse_options(data[FILE], "file", options, overload=True)
        if overload[0] & 2:
            _parse_options(data[SNAME], "sname", options, overload=True)
        options.pop(OPTION_OVERLOAD, None)
    return {code: bytes(value) for code, value in options.items()}


def _parse_options(area: bytes, where: str, into: dict[int, bytearray], *,
                   overload: bool = False) -> None:
    i = 0
    end = len(area)
    while i < end:
        code = area[i]
        if code == OPTION_END:
            return
        if code == OPTION_PAD:
            i += 1
            continue
        if i + 1 >= end:
            raise ValueError(f"DHCP lease is invalid: option {code} in {where} "
                             f"has no length")
        length = area[i + 1]
        start = i + 2
        if start + length > end:
            raise ValueError(f"DHCP lease is invalid: option {code} in {where} "
                             f"needs {length} bytes, {end - start} left")
        if not (overload and code == OPTION_OVERLOAD):
            into.setdefault(code, bytearray()).extend(area[start:start + length])
        i = start + length


# -- dhcpcd's and NetworkManager's text forms -----------------------------------


def parse_dhcpcd_env(text: str) -> dict[str, str]:
    """``name=value`` lines of ``dhcpcd -U`` or a hook's environment.

    Values may be in single or double quotes, or backslash-escaped; a ``new_``
    prefix (hook variables) is kept: :func:`dhcpcd_env_options` reads both.
    Lines that are not ``name=value`` (blank, comments) are skipped.
    """
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, eq, value = line.partition("=")
        if not eq or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) is None:
            continue
        out[name] = _shell_unquote(value)
    return out


def _shell_unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return re.sub(r"\\(.)", r"\1", value)


def dhcpcd_env_options(env: Mapping[str, str]) -> dict[int, bytes]:
    """Options 66 and 160 from :func:`parse_dhcpcd_env`'s result."""
    out: dict[int, bytes] = {}
    for code, name in ((OPTION_TFTP_SERVER, DHCPCD_66_NAME),
                       (OPTION_PROVISIONING_URL, DHCPCD_160_NAME)):
        value = env.get(name, env.get(f"new_{name}"))
        if value is not None:
            out[code] = value.encode("utf-8", "surrogateescape")
    return out


_NMCLI_LINE = re.compile(r"DHCP4\.OPTION\[\d+\]:\s*([A-Za-z0-9_]+)\s*=\s?(.*)\Z")


def parse_networkmanager_lease(text: str) -> dict[str, str]:
    """NetworkManager's DHCPv4 options as name -> value.

    Takes either a lease file's ``KEY=VALUE`` lines (names kept as written:
    ``ADDRESS``, ``SERVER_ADDRESS``, ``OPTION_224``...) or the output of
    ``nmcli -f DHCP4 device show`` (``DHCP4.OPTION[3]: tftp_server_name =
    http://...``: the option's name, lower case). Other lines are skipped.
    """
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _NMCLI_LINE.match(line)
        if m is not None:
            out[m[1]] = m[2].strip()
            continue
        name, eq, value = line.partition("=")
        if eq and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            out[name] = _shell_unquote(value.strip())
    return out


_NM_HEX_NAME = re.compile(r"(?:OPTION|private)_(\d{1,3})\Z")


def networkmanager_options(values: Mapping[str, str]) -> dict[int, bytes]:
    """Option code -> value from :func:`parse_networkmanager_lease`'s result:
    ``tftp_server_name`` (66) as text, ``OPTION_<n>``/``private_<n>`` as hex
    (with or without colons; a value that is not hex is left out)."""
    out: dict[int, bytes] = {}
    for name, value in values.items():
        if name == NM_66_NAME:
            out[OPTION_TFTP_SERVER] = value.encode("utf-8", "surrogateescape")
            continue
        m = _NM_HEX_NAME.match(name)
        if m is None or not 1 <= int(m[1]) <= 254:
            continue
        try:
            out[int(m[1])] = bytes.fromhex(value.replace(":", ""))
        except ValueError:
            continue
    return out


# -- the URL ---------------------------------------------------------------------


def provisioning_url(options: Mapping[int, bytes]) -> str | None:
    """The provisioning URL in DHCP options 160 and 66, or None.

    Option 160 (Polycom's provisioning URL) wins; when it is absent or not a
    usable URL, option 66 is tried. Option 66 is the TFTP server name (RFC
    2132 §9.4), which servers also fill with a URL: a URL is used as is, and
    a bare ``host`` or ``host:port`` means what the option says, a TFTP server
    (``tftp://host/``); it is not guessed to be an HTTP server, so a LAN's PXE
    setting does not send the phone's requests to a boot server. Option 160
    must hold a whole URL. A DHCP server on the LAN is not trusted: see
    :func:`valid_url`.
    """
    url160 = options.get(OPTION_PROVISIONING_URL)
    if url160 is not None:
        text = _option_text(url160)
        if text is not None and valid_url(text):
            return text
    url66 = options.get(OPTION_TFTP_SERVER)
    if url66 is None:
        return None
    text = _option_text(url66)
    if text is None:
        return None
    if "://" not in text and _bare_host_port(text):
        text = f"tftp://{text}/"
    return text if valid_url(text) else None


def _option_text(value: bytes) -> str | None:
    """An option's text: ASCII, NULs and whitespace stripped at the ends
    (servers often NUL-terminate strings, RFC 2132 §2 says not to)."""
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError:
        return None
    return text.strip("\x00 \t\r\n") or None


def _bare_host_port(text: str) -> bool:
    host, colon, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    if colon and not (port.isascii() and port.isdigit() and 0 < int(port) <= 65535):
        return False
    return valid_host(host)


def valid_url(text: str) -> bool:
    """True for an absolute http, https or tftp URL of a plain shape.

    At most :data:`MAX_URL` characters, RFC 3986 characters only (no spaces,
    controls or non-ASCII), well-formed %-escapes, a host that is a DNS name,
    an IPv4 address or a bracketed IPv6 address, a port in range, no fragment.
    ``{mac}`` (see :func:`expand_url`) may appear anywhere.
    """
    if not text or len(text) > MAX_URL:
        return False
    text = text.replace(MAC_PLACEHOLDER, _MAC_STANDIN)
    if _URL_CHARS.match(text) is None or _BAD_ESCAPE.search(text) or "#" in text:
        return False
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme not in URL_SCHEMES or not text.lower().startswith(f"{parts.scheme}://"):
        return False
    host = parts.hostname
    if not host:
        return False
    netloc_host = parts.netloc.rpartition("@")[2]
    bracketed = netloc_host.startswith("[")
    rest = text[len(parts.scheme) + 3 + len(parts.netloc):]
    if "[" in rest or "]" in rest or (not bracketed and "[" in netloc_host):
        return False  # RFC 3986 §3.2.2: brackets only round an IP literal
    if not valid_host(f"[{host}]" if bracketed else host):
        return False
    return port is None or 0 < port <= 65535


def normalise_mac(mac: str) -> str:
    """``aa:bb:cc:dd:ee:ff``, ``AA-BB-...`` or ``aabbccddeeff`` -> 12 lower-case hex
    digits; ValueError for anything else."""
    if _MAC_RE.match(mac) is None:
        raise ValueError(f"MAC address {mac[:40]!r} is invalid")
    return re.sub(r"[:-]", "", mac).lower()


def expand_url(template: str, mac: str) -> str:
    """``template`` with every ``{mac}`` replaced by the phone's MAC address
    (12 lower-case hex digits, as Snom and Polycom name per-phone files).
    Plain replacement, not str.format: other braces are left alone."""
    return template.replace(MAC_PLACEHOLDER, normalise_mac(mac))


# -- SIP plug-and-play ------------------------------------------------------------


def pnp_subscribe(mac: str, local_host: str, local_port: int, call_id: str, tag: str,
                  branch: str, *, version: str = __version__) -> bytes:
    """:func:`pnp_subscribe_request` as bytes on the wire."""
    return bytes(pnp_subscribe_request(mac, local_host, local_port, call_id, tag, branch,
                                       version=version))


def pnp_subscribe_request(mac: str, local_host: str, local_port: int, call_id: str,
                          tag: str, branch: str, *, version: str = __version__) -> Request:
    """The PnP SUBSCRIBE, to be sent to 224.0.1.75:5060 over UDP (the SIP endpoint's
    ``pnp_subscribe`` sends it in a client transaction of its own).

    ``sip:<mac>@224.0.1.75`` as Request-URI, From and To; ``Event: ua-profile``
    with the device's profile-type, vendor, model and version (RFC 6080 §4.1);
    ``Accept: application/url`` (the answer is a URL, not the profile);
    ``Expires: 0``: a one-off fetch, the NOTIFY comes once (RFC 6665 §4.2.1.4).
    ``call_id``, ``tag`` and ``branch`` come from the caller's random source;
    ``branch`` gets the RFC 3261 §8.1.1.7 magic cookie if it lacks it.
    """
    mac12 = normalise_mac(mac)
    if not valid_host(local_host) and not valid_host(f"[{local_host}]"):
        raise ValueError(f"local host {local_host[:60]!r} is invalid")
    if not 0 < local_port <= 65535:
        raise ValueError(f"local port {local_port} is invalid")
    # RFC 3261 §25.1 callid = word [ "@" word ]: tokens here, as the endpoint makes them
    local_part, at, host_part = call_id.partition("@")
    for what, value, ok in (("Call-ID", call_id,
                             is_token(local_part) and (not at or is_token(host_part))),
                            ("tag", tag, is_token(tag)), ("branch", branch, is_token(branch)),
                            ("version", version, is_token(version))):
        if not ok:
            raise ValueError(f"{what} {value[:60]!r} is invalid")
    if not branch.startswith("z9hG4bK"):
        branch = f"z9hG4bK{branch}"
    aor = f"sip:{mac12}@{PNP_GROUP}"
    sent_by = host_port(local_host, local_port)
    headers = Headers([
        ("Via", f"SIP/2.0/UDP {sent_by};branch={branch};rport"),
        ("Max-Forwards", "70"),
        ("From", f"<{aor}>;tag={tag}"),
        ("To", f"<{aor}>"),
        ("Call-ID", call_id),
        ("CSeq", "1 SUBSCRIBE"),
        ("Contact", f"<sip:{mac12}@{sent_by}>"),
        ("Event", f'ua-profile;profile-type="device";vendor="{PNP_VENDOR}"'
                  f';model="{PNP_MODEL}";version="{version}"'),
        ("Accept", PNP_CONTENT_TYPE),
        ("Expires", "0"),
        ("User-Agent", f"{PNP_VENDOR}/{version}"),
    ])
    return Request("SUBSCRIBE", SipUri.parse(aor), headers)


def pnp_url_from_notify(raw: bytes, *, call_id: str | None = None) -> str | None:
    """The provisioning URL in a PnP NOTIFY, or None.

    None unless ``raw`` parses as a NOTIFY for the ``ua-profile`` event (when it
    has an Event header), with ``Content-Type: application/url`` and a body
    that :func:`valid_url` accepts; with ``call_id``, it must also be the
    NOTIFY of that subscription. Answering the NOTIFY is the caller's job.
    """
    try:
        msg = parse_message(raw)
        if not isinstance(msg, Request) or msg.method != "NOTIFY":
            return None
        if call_id is not None and msg.call_id != call_id:
            return None
        event = msg.headers.get("Event")
        if event is not None and event.partition(";")[0].strip().lower() != "ua-profile":
            return None
        if msg.content_type != PNP_CONTENT_TYPE:
            return None
    except RemoteProtocolError:
        return None
    return pnp_url_from_body(msg.body)


def pnp_url_from_body(body: bytes) -> str | None:
    """The URL an ``application/url`` body holds (NULs and whitespace at the ends
    stripped), if :func:`valid_url` accepts it; else None."""
    text = _option_text(body)
    return text if text is not None and valid_url(text) else None
