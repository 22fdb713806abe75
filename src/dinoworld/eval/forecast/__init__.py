"""Dense forecasting (paper §4.1, Table 1, App. C.1): present-time heads read predicted features.

A world model forecasts the features of a future frame from context frames at their real
timestamps; a present-time head (trained once on true features) reads semantics (segmentation) or
geometry (depth) from them, scored against the scored frame's labels beside copy-last, context-mean
and the present-time upper bound. The modules:

* :mod:`.readers`: the datasets (Cityscapes, VSPW, KITTI, the synthetic probe) as labelled
  sequences at their native frame rate, the label and depth PNG formats, ``IGNORE``;
* :mod:`.protocol`: the frame indices of each dataset's windows (App. C.1), how frames are read,
  the windows of a dataset, the column names;
* :mod:`.heads`: the present-time heads (BatchNorm + Linear per patch): training, files;
* :mod:`.metrics`: confusion matrices, mIoU, RMSE, the running scores of a task and the paired
  bootstrap intervals;
* :mod:`.runner`: sliding-window inference, the forecasts of every column, the evaluation loop,
  the heads for a dataset and the whole evaluation;
* :mod:`.report`: the text table and ``forecast.json``;
* :mod:`.probe`: the offline benchmark written from the project's synthetic scenes; imported on its
  own, not from here.
"""

from __future__ import annotations

from .heads import (
    DenseHead,
    HeadConfig,
    encode_crops,
    has_head,
    load_head,
    resize_short_side,
    save_head,
    to_tensor,
    train_head,
)
from .metrics import TaskScore, confusion_matrix, depth_valid, iou_per_class, mean_iou, paired_bootstrap_ci, rmse
from .protocol import (
    HEAD_CROP,
    HORIZONS,
    KEYS,
    METHODS,
    PROTOCOLS,
    SCORING,
    Protocol,
    Sample,
    Scoring,
    protocol_for,
    windows_of,
)
from .readers import DATASETS, IGNORE, TASKS, DenseDataset, read_dense
from .report import format_table, write_summary
from .runner import (
    METRIC,
    ForecastEval,
    evaluate_forecast,
    forecast_features,
    forecast_maps,
    head_config,
    prepare_heads,
    run_forecast_eval,
    sliding_average,
    sliding_windows,
)

__all__ = [
    "DATASETS",
    "HEAD_CROP",
    "HORIZONS",
    "IGNORE",
    "KEYS",
    "METHODS",
    "METRIC",
    "PROTOCOLS",
    "SCORING",
    "TASKS",
    "DenseDataset",
    "DenseHead",
    "ForecastEval",
    "HeadConfig",
    "Protocol",
    "Sample",
    "Scoring",
    "TaskScore",
    "confusion_matrix",
    "depth_valid",
    "encode_crops",
    "evaluate_forecast",
    "format_table",
    "forecast_features",
    "forecast_maps",
    "has_head",
    "head_config",
    "iou_per_class",
    "load_head",
    "mean_iou",
    "paired_bootstrap_ci",
    "prepare_heads",
    "protocol_for",
    "read_dense",
    "resize_short_side",
    "rmse",
    "run_forecast_eval",
    "save_head",
    "sliding_average",
    "sliding_windows",
    "to_tensor",
    "train_head",
    "windows_of",
    "write_summary",
]
