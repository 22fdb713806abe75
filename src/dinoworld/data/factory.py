"""Pick the clip stream for a source: a feature cache, offline trajectories, or videos.

Each format module says how to recognise its folders (``is_feature_cache``,
``is_trajectory_folder``); anything else is read as videos (folder, manifest or tar shards).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserError
from .cache import is_feature_cache
from .trajectories import is_trajectory_folder

KINDS = ("auto", "video", "cache", "trajectories")


def detect_kind(source: str | os.PathLike, kind: str = "auto") -> str:
    """``kind`` if given, else what ``source`` holds: ``cache``, ``trajectories`` or ``video``."""
    if kind not in KINDS:
        raise UserError(f"unknown data kind {kind!r}; use one of {', '.join(KINDS)}")
    if kind != "auto":
        return kind
    p = Path(source)
    if is_feature_cache(p):
        return "cache"
    if is_trajectory_folder(p):
        return "trajectories"
    return "video"
