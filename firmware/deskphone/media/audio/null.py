"""No sound device: silence in, playback discarded, paced in real time."""

from __future__ import annotations

from collections.abc import Callable

from .base import FRAME_SAMPLES, RATE, Pacer, Pcm, silence


class NullBackend:
    name = "null"

    def __init__(self, frame_samples: int = FRAME_SAMPLES,
                 clock: Callable[[], float] | None = None,
                 sleep: Callable[[float], None] | None = None) -> None:
        self.frame_samples = frame_samples
        kw = {k: v for k, v in (("clock", clock), ("sleep", sleep)) if v is not None}
        self._pacer = Pacer(frame_samples / RATE, **kw)  # type: ignore[arg-type]
        self._frame = silence(frame_samples)
        self.frames_written = 0

    def start(self) -> None:
        pass

    def read(self) -> Pcm:
        self._pacer.wait()
        return self._frame

    def write(self, frame: Pcm) -> None:
        self.frames_written += 1

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass
