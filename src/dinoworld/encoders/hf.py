"""Encoders built on `transformers`: DINOv2 (with or without registers), DINOv3, SigLIP2, and any
transformers vision model as ``hf:<hub id or folder>``."""

from __future__ import annotations

import inspect
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

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
#: name -> (hidden, layers, heads); ViT-S/B/L with 4 registers, RoPE, layer scale, plain GELU MLP
DINOV3_ARCH = {"s16": (384, 12, 6), "b16": (768, 12, 12), "l16": (1024, 24, 16)}


def looks_local(source: str) -> bool:
    """True when ``source`` is a local path rather than a hub id (``org/name`` has one slash)."""
    path = Path(source).expanduser()
    return path.exists() or source.startswith((".", "/", "~")) or os.sep in source and source.count("/") != 1


def in_hub_cache(repo_id: str) -> bool:
    """True when the Hugging Face hub cache holds ``repo_id``'s config.json (no network)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


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
                    local_only: bool = False, weights_hint: str = WEIGHTS_HINT,
                    convert: Callable[[dict, Any, Path], dict] | None = None):
    """Build ``model_cls`` from a hub id (cache), a local folder or file, or random weights.

    ``weights``: ``None`` -> ``default_id`` from the hub cache (downloaded if the hub is reachable);
    ``"random"`` -> random initialisation (tests only); a folder -> ``from_pretrained(folder)``;
    a ``.safetensors``/``.bin``/``.pt``/``.pth`` file -> a state dict with transformers key names, or
    any names ``convert(state_dict, model, path)`` renames to them.
    ``local_only`` never touches the network (the hub cache or local paths only); neither does a
    set ``HF_HUB_OFFLINE``. A hub id missing from the cache fails at once when the hub cannot be
    reached. ``weights_hint`` is the option the error messages tell the user to pass.
    """
    if weights == RANDOM:
        return model_cls(config)
    source = default_id if weights is None else str(weights)
    path = Path(source).expanduser()
    if looks_local(source) and not path.exists():
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
            if convert is not None:
                sd = convert(sd, model, path)
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


class TransformersViTEncoder(FrozenEncoder):
    """A `transformers` ViT whose ``last_hidden_state`` is prefix tokens (CLS, registers) followed by
    the patch grid in row-major order; :meth:`tokens` drops the prefix and returns the grid."""

    #: CLS + register tokens before the patches; None = inferred as sequence length - (H/p)*(W/p)
    num_prefix: int | None = None

    def adopt(self, model: Any, num_prefix: int | None) -> None:
        """Use ``model`` (frozen) with ``num_prefix`` prefix tokens."""
        self.model = model
        self.dim = model.config.hidden_size
        self.num_prefix = num_prefix
        # models with learned position embeddings for one size (ViT, SigLIP) interpolate them on request
        self.interpolates = "interpolate_pos_encoding" in inspect.signature(model.forward).parameters
        self.freeze()

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.grid(x.shape[2], x.shape[3])
        kwargs = {}
        if self.interpolates:
            size = self.model.config.image_size
            trained = tuple(size) if isinstance(size, (list, tuple)) else (size, size)
            kwargs["interpolate_pos_encoding"] = tuple(x.shape[2:]) != trained
        out = self.model(pixel_values=x, **kwargs).last_hidden_state  # (B, prefix + h*w, D)
        prefix = out.shape[1] - h * w if out.ndim == 3 else -1
        if prefix < 0 or self.num_prefix is not None and prefix != self.num_prefix:
            raise UserError(f"{self.name} returned tokens of shape {tuple(out.shape)} for a {h}x{w} patch grid; "
                            "an encoder needs a last_hidden_state of (batch, prefix + patches, width)")
        return out[:, prefix:].reshape(x.shape[0], h, w, -1)


class DINOv2Encoder(TransformersViTEncoder):
    """DINOv2 ViT/14: last block after the final LayerNorm; CLS and registers dropped.

    Any height/width that is a multiple of 14 works (position embeddings are interpolated by
    `transformers`). Weights may also be an official torch.hub file (``dinov2_vitb14_reg4_pretrain.pth``);
    with ``weights=None`` and the hub id not in the Hugging Face cache, the torch.hub cache is tried.
    """

    patch_size = 14

    def __init__(self, size: str = "b14", registers: bool = True, weights: str | None = None,
                 local_only: bool = False, weights_hint: str = WEIGHTS_HINT, **overrides: Any):
        super().__init__(IMAGENET_MEAN, IMAGENET_STD)
        from transformers import Dinov2Config, Dinov2Model, Dinov2WithRegistersConfig, Dinov2WithRegistersModel

        from . import torchhub

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

        def from_torch_hub(sd: dict, model: Any, path: Path) -> dict:
            if not torchhub.is_official(sd):
                return sd
            return torchhub.official_to_transformers(sd, model.config, self.name, path, set(model.state_dict()))

        hub_file = torchhub.hub_checkpoint(size, registers)
        hub_file = hub_file if weights is None and hub_file.is_file() and not in_hub_cache(hub) else None
        if hub_file is not None:
            print(f"{self.name}: {hub} is not in the Hugging Face cache; using the torch.hub checkpoint {hub_file}",
                  file=sys.stderr, flush=True)
        try:
            model = load_hf_weights(cls, cfg, hub_file or weights, hub, self.name, local_only, weights_hint,
                                    convert=from_torch_hub)
        except UserError as err:
            if weights is not None or hub_file is not None:
                raise
            raise UserError(f"{err}; there is no torch.hub checkpoint {torchhub.hub_checkpoint(size, registers)} "
                            "either") from None
        self.adopt(model, 1 + (model.config.num_register_tokens if registers else 0))


class DINOv3Encoder(TransformersViTEncoder):
    """DINOv3 ViT/16 (S, B or L; LVD-1689M): last block after the final LayerNorm; CLS and the 4
    registers dropped. Rotary position embeddings: any height/width that is a multiple of 16 works."""

    patch_size = 16

    def __init__(self, size: str = "b16", weights: str | None = None, local_only: bool = False,
                 weights_hint: str = WEIGHTS_HINT, **overrides: Any):
        super().__init__(IMAGENET_MEAN, IMAGENET_STD)
        try:
            from transformers import DINOv3ViTConfig, DINOv3ViTModel
        except ImportError:
            raise UserError("DINOv3 encoders need transformers>=4.56: pip install -U transformers") from None

        if size not in DINOV3_ARCH:
            raise UserError(f"unknown DINOv3 size {size!r}; choose one of {', '.join(DINOV3_ARCH)}")
        hidden, layers, heads = DINOV3_ARCH[size]
        arch = dict(hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
                    num_attention_heads=heads, num_register_tokens=4, patch_size=16, image_size=224,
                    layerscale_value=1.0, use_gated_mlp=False, rope_theta=100.0, layer_norm_eps=1e-5)
        arch.update(overrides)
        self.name = f"dinov3-{size}"
        model = load_hf_weights(DINOv3ViTModel, DINOv3ViTConfig(**arch), weights,
                                f"facebook/dinov3-vit{size}-pretrain-lvd1689m", self.name, local_only, weights_hint)
        self.adopt(model, 1 + model.config.num_register_tokens)


class SigLIP2Encoder(TransformersViTEncoder):
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
        self.adopt(load_hf_weights(
            SiglipVisionModel, SiglipVisionConfig(**arch), weights, "google/siglip2-so400m-patch14-224", self.name,
            local_only, weights_hint,
        ), num_prefix=0)


class _AutoModel:
    """``AutoModel`` in the shape :func:`load_hf_weights` expects: ``cls(config)`` and ``cls.from_pretrained``."""

    def __new__(cls, config: Any):
        from transformers import AutoModel

        return AutoModel.from_config(config)

    @staticmethod
    def from_pretrained(*args: Any, **kwargs: Any):
        from transformers import AutoModel

        return AutoModel.from_pretrained(*args, **kwargs)


def image_stats(*sources: str | None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``image_mean``/``image_std`` of the first ``preprocessor_config.json`` found in ``sources``
    (folders, or hub ids in the hub cache; never the network), else ImageNet's."""
    from huggingface_hub import try_to_load_from_cache

    for source in filter(None, sources):
        path = Path(source).expanduser()
        if path.is_dir():
            file: Any = path / "preprocessor_config.json"
        elif looks_local(source):
            continue
        else:
            file = try_to_load_from_cache(source, "preprocessor_config.json")
        if isinstance(file, (str, Path)) and Path(file).is_file():
            pre = json.loads(Path(file).read_text())
            mean, std = pre.get("image_mean"), pre.get("image_std")
            if isinstance(mean, list) and isinstance(std, list) and len(mean) == len(std) == 3:
                return tuple(map(float, mean)), tuple(map(float, std))
    return IMAGENET_MEAN, IMAGENET_STD


class HFAutoEncoder(TransformersViTEncoder):
    """``hf:<hub id or folder>``: any `transformers` vision model whose ``last_hidden_state`` is patch
    tokens, possibly after prefix tokens (CLS, registers), e.g. ViT, DINOv2, DINOv3, SigLIP vision towers.

    The patch size comes from the config; the prefix count is inferred per call (sequence length
    minus the patch grid); mean/std from ``preprocessor_config.json`` if there, else ImageNet's.
    ``weights`` (optional) replaces the weights of ``source``: a folder, a state-dict file, or "random".
    """

    def __init__(self, source: str, weights: str | None = None, local_only: bool = False,
                 weights_hint: str = WEIGHTS_HINT):
        name = f"hf:{source}"
        path = Path(source).expanduser()
        usage = "use hf:<hub id> or hf:<folder with config.json and weights, as written by save_pretrained>"
        if not source.strip():
            raise UserError(f"encoder {name!r} names no model; {usage}")
        if looks_local(source) and not path.is_dir():
            raise UserError(f"encoder {name}: {path} {'is not a folder' if path.exists() else 'does not exist'}; "
                            f"{usage}")
        with_config = weights == RANDOM or weights is not None and Path(weights).expanduser().is_file()
        super().__init__(*image_stats(None if weights in (None, RANDOM) else str(weights), source))
        self.name = name
        config = None
        if with_config:  # random or a state-dict file: the architecture comes from source's config.json
            from transformers import AutoConfig

            try:
                config = AutoConfig.from_pretrained(source, local_files_only=True)
            except (OSError, ValueError) as err:
                raise UserError(f"encoder {name}: cannot read the config.json of {source} ({type(err).__name__}); "
                                f"{usage}") from None
        model = load_hf_weights(_AutoModel, config, weights, source, name, local_only,
                                f"{weights_hint}, or name the folder as the encoder: hf:<folder>")
        patch = getattr(model.config, "patch_size", None)
        if isinstance(patch, (list, tuple)) and len(set(patch)) == 1:
            patch = patch[0]
        if not isinstance(patch, int):
            tower = (" (save just its vision tower, e.g. model.vision_model.save_pretrained(folder))"
                     if hasattr(model.config, "vision_config") else "")
            raise UserError(f"encoder {name}: {type(model).__name__} has no square patch_size in its config{tower}; "
                            "hf: takes vision transformers whose last_hidden_state is patch tokens")
        self.patch_size = patch
        self.adopt(model, num_prefix=None)
