"""User-facing errors.

A :class:`UserError` carries one line that says what is wrong and what to do about it.
The CLI prints it without a traceback and exits with status 2.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, TypeVar

R = TypeVar("R")


class UserError(Exception):
    """An error caused by the user's input or environment (bad path, missing weights, bad size)."""


def os_error_line(err: OSError) -> str:
    """One line for a fault of the operating system: what failed, on which path, and what to do."""
    import errno
    import shutil
    from pathlib import Path

    from .files import nearest_existing

    path = err.filename or ""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        free = ""
        probe = nearest_existing(Path(path).parent if path else Path.cwd())
        try:
            free = f"; {shutil.disk_usage(probe).free / 2**20:.1f} MiB free on {probe}"
        except OSError:
            pass
        return f"the disk is full writing {path or 'a file'}{free}: free space or choose another output folder"
    if err.errno == errno.ENAMETOOLONG:
        return f"file name too long: {path[:80]}{'...' if len(path) > 80 else ''}; choose a shorter name"
    if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"cannot write {path} ({err.strerror}); choose another output folder"
    return f"{err.strerror or type(err).__name__}{': ' + str(path) if path else ''}"


def run_for_user(run: Callable[[], R]) -> tuple[int, R | None]:
    """Call ``run`` as every command and script does: a :class:`UserError` or an OS fault becomes one
    ``error:`` line on stderr and status 2 (``DINOWORLD_TRACEBACK=1`` re-raises OS faults), an interrupt
    ``interrupted`` and status 130; otherwise ``(0, its result)``."""
    try:
        return 0, run()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2, None
    except OSError as err:
        if os.environ.get("DINOWORLD_TRACEBACK"):
            raise
        print(f"error: {os_error_line(err)}", file=sys.stderr)
        return 2, None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130, None
