"""DINOv2 checkpoints in the official torch.hub format (``dinov2_vitb14_reg4_pretrain.pth`` & co.).

``torch.hub.load("facebookresearch/dinov2", ...)`` saves its weights under
``torch.hub.get_dir()/checkpoints/`` with the key names of facebookresearch/dinov2 (``cls_token``,
``blocks.N.attn.qkv``, ``blocks.N.ls1.gamma``, ...). :func:`official_to_transformers` renames them to
the `transformers` ``Dinov2Model`` / ``Dinov2WithRegistersModel`` layout (the fused ``qkv`` split
into query/key/value, the giant's fused SwiGLU ``w12`` into gate/up), after checking that the file
is the variant the encoder was asked for.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError

#: hidden size -> (dinoworld size, torch.hub arch letter, readable name)
SIZES = {384: ("s14", "s", "ViT-S/14"), 768: ("b14", "b", "ViT-B/14"), 1024: ("l14", "l", "ViT-L/14"),
         1536: ("g14", "g", "ViT-g/14")}

#: official key suffix within a block -> transformers key suffix within ``encoder.layer.N``
_BLOCK_KEYS = {
    "norm1": "norm1", "attn.proj": "attention.o_proj", "ls1.gamma": "layer_scale1.lambda1", "norm2": "norm2",
    "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2", "mlp.w3": "mlp.down_proj", "ls2.gamma": "layer_scale2.lambda1",
}
#: official key -> transformers key, outside the blocks
_TOP_KEYS = {
    "cls_token": "embeddings.cls_token", "pos_embed": "embeddings.position_embeddings",
    "register_tokens": "embeddings.register_tokens", "mask_token": "embeddings.mask_token",
    "patch_embed.proj": "embeddings.patch_embeddings.projection", "norm": "layernorm",
}
#: ``blocks.N.`` or, in block-chunked training checkpoints, ``blocks.C.N.`` (N is global either way)
_BLOCK = re.compile(r"^blocks\.(?:\d+\.)?(\d+)\.(.+)$")


def hub_file_name(size: str, registers: bool) -> str:
    """The file name torch.hub gives a DINOv2 variant, e.g. ``dinov2_vitb14_reg4_pretrain.pth``."""
    return f"dinov2_vit{size[0]}14{'_reg4' if registers else ''}_pretrain.pth"


def hub_checkpoint(size: str, registers: bool) -> Path:
    """Where torch.hub keeps the official checkpoint of this variant (the file may not exist)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / hub_file_name(size, registers)


def is_official(state_dict: dict[str, Any]) -> bool:
    """True for a state dict with facebookresearch/dinov2 key names."""
    return "pos_embed" in state_dict and "cls_token" in state_dict


def _variant(hidden: int, registers: int, layers: int, patch: int) -> str:
    arch = SIZES[hidden][2] if hidden in SIZES and patch == 14 else f"ViT (width {hidden}, patch {patch})"
    return f"{arch} {f'with {registers} registers' if registers else 'without registers'} (depth {layers})"


def official_to_transformers(sd: dict[str, torch.Tensor], config: Any, name: str, path: Path,
                             model_keys: set[str]) -> dict[str, torch.Tensor]:
    """Rename an official DINOv2 state dict for ``config``; a clear error for another variant."""
    if "encoder.layer.0.attention.q_proj.weight" not in model_keys:
        import transformers

        raise UserError(f"loading torch.hub DINOv2 files like {path.name} needs transformers>=5 "
                        f"(installed {transformers.__version__}); pip install -U transformers")
    have = (sd["cls_token"].shape[-1], sd["register_tokens"].shape[1] if "register_tokens" in sd else 0,
            len({m.group(1) for k in sd if (m := _BLOCK.match(k))}), sd["patch_embed.proj.weight"].shape[-1])
    want = (config.hidden_size, getattr(config, "num_register_tokens", 0), config.num_hidden_layers, config.patch_size)
    if have != want:
        released = have[0] in SIZES and have[1] in (0, 4) and have[3] == 14
        right = f"dinov2-{SIZES[have[0]][0]}{'-reg' if have[1] else ''}" if released else name
        right = f"use encoder {right} for this file, or " if right != name else ""
        raise UserError(
            f"{path} is the torch.hub checkpoint of DINOv2 {_variant(*have)}, but {name} is {_variant(*want)}; "
            f"{right}give {name} its own file {hub_file_name(name.split('-')[1], name.endswith('-reg'))}"
        )
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if m := _BLOCK.match(key):
            layer, rest = f"encoder.layer.{m.group(1)}", m.group(2)  # rest: e.g. attn.qkv.weight, ls1.gamma
            part, _, leaf = rest.rpartition(".")
            if rest in _BLOCK_KEYS:  # the layer-scale vectors
                out[f"{layer}.{_BLOCK_KEYS[rest]}"] = value
            elif part == "attn.qkv":  # fused (3D, D): query, key, value stacked
                for proj, chunk in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
                    out[f"{layer}.attention.{proj}.{leaf}"] = chunk
            elif part == "mlp.w12":  # the giant's fused SwiGLU (2H, D): the silu-gated half first
                for proj, chunk in zip(("gate_proj", "up_proj"), value.chunk(2, dim=0)):
                    out[f"{layer}.mlp.{proj}.{leaf}"] = chunk
            elif part in _BLOCK_KEYS:
                out[f"{layer}.{_BLOCK_KEYS[part]}.{leaf}"] = value
        else:
            stem, _, leaf = key.rpartition(".")
            if key in _TOP_KEYS:
                out[_TOP_KEYS[key]] = value
            elif stem in _TOP_KEYS:
                out[f"{_TOP_KEYS[stem]}.{leaf}"] = value
    return out
