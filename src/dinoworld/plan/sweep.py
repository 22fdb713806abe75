"""Success against planning budget: the same evaluation at several budgets (samples x iterations), and its plot."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..files import atomic_write_json
from ..model import WorldModel
from .evaluate import evaluate
from .protocol import PlanningConfig


def parse_budgets(text: str) -> list[tuple[int, int]]:
    """``"32x3,64x10,300x30"`` -> ``[(32, 3), (64, 10), (300, 30)]`` (samples x iterations)."""
    out = []
    for part in text.split(","):
        try:
            n, j = (int(v) for v in part.lower().split("x"))
            if n < 1 or j < 1:
                raise ValueError
            out.append((n, j))
        except ValueError:
            raise UserError(f"--sweep {text!r}: write budgets as SAMPLESxITERATIONS, comma-separated, "
                            "e.g. 64x5,300x30") from None
    return out


def budget_sweep(wm: WorldModel, env_name: str, data: str | Path, cfg: PlanningConfig,
                 budgets: list[tuple[int, int]], out: str | Path, progress: bool = True) -> dict[str, Any]:
    """Success against planning budget (samples x iterations) on the same episodes; writes
    ``budget_sweep.json`` and ``budget_sweep.png`` into ``out``."""
    rows = []
    for n, j in budgets:
        c = replace(cfg, cem=replace(cfg.cem, samples=n, iterations=j, topk=min(cfg.cem.topk, n)),
                    gd=replace(cfg.gd, samples=n, iterations=j), oracle=False)
        s = evaluate(wm, env_name, data, c, out=None, videos=0, progress=progress)
        rows.append({"samples": n, "iterations": j, "budget": s["budget"], "success_rate": s["success_rate"],
                     "ci95": s["ci95"], "random_success_rate": s["random_success_rate"],
                     "seconds_per_plan": s["seconds_per_plan"]})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "budget_sweep.json", rows)
    figure = plot_budget_sweep(rows, cfg.planner, f"{env_name}: success vs budget ({cfg.episodes} episodes)",
                               out / "budget_sweep.png")
    return {"budgets": rows, "figure": str(figure)}


def plot_budget_sweep(rows: list[dict[str, Any]], planner: str, title: str, path: Path) -> Path:
    """Success rate of ``planner`` and of random actions against budget, from :func:`budget_sweep`'s rows."""
    from ..viz import horizon_plot

    horizon_plot([r["budget"] for r in rows], {planner: [r["success_rate"] for r in rows],
                                               "random actions (baseline)": [r["random_success_rate"] for r in rows]},
                 path, ylabel="success rate", ylim=(0, 1), xlabel="planning budget (samples x iterations)", title=title)
    return path
