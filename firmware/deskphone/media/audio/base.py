"""What the media engine needs of a sound device, and the clock for devices without one.

A backend moves 20 ms frames of 8 kHz 16-bit mono: ``read()`` blocks until the
next capture frame is ready, which is what paces the media thread (the sound
card's clock, as in baresip); ``write()`` queues a frame for playback.
Backends with no clock of their own (null, WAV files, file-backed ALSA PCMs)
use a ``Pacer`` so they run in real time like a card would.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import numpy as np
import numpy.typing as npt

RATE = 8000
FRAME_SAMPLES = 160  # 20 ms

Pcm = npt.NDArray[np.int16]


class AudioBackend(Protocol):
    """A sound device as the media engine sees it."""

    name: str
    frame_samples: int

    def start(self) -> None: ...

    def read(self) -> Pcm:
        """Block until one capture frame is ready; return it (frame_samples int16)."""
        ...

    def write(self, frame: Pcm) -> None:
        """Queue one frame for playback; must not block for long."""
        ...

    def stop(self) -> None:
        """The call ended (the device may stay open for the next one)."""
        ...

    def close(self) -> None:
        """The phone shuts down."""
        ...


class Pacer:
    """Sleeps until the next period boundary: a sound card's clock, in software.

    A caller that falls more than ``max_lag`` periods behind (the machine was
    busy, a debugger stopped it) is resynchronised instead of bursting to
    catch up.
    """

    def __init__(self, period: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, max_lag: int = 5) -> None:
        self.period = period
        self._clock = clock
        self._sleep = sleep
        self._max_lag = max_lag
        self._next: float | None = None
        self.resyncs = 0

    def wait(self) -> float:
        """Wait for the next tick; returns its nominal time."""
        now = self._clock()
        if self._next is None:
            self._next = now
        elif now - self._next > self._max_lag * self.period:
            self._next = now
            self.resyncs += 1
        elif self._next > now:
            self._sleep(self._next - now)
        tick = self._next
        self._next += self.period
        return tick


def silence(n: int = FRAME_SAMPLES) -> Pcm:
    return np.zeros(n, dtype=np.int16)
