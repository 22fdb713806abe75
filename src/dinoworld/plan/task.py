"""The planning task: a checkpoint, its environment and held-out data; start / goal pairs, latents, costs, execution.

Each evaluation episode takes a held-out trajectory of the checkpoint's split and a start step ``s``
(drawn with the seed); the start is the recorded state at ``s``, the goal the state reached by
replaying the ``goal_steps`` recorded actions from it in the simulator (or, for goals
"random_state", both drawn by the env). Both are rendered by the simulator and encoded; the planner
searches normalised model actions whose rollout ends nearest the goal latent.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.trajectories import collection_fingerprint, load_trajectories
from ..data.video import resize_crop
from ..errors import UserError
from ..model import WorldModel
from .cem import Cost, Plan
from .protocol import EpisodeSpec, PlanningConfig
from .rollout import LatentRollout, latent_distance


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

    def clipped_fraction(self, raw_actions: np.ndarray) -> float | None:
        """The share of ``raw_actions``' entries the simulator clips (None in a world that applies any action)."""
        if not self.env.clip_actions:
            return None
        return float(np.mean((raw_actions < self.env.action_low) | (raw_actions > self.env.action_high)))

    def execute(self, state: np.ndarray, raw_actions: np.ndarray, goal: np.ndarray,
                record: list[np.ndarray] | None = None) -> tuple[np.ndarray, int | None]:
        """Run env actions from ``state``; returns the final state and the first step at which the goal was met."""
        states = self.env.rollout(state, raw_actions)  # (T+1, S)
        hits = [i for i, st in enumerate(states) if self.env.eval_state(goal, st)["success"]]
        if record is not None:
            record.extend(self.env.render_state(st) for st in states[1:])
        return states[-1], (hits[0] if hits else None)

    def cost(self, start_states: list[np.ndarray], goal_latents: torch.Tensor, cfg: PlanningConfig) -> Cost:
        """The planning cost of candidates from ``start_states``: world-model rollouts to the goal latents."""
        ctx = self.latents(start_states)[:, None]  # (E, 1, h, w, D)
        times = torch.zeros(ctx.shape[0], 1, device=ctx.device)
        roll = LatentRollout(self.wm.predictor, ctx, times, self.space.step_seconds, chunk=cfg.chunk)
        std = self.wm.predictor.standardize  # the space the model was trained in (identity by default)
        goal = std(goal_latents)
        clip = cfg.clip_model_actions and self.env.clip_actions  # as the simulator will execute them

        def cost(actions: torch.Tensor) -> torch.Tensor:
            if clip:
                actions = self.space.clip(actions, self.env.action_low, self.env.action_high)
            return latent_distance(std(roll(actions)), goal)
        return cost

    def simulator_cost(self, start_states: list[np.ndarray], goal_latents: torch.Tensor) -> Cost:
        """Cost of candidates by running them in the simulator and encoding the final frame."""
        std = self.wm.predictor.standardize

        def cost(actions: torch.Tensor) -> torch.Tensor:
            finals = self._simulated_finals(start_states, actions)
            lat = self.latents(finals).view(*actions.shape[:2], *goal_latents.shape[1:])
            return latent_distance(std(lat), std(goal_latents))
        return cost

    def state_cost(self, start_states: list[np.ndarray], goal_states: list[np.ndarray]) -> Cost:
        """Cost of candidates by running them in the simulator and comparing the final *state* with the
        goal state (:meth:`GoalEnv.state_cost`): no encoder, so what it cannot solve the search cannot."""
        def cost(actions: torch.Tensor) -> torch.Tensor:
            n = actions.shape[1]
            finals = self._simulated_finals(start_states, actions)
            c = [self.env.state_cost(goal_states[i // n], s) for i, s in enumerate(finals)]
            return torch.tensor(c, dtype=torch.float32, device=actions.device).view(actions.shape[:2])
        return cost

    def _simulated_finals(self, start_states: list[np.ndarray], actions: torch.Tensor) -> list[np.ndarray]:
        """Final simulator states of normalised model actions ``(E, N, H, A)``, episode-major."""
        raw = self.space.denormalize(actions).cpu().numpy()  # (E, N, H*f, A)
        return [self.env.rollout(start_states[e], raw[e, j])[-1]
                for e in range(raw.shape[0]) for j in range(raw.shape[1])]

    def plan(self, cost: Cost, n: int, cfg: PlanningConfig, gen: torch.Generator, search: str | None = None) -> Plan:
        """One open-loop plan for ``n`` episodes with ``cfg``'s planner, or ``search`` ("cem" or "gd")."""
        planner, settings = cfg.planner_fn(search)
        return planner(cost, n, cfg.horizon, self.space.model_dim, settings, device=self.wm.device, generator=gen)
