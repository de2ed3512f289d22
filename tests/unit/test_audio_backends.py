"""Audio backends without a sound card: the pacer, WAV in/out, resampling."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from deskphone.media.audio import BACKENDS, open_backend
from deskphone.media.audio.base import Pacer
from deskphone.media.audio.resample import StreamResampler, resample
from deskphone.media.audio.wavfile import FileBackend, WavWriter, load_wav


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, d: float) -> None:
        self.sleeps.append(round(d, 6))
        self.t += d


def tone(freq: float, rate: int, seconds: float, amp: float = 8000) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return amp * np.sin(2 * np.pi * freq * t)


def dominant_hz(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * rate / len(x))


def write_wav(path: Path, samples: np.ndarray, rate: int, width: int = 2,
              channels: int = 1) -> None:
    data = np.repeat(samples[:, None], channels, axis=1).ravel()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        if width == 1:
            w.writeframes((np.clip(data / 256 + 128, 0, 255)).astype(np.uint8).tobytes())
        elif width == 2:
            w.writeframes(data.astype("<i2").tobytes())
        elif width == 3:
            i = (data * 256).astype(np.int32)
            w.writeframes(b"".join(struct.pack("<i", v)[:3] for v in i))
        else:
            w.writeframes((data * 65536).astype("<i4").tobytes())


def test_pacer_sleeps_to_each_period_and_resyncs_after_a_stall() -> None:
    clock = FakeClock()
    p = Pacer(0.02, clock=clock, sleep=clock.sleep)
    ticks = [p.wait() for _ in range(4)]
    assert ticks == pytest.approx([100.0, 100.02, 100.04, 100.06])
    assert clock.sleeps == [0.02, 0.02, 0.02]
    clock.t += 1.0  # the machine stalled for 50 periods
    t = p.wait()
    assert t == pytest.approx(clock.t) and p.resyncs == 1  # no burst to catch up


@pytest.mark.parametrize(("rate", "width", "channels"), [
    (8000, 2, 1), (16000, 2, 1), (44100, 2, 2), (22050, 1, 1), (48000, 3, 1), (8000, 4, 2)])
def test_load_wav_converts_to_8k_mono_16bit(tmp_path: Path, rate: int, width: int,
                                            channels: int) -> None:
    path = tmp_path / "in.wav"
    write_wav(path, tone(440, rate, 0.5), rate, width, channels)
    pcm = load_wav(path)
    assert pcm.dtype == np.int16
    assert abs(len(pcm) - 4000) <= 1
    assert dominant_hz(pcm[500:3500], 8000) == pytest.approx(440, abs=5)
    rms = np.sqrt(np.mean(pcm[500:3500].astype(float) ** 2))
    assert rms == pytest.approx(8000 / np.sqrt(2), rel=0.1 if width > 1 else 0.15)


def test_load_wav_rejects_a_non_wav(tmp_path: Path) -> None:
    bad = tmp_path / "x.wav"
    bad.write_bytes(b"not a wav at all")
    with pytest.raises(ValueError, match="not a PCM WAV file"):
        load_wav(bad)


def test_resampling_keeps_the_passband_and_removes_aliases() -> None:
    x = tone(1000, 48000, 0.5) + tone(7000, 48000, 0.5)  # 7 kHz must not alias into 8 kHz
    y = resample(x, 48000, 8000)
    assert len(y) == 4000
    spec = np.abs(np.fft.rfft(y[200:3800]))
    freqs = np.fft.rfftfreq(3600, 1 / 8000)
    peak = spec[np.argmin(abs(freqs - 1000))]
    alias = spec[np.argmin(abs(freqs - 1000)) + 40:].max()  # everything above ~1.1 kHz
    assert 20 * np.log10(peak / alias) > 40


def test_stream_resampler_frame_by_frame_matches_the_tone() -> None:
    down = StreamResampler(48000, 8000)
    up = StreamResampler(8000, 48000)
    x = tone(800, 48000, 1.0).astype(np.int16)
    frames = [down.process(x[i:i + 960]) for i in range(0, len(x), 960)]
    assert all(len(f) == 160 for f in frames)
    y = np.concatenate(frames)
    assert dominant_hz(y[800:], 8000) == pytest.approx(800, abs=5)
    back = np.concatenate([up.process(f) for f in frames])
    assert len(back) == 48000 and dominant_hz(back[4800:], 48000) == pytest.approx(800, abs=5)


def test_wav_writer_file_is_valid_after_every_frame(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    w = WavWriter(path)
    for i in range(3):
        w.write(np.full(160, i + 1, np.int16))
        with wave.open(str(path), "rb") as r:  # readable while still being written
            assert r.getnframes() == 160 * (i + 1)
            assert (r.getframerate(), r.getsampwidth(), r.getnchannels()) == (8000, 2, 1)
    w.close()
    with wave.open(str(path), "rb") as r:
        data = np.frombuffer(r.readframes(480), "<i2")
    assert list(data[::160]) == [1, 2, 3]


def test_a_full_wav_keeps_what_it_has_and_takes_no_more(tmp_path: Path) -> None:
    """RIFF sizes are 32-bit (74 h of speaker at 8 kHz): at the limit the recording stops,
    the file stays valid, and nothing raises into the media thread."""
    path = tmp_path / "out.wav"
    w = WavWriter(path, max_bytes=2 * 320)
    for i in range(4):
        w.write(np.full(160, i + 1, np.int16))
    assert w.full
    w.close()
    with wave.open(str(path), "rb") as r:
        assert r.getnframes() == 320
        data = np.frombuffer(r.readframes(320), "<i2")
    assert list(data[::160]) == [1, 2]
    assert WavWriter(tmp_path / "x.wav", max_bytes=1 << 40)._max == 0xFFFFFFFF - 36


def test_file_backend_plays_the_input_then_silence_and_records(tmp_path: Path) -> None:
    src = tmp_path / "mic.wav"
    write_wav(src, np.arange(1, 401, dtype=float), 8000)
    clock = FakeClock()
    fb = FileBackend(str(src), str(tmp_path / "spk.wav"), clock=clock, sleep=clock.sleep)
    fb.start()
    frames = [fb.read() for _ in range(4)]
    assert [int(f[0]) for f in frames] == [1, 161, 321, 0]
    assert int(frames[1][-1]) == 320 and int(frames[2][79]) == 400 and int(frames[2][80]) == 0
    assert clock.t == pytest.approx(100.06)  # paced: 3 periods after the first
    fb.write(frames[0])
    fb.stop()
    fb.start()  # next call: the microphone file starts over, the recording goes on
    assert int(fb.read()[0]) == 1
    fb.write(frames[1])
    fb.close()
    with wave.open(str(tmp_path / "spk.wav"), "rb") as r:
        assert r.getnframes() == 320


def test_file_backend_puts_mic_and_speaker_on_one_timeline(tmp_path: Path) -> None:
    """Tick n reads mic frame n and what it writes is speaker frame n: sample i of the two
    files belongs to one tick, as on a duplex card (bench/latency.py's black box reads what
    the phone adds off the two files' sample positions). No frame is queued ahead."""
    src, out = tmp_path / "mic.wav", tmp_path / "spk.wav"
    mic = np.arange(1, 801, dtype=float)
    write_wav(src, mic, 8000)
    clock = FakeClock()
    fb = FileBackend(str(src), str(out), clock=clock, sleep=clock.sleep)
    fb.start()
    ticks = []
    for _ in range(5):
        frame = fb.read()
        ticks.append(clock.t)
        fb.write(-frame)  # played in the tick that read it
    fb.close()
    assert ticks == pytest.approx([100.0, 100.02, 100.04, 100.06, 100.08])
    assert np.array_equal(load_wav(out), -mic.astype(np.int16))


def test_backend_table() -> None:
    assert set(BACKENDS) == {"null", "file", "alsa"}
    assert open_backend("null").name == "null"
    with pytest.raises(ValueError, match="unknown audio backend 'oss'"):
        open_backend("oss")
