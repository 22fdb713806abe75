"""*Surprise* of a video under a world model.

Slide over the video; at each step the model gets ``context`` frames at their actual timestamps and
predicts the next frame (or the frame ``gap`` seconds after the last context frame); the surprise of
the step is the mean absolute error between that prediction and the encoded frame. A video's surprise
is the mean (or the max) over its steps. The copy-last reference (the previous context frame as the
prediction) is computed on the same steps and needs no model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...data.video import CorruptVideo, resize_crop
from ...errors import UserError


@dataclass
class Surprise:
    """Per-step surprise of one video: the model's, copy-last's and the context mean's, at each predicted frame."""

    curve: np.ndarray  # (S,) model L1 per step
    copy_last: np.ndarray  # (S,) copy-last L1 per step
    target_frames: np.ndarray  # (S,) frame number of each predicted frame (in the whole video)
    target_times: np.ndarray  # (S,) its actual timestamp, seconds
    context_mean: np.ndarray | None = None  # (S,) L1 of the mean of the context frames (the hedging baseline)

    def stat(self, curve: str = "curve", how: str = "mean") -> float:
        """``how`` (``mean`` or ``max``) over the steps of one curve: ``curve`` (the model),
        ``copy_last`` or ``context_mean``."""
        return float(getattr(getattr(self, curve), how)())


#: a pair is scored on each curve (key prefix, Surprise field) with each aggregation (key suffix, how)
CURVES = (("", "curve"), ("copy_last_", "copy_last"), ("context_mean_", "context_mean"))
AGGREGATIONS = (("", "mean"), ("_max", "max"))


PredictFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def window_targets(times: np.ndarray, context: int, stride: int = 1,
                   gap: float | None = None) -> tuple[np.ndarray, int]:
    """Target frame indices of the sliding windows, and the gap in frames between the last context
    frame and the target (1 = the next frame; ``gap`` seconds are rounded to whole frames)."""
    n = len(times)
    k = 1
    if gap is not None and n > 1:
        dt = float(np.median(np.diff(times)))
        k = max(1, int(round(gap / dt))) if dt > 0 else 1
    first = context - 1 + k
    return np.arange(first, n, max(1, stride)), k


def surprise_from_features(feats: torch.Tensor, times: np.ndarray | torch.Tensor, predict: PredictFn | None,
                           context: int = 4, stride: int = 1, gap: float | None = None,
                           batch_size: int = 32) -> Surprise:
    """Sliding-window surprise from encoded frames ``feats (T, h, w, D)`` at ``times (T,)`` seconds.

    ``predict(context (B, C, h, w, D), context_times (B, C), query_times (B, 1)) -> (B, 1, h, w, D)``;
    ``None`` gives copy-last only (``curve`` = copy-last). Windows are batched ``batch_size`` at a time.
    """
    if context < 1:
        raise UserError(f"--context must be >= 1, got {context}")
    t = torch.as_tensor(np.asarray(times, dtype=np.float64), dtype=torch.float32)
    targets, k = window_targets(np.asarray(times, dtype=np.float64), context, stride, gap)
    if len(targets) == 0:
        raise CorruptVideo(f"too short: {len(t)} frames, a window needs {context + k}")
    offs = torch.arange(-(context - 1 + k), -k + 1)  # (C,) context offsets from the target
    curve, copy, hedge = [], [], []
    for s in range(0, len(targets), batch_size):
        tgt = torch.as_tensor(targets[s : s + batch_size])  # (B,)
        cidx = tgt[:, None] + offs[None]  # (B, C)
        ctx, ctimes = feats[cidx], t[cidx]  # (B, C, h, w, D), (B, C)
        truth = feats[tgt].float()  # (B, h, w, D)
        last = ctx[:, -1].float()
        copy.append((last - truth).abs().flatten(1).mean(1))
        hedge.append((ctx.float().mean(1) - truth).abs().flatten(1).mean(1))
        if predict is not None:
            pred = predict(ctx, ctimes.to(ctx.device), t[tgt][:, None].to(ctx.device))[:, 0].float()
            curve.append((pred - truth).abs().flatten(1).mean(1))
    cl = torch.cat(copy).cpu().numpy().astype(np.float64)
    cv = torch.cat(curve).cpu().numpy().astype(np.float64) if curve else cl.copy()
    cm = torch.cat(hedge).cpu().numpy().astype(np.float64)
    return Surprise(cv, cl, targets, np.asarray(times, dtype=np.float64)[targets], cm)


def video_surprise(wm: Any, frames: np.ndarray, times: np.ndarray, resolution: int, context: int = 4,
                   stride: int = 1, gap: float | None = None, batch_size: int = 32,
                   copy_last_only: bool = False) -> Surprise:
    """Encode ``frames (T, H, W, 3)`` uint8 at ``resolution`` with ``wm``'s encoder and score them."""
    x = resize_crop(frames, (resolution, resolution))  # (T, 3, r, r)
    feats = wm.encode(x[None], batch_size=batch_size)[0]  # (T, h, w, D)
    predict = None if copy_last_only else wm.predict
    return surprise_from_features(feats, times, predict, context, stride, gap, batch_size)
