"""The paper's planning evaluation (§4.3, App. D, Table 4): plan from held-out starts to goals.

For each evaluation episode: a held-out trajectory of the checkpoint's split and a start step
``s`` (drawn with the seed); the start is the recorded state at ``s``, the goal the state reached
by replaying the ``goal_steps`` recorded actions from it in the simulator. Both are rendered by
the simulator, encoded, and the planner searches normalised model actions whose rollout ends
nearest the goal latent. The plan is de-normalised and executed in the simulator:

* open loop (``cem``, ``gd``): ``horizon x frameskip`` env actions, success = the env's own test
  on the final state;
* ``mpc``: replan every ``replan_every`` env actions from the newly rendered state, warm-started
  from the shifted previous plan, until ``mpc_steps`` actions are spent; success if the env's test
  passes at any step. Success never stops planning early or picks among plans.

The same episodes are also run with uniformly random actions (the floor), with zero actions
(doing nothing: in PointMaze the ball coasts on its recorded velocity and often reaches the goal,
so ``nontrivial`` can keep only the pairs that doing nothing misses), and with CEM on the
simulator itself (rendered final frames encoded and compared to the goal latent: the ceiling of
the feature cost).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.trajectories import load_trajectories
from ..data.video import resize_crop
from ..errors import UserError
from ..model import WorldModel
from ..progress import progress_bar
from .cem import CEMConfig, GDConfig, Plan, cem, gradient_plan
from .rollout import LatentRollout, latent_distance

PLANNERS = ("cem", "mpc", "gd")


@dataclass
class PlanningConfig:
    planner: str = "cem"
    cem: CEMConfig = field(default_factory=CEMConfig)
    gd: GDConfig = field(default_factory=GDConfig)
    horizon: int = 5  #: model steps planned (H' = 5: 25 env actions at frameskip 5)
    goal_steps: int = 25  #: recorded env steps from start to goal
    #: keep only pairs that doing nothing (zero actions for the executed length) does not solve, so a
    #: planner must act; off by default, as in the paper, where every reachable pair counts
    nontrivial: bool = False
    replan_every: int = 5  #: MPC: env actions executed between plans (m < H)
    mpc_steps: int = 50  #: MPC: env actions in all
    episodes: int = 512
    batch: int = 16  #: episodes planned together
    seed: int = 0
    #: what predicts a candidate's outcome: "world_model", or "simulator" (rendered and encoded: the ceiling)
    cost_model: str = "world_model"
    oracle: bool = True  #: also run open-loop CEM with the simulator as the model (slow: renders every candidate)
    chunk: int | None = None  #: candidates per forward pass (None: from the memory budget)
    precision: str = "auto"  #: predictor weights and activations: "auto" (bf16 on CUDA, fp32 on CPU), "bf16", "fp32"
    memory_budget: int | None = None  #: bytes for candidate rollouts (None: half the free GPU memory / 2 GiB)


@dataclass
class EpisodeSpec:
    index: int  #: evaluation episode number
    trajectory: int  #: held-out trajectory id
    start: int  #: start step in the trajectory
    start_state: np.ndarray
    goal_state: np.ndarray
    idle_success: bool = False  #: zero actions for the executed length reach the goal (doing nothing)


def wilson_ci95(successes: int, n: int) -> tuple[float, float]:
    """95 % Wilson score interval of a success rate."""
    if n == 0:
        return (0.0, 1.0)
    z, p = 1.959964, successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


class PlanningTask:
    """A checkpoint, its environment and data, and the frames / latents of states."""

    def __init__(self, wm: WorldModel, env_name: str, data: str | Path) -> None:
        from ..envs import make_env

        space = wm.action_space
        if wm.predictor.action_blocks is None or space is None:
            raise UserError("this checkpoint has no action blocks: fine-tune it with `dinoworld finetune` first")
        if space.env and space.env != env_name:
            raise UserError(f"--env {env_name} but the checkpoint was fine-tuned on {space.env}; pass --env {space.env}")
        if wm.encoder is None:
            raise UserError("planning needs the checkpoint's encoder")
        self.wm, self.space, self.env_name = wm, space, env_name
        wm.predictor.requires_grad_(False)  # planning differentiates w.r.t. actions only, never the weights
        self.data = load_trajectories(data)
        if self.data.env and self.data.env != env_name:
            raise UserError(f"--data {data} holds {self.data.env} trajectories, not {env_name}")
        if self.data.action_dim != space.raw_dim:
            raise UserError(f"--data {data} has {self.data.action_dim}-d actions but the checkpoint expects {space.raw_dim}-d")
        self.resolution = wm.meta.training_resolution or 224
        self.env = make_env(env_name, img_size=getattr(self.data, "img_size", None) or self.resolution)
        split = wm.meta.split or {}
        ids = getattr(self.data, "episode_ids", list(range(len(self.data))))
        pos = {e: i for i, e in enumerate(ids)}
        self.val_positions = [pos[e] for e in split.get("val", []) if e in pos]
        if not self.val_positions:
            raise UserError(f"none of the checkpoint's held-out episodes ({len(split.get('val', []))}) is in {data}; "
                            "pass the trajectory folder it was fine-tuned on")

    def idle_success(self, start: np.ndarray, goal: np.ndarray, steps: int) -> bool:
        """Does doing nothing — ``steps`` zero actions (Wall: no move; PushT: the pusher holds its place;
        PointMaze: no force, the ball coasts on) — pass the env's success test?"""
        final = self.env.rollout(start, np.zeros((steps, self.env.action_dim)))[-1]
        return bool(self.env.eval_state(goal, final)["success"])

    def episodes(self, n: int, goal_steps: int, seed: int, idle_steps: int = 0,
                 nontrivial: bool = False) -> Iterator[EpisodeSpec]:
        """``n`` (start, goal) pairs from held-out trajectories, cycling through them, each with whether
        ``idle_steps`` zero actions solve it; with ``nontrivial`` only the pairs they do not solve."""
        rng = np.random.default_rng([seed, 0x91A])
        order = rng.permutation(len(self.val_positions))
        made, tries, solved = 0, 0, 0
        while made < n:
            p = self.val_positions[order[tries % len(order)]]
            tries += 1
            if tries > 50 * max(len(order), n) and made == 0:
                raise UserError(f"no held-out start is {goal_steps} steps from a goal that doing nothing misses "
                                f"({solved} tried were solved by zero actions); raise --goal-steps or drop --nontrivial")
            length = self.data.length(p)
            if length < goal_steps:
                if tries > 10 * len(order) and made == 0:
                    raise UserError(f"no held-out episode has {goal_steps} steps; lower --goal-steps")
                continue
            ep = self.data.episode(p)
            s = int(rng.integers(0, length - goal_steps + 1))
            start = np.asarray(ep["states"][s], np.float64)
            goal = self.env.rollout(start, ep["actions"][s : s + goal_steps])[-1]
            idle = self.idle_success(start, goal, idle_steps)
            if nontrivial and idle:
                solved += 1
                continue
            yield EpisodeSpec(made, int(getattr(self.data, "episode_ids", range(len(self.data)))[p]), s, start, goal,
                              idle)
            made += 1

    def frames(self, states: list[np.ndarray]) -> torch.Tensor:
        """Rendered states as the model saw its training frames: ``(B, 3, r, r)`` in [0, 1]."""
        raw = np.stack([self.env.render_state(s) for s in states])
        return resize_crop(raw, self.resolution, "crop")

    @torch.no_grad()
    def latents(self, states: list[np.ndarray]) -> torch.Tensor:
        """``(B, h, w, D)`` latents of states."""
        return self.wm.encode(self.frames(states)[:, None])[:, 0]

    def execute(self, state: np.ndarray, raw_actions: np.ndarray, goal: np.ndarray,
                record: list[np.ndarray] | None = None) -> tuple[np.ndarray, int | None]:
        """Run env actions from ``state``; returns the final state and the first step at which the goal was met."""
        states = self.env.rollout(state, raw_actions)  # (T+1, S)
        hits = [i for i, st in enumerate(states) if self.env.eval_state(goal, st)["success"]]
        if record is not None:
            record.extend(self.env.render_state(st) for st in states[1:])
        return states[-1], (hits[0] if hits else None)

    def cost(self, start_states: list[np.ndarray], goal_latents: torch.Tensor, cfg: PlanningConfig,
             cost_model: str | None = None):
        """The planning cost of candidates from ``start_states``: world-model rollouts or the simulator."""
        if (cost_model or cfg.cost_model) == "simulator":
            return self.simulator_cost(start_states, goal_latents)
        ctx = self.latents(start_states)[:, None]  # (E, 1, h, w, D)
        times = torch.zeros(ctx.shape[0], 1, device=ctx.device)
        roll = LatentRollout(self.wm.predictor, ctx, times, self.space.step_seconds, chunk=cfg.chunk,
                             memory_budget=cfg.memory_budget)
        std = self.wm.predictor.standardize  # the space the model was trained in (identity by default)
        goal = std(goal_latents)
        return lambda actions: latent_distance(std(roll(actions)), goal)

    def simulator_cost(self, start_states: list[np.ndarray], goal_latents: torch.Tensor):
        """Cost of candidates by running them in the simulator and encoding the final frame."""
        def cost(actions: torch.Tensor) -> torch.Tensor:
            raw = self.space.denormalize(actions).cpu().numpy()  # (E, N, H*f, A)
            finals = [self.env.rollout(start_states[e], raw[e, j])[-1]
                      for e in range(raw.shape[0]) for j in range(raw.shape[1])]
            lat = self.latents(finals).view(raw.shape[0], raw.shape[1], *goal_latents.shape[1:])
            std = self.wm.predictor.standardize
            return latent_distance(std(lat), std(goal_latents))
        return cost

    def plan(self, cost: Callable, n: int, cfg: PlanningConfig, gen: torch.Generator, warm: Plan | None = None,
             planner: str | None = None) -> Plan:
        planner = planner or cfg.planner
        kw = dict(device=self.wm.device, generator=gen)
        a_dim = self.space.model_dim
        if planner == "gd":
            return gradient_plan(cost, n, cfg.horizon, a_dim, cfg.gd, mean=None if warm is None else warm.actions, **kw)
        return cem(cost, n, cfg.horizon, a_dim, cfg.cem, mean=None if warm is None else warm.actions,
                   std=None if warm is None else warm.std, **kw)


def _shift(plan: Plan, steps: int, init_std: float) -> Plan:
    """Warm start: drop the ``steps`` executed model steps, pad with the prior N(0, init_std)."""
    a = torch.cat([plan.actions[:, steps:], torch.zeros_like(plan.actions[:, :steps])], dim=1)
    std = None if plan.std is None else torch.cat(
        [plan.std[:, steps:], torch.full_like(plan.std[:, :steps], init_std)], dim=1)
    return Plan(a, plan.cost, std)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def evaluate(wm: WorldModel, env_name: str, data: str | Path, cfg: PlanningConfig, out: str | Path | None = None,
             videos: int = 4, progress: bool = True) -> dict[str, Any]:
    """Run the protocol; writes ``episodes.jsonl`` (one row per episode, appended as each batch of
    episodes finishes), ``summary.json`` (at the end) and MP4s into ``out``. Returns the summary."""
    try:
        return _evaluate(wm, env_name, data, cfg, out, videos, progress)
    except torch.cuda.OutOfMemoryError:
        raise UserError(f"the planning budget does not fit in GPU memory ({cfg.batch} episodes x "
                        f"{cfg.cem.samples} candidates); lower --batch or pass a smaller --chunk") from None


def _evaluate(wm: WorldModel, env_name: str, data: str | Path, cfg: PlanningConfig, out: str | Path | None,
              videos: int, progress: bool) -> dict[str, Any]:
    if cfg.planner not in PLANNERS:
        raise UserError(f"unknown planner {cfg.planner!r}; use one of {', '.join(PLANNERS)}")
    if cfg.cost_model not in ("world_model", "simulator"):
        raise UserError(f"unknown cost model {cfg.cost_model!r}; use world_model or simulator")
    if cfg.cost_model == "simulator" and cfg.planner == "gd":
        raise UserError("the simulator is not differentiable: plan it with cem or mpc, not gd")
    if cfg.precision not in ("auto", "bf16", "fp32"):
        raise UserError(f"unknown precision {cfg.precision!r}; use auto, bf16 or fp32")
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and wm.device.type == "cuda")
    wm.predictor.to(torch.bfloat16 if bf16 else torch.float32)
    task = PlanningTask(wm, env_name, data)
    f = task.space.frameskip
    if cfg.planner == "mpc" and not 0 < cfg.replan_every < cfg.horizon * f:
        raise UserError(f"MPC replans every m < H actions: need 0 < --replan-every < {cfg.horizon * f}")
    if cfg.replan_every % f and cfg.planner == "mpc":
        raise UserError(f"--replan-every must be a multiple of the frameskip {f}")
    out_dir = Path(out) if out else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "episodes.jsonl").write_text("")  # grows batch by batch: a killed run keeps what it finished
    gen = torch.Generator(device=wm.device).manual_seed(cfg.seed)
    rng = np.random.default_rng([cfg.seed, 0xBA5E])
    rows: list[dict[str, Any]] = []
    plan_seconds: list[float] = []
    specs = list(task.episodes(cfg.episodes, cfg.goal_steps, cfg.seed, cfg.horizon * f, cfg.nontrivial))
    bar = progress_bar(total=len(specs), desc=f"plan {env_name} ({cfg.planner})", unit="ep", disable=not progress)
    for b0 in range(0, len(specs), cfg.batch):
        batch = specs[b0 : b0 + cfg.batch]
        goals = task.latents([s.goal_state for s in batch])
        records: list[list[np.ndarray] | None] = [[] if s.index < videos and out_dir else None for s in batch]
        if cfg.planner == "mpc":
            results, secs = _run_mpc(task, batch, goals, cfg, gen, records)
        else:
            _sync(wm.device)
            t0 = time.perf_counter()
            plan = task.plan(task.cost([s.start_state for s in batch], goals, cfg), len(batch), cfg, gen)
            raw = task.space.denormalize(plan.actions).cpu().numpy()
            secs = (time.perf_counter() - t0) / len(batch)
            plan_seconds.append(secs)
            results = [task.execute(s.start_state, raw[i], s.goal_state, records[i]) for i, s in enumerate(batch)]
        if cfg.planner == "mpc":
            plan_seconds.append(secs)
        oracle = None
        if cfg.oracle:
            oplan = task.plan(task.cost([s.start_state for s in batch], goals, cfg, "simulator"), len(batch), cfg,
                              gen, planner="cem")
            oraw = task.space.denormalize(oplan.actions).cpu().numpy()
            oracle = [task.execute(s.start_state, oraw[i], s.goal_state) for i, s in enumerate(batch)]
        for i, s in enumerate(batch):
            final, first = results[i]
            ev = task.env.eval_state(s.goal_state, final)
            rand = rng.uniform(task.env.action_low, task.env.action_high, (cfg.horizon * f, task.space.raw_dim))
            rfinal, _ = task.execute(s.start_state, rand, s.goal_state)
            rev = task.env.eval_state(s.goal_state, rfinal)
            success = bool(ev["success"]) if cfg.planner != "mpc" else first is not None
            row = {"episode": s.index, "trajectory": s.trajectory, "start_step": s.start, "success": success,
                   "final_distance": float(ev["distance"]), "steps_to_success": first,
                   "seconds_planning": secs, "random_success": bool(rev["success"]),
                   "idle_success": s.idle_success,
                   "random_final_distance": float(rev["distance"])}
            if oracle is not None:
                oev = task.env.eval_state(s.goal_state, oracle[i][0])
                row.update(oracle_success=bool(oev["success"]), oracle_final_distance=float(oev["distance"]))
            rows.append(row)
            if records[i] and out_dir:
                _write_episode_video(out_dir / f"episode_{s.index:04d}.mp4", task, s, records[i])
        if out_dir:
            with open(out_dir / "episodes.jsonl", "a") as fh:
                fh.writelines(json.dumps(r) + "\n" for r in rows[-len(batch):])
        bar.update(len(batch))
        bar.set_postfix(success=f"{np.mean([r['success'] for r in rows]):.2f}",
                        random=f"{np.mean([r['random_success'] for r in rows]):.2f}")
    bar.close()
    summary = summarize(rows, cfg, plan_seconds, task)
    if out_dir:
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _run_mpc(task: PlanningTask, batch: list[EpisodeSpec], goals: torch.Tensor, cfg: PlanningConfig,
             gen: torch.Generator, records: list) -> tuple[list[tuple[np.ndarray, int | None]], float]:
    f, m = task.space.frameskip, cfg.replan_every
    states = [s.start_state.copy() for s in batch]
    first: list[int | None] = [0 if task.env.eval_state(s.goal_state, s.start_state)["success"] else None for s in batch]
    warm, spent, secs = None, 0, 0.0
    while spent < cfg.mpc_steps:
        _sync(task.wm.device)
        t0 = time.perf_counter()
        plan = task.plan(task.cost(states, goals, cfg), len(batch), cfg, gen, warm=warm)
        raw = task.space.denormalize(plan.actions).cpu().numpy()[:, :m]
        secs += (time.perf_counter() - t0) / len(batch)
        take = min(m, cfg.mpc_steps - spent)
        for i, s in enumerate(batch):
            states[i], hit = task.execute(states[i], raw[i, :take], s.goal_state, records[i])
            if first[i] is None and hit is not None:
                first[i] = spent + hit
        spent += take
        warm = _shift(plan, m // f, cfg.cem.init_std)
    return [(states[i], first[i]) for i in range(len(batch))], secs


def _write_episode_video(path: Path, task: PlanningTask, spec: EpisodeSpec, frames: list[np.ndarray]) -> None:
    """The executed plan (left) beside the goal (right), upscaled to at least 256 px, 5 fps."""
    from ..data.video import write_video

    goal = task.env.render_state(spec.goal_state)
    start = task.env.render_state(spec.start_state)
    seq = np.stack([np.concatenate([fr, goal], axis=1) for fr in [start, *frames]])
    scale = max(1, 256 // seq.shape[1])
    seq = seq.repeat(scale, axis=1).repeat(scale, axis=2)
    h, w = seq.shape[1] - seq.shape[1] % 2, seq.shape[2] - seq.shape[2] % 2
    write_video(path, np.ascontiguousarray(seq[:, :h, :w]), fps=5.0)


def summarize(rows: list[dict[str, Any]], cfg: PlanningConfig, plan_seconds: list[float],
              task: PlanningTask) -> dict[str, Any]:
    n = len(rows)
    wins = sum(r["success"] for r in rows)
    budget = cfg.gd.budget if cfg.planner == "gd" else cfg.cem.budget
    out: dict[str, Any] = {
        "env": task.env_name, "planner": cfg.planner, "cost_model": cfg.cost_model, "episodes": n,
        "success_rate": wins / n if n else 0.0, "ci95": list(wilson_ci95(wins, n)),
        "random_success_rate": float(np.mean([r["random_success"] for r in rows])) if n else 0.0,
        "mean_final_distance": float(np.mean([r["final_distance"] for r in rows])) if n else None,
        "random_mean_final_distance": float(np.mean([r["random_final_distance"] for r in rows])) if n else None,
        # the do-nothing baseline: zero actions for as many steps as a plan executes
        "idle_success_rate": float(np.mean([r["idle_success"] for r in rows])) if n else 0.0,
        "nontrivial": cfg.nontrivial,
        "seconds_per_plan": float(np.mean(plan_seconds)) if plan_seconds else None,
        "budget": budget, "horizon": cfg.horizon, "frameskip": task.space.frameskip, "goal_steps": cfg.goal_steps,
        "settings": {k: v for k, v in asdict(cfg).items()},
        "device": str(task.wm.device), "resolution": task.resolution,
    }
    if rows and "oracle_success" in rows[0]:
        out["oracle_success_rate"] = float(np.mean([r["oracle_success"] for r in rows]))
    return out


def parse_budgets(text: str) -> list[tuple[int, int]]:
    """``"32x3,64x10,300x30"`` -> ``[(32, 3), (64, 10), (300, 30)]`` (samples x iterations)."""
    out = []
    for part in text.split(","):
        try:
            n, j = part.lower().split("x")
            out.append((int(n), int(j)))
        except ValueError:
            raise UserError(f"--sweep {text!r}: write budgets as SAMPLESxITERATIONS, comma-separated, e.g. 64x5,300x30") from None
    return out


def budget_sweep(wm: WorldModel, env_name: str, data: str | Path, cfg: PlanningConfig,
                 budgets: list[tuple[int, int]], out: str | Path, progress: bool = True) -> dict[str, Any]:
    """Success against planning budget (samples x iterations) on the same episodes; writes
    ``budget_sweep.json`` and ``budget_sweep.png`` into ``out``."""
    from dataclasses import replace

    from ..viz import horizon_plot

    rows = []
    for n, j in budgets:
        c = replace(cfg, cem=replace(cfg.cem, samples=n, iterations=j, topk=min(cfg.cem.topk, n)),
                    gd=replace(cfg.gd, samples=n, iterations=j), oracle=False)
        s = evaluate(wm, env_name, data, c, out=None, videos=0, progress=progress)
        rows.append({"samples": n, "iterations": j, "budget": s["budget"], "success_rate": s["success_rate"],
                     "ci95": s["ci95"], "random_success_rate": s["random_success_rate"],
                     "seconds_per_plan": s["seconds_per_plan"]})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "budget_sweep.json").write_text(json.dumps(rows, indent=2))
    horizon_plot([r["budget"] for r in rows], {cfg.planner: [r["success_rate"] for r in rows],
                                               "random actions (baseline)": [r["random_success_rate"] for r in rows]},
                 out / "budget_sweep.png", ylabel="success rate", xlabel="planning budget (samples x iterations)",
                 title=f"{env_name}: success vs budget ({cfg.episodes} episodes)")
    return {"budgets": rows, "figure": str(out / "budget_sweep.png")}
