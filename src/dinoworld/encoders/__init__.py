"""Frozen frame encoders behind one interface: ``load_encoder(name, weights=...)``.

Every encoder maps frames ``(B, 3, H, W)`` in [0, 1] to patch tokens ``(B, H/p, W/p, D)``. Names are
the fixed ones in :data:`ENCODER_NAMES` or ``hf:<hub id or folder>`` for any `transformers` vision model.
"""

from __future__ import annotations

from typing import Any

from ..errors import UserError
from .base import FrozenEncoder

DEFAULT_ENCODER = "dinov2-b14-reg"
STANDIN_ENCODER = "pixel-pyramid"
#: the weight-free stand-ins (:mod:`.standin`); ``STANDIN_ENCODER`` is the one demos fall back to
STANDIN_ENCODERS = (STANDIN_ENCODER, "pixel-pyramid-opponent")
#: ``hf:<hub id or folder>`` names any transformers vision model whose last_hidden_state is patch tokens
HF_PREFIX = "hf:"


def _names() -> list[str]:
    dino = [f"dinov2-{s}{r}" for s in ("s14", "b14", "l14", "g14") for r in ("", "-reg")]
    dino3 = [f"dinov3-{s}" for s in ("s16", "b16", "l16")]
    return [*dino, *dino3, "siglip2-so400m14", "sd35-vae", *STANDIN_ENCODERS]


ENCODER_NAMES = _names()


def load_encoder(name: str = DEFAULT_ENCODER, weights: str | None = None, device: Any = None,
                 local_only: bool = False, weights_hint: str | None = None, **overrides: Any) -> FrozenEncoder:
    """A frozen encoder by name: one of :data:`ENCODER_NAMES` or ``hf:<hub id or folder>``.

    ``weights``: ``None`` = the released weights from the Hugging Face hub cache (downloaded when
    online; DINOv2 also finds the official torch.hub file); a local folder or file (DINOv2: also an
    official torch.hub ``.pth``); or ``"random"`` for random weights (tests only — never a silent
    fallback). ``local_only`` never touches the network. ``overrides`` change architecture
    fields (e.g. ``num_hidden_layers=1`` in tests). ``weights_hint`` is how error messages tell the
    user to give weights (each CLI verb names its own option, e.g. ``model.encoder_weights=PATH``).
    """
    if not (name in ENCODER_NAMES or name.startswith(HF_PREFIX)):
        raise UserError(f"unknown encoder {name!r}; choose one of {', '.join(ENCODER_NAMES)}, "
                        f"or {HF_PREFIX}<hub id or folder>")
    hint = {"weights_hint": weights_hint} if weights_hint else {}
    if name.startswith(HF_PREFIX):
        from .hf import HFAutoEncoder

        if overrides:
            raise UserError(f"{name}: hf: encoders take their architecture from config.json; "
                            f"drop {', '.join(overrides)}")
        enc: FrozenEncoder = HFAutoEncoder(name[len(HF_PREFIX):], weights=weights, local_only=local_only, **hint)
    elif name.startswith("dinov2-"):
        from .hf import DINOv2Encoder

        size = name.split("-")[1]
        enc = DINOv2Encoder(size, registers=name.endswith("-reg"), weights=weights, local_only=local_only,
                            **hint, **overrides)
    elif name.startswith("dinov3-"):
        from .hf import DINOv3Encoder

        enc = DINOv3Encoder(name.split("-")[1], weights=weights, local_only=local_only, **hint, **overrides)
    elif name == "siglip2-so400m14":
        from .hf import SigLIP2Encoder

        enc = SigLIP2Encoder(weights=weights, local_only=local_only, **hint, **overrides)
    elif name == "sd35-vae":
        from .vae import SD35VAEEncoder

        enc = SD35VAEEncoder(weights=weights, local_only=local_only, **hint, **overrides)
    else:
        from .standin import OpponentPyramidEncoder, PixelPyramidEncoder

        enc = OpponentPyramidEncoder() if name == "pixel-pyramid-opponent" else PixelPyramidEncoder()
    return enc.to(device) if device is not None else enc


__all__ = ["DEFAULT_ENCODER", "ENCODER_NAMES", "HF_PREFIX", "STANDIN_ENCODER", "FrozenEncoder", "load_encoder"]
