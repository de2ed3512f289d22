"""Call-progress tones: the table, and a generator checked by FFT, by level,
by cadence to the sample, and by continuity across frames."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import numpy.typing as npt
import pytest

from deskphone.media.tones import (
    DBM0_PEAK,
    RAMP_MS,
    TONE_NAMES,
    TONES,
    ToneGenerator,
    ToneSpec,
    cadence_envelope,
    countries,
    get_tone,
)

RATE = 8000
ALL = [(country, name) for country in sorted(TONES) for name in TONE_NAMES]
CADENCED = [(country, name) for country, name in ALL if TONES[country][name].cadence]

# The reference, computed here independently of the module: G.711's μ-law
# overload point (8159 on the 14-bit scale, 32636 on int16) is +3.17 dBm0.
ZERO_DBM0_PEAK = 32636 * 10 ** (-3.17 / 20)


def on_mask(spec: ToneSpec, count: int, rate: int = RATE) -> npt.NDArray[np.bool_]:
    """Which samples should sound, written out from the cadence in ms."""
    if not spec.cadence:
        return np.ones(count, dtype=bool)
    pattern: list[bool] = []
    for on_ms, off_ms in spec.cadence:
        pattern += [True] * (on_ms * rate // 1000) + [False] * (off_ms * rate // 1000)
    if spec.repeat:
        reps = count // len(pattern) + 1
        return np.array(pattern * reps, dtype=bool)[:count]
    return np.array(pattern + [False] * count, dtype=bool)[:count]


def period_samples(spec: ToneSpec) -> int:
    return sum(on + off for on, off in spec.cadence) * RATE // 1000


def bursts(mask: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """(first, last + 1) of each run of True."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def component_level_dbm0(samples: npt.NDArray[np.int16], frequency: float) -> float:
    """The level of one frequency in exactly one second of samples."""
    n = np.arange(len(samples))
    projection = np.sum(samples * np.exp(-2j * np.pi * frequency * n / RATE))
    amplitude = 2 * abs(projection) / len(samples)
    return 20 * math.log10(amplitude / ZERO_DBM0_PEAK)


# --- the table -------------------------------------------------------------------


def test_countries() -> None:
    assert countries() == ("DE", "FR", "ITU", "UK", "US")


@pytest.mark.parametrize("country", ["DE", "FR", "ITU", "UK", "US"])
def test_every_country_has_every_tone(country: str) -> None:
    assert tuple(TONES[country]) == TONE_NAMES
    assert all(isinstance(spec, ToneSpec) for spec in TONES[country].values())


def test_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        TONES["XX"] = TONES["US"]  # type: ignore[index]
    with pytest.raises(TypeError):
        TONES["US"]["dial"] = TONES["UK"]["dial"]  # type: ignore[index]


def test_known_figures() -> None:
    # Spot checks against the sources named in the module.
    assert TONES["US"]["dial"] == ToneSpec((350.0, 440.0), -13.0)
    assert TONES["US"]["ringback"] == ToneSpec((440.0, 480.0), -19.0, ((2000, 4000),))
    assert TONES["US"]["congestion"].cadence == ((250, 250),)
    assert TONES["UK"]["ringback"].frequencies == (400.0, 450.0)
    assert TONES["UK"]["ringback"].cadence == ((400, 200), (400, 2000))
    assert TONES["UK"]["congestion"].cadence == ((400, 350), (225, 525))
    assert TONES["DE"]["busy"] == ToneSpec((425.0,), -10.0, ((480, 480),))
    assert TONES["FR"]["ringback"] == ToneSpec((440.0,), -10.0, ((1500, 3500),))
    assert TONES["ITU"]["dial"].continuous


def test_lookup_is_forgiving_about_case_and_gb() -> None:
    assert get_tone("us", "busy") is TONES["US"]["busy"]
    assert get_tone("GB", "dial") is TONES["UK"]["dial"]


def test_unknown_country_says_what_there_is() -> None:
    with pytest.raises(KeyError) as raised:
        get_tone("XX", "dial")
    assert raised.value.args[0] == "no tones for country 'XX'; known: DE, FR, ITU, UK, US"


def test_unknown_tone_says_what_there_is() -> None:
    with pytest.raises(KeyError) as raised:
        get_tone("DE", "howler")
    assert raised.value.args[0] == (
        "no tone 'howler' for 'DE'; known: dial, ringback, busy, congestion, call_waiting"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (((), -10.0), "tone spec is invalid: it has no frequencies"),
        (((0.0,), -10.0), "tone spec is invalid: frequency 0.0 Hz"),
        (((425.0,), 4.0), "tone spec is invalid: 4.0 dBm0 is above the coder's +3.17 dBm0"),
        (((425.0,), -10.0, ((0, 100),)), "tone spec is invalid: cadence step (0, 100)"),
        (((425.0,), -10.0, ((100, -1),)), "tone spec is invalid: cadence step (100, -1)"),
    ],
)
def test_bad_spec_raises_exact_error(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(ValueError) as raised:
        ToneSpec(*args)  # type: ignore[arg-type]
    assert str(raised.value) == message


def test_frequency_above_nyquist_is_refused() -> None:
    with pytest.raises(ValueError) as raised:
        ToneGenerator(ToneSpec((4100.0,), -10.0))
    assert str(raised.value) == (
        "tone spec is invalid at 8000 Hz: 4100.0 Hz is not below 4000.0 Hz"
    )


# --- what the generator plays ------------------------------------------------


def test_zero_dbm0_reference() -> None:
    assert abs(DBM0_PEAK - ZERO_DBM0_PEAK) < 1e-9
    assert round(DBM0_PEAK) == 22657


@pytest.mark.parametrize(("country", "name"), ALL)
def test_frequencies_by_fft(country: str, name: str) -> None:
    spec = replace(TONES[country][name], cadence=())  # the tone itself, unbroken
    samples = ToneGenerator(spec).read(4 * RATE).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    freqs = np.fft.rfftfreq(len(samples), 1 / RATE)
    peaks = [
        i
        for i in range(1, len(spectrum) - 1)
        if spectrum[i] >= spectrum[i - 1]
        and spectrum[i] > spectrum[i + 1]
        and spectrum[i] > spectrum.max() * 10 ** (-40 / 20)  # within 40 dB of the top
    ]
    assert len(peaks) == len(spec.frequencies)
    for peak, frequency in zip(peaks, sorted(spec.frequencies), strict=True):
        assert abs(freqs[peak] - frequency) <= 1.0


@pytest.mark.parametrize(("country", "name"), ALL)
def test_level_of_each_frequency(country: str, name: str) -> None:
    spec = replace(TONES[country][name], cadence=())
    generator = ToneGenerator(spec)
    generator.read(RATE)  # past the fade-in
    second = generator.read(RATE)
    for frequency in spec.frequencies:
        assert abs(component_level_dbm0(second, frequency) - spec.level_dbm0) < 0.5


@pytest.mark.parametrize(("country", "name"), CADENCED)
def test_level_inside_the_bursts(country: str, name: str) -> None:
    spec = TONES[country][name]
    samples = ToneGenerator(spec).read(period_samples(spec)).astype(np.float64)
    ramp = RAMP_MS * RATE // 1000
    expected = len(spec.frequencies) * (ZERO_DBM0_PEAK * 10 ** (spec.level_dbm0 / 20)) ** 2 / 2
    for first, end in bursts(on_mask(spec, len(samples))):
        steady = samples[first + ramp : end - ramp]
        power = float(np.mean(steady**2))
        assert abs(10 * math.log10(power / expected)) < 0.5


@pytest.mark.parametrize(("country", "name"), ALL)
def test_cadence_exact_to_the_sample(country: str, name: str) -> None:
    spec = TONES[country][name]
    count = 2 * period_samples(spec) if spec.cadence else RATE
    mask = on_mask(spec, count)
    envelope = cadence_envelope(spec, 0, count)
    assert np.array_equal(envelope > 0, mask)
    samples = ToneGenerator(spec).read(count)
    assert not samples[~mask].any()  # silence is exactly silence
    for first, end in bursts(mask):
        assert samples[first : first + 4].any()  # sounding from its first samples
        assert samples[end - 4 : end].any()  # to its last
        assert np.all(envelope[first + 32 : end - 32] == 1.0)  # full level between fades


def test_fades_are_short_raised_cosines() -> None:
    spec = TONES["DE"]["busy"]
    envelope = cadence_envelope(spec, 0, 3841)  # 480 ms on is 3840 samples
    ramp = RAMP_MS * RATE // 1000
    rise = envelope[:ramp]
    assert np.all(np.diff(rise) > 0)
    assert rise[0] < 0.01 and envelope[ramp] == 1.0
    fall = envelope[3840 - ramp : 3840]
    assert np.allclose(fall, rise[::-1])  # symmetric
    assert envelope[3840] == 0.0


@pytest.mark.parametrize(("country", "name"), ALL)
def test_frames_equal_one_read(country: str, name: str) -> None:
    spec = TONES[country][name]
    count = max(RATE, period_samples(spec) + RATE)  # a whole cadence and more
    whole = ToneGenerator(spec).read(count)
    framed = ToneGenerator(spec)
    frames = np.concatenate([framed.read(160) for _ in range(count // 160)])
    assert frames.dtype == np.int16
    assert np.array_equal(frames, whole[: len(frames)])


def test_one_second_in_20_ms_frames_equals_one_call() -> None:
    spec = TONES["US"]["dial"]
    one = ToneGenerator(spec).read(RATE)
    generator = ToneGenerator(spec)
    framed = np.concatenate([generator.read(160) for _ in range(50)])
    assert np.array_equal(framed, one)
    assert generator.position == RATE


def test_odd_frame_sizes_too() -> None:
    spec = TONES["UK"]["congestion"]
    whole = ToneGenerator(spec).read(12000)
    generator = ToneGenerator(spec)
    parts: list[npt.NDArray[np.int16]] = []
    sizes = [1, 7, 159, 161, 0, 3000, 1]
    while sum(len(p) for p in parts) < 12000:
        parts.append(generator.read(sizes[len(parts) % len(sizes)]))
    assert np.array_equal(np.concatenate(parts)[:12000], whole)


@pytest.mark.parametrize(("country", "name"), ALL)
def test_no_clicks(country: str, name: str) -> None:
    # No step from one sample to the next is bigger than the steepest the
    # tone can be with its fade: a hard switch on or off would be.
    spec = TONES[country][name]
    count = period_samples(spec) or RATE
    samples = ToneGenerator(spec).read(count).astype(np.float64)
    amplitude = ZERO_DBM0_PEAK * 10 ** (spec.level_dbm0 / 20)
    ramp = RAMP_MS * RATE // 1000
    slope = sum(
        amplitude * (2 * math.pi * f / RATE + math.pi / (2 * ramp)) for f in spec.frequencies
    )
    assert np.max(np.abs(np.diff(samples))) <= slope + 2


def test_a_hard_switch_would_fail_the_click_bound() -> None:
    # The bound above has teeth: a burst switched on at full level exceeds it.
    amplitude = ZERO_DBM0_PEAK * 10 ** (-10 / 20)
    hard = np.concatenate(
        [np.zeros(10), amplitude * np.cos(2 * np.pi * 425 * np.arange(100) / RATE)]
    )
    ramp = RAMP_MS * RATE // 1000
    slope = amplitude * (2 * math.pi * 425 / RATE + math.pi / (2 * ramp))
    assert np.max(np.abs(np.diff(hard))) > slope + 2


def test_cadence_that_does_not_repeat_ends_in_silence() -> None:
    spec = ToneSpec((425.0,), -10.0, ((200, 200), (200, 0)), repeat=False)
    generator = ToneGenerator(spec)
    first = generator.read(4000)
    assert not generator.done
    first = np.concatenate([first, generator.read(800)])
    assert generator.done
    assert first[:1600].any() and not first[1600:3200].any() and first[3200:4800].any()
    assert not generator.read(8000).any()
    generator.reset()
    assert np.array_equal(generator.read(4800), first)


def test_modulated_tone_has_sidebands() -> None:
    # E.180 Supplement 2's "400*25": 400 Hz modulated by 25 Hz.
    spec = ToneSpec((400.0,), -10.0, modulation_hz=25.0, modulation_depth=0.9)
    generator = ToneGenerator(spec)
    generator.read(RATE)
    second = generator.read(RATE)
    carrier = component_level_dbm0(second, 400.0)
    assert abs(carrier - -10.0) < 0.5
    for sideband in (375.0, 425.0):
        # Each sideband at depth / 2 of the carrier: -6.9 dB for 0.9.
        assert abs(component_level_dbm0(second, sideband) - (carrier + 20 * math.log10(0.45))) < 0.5


def test_other_rates() -> None:
    spec = TONES["UK"]["ringback"]
    samples = ToneGenerator(spec, rate=16000).read(48000)
    mask = on_mask(spec, 48000, rate=16000)
    assert not samples[~mask].any()
    assert samples[mask].any()


def test_read_edge_cases() -> None:
    generator = ToneGenerator(TONES["FR"]["dial"])
    empty = generator.read(0)
    assert empty.dtype == np.int16 and len(empty) == 0
    with pytest.raises(ValueError) as raised:
        generator.read(-1)
    assert str(raised.value) == "tone read is invalid: -1 samples"
