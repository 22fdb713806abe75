"""``pixel-pyramid``: a weight-free STAND-IN encoder for offline demos and tests.

It is not a learned representation. Each 14-px patch gets the colours of the frame blurred at
three coarse scales (Gaussian σ = W/16, W/8, W/4), sampled on a 2×2 sub-grid of the patch:
3 scales × 3 colours × 4 samples = 36 channels. Coarse blur makes feature distances fall smoothly
with the distance between objects, which planning needs (SPEC §1: raw pixels give a flat cost
landscape once objects stop overlapping; σ ≈ W/4 gives ~95 % CEM success on Wall with a true model).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import IMAGENET_MEAN, IMAGENET_STD, FrozenEncoder

#: blur σ as a fraction of the frame width
SIGMAS = (1 / 16, 1 / 8, 1 / 4)
WORK_WIDTH = 64  # blur is computed on a copy resized to this width


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(B, C, H, W)`` with edge replication."""
    radius = max(1, int(3 * sigma))
    k = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (k / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    rows, cols = k.view(1, 1, 1, -1).expand(c, 1, 1, -1), k.view(1, 1, -1, 1).expand(c, 1, -1, 1)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), rows, groups=c)
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), cols, groups=c)


class PixelPyramidEncoder(FrozenEncoder):
    name = "pixel-pyramid"
    patch_size = 14
    dim = 3 * 3 * 4
    pretrained = False

    def __init__(self) -> None:
        super().__init__(IMAGENET_MEAN, IMAGENET_STD)
        self.freeze()

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.grid(x.shape[2], x.shape[3])
        work = (max(4, round(x.shape[2] * WORK_WIDTH / x.shape[3])), WORK_WIDTH)
        small = F.interpolate(x, size=work, mode="area")
        levels = []
        for s in SIGMAS:
            blurred = gaussian_blur(small, s * WORK_WIDTH)
            sub = F.interpolate(blurred, size=(2 * h, 2 * w), mode="bilinear", align_corners=False)
            levels.append(F.pixel_unshuffle(sub, 2))  # (B, 12, h, w)
        return torch.cat(levels, dim=1).permute(0, 2, 3, 1)
