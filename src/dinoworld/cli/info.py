"""``dinoworld info``."""

from __future__ import annotations

import argparse

from .common import JSON_HELP, nonneg_int, positive_int
from .verb import Verb


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", default="base", help="predictor size: tiny, small, base, large, giant (default: base)")
    p.add_argument("--action-dim", type=nonneg_int, default=0, help="add action blocks for actions of this width")
    p.add_argument("--in-dim", type=positive_int, default=768, help="encoder feature width D (default 768, DINOv2-B)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..model import build_predictor, count_parameters

    with torch.device("meta"):  # counts only: nothing is allocated, even for giant
        model = build_predictor(args.size, action_dim=args.action_dim, in_dim=args.in_dim)
    counts = count_parameters(model)
    out = {"size": args.size, "parameters": counts, "config": model.cfg.to_dict()}
    if not args.json:
        print(f"predictor {args.size}: {counts['total'] / 1e6:.1f}M parameters "
              f"({counts['base'] / 1e6:.1f}M predictor + {counts['action'] / 1e6:.1f}M action blocks)")
        for k, v in out["config"].items():
            print(f"  {k}: {v}")
    return out


INFO = Verb("info", "parameter counts and configuration of a predictor size",
            "dinoworld info --size base --action-dim 10", _args, run)
