"""Intuitive physics (paper §4.1 Table 2, App. E.2 Table 9; the protocol of Garrido et al. 2025).

*Surprise* of a video under a world model: slide over the video; at each step the model gets
``context`` frames at their actual timestamps and predicts the next frame (or the frame ``gap``
seconds after the last context frame); the surprise of the step is the mean absolute error between
that prediction and the encoded frame. A video's surprise is the mean (or the max) over its steps.
The copy-last reference (the previous context frame as the prediction) is computed on the same steps
and needs no model.

*Relative accuracy* over matched (possible, impossible) pairs: the share of pairs where the possible
video is less surprising; ties count half. Reported over all pairs, per property (Table 9) and as the
mean over properties (Table 2 averages its categories).

Readers (each returns :class:`PairSet`):

* ``intphys``: IntPhys dev ``ROOT/O{1,2,3}/<scene>/{1..4}/scene/*.png`` with
  ``ROOT/O?/<scene>/{1..4}/status.json`` -> ``header.is_possible``. Each quadruplet (2 possible, 2
  impossible) gives its 4 (possible, impossible) combinations as matched pairs (the IntPhys /
  InfLevel quadruplet comparison). Properties: O1 object permanence, O2 unchangeableness (shape
  constancy), O3 spatio-temporal continuity. Frames are taken at :data:`IMAGE_SEQUENCE_FPS` unless
  told otherwise.
* ``grasp``: ``ROOT/P_<Property>/NAME.mp4`` vs ``ROOT/IP_<Property>/NAME.mp4`` (same NAME).
* ``inflevel``: one CSV per property in ``ROOT`` (or ``ROOT/csv``), named after it
  (``continuity.csv`` ...), with ``vid1_path``, ``vid2_path`` (relative to ``ROOT``) and ``vid1_label``
  (``possible`` / ``impossible``; ``vid2_label`` optional, else the other one). Optional
  ``vid{1,2}_end_priming_2`` columns: the surprise is taken only after that frame (the priming part
  of an InfLevel video is not the test event).
* ``folder``: ``ROOT/possible/NAME.ext`` and ``ROOT/impossible/NAME.ext`` (any video extension, or a
  folder of images) with the same NAME; other files and folders beside them are ignored; a NAME
  without its partner is reported and skipped. Properties come from an optional ``ROOT/pairs.json``
  (``{"pairs": {NAME: {"property": ..., "departure_frame": ...}}}``, as ``make-physics-probe``
  writes) or, without ``possible/`` at the top, from sub-folders ``ROOT/<property>/{possible,impossible}``.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.video import CorruptVideo, decode_at, probe_video, resize_crop
from ..errors import UserError
from ..files import atomic_path, atomic_write_json

DATASETS: tuple[str, ...] = ("intphys", "grasp", "inflevel", "folder")
#: frame rate assumed for image sequences (IntPhys ships PNGs without timestamps)
IMAGE_SEQUENCE_FPS = 15.0
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
INTPHYS_PROPERTIES = {"O1": "object permanence", "O2": "unchangeableness", "O3": "spatio-temporal continuity"}


# -- pairs ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VideoRef:
    """A video file or a folder of frames; ``start_frame`` skips a priming part."""

    path: Path
    start_frame: int = 0


@dataclass
class Pair:
    name: str
    possible: VideoRef
    impossible: VideoRef
    property: str | None = None
    departure_frame: int | None = None  # first frame where the impossible video departs (when known)


@dataclass
class PairSet:
    pairs: list[Pair]
    problems: list[str] = field(default_factory=list)  # names without their partner, bad rows ...


def _is_video(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in VIDEO_EXTS


def _has_images(p: Path) -> bool:
    return p.is_dir() and any(q.suffix.lower() in IMAGE_EXTS for q in p.iterdir())


def _media_by_stem(folder: Path) -> dict[str, Path]:
    """NAME -> a video file or a folder of images (anything else is ignored)."""
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if _is_video(p) or _has_images(p):
            out.setdefault(p.stem if p.is_file() else p.name, p)
    return out


def _match(pos: dict[str, Path], imp: dict[str, Path], prop: str | None, where: str,
           meta: dict[str, dict] | None = None) -> PairSet:
    pairs, problems = [], []
    for name in sorted(set(pos) | set(imp)):
        if name not in imp:
            problems.append(f"{where}: {name} has no impossible partner")
        elif name not in pos:
            problems.append(f"{where}: {name} has no possible partner")
        else:
            m = (meta or {}).get(name, {})
            dep = m.get("departure_frame")
            pairs.append(Pair(name, VideoRef(pos[name]), VideoRef(imp[name]), m.get("property", prop),
                              int(dep) if dep is not None else None))
    return PairSet(pairs, problems)


def read_folder(root: Path) -> PairSet:
    if (root / "possible").is_dir() or (root / "impossible").is_dir():
        meta: dict[str, dict] = {}
        if (root / "pairs.json").is_file():
            try:
                raw = json.loads((root / "pairs.json").read_text())
            except json.JSONDecodeError as err:
                raise UserError(f"{root / 'pairs.json'} is not valid JSON ({err.msg} at line {err.lineno})") from None
            raw = raw.get("pairs", raw) if isinstance(raw, dict) else {}
            meta = {k: v for k, v in raw.items() if isinstance(v, dict)}
        pos = _media_by_stem(root / "possible") if (root / "possible").is_dir() else {}
        imp = _media_by_stem(root / "impossible") if (root / "impossible").is_dir() else {}
        return _match(pos, imp, None, str(root), meta)
    out = PairSet([])
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        if (sub / "possible").is_dir() and (sub / "impossible").is_dir():
            s = _match(_media_by_stem(sub / "possible"), _media_by_stem(sub / "impossible"), sub.name, str(sub))
            out.pairs += s.pairs
            out.problems += s.problems
    return out


def read_grasp(root: Path) -> PairSet:
    out = PairSet([])
    for pdir in sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("P_")):
        prop = pdir.name[2:]
        idir = root / f"IP_{prop}"
        if not idir.is_dir():
            out.problems.append(f"{pdir} has no IP_{prop} folder beside it")
            continue
        s = _match(_media_by_stem(pdir), _media_by_stem(idir), prop, f"GRASP {prop}")
        out.pairs += s.pairs
        out.problems += s.problems
    return out


def read_intphys(root: Path) -> PairSet:
    out = PairSet([])
    blocks = sorted(p for p in root.iterdir() if p.is_dir() and p.name in INTPHYS_PROPERTIES)
    for block in blocks:
        prop = INTPHYS_PROPERTIES[block.name]
        for scene in sorted(p for p in block.iterdir() if p.is_dir()):
            pos, imp = [], []
            for movie in sorted(p for p in scene.iterdir() if p.is_dir() and p.name.isdigit()):
                try:
                    possible = bool(json.loads((movie / "status.json").read_text())["header"]["is_possible"])
                except (OSError, KeyError, TypeError, json.JSONDecodeError):
                    out.problems.append(f"{movie}: no readable status.json header.is_possible")
                    continue
                (pos if possible else imp).append(movie / "scene")
            if not pos or not imp:
                out.problems.append(f"{scene}: needs possible and impossible movies ({len(pos)} / {len(imp)})")
                continue
            for p in pos:
                for i in imp:
                    out.pairs.append(Pair(f"{block.name}/{scene.name}/{p.parent.name}-{i.parent.name}",
                                          VideoRef(p), VideoRef(i), prop))
    return out


def read_inflevel(root: Path) -> PairSet:
    folder = root / "csv" if (root / "csv").is_dir() else root
    csvs = sorted(folder.glob("*.csv"))
    out = PairSet([])
    for path in csvs:
        prop = path.stem
        with path.open(newline="") as f:
            for k, row in enumerate(csv.DictReader(f)):
                try:
                    v1, v2 = row["vid1_path"].strip(), row["vid2_path"].strip()
                    l1 = row["vid1_label"].strip().lower()
                except (KeyError, AttributeError):
                    raise UserError(f"{path} needs columns vid1_path, vid2_path, vid1_label") from None
                if l1 not in ("possible", "impossible"):
                    out.problems.append(f"{path.name} row {k + 2}: vid1_label {l1!r} is neither possible "
                                        "nor impossible")
                    continue

                def ref(p: str, col: str) -> VideoRef:
                    s = (row.get(col) or "").strip()
                    return VideoRef(root / p, int(float(s)) + 1 if s else 0)

                r1, r2 = ref(v1, "vid1_end_priming_2"), ref(v2, "vid2_end_priming_2")
                pos, imp = (r1, r2) if l1 == "possible" else (r2, r1)
                out.pairs.append(Pair(f"{prop}/{k}", pos, imp, prop))
    return out


READERS: dict[str, Callable[[Path], PairSet]] = {
    "intphys": read_intphys, "grasp": read_grasp, "inflevel": read_inflevel, "folder": read_folder,
}


def read_pairs(dataset: str, root: str | Path) -> PairSet:
    """Matched pairs of ``dataset`` under ``root``; a missing root or an empty pair set is a UserError."""
    if dataset not in READERS:
        raise UserError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    r = Path(root).expanduser()
    if not r.is_dir():
        raise UserError(f"dataset root {r} does not exist (or is not a folder); pass --root DIR")
    ps = READERS[dataset](r)
    if not ps.pairs:
        hint = {"intphys": "O1/<scene>/{1..4}/scene/*.png + status.json",
                "grasp": "P_<prop>/NAME.mp4 + IP_<prop>/NAME.mp4",
                "inflevel": "<property>.csv with vid1_path, vid2_path, vid1_label",
                "folder": "possible/NAME.mp4 + impossible/NAME.mp4"}[dataset]
        extra = f" ({len(ps.problems)} problems, first: {ps.problems[0]})" if ps.problems else ""
        raise UserError(f"no (possible, impossible) pairs found under {r} for --dataset {dataset}; "
                        f"expected {hint}{extra}")
    return ps


# -- frames ---------------------------------------------------------------------------------------
def load_frames(ref: VideoRef, frame_step: int = 1,
                image_fps: float = IMAGE_SEQUENCE_FPS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All frames of a video (or image folder) from ``ref.start_frame`` on, every ``frame_step``-th:
    ``(T, H, W, 3)`` uint8, their actual timestamps ``(T,)`` in seconds and their indices in the
    whole video ``(T,)``. Raises CorruptVideo."""
    p = ref.path
    if p.is_dir():
        from PIL import Image

        files = sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_EXTS)[ref.start_frame :: frame_step]
        if not files:
            raise CorruptVideo(f"no images in {p}")
        try:
            frames = np.stack([np.asarray(Image.open(q).convert("RGB")) for q in files])
        except (OSError, ValueError) as err:
            raise CorruptVideo(f"cannot read the frames of {p}: {err}") from None
        idx = ref.start_frame + frame_step * np.arange(len(files))
        return frames, idx / float(image_fps), idx
    info = probe_video(p)
    fps = info.fps if info.fps > 0 else info.num_frames / max(info.duration, 1e-6)
    idx = np.arange(ref.start_frame, info.num_frames, frame_step)
    if len(idx) == 0:
        raise CorruptVideo(f"{p} has {info.num_frames} frames, none after frame {ref.start_frame}")
    frames, actual = decode_at(p, idx / fps)
    keep = np.concatenate([[True], np.diff(actual) > 1e-6])  # header over-counts: drop repeats of the last frame
    return frames[keep], actual[keep], idx[keep]


# -- surprise -------------------------------------------------------------------------------------
@dataclass
class Surprise:
    """Per-step surprise of one video: the model's, copy-last's and the context mean's, at each predicted frame."""

    curve: np.ndarray  # (S,) model L1 per step
    copy_last: np.ndarray  # (S,) copy-last L1 per step
    target_frames: np.ndarray  # (S,) frame number of each predicted frame (in the whole video)
    target_times: np.ndarray  # (S,) its actual timestamp, seconds
    context_mean: np.ndarray | None = None  # (S,) L1 of the mean of the context frames (the hedging baseline)

    def stat(self, curve: str = "curve", how: str = "mean") -> float:
        """``how`` (``mean`` or ``max``) over the steps of one curve: ``curve`` (the model),
        ``copy_last`` or ``context_mean``."""
        return float(getattr(getattr(self, curve), how)())


#: a pair is scored on each curve (key prefix, Surprise field) with each aggregation (key suffix, how)
CURVES = (("", "curve"), ("copy_last_", "copy_last"), ("context_mean_", "context_mean"))
AGGREGATIONS = (("", "mean"), ("_max", "max"))


PredictFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def window_targets(times: np.ndarray, context: int, stride: int = 1,
                   gap: float | None = None) -> tuple[np.ndarray, int]:
    """Target frame indices of the sliding windows, and the gap in frames between the last context
    frame and the target (1 = the next frame; ``gap`` seconds are rounded to whole frames)."""
    n = len(times)
    k = 1
    if gap is not None and n > 1:
        dt = float(np.median(np.diff(times)))
        k = max(1, int(round(gap / dt))) if dt > 0 else 1
    first = context - 1 + k
    return np.arange(first, n, max(1, stride)), k


def surprise_from_features(feats: torch.Tensor, times: np.ndarray | torch.Tensor, predict: PredictFn | None,
                           context: int = 4, stride: int = 1, gap: float | None = None,
                           batch_size: int = 32) -> Surprise:
    """Sliding-window surprise from encoded frames ``feats (T, h, w, D)`` at ``times (T,)`` seconds.

    ``predict(context (B, C, h, w, D), context_times (B, C), query_times (B, 1)) -> (B, 1, h, w, D)``;
    ``None`` gives copy-last only (``curve`` = copy-last). Windows are batched ``batch_size`` at a time.
    """
    if context < 1:
        raise UserError(f"--context must be >= 1, got {context}")
    t = torch.as_tensor(np.asarray(times, dtype=np.float64), dtype=torch.float32)
    targets, k = window_targets(np.asarray(times, dtype=np.float64), context, stride, gap)
    if len(targets) == 0:
        raise CorruptVideo(f"too short: {len(t)} frames, a window needs {context + k}")
    offs = torch.arange(-(context - 1 + k), -k + 1)  # (C,) context offsets from the target
    curve, copy, hedge = [], [], []
    for s in range(0, len(targets), batch_size):
        tgt = torch.as_tensor(targets[s : s + batch_size])  # (B,)
        cidx = tgt[:, None] + offs[None]  # (B, C)
        ctx, ctimes = feats[cidx], t[cidx]  # (B, C, h, w, D), (B, C)
        truth = feats[tgt].float()  # (B, h, w, D)
        last = ctx[:, -1].float()
        copy.append((last - truth).abs().flatten(1).mean(1))
        hedge.append((ctx.float().mean(1) - truth).abs().flatten(1).mean(1))
        if predict is not None:
            pred = predict(ctx, ctimes.to(ctx.device), t[tgt][:, None].to(ctx.device))[:, 0].float()
            curve.append((pred - truth).abs().flatten(1).mean(1))
    cl = torch.cat(copy).cpu().numpy().astype(np.float64)
    cv = torch.cat(curve).cpu().numpy().astype(np.float64) if curve else cl.copy()
    cm = torch.cat(hedge).cpu().numpy().astype(np.float64)
    return Surprise(cv, cl, targets, np.asarray(times, dtype=np.float64)[targets], cm)


def video_surprise(wm: Any, frames: np.ndarray, times: np.ndarray, resolution: int, context: int = 4,
                   stride: int = 1, gap: float | None = None, batch_size: int = 32,
                   copy_last_only: bool = False) -> Surprise:
    """Encode ``frames (T, H, W, 3)`` uint8 at ``resolution`` with ``wm``'s encoder and score them."""
    x = resize_crop(frames, (resolution, resolution))  # (T, 3, r, r)
    feats = wm.encode(x[None], batch_size=batch_size)[0]  # (T, h, w, D)
    predict = None if copy_last_only else wm.predict
    return surprise_from_features(feats, times, predict, context, stride, gap, batch_size)


# -- relative accuracy ----------------------------------------------------------------------------
def relative_accuracy(possible: Sequence[float], impossible: Sequence[float]) -> float:
    """Share of pairs where the possible video is less surprising (ties count half)."""
    p, i = np.asarray(possible, dtype=np.float64), np.asarray(impossible, dtype=np.float64)
    if p.shape != i.shape or p.ndim != 1:
        raise ValueError(f"need two equal-length 1-D score lists, got {p.shape} and {i.shape}")
    if len(p) == 0:
        return float("nan")
    return float(((p < i) + 0.5 * (p == i)).mean())


@dataclass
class PairResult:
    pair: Pair
    possible: Surprise
    impossible: Surprise


#: relative_accuracy, relative_accuracy_max, copy_last_relative_accuracy, ... (model, then the references)
SCORES: dict[str, Callable[[Surprise], float]] = {
    f"{prefix}relative_accuracy{suffix}": (lambda s, c=curve, h=how: s.stat(c, h))
    for prefix, curve in CURVES for suffix, how in AGGREGATIONS
}


def _accuracies(results: Sequence[PairResult]) -> dict[str, float]:
    return {k: relative_accuracy([f(r.possible) for r in results], [f(r.impossible) for r in results])
            for k, f in SCORES.items()}


def summarize(results: Sequence[PairResult]) -> dict[str, Any]:
    """Relative accuracies (model, copy-last, context-mean; mean / max) over all pairs, per property and
    averaged over properties (Table 2's convention)."""
    out: dict[str, Any] = {**_accuracies(results), "pairs": len(results)}
    props = sorted({r.pair.property for r in results if r.pair.property is not None})
    if props:
        per = {}
        for p in props:
            sub = [r for r in results if r.pair.property == p]
            per[p] = {**_accuracies(sub), "pairs": len(sub)}
        out["per_property"] = per
        out["property_mean"] = {k: float(np.mean([per[p][k] for p in props])) for k in SCORES}
    return out


# -- the whole evaluation -------------------------------------------------------------------------
@dataclass
class PhysicsEval:
    results: list[PairResult]
    summary: dict[str, Any]
    skipped: list[str]  # "path: reason" of each unreadable video (its pairs are skipped)


def evaluate_pairs(wm: Any, pairs: Sequence[Pair], resolution: int, context: int = 4, stride: int = 1,
                   gap: float | None = None, frame_step: int = 1, image_fps: float = IMAGE_SEQUENCE_FPS,
                   batch_size: int = 32, copy_last_only: bool = False,
                   progress: Callable[[str], None] | None = None) -> PhysicsEval:
    """Surprise of every video of ``pairs`` (each video scored once) and the relative accuracies.
    Unreadable or too-short videos are skipped with their pairs and counted; never a crash midway."""
    cache: dict[VideoRef, Surprise | None] = {}
    skipped: list[str] = []

    def score(ref: VideoRef) -> Surprise | None:
        if ref not in cache:
            try:
                frames, times, idx = load_frames(ref, frame_step, image_fps)
                s = video_surprise(wm, frames, times, resolution, context, stride, gap, batch_size, copy_last_only)
                s.target_frames = idx[s.target_frames]  # frame numbers in the whole video
                cache[ref] = s
            except CorruptVideo as err:
                skipped.append(f"{ref.path}: {err}")
                cache[ref] = None
        return cache[ref]

    results = []
    for n, pair in enumerate(pairs):
        sp, si = score(pair.possible), score(pair.impossible)
        if sp is not None and si is not None:
            results.append(PairResult(pair, sp, si))
        if progress and ((n + 1) % 10 == 0 or n + 1 == len(pairs)):
            progress(f"pairs {n + 1}/{len(pairs)} ({len(skipped)} videos skipped)")
    if not results:
        first = f"; first: {skipped[0]}" if skipped else ""
        raise UserError(f"no pair could be evaluated ({len(skipped)} unreadable or too-short videos{first})")
    summary = summarize(results)
    summary["skipped_videos"] = len(skipped)
    return PhysicsEval(results, summary, skipped)


def format_table(summary: dict[str, Any]) -> str:
    """Per-property table (Table 9 style) in percent: model, copy-last and context-mean, each mean / max."""
    cols = list(SCORES)
    head = (f"{'property':<28} {'pairs':>5} {'mean':>7} {'max':>7} {'copy':>7} {'copy-max':>8} {'ctxmean':>8} "
            f"{'ctx-max':>8}")
    lines = [head]

    def row(name: str, d: dict[str, Any], n: int | str) -> str:
        v = [100 * d[c] for c in cols]
        return f"{name:<28} {n!s:>5} {v[0]:7.1f} {v[1]:7.1f} {v[2]:7.1f} {v[3]:8.1f} {v[4]:8.1f} {v[5]:8.1f}"

    for p, d in summary.get("per_property", {}).items():
        lines.append(row(p, d, d["pairs"]))
    if "property_mean" in summary:
        lines.append(row("mean over properties", summary["property_mean"], ""))
    lines.append(row("all pairs", summary, summary["pairs"]))
    return "\n".join(lines)


def plot_surprise_curves(results: Sequence[PairResult], path: str | Path, max_pairs: int = 4) -> str | None:
    """Surprise curves of a few pairs (one per property first), departure frame marked."""
    if not results:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..viz import save_figure

    chosen, seen = [], set()
    for r in results:  # one pair per property first, then the rest in order
        if r.pair.property not in seen:
            chosen.append(r)
            seen.add(r.pair.property)
    chosen += [r for r in results if r not in chosen]
    chosen = chosen[:max_pairs]
    cols = min(len(chosen), 3)
    rows = math.ceil(len(chosen) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.0 * rows), constrained_layout=True)
    FigureCanvasAgg(fig)
    for k, r in enumerate(chosen):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax2 = ax.twinx()  # copy-last errors live on another scale
        for s, label, colour in ((r.possible, "possible", "tab:blue"), (r.impossible, "impossible", "tab:red")):
            ax.plot(s.target_frames, s.curve, color=colour, label=f"{label} (model)")
            ax2.plot(s.target_frames, s.copy_last, color=colour, ls=":", alpha=0.7, label=f"{label} copy-last")
        ax2.set_ylabel("copy-last L1 (dotted)", fontsize=8)
        if r.pair.departure_frame is not None:
            ax.axvline(r.pair.departure_frame, color="k", ls="--", lw=1, label="departure")
        ax.set_title(f"{r.pair.name}" + (f" ({r.pair.property})" if r.pair.property else ""), fontsize=9)
        ax.set_xlabel("predicted frame")
        ax.set_ylabel("model surprise (L1)")
        if k == 0:
            h1, l1 = ax.get_legend_handles_labels()
            h2, l2 = ax2.get_legend_handles_labels()
            ax.legend(h1 + h2, l1 + l2, fontsize=6)
    fig.set_dpi(110)
    return str(save_figure(fig, path))


def write_outputs(ev: PhysicsEval, out: str | Path, plot_pairs: int = 6) -> dict[str, str]:
    """``summary.json``, ``surprise.jsonl`` (per pair: both curves) and ``surprise_curves.png``."""
    o = Path(out)
    o.mkdir(parents=True, exist_ok=True)
    atomic_write_json(o / "summary.json", {**ev.summary, "skipped": ev.skipped}, indent=1)
    with atomic_path(o / "surprise.jsonl") as tmp, tmp.open("w") as f:
        for r in ev.results:
            f.write(json.dumps({
                "name": r.pair.name, "property": r.pair.property, "departure_frame": r.pair.departure_frame,
                "possible": str(r.pair.possible.path), "impossible": str(r.pair.impossible.path),
                **{f"{w}_{prefix}{how}": getattr(r, w).stat(curve, how) for w in ("possible", "impossible")
                   for prefix, curve in CURVES for _, how in AGGREGATIONS},
                "target_frames": r.possible.target_frames.tolist(),
                "possible_curve": r.possible.curve.tolist(), "impossible_curve": r.impossible.curve.tolist(),
            }) + "\n")
    files = {"summary": str(o / "summary.json"), "surprise": str(o / "surprise.jsonl")}
    plot = plot_surprise_curves(ev.results, o / "surprise_curves.png", plot_pairs)
    if plot:
        files["plot"] = plot
    return files
