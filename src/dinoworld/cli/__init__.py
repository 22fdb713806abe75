"""``dinoworld`` command line: the only entry layer. Each verb parses its arguments and calls one
library function; no library module imports this package.

A :class:`~dinoworld.errors.UserError`, a bad option and a fault of the operating system (full disk,
read-only folder) are printed as one line (``error: ...``) and exit with status 2 (set
``DINOWORLD_TRACEBACK=1`` to see the traceback of an OS fault). A verb's ``run`` returns its exit
status or its result as a dict; with ``--json`` that dict is the only thing on stdout, and every
human line goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys

from ..errors import run_for_user
from . import collect, demo, encode, eval, finetune, info, make_probe, plan, rollout, train
from .verb import Verb

#: every verb, in the order of ``dinoworld --help``
VERBS: tuple[Verb, ...] = (
    info.INFO, train.TRAIN, encode.ENCODE, collect.COLLECT, finetune.FINETUNE, plan.PLAN, rollout.ROLLOUT, demo.DEMO,
    eval.EVAL, make_probe.MAKE_PHYSICS_PROBE, make_probe.MAKE_FORECAST_PROBE,
)

#: the first line of every verb's example, in an order where each command reads what an earlier one
#: wrote: one story to paste top to bottom on a CPU, from the repository's root (configs/ is there)
STORY: tuple[str, ...] = tuple(
    line.strip() for v in (info.INFO, demo.DEMO, rollout.ROLLOUT, make_probe.MAKE_PHYSICS_PROBE,
                           make_probe.MAKE_FORECAST_PROBE, encode.ENCODE, train.TRAIN, eval.EVAL,
                           collect.COLLECT, finetune.FINETUNE, plan.PLAN)
    for line in (v.example.split("\n") if v is eval.EVAL else v.example.split("\n")[:1])
)


def _finite(x):
    """``x`` with NaN/Inf floats as None, so that the JSON is standard (``jq`` refuses NaN)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block): what is wrong and where to look."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="dinoworld",
        description="DINO-world: a latent video world model on frozen DINOv2 features.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples, one story to paste top to bottom from the repository's root (each command reads what "
               "an earlier one wrote; all run on a CPU):\n" + "\n".join(f"  {line}" for line in STORY),
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
    as_json = bool(getattr(args, "json", False))
    with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
        status, result = run_for_user(lambda: args._run(args))
    if status:
        return status
    if isinstance(result, dict):
        if as_json:
            print(json.dumps(_finite(result), default=str, allow_nan=False), flush=True)
        return 0
    return int(result or 0)


__all__ = ["VERBS", "Verb", "build_parser", "main"]
