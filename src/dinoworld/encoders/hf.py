"""Encoders built on `transformers`: DINOv2 (with or without registers) and SigLIP2."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from .base import IMAGENET_MEAN, IMAGENET_STD, FrozenEncoder

RANDOM = "random"
#: how a library caller names the encoder weights; each CLI verb passes its own option instead
WEIGHTS_HINT = "--encoder-weights PATH (Python: weights=PATH)"

#: name -> (hidden, layers, heads, swiglu, hub suffix)
DINOV2_ARCH = {
    "s14": (384, 12, 6, False, "small"),
    "b14": (768, 12, 12, False, "base"),
    "l14": (1024, 24, 16, False, "large"),
    "g14": (1536, 40, 24, True, "giant"),
}


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set, in the environment or as
    huggingface_hub read it at import."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except ImportError:
        return True


def hub_unreachable(timeout: float = 5.0) -> str | None:
    """None if one TCP connection to the hub endpoint succeeds, else why not (no retries: offline
    machines would otherwise spend half a minute in the hub client's back-off)."""
    import socket
    from urllib.parse import urlparse
    from urllib.request import getproxies, proxy_bypass

    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    proxy = getproxies().get(url.scheme)
    if proxy and not proxy_bypass(url.hostname or ""):
        url = urlparse(proxy if "://" in proxy else f"http://{proxy}")  # behind a proxy: reach the proxy
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "", port), timeout=timeout).close()
    except OSError as err:
        return f"{url.hostname}:{port} unreachable: {err}"
    return None


def load_hf_weights(model_cls: Any, config: Any, weights: str | os.PathLike | None, default_id: str, name: str,
                    local_only: bool = False, weights_hint: str = WEIGHTS_HINT):
    """Build ``model_cls`` from a hub id (cache), a local folder or file, or random weights.

    ``weights``: ``None`` -> ``default_id`` from the hub cache (downloaded if the hub is reachable);
    ``"random"`` -> random initialisation (tests only); a folder -> ``from_pretrained(folder)``;
    a ``.safetensors``/``.bin``/``.pt`` file -> a state dict with transformers key names.
    ``local_only`` never touches the network (the hub cache or local paths only); neither does a
    set ``HF_HUB_OFFLINE``. A hub id missing from the cache fails at once when the hub cannot be
    reached. ``weights_hint`` is the option the error messages tell the user to pass.
    """
    if weights == RANDOM:
        return model_cls(config)
    source = default_id if weights is None else str(weights)
    path = Path(source).expanduser()
    looks_local = source.startswith((".", "/", "~")) or os.sep in source and source.count("/") != 1
    if looks_local and not path.exists():
        raise UserError(f"{name} weights path {path} does not exist; pass an existing folder or file with "
                        f"{weights_hint}")
    try:
        if path.is_file():
            model = model_cls(config)
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                sd = load_file(str(path))
            else:
                sd = torch.load(str(path), map_location="cpu", weights_only=True)
            sd = {k.removeprefix(model.base_model_prefix + "."): v for k, v in sd.items()}
            missing, unexpected = model.load_state_dict(sd, strict=False)
            if missing:
                raise UserError(
                    f"{path} is missing {len(missing)} weights of {name} (e.g. {missing[0]}); "
                    "pass a transformers-format checkpoint (folder with config.json + model.safetensors)"
                )
            return model
        if path.exists():
            return model_cls.from_pretrained(str(path), local_files_only=True)
        try:  # the hub cache first: no network when the weights are there
            return model_cls.from_pretrained(source, local_files_only=True)
        except (OSError, ValueError):
            if local_only or hub_offline():
                raise
        why = hub_unreachable()
        if why:
            raise UserError(
                f"{name} weights are not in the hub cache and the hub cannot be reached ({why}); download them "
                f"elsewhere (`huggingface-cli download {default_id}`) and pass the folder with {weights_hint}"
            )
        return model_cls.from_pretrained(source)
    except UserError:
        raise
    except (OSError, ValueError) as err:
        where = f"local path {path}" if path.exists() else f"hub id {source!r}"
        raise UserError(
            f"could not load {name} weights from {where} ({type(err).__name__}); "
            "with no network, download them elsewhere (`huggingface-cli download "
            f"{default_id}`) and pass the folder with {weights_hint}"
        ) from None


class DINOv2Encoder(FrozenEncoder):
    """DINOv2 ViT/14: last block after the final LayerNorm; CLS and registers dropped.

    Any height/width that is a multiple of 14 works (position embeddings are interpolated by
    `transformers`).
    """

    patch_size = 14

    def __init__(self, size: str = "b14", registers: bool = True, weights: str | None = None,
                 local_only: bool = False, weights_hint: str = WEIGHTS_HINT, **overrides: Any):
        super().__init__(IMAGENET_MEAN, IMAGENET_STD)
        from transformers import Dinov2Config, Dinov2Model, Dinov2WithRegistersConfig, Dinov2WithRegistersModel

        if size not in DINOV2_ARCH:
            raise UserError(f"unknown DINOv2 size {size!r}; choose one of {', '.join(DINOV2_ARCH)}")
        hidden, layers, heads, swiglu, suffix = DINOV2_ARCH[size]
        arch = dict(
            hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=4 * hidden,
            use_swiglu_ffn=swiglu, patch_size=14, image_size=518, layerscale_value=1.0,
        )
        arch.update(overrides)
        if registers:
            cfg, cls, hub = Dinov2WithRegistersConfig(num_register_tokens=4, **arch), Dinov2WithRegistersModel, (
                f"facebook/dinov2-with-registers-{suffix}"
            )
        else:
            cfg, cls, hub = Dinov2Config(**arch), Dinov2Model, f"facebook/dinov2-{suffix}"
        self.name = f"dinov2-{size}{'-reg' if registers else ''}"
        self.model = load_hf_weights(cls, cfg, weights, hub, self.name, local_only, weights_hint)
        self.dim = self.model.config.hidden_size
        self.num_prefix = 1 + (self.model.config.num_register_tokens if registers else 0)
        self.freeze()

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.grid(x.shape[2], x.shape[3])
        out = self.model(pixel_values=x).last_hidden_state  # (B, prefix + h*w, D), after final LayerNorm
        return out[:, self.num_prefix :].reshape(x.shape[0], h, w, -1)


class SigLIP2Encoder(FrozenEncoder):
    """SigLIP2 SO400M/14 vision tower (1152-d tokens, mean = std = 0.5), for the encoder ablation."""

    name = "siglip2-so400m14"
    patch_size = 14

    def __init__(self, weights: str | None = None, local_only: bool = False, weights_hint: str = WEIGHTS_HINT,
                 **overrides: Any):
        super().__init__((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
        from transformers import SiglipVisionConfig, SiglipVisionModel

        arch = dict(hidden_size=1152, num_hidden_layers=27, num_attention_heads=16, intermediate_size=4304,
                    patch_size=14, image_size=224)
        arch.update(overrides)
        self.model = load_hf_weights(
            SiglipVisionModel, SiglipVisionConfig(**arch), weights, "google/siglip2-so400m-patch14-224", self.name,
            local_only, weights_hint,
        )
        self.dim = self.model.config.hidden_size
        self.freeze()

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.grid(x.shape[2], x.shape[3])
        size = self.model.config.image_size
        out = self.model(pixel_values=x, interpolate_pos_encoding=(x.shape[2], x.shape[3]) != (size, size))
        return out.last_hidden_state.reshape(x.shape[0], h, w, -1)
