"""Predictor, RoPE and loss."""

from .loss import copy_last_prediction, prediction_loss
from .predictor import (
    SIZES,
    ContextState,
    Predictor,
    PredictorConfig,
    build_predictor,
    count_parameters,
    predictor_config,
)

__all__ = [
    "SIZES", "ContextState", "Predictor", "PredictorConfig", "build_predictor", "count_parameters",
    "predictor_config", "prediction_loss", "copy_last_prediction",
]
