"""Procedural "moving objects" videos: a small physical scene for smoke tests and tiny trainings.

Coloured discs and (spinning) squares move on a textured background with constant velocity,
optional gravity, and elastic bounces off the walls (objects pass through each other). The motion is
simulated in continuous time with a fixed internal step, so the same seed gives the same scene at
any frame rate: only the sampling times ``i / fps`` change.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .video import write_video

_SIM_HZ = 240.0  # internal physics steps per second


def _hw(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _background(rng: np.random.Generator, h: int, w: int, kind: str) -> np.ndarray:
    """(H, W, 3) float32 background in [0, 255]: a muted colour plus smooth random waves."""
    base = rng.uniform(40, 110, size=3)
    img = np.broadcast_to(base, (h, w, 3)).astype(np.float32).copy()
    if kind == "plain":
        return img
    if kind != "texture":
        raise ValueError(f"background must be 'texture' or 'plain', got {kind!r}")
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for _ in range(4):
        fy, fx = rng.uniform(-3, 3, size=2) * 2 * math.pi / max(h, w)
        phase = rng.uniform(0, 2 * math.pi)
        amp = rng.uniform(5, 18, size=3).astype(np.float32)
        img += np.sin(fy * yy + fx * xx + phase)[..., None] * amp
    return np.clip(img, 0, 255)


def make_moving_objects_video(
    seconds: float = 3.0,
    fps: float = 10.0,
    size: int | tuple[int, int] = 64,
    num_objects: int = 3,
    seed: int = 0,
    gravity: float = 0.0,
    background: str = "texture",
) -> np.ndarray:
    """Render a deterministic scene of bouncing objects.

    Args:
        seconds: length; the video has ``floor(seconds * fps)`` frames (at least 1), frame ``i`` at
            time ``i / fps``.
        fps: frame rate (need not be an integer).
        size: ``h`` or ``(h, w)`` in pixels.
        num_objects: number of discs / squares.
        seed: scene seed (colours, shapes, sizes, initial positions and velocities, background).
        gravity: downward acceleration in image heights per second squared (0 = none).
        background: ``"texture"`` (smooth random waves) or ``"plain"``.

    Returns:
        ``(T, H, W, 3)`` uint8 RGB frames.
    """
    bg, colours, _, _, coverage = moving_objects_scene(seconds, fps, size, num_objects, seed, gravity, background)
    return np.stack([composite(bg, colours, alphas) for alphas in coverage])


def composite(background: np.ndarray, colours: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """One frame: objects drawn over the background in order with their soft coverage ``(N, H, W)``."""
    img = background.copy()
    for colour, alpha in zip(colours, alphas):
        img = img * (1.0 - alpha[..., None]) + colour * alpha[..., None]
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def moving_objects_scene(seconds: float = 3.0, fps: float = 10.0, size: int | tuple[int, int] = 64,
                         num_objects: int = 3, seed: int = 0, gravity: float = 0.0, background: str = "texture"):
    """The scene of :func:`make_moving_objects_video` before compositing: ``(background (H, W, 3) float,
    colours (N, 3), is_disc (N,), radius (N,), coverage)`` where ``coverage`` yields, frame by frame,
    each object's soft coverage ``(N, H, W)`` in drawing order (later objects on top)."""
    if fps <= 0 or seconds <= 0:
        raise ValueError(f"need seconds > 0 and fps > 0, got {seconds}, {fps}")
    h, w = _hw(size)
    rng = np.random.default_rng(seed)
    n = int(num_objects)
    side = float(min(h, w))
    radius = rng.uniform(0.06, 0.13, size=n) * side  # (N,) disc radius / square half-side
    is_disc = rng.random(n) < 0.5  # (N,)
    hues = (rng.uniform(0, 1) + np.arange(n) / max(n, 1)) % 1.0
    colours = np.array([colorsys.hsv_to_rgb(hh, 0.85, 1.0) for hh in hues], np.float32) * 255
    colours = colours.reshape(n, 3)
    lo, hi = radius[:, None], np.array([w, h], np.float64)[None, :] - radius[:, None]
    pos = rng.uniform(lo, hi)  # (N, 2) as (x, y), y down
    speed = rng.uniform(0.25, 0.6, size=n) * side  # pixels / second
    angle = rng.uniform(0, 2 * math.pi, size=n)
    vel = np.stack([np.cos(angle), np.sin(angle)], axis=1) * speed[:, None]  # (N, 2)
    spin = rng.uniform(-3, 3, size=n)  # rad / s (squares only)
    theta0 = rng.uniform(0, math.pi / 2, size=n)
    bg = _background(rng, h, w, background)  # (H, W, 3)

    num_frames = max(1, int(math.floor(seconds * fps + 1e-9)))
    dt = 1.0 / _SIM_HZ
    acc = np.array([0.0, gravity * h])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy += 0.5
    xx += 0.5

    def coverage():
        nonlocal pos, vel
        step = 0
        for i in range(num_frames):
            target = int(round(i / fps * _SIM_HZ))
            while step < target:  # semi-implicit Euler with wall reflections
                vel += acc * dt
                pos += vel * dt
                for axis, limit in ((0, w), (1, h)):
                    low = pos[:, axis] < radius
                    pos[low, axis] = 2 * radius[low] - pos[low, axis]
                    vel[low, axis] = np.abs(vel[low, axis])
                    high = pos[:, axis] > limit - radius
                    pos[high, axis] = 2 * (limit - radius[high]) - pos[high, axis]
                    vel[high, axis] = -np.abs(vel[high, axis])
                step += 1
            t = step * dt
            alphas = []
            for j in range(n):
                dx, dy = xx - pos[j, 0], yy - pos[j, 1]
                if is_disc[j]:
                    dist = np.sqrt(dx * dx + dy * dy)
                else:
                    th = theta0[j] + spin[j] * t
                    c, s = math.cos(th), math.sin(th)
                    dist = np.maximum(np.abs(c * dx + s * dy), np.abs(-s * dx + c * dy))
                alphas.append(np.clip(radius[j] + 0.5 - dist, 0.0, 1.0))  # soft 1-px edge
            yield np.stack(alphas) if alphas else np.zeros((0, h, w))

    return bg, colours, is_disc, radius, coverage()


def write_synthetic_dataset(
    out_dir: str | Path,
    num_videos: int = 8,
    seconds: float | tuple[float, float] = 3.0,
    fps: float | Sequence[float] = (6.0, 7.5, 10.0, 12.0, 15.0, 24.0, 30.0),
    size: int | tuple[int, int] = 64,
    seed: int = 0,
    num_objects: int = 3,
    gravity: float = 0.0,
    background: str = "texture",
) -> list[str]:
    """Write ``num_videos`` mp4 files ``video_0000.mp4 ...`` and return their paths.

    ``fps`` may be a list: video ``i`` uses ``fps[i % len(fps)]`` (variable-FPS training data).
    ``seconds`` may be a ``(lo, hi)`` range, drawn per video. Sizes must be even (H.264).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rates = [float(fps)] if isinstance(fps, (int, float)) else [float(f) for f in fps]
    paths = []
    for i in range(num_videos):
        rng = np.random.default_rng([seed, i])
        secs = float(seconds) if isinstance(seconds, (int, float)) else float(rng.uniform(*seconds))
        rate = rates[i % len(rates)]
        frames = make_moving_objects_video(
            secs, rate, size, num_objects, seed=int(rng.integers(2**31)), gravity=gravity,
            background=background,
        )
        paths.append(write_video(out / f"video_{i:04d}.mp4", frames, rate))
    return paths
