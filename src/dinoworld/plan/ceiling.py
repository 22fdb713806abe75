"""What caps a world's planning success: the encoder's features or the search itself.

Both ceilings plan the held-out episodes of :func:`.evaluate.evaluate` (same protocol, seed, budget
and horizon) with the simulator as the model, so neither carries any model error:

* ``features``: CEM minimises the feature distance of the rendered, encoded final frame to the goal
  frame's (the evaluation's "CEM on the simulator");
* ``state``: CEM minimises :meth:`GoalEnv.state_cost` of the final state to the goal state, with no
  encoder at all.

Where ``state`` succeeds far more often than ``features``, the features are what limit the world;
where both fail, the budget or the horizon does. Every env's success test is averaged per key, so a
test made of parts (PushT: position and angle) shows which part fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..model import WorldModel
from ..progress import progress_bar
from ..stats import wilson_ci95
from .protocol import PlanningConfig
from .task import PlanningTask

COSTS = ("features", "state")


def cost_ceiling(wm: WorldModel, env_name: str, data: str | Path, cfg: PlanningConfig,
                 progress: bool = True) -> dict[str, Any]:
    """Open-loop CEM on the simulator under each of :data:`COSTS` for ``cfg``'s episodes; returns
    ``{"episodes", "budget", "idle_success_rate", "costs": {cost: summary}, "rows": [...]}``."""
    cfg.check()
    task = PlanningTask(wm, env_name, data)
    f = task.space.frameskip
    specs = list(task.episodes(cfg.episodes, cfg.goal_steps, cfg.seed, cfg.horizon * f, cfg.nontrivial, cfg.goals))
    rows: list[dict[str, Any]] = []
    bar = progress_bar(total=len(specs), unit="ep", disable=not progress, desc=f"cost ceilings {env_name}")
    for b0 in range(0, len(specs), cfg.batch):
        batch = specs[b0 : b0 + cfg.batch]
        starts, goal_states = [s.start_state for s in batch], [s.goal_state for s in batch]
        costs = {"features": task.simulator_cost(starts, task.latents(goal_states)),
                 "state": task.state_cost(starts, goal_states)}
        for name in COSTS:
            gen = torch.Generator(device=wm.device).manual_seed(cfg.seed * 1_000_003 + b0)  # the same for both costs
            plan = task.plan(costs[name], len(batch), cfg, gen, search="cem")
            raw = task.space.denormalize(plan.actions).cpu().numpy()
            for i, s in enumerate(batch):
                final, _ = task.execute(s.start_state, raw[i], s.goal_state)
                ev = task.env.eval_state(s.goal_state, final)
                rows.append({"cost": name, "episode": s.index, "trajectory": s.trajectory, "start_step": s.start,
                             "idle_success": s.idle_success, **{k: _plain(v) for k, v in ev.items()}})
        bar.update(len(batch))
    bar.close()
    return {"env": env_name, "episodes": len(specs), "budget": cfg.cem.budget, "horizon": cfg.horizon,
            "goal_steps": cfg.goal_steps, "protocol": cfg.protocol,
            "idle_success_rate": float(np.mean([s.idle_success for s in specs])) if specs else 0.0,
            "costs": {name: summarise([r for r in rows if r["cost"] == name]) for name in COSTS}, "rows": rows}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Success rate with its 95 % Wilson interval, and the mean of every other number of the success test."""
    wins = sum(bool(r["success"]) for r in rows)
    skip = {"cost", "episode", "trajectory", "start_step", "idle_success", "success"}
    keys = [k for k in (rows[0] if rows else {}) if k not in skip]
    return {"success_rate": wins / len(rows) if rows else 0.0, "ci95": list(wilson_ci95(wins, len(rows))),
            **{f"mean_{k}": float(np.mean([float(r[k]) for r in rows])) for k in keys}}


def _plain(value: Any) -> Any:
    return bool(value) if isinstance(value, (bool, np.bool_)) else float(value)
