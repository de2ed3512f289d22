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
