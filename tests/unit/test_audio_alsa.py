"""The ALSA backend on file-backed PCMs (../shared/hwlibs/asound-phone-test.conf).

ALSA reads its config once per process, so each case runs in a child process
with ALSA_CONFIG_PATH set before pyalsaaudio is imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deskphone.media.audio.alsa import AlsaBackend

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
print("rate", b._rate, "xruns", b.xruns, "clocked", b.clocked)
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
    assert "clocked False" in out.stdout  # the file plugin has no clock: the Pacer paces it
    got = np.load(tmp_path / "got.npy")
    assert len(got) == 60 * 160
    assert np.array_equal(got[:8000], mic)  # the file, sample for sample
    # past the file's end capture goes on without an error or a short frame (what
    # alsa-lib's file plugin returns there is undefined: old buffer contents)
    played = np.frombuffer((tmp_path / "out.raw").read_bytes(), "<i2")
    assert not played[:160].any()  # the playback cushion: one period of silence
    assert np.array_equal(played[160:], mic)  # 50 frames = the first second, written through


class FakeTime:
    """A clock that moves only when something sleeps or a fake card waits for a period."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


class _FakePcm:
    """Stands in for alsaaudio.PCM: scripted reads/writes, some of them xruns. With
    ``period_s`` a read waits (on the fake clock) for the card's next period, as a real
    card's does; without it a read returns at once, as the file and null plugins do."""

    def __init__(self, owner: _FakeAlsa, kind: int, mode: int, *, rate: int,
                 periodsize: int, **kw: object) -> None:
        self.owner, self.kind, self.rate, self.period = owner, kind, rate, periodsize
        self.written: list[bytes] = []
        self.next_period = owner.time.now

    def info(self) -> dict[str, object]:
        return {"rate": self.rate}

    def read(self) -> tuple[int, bytes]:
        o = self.owner
        if o.gone:  # unplugged: fails at once, without waiting for anything
            raise _FakeAlsa.ALSAAudioError("No such device [plughw:1]")
        if o.period_s is not None:  # a clocked card: wait for its next period
            self.next_period += o.period_s
            o.time.now = max(o.time.now, self.next_period)
        step = o.reads.pop(0) if o.reads else "ok"
        if step == "xrun":
            raise _FakeAlsa.ALSAAudioError("Broken pipe [plughw:0]")
        if step == "short":
            return -32, b""
        if step == "half":
            return self.period // 2, np.full(self.period // 2, 100, "<i2").tobytes()
        return self.period, (np.full(self.period, 100, "<i2")).tobytes()

    def write(self, data: bytes) -> int:
        o = self.owner
        step = o.writes.pop(0) if o.writes else "ok"
        if step == "xrun":
            raise _FakeAlsa.ALSAAudioError("Broken pipe")
        if step == "epipe":
            return -32
        self.written.append(data)
        return len(data) // 2

    def close(self) -> None:
        pass


class _FakeAlsa:
    """Stands in for the alsaaudio module."""

    PCM_CAPTURE, PCM_PLAYBACK, PCM_NORMAL, PCM_FORMAT_S16_LE = 1, 0, 0, 2

    class ALSAAudioError(Exception):
        pass

    def __init__(self, rates: tuple[int, ...] = (8000,), *, period_s: float | None = None,
                 reads: list[str] | None = None) -> None:
        self.rates, self.period_s = rates, period_s
        self.reads: list[str] = reads or []
        self.writes: list[str] = []
        self.time = FakeTime()
        self.pcms: list[_FakePcm] = []
        self.gone = False  # the device unplugged

    def PCM(self, kind: int, mode: int, **kw: Any) -> _FakePcm:  # noqa: N802
        if self.gone:
            raise self.ALSAAudioError(f"No such file or directory [{kw['device']}]")
        if kw["rate"] not in self.rates:
            raise self.ALSAAudioError(f"rate {kw['rate']} not supported")
        pcm = _FakePcm(self, kind, mode, **kw)
        self.pcms.append(pcm)
        return pcm

    def backend(self) -> AlsaBackend:
        return AlsaBackend(device="hw", alsa=self, clock=self.time.clock,
                           sleep=self.time.sleep)


def test_xruns_cost_a_frame_not_the_call() -> None:
    fake = _FakeAlsa(reads=["ok", "xrun", "short", "ok"])
    b = fake.backend()
    b.start()
    frames = [b.read() for _ in range(4)]
    assert [int(f[0]) for f in frames] == [100, 0, 0, 100]  # xruns give silence
    assert all(len(f) == 160 for f in frames)
    playback = fake.pcms[1]
    assert playback.written == [bytes(320)]  # the cushion, written at start
    # frame 1 underruns (its cushion goes in), frame 2 raises (another cushion), frame 3 ok
    fake.writes[:] = ["epipe", "ok", "xrun", "ok", "ok"]
    for f in frames[:3]:
        b.write(f)
    assert b.xruns == 4
    # after each underrun a new cushion goes first; then the frame after the xruns
    assert playback.written == [bytes(320)] * 3 + [frames[2].astype("<i2").tobytes()]
    b.close()


def test_a_48k_only_device_is_converted() -> None:
    fake = _FakeAlsa((48000,))
    b = fake.backend()
    b.start()
    assert fake.pcms[0].period == 960  # 20 ms at 48 kHz
    frame = b.read()
    assert len(frame) == 160
    b.write(np.zeros(160, np.int16))
    assert [len(w) for w in fake.pcms[1].written] == [960 * 2, 960 * 2]  # cushion, frame
    b.close()


def test_a_card_with_a_fast_clock_paces_the_loop_alone() -> None:
    """A card 0.1 % fast gives a period every 19.98 ms: the loop must take them as they
    come (capture would overrun if it also waited for the system clock's 20 ms)."""
    fake = _FakeAlsa(period_s=0.01998)
    b = fake.backend()
    b.start()
    for _ in range(3000):  # a minute
        b.read()
    assert b.clocked is True
    assert fake.time.slept == 0.0  # the Pacer never held a read back
    assert fake.time.now == pytest.approx(3000 * 0.01998)
    assert b.xruns == 0
    b.close()


def test_a_pcm_with_no_clock_is_paced_by_the_system_clock() -> None:
    fake = _FakeAlsa()  # reads return at once, like alsa-lib's file plugin
    b = fake.backend()
    b.start()
    for _ in range(108):
        b.read()
    assert b.clocked is False
    # the probe reads ran free; from then on one 20 ms period per read
    assert fake.time.now == pytest.approx(100 * 0.020, abs=0.021)
    b.close()


def test_a_card_with_periods_buffered_at_start_is_still_found_clocked() -> None:
    """Capture that started before the first read has periods waiting: the first reads
    return at once, and the card is found by the first one that waits."""
    fake = _FakeAlsa(period_s=0.020)
    b = fake.backend()
    b.start()
    fake.time.now += 0.080  # 4 periods buffered before the loop's first read
    for _ in range(5):
        b.read()
    assert b.clocked is None  # one read has waited: it could have been the GIL
    b.read()
    assert b.clocked is True
    assert fake.time.slept == 0.0
    b.close()


def test_a_short_read_is_padded_with_silence_not_repeated() -> None:
    fake = _FakeAlsa(reads=["half"])
    b = fake.backend()
    b.start()
    frame = b.read()
    assert len(frame) == 160
    assert (frame[:80] == 100).all() and not frame[80:].any()
    b.close()


def test_an_unplugged_card_neither_spins_the_loop_nor_ends_the_call() -> None:
    """A USB handset pulled out mid-call: every read fails at once. The loop still turns
    once a period (it sends a packet each turn), the device is reopened every second, and
    a handset plugged back in carries audio again."""
    fake = _FakeAlsa(period_s=0.020)
    b = fake.backend()
    b.start()
    for _ in range(20):
        b.read()
    assert b.clocked is True
    fake.gone = True
    t0 = fake.time.now
    frames = [b.read() for _ in range(150)]  # three seconds of a missing device
    assert not any(f.any() for f in frames)  # silence, no exception
    assert fake.time.now - t0 == pytest.approx(150 * 0.020, abs=0.021)  # paced, no spin
    assert b.reopens == 3  # tried every second
    b.write(np.zeros(160, np.int16))  # playback to a closed device: dropped, no error
    fake.gone = False
    frames = [b.read() for _ in range(100)]  # within a second it is back
    assert b.reopens == 4
    assert (frames[-1] == 100).all()
    assert len(fake.pcms) == 4  # the first pair, and the pair the reopen opened
    b.close()


def test_one_stalled_read_does_not_make_a_clockless_pcm_clocked() -> None:
    """A read of the file plugin held up once (the thread waiting for the GIL, a page
    fault) is not a clock: without the Pacer the loop would then run flat out."""
    fake = _FakeAlsa()
    b = fake.backend()
    b.start()
    real_read = fake.pcms[0].read
    calls = [0]

    def read() -> tuple[int, bytes]:
        calls[0] += 1
        if calls[0] == 3:
            fake.time.now += 0.010
        return real_read()

    fake.pcms[0].read = read  # type: ignore[method-assign]
    for _ in range(8):
        b.read()
    assert b.clocked is False
    b.close()


def test_a_card_failing_from_the_start_is_probed_when_it_comes_back() -> None:
    """Failed reads tell nothing of a clock: a card that fails its first reads and is then
    reopened is judged by the reads that give audio (else the Pacer would pace a real card
    too, and its capture overrun)."""
    fake = _FakeAlsa(period_s=0.020)
    b = fake.backend()
    b.start()
    fake.gone = True
    for _ in range(60):  # a second and more of failures: reopened once, in vain
        b.read()
    assert b.clocked is None and b.reopens == 1
    fake.gone = False
    for _ in range(60):
        b.read()
    assert b.reopens == 2 and b.clocked is True
    slept = fake.time.slept
    for _ in range(100):
        b.read()
    assert fake.time.slept == slept  # the card alone paces it now
    b.close()


def test_a_speaker_that_fails_for_a_second_is_reopened() -> None:
    """A playback device of its own, unplugged while capture goes on: every write fails;
    after a second of that the device is reopened (and the call goes on meanwhile)."""
    fake = _FakeAlsa(period_s=0.020)
    b = fake.backend()
    b.start()
    fake.writes[:] = ["xrun"] * 200
    for _ in range(49):
        b.read()
        b.write(np.zeros(160, np.int16))
    assert b.reopens == 0 and b.xruns == 49
    b.read()
    b.write(np.zeros(160, np.int16))
    assert b.reopens == 1
    fake.writes.clear()  # plugged back in
    b.write(np.full(160, 5, np.int16))
    assert fake.pcms[-1].written[-1] == np.full(160, 5, "<i2").tobytes()
    b.close()
