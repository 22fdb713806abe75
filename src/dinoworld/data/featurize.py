"""A collated batch -> features on the device, encoding raw frames with the frozen encoder."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import UserError


class Featurizer:
    """Turns a collated batch into ``(features (B,T,H,W,D), times (B,T), actions or None)`` on device.

    Batches from a feature cache carry ``features``; batches of video or trajectory clips carry
    ``frames (B, T, 3, H, W)``, encoded here by ``encoder`` (a :class:`FrozenEncoder`, or any callable
    ``(N,3,H,W), dtype=... -> (N,h,w,D)``). Features come out in ``dtype`` (bf16 for a bf16 predictor).
    """

    def __init__(self, encoder: Any, device: torch.device, dtype: torch.dtype = torch.float32,
                 actions: bool = True) -> None:
        self.encoder, self.device, self.dtype = encoder, device, dtype  # dtype: of the features handed out
        self.actions = actions  # False: batches' actions are dropped (action-free training on trajectories)

    def __call__(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        times = batch["times"].to(self.device, torch.float32)
        actions = batch.get("actions") if self.actions else None
        actions = None if actions is None else actions.to(self.device, torch.float32)
        if "features" in batch:
            return batch["features"].to(self.device, self.dtype), times, actions
        if self.encoder is None:
            raise UserError("this data has raw frames but no encoder was loaded")
        frames = batch["frames"].to(self.device, non_blocking=True)  # (B, T, 3, H, W)
        b, t = frames.shape[:2]
        feats = self.encoder(frames.flatten(0, 1), dtype=self.dtype)
        return feats.view(b, t, *feats.shape[1:]), times, actions
