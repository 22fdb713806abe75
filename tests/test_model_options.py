"""The predictor options that deviate from the paper, through the training loop."""

import torch

from dinoworld.config import load_config
from dinoworld.data import write_synthetic_dataset
from dinoworld.model.folder import read_model_folder
from dinoworld.train import TrainConfig, train


def test_standardize_sets_statistics_from_data_and_they_survive_resume(tmp_path):
    write_synthetic_dataset(tmp_path / "v", num_videos=4, seconds=2.0, size=56, seed=0)
    over = [f"out_dir={tmp_path / 'run'}", f"data.source={tmp_path / 'v'}", "model.size=tiny",
            "model.encoder=pixel-pyramid", "model.predictor={standardize: true, residual: true}",
            "optim.batch_size=2", "optim.micro_batch_size=2", "optim.warmup_steps=1", "data.num_frames=3",
            "data.num_workers=0", "stages=[{steps: 4, resolution: 56}]", "ckpt_every=2", "tensorboard=false",
            "progress=false"]
    first = train(load_config(TrainConfig, None, over), max_steps=2)
    meta, state = read_model_folder(first["checkpoint"])
    assert meta.predictor["standardize"] and meta.predictor["residual"]
    mean, std = state["feature_mean"], state["feature_std"]
    assert mean.abs().sum() > 0 and not torch.allclose(std, torch.ones_like(std))  # set from the data
    second = train(load_config(TrainConfig, None, over))
    assert second["start_step"] == 2 and second["step"] == 4
    _, state2 = read_model_folder(second["checkpoint"])
    assert torch.equal(state2["feature_mean"], mean) and torch.equal(state2["feature_std"], std)  # buffers, not refit
