"""The cross-entropy method over a batch of episodes (gradient planning is in :mod:`.gd`).

Pure functions of a cost ``cost(actions (E, N, H, A)) -> (E, N)`` (lower is better): ``E``
episodes planned together, ``N`` candidate action sequences each, ``H`` model steps of ``A``-d
*normalised* model actions. Nothing here knows about models or environments, and nothing reads a
value back to the host inside the loop (no ``.item()``, no data-dependent branch), so a GPU
runs the whole plan without synchronising.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import UserError

Cost = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class CEMConfig:
    """Paper App. D defaults: 300 samples, 30 iterations, top 10, proposal N(0, 1)."""

    samples: int = 300
    iterations: int = 30
    topk: int = 10
    init_std: float = 1.0

    def __post_init__(self) -> None:
        if self.samples < 1 or self.iterations < 1 or self.topk < 1:
            raise UserError(f"CEM needs samples >= 1, iterations >= 1 and topk >= 1; got "
                            f"samples={self.samples}, iterations={self.iterations}, topk={self.topk}")

    def check_elites(self) -> None:
        """Refuse more elites than candidates (only CEM keeps elites: GD shares the samples count)."""
        if self.topk > self.samples:
            raise UserError(f"CEM keeps the best --topk {self.topk} of --samples {self.samples} candidates: "
                            "lower --topk or raise --samples")

    @property
    def budget(self) -> int:
        """Candidate rollouts per plan (samples x iterations)."""
        return self.samples * self.iterations


@dataclass
class Plan:
    actions: torch.Tensor  #: (E, H, A) the plan: the final proposal mean (CEM) or best sequence (GD)
    cost: torch.Tensor  #: (E,) cost of ``actions``
    std: torch.Tensor | None = None  #: (E, H, A) final proposal std (CEM), for warm starts


@torch.no_grad()  # CEM only ranks costs: no autograd graph is ever built or kept
def cem(cost: Cost, episodes: int, horizon: int, action_dim: int, cfg: CEMConfig = CEMConfig(), *,
        mean: torch.Tensor | None = None, std: torch.Tensor | None = None, device=None,
        generator: torch.Generator | None = None) -> Plan:
    """Cross-entropy method: sample ``N`` sequences from ``N(mean, std)``, keep the ``K`` cheapest,
    refit mean and std to them, ``J`` times. ``mean``/``std`` ``(E, H, A)`` warm-start the proposal
    (default ``N(0, init_std)``). Returns the final mean and its cost."""
    cfg.check_elites()
    shape = (episodes, horizon, action_dim)
    mu = torch.zeros(shape, device=device) if mean is None else mean.to(device).clone()
    sigma = torch.full(shape, cfg.init_std, device=mu.device) if std is None else std.to(mu.device).clone()
    if mu.shape != shape or sigma.shape != shape:
        raise UserError(f"warm start must have shape {shape}, got {tuple(mu.shape)} and {tuple(sigma.shape)}")
    for _ in range(cfg.iterations):
        noise = torch.randn((episodes, cfg.samples, horizon, action_dim), device=mu.device, generator=generator)
        cand = mu[:, None] + sigma[:, None] * noise  # (E, N, H, A)
        cand[:, 0] = mu  # the current mean always competes
        c = cost(cand)  # (E, N)
        idx = c.topk(cfg.topk, dim=1, largest=False).indices  # (E, K)
        elites = cand.gather(1, idx[:, :, None, None].expand(-1, -1, horizon, action_dim))
        mu = elites.mean(dim=1)
        sigma = elites.std(dim=1, unbiased=False) if cfg.topk > 1 else sigma
    return Plan(mu, cost(mu[:, None])[:, 0], sigma)
