"""A planning run's output folder: what determines its results (``plan.json``), resuming it, refusing to mix runs.

A rerun of the same settings into the same folder resumes after the last finished batch (``plan.json``
records the checkpoint, data and settings; each batch has its own seeds, so the resumed summary equals
an uninterrupted one). A rerun that asks for more episodes and changes nothing else extends the run:
the episodes are drawn in a fixed order, so the first ones stay the same, and the finished batches that
fit the new count are kept (a last batch cut short by the old count is planned again in full). Other
settings, fewer episodes included, are refused unless ``overwrite``. One process at a time plans into a
folder (per kind of run): a second one is refused while the first lives, since both would append rows.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

try:
    import fcntl
except ImportError:  # not on POSIX: folders are not locked
    fcntl = None  # type: ignore[assignment]

from ..data.trajectories import collection_fingerprint
from ..errors import UserError
from ..files import atomic_write_json, atomic_write_text
from ..model import WorldModel
from .protocol import PlanningConfig


@dataclass(frozen=True)
class RunFiles:
    """The files of one kind of run in an output folder."""

    identity: str  #: what determines the run's results, written at its start
    rows: str  #: one JSON row per finished episode, appended batch by batch
    patterns: tuple[str, ...]  #: every file the run writes (removed by ``overwrite``)


#: a planning run (and its budget sweep)
PLAN_FILES = RunFiles("plan.json", "episodes.jsonl",
                      ("plan.json", "episodes.jsonl", "summary.json", "episode_*.mp4", "budget_sweep.*"))
#: ``plan --ceiling``: its own files, so a ceiling and a plan can share a folder
CEILING_FILES = RunFiles("ceiling_plan.json", "ceiling_episodes.jsonl",
                         ("ceiling_plan.json", "ceiling_episodes.jsonl", "ceiling.json"))
#: settings that change how candidates pass through memory, not the results
OPERATIONAL_SETTINGS = ("chunk",)
#: settings that earlier versions recorded and that are gone, with the one value they could take from the
#: command line (the behaviour kept): a run that recorded it still resumes
RETIRED_SETTINGS: dict[tuple[str, ...], Any] = {("cost_model",): "world_model", ("cem", "min_std"): 0.0}


def checkpoint_fingerprint(wm: WorldModel) -> str:
    """A hash of the checkpoint's metadata and predictor weights (as planned with: after the precision cast)."""
    h = hashlib.sha256(json.dumps(wm.meta.to_json(), sort_keys=True, default=str).encode())
    for name, t in wm.predictor.state_dict().items():
        t = t.detach().reshape(-1).cpu()
        h.update(f"{name} {t.dtype} {t.numel()}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def run_identity(wm: WorldModel, env_name: str, data: str | Path, cfg: PlanningConfig, bf16: bool) -> dict[str, Any]:
    """Everything that determines a run's rows: the checkpoint, env, collection and settings."""
    settings = {k: v for k, v in asdict(cfg).items() if k not in OPERATIONAL_SETTINGS}
    settings["precision"] = "bf16" if bf16 else "fp32"
    return {"checkpoint": checkpoint_fingerprint(wm), "env": env_name, "collection": collection_fingerprint(data),
            "data": str(Path(data).resolve()), "settings": json.loads(json.dumps(settings))}


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """``"key: old before, new now"`` for each setting that differs (nested ones as ``cem.samples``)."""
    out = []
    for k in sorted(set(old) | set(new), key=str):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a} before, {b} now")
    return out


def _without_retired(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` less the :data:`RETIRED_SETTINGS` that hold the value the code still behaves as."""
    settings = json.loads(json.dumps(settings))
    for path, value in RETIRED_SETTINGS.items():
        *parents, key = path
        where = settings
        for p in parents:
            where = where.get(p) if isinstance(where, dict) else None
        if isinstance(where, dict) and key in where and where[key] == value:
            del where[key]
    return settings


def _compared(run: dict[str, Any]) -> dict[str, Any]:
    """What must match for a run to resume another (the data may have moved: its path is not compared)."""
    return {"checkpoint": run.get("checkpoint"), "env": run.get("env"), "collection": run.get("collection"),
            **_without_retired(run.get("settings", {}))}


#: the folder locks this process holds, open until it exits
_HELD: dict[Path, Any] = {}


def hold_out(out_dir: Path, files: RunFiles = PLAN_FILES) -> None:
    """Lock ``out_dir`` for one kind of run for as long as this process lives (the OS drops the lock when
    the process ends, however it ends); another process that holds it means a refusal in one line."""
    path = (out_dir / f".{files.rows}.lock").resolve()
    if fcntl is None or path in _HELD:
        return
    fh = open(path, "w")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise UserError(f"another process is planning into {out_dir} (both would append to {files.rows}); "
                        "wait for it to finish, or give another --out") from None
    _HELD[path] = fh


def prepare_out(out_dir: Path, run: dict[str, Any], cfg: PlanningConfig, overwrite: bool,
                files: RunFiles = PLAN_FILES) -> list[dict[str, Any]]:
    """Make ``out_dir`` ready for ``run``; returns the rows of the batches an earlier, identical run finished."""
    out_dir.mkdir(parents=True, exist_ok=True)
    hold_out(out_dir, files)
    used = sorted(p for pattern in files.patterns for p in out_dir.glob(pattern) if p.is_file())
    rows: list[dict[str, Any]] = []
    plan_file = out_dir / files.identity
    if used and overwrite:
        for p in used:
            p.unlink()
    elif plan_file.is_file():
        old = json.loads(plan_file.read_text())
        diff = _differences(_compared(old), _compared(run))
        if diff and _extends(old, run):
            print(f"{out_dir}: extending a run of {old['settings']['episodes']} episodes to "
                  f"{run['settings']['episodes']}", file=sys.stderr)
        elif diff:
            raise UserError(f"{out_dir} holds a planning run with other settings ({'; '.join(diff)}); "
                            "pass --overwrite to replace it, or another --out")
        rows = finished_rows(out_dir / files.rows, cfg)
    elif used:
        raise UserError(f"{out_dir} holds plan outputs ({used[0].name}, ...) that record no settings; "
                        "pass --overwrite to replace them, or another --out")
    atomic_write_json(plan_file, run)
    atomic_write_text(out_dir / files.rows, "".join(json.dumps(r) + "\n" for r in rows))
    return rows


def _extends(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Does ``new`` only ask for more episodes than ``old``?"""
    count = (old.get("settings", {}).get("episodes"), new.get("settings", {}).get("episodes"))
    if not all(isinstance(n, int) for n in count) or count[1] <= count[0]:
        return False
    same = {**new, "settings": {**new["settings"], "episodes": count[0]}}
    return not _differences(_compared(old), _compared(same))


def finished_rows(path: Path, cfg: PlanningConfig) -> list[dict[str, Any]]:
    """The rows of ``path`` up to the last complete batch (a run killed while appending may leave less)."""
    rows = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    keep = 0
    for b0 in range(0, cfg.episodes, cfg.batch):
        want = list(range(b0, min(b0 + cfg.batch, cfg.episodes)))
        if [r.get("episode") for r in rows[b0 : b0 + len(want)]] != want:
            break
        keep = b0 + len(want)
    return rows[:keep]


def say_interrupted(done: int, total: int) -> None:
    """Tell an interrupted run with an output folder how far it got and how to resume it."""
    print(f"interrupted after {done} of {total} episodes; rerun the same command to resume", file=sys.stderr)


def append_rows(out_dir: Path, rows: list[dict[str, Any]], files: RunFiles = PLAN_FILES) -> None:
    """Append a finished batch's rows to the run's rows file (``episodes.jsonl``)."""
    with open(out_dir / files.rows, "a") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
