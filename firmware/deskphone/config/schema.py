"""The one schema for a phone's TOML configuration, and the typed config it yields.

Theory of operation: ``SCHEMA`` is a plain table of sections and keys (type, default or
required, allowed values, a value check, help text). ``validate`` walks a parsed TOML
document against it and collects *every* problem instead of stopping at the first, because a
person fixing a file wants the whole list at once. ``config_from_document`` turns a clean
document into frozen dataclasses. Nothing here touches files, so the provisioning server and
client can validate per-MAC configs with the same table; reading and writing files lives in
``load.py``.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

# --------------------------------------------------------------------------------------
# Errors


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a config: at a dotted key, at a TOML line, or the whole file."""

    key: str | None
    message: str
    line: int | None = None

    def __str__(self) -> str:
        if self.key is not None:
            return f"{self.key}: {self.message}"
        if self.line is not None:
            return f"line {self.line}: {self.message}"
        return self.message


class ConfigError(Exception):
    """A config file that cannot be used; carries every problem found, one per line in str().

    ``key`` and ``message`` are those of the first problem, for callers that want one.
    """

    def __init__(self, path: str, problems: Iterable[Problem]) -> None:
        self.path = path
        self.problems: tuple[Problem, ...] = tuple(problems)
        if not self.problems:
            raise ValueError("ConfigError needs at least one problem")
        super().__init__("\n".join(f"{path}: {p}" for p in self.problems))

    @property
    def key(self) -> str | None:
        return self.problems[0].key

    @property
    def message(self) -> str:
        return self.problems[0].message


# --------------------------------------------------------------------------------------
# Value shapes, shared by the schema checks and the dataclasses' parsed forms.
# Each raises ValueError with the message a person will read after "file: key: ".


def _quote(text: str) -> str:
    """Quote a string the way TOML writes it, so messages show exactly what was typed.

    Unprintable characters (NEL, LINE SEPARATOR...) are escaped too: an error
    message must stay one line per problem."""
    quoted = json.dumps(text, ensure_ascii=False)
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in quoted)


def _is_ip(host: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(host).version == version
    except ValueError:
        return False


_LABEL: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def _is_hostname(host: str) -> bool:
    """RFC 1123 §2.1 names; an all-numeric last label would be a mistyped IPv4 address."""
    labels = host.removesuffix(".").split(".")
    return (
        0 < len(host) <= 253
        and all(_LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
    )


def _split_host_port(text: str) -> tuple[str, str | None, bool] | None:
    """Split "host", "host:port", "[v6]" or "[v6]:port"; None if the shape is wrong.

    Returns (host, port text or None, bracketed). A bare IPv6 address is refused because its
    colons make the port ambiguous (RFC 3986 §3.2.2 wants brackets).
    """
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            return None
        host, rest = text[1:close], text[close + 1 :]
        if rest == "":
            return host, None, True
        if not rest.startswith(":"):
            return None
        return host, rest[1:], True
    if text.count(":") > 1:
        return None
    host, sep, port = text.partition(":")
    return host, (port if sep else None), False


def _port(text: str, low: int) -> int | None:
    """The port number, None if ``text`` is not digits, ValueError if it is out of range."""
    if not text.isascii() or not text.isdigit():
        return None
    port = int(text)
    if not low <= port <= 65535:
        raise ValueError(f"port must be {low}..65535, got {_quote(text)}")
    return port


def _host_ok(host: str, bracketed: bool, *, names: bool) -> bool:
    if bracketed:
        return _is_ip(host, 6)
    if _is_ip(host, 4):
        return True
    return names and _is_hostname(host)


def parse_ip_port(text: str) -> tuple[str, int]:
    """Parse a listen address "IP:PORT" ("[::1]:5060" for IPv6); port 0 means any free one.

    The host comes back without brackets, as socket calls want it.
    """
    expected = f'expected "IP:PORT", got {_quote(text)}'
    split = _split_host_port(text)
    if split is None:
        raise ValueError(expected)
    host, port_text, bracketed = split
    if port_text is None or not _host_ok(host, bracketed, names=False):
        raise ValueError(expected)
    port = _port(port_text, 0)
    if port is None:
        raise ValueError(expected)
    return host, port


def parse_domain(text: str) -> tuple[str, int | None]:
    """Parse a SIP domain: a name, IPv4 or [IPv6], optionally with ":PORT"."""
    expected = f'expected "HOST" or "HOST:PORT", got {_quote(text)}'
    split = _split_host_port(text)
    if split is None:
        raise ValueError(expected)
    host, port_text, bracketed = split
    if not _host_ok(host, bracketed, names=True):
        raise ValueError(expected)
    if port_text is None:
        return host, None
    port = _port(port_text, 1)
    if port is None:
        raise ValueError(expected)
    return host, port


# RFC 3261 §19.1.1: sip:user:password@host:port;uri-parameters?headers
_SIP_URI: Final = re.compile(
    r"(?i:sips?):(?:[^@;?\s]+@)?(?P<hostport>[^;?\s]+)(?:;[^?\s]*)?(?:\?\S*)?"
)


def check_sip_uri(text: str) -> None:
    """Check the shape of a sip: or sips: URI such as "sip:127.0.0.1:5060"."""
    match = _SIP_URI.fullmatch(text)
    try:
        if match is None:
            raise ValueError
        parse_domain(match["hostport"])
    except ValueError:
        raise ValueError(
            f'expected a sip: or sips: URI such as "sip:127.0.0.1:5060", got {_quote(text)}'
        ) from None


def _check_sip_listen(text: str) -> None:
    if text:
        parse_ip_port(text)


def _check_registrar(text: str) -> None:
    if text:
        check_sip_uri(text)


CONSOLE_KINDS: Final = ("tcp",)
"""Console front ends understood so far; the hardware issue adds "serial"."""


def parse_console_listen(text: str) -> tuple[str, str]:
    """Split "KIND:ADDRESS" (e.g. "tcp:127.0.0.1:5099") and check the address for its kind."""
    kind, sep, address = text.partition(":")
    if not sep or kind not in CONSOLE_KINDS:
        raise ValueError(f'expected "tcp:IP:PORT", got {_quote(text)}')
    try:
        parse_ip_port(address)
    except ValueError:
        raise ValueError(f'expected "tcp:IP:PORT", got {_quote(text)}') from None
    return kind, address


def is_loopback_host(host: str) -> bool:
    """Whether a listen address reaches only this machine (127.0.0.0/8, ::1, "localhost")."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]")).is_loopback
    except ValueError:
        return False


CONSOLE_TOKEN_MIN: Final = 16
"""Shortest console token: with a lock-out per address, too many guesses even for a botnet."""


def _check_console(values: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    token = values.get("token")
    if not isinstance(token, str):
        return  # a bad value: already reported
    # The token is secret: the messages below describe it, never show it.
    if token and token.split() != [token]:
        yield "token", "must be one word (no spaces): clients send it as auth <token>"
    elif token and len(token) < CONSOLE_TOKEN_MIN:
        yield "token", (f"must be at least {CONSOLE_TOKEN_MIN} characters "
                        "(e.g. the output of: openssl rand -hex 16)")
    listen = values.get("listen")
    if token or not isinstance(listen, str):
        return
    host, _ = parse_ip_port(parse_console_listen(listen)[1])
    if not is_loopback_host(host):
        yield "token", (f"required when the console listens beyond this machine ({listen}): "
                        "without it anyone who reaches the port can dial, answer and "
                        "listen to the room")


# --------------------------------------------------------------------------------------
# The schema table


class _Required:
    """Marker for a key with no default."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Final = _Required()


@dataclass(frozen=True, slots=True)
class Key:
    """One key of a section: its TOML value type, default (or REQUIRED) and what it allows.

    ``check`` raises ValueError(message) for a bad value. ``secret`` keeps the value out of
    every message. ``default_from`` names a sibling key whose value is the default.
    """

    name: str
    value_type: type
    help: str
    default: object = REQUIRED
    choices: tuple[str, ...] = ()
    bounds: tuple[int, int] | None = None
    check: Callable[[Any], object] | None = None
    secret: bool = False
    default_from: str | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED and self.default_from is None


SectionCheck = Callable[[Mapping[str, Any]], Iterable[tuple[str, str]]]
"""A check across keys of one section: yields (key name, message) for each problem.

It sees only the keys whose own values passed, so it must skip what is absent.
"""


@dataclass(frozen=True, slots=True)
class Section:
    name: str
    help: str
    keys: tuple[Key, ...]
    check: SectionCheck | None = None

    def key(self, name: str) -> Key:
        for key in self.keys:
            if key.name == name:
                return key
        raise KeyError(name)


# The countries media/tones.py tables (and its alias GB), in lower case: kept here so
# that the config schema, which the provisioning server also loads, needs no numpy; a
# test holds the two lists together.
TONE_COUNTRIES = ("de", "fr", "gb", "itu", "uk", "us")


def _check_tone_country(value: str) -> None:
    if value.lower() not in TONE_COUNTRIES:
        raise ValueError(f"no tones for {value!r}; known: {', '.join(TONE_COUNTRIES)}")


def _check_rtp_ports(values: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    if "rtp_port_min" not in values or "rtp_port_max" not in values:
        return  # a bad value: already reported
    low, high = values["rtp_port_min"], values["rtp_port_max"]
    if low % 2:
        # RFC 3550 §11: RTP takes the even port, RTCP the odd one above it.
        yield "rtp_port_min", f"must be even (RTP uses even ports), got {low}"
    if high <= low:
        yield "rtp_port_max", f"must be greater than rtp_port_min ({low}), got {high}"


def _check_digit_map(text: str) -> None:
    if text:
        from deskphone.phone.dialplan import DigitMap  # pure, no I/O

        DigitMap.parse(text)


PIN_KEYS: Final = ("oled_i2c_address", "oled_i2c_bus", "ringer_kind", "keypad_rows",
                   "keypad_cols", "hook", "hook_active_when_offhook", "function_keys",
                   "ringer", "relay", "relay_active_low", "leds")
"""The [hardware] keys that make the pin map (hw.pins.PinMap takes them by name)."""


def _check_pin_map(values: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    if any(k not in values for k in PIN_KEYS):
        return  # a bad value: already reported
    from deskphone.hw.pins import PinMap  # pure: no gpiozero at import

    try:
        PinMap.from_overrides({k: values[k] for k in PIN_KEYS})
    except ValueError as exc:
        # PinMap says "keypad_rows[2]: ..." or "pin 9 is used by both ... and ..."
        where, sep, message = str(exc).partition(": ")
        base = where.split("[")[0].split(".")[0]
        if sep and base in PIN_KEYS:
            yield base, (f"{where[len(base):].lstrip('.')}: " if where != base else "") + \
                message
        else:
            yield "keypad_rows" if "keypad" in str(exc) else "hook", str(exc)


LOG_LEVELS: Final = ("debug", "info", "warning", "error")


def _check_provisioning_url(text: str) -> None:
    from deskphone.provision.discovery import valid_url  # pure parsing, no I/O

    if text and (not valid_url(text) or text.lower().startswith("tftp:")):
        raise ValueError("is not an http:// or https:// URL (RFC 3986 characters, a host, "
                         "an optional port; {mac} allowed)")
    if "@" in text.split("://", 1)[-1].split("/", 1)[0]:
        raise ValueError("has a user name or password in it: use [provisioning] username "
                         "and password (which are never printed)")


def _check_mac(text: str) -> None:
    from deskphone.provision.discovery import normalise_mac

    if text:
        normalise_mac(text)


def _check_provisioning(values: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    if bool(values.get("client_cert")) != bool(values.get("client_key")):
        yield "client_key", "client_cert and client_key go together (mutual TLS needs both)"
    if values.get("password") and not values.get("username"):
        yield "username", "a password needs a username"

SCHEMA: Final[tuple[Section, ...]] = (
    Section(
        "account",
        "The SIP account this phone registers.",
        (
            Key("user", str, "SIP user name, e.g. 1001."),
            Key("password", str, "SIP digest password; never printed.", secret=True),
            Key(
                "domain",
                str,
                'SIP domain: a name, IPv4 or [IPv6], with an optional port ("pbx:5060").',
                check=parse_domain,
            ),
            Key(
                "registrar",
                str,
                'Registrar URI, e.g. "sip:127.0.0.1:5060"; empty: no registrar (a lab bench '
                "or the offline demo: dial SIP URIs directly).",
                default="",
                check=_check_registrar,
            ),
            Key("transport", str, "SIP transport.", default="udp", choices=("udp", "tcp")),
            Key("display_name", str, "Name shown to the people you call.", default=""),
            Key(
                "auth_user",
                str,
                "User name for digest auth, when it differs from user.",
                default_from="user",
            ),
            Key("realm", str, "The digest realm the account's password is for; empty: the "
                "one the registrar first asks for. No other realm gets a digest answer.",
                default=""),
            Key("allow_rfc2069", bool, "Answer digest challenges without qop (RFC 2069): "
                "old servers only; such answers are easy to crack offline.", default=False),
            Key(
                "register_expires",
                int,
                "Seconds a registration lasts before it is refreshed.",
                default=3600,
                bounds=(60, 86400),
            ),
        ),
    ),
    Section(
        "sip",
        "The phone's own SIP endpoint.",
        (
            Key(
                "listen",
                str,
                'Local "IP:PORT" for SIP; IPv6 as "[::1]:5060"; empty: port 5060 on the '
                "interface toward the registrar (not every interface: 0.0.0.0 must be asked "
                "for).",
                default="",
                check=_check_sip_listen,
            ),
            Key("user_agent", str, "User-Agent and Server header value (no version unless "
                'you add one: it tells a scanner what to try).', default="deskphone"),
            Key(
                "rtp_port_min",
                int,
                "First (even) local port for RTP.",
                default=16384,
                bounds=(1024, 65534),
            ),
            Key(
                "rtp_port_max",
                int,
                "Last local port for RTP.",
                default=16482,
                bounds=(1025, 65535),
            ),
            Key("accept_from", str, 'Who may start calls and other requests: "proxy" '
                '(only the registrar\'s host) or "any" (a lab bench); empty: "proxy" when '
                "a registrar is set, else \"any\".", default="",
                choices=("", "proxy", "any")),
            Key("ring_timeout", int, "Seconds an incoming call rings unanswered before it "
                "is turned away (480).", default=60, bounds=(5, 600)),
            Key(
                "symmetric_rtp",
                bool,
                "Send RTP to where the far end's RTP comes from (NAT), not only to its SDP.",
                default=True,
            ),
            Key("rtp_follow_source", bool, "Follow the far end's RTP to a new source mid-call "
                "(a NAT lab whose bindings move), once the old one has been silent 3 s; "
                "off, only the SDP moves it.", default=False),
        ),
        check=_check_rtp_ports,
    ),
    Section(
        "console",
        "The line console used by people and lab scripts.",
        (
            Key(
                "listen",
                str,
                'Where the console listens: "tcp:IP:PORT".',
                default="tcp:127.0.0.1:5099",
                check=parse_console_listen,
            ),
            Key(
                "serial",
                str,
                'A serial port for the console too: "/dev/serial0", a pty, "socket://H:P"; '
                "empty: none.",
                default="",
            ),
            Key("serial_baudrate", int, "The serial console's speed.", default=115200,
                bounds=(1200, 4000000)),
            Key("token", str, "Secret a TCP client sends first (auth <token>); required when "
                "listen is not a loopback address; empty: none. The serial console is trusted "
                "as local and needs none; never printed.", default="", secret=True),
            Key("max_clients", int, "TCP clients at once; the next one is turned away.",
                default=8, bounds=(1, 64)),
            Key("idle_timeout", int, "Seconds a TCP client may send nothing before it is "
                "closed; 0: never.", default=600, bounds=(0, 86400)),
            Key("allow_direct_uris", bool, "Let dial call SIP URIs at hosts other than the "
                "account's domain (false: numbers and the domain's URIs only).", default=True),
        ),
        check=_check_console,
    ),
    Section(
        "phone",
        "How the phone behaves for the person using it.",
        (
            Key("state_dir", str, "Where the call history is kept; empty: "
                "/var/lib/deskphone as a service, $XDG_STATE_HOME/deskphone for a user.",
                default=""),
            Key("digit_map", str, 'When a dialled number is complete, e.g. "[2-9]xxx|0T|*xx" '
                "(x any digit, [2-9] a range, . repeats, T the short timer); empty: on # or "
                "the interdigit timeout.", default="", check=_check_digit_map),
            Key("interdigit_timeout", int, "Seconds without a digit before the number is "
                "dialled.", default=4, bounds=(1, 30)),
            Key("digit_map_timeout", int, "Seconds of the digit map's T timer.", default=2,
                bounds=(1, 30)),
        ),
    ),
    Section(
        "hardware",
        "The Raspberry Pi's GPIO devices and display.",
        (
            Key("gpio", str, "Pin factory: lgpio on a Pi, mock (simulated), none (headless), "
                "or auto (lgpio on a Pi, else none).", default="auto",
                choices=("auto", "lgpio", "mock", "none")),
            Key("display", str, "The OLED: ssd1306 or sh1106 on I2C, none, or auto (ssd1306 "
                "on a Pi, else none).", default="auto",
                choices=("auto", "ssd1306", "sh1106", "none")),
            Key("display_interface", str, "How the OLED is wired: I2C (GPIO 2/3), or SPI0 "
                "(needs the keypad and function keys moved off GPIO 7-11).", default="i2c",
                choices=("i2c", "spi")),
            Key("oled_i2c_address", int, "The OLED's I2C address (0x3C is 60).", default=60,
                bounds=(3, 119)),
            Key("oled_i2c_bus", int, "The OLED's I2C bus (1: GPIO 2/3).", default=1,
                bounds=(0, 22)),
            Key("ringer_kind", str, "The ringer: a PWM buzzer or a relay driving a bell.",
                default="pwm", choices=("pwm", "relay")),
            # the pin map (BCM numbers); hw/pins.py's PinMap is the source of these defaults
            Key("keypad_rows", list, "Keypad row pins, driven (4).", default=(9, 10, 11, 16)),
            Key("keypad_cols", list, "Keypad column pins, read (3).", default=(24, 25, 26)),
            Key("hook", int, "Hook switch pin (to GND).", default=4),
            Key("hook_active_when_offhook", bool, "The switch closes when the handset is "
                "lifted (false: when it rests).", default=True),
            Key("function_keys", dict, "Function keys: name = pin (redial, hold, mute, "
                "speaker, transfer, vol_up, vol_down, messages).",
                default=MappingProxyType({"redial": 5, "hold": 6, "mute": 7, "speaker": 8})),
            Key("ringer", int, "Ringer PWM pin.", default=12),
            Key("relay", int, "Bell relay pin.", default=17),
            Key("relay_active_low", bool, "The relay board switches on a low pin.",
                default=False),
            Key("leds", dict, "Lamps: name = pin (line, mwi, in_use).",
                default=MappingProxyType({"line": 22, "mwi": 23, "in_use": 27})),
        ),
        check=_check_pin_map,
    ),
    Section(
        "audio",
        "Sound in and out.",
        (
            Key(
                "backend",
                str,
                "Audio backend: silence, WAV files, or an ALSA sound card.",
                default="null",
                choices=("null", "file", "alsa"),
            ),
            Key("input", str, 'WAV file played as the microphone (backend "file").', default=""),
            Key("output", str, 'WAV file the far end is recorded to (backend "file").', default=""),
            Key("device", str, 'ALSA device for both directions (backend "alsa").', default=""),
            Key("capture_device", str, "ALSA capture device, if not device.", default=""),
            Key("playback_device", str, "ALSA playback device, if not device.", default=""),
            Key("tones", str, "Country whose call-progress tones to play.", default="us",
                check=_check_tone_country),
            Key("ringtone", bool, "Also ring through the sound device (the country's ring "
                "cadence), for a build without a bell or buzzer.", default=False),
        ),
    ),
    Section(
        "provisioning",
        "Where the phone fetches its config from (zero-touch provisioning).",
        (
            Key("url", str, "Base URL of the provisioning server (http:// or https://; "
                "{mac} is replaced by the MAC); the phone fetches <url>/<mac>.toml and "
                "<url>/deskphone.toml. Empty: the DHCP lease (option 160, then 66), then SIP "
                "plug-and-play.", default="", check=_check_provisioning_url),
            Key("ca_file", str, "PEM file of the CA(s) the server's certificate must chain "
                "to; empty: the system's store.", default=""),
            Key("client_cert", str, "PEM client certificate for mutual TLS (with "
                "client_key).", default=""),
            Key("client_key", str, "PEM private key of client_cert.", default=""),
            Key("username", str, "HTTP user name (basic or digest auth).", default=""),
            Key("password", str, "HTTP password; never printed.", default="", secret=True),
            Key("mac", str, "The MAC the phone asks for (a lab bench); empty: the primary "
                "interface's.", default="", check=_check_mac),
            Key("resync_interval", int, "Seconds between checks for a new config (with up "
                "to 10% random jitter); 0: only at start, on the console and on check-sync.",
                default=86400, bounds=(0, 30 * 86400)),
        ),
        check=_check_provisioning,
    ),
    Section(
        "log",
        "Logging.",
        (Key("level", str, "Least severe level logged.", default="info", choices=LOG_LEVELS),),
    ),
)


# --------------------------------------------------------------------------------------
# Validation


_TYPE_NAMES: Final[Mapping[type, str]] = {str: "a string", int: "an integer", bool: "a boolean",
                                          list: "an array", dict: "a table"}


def _describe(value: object) -> str:
    """Show a TOML value as TOML would write it (for messages)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return str(value)


def _kind(value: object) -> str:
    """Name a TOML value's type without showing it (for secret keys)."""
    for typ, name in ((bool, "a boolean"), (str, "a string"), (int, "an integer")):
        if isinstance(value, typ):
            return name
    if isinstance(value, float):
        return "a float"
    return _describe(value) if isinstance(value, dict | list) else "a date/time"


def _has_type(value: object, typ: type) -> bool:
    # TOML booleans are Python bools, which are ints; never let true pass as 1.
    if typ is int and isinstance(value, bool):
        return False
    return isinstance(value, typ)


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {_quote(close[0])}?)" if close else ""


def _check_value(key: Key, value: object) -> str | None:
    """The message for a bad value, or None if it is fine."""
    shown = _kind(value) if key.secret else _describe(value)
    if not _has_type(value, key.value_type):
        return f"expected {_TYPE_NAMES[key.value_type]}, got {shown}"
    if key.choices and value not in key.choices:
        allowed = ", ".join(_quote(c) for c in key.choices)
        return f"must be one of {allowed}, got {shown}"
    if key.bounds is not None:
        low, high = key.bounds
        assert isinstance(value, int)
        if not low <= value <= high:
            return f"must be between {low} and {high}, got {value}"
    if key.check is not None:
        try:
            key.check(value)
        except ValueError as exc:
            return "invalid value" if key.secret else str(exc)
    return None


def _validate_section(
    section: Section, table: Mapping[str, object]
) -> tuple[dict[str, object], list[Problem]]:
    values: dict[str, object] = {}
    problems: list[Problem] = []
    for key in section.keys:
        dotted = f"{section.name}.{key.name}"
        if key.name not in table:
            if key.required:
                problems.append(Problem(dotted, "missing (required)"))
            elif key.default is not REQUIRED:
                values[key.name] = key.default
            continue
        value = table[key.name]
        message = _check_value(key, value)
        if message is None:
            values[key.name] = value
        else:
            problems.append(Problem(dotted, message))
    for key in section.keys:
        if key.default_from is not None and key.name not in values:
            if key.name in table or key.default_from not in values:
                continue  # bad value or bad source: already reported
            values[key.name] = values[key.default_from]
    known = [key.name for key in section.keys]
    for name in table:
        if name not in known:
            problems.append(
                Problem(f"{section.name}.{name}", "unknown key" + _suggest(name, known))
            )
    if section.check is not None:
        for name, message in section.check(values):
            problems.append(Problem(f"{section.name}.{name}", message))
    return values, problems


def validate(
    document: Mapping[str, object], schema: Sequence[Section] = SCHEMA
) -> tuple[dict[str, dict[str, object]], list[Problem]]:
    """Check a parsed TOML document; return (values with defaults filled in, problems).

    The values are only complete when there are no problems.
    """
    values: dict[str, dict[str, object]] = {}
    problems: list[Problem] = []
    sections = {section.name: section for section in schema}
    for section in schema:
        table = document.get(section.name, {})
        if not isinstance(table, dict):
            problems.append(Problem(section.name, f"expected a table, got {_describe(table)}"))
            continue
        values[section.name], found = _validate_section(section, table)
        problems.extend(found)
    for name, value in document.items():
        if name in sections:
            continue
        if isinstance(value, dict):
            problems.append(Problem(name, "unknown section" + _suggest(name, sections)))
            continue
        homes = [f"{s.name}.{name}" for s in schema if any(k.name == name for k in s.keys)]
        hint = f" (did you mean {_quote(homes[0])}?)" if len(homes) == 1 else ""
        problems.append(Problem(name, "unknown key outside any [section]" + hint))
    return values, problems


# --------------------------------------------------------------------------------------
# The typed config. Field names and defaults mirror SCHEMA (a test keeps them in step);
# parsed forms of address strings are computed once, here, so no caller re-parses them.


@dataclass(frozen=True, slots=True)
class AccountConfig:
    user: str
    password: str = field(repr=False)
    domain: str
    registrar: str = ""
    transport: str = "udp"
    display_name: str = ""
    auth_user: str = ""  # empty means "same as user"; filled in on construction
    realm: str = ""
    allow_rfc2069: bool = False
    register_expires: int = 3600
    domain_host: str = field(init=False, repr=False, compare=False)
    domain_port: int | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        host, port = parse_domain(self.domain)
        object.__setattr__(self, "domain_host", host)
        object.__setattr__(self, "domain_port", port)
        if not self.auth_user:
            object.__setattr__(self, "auth_user", self.user)


@dataclass(frozen=True, slots=True)
class SipConfig:
    listen: str = ""
    user_agent: str = "deskphone"
    rtp_port_min: int = 16384
    rtp_port_max: int = 16482
    accept_from: str = ""
    ring_timeout: int = 60
    symmetric_rtp: bool = True
    rtp_follow_source: bool = False
    listen_host: str = field(init=False, repr=False, compare=False)
    listen_port: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        host, port = parse_ip_port(self.listen) if self.listen else ("", 5060)
        object.__setattr__(self, "listen_host", host)  # "": the app picks the interface
        object.__setattr__(self, "listen_port", port)


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    """``kind`` says which front end; ``host``/``port`` are its TCP address (kind "tcp")."""

    listen: str = "tcp:127.0.0.1:5099"
    serial: str = ""
    serial_baudrate: int = 115200
    token: str = field(default="", repr=False)
    max_clients: int = 8
    idle_timeout: int = 600
    allow_direct_uris: bool = True
    kind: str = field(init=False, repr=False, compare=False)
    address: str = field(init=False, repr=False, compare=False)
    host: str = field(init=False, repr=False, compare=False)
    port: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        kind, address = parse_console_listen(self.listen)
        host, port = parse_ip_port(address)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "address", address)
        object.__setattr__(self, "host", host)
        object.__setattr__(self, "port", port)


@dataclass(frozen=True, slots=True)
class PhoneBehaviour:
    state_dir: str = ""
    digit_map: str = ""
    interdigit_timeout: int = 4
    digit_map_timeout: int = 2


def _pins(values: Iterable[int]) -> tuple[int, ...]:
    return tuple(values)


@dataclass(frozen=True, slots=True)
class HardwareConfig:
    gpio: str = "auto"
    display: str = "auto"
    display_interface: str = "i2c"
    oled_i2c_address: int = 60
    oled_i2c_bus: int = 1
    ringer_kind: str = "pwm"
    keypad_rows: tuple[int, ...] = (9, 10, 11, 16)
    keypad_cols: tuple[int, ...] = (24, 25, 26)
    hook: int = 4
    hook_active_when_offhook: bool = True
    function_keys: Mapping[str, int] = field(default_factory=lambda: MappingProxyType(
        {"redial": 5, "hold": 6, "mute": 7, "speaker": 8}))
    ringer: int = 12
    relay: int = 17
    relay_active_low: bool = False
    leds: Mapping[str, int] = field(default_factory=lambda: MappingProxyType(
        {"line": 22, "mwi": 23, "in_use": 27}))

    def __post_init__(self) -> None:
        object.__setattr__(self, "keypad_rows", _pins(self.keypad_rows))
        object.__setattr__(self, "keypad_cols", _pins(self.keypad_cols))
        object.__setattr__(self, "function_keys", MappingProxyType(dict(self.function_keys)))
        object.__setattr__(self, "leds", MappingProxyType(dict(self.leds)))

    def pin_overrides(self) -> dict[str, object]:
        """The pin map's settings, for ``hw.pins.PinMap.from_overrides``."""
        return {k: getattr(self, k) for k in PIN_KEYS}


@dataclass(frozen=True, slots=True)
class AudioConfig:
    backend: str = "null"
    input: str = ""
    output: str = ""
    device: str = ""
    capture_device: str = ""
    playback_device: str = ""
    tones: str = "us"
    ringtone: bool = False


@dataclass(frozen=True, slots=True)
class ProvisioningConfig:
    url: str = ""
    ca_file: str = ""
    client_cert: str = ""
    client_key: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    mac: str = ""
    resync_interval: int = 86400


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: str = "info"


@dataclass(frozen=True, slots=True)
class PhoneConfig:
    account: AccountConfig
    sip: SipConfig = field(default_factory=SipConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    phone: PhoneBehaviour = field(default_factory=PhoneBehaviour)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    provisioning: ProvisioningConfig = field(default_factory=ProvisioningConfig)
    log: LogConfig = field(default_factory=LogConfig)


def config_from_document(document: Mapping[str, object], source: str) -> PhoneConfig:
    """Validate a parsed TOML document and build the config; ConfigError lists every problem."""
    values, problems = validate(document)
    if problems:
        raise ConfigError(source, problems)
    return PhoneConfig(
        account=AccountConfig(**values["account"]),  # type: ignore[arg-type]
        sip=SipConfig(**values["sip"]),  # type: ignore[arg-type]
        console=ConsoleConfig(**values["console"]),  # type: ignore[arg-type]
        phone=PhoneBehaviour(**values["phone"]),  # type: ignore[arg-type]
        hardware=HardwareConfig(**values["hardware"]),  # type: ignore[arg-type]
        audio=AudioConfig(**values["audio"]),  # type: ignore[arg-type]
        provisioning=ProvisioningConfig(**values["provisioning"]),  # type: ignore[arg-type]
        log=LogConfig(**values["log"]),  # type: ignore[arg-type]
    )
