"""Provisioned files: parsing one, overlaying them, validating, and what a change restarts.

Every message a person can see is asserted exactly; none may show a secret.
"""

from __future__ import annotations

import ast
import json
import tomllib
from pathlib import Path

import pytest

from deskphone.config import SCHEMA, ConfigError, PhoneConfig, config_from_document
from deskphone.provision.merge import (
    LOCAL_ONLY,
    SCOPES,
    Change,
    Scope,
    SyncError,
    apply_scope,
    config_changes,
    merge_documents,
    parse_remote,
    provisioned_config,
    scope_of,
)

MAC = "b827eb123456.toml"
COMMON = "deskphone.toml"
SECRET = "s3cret-PW"

LOCAL = tomllib.loads('[provisioning]\nurl = "https://prov.example.com/phones"\n'
                      '[account]\nuser = "unprovisioned"\npassword = ""\ndomain = "127.0.0.1"\n')
COMMON_DOC = tomllib.loads('[account]\ndomain = "pbx.example.com"\n'
                           'registrar = "sip:pbx.example.com"\n[audio]\ntones = "de"\n')
OWN_DOC = tomllib.loads(f'[account]\nuser = "1001"\npassword = "{SECRET}"\n'
                        '[audio]\ntones = "gb"\n')


def remote(text: str | bytes, name: str = MAC, max_bytes: int = 4096) -> dict[str, object]:
    data = text.encode() if isinstance(text, str) else text
    return parse_remote(name, data, max_bytes=max_bytes)


def refused(text: str | bytes, name: str = MAC, max_bytes: int = 4096) -> str:
    with pytest.raises(ConfigError) as info:
        remote(text, name, max_bytes)
    return str(info.value)


def sync_error(files: list[tuple[str, str]], local: dict[str, object] = LOCAL) -> str:
    with pytest.raises(SyncError) as info:
        provisioned_config(local, [(name, tomllib.loads(text)) for name, text in files])
    message = str(info.value)
    assert SECRET not in message and SECRET not in repr(info.value.problems)
    return message


# --------------------------------------------------------------------------------------
# one fetched file


def test_a_file_parses_to_its_document() -> None:
    assert remote('[audio]\ntones = "de"\n') == {"audio": {"tones": "de"}}


def test_a_bom_is_tolerated_as_in_the_local_file() -> None:
    assert remote(b'\xef\xbb\xbf[audio]\ntones = "de"\n') == {"audio": {"tones": "de"}}


@pytest.mark.parametrize("text", ["", "   \n\n", "# only a comment\n\n# another\n"])
def test_an_empty_file_is_refused(text: str) -> None:
    assert refused(text) == f"{MAC}: empty file"


def test_a_file_of_empty_sections_sets_nothing() -> None:
    assert refused("[account]\n[audio]\n") == f"{MAC}: sets nothing (only empty sections)"


def test_an_oversized_file_is_refused_before_it_is_read() -> None:
    assert refused(b"\xff" * 101, max_bytes=100) == f"{MAC}: larger than 100 bytes (101)"
    exactly = '[log]\nlevel = "info"\n'
    assert remote(exactly, max_bytes=len(exactly)) == {"log": {"level": "info"}}


def test_not_utf8_names_the_line() -> None:
    assert refused(b'[account]\nuser = "\xff"\n') == f"{MAC}: line 2: not UTF-8 text"


def test_a_syntax_error_names_the_line_as_for_the_local_file() -> None:
    assert refused(f'[account]\nuser = "1001"\npassword = {SECRET}\n') == (
        f"{MAC}: line 3: TOML syntax error: Invalid value (column 12)")


def test_a_truncated_file_is_a_syntax_error_at_its_end() -> None:
    assert refused('[account]\nuser = "1001"\npassword = "s3c') == (
        f"{MAC}: line 3: TOML syntax error: Unterminated string (at end of file)")


def test_keys_outside_any_section_are_refused_without_their_values() -> None:
    message = refused(f'password = "{SECRET}"\naccount = "x"\n[audio]\ntones = "de"\n')
    assert message.splitlines() == [
        f'{MAC}: account: expected a table, got "x"',
        f'{MAC}: password: unknown key outside any [section]',
    ]


# --------------------------------------------------------------------------------------
# merging


def test_later_documents_win_key_by_key() -> None:
    merged = merge_documents({"a": {"x": 1, "y": 2}, "b": {"z": 3}},
                             {"a": {"y": 20}}, {"a": {"w": 4}, "c": {"v": 5}})
    assert merged == {"a": {"x": 1, "y": 20, "w": 4}, "b": {"z": 3}, "c": {"v": 5}}


def test_a_table_valued_key_is_replaced_whole() -> None:
    common = {"hardware": {"leds": {"line": 22, "mwi": 23, "in_use": 27}, "hook": 4}}
    own = {"hardware": {"leds": {"line": 5}}}
    assert merge_documents(common, own) == {"hardware": {"leds": {"line": 5}, "hook": 4}}


def test_merging_changes_no_input() -> None:
    first, second = {"a": {"x": 1}}, {"a": {"x": 2}}
    merge_documents(first, second)
    assert first == {"a": {"x": 1}} and second == {"a": {"x": 2}}


def test_per_mac_over_common_over_local() -> None:
    config, provisioned = provisioned_config(LOCAL, [(COMMON, COMMON_DOC), (MAC, OWN_DOC)])
    assert (config.account.user, config.account.password) == ("1001", SECRET)
    assert config.account.domain == "pbx.example.com"  # common over local
    assert config.audio.tones == "gb"  # per-MAC over common
    assert config.provisioning.url == "https://prov.example.com/phones"  # local kept
    assert provisioned == {
        "account": {"domain": "pbx.example.com", "registrar": "sip:pbx.example.com",
                    "user": "1001", "password": SECRET},
        "audio": {"tones": "gb"},
    }


def test_the_common_file_alone_when_there_is_no_per_mac_file() -> None:
    config, _ = provisioned_config(LOCAL, [(COMMON, COMMON_DOC)])
    assert (config.account.user, config.audio.tones) == ("unprovisioned", "de")


def test_required_keys_may_come_from_different_files() -> None:
    config, _ = provisioned_config({}, [(COMMON, {"account": {"domain": "pbx"}}),
                                        (MAC, {"account": {"user": "7", "password": ""}})])
    assert (config.account.user, config.account.domain) == ("7", "pbx")


def test_a_cross_key_check_waits_for_the_merge() -> None:
    """The rtp range is completed by the other file: neither alone is refused."""
    config, _ = provisioned_config(LOCAL, [(COMMON, {"sip": {"rtp_port_min": 20000}}),
                                           (MAC, {"sip": {"rtp_port_max": 20100}})])
    assert (config.sip.rtp_port_min, config.sip.rtp_port_max) == (20000, 20100)


# --------------------------------------------------------------------------------------
# problems name the file that set the key


def test_a_wrong_type_names_the_file_and_the_key() -> None:
    assert sync_error([(COMMON, '[phone]\ninterdigit_timeout = "soon"\n')]) == (
        f'{COMMON}: phone.interdigit_timeout: expected an integer, got "soon"')


def test_a_wrong_typed_password_shows_no_value() -> None:
    assert sync_error([(MAC, "[account]\npassword = 12345\n")]) == (
        f"{MAC}: account.password: expected a string, got an integer")


def test_unknown_sections_and_keys_are_reported() -> None:
    assert sync_error([(COMMON, "[bogus]\nx = 1\n[account]\npasword = 'x'\n")]).splitlines() \
        == [f'{COMMON}: account.pasword: unknown key (did you mean "password"?)',
            f"{COMMON}: bogus: unknown section"]


@pytest.mark.parametrize("text, key", [
    ('[phone]\nstate_dir = "/tmp/x"\n', "phone.state_dir"),
    ('[console]\nserial = "socket://203.0.113.9:4444"\n', "console.serial"),
    ('[console]\nlisten = "tcp:0.0.0.0:5099"\ntoken = "0123456789abcdef0"\n',
     "console.listen"),
    ('[audio]\noutput = "/var/lib/deskphone/room.wav"\n', "audio.output"),
    ("[audio]\nplayback_device = \"file:FILE='|touch /tmp/x'\"\n", "audio.playback_device"),
    ('[provisioning]\nca_file = ""\n', "provisioning.ca_file"),
])
def test_what_only_the_local_file_may_set(text: str, key: str) -> None:
    """The state dir, the console (the phone's remote control), paths on the phone and
    whom it trusts are not a provisioning server's to set."""
    message = sync_error([(MAC, text)])
    assert message.startswith(f"{MAC}: {key}: set locally only"), message
    assert key in LOCAL_ONLY or f"{key.split('.')[0]}.*" in LOCAL_ONLY
    config, _ = provisioned_config({**LOCAL, "phone": {"state_dir": "/srv/p"}}, [])
    assert config.phone.state_dir == "/srv/p"


def test_every_file_with_problems_is_named_in_one_error() -> None:
    with pytest.raises(SyncError) as info:
        provisioned_config(LOCAL, [(COMMON, {"audio": {"tones": "xx"}}),
                                   (MAC, {"log": {"level": 3}})])
    error = info.value
    assert [e.path for e in error.errors] == [COMMON, MAC]
    assert str(error).splitlines() == [
        f"{COMMON}: audio.tones: no tones for 'xx'; known: de, fr, gb, itu, uk, us",
        f"{MAC}: log.level: expected a string, got 3",
    ]
    assert isinstance(error, ConfigError) and error.path == COMMON
    assert [p.key for p in error.problems] == ["audio.tones", "log.level"]


def test_a_merged_problem_names_the_file_that_set_the_key() -> None:
    message = sync_error([(COMMON, "[sip]\nrtp_port_min = 20000\nrtp_port_max = 20100\n"),
                          (MAC, "[sip]\nrtp_port_max = 19000\n")])
    assert message == (
        f"{MAC}: sip.rtp_port_max: must be greater than rtp_port_min (20000), got 19000")


def test_a_key_nobody_set_is_blamed_on_the_last_file_in_its_section() -> None:
    # the RTP range's lower end moves past the upper one, which nobody set
    message = sync_error([(COMMON, '[sip]\nrtp_port_min = 30000\n'),
                          (MAC, '[audio]\ntones = "gb"\n')])
    assert message == (f"{COMMON}: sip.rtp_port_max: must be greater than rtp_port_min "
                       "(30000), got 16482")


def test_a_missing_account_with_no_remote_account_is_the_local_files() -> None:
    with pytest.raises(SyncError) as info:
        provisioned_config({}, [(COMMON, {"audio": {"tones": "de"}})],
                           local_name="/etc/deskphone/phone.toml")
    assert str(info.value).splitlines()[0] == (
        "/etc/deskphone/phone.toml: account.user: missing (required)")


def test_no_message_shows_a_secret() -> None:
    bad = [
        f"[account]\npassword = ['{SECRET}']\n",
        f"[console]\ntoken = '{SECRET} x'\n",
        f"[console]\ntoken = '{SECRET}'\nlisten = 'nonsense'\n",
        f"[provisioning]\npassword = '{SECRET}'\n",
        f"[account]\npassword = '{SECRET}'\nuser = 5\n",
        f"[accuont]\npassword = '{SECRET}'\n",
    ]
    for text in bad:
        sync_error([(MAC, text)])  # asserts the secret is absent


# --------------------------------------------------------------------------------------
# what changed, and what that restarts


def config(**sections: dict[str, object]) -> PhoneConfig:
    document: dict[str, object] = {"account": {"user": "1", "password": "p", "domain": "h"}}
    return config_from_document(merge_documents(document, sections), "x")


def test_changes_in_schema_order_secrets_without_values() -> None:
    old = config()
    new = config(account={"password": SECRET}, audio={"tones": "gb"},
                 hardware={"leds": {"line": 13, "mwi": 23, "in_use": 27}})
    changes = config_changes(old, new)
    assert [c.key for c in changes] == ["account.password", "hardware.leds", "audio.tones"]
    assert [c.describe() for c in changes] == [
        "account.password changed",
        "hardware.leds: {line = 22, mwi = 23, in_use = 27} -> {line = 13, mwi = 23, in_use = 27}",
        'audio.tones: "us" -> "gb"',
    ]
    assert [c.as_event() for c in changes] == [
        {"key": "account.password", "secret": True},
        {"key": "hardware.leds", "old": {"line": 22, "mwi": 23, "in_use": 27},
         "new": {"line": 13, "mwi": 23, "in_use": 27}},
        {"key": "audio.tones", "old": "us", "new": "gb"},
    ]
    json.dumps([c.as_event() for c in changes])  # JSON as it is
    shown = repr(changes) + str(changes) + "".join(c.describe() for c in changes)
    assert SECRET not in shown and "'p'" not in shown


def test_no_change_is_no_change() -> None:
    assert config_changes(config(), config()) == []
    assert apply_scope([]) is Scope.NONE


def test_tuples_and_arrays_compare_by_value() -> None:
    changes = config_changes(config(), config(hardware={"keypad_rows": [9, 10, 11, 13]}))
    assert [c.describe() for c in changes] == [
        "hardware.keypad_rows: [9, 10, 11, 16] -> [9, 10, 11, 13]"]


@pytest.mark.parametrize("section, values, scope", [
    ("phone", {"digit_map": "xxx"}, Scope.LIVE),
    ("audio", {"tones": "gb"}, Scope.LIVE),
    ("audio", {"ringtone": True}, Scope.LIVE),
    ("sip", {"ring_timeout": 30}, Scope.LIVE),
    ("log", {"level": "debug"}, Scope.LIVE),
    ("provisioning", {"resync_interval": 60}, Scope.LIVE),
    ("account", {"password": "q"}, Scope.SIP),
    ("sip", {"user_agent": "x"}, Scope.SIP),
    ("hardware", {"hook": 13}, Scope.RESTART),
    ("console", {"max_clients": 2}, Scope.RESTART),
    ("audio", {"backend": "file"}, Scope.RESTART),
    ("phone", {"state_dir": "/srv"}, Scope.RESTART),
])
def test_each_change_has_its_scope(section: str, values: dict[str, object],
                                   scope: Scope) -> None:
    (change,) = config_changes(config(), config(**{section: values}))
    assert change.scope is scope
    assert apply_scope([change]) is scope


def test_the_widest_scope_wins() -> None:
    changes = config_changes(config(), config(audio={"tones": "gb"}, log={"level": "debug"},
                                              account={"user": "2"}))
    assert apply_scope(changes) is Scope.SIP
    restart = Change("hardware.hook", False, 4, 21)
    assert apply_scope([*changes, restart]) is Scope.RESTART
    assert [s.value for s in Scope] == ["none", "live", "sip", "restart"]


def test_every_schema_key_has_a_scope_and_every_entry_a_key() -> None:
    keys = {f"{s.name}.{k.name}" for s in SCHEMA for k in s.keys}
    for key in keys:
        assert isinstance(scope_of(key), Scope), key
    sections = {s.name for s in SCHEMA}
    for entry in SCOPES:
        section, _, name = entry.partition(".")
        assert entry in keys or (name == "*" and section in sections), entry
    with pytest.raises(KeyError):
        scope_of("nowhere.key")


def test_the_module_is_pure() -> None:
    path = Path(__file__).resolve().parents[2] / "firmware/deskphone/provision/merge.py"
    tree = ast.parse(path.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert imported & {"os", "io", "time", "datetime", "socket", "random", "asyncio",
                       "pathlib", "threading"} == set()
