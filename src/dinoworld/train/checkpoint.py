"""Checkpoint folders: ``config.json`` + ``model.safetensors`` (+ ``train_state.pt`` for resume).

The model part is hub-compatible (upload the folder as is; ``WorldModel.from_pretrained`` reads
it). A checkpoint is written into a temporary sibling folder and renamed into place, so a run
killed at any moment leaves either the previous complete checkpoints or the new complete one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..errors import UserError

CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
STATE_FILE = "train_state.pt"
FORMAT = "dinoworld-predictor/1"
_STEP_DIR = re.compile(r"^step_(\d{8})$")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_model_folder(folder: Path, state: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write ``config.json`` (``meta`` + format tag) and ``model.safetensors`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(folder / MODEL_FILE))
    (folder / CONFIG_FILE).write_text(json.dumps({"format": FORMAT, **meta}, indent=2, sort_keys=True))


def read_model_folder(folder: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(meta, state_dict)`` of a folder written by :func:`write_model_folder`."""
    folder = Path(folder)
    cfg, weights = folder / CONFIG_FILE, folder / MODEL_FILE
    if not cfg.is_file() or not weights.is_file():
        raise UserError(f"{folder} is not a dinoworld checkpoint (needs {CONFIG_FILE} and {MODEL_FILE})")
    meta = json.loads(cfg.read_text())
    if meta.get("format") != FORMAT:
        raise UserError(f"{cfg} has format {meta.get('format')!r}, expected {FORMAT!r}")
    return meta, load_file(str(weights))


def save_checkpoint(
    run_dir: str | Path, step: int, state: dict[str, torch.Tensor], meta: dict[str, Any],
    train_state: dict[str, Any] | None, keep: int = 3,
) -> Path:
    """Atomically write ``run_dir/checkpoints/step_XXXXXXXX`` and prune to the newest ``keep``."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:08d}"
    tmp = root / f".tmp-step_{step:08d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    write_model_folder(tmp, state, {**meta, "step": step})
    if train_state is not None:
        torch.save(train_state, tmp / STATE_FILE)
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    _fsync_dir(tmp)
    if final.exists():  # re-saving the same step: move the old one aside first
        old = root / f".old-{final.name}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    _fsync_dir(root)
    for stale in sorted(complete_checkpoints(run_dir))[:-keep] if keep > 0 else []:
        shutil.rmtree(stale, ignore_errors=True)
    return final


def complete_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoint folders, oldest first (temporary folders of killed writes are ignored)."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _STEP_DIR.match(p.name) and (p / MODEL_FILE).is_file()]
    return sorted(found, key=lambda p: int(_STEP_DIR.match(p.name).group(1)))


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = complete_checkpoints(run_dir)
    return found[-1] if found else None


def load_train_state(folder: Path) -> dict[str, Any]:
    path = folder / STATE_FILE
    if not path.is_file():
        raise UserError(f"{folder} has no {STATE_FILE}; it can initialise a model but not resume a run")
    return torch.load(path, map_location="cpu", weights_only=False)
