"""Run by tests/test_train.py, alone or under `torchrun`: train, then gather every rank's parameters."""

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from dinoworld.config import load_config
from dinoworld.train import TrainConfig, train

torch.set_num_threads(1)
cfg = load_config(TrainConfig, None, sys.argv[1:])
summary = train(cfg, resume=False, return_model=True)
params = [p.full_tensor() if hasattr(p, "full_tensor") else p for p in summary["model"].parameters()]  # FSDP2: DTensor
flat = torch.cat([p.detach().flatten() for p in params])
if dist.is_initialized():
    gathered = [torch.zeros_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    if dist.get_rank() == 0:
        torch.save(torch.stack(gathered), Path(cfg.out_dir) / "ranks.pt")
    dist.destroy_process_group()
else:
    torch.save(flat[None], Path(cfg.out_dir) / "ranks.pt")
