"""Variable-FPS clip sampling (paper §3.2): uniform gaps, clips that fit, nearest frames."""

import numpy as np
import pytest

from dinoworld.data.sampler import TooShort, nearest_indices, sample_clip_times
from dinoworld.errors import UserError


def ks_uniform(x: np.ndarray, lo: float, hi: float) -> float:
    """Kolmogorov-Smirnov distance between the sample ``x`` and U[lo, hi]."""
    x = np.sort((np.asarray(x) - lo) / (hi - lo))
    n = len(x)
    cdf = np.clip(x, 0, 1)
    return float(max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n)))


def test_gaps_are_uniform_on_range():
    rng = np.random.default_rng(0)
    dt_min, dt_max, T = 0.05, 0.5, 8
    clips = np.stack([sample_clip_times(60.0, T, dt_min, dt_max, rng) for _ in range(3000)])
    gaps = np.diff(clips, axis=1).ravel()  # 21000 gaps
    assert gaps.min() >= dt_min - 1e-12 and gaps.max() <= dt_max + 1e-12
    # 1% critical value for n = 21000 is about 1.63 / sqrt(n) = 0.011.
    assert ks_uniform(gaps, dt_min, dt_max) < 0.015

    # The statistic must reject the naive "T contiguous frames of a 30 fps video" sampler ...
    contiguous = np.full_like(gaps, 1 / 30)
    assert ks_uniform(contiguous, dt_min, dt_max) > 0.5
    # ... and a sampler with a skewed gap distribution (short gaps too likely).
    skewed = dt_min + (dt_max - dt_min) * rng.random(gaps.size) ** 2
    assert ks_uniform(skewed, dt_min, dt_max) > 0.1


def test_start_is_random_and_clip_fits():
    rng = np.random.default_rng(1)
    duration = 10.0
    clips = np.stack([sample_clip_times(duration, 8, 0.1, 0.5, rng) for _ in range(2000)])
    assert np.all(clips >= 0) and np.all(clips <= duration)
    assert np.all(np.diff(clips, axis=1) > 0)
    # The start covers the allowed range [0, duration - total] (not always 0).
    starts, ends = clips[:, 0], clips[:, -1]
    assert starts.min() < 0.1 and ends.max() > duration - 0.1
    assert np.median(starts) > 1.0


def test_short_video_shrinks_gaps_towards_dt_min():
    rng = np.random.default_rng(2)
    T, dt_min, dt_max = 8, 0.1, 0.5
    duration = 1.0  # minimum total is 0.7, typical sampled total is 2.1
    shrunk = 0
    for _ in range(500):
        t = sample_clip_times(duration, T, dt_min, dt_max, rng)
        gaps = np.diff(t)
        assert t[0] >= 0 and t[-1] <= duration + 1e-12
        assert gaps.min() >= dt_min - 1e-9 and gaps.max() <= dt_max + 1e-9
        if t[0] == 0.0 and abs(t[-1] - duration) < 1e-9:
            shrunk += 1
    assert shrunk > 450  # nearly every draw exceeded 1 s and was shrunk to span the video


def test_too_short_raises_user_error():
    rng = np.random.default_rng(3)
    with pytest.raises(TooShort, match="at least 0.700s"):
        sample_clip_times(0.69, 8, 0.1, 0.5, rng)
    assert issubclass(TooShort, UserError)
    # Exactly the minimum fits: all gaps become dt_min.
    t = sample_clip_times(0.7, 8, 0.1, 0.5, rng)
    np.testing.assert_allclose(np.diff(t), 0.1, atol=1e-9)


def test_single_frame_and_determinism():
    t = sample_clip_times(5.0, 1, 0.1, 0.5, np.random.default_rng(4))
    assert t.shape == (1,) and 0 <= t[0] <= 5.0
    a = sample_clip_times(30.0, 8, 0.1, 0.5, np.random.default_rng(7))
    b = sample_clip_times(30.0, 8, 0.1, 0.5, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError):
        sample_clip_times(5.0, 4, 0.5, 0.1, np.random.default_rng(0))


def test_nearest_indices_matches_brute_force():
    rng = np.random.default_rng(5)
    frame_times = np.sort(rng.uniform(0, 10, size=57))
    wanted = rng.uniform(-1, 11, size=300)
    brute = np.argmin(np.abs(frame_times[None, :] - wanted[:, None]), axis=1)
    np.testing.assert_array_equal(nearest_indices(frame_times, wanted), brute)


def test_nearest_indices_ties_and_edges():
    ft = np.array([0.0, 1.0, 2.0])
    got = nearest_indices(ft, np.array([0.5, 1.5, -3.0, 9.0, 1.0, 1.49, 1.51]))
    np.testing.assert_array_equal(got, [0, 1, 0, 2, 1, 1, 2])
    assert nearest_indices(np.array([4.0]), np.array([0.0, 9.0])).tolist() == [0, 0]
    with pytest.raises(ValueError):
        nearest_indices(np.array([1.0, 0.0]), np.array([0.5]))
