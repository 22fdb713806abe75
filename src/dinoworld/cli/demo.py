"""``dinoworld demo``: the whole pipeline offline on a CPU."""

from __future__ import annotations

import argparse

from .common import JSON_HELP, check_output_folder, nonneg_int, positive_int
from .verb import Verb


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


DEMO = Verb("demo", "the whole pipeline offline on CPU: videos -> features -> tiny predictor -> rollouts -> report",
            "dinoworld demo --out demo_out        # add --encoder-weights ~/dinov2-with-registers-base for DINOv2",
            _demo_args, run_demo_cli)
