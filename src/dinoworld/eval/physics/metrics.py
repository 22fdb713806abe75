"""*Relative accuracy* over matched (possible, impossible) pairs.

The share of pairs where the possible video is less surprising; ties count half. Reported over all
pairs, per property (Table 9) and as the mean over properties (Table 2 averages its categories).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .readers import Pair
from .surprise import AGGREGATIONS, CURVES, Surprise


def relative_accuracy(possible: Sequence[float], impossible: Sequence[float]) -> float:
    """Share of pairs where the possible video is less surprising (ties count half)."""
    p, i = np.asarray(possible, dtype=np.float64), np.asarray(impossible, dtype=np.float64)
    if p.shape != i.shape or p.ndim != 1:
        raise ValueError(f"need two equal-length 1-D score lists, got {p.shape} and {i.shape}")
    if len(p) == 0:
        return float("nan")
    return float(((p < i) + 0.5 * (p == i)).mean())


@dataclass
class PairResult:
    pair: Pair
    possible: Surprise
    impossible: Surprise


#: relative_accuracy, relative_accuracy_max, copy_last_relative_accuracy, ... (model, then the references)
SCORES: dict[str, Callable[[Surprise], float]] = {
    f"{prefix}relative_accuracy{suffix}": (lambda s, c=curve, h=how: s.stat(c, h))
    for prefix, curve in CURVES for suffix, how in AGGREGATIONS
}


def _accuracies(results: Sequence[PairResult]) -> dict[str, float]:
    return {k: relative_accuracy([f(r.possible) for r in results], [f(r.impossible) for r in results])
            for k, f in SCORES.items()}


def summarize(results: Sequence[PairResult]) -> dict[str, Any]:
    """Relative accuracies (model, copy-last, context-mean; mean / max) over all pairs, per property and
    averaged over properties (Table 2's convention)."""
    out: dict[str, Any] = {**_accuracies(results), "pairs": len(results)}
    props = sorted({r.pair.property for r in results if r.pair.property is not None})
    if props:
        per = {}
        for p in props:
            sub = [r for r in results if r.pair.property == p]
            per[p] = {**_accuracies(sub), "pairs": len(sub)}
        out["per_property"] = per
        out["property_mean"] = {k: float(np.mean([per[p][k] for p in props])) for k in SCORES}
    return out
