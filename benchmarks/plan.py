"""Planning speed: one CEM plan through the batched shared-context rollout vs a naive per-candidate loop.

    python benchmarks/plan.py                                   # CPU: tiny predictor, small budget, ratio
    python benchmarks/plan.py --size base --grid 16 --samples 300 --iterations 30 --naive-samples 0 --bf16
                                                                # GPU: the paper's budget, one plan timed

Both paths plan the same cost (L2 to a random goal latent) with the same random predictor (action
blocks with non-zero gates). The naive path (each candidate alone, the whole growing context
re-encoded every step: what a plain ``WorldModel.rollout`` per candidate does) is timed on
``--naive-samples`` candidates of one iteration and scaled to the full budget, so the ratio is
measured in the same run without waiting hours for the slow path.
"""

from __future__ import annotations

import argparse
import time

import torch

from dinoworld.model import build_predictor, compile_predictor
from dinoworld.plan import CEMConfig, LatentRollout, cem, latent_distance, naive_rollout


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="tiny")
    p.add_argument("--grid", type=int, default=4, help="tokens per side (16 = 224 px with /14 patches)")
    p.add_argument("--dim", type=int, default=384, help="encoder feature width")
    p.add_argument("--action-dim", type=int, default=10, help="model action width (2-d actions x frameskip 5)")
    p.add_argument("--context", type=int, default=1, help="context frames")
    p.add_argument("--horizon", type=int, default=5, help="model steps")
    p.add_argument("--episodes", type=int, default=1, help="episodes planned together")
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--topk", type=int, default=10)
    p.add_argument("--naive-samples", type=int, default=16, help="candidates timed on the naive path (0 = skip)")
    p.add_argument("--chunk", type=int, help="candidates per forward (default: memory budget)")
    p.add_argument("--bf16", action="store_true", help="bf16 weights and activations (GPU)")
    p.add_argument("--compile", action="store_true", help="torch.compile the predictor's blocks")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args()
    device = torch.device(a.device)
    torch.manual_seed(0)
    pred = build_predictor(a.size, in_dim=a.dim, action_dim=a.action_dim).eval()
    with torch.no_grad():
        for blk in pred.action_blocks:
            blk.gamma.normal_(0, 0.1)
    dtype = torch.bfloat16 if a.bf16 else torch.float32
    pred = pred.to(device, dtype)
    if a.compile:
        compile_predictor(pred, "blocks")  # the whole model would recompile per horizon step
    e, g = a.episodes, a.grid
    ctx = torch.randn(e, a.context, g, g, a.dim, device=device, dtype=dtype)
    times = torch.arange(a.context, device=device, dtype=torch.float32).expand(e, -1) * 0.5
    goal = torch.randn(e, g, g, a.dim, device=device)
    cfg = CEMConfig(a.samples, a.iterations, min(a.topk, a.samples))
    print(f"device {device}, {a.size} predictor ({sum(x.numel() for x in pred.parameters()) / 1e6:.1f}M), "
          f"{g}x{g} tokens, {a.context} context frame(s), H={a.horizon}, {e} episode(s), "
          f"CEM {a.samples} x {a.iterations}, {'bf16' if a.bf16 else 'fp32'}, threads {torch.get_num_threads()}")

    def plan_once() -> float:
        _sync(device)
        t0 = time.perf_counter()
        with torch.no_grad():
            roll = LatentRollout(pred, ctx, times, 0.5, chunk=a.chunk)
            plan = cem(lambda acts: latent_distance(roll(acts), goal), e, a.horizon, a.action_dim, cfg, device=device)
            plan.actions.cpu()
        _sync(device)
        return time.perf_counter() - t0

    plan_once()  # warm-up (and compilation)
    fast = min(plan_once() for _ in range(2))
    print(f"batched shared-context CEM: {fast:.3f} s per plan ({fast / a.iterations * 1e3:.1f} ms per iteration)")
    if a.naive_samples > 0:
        acts = torch.randn(e, a.naive_samples, a.horizon, a.action_dim, device=device, dtype=dtype)
        _sync(device)
        t0 = time.perf_counter()
        with torch.no_grad():
            naive_rollout(pred, ctx, times, 0.5, acts)
        _sync(device)
        per_candidate = (time.perf_counter() - t0) / (e * a.naive_samples)
        naive = per_candidate * e * a.samples * a.iterations
        print(f"naive per-candidate loop:   {naive:.3f} s per plan (measured on {a.naive_samples} candidates, "
              f"{per_candidate * 1e3:.2f} ms each, scaled to {a.samples * a.iterations})")
        print(f"speed-up: {naive / fast:.1f}x")
    if device.type == "cuda":
        print(f"peak memory {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
