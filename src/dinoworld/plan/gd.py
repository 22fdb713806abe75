"""Gradient planning (DINO-WM's GD baseline): Adam on action sequences through a differentiable cost.

The same contract as :func:`.cem.cem` (see :class:`.mpc.Planner`): a cost ``(E, N, H, A) -> (E, N)``
of normalised model actions, ``E`` episodes planned together, a :class:`.cem.Plan` back.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .cem import Cost, Plan


@dataclass(frozen=True)
class GDConfig:
    """Gradient planning (DINO-WM's GD baseline): Adam on ``samples`` action sequences per episode."""

    samples: int = 10
    iterations: int = 100
    lr: float = 0.1
    init_std: float = 1.0

    @property
    def budget(self) -> int:
        return self.samples * self.iterations


def gradient_plan(cost: Cost, episodes: int, horizon: int, action_dim: int, cfg: GDConfig = GDConfig(), *,
                  mean: torch.Tensor | None = None, std: torch.Tensor | None = None, device=None,
                  generator: torch.Generator | None = None) -> Plan:
    """Adam on ``samples`` sequences per episode through a differentiable ``cost``; the cheapest wins.
    ``mean`` ``(E, H, A)`` warm-starts it (one sequence starts there, the others around it); ``std`` is
    accepted for the planners' shared signature and unused: GD keeps no proposal, its sequences start
    ``init_std`` apart."""
    shape = (episodes, cfg.samples, horizon, action_dim)
    start = torch.randn(shape, device=device, generator=generator) * cfg.init_std
    if mean is not None:
        start = start + mean.to(start.device)[:, None]
        start[:, 0] = mean
    actions = start.requires_grad_(True)
    opt = torch.optim.Adam([actions], lr=cfg.lr)
    for _ in range(cfg.iterations):
        with torch.enable_grad():
            c = cost(actions)
            opt.zero_grad(set_to_none=True)
            c.sum().backward()
        opt.step()
    with torch.no_grad():
        final = actions.detach()
        c = cost(final)
        best = c.argmin(dim=1)
        pick = final[torch.arange(episodes, device=final.device), best]
        return Plan(pick, c.gather(1, best[:, None])[:, 0])
