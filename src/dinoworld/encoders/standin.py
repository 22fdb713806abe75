"""Weight-free STAND-IN encoders for offline demos, tests and CPU-scale planning.

``pixel-pyramid`` is not a learned representation. Each 14-px patch gets the colours of the frame blurred at
three coarse scales (Gaussian σ = W/16, W/8, W/4), sampled on a 2×2 sub-grid of the patch:
3 scales × 3 colours × 4 samples = 36 channels. Coarse blur makes feature distances fall smoothly
with the distance between objects, which planning needs (SPEC §1: raw pixels give a flat cost
landscape once objects stop overlapping; σ ≈ W/4 gives ~95 % CEM success on Wall with a true model).

``pixel-pyramid-opponent`` is the same pyramid on opponent colours of the raw frame (brightness,
red − green, blue − yellow) instead of ImageNet-normalised RGB. Blur weighs an object by its area, so
in RGB a small object is outweighed by large ones: moving PushT's pusher, a disc under 2 px across at
56 px, changes the features a small fraction of what moving the block as far does. In opponent colours
an object whose hue nothing else in the scene has (the blue pusher) owns most of a channel's variance,
and a predictor that standardises each channel (``PredictorConfig.standardize``, as the CPU configs do)
weighs its moves several times more (``scripts/pusht_cost_weights.py`` measures both). Same size (36
channels), same tokens.
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


#: opponent colours of [0, 1] RGB, one row each: brightness, red − green, blue − yellow
OPPONENT = ((1 / 3, 1 / 3, 1 / 3), (1.0, -1.0, 0.0), (-0.5, -0.5, 1.0))


class PixelPyramidEncoder(FrozenEncoder):
    name = "pixel-pyramid"
    patch_size = 14
    dim = 3 * 3 * 4
    pretrained = False

    def __init__(self) -> None:
        super().__init__(IMAGENET_MEAN, IMAGENET_STD)
        self.freeze()

    def colours(self, x: torch.Tensor) -> torch.Tensor:
        """The three colour planes the pyramid blurs (here: the normalised RGB as it comes)."""
        return x

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.grid(x.shape[2], x.shape[3])
        x = self.colours(x)
        work = (max(4, round(x.shape[2] * WORK_WIDTH / x.shape[3])), WORK_WIDTH)
        small = F.interpolate(x, size=work, mode="area")
        levels = []
        for s in SIGMAS:
            blurred = gaussian_blur(small, s * WORK_WIDTH)
            sub = F.interpolate(blurred, size=(2 * h, 2 * w), mode="bilinear", align_corners=False)
            levels.append(F.pixel_unshuffle(sub, 2))  # (B, 12, h, w)
        return torch.cat(levels, dim=1).permute(0, 2, 3, 1)


class OpponentPyramidEncoder(PixelPyramidEncoder):
    name = "pixel-pyramid-opponent"

    def __init__(self) -> None:
        FrozenEncoder.__init__(self, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # raw [0, 1] RGB reaches colours()
        self.register_buffer("opponent", torch.tensor(OPPONENT), persistent=False)
        self.freeze()

    def colours(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("oc,bchw->bohw", self.opponent.to(x.dtype), x)
