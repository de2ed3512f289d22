"""ALSA through pyalsaaudio: a USB handset, an I2S HAT, or file-backed test PCMs.

Capture blocks until a period is ready, so the card's clock paces the media
thread. The device is opened at 8 kHz when it can do that (plughw converts for
most cards); at another rate (48/16 kHz) we convert with an integer-ratio
polyphase filter. An xrun (overrun on capture, underrun on playback) costs one
frame of silence, not the call: the PCM is re-prepared and the loop goes on.
Some PCMs (file-backed test devices) have no clock; a ``Pacer`` keeps us from
running ahead of real time on those, and is a no-op on a real card.

``alsaaudio`` is imported when the backend is opened, so the package imports on
any laptop.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .base import FRAME_SAMPLES, RATE, Pacer, Pcm, silence
from .resample import StreamResampler

log = logging.getLogger(__name__)

DEVICE_RATES = (8000, 16000, 48000)


class AlsaBackend:
    name = "alsa"

    def __init__(self, device: str = "default", capture_device: str | None = None,
                 playback_device: str | None = None, frame_samples: int = FRAME_SAMPLES,
                 periods: int = 4) -> None:
        self.frame_samples = frame_samples
        self.capture_device = capture_device or device
        self.playback_device = playback_device or device
        self._periods = periods
        self._cap: Any = None
        self._play: Any = None
        self._rate = RATE
        self._down: StreamResampler | None = None
        self._up: StreamResampler | None = None
        self._pacer = Pacer(frame_samples / RATE, max_lag=2)
        self._silence = silence(frame_samples)
        self.xruns = 0

    def _open(self, kind: int, device: str) -> tuple[Any, int]:
        import alsaaudio

        last: Exception | None = None
        for rate in DEVICE_RATES:
            period = self.frame_samples * rate // RATE
            try:
                pcm = alsaaudio.PCM(kind, alsaaudio.PCM_NORMAL, rate=rate, channels=1,
                                    format=alsaaudio.PCM_FORMAT_S16_LE, periodsize=period,
                                    periods=self._periods, device=device)
            except alsaaudio.ALSAAudioError as e:
                last = e
                continue
            real = int(pcm.info().get("rate", rate)) if hasattr(pcm, "info") else rate
            if real == rate:
                return pcm, rate
            pcm.close()
        raise OSError(f"ALSA device {device!r}: cannot open at 8/16/48 kHz mono ({last})")

    def start(self) -> None:
        import alsaaudio

        if self._cap is None:
            self._cap, rate = self._open(alsaaudio.PCM_CAPTURE, self.capture_device)
            self._play, prate = self._open(alsaaudio.PCM_PLAYBACK, self.playback_device)
            if rate != prate:
                raise OSError(f"capture at {rate} Hz but playback at {prate} Hz")
            self._rate = rate
            if rate != RATE:
                self._down = StreamResampler(rate, RATE)
                self._up = StreamResampler(RATE, rate)
            log.info("ALSA capture %s, playback %s at %d Hz", self.capture_device,
                     self.playback_device, rate)

    def read(self) -> Pcm:
        import alsaaudio

        self._pacer.wait()
        want = self.frame_samples * self._rate // RATE
        try:
            n, data = self._cap.read()
        except alsaaudio.ALSAAudioError as e:  # overrun: re-prepared by the next read
            self.xruns += 1
            log.debug("capture xrun: %s", e)
            return self._silence
        if n <= 0:
            self.xruns += 1
            return self._silence
        x = np.frombuffer(data, "<i2")
        if len(x) != want:
            x = np.resize(x, want) if len(x) else np.zeros(want, np.int16)
        if self._down is not None:
            x = self._down.process(x)
        return x.astype(np.int16, copy=False)

    def write(self, frame: Pcm) -> None:
        import alsaaudio

        if self._up is not None:
            frame = self._up.process(frame)
        try:
            r = self._play.write(frame.astype("<i2").tobytes())
        except alsaaudio.ALSAAudioError as e:
            self.xruns += 1
            log.debug("playback xrun: %s", e)
            return
        if r is not None and r < 0:  # -EPIPE: underrun; pyalsaaudio re-prepares
            self.xruns += 1

    def stop(self) -> None:
        pass

    def close(self) -> None:
        for pcm in (self._cap, self._play):
            if pcm is not None:
                pcm.close()
        self._cap = self._play = None
