"""Line and bar plots: a metric against prediction horizon (paper Fig. 3), one number per label."""

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .canvas import (
    PathLike,
    new_figure,
    save_figure,
)

__all__ = ["render_horizon_plot", "horizon_plot", "bar_plot"]


#: line style per method name (baselines dashed/dotted and drawn on top, so no model curve hides them)
_CURVE_STYLES = {
    "autoregressive": dict(color="tab:blue", linestyle="-", marker="o", zorder=2),
    "model": dict(color="tab:blue", linestyle="-", marker="o", zorder=2),
    "direct": dict(color="tab:green", linestyle="-", marker="s", zorder=2),
    "copy-last": dict(color="black", linestyle="--", marker="D", zorder=4),
    "context-mean": dict(color="tab:orange", linestyle=":", marker="^", zorder=3),
}


def render_horizon_plot(
    horizons: Sequence[float],
    curves: Mapping[str, Sequence[float]],
    ylabel: str = "L1 error",
    *,
    xlabel: str = "prediction horizon (s)",
    title: str | None = None,
    ylim: tuple[float | None, float | None] | None = None,
    dpi: int = 120,
) -> Figure:
    """The figure of :func:`horizon_plot`, not saved. The legend sits outside the axes (right), so it
    never covers a curve; known methods get fixed, distinct styles, baselines drawn above the model."""
    hs = [float(h) for h in horizons]
    fig = new_figure(6.4, 3.4, dpi)
    ax = fig.add_axes((0.12, 0.15, 0.58, 0.72 if title else 0.78))
    markers = "osD^vP*X"
    for i, (name, ys) in enumerate(curves.items()):
        ys_f = [float("nan") if y is None else float(y) for y in ys]
        if len(ys_f) != len(hs):
            raise ValueError(f"curve {name!r} has {len(ys_f)} points for {len(hs)} horizons")
        style = _CURVE_STYLES.get(name.lower(), dict(
            marker=markers[i % len(markers)], zorder=2,
            linestyle="--" if "copy" in name.lower() or "baseline" in name.lower() else "-"))
        ax.plot(hs, ys_f, markersize=4, linewidth=1.5, label=name, **style)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    if curves:
        ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    return fig


def horizon_plot(
    horizons: Sequence[float],
    curves: Mapping[str, Sequence[float]],
    path: PathLike,
    ylabel: str = "L1 error",
    *,
    xlabel: str = "prediction horizon (s)",
    title: str | None = None,
    ylim: tuple[float | None, float | None] | None = None,
    dpi: int = 120,
) -> Path:
    """Line plot of a metric against prediction horizon, one line per method (paper Fig. 3).

    ``ylim=(bottom, top)`` fixes the y range, e.g. ``(0, 1)`` for rates; ``None`` for either end, or
    for ``ylim``, leaves it to the data.
    """
    fig = render_horizon_plot(horizons, curves, ylabel, xlabel=xlabel, title=title, ylim=ylim, dpi=dpi)
    return save_figure(fig, path)


def bar_plot(
    values: Mapping[str, float],
    path: PathLike,
    errors: Mapping[str, float] | None = None,
    ylabel: str = "",
    *,
    title: str | None = None,
    dpi: int = 120,
) -> Path:
    """Bar chart of one number per label (optionally with ± error bars), e.g. for a report table."""
    names = list(values)
    ys = [float(values[n]) for n in names]
    err = None if errors is None else [float(errors.get(n, math.nan)) for n in names]
    fig = new_figure(max(3.0, 0.8 * len(names) + 1.5), 3.2, dpi)
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(np.arange(len(names)), ys, yerr=err, capsize=3, color="tab:blue", alpha=0.85)
    ax.set_xticks(np.arange(len(names)))
    ax.set_xticklabels(names, rotation=20 if max((len(n) for n in names), default=0) > 8 else 0,
                       ha="right" if max((len(n) for n in names), default=0) > 8 else "center", fontsize=8)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)

