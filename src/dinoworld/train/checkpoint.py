"""Run checkpoints: a model folder (:mod:`dinoworld.model.folder`) + ``train_state.pt`` for resume.

A checkpoint is written into a temporary sibling folder and renamed into place, so a run killed
at any moment leaves either the previous complete checkpoints or the new complete one.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from ..files import fsync_dir
from ..model.folder import CHECKPOINTS_DIR, CheckpointMeta, complete_checkpoints, latest_checkpoint, write_model_folder

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
    write_model_folder(tmp, state, dataclasses.replace(meta, step=step))
    if train_state is not None:
        torch.save(train_state, tmp / STATE_FILE)
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    fsync_dir(tmp)
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


def load_train_state(folder: Path) -> dict[str, Any]:
    path = folder / STATE_FILE
    if not path.is_file():
        raise UserError(f"{folder} has no {STATE_FILE}; it can initialise a model but not resume a run")
    return torch.load(path, map_location="cpu", weights_only=False)


__all__ = ["STATE_FILE", "latest_checkpoint", "load_train_state", "save_checkpoint"]
