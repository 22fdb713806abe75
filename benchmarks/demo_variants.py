"""Retrain the demo's predictor with other options or seeds on an existing demo folder, and compare.

    make demo                                                  # once: builds demo_out/ (videos + cache)
    python benchmarks/demo_variants.py demo_out --seeds 0 1 2 --set model.predictor.value_rope=false
    python benchmarks/demo_variants.py demo_out --seeds 0 1 2            # the demo's own settings

Each run reuses the demo's video set and feature cache, trains with the demo's configuration plus the
``--set`` overrides (dotted keys, as for ``dinoworld train``) and the given training seed, and rolls out
the held-out synthetic clips exactly as the demo does. Prints, per seed: L1 of the autoregressive
rollout at the first and last horizon, the horizons where it beats both copy-last and the context-mean,
the arrival captured at the first two horizons (how much of the objects' motion the predictions show)
and the held-out loss relative to copy-last's. The demo's measured results: results/demo-cpu-202611.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from dinoworld import demo
from dinoworld.config import parse_overrides
from dinoworld.encoders import load_encoder
from dinoworld.model import WorldModel
from dinoworld.train import train


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("demo_dir", type=Path, help="a folder written by `dinoworld demo` (videos/ and cache/)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--steps", type=int, default=demo.STEPS)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="training config overrides")
    p.add_argument("--out", type=Path, help="where the runs go (default DEMO_DIR/variants)")
    a = p.parse_args()
    if not (a.demo_dir / "metrics.json").is_file() or not (a.demo_dir / "cache" / "train").is_dir():
        raise SystemExit(f"error: {a.demo_dir} is not a finished demo folder; "
                         f"run `dinoworld demo --out {a.demo_dir}` first")
    encoder = load_encoder(json.loads((a.demo_dir / "metrics.json").read_text())["encoder"], local_only=True)
    vals = sorted(str(v) for v in (a.demo_dir / "videos" / "val").rglob("*.mp4") if "real" not in v.parts)
    overrides = parse_overrides(a.set)
    print(f"{torch.get_num_threads()} threads; overrides {overrides or 'none'}; {a.steps} steps; {len(vals)} clips")
    print("| seed | train s | L1 AR first / last horizon | horizons beating both | arrival 1st / 2nd "
          "| loss / copy-last |")
    print("|---|---|---|---|---|---|")
    for seed in a.seeds:
        run = (a.out or a.demo_dir / "variants") / f"seed{seed}"
        cfg = demo.train_config(a.demo_dir, run, encoder.name, steps=a.steps, seed=seed, progress=False,
                                overrides=overrides)
        t = time.time()
        s = train(cfg, resume=False)
        secs = time.time() - t
        wm = WorldModel.from_pretrained(s["checkpoint"], load_encoder_model=False)
        wm.encoder = encoder
        summary = demo.summarise_rollouts([demo.heldout_rollout(wm, v) for v in vals], vals, a.demo_dir / "videos")
        e, arr = summary["errors_l1"]["autoregressive"], summary["arrival_captured"]["autoregressive"]
        wins = [b for b in summary["model_beats_both_l1"] if b is not None]
        print(f"| {seed} | {secs:.0f} | {e[0]:.4f} / {e[-1]:.4f} | {sum(wins)} of {len(wins)} | "
              f"{arr[0]:.2f} / {arr[1]:.2f} | {s['val/loss'] / s['val/copy_last']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
