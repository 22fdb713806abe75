"""Intuitive physics (paper §4.1 Table 2, App. E.2 Table 9; the protocol of Garrido et al. 2025).

The *surprise* of a video under a world model is its per-step prediction error; the *relative
accuracy* over matched (possible, impossible) pairs is the share of pairs where the possible video is
less surprising. The modules:

* :mod:`.readers`: the benchmarks' layouts (IntPhys, GRASP, InfLevel, a folder) as matched pairs, and
  the frames of one video;
* :mod:`.surprise`: sliding-window surprise of one video (model, copy-last, context mean);
* :mod:`.metrics`: relative accuracy and its summary over all pairs and per property;
* :mod:`.runner`: the whole evaluation over a pair set;
* :mod:`.report`: the text table, the surprise-curve plot and the output folder;
* :mod:`.probe`: an offline probe simulated with pymunk (plausible training videos, matched pairs);
  imported on its own, not from here.
"""

from __future__ import annotations

from .metrics import SCORES, PairResult, relative_accuracy, summarize
from .readers import (
    DATASETS,
    IMAGE_EXTS,
    IMAGE_SEQUENCE_FPS,
    INTPHYS_PROPERTIES,
    READERS,
    VIDEO_EXTS,
    Pair,
    PairSet,
    VideoRef,
    load_frames,
    read_folder,
    read_grasp,
    read_inflevel,
    read_intphys,
    read_pairs,
)
from .report import format_table, plot_surprise_curves, write_outputs
from .runner import PhysicsEval, evaluate_pairs
from .surprise import AGGREGATIONS, CURVES, PredictFn, Surprise, surprise_from_features, video_surprise, window_targets

__all__ = [
    "AGGREGATIONS",
    "CURVES",
    "DATASETS",
    "IMAGE_EXTS",
    "IMAGE_SEQUENCE_FPS",
    "INTPHYS_PROPERTIES",
    "READERS",
    "SCORES",
    "VIDEO_EXTS",
    "Pair",
    "PairResult",
    "PairSet",
    "PhysicsEval",
    "PredictFn",
    "Surprise",
    "VideoRef",
    "evaluate_pairs",
    "format_table",
    "load_frames",
    "plot_surprise_curves",
    "read_folder",
    "read_grasp",
    "read_inflevel",
    "read_intphys",
    "read_pairs",
    "relative_accuracy",
    "summarize",
    "surprise_from_features",
    "video_surprise",
    "window_targets",
    "write_outputs",
]
