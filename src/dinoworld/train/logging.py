"""Metrics to a JSONL file and (optionally) TensorBoard, written by rank 0 only."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..files import atomic_write_text


class MetricsLogger:
    """Appends ``{"step", "time", **metrics}`` rows to ``out_dir/metrics.jsonl``.

    ``start_step``: the step the run starts (or resumes) at. Rows logged after it by an earlier,
    interrupted run are dropped (they will be logged again), so a resumed run has one row per step;
    TensorBoard events after it are purged the same way.
    """

    def __init__(self, out_dir: str | Path, enabled: bool, tensorboard: bool = True,
                 start_step: int | None = None) -> None:
        self.enabled = enabled
        self.path = Path(out_dir) / "metrics.jsonl"
        self.tb = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if start_step is not None and self.path.exists():
            kept = [line for line in self.path.read_text().splitlines() if _step(line) <= start_step]
            atomic_write_text(self.path, "".join(line + "\n" for line in kept))
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                purge = start_step + 1 if start_step else None
                self.tb = SummaryWriter(str(Path(out_dir) / "tensorboard"), purge_step=purge)
            except ImportError:  # tensorboard is an optional extra
                self.tb = None

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        row = {"step": step, "time": time.time(), **metrics}
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _step(line: str) -> float:
    """A row's step; a torn or foreign line counts as past every step (dropped on resume)."""
    try:
        return float(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return float("inf")


def read_metrics(out_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(out_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
