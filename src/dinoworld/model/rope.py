"""3-axial rotary position embeddings (paper §3.2 and App. A.1).

Every token, context or query, carries a position ``(t, y, x)``: ``t`` is the frame's
presentation timestamp in **seconds**, ``y, x`` are patch centres on a ``[-1, 1]`` grid, so a
model runs at any resolution and frame rate. Per attention head, the first ``6 * num_freqs``
channels are split in three chunks (t, y, x); each chunk of ``2 * num_freqs`` channels is
rotated with ``num_freqs`` angular periods spaced log-uniformly in ``[min_period, max_period]``.
With the paper's 64-d heads and 10 periods in ``[1e-2, 1e2]`` this rotates 60 channels and leaves
the trailing 4 untouched.

Choice (the paper calls the values of Eq. 5 "angular periods"): a coordinate ``p`` is turned into
the angle ``2π p / period``, so one period is the coordinate distance of a full turn.
Within a chunk, channel ``i`` is paired with channel ``i + num_freqs`` ("rotate half" layout).
"""

from __future__ import annotations

import math

import torch


def rope_periods(num_freqs: int = 10, min_period: float = 1e-2, max_period: float = 1e2) -> torch.Tensor:
    """Angular periods ``10 ** linspace(log10(min), log10(max), num_freqs)``.  # (F,)"""
    return torch.logspace(math.log10(min_period), math.log10(max_period), num_freqs, dtype=torch.float64)


def grid_coords(height: int, width: int) -> torch.Tensor:
    """Patch-centre coordinates on ``[-1, 1]``: ``(H*W, 2)`` rows of ``(y, x)`` in row-major order."""
    ys = (torch.arange(height, dtype=torch.float64) * 2 + 1) / height - 1
    xs = (torch.arange(width, dtype=torch.float64) * 2 + 1) / width - 1
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([yy.reshape(-1), xx.reshape(-1)], dim=-1)


def token_coords(times: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Coordinates ``(t, y, x)`` of every token of frames at ``times``.

    times: ``(B, T)`` seconds -> ``(B, T*H*W, 3)`` float64, frame-major then row-major.
    """
    b, t = times.shape
    hw = grid_coords(height, width).to(times.device)  # (HW, 2)
    tt = times.to(torch.float64)[:, :, None, None].expand(b, t, height * width, 1)
    sp = hw[None, None].expand(b, t, height * width, 2)
    return torch.cat([tt, sp], dim=-1).reshape(b, t * height * width, 3)


def rope_angles(coords: torch.Tensor, periods: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotation angles for each token.

    coords: ``(B, N, 3)``; periods: ``(F,)`` -> cos, sin of shape ``(B, 1, N, 3, F)`` float32,
    ready to broadcast over attention heads. Angles are computed in float64 (float32 on devices
    without float64) so large timestamps keep their precision.
    """
    dtype = torch.float32 if coords.device.type == "mps" else torch.float64
    ang = coords.to(dtype)[..., None] * (2 * math.pi / periods.to(coords.device, dtype))  # (B, N, 3, F)
    return ang.cos().float().unsqueeze(1), ang.sin().float().unsqueeze(1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the first ``6F`` channels of each head of ``x`` ``(B, heads, N, head_dim)``.

    cos, sin: ``(B, 1, N, 3, F)`` from :func:`rope_angles`. Channels past ``6F`` pass unchanged.
    """
    f = cos.shape[-1]
    rot, rest = x[..., : 6 * f], x[..., 6 * f :]
    rot = rot.reshape(*rot.shape[:-1], 3, 2, f)  # (B, h, N, axis, half, F)
    a, b = rot[..., 0, :], rot[..., 1, :]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    out = torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-2)
    return torch.cat([out.reshape(*x.shape[:-1], 6 * f), rest], dim=-1)
