"""Running the dense-forecasting benchmark: sliding-window inference, the forecast features of every
column and the heads' maps, the evaluation loop over a split's windows (:func:`evaluate_forecast`),
the heads for a dataset (loaded or trained: :func:`prepare_heads`) and the whole evaluation
(:func:`run_forecast_eval`).

Segmentation frames are resized to shortest side 448 and read by 448² sliding windows with stride
300 (the last window of a row or column is aligned to the border); each window is encoded, forecast
and decoded by the head on its own, logits are averaged where windows overlap, resized to the
label's size and arg-maxed (:mod:`.metrics` scores them). KITTI depth is read whole.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import UserError
from ...model import context_mean_prediction, copy_last_prediction
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
from .metrics import TaskScore, iou_per_class
from .protocol import (
    HEAD_CROP,
    HORIZONS,
    KEYS,
    SCORING,
    Protocol,
    Sample,
    Scoring,
    _missing_label,
    protocol_for,
    windows_of,
)
from .readers import TASKS, DenseDataset, read_dense


# -- sliding windows ------------------------------------------------------------------------------
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


# -- evaluation -----------------------------------------------------------------------------------
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
