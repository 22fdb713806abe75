"""The planning protocols: the settings of an evaluation, the planners by name, the paper's and DINO-WM's defaults.

Two protocols (:func:`protocol_settings`): the paper's (App. D.3, Table 8), the dataclass's defaults,
and DINO-WM's (its ``plan_*.yaml``): goals drawn as random states for Wall (start and goal in opposite
rooms) and PointMaze, from held-out trajectories for PushT; 50 evaluations, seed 99; MPC over CEM with
300 samples, the best 30 and 10 iterations (30 for PushT), all 5 planned model steps executed before
each replanning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UserError
from .cem import CEMConfig, cem
from .gd import GDConfig, gradient_plan
from .mpc import Planner

#: open loop: "cem", "gd"; closed loop: "mpc" (MPC over CEM, DINO-WM's) and "mpc-gd" (MPC over GD)
PLANNERS = ("cem", "mpc", "gd", "mpc-gd")
#: the planner that searches the actions of each of :data:`PLANNERS` (MPC's sub-planner)
SEARCHES = {"cem": "cem", "mpc": "cem", "gd": "gd", "mpc-gd": "gd"}
#: the planning protocols: "paper" (DINO-world App. D.3, Table 8) and "dino-wm" (DINO-WM's plan_*.yaml)
PROTOCOLS = ("paper", "dino-wm")
GOAL_SOURCES = ("dataset", "random_state")
#: DINO-WM's configs let MPC replan until every episode succeeds (``max_iter: null``); this many plans end it
DINO_WM_MPC_PLANS = 10


@dataclass
class PlanningConfig:
    planner: str = "cem"  #: one of :data:`PLANNERS`
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
    #: show the world model the actions as the simulator executes them, clipped to the env's bounds
    #: (worlds that clip: PointMaze, PushT). False feeds them as sampled, so the search can credit the
    #: model with forces the simulator never applies (how planning ran before this setting existed)
    clip_model_actions: bool = True
    replan_every: int = 5  #: MPC: env actions executed between plans (0 < m <= H x frameskip)
    mpc_steps: int = 50  #: MPC: env actions in all
    episodes: int = 512
    batch: int = 16  #: episodes planned together
    seed: int = 0
    oracle: bool = True  #: also run open-loop CEM with the simulator as the model (slow: renders every candidate)
    chunk: int | None = None  #: candidates per forward pass (None: from the memory budget)
    precision: str = "auto"  #: predictor weights and activations: "auto" (bf16 on CUDA, fp32 on CPU), "bf16", "fp32"

    @property
    def closed_loop(self) -> bool:
        """MPC: replan from each newly observed state."""
        return self.planner in ("mpc", "mpc-gd")

    @property
    def search(self) -> str:
        """"cem" or "gd": the planner that searches the actions (MPC's sub-planner)."""
        return SEARCHES[self.planner]

    @property
    def budget(self) -> int:
        """Candidate rollouts per plan of the searching planner."""
        return self.gd.budget if self.search == "gd" else self.cem.budget

    def planner_fn(self, search: str | None = None) -> tuple[Planner, CEMConfig | GDConfig]:
        """The planner function and its settings for ``search`` ("cem" or "gd"; default :attr:`search`)."""
        search = search or self.search
        return (gradient_plan, self.gd) if search == "gd" else (cem, self.cem)

    def check(self) -> None:
        """Refuse unknown names and CEM elites beyond its samples (the checks that need no env or data)."""
        if self.planner not in PLANNERS:
            raise UserError(f"unknown planner {self.planner!r}; use one of {', '.join(PLANNERS)}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise UserError(f"unknown precision {self.precision!r}; use auto, bf16 or fp32")
        if self.goals not in GOAL_SOURCES:
            raise UserError(f"unknown goal source {self.goals!r}; use one of {', '.join(GOAL_SOURCES)}")
        if self.search != "gd":
            self.cem.check_elites()


@dataclass
class EpisodeSpec:
    index: int  #: evaluation episode number
    trajectory: int  #: held-out trajectory id
    start: int  #: start step in the trajectory
    start_state: np.ndarray
    goal_state: np.ndarray
    idle_success: bool = False  #: zero actions for the executed length reach the goal (doing nothing)


def batch_seed(seed: int, batch: int) -> int:
    """The planner's seed for batch ``batch`` of a run: batches draw independent noise, so a resumed run
    repeats them."""
    return int(np.random.SeedSequence([seed, 0x91A7, batch]).generate_state(1, np.uint64)[0])


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
