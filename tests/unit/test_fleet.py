"""The fleet tool: inventory CSV + common template -> per-MAC configs, checked by the schema."""

from __future__ import annotations

import io
import os
import stat
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deskphone.config import config_from_document
from deskphone.provision.fleet import (
    COMMON_NAME,
    emit_document,
    emit_string,
    emit_value,
    generate,
    main,
    normalise_mac,
)
from deskphone.provision.merge import merge_documents

TEMPLATE = """\
# shared by every phone
[account]
domain = "pbx.example.org"
registrar = "sip:pbx.example.org:5060"
transport = "udp"

[audio]
tones = "us"
"""

HEADER = "mac,extension,display_name,password"
THREE = f"""\
{HEADER},audio.tones
aa:bb:cc:00:00:01,1001,Reception,pw-1001,
AA-BB-CC-00-00-02,1002,Sales,pw-1002,gb
aabbcc000003,1003,"Lab, rack 2",pw-1003,
"""


def _files(tmp_path: Path, inventory: str, template: str = TEMPLATE) -> tuple[str, str]:
    inv = tmp_path / "inventory.csv"
    inv.write_text(inventory, encoding="utf-8")
    tpl = tmp_path / "common.toml"
    tpl.write_text(template, encoding="utf-8")
    return str(inv), str(tpl)


def _problems(tmp_path: Path, inventory: str, template: str = TEMPLATE) -> list[str]:
    inv, tpl = _files(tmp_path, inventory, template)
    return [str(p) for p in generate(inv, tpl, None).problems]


def _merged(out: Path, mac: str) -> dict[str, object]:
    common = tomllib.loads((out / COMMON_NAME).read_text())
    own = tomllib.loads((out / f"{mac}.toml").read_text())
    return merge_documents(common, own)


# --------------------------------------------------------------------------------------
# generating


def test_three_phones_make_three_files_and_the_common_one(tmp_path: Path) -> None:
    inv, tpl = _files(tmp_path, THREE)
    out = tmp_path / "out"
    result = generate(inv, tpl, str(out))
    assert result.problems == ()
    assert sorted(os.listdir(out)) == ["aabbcc000001.toml", "aabbcc000002.toml",
                                       "aabbcc000003.toml", COMMON_NAME]
    assert (out / COMMON_NAME).read_text() == TEMPLATE  # comments kept
    expected = {"aabbcc000001": ("1001", "Reception", "pw-1001", "us"),
                "aabbcc000002": ("1002", "Sales", "pw-1002", "gb"),
                "aabbcc000003": ("1003", "Lab, rack 2", "pw-1003", "us")}
    for mac, (user, name, password, tones) in expected.items():
        config = config_from_document(_merged(out, mac), mac)
        account = config.account
        assert (account.user, account.display_name, account.password) == (user, name, password)
        assert account.domain == "pbx.example.org"
        assert account.registrar == "sip:pbx.example.org:5060"
        assert config.audio.tones == tones


def test_the_per_mac_file_holds_only_the_phones_own_keys(tmp_path: Path) -> None:
    inv, tpl = _files(tmp_path, THREE)
    generate(inv, tpl, str(tmp_path / "out"))
    text = (tmp_path / "out" / "aabbcc000002.toml").read_text()
    assert text == (
        "# aabbcc000002: from inventory.csv line 3 by deskphone.provision.fleet\n"
        "# edit the inventory, not this file\n"
        "\n[account]\nuser = \"1002\"\npassword = \"pw-1002\"\ndisplay_name = \"Sales\"\n"
        "\n[audio]\ntones = \"gb\"\n"
    )


def test_typed_columns_are_parsed_as_toml_values(tmp_path: Path) -> None:
    inventory = (f'{HEADER},account.register_expires,hardware.keypad_rows,'
                 'sip.symmetric_rtp,hardware.leds\n'
                 'aabbcc000001,1001,A,pw,600,"[9, 10, 11, 13]",false,'
                 '"{line = 22, mwi = 23, in_use = 27}"\n')
    inv, tpl = _files(tmp_path, inventory)
    assert generate(inv, tpl, str(tmp_path / "out")).problems == ()
    config = config_from_document(_merged(tmp_path / "out", "aabbcc000001"), "x")
    assert config.account.register_expires == 600
    assert config.hardware.keypad_rows == (9, 10, 11, 13)
    assert config.sip.symmetric_rtp is False
    assert dict(config.hardware.leds) == {"line": 22, "mwi": 23, "in_use": 27}


def test_check_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inv, tpl = _files(tmp_path, THREE)
    out = tmp_path / "out"
    assert main(["--inventory", inv, "--template", tpl, "--out", str(out), "--check"]) == 0
    assert not out.exists()
    assert capsys.readouterr().out == "3 phones checked: no problems\n"


def test_modes_0600_for_passwords_0644_for_a_common_file_without(tmp_path: Path) -> None:
    inv, tpl = _files(tmp_path, THREE)
    out = tmp_path / "out"
    generate(inv, tpl, str(out))
    modes = {name: stat.S_IMODE(os.stat(out / name).st_mode) for name in os.listdir(out)}
    assert modes == {"aabbcc000001.toml": 0o600, "aabbcc000002.toml": 0o600,
                     "aabbcc000003.toml": 0o600, COMMON_NAME: 0o644}
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")]


def test_a_common_file_with_a_secret_is_0600(tmp_path: Path) -> None:
    template = TEMPLATE + '\n[console]\ntoken = "0123456789abcdef0123"\n'
    inv, tpl = _files(tmp_path, THREE, template)
    out = tmp_path / "out"
    assert generate(inv, tpl, str(out)).problems == ()
    assert stat.S_IMODE(os.stat(out / COMMON_NAME).st_mode) == 0o600


def test_group_makes_secret_files_0640_in_that_group(tmp_path: Path) -> None:
    """nginx's workers (www-data) must read the per-MAC files: --group GROUP."""
    import grp

    inv, tpl = _files(tmp_path, THREE)
    out = tmp_path / "out"
    gid = os.getgroups()[-1] if os.getgroups() else os.getgid()
    name = grp.getgrgid(gid).gr_name
    assert main(["--inventory", inv, "--template", tpl, "--out", str(out),
                 "--group", name]) == 0
    for entry in os.listdir(out):
        st_ = os.stat(out / entry)
        assert st_.st_gid == gid
        assert stat.S_IMODE(st_.st_mode) == (0o644 if entry == COMMON_NAME else 0o640)
    with pytest.raises(SystemExit):
        main(["--inventory", inv, "--template", tpl, "--out", str(out),
              "--group", "no-such-group-here"])


def test_a_template_that_sets_nothing_is_refused(tmp_path: Path) -> None:
    """A phone refuses an empty deskphone.toml, so the fleet tool must not write one."""
    own = f"{HEADER},account.domain\naa:bb:cc:00:00:01,1001,Ann,pw-1,pbx.example.org\n"
    problems = _problems(tmp_path, own, "# nothing shared yet\n[audio]\n")
    assert problems == [f"{tmp_path / 'common.toml'}: sets nothing (only empty sections): "
                        f"a phone refuses such a {COMMON_NAME}"]


def test_main_writes_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inv, tpl = _files(tmp_path, THREE)
    out = tmp_path / "out"
    assert main(["--inventory", inv, "--template", tpl, "--out", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote 3 phone configs and {COMMON_NAME} to {out}\n"


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    assert "--inventory CSV" in capsys.readouterr().out


def test_progress_counts_to_the_total(tmp_path: Path) -> None:
    inv, tpl = _files(tmp_path, THREE)
    progress = io.StringIO()
    generate(inv, tpl, None, progress)
    assert progress.getvalue() == "\rchecked 3/3 phones\n"


# --------------------------------------------------------------------------------------
# problems: every one, each naming its line, exit status 2, nothing written


def test_a_bad_value_is_reported_as_the_schema_reports_it(tmp_path: Path) -> None:
    inventory = (f"{HEADER},account.register_expires\n"
                 + "".join(f"aabbcc00000{i},100{i},A,pw,600\n" for i in range(1, 6))
                 + "aabbcc000006,1006,A,pw,5\n")
    assert _problems(tmp_path, inventory) == [
        f"{tmp_path}/inventory.csv:7: account.register_expires: must be between 60 and "
        "86400, got 5"]


def test_a_wrong_type_and_a_bad_choice(tmp_path: Path) -> None:
    inventory = (f"{HEADER},account.register_expires,account.transport\n"
                 "aabbcc000001,1001,A,pw,soon,tls\n")
    inv = f"{tmp_path}/inventory.csv"
    assert _problems(tmp_path, inventory) == [
        f'{inv}:2: account.transport: must be one of "udp", "tcp", got "tls"',
        f'{inv}:2: account.register_expires: expected an integer, got "soon"',
    ]


def test_bad_duplicate_and_empty_macs_every_one_reported(tmp_path: Path) -> None:
    inventory = (f"{HEADER}\n"
                 "aa:bb:cc:00:00:01,1001,A,pw\n"
                 "aa:bb:cc:00:00:0g,1002,B,pw\n"
                 "AA-BB-CC-00-00-01,1003,C,pw\n"
                 "aa:bb-cc:00:00:04,1004,D,pw\n"
                 ",1005,E,pw\n")
    inv = f"{tmp_path}/inventory.csv"
    assert _problems(tmp_path, inventory) == [
        f'{inv}:3: mac: expected 12 hex digits such as "aa:bb:cc:dd:ee:ff", '
        'got "aa:bb:cc:00:00:0g"',
        f"{inv}:4: mac: aabbcc000001 is already on line 2",
        f'{inv}:5: mac: expected 12 hex digits such as "aa:bb:cc:dd:ee:ff", '
        'got "aa:bb-cc:00:00:04"',
        f"{inv}:6: mac: empty (required)",
    ]


def test_a_duplicate_extension(tmp_path: Path) -> None:
    inventory = f"{HEADER}\naabbcc000001,1001,A,pw\n\naabbcc000002,1001,B,pw\n"
    assert _problems(tmp_path, inventory) == [
        f'{tmp_path}/inventory.csv:4: extension: "1001" is already on line 2']


def test_an_unknown_column_gets_the_schemas_did_you_mean(tmp_path: Path) -> None:
    inventory = (f"{HEADER},audio.tone,aduio.tones,tones,account.password\n"
                 "aabbcc000001,1001,A,pw,gb,gb,gb,x\n")
    inv = f"{tmp_path}/inventory.csv"
    assert _problems(tmp_path, inventory) == [
        f'{inv}:1: audio.tone: unknown key (did you mean "tones"?)',
        f'{inv}:1: aduio.tones: unknown section (did you mean "audio"?)',
        f'{inv}:1: tones: unknown key outside any [section] (did you mean "audio.tones"?)',
        f'{inv}:1: column "account.password": use the password column instead',
    ]


def test_missing_required_columns(tmp_path: Path) -> None:
    assert _problems(tmp_path, "mac,extension\naabbcc000001,1001\n") == [
        f'{tmp_path}/inventory.csv:1: missing required columns "display_name", "password"']


def test_template_problems_are_reported_once_not_per_phone(tmp_path: Path) -> None:
    template = '[account]\nregistrar = "pbx"\n'
    assert _problems(tmp_path, THREE, template) == [
        f"{tmp_path}/common.toml: account.domain: missing (required)",
        f'{tmp_path}/common.toml: account.registrar: expected a sip: or sips: URI such as '
        '"sip:127.0.0.1:5060", got "pbx"',
    ]


def test_a_template_syntax_error_names_its_line(tmp_path: Path) -> None:
    assert _problems(tmp_path, THREE, "[account]\ndomain = \n") == [
        f"{tmp_path}/common.toml:2: TOML syntax error: Invalid value (column 10)"]


def test_passwords_never_appear_in_messages(tmp_path: Path) -> None:
    inventory = (f"{HEADER},console.token,console.listen\n"
                 "aabbcc000001,1001,A,hunter2-secret,short-tok3n,tcp:0.0.0.0:5099\n"
                 "aabbcc000002,1002,B,,,\n")
    problems = _problems(tmp_path, inventory, TEMPLATE + "\n[console]\n")
    inv = f"{tmp_path}/inventory.csv"
    assert problems == [
        f"{inv}:2: console.token: must be at least 16 characters "
        "(e.g. the output of: openssl rand -hex 16)",
        f"{inv}:3: password: empty (required)",
    ]
    assert not any("hunter2" in p or "short-tok3n" in p for p in problems)


def test_main_exits_2_lists_every_problem_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = f"{HEADER}\nnot-a-mac,1001,A,pw\naabbcc000002,1001,B,pw\n"
    inv, tpl = _files(tmp_path, inventory)
    out = tmp_path / "out"
    assert main(["--inventory", inv, "--template", tpl, "--out", str(out)]) == 2
    assert not out.exists()
    assert capsys.readouterr().err == (
        f'{inv}:2: mac: expected 12 hex digits such as "aa:bb:cc:dd:ee:ff", got "not-a-mac"\n'
        f'{inv}:3: extension: "1001" is already on line 2\n'
        "2 problems; nothing written\n"
    )


def test_a_cell_cannot_smuggle_in_other_keys(tmp_path: Path) -> None:
    inventory = f'{HEADER},account.register_expires\naabbcc000001,1001,A,pw,"600\nx = 1"\n'
    assert _problems(tmp_path, inventory) == [
        f'{tmp_path}/inventory.csv:2: account.register_expires: expected an integer, '
        'got "600\\nx = 1"']


def test_an_unwritable_output_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    inv, tpl = _files(tmp_path, THREE)
    (tmp_path / "out").write_text("a file, not a directory")
    result = generate(inv, tpl, str(tmp_path / "out"))
    assert [str(p) for p in result.problems] == [f"{tmp_path}/out: cannot write: File exists"]


def test_an_unreadable_inventory(tmp_path: Path) -> None:
    tpl = tmp_path / "common.toml"
    tpl.write_text(TEMPLATE)
    result = generate(str(tmp_path / "nope.csv"), str(tpl), None)
    assert [str(p) for p in result.problems] == [
        f"{tmp_path}/nope.csv: cannot read: No such file or directory"]


# --------------------------------------------------------------------------------------
# MACs and the TOML writer


@pytest.mark.parametrize("text", ["aa:bb:cc:dd:ee:ff", "AA-BB-CC-DD-EE-FF", "aabbccddeeff",
                                  "AABB.CCDD.EEFF"])
def test_mac_forms_normalise(text: str) -> None:
    assert normalise_mac(text) == "aabbccddeeff"


@pytest.mark.parametrize("text", ["aabbccddeef", "aa:bb:cc:dd:ee:ff:00", "aa:bb-cc:dd:ee:ff",
                                  "gabbccddeeff", "aabbccddeeff\n"])
def test_bad_macs_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="expected 12 hex digits"):
        normalise_mac(text)


def test_emit_string_escapes() -> None:
    assert emit_string('a"b\\c\n\x00\x7f\té') == '"a\\"b\\\\c\\n\\u0000\\u007F\\té"'


_SCALARS = st.one_of(st.text(), st.integers(min_value=-(2**63), max_value=2**63 - 1),
                     st.booleans())
_KEYS = st.text(min_size=1)


@given(st.dictionaries(
    _KEYS,
    st.dictionaries(_KEYS, st.one_of(
        _SCALARS,
        st.lists(st.integers(min_value=0, max_value=65535)),
        st.dictionaries(_KEYS, st.integers(min_value=0, max_value=65535)),
    )),
))
def test_emitted_toml_parses_back_to_the_same_values(
        document: dict[str, dict[str, object]]) -> None:
    assert tomllib.loads(emit_document(document, "a header\nover two lines")) == {
        section: table for section, table in document.items() if table}


@given(st.text())
def test_any_string_round_trips(text: str) -> None:
    assert tomllib.loads(f"v = {emit_value(text)}")["v"] == text


def test_a_thousand_phones(tmp_path: Path) -> None:
    """bench/fleet.py times this (about 1.4 s with the writes); here only that it works."""
    rows = "".join(f"aabbcc{i:06x},{2000 + i},Desk {i},pw-{i}\n" for i in range(1000))
    inv, tpl = _files(tmp_path, f"{HEADER}\n{rows}")
    out = tmp_path / "out"
    result = generate(inv, tpl, str(out))
    assert (result.problems, len(result.phones)) == ((), 1000)
    assert len(os.listdir(out)) == 1001
    config = config_from_document(_merged(out, "aabbcc0003e7"), "x")
    assert (config.account.user, config.account.display_name) == ("2999", "Desk 999")
