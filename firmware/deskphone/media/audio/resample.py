"""Sample-rate conversion with a windowed-sinc low-pass, in numpy.

Two uses: WAV files of any rate become 8 kHz once when loaded, and an ALSA
device that only runs at 48/16 kHz is converted frame by frame. For the
streaming case the integer ratios that sound cards offer (x2, x6) are done
with a polyphase FIR that keeps its tail between frames.
"""

from __future__ import annotations

from math import gcd

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


def lowpass(cutoff: float, taps: int) -> F64:
    """A Kaiser-windowed sinc; ``cutoff`` as a fraction of the sample rate (0..0.5)."""
    n = np.arange(taps) - (taps - 1) / 2
    h = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(taps, 8.0)
    return np.asarray(h / h.sum(), dtype=np.float64)


def resample(x: npt.NDArray[np.floating] | npt.NDArray[np.integer], rate_in: int,
             rate_out: int) -> F64:
    """Whole-signal conversion (rational ratio up/down) for files."""
    x = np.asarray(x, dtype=np.float64)
    if rate_in == rate_out or len(x) == 0:
        return x.copy()
    g = gcd(rate_in, rate_out)
    up, down = rate_out // g, rate_in // g
    if up * down > 10_000:  # awkward ratio (e.g. 44100 -> 8000): interpolate on a grid
        return _resample_interp(x, rate_in, rate_out)
    cutoff = 0.5 / max(up, down)
    h = lowpass(cutoff * 0.95, 24 * max(up, down) + 1) * up
    stuffed = np.zeros(len(x) * up)
    stuffed[::up] = x
    y = np.convolve(stuffed, h)[(len(h) - 1) // 2:]
    return np.asarray(y[: len(x) * up : down][: (len(x) * rate_out) // rate_in])


def _resample_interp(x: F64, rate_in: int, rate_out: int) -> F64:
    if rate_out < rate_in:
        x = np.convolve(x, lowpass(0.5 * rate_out / rate_in * 0.9, 101), mode="same")
    n_out = (len(x) * rate_out) // rate_in
    t = np.arange(n_out) * (rate_in / rate_out)
    return np.asarray(np.interp(t, np.arange(len(x)), x))


class StreamResampler:
    """Frame-by-frame integer-ratio conversion (device rate <-> 8 kHz)."""

    def __init__(self, rate_in: int, rate_out: int, taps_per_phase: int = 16) -> None:
        if rate_in % rate_out and rate_out % rate_in:
            raise ValueError(f"{rate_in} Hz <-> {rate_out} Hz is not an integer ratio")
        self.up = max(1, rate_out // rate_in)
        self.down = max(1, rate_in // rate_out)
        factor = max(self.up, self.down)
        self._h = lowpass(0.5 / factor * 0.9, taps_per_phase * factor + 1) * self.up
        self._tail = np.zeros(len(self._h) - 1)

    def process(self, frame: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        x = frame.astype(np.float64)
        if self.up > 1:
            stuffed = np.zeros(len(x) * self.up)
            stuffed[:: self.up] = x
            x = stuffed
        buf = np.concatenate((self._tail, x))
        y = np.convolve(buf, self._h, mode="valid")
        self._tail = buf[len(buf) - (len(self._h) - 1):]
        if self.down > 1:
            y = y[:: self.down]
        return np.clip(np.rint(y), -32768, 32767).astype(np.int16)
