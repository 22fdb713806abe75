"""Training: the loop, checkpoints, distributed helpers, config."""

from .config import DataConfig, FinetuneConfig, ModelConfig, OptimConfig, Stage, TrainConfig
from .loop import load_predictor, teacher_forcing_loss, train, lr_factor

__all__ = [
    "DataConfig", "FinetuneConfig", "ModelConfig", "OptimConfig", "Stage", "TrainConfig",
    "load_predictor", "teacher_forcing_loss", "train", "lr_factor",
]
