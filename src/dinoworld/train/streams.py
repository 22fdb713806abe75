"""The training loop's data: one resumable, rank-sharded clip stream per source, from the config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data.cache import FeatureClipDataset
from ..data.factory import detect_kind
from ..data.sources import VideoClipDataset
from ..data.trajectories import collection_fingerprint
from ..data.trajectory_cache import TrajectoryFeatures
from ..data.trajectory_clips import same_folder, trajectory_clip_stream, trajectory_info
from ..errors import UserError
from ..model.actions import CONTROL_RATE_HZ, model_action_dim
from .config import ModelConfig, TrainConfig
from .distributed import Dist


def check_action_dim(cfg: TrainConfig) -> None:
    """Trajectory clips carry ``raw_dim x frameskip``-d actions: a model with action blocks must take
    exactly those. ``model.action_dim=0`` (and no init) pre-trains without actions on the frames."""
    d = cfg.data
    info = trajectory_info(d.source, cfg.seed, cfg.finetune.val_fraction)
    want = model_action_dim(info.raw_action_dim, d.frameskip)
    if cfg.model.action_dim and cfg.model.action_dim != want:
        raise UserError(f"model.action_dim={cfg.model.action_dim} but the data gives {info.raw_action_dim}-d actions "
                        f"x frameskip {d.frameskip} = {want}; set model.action_dim={want}")


def check_cache_resolution(cfg: TrainConfig, frame_size: tuple[int, int], cache: str) -> int:
    """A feature cache fixes the resolution: every stage must ask for it. Returns it."""
    h, w = frame_size
    for i, stage in enumerate(cfg.stages):
        if (stage.resolution, stage.resolution) != (h, w):
            raise UserError(
                f"{cache} is a feature cache encoded at {h}x{w} px but stage {i + 1} asks for "
                f"{stage.resolution} px; set every stages[].resolution to {h} or encode a cache at "
                f"{stage.resolution} px")
    return h


def check_cache_encoder(cfg: TrainConfig, have: str, cache: str) -> str:
    """A feature cache fixes the encoder: a ``model.encoder`` that names another one is refused.

    ``model.encoder`` has a default (dinov2-b14-reg) that a run on a cache need not change, and the
    config cannot tell a default from the same value set on purpose; so the default is taken to mean
    "the cache's encoder", and any other name must match the cache's. Returns the cache's encoder.
    """
    want = cfg.model.encoder
    if have != "unknown" and want not in (have, ModelConfig.encoder):
        raise UserError(f"{cache} is a feature cache of encoder {have!r} but model.encoder={want}; "
                        f"drop model.encoder (or set model.encoder={have}) or encode a cache with {want}")
    return have


def make_stream(cfg: TrainConfig, source: str, resolution: int, env: Dist, seed: int, *, val: bool = False):
    """A resumable, rank-sharded clip stream for ``source`` (training, or one validation pass)."""
    d = cfg.data
    kind = detect_kind(source, d.kind)
    common = dict(num_frames=d.num_frames, seed=seed, rank=env.rank, world_size=env.world_size)
    if kind == "cache":
        return FeatureClipDataset(source, dt_min=d.dt_min, dt_max=d.dt_max, shuffle=not val, **common)
    if kind == "video":
        return VideoClipDataset(source, dt_min=d.dt_min, dt_max=d.dt_max, size=resolution, policy=d.crop,
                                shuffle=not val, **common)
    check_action_dim(cfg)
    return trajectory_clip_stream(source, train_source=d.source, split_seed=cfg.seed,
                                  val_fraction=cfg.finetune.val_fraction, val=val, frameskip=d.frameskip,
                                  size=resolution, policy=d.crop, features=d.features or None, **common)


def trajectory_features(cfg: TrainConfig) -> TrajectoryFeatures:
    """The feature cache of a trajectory run (``data.features``), checked against the config."""
    d = cfg.data
    if d.val_source and not same_folder(d.val_source, d.source):
        raise UserError(f"data.features is a cache of {d.source} only, but validation reads {d.val_source}; "
                        "set data.val_source to the training folder (its held-out episodes) or '' to skip it")
    feats = TrajectoryFeatures(d.features)
    check_cache_resolution(cfg, (feats.size, feats.size), d.features)
    check_cache_encoder(cfg, feats.encoder_name, d.features)
    return feats


def trajectory_meta(cfg: TrainConfig) -> dict[str, Any]:
    """Checkpoint metadata of a trajectory run, so planning can rebuild its actions exactly."""
    info = trajectory_info(cfg.data.source, cfg.seed, cfg.finetune.val_fraction)
    return {
        "env": cfg.finetune.env or info.env,
        "world": info.world_version,
        "frameskip": int(cfg.data.frameskip),
        "control_rate_hz": CONTROL_RATE_HZ,
        "raw_action_dim": info.raw_action_dim,
        "action_norm": {
            "mean": info.mean, "std": info.std,
            "layout": "per raw action dimension; model action k of a clip starting at s is "
                      "concat(a[s+k*f], .., a[s+k*f+f-1]) normalised with the stats tiled f times",
        },
        "split": {
            "seed": int(cfg.seed), "val_fraction": float(cfg.finetune.val_fraction),
            "train": [info.episode_ids[i] for i in info.train],
            "val": [info.episode_ids[i] for i in info.val],
            "data": str(Path(cfg.data.source).expanduser().resolve()),
            "data_fingerprint": collection_fingerprint(Path(cfg.data.source).expanduser(), info.episode_ids),
        },
    }
