"""Reporting an intuitive-physics evaluation: the per-property text table, the surprise-curve plot
and the output folder (``summary.json``, ``surprise.jsonl``, ``surprise_curves.png``)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...files import atomic_path, atomic_write_json
from .metrics import SCORES, PairResult
from .runner import PhysicsEval
from .surprise import AGGREGATIONS, CURVES


def format_table(summary: dict[str, Any]) -> str:
    """Per-property table (Table 9 style) in percent: model, copy-last and context-mean, each mean / max."""
    cols = list(SCORES)
    head = (f"{'property':<28} {'pairs':>5} {'mean':>7} {'max':>7} {'copy':>7} {'copy-max':>8} {'ctxmean':>8} "
            f"{'ctx-max':>8}")
    lines = [head]

    def row(name: str, d: dict[str, Any], n: int | str) -> str:
        v = [100 * d[c] for c in cols]
        return f"{name:<28} {n!s:>5} {v[0]:7.1f} {v[1]:7.1f} {v[2]:7.1f} {v[3]:8.1f} {v[4]:8.1f} {v[5]:8.1f}"

    for p, d in summary.get("per_property", {}).items():
        lines.append(row(p, d, d["pairs"]))
    if "property_mean" in summary:
        lines.append(row("mean over properties", summary["property_mean"], ""))
    lines.append(row("all pairs", summary, summary["pairs"]))
    return "\n".join(lines)


def plot_surprise_curves(results: Sequence[PairResult], path: str | Path, max_pairs: int = 4) -> str | None:
    """Surprise curves of a few pairs (one per property first), departure frame marked."""
    if not results:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ...viz import save_figure

    chosen, seen = [], set()
    for r in results:  # one pair per property first, then the rest in order
        if r.pair.property not in seen:
            chosen.append(r)
            seen.add(r.pair.property)
    chosen += [r for r in results if r not in chosen]
    chosen = chosen[:max_pairs]
    cols = min(len(chosen), 3)
    rows = math.ceil(len(chosen) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.0 * rows), constrained_layout=True)
    FigureCanvasAgg(fig)
    for k, r in enumerate(chosen):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax2 = ax.twinx()  # copy-last errors live on another scale
        for s, label, colour in ((r.possible, "possible", "tab:blue"), (r.impossible, "impossible", "tab:red")):
            ax.plot(s.target_frames, s.curve, color=colour, label=f"{label} (model)")
            ax2.plot(s.target_frames, s.copy_last, color=colour, ls=":", alpha=0.7, label=f"{label} copy-last")
        ax2.set_ylabel("copy-last L1 (dotted)", fontsize=8)
        if r.pair.departure_frame is not None:
            ax.axvline(r.pair.departure_frame, color="k", ls="--", lw=1, label="departure")
        ax.set_title(f"{r.pair.name}" + (f" ({r.pair.property})" if r.pair.property else ""), fontsize=9)
        ax.set_xlabel("predicted frame")
        ax.set_ylabel("model surprise (L1)")
        if k == 0:
            h1, l1 = ax.get_legend_handles_labels()
            h2, l2 = ax2.get_legend_handles_labels()
            ax.legend(h1 + h2, l1 + l2, fontsize=6)
    fig.set_dpi(110)
    return str(save_figure(fig, path))


def write_outputs(ev: PhysicsEval, out: str | Path, plot_pairs: int = 6) -> dict[str, str]:
    """``summary.json``, ``surprise.jsonl`` (per pair: both curves) and ``surprise_curves.png``."""
    o = Path(out)
    o.mkdir(parents=True, exist_ok=True)
    atomic_write_json(o / "summary.json", {**ev.summary, "skipped": ev.skipped}, indent=1)
    with atomic_path(o / "surprise.jsonl") as tmp, tmp.open("w") as f:
        for r in ev.results:
            f.write(json.dumps({
                "name": r.pair.name, "property": r.pair.property, "departure_frame": r.pair.departure_frame,
                "possible": str(r.pair.possible.path), "impossible": str(r.pair.impossible.path),
                **{f"{w}_{prefix}{how}": getattr(r, w).stat(curve, how) for w in ("possible", "impossible")
                   for prefix, curve in CURVES for _, how in AGGREGATIONS},
                "target_frames": r.possible.target_frames.tolist(),
                "possible_curve": r.possible.curve.tolist(), "impossible_curve": r.impossible.curve.tolist(),
            }) + "\n")
    files = {"summary": str(o / "summary.json"), "surprise": str(o / "surprise.jsonl")}
    plot = plot_surprise_curves(ev.results, o / "surprise_curves.png", plot_pairs)
    if plot:
        files["plot"] = plot
    return files
