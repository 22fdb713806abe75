"""The one interface every frozen frame encoder follows.

An encoder maps RGB frames ``(B, 3, H, W)`` in ``[0, 1]`` to patch tokens ``(B, H/p, W/p, D)``.
Normalisation happens inside. Encoders are frozen: always in eval mode, no parameter requires a
gradient, forward runs under ``torch.inference_mode`` and, on CUDA, under bf16 autocast (output float32 unless asked
for bf16).
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from ..errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FrozenEncoder(nn.Module):
    """Base class: subclasses implement :meth:`tokens` on normalised frames."""

    #: registry name, e.g. ``"dinov2-b14-reg"``
    name: str = "encoder"
    #: side of one patch in pixels (the token grid is ``H/patch_size × W/patch_size``)
    patch_size: int = 14
    #: token width D
    dim: int = 0
    #: False for stand-ins that do not learn features (demo and tests only)
    pretrained: bool = True

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.autocast_dtype = torch.bfloat16

    def freeze(self) -> "FrozenEncoder":
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> "FrozenEncoder":  # frozen means frozen
        return super().train(False)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """Token grid for an input size; a clear error when the size does not fit the patch size."""
        p = self.patch_size
        if height % p or width % p or height <= 0 or width <= 0:
            raise UserError(
                f"{self.name} needs frame height and width that are multiples of {p} px, got {height}x{width}; "
                f"resize to e.g. {max(p, round(height / p) * p)}x{max(p, round(width / p) * p)}"
            )
        return height // p, width // p

    def tokens(self, x: torch.Tensor) -> torch.Tensor:  # normalised (B, 3, H, W) -> (B, h, w, D)
        raise NotImplementedError

    @torch.no_grad()
    def forward(self, frames: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """``(B, 3, H, W)`` in [0, 1] -> ``(B, H/p, W/p, D)`` in ``dtype`` (bf16 when the predictor runs in bf16).

        Runs under ``inference_mode``; the result is a fresh ordinary tensor, usable in autograd graphs."""
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise UserError(f"{self.name} expects frames of shape (B, 3, H, W), got {tuple(frames.shape)}")
        self.grid(frames.shape[2], frames.shape[3])
        x = (frames.to(self.mean.device, torch.float32) - self.mean) / self.std
        amp = (
            torch.autocast("cuda", dtype=self.autocast_dtype)
            if x.device.type == "cuda" and self.autocast_dtype is not None
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), amp:
            out = self.tokens(x)
        return out.to(dtype, copy=True)  # outside inference_mode: an ordinary tensor
