"""Call-progress tones, generated locally: dial, ringback, busy, congestion and
call waiting, per country.

Pure: no clock. Time is the sample count: a ``ToneGenerator`` computes sample
``n`` of a tone from ``n`` alone, so a tone read in 20 ms frames is the same,
sample for sample, as the tone read in one call, and nothing clicks at frame
boundaries. Each burst of a cadence fades in and out over ``RAMP_MS`` (a
raised cosine) inside its on-time, so the on/off timing stays exact to the
sample while the edges stay free of clicks.

Where the figures come from
---------------------------
ITU-T E.180 (03/98) recommends the characteristics of these tones; its
Supplement 2, "Various tones used in national networks" (annexed to ITU
Operational Bulletin No. 781, 1.II.2003, tones-0203.pdf), lists what each
administration plays. The copies read were secondary: the Asterisk project's
``configs/samples/indications.conf.sample``, whose country entries cite that
list (and, for the UK, BT SIN 350), and a transcription of the list's entries
(PalmH323 ``DOC/dialtone.txt``). Each table entry below names its source.

Levels
------
``level_dbm0`` is the level of each frequency of a tone, not of their sum.
0 dBm0 is placed by ITU-T G.711 §2 (Tables 1 and 2): a sine that just reaches
the μ-law coder's limit, 8159 on its 14-bit scale (32636 on the int16 scale
the codecs take), is at +3.17 dBm0. (A-law puts its 4096 at +3.14 dBm0; the
two differ by 0.07 dB.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

__all__ = [
    "DBM0_PEAK",
    "RAMP_MS",
    "TONES",
    "TONE_NAMES",
    "ToneGenerator",
    "ToneSpec",
    "cadence_envelope",
    "countries",
    "get_tone",
]

# G.711 §2: the μ-law coder's overload point, +3.17 dBm0, is 8159 x 4 on the
# int16 scale; DBM0_PEAK is then the peak of a 0 dBm0 sine (about 22,657).
_FULL_SCALE_PEAK = 8159 * 4
_FULL_SCALE_DBM0 = 3.17
DBM0_PEAK = _FULL_SCALE_PEAK * 10 ** (-_FULL_SCALE_DBM0 / 20)

# The fade at each edge of a burst. A judgement: E.180 sets no rise time; 4 ms
# keeps the switching splatter out of earshot and is short against the
# shortest burst tabled (100 ms).
RAMP_MS = 4

TONE_NAMES = ("dial", "ringback", "busy", "congestion", "call_waiting")


@dataclass(frozen=True, slots=True)
class ToneSpec:
    """One call-progress tone: what sounds, how loud, and when.

    ``frequencies`` sound together (their sum). ``cadence`` is a sequence of
    ``(on_ms, off_ms)`` steps; empty means continuous. With ``repeat`` the
    cadence loops forever, otherwise it plays once and then stays silent.
    ``modulation_hz`` describes the tones E.180 Supplement 2 writes as
    ``400*25``: the sum amplitude-modulated by a sine of that frequency, at
    ``modulation_depth`` (``level_dbm0`` then is that of the unmodulated
    carrier). None of the five countries tabled uses one today; older UK
    exchanges played ringing as 400 Hz modulated by 25 Hz (or 33 Hz dial
    tone), but BT SIN 350 replaced them with the sums tabled here.
    """

    frequencies: tuple[float, ...]
    level_dbm0: float
    cadence: tuple[tuple[int, int], ...] = ()
    repeat: bool = True
    modulation_hz: float | None = None
    modulation_depth: float = 0.9

    def __post_init__(self) -> None:
        if not self.frequencies:
            raise ValueError("tone spec is invalid: it has no frequencies")
        for frequency in self.frequencies:
            if not frequency > 0:
                raise ValueError(f"tone spec is invalid: frequency {frequency} Hz")
        if self.level_dbm0 > _FULL_SCALE_DBM0:
            raise ValueError(
                f"tone spec is invalid: {self.level_dbm0} dBm0 is above the coder's "
                f"+{_FULL_SCALE_DBM0} dBm0"
            )
        for step in self.cadence:
            on_ms, off_ms = step
            if on_ms <= 0 or off_ms < 0:
                raise ValueError(f"tone spec is invalid: cadence step {step}")
        if self.modulation_hz is not None and not self.modulation_hz > 0:
            raise ValueError(f"tone spec is invalid: modulation {self.modulation_hz} Hz")
        if not 0 < self.modulation_depth <= 1:
            raise ValueError(f"tone spec is invalid: modulation depth {self.modulation_depth}")

    @property
    def continuous(self) -> bool:
        """True if the tone never switches off."""
        return not self.cadence


def _spec(frequencies: tuple[float, ...], level: float, *cadence: tuple[int, int]) -> ToneSpec:
    return ToneSpec(frequencies, level, tuple(cadence))


# Levels. The United States figures are the precise tone plan's (ITU-T E.300
# series Supplement 3, "North American precise audible tone plan"): per
# frequency, dial -13, audible ringing -19, busy and reorder -24, call waiting
# -13 dBm0. For the others the tables read give no send level: these use
# -10 dBm0 for a tone, each of two frequencies 3 dB lower so that the pair
# sums to the same (BT's tone table gives "each tone separately 3 dB lower").
# -10 dBm0 is the nominal level usually quoted from E.180 §2; the clause itself
# was not available to check.
_ONE = -10.0
_TWO = -13.0

_TONES: dict[str, dict[str, ToneSpec]] = {
    # The ITU default: E.180's recommended frequency, 425 Hz, with the CEPT
    # harmonised cadences (ETSI ETR 187 / TR 101 041-2): ringing 1 s on 4 s
    # off, busy 0.5/0.5, congestion 0.25/0.25, call waiting 0.2 on 0.2 off
    # 0.2 on 4.4 off.
    "ITU": {
        "dial": _spec((425.0,), _ONE),
        "ringback": _spec((425.0,), _ONE, (1000, 4000)),
        "busy": _spec((425.0,), _ONE, (500, 500)),
        "congestion": _spec((425.0,), _ONE, (250, 250)),
        "call_waiting": _spec((425.0,), _ONE, (200, 200), (200, 4400)),
    },
    # Germany, E.180 Supplement 2 (variant I of each; Asterisk [de]): dial
    # 425 continuous, ringing 1.0/4.0, busy 0.48/0.48, congestion 0.24/0.24,
    # call waiting 0.2 on 0.2 off 0.2 on 5.0 off.
    "DE": {
        "dial": _spec((425.0,), _ONE),
        "ringback": _spec((425.0,), _ONE, (1000, 4000)),
        "busy": _spec((425.0,), _ONE, (480, 480)),
        "congestion": _spec((425.0,), _ONE, (240, 240)),
        "call_waiting": _spec((425.0,), _ONE, (200, 200), (200, 5000)),
    },
    # France, E.180 Supplement 2 (Asterisk [fr]): dial 440 continuous,
    # ringing 1.5/3.5, busy 0.5/0.5. The list gives no congestion or call
    # waiting tone for France; these are Asterisk's: 440 Hz at 0.25/0.25, and
    # 0.3 s every 10.3 s.
    "FR": {
        "dial": _spec((440.0,), _ONE),
        "ringback": _spec((440.0,), _ONE, (1500, 3500)),
        "busy": _spec((440.0,), _ONE, (500, 500)),
        "congestion": _spec((440.0,), _ONE, (250, 250)),
        "call_waiting": _spec((440.0,), _ONE, (300, 10000)),
    },
    # United Kingdom, BT SIN 350 as quoted by Asterisk [uk] and the E.180
    # Supplement 2 UK entry: dial 350+440 continuous, ringing 400+450 at
    # 0.4 on 0.2 off 0.4 on 2.0 off, busy ("engaged") 400 at 0.375/0.375,
    # congestion ("path engaged") 400 at 0.4 on 0.35 off 0.225 on 0.525 off,
    # call waiting 400 at 0.1 on 4.0 off (other tables give 2.0 or 3.0 s off).
    "UK": {
        "dial": _spec((350.0, 440.0), _TWO),
        "ringback": _spec((400.0, 450.0), _TWO, (400, 200), (400, 2000)),
        "busy": _spec((400.0,), _ONE, (375, 375)),
        "congestion": _spec((400.0,), _ONE, (400, 350), (225, 525)),
        "call_waiting": _spec((400.0,), _ONE, (100, 4000)),
    },
    # United States, the precise tone plan (E.300 Supplement 3; E.180
    # Supplement 2 US entry; Asterisk [us]): dial 350+440 continuous, audible
    # ringing 440+480 at 2/4, busy 480+620 at 0.5/0.5, reorder 480+620 at
    # 0.25/0.25, call waiting 440 Hz, a 0.3 s burst every 10 s.
    "US": {
        "dial": _spec((350.0, 440.0), -13.0),
        "ringback": _spec((440.0, 480.0), -19.0, (2000, 4000)),
        "busy": _spec((480.0, 620.0), -24.0, (500, 500)),
        "congestion": _spec((480.0, 620.0), -24.0, (250, 250)),
        "call_waiting": _spec((440.0,), -13.0, (300, 9700)),
    },
}

# Read-only, all the way down: TONES[country][tone_name].
TONES: Mapping[str, Mapping[str, ToneSpec]] = MappingProxyType(
    {country: MappingProxyType(tones) for country, tones in _TONES.items()}
)

_ALIASES = {"GB": "UK"}  # ISO 3166 writes the United Kingdom as GB


def countries() -> tuple[str, ...]:
    """The countries tabled, sorted: ``("DE", "FR", "ITU", "UK", "US")``."""
    return tuple(sorted(TONES))


def get_tone(country: str, name: str) -> ToneSpec:
    """``TONES[country][name]``, the country in either case (``"GB"`` is the
    UK), with an error that says what there is."""
    key = country.upper()
    tones = TONES.get(_ALIASES.get(key, key))
    if tones is None:
        raise KeyError(f"no tones for country {country!r}; known: {', '.join(countries())}")
    spec = tones.get(name)
    if spec is None:
        raise KeyError(f"no tone {name!r} for {country!r}; known: {', '.join(TONE_NAMES)}")
    return spec


def _ramp(
    position: npt.NDArray[np.float64], length: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """Raised-cosine rise over ``length`` samples, sampled at the centre of
    each sample so that the first one is small but not zero."""
    x = np.clip((position + 0.5) / np.maximum(length, 1), 0.0, 1.0)
    result: npt.NDArray[np.float64] = np.sin(0.5 * np.pi * x) ** 2
    return result


def cadence_envelope(
    spec: ToneSpec, start: int, count: int, rate: int = 8000
) -> npt.NDArray[np.float64]:
    """The gain (0..1) of samples ``start .. start+count-1`` of a tone.

    Exactly zero in the off-times and non-zero in every sample of the
    on-times, which fade in and out over ``RAMP_MS`` (at most half of each
    burst). A continuous tone fades in once, at sample 0.
    """
    index = np.arange(start, start + count, dtype=np.int64)
    ramp = max(1, RAMP_MS * rate // 1000)
    if not spec.cadence:
        return _ramp(index.astype(np.float64), np.full(count, ramp, dtype=np.int64))

    on = np.array([_samples(on_ms, rate) for on_ms, _ in spec.cadence], dtype=np.int64)
    off = np.array([_samples(off_ms, rate) for _, off_ms in spec.cadence], dtype=np.int64)
    ends = np.cumsum(on + off)
    starts = ends - (on + off)
    period = int(ends[-1])
    position = index % period if spec.repeat else index
    step = np.minimum(np.searchsorted(ends, position, side="right"), len(on) - 1)
    into = position - starts[step]
    length = on[step]
    edge = np.minimum(ramp, length // 2)
    gain = np.minimum(
        _ramp(into.astype(np.float64), edge), _ramp((length - 1 - into).astype(np.float64), edge)
    )
    sounding = (into < length) & (position < period)
    result: npt.NDArray[np.float64] = np.where(sounding, gain, 0.0)
    return result


def _samples(ms: int, rate: int) -> int:
    """Milliseconds as whole samples (exact at 8, 16 and 48 kHz)."""
    return (ms * rate + 500) // 1000


class ToneGenerator:
    """Plays one ``ToneSpec`` as int16 samples, frame after frame.

    ``read(n)`` returns the next ``n`` samples; phase and cadence carry on
    across calls, since every sample is computed from its index alone.
    """

    def __init__(self, spec: ToneSpec, rate: int = 8000) -> None:
        if rate <= 0:
            raise ValueError(f"tone generator is invalid: rate {rate} Hz")
        nyquist = rate / 2
        highest = max(spec.frequencies) + (spec.modulation_hz or 0.0)
        if highest >= nyquist:
            raise ValueError(
                f"tone spec is invalid at {rate} Hz: {highest} Hz is not below {nyquist} Hz"
            )
        self.spec = spec
        self.rate = rate
        self.position = 0  # samples read so far
        self._amplitude = DBM0_PEAK * 10 ** (spec.level_dbm0 / 20)
        periods = [_samples(on, rate) + _samples(off, rate) for on, off in spec.cadence]
        self._length: int | None = None if spec.repeat or not spec.cadence else sum(periods)

    @property
    def done(self) -> bool:
        """True once a cadence that does not repeat has played out."""
        return self._length is not None and self.position >= self._length

    def reset(self) -> None:
        """Start the tone again from its first sample."""
        self.position = 0

    def read(self, n: int) -> npt.NDArray[np.int16]:
        """The next ``n`` samples."""
        if n < 0:
            raise ValueError(f"tone read is invalid: {n} samples")
        start, self.position = self.position, self.position + n
        if n == 0 or (self._length is not None and start >= self._length):
            return np.zeros(n, dtype=np.int16)
        index = np.arange(start, start + n, dtype=np.int64)
        wave = np.zeros(n, dtype=np.float64)
        for frequency in self.spec.frequencies:
            wave += self._sine(frequency, index)
        if self.spec.modulation_hz is not None:
            wave *= 1.0 + self.spec.modulation_depth * self._sine(self.spec.modulation_hz, index)
        wave *= self._amplitude * cadence_envelope(self.spec, start, n, self.rate)
        return np.clip(np.rint(wave), -32768, 32767).astype(np.int16)

    def _sine(self, frequency: float, index: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        # The cycle count is reduced to its fraction before the sine, so the
        # phase stays exact however long the tone has been playing.
        cycles = np.mod(frequency * index.astype(np.float64) / self.rate, 1.0)
        result: npt.NDArray[np.float64] = np.sin(2 * math.pi * cycles)
        return result
