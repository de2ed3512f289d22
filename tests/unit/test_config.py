"""The config schema and loader: every message a person can see is asserted exactly."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deskphone.config import (
    REQUIRED,
    SCHEMA,
    AccountConfig,
    AudioConfig,
    ConfigError,
    ConsoleConfig,
    HardwareConfig,
    LogConfig,
    PhoneBehaviour,
    PhoneConfig,
    Problem,
    ProvisioningConfig,
    SipConfig,
    atomic_write_config,
    config_from_document,
    load_config,
    parse_config,
    validate,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "firmware" / "etc" / "phone.example.toml"

ACCOUNT = """\
[account]
user = "1001"
password = "secret1001"
domain = "127.0.0.1"
registrar = "sip:127.0.0.1:5060"
"""


def errors(text: str) -> list[str]:
    """Every line of the ConfigError that parsing ``text`` as phone.toml raises."""
    with pytest.raises(ConfigError) as info:
        parse_config(text, "phone.toml")
    return str(info.value).splitlines()


def error(text: str) -> str:
    (line,) = errors(text)
    return line


# --- the happy path ---------------------------------------------------------------------


def test_example_config_loads() -> None:
    config = load_config(EXAMPLE)
    assert config.account == AccountConfig(
        user="1001",
        password="secret1001",
        domain="127.0.0.1",
        registrar="sip:127.0.0.1:5060",
        transport="udp",
    )
    assert config.account.auth_user == "1001"
    assert (config.account.domain_host, config.account.domain_port) == ("127.0.0.1", None)
    assert config.sip.listen == "127.0.0.1:5080"
    assert (config.sip.listen_host, config.sip.listen_port) == ("127.0.0.1", 5080)
    assert (config.console.kind, config.console.host, config.console.port) == (
        "tcp",
        "127.0.0.1",
        5099,
    )
    assert config.audio.backend == "null"
    assert config.log.level == "info"


def test_example_config_mentions_every_key() -> None:
    text = EXAMPLE.read_text()
    for section in SCHEMA:
        assert f"[{section.name}]" in text
        for key in section.keys:
            assert f"{key.name} = " in text, f"{section.name}.{key.name} not in the example"


def test_minimal_config_takes_defaults() -> None:
    config = parse_config(ACCOUNT)
    assert config == PhoneConfig(
        account=AccountConfig("1001", "secret1001", "127.0.0.1", "sip:127.0.0.1:5060"),
        sip=SipConfig(),
        console=ConsoleConfig(),
        audio=AudioConfig(),
        log=LogConfig(),
    )
    assert config.account.transport == "udp"
    assert config.account.register_expires == 3600
    assert config.account.auth_user == "1001"
    assert config.sip.user_agent == "deskphone"  # no version for a scanner to look up
    assert (config.sip.listen_host, config.sip.listen_port) == ("", 5060)  # toward the PBX
    assert (config.sip.rtp_port_min, config.sip.rtp_port_max) == (16384, 16482)
    assert config.console.listen == "tcp:127.0.0.1:5099"
    assert config.audio.tones == "us"


def test_dataclasses_mirror_the_schema() -> None:
    """The schema is the source of truth; the dataclasses must not drift from it."""
    classes = {
        "account": AccountConfig,
        "sip": SipConfig,
        "console": ConsoleConfig,
        "phone": PhoneBehaviour,
        "hardware": HardwareConfig,
        "audio": AudioConfig,
        "provisioning": ProvisioningConfig,
        "log": LogConfig,
    }
    assert [f.name for f in dataclasses.fields(PhoneConfig)] == [s.name for s in SCHEMA]
    for section in SCHEMA:
        init = [f for f in dataclasses.fields(classes[section.name]) if f.init]
        assert [f.name for f in init] == [k.name for k in section.keys]
        for f, key in zip(init, section.keys, strict=True):
            if key.default_from is not None:
                assert f.default == "", key.name  # filled from default_from on construction
            elif key.default is REQUIRED:
                assert f.default is dataclasses.MISSING, key.name
            else:
                default = (f.default_factory() if f.default is dataclasses.MISSING  # type: ignore[misc]
                           else f.default)
                assert default == key.default, key.name


def test_all_keys_set() -> None:
    config = parse_config(
        """\
[account]
user = "1001"
password = "pw"
domain = "pbx.example.com:5160"
registrar = "sips:pbx.example.com:5061;transport=tcp"
transport = "tcp"
display_name = "Front desk"
auth_user = "auth1001"
register_expires = 60

[sip]
listen = "[::1]:5062"
user_agent = "lab"
rtp_port_min = 20000
rtp_port_max = 20001

[console]
listen = "tcp:[::1]:0"

[audio]
backend = "file"
input = "in.wav"
output = "out.wav"
tones = "uk"

[log]
level = "debug"
"""
    )
    assert config.account.auth_user == "auth1001"
    assert (config.account.domain_host, config.account.domain_port) == ("pbx.example.com", 5160)
    assert (config.sip.listen_host, config.sip.listen_port) == ("::1", 5062)
    assert (config.console.host, config.console.port) == ("::1", 0)
    assert config.console.address == "[::1]:0"
    assert config.audio == AudioConfig(backend="file", input="in.wav", output="out.wav", tones="uk")
    assert config.log.level == "debug"


def test_password_is_never_printed() -> None:
    config = parse_config(ACCOUNT)
    assert "secret1001" not in repr(config)
    assert "secret1001" not in str(config.account)
    assert "password" not in repr(config.account)


def test_secret_values_stay_out_of_errors() -> None:
    text = ACCOUNT.replace('password = "secret1001"', "password = 20251001")
    assert error(text) == "phone.toml: account.password: expected a string, got an integer"


@pytest.mark.parametrize(
    ("domain", "host", "port"),
    [
        ("127.0.0.1", "127.0.0.1", None),
        ("127.0.0.1:5160", "127.0.0.1", 5160),
        ("pbx.example.com", "pbx.example.com", None),
        ("localhost:5060", "localhost", 5060),
        ("[2001:db8::1]", "2001:db8::1", None),
        ("[2001:db8::1]:5060", "2001:db8::1", 5060),
    ],
)
def test_domain_forms(domain: str, host: str, port: int | None) -> None:
    config = parse_config(ACCOUNT.replace('domain = "127.0.0.1"', f'domain = "{domain}"'))
    assert (config.account.domain_host, config.account.domain_port) == (host, port)


# --- errors -----------------------------------------------------------------------------


def test_missing_required_keys_are_all_reported() -> None:
    assert errors("[account]\n") == [
        "phone.toml: account.user: missing (required)",
        "phone.toml: account.password: missing (required)",
        "phone.toml: account.domain: missing (required)",
    ]
    assert errors("") == errors("[account]\n")


def test_config_error_carries_path_key_message_and_every_problem() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(ACCOUNT.replace('password = "secret1001"\n', 'transport = "sctp"\n'), "p.toml")
    err = info.value
    assert err.path == "p.toml"
    assert err.key == "account.password"
    assert err.message == "missing (required)"
    assert err.problems == (
        Problem("account.password", "missing (required)"),
        Problem("account.transport", 'must be one of "udp", "tcp", got "sctp"'),
    )
    assert str(err) == (
        "p.toml: account.password: missing (required)\n"
        'p.toml: account.transport: must be one of "udp", "tcp", got "sctp"'
    )


def test_default_source_name() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("")
    assert info.value.path == "<config>"
    assert str(info.value).startswith("<config>: account.user: missing (required)")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('transport = "sctp"', 'account.transport: must be one of "udp", "tcp", got "sctp"'),
        ('pasword = "x"', 'account.pasword: unknown key (did you mean "password"?)'),
        ('colour = "red"', "account.colour: unknown key"),
        ("register_expires = 59", "account.register_expires: must be between 60 and 86400, got 59"),
        (
            "register_expires = 86401",
            "account.register_expires: must be between 60 and 86400, got 86401",
        ),
        ('register_expires = "3600"', 'account.register_expires: expected an integer, got "3600"'),
        ("register_expires = 3600.0", "account.register_expires: expected an integer, got 3600.0"),
        ("register_expires = true", "account.register_expires: expected an integer, got true"),
        ("display_name = 5", "account.display_name: expected a string, got 5"),
        ("display_name = [1, 2]", "account.display_name: expected a string, got an array"),
        ("display_name = {a = 1}", "account.display_name: expected a string, got a table"),
        (
            "display_name = 1979-05-27",
            "account.display_name: expected a string, got 1979-05-27",
        ),
        ("auth_user = 7", "account.auth_user: expected a string, got 7"),
    ],
)
def test_account_value_errors(line: str, message: str) -> None:
    assert error(ACCOUNT + line + "\n") == f"phone.toml: {message}"


@pytest.mark.parametrize(
    "domain",
    ["", "127.0.0.1:", "127.0.0.1:x", "2001:db8::1", "[2001:db8::1", "[pbx]:5060", "a b", "-pbx"],
)
def test_bad_domain_shape(domain: str) -> None:
    text = ACCOUNT.replace('domain = "127.0.0.1"', f'domain = "{domain}"')
    assert error(text) == (
        f'phone.toml: account.domain: expected "HOST" or "HOST:PORT", got "{domain}"'
    )


@pytest.mark.parametrize("domain", ["127.0.0.1:0", "127.0.0.1:65536", "pbx:99999"])
def test_bad_domain_port(domain: str) -> None:
    port = domain.rsplit(":", 1)[1]
    text = ACCOUNT.replace('domain = "127.0.0.1"', f'domain = "{domain}"')
    assert error(text) == f'phone.toml: account.domain: port must be 1..65535, got "{port}"'


@pytest.mark.parametrize(
    "registrar",
    ["sip:127.0.0.1:5060", "SIP:pbx.example.com", "sips:[::1]:5061", "sip:reg@pbx;lr"],
)
def test_good_registrar(registrar: str) -> None:
    text = ACCOUNT.replace('"sip:127.0.0.1:5060"', f'"{registrar}"')
    assert parse_config(text).account.registrar == registrar


@pytest.mark.parametrize(
    "registrar", ["127.0.0.1:5060", "http://pbx", "sip:", "sip:pbx:port", "tel:+15551234"]
)
def test_bad_registrar(registrar: str) -> None:
    text = ACCOUNT.replace('"sip:127.0.0.1:5060"', f'"{registrar}"')
    assert error(text) == (
        "phone.toml: account.registrar: expected a sip: or sips: URI such as "
        f'"sip:127.0.0.1:5060", got "{registrar}"'
    )


@pytest.mark.parametrize(
    ("sip", "message"),
    [
        ('listen = "5060"', 'sip.listen: expected "IP:PORT", got "5060"'),
        ('listen = "localhost:5060"', 'sip.listen: expected "IP:PORT", got "localhost:5060"'),
        ('listen = "::1:5060"', 'sip.listen: expected "IP:PORT", got "::1:5060"'),
        ('listen = "[::1]"', 'sip.listen: expected "IP:PORT", got "[::1]"'),
        ('listen = "127.0.0.1:65536"', 'sip.listen: port must be 0..65535, got "65536"'),
        ("rtp_port_min = 16385", "sip.rtp_port_min: must be even (RTP uses even ports), got 16385"),
        (
            "rtp_port_max = 16384",
            "sip.rtp_port_max: must be greater than rtp_port_min (16384), got 16384",
        ),
        ("rtp_port_min = 80", "sip.rtp_port_min: must be between 1024 and 65534, got 80"),
        ("user_agent = false", "sip.user_agent: expected a string, got false"),
    ],
)
def test_sip_errors(sip: str, message: str) -> None:
    assert error(f"{ACCOUNT}[sip]\n{sip}\n") == f"phone.toml: {message}"


def test_rtp_checks_still_run_beside_other_bad_keys() -> None:
    assert errors(f'{ACCOUNT}[sip]\nlisten = "x"\nrtp_port_min = 16385\n') == [
        'phone.toml: sip.listen: expected "IP:PORT", got "x"',
        "phone.toml: sip.rtp_port_min: must be even (RTP uses even ports), got 16385",
    ]


@pytest.mark.parametrize(
    "listen", ["127.0.0.1:5099", "tcp:127.0.0.1", "tcp:localhost:5099", "serial:/dev/ttyS0"]
)
def test_console_listen_errors(listen: str) -> None:
    assert error(f'{ACCOUNT}[console]\nlisten = "{listen}"\n') == (
        f'phone.toml: console.listen: expected "tcp:IP:PORT", got "{listen}"'
    )


# --- [console]: who may use the console ------------------------------------------------

TOKEN = "0123456789abcdef0123"
OPEN = (
    "phone.toml: console.token: required when the console listens beyond this machine "
    "({listen}): without it anyone who reaches the port can dial, answer and listen to the room"
)


def test_console_security_defaults() -> None:
    console = parse_config(ACCOUNT).console
    assert (console.token, console.max_clients, console.idle_timeout) == ("", 8, 600)
    assert console.allow_direct_uris is True


@pytest.mark.parametrize("listen", ["tcp:0.0.0.0:5099", "tcp:[::]:5099", "tcp:192.168.1.20:5099",
                                    "tcp:[2001:db8::1]:5099"])
def test_console_off_loopback_needs_a_token(listen: str) -> None:
    assert error(f'{ACCOUNT}[console]\nlisten = "{listen}"\n') == OPEN.format(listen=listen)
    config = parse_config(f'{ACCOUNT}[console]\nlisten = "{listen}"\ntoken = "{TOKEN}"\n')
    assert config.console.token == TOKEN


@pytest.mark.parametrize("listen", ["tcp:127.0.0.1:5099", "tcp:127.0.0.2:0", "tcp:[::1]:5099"])
def test_console_on_loopback_needs_no_token(listen: str) -> None:
    assert parse_config(f'{ACCOUNT}[console]\nlisten = "{listen}"\n').console.token == ""


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.255.0.9", True), ("::1", True), ("[::1]", True),
     ("localhost", True), ("0.0.0.0", False), ("::", False), ("10.0.0.1", False),
     ("::ffff:127.0.0.1", False), ("pbx.example.com", False), ("", False)],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    from deskphone.config.schema import is_loopback_host

    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("short", "must be at least 16 characters (e.g. the output of: openssl rand -hex 16)"),
        ("two words 0123456789", "must be one word (no spaces): clients send it as auth <token>"),
    ],
)
def test_console_token_shape_is_checked_without_showing_it(token: str, message: str) -> None:
    assert error(f'{ACCOUNT}[console]\ntoken = "{token}"\n') == (
        f"phone.toml: console.token: {message}")
    assert error(f"{ACCOUNT}[console]\ntoken = 1234567890123456\n") == (
        "phone.toml: console.token: expected a string, got an integer")


def test_console_token_is_never_printed() -> None:
    config = parse_config(f'{ACCOUNT}[console]\ntoken = "{TOKEN}"\n')
    assert config.console.token == TOKEN
    assert TOKEN not in repr(config)
    assert next(s for s in SCHEMA if s.name == "console").key("token").secret


def test_console_limits() -> None:
    config = parse_config(f"{ACCOUNT}[console]\nmax_clients = 2\nidle_timeout = 0\n"
                          "allow_direct_uris = false\n")
    assert (config.console.max_clients, config.console.idle_timeout) == (2, 0)
    assert config.console.allow_direct_uris is False
    assert errors(f"{ACCOUNT}[console]\nmax_clients = 0\nidle_timeout = -1\n") == [
        "phone.toml: console.max_clients: must be between 1 and 64, got 0",
        "phone.toml: console.idle_timeout: must be between 0 and 86400, got -1",
    ]


def test_audio_and_log_choices() -> None:
    assert errors(f'{ACCOUNT}[audio]\nbackend = "pulse"\n[log]\nlevel = "loud"\n') == [
        'phone.toml: audio.backend: must be one of "null", "file", "alsa", got "pulse"',
        'phone.toml: log.level: must be one of "debug", "info", "warning", "error", got "loud"',
    ]


def test_unknown_sections_and_stray_keys() -> None:
    assert errors(f'user = "1001"\nname = "x"\n{ACCOUNT}[acount]\n[network]\n') == [
        'phone.toml: user: unknown key outside any [section] (did you mean "account.user"?)',
        "phone.toml: name: unknown key outside any [section]",
        'phone.toml: acount: unknown section (did you mean "account"?)',
        "phone.toml: network: unknown section",
    ]


def test_section_that_is_not_a_table() -> None:
    # After [account] a bare "sip = ..." is a key of account, not a section.
    assert error(f'{ACCOUNT}sip = "127.0.0.1:5060"\n') == "phone.toml: account.sip: unknown key"
    assert error(f'sip = "127.0.0.1:5060"\n{ACCOUNT}') == (
        'phone.toml: sip: expected a table, got "127.0.0.1:5060"'
    )


def test_syntax_error_names_the_line() -> None:
    assert error('[account]\nuser = "1001"\npassword = \n') == (
        "phone.toml: line 3: TOML syntax error: Invalid value (column 12)"
    )
    assert error('[account]\nuser = "1001"\nuser = "1002"\n') == (
        "phone.toml: line 3: TOML syntax error: Cannot overwrite a value (column 14)"
    )


def test_syntax_error_at_end_of_file() -> None:
    assert error('[account]\nuser = "1001') == (
        "phone.toml: line 2: TOML syntax error: Unterminated string (at end of file)"
    )


def test_problem_without_location() -> None:
    assert str(Problem(None, "cannot read: Permission denied")) == "cannot read: Permission denied"
    with pytest.raises(ValueError, match="at least one problem"):
        ConfigError("phone.toml", [])


# --- files ------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "phone.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: cannot read: No such file or directory"
    assert info.value.path == str(path)
    assert info.value.key is None


def test_load_relative_path_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("phone.toml").write_text("[account]\npasword = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config("phone.toml")
    assert str(info.value).splitlines()[-1] == (
        'phone.toml: account.pasword: unknown key (did you mean "password"?)'
    )


def test_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "phone.toml"
    path.write_bytes(b'[account]\nuser = "10\xff01"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: line 2: not UTF-8 text"


def test_file_with_bom(tmp_path: Path) -> None:
    path = tmp_path / "phone.toml"
    path.write_bytes(b"\xef\xbb\xbf" + ACCOUNT.encode())
    assert load_config(path).account.user == "1001"


def test_atomic_write_creates_private_file(tmp_path: Path) -> None:
    path = tmp_path / "phone.toml"
    config = atomic_write_config(path, ACCOUNT)
    assert config.account.user == "1001"
    assert path.read_text() == ACCOUNT
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["phone.toml"]


def test_atomic_write_replaces(tmp_path: Path) -> None:
    path = tmp_path / "phone.toml"
    path.write_text("old")
    atomic_write_config(str(path), ACCOUNT.replace("1001", "1002"))
    assert load_config(path).account.user == "1002"
    assert os.listdir(tmp_path) == ["phone.toml"]


def test_atomic_write_refuses_a_bad_config(tmp_path: Path) -> None:
    path = tmp_path / "phone.toml"
    path.write_text(ACCOUNT)
    with pytest.raises(ConfigError) as info:
        atomic_write_config(path, "[account]\n")
    assert str(info.value).splitlines()[0] == f"{path}: account.user: missing (required)"
    assert path.read_text() == ACCOUNT
    assert os.listdir(tmp_path) == ["phone.toml"]


def test_atomic_write_cleans_up_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "phone.toml"
    target.mkdir()  # os.replace onto a directory fails
    with pytest.raises(OSError):
        atomic_write_config(target, ACCOUNT)
    assert os.listdir(tmp_path) == ["phone.toml"]


# --- invariants -------------------------------------------------------------------------

_values = st.one_of(
    st.text(max_size=12),
    st.integers(-(2**63), 2**63 - 1),
    st.booleans(),
    st.floats(allow_nan=False),
    st.dates(),
    st.lists(st.integers(), max_size=2),
)
_names = st.sampled_from(
    sorted({k.name for s in SCHEMA for k in s.keys} | {s.name for s in SCHEMA} | {"x"})
)
_documents = st.dictionaries(
    _names, st.one_of(_values, st.dictionaries(_names, _values, max_size=8)), max_size=6
)


@given(_documents)
def test_any_document_builds_or_raises_config_error(document: dict[str, object]) -> None:
    """Like h11's fuzz invariant: a config is accepted or refused with ConfigError, nothing else."""
    _, problems = validate(document)
    try:
        config = config_from_document(document, "fuzz.toml")
    except ConfigError as err:
        assert err.problems == tuple(problems)
        assert all(line.startswith("fuzz.toml: ") for line in str(err).splitlines())
    else:
        assert isinstance(config, PhoneConfig)
        assert problems == []


@given(st.ip_addresses(), st.integers(0, 65535))
def test_listen_round_trip(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int
) -> None:
    text = f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"
    sip = SipConfig(listen=text)
    assert ipaddress.ip_address(sip.listen_host) == address
    assert sip.listen_port == port


# --- audio.tones ---------------------------------------------------------------------


def test_an_unknown_tone_country_is_named_with_the_known_ones() -> None:
    assert error(f'{ACCOUNT}[audio]\ntones = "xx"\n') == (
        "phone.toml: audio.tones: no tones for 'xx'; known: de, fr, gb, itu, uk, us")
    assert parse_config(f'{ACCOUNT}[audio]\ntones = "UK"\n').audio.tones == "UK"


def test_the_schemas_tone_countries_are_those_media_tables() -> None:
    """The schema keeps its own list (no numpy for the provisioning server): the same."""
    from deskphone.config.schema import TONE_COUNTRIES
    from deskphone.media.tones import countries, get_tone

    assert {c for c in TONE_COUNTRIES if c != "gb"} == {c.lower() for c in countries()}
    for country in TONE_COUNTRIES:
        get_tone(country, "dial")  # each one the config lets through plays


def test_hardware_defaults_are_the_pin_maps() -> None:
    """[hardware]'s pin defaults and hw.pins.PinMap's are the same plan A board."""
    from deskphone.hw.pins import PinMap

    assert PinMap.from_overrides(HardwareConfig().pin_overrides()) == PinMap()


def test_a_pin_used_twice_names_the_key() -> None:
    text = ACCOUNT + "[hardware]\nhook = 9\n"
    assert errors(text) == ["phone.toml: hardware.keypad_rows: pin 9 is used by both "
                            "keypad_rows[0] and hook"]


def test_pin_overrides_reach_the_pin_map() -> None:
    from deskphone.hw.pins import PinMap

    cfg = parse_config(ACCOUNT + "[hardware]\nkeypad_rows = [5, 6, 13, 17]\n"
                       "function_keys = { redial = 9, hold = 10 }\nleds = { line = 22 }\n")
    pins = PinMap.from_overrides(cfg.hardware.pin_overrides())
    assert pins.keypad_rows == (5, 6, 13, 17)
    assert dict(pins.function_keys) == {"redial": 9, "hold": 10}
    assert dict(pins.leds) == {"line": 22}


def test_a_bad_pin_list_names_the_key() -> None:
    assert errors(ACCOUNT + "[hardware]\nkeypad_cols = [24, 25]\n") == [
        "phone.toml: hardware.keypad_cols: expected 3 pins, got 2"]
    assert errors(ACCOUNT + "[hardware]\nkeypad_cols = 24\n") == [
        "phone.toml: hardware.keypad_cols: expected an array, got 24"]
