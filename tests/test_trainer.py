"""The training loop's parts alone: the data source resolved once, one optimizer step, resume."""

import numpy as np
import pytest
import torch

from conftest import tiny_train_args, train_tiny
from dinoworld.config import load_config
from dinoworld.data import write_synthetic_dataset
from dinoworld.data.trajectory_cache import encode_trajectories
from dinoworld.encoders import load_encoder
from dinoworld.envs.collect import collect
from dinoworld.model.folder import latest_checkpoint, read_meta, read_model_folder
from dinoworld.train import DataSource, TrainConfig, Trainer, train
from dinoworld.train.checkpoint import load_train_state
from dinoworld.train.distributed import Dist
from dinoworld.train.finetune import finetune_config

CPU = torch.device("cpu")
#: a few-step fine-tuning run at 28 px, validated on the held-out episodes at every step
TINY = ["model.size=tiny", "model.encoder=pixel-pyramid", "optim.batch_size=4", "optim.micro_batch_size=4",
        "optim.warmup_steps=1", "data.num_workers=0", "stages=[{steps: 2, resolution: 28}, {steps: 1, resolution: 28}]",
        "val_every=1", "val_batches=1", "ckpt_every=1000", "tensorboard=false", "progress=false"]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    write_synthetic_dataset(root / "train", num_videos=8, seconds=2.0, size=56, seed=0)
    return root


@pytest.fixture(scope="module")
def wall(tmp_path_factory):
    root = tmp_path_factory.mktemp("wall")
    collect("wall", root, episodes=12, steps=20, img_size=56, progress=False)
    return root


def _tiny(videos, out, *extra):
    return load_config(TrainConfig, None, tiny_train_args(videos, out, *extra))


# ------------------------------------------------------------------------------------- data
def test_a_trajectory_folder_is_read_once_per_run(wall, tmp_path, monkeypatch):
    """The data source knows the feature width and the folder's action facts; a run of two stages that
    validates at every step reads the folder's split and actions once, and records them."""
    import dinoworld.data.trajectory_clips as clips
    import dinoworld.train.streams as streams

    cfg = finetune_config("wall", str(wall), "scratch", overrides=[*TINY, f"out_dir={tmp_path / 'run'}"])
    data = DataSource.resolve(cfg, CPU)
    assert (data.kind, data.val_kind, data.in_dim, data.encoder_info.name) == ("trajectories", "trajectories", 36,
                                                                               "pixel-pyramid")
    assert data.encoder is not None and data.features is None and data.val_trajectory is None
    info = data.trajectory
    assert (info.raw_action_dim, info.env, len(info.mean), len(info.val)) == (2, "wall", 2, 1)
    assert cfg.model.action_dim == 2 * cfg.data.frameskip

    calls = []
    real = streams.trajectory_info
    monkeypatch.setattr(streams, "trajectory_info", lambda *a: calls.append(a) or real(*a))
    monkeypatch.setattr(clips, "trajectory_info", lambda *a: pytest.fail("a stream read the folder again"))
    summary = train(cfg, resume=False)
    assert summary["step"] == 3 and "val/loss" in summary
    assert len(calls) == 1
    assert train(cfg, resume=False, trajectory=info)["step"] == 3 and len(calls) == 1  # handed in: not read again
    meta = read_meta(latest_checkpoint(tmp_path / "run"))
    assert meta.raw_action_dim == 2 and meta.split["val"] == [info.episode_ids[i] for i in info.val]
    np.testing.assert_allclose(meta.action_norm["mean"], info.mean)


def test_a_trajectory_feature_cache_needs_no_encoder(wall, tmp_path, monkeypatch):
    import dinoworld.train.streams as streams

    encode_trajectories(wall, load_encoder("pixel-pyramid", device=CPU), tmp_path / "f", size=28, progress=False)
    monkeypatch.setattr(streams, "load_encoder", lambda *a, **k: pytest.fail("encoder loaded"))
    cfg = finetune_config("wall", str(wall), "scratch", overrides=TINY, features=str(tmp_path / "f"))
    data = DataSource.resolve(cfg, CPU)
    assert data.encoder is None and data.features is not None and data.in_dim == 36
    assert data.encoder_info.name == "pixel-pyramid" and data.trajectory.raw_action_dim == 2
    clip = next(iter(data.val_stream(28, Dist())))
    assert clip["features"].shape == (cfg.data.num_frames, 2, 2, 36) and clip["actions"].shape[-1] == 10


# ------------------------------------------------------------------------------------- step
def test_one_step_changes_the_weights_and_returns_the_loss(videos, tmp_path):
    """A step alone is the run's first step: the same loss, the same weights after it."""
    trainer = Trainer(_tiny(videos, tmp_path / "a"), Dist())
    assert trainer.accum == 2 and trainer.progress.step == 0
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    stream, batches = trainer.stage_batches(0)
    losses, gnorm = trainer.step(stream, batches, 0)
    assert losses.shape == (3,) and torch.isfinite(losses).all() and gnorm is None  # the loss, copy-last, context mean
    assert trainer.progress.step == 1 and trainer.progress.data == {"stage": 0, "stream": stream.state_dict()}
    changed = [n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])]
    assert changed and "query" in changed

    run = train_tiny(videos, tmp_path / "b", resume=False, max_steps=1)
    assert run["train_loss"] == losses[0].item()
    for n, p in run["model"].named_parameters():
        assert torch.equal(p, dict(trainer.model.named_parameters())[n]), n


# ----------------------------------------------------------------------------------- resume
def test_resume_restores_step_stream_weights_and_schedule(videos, tmp_path):
    train_tiny(videos, tmp_path, resume=False, max_steps=3)
    cfg = _tiny(videos, tmp_path)
    assert Trainer(cfg, Dist()).resume(enabled=False) is None

    trainer = Trainer(cfg, Dist())
    ckpt = trainer.resume()
    assert ckpt.name == "step_00000003"
    state = load_train_state(ckpt)
    assert trainer.progress.step == 3 and trainer.scheduler.last_epoch == 3
    stream, _ = trainer.stage_batches(0)
    assert state["data"]["stage"] == 0 and stream.state_dict() == state["data"]["stream"]
    _, weights = read_model_folder(ckpt)
    for n, p in trainer.model.state_dict().items():
        assert torch.equal(p, weights[n]), n
