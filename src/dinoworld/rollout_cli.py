"""``dinoworld rollout`` and ``dinoworld demo``."""

from __future__ import annotations

import argparse
import json

from .cli import verb


def _rollout_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", help="a video file FFmpeg can read")
    p.add_argument("--checkpoint", required=True, help="checkpoint folder (config.json + model.safetensors) or hub id")
    p.add_argument("--encoder-weights", help="local folder/file of the encoder weights (default: as recorded, else hub cache)")
    p.add_argument("--context", type=int, default=4, help="context frames (default 4)")
    p.add_argument("--horizon", type=float, default=2.0, help="seconds to predict after the last context frame")
    p.add_argument("--step", type=float, default=0.25, help="seconds between frames (context and rollout)")
    p.add_argument("--start", type=float, default=0.0, help="time of the first context frame")
    p.add_argument("--resolution", type=int, help="frame side in px (default: the checkpoint's last training stage)")
    p.add_argument("--attention", action="store_true", help="also draw cross-attention maps (paper Fig. 6)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--json", action="store_true", help="print one JSON object last")


@verb("rollout", "roll a checkpoint out on a video: figure, MP4, per-step errors vs copy-last, direct vs autoregressive",
      "dinoworld rollout clip.mp4 --checkpoint demo_out/model --context 4 --horizon 2.0 --step 0.25 --out rollout/")(_rollout_args)
def run_rollout(args: argparse.Namespace) -> int:
    from .rollout import attention_outputs, rollout_video, write_rollout_outputs
    from .world_model import WorldModel

    wm = WorldModel.from_pretrained(args.checkpoint, encoder_weights=args.encoder_weights)
    r = rollout_video(wm, args.video, context=args.context, horizon=args.horizon, step=args.step,
                      start=args.start, resolution=args.resolution)
    files = write_rollout_outputs(r, args.out, title=str(args.video))
    if args.attention:
        files["attention"] = attention_outputs(wm, r, args.out)
    print(f"{'horizon':>8} {'autoregr.':>10} {'direct':>10} {'copy-last':>10}")
    for i, h in enumerate(r.horizons):
        vals = [r.errors[m][i] for m in ("autoregressive", "direct", "copy-last")]
        print(f"{h:8.2f} " + " ".join(f"{v:10.4f}" if v is not None else f"{'-':>10}" for v in vals))
    for k, v in files.items():
        print(f"{k}: {v}")
    if args.json:
        print(json.dumps({"horizons_s": r.horizons, "errors_l1": r.errors, "files": files}))
    return 0
