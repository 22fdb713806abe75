"""Run by tests/test_train.py, alone or under `torchrun`: train, then gather every rank's parameters."""

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from dinoworld.config import load_config
from dinoworld.train import TrainConfig, train
from dinoworld.train.distributed import init_distributed, shutdown_distributed


def main() -> None:
    torch.set_num_threads(1)
    cfg = load_config(TrainConfig, None, sys.argv[1:])
    env = init_distributed()  # created here, so train() leaves it alive for the gather below
    model = train(cfg, resume=False, return_model=True)["model"]
    params = [p.full_tensor() if hasattr(p, "full_tensor") else p for p in model.parameters()]  # FSDP2: DTensor
    flat = torch.cat([p.detach().flatten() for p in params])
    del model, params  # the FSDP2 module holds the process group: release it before the group goes
    if env.enabled:
        gathered = [torch.zeros_like(flat) for _ in range(env.world_size)]
        dist.all_gather(gathered, flat)
        if env.is_main:
            torch.save(torch.stack(gathered), Path(cfg.out_dir) / "ranks.pt")
    else:
        torch.save(flat[None], Path(cfg.out_dir) / "ranks.pt")
    shutdown_distributed(env)


if __name__ == "__main__":
    main()
