"""WAV files as the microphone and the speaker: for the lab and for tests.

``input``: any PCM WAV (8/16/24/32-bit, any rate, any channels) is converted
once to 8 kHz 16-bit mono and played as the microphone; after its end the
microphone is silent. ``output``: everything the phone plays is written as an
8 kHz 16-bit mono WAV whose header is brought up to date after every frame, so
the file is valid even if the phone is killed mid-call. Paced by a clock,
like a sound card.
"""

from __future__ import annotations

import logging
import os
import struct
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .base import FRAME_SAMPLES, RATE, Pacer, Pcm, silence
from .resample import resample

log = logging.getLogger(__name__)


def load_wav(path: str | os.PathLike[str], rate: int = RATE) -> Pcm:
    """Read a PCM WAV file as mono int16 at ``rate``; ValueError if it is not one."""
    try:
        with wave.open(str(path), "rb") as w:
            width, channels, src_rate = w.getsampwidth(), w.getnchannels(), w.getframerate()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as e:
        raise ValueError(f"{path}: not a PCM WAV file ({e})") from None
    if width == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.float64) - 128) * 256
    elif width == 2:
        x = np.frombuffer(raw, "<i2").astype(np.float64)
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3)
        i32 = (b[:, 0].astype(np.int32) | (b[:, 1].astype(np.int32) << 8)
               | (b[:, 2].astype(np.int32) << 16))
        i32 = np.where(i32 & 0x800000, i32 - (1 << 24), i32)
        x = i32.astype(np.float64) / 256
    elif width == 4:
        x = np.frombuffer(raw, "<i4").astype(np.float64) / 65536
    else:
        raise ValueError(f"{path}: {width * 8}-bit samples are not supported")
    if channels > 1:
        x = x.reshape(-1, channels).mean(axis=1)
    if src_rate != rate:
        x = resample(x, src_rate, rate)
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


# RIFF's sizes are 32-bit: a WAV holds 4 GiB less its header (74 h at 8 kHz)
MAX_WAV_DATA = 0xFFFFFFFF - 36


class WavWriter:
    """8 kHz 16-bit mono WAV that stays valid after every write. Full (``max_bytes``),
    it keeps what it has and takes no more: the recording stops, not the call."""

    def __init__(self, path: str | os.PathLike[str], rate: int = RATE, *,
                 max_bytes: int = MAX_WAV_DATA) -> None:
        self.path = Path(path)
        self._f = open(self.path, "wb")  # noqa: SIM115 (kept open for the call)
        self._rate = rate
        self._bytes = 0
        self._max = min(max_bytes, MAX_WAV_DATA)
        self.full = False
        self._f.write(self._header(0))
        self._f.flush()

    def _header(self, data_bytes: int) -> bytes:
        return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVEfmt "
                + struct.pack("<IHHIIHH", 16, 1, 1, self._rate, self._rate * 2, 2, 16)
                + b"data" + struct.pack("<I", data_bytes))

    def write(self, frame: Pcm) -> None:
        data = frame.astype("<i2").tobytes()
        if self._bytes + len(data) > self._max:
            if not self.full:
                self.full = True
                log.warning("%s is full (%d bytes): recording stopped", self.path,
                            self._bytes)
            return
        self._f.write(data)
        self._bytes += len(data)
        # patch the two sizes in place; the data written so far is then a whole WAV
        self._f.seek(4)
        self._f.write(struct.pack("<I", 36 + self._bytes))
        self._f.seek(40)
        self._f.write(struct.pack("<I", self._bytes))
        self._f.seek(0, os.SEEK_END)
        self._f.flush()

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()


class FileBackend:
    name = "file"

    def __init__(self, input: str | None = None, output: str | None = None,
                 frame_samples: int = FRAME_SAMPLES,
                 clock: Callable[[], float] | None = None,
                 sleep: Callable[[float], None] | None = None) -> None:
        self.frame_samples = frame_samples
        self._input = load_wav(input) if input else np.zeros(0, np.int16)
        self._output_path = output
        self._writer: WavWriter | None = None
        self._pos = 0
        kw = {k: v for k, v in (("clock", clock), ("sleep", sleep)) if v is not None}
        self._pacer = Pacer(frame_samples / RATE, **kw)  # type: ignore[arg-type]
        self._silence = silence(frame_samples)

    def start(self) -> None:
        """A call starts: the microphone file plays from its beginning again.

        The output file lives as long as the backend: it records every call."""
        self._pos = 0
        if self._output_path and self._writer is None:
            self._writer = WavWriter(self._output_path)

    def read(self) -> Pcm:
        self._pacer.wait()
        n = self.frame_samples
        chunk = self._input[self._pos:self._pos + n]
        self._pos += n
        if len(chunk) == n:
            return chunk
        if len(chunk) == 0:
            return self._silence
        return np.concatenate((chunk, self._silence[: n - len(chunk)]))

    def write(self, frame: Pcm) -> None:
        if self._writer is not None:
            self._writer.write(frame)

    def stop(self) -> None:
        pass

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
