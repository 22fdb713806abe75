"""Stable Diffusion 3.5 VAE encoder for the paper's encoder ablation (needs ``dinoworld[vae]``).

The VAE has 8-px patches and 16 channels; the paper concatenates 2×2 neighbouring latents into
one 64-d token with an effective 16-px patch, which is what :meth:`tokens` returns.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import UserError
from .base import FrozenEncoder
from .hf import RANDOM, WEIGHTS_HINT, load_hf_weights

SD35_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=16, layers_per_block=2,
    down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
    block_out_channels=[128, 256, 512, 512], use_quant_conv=False, use_post_quant_conv=False,
    scaling_factor=1.5305, shift_factor=0.0609, sample_size=1024,
)


class SD35VAEEncoder(FrozenEncoder):
    name = "sd35-vae"
    patch_size = 16

    def __init__(self, weights: str | None = None, local_only: bool = False, weights_hint: str = WEIGHTS_HINT,
                 **overrides: Any):
        super().__init__((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # VAE input in [-1, 1]
        try:
            from diffusers import AutoencoderKL
        except ImportError:
            raise UserError("the sd35-vae encoder needs diffusers: pip install 'dinoworld[vae]'") from None
        arch = {**SD35_VAE, **overrides}

        class _VAE(AutoencoderKL):  # from_pretrained of the "vae" subfolder of the SD3.5 repo
            @classmethod
            def from_pretrained(cls, source: str, **kw: Any):
                sub = {} if source != "stabilityai/stable-diffusion-3.5-medium" else {"subfolder": "vae"}
                return AutoencoderKL.from_pretrained(source, **sub, **kw)

        if weights == RANDOM:
            self.model = AutoencoderKL(**arch)
        else:
            self.model = load_hf_weights(_VAE, None, weights, "stabilityai/stable-diffusion-3.5-medium", self.name,
                                         local_only, weights_hint)
        self.dim = 4 * self.model.config.latent_channels
        self.freeze()

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.model.config
        z = self.model.encode(x).latent_dist.mean  # (B, 16, H/8, W/8)
        z = (z - (cfg.shift_factor or 0.0)) * cfg.scaling_factor
        b, c, h, w = z.shape
        # 2x2 neighbours concatenated: [top-left, top-right, bottom-left, bottom-right] x 16 channels
        z = z.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 3, 5, 1)
        return z.reshape(b, h // 2, w // 2, 4 * c)
