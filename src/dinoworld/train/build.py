"""The model a run trains: a fresh or initialised predictor, which parameters train, how it is
compiled and wrapped for DDP/FSDP2, and the metadata its checkpoints carry."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from ..config import to_dict
from ..errors import UserError
from ..model import Predictor, build_predictor, compile_predictor
from ..model.attention import resolve_backend
from ..model.folder import CheckpointMeta, load_predictor, naming_checkpoint
from .config import TrainConfig
from .distributed import Dist, all_reduce_mean, wrap_model
from .step import loader
from .streams import DataSource


def build_model(cfg: TrainConfig, in_dim: int) -> tuple[Predictor, dict[str, Any]]:
    """A fresh predictor, or one initialised from ``finetune.init`` (+ fresh action blocks)."""
    ft = cfg.finetune
    extra: dict[str, Any] = {}
    if ft.init:
        with naming_checkpoint(ft.init):
            model, meta = load_predictor(ft.init)
        model.train()
        if cfg.model.action_dim and model.cfg.action_dim == 0:
            model.add_action_blocks(cfg.model.action_dim)
        extra["init"] = str(ft.init)
        if meta.encoder.name not in ("unknown", cfg.model.encoder):
            raise UserError(
                f"{ft.init} was trained on encoder {meta.encoder.name!r} but this run uses "
                f"{cfg.model.encoder!r}; set model.encoder={meta.encoder.name}"
            )
    else:
        model = build_predictor(cfg.model.size, in_dim=in_dim, action_dim=cfg.model.action_dim, **cfg.model.predictor)
    if model.cfg.in_dim != in_dim:
        raise UserError(f"predictor expects {model.cfg.in_dim}-d features but the data has {in_dim}-d")
    if ft.trainable == "actions":
        if model.action_blocks is None:
            raise UserError("finetune.trainable=actions needs model.action_dim > 0")
        action_ids = {id(p) for p in model.action_parameters()}
        for p in model.parameters():
            p.requires_grad_(id(p) in action_ids)
    elif ft.trainable != "all":
        raise UserError(f"finetune.trainable must be 'all' or 'actions', got {ft.trainable!r}")
    model.grad_checkpointing = cfg.activation_checkpointing
    return model, extra


def compile_mode(cfg: TrainConfig, device: torch.device) -> str:
    """``cfg.compile`` with ``auto`` resolved: nothing on CPU; on CUDA the whole predictor (fastest
    measured), or its blocks when they are sharded one by one (FSDP2, giant by default) or
    checkpointed, where per-block compilation is the well-trodden combination."""
    if cfg.compile != "auto":
        return cfg.compile
    if device.type != "cuda":
        return "none"
    sharded = cfg.strategy == "fsdp" or (cfg.strategy == "auto" and cfg.model.size == "giant")
    return "blocks" if sharded or cfg.activation_checkpointing else "model"


def checkpoint_meta(cfg: TrainConfig, model: Predictor, data: DataSource, extra: dict[str, Any]) -> CheckpointMeta:
    """What every checkpoint of the run records besides its weights (a trajectory run: its split and actions)."""
    meta = CheckpointMeta(predictor=model.cfg.to_dict(), encoder=data.encoder_info,
                          resolution=cfg.stages[-1].resolution, train_config=to_dict(cfg), **extra)
    return dataclasses.replace(meta, **data.trajectory_meta()) if data.kind == "trajectories" else meta


@torch.no_grad()
def feature_stats_from_data(cfg: TrainConfig, model: Predictor, data: DataSource, featurize, env: Dist,
                            batches: int = 16) -> None:
    """Set a standardising predictor's per-channel feature statistics from the first training batches
    (averaged over ranks)."""
    stream = data.train_stream(cfg.stages[0].resolution, env, seed=cfg.seed + 7919)
    it = loader(stream, cfg.optim.micro_batch_size, 0)
    feats = torch.cat([featurize(next(it))[0].flatten(0, -2) for _ in range(batches)])
    model.set_feature_stats(feats)
    model.feature_mean.copy_(all_reduce_mean(model.feature_mean, env))
    model.feature_std.copy_(all_reduce_mean(model.feature_std, env))


def setup_model(cfg: TrainConfig, data: DataSource, env: Dist) -> tuple[nn.Module, CheckpointMeta]:
    """The predictor for ``data`` on the device, with its attention backend, compiled, then wrapped
    for DDP/FSDP2 (a plain module on one process); and its checkpoint metadata."""
    model, extra = build_model(cfg, data.in_dim)
    model.to(env.device)
    resolve_backend(cfg.attention, env.device)  # an unknown name fails here, not at the first step
    model.attention_backend = cfg.attention
    compile_predictor(model, compile_mode(cfg, env.device))  # before wrapping: DDP/FSDP2 wrap the compiled model
    meta = checkpoint_meta(cfg, model, data, extra)
    return wrap_model(model, env, cfg.strategy, cfg.model.size), meta


__all__ = ["build_model", "checkpoint_meta", "compile_mode", "feature_stats_from_data", "setup_model"]
