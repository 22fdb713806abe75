"""``dinoworld finetune``: action-conditioned fine-tuning on environment trajectories."""

from __future__ import annotations

import argparse
import os

from .common import (
    JSON_HELP,
    check_output_folder,
    log,
    nonneg_int,
    overrides_anywhere,
    positive_float,
    positive_int,
    print_run_summary,
)
from .verb import Verb


def _finetune_args(p: argparse.ArgumentParser) -> None:
    from ..train.finetune import MODES

    p.add_argument("--env", required=True, help="environment of the trajectories: pusht, wall or pointmaze")
    p.add_argument("--data", required=True, help="trajectory folder (`dinoworld collect` output or DINO-WM's layout)")
    p.add_argument("--mode", required=True, choices=MODES,
                   help="scratch: random init, all trained; frozen: --init frozen, action blocks trained; "
                        "full: --init, everything trained")
    p.add_argument("--init", help="pre-trained checkpoint folder (or run folder: its latest checkpoint)")
    p.add_argument("--features", help="feature cache of --data (`dinoworld encode DATA --out FOLDER`): the encoder "
                                      "then never runs during training (data.features)")
    p.add_argument("--config", help="YAML file of overrides (same keys as `dinoworld train`)")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. optim.batch_size=256 data.num_workers=8")
    p.add_argument("--epochs", type=positive_float, default=25.0,
                   help="passes over every clip window of the training episodes (default 25, as the paper); "
                        "ignored when stages=... is given")
    p.add_argument("--out", help="run folder (default runs/finetune-ENV-MODE); rerun to resume")
    p.add_argument("--no-resume", action="store_true", help="ignore checkpoints already in the run folder")
    p.add_argument("--max-steps", type=positive_int, help="stop after this global step (the schedule is unchanged)")
    p.add_argument("--check-batches", type=nonneg_int, default=8,
                   help="held-out batches for the true-vs-shuffled-actions check at the end (0 = skip)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    overrides_anywhere(p)


def run_finetune(args: argparse.Namespace) -> int:
    from ..train import train
    from ..train.finetune import (
        action_check,
        action_check_lines,
        cpu_warning,
        heldout_check_problem,
        prepare_finetune,
    )

    check_output_folder(args.out)
    cfg, info = prepare_finetune(args.env, args.data, args.mode, init=args.init, config=args.config,
                                 overrides=args.overrides, epochs=args.epochs, out=args.out, features=args.features)
    check_output_folder(cfg.out_dir, "--out" if args.out else "out_dir")
    warning = cpu_warning(cfg)
    if warning:
        log(warning)
    print(f"finetune {args.mode} on {args.env}: {cfg.total_steps} steps of {cfg.optim.batch_size} clips "
          f"({cfg.data.num_frames} frames, frameskip {cfg.data.frameskip}, actions {cfg.model.action_dim}-d, "
          f"{cfg.stages[-1].resolution} px) from {len(info.train)} training episodes, {len(info.val)} held out")
    single = int(os.environ.get("WORLD_SIZE", "1")) == 1
    check = args.check_batches > 0 and single and cfg.finetune.val_fraction > 0
    problem = heldout_check_problem(cfg, info) if check else None
    if problem:  # said before training, so that a run that succeeds does not end in an error
        log(f"warning: the held-out action check will be skipped: {problem}")
    summary = train(cfg, resume=not args.no_resume, max_steps=args.max_steps, return_model=True, trajectory=info)
    model = summary.pop("model")
    if check and not problem:
        summary["action_check"] = action_check(cfg, model, args.check_batches, info)
        for line in action_check_lines(summary["action_check"]):
            print(line)
    return print_run_summary(summary)


FINETUNE = Verb("finetune", "action-conditioned fine-tuning on env trajectories (scratch, frozen or full)",
                "dinoworld finetune --env wall --data data/wall --mode scratch --config configs/finetune-cpu.yaml "
                "--out runs/wall",
                _finetune_args, run_finetune)
