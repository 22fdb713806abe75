"""Streaming (cached keys/values) vs recomputing the whole context, per new frame.

    python benchmarks/streaming.py --size small --frames 8 --grid 16

Prints the time to predict the next frame after each pushed frame, both ways, and the ratio.
The reference path (full recompute via ``WorldModel.predict``) is measured in the same run.
"""

from __future__ import annotations

import argparse
import time

import torch

from dinoworld.model import WorldModel, build_predictor


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="small")
    p.add_argument("--frames", type=int, default=8, help="frames pushed")
    p.add_argument("--grid", type=int, default=16, help="tokens per side (16 = 224 px with /14 patches)")
    p.add_argument("--dim", type=int, default=768, help="encoder feature width")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args()
    torch.manual_seed(0)
    wm = WorldModel(None, build_predictor(a.size, in_dim=a.dim).eval()).to(a.device)
    feats = torch.randn(1, a.frames, a.grid, a.grid, a.dim, device=a.device)
    times = torch.arange(a.frames, dtype=torch.float32, device=a.device)[None] * 0.1

    def sync() -> None:
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()

    best_stream, best_full, max_diff = float("inf"), float("inf"), 0.0
    for _ in range(a.repeats):
        stream, t_stream, t_full = wm.stream(), 0.0, 0.0
        for i in range(a.frames):
            q = [float(times[0, i]) + 0.1]
            sync(); t0 = time.perf_counter()
            with torch.no_grad():
                stream.push(features=feats[0, i], time=float(times[0, i]))
                s = stream.predict(q)
            sync(); t_stream += time.perf_counter() - t0
            t0 = time.perf_counter()
            full = wm.predict(feats[:, : i + 1], times[:, : i + 1], torch.tensor([q], device=a.device))[0]
            sync(); t_full += time.perf_counter() - t0
            max_diff = max(max_diff, float((s - full).abs().max()))
        best_stream, best_full = min(best_stream, t_stream / a.frames), min(best_full, t_full / a.frames)
    print(f"predictor {a.size}, {a.frames} frames of {a.grid}x{a.grid} tokens on {a.device}")
    print(f"  streaming (KV cache): {best_stream * 1e3:8.1f} ms per new frame")
    print(f"  full recompute:       {best_full * 1e3:8.1f} ms per new frame")
    print(f"  speed-up: {best_full / best_stream:.2f}x   max |stream - batch| = {max_diff:.2e}")


if __name__ == "__main__":
    main()
