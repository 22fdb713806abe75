"""Training throughput of the predictor: each optimisation against the reference path, in one run.

    python benchmarks/train_step.py                      # CPU: tiny + small at 224² (16x16 tokens), ratios (~2 min)
    python benchmarks/train_step.py --device cuda --sizes base --res 224 --batch 32
    python benchmarks/train_step.py --device cuda --sizes giant --res 224 --batch 8 --checkpointing

One step = the training loop's own teacher-forcing loss (``dinoworld.train.loop``) on random
features of T frames at random variable frame rates, backward, AdamW step (the loop's parameter
groups). Paths, each measured in the same process on the same data:

    reference   dense boolean mask + SDPA, eager, unfused AdamW (the code before this benchmark)
    attention   the device's attention backend (flex on CUDA, grouped on CPU), eager
    +blocks     that backend, each block compiled
    +model      that backend, the whole predictor compiled

On CUDA every path runs under bf16 autocast with float32 weights (the loop's default), and the
fast paths use fused AdamW. FLOPs are analytic matmul FLOPs (x3 for forward + backward): "dense"
counts every query-key pair, "useful" only the visible ones (query frame j sees j frames). MFU is
achieved FLOP/s over the card's dense bf16 peak where it is known. Each finished row is printed
and appended to ``--jsonl`` at once, so a run cut short keeps what it measured.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import traceback

import torch

from dinoworld.model import build_predictor, compile_predictor
from dinoworld.model.attention import resolve_backend
from dinoworld.model.predictor import SIZES
from dinoworld.train.loop import param_groups, teacher_forcing_loss

#: dense bf16 tensor-core peak (FLOP/s) by device-name fragment
PEAKS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "4090": 165e12}
PATHS = ("reference", "attention", "+blocks", "+model")


def step_flops(size: str, in_dim: int, frames: int, tokens: int) -> tuple[float, float]:
    """(dense, useful) matmul FLOPs of one training step on one clip (forward x 3)."""
    cfg = SIZES[size]
    d, depth, r = cfg["dim"], cfg["depth"], 4
    ctx, qry = frames * tokens, (frames - 1) * tokens
    seen = tokens * frames * (frames - 1) // 2 * tokens  # sum over query frames j of (j frames x tokens) x tokens
    per_block = 2 * ctx * d * 2 * d + 2 * 2 * qry * d * d + 2 * 2 * qry * d * r * d  # kv, q + proj, MLP
    dense = 2 * ctx * in_dim * d + depth * (per_block + 4 * qry * ctx * d) + 2 * qry * d * in_dim
    useful = dense - depth * 4 * (qry * ctx - seen) * d
    return 3.0 * dense, 3.0 * useful


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAKS.items() if k in name), None)


def random_clips(batch: int, frames: int, grid: int, in_dim: int, device, seed: int = 0):
    """Features and variable-rate timestamps (gaps uniform in [0.05, 0.5] s), as the sampler makes."""
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(batch, frames, grid, grid, in_dim, generator=g)
    gaps = 0.05 + 0.45 * torch.rand(batch, frames - 1, generator=g)
    times = torch.cat([torch.zeros(batch, 1), gaps.cumsum(1)], dim=1)
    return feats.to(device), times.to(device)


def measure(path: str, a, device: torch.device, size: str, res: int) -> dict:
    torch.manual_seed(0)
    grid = res // a.patch
    model = build_predictor(size, in_dim=a.in_dim).to(device)
    model.grad_checkpointing = a.checkpointing
    fast = path != "reference"
    model.attention_backend = resolve_backend("auto", device) if fast else "dense"
    if path in ("+blocks", "+model"):
        compile_predictor(model, path[1:])
    opt = torch.optim.AdamW(param_groups(model, 0.05), lr=1e-4, fused=fast and device.type == "cuda")
    bf16 = device.type == "cuda" and not a.fp32
    amp = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    feats, times = random_clips(a.batch, a.frames, grid, a.in_dim, device)
    if bf16:
        feats = feats.bfloat16()  # the encoder emits bf16 for a bf16 predictor

    def step():
        with amp():
            loss, _ = teacher_forcing_loss(model, feats, times)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for _ in range(a.warmup):
        step()
    sync()
    warm_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    sync()
    dt = (time.perf_counter() - t0) / a.steps
    dense, useful = step_flops(size, a.in_dim, a.frames, grid * grid)
    clips = a.batch / dt
    row = dict(size=size, res=res, batch=a.batch, frames=a.frames, path=path, backend=model.attention_backend,
               s_per_step=dt, clips_s=clips, tokens_s=clips * a.frames * grid * grid,
               tflops_s=clips * dense / 1e12, warmup_s=warm_s, loss=loss.item(), checkpointing=a.checkpointing)
    peak = peak_flops(device)
    if peak:
        row["mfu_dense"], row["mfu_useful"] = clips * dense / peak, clips * useful / peak
    if device.type == "cuda":
        row["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--sizes", default=None, help="comma-separated predictor sizes (CPU: tiny,small; CUDA: base)")
    p.add_argument("--res", default=None, help="comma-separated frame sides in px (default 224)")
    p.add_argument("--patch", type=int, default=14, help="encoder patch size (tokens per side = res / patch)")
    p.add_argument("--in-dim", type=int, default=768, help="encoder feature width (DINOv2-B: 768)")
    p.add_argument("--frames", type=int, default=8, help="T frames per clip (paper: 8)")
    p.add_argument("--batch", type=int, default=None, help="clips per step (CPU: 2; CUDA: 32)")
    p.add_argument("--steps", type=int, default=None, help="timed steps (CPU: 3; CUDA: 20)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (compilation happens here)")
    p.add_argument("--paths", help=f"comma-separated subset of {', '.join(PATHS)} (CPU: the first two, as compiling "
                   "does not pay off there; CUDA: all)")
    p.add_argument("--checkpointing", action="store_true", help="activation checkpointing (giant)")
    p.add_argument("--fp32", action="store_true", help="no bf16 autocast on CUDA")
    p.add_argument("--jsonl", help="append each finished row to this file")
    a = p.parse_args()
    device = torch.device(a.device)
    gpu = device.type == "cuda"
    a.sizes = a.sizes or ("base" if gpu else "tiny,small")
    a.res = a.res or "224"
    a.batch = a.batch or (32 if gpu else 2)
    a.steps = a.steps or (20 if gpu else 3)
    a.warmup = a.warmup if a.warmup is not None else (5 if gpu else 1)
    paths = (a.paths or (",".join(PATHS) if gpu else "reference,attention")).split(",")
    print(f"device {torch.cuda.get_device_name(device) if gpu else 'cpu'} · torch {torch.__version__} · "
          f"T={a.frames} · batch {a.batch} · {'bf16 autocast' if gpu and not a.fp32 else 'fp32'}", flush=True)
    hdr = f"{'size':>6} {'res':>4} {'path':>10} {'backend':>8} {'clips/s':>9} {'x ref':>6} {'TFLOP/s':>8} " \
          f"{'MFU d/u':>13} {'mem GiB':>8} {'warm s':>7}"
    print(hdr, flush=True)
    for size in a.sizes.split(","):
        for res in map(int, a.res.split(",")):
            ref = None
            for path in paths:
                try:
                    row = measure(path, a, device, size, res)
                except Exception as err:  # a path that fails (e.g. a compile error) is reported, others go on
                    print(f"{size:>6} {res:>4} {path:>10} failed: {type(err).__name__}: {str(err)[:300]}", flush=True)
                    traceback.print_exc(limit=3, file=sys.stderr)
                    continue
                finally:
                    if gpu:
                        torch.cuda.empty_cache()
                    torch._dynamo.reset()
                ref = ref or (row["clips_s"] if path == "reference" else None)
                row["speedup"] = row["clips_s"] / ref if ref else None
                mfu = f"{row['mfu_dense']:6.1%}/{row['mfu_useful']:5.1%}" if "mfu_dense" in row else "n/a"
                mem = f"{row['peak_mem_gib']:8.1f}" if "peak_mem_gib" in row else f"{'n/a':>8}"
                spd = f"{row['speedup']:6.2f}" if row["speedup"] else f"{'-':>6}"
                print(f"{size:>6} {res:>4} {path:>10} {row['backend']:>8} {row['clips_s']:9.2f} {spd} "
                      f"{row['tflops_s']:8.2f} {mfu:>13} {mem} {row['warmup_s']:7.1f}", flush=True)
                if a.jsonl:
                    with open(a.jsonl, "a") as f:
                        name = torch.cuda.get_device_name(device) if gpu else "cpu"
                        f.write(json.dumps({"device": name, **row}) + "\n")


if __name__ == "__main__":
    main()
