"""Present-time heads on frozen encoder features (paper §4.1): BatchNorm + Linear per patch.

A head maps patch features ``(B, h, w, D)`` to per-patch outputs and upsamples them bilinearly to
pixels: class logits for segmentation (cross-entropy, ignore label 255), metres for depth (MSE on
pixels with a measurement). It is trained once per dataset and encoder on (frame, label) pairs of
the present, on random crops (448² for Cityscapes / VSPW at shortest side 448, 352×704 for KITTI),
and reused for every forecasting run: the same head reads the true features (present time), the
predicted ones and copy-last's.

Saved as ``DIR/config.json`` (task, classes, feature width, encoder, dataset, crop, training
settings) + ``DIR/model.safetensors``; :func:`load_head` refuses a head made for another encoder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...devices import module_device
from ...errors import UserError
from ...files import atomic_write, atomic_write_json
from .readers import IGNORE

HEAD_FORMAT = "dinoworld-dense-head/1"


@dataclass
class HeadConfig:
    task: str  # "segmentation" | "depth"
    dim: int  # feature width D
    num_classes: int = 1  # 1 for depth
    encoder: str = ""
    dataset: str = ""
    patch_size: int = 14
    crop: tuple[int, int] = (448, 448)  # training crop (after resizing to short_side); 0 = whole image
    short_side: int = 448  # frames are resized to this shortest side before cropping; 0 = native
    max_depth: float = 80.0  # depth: pixels above it (or <= 1e-3) are not scored
    train: dict[str, Any] = field(default_factory=dict)
    format: str = HEAD_FORMAT

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["crop"] = list(self.crop)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "HeadConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "crop" in known:
            known["crop"] = tuple(int(c) for c in known["crop"])
        return cls(**known)


class DenseHead(nn.Module):
    """BatchNorm over the feature channels + a per-patch linear layer; logits upsampled bilinearly."""

    def __init__(self, cfg: HeadConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.bn = nn.BatchNorm2d(cfg.dim)
        self.linear = nn.Conv2d(cfg.dim, cfg.num_classes, kernel_size=1)  # = nn.Linear on each patch

    def forward(self, feats: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """``(B, h, w, D)`` -> ``(B, C, H, W)`` at ``size`` pixels (``(B, C, h, w)`` without it)."""
        x = self.linear(self.bn(feats.permute(0, 3, 1, 2).float()))
        if size is not None and tuple(x.shape[-2:]) != tuple(size):
            x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)
        return x


def patch_multiple(n: int, patch: int) -> int:
    return max(patch, int(round(n / patch)) * patch)


def encode_crops(encoder: Any, crops: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """``(N, 3, H, W)`` in [0, 1] -> features; sizes that are not a multiple of the patch are
    resized to the nearest multiple first (e.g. KITTI's 352×1216 -> 350×1218)."""
    patch = int(getattr(encoder, "patch_size", 14))
    h, w = crops.shape[-2:]
    ph, pw = patch_multiple(h, patch), patch_multiple(w, patch)
    if (ph, pw) != (h, w):
        crops = F.interpolate(crops, size=(ph, pw), mode="bilinear", align_corners=False, antialias=True)
    dev = module_device(encoder)
    return torch.cat([encoder(crops[i : i + batch_size].to(dev)) for i in range(0, len(crops), batch_size)])


# -- images ---------------------------------------------------------------------------------------
def to_tensor(img: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> ``(3, H, W)`` float in [0, 1]."""
    return torch.from_numpy(np.array(img, dtype=np.uint8, copy=True)).permute(2, 0, 1).float().div_(255.0)


def resize_short_side(x: torch.Tensor, short_side: int | None) -> torch.Tensor:
    """``(..., 3, H, W)`` images resized (bilinear, antialiased) so the shorter side is ``short_side``."""
    if not short_side:
        return x
    h, w = x.shape[-2:]
    s = short_side / min(h, w)
    size = (max(1, round(h * s)), max(1, round(w * s)))
    if size == (h, w):
        return x
    lead = x.shape[:-3]
    y = F.interpolate(x.reshape(-1, *x.shape[-3:]), size=size, mode="bilinear", align_corners=False, antialias=s < 1)
    return y.reshape(*lead, *y.shape[-3:])


def resize_label(label: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of a class map (or a sparse depth map) to ``size``."""
    t = torch.from_numpy(np.array(label, copy=True))
    if tuple(t.shape) == tuple(size):
        return t
    return F.interpolate(t[None, None].float(), size=size, mode="nearest")[0, 0].to(t.dtype)


# -- training -------------------------------------------------------------------------------------
def head_loss(out: torch.Tensor, target: torch.Tensor, cfg: HeadConfig) -> torch.Tensor:
    """Cross-entropy (ignore 255) or MSE on pixels with depth in ``(1e-3, max_depth]``."""
    if cfg.task == "segmentation":
        return F.cross_entropy(out, target.long(), ignore_index=IGNORE)
    valid = (target > 1e-3) & (target <= cfg.max_depth)
    if not valid.any():
        return out.sum() * 0.0
    return F.mse_loss(out[:, 0][valid], target[valid].float())


def train_head(encoder: Any, pairs: Sequence[tuple[Any, Any]], load_frame: Callable[[Any], np.ndarray],
               load_label: Callable[[Any], np.ndarray], cfg: HeadConfig, steps: int = 1000, batch_size: int = 8,
               lr: float = 1e-3, seed: int = 0, progress: Callable[[str], None] | None = None,
               log_every: int = 100) -> DenseHead:
    """Train a head on ``pairs`` of (frame, label) ids: each step draws ``batch_size`` pairs, resizes the
    frame to ``cfg.short_side`` (labels by nearest neighbour), takes a random ``cfg.crop`` of both,
    encodes the crop with the frozen ``encoder`` and takes an AdamW step on the head. Crops that cover
    the whole image are encoded once and cached."""
    if not pairs:
        raise UserError("no (frame, label) pairs to train a head on")
    if steps < 1:
        raise UserError(f"head training needs >= 1 step, got {steps}")
    gen = np.random.default_rng(seed)
    torch.manual_seed(seed)
    head = DenseHead(cfg).to(module_device(encoder))
    if cfg.task == "depth":  # start at the mean depth: MSE in metres from 0 takes long to settle
        with torch.no_grad():
            sample = [load_label(pairs[int(i)][1]) for i in gen.integers(len(pairs), size=min(len(pairs), 16))]
            vals = np.concatenate([s[(s > 1e-3) & (s <= cfg.max_depth)] for s in sample])
            head.linear.bias.fill_(float(vals.mean()) if vals.size else 0.0)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    head.train()
    running = 0.0
    for step in range(steps):
        feats, targets = [], []
        for i in gen.integers(len(pairs), size=batch_size):
            i = int(i)
            if i in cache:
                f, t = cache[i]
                feats.append(f)
                targets.append(t)
                continue
            x = resize_short_side(to_tensor(load_frame(pairs[i][0])), cfg.short_side)
            h, w = x.shape[-2:]
            y = resize_label(load_label(pairs[i][1]), (h, w))
            ch = h if cfg.crop[0] <= 0 else min(cfg.crop[0], h)  # crop 0 = the whole image
            cw = w if cfg.crop[1] <= 0 else min(cfg.crop[1], w)
            top, left = int(gen.integers(h - ch + 1)), int(gen.integers(w - cw + 1))
            f = encode_crops(encoder, x[None, :, top : top + ch, left : left + cw])[0]
            t = y[top : top + ch, left : left + cw]
            if (ch, cw) == (h, w):
                cache[i] = (f, t)
            feats.append(f)
            targets.append(t)
        size = tuple(targets[0].shape)
        if any(tuple(t.shape) != size for t in targets):  # images of several sizes: one step each
            loss = sum(head_loss(head(f[None], tuple(t.shape)), t[None].to(f.device), cfg)
                       for f, t in zip(feats, targets))
            loss = loss / len(feats)
        else:
            out = head(torch.stack(feats), size)
            loss = head_loss(out, torch.stack(targets).to(out.device), cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running += float(loss.detach())
        if progress and ((step + 1) % log_every == 0 or step + 1 == steps):
            n = (step % log_every) + 1
            progress(f"{cfg.task} head step {step + 1}/{steps} loss {running / n:.4f}")
            running = 0.0
    head.eval()
    cfg.train = {"steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed, "pairs": len(pairs)}
    return head


# -- files ----------------------------------------------------------------------------------------
def save_head(head: DenseHead, folder: str | Path) -> Path:
    from safetensors.torch import save

    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
    atomic_write(d / "model.safetensors", lambda fh: fh.write(save(state)))
    atomic_write_json(d / "config.json", head.cfg.to_json())
    return d


def has_head(folder: str | Path) -> bool:
    d = Path(folder)
    return (d / "config.json").is_file() and (d / "model.safetensors").is_file()


def load_head(folder: str | Path, encoder: str | None = None, dim: int | None = None,
              device: Any = "cpu") -> DenseHead:
    """A saved head; a head trained on another encoder (or feature width) is a UserError."""
    import json

    from safetensors.torch import load_file

    d = Path(folder)
    if not has_head(d):
        raise UserError(f"{d} holds no head (config.json + model.safetensors)")
    try:
        cfg = HeadConfig.from_json(json.loads((d / "config.json").read_text()))
    except (json.JSONDecodeError, TypeError) as err:
        raise UserError(f"{d / 'config.json'} is not a head config: {err}") from None
    if encoder and cfg.encoder and cfg.encoder != encoder:
        raise UserError(f"head {d} was trained on encoder {cfg.encoder}, the checkpoint uses {encoder}; "
                        "train heads for it (another --heads folder)")
    if dim is not None and cfg.dim != dim:
        raise UserError(f"head {d} expects {cfg.dim}-d features, the encoder gives {dim}-d")
    head = DenseHead(cfg)
    head.load_state_dict(load_file(str(d / "model.safetensors")))
    return head.to(device).eval()
