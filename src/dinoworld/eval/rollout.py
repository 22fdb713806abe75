"""Roll a world model out on a video: predictions, errors against the true future, figures.

Used by ``dinoworld rollout`` and the demo. Errors compare predicted and encoded features of the
true frame at the same time, for the autoregressive rollout, the direct prediction and the
copy-last and context-mean (hedging) baselines, in two metrics: mean absolute error (L1) and the
training objective (smooth L1, β = 0.1), which forgives the many small errors of a blurry
prediction more than L1 does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.video import decode_at, probe_video, resize_crop
from ..errors import UserError
from ..files import atomic_write_json
from ..model import WorldModel, context_mean_prediction, copy_last_prediction, prediction_loss


@dataclass
class Rollout:
    """Everything one rollout produced; arrays are on CPU."""

    frames: np.ndarray  # (N, res, res, 3) uint8: the context + available future frames as the encoder saw them
    times: np.ndarray  # (K_ctx + K,) seconds: actual context times, then query times
    is_context: np.ndarray  # (K_ctx + K,) bool
    true: list[torch.Tensor | None]  # per column: encoded features (h, w, D) or None past the video's end
    autoregressive: torch.Tensor  # (K, h, w, D)
    direct: torch.Tensor  # (K, h, w, D)
    horizons: list[float]  # seconds after the last context frame
    errors: dict[str, list[float | None]] = field(default_factory=dict)  # method -> per-horizon L1
    errors_smooth_l1: dict[str, list[float | None]] = field(default_factory=dict)  # same, training loss
    #: object centroids ``(row, col)`` in patches (see :func:`object_centroid`): per method and ``"true"``,
    #: one per horizon (None past the video's end), and ``"last-context"``, one entry
    centroids: dict[str, list[tuple[float, float] | None]] = field(default_factory=dict)
    #: method -> per-horizon distance (patches) of the prediction's object centroid to the true one
    centroid_errors: dict[str, list[float | None]] = field(default_factory=dict)
    #: method -> per-horizon ``(overlap, total)`` of :func:`arrival` (None past the video's end)
    arrivals: dict[str, list[tuple[float, float] | None]] = field(default_factory=dict)
    #: ``(D,)`` the feature of "no object" these measures use: per-channel median of the last context frame
    background: torch.Tensor | None = None


def l1(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().mean())


def smooth_l1(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(prediction_loss(a, b))


def object_centroid(feats: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """Where the objects are in a feature map ``(h, w, D)``: the centroid ``(row, col)`` in patch units
    of the squared feature distance to ``background (D,)`` (for scenes on a plain background: the
    objects). A prediction that fades in place keeps its centroid where the objects were; a uniform
    map has its centroid in the middle."""
    d = (feats.float() - background.float()).pow(2).sum(-1)  # (h, w)
    h, w = d.shape
    rows = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w)
    cols = torch.arange(w, dtype=torch.float32)[None, :].expand(h, w)
    total = d.sum().clamp_min(1e-12)
    return torch.stack([(d * rows).sum() / total, (d * cols).sum() / total])


def arrival(pred: torch.Tensor, true: torch.Tensor, last: torch.Tensor,
            background: torch.Tensor) -> tuple[float, float]:
    """How much of the objects' arrival at new places a prediction shows, as ``(overlap, total)``.

    With ``dev(f)`` the per-patch feature distance to ``background (D,)``, the true arrival map is
    ``relu(dev(true) - dev(last))`` (where objects came since the last context frame ``last``), the
    predicted one ``relu(dev(pred) - dev(last))``; ``overlap`` sums their minimum and ``total`` the true
    map. Copy-last scores 0, a prediction that fades or blurs in place about 0, one that moves the
    objects to where they really went up to ``total``.
    """
    a_true, a_pred = arrival_map(true, last, background), arrival_map(pred, last, background)
    return float(torch.minimum(a_pred, a_true).sum()), float(a_true.sum())


def arrival_map(feats: torch.Tensor, last: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """``relu(dev(feats) - dev(last))`` ``(h, w)``: where a feature map ``(h, w, D)`` shows objects that the
    last context frame did not, with ``dev`` the per-patch distance to ``background (D,)`` (see :func:`arrival`)."""
    def dev(f: torch.Tensor) -> torch.Tensor:
        return (f.float() - background.float()).norm(dim=-1)

    return (dev(feats) - dev(last)).clamp_min(0)


def arrival_captured(arrivals: list[dict[str, list]], method: str = "autoregressive") -> list[float | None]:
    """Per horizon, Σ overlap / Σ total of :func:`arrival` over several rollouts (0 = no motion shown,
    1 = every object arrives where it really went)."""
    out: list[float | None] = []
    for i in range(len(arrivals[0][method])):
        pairs = [a[method][i] for a in arrivals if a[method][i] is not None]
        den = sum(t for _, t in pairs)
        out.append(sum(o for o, _ in pairs) / den if den > 0 else None)
    return out


def rollout_video(wm: WorldModel, video: str | Path, context: int = 4, horizon: float = 2.0, step: float = 0.25,
                  start: float = 0.0, resolution: int | None = None) -> Rollout:
    """Context frames at ``start + i*step`` (i < context), then predictions every ``step`` up to ``horizon``."""
    if context < 1 or step <= 0 or horizon < step:
        raise UserError("need --context >= 1, --step > 0 and --horizon >= --step")
    info = probe_video(video)
    res = resolution or wm.meta.training_resolution
    k = int(round(horizon / step))
    ctx_t = start + step * np.arange(context)
    fut_t = ctx_t[-1] + step * np.arange(1, k + 1)
    if ctx_t[-1] > info.span:
        raise UserError(f"{video} lasts {info.span:.2f}s; the context needs {ctx_t[-1]:.2f}s "
                        "(lower --start/--step/--context)")
    avail = fut_t <= info.span + 1e-6
    want = np.concatenate([ctx_t, fut_t[avail]])
    raw, actual = decode_at(str(video), want)
    frames = resize_crop(raw, (res, res))  # (N, 3, res, res) in [0, 1]
    feats = wm.encode(frames[None])[0]  # (N, h, w, D)
    frames = (frames.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    ctx_times = torch.tensor(actual[:context], dtype=torch.float32)[None]
    q = torch.tensor(np.concatenate([actual[context:], fut_t[~avail]]), dtype=torch.float32)[None]
    ctx = feats[None, :context]
    ar = wm.rollout(ctx, ctx_times, q)[0].cpu()
    direct = wm.predict(ctx, ctx_times, q)[0].cpu()
    true: list[torch.Tensor | None] = [f.cpu() for f in feats] + [None] * int((~avail).sum())
    out = Rollout(frames=frames, times=np.concatenate([actual[:context], q[0].numpy()]),
                  is_context=np.arange(context + k) < context, true=true, autoregressive=ar, direct=direct,
                  horizons=[float(h) for h in (q[0].numpy() - actual[context - 1])])
    copy = copy_last_prediction(ctx, ctx_times, q)[0].cpu()
    hedge = context_mean_prediction(ctx, q)[0].cpu()
    # background of the object centroids: per-channel median of the last context frame's tokens
    bg = ctx[0, -1].reshape(-1, ctx.shape[-1]).median(dim=0).values.cpu()
    out.background = bg

    def centroid(f: torch.Tensor | None) -> tuple[float, float] | None:
        return None if f is None else tuple(float(v) for v in object_centroid(f, bg))

    out.centroids["true"] = [centroid(t) for t in true[context:]]
    out.centroids["last-context"] = [centroid(true[context - 1])]
    for name, preds in (("autoregressive", ar), ("direct", direct), ("copy-last", copy), ("context-mean", hedge)):
        out.errors[name] = [None if t is None else l1(p, t) for p, t in zip(preds, true[context:])]
        out.errors_smooth_l1[name] = [None if t is None else smooth_l1(p, t) for p, t in zip(preds, true[context:])]
        out.centroids[name] = [centroid(p) for p in preds]
        out.centroid_errors[name] = [
            None if t is None else float(np.hypot(c[0] - t[0], c[1] - t[1]))
            for c, t in zip(out.centroids[name], out.centroids["true"])]
        out.arrivals[name] = [None if t is None else arrival(p, t, true[context - 1], bg)
                              for p, t in zip(preds, true[context:])]
    return out


def write_rollout_outputs(r: Rollout, out_dir: str | Path, name: str = "rollout",
                          title: str | None = None) -> dict[str, str]:
    """Figure (PNG), video (MP4), horizon plot (PNG) and errors (JSON) of a rollout."""
    from ..viz import fit_pca, horizon_plot, motion_figure, rollout_figure, write_rollout_mp4

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    known = torch.stack([t for t in r.true if t is not None])
    pca = fit_pca(known, k=3)
    n_ctx = int(r.is_context.sum())
    preds: list[torch.Tensor | None] = [None] * n_ctx + list(r.autoregressive)
    frames = list(r.frames) + [None] * (len(r.times) - len(r.frames))
    files = {
        "figure": str(rollout_figure(frames, r.times, r.true, preds, r.is_context, out / f"{name}.png", pca=pca,
                                     title=title)),
        "video": str(write_rollout_mp4(frames, r.true, preds, r.times, r.is_context, out / f"{name}.mp4", pca=pca)),
    }
    if r.background is not None:  # where objects arrived since the last context frame: truth vs prediction
        last, bg = r.true[n_ctx - 1], r.background
        maps = {"where objects arrived": [None if t is None else arrival_map(t, last, bg) for t in r.true[n_ctx:]],
                "predicted (AR)": [arrival_map(p, last, bg) for p in r.autoregressive]}
        heading = (title + ": " if title else "") + "motion since the last context frame"
        files["motion"] = str(motion_figure(frames[n_ctx:], r.times[n_ctx:], maps, out / f"{name}_motion.png",
                                            title=heading))
    have = [i for i, e in enumerate(r.errors["copy-last"]) if e is not None]
    if have:
        files["horizons"] = str(horizon_plot([r.horizons[i] for i in have],
                                             {m: [e[i] for i in have] for m, e in r.errors.items()},
                                             out / f"{name}_horizons.png", ylabel="L1 error to encoded future"))
    report = {"horizons_s": r.horizons, "errors_l1": r.errors, "errors_smooth_l1": r.errors_smooth_l1,
              "centroid_errors_patches": r.centroid_errors,
              "arrival_captured": {m: arrival_captured([r.arrivals], m) for m in r.arrivals},
              "times_s": r.times.tolist(), "files": files}
    atomic_write_json(out / f"{name}.json", report)
    files["json"] = str(out / f"{name}.json")
    return files


def attention_outputs(wm: WorldModel, r: Rollout, out_dir: str | Path, query_rc: tuple[int, int] | None = None,
                      blocks: list[int] | None = None, name: str = "attention") -> str:
    """Fig. 6: cross-attention of one query of the first predicted frame over the context patches."""
    from ..viz import attention_figure

    n_ctx = int(r.is_context.sum())
    ctx = torch.stack([t for t in r.true[:n_ctx]])[None].to(wm.device)  # (1, T, h, w, D)
    h, w = ctx.shape[2:4]
    rc = query_rc or (h // 2, w // 2)
    depth = wm.predictor.cfg.depth
    blocks = blocks or sorted({depth // 3, (2 * depth) // 3})
    times = torch.tensor(r.times[:n_ctx], dtype=torch.float32)[None].to(wm.device)
    q = torch.tensor([[r.times[n_ctx]]], dtype=torch.float32, device=wm.device)
    maps = wm.predictor.attention_maps(ctx, times, q, token=rc[0] * w + rc[1], blocks=blocks)[:, 0]
    future = r.frames[n_ctx] if len(r.frames) > n_ctx else np.zeros_like(r.frames[0])
    return str(attention_figure(r.frames[:n_ctx], maps.cpu().numpy(), future, rc, blocks,
                                Path(out_dir) / f"{name}.png", times=list(r.times[:n_ctx]),
                                query_time=float(r.times[n_ctx])))


def summarise(errors: list[dict[str, list[float | None]]]) -> dict[str, list[float | None]]:
    """Mean per-horizon error over several rollouts (ignoring missing truths)."""
    out: dict[str, list[float | None]] = {}
    for method in errors[0]:
        cols = list(zip(*[e[method] for e in errors]))
        out[method] = [float(np.mean([v for v in c if v is not None])) if any(v is not None for v in c) else None
                       for c in cols]
    return out


def as_jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
