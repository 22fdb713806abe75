"""The model: predictor, RoPE, loss, action space, checkpoint folder format, WorldModel.

Nothing here imports training, data streams or environments.
"""

from .actions import CONTROL_RATE_HZ, ActionSpace, group_actions, normalize_actions, ungroup_actions
from .folder import (
    CheckpointMeta,
    EncoderInfo,
    checkpoint_folder,
    complete_checkpoints,
    latest_checkpoint,
    load_predictor,
    read_meta,
    read_model_folder,
    write_model_folder,
)
from .loss import (
    context_mean_prediction,
    copy_last_prediction,
    prediction_loss,
    running_mean_prediction,
    self_fed_prediction,
    teacher_forced_baseline_losses,
)
from .predictor import (
    SIZES,
    ContextState,
    Predictor,
    PredictorConfig,
    build_predictor,
    compile_predictor,
    count_parameters,
    predictor_config,
)
from .world_model import StreamingPredictor, WorldModel

__all__ = [
    "CONTROL_RATE_HZ", "SIZES", "ActionSpace", "CheckpointMeta", "ContextState", "EncoderInfo", "Predictor",
    "PredictorConfig", "StreamingPredictor", "WorldModel", "build_predictor", "checkpoint_folder", "compile_predictor",
    "complete_checkpoints", "context_mean_prediction", "copy_last_prediction", "count_parameters", "group_actions",
    "latest_checkpoint", "load_predictor", "normalize_actions", "predictor_config", "prediction_loss", "read_meta",
    "read_model_folder", "running_mean_prediction", "self_fed_prediction", "teacher_forced_baseline_losses",
    "ungroup_actions", "write_model_folder",
]
