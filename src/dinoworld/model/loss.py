"""Training objective (paper Eq. 6), the copy-last and context-mean baselines, and self-fed prediction."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .attention import sees

#: Smooth-L1 transition point of the paper (App. A.2).
BETA = 0.1


def prediction_loss(pred: torch.Tensor, target: torch.Tensor, beta: float = BETA) -> torch.Tensor:
    """Element-wise smooth L1 (β = 0.1) averaged over every predicted token and channel."""
    return F.smooth_l1_loss(pred.float(), target.float(), beta=beta)


def copy_last_prediction(context: torch.Tensor, context_times: torch.Tensor, query_times: torch.Tensor,
                         context_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The copy-last baseline: each query gets the latest real context frame strictly before it
    (frame 0 when there is none). context ``(B, T, H, W, D)``, times ``(B, T)`` / ``(B, Tq)``,
    ``context_mask (B, T)`` (False = padding) -> ``(B, Tq, H, W, D)``."""
    real = torch.ones_like(context_times, dtype=torch.bool) if context_mask is None else context_mask
    earlier = sees(context_times[:, None, :], real[:, None, :], query_times[:, :, None])  # (B, Tq, T)
    idx = torch.where(earlier, context_times[:, None, :].double(), -torch.inf).argmax(dim=-1)  # (B, Tq)
    return torch.gather(context, 1, idx[:, :, None, None, None].expand(-1, -1, *context.shape[2:]))


def context_mean_prediction(context: torch.Tensor, query_times: torch.Tensor) -> torch.Tensor:
    """The hedging baseline: every query gets the mean of the context frames ``(B, T, H, W, D)``
    -> ``(B, Tq, H, W, D)``. A model that beats copy-last only by blurring towards the mean does
    not beat this one."""
    mean = context.mean(dim=1, keepdim=True)
    return mean.expand(-1, query_times.shape[1], *mean.shape[2:])


def running_mean_prediction(frames: torch.Tensor) -> torch.Tensor:
    """The context-mean baseline under teacher forcing: frame ``t + 1`` of ``frames (B, T, ...)`` gets
    the mean of frames ``1..t`` -> ``(B, T - 1, ...)`` (frame 2 gets frame 1, as copy-last does)."""
    counts = torch.arange(1, frames.shape[1], device=frames.device, dtype=frames.dtype)
    return frames.cumsum(dim=1)[:, :-1] / counts.view(1, -1, *([1] * (frames.dim() - 2)))


def teacher_forced_baseline_losses(frames: torch.Tensor) -> torch.Tensor:
    """``(2,)``: the losses of copy-last and of the running context mean (:func:`running_mean_prediction`)
    at predicting frames 2..T of ``frames (B, T, ...)``, in whatever feature space ``frames`` are given."""
    frames = frames.float()
    target = frames[:, 1:]
    return torch.stack([prediction_loss(frames[:, :-1], target),
                        prediction_loss(running_mean_prediction(frames), target)])


def self_fed_prediction(predictor, context: torch.Tensor, context_times: torch.Tensor, query_times: torch.Tensor,
                        actions: torch.Tensor | None = None) -> torch.Tensor:
    """Query frames predicted one after another, each fed back as context for the next (no teacher
    forcing after ``context``), as a planner rolls out; differentiable.

    ``predictor(context, context_times, query_times, actions)`` as :class:`Predictor`; context
    ``(B, T, H, W, D)`` at ``context_times (B, T)``, ``query_times (B, Tq)``, actions ``(B, Tq, A)``
    (action k leads to query frame k) -> ``(B, Tq, H, W, D)``. The whole growing context goes through
    the plain forward pass at every step (Tq predictor calls).
    """
    preds = []
    for k in range(query_times.shape[1]):
        t = query_times[:, k : k + 1]
        pred = predictor(context, context_times, t, None if actions is None else actions[:, k : k + 1])
        preds.append(pred)
        context = torch.cat([context, pred.to(context.dtype)], dim=1)
        context_times = torch.cat([context_times, t], dim=1)
    return torch.cat(preds, dim=1)
