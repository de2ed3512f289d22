"""Packet loss concealment (G.711 Appendix I style) on synthetic voiced sounds: quality over
the gap against zero-fill, the fade to silence, and no clicks at either join (measured by
the largest second difference, against the signal's own; zero-fill fails that by 4x+)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from deskphone.media.plc import HISTORY_SAMPLES, PITCH_MAX, PITCH_MIN, Concealer

RATE = 8000
FRAME = 160


def harmonic(n: int, f0: float, start: int = 0, level: float = 6000.0) -> npt.NDArray[np.int16]:
    """A voiced-like tone: f0 and three harmonics, falling 6 dB each."""
    i = np.arange(start, start + n, dtype=np.float64)
    x = sum(level / 2**k * np.sin(2 * np.pi * f0 * (k + 1) * i / RATE + 0.7 * k)
            for k in range(4))
    return np.rint(x).astype(np.int16)


def snr_db(reference: npt.NDArray[np.int16], output: npt.NDArray[np.int16]) -> float:
    ref = reference.astype(np.float64)
    err = ref - output.astype(np.float64)
    return float(10 * np.log10(np.sum(ref**2) / max(float(np.sum(err**2)), 1e-9)))


def run(signal: npt.NDArray[np.int16], lost: set[int], frame: int = FRAME) -> npt.NDArray[np.int16]:
    """Play ``signal`` frame by frame, concealing the frames numbered in ``lost``."""
    concealer = Concealer(frame)
    out = []
    for k, chunk in enumerate(signal.reshape(-1, frame)):
        result = concealer.lost() if k in lost else concealer.good(chunk)
        assert result.shape == (frame,) and result.dtype == np.int16
        out.append(result.copy())
    return np.concatenate(out)


def max_step(x: npt.NDArray[np.int16]) -> int:
    return int(np.abs(np.diff(x.astype(np.int32))).max())


def max_kink(x: npt.NDArray[np.int16]) -> int:
    """Largest |second difference|: a click (a step or a corner) stands out in it far more
    than in the first difference, which a tone's own slope dominates."""
    return int(np.abs(np.diff(x.astype(np.int64), 2)).max())


# -- quality over the gap --------------------------------------------------------------------

def test_concealing_20ms_of_a_200hz_tone_beats_zero_fill_by_10db() -> None:
    x = harmonic(30 * FRAME, 200.0)
    y = run(x, {10})
    gap = slice(10 * FRAME, 11 * FRAME)
    assert snr_db(x[gap], np.zeros(FRAME, np.int16)) == pytest.approx(0.0)  # zero-fill
    assert snr_db(x[gap], y[gap]) > 10.0
    # outside the gap: untouched before, the same tone again 10 ms after
    np.testing.assert_array_equal(y[:10 * FRAME], x[:10 * FRAME])
    np.testing.assert_array_equal(y[11 * FRAME + 80:], x[11 * FRAME + 80:])


@pytest.mark.parametrize("f0", [95.0, 120.0, 150.0, 190.0])
def test_concealment_holds_for_other_pitches(f0: float) -> None:
    x = harmonic(30 * FRAME, f0)
    y = run(x, {10})
    gap = slice(10 * FRAME, 11 * FRAME)
    assert snr_db(x[gap], y[gap]) > 10.0


def test_pitch_is_found() -> None:
    concealer = Concealer()
    for chunk in harmonic(10 * FRAME, 200.0).reshape(-1, FRAME):
        concealer.good(chunk)
    concealer.lost()
    assert concealer.pitch == 40  # 8000 / 200: ties with 80 and 120 go to the shortest
    concealer = Concealer()
    for chunk in harmonic(10 * FRAME, 100.0).reshape(-1, FRAME):
        concealer.good(chunk)
    concealer.lost()
    assert concealer.pitch == 80
    assert PITCH_MIN == 40 and PITCH_MAX == 120 and HISTORY_SAMPLES == 390


# -- fading ----------------------------------------------------------------------------------

def test_fades_to_silence_by_60ms() -> None:
    x = harmonic(20 * FRAME, 200.0)
    y = run(x, set(range(10, 16)))
    frames = y.reshape(-1, FRAME).astype(np.float64)
    energy = [float(np.sqrt(np.mean(f**2))) for f in frames[10:16]]
    # 0-20 ms about full, then falling, silent from 60 ms
    assert energy[0] > 0.9 * float(np.sqrt(np.mean(x[:FRAME].astype(np.float64)**2)))
    assert energy[0] > energy[1] > energy[2] > energy[3] == 0.0
    assert np.all(frames[13:16] == 0)
    assert np.abs(frames[12, -10:]).max() < 0.05 * np.abs(x).max()  # ~0 just before 60 ms


def test_gain_falls_20_percent_per_10ms_after_the_first_10ms() -> None:
    x = harmonic(20 * FRAME, 200.0)  # period 40: repeats are exact, so y/x is the gain
    y = run(x, set(range(10, 13))).astype(np.float64)
    ref = x.astype(np.float64)
    start = 10 * FRAME
    for ms, gain in [(5, 1.0), (15, 0.9), (25, 0.7), (45, 0.3)]:
        at = start + ms * 8
        window = slice(at - 4, at + 4)
        fit = np.dot(y[window], ref[window]) / np.dot(ref[window], ref[window])
        assert fit == pytest.approx(gain, abs=0.02)


# -- joins -----------------------------------------------------------------------------------

@pytest.mark.parametrize("lost", [{10}, {10, 11}, {10, 11, 12}, set(range(10, 18))])
@pytest.mark.parametrize("f0", [200.0, 190.0, 130.0, 95.0, 75.0])
def test_no_click_into_or_out_of_a_loss(lost: set[int], f0: float) -> None:
    x = harmonic(30 * FRAME, f0)
    y = run(x, lost)
    assert max_step(y) <= 1.05 * max_step(x)
    assert max_kink(y) <= 1.1 * max_kink(x)
    # zero-fill clicks by this measure: the bound means something
    zero_filled = x.copy()
    zero_filled[10 * FRAME:(10 + len(lost)) * FRAME] = 0
    assert max_kink(zero_filled) > 4 * max_kink(x)


def test_no_click_when_the_signal_after_the_loss_differs() -> None:
    """Recovery into a different sound (other pitch and phase): the cross-fade keeps every
    step within what the two sounds have of their own."""
    before = harmonic(10 * FRAME, 200.0)
    after = harmonic(10 * FRAME, 130.0, start=12345)
    x = np.concatenate([before, np.zeros(FRAME, np.int16), after])
    y = run(x, {10})
    own = max(max_kink(before), max_kink(after))
    assert max_kink(y) <= 1.1 * own
    hard_switch = y.copy()
    hard_switch[11 * FRAME:] = after  # the concealment, then the real signal as it comes
    assert max_kink(hard_switch) > 3 * own


def test_recovery_cross_fade_lengthens_with_the_loss() -> None:
    """4 ms after 10 ms lost, +4 ms per further 10 ms, at most 10 ms: the first good frame
    differs from the input exactly over that span."""
    x = harmonic(30 * FRAME, 170.0)
    for frame, lost_frames, span in [(80, 1, 32), (80, 2, 64), (80, 3, 80), (160, 1, 64),
                                     (160, 3, 80)]:
        lost = set(range(10, 10 + lost_frames))
        y = run(x[:len(x) // frame * frame], lost, frame)
        first_good = (10 + lost_frames) * frame
        differs = np.nonzero(y[first_good:first_good + frame]
                             != x[first_good:first_good + frame])[0]
        assert differs.max() < span
        assert differs.max() >= span - 3  # the last mixed samples may round back


def test_losses_after_silence_are_silent() -> None:
    concealer = Concealer()
    assert np.all(concealer.lost() == 0)  # nothing heard yet
    silence = np.zeros(FRAME, np.int16)
    for _ in range(3):
        concealer.good(silence)
    assert np.all(concealer.lost() == 0)
    assert np.all(concealer.good(silence) == 0)


# -- shapes and buffers ----------------------------------------------------------------------

@pytest.mark.parametrize("frame", [80, 160, 240, 100, 480])
def test_output_length_is_always_the_frame(frame: int) -> None:
    x = harmonic(40 * 480, 170.0)
    rng = np.random.default_rng(1)
    lost = {k for k in range(len(x) // frame) if rng.random() < 0.3}
    y = run(x[:len(x) // frame * frame], lost, frame)
    assert y.size == len(x) // frame * frame
    assert max_kink(y) <= 1.5 * max_kink(x)


def test_good_frame_without_a_loss_is_passed_through() -> None:
    concealer = Concealer()
    chunk = harmonic(FRAME, 200.0)
    assert concealer.good(chunk) is chunk


def test_wrong_frame_size_is_refused() -> None:
    concealer = Concealer()
    with pytest.raises(ValueError) as info:
        concealer.good(np.zeros(80, np.int16))
    assert str(info.value) == "frame is invalid: shape (80,), not (160,)"
    with pytest.raises(ValueError) as info:
        Concealer(0)
    assert str(info.value) == "concealer is invalid: frame of 0 samples"


def test_loud_signal_does_not_wrap_around() -> None:
    x = harmonic(20 * FRAME, 200.0, level=17000.0)  # peaks near full scale
    y = run(x, {10, 11})
    assert max_kink(y) <= 1.1 * max_kink(x)
    assert np.abs(y.astype(np.int32)).max() <= np.abs(x.astype(np.int32)).max()



def _copy_into(payload: bytes, octets: memoryview) -> None:
    octets[:] = payload  # a "decoder" for int16 samples given as octets


@pytest.mark.parametrize("frame", [80, 160])
@pytest.mark.parametrize("f0", [70.0, 150.0])
def test_lent_frames_conceal_exactly_as_copied_ones(frame: int, f0: float) -> None:
    """Frames decoded into the concealer's own buffers (``good_decoded``, or
    ``frame_buffer`` + ``good``) are kept as history by reference; the output is the
    same as for frames the concealer copies, through losses of every length (70 Hz: the
    third period repeated reaches back to the oldest sample of the history)."""
    x = harmonic(8000 * 4 // frame * frame, f0)
    rng = np.random.default_rng(7)
    lost: set[int] = set()
    k = 5
    while k < len(x) // frame:  # runs of 1..4 lost frames between 2..6 good ones
        run_length = int(rng.integers(1, 5))
        lost.update(range(k, k + run_length))
        k += run_length + int(rng.integers(2, 7))
    expected = run(x, lost, frame)
    for how in ("good_decoded", "frame_buffer", "mixed"):
        concealer = Concealer(frame)
        out = []
        for k, chunk in enumerate(x.reshape(-1, frame)):
            if k in lost:
                result = concealer.lost()
            elif how == "good_decoded" or (how == "mixed" and k % 3 == 0):
                result = concealer.good_decoded(_copy_into, chunk.tobytes())
            elif how == "frame_buffer" or k % 3 == 1:
                samples, octets = concealer.frame_buffer()
                octets[:] = chunk.tobytes()
                result = concealer.good(samples)
            else:
                result = concealer.good(chunk.copy())
            out.append(result.copy())
        np.testing.assert_array_equal(np.concatenate(out), expected, err_msg=how)


@pytest.mark.parametrize("lendings", ["GjjGj", "GjjGG", "GjjGGjjG", "GGGGjG"])
def test_lending_a_buffer_that_holds_history_copies_the_history_out_first(
        lendings: str) -> None:
    """Frames lent and never given back (j) skip buffers in the turn, so a later lending
    comes round to a buffer still holding history by reference: the concealer copies
    that history out before the buffer is written, by good_decoded (G) or not."""
    frames = harmonic(160 * 20, 70.0).reshape(-1, 160)
    reference, lender = Concealer(), Concealer()
    good = iter(frames)
    for step in lendings:
        if step == "j":
            _, octets = lender.frame_buffer()  # lent, filled with junk, never played
            octets[:] = bytes(range(256)) + bytes(64)
        else:
            chunk = next(good)
            reference.good(chunk.copy())
            lender.good_decoded(_copy_into, chunk.tobytes())
    for _ in range(4):
        np.testing.assert_array_equal(lender.lost(), reference.lost())


# -- look-ahead ------------------------------------------------------------------------------

def run_ahead(signal: npt.NDArray[np.int16], lost: set[int], frame: int = FRAME,
              horizon: int = 3) -> npt.NDArray[np.int16]:
    """``run`` with look-ahead: a lost frame is concealed into the first frame received
    within ``horizon`` frames on, as the media thread does with ``JitterBuffer.peek``."""
    concealer = Concealer(frame)
    frames = signal.reshape(-1, frame)
    out = []
    for k, chunk in enumerate(frames):
        if k in lost:
            ahead = next((d for d in range(1, horizon + 1)
                          if k + d < len(frames) and k + d not in lost), None)
            result = (concealer.lost() if ahead is None
                      else concealer.lost(frames[k + ahead].copy(), ahead))
        else:
            result = concealer.good(chunk)
            assert result is chunk  # after a loss too: the loss ran into it, it plays as is
        out.append(result.copy())
    return np.concatenate(out)


def glide(n: int, f_start: float, f_end: float, level: float = 6000.0) -> npt.NDArray[np.int16]:
    """A voiced-like sound whose pitch glides linearly (a diphthong's intonation)."""
    f0 = np.linspace(f_start, f_end, n)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    x = sum(level / 2**k * np.sin((k + 1) * phase + 0.7 * k) for k in range(4))
    return np.rint(x).astype(np.int16)


@pytest.mark.parametrize(("f_start", "f_end"), [(110.0, 170.0), (190.0, 120.0)])
def test_look_ahead_fills_a_gliding_sound_better_than_the_past_alone(f_start: float,
                                                                      f_end: float) -> None:
    x = glide(30 * FRAME, f_start, f_end)
    gap = slice(10 * FRAME, 11 * FRAME)
    past_only, both = run(x, {10}), run_ahead(x, {10})
    assert snr_db(x[gap], both[gap]) > snr_db(x[gap], past_only[gap]) + 2.0
    # the frame after the gap plays as received: the gap ran into it
    np.testing.assert_array_equal(both[11 * FRAME:], x[11 * FRAME:])
    np.testing.assert_array_equal(both[:10 * FRAME], x[:10 * FRAME])


@pytest.mark.parametrize("lost", [{10}, {10, 11}, {10, 11, 12}, {10, 12}])
@pytest.mark.parametrize("f0", [200.0, 190.0, 130.0, 95.0, 75.0])
def test_look_ahead_runs_into_the_frame_ahead_without_a_click(lost: set[int],
                                                               f0: float) -> None:
    x = harmonic(30 * FRAME, f0)
    y = run_ahead(x, lost)
    assert max_step(y) <= 1.05 * max_step(x)
    assert max_kink(y) <= 1.1 * max_kink(x)
    after = (max(lost) + 1) * FRAME
    np.testing.assert_array_equal(y[after:], x[after:])


def test_a_gap_of_three_frames_does_not_fade_out_when_it_looks_ahead() -> None:
    """The past's repeat fades (20 % per 10 ms); the repeat back from the frame ahead
    takes over, so the gap's last frame is about as loud as the sound, not faded to 20 %."""
    x = harmonic(30 * FRAME, 150.0)
    lost = {10, 11, 12}
    level = float(np.sqrt(np.mean(x[:FRAME].astype(np.float64)**2)))

    def rms(y: npt.NDArray[np.int16]) -> float:
        return float(np.sqrt(np.mean(y[12 * FRAME:13 * FRAME].astype(np.float64)**2)))

    assert rms(run(x, lost)) < 0.3 * level
    assert rms(run_ahead(x, lost)) > 0.85 * level


def test_a_frame_ahead_that_does_not_come_next_is_faded_into() -> None:
    """The buffer peeked a frame and then dropped it: another frame comes, faded into
    from the one the loss ran into."""
    before = harmonic(10 * FRAME, 200.0)
    ahead = harmonic(FRAME, 200.0, start=11 * FRAME)
    other = harmonic(10 * FRAME, 130.0, start=12345)
    own = max(max_kink(before), max_kink(other))
    concealer = Concealer()
    out = [concealer.good(f).copy() for f in before.reshape(-1, FRAME)]
    out.append(concealer.lost(ahead, 1).copy())
    out += [concealer.good(f).copy() for f in other.reshape(-1, FRAME)]
    y = np.concatenate(out)
    assert max_kink(y) <= 1.1 * own
    hard = y.copy()
    hard[11 * FRAME:] = other  # no cross-fade from the frame ahead into the other one
    assert max_kink(hard) > 3 * own


@pytest.mark.parametrize("f0", [200.0, 190.0, 130.0, 95.0, 75.0])
def test_a_frame_ahead_that_does_not_come_next_is_concealed_into_again(f0: float) -> None:
    """The buffer peeked a frame and then grew by a frame before it: the loss runs into
    the same frame twice, with no click, and then it plays as received."""
    x = harmonic(30 * FRAME, f0)
    concealer = Concealer()
    frames = x.reshape(-1, FRAME)
    out = [concealer.good(f).copy() for f in frames[:10]]
    out.append(concealer.lost(frames[10], 1).copy())  # the buffer then grows by a frame:
    out.append(concealer.lost(frames[10], 1).copy())  # frame 10 is ahead again
    out += [concealer.good(f).copy() for f in frames[10:20]]
    y = np.concatenate(out)
    assert max_kink(y) <= 1.1 * max_kink(x)
    np.testing.assert_array_equal(y[12 * FRAME:], x[10 * FRAME:20 * FRAME])


def test_lost_decoded_is_lost_with_the_decoded_frame() -> None:
    x = harmonic(20 * FRAME, 170.0)
    frames = x.reshape(-1, FRAME)
    results = []
    for decoded in (False, True):
        concealer = Concealer()
        for f in frames[:10]:
            concealer.good(f)
        if decoded:
            lost = concealer.lost_decoded(_copy_into, frames[12].tobytes(), 2).copy()
        else:
            lost = concealer.lost(frames[12].copy(), 2).copy()
        results.append(np.concatenate([lost, concealer.lost(frames[12], 1),
                                       concealer.good(frames[12].copy())]))
    np.testing.assert_array_equal(results[0], results[1])


def test_frames_too_short_for_a_period_ignore_the_frame_ahead() -> None:
    x = harmonic(60 * 40, 150.0)
    frames = x.reshape(-1, 40)  # 5 ms: the shortest period and its quarter do not fit
    plain, ahead = Concealer(40), Concealer(40)
    for f in frames[:20]:
        plain.good(f)
        ahead.good(f)
    for k in (20, 21):
        np.testing.assert_array_equal(ahead.lost(frames[22], 22 - k), plain.lost())
    np.testing.assert_array_equal(ahead.good(frames[22]), plain.good(frames[22]))
    with pytest.raises(ValueError) as info:
        Concealer().lost(np.zeros(80, np.int16))
    assert str(info.value) == "frame is invalid: shape (80,), not (160,)"
