"""``dinoworld`` command line: the only entry layer. Each verb parses its arguments and calls one
library function; no library module imports this package.

A :class:`~dinoworld.errors.UserError` is printed as one line (``error: ...``) and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import UserError
from . import collect, forecast, info, physics, plan, rollout, train
from .verb import Verb

#: every verb, in the order of ``dinoworld --help``
VERBS: tuple[Verb, ...] = (
    info.INFO, train.TRAIN, train.ENCODE, collect.COLLECT, train.FINETUNE, plan.PLAN, rollout.ROLLOUT, rollout.DEMO,
    physics.EVAL, physics.MAKE_PHYSICS_PROBE, forecast.MAKE_FORECAST_PROBE,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dinoworld",
        description="DINO-world: a latent video world model on frozen DINOv2 features.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n" + "\n".join(f"  {v.example}" for v in VERBS),
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for v in VERBS:
        p = sub.add_parser(v.name, help=v.help, description=v.help, epilog=f"example:\n  {v.example}",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        v.add_args(p)
        p.set_defaults(_run=v.run)
    return parser


def main(argv: list[str] | None = None) -> int:
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


__all__ = ["VERBS", "Verb", "build_parser", "main"]
