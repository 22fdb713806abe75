"""``dinoworld rollout`` and ``dinoworld demo``."""

from __future__ import annotations

import argparse

from .common import JSON_HELP, check_output_folder, nonneg_float, nonneg_int, positive_float, positive_int
from .verb import Verb


def _rollout_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", help="a video file FFmpeg can read")
    p.add_argument("--checkpoint", required=True,
                   help="checkpoint folder (config.json + model.safetensors), run folder or hub id")
    p.add_argument("--encoder-weights",
                   help="local folder/file of the encoder weights (default: as recorded, else hub cache)")
    p.add_argument("--context", type=positive_int, default=4, help="context frames (default 4)")
    p.add_argument("--horizon", type=positive_float, default=2.0,
                   help="seconds to predict after the last context frame")
    p.add_argument("--step", type=positive_float, default=0.25, help="seconds between frames (context and rollout)")
    p.add_argument("--start", type=nonneg_float, default=0.0, help="time of the first context frame")
    p.add_argument("--resolution", type=positive_int,
                   help="frame side in px (default: the checkpoint's training resolution)")
    p.add_argument("--attention", action="store_true", help="also draw cross-attention maps (paper Fig. 6)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--json", action="store_true", help=JSON_HELP)


def run_rollout(args: argparse.Namespace) -> int:
    from ..eval.rollout import attention_outputs, rollout_video, write_rollout_outputs
    from ..model import WorldModel

    check_output_folder(args.out)
    wm = WorldModel.from_pretrained(args.checkpoint, encoder_weights=args.encoder_weights)
    r = rollout_video(wm, args.video, context=args.context, horizon=args.horizon, step=args.step,
                      start=args.start, resolution=args.resolution)
    files = write_rollout_outputs(r, args.out, title=str(args.video))
    if args.attention:
        files["attention"] = attention_outputs(wm, r, args.out)
    print(f"{'horizon':>8} {'autoregr.':>10} {'direct':>10} {'copy-last':>10} {'ctx-mean':>10}")
    for i, h in enumerate(r.horizons):
        vals = [r.errors[m][i] for m in ("autoregressive", "direct", "copy-last", "context-mean")]
        print(f"{h:8.2f} " + " ".join(f"{v:10.4f}" if v is not None else f"{'-':>10}" for v in vals))
    for k, v in files.items():
        print(f"{k}: {v}")
    return {"horizons_s": r.horizons, "errors_l1": r.errors, "files": files}


def _demo_args(p: argparse.ArgumentParser) -> None:
    from ..demo import NUM_TRAIN, NUM_VAL, RESOLUTION, STEPS

    p.add_argument("--out", default="demo_out", help="report folder (default demo_out/)")
    p.add_argument("--encoder", default="auto",
                   help="auto (DINOv2-B/14-reg if its weights are cached or given, else the stand-in), "
                        "or an encoder name")
    p.add_argument("--encoder-weights", help="local folder/file (or hub id) of the encoder weights")
    p.add_argument("--steps", type=positive_int, default=STEPS,
                   help=f"training steps (default {STEPS}: about 4 minutes on two CPU cores)")
    p.add_argument("--resolution", type=positive_int, default=RESOLUTION,
                   help="frame side in px (multiple of the patch size)")
    p.add_argument("--train-videos", type=positive_int, default=NUM_TRAIN, help="synthetic training videos")
    p.add_argument("--val-videos", type=positive_int, default=NUM_VAL, help="synthetic held-out videos")
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--json", action="store_true", help=JSON_HELP)


def run_demo_cli(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    check_output_folder(args.out)
    m = run_demo(args.out, args.encoder, args.encoder_weights, args.steps, args.resolution, args.train_videos,
                 args.val_videos, args.seed)
    for name, s in m["heldout"].items():
        e, es = s["errors_l1"], s["errors_smooth_l1"]
        print(f"held-out {name}, shortest horizon {s['horizons_s'][0]:.2f}s: model / copy-last "
              f"smooth-L1 {es['autoregressive'][0]:.4f} / {es['copy-last'][0]:.4f}, "
              f"L1 {e['autoregressive'][0]:.4f} / {e['copy-last'][0]:.4f}")
    return m


ROLLOUT = Verb("rollout",
               "roll a checkpoint out on a video: figure, MP4, per-step errors vs copy-last, direct vs autoregressive",
               "dinoworld rollout demo_out/videos/val/real/carphone_pristine.mp4 --checkpoint demo_out/model "
               "--out rollout",
               _rollout_args, run_rollout)
DEMO = Verb("demo", "the whole pipeline offline on CPU: videos -> features -> tiny predictor -> rollouts -> report",
            "dinoworld demo --out demo_out        # add --encoder-weights ~/dinov2-with-registers-base for DINOv2",
            _demo_args, run_demo_cli)
