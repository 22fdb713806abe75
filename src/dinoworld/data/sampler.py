"""Variable-FPS clip sampling (paper §3.2), as pure numpy functions.

A training clip is ``T`` timestamps whose ``T - 1`` gaps are drawn independently and uniformly in
``[dt_min, dt_max]``; the clip starts at a uniformly random point such that it fits in the video.
The caller then decodes the *nearest* frame to each timestamp and trains on that frame's *actual*
timestamp (see :func:`nearest_indices` and :func:`dinoworld.data.video.decode_at`).
"""

from __future__ import annotations

import numpy as np

from ..errors import UserError

#: default range of the gaps between sampled frames (s). The paper does not give its range;
#: 0.05–0.5 s keeps 8-frame clips within the 0–5 s it quotes as typical. One default for every stream.
DT_MIN = 0.05
DT_MAX = 0.5


class TooShort(UserError):
    """The video cannot hold ``num_frames`` timestamps even with every gap at ``dt_min``."""


def _check_args(duration: float, num_frames: int, dt_min: float, dt_max: float) -> None:
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if not (0.0 <= dt_min <= dt_max):
        raise ValueError(f"need 0 <= dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")
    if not np.isfinite(duration) or duration < 0:
        raise ValueError(f"duration must be a finite number >= 0, got {duration}")


def sample_clip_times(
    duration: float,
    num_frames: int,
    dt_min: float,
    dt_max: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Sample ``num_frames`` increasing timestamps in ``[0, duration]``.

    ``duration`` is the usable span of the video: the time of its last frame relative to its
    first frame (for a constant-rate video, ``num_frames_in_video - 1`` frame periods).

    Gaps ``g_1 .. g_{T-1} ~ U[dt_min, dt_max]`` i.i.d.; times are ``start + [0, cumsum(g)]`` with
    ``start ~ U[0, duration - sum(g)]``.

    Short videos: if ``(T - 1) * dt_min > duration`` the clip cannot fit and :class:`TooShort` is
    raised. Otherwise, if the sampled total ``S = sum(g)`` exceeds ``duration``, the part of each
    gap above ``dt_min`` is shrunk by one common factor
    ``s = (duration - (T-1) dt_min) / (S - (T-1) dt_min)``, i.e.
    ``g_i <- dt_min + s (g_i - dt_min)``, so every gap stays in ``[dt_min, dt_max]``, their order is
    kept, and the clip spans the whole video (start = 0). This biases gaps towards ``dt_min``, but
    only for videos shorter than ``(T - 1) * dt_max``.

    Returns:
        float64 array ``(T,)`` of timestamps in seconds, non-decreasing, within ``[0, duration]``.
    """
    _check_args(duration, num_frames, dt_min, dt_max)
    n_gaps = num_frames - 1
    min_total = n_gaps * dt_min
    if min_total > duration + 1e-9:
        raise TooShort(
            f"video is {duration:.3f}s long but a {num_frames}-frame clip needs at least "
            f"{min_total:.3f}s (dt_min={dt_min}); lower num_frames or dt_min, or drop short videos"
        )
    gaps = rng.uniform(dt_min, dt_max, size=n_gaps)  # (T-1,)
    total = float(gaps.sum())
    if total > duration:  # shrink the part above dt_min; the clip then spans the whole video
        excess = total - min_total
        scale = max(duration - min_total, 0.0) / excess if excess > 0 else 0.0
        gaps = dt_min + (gaps - dt_min) * scale
        start = 0.0
    else:
        start = float(rng.uniform(0.0, duration - total))
    times = np.empty(num_frames, dtype=np.float64)  # (T,)
    times[0] = start
    np.cumsum(gaps, out=times[1:])
    times[1:] += start
    # Guard against rounding pushing the last time a hair past the end.
    np.clip(times, 0.0, duration, out=times)
    return times


def nearest_indices(frame_times: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Index of the frame whose time is nearest to each wanted time (ties go to the earlier frame).

    Args:
        frame_times: ``(N,)`` available frame timestamps, sorted ascending (N >= 1).
        wanted: ``(T,)`` wanted timestamps, any order; repeats allowed.

    Returns:
        int64 array ``(T,)`` of indices into ``frame_times``.
    """
    frame_times = np.asarray(frame_times, dtype=np.float64)
    wanted = np.asarray(wanted, dtype=np.float64)
    if frame_times.ndim != 1 or frame_times.size == 0:
        raise ValueError("frame_times must be a non-empty 1-D array")
    if frame_times.size > 1 and np.any(np.diff(frame_times) < 0):
        raise ValueError("frame_times must be sorted ascending")
    right = np.searchsorted(frame_times, wanted, side="left")  # first frame >= wanted
    right = np.clip(right, 0, frame_times.size - 1)
    left = np.clip(right - 1, 0, frame_times.size - 1)
    use_left = np.abs(wanted - frame_times[left]) <= np.abs(frame_times[right] - wanted)
    return np.where(use_left, left, right).astype(np.int64)
