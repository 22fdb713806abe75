"""Dense forecasting (paper Table 1): ``run_forecast`` / ``add_forecast_args`` for ``dinoworld eval
forecast``, and the ``dinoworld make-forecast-probe`` verb (the offline synthetic benchmark).

Wiring into the ``eval`` verb: give ``forecast`` its own sub-parser (its flags overlap physics'
``--dataset`` choices), call ``add_forecast_args(sub_parser)`` and dispatch to ``run_forecast(args)``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from .common import JSON_HELP, check_output_folder, log, nonneg_int, pick_device, positive_float, positive_int
from .verb import Verb

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
    try:
        wm = WorldModel.from_pretrained(args.checkpoint, encoder_weights=args.encoder_weights,
                                        device=pick_device(args.device))
    except UserError as err:
        raise UserError(f"cannot load checkpoint {args.checkpoint} with its encoder: {err}") from None
    except Exception as err:  # an encoder whose weights or code cannot be loaded
        raise UserError(f"cannot load the encoder of checkpoint {args.checkpoint}: {type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else ''} (pass --encoder-weights PATH?)") from None
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


def _probe_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True,
                   help="output folder (train/*.mp4, sequences/{train,val}/, forecast_probe.json)")
    p.add_argument("--train", type=nonneg_int, default=48,
                   help="unlabelled training videos for the predictor (default 48)")
    p.add_argument("--train-seconds", type=positive_float, default=4.0,
                   help="length of each training video (default 4)")
    p.add_argument("--head-sequences", type=positive_int, default=12,
                   help="labelled sequences for the heads (split train, default 12)")
    p.add_argument("--val-sequences", type=positive_int, default=64,
                   help="labelled sequences to forecast (split val, default 64; with 8 the 95 %% interval of "
                        "model - copy-last at mid spans about 5 mIoU points)")
    p.add_argument("--size", type=positive_int, default=112, help="frame side in px, even (default 112)")
    p.add_argument("--fps", type=positive_float, default=15.0,
                   help="labelled sequences' frame rate (default 15, as VSPW)")
    p.add_argument("--seconds", type=positive_float, default=2.0,
                   help="labelled sequence length, >= 20 frames (default 2)")
    p.add_argument("--objects", type=positive_int, default=3, help="objects per scene (default 3)")
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--json", action="store_true", help=JSON_HELP)


def run_probe(args: argparse.Namespace) -> int:
    from ..eval.forecast.probe import write_forecast_probe

    check_output_folder(args.out)
    try:
        meta = write_forecast_probe(args.out, args.train, args.head_sequences, args.val_sequences, args.size, args.fps,
                                    args.seconds, args.train_seconds, args.objects, args.seed, progress=log)
    except ValueError as err:
        raise UserError(str(err)) from None
    print(f"wrote {args.train} training videos and {args.head_sequences} + {args.val_sequences} labelled sequences "
          f"({args.size}px, {args.fps:g} fps, classes {', '.join(meta['classes'])}) to {args.out}")
    return meta


MAKE_FORECAST_PROBE = Verb(
    "make-forecast-probe",
    "write an offline dense-forecasting benchmark: synthetic training videos + labelled sequences "
    "(classes by shape, depth) for `eval forecast --dataset synthetic`",
    "dinoworld make-forecast-probe --out fprobe --train 200",
    _probe_args, run_probe)
