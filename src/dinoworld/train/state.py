"""What a run saves to resume exactly: its progress, full model/optimizer state and the random generators."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .distributed import Dist


def unwrap(model: nn.Module) -> nn.Module:
    """The predictor inside a DDP wrapper (FSDP2 shards in place: the module itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def seed_everything(seed: int) -> None:
    """Seed torch, Python's and NumPy's global generators."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])


def full_state(model: nn.Module, optimizer: torch.optim.Optimizer, env: Dist):
    """Full (gathered) model and optimizer state dicts, on CPU."""
    if not env.enabled:
        return unwrap(model).state_dict(), optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_state_dict(unwrap(model), optimizer, options=opts)


def load_full_state(model: nn.Module, optimizer: torch.optim.Optimizer, msd, osd, env: Dist) -> None:
    """Load full (gathered) state dicts, as :func:`full_state` gives them, into a possibly sharded model."""
    if not env.enabled:
        unwrap(model).load_state_dict(msd)
        optimizer.load_state_dict(osd)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    set_state_dict(unwrap(model), optimizer, model_state_dict=msd, optim_state_dict=osd,
                   options=StateDictOptions(full_state_dict=True))


@dataclass
class Progress:
    """How far a run got: its step, where its data stream stands, and the unreadable videos met so far."""

    step: int = 0
    #: ``{"stage": i, "stream": state dict}`` of the training stream after the last step (None: fresh)
    data: dict[str, Any] | None = None
    skip_events: int = 0  #: skipped videos, counted each time (each epoch meets them again)
    #: distinct skipped videos, over all ranks, workers and epochs
    skipped_sources: set[str] = field(default_factory=set)

    def train_state(self, optimizer: dict[str, Any], scheduler: dict[str, Any], at: int,
                    rng: dict[str, Any]) -> dict[str, Any]:
        """The ``train_state.pt`` content of a checkpoint at step ``at``."""
        return {"optimizer": optimizer, "scheduler": scheduler, "step": at, "data": self.data, "rng": rng,
                "skip_events": self.skip_events, "skipped_sources": sorted(self.skipped_sources)}

    @classmethod
    def from_train_state(cls, state: dict[str, Any]) -> Progress:
        return cls(state["step"], state["data"], state.get("skip_events", state.get("skipped", 0)),
                   set(state.get("skipped_sources", ())))


__all__ = ["Progress", "full_state", "load_full_state", "rng_state", "seed_everything", "set_rng_state", "unwrap"]
