"""The planning evaluation (§4.3, App. D, Table 4): plan from held-out starts to goals, batch by batch.

The settings and the two protocols are in :mod:`.protocol`, the start / goal pairs, costs and
execution in :mod:`.task`. The planner's normalised model actions are de-normalised and executed in
the simulator:

* open loop (``cem``, ``gd``): ``horizon x frameskip`` env actions, success = the env's own test
  on the final state;
* closed loop (``mpc`` over CEM, ``mpc-gd`` over GD; :func:`.mpc.mpc`): replan every
  ``replan_every`` env actions from the newly rendered state, warm-started from the shifted previous
  plan, until ``mpc_steps`` actions are spent; success if the env's test passes at any step. Success
  never stops planning early or picks among plans.

The same episodes are also run with uniformly random actions (the floor), with zero actions
(doing nothing: in PointMaze the ball coasts on its recorded velocity and sometimes reaches the
goal, so ``nontrivial`` can keep only the pairs that doing nothing misses), and with CEM on the
simulator itself (rendered final frames encoded and compared to the goal latent: the ceiling of
the feature cost).

With ``out``, a rerun of the same settings into the same folder resumes after the last finished
batch (:mod:`.runs`); other settings are refused unless ``overwrite``.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..devices import uses_bf16
from ..errors import UserError
from ..files import atomic_write_json
from ..model import WorldModel
from ..progress import progress_bar
from .cem import Cost
from .mpc import mpc
from .protocol import EpisodeSpec, PlanningConfig, batch_seed
from .report import run_summary, write_episode_video
from .runs import append_rows, prepare_out, run_identity, say_interrupted
from .task import PlanningTask


def evaluate(wm: WorldModel, env_name: str, data: str | Path, cfg: PlanningConfig, out: str | Path | None = None,
             videos: int = 4, progress: bool = True, overwrite: bool = False) -> dict[str, Any]:
    """Run the protocol; writes ``plan.json`` (what determines the results), ``episodes.jsonl`` (one
    row per episode, appended as each batch of episodes finishes), ``summary.json`` and MP4s into
    ``out``. Returns the summary.

    An ``out`` that a run with the same ``plan.json`` left unfinished is resumed after its last
    finished batch; one holding other plan outputs is refused unless ``overwrite``, which deletes
    them first. Interrupted (``KeyboardInterrupt``), the run writes ``summary.json`` of the finished
    episodes with ``"complete": false`` and re-raises."""
    try:
        return _evaluate(wm, env_name, data, cfg, out, videos, progress, overwrite)
    except torch.cuda.OutOfMemoryError:
        raise UserError(f"the planning budget does not fit in GPU memory ({cfg.batch} episodes x "
                        f"{cfg.cem.samples} candidates); lower --batch or pass a smaller --chunk") from None


def _evaluate(wm: WorldModel, env_name: str, data: str | Path, cfg: PlanningConfig, out: str | Path | None,
              videos: int, progress: bool, overwrite: bool) -> dict[str, Any]:
    cfg.check()
    bf16 = uses_bf16(cfg.precision, wm.device)
    wm.predictor.to(torch.bfloat16 if bf16 else torch.float32)
    task = PlanningTask(wm, env_name, data)
    f = task.space.frameskip
    if cfg.closed_loop and not 0 < cfg.replan_every <= cfg.horizon * f:
        raise UserError(f"MPC executes at most the planned actions before replanning: need 0 < --replan-every "
                        f"<= {cfg.horizon * f} (horizon {cfg.horizon} x frameskip {f})")
    if cfg.replan_every % f and cfg.closed_loop:
        raise UserError(f"--replan-every must be a multiple of the frameskip {f}")
    out_dir = Path(out) if out else None
    rows: list[dict[str, Any]] = []
    if out_dir:
        rows = prepare_out(out_dir, run_identity(wm, env_name, data, cfg, bf16), cfg, overwrite)
    try:
        specs = list(task.episodes(cfg.episodes, cfg.goal_steps, cfg.seed, cfg.horizon * f, cfg.nontrivial,
                                   cfg.goals))
        _plan_batches(task, specs, rows, cfg, out_dir, videos, progress)
    except KeyboardInterrupt:
        if out_dir:
            atomic_write_json(out_dir / "summary.json", run_summary(rows, cfg, task))
            say_interrupted(len(rows), cfg.episodes)
        raise
    summary = run_summary(rows, cfg, task)
    if out_dir:
        atomic_write_json(out_dir / "summary.json", summary)
    return summary


def _plan_batches(task: PlanningTask, specs: list[EpisodeSpec], rows: list[dict[str, Any]], cfg: PlanningConfig,
                  out_dir: Path | None, videos: int, progress: bool) -> None:
    """Plan ``specs`` after the ``len(rows)`` finished ones, batch by batch; each batch's rows are
    appended to ``rows`` (and ``episodes.jsonl``) once it is finished."""
    f, device = task.space.frameskip, task.wm.device
    oracle_cfg = replace(cfg, cem=replace(cfg.cem, topk=min(cfg.cem.topk, cfg.cem.samples)))  # also under gd
    bar = progress_bar(total=len(specs), initial=len(rows), unit="ep", disable=not progress,
                       desc=f"plan {task.env_name} ({cfg.planner}, {cfg.protocol} protocol)")
    for b0 in range(len(rows), len(specs), cfg.batch):
        gen = torch.Generator(device=device).manual_seed(batch_seed(cfg.seed, b0 // cfg.batch))
        rng = np.random.default_rng([cfg.seed, 0xBA5E, b0 // cfg.batch])
        batch = specs[b0 : b0 + cfg.batch]
        goals = task.latents([s.goal_state for s in batch])
        records: list[list[np.ndarray] | None] = [[] if s.index < videos and out_dir else None for s in batch]
        if cfg.closed_loop:
            results, secs = _run_mpc(task, batch, goals, cfg, gen, records)
        else:
            _sync(device)
            t0 = time.perf_counter()
            plan = task.plan(task.cost([s.start_state for s in batch], goals, cfg), len(batch), cfg, gen)
            raw = task.space.denormalize(plan.actions).cpu().numpy()
            secs = (time.perf_counter() - t0) / len(batch)
            results = [task.execute(s.start_state, raw[i], s.goal_state, records[i]) for i, s in enumerate(batch)]
        clipped = [None] * len(batch) if cfg.closed_loop else [task.clipped_fraction(r) for r in raw]
        oracle = None
        if cfg.oracle:
            oplan = task.plan(task.simulator_cost([s.start_state for s in batch], goals), len(batch), oracle_cfg, gen,
                              search="cem")
            oraw = task.space.denormalize(oplan.actions).cpu().numpy()
            oracle = [task.execute(s.start_state, oraw[i], s.goal_state) for i, s in enumerate(batch)]
        finished = []
        for i, s in enumerate(batch):
            final, first = results[i]
            ev = task.env.eval_state(s.goal_state, final)
            rand = rng.uniform(task.env.action_low, task.env.action_high, (cfg.horizon * f, task.space.raw_dim))
            rfinal, _ = task.execute(s.start_state, rand, s.goal_state)
            rev = task.env.eval_state(s.goal_state, rfinal)
            success = first is not None if cfg.closed_loop else bool(ev["success"])
            row = {"episode": s.index, "trajectory": s.trajectory, "start_step": s.start, "success": success,
                   "final_distance": float(ev["distance"]), "steps_to_success": first,
                   "seconds_planning": secs, "random_success": bool(rev["success"]),
                   "idle_success": s.idle_success,
                   "random_final_distance": float(rev["distance"]),
                   **{k: v for k, v in ev.items() if k not in ("success", "distance")}}  # the test's parts
            if clipped[i] is not None:
                row["clipped_action_fraction"] = clipped[i]  # of the executed plan's action entries
            if oracle is not None:
                oev = task.env.eval_state(s.goal_state, oracle[i][0])
                row.update(oracle_success=bool(oev["success"]), oracle_final_distance=float(oev["distance"]))
            finished.append(row)
            if records[i] and out_dir:
                write_episode_video(out_dir / f"episode_{s.index:04d}.mp4", task, s, records[i])
        if out_dir:
            append_rows(out_dir, finished)
        rows.extend(finished)
        bar.update(len(batch))
        bar.set_postfix(success=f"{np.mean([r['success'] for r in rows]):.2f}",
                        random=f"{np.mean([r['random_success'] for r in rows]):.2f}")
    bar.close()


def _run_mpc(task: PlanningTask, batch: list[EpisodeSpec], goals: torch.Tensor, cfg: PlanningConfig,
             gen: torch.Generator, records: list) -> tuple[list[tuple[np.ndarray, int | None]], float]:
    """MPC (:func:`.mpc.mpc`) over ``cfg``'s searching planner for a batch, in the simulator: returns each
    episode's final state and first env step at the goal (None if never), and the planning seconds per episode."""
    f, m = task.space.frameskip, cfg.replan_every
    states = [s.start_state.copy() for s in batch]
    first: list[int | None] = [0 if task.env.eval_state(s.goal_state, s.start_state)["success"] else None
                               for s in batch]
    spent, secs, t0 = 0, 0.0, 0.0

    def observe() -> Cost:  # the cost from where the episodes are now; the plan's timing starts here
        nonlocal t0
        _sync(task.wm.device)
        t0 = time.perf_counter()
        return task.cost(states, goals, cfg)

    def execute(actions: torch.Tensor) -> None:  # the plan's first m env actions, fewer once mpc_steps run out
        nonlocal spent, secs
        raw = task.space.denormalize(actions).cpu().numpy()
        secs += (time.perf_counter() - t0) / len(batch)
        take = min(m, cfg.mpc_steps - spent)
        for i, s in enumerate(batch):
            states[i], hit = task.execute(states[i], raw[i, :take], s.goal_state, records[i])
            if first[i] is None and hit is not None:
                first[i] = spent + hit
        spent += take

    planner, settings = cfg.planner_fn()
    mpc(planner, settings, observe, execute, len(batch), cfg.horizon, task.space.model_dim,
        plans=-(-cfg.mpc_steps // m), executed=m // f, device=task.wm.device, generator=gen)
    return [(states[i], first[i]) for i in range(len(batch))], secs


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
