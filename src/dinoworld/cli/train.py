"""``dinoworld train``, ``dinoworld encode`` and ``dinoworld finetune``."""

from __future__ import annotations

import argparse
import os

from .common import JSON_HELP, check_output_folder, log, nonneg_int, pick_device, positive_float, positive_int
from .verb import Verb

#: the config ``finetune`` points CPU-only users to
CPU_FINETUNE_CONFIG = "configs/finetune-cpu.yaml"


def _overrides_anywhere(p: argparse.ArgumentParser) -> None:
    """Let dotted ``key=value`` overrides come before, between or after flags.

    argparse fills a ``nargs="*"`` positional from one run of tokens only, so ``--max-steps 30
    val_every=30 --json x=1`` leaves ``x=1`` over. This parser's leftover ``key=value`` tokens are
    appended to ``overrides`` (in order); anything else stays unrecognized and argparse rejects it.
    """
    def parse_known_args(args=None, namespace=None):
        ns, rest = argparse.ArgumentParser.parse_known_args(p, args, namespace)
        extra = [a for a in rest if "=" in a and not a.startswith("-")]
        ns.overrides = [*(ns.overrides or []), *extra]
        return ns, [a for a in rest if a not in extra]

    p.parse_known_args = parse_known_args  # type: ignore[method-assign]


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file of overrides on top of the paper's defaults (see configs/)")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. optim.lr=3e-4 data.source=videos/")
    p.add_argument("--no-resume", action="store_true", help="ignore checkpoints already in out_dir")
    p.add_argument("--max-steps", type=positive_int, help="stop after this global step (the schedule is unchanged)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    _overrides_anywhere(p)


def _print_summary(summary: dict) -> dict:
    if "val/loss" in summary:
        print(f"final val loss {summary['val/loss']:.4f} vs copy-last {summary['val/copy_last']:.4f}")
    print(f"step {summary['step']}: checkpoint {summary['checkpoint']}")
    return summary


def run_train(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..train import TrainConfig, train

    cfg = load_config(TrainConfig, args.config, args.overrides)
    check_output_folder(cfg.out_dir, "out_dir")
    return _print_summary(train(cfg, resume=not args.no_resume, max_steps=args.max_steps))


def _encode_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="videos (folder, manifest .txt/.csv/.jsonl, or tar shards) or a trajectory "
                                  "folder (every frame is encoded, for finetune --features)")
    p.add_argument("--out", required=True, help="cache folder (rerun the same command to resume)")
    p.add_argument("--encoder", default="dinov2-b14-reg",
                   help="frozen encoder (default dinov2-b14-reg; also dinov3-s16/b16/l16, hf:<hub id or folder>)")
    p.add_argument("--encoder-weights",
                   help="local folder/file (also a torch.hub DINOv2 .pth) or hub id of the encoder weights")
    p.add_argument("--fps", type=positive_float, default=8.0,
                   help="frames per second to cache (default 8; videos only)")
    p.add_argument("--resolution", type=positive_int, default=224,
                   help="square frame side (multiple of the patch size)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="frames per encoder batch (default 16)")
    p.add_argument("--shard-size", type=positive_int, default=64, help="videos per shard file (videos only)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)


def run_encode(args: argparse.Namespace) -> int:
    import dataclasses

    from ..data import encode_videos_to_cache, list_videos
    from ..data.factory import detect_kind
    from ..data.trajectory_cache import encode_trajectories
    from ..encoders import load_encoder

    check_output_folder(args.out)
    device = pick_device()
    enc = load_encoder(args.encoder, weights=args.encoder_weights, device=device,
                       weights_hint="--encoder-weights PATH")
    if detect_kind(args.source) == "trajectories":
        t = encode_trajectories(args.source, enc, args.out, size=args.resolution, batch_size=args.batch_size,
                                encoder_weights=args.encoder_weights)
        d = dataclasses.asdict(t)
        print(" ".join(f"{k}={v}" for k, v in d.items()))
        print(f"fine-tune on it: dinoworld finetune --data {args.source} --features {args.out} ...")
        return d
    paths = list_videos(args.source)
    s = encode_videos_to_cache(paths, enc, args.out, fps=args.fps, size=(args.resolution, args.resolution),
                               batch_size=args.batch_size, shard_size=args.shard_size)
    d = dataclasses.asdict(s)
    print(" ".join(f"{k}={v}" for k, v in d.items() if not isinstance(v, (list, dict))))
    return d


def _finetune_args(p: argparse.ArgumentParser) -> None:
    from ..train.finetune import MODES

    p.add_argument("--env", required=True, help="environment of the trajectories: pusht, wall or pointmaze")
    p.add_argument("--data", required=True, help="trajectory folder (`dinoworld collect` output or DINO-WM's layout)")
    p.add_argument("--mode", required=True, choices=MODES,
                   help="scratch: random init, all trained; frozen: --init frozen, action blocks trained; "
                        "full: --init, everything trained")
    p.add_argument("--init", help="pre-trained checkpoint folder (or run folder: its latest checkpoint)")
    p.add_argument("--features", help="feature cache of --data (`dinoworld encode DATA --out FOLDER`): the encoder "
                                      "then never runs during training (data.features)")
    p.add_argument("--config", help="YAML file of overrides (same keys as `dinoworld train`)")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. optim.batch_size=256 data.num_workers=8")
    p.add_argument("--epochs", type=positive_float, default=25.0,
                   help="passes over every clip window of the training episodes (default 25, as the paper); "
                        "ignored when stages=... is given")
    p.add_argument("--out", help="run folder (default runs/finetune-ENV-MODE); rerun to resume")
    p.add_argument("--no-resume", action="store_true", help="ignore checkpoints already in the run folder")
    p.add_argument("--max-steps", type=positive_int, help="stop after this global step (the schedule is unchanged)")
    p.add_argument("--check-batches", type=nonneg_int, default=8,
                   help="held-out batches for the true-vs-shuffled-actions check at the end (0 = skip)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    _overrides_anywhere(p)


def cpu_warning(cfg) -> str | None:
    """One line when a fine-tuning config is far too big for a machine without a GPU, else None."""
    import torch

    from ..train.finetune import predictor_size

    if torch.cuda.is_available() or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return None
    res, size = cfg.stages[-1].resolution, predictor_size(cfg)  # with an init, its size, whatever model.size says
    if size in ("tiny", "small") and res <= 112:
        return None
    return (f"warning: no GPU found, and the {size} predictor at {res} px is sized for GPUs (days on a CPU); for a "
            f"CPU-sized run add --config {CPU_FINETUNE_CONFIG} (tiny predictor, pixel-pyramid encoder, 56 px)")


def run_finetune(args: argparse.Namespace) -> int:
    from ..train import train
    from ..train.finetune import action_check, action_check_lines, heldout_check_problem, prepare_finetune

    check_output_folder(args.out)
    cfg, info = prepare_finetune(args.env, args.data, args.mode, init=args.init, config=args.config,
                                 overrides=args.overrides, epochs=args.epochs, out=args.out, features=args.features)
    check_output_folder(cfg.out_dir, "--out" if args.out else "out_dir")
    warning = cpu_warning(cfg)
    if warning:
        log(warning)
    print(f"finetune {args.mode} on {args.env}: {cfg.total_steps} steps of {cfg.optim.batch_size} clips "
          f"({cfg.data.num_frames} frames, frameskip {cfg.data.frameskip}, actions {cfg.model.action_dim}-d, "
          f"{cfg.stages[-1].resolution} px)")
    single = int(os.environ.get("WORLD_SIZE", "1")) == 1
    check = args.check_batches > 0 and single and cfg.finetune.val_fraction > 0
    problem = heldout_check_problem(cfg, info) if check else None
    if problem:  # said before training, so that a run that succeeds does not end in an error
        log(f"warning: the held-out action check will be skipped: {problem}")
    summary = train(cfg, resume=not args.no_resume, max_steps=args.max_steps, return_model=True)
    model = summary.pop("model")
    if check and not problem:
        summary["action_check"] = action_check(cfg, model, args.check_batches, info)
        for line in action_check_lines(summary["action_check"]):
            print(line)
    return _print_summary(summary)


TRAIN = Verb(
    "train", "pre-train (or fine-tune) a predictor; resumes from out_dir's last checkpoint",
    "dinoworld train --config configs/tiny-cpu.yaml data.source=fcache out_dir=runs/fprobe\n"
    "  torchrun --nproc-per-node 8 -m dinoworld.cli train --config configs/paper-giant.yaml "
    "data.source=shards-{000000..009999}.tar", _train_args, run_train)
ENCODE = Verb("encode", "write a sharded, resumable feature cache so training never decodes video",
              "dinoworld encode fprobe/train --out fcache --encoder pixel-pyramid --fps 15 --resolution 112\n"
              "  dinoworld encode videos/ --out cache/ --encoder dinov2-b14-reg --encoder-weights ~/dinov2-reg-base",
              _encode_args, run_encode)
FINETUNE = Verb("finetune", "action-conditioned fine-tuning on env trajectories (scratch, frozen or full)",
                "dinoworld finetune --env wall --data data/wall --mode scratch --config configs/finetune-cpu.yaml "
                "--out runs/wall",
                _finetune_args, run_finetune)
