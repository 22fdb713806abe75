"""``dinoworld make-physics-probe`` and ``dinoworld make-forecast-probe``: the offline benchmarks' data."""

from __future__ import annotations

import argparse

from ..errors import UserError
from .common import JSON_HELP, check_output_folder, log, nonneg_int, positive_float, positive_int
from .verb import Verb


def _physics_probe_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder (train/, possible/, impossible/, pairs.json)")
    p.add_argument("--pairs", type=positive_int, default=25,
                   help="matched pairs, spread over the 5 properties (default 25)")
    p.add_argument("--train", type=positive_int, default=64, help="plausible training videos (default 64)")
    p.add_argument("--size", type=positive_int, default=112, help="frame side in px, even (default 112)")
    p.add_argument("--fps", type=positive_float, default=10.0, help="frame rate (default 10)")
    p.add_argument("--seconds", type=positive_float, default=3.5, help="video length (default 3.5)")
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--json", action="store_true", help=JSON_HELP)


def run_physics_probe(args: argparse.Namespace) -> int:
    from ..eval.physics.probe import write_physics_probe

    check_output_folder(args.out)
    meta = write_physics_probe(args.out, args.pairs, args.train, args.size, args.fps, args.seconds, args.seed,
                               progress=log)
    counts: dict[str, int] = {}
    for m in meta["pairs"].values():
        counts[m["property"]] = counts.get(m["property"], 0) + 1
    print(f"wrote {args.train} training videos and {len(meta['pairs'])} pairs to {args.out} "
          f"({', '.join(f'{k} {v}' for k, v in counts.items())})")
    return {"out": str(args.out), "train": args.train, "pairs": len(meta["pairs"]), "per_property": counts}


def _forecast_probe_args(p: argparse.ArgumentParser) -> None:
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


def run_forecast_probe(args: argparse.Namespace) -> int:
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


MAKE_PHYSICS_PROBE = Verb("make-physics-probe", "simulate an offline intuitive-physics probe (pymunk): plausible "
                          "training videos + matched possible/impossible pairs",
                          "dinoworld make-physics-probe --out probe --pairs 25 --train 64",
                          _physics_probe_args, run_physics_probe)
MAKE_FORECAST_PROBE = Verb(
    "make-forecast-probe",
    "write an offline dense-forecasting benchmark: synthetic training videos + labelled sequences "
    "(classes by shape, depth) for `eval forecast --dataset synthetic`",
    "dinoworld make-forecast-probe --out fprobe --train 200",
    _forecast_probe_args, run_forecast_probe)
