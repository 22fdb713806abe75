"""Small helpers every verb module shares: logging, devices, checked numeric options, output folders."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable

from ..errors import UserError
from ..files import nearest_existing

#: the help of every verb's ``--json`` flag
JSON_HELP = "print the result as one JSON object on stdout (every other line goes to stderr)"


def log(msg: str) -> None:
    """Progress and warnings go to stderr, so that with ``--json`` stdout holds the JSON object alone."""
    print(msg, file=sys.stderr, flush=True)


def pick_device(choice: str | None = None) -> str:
    """``--device`` as given (refused in one line when it is not there), else ``cuda`` when available, else ``cpu``."""
    import torch

    if not choice:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(choice).type
    except RuntimeError:
        raise UserError(f"--device {choice!r} is not a torch device; use cpu or cuda (cuda:N)") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {choice}: no CUDA GPU is visible to torch {torch.__version__}; use --device cpu")
    return choice


def _number(kind: type, lo: float, inclusive: bool, hi: float | None = None) -> Callable[[str], float]:
    """An argparse ``type`` that parses ``kind`` and refuses values outside ``[lo, hi]`` (``(lo, hi]``)."""
    bound = f">= {lo:g}" if inclusive else f"> {lo:g}"
    want = f"{'an integer' if kind is int else 'a number'} {bound}" + (f" and <= {hi:g}" if hi is not None else "")

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {want}, got {text!r}") from None
        if value != value or (value < lo if inclusive else value <= lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"expected {want}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


#: argparse types: counts that must be at least 1, at least 0, and numbers that must be positive
positive_int = _number(int, 1, True)
nonneg_int = _number(int, 0, True)
positive_float = _number(float, 0, False)
nonneg_float = _number(float, 0, True)


def check_output_folder(path: str | os.PathLike | None, flag: str = "--out") -> None:
    """Refuse an output folder that cannot be made or written, *before* any work; creates nothing.

    The nearest existing ancestor must be a folder that takes a new file (tried with a file that is
    removed at once), and the folder itself, if it exists, must be a folder: permission bits alone
    prove nothing to root, a read-only mount or a path under a regular file do.
    """
    if not path:
        return
    target = Path(path).expanduser()
    where = f"{flag} {path}"
    if any(len(p.encode()) > 255 for p in target.parts):
        raise UserError(f"{where}: a name in the path is longer than 255 bytes; choose a shorter {flag}")
    probe = nearest_existing(target)
    if not probe.is_dir():
        raise UserError(f"{where}: {probe} is not a folder (a file is in the way); choose another {flag}")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".dinoworld-write-test-", dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as err:
        raise UserError(f"{where}: cannot write in {probe} ({err.strerror}); choose another {flag}") from None


def overrides_anywhere(p: argparse.ArgumentParser) -> None:
    """Let dotted ``key=value`` overrides come before, between or after flags.

    argparse fills a ``nargs="*"`` positional from one run of tokens only, so ``--max-steps 30
    val_every=30 --json x=1`` leaves ``x=1`` over. This parser's leftover ``key=value`` tokens are
    appended to ``overrides`` (in order); anything else stays unrecognized and argparse rejects it.
    """
    def parse_known_args(args=None, namespace=None):
        ns, rest = argparse.ArgumentParser.parse_known_args(p, args, namespace)
        extra = [a for a in rest if "=" in a and not a.startswith("-")]
        ns.overrides = [*(ns.overrides or []), *extra]
        return ns, [a for a in rest if a not in extra]

    p.parse_known_args = parse_known_args  # type: ignore[method-assign]


def print_run_summary(summary: dict) -> dict:
    """The last lines of a training run: its validation loss beside both baselines, and its checkpoint."""
    if "val/loss" in summary:
        print(f"final val loss {summary['val/loss']:.4f} vs copy-last {summary['val/copy_last']:.4f}, "
              f"context-mean {summary['val/context_mean']:.4f}")
    print(f"step {summary['step']}: checkpoint {summary['checkpoint']}")
    return summary
