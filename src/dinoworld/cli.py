"""``dinoworld`` command line: thin parsing on top of library functions.

Each verb registers its own parser in :data:`VERBS`; a :class:`~dinoworld.errors.UserError`
is printed as one line (``error: ...``) and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable

from .errors import UserError

VERBS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def verb(name: str, help: str, example: str):
    """Register ``add_args(parser)`` + ``run(args)`` as a sub-command with an example in ``--help``."""

    def deco(add_args):
        def wrap(run):
            VERBS[name] = (add_args, run, help, example)  # type: ignore[assignment]
            return run

        return wrap

    return deco


# -- info ---------------------------------------------------------------------------------------
def _info_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", default="base", help="predictor size: tiny, small, base, large, giant (default: base)")
    p.add_argument("--action-dim", type=int, default=0, help="add action blocks for actions of this width")
    p.add_argument("--in-dim", type=int, default=768, help="encoder feature width D (default 768, DINOv2-B)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


@verb("info", "parameter counts and configuration of a predictor size",
      "dinoworld info --size base --action-dim 10")(_info_args)
def run_info(args: argparse.Namespace) -> int:
    import torch

    from .model import build_predictor, count_parameters

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dinoworld",
        description="DINO-world: a latent video world model on frozen DINOv2 features.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n" + "\n".join(f"  {v[3]}" for v in VERBS.values()),
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name, (add_args, run, help, example) in VERBS.items():  # type: ignore[misc]
        p = sub.add_parser(name, help=help, description=help, epilog=f"example:\n  {example}",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        add_args(p)
        p.set_defaults(_run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    _load_verbs()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "verb", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _load_verbs() -> None:
    """Import the modules that register the other verbs (kept out of import time of the package)."""
    import importlib

    for mod in ("dinoworld.train.cli", "dinoworld.rollout_cli", "dinoworld.demo", "dinoworld.envs.cli", "dinoworld.train.finetune"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise


if __name__ == "__main__":
    # `python -m dinoworld.cli` runs this file as __main__: dispatch through the real module so the
    # verbs registered by other modules (which import dinoworld.cli) are found.
    from dinoworld.cli import main as _main

    sys.exit(_main())
