"""Confidence intervals shared by the evaluations: Wilson for a success rate, a paired bootstrap for a
difference of two methods measured on the same groups, and a two-level one when each method ran
under several seeds."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np


def wilson_ci95(successes: int, n: int) -> tuple[float, float]:
    """95 % Wilson score interval of a success rate."""
    if n == 0:
        return (0.0, 1.0)
    z, p = 1.959964, successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def paired_bootstrap_ci(score: Callable[[str, np.ndarray], np.ndarray], a: str, b: str, num_groups: int,
                        draws: int = 2000, seed: int = 0) -> list[float] | None:
    """95 % interval of ``score(a, W) - score(b, W)`` over bootstrap resamples of the groups, drawn with
    replacement as counts ``W (draws, G)``, the same draws for both (paired). Whole sequences are
    resampled, not windows, because the windows of one sequence overlap and are not independent.
    ``None`` with fewer than two groups."""
    if num_groups < 2:
        return None
    w = np.random.default_rng(seed).multinomial(num_groups, np.full(num_groups, 1.0 / num_groups), size=draws)
    d = np.asarray(score(a, w), dtype=np.float64) - np.asarray(score(b, w), dtype=np.float64)
    d = d[np.isfinite(d)]
    return [float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5))] if d.size else None


def _group_index(groups: list[Any] | None, n: int) -> tuple[np.ndarray, int]:
    """Each of ``n`` episodes' group as an index ``0..G-1``, and ``G``; by default each its own group."""
    labels = np.arange(n) if groups is None else np.asarray(groups)
    if len(labels) != n:
        raise ValueError(f"{len(labels)} group labels for {n} episodes")
    _, which = np.unique(labels, return_inverse=True)
    return which, (int(which.max()) + 1 if n else 0)


def paired_success_difference(a: list[bool], b: list[bool], draws: int = 2000, seed: int = 0,
                              groups: list[Any] | None = None) -> tuple[float, list[float] | None]:
    """``mean(a) - mean(b)`` of two success lists over the same episodes, with the 95 % interval of a
    paired bootstrap (``None`` with fewer than two groups). ``groups`` (one label per episode, e.g. its
    trajectory) are resampled whole, so that episodes that share a trajectory (and, in Wall, its
    layout) are not counted as independent; by default every episode is its own group."""
    if len(a) != len(b):
        raise ValueError(f"paired lists differ in length: {len(a)} and {len(b)}")
    which, g = _group_index(groups, len(a))
    count = np.bincount(which, minlength=g).astype(np.float64)
    wins = {k: np.bincount(which, weights=np.asarray(v, np.float64), minlength=g) for k, v in (("a", a), ("b", b))}
    diff = float((wins["a"].sum() - wins["b"].sum()) / len(a)) if len(a) else 0.0
    ci = paired_bootstrap_ci(lambda k, w: (w * wins[k]).sum(1) / (w * count).sum(1), "a", "b", g, draws, seed)
    return diff, ci


def seeds_bootstrap_ci(a: np.ndarray, b: np.ndarray, groups: list[Any] | None = None, draws: int = 2000,
                       seed: int = 0, min_runs: int = 3) -> list[float] | None:
    """95 % interval of the difference in mean success between two settings, each run under several
    seeds on the same episodes: ``a`` is ``(runs_a, episodes)`` and ``b`` ``(runs_b, episodes)`` of 0/1.

    A two-level bootstrap: every draw resamples the groups (as :func:`paired_success_difference`,
    the same draw for both sides) and, independently for each side, that side's runs. The interval
    so covers the spread between seeds as well as the episode sample. ``None`` when a side has fewer
    than ``min_runs`` runs (two values say nothing about a spread) or there are fewer than two groups."""
    runs = {k: np.atleast_2d(np.asarray(v, np.float64)) for k, v in (("a", a), ("b", b))}
    if min(len(r) for r in runs.values()) < min_runs:
        return None
    n = runs["a"].shape[1]
    if runs["b"].shape[1] != n:
        raise ValueError(f"the two sides cover {n} and {runs['b'].shape[1]} episodes")
    which, g = _group_index(groups, n)
    if g < 2:
        return None
    count = np.bincount(which, minlength=g).astype(np.float64)
    rng = np.random.default_rng(seed)
    w = rng.multinomial(g, np.full(g, 1.0 / g), size=draws)

    def score(r: np.ndarray) -> np.ndarray:
        sums = np.stack([np.bincount(which, weights=row, minlength=g) for row in r])  # (runs, groups)
        picked = rng.multinomial(len(r), np.full(len(r), 1.0 / len(r)), size=draws) / len(r)  # (draws, runs)
        return ((picked @ sums) * w).sum(1) / (w * count).sum(1)

    d = score(runs["a"]) - score(runs["b"])
    return [float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5))]


__all__ = ["paired_bootstrap_ci", "paired_success_difference", "seeds_bootstrap_ci", "wilson_ci95"]
