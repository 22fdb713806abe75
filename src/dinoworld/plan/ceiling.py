"""What caps a world's planning success: the encoder's features or the search itself.

Both ceilings plan the held-out episodes of :func:`.evaluate.evaluate` (same protocol, seed, budget
and horizon) with the simulator as the model, so neither carries any model error:

* ``features``: CEM minimises the feature distance of the rendered, encoded final frame to the goal
  frame's (the evaluation's "CEM on the simulator");
* ``state``: CEM minimises :meth:`GoalEnv.state_cost` of the final state to the goal state, with no
  encoder at all;
* ``one_frame``: as ``state``, but the simulator plans from the start as one frame shows it
  (:meth:`GoalEnv.at_rest`: every velocity zero); the plan is then run from the true start. A model
  that plans from one frame cannot know more, so this is its ceiling where the start moves (PointMaze's
  ball, PushT's bodies); in Wall, whose state has no velocity, it equals ``state``.

Where ``state`` succeeds far more often than ``features``, the features are what limit the world;
where ``one_frame`` falls well below ``state``, what one frame cannot show does; where all fail, the
budget or the horizon does. Every env's success test is averaged per key, so a
test made of parts (PushT: position and angle) shows which part fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..files import atomic_write_json
from ..model import WorldModel
from ..progress import progress_bar
from ..stats import wilson_ci95
from .protocol import PlanningConfig, batch_seed
from .runs import CEILING_FILES, append_rows, prepare_out, run_identity, say_interrupted
from .task import PlanningTask

COSTS = ("features", "state", "one_frame")


def cost_ceiling(wm: WorldModel, env_name: str, data: str | Path, cfg: PlanningConfig, out: str | Path | None = None,
                 overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Open-loop CEM on the simulator under each of :data:`COSTS` for ``cfg``'s episodes; returns
    ``{"episodes", "budget", "idle_success_rate", "costs": {cost: summary}, "rows": [...]}``, one row per
    episode with each cost's success test under its name.

    With ``out``, ``ceiling.json`` is written there and each finished batch is appended to
    ``ceiling_episodes.jsonl``: a rerun of the same settings resumes after the last finished batch
    (:mod:`.runs`, the files apart from a plan's), other settings are refused unless ``overwrite``."""
    cfg.check()
    task = PlanningTask(wm, env_name, data)
    out_dir = Path(out) if out else None
    rows: list[dict[str, Any]] = []
    if out_dir:
        run = run_identity(wm, env_name, data, cfg, False)
        run["settings"]["costs"] = list(COSTS)  # a folder of other costs (earlier versions: two) is not resumed
        rows = prepare_out(out_dir, run, cfg, overwrite, CEILING_FILES)
    f = task.space.frameskip
    specs = list(task.episodes(cfg.episodes, cfg.goal_steps, cfg.seed, cfg.horizon * f, cfg.nontrivial, cfg.goals))
    bar = progress_bar(total=len(specs), initial=len(rows), unit="ep", disable=not progress,
                       desc=f"cost ceilings {env_name}")
    try:
        for b0 in range(len(rows), len(specs), cfg.batch):
            batch = specs[b0 : b0 + cfg.batch]
            finished = _plan_batch(task, batch, cfg, batch_seed(cfg.seed, b0 // cfg.batch))
            if out_dir:
                append_rows(out_dir, finished, CEILING_FILES)
            rows.extend(finished)
            bar.update(len(batch))
    except KeyboardInterrupt:
        if out_dir:
            say_interrupted(len(rows), len(specs))
        raise
    finally:
        bar.close()
    result = {"env": env_name, "episodes": len(specs), "budget": cfg.cem.budget, "horizon": cfg.horizon,
              "goal_steps": cfg.goal_steps, "protocol": cfg.protocol,
              "idle_success_rate": float(np.mean([s.idle_success for s in specs])) if specs else 0.0,
              "costs": {name: summarise([r[name] for r in rows]) for name in COSTS}, "rows": rows}
    if out_dir:
        atomic_write_json(out_dir / "ceiling.json", result)
    return result


def _plan_batch(task: PlanningTask, batch: list, cfg: PlanningConfig, seed: int) -> list[dict[str, Any]]:
    """One row per episode of ``batch``: the success test of the plan under each cost (each drawn from ``seed``),
    always run from the true start."""
    starts, goal_states = [s.start_state for s in batch], [s.goal_state for s in batch]
    costs = {"features": task.simulator_cost(starts, task.latents(goal_states)),
             "state": task.state_cost(starts, goal_states),
             "one_frame": task.state_cost([task.env.at_rest(s) for s in starts], goal_states)}
    rows = [{"episode": s.index, "trajectory": s.trajectory, "start_step": s.start, "idle_success": s.idle_success}
            for s in batch]
    for name in COSTS:
        gen = torch.Generator(device=task.wm.device).manual_seed(seed)  # the same noise for both costs
        plan = task.plan(costs[name], len(batch), cfg, gen, search="cem")
        raw = task.space.denormalize(plan.actions).cpu().numpy()
        for row, s, actions in zip(rows, batch, raw):
            final, _ = task.execute(s.start_state, actions, s.goal_state)
            row[name] = {k: _plain(v) for k, v in task.env.eval_state(s.goal_state, final).items()}
    return rows


def summarise(tests: list[dict[str, Any]]) -> dict[str, Any]:
    """Success rate with its 95 % Wilson interval, and the mean of every other number of the success test
    (``tests``: one env success test per episode)."""
    wins = sum(bool(t["success"]) for t in tests)
    keys = [k for k in (tests[0] if tests else {}) if k != "success"]
    return {"success_rate": wins / len(tests) if tests else 0.0, "ci95": list(wilson_ci95(wins, len(tests))),
            **{f"mean_{k}": float(np.mean([float(t[k]) for t in tests])) for k in keys}}


def _plain(value: Any) -> Any:
    return bool(value) if isinstance(value, (bool, np.bool_)) else float(value)
