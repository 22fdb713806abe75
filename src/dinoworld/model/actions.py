"""The action space of an action-conditioned model: frameskip grouping and normalisation.

An episode has actions ``a_0 .. a_{L-1}`` (``a_t`` leads from frame ``t`` to frame ``t+1``). With
frameskip ``f`` the model steps from frame ``s`` to frame ``s+f``, and its action is the
concatenation ``[a_s, .., a_{s+f-1}]`` (width ``f·A``; raw action ``j`` of the group in columns
``j·A .. (j+1)·A``). Each raw action dimension is normalised with the mean / std of the training
episodes' actions, tiled ``f`` times for the concatenation.

:class:`ActionSpace` holds those statistics as buffers; a checkpoint records them in its metadata,
so a loaded model normalises (and, for planning, de-normalises) its own actions.

Time: trajectories have no wall clock; frame ``i`` is at ``i / CONTROL_RATE_HZ`` seconds with a
nominal 10 Hz for every environment, so with ``f = 5`` model steps are 0.5 s apart.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..errors import UserError

#: nominal control rate of every environment: frame ``i`` is at ``i / 10`` seconds
CONTROL_RATE_HZ = 10.0


def model_action_dim(raw_dim: int, frameskip: int) -> int:
    """Width of one model action: ``frameskip`` raw actions of ``raw_dim`` each, concatenated."""
    return int(frameskip) * int(raw_dim)


def group_actions(actions: np.ndarray | torch.Tensor, frameskip: int):
    """Raw actions ``(..., n·f, A)`` -> model actions ``(..., n, f·A)`` (consecutive ones concatenated)."""
    *lead, n, a = actions.shape
    if n % frameskip:
        raise UserError(f"{n} actions cannot be grouped by frameskip {frameskip}")
    return actions.reshape(*lead, n // frameskip, frameskip * a)


def ungroup_actions(actions: np.ndarray | torch.Tensor, frameskip: int):
    """Model actions ``(..., n, f·A)`` -> raw actions ``(..., n·f, A)`` (inverse of :func:`group_actions`)."""
    *lead, n, fa = actions.shape
    if fa % frameskip:
        raise UserError(f"model actions of width {fa} do not split into {frameskip} raw actions")
    return actions.reshape(*lead, n * frameskip, fa // frameskip)


def normalize_actions(actions: np.ndarray | torch.Tensor, mean: Sequence[float], std: Sequence[float]):
    """Normalise model actions ``(..., f·A)`` (or raw ``(..., A)``) with per-raw-dimension stats."""
    mean_a, std_a = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    reps = actions.shape[-1] // mean_a.shape[0]
    if reps * mean_a.shape[0] != actions.shape[-1]:
        raise UserError(f"actions of width {actions.shape[-1]} do not fit {mean_a.shape[0]}-d action stats")
    m, s = np.tile(mean_a, reps), np.tile(std_a, reps)
    if isinstance(actions, torch.Tensor):
        return (actions - actions.new_tensor(m)) / actions.new_tensor(s)
    return ((actions - m) / s).astype(np.float32)


class ActionSpace(nn.Module):
    """Raw env actions <-> normalised model actions of one checkpoint.

    ``mean`` / ``std`` are per raw action dimension (buffers, so ``.to(device)`` moves them).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], frameskip: int,
                 control_rate_hz: float = CONTROL_RATE_HZ, env: str | None = None) -> None:
        super().__init__()
        if len(mean) != len(std) or len(mean) == 0:
            raise UserError(f"action statistics need one mean and one std per dimension, "
                            f"got {len(mean)} and {len(std)}")
        if frameskip < 1:
            raise UserError(f"frameskip must be >= 1, got {frameskip}")
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32))
        self.frameskip, self.control_rate_hz, self.env = int(frameskip), float(control_rate_hz), env

    @property
    def raw_dim(self) -> int:
        return int(self.mean.numel())

    @property
    def model_dim(self) -> int:
        """Width of one model action: ``frameskip · raw_dim``."""
        return model_action_dim(self.raw_dim, self.frameskip)

    @property
    def step_seconds(self) -> float:
        """Time between two model frames."""
        return self.frameskip / self.control_rate_hz

    def normalize(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw actions ``(..., n·f, A)`` -> normalised model actions ``(..., n, f·A)``."""
        raw = raw.to(self.mean.device, torch.float32)
        return group_actions((raw - self.mean) / self.std, self.frameskip)

    def denormalize(self, actions: torch.Tensor) -> torch.Tensor:
        """Normalised model actions ``(..., n, f·A)`` -> raw actions ``(..., n·f, A)``."""
        raw = ungroup_actions(actions.to(self.mean.device, torch.float32), self.frameskip)
        return raw * self.std + self.mean

    def clip(self, actions: torch.Tensor, low: float, high: float) -> torch.Tensor:
        """Normalised model actions ``(..., n, f·A)`` whose raw values are clipped to ``[low, high]``: the
        actions as a simulator that clips them executes them."""
        lo = ((low - self.mean) / self.std).repeat(self.frameskip)
        hi = ((high - self.mean) / self.std).repeat(self.frameskip)
        return actions.clamp(lo.to(actions), hi.to(actions))

    def extra_repr(self) -> str:
        return (f"raw_dim={self.raw_dim}, frameskip={self.frameskip}, control_rate_hz={self.control_rate_hz}, "
                f"env={self.env}")
