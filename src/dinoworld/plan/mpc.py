"""Model predictive control over any planner (the idea of DINO-WM's ``planning/mpc.py``).

MPC asks a sub-planner (:func:`.cem.cem`, :func:`.gd.gradient_plan`, or any :class:`Planner`) for a
plan over the whole horizon from the current observation, executes its first ``executed`` steps,
observes where that led and plans again, warm-started from the rest of the previous plan shifted
forward (:func:`shift`). Observing and executing are the caller's (``observe`` and ``execute``), so
nothing here knows about models or environments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch

from ..errors import UserError
from .cem import Cost, Plan


class PlannerConfig(Protocol):
    """What MPC needs of a planner's settings (:class:`.cem.CEMConfig`, :class:`.gd.GDConfig`)."""

    @property
    def init_std(self) -> float:
        """The std of the prior N(0, init_std) over normalised actions: the proposal for unplanned steps."""
        ...

    @property
    def budget(self) -> int:
        """Candidate rollouts per plan."""
        ...


class Planner(Protocol):
    """The signature :func:`.cem.cem` and :func:`.gd.gradient_plan` share: plan ``episodes`` episodes
    of ``horizon`` steps of ``action_dim``-d normalised model actions against ``cost`` (``(E, N, H, A)
    -> (E, N)``, lower is better) with the planner's own settings ``cfg``. ``mean`` and ``std``
    ``(E, H, A)`` warm-start it (a planner without a proposal std ignores ``std``); the random draws
    come from ``generator`` on ``device``."""

    def __call__(self, cost: Cost, episodes: int, horizon: int, action_dim: int, cfg: Any, /, *,
                 mean: torch.Tensor | None = None, std: torch.Tensor | None = None, device: Any = None,
                 generator: torch.Generator | None = None) -> Plan: ...


def shift(plan: Plan, steps: int, prior_std: float) -> Plan:
    """Warm start: drop the ``steps`` executed steps, pad with the prior N(0, prior_std)."""
    a = torch.cat([plan.actions[:, steps:], torch.zeros_like(plan.actions[:, :steps])], dim=1)
    std = None if plan.std is None else torch.cat(
        [plan.std[:, steps:], torch.full_like(plan.std[:, :steps], prior_std)], dim=1)
    return Plan(a, plan.cost, std)


def mpc(planner: Planner, cfg: PlannerConfig, observe: Callable[[], Cost], execute: Callable[[torch.Tensor], None],
        episodes: int, horizon: int, action_dim: int, *, plans: int, executed: int, device: Any = None,
        generator: torch.Generator | None = None) -> torch.Tensor:
    """Receding-horizon control: ``plans`` times, plan ``horizon`` steps with ``planner`` (settings ``cfg``)
    against ``observe()`` (the cost from the current observation), hand the plan's first ``executed``
    steps ``(E, executed, A)`` to ``execute`` (which acts on them, so the next ``observe`` sees the
    result), and warm-start the next plan from the rest of this one, shifted by ``executed`` steps and
    padded with the prior N(0, ``cfg.init_std``). The first plan starts from the planner's own default.

    Returns the actions handed to ``execute``, ``(E, plans x executed, A)``. Success never stops it
    early: the caller decides what to do with steps after a goal is met."""
    if not 0 < executed <= horizon:
        raise UserError(f"MPC executes between 1 and the {horizon} planned steps before replanning, not {executed}")
    warm: Plan | None = None
    taken = []
    for _ in range(plans):
        plan = planner(observe(), episodes, horizon, action_dim, cfg, mean=None if warm is None else warm.actions,
                       std=None if warm is None else warm.std, device=device, generator=generator)
        first = plan.actions[:, :executed]
        execute(first)
        taken.append(first)
        warm = shift(plan, executed, cfg.init_std)
    return torch.cat(taken, dim=1) if taken else torch.zeros(episodes, 0, action_dim, device=device)
