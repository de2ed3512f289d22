"""ALSA through pyalsaaudio: a USB handset, an I2S HAT, or file-backed test PCMs.

Capture blocks until a period is ready, so the card's clock paces the media
thread. The device is opened at 8 kHz when it can do that (plughw converts for
most cards); at another rate (48/16 kHz) we convert with an integer-ratio
polyphase filter. An xrun (overrun on capture, underrun on playback) costs one
frame of silence, not the call: the PCM is re-prepared and the loop goes on.

Whose clock. A sound card's capture blocks until a period is in, so the card
paces the loop, and it must be the only pacer: a card whose crystal runs 100 ppm
fast delivers a period every 19.998 ms, and a loop that also waited for the
system clock's 20 ms would fall behind it by a period every 200 s until capture
overran. Some PCMs have no clock at all (alsa-lib's file and null plugins, the
test devices): their reads return at once. So the first ``PROBE_READS`` reads
that give audio are timed: if two of them blocked for ``CLOCKED_BLOCK`` or more
(one could be the thread waiting for the GIL), the card alone paces the loop;
if not, the PCM has no clock and a ``Pacer`` (the system clock) paces it. A
reopened device is probed again.

A read that gives no audio (an xrun, a short read, a card gone from the USB
port) costs a frame of silence, and the loop waits a period before the next one:
a card that fails at once every time must not spin the loop, which sends a
packet each turn. After ``REOPEN_AFTER`` failed reads in a row (a second) the
device is closed and opened again, and again a second later while it fails, so
a handset plugged back in is picked up within the call. A second of failed
writes (a speaker of its own that went away) reopens it the same way.

Playback starts with ``PREFILL_PERIODS`` period of silence queued (and again
after an underrun): the loop writes a period each time capture gives one, so
without a cushion the playback buffer would run dry whenever the thread was a
fraction of a millisecond late. It costs that much latency (20 ms).

``alsaaudio`` is imported when the backend is opened (or passed in, e.g. a
stand-in for tests), so the package imports on any laptop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from .base import FRAME_SAMPLES, RATE, Pacer, Pcm, silence
from .resample import StreamResampler

log = logging.getLogger(__name__)

DEVICE_RATES = (8000, 16000, 48000)
PROBE_READS = 8  # reads timed to tell a clocked PCM: more than the 4 periods it buffers
CLOCKED_BLOCK = 0.005  # s: a read that blocked this long waited for a clock
PREFILL_PERIODS = 1
REOPEN_AFTER = 50  # failed reads in a row (a second of them) before reopening the device


class AlsaBackend:
    name = "alsa"

    def __init__(self, device: str = "default", capture_device: str | None = None,
                 playback_device: str | None = None, frame_samples: int = FRAME_SAMPLES,
                 periods: int = 4, *, alsa: ModuleType | Any = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        """``alsa``: the pyalsaaudio module, or a stand-in (imported at ``start`` if
        None). ``clock``/``sleep`` time the probe reads and pace a clockless PCM."""
        self.frame_samples = frame_samples
        self.capture_device = capture_device or device
        self.playback_device = playback_device or device
        self._periods = periods
        self._cap: Any = None
        self._play: Any = None
        self._rate = RATE
        self._down: StreamResampler | None = None
        self._up: StreamResampler | None = None
        self._alsa = alsa
        self._clock = clock
        self._pacer = Pacer(frame_samples / RATE, clock=clock, sleep=sleep, max_lag=2)
        self._silence = silence(frame_samples)
        self._probes = 0  # probe reads that gave audio
        self._blocked = 0  # ... and of those, the ones that waited for a clock
        # None: not known yet; True: the card's clock paces us; False: the Pacer does
        self.clocked: bool | None = None
        self.xruns = 0
        self.reopens = 0
        self._failures = 0  # failed reads in a row
        self._play_failures = 0  # failed writes in a row

    def _module(self) -> Any:
        if self._alsa is None:
            import alsaaudio

            self._alsa = alsaaudio
        return self._alsa

    def _open(self, kind: int, device: str) -> tuple[Any, int]:
        alsaaudio = self._module()
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
        alsaaudio = self._module()
        if self._cap is None:
            self._cap, rate = self._open(alsaaudio.PCM_CAPTURE, self.capture_device)
            self._play, prate = self._open(alsaaudio.PCM_PLAYBACK, self.playback_device)
            if rate != prate:
                raise OSError(f"capture at {rate} Hz but playback at {prate} Hz")
            self._rate = rate
            self._down = self._up = None
            if rate != RATE:
                self._down = StreamResampler(rate, RATE)
                self._up = StreamResampler(RATE, rate)
            log.info("ALSA capture %s, playback %s at %d Hz", self.capture_device,
                     self.playback_device, rate)
            self._prefill()

    def _prefill(self) -> None:
        period = self.frame_samples * self._rate // RATE
        cushion = bytes(2 * period)
        for _ in range(PREFILL_PERIODS):
            try:
                self._play.write(cushion)
            except self._module().ALSAAudioError as e:
                log.debug("playback prefill: %s", e)
                return

    def read(self) -> Pcm:
        alsaaudio = self._alsa
        if self.clocked is False:
            self._pacer.wait()
        want = self.frame_samples * self._rate // RATE
        if self._cap is None:  # gone, and not back yet
            return self._no_frame("device closed")
        try:
            if self.clocked is None:
                n, data = self._probe_read()
            else:
                n, data = self._cap.read()
        except alsaaudio.ALSAAudioError as e:  # overrun: re-prepared by the next read
            return self._no_frame(str(e))
        if n <= 0:
            return self._no_frame(f"read returned {n}")
        self._failures = 0
        x = np.frombuffer(data, "<i2")
        if len(x) < want:  # a short read: the rest of the period is silence
            x = np.concatenate((x, np.zeros(want - len(x), np.int16)))
        elif len(x) > want:
            x = x[:want]
        if self._down is not None:
            x = self._down.process(x)
        return x.astype(np.int16, copy=False)

    def _no_frame(self, why: str) -> Pcm:
        """A read that gave no audio: a frame of silence, not before the next period."""
        self.xruns += 1
        self._failures += 1
        log.debug("capture %s: %s", self.capture_device, why)
        if self.clocked is not False:  # the card did not wait: nothing else paces the loop
            self._pacer.wait()
        if self._failures % REOPEN_AFTER == 0:
            self._reopen(why)
        return self._silence

    def _reopen(self, why: str) -> None:
        log.warning("ALSA %s/%s: no audio for %.0f s (%s): reopening", self.capture_device,
                    self.playback_device, self._failures * self.frame_samples / RATE, why)
        self.reopens += 1
        self.close()
        self.clocked, self._probes, self._blocked = None, 0, 0  # perhaps another card now
        try:
            self.start()
        except (OSError, self._module().ALSAAudioError) as e:
            self.close()
            log.warning("ALSA reopen failed: %s (trying again in a second)", e)

    def _probe_read(self) -> tuple[int, bytes]:
        """A read timed to find out whether the PCM has a clock (see the module's text);
        one that fails tells nothing."""
        t0 = self._clock()
        result: tuple[int, bytes] = self._cap.read()
        if result[0] > 0:
            self._probes += 1
            self._blocked += self._clock() - t0 >= CLOCKED_BLOCK
            if self._blocked >= 2:
                self.clocked = True
            elif self._probes >= PROBE_READS:
                self.clocked = False
                log.info("ALSA capture %s has no clock of its own: paced by the system "
                         "clock", self.capture_device)
        return result

    def write(self, frame: Pcm) -> None:
        alsaaudio = self._alsa
        if self._play is None:  # gone, and not back yet
            return
        if self._up is not None:
            frame = self._up.process(frame)
        try:
            r = self._play.write(frame.astype("<i2").tobytes())
        except alsaaudio.ALSAAudioError as e:
            self._no_playback(str(e))
            return
        if r is not None and r < 0:  # -EPIPE: underrun; pyalsaaudio re-prepares
            self._no_playback(f"write returned {r}")
            return
        self._play_failures = 0

    def _no_playback(self, why: str) -> None:
        """A write that failed: a new cushion, and after a second of nothing but failures
        (a speaker of its own, unplugged) the device reopened, as for capture."""
        self.xruns += 1
        self._play_failures += 1
        log.debug("playback %s: %s", self.playback_device, why)
        if self._play_failures % REOPEN_AFTER == 0:
            self._reopen(f"playback: {why}")
        else:
            self._prefill()

    def stop(self) -> None:
        pass

    def close(self) -> None:
        for pcm in (self._cap, self._play):
            if pcm is not None:
                try:
                    pcm.close()
                except Exception as e:  # a device already gone (unplugged)
                    log.debug("ALSA close: %s", e)
        self._cap = self._play = None
