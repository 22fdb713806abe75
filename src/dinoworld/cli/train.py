"""``dinoworld train``: pre-train (or fine-tune) a predictor from a config."""

from __future__ import annotations

import argparse

from .common import JSON_HELP, check_output_folder, overrides_anywhere, positive_int, print_run_summary
from .verb import Verb


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file of overrides on top of the paper's defaults (see configs/)")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. optim.lr=3e-4 data.source=videos/")
    p.add_argument("--no-resume", action="store_true", help="ignore checkpoints already in out_dir")
    p.add_argument("--max-steps", type=positive_int, help="stop after this global step (the schedule is unchanged)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    overrides_anywhere(p)


def run_train(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..train import TrainConfig, train

    cfg = load_config(TrainConfig, args.config, args.overrides)
    check_output_folder(cfg.out_dir, "out_dir")
    return print_run_summary(train(cfg, resume=not args.no_resume, max_steps=args.max_steps))


TRAIN = Verb(
    "train", "pre-train (or fine-tune) a predictor; resumes from out_dir's last checkpoint",
    "dinoworld train --config configs/tiny-cpu.yaml data.source=fcache out_dir=runs/fprobe\n"
    "  torchrun --nproc-per-node 8 -m dinoworld.cli train --config configs/paper-giant.yaml "
    "data.source=shards-{000000..009999}.tar", _train_args, run_train)
