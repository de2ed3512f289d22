"""The ALSA backend on file-backed PCMs (../shared/hwlibs/asound-phone-test.conf).

ALSA reads its config once per process, so each case runs in a child process
with ALSA_CONFIG_PATH set before pyalsaaudio is imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("SHARED_DIR", REPO.parent / "shared"))
CONF = SHARED / "hwlibs" / "asound-phone-test.conf"

CHILD = r"""
import sys
import numpy as np
from deskphone.media.audio.alsa import AlsaBackend
b = AlsaBackend(device="phone")
b.start()
got = [b.read() for _ in range(60)]
for f in got[:50]:
    b.write(f)
b.stop(); b.close()
np.save(sys.argv[1], np.concatenate(got))
print("rate", b._rate, "xruns", b.xruns)
"""


def test_alsa_capture_and_playback_through_file_pcms(tmp_path: Path) -> None:
    pytest.importorskip("alsaaudio")
    if not CONF.exists():
        pytest.fail(f"missing {CONF}")
    t = np.arange(8000) / 8000
    mic = (8000 * np.sin(2 * np.pi * 1000 * t)).astype("<i2")
    (tmp_path / "in.raw").write_bytes(mic.tobytes())
    env = dict(os.environ, ALSA_CONFIG_PATH=str(CONF), PHONE_ALSA_IN=str(tmp_path / "in.raw"),
               PHONE_ALSA_OUT=str(tmp_path / "out.raw"),
               PYTHONPATH=str(REPO / "firmware") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "got.npy")], env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "rate 8000" in out.stdout
    got = np.load(tmp_path / "got.npy")
    assert len(got) == 60 * 160
    assert np.array_equal(got[:8000], mic)  # the file, sample for sample
    # past the file's end capture goes on without an error or a short frame (what
    # alsa-lib's file plugin returns there is undefined: old buffer contents)
    played = np.frombuffer((tmp_path / "out.raw").read_bytes(), "<i2")
    assert np.array_equal(played, mic)  # 50 frames = the first second, written through


class _FakePcm:
    """Stands in for alsaaudio.PCM: scripted reads/writes, some of them xruns."""

    def __init__(self, kind: int, mode: int, *, rate: int, periodsize: int,
                 script: list[object], **kw: object) -> None:
        self.kind, self.rate, self.period = kind, rate, periodsize
        self.script = script
        self.written: list[bytes] = []

    def info(self) -> dict[str, object]:
        return {"rate": self.rate}

    def read(self) -> tuple[int, bytes]:
        step = self.script.pop(0) if self.script else "ok"
        if step == "xrun":
            raise _FakeAlsa.ALSAAudioError("Broken pipe [plughw:0]")
        if step == "short":
            return -32, b""
        return self.period, (np.full(self.period, 100, "<i2")).tobytes()

    def write(self, data: bytes) -> int:
        step = self.script.pop(0) if self.script else "ok"
        if step == "xrun":
            raise _FakeAlsa.ALSAAudioError("Broken pipe")
        if step == "epipe":
            return -32
        self.written.append(data)
        return len(data) // 2

    def close(self) -> None:
        pass


class _FakeAlsa:
    PCM_CAPTURE, PCM_PLAYBACK, PCM_NORMAL, PCM_FORMAT_S16_LE = 1, 0, 0, 2

    class ALSAAudioError(Exception):
        pass

    def __init__(self, rates: tuple[int, ...], script: list[object]) -> None:
        self.rates, self.script, self.pcms = rates, script, []  # type: list[_FakePcm]

    def PCM(self, kind: int, mode: int, **kw: object) -> _FakePcm:  # noqa: N802
        if kw["rate"] not in self.rates:
            raise self.ALSAAudioError(f"rate {kw['rate']} not supported")
        pcm = _FakePcm(kind, mode, script=self.script, **kw)  # type: ignore[arg-type]
        self.pcms.append(pcm)
        return pcm


def test_xruns_cost_a_frame_not_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    from deskphone.media.audio.alsa import AlsaBackend

    fake = _FakeAlsa((8000,), ["ok", "xrun", "short", "ok"])
    monkeypatch.setitem(sys.modules, "alsaaudio", fake)
    b = AlsaBackend(device="hw")
    b._pacer.wait = lambda: 0.0  # type: ignore[method-assign]  (no real-time pacing)
    b.start()
    frames = [b.read() for _ in range(4)]
    assert [int(f[0]) for f in frames] == [100, 0, 0, 100]  # xruns give silence
    assert all(len(f) == 160 for f in frames)
    fake.script[:] = ["epipe", "xrun", "ok"]
    for f in frames[:3]:
        b.write(f)
    assert b.xruns == 4
    assert len(fake.pcms[1].written) == 1  # the playback after the xruns went through
    b.close()


def test_a_48k_only_device_is_converted(monkeypatch: pytest.MonkeyPatch) -> None:
    from deskphone.media.audio.alsa import AlsaBackend

    fake = _FakeAlsa((48000,), [])
    monkeypatch.setitem(sys.modules, "alsaaudio", fake)
    b = AlsaBackend(device="hw")
    b._pacer.wait = lambda: 0.0  # type: ignore[method-assign]
    b.start()
    assert fake.pcms[0].period == 960  # 20 ms at 48 kHz
    frame = b.read()
    assert len(frame) == 160
    b.write(np.zeros(160, np.int16))
    assert len(fake.pcms[1].written[0]) == 960 * 2
    b.close()
