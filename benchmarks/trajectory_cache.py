"""Fine-tuning from a trajectory feature cache vs encoding the frames at every step.

    python benchmarks/trajectory_cache.py --env pointmaze --episodes 40 --steps 100 --resolution 112

Collects a small collection (or takes --data), encodes it once (`dinoworld encode`), then times the same
fine-tuning run (configs/finetune-cpu.yaml, tiny predictor, pixel-pyramid) both ways in this process
and prints seconds per step of each and the ratio. The encode time is printed too: it is paid once.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from dinoworld.data.trajectory_cache import encode_trajectories
from dinoworld.encoders import load_encoder
from dinoworld.envs.collect import collect
from dinoworld.train import train
from dinoworld.train.finetune import finetune_config

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "finetune-cpu.yaml")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="pointmaze")
    p.add_argument("--data", help="a trajectory folder (default: collect one)")
    p.add_argument("--episodes", type=int, default=40)
    p.add_argument("--steps", type=int, default=100, help="actions per collected episode")
    p.add_argument("--resolution", type=int, default=112)
    p.add_argument("--train-steps", type=int, default=60)
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-trajcache-"))
    data = Path(a.data) if a.data else work / "data"
    if not a.data:
        collect(a.env, data, episodes=a.episodes, steps=a.steps, img_size=a.resolution, progress=False)
    t = time.perf_counter()
    encoder = load_encoder("pixel-pyramid", device=torch.device("cpu"))
    encode_trajectories(data, encoder, work / "features", size=a.resolution, progress=False)
    encode_s = time.perf_counter() - t

    def run(name: str, features: str | None) -> float:
        overrides = [f"stages=[{{steps: {a.train_steps}, resolution: {a.resolution}}}]", "val_every=100000",
                     "ckpt_every=100000", "progress=false"]
        cfg = finetune_config(a.env, str(data), "scratch", config=CONFIG, overrides=overrides,
                              out=str(work / name), features=features)
        t0 = time.perf_counter()
        train(cfg, resume=False)
        return (time.perf_counter() - t0) / a.train_steps

    frames = run("frames", None)
    cached = run("cached", str(work / "features"))
    print(f"{a.env}, {a.resolution} px, {a.train_steps} steps of 16 clips, torch threads {torch.get_num_threads()}")
    print(f"encode once: {encode_s:.1f} s")
    print(f"from frames: {frames:.3f} s/step   from the cache: {cached:.3f} s/step   speed-up {frames / cached:.2f}x")


if __name__ == "__main__":
    main()
