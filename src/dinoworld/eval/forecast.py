"""Dense forecasting (paper §4.1, Table 1, App. C.1): present-time heads read predicted features.

Protocols (App. C.1), frame indices inside a window whose scored frame is an annotated frame;
every frame is fed at its real timestamp ``index / fps`` (the dataset's native rate):

============  =====  ==========================  ====================================================
dataset        fps    short                       mid (autoregressive, scored at the last query)
============  =====  ==========================  ====================================================
cityscapes     16     [7, 10, 13, 16] -> 19        [1, 4, 7, 10] -> 13, 16, 19   (187.5 / 562.5 ms)
vspw           15     [7, 10, 13, 16] -> 19        [1, 4, 7, 10] -> 13, 16, 19   (200 / 600 ms)
kitti          10     [5, 7, 9, 11] -> 13          [1, 3, 5, 7] -> 9, 11, 13     (200 / 600 ms)
synthetic     probe   VSPW's indices (15 fps by default: 200 / 600 ms)
============  =====  ==========================  ====================================================

Every annotated frame ``a`` with ``a >= target`` of a sequence gives one window starting at
``a - target``: the 20th frame of each Cityscapes snippet, every 20-frame window of a VSPW video
(all its frames are annotated), every annotated KITTI frame with 13 frames before it.

Three columns, as Table 1: the head on the *predicted* features (``model``), on the last context
frame's features (``copy_last``: frame 16 / 10 for Cityscapes) and on the true features of the
scored frame (``present``, the upper bound).

Scoring: segmentation frames are resized to shortest side 448 and read by 448² sliding windows with
stride 300 (the last window of a row or column is aligned to the border); each window is encoded,
forecast and decoded by the head on its own, logits are averaged where windows overlap, resized to
the label's size and arg-maxed; mIoU comes from one confusion matrix summed over the whole split
(ignore label 255; a class absent from both prediction and truth is left out of the mean). Depth:
RMSE in metres on the whole 352×1216 KITTI crop, over pixels with a measurement in (1e-3, 80],
per image and averaged over images (the usual KITTI convention).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data.dense import DATASETS, IGNORE, TASKS, DenseDataset, read_dense
from ..errors import UserError
from ..model import context_mean_prediction, copy_last_prediction
from .heads import (
    DenseHead,
    HeadConfig,
    encode_crops,
    has_head,
    load_head,
    resize_short_side,
    save_head,
    to_tensor,
    train_head,
)

HORIZONS = ("short", "mid")
METHODS = ("model", "copy_last", "context_mean")  #: context_mean: the hedging baseline


# -- protocols ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Protocol:
    """Frame indices inside a window (App. C.1); ``fps`` is the dataset's native rate."""

    name: str
    fps: float
    short_context: tuple[int, ...]
    short_target: int
    mid_context: tuple[int, ...]
    mid_queries: tuple[int, ...]  # autoregressive; the last one is scored

    @property
    def target(self) -> int:
        return self.short_target

    def horizon_s(self, horizon: str, fps: float | None = None) -> float:
        ctx = self.short_context if horizon == "short" else self.mid_context
        return (self.target - ctx[-1]) / float(fps or self.fps)

    def indices(self) -> list[int]:
        """Every window index a forecast reads, ascending (the scored frame included)."""
        return sorted({*self.short_context, self.short_target, *self.mid_context, *self.mid_queries})


_CS_IDX = dict(short_context=(7, 10, 13, 16), short_target=19, mid_context=(1, 4, 7, 10), mid_queries=(13, 16, 19))
PROTOCOLS: dict[str, Protocol] = {
    "cityscapes": Protocol("cityscapes", 16.0, **_CS_IDX),
    "vspw": Protocol("vspw", 15.0, **_CS_IDX),
    "kitti": Protocol("kitti", 10.0, (5, 7, 9, 11), 13, (1, 3, 5, 7), (9, 11, 13)),
    "synthetic": Protocol("synthetic", 15.0, **_CS_IDX),
}
for _p in PROTOCOLS.values():
    assert _p.mid_queries[-1] == _p.short_target


@dataclass(frozen=True)
class Scoring:
    """How frames are read: ``short_side`` resize (0 = native), sliding ``window`` (0 = whole image)
    with ``stride``."""

    short_side: int = 448
    window: tuple[int, int] = (448, 448)
    stride: int = 300


#: scoring and head-training crop per dataset (paper: 448 / 448² / 300 for segmentation, whole
#: 352×1216 images for KITTI depth; the synthetic probe is read whole at its own size)
SCORING: dict[str, Scoring] = {
    "cityscapes": Scoring(), "vspw": Scoring(), "kitti": Scoring(0, (0, 0), 0), "synthetic": Scoring(0, (0, 0), 0),
}
HEAD_CROP: dict[str, tuple[int, int]] = {"cityscapes": (448, 448), "vspw": (448, 448), "kitti": (352, 704),
                                         "synthetic": (0, 0)}


@dataclass(frozen=True)
class Sample:
    sequence: int  # index into dataset.sequences
    start: int  # frame index of the window's frame 0


def windows_of(ds: DenseDataset, protocol: Protocol) -> list[Sample]:
    """One sample per annotated frame ``a >= protocol.target`` (window start ``a - target``), frames
    whose label file is missing (:attr:`DenseSequence.missing_labels`) included."""
    out = []
    for k, s in enumerate(ds.sequences):
        for a in sorted({*s.labels, *s.missing_labels}):
            if a >= protocol.target and a < len(s.frames):
                out.append(Sample(k, a - protocol.target))
    return out


def _missing_label(datasets: dict[str, DenseDataset], sample: Sample, frame: int) -> str | None:
    """Why a window cannot be scored for lack of a label of its scored ``frame``, or None."""
    for task, ds in datasets.items():
        seq = ds.sequences[sample.sequence]
        if frame not in seq.labels:
            path = seq.missing_labels.get(frame)
            return f"{seq.name} frame {frame}: no {task} label{f' ({path} missing)' if path else ''}"
    return None


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


def sliding_windows(height: int, width: int, window: tuple[int, int] | int,
                    stride: int) -> list[tuple[int, int, int, int]]:
    """``(top, left, h, w)`` boxes covering the image: a grid with ``stride``, the last row and column
    of windows moved back to touch the border (mmsegmentation's ``slide_inference``); a window larger
    than the image shrinks to it; ``window`` 0 = the whole image."""
    wh, ww = (window, window) if isinstance(window, int) else window
    if wh <= 0 or ww <= 0:
        return [(0, 0, height, width)]
    wh, ww = min(wh, height), min(ww, width)
    if stride <= 0:
        raise ValueError(f"stride must be > 0, got {stride}")
    rows = max(height - wh + stride - 1, 0) // stride + 1
    cols = max(width - ww + stride - 1, 0) // stride + 1
    boxes = []
    for r in range(rows):
        top = min(r * stride, height - wh)
        for c in range(cols):
            left = min(c * stride, width - ww)
            box = (top, left, wh, ww)
            if box not in boxes:
                boxes.append(box)
    return boxes


def sliding_average(fn: Callable[[list[tuple[int, int, int, int]]], torch.Tensor], height: int, width: int,
                    window: tuple[int, int] | int, stride: int) -> torch.Tensor:
    """``fn(boxes) -> (len(boxes), C, h, w)`` outputs per window; returns ``(C, height, width)``, the
    average over the windows covering each pixel."""
    boxes = sliding_windows(height, width, window, stride)
    out = fn(boxes)
    total = out.new_zeros(out.shape[1], height, width)
    count = out.new_zeros(1, height, width)
    for (top, left, h, w), o in zip(boxes, out):
        total[:, top : top + h, left : left + w] += o
        count[:, top : top + h, left : left + w] += 1
    if (count == 0).any():  # cannot happen with sliding_windows; guard the division anyway
        raise RuntimeError("sliding windows left pixels uncovered")
    return total / count


# -- forecasting ----------------------------------------------------------------------------------
#: output keys: the present-time upper bound, then (horizon, method)
KEYS: tuple[str, ...] = ("present", *(f"{h}/{m}" for h in HORIZONS for m in METHODS))


def forecast_features(wm: Any, feats: torch.Tensor, times: torch.Tensor, protocol: Protocol,
                      index: dict[int, int]) -> dict[str, torch.Tensor]:
    """``feats (B, N, h, w, D)`` of the frames ``protocol.indices()`` at ``times (B, N)`` -> features
    ``(B, h, w, D)`` for every key of :data:`KEYS`. ``index`` maps a window index to its position in N."""
    def pick(ix: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        pos = [index[i] for i in ix]
        return feats[:, pos], times[:, pos]

    ctx_s, t_s = pick(protocol.short_context)
    ctx_m, t_m = pick(protocol.mid_context)
    _, q_s = pick([protocol.short_target])
    _, q_m = pick(protocol.mid_queries)
    dev = wm.device if hasattr(wm, "device") else feats.device
    out = {"present": feats[:, index[protocol.target]]}
    out["short/model"] = wm.predict(ctx_s.to(dev), t_s.to(dev), q_s.to(dev))[:, 0].to(feats.device)
    out["short/copy_last"] = copy_last_prediction(ctx_s, t_s, q_s)[:, 0]
    out["mid/model"] = wm.rollout(ctx_m.to(dev), t_m.to(dev), q_m.to(dev))[:, -1].to(feats.device)
    out["mid/copy_last"] = copy_last_prediction(ctx_m, t_m, q_s)[:, 0]
    out["short/context_mean"] = context_mean_prediction(ctx_s, q_s)[:, 0]
    out["mid/context_mean"] = context_mean_prediction(ctx_m, q_s)[:, 0]
    return out


@torch.no_grad()
def forecast_maps(wm: Any, heads: dict[str, DenseHead], frames: torch.Tensor, times: torch.Tensor,
                  protocol: Protocol, scoring: Scoring, label_size: tuple[int, int],
                  batch_size: int = 32) -> dict[str, dict[str, torch.Tensor]]:
    """One window of frames ``(N, 3, H, W)`` in [0, 1] (``protocol.indices()`` in order) at
    ``times (N,)`` -> ``{task: {key: (C, *label_size)}}``: averaged sliding-window head outputs,
    resized bilinearly to the label's size (logits for segmentation, metres for depth)."""
    x = resize_short_side(frames, scoring.short_side)
    H, W = x.shape[-2:]
    index = {i: k for k, i in enumerate(protocol.indices())}
    per_task: dict[str, dict[str, list[torch.Tensor]]] = {t: {k: [] for k in KEYS} for t in heads}

    def run(boxes: list[tuple[int, int, int, int]]) -> None:
        for top, left, h, w in boxes:
            crops = x[:, :, top : top + h, left : left + w]
            f = encode_crops(wm.encoder, crops, batch_size)  # (N, h', w', D)
            out = forecast_features(wm, f[None], times[None].float().to(f.device), protocol, index)
            for task, head in heads.items():
                dev = next(head.parameters()).device
                for k, v in out.items():
                    per_task[task][k].append(head(v.to(dev), (h, w))[0].float().cpu())

    boxes = sliding_windows(H, W, scoring.window, scoring.stride)
    run(boxes)
    result: dict[str, dict[str, torch.Tensor]] = {}
    for task in heads:
        result[task] = {}
        for k in KEYS:
            stacked = torch.stack(per_task[task][k])
            avg = sliding_average(lambda b, s=stacked: s, H, W, scoring.window, scoring.stride)
            if tuple(avg.shape[-2:]) != tuple(label_size):
                avg = F.interpolate(avg[None], size=tuple(label_size), mode="bilinear", align_corners=False)[0]
            result[task][k] = avg
    return result


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


def paired_bootstrap_ci(score: Callable[[str, np.ndarray], np.ndarray], a: str, b: str, num_groups: int,
                        draws: int = 2000, seed: int = 0) -> list[float] | None:
    """95 % interval of ``score(a, W) - score(b, W)`` over bootstrap resamples of the groups, drawn with
    replacement as counts ``W (draws, G)``, the same draws for both (paired). Whole sequences are
    resampled, not windows, because the windows of one sequence overlap and are not independent.
    ``None`` with fewer than two groups."""
    if num_groups < 2:
        return None
    w = np.random.default_rng(seed).multinomial(num_groups, np.full(num_groups, 1.0 / num_groups), size=draws)
    d = np.asarray(score(a, w), dtype=np.float64) - np.asarray(score(b, w), dtype=np.float64)
    d = d[np.isfinite(d)]
    return [float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5))] if d.size else None


def _load_window(ds: DenseDataset, sample: Sample, protocol: Protocol) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    seq = ds.sequences[sample.sequence]
    idx = protocol.indices()
    frames = torch.stack([to_tensor(ds.load_frame(seq.frames[sample.start + i])) for i in idx])
    times = torch.tensor([(sample.start + i) / seq.fps for i in idx], dtype=torch.float64)
    label = ds.load_label(seq.labels[sample.start + protocol.target])
    return frames, times, label


@dataclass
class ForecastEval:
    summary: dict[str, Any]
    scores: dict[str, TaskScore]
    skipped: list[str]


METRIC = {"segmentation": "miou", "depth": "rmse"}


def evaluate_forecast(wm: Any, datasets: dict[str, DenseDataset], heads: dict[str, DenseHead], protocol: Protocol,
                      scoring: Scoring, max_samples: int | None = None, batch_size: int = 32,
                      progress: Callable[[str], None] | None = None) -> ForecastEval:
    """Run the protocol on every window of each task's dataset (same frames for every task share one
    forecast when the datasets list the same sequences) and score the three columns.

    A window whose scored frame lacks a label of one of the tasks, or whose files cannot be read, is
    skipped: ``summary["skipped"]`` counts them (``"skipped_unlabelled"`` the first kind), one warning
    line on stderr says how many of how many and why, and :attr:`ForecastEval.skipped` lists them."""
    scores = {t: TaskScore(t, datasets[t].num_classes) for t in heads}
    first = next(iter(heads))
    ds0 = datasets[first]
    samples = windows_of(ds0, protocol)
    if max_samples:
        samples = samples[:max_samples]
    if not samples:
        seq_len = max((len(s.frames) for s in ds0.sequences), default=0)
        raise UserError(f"no forecasting window in {ds0.name} {ds0.split}: a window needs an annotated frame at index "
                        f">= {protocol.target} (longest sequence: {seq_len} frames)")
    frames0 = [s.frames for s in ds0.sequences]
    shared = {t: datasets[t] for t in heads if [s.frames for s in datasets[t].sequences] == frames0}
    skipped: list[str] = []
    unlabelled = 0
    for n, sample in enumerate(samples):
        missing = _missing_label(shared, sample, sample.start + protocol.target)
        if missing:
            unlabelled += 1
            skipped.append(missing)
            continue
        try:
            frames, times, label = _load_window(ds0, sample, protocol)
            labels = {first: label}
            for t, ds in shared.items():
                if t != first:
                    labels[t] = ds.load_label(ds.sequences[sample.sequence].labels[sample.start + protocol.target])
        except UserError as err:
            skipped.append(str(err))
            continue
        maps = forecast_maps(wm, {t: heads[t] for t in shared}, frames, times, protocol, scoring,
                             tuple(label.shape[:2]), batch_size)
        for t in shared:
            scores[t].add(maps[t], labels[t], heads[t].cfg.max_depth, group=sample.sequence)
        if progress and ((n + 1) % 10 == 0 or n + 1 == len(samples)):
            progress(f"windows {n + 1}/{len(samples)}")
    counts = {"windows": len(samples) - len(skipped), "skipped": len(skipped), "skipped_unlabelled": unlabelled}
    if skipped:
        why = [f"{unlabelled} without a label for the scored frame"] if unlabelled else []
        why += [f"{len(skipped) - unlabelled} unreadable"] if len(skipped) > unlabelled else []
        line = (f"{len(skipped)} of {len(samples)} forecasting windows of {ds0.name} {ds0.split}: {', '.join(why)} "
                f"(first: {skipped[0]})")
        if len(skipped) == len(samples):
            raise UserError(f"cannot score any of the {line}; restore the missing or damaged files")
        print(f"warning: skipped {line}", file=sys.stderr, flush=True)
    for t in heads:  # a task whose frames differ from the first one's: its own pass
        if t in shared:
            continue
        sub = evaluate_forecast(wm, {t: datasets[t]}, {t: heads[t]}, protocol, scoring, max_samples, batch_size,
                                progress)
        scores[t] = sub.scores[t]
        skipped += sub.skipped
    fps = ds0.sequences[0].fps
    summary: dict[str, Any] = {METRIC[t]: scores[t].table() for t in heads}
    summary["ci95"] = {METRIC[t]: scores[t].intervals() for t in heads}
    summary.update({
        "sequences": len({s.sequence for s in samples}),
        "dataset": ds0.name, "split": ds0.split, **counts,
        "fps": fps, "horizons_s": {h: protocol.horizon_s(h, fps) for h in HORIZONS},
        "protocol": {"short": [list(protocol.short_context), protocol.short_target],
                     "mid": [list(protocol.mid_context), list(protocol.mid_queries)]},
        "scoring": {"short_side": scoring.short_side, "window": list(scoring.window), "stride": scoring.stride},
        "units": {"miou": "percent", "rmse": "metres"},
    })
    if "segmentation" in scores and scores["segmentation"].confusion:
        names = datasets["segmentation"].class_names
        summary["iou_per_class"] = {
            k: {(names[i] if i < len(names) else str(i)): (None if math.isnan(v) else 100 * float(v))
                for i, v in enumerate(iou_per_class(c))}
            for k, c in scores["segmentation"].confusion.items()}
        summary["confusion"] = {k: c.tolist() for k, c in scores["segmentation"].confusion.items()}  # rows = truth
    return ForecastEval(summary, scores, skipped)


# -- heads for a dataset --------------------------------------------------------------------------
def head_config(dataset: str, task: str, encoder: Any, num_classes: int, scoring: Scoring | None = None) -> HeadConfig:
    sc = scoring or SCORING[dataset]
    return HeadConfig(task=task, dim=int(encoder.dim), num_classes=num_classes if task == "segmentation" else 1,
                      encoder=str(getattr(encoder, "name", "")), dataset=dataset,
                      patch_size=int(getattr(encoder, "patch_size", 14)), crop=HEAD_CROP[dataset],
                      short_side=sc.short_side)


def prepare_heads(encoder: Any, dataset: str, root: str | Path, heads_dir: str | Path | None, split: str = "train",
                  steps: int = 1000, batch_size: int = 8, lr: float = 1e-3, scoring: Scoring | None = None,
                  tasks: Sequence[str] | None = None, progress: Callable[[str], None] | None = None
                  ) -> dict[str, DenseHead]:
    """The dataset's heads: loaded from ``heads_dir/<task>/`` when there, else trained on ``split``
    (present time) and saved there (kept in memory only without ``heads_dir``)."""
    heads: dict[str, DenseHead] = {}
    dev = next((t.device for t in list(encoder.parameters()) + list(encoder.buffers())), torch.device("cpu"))
    for task in tasks or TASKS[dataset]:
        folder = Path(heads_dir) / task if heads_dir else None
        if folder is not None and has_head(folder):
            heads[task] = load_head(folder, encoder=getattr(encoder, "name", None), dim=int(encoder.dim), device=dev)
            if progress:
                progress(f"loaded {task} head {folder}")
            continue
        ds = read_dense(dataset, root, split, task)
        cfg = head_config(dataset, task, encoder, ds.num_classes, scoring)
        if progress:
            progress(f"training the {task} head on {len(ds.pairs())} {dataset} {split} frames ({steps} steps)")
        head = train_head(encoder, ds.pairs(), ds.load_frame, ds.load_label, cfg, steps, batch_size, lr,
                          progress=progress)
        if folder is not None:
            save_head(head, folder)
            if progress:
                progress(f"saved {task} head to {folder}")
        heads[task] = head
    return heads


def protocol_for(dataset: str, fps: float | None = None) -> Protocol:
    if dataset not in PROTOCOLS:
        raise UserError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    p = PROTOCOLS[dataset]
    if fps and fps != p.fps:
        p = Protocol(p.name, float(fps), p.short_context, p.short_target, p.mid_context, p.mid_queries)
    return p


def run_forecast_eval(wm: Any, dataset: str, root: str | Path, heads_dir: str | Path | None = None,
                      split: str = "val", head_split: str = "train", head_steps: int = 1000, head_batch_size: int = 8,
                      head_lr: float = 1e-3, scoring: Scoring | None = None, max_samples: int | None = None,
                      batch_size: int = 32, progress: Callable[[str], None] | None = None) -> ForecastEval:
    """The whole evaluation: heads (loaded or trained), the protocol on ``split``, Table 1's columns."""
    sc = scoring or SCORING[dataset]
    tasks = TASKS[dataset]
    datasets = {t: read_dense(dataset, root, split, t) for t in tasks}  # check the data before training heads
    fps = datasets[tasks[0]].sequences[0].fps
    protocol = protocol_for(dataset, fps)
    heads = prepare_heads(wm.encoder, dataset, root, heads_dir, head_split, head_steps, head_batch_size, head_lr,
                          sc, tasks, progress)
    wm.eval()
    return evaluate_forecast(wm, datasets, heads, protocol, sc, max_samples, batch_size, progress)


# -- output ---------------------------------------------------------------------------------------
def format_table(summary: dict[str, Any]) -> str:
    """Table 1's shape: rows predicted / copy-last per metric, columns present / short / mid."""
    hs = summary.get("horizons_s", {})
    head = (f"{summary.get('dataset', '')} {summary.get('split', '')}: {summary.get('windows', 0)} windows; "
            f"short {1000 * hs.get('short', float('nan')):.1f} ms, mid {1000 * hs.get('mid', float('nan')):.1f} ms")
    lines = [head, f"{'':<22}{'present':>9}{'short':>9}{'mid':>9}"]
    for metric, label, fmt in (("miou", "mIoU % (higher better)", "{:9.1f}"),
                               ("rmse", "RMSE m (lower better)", "{:9.3f}")):
        t = summary.get(metric)
        if not t:
            continue
        lines.append(label)
        for m, name in (("model", "  predicted"), ("copy_last", "  copy-last"), ("context_mean", "  context-mean")):
            if m not in t["short"]:  # summaries written before the context-mean baseline
                continue
            lines.append(f"{name:<22}" + fmt.format(t["present"]) + fmt.format(t["short"][m]) + fmt.format(t["mid"][m]))
        ci = summary.get("ci95", {}).get(metric, {})
        for b, name in (("copy_last", "copy-last"), ("context_mean", "context-mean")):
            spans = [ci.get(h, {}).get(f"model_minus_{b}") for h in HORIZONS]
            if any(spans):
                lines.append(f"  predicted - {name}, 95 % CI: " + ", ".join(
                    f"{h} [{fmt.format(s[0]).strip()}, {fmt.format(s[1]).strip()}]" if s else f"{h} -"
                    for h, s in zip(HORIZONS, spans)))
    if summary.get("ci95"):
        lines.append(f"(95 % CI: paired bootstrap over the {summary.get('sequences', '?')} sequences)")
    return "\n".join(lines)


def write_summary(ev: ForecastEval, out: str | Path) -> str:
    from ..files import atomic_write_json

    o = Path(out)
    o.mkdir(parents=True, exist_ok=True)
    path = o / "forecast.json"
    atomic_write_json(path, json.loads(json.dumps({**ev.summary, "skipped_windows": ev.skipped},
                                                  default=lambda x: None)))
    return str(path)
