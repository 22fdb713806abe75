"""``dinoworld collect``: offline trajectories for fine-tuning and planning."""

from __future__ import annotations

import argparse

from .common import JSON_HELP, check_output_folder, nonneg_int, positive_int
from .verb import Verb


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", required=True, help="pusht, wall or pointmaze")
    p.add_argument("--out", required=True, help="output folder (rerun the same command to resume)")
    p.add_argument("--episodes", type=positive_int, help="number of episodes (default: the paper's, Table 7)")
    p.add_argument("--steps", type=positive_int, help="actions per episode (default: the paper's; PushT draws 100-300)")
    p.add_argument("--img-size", type=positive_int, default=224, help="rendered frame side (default 224)")
    p.add_argument("--workers", type=positive_int, default=1, help="parallel worker processes")
    p.add_argument("--policy", choices=["random", "expert"],
                   help="default: random (wall, pointmaze), noisy expert (pusht)")
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--json", action="store_true", help=JSON_HELP)


def run(args: argparse.Namespace) -> int:
    from ..envs.collect import collect

    check_output_folder(args.out)
    s = collect(args.env, args.out, episodes=args.episodes, steps=args.steps, seed=args.seed, workers=args.workers,
                img_size=args.img_size, policy=args.policy)
    print(" ".join(f"{k}={v}" for k, v in s.items() if not isinstance(v, (list, dict))))
    return s


COLLECT = Verb("collect", "collect offline trajectories (frames + actions + states per episode) in an environment",
               "dinoworld collect --env wall --episodes 400 --steps 50 --img-size 56 --out data/wall", _args, run)
