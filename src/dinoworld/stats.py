"""Confidence intervals shared by the evaluations: Wilson for a success rate, a paired bootstrap for a
difference of two methods measured on the same groups."""

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


def paired_success_difference(a: list[bool], b: list[bool], draws: int = 2000, seed: int = 0,
                              groups: list[Any] | None = None) -> tuple[float, list[float] | None]:
    """``mean(a) - mean(b)`` of two success lists over the same episodes, with the 95 % interval of a
    paired bootstrap (``None`` with fewer than two groups). ``groups`` (one label per episode, e.g. its
    trajectory) are resampled whole, so that episodes that share a trajectory (and, in Wall, its
    layout) are not counted as independent; by default every episode is its own group."""
    if len(a) != len(b):
        raise ValueError(f"paired lists differ in length: {len(a)} and {len(b)}")
    labels = np.arange(len(a)) if groups is None else np.asarray(groups)
    if len(labels) != len(a):
        raise ValueError(f"{len(labels)} group labels for {len(a)} episodes")
    _, which = np.unique(labels, return_inverse=True)
    g = int(which.max()) + 1 if len(a) else 0
    count = np.bincount(which, minlength=g).astype(np.float64)
    wins = {k: np.bincount(which, weights=np.asarray(v, np.float64), minlength=g) for k, v in (("a", a), ("b", b))}
    diff = float((wins["a"].sum() - wins["b"].sum()) / len(a)) if len(a) else 0.0
    ci = paired_bootstrap_ci(lambda k, w: (w * wins[k]).sum(1) / (w * count).sum(1), "a", "b", g, draws, seed)
    return diff, ci


__all__ = ["paired_bootstrap_ci", "paired_success_difference", "wilson_ci95"]
