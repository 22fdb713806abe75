"""DINO-world: a latent video world model on frozen DINOv2 features.

Public surface (stable names)::

    from dinoworld import load_encoder, build_predictor
    enc = load_encoder("dinov2-b14-reg")            # frozen, frames (B,3,H,W) in [0,1] -> (B,H/14,W/14,768)
    pred = build_predictor("base")                  # cross-attention predictor, 86M parameters
    out = pred(context, context_times, query_times) # (B, Tq, H, W, D)

Heavy imports happen lazily, on first attribute access.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_encoder": ("dinoworld.encoders", "load_encoder"),
    "build_predictor": ("dinoworld.model", "build_predictor"),
    "Predictor": ("dinoworld.model", "Predictor"),
    "PredictorConfig": ("dinoworld.model", "PredictorConfig"),
    "WorldModel": ("dinoworld.model", "WorldModel"),
    "UserError": ("dinoworld.errors", "UserError"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'dinoworld' has no attribute {name!r}")
    import importlib

    mod, attr = _LAZY[name]
    return getattr(importlib.import_module(mod), attr)


__all__ = list(_LAZY)
