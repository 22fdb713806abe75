"""The training run's data: the source resolved once from the config (:class:`DataSource`) and its
resumable, rank-sharded clip streams."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data.cache import FeatureClipDataset
from ..data.factory import detect_kind
from ..data.sources import VideoClipDataset
from ..data.trajectories import collection_fingerprint
from ..data.trajectory_cache import TrajectoryFeatures
from ..data.trajectory_clips import TrajectoryInfo, same_folder, trajectory_clip_stream, trajectory_info
from ..encoders import load_encoder
from ..errors import UserError
from ..model.actions import CONTROL_RATE_HZ, model_action_dim
from ..model.folder import EncoderInfo
from .config import ModelConfig, TrainConfig
from .distributed import Dist

#: data seed of the validation stream (the same held-out clips at every validation)
VAL_SEED = 12345
#: how ``train`` and ``finetune`` tell the user to give encoder weights (a config key: they have no flag for it)
WEIGHTS_HINT = "model.encoder_weights=PATH"


@dataclass(frozen=True, eq=False)
class DataSource:
    """A run's data, resolved once from its config (:meth:`resolve`) and handed to everything that
    reads it: the training and validation streams, the model's input width, the checkpoint metadata
    and the held-out action check."""

    cfg: TrainConfig
    kind: str  #: what ``data.source`` holds: "cache", "video" or "trajectories"
    in_dim: int  #: feature width the predictor takes
    encoder_info: EncoderInfo  #: the encoder behind the features, as checkpoints record it
    encoder: Any = None  #: the frozen encoder of raw frames; None when the data are features
    val_kind: str | None = None  #: what ``data.val_source`` holds; None without validation
    #: trajectories: split, action statistics, raw action dim, env and world version of ``data.source``
    trajectory: TrajectoryInfo | None = None
    #: trajectories validated on another folder (``data.val_source``): that folder's episodes
    val_trajectory: TrajectoryInfo | None = None
    #: ``data.features``: the trajectory feature cache, checked against the config
    features: TrajectoryFeatures | None = None

    @classmethod
    def resolve(cls, cfg: TrainConfig, device: torch.device, trajectory: TrajectoryInfo | None = None) -> DataSource:
        """Detect what the sources hold, check a feature cache against the config (resolution, encoder),
        load the encoder when frames must be encoded, and read a trajectory folder's split and actions
        (``trajectory``: ``trajectory_info`` of ``data.source`` with the config's seed and held-out
        fraction, when the caller has it)."""
        d = cfg.data
        kind = detect_kind(d.source, d.kind)
        if d.features and kind != "trajectories":
            raise UserError(f"data.features is for trajectory folders, but {d.source} holds {kind} data; "
                            "drop data.features")
        encoder = features = None
        if kind == "cache":  # its index gives the frame size, encoder and feature width
            cache = FeatureClipDataset(d.source, num_frames=d.num_frames, dt_min=d.dt_min, dt_max=d.dt_max)
            check_cache_resolution(cfg, cache.frame_size, d.source)
            check_cache_encoder(cfg, cache.encoder_name, d.source)
            in_dim, info = int(cache.feature_shape[-1]), EncoderInfo(cache.encoder_name)
        elif d.features:
            if trajectory is None:
                trajectory = run_split(cfg)
            features = trajectory_features(cfg, trajectory)
            in_dim = features.feature_shape[-1]
            info = EncoderInfo(features.encoder_name, features.settings.get("encoder_weights"),
                               bool(features.settings.get("pretrained", False)))
        else:
            encoder = load_encoder(cfg.model.encoder, weights=cfg.model.encoder_weights, device=device,
                                   weights_hint=WEIGHTS_HINT)
            in_dim, info = encoder.dim, EncoderInfo(encoder.name, cfg.model.encoder_weights, encoder.pretrained)
        val_kind = detect_kind(d.val_source, d.kind) if d.val_source else None
        val_trajectory = None
        if kind == "trajectories":
            if trajectory is None:
                trajectory = run_split(cfg)
            check_action_dim(cfg, trajectory)
            if val_kind == "trajectories" and not same_folder(d.val_source, d.source):
                val_trajectory = trajectory_info(d.val_source, cfg.seed, 0.0)
        else:
            trajectory = None
        return cls(cfg, kind, int(in_dim), info, encoder, val_kind, trajectory, val_trajectory, features)

    def train_stream(self, resolution: int, env: Dist, seed: int):
        """The endless, shuffled training stream of ``data.source`` at ``resolution`` px."""
        return self._stream(self.cfg.data.source, self.kind, resolution, env, seed, val=False)

    def val_stream(self, resolution: int, env: Dist, seed: int = VAL_SEED):
        """One pass over ``data.val_source`` (a trajectory folder: its held-out episodes when it is ``data.source``)."""
        if self.val_kind is None:
            raise UserError("no validation data: set data.val_source")
        return self._stream(self.cfg.data.val_source, self.val_kind, resolution, env, seed, val=True)

    def heldout_stream(self, resolution: int, seed: int = VAL_SEED, env: Dist | None = None):
        """One pass over the held-out episodes of the trajectory folder ``data.source``."""
        return self._stream(self.cfg.data.source, "trajectories", resolution, env or Dist(), seed, val=True)

    def _stream(self, source: str, kind: str, resolution: int, env: Dist, seed: int, val: bool):
        d, cfg = self.cfg.data, self.cfg
        common = dict(num_frames=d.num_frames, seed=seed, rank=env.rank, world_size=env.world_size)
        if kind == "cache":
            return FeatureClipDataset(source, dt_min=d.dt_min, dt_max=d.dt_max, shuffle=not val, **common)
        if kind == "video":
            return VideoClipDataset(source, dt_min=d.dt_min, dt_max=d.dt_max, size=resolution, policy=d.crop,
                                    shuffle=not val, **common)
        return trajectory_clip_stream(source, train_source=d.source, split_seed=cfg.split_seed,
                                      val_fraction=cfg.finetune.val_fraction, val=val, frameskip=d.frameskip,
                                      size=resolution, policy=d.crop, features=self.features, info=self.trajectory,
                                      source_info=self.val_trajectory if val else None, **common)

    def trajectory_meta(self) -> dict[str, Any]:
        """Checkpoint metadata of a trajectory run (see :func:`trajectory_meta`)."""
        return trajectory_meta(self.cfg, self.trajectory)


def run_split(cfg: TrainConfig) -> TrajectoryInfo:
    """``trajectory_info`` of the trajectory folder ``data.source`` with the run's split seed, held-out fraction
    and number of training episodes."""
    return trajectory_info(cfg.data.source, cfg.split_seed, cfg.finetune.val_fraction, cfg.finetune.train_episodes)


def check_action_dim(cfg: TrainConfig, info: TrajectoryInfo) -> None:
    """Trajectory clips carry ``raw_dim x frameskip``-d actions: a model with action blocks must take
    exactly those. ``model.action_dim=0`` (and no init) pre-trains without actions on the frames."""
    d = cfg.data
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


def trajectory_features(cfg: TrainConfig, info: TrajectoryInfo) -> TrajectoryFeatures:
    """The feature cache of a trajectory run (``data.features``), checked once against the config and the
    collection ``info`` describes (``trajectory_info`` of ``data.source``)."""
    d = cfg.data
    if d.val_source and not same_folder(d.val_source, d.source):
        raise UserError(f"data.features is a cache of {d.source} only, but validation reads {d.val_source}; "
                        "set data.val_source to the training folder (its held-out episodes) or '' to skip it")
    feats = TrajectoryFeatures(d.features)
    check_cache_resolution(cfg, (feats.size, feats.size), d.features)
    check_cache_encoder(cfg, feats.encoder_name, d.features)
    feats.check(info.dataset.root, info.episode_ids, feats.size, d.crop)
    return feats


def trajectory_meta(cfg: TrainConfig, info: TrajectoryInfo | None = None) -> dict[str, Any]:
    """Checkpoint metadata of a trajectory run, so planning can rebuild its actions exactly.

    ``info``: :func:`run_split` (read from the folder when not given)."""
    if info is None:
        info = run_split(cfg)
    train = [info.episode_ids[i] for i in info.train]
    val = [info.episode_ids[i] for i in info.val]
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
            "seed": cfg.split_seed, "val_fraction": float(cfg.finetune.val_fraction),
            "train": train,
            "val": val,
            "data": str(Path(cfg.data.source).expanduser().resolve()),
            # over the episodes the split names, as planning checks it (all of them unless finetune.train_episodes)
            "data_fingerprint": collection_fingerprint(Path(cfg.data.source).expanduser(), [*train, *val]),
        },
    }


__all__ = ["VAL_SEED", "WEIGHTS_HINT", "DataSource", "check_action_dim", "check_cache_encoder", "run_split",
           "check_cache_resolution", "trajectory_features", "trajectory_meta"]
