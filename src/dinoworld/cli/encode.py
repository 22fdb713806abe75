"""``dinoworld encode``: a feature cache of videos or of a trajectory folder."""

from __future__ import annotations

import argparse

from .common import JSON_HELP, check_output_folder, pick_device, positive_float, positive_int
from .verb import Verb


def _encode_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="videos (folder, manifest .txt/.csv/.jsonl, or tar shards) or a trajectory "
                                  "folder (every frame is encoded, for finetune --features)")
    p.add_argument("--out", required=True, help="cache folder (rerun the same command to resume)")
    p.add_argument("--encoder", default="dinov2-b14-reg",
                   help="frozen encoder (default dinov2-b14-reg; also dinov3-s16/b16/l16, hf:<hub id or folder>, "
                        "and the weight-free stand-ins pixel-pyramid and pixel-pyramid-opponent; docs/encoders.md)")
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


ENCODE = Verb("encode", "write a sharded, resumable feature cache so training never decodes video",
              "dinoworld encode fprobe/train --out fcache --encoder pixel-pyramid --fps 15 --resolution 112\n"
              "  dinoworld encode videos/ --out cache/ --encoder dinov2-b14-reg --encoder-weights ~/dinov2-reg-base",
              _encode_args, run_encode)
