"""Dense-forecasting metrics: confusion matrices and mIoU (segmentation), RMSE (depth), the running
scores of a task over a split (:class:`TaskScore`) and the paired bootstrap of model - baseline.

mIoU comes from one confusion matrix summed over the whole split (ignore label 255; a class absent
from both prediction and truth is left out of the mean). Depth: RMSE in metres on the whole 352×1216
KITTI crop, over pixels with a measurement in (1e-3, 80], per image and averaged over images (the
usual KITTI convention). Intervals resample whole sequences (:func:`paired_bootstrap_ci`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ...stats import paired_bootstrap_ci
from .protocol import HORIZONS, METHODS
from .readers import IGNORE


# -- scoring --------------------------------------------------------------------------------------
def confusion_matrix(pred: np.ndarray | torch.Tensor, label: np.ndarray | torch.Tensor, num_classes: int,
                     ignore: int = IGNORE) -> np.ndarray:
    """``(C, C)`` int64 counts, rows = truth, columns = prediction; pixels labelled ``ignore`` (or any
    label outside ``[0, C)``) are left out."""
    p = np.asarray(pred, dtype=np.int64).ravel()
    t = np.asarray(label, dtype=np.int64).ravel()
    if p.shape != t.shape:
        raise ValueError(f"prediction and label differ in size: {p.shape} vs {t.shape}")
    keep = (t != ignore) & (t >= 0) & (t < num_classes)
    p, t = p[keep], t[keep]
    if p.size and (p.min() < 0 or p.max() >= num_classes):
        raise ValueError(f"predictions must be in [0, {num_classes})")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def iou_per_class(conf: np.ndarray) -> np.ndarray:
    """IoU of each class = TP / (TP + FP + FN); NaN for a class absent from truth and prediction.
    ``conf (..., C, C)`` -> ``(..., C)`` (a stack of matrices, e.g. bootstrap draws, at once)."""
    conf = np.asarray(conf, dtype=np.float64)
    tp = np.diagonal(conf, axis1=-2, axis2=-1)
    union = conf.sum(-2) + conf.sum(-1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.where(union > 0, union, 1), np.nan)


def mean_iou(conf: np.ndarray) -> float | np.ndarray:
    """Mean IoU over the classes present in truth or prediction (NaN if none); one per matrix of a stack."""
    iou = iou_per_class(conf)
    seen = np.isfinite(iou)
    m = np.where(seen, iou, 0.0).sum(-1) / np.where(seen.any(-1), seen.sum(-1), np.nan)
    return float(m) if np.ndim(m) == 0 else m


def depth_valid(gt: np.ndarray | torch.Tensor, max_depth: float = 80.0) -> np.ndarray:
    g = np.asarray(gt, dtype=np.float64)
    return (g > 1e-3) & (g <= max_depth)


def rmse(pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor, max_depth: float = 80.0) -> float:
    """Root mean squared error in metres over the pixels of ``gt`` with a measurement (NaN if none)."""
    p, g = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    v = depth_valid(g, max_depth)
    if not v.any():
        return float("nan")
    return float(np.sqrt(np.mean((p[v] - g[v]) ** 2)))


@dataclass
class TaskScore:
    """Running scores of one task over a split, kept per group (sequence) for confidence intervals."""

    task: str
    num_classes: int = 0
    #: ``{key: {group: confusion (C, C)}}`` (segmentation) or ``{key: {group: [rmse, ...]}}`` (depth)
    parts: dict[str, dict[int, Any]] = field(default_factory=dict)

    def add(self, maps: dict[str, torch.Tensor], label: np.ndarray, max_depth: float = 80.0, group: int = 0) -> None:
        for k, m in maps.items():
            g = self.parts.setdefault(k, {})
            if self.task == "segmentation":
                c = confusion_matrix(m.argmax(0).numpy(), label, self.num_classes)
                g[group] = g.get(group, 0) + c
            else:
                r = rmse(m[0].numpy(), label, max_depth)
                if math.isfinite(r):
                    g.setdefault(group, []).append(r)

    @property
    def groups(self) -> list[int]:
        return sorted(set().union(*(g.keys() for g in self.parts.values())))

    @property
    def confusion(self) -> dict[str, np.ndarray]:
        """One confusion matrix per key, summed over the split (segmentation)."""
        return {k: sum(g.values()) for k, g in self.parts.items() if g} if self.task == "segmentation" else {}

    def score(self, key: str, weights: np.ndarray | None = None) -> float | np.ndarray:
        """mIoU (%) from the summed confusion, or the mean per-image RMSE, with each group (sequence, in the
        order of :attr:`groups`) counted ``weights`` times: ``(G,)``, or ``(draws, G)`` for many bootstrap
        draws at once (one score per row). Default: every group once."""
        g = self.parts.get(key, {})
        groups = self.groups
        w = np.ones(len(groups)) if weights is None else np.asarray(weights, dtype=np.float64)
        if not g:
            return float("nan") if w.ndim == 1 else np.full(w.shape[0], np.nan)
        if self.task == "segmentation":
            zero = np.zeros((self.num_classes, self.num_classes))
            stack = np.stack([g.get(i, zero) for i in groups]).astype(np.float64)  # (G, C, C)
            return 100.0 * mean_iou(np.tensordot(w, stack, axes=(-1, 0)))
        sums = np.array([sum(g.get(i, [])) for i in groups], dtype=np.float64)
        counts = np.array([len(g.get(i, [])) for i in groups], dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            m = (w @ sums) / (w @ counts)
        return float(m) if np.ndim(m) == 0 else m

    def table(self) -> dict[str, Any]:
        """``{"present": P, "short": {"model": A, "copy_last": B, "context_mean": C}, "mid": {...}}``."""
        return {"present": self.score("present"),
                **{h: {m: self.score(f"{h}/{m}") for m in METHODS} for h in HORIZONS}}

    def intervals(self, draws: int = 2000, seed: int = 0) -> dict[str, Any]:
        """95 % paired-bootstrap intervals of model - baseline per horizon (see :func:`paired_bootstrap_ci`)."""
        n = len(self.groups)
        return {h: {f"model_minus_{b}": paired_bootstrap_ci(self.score, f"{h}/model", f"{h}/{b}", n, draws, seed)
                    for b in METHODS if b != "model"} for h in HORIZONS}
