"""The planning evaluation (§4.3, App. D, Table 4): plan from held-out starts to goals.

Two protocols (``protocol_settings``): the paper's (App. D.3, Table 8), the default, described
below, and DINO-WM's (its ``plan_*.yaml``): goals drawn as random states for Wall (start and goal
in opposite rooms) and PointMaze, from held-out trajectories for PushT; 50 evaluations, seed 99;
MPC over CEM with 300 samples, the best 30 and 10 iterations (30 for PushT), all 5 planned model
steps executed before each replanning.

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
(doing nothing: in PointMaze the ball coasts on its recorded velocity and sometimes reaches the
goal, so ``nontrivial`` can keep only the pairs that doing nothing misses), and with CEM on the
simulator itself (rendered final frames encoded and compared to the goal latent: the ceiling of
the feature cost).

With ``out``, a rerun of the same settings into the same folder resumes after the last finished
batch (``plan.json`` records the checkpoint, data and settings; each batch has its own seeds, so the
resumed summary equals an uninterrupted one); other settings are refused unless ``overwrite``.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.trajectories import collection_fingerprint, load_trajectories
from ..data.video import resize_crop
from ..devices import uses_bf16
from ..errors import UserError
from ..files import atomic_write_json, atomic_write_text
from ..model import WorldModel
from ..progress import progress_bar
from .cem import CEMConfig, GDConfig, Plan, cem, gradient_plan
from .rollout import LatentRollout, latent_distance

PLANNERS = ("cem", "mpc", "gd")
#: the planning protocols: "paper" (DINO-world App. D.3, Table 8) and "dino-wm" (DINO-WM's plan_*.yaml)
PROTOCOLS = ("paper", "dino-wm")
GOAL_SOURCES = ("dataset", "random_state")
PLAN_FILE = "plan.json"  #: what determines a planning run's results, written into ``out`` at its start
#: every file a planning run (or its budget sweep) writes into ``out``
OUTPUT_PATTERNS = (PLAN_FILE, "episodes.jsonl", "summary.json", "episode_*.mp4", "budget_sweep.*")
#: settings that change how candidates pass through memory, not the results
OPERATIONAL_SETTINGS = ("chunk", "memory_budget")
_warned_unchecked: set[str] = set()


@dataclass
class PlanningConfig:
    planner: str = "cem"
    cem: CEMConfig = field(default_factory=CEMConfig)
    gd: GDConfig = field(default_factory=GDConfig)
    horizon: int = 5  #: model steps planned (H' = 5: 25 env actions at frameskip 5)
    goal_steps: int = 25  #: recorded env steps from start to goal (goals "dataset")
    #: "dataset": the state reached by replaying ``goal_steps`` recorded actions of a held-out trajectory
    #: (the paper; DINO-WM's PushT); "random_state": a random start and goal as the env draws them
    #: for DINO-WM's Wall and PointMaze (the layout of a held-out trajectory where the world has one)
    goals: str = "dataset"
    protocol: str = "paper"  #: the name of the protocol these settings follow (reported, not used)
    #: keep only pairs that doing nothing (zero actions for the executed length) does not solve, so a
    #: planner must act; off by default, as in the paper, where every reachable pair counts
    nontrivial: bool = False
    replan_every: int = 5  #: MPC: env actions executed between plans (0 < m <= H x frameskip)
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


#: DINO-WM's configs let MPC replan until every episode succeeds (``max_iter: null``); this many plans end it
DINO_WM_MPC_PLANS = 10


def protocol_settings(protocol: str, env: str, frameskip: int) -> dict[str, Any]:
    """The :class:`PlanningConfig` fields a protocol fixes. "paper" (App. D.3, Table 8: N 300, K 10,
    J 30, H' 5, goals 25 recorded steps ahead in held-out episodes, all 25 actions executed open loop)
    is the dataclass's defaults; "dino-wm" follows ``conf/plan_{wall,point_maze,pusht}.yaml`` of DINO-WM."""
    if protocol not in PROTOCOLS:
        raise UserError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    if protocol == "paper":
        return {"protocol": "paper"}
    horizon = 5  # goal_H: the planning horizon, and the model steps MPC executes before replanning
    return {
        "protocol": protocol, "planner": "mpc", "episodes": 50, "seed": 99, "horizon": horizon,
        "cem": CEMConfig(samples=300, iterations=30 if env == "pusht" else 10, topk=30),
        "goals": "dataset" if env == "pusht" else "random_state", "goal_steps": horizon * frameskip,
        "replan_every": horizon * frameskip, "mpc_steps": DINO_WM_MPC_PLANS * horizon * frameskip,
    }


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
            raise UserError(f"--env {env_name} but the checkpoint was fine-tuned on {space.env}; "
                            f"pass --env {space.env}")
        if wm.encoder is None:
            raise UserError("planning needs the checkpoint's encoder")
        self.wm, self.space, self.env_name = wm, space, env_name
        wm.predictor.requires_grad_(False)  # planning differentiates w.r.t. actions only, never the weights
        self.data = load_trajectories(data)
        if self.data.env and self.data.env != env_name:
            raise UserError(f"--data {data} holds {self.data.env} trajectories, not {env_name}")
        if self.data.action_dim != space.raw_dim:
            raise UserError(f"--data {data} has {self.data.action_dim}-d actions but the checkpoint expects "
                            f"{space.raw_dim}-d")
        self.resolution = wm.meta.training_resolution
        self.env = make_env(env_name, img_size=getattr(self.data, "img_size", None) or self.resolution)
        now = self.env.world_version
        for what, recorded in ((f"checkpoint {wm.meta.env} model", wm.meta.world),
                               (f"--data {data}", self.data.world_version)):
            if (recorded or "") != now:
                was = recorded or "(before world versions)"
                raise UserError(f"the {what} comes from the {env_name} world {was!r}, "
                                f"but this dinoworld simulates {now!r}: collect new data with `dinoworld collect "
                                f"--env {env_name}` and fine-tune on it")
        split = wm.meta.split or {}
        ids = getattr(self.data, "episode_ids", list(range(len(self.data))))
        pos = {e: i for i, e in enumerate(ids)}
        self.val_positions = [pos[e] for e in split.get("val", []) if e in pos]
        if not self.val_positions:
            raise UserError(f"none of the checkpoint's held-out episodes ({len(split.get('val', []))}) is in {data}; "
                            "pass the trajectory folder it was fine-tuned on")
        self._check_collection(split, data)

    @staticmethod
    def _check_collection(split: dict[str, Any], data: str | Path) -> None:
        """Refuse ``data`` unless it is the collection whose episode ids the split holds."""
        want = split.get("data_fingerprint")
        if want is None:
            if str(data) not in _warned_unchecked:
                _warned_unchecked.add(str(data))
                print(f"warning: the checkpoint does not record which collection its split indexes; "
                      f"make sure --data {data} is the one it was fine-tuned on", file=sys.stderr)
            return
        have = collection_fingerprint(data, [*split.get("train", []), *split.get("val", [])])
        if have != want:
            raise UserError(f"--data {data} (collection {have}) is not the collection the checkpoint was fine-tuned "
                            f"on ({split.get('data', 'path not recorded')}, collection {want}); pass that folder")

    def idle_success(self, start: np.ndarray, goal: np.ndarray, steps: int) -> bool:
        """Does doing nothing — ``steps`` zero actions (Wall: no move; PushT: the pusher holds its place;
        PointMaze: no force, the ball coasts on) — pass the env's success test?"""
        final = self.env.rollout(start, np.zeros((steps, self.env.action_dim)))[-1]
        return bool(self.env.eval_state(goal, final)["success"])

    def episodes(self, n: int, goal_steps: int, seed: int, idle_steps: int = 0,
                 nontrivial: bool = False, goals: str = "dataset") -> Iterator[EpisodeSpec]:
        """``n`` (start, goal) pairs from held-out trajectories, cycling through them, each with whether
        ``idle_steps`` zero actions solve it; with ``nontrivial`` only the pairs they do not solve.
        Goals "random_state" draw both states with :meth:`GoalEnv.random_state_pair` instead."""
        rng = np.random.default_rng([seed, 0x91A])
        order = rng.permutation(len(self.val_positions))
        made, tries, solved = 0, 0, 0
        while made < n:
            p = self.val_positions[order[tries % len(order)]]
            tries += 1
            if tries > 50 * max(len(order), n) and made == 0:
                raise UserError(f"no held-out start is {goal_steps} steps from a goal that doing nothing misses "
                                f"({solved} tried were solved by zero actions); "
                                "raise --goal-steps or drop --nontrivial")
            length = self.data.length(p)
            if length < goal_steps:
                if tries > 10 * len(order) and made == 0:
                    raise UserError(f"no held-out episode has {goal_steps} steps; lower --goal-steps")
                continue
            ep = self.data.episode(p)
            s = int(rng.integers(0, length - goal_steps + 1))
            start = np.asarray(ep["states"][s], np.float64)
            if goals == "random_state":
                start, goal = self.env.random_state_pair(rng, start)
            else:
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
    if cfg.planner not in PLANNERS:
        raise UserError(f"unknown planner {cfg.planner!r}; use one of {', '.join(PLANNERS)}")
    if cfg.cost_model not in ("world_model", "simulator"):
        raise UserError(f"unknown cost model {cfg.cost_model!r}; use world_model or simulator")
    if cfg.cost_model == "simulator" and cfg.planner == "gd":
        raise UserError("the simulator is not differentiable: plan it with cem or mpc, not gd")
    if cfg.precision not in ("auto", "bf16", "fp32"):
        raise UserError(f"unknown precision {cfg.precision!r}; use auto, bf16 or fp32")
    if cfg.goals not in GOAL_SOURCES:
        raise UserError(f"unknown goal source {cfg.goals!r}; use one of {', '.join(GOAL_SOURCES)}")
    if cfg.planner != "gd":
        cfg.cem.check_elites()
    bf16 = uses_bf16(cfg.precision, wm.device)
    wm.predictor.to(torch.bfloat16 if bf16 else torch.float32)
    task = PlanningTask(wm, env_name, data)
    f = task.space.frameskip
    if cfg.planner == "mpc" and not 0 < cfg.replan_every <= cfg.horizon * f:
        raise UserError(f"MPC executes at most the planned actions before replanning: need 0 < --replan-every "
                        f"<= {cfg.horizon * f} (horizon {cfg.horizon} x frameskip {f})")
    if cfg.replan_every % f and cfg.planner == "mpc":
        raise UserError(f"--replan-every must be a multiple of the frameskip {f}")
    out_dir = Path(out) if out else None
    rows: list[dict[str, Any]] = []
    if out_dir:
        rows = _prepare_out(out_dir, _run_identity(wm, env_name, data, cfg, bf16), cfg, overwrite)
    try:
        specs = list(task.episodes(cfg.episodes, cfg.goal_steps, cfg.seed, cfg.horizon * f, cfg.nontrivial,
                                   cfg.goals))
        _plan_batches(task, specs, rows, cfg, out_dir, videos, progress)
    except KeyboardInterrupt:
        if out_dir:
            atomic_write_json(out_dir / "summary.json", _summary(rows, cfg, task))
            print(f"interrupted after {len(rows)} of {cfg.episodes} episodes; rerun the same command to resume",
                  file=sys.stderr)
        raise
    summary = _summary(rows, cfg, task)
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
        gen = torch.Generator(device=device).manual_seed(_batch_seed(cfg.seed, b0 // cfg.batch))
        rng = np.random.default_rng([cfg.seed, 0xBA5E, b0 // cfg.batch])
        batch = specs[b0 : b0 + cfg.batch]
        goals = task.latents([s.goal_state for s in batch])
        records: list[list[np.ndarray] | None] = [[] if s.index < videos and out_dir else None for s in batch]
        if cfg.planner == "mpc":
            results, secs = _run_mpc(task, batch, goals, cfg, gen, records)
        else:
            _sync(device)
            t0 = time.perf_counter()
            plan = task.plan(task.cost([s.start_state for s in batch], goals, cfg), len(batch), cfg, gen)
            raw = task.space.denormalize(plan.actions).cpu().numpy()
            secs = (time.perf_counter() - t0) / len(batch)
            results = [task.execute(s.start_state, raw[i], s.goal_state, records[i]) for i, s in enumerate(batch)]
        oracle = None
        if cfg.oracle:
            oplan = task.plan(task.cost([s.start_state for s in batch], goals, cfg, "simulator"), len(batch),
                              oracle_cfg, gen, planner="cem")
            oraw = task.space.denormalize(oplan.actions).cpu().numpy()
            oracle = [task.execute(s.start_state, oraw[i], s.goal_state) for i, s in enumerate(batch)]
        finished = []
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
            finished.append(row)
            if records[i] and out_dir:
                _write_episode_video(out_dir / f"episode_{s.index:04d}.mp4", task, s, records[i])
        if out_dir:
            with open(out_dir / "episodes.jsonl", "a") as fh:
                fh.writelines(json.dumps(r) + "\n" for r in finished)
        rows.extend(finished)
        bar.update(len(batch))
        bar.set_postfix(success=f"{np.mean([r['success'] for r in rows]):.2f}",
                        random=f"{np.mean([r['random_success'] for r in rows]):.2f}")
    bar.close()


def _batch_seed(seed: int, batch: int) -> int:
    """The planner's seed for batch ``batch``: batches draw independent noise, so a resumed run repeats them."""
    return int(np.random.SeedSequence([seed, 0x91A7, batch]).generate_state(1, np.uint64)[0])


def _summary(rows: list[dict[str, Any]], cfg: PlanningConfig, task: PlanningTask) -> dict[str, Any]:
    seconds = [rows[b]["seconds_planning"] for b in range(0, len(rows), cfg.batch)]  # one plan time per batch
    return {**summarize(rows, cfg, seconds, task), "complete": len(rows) == cfg.episodes,
            "episodes_requested": cfg.episodes}


def _checkpoint_fingerprint(wm: WorldModel) -> str:
    """A hash of the checkpoint's metadata and predictor weights (as planned with: after the precision cast)."""
    h = hashlib.sha256(json.dumps(wm.meta.to_json(), sort_keys=True, default=str).encode())
    for name, t in wm.predictor.state_dict().items():
        t = t.detach().reshape(-1).cpu()
        h.update(f"{name} {t.dtype} {t.numel()}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def _run_identity(wm: WorldModel, env_name: str, data: str | Path, cfg: PlanningConfig, bf16: bool) -> dict[str, Any]:
    """Everything that determines a run's rows: the checkpoint, env, collection and settings."""
    settings = {k: v for k, v in asdict(cfg).items() if k not in OPERATIONAL_SETTINGS}
    settings["precision"] = "bf16" if bf16 else "fp32"
    return {"checkpoint": _checkpoint_fingerprint(wm), "env": env_name, "collection": collection_fingerprint(data),
            "data": str(Path(data).resolve()), "settings": json.loads(json.dumps(settings))}


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """``"key: old before, new now"`` for each setting that differs (nested ones as ``cem.samples``)."""
    out = []
    for k in sorted(set(old) | set(new), key=str):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a} before, {b} now")
    return out


def _compared(run: dict[str, Any]) -> dict[str, Any]:
    """What must match for a run to resume another (the data may have moved: its path is not compared)."""
    return {"checkpoint": run.get("checkpoint"), "env": run.get("env"), "collection": run.get("collection"),
            **run.get("settings", {})}


def _prepare_out(out_dir: Path, run: dict[str, Any], cfg: PlanningConfig, overwrite: bool) -> list[dict[str, Any]]:
    """Make ``out_dir`` ready for ``run``; returns the rows of the batches an earlier, identical run finished."""
    out_dir.mkdir(parents=True, exist_ok=True)
    used = sorted(p for pattern in OUTPUT_PATTERNS for p in out_dir.glob(pattern) if p.is_file())
    rows: list[dict[str, Any]] = []
    plan_file = out_dir / PLAN_FILE
    if used and overwrite:
        for p in used:
            p.unlink()
    elif plan_file.is_file():
        old = json.loads(plan_file.read_text())
        diff = _differences(_compared(old), _compared(run))
        if diff:
            raise UserError(f"{out_dir} holds a planning run with other settings ({'; '.join(diff)}); "
                            "pass --overwrite to replace it, or another --out")
        rows = _finished_rows(out_dir / "episodes.jsonl", cfg)
    elif used:
        raise UserError(f"{out_dir} holds plan outputs ({used[0].name}, ...) that record no settings; "
                        "pass --overwrite to replace them, or another --out")
    atomic_write_json(plan_file, run)
    atomic_write_text(out_dir / "episodes.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    return rows


def _finished_rows(path: Path, cfg: PlanningConfig) -> list[dict[str, Any]]:
    """The rows of ``path`` up to the last complete batch (a run killed while appending may leave less)."""
    rows = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    keep = 0
    for b0 in range(0, cfg.episodes, cfg.batch):
        want = list(range(b0, min(b0 + cfg.batch, cfg.episodes)))
        if [r.get("episode") for r in rows[b0 : b0 + len(want)]] != want:
            break
        keep = b0 + len(want)
    return rows[:keep]


def _run_mpc(task: PlanningTask, batch: list[EpisodeSpec], goals: torch.Tensor, cfg: PlanningConfig,
             gen: torch.Generator, records: list) -> tuple[list[tuple[np.ndarray, int | None]], float]:
    f, m = task.space.frameskip, cfg.replan_every
    states = [s.start_state.copy() for s in batch]
    first: list[int | None] = [0 if task.env.eval_state(s.goal_state, s.start_state)["success"] else None
                               for s in batch]
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


def summarize(rows: list[dict[str, Any]], cfg: PlanningConfig, plan_seconds: list[float],
              task: PlanningTask) -> dict[str, Any]:
    n = len(rows)
    wins = sum(r["success"] for r in rows)
    budget = cfg.gd.budget if cfg.planner == "gd" else cfg.cem.budget
    out: dict[str, Any] = {
        "env": task.env_name, "protocol": cfg.protocol, "goals": cfg.goals, "planner": cfg.planner,
        "cost_model": cfg.cost_model, "episodes": n,
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
            n, j = (int(v) for v in part.lower().split("x"))
            if n < 1 or j < 1:
                raise ValueError
            out.append((n, j))
        except ValueError:
            raise UserError(f"--sweep {text!r}: write budgets as SAMPLESxITERATIONS, comma-separated, "
                            "e.g. 64x5,300x30") from None
    return out


def budget_sweep(wm: WorldModel, env_name: str, data: str | Path, cfg: PlanningConfig,
                 budgets: list[tuple[int, int]], out: str | Path, progress: bool = True) -> dict[str, Any]:
    """Success against planning budget (samples x iterations) on the same episodes; writes
    ``budget_sweep.json`` and ``budget_sweep.png`` into ``out``."""
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
    atomic_write_json(out / "budget_sweep.json", rows)
    horizon_plot([r["budget"] for r in rows], {cfg.planner: [r["success_rate"] for r in rows],
                                               "random actions (baseline)": [r["random_success_rate"] for r in rows]},
                 out / "budget_sweep.png", ylabel="success rate", ylim=(0, 1),
                 xlabel="planning budget (samples x iterations)",
                 title=f"{env_name}: success vs budget ({cfg.episodes} episodes)")
    return {"budgets": rows, "figure": str(out / "budget_sweep.png")}
