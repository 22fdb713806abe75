"""Reporting a dense-forecasting evaluation: Table 1 as text (:func:`format_table`) and
``forecast.json`` (:func:`write_summary`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .protocol import HORIZONS
from .runner import ForecastEval


def format_table(summary: dict[str, Any]) -> str:
    """Table 1's shape: rows predicted / copy-last per metric, columns present / short / mid."""
    hs = summary.get("horizons_s", {})
    head = (f"{summary.get('dataset', '')} {summary.get('split', '')}: {summary.get('windows', 0)} windows; "
            f"short {1000 * hs.get('short', float('nan')):.1f} ms, mid {1000 * hs.get('mid', float('nan')):.1f} ms")
    lines = [head, f"{'':<22}{'present':>9}{'short':>9}{'mid':>9}"]
    for metric, label, fmt in (("miou", "mIoU % (higher better)", "{:9.1f}"),
                               ("rmse", "RMSE m (lower better)", "{:9.3f}")):
        t = summary.get(metric)
        if not t:
            continue
        lines.append(label)
        for m, name in (("model", "  predicted"), ("copy_last", "  copy-last"), ("context_mean", "  context-mean")):
            if m not in t["short"]:  # summaries written before the context-mean baseline
                continue
            lines.append(f"{name:<22}" + fmt.format(t["present"]) + fmt.format(t["short"][m]) + fmt.format(t["mid"][m]))
        ci = summary.get("ci95", {}).get(metric, {})
        for b, name in (("copy_last", "copy-last"), ("context_mean", "context-mean")):
            spans = [ci.get(h, {}).get(f"model_minus_{b}") for h in HORIZONS]
            if any(spans):
                lines.append(f"  predicted - {name}, 95 % CI: " + ", ".join(
                    f"{h} [{fmt.format(s[0]).strip()}, {fmt.format(s[1]).strip()}]" if s else f"{h} -"
                    for h, s in zip(HORIZONS, spans)))
    if summary.get("ci95"):
        lines.append(f"(95 % CI: paired bootstrap over the {summary.get('sequences', '?')} sequences)")
    return "\n".join(lines)


def write_summary(ev: ForecastEval, out: str | Path) -> str:
    from ...files import atomic_write_json

    o = Path(out)
    o.mkdir(parents=True, exist_ok=True)
    path = o / "forecast.json"
    atomic_write_json(path, json.loads(json.dumps({**ev.summary, "skipped_windows": ev.skipped},
                                                  default=lambda x: None)))
    return str(path)
