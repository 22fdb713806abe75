"""Does a history help a fine-tuned model? Its held-out self-fed error from 1 or more context frames.

    python scripts/context_check.py --env pointmaze --data data/pointmaze --checkpoint runs/pm-full \
        --config configs/finetune-cpu.yaml "stages=[{steps: 8000, resolution: 112}]"

The planning protocols start from one frame. One frame shows where things are but not how fast they
move (PointMaze's ball starts with a random velocity), so a model may have to hedge. This predicts the
same held-out frames from the last 1, 2, ... frames before them, each prediction fed back, with the
true and with shuffled actions, beside copy-last and the mean of each context. Keep the longest
context plus the targets within the fine-tuning clips (``data.num_frames``, 4 by default; the
defaults here are 2 + 2): longer rollouts leave what the model was trained on, and their error grows
for that reason alone. Give the config and overrides the checkpoint was fine-tuned with, so that the
held-out episodes, frameskip and resolution are the same (checked). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys

from dinoworld.errors import UserError, run_for_user
from dinoworld.model import WorldModel
from dinoworld.train.finetune import context_check, prepare_finetune


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", required=True, choices=["wall", "pointmaze", "pusht"])
    p.add_argument("--data", required=True, help="the trajectory folder the checkpoint was fine-tuned on")
    p.add_argument("--checkpoint", required=True, help="fine-tuned checkpoint or run folder")
    p.add_argument("--config", help="the fine-tuning config file")
    p.add_argument("--features", help="a feature cache of --data (`dinoworld encode`), as for finetune")
    p.add_argument("--contexts", type=int, nargs="+", default=[1, 2], help="context lengths (default 1 2)")
    p.add_argument("--targets", type=int, default=2, help="frames predicted after the context (default 2)")
    p.add_argument("--batches", type=int, default=8, help="held-out batches (default 8)")
    p.add_argument("overrides", nargs="*", help="the fine-tuning run's key=value overrides")
    a = p.parse_args()

    def check() -> None:
        clip = max(a.contexts) + a.targets
        cfg, info = prepare_finetune(a.env, a.data, "scratch", config=a.config, features=a.features,
                                     overrides=[*a.overrides, f"data.num_frames={clip}"])
        wm = WorldModel.load(a.checkpoint, device="cpu")
        if sorted(wm.meta.split.get("val", [])) != sorted(info.episode_ids[i] for i in info.val):
            raise UserError("these settings hold out other episodes than the checkpoint's; give the config and "
                            "overrides it was fine-tuned with")
        if wm.meta.training_resolution != cfg.stages[-1].resolution:
            raise UserError(f"the checkpoint was fine-tuned at {wm.meta.training_resolution} px, these settings "
                            f"read {cfg.stages[-1].resolution} px; give its stages override")
        print(json.dumps(context_check(cfg, wm.predictor, a.batches, a.contexts, info), indent=1))
    return run_for_user(check)[0]


if __name__ == "__main__":
    sys.exit(main())
