"""Run checkpoints: a model folder (:mod:`dinoworld.model.folder`) + ``train_state.pt`` for resume.

A checkpoint is written into a temporary sibling folder and renamed into place, so a run killed
at any moment leaves either the previous complete checkpoints or the new complete one.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from ..files import fsync_dir
from ..model.folder import (
    CHECKPOINTS_DIR,
    CheckpointMeta,
    complete_checkpoints,
    latest_checkpoint,
    newest_usable,
    read_model_folder,
    write_model_folder,
)

STATE_FILE = "train_state.pt"


def save_checkpoint(
    run_dir: str | Path, step: int, state: dict[str, torch.Tensor], meta: CheckpointMeta,
    train_state: dict[str, Any] | None, keep: int = 3,
) -> Path:
    """Atomically write ``run_dir/checkpoints/step_XXXXXXXX`` and prune to the newest ``keep``."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:08d}"
    tmp = root / f".tmp-step_{step:08d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        write_model_folder(tmp, state, dataclasses.replace(meta, step=step))
        if train_state is not None:
            _save_torch(train_state, tmp / STATE_FILE)
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # the previous checkpoint stays the newest
        raise
    if final.exists():  # re-saving the same step: move the old one aside first
        old = root / f".old-{final.name}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    fsync_dir(root)
    for stale in complete_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(stale, ignore_errors=True)
    return final


def _save_torch(obj: Any, path: Path) -> None:
    """``torch.save``, whose zip writer reports a failed write (a full disk) as a RuntimeError: as an OSError."""
    try:
        torch.save(obj, path)
    except RuntimeError as err:
        full = shutil.disk_usage(path.parent).free < 256 * 2**20
        raise OSError(errno.ENOSPC if full else errno.EIO, f"writing failed ({str(err).splitlines()[0][:120]})",
                      str(path)) from err


def load_train_state(folder: Path) -> dict[str, Any]:
    path = folder / STATE_FILE
    if not path.is_file():
        raise UserError(f"{folder} has no {STATE_FILE}; it can initialise a model but not resume a run")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # truncated / garbage files raise pickle, zip or EOF errors
        raise UserError(f"{path} cannot be read ({type(err).__name__}: {str(err).strip().splitlines()[0][:200]}); "
                        "the file is damaged: resume from an earlier checkpoint or pass --no-resume") from None
    if not isinstance(state, dict) or "step" not in state:
        raise UserError(f"{path} is not a dinoworld train state; resume from an earlier checkpoint or pass --no-resume")
    return state


def resume_point(run_dir: str | Path, say=print, move: bool = True
                 ) -> tuple[Path, dict[str, Any], dict[str, torch.Tensor]] | None:
    """``(folder, train_state, weights)`` of the newest checkpoint that can resume the run, or None.

    Newer checkpoints that cannot (no or unreadable ``train_state.pt`` or weights) are renamed to
    ``.unusable-step_*`` (when ``move``: rank 0 only) so that nothing picks them up as the run's newest,
    and ``say`` gets one line.
    Raises the newest one's error if no checkpoint can resume.
    """
    found = newest_usable(run_dir, lambda f: (load_train_state(f), read_model_folder(f)[1]))
    if found is None:
        return None
    folder, (state, weights), refused = found
    if refused:
        bad = [f for f, _ in refused]
        for b in bad if move else []:
            os.replace(b, b.with_name(f".unusable-{b.name}"))
        say(f"cannot resume from {', '.join(b.name for b in reversed(bad))} ({refused[0][1]}); resuming from the "
            f"newest usable checkpoint {folder.name} instead (moved the others to .unusable-*)")
    return folder, state, weights


def remove_stale_writes(run_dir: str | Path) -> list[Path]:
    """Delete the temporary folders that killed checkpoint writes left behind; returns them."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    stale = sorted(p for p in root.glob(".tmp-step_*") if p.is_dir()) if root.is_dir() else []
    stale += sorted(p for p in root.glob(".old-step_*") if p.is_dir()) if root.is_dir() else []
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    return stale


__all__ = ["STATE_FILE", "latest_checkpoint", "load_train_state", "remove_stale_writes", "resume_point",
           "save_checkpoint"]
