"""Small helpers every verb module shares."""

from __future__ import annotations

import sys


def log(msg: str) -> None:
    """Progress and warnings go to stderr, so a ``--json`` last line on stdout stays clean."""
    print(msg, file=sys.stderr, flush=True)


def pick_device(choice: str | None = None) -> str:
    """``--device`` as given, else ``cuda`` when available, else ``cpu``."""
    if choice:
        return choice
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
