"""Settings for every test, and the helpers several test files share (``from conftest import ...``)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
os.environ.setdefault("MUJOCO_GL", "egl")

import json  # noqa: E402
from collections.abc import Iterable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

# One intra-op thread: on a shared 2-core CPU two threads ran the tests ~10x slower as soon as another
# process held a core; one thread is barely slower on an idle machine.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ------------------------------------------------------------------------------ error lines
def one_error_line(capsys, *, alone: bool = True) -> str:
    """The one ``error:`` line on stderr; ``alone``: and nothing else there (else other lines may come first)."""
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and (len(lines) == 1 or not alone), lines
    return errors[0]


# --------------------------------------------------------------------- tiny training runs
def tiny_train_args(videos: Path, out: Path, *extra: str) -> list[str]:
    """Overrides of a few-second CPU run on ``videos/train``: tiny predictor, pixel-pyramid, 28 px, 6 steps."""
    return [
        f"out_dir={out}", f"data.source={videos / 'train'}", "model.size=tiny", "model.encoder=pixel-pyramid",
        "optim.batch_size=4", "optim.micro_batch_size=2", "optim.lr=1e-3", "optim.warmup_steps=2",
        "data.num_frames=3", "data.dt_min=0.1", "data.dt_max=0.3", "data.num_workers=0",
        "stages=[{steps: 6, resolution: 28}]", "log_every=1", "ckpt_every=3", "tensorboard=false",
        "progress=false", *extra,
    ]


def train_tiny(videos: Path, out: Path, *extra: str, resume: bool = True, max_steps: int | None = None):
    """Train :func:`tiny_train_args`'s run; returns the summary, with the model."""
    from dinoworld.config import load_config
    from dinoworld.train import TrainConfig, train

    cfg = load_config(TrainConfig, None, tiny_train_args(videos, out, *extra))
    return train(cfg, resume=resume, max_steps=max_steps, return_model=True)


# ------------------------------------------------------------------------------ files on disk
def truncate(path: Path, fraction: float = 0.5) -> None:
    """Keep the first ``fraction`` of a file's bytes (a write cut short)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def write_tiny_checkpoint(folder: Path, step: int | None = None, seed: int = 0) -> Path:
    """A tiny unconditional predictor for the pixel-pyramid stand-in (36-d tokens), written as a checkpoint."""
    from dinoworld.model import CheckpointMeta, EncoderInfo, build_predictor, write_model_folder

    torch.manual_seed(seed)
    model = build_predictor("tiny", in_dim=36)
    return write_model_folder(folder, model.state_dict(),
                              CheckpointMeta(model.cfg.to_dict(), EncoderInfo("pixel-pyramid"), step=step))


def write_collection(root: Path, episodes: Iterable[dict[str, np.ndarray]], **meta) -> Path:
    """A trajectory collection in our format: the episodes' arrays, then ``meta.json`` with ``meta``."""
    from dinoworld.data.trajectories import FORMAT_NAME, FORMAT_VERSION, META_FILE, episode_path, write_episode

    root.mkdir(parents=True, exist_ok=True)
    for i, arrays in enumerate(episodes):
        write_episode(episode_path(root, i), arrays)
    (root / META_FILE).write_text(json.dumps({"format": FORMAT_NAME, "version": FORMAT_VERSION, **meta}))
    return root
