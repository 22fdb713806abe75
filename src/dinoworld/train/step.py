"""One optimizer step: the loss (paper Eq. 4), micro-batches with gradient accumulation, the update,
the learning-rate schedule, and the held-out loss of a validation pass.

Next-frame prediction with teacher forcing: for a clip of T frames, the predictor gets all T frames
as context and predicts frames 2..T at their actual timestamps; the block-triangular mask comes from
the predictor's strict-earlier rule. With actions, the query for frame t+1 also gets the action
taken at frame t.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..data.featurize import Featurizer
from ..errors import UserError
from ..model import prediction_loss, teacher_forced_baseline_losses
from .config import OptimConfig, TrainConfig
from .distributed import Dist, all_reduce_mean, all_reduce_sum
from .state import unwrap

#: ``loss_fn(model, feats, times, actions) -> (loss, baseline losses)``, :func:`teacher_forcing_loss`'s signature
LossFn = Callable[..., tuple[torch.Tensor, torch.Tensor]]
#: the baselines every training and held-out loss is logged beside, in the order the loss function returns them
BASELINES = ("copy_last", "context_mean")


def teacher_forcing_loss(
    model: nn.Module, feats: torch.Tensor, times: torch.Tensor, actions: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss of predicting frames 2..T from the clip, and for reference the losses of the two baselines
    (:data:`BASELINES`): copy-last (frame t for frame t+1) and the context mean (the mean of frames 1..t).

    feats ``(B, T, H, W, D)``, times ``(B, T)``, actions ``(B, T-1, A)`` (action t leads to frame t+1)
    -> ``(loss, (2,) baseline losses)``.
    """
    pred = model(feats, times, times[:, 1:], actions)
    space = getattr(unwrap(model), "standardize", lambda x: x)  # the predictor's feature space
    seen = space(feats)
    with torch.no_grad():
        baselines = teacher_forced_baseline_losses(seen)
    return prediction_loss(space(pred), seen[:, 1:]), baselines


def lr_factor(step: int, warmup: int, total: int = 0, schedule: str = "constant", floor: float = 0.0) -> float:
    """Learning-rate factor: linear warm-up over ``warmup`` steps, then constant 1 (paper App. A.2),
    or a cosine decay from 1 to ``floor`` at ``total`` steps (the paper found no difference at scale;
    short CPU runs need the decay to get below the gradient-noise floor)."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    raise UserError(f"unknown optim.schedule {schedule!r}; use constant or cosine")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices only; biases, LayerNorms, the query and layer scales are not decayed."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def accumulation_steps(o: OptimConfig, world_size: int) -> int:
    """Micro-batches per rank and optimizer step; refuses a batch size they cannot make up."""
    per_step = o.micro_batch_size * world_size
    if o.batch_size % per_step:
        raise UserError(
            f"optim.batch_size={o.batch_size} must be a multiple of micro_batch_size x world_size = {per_step}"
        )
    return o.batch_size // per_step


def make_optimizer(cfg: TrainConfig, model: nn.Module, device: torch.device):
    """AdamW on float32 master weights (one fused kernel per step on CUDA) and its warm-up/decay schedule."""
    o = cfg.optim
    optimizer = torch.optim.AdamW(param_groups(model, o.weight_decay), lr=o.lr, betas=tuple(o.betas),
                                  fused=device.type == "cuda")
    lr_factor(0, o.warmup_steps, cfg.total_steps, o.schedule)  # validate the schedule name up front
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, o.warmup_steps, cfg.total_steps, o.schedule, o.min_lr_ratio))
    return optimizer, scheduler


def loader(stream, batch_size: int, num_workers: int) -> Iterator[dict[str, Any]]:
    """Collated batches of ``stream``."""
    from torch.utils.data import DataLoader

    # Batches come from the workers in turn (in order, the default), which stream.observe relies on.
    dl = DataLoader(stream, batch_size=batch_size, num_workers=num_workers, drop_last=True,
                    persistent_workers=num_workers > 0, pin_memory=torch.cuda.is_available())
    return iter(dl)


@dataclass
class Accumulated:
    """What the micro-batches of one optimizer step gave."""

    loss: torch.Tensor  #: (3,): model loss and the :data:`BASELINES`' losses, mean over micro-batches and ranks
    skipped: int = 0  #: videos skipped while reading them (this rank)
    new_sources: list[str] = field(default_factory=list)  #: videos skipped there for the first time


def accumulate_gradients(model: nn.Module, batches: Iterator[dict[str, Any]], featurize: Featurizer, env: Dist,
                         accum: int, autocast: Callable[[], Any], loss_fn: LossFn = teacher_forcing_loss,
                         observe: Callable[[dict[str, Any]], None] | None = None) -> Accumulated:
    """Forward and backward ``accum`` micro-batches (DDP syncs gradients on the last one only)."""
    loss_sum = torch.zeros(1 + len(BASELINES), device=env.device)
    out = Accumulated(loss_sum)
    for micro in range(accum):
        batch = next(batches)
        if observe is not None:
            observe(batch)
        out.skipped += int(torch.as_tensor(batch["skipped"]).sum())
        out.new_sources += [n for joined in batch.get("skipped_sources", ()) for n in joined.split("\n") if n]
        feats, times, actions = featurize(batch)
        sync = micro == accum - 1 or not isinstance(model, nn.parallel.DistributedDataParallel)
        with (contextlib.nullcontext() if sync else model.no_sync()), autocast():
            loss, baselines = loss_fn(model, feats, times, actions)
            (loss / accum).backward()
        loss_sum += torch.cat([loss.detach().float()[None], baselines.float()]) / accum
    out.loss = all_reduce_mean(loss_sum, env)
    return out


def optimizer_step(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler, grad_clip: float
                   ) -> torch.Tensor | None:
    """Clip (when ``grad_clip`` > 0), update, advance the schedule, clear the gradients; the gradient norm or None."""
    gnorm = None
    if grad_clip > 0:
        trained = [p for p in model.parameters() if p.requires_grad]
        gnorm = torch.nn.utils.clip_grad_norm_(trained, grad_clip)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return gnorm


@torch.no_grad()
def heldout_loss(model: nn.Module, batches: Iterator[dict[str, Any]], featurize: Featurizer, env: Dist,
                 max_batches: int, autocast: Callable[[], Any], loss_fn: LossFn = teacher_forcing_loss
                 ) -> dict[str, float]:
    """Mean model loss (``val/loss``) and the :data:`BASELINES`' losses (``val/copy_last``,
    ``val/context_mean``) over the first ``max_batches`` batches (all ranks together); empty when there
    is not one batch (never a made-up 0.0)."""
    model.eval()
    sums = torch.zeros(2 + len(BASELINES), device=featurize.device)
    try:
        for _ in range(max_batches):
            try:
                batch = next(batches)
            except StopIteration:
                break
            feats, times, actions = featurize(batch)
            with autocast():
                loss, baselines = loss_fn(model, feats, times, actions)
            sums += torch.cat([loss.float()[None], baselines.float(), torch.ones(1, device=sums.device)])
    finally:
        model.train()
    sums = all_reduce_sum(sums, env)
    n = sums[-1].item()
    names = ("loss", *BASELINES)
    return {f"val/{k}": v / n for k, v in zip(names, sums[:-1].tolist())} if n else {}


__all__ = ["BASELINES", "Accumulated", "accumulate_gradients", "accumulation_steps", "heldout_loss", "loader",
           "lr_factor", "make_optimizer", "optimizer_step", "param_groups", "teacher_forcing_loss"]
