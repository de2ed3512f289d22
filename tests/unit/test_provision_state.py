"""The last good provisioned set: one 0600 file, whole across power cuts, set aside if bad."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
from pathlib import Path

import pytest
from powercut import killed_at, left_behind, new_file_expected

from deskphone.config.store import STEPS
from deskphone.provision.merge import parse_remote
from deskphone.provision.state import (
    STATE_FILE,
    ProvisionedFile,
    ProvisionState,
    _to_json,
    load_state,
    save_state,
    state_path,
)

SECRET = "s3cret-pw"
BASE = "https://prov.example.com/phones"
COMMON = '[account]\ndomain = "pbx.example.com"\n[audio]\ntones = "de"\n'
OWN = f'[account]\nuser = "1001"\npassword = "{SECRET}"\ndisplay_name = "Zoë"\n'


def state(own: str = OWN, common: str | None = COMMON,
          at: str = "2026-12-07T09:00:00+00:00") -> ProvisionState:
    files = (
        ProvisionedFile.missing("deskphone.toml", f"{BASE}/deskphone.toml") if common is None
        else ProvisionedFile.fetched("deskphone.toml", f"{BASE}/deskphone.toml", '"c1"',
                                     common.encode()),
        ProvisionedFile.fetched("b827eb123456.toml", f"{BASE}/b827eb123456.toml", None,
                                own.encode()),
    )
    return ProvisionState(BASE, "b827eb123456", files, at)


def test_round_trip(tmp_path: Path) -> None:
    path = state_path(tmp_path)
    assert path == tmp_path / STATE_FILE == tmp_path / "provisioning.json"
    saved = state()
    save_state(path, saved)
    assert load_state(path) == saved
    assert os.listdir(tmp_path) == ["provisioning.json"]


def test_the_texts_stay_out_of_reprs() -> None:
    assert SECRET not in repr(state()) and SECRET not in str(state().files)


def test_a_404_round_trips_as_no_text(tmp_path: Path) -> None:
    saved = state(common=None)
    assert saved.files[0] == ProvisionedFile("deskphone.toml", f"{BASE}/deskphone.toml",
                                             None, "", None)
    assert saved.files[0].body is None
    save_state(tmp_path / STATE_FILE, saved)
    assert load_state(tmp_path / STATE_FILE) == saved


def test_a_fetched_file_keeps_the_digest_of_its_body_and_its_text() -> None:
    body = b"\xef\xbb\xbf" + COMMON.encode()  # a BOM: dropped from the text, not the digest
    f = ProvisionedFile.fetched("deskphone.toml", "u", '"e"', body)
    assert (f.sha256, f.text, f.etag) == (hashlib.sha256(body).hexdigest(), COMMON, '"e"')
    assert f.body is not None
    assert parse_remote(f.name, f.body, max_bytes=4096) == parse_remote(
        f.name, body, max_bytes=4096)
    with pytest.raises(UnicodeDecodeError):
        ProvisionedFile.fetched("x.toml", "u", None, b"\xff")


def test_a_bom_file_round_trips(tmp_path: Path) -> None:
    saved = ProvisionState(BASE, "m", (ProvisionedFile.fetched(
        "deskphone.toml", "u", None, b"\xef\xbb\xbf" + COMMON.encode()),), "t")
    save_state(tmp_path / STATE_FILE, saved)
    assert load_state(tmp_path / STATE_FILE) == saved


def test_the_file_is_0600_and_its_directory_made_private(tmp_path: Path) -> None:
    path = tmp_path / "state" / STATE_FILE
    save_state(path, state())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_no_file_is_no_state(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert load_state(tmp_path / STATE_FILE) is None
    assert caplog.records == []


BAD = {
    "not json": b"{ not json",
    "not utf-8": b'{"version": 1, "mac": "\xff"}',
    "a list": b"[]",
    "another version": b'{"version": 2}',
    "deep": b"[" * 100_000,
}


def _saved_json(tmp_path: Path) -> dict[str, object]:
    save_state(tmp_path / STATE_FILE, state())
    raw: dict[str, object] = json.loads((tmp_path / STATE_FILE).read_text())
    return raw


def _bad_shapes(tmp_path: Path) -> dict[str, bytes]:
    good = _saved_json(tmp_path)
    files = good["files"]
    assert isinstance(files, list)
    shapes: dict[str, dict[str, object]] = {
        "no mac": {k: v for k, v in good.items() if k != "mac"},
        "files not a list": {**good, "files": {}},
        "a file not an object": {**good, "files": ["x"]},
        "a wrong-typed etag": {**good, "files": [{**files[0], "etag": 5}]},
        "an edited text": {**good, "files": [{**files[1],
                                              "text": OWN.replace("1001", "1002")}]},
        "a 404 with a digest": {**good, "files": [{**files[0], "text": None}]},
        "a digest that is not one": {**good, "files": [{**files[0], "sha256": "abc"}]},
        "a lone surrogate": {**good, "files": [{**files[0], "text": "\ud800"}]},
    }
    return {why: json.dumps(raw).encode() for why, raw in shapes.items()}


@pytest.mark.parametrize("why", [*BAD, "shapes"])
def test_an_unusable_file_is_set_aside_and_logged_without_secrets(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, why: str) -> None:
    cases = _bad_shapes(tmp_path) if why == "shapes" else {why: BAD[why]}
    path = tmp_path / STATE_FILE
    for name, data in cases.items():
        caplog.clear()
        path.write_bytes(data)
        with caplog.at_level(logging.WARNING, logger="deskphone.provision"):
            assert load_state(path) is None, name
        assert (tmp_path / "provisioning.json.bad").read_bytes() == data, name
        assert not path.exists()
        (message,) = [r.getMessage() for r in caplog.records]
        assert message.startswith(f"provisioned state {path} unusable ("), name
        assert message.endswith(f"); set aside as {path}.bad"), name
        assert SECRET not in message and "1002" not in message, name
    save_state(path, state())  # and the next sync saves afresh
    assert load_state(path) == state()


def test_an_unreadable_file_is_left_in_place(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / STATE_FILE
    path.mkdir()  # reading a directory fails: not the file's fault, nothing set aside
    assert load_state(path) is None
    assert path.is_dir() and not (tmp_path / "provisioning.json.bad").exists()
    assert "unreadable" in caplog.text


def test_a_failed_save_keeps_the_last_good_state(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE
    save_state(path, state())

    def full(step: str) -> None:
        if step == "written":
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        save_state(path, state(own=OWN.replace("1001", "1002")), step=full)
    assert load_state(path) == state()
    assert os.listdir(tmp_path) == [STATE_FILE]


@pytest.mark.parametrize("step", STEPS)
def test_killed_at_any_step_leaves_the_old_set_or_the_new(tmp_path: Path, step: str) -> None:
    path = tmp_path / STATE_FILE
    old, new = state(), state(own=OWN.replace("1001", "1002"), common=COMMON + "# v2\n",
                              at="2026-12-08T09:00:00+00:00")
    save_state(path, old)
    killed_at(step, "import json\n"
                    "from deskphone.provision.state import _from_json, save_state\n"
                    "save_state(sys.argv[2], _from_json(json.loads(sys.argv[3])), step=step)\n",
              str(path), json.dumps(_to_json(new)))
    assert load_state(path) == (new if new_file_expected(step) else old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    save_state(path, old)
    assert left_behind(path) == []
    assert load_state(path) == old
