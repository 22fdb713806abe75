"""Training: the loop, checkpoints, distributed helpers, config."""

from .config import DataConfig, FinetuneConfig, ModelConfig, OptimConfig, Stage, TrainConfig
from .loop import lr_factor, teacher_forcing_loss, train

__all__ = [
    "DataConfig", "FinetuneConfig", "ModelConfig", "OptimConfig", "Stage", "TrainConfig",
    "lr_factor", "teacher_forcing_loss", "train",
]
