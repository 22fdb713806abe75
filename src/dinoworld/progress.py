"""Progress bars for long loops, quiet in logs."""

from __future__ import annotations

from typing import Any


def progress_bar(*args: Any, **kwargs: Any):
    """A tqdm bar for every long loop (train, encode, collect, plan).

    When stderr is not a terminal (a log file, a job scheduler) each update is a carriage-return
    line, so the bar refreshes at most every 30 s there instead of several times a second.
    """
    import sys

    from tqdm.auto import tqdm

    if not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
        kwargs.setdefault("mininterval", 30.0)
        kwargs.setdefault("maxinterval", 60.0)
    return tqdm(*args, **kwargs)
