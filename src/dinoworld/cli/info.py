"""``dinoworld info``."""

from __future__ import annotations

import argparse
import json

from .verb import Verb


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", default="base", help="predictor size: tiny, small, base, large, giant (default: base)")
    p.add_argument("--action-dim", type=int, default=0, help="add action blocks for actions of this width")
    p.add_argument("--in-dim", type=int, default=768, help="encoder feature width D (default 768, DINOv2-B)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..model import build_predictor, count_parameters

    with torch.device("meta"):  # counts only: nothing is allocated, even for giant
        model = build_predictor(args.size, action_dim=args.action_dim, in_dim=args.in_dim)
    counts = count_parameters(model)
    out = {"size": args.size, "parameters": counts, "config": model.cfg.to_dict()}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"predictor {args.size}: {counts['total'] / 1e6:.1f}M parameters "
              f"({counts['base'] / 1e6:.1f}M predictor + {counts['action'] / 1e6:.1f}M action blocks)")
        for k, v in out["config"].items():
            print(f"  {k}: {v}")
    return 0


INFO = Verb("info", "parameter counts and configuration of a predictor size",
            "dinoworld info --size base --action-dim 10", _args, run)
