"""Training: the loop and its parts, the run's data, checkpoints, distributed helpers, config."""

from .config import DataConfig, FinetuneConfig, ModelConfig, OptimConfig, Stage, TrainConfig
from .loop import Trainer, lr_factor, teacher_forcing_loss, train
from .streams import DataSource

__all__ = [
    "DataConfig", "DataSource", "FinetuneConfig", "ModelConfig", "OptimConfig", "Stage", "TrainConfig", "Trainer",
    "lr_factor", "teacher_forcing_loss", "train",
]
