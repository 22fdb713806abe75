"""Frozen frame encoders behind one interface: ``load_encoder(name, weights=...)``.

Every encoder maps frames ``(B, 3, H, W)`` in [0, 1] to patch tokens ``(B, H/p, W/p, D)``.
"""

from __future__ import annotations

from typing import Any

from ..errors import UserError
from .base import FrozenEncoder

DEFAULT_ENCODER = "dinov2-b14-reg"
STANDIN_ENCODER = "pixel-pyramid"


def _names() -> list[str]:
    dino = [f"dinov2-{s}{r}" for s in ("s14", "b14", "l14", "g14") for r in ("", "-reg")]
    return [*dino, "siglip2-so400m14", "sd35-vae", STANDIN_ENCODER]


ENCODER_NAMES = _names()


def load_encoder(name: str = DEFAULT_ENCODER, weights: str | None = None, device: Any = None,
                 local_only: bool = False, weights_hint: str | None = None, **overrides: Any) -> FrozenEncoder:
    """A frozen encoder by name.

    ``weights``: ``None`` = the released weights from the Hugging Face hub cache (downloaded when
    online); a local folder or file; or ``"random"`` for random weights (tests only — never a
    silent fallback). ``local_only`` never touches the network. ``overrides`` change architecture
    fields (e.g. ``num_hidden_layers=1`` in tests). ``weights_hint`` is how error messages tell the
    user to give weights (each CLI verb names its own option, e.g. ``model.encoder_weights=PATH``).
    """
    if name not in ENCODER_NAMES:
        raise UserError(f"unknown encoder {name!r}; choose one of {', '.join(ENCODER_NAMES)}")
    if weights_hint:
        overrides["weights_hint"] = weights_hint
    if name.startswith("dinov2-"):
        from .hf import DINOv2Encoder

        size = name.split("-")[1]
        enc: FrozenEncoder = DINOv2Encoder(size, registers=name.endswith("-reg"), weights=weights,
                                          local_only=local_only, **overrides)
    elif name == "siglip2-so400m14":
        from .hf import SigLIP2Encoder

        enc = SigLIP2Encoder(weights=weights, local_only=local_only, **overrides)
    elif name == "sd35-vae":
        from .vae import SD35VAEEncoder

        enc = SD35VAEEncoder(weights=weights, local_only=local_only, **overrides)
    else:
        from .standin import PixelPyramidEncoder

        enc = PixelPyramidEncoder()
    return enc.to(device) if device is not None else enc


__all__ = ["DEFAULT_ENCODER", "ENCODER_NAMES", "STANDIN_ENCODER", "FrozenEncoder", "load_encoder"]
