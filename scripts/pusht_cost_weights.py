"""How much PushT's pusher and its block each move an encoder's standardised feature cost.

    python scripts/pusht_cost_weights.py --data data/pusht --encoders pixel-pyramid pixel-pyramid-opponent

From the first state of each of the first ``--episodes`` episodes of a PushT collection, the pusher
alone, then the block alone, is moved by the same distance (arena px, along x) and rendered at the
collection's frame size. The cost of each move is the mean squared feature difference to the unmoved
frame, every channel divided by its spread over the collection's frames (what a predictor with
``standardize`` plans with). PushT's success test counts the pusher's position as much as the
block's, so a cost that barely sees the pusher cannot guide it. Prints one JSON object: per encoder
and distance, the mean cost of each move and their ratio pusher / block.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from dinoworld.data.trajectories import episode_path, read_episode
from dinoworld.encoders import load_encoder
from dinoworld.envs import make_env
from dinoworld.errors import UserError, run_for_user


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255


def cost_weights(data: Path, encoders: list[str], episodes: int, distances: list[float]) -> dict:
    eps = [read_episode(episode_path(data, i), ("frames", "states")) for i in range(episodes)]
    size = eps[0]["frames"].shape[1]
    env = make_env("pusht", img_size=size)
    frames = to_tensor(np.concatenate([e["frames"][::5] for e in eps]))
    out = {}
    for name in encoders:
        enc = load_encoder(name)
        std = enc(frames).reshape(-1, enc.dim).std(0).clamp_min(1e-3)
        rows = {}
        for d in distances:
            cost = {"pusher": [], "block": []}
            for e in eps:
                start = e["states"][0].astype(np.float64)
                moved = {part: start.copy() for part in cost}
                moved["pusher"][0] += d
                moved["block"][2] += d
                f = enc(to_tensor(np.stack([env.render_state(s) for s in (start, *moved.values())])))
                for k, part in enumerate(cost, start=1):
                    cost[part].append((((f[k] - f[0]) / std) ** 2).mean().item())
            p, b = float(np.mean(cost["pusher"])), float(np.mean(cost["block"]))
            rows[str(d)] = {"pusher": p, "block": b, "ratio": p / b}
        out[name] = rows
    return {"data": str(data), "episodes": episodes, "frame_size": size, "encoders": out}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="a PushT trajectory folder (`dinoworld collect --env pusht`)")
    p.add_argument("--encoders", nargs="+", default=["pixel-pyramid", "pixel-pyramid-opponent"])
    p.add_argument("--episodes", type=int, default=20, help="episodes whose first states are moved (default 20)")
    p.add_argument("--distances", type=float, nargs="+", default=[10, 20, 40], help="arena px (default 10 20 40)")
    a = p.parse_args()

    def measure() -> None:
        if not episode_path(a.data, a.episodes - 1).is_file():
            raise UserError(f"{a.data} holds fewer than {a.episodes} episodes; give a PushT collection or fewer "
                            "--episodes")
        print(json.dumps(cost_weights(Path(a.data), a.encoders, a.episodes, a.distances), indent=1))
    return run_for_user(measure)[0]


if __name__ == "__main__":
    sys.exit(main())
