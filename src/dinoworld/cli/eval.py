"""``dinoworld eval BENCHMARK``: ``physics`` (intuitive physics: IntPhys, GRASP, InfLevel, a folder) and
``forecast`` (dense forecasting: Cityscapes, VSPW, KITTI, synthetic).

Each benchmark is a sub-parser of the ``eval`` verb with its own flags: add one to :data:`BENCHMARKS`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from ..errors import UserError
from .common import JSON_HELP, check_output_folder, log, nonneg_int, pick_device, positive_float, positive_int
from .verb import Verb


def add_physics_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, choices=("intphys", "grasp", "inflevel", "folder"),
                   help="layout of --root (folder: possible/NAME.mp4 + impossible/NAME.mp4, "
                        "as make-physics-probe writes)")
    p.add_argument("--root", required=True, help="dataset folder")
    p.add_argument("--checkpoint", required=True, help="checkpoint folder, run folder or hub id")
    p.add_argument("--encoder-weights",
                   help="local folder/file of the encoder weights (default: as recorded, else hub cache)")
    p.add_argument("--context", type=positive_int, default=4, help="context frames per window (default 4)")
    p.add_argument("--stride", type=positive_int, default=1, help="frames between consecutive windows (default 1)")
    p.add_argument("--gap", type=positive_float,
                   help="predict the frame this many seconds after the last context frame (default: the next frame)")
    p.add_argument("--frame-step", type=positive_int, default=1, help="use every k-th frame of each video (default 1)")
    p.add_argument("--image-fps", type=positive_float, default=15.0,
                   help="frame rate of image sequences such as IntPhys (default 15)")
    p.add_argument("--res", type=positive_int,
                   help="frame side in px (default: the checkpoint's training resolution, else 224)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="windows (and frames to encode) per batch")
    p.add_argument("--max-pairs", type=positive_int, help="evaluate only the first N pairs (quick checks)")
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--out", help="write summary.json, surprise.jsonl (per-pair curves) and surprise_curves.png here")
    p.add_argument("--plot-pairs", type=nonneg_int, default=6, help="pairs drawn in surprise_curves.png (default 6)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)


def run_physics(args: argparse.Namespace) -> int:
    from ..eval.physics import evaluate_pairs, format_table, read_pairs, write_outputs
    from ..model import WorldModel

    check_output_folder(args.out)
    ps = read_pairs(args.dataset, args.root)  # check the data before loading a model
    for problem in ps.problems:
        log(f"warning: {problem} (skipped)")
    pairs = ps.pairs[: args.max_pairs] if args.max_pairs else ps.pairs
    wm = WorldModel.load(args.checkpoint, encoder_weights=args.encoder_weights, device=pick_device(args.device))
    wm.eval()
    res = args.res or wm.meta.training_resolution
    patch = getattr(wm.encoder, "patch_size", None)
    if patch and res % patch:
        raise UserError(f"--res {res} must be a multiple of the encoder's patch size {patch}")
    log(f"{len(pairs)} pairs ({args.dataset}, {args.root}); encoder {wm.encoder.name} at {res}px; "
         f"context {args.context}, stride {args.stride}")
    ev = evaluate_pairs(wm, pairs, res, args.context, args.stride, args.gap, args.frame_step, args.image_fps,
                        args.batch_size, progress=log)
    for s in ev.skipped:
        log(f"warning: skipped unreadable video {s}")
    print(format_table(ev.summary))
    print(f"relative accuracy (mean surprise) {100 * ev.summary['relative_accuracy']:.1f}%, "
          f"(max) {100 * ev.summary['relative_accuracy_max']:.1f}%, copy-last "
          f"{100 * ev.summary['copy_last_relative_accuracy']:.1f}% over {ev.summary['pairs']} pairs; "
          f"{len(ev.skipped)} unreadable videos skipped")
    out = dict(ev.summary)
    if args.out:
        files = write_outputs(ev, args.out, args.plot_pairs)
        for k, v in files.items():
            print(f"{k}: {v}")
        out["files"] = files
    return out


DATASETS = ("cityscapes", "vspw", "kitti", "synthetic")


def add_forecast_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, choices=DATASETS,
                   help="layout of --root (synthetic: as make-forecast-probe writes it)")
    p.add_argument("--root", required=True, help="dataset folder")
    p.add_argument("--checkpoint", required=True, help="checkpoint folder, run folder or hub id")
    p.add_argument("--heads", help="folder of the present-time heads (HEADS/segmentation, HEADS/depth): loaded "
                   "when there, else trained on --head-split and saved there (default: trained, not saved)")
    p.add_argument("--split", default="val", help="split to forecast (default val)")
    p.add_argument("--head-split", default="train", help="split the heads train on (default train)")
    p.add_argument("--head-steps", type=positive_int, default=1000, help="head training steps (default 1000)")
    p.add_argument("--head-batch-size", type=positive_int, default=8, help="crops per head training step (default 8)")
    p.add_argument("--head-lr", type=positive_float, default=1e-3, help="head learning rate (default 1e-3)")
    p.add_argument("--short-side", type=nonneg_int, help="resize frames to this shortest side before the windows "
                   "(default: 448 for cityscapes/vspw, native for kitti/synthetic; 0 = native)")
    p.add_argument("--window", type=nonneg_int,
                   help="sliding window side (default 448 for cityscapes/vspw; 0 = whole image)")
    p.add_argument("--stride", type=positive_int, help="sliding window stride (default 300)")
    p.add_argument("--encoder-weights",
                   help="local folder/file of the encoder weights (default: as recorded, else hub cache)")
    p.add_argument("--max-samples", type=positive_int, help="forecast only the first N windows (quick checks)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="frames per encoder batch (default 32)")
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--out",
                   help="write forecast.json (summary, per-class IoU, confusion matrices, 95 %% intervals) here")
    p.add_argument("--json", action="store_true", help=JSON_HELP)


def run_forecast(args: argparse.Namespace) -> int:
    from ..eval.forecast import SCORING, Scoring, format_table, run_forecast_eval, write_summary
    from ..eval.forecast.readers import TASKS, read_dense
    from ..model import WorldModel

    check_output_folder(args.out)
    if args.heads and not (Path(args.heads).is_dir() and any(Path(args.heads).iterdir())):
        check_output_folder(args.heads, "--heads")  # heads are trained and saved there
    base = SCORING[args.dataset]
    window = base.window if args.window is None else (args.window, args.window)
    scoring = Scoring(base.short_side if args.short_side is None else args.short_side, window,
                      base.stride if args.stride is None else args.stride)
    read_dense(args.dataset, args.root, args.split, TASKS[args.dataset][0])  # check the data before loading a model
    wm = WorldModel.load(args.checkpoint, encoder_weights=args.encoder_weights, device=pick_device(args.device))
    wm.eval()
    log(f"forecasting {args.dataset} {args.split} ({args.root}) with {args.checkpoint}; encoder {wm.encoder.name}")
    ev = run_forecast_eval(wm, args.dataset, args.root, args.heads, args.split, args.head_split, args.head_steps,
                           args.head_batch_size, args.head_lr, scoring, args.max_samples, args.batch_size, log)
    print(format_table(ev.summary))
    if args.out:
        print(f"summary: {write_summary(ev, args.out)}")
    keep = {k: ev.summary[k] for k in ("miou", "rmse") if k in ev.summary}
    keep.update({k: v for k, v in ev.summary.items() if k not in keep and k not in ("iou_per_class", "confusion")})
    return keep


#: ``dinoworld eval NAME``: (help, add_args, run, example)
Benchmark = tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], str]
BENCHMARKS: dict[str, Benchmark] = {
    "physics": ("intuitive physics: relative accuracy of surprise over (possible, impossible) pairs "
                "(IntPhys, GRASP, InfLevel, a folder)", add_physics_args, run_physics,
                "dinoworld eval physics --dataset folder --root probe --checkpoint demo_out/model --out physics"),
    "forecast": ("dense forecasting: segmentation mIoU / depth RMSE of present-time heads on predicted features "
                 "(Cityscapes, VSPW, KITTI, synthetic)", add_forecast_args, run_forecast,
                 "dinoworld eval forecast --dataset synthetic --root fprobe --checkpoint runs/fprobe "
                 "--heads fheads --out forecast"),
}


def _eval_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for name, (help_, add, run, example) in BENCHMARKS.items():
        b = sub.add_parser(name, help=help_, description=help_, epilog=f"example:\n  {example}",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        add(b)
        b.set_defaults(_benchmark=run)


def run_eval(args: argparse.Namespace) -> int | dict:
    return args._benchmark(args)


EVAL = Verb("eval", "benchmarks: `eval physics` (IntPhys, GRASP, InfLevel, a folder) or `eval forecast` "
            "(Cityscapes, VSPW, KITTI, synthetic); `dinoworld eval BENCHMARK --help` for each",
            "\n  ".join(example for *_, example in BENCHMARKS.values()), _eval_args, run_eval)
