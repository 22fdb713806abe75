"""A collated batch -> features on the device, encoding raw frames with the frozen encoder."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import UserError


class Featurizer:
    """Turns a collated batch into ``(features (B,T,H,W,D), times (B,T), actions or None)`` on device.

    Batches from a feature cache carry ``features``; batches of video or trajectory clips carry
    ``frames (B, T, 3, H, W)``, encoded here by ``encoder`` (any callable ``(N,3,H,W) -> (N,h,w,D)``).
    """

    def __init__(self, encoder: Any, device: torch.device) -> None:
        self.encoder, self.device = encoder, device

    def __call__(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        times = batch["times"].to(self.device, torch.float32)
        actions = batch.get("actions")
        actions = None if actions is None else actions.to(self.device, torch.float32)
        if "features" in batch:
            return batch["features"].to(self.device, torch.float32), times, actions
        if self.encoder is None:
            raise UserError("this data has raw frames but no encoder was loaded")
        frames = batch["frames"].to(self.device, non_blocking=True)  # (B, T, 3, H, W)
        b, t = frames.shape[:2]
        feats = self.encoder(frames.flatten(0, 1))
        return feats.view(b, t, *feats.shape[1:]), times, actions
