"""`torchrun` integration: process group, model wrapping (DDP / FSDP2), reductions."""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..errors import UserError


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # this process created the process group, so it destroys it

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed() -> Dist:
    """Join the process group when launched by `torchrun` (NCCL on CUDA, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    owns = world > 1 and not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return Dist(rank=rank, world_size=world, local_rank=local, device=device, owns_group=owns)


def shutdown_distributed(env: Dist, clean: bool = True) -> None:
    """Destroy the process group this process created, while the interpreter is still whole.

    Left to interpreter exit, gloo's worker threads can be torn down mid-way and the process dies
    with SIGABRT ("terminate called without an active exception") after its work is done. ``clean``
    (every rank got here) waits for all ranks first; after an error no rank waits for the others.
    """
    if not (env.owns_group and dist.is_initialized()):
        return
    gc.collect()  # wrappers (DDP's reducer, FSDP's mesh) that still hold the group let go of it first
    if clean:
        dist.barrier()
    dist.destroy_process_group()


def wrap_model(model: nn.Module, env: Dist, strategy: str, size: str) -> nn.Module:
    """DDP for base/large, FSDP2 (``fully_shard`` per block) for giant, nothing on one process."""
    if not env.enabled:
        return model
    if strategy == "auto":
        strategy = "fsdp" if size == "giant" else "ddp"
    if strategy == "ddp":
        ids = [env.device.index] if env.device.type == "cuda" else None
        unused = any(not p.requires_grad for p in model.parameters())
        return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=unused)
    if strategy == "fsdp":
        try:
            from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method
        except ImportError:
            raise UserError("strategy=fsdp needs torch>=2.6 (torch.distributed.fsdp.fully_shard)") from None
        for blk in model.blocks:
            fully_shard(blk)
            # keys/values are computed outside forward(): gather the block's weights there too
            register_fsdp_forward_method(blk, "context_kv")
        for blk in model.action_blocks or []:
            fully_shard(blk)
        fully_shard(model)
        return model
    raise UserError(f"unknown strategy {strategy!r}; use auto, ddp or fsdp")


def all_reduce_mean(x: torch.Tensor, env: Dist) -> torch.Tensor:
    if env.enabled:
        x = x.clone()
        dist.all_reduce(x)
        x /= env.world_size
    return x


def all_reduce_sum(x: torch.Tensor, env: Dist) -> torch.Tensor:
    if env.enabled:
        x = x.clone()
        dist.all_reduce(x)
    return x


def all_gather_objects(items: list, env: Dist) -> list:
    """Every rank's ``items`` (picklable), concatenated in rank order."""
    if not env.enabled:
        return list(items)
    out: list = [None] * env.world_size
    dist.all_gather_object(out, list(items))
    return [x for part in out for x in part]


def barrier(env: Dist) -> None:
    if env.enabled:
        dist.barrier()
