"""``dinoworld rollout``: roll a checkpoint out on a video."""

from __future__ import annotations

import argparse

from .common import JSON_HELP, check_output_folder, nonneg_float, positive_float, positive_int
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
    wm = WorldModel.load(args.checkpoint, encoder_weights=args.encoder_weights)
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


ROLLOUT = Verb("rollout",
               "roll a checkpoint out on a video: figure, MP4, per-step errors vs copy-last, direct vs autoregressive",
               "dinoworld rollout demo_out/videos/val/real/carphone_pristine.mp4 --checkpoint demo_out/model "
               "--out rollout",
               _rollout_args, run_rollout)
