"""``dinoworld eval BENCHMARK`` (``physics``: intuitive-physics benchmarks; ``forecast``: dense
forecasting, from :mod:`.forecast`) and ``dinoworld make-physics-probe``.

Each benchmark is a sub-parser of the ``eval`` verb with its own flags: add one to :data:`BENCHMARKS`.
"""

from __future__ import annotations

import argparse
from typing import Callable

from ..errors import UserError
from . import forecast
from .common import JSON_HELP, check_output_folder, log, nonneg_int, pick_device, positive_float, positive_int
from .verb import Verb


def _physics_args(p: argparse.ArgumentParser) -> None:
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
    try:
        wm = WorldModel.from_pretrained(args.checkpoint, encoder_weights=args.encoder_weights,
                                        device=pick_device(args.device))
    except UserError as err:
        raise UserError(f"cannot load checkpoint {args.checkpoint} with its encoder: {err}") from None
    except Exception as err:  # an encoder whose weights or code cannot be loaded
        raise UserError(f"cannot load the encoder of checkpoint {args.checkpoint}: {type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else ''} (pass --encoder-weights PATH?)") from None
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


def _probe_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder (train/, possible/, impossible/, pairs.json)")
    p.add_argument("--pairs", type=positive_int, default=25,
                   help="matched pairs, spread over the 5 properties (default 25)")
    p.add_argument("--train", type=positive_int, default=64, help="plausible training videos (default 64)")
    p.add_argument("--size", type=positive_int, default=112, help="frame side in px, even (default 112)")
    p.add_argument("--fps", type=positive_float, default=10.0, help="frame rate (default 10)")
    p.add_argument("--seconds", type=positive_float, default=3.5, help="video length (default 3.5)")
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--json", action="store_true", help=JSON_HELP)


def run_probe(args: argparse.Namespace) -> int:
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


#: ``dinoworld eval NAME``: (help, add_args, run, example)
Benchmark = tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], str]
BENCHMARKS: dict[str, Benchmark] = {
    "physics": ("intuitive physics: relative accuracy of surprise over (possible, impossible) pairs "
                "(IntPhys, GRASP, InfLevel, a folder)", _physics_args, run_physics,
                "dinoworld eval physics --dataset folder --root probe --checkpoint demo_out/model --out physics"),
    "forecast": ("dense forecasting: segmentation mIoU / depth RMSE of present-time heads on predicted features "
                 "(Cityscapes, VSPW, KITTI, synthetic)", forecast.add_forecast_args, forecast.run_forecast,
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
MAKE_PHYSICS_PROBE = Verb("make-physics-probe", "simulate an offline intuitive-physics probe (pymunk): plausible "
                          "training videos + matched possible/impossible pairs",
                          "dinoworld make-physics-probe --out probe --pairs 25 --train 64",
                          _probe_args, run_probe)
