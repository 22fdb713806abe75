"""What a planning evaluation reports: the summary with its Wilson interval, videos of executed plans, and the
paired comparison of two evaluations, or of one with its own baselines, on the same episodes."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..stats import paired_success_difference, seeds_bootstrap_ci, wilson_ci95
from .protocol import EpisodeSpec, PlanningConfig
from .task import PlanningTask


def summarize(rows: list[dict[str, Any]], cfg: PlanningConfig, plan_seconds: list[float],
              task: PlanningTask) -> dict[str, Any]:
    """Success rate with its 95 % interval, the baselines' rates, mean distances and every setting."""
    n = len(rows)
    wins = sum(r["success"] for r in rows)
    out: dict[str, Any] = {
        "env": task.env_name, "protocol": cfg.protocol, "goals": cfg.goals, "planner": cfg.planner, "episodes": n,
        "success_rate": wins / n if n else 0.0, "ci95": list(wilson_ci95(wins, n)),
        "random_success_rate": float(np.mean([r["random_success"] for r in rows])) if n else 0.0,
        "mean_final_distance": float(np.mean([r["final_distance"] for r in rows])) if n else None,
        "random_mean_final_distance": float(np.mean([r["random_final_distance"] for r in rows])) if n else None,
        # the do-nothing baseline: zero actions for as many steps as a plan executes
        "idle_success_rate": float(np.mean([r["idle_success"] for r in rows])) if n else 0.0,
        "nontrivial": cfg.nontrivial,
        "seconds_per_plan": float(np.mean(plan_seconds)) if plan_seconds else None,
        "budget": cfg.budget, "horizon": cfg.horizon, "frameskip": task.space.frameskip, "goal_steps": cfg.goal_steps,
        "settings": {k: v for k, v in asdict(cfg).items()},
        "device": str(task.wm.device), "resolution": task.resolution,
    }
    if rows and "clipped_action_fraction" in rows[0]:  # the planned actions beyond the env's bounds
        out["clipped_action_fraction"] = float(np.mean([r["clipped_action_fraction"] for r in rows]))
    if rows and "oracle_success" in rows[0]:
        out["oracle_success_rate"] = float(np.mean([r["oracle_success"] for r in rows]))
    return out


def run_summary(rows: list[dict[str, Any]], cfg: PlanningConfig, task: PlanningTask) -> dict[str, Any]:
    """:func:`summarize` of the finished ``rows`` of a run, with whether it is complete."""
    seconds = [rows[b]["seconds_planning"] for b in range(0, len(rows), cfg.batch)]  # one plan time per batch
    return {**summarize(rows, cfg, seconds, task), "complete": len(rows) == cfg.episodes,
            "episodes_requested": cfg.episodes}


def write_episode_video(path: Path, task: PlanningTask, spec: EpisodeSpec, frames: list[np.ndarray]) -> None:
    """The executed plan (left, with its env step) beside the goal (right), labelled above, panels
    upscaled to at least 256 px, 5 fps."""
    from PIL import Image, ImageDraw

    from ..data.video import write_video
    from ..viz.video import label_font

    goal = task.env.render_state(spec.goal_state)
    start = task.env.render_state(spec.start_state)
    scale = -(-256 // goal.shape[0])
    ph, pw = goal.shape[0] * scale, goal.shape[1] * scale
    font_px = int(np.clip(ph // 14, 10, 20))
    font, header = label_font(font_px), font_px + 8
    width, height = 2 * pw + 4, header + ph
    width, height = width + width % 2, height + height % 2  # yuv420p needs even sizes
    def panel(img: np.ndarray) -> Image.Image:
        return Image.fromarray(np.ascontiguousarray(img.repeat(scale, axis=0).repeat(scale, axis=1)))

    out = []
    for step, fr in enumerate([start, *frames]):
        canvas = Image.new("RGB", (width, height), (255, 255, 255))
        draw = ImageDraw.Draw(canvas)
        draw.text((4, 4), f"plan (executed), step {step}/{len(frames)}", fill=(0, 0, 0), font=font)
        draw.text((pw + 8, 4), "goal", fill=(0, 0, 0), font=font)
        canvas.paste(panel(fr), (0, header))
        canvas.paste(panel(goal), (pw + 4, header))
        out.append(np.asarray(canvas))
    write_video(path, np.stack(out), fps=5.0)


#: what makes two result rows the same episode (start, goal and, for the baselines, the same draws)
EPISODE_KEYS = ("episode", "trajectory", "start_step")


def _rows(folder: str | Path) -> list[dict[str, Any]]:
    path = Path(folder) / "episodes.jsonl"
    if not path.is_file():
        raise UserError(f"{folder} holds no episodes.jsonl; give the --out folder of a `dinoworld plan` run")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def compare_runs(a: str | Path | list, b: str | Path | list, draws: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Success of plan run ``a`` minus run ``b`` on the episodes both finished, which must be the same
    episodes (same start and goal), with a paired bootstrap 95 % interval over held-out trajectories
    (episodes drawn from one trajectory are resampled together), and how many episodes only one of
    them solves.

    Either side may be a list of runs of one setting under other seeds (``finetune`` with another
    ``seed``, same ``finetune.split_seed``), all on the same episodes: each episode then counts the
    fraction of that side's runs that solve it. ``ci95`` still resamples only trajectories: it says how
    much the episode sample moves the seed-averaged difference. ``ci95_seeds`` resamples each side's
    runs too (:func:`~dinoworld.stats.seeds_bootstrap_ci`), so it also covers how much another set of
    seeds would move it; it needs three runs a side and is ``None`` with fewer. ``success_runs_a`` and
    ``success_runs_b`` are each run's own success rate."""
    runs = {side: [Path(f) for f in (x if isinstance(x, (list, tuple)) else [x])] for side, x in (("a", a), ("b", b))}
    rows = {f: _rows(f) for f in [*runs["a"], *runs["b"]]}
    n = min(len(r) for r in rows.values())
    first = runs["a"][0]
    for f, fr in rows.items():
        for x, y in zip(rows[first][:n], fr[:n]):
            if any(x.get(k) != y.get(k) for k in EPISODE_KEYS):
                raise UserError(f"{first} and {f} did not plan the same episodes (episode {x.get('episode')}: "
                                f"{[x.get(k) for k in EPISODE_KEYS]} vs {[y.get(k) for k in EPISODE_KEYS]}); "
                                "compare runs with the same --data, --episodes, --seed and protocol")

    # wins[side]: (runs, episodes), 1 where that run solved that episode
    wins = {side: np.array([[float(bool(r["success"])) for r in rows[f][:n]] for f in fs]).reshape(len(fs), n)
            for side, fs in runs.items()}
    name = {side: ",".join(map(str, fs)) for side, fs in runs.items()}
    trajectories = [r.get("trajectory", i) for i, r in enumerate(rows[first][:n])]
    return {**_paired(name["a"], name["b"], rows[first][:n], wins["a"].mean(0).tolist(), wins["b"].mean(0).tolist(),
                      draws, seed),
            "runs_a": len(runs["a"]), "runs_b": len(runs["b"]),
            **{f"success_runs_{side}": w.mean(1).tolist() if n else [] for side, w in wins.items()},
            "ci95_seeds": seeds_bootstrap_ci(wins["a"], wins["b"], trajectories, draws, seed)}


#: the baselines every planning run also executes on its episodes, by name, and their row keys
BASELINES = {"nothing": "idle_success", "random": "random_success"}


def compare_to_baseline(a: str | Path, baseline: str, draws: int = 2000, seed: int = 0) -> dict[str, Any]:
    """:func:`compare_runs` of plan run ``a`` against one of its own :data:`BASELINES` on the same
    episodes: doing nothing (zero actions) or random actions."""
    if baseline not in BASELINES:
        raise UserError(f"unknown baseline {baseline!r}; use one of {', '.join(BASELINES)}")
    rows = _rows(a)
    missing = [r.get("episode") for r in rows if BASELINES[baseline] not in r]
    if missing:
        raise UserError(f"{a} records no {BASELINES[baseline]} for episode {missing[0]}; rerun the plan with this "
                        "version of dinoworld")
    return _paired(str(a), baseline, rows, [float(r["success"]) for r in rows],
                   [float(r[BASELINES[baseline]]) for r in rows], draws, seed)


def _paired(a: str, b: str, rows: list[dict[str, Any]], sa: list[float], sb: list[float], draws: int,
            seed: int) -> dict[str, Any]:
    """The paired comparison of successes ``sa`` with ``sb`` (per episode of ``rows``: 0 or 1, or the
    fraction of several runs) on the same episodes."""
    n = len(rows)
    trajectories = [r.get("trajectory", i) for i, r in enumerate(rows)]
    diff, ci = paired_success_difference(sa, sb, draws, seed, groups=trajectories)
    return {"a": a, "b": b, "episodes": n, "trajectories": len(set(trajectories)),
            "success_a": float(np.mean(sa)) if n else None,
            "success_b": float(np.mean(sb)) if n else None, "difference": diff, "ci95": ci,
            "only_a": sum(x > y for x, y in zip(sa, sb)), "only_b": sum(y > x for x, y in zip(sa, sb))}
