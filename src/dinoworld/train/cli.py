"""``dinoworld train`` and ``dinoworld encode``."""

from __future__ import annotations

import argparse
import json

from ..cli import verb


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file of overrides on top of the paper's defaults (see configs/)")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. optim.lr=3e-4 data.source=videos/")
    p.add_argument("--no-resume", action="store_true", help="ignore checkpoints already in out_dir")
    p.add_argument("--max-steps", type=int, help="stop after this global step (the schedule is unchanged)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object last")


@verb("train", "pre-train (or fine-tune) a predictor; resumes from out_dir's last checkpoint",
      "dinoworld train --config configs/tiny-cpu.yaml data.source=videos/ data.val_source=val/ out_dir=runs/t\n"
      "  torchrun --nproc-per-node 8 -m dinoworld.cli train --config configs/paper-giant.yaml data.source=shards-{000000..009999}.tar")(_train_args)
def run_train(args: argparse.Namespace) -> int:
    from ..config import load_config
    from .config import TrainConfig
    from .loop import train

    cfg = load_config(TrainConfig, args.config, args.overrides)
    summary = train(cfg, resume=not args.no_resume, max_steps=args.max_steps)
    if "val/loss" in summary:
        print(f"final val loss {summary['val/loss']:.4f} vs copy-last {summary['val/copy_last']:.4f}")
    print(f"step {summary['step']}: checkpoint {summary['checkpoint']}")
    if args.json:
        print(json.dumps(summary))
    return 0


def _encode_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="videos: folder, manifest (.txt/.csv/.jsonl) or tar shards")
    p.add_argument("--out", required=True, help="cache folder (rerun the same command to resume)")
    p.add_argument("--encoder", default="dinov2-b14-reg", help="frozen encoder (default dinov2-b14-reg)")
    p.add_argument("--encoder-weights", help="local folder/file or hub id of the encoder weights")
    p.add_argument("--fps", type=float, default=8.0, help="frames per second to cache (default 8)")
    p.add_argument("--resolution", type=int, default=224, help="square frame side (multiple of the patch size)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--shard-size", type=int, default=64, help="videos per shard file")
    p.add_argument("--json", action="store_true")


@verb("encode", "write a sharded, resumable feature cache so training never decodes video",
      "dinoworld encode videos/ --out cache/ --encoder dinov2-b14-reg --encoder-weights ~/dinov2-reg-base")(_encode_args)
def run_encode(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    from ..data import encode_videos_to_cache, list_videos
    from ..encoders import load_encoder

    device = "cuda" if torch.cuda.is_available() else "cpu"
    enc = load_encoder(args.encoder, weights=args.encoder_weights, device=device)
    paths = list_videos(args.source)
    s = encode_videos_to_cache(paths, enc, args.out, fps=args.fps, size=(args.resolution, args.resolution),
                               batch_size=args.batch_size, shard_size=args.shard_size)
    d = dataclasses.asdict(s) if dataclasses.is_dataclass(s) else dict(s)
    print(" ".join(f"{k}={v}" for k, v in d.items() if not isinstance(v, (list, dict))))
    if args.json:
        print(json.dumps(d, default=str))
    return 0
