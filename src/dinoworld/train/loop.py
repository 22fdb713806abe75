"""The one training loop: video pre-training and action-conditioned fine-tuning.

Next-frame prediction with teacher forcing (paper Eq. 4): for a clip of T frames, the predictor
gets all T frames as context and predicts frames 2..T at their actual timestamps; the
block-triangular mask comes from the predictor's strict-earlier rule. With actions, the query
for frame t+1 also gets the action taken at frame t.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from ..config import to_dict
from ..data.cache import FeatureClipDataset
from ..data.factory import detect_kind
from ..data.featurize import Featurizer
from ..devices import uses_bf16
from ..encoders import load_encoder
from ..errors import UserError
from ..model import Predictor, build_predictor, compile_predictor, prediction_loss
from ..model.attention import resolve_backend
from ..model.folder import CheckpointMeta, EncoderInfo, latest_checkpoint, load_predictor
from ..progress import progress_bar
from .checkpoint import remove_stale_writes, resume_point, save_checkpoint
from .config import TrainConfig
from .distributed import (
    Dist,
    all_gather_objects,
    all_reduce_mean,
    all_reduce_sum,
    barrier,
    init_distributed,
    shutdown_distributed,
    wrap_model,
)
from .logging import MetricsLogger
from .streams import check_cache_encoder, check_cache_resolution, make_stream, trajectory_features, trajectory_meta

#: data seed of the validation stream (the same held-out clips at every validation)
VAL_SEED = 12345
#: how ``train`` and ``finetune`` tell the user to give encoder weights (a config key: they have no flag for it)
WEIGHTS_HINT = "model.encoder_weights=PATH"


# ---------------------------------------------------------------------------------------- math
def teacher_forcing_loss(
    model: nn.Module, feats: torch.Tensor, times: torch.Tensor, actions: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss of predicting frames 2..T from the clip (and the copy-last loss, for reference).

    feats ``(B, T, H, W, D)``, times ``(B, T)``, actions ``(B, T-1, A)`` (action t leads to frame t+1).
    """
    pred = model(feats, times, times[:, 1:], actions)
    space = getattr(_unwrap(model), "standardize", lambda x: x)  # the predictor's feature space
    target = space(feats[:, 1:])
    with torch.no_grad():
        copy = prediction_loss(space(feats[:, :-1]), target)
    return prediction_loss(space(pred), target), copy


@torch.no_grad()
def feature_stats_from_data(cfg: TrainConfig, model: Predictor, featurize, env: Dist, batches: int = 16) -> None:
    """Set a standardising predictor's per-channel feature statistics from the first training batches
    (averaged over ranks)."""
    stream = make_stream(cfg, cfg.data.source, cfg.stages[0].resolution, env, seed=cfg.seed + 7919)
    it = _loader(stream, cfg.optim.micro_batch_size, 0)
    feats = torch.cat([featurize(next(it))[0].flatten(0, -2) for _ in range(batches)])
    model.set_feature_stats(feats)
    model.feature_mean.copy_(all_reduce_mean(model.feature_mean, env))
    model.feature_std.copy_(all_reduce_mean(model.feature_std, env))


def lr_factor(step: int, warmup: int, total: int = 0, schedule: str = "constant", floor: float = 0.0) -> float:
    """Learning-rate factor: linear warm-up over ``warmup`` steps, then constant 1 (paper App. A.2),
    or a cosine decay from 1 to ``floor`` at ``total`` steps (the paper found no difference at scale;
    short CPU runs need the decay to get below the gradient-noise floor)."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    raise UserError(f"unknown optim.schedule {schedule!r}; use constant or cosine")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices only; biases, LayerNorms, the query and layer scales are not decayed."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


# ---------------------------------------------------------------------------------------- data
def _loader(stream, batch_size: int, num_workers: int) -> Iterator[dict[str, Any]]:
    from torch.utils.data import DataLoader

    # Batches come from the workers in turn (in order, the default), which stream.observe relies on.
    loader = DataLoader(stream, batch_size=batch_size, num_workers=num_workers, drop_last=True,
                        persistent_workers=num_workers > 0, pin_memory=torch.cuda.is_available())
    return iter(loader)


# -------------------------------------------------------------------------------------- model
def build_model(cfg: TrainConfig, in_dim: int) -> tuple[Predictor, dict[str, Any]]:
    """A fresh predictor, or one initialised from ``finetune.init`` (+ fresh action blocks)."""
    ft = cfg.finetune
    extra: dict[str, Any] = {}
    if ft.init:
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


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _full_state(model: nn.Module, optimizer: torch.optim.Optimizer, env: Dist):
    """Full (gathered) model and optimizer state dicts, on CPU."""
    if not env.enabled:
        return _unwrap(model).state_dict(), optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_state_dict(_unwrap(model), optimizer, options=opts)


def _load_full_state(model: nn.Module, optimizer: torch.optim.Optimizer, msd, osd, env: Dist) -> None:
    if not env.enabled:
        _unwrap(model).load_state_dict(msd)
        optimizer.load_state_dict(osd)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    set_state_dict(_unwrap(model), optimizer, model_state_dict=msd, optim_state_dict=osd,
                   options=StateDictOptions(full_state_dict=True))


def _rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])


# --------------------------------------------------------------------------------------- loop
def _stage_at(cfg: TrainConfig, step: int) -> tuple[int, int]:
    """(stage index, step at which it ends) for a global step."""
    end = 0
    for i, s in enumerate(cfg.stages):
        end += s.steps
        if step < end:
            return i, end
    return len(cfg.stages) - 1, end


@torch.no_grad()
def validate(cfg: TrainConfig, model: nn.Module, featurize: Featurizer, env: Dist, resolution: int,
             autocast) -> dict[str, float]:
    """Mean model loss and copy-last loss on the first ``val_batches`` micro-batches of held-out clips;
    empty when the held-out data cannot fill one micro-batch (never a made-up 0.0)."""
    stream = make_stream(cfg, cfg.data.val_source, resolution, env, seed=VAL_SEED, val=True)
    it = _loader(stream, cfg.optim.micro_batch_size, 0)
    model.eval()
    sums = torch.zeros(3, device=featurize.device)
    try:
        for _ in range(cfg.val_batches):
            try:
                batch = next(it)
            except StopIteration:
                break
            feats, times, actions = featurize(batch)
            with autocast():
                loss, copy = teacher_forcing_loss(model, feats, times, actions)
            sums += torch.stack([loss.float(), copy.float(), torch.ones((), device=sums.device)])
    finally:
        model.train()
    sums = all_reduce_sum(sums, env)
    n = sums[2].item()
    return {"val/loss": sums[0].item() / n, "val/copy_last": sums[1].item() / n} if n else {}


def train(cfg: TrainConfig, resume: bool = True, max_steps: int | None = None,
          return_model: bool = False) -> dict[str, Any]:
    """Train (or resume) according to ``cfg``. Returns a summary dict (rank 0 has the full picture).

    ``max_steps`` stops early after that global step (the schedule still follows ``cfg.stages``);
    ``return_model`` adds the trained (possibly wrapped) module under ``"model"``.

    Resuming starts from the newest checkpoint that has readable weights and ``train_state.pt``
    (newer unusable ones are moved aside, with one line saying so). Ctrl-C on a single process saves
    a checkpoint at the last finished step, then re-raises ``KeyboardInterrupt``.
    """
    if not cfg.data.source:
        raise UserError("no training data: set data.source=PATH (videos, a manifest, shards or a feature cache)")
    env = init_distributed()  # under torchrun: joins (or creates, and then destroys) the process group
    try:
        summary = _train(cfg, env, resume, max_steps, return_model)
    except BaseException:
        shutdown_distributed(env, clean=False)
        raise
    shutdown_distributed(env)
    return summary


def _train(cfg: TrainConfig, env: Dist, resume: bool, max_steps: int | None, return_model: bool) -> dict[str, Any]:
    out = Path(cfg.out_dir)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)

    o = cfg.optim
    per_step = o.micro_batch_size * env.world_size
    if o.batch_size % per_step:
        raise UserError(
            f"optim.batch_size={o.batch_size} must be a multiple of micro_batch_size x world_size = {per_step}"
        )
    accum = o.batch_size // per_step

    kind = detect_kind(cfg.data.source, cfg.data.kind)
    encoder = None
    if cfg.data.features and kind != "trajectories":
        raise UserError(f"data.features is for trajectory folders, but {cfg.data.source} holds {kind} data; "
                        "drop data.features")
    if kind == "cache":
        cache = FeatureClipDataset(cfg.data.source, num_frames=cfg.data.num_frames, dt_min=cfg.data.dt_min,
                                   dt_max=cfg.data.dt_max)
        check_cache_resolution(cfg, cache.frame_size, cfg.data.source)
        check_cache_encoder(cfg, cache.encoder_name, cfg.data.source)
        in_dim = int(cache.feature_shape[-1])
        enc_meta = EncoderInfo(cache.encoder_name)
    elif cfg.data.features:
        feats = trajectory_features(cfg)
        in_dim = feats.feature_shape[-1]
        enc_meta = EncoderInfo(feats.encoder_name, feats.settings.get("encoder_weights"),
                               bool(feats.settings.get("pretrained", False)))
    else:
        encoder = load_encoder(cfg.model.encoder, weights=cfg.model.encoder_weights, device=env.device,
                               weights_hint=WEIGHTS_HINT)
        in_dim = encoder.dim
        enc_meta = EncoderInfo(encoder.name, cfg.model.encoder_weights, encoder.pretrained)
    model, extra = build_model(cfg, in_dim)
    model.to(env.device)
    resolve_backend(cfg.attention, env.device)  # an unknown name fails here, not at the first step
    model.attention_backend = cfg.attention
    compile_predictor(model, compile_mode(cfg, env.device))  # before wrapping: DDP/FSDP2 wrap the compiled model
    meta = CheckpointMeta(predictor=model.cfg.to_dict(), encoder=enc_meta, resolution=cfg.stages[-1].resolution,
                          train_config=to_dict(cfg), **extra)
    if kind == "trajectories":
        meta = dataclasses.replace(meta, **trajectory_meta(cfg))

    model = wrap_model(model, env, cfg.strategy, cfg.model.size)
    optimizer = torch.optim.AdamW(param_groups(model, o.weight_decay), lr=o.lr, betas=tuple(o.betas),
                                  fused=env.device.type == "cuda")  # float32 master weights; one kernel per step
    lr_factor(0, o.warmup_steps, cfg.total_steps, o.schedule)  # validate the schedule name up front
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, o.warmup_steps, cfg.total_steps, o.schedule, o.min_lr_ratio))

    if env.is_main:
        remove_stale_writes(out)  # temporary folders of checkpoint writes killed mid-way
    barrier(env)
    step, data_state, skip_events = 0, None, 0
    skipped_sources: set[str] = set()  # distinct skipped videos, over all ranks, workers and epochs
    found = resume_point(out, say=print if env.is_main else (lambda _: None), move=env.is_main) if resume else None
    if found is not None:
        ckpt, state, weights = found
        _load_full_state(model, optimizer, weights, state["optimizer"], env)
        scheduler.load_state_dict(state["scheduler"])
        step, data_state, skip_events = state["step"], state["data"], state.get("skip_events", state.get("skipped", 0))
        skipped_sources = set(state.get("skipped_sources", ()))
        _set_rng_state(state["rng"])
        if env.is_main:
            print(f"resuming from {ckpt} at step {step}")

    logger = MetricsLogger(out, env.is_main, cfg.tensorboard, start_step=step)
    use_bf16 = uses_bf16(cfg.precision, env.device)
    autocast = (lambda: torch.autocast(env.device.type, dtype=torch.bfloat16)) if use_bf16 else contextlib.nullcontext
    conditioned = _unwrap(model).action_blocks is not None
    if kind == "trajectories" and not conditioned and env.is_main:
        print("trajectory data with model.action_dim=0: action-free pre-training on the frames (actions ignored); "
              "fine-tune with actions afterwards (dinoworld finetune --mode frozen|full --init RUN)")
    featurize = Featurizer(encoder, env.device, torch.bfloat16 if use_bf16 else torch.float32, actions=conditioned)
    if found is None and _unwrap(model).cfg.standardize and not cfg.finetune.init:
        # a fresh run only: a resumed one has them in its checkpoint, an initialised one from its init
        feature_stats_from_data(cfg, _unwrap(model), featurize, env)
    last_step = min(cfg.total_steps, max_steps) if max_steps is not None else cfg.total_steps

    def save(at: int, data: dict[str, Any], rng: dict[str, Any] | None = None) -> None:
        msd, osd = _full_state(model, optimizer, env)
        if env.is_main:
            train_state = {"optimizer": osd, "scheduler": scheduler.state_dict(), "step": at, "data": data,
                           "rng": rng or _rng_state(), "skip_events": skip_events,
                           "skipped_sources": sorted(skipped_sources)}
            save_checkpoint(out, at, msd, meta, train_state, keep=cfg.keep_checkpoints)
        barrier(env)

    bar = None
    if env.is_main and cfg.progress:
        bar = progress_bar(total=last_step, initial=step, desc="train", unit="step", dynamic_ncols=True)
    summary: dict[str, Any] = {"start_step": step}
    model.train()
    t_last, clips_since = time.time(), 0
    saved_step, step_rng, new_sources = step, None, []
    try:
        while step < last_step:
            stage_i, stage_end = _stage_at(cfg, step)
            resolution = cfg.stages[stage_i].resolution
            stream = make_stream(cfg, cfg.data.source, resolution, env, seed=cfg.seed + 1000 * stage_i)
            if data_state is not None and data_state.get("stage") == stage_i:
                stream.load_state_dict(data_state["stream"])
            it = _loader(stream, o.micro_batch_size, cfg.data.num_workers)
            while step < min(stage_end, last_step):
                loss_sum = torch.zeros(2, device=env.device)
                skipped = 0
                for micro in range(accum):
                    batch = next(it)
                    stream.observe(batch)
                    skipped += int(torch.as_tensor(batch["skipped"]).sum())
                    new_sources += [n for joined in batch.get("skipped_sources", ()) for n in joined.split("\n") if n]
                    feats, times, actions = featurize(batch)
                    sync = micro == accum - 1 or not isinstance(model, nn.parallel.DistributedDataParallel)
                    with (contextlib.nullcontext() if sync else model.no_sync()), autocast():
                        loss, copy = teacher_forcing_loss(model, feats, times, actions)
                        (loss / accum).backward()
                    loss_sum += torch.stack([loss.detach().float(), copy.float()]) / accum
                loss_sum = all_reduce_mean(loss_sum, env)
                if not torch.isfinite(loss_sum[0]):
                    prev = latest_checkpoint(out)
                    raise UserError(
                        f"non-finite loss ({loss_sum[0].item()}) at step {step + 1}; stopped without saving. "
                        f"Last good checkpoint: {prev or 'none'}. Lower optim.lr or enable optim.grad_clip"
                    )
                gnorm = None
                if o.grad_clip > 0:
                    trained = [p for p in model.parameters() if p.requires_grad]
                    gnorm = torch.nn.utils.clip_grad_norm_(trained, o.grad_clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                skip_events += int(all_reduce_sum(torch.tensor(float(skipped), device=env.device), env).item())
                skipped_sources.update(all_gather_objects(new_sources, env))
                new_sources = []
                step_rng = _rng_state()  # what an interrupted run saves (the state at this step's end)
                clips_since += o.batch_size
                data_state = {"stage": stage_i, "stream": stream.state_dict()}
                if step % cfg.log_every == 0 or step == last_step:
                    dt = max(time.time() - t_last, 1e-9)
                    row = {"train/loss": loss_sum[0].item(), "train/copy_last": loss_sum[1].item(),
                           "lr": scheduler.get_last_lr()[0], "clips_per_s": clips_since / dt,
                           "resolution": resolution, "skipped_videos": len(skipped_sources)}
                    if gnorm is not None:
                        row["grad_norm"] = float(gnorm)
                    logger.log(step, row)
                    if bar is not None:
                        bar.set_postfix(loss=f"{row['train/loss']:.4f}", copy=f"{row['train/copy_last']:.4f}",
                                        clips_s=f"{row['clips_per_s']:.1f}", skipped=len(skipped_sources))
                    t_last, clips_since = time.time(), 0
                    summary["train_loss"], summary["train_copy_last"] = row["train/loss"], row["train/copy_last"]
                if cfg.data.val_source and (step % cfg.val_every == 0 or step == last_step):
                    v = validate(cfg, model, featurize, env, resolution, autocast)
                    if not v and "val_skipped" not in summary:
                        summary["val_skipped"] = (f"{cfg.data.val_source} gives no micro-batch of "
                                                  f"{cfg.optim.micro_batch_size} held-out clips")
                        print(f"warning: no validation loss: {summary['val_skipped']}", file=sys.stderr, flush=True)
                    if v:
                        logger.log(step, v)
                    summary.update(v)
                    if bar is not None and v:
                        bar.write(f"step {step}: val loss {v['val/loss']:.4f} (copy-last {v['val/copy_last']:.4f})")
                if step % cfg.ckpt_every == 0 or step == last_step:
                    save(step, data_state)
                    saved_step = step
                if bar is not None:
                    bar.update(1)
    except KeyboardInterrupt:
        # Ctrl-C: keep the finished steps. Only on one process: ranks of a distributed run are not
        # interrupted at the same point, so a gathered save could hang; they keep the last periodic one.
        if step > saved_step and not env.enabled:
            save(step, data_state, step_rng)
            if env.is_main:
                print(f"interrupted: saved a checkpoint at step {step}; rerun the same command to resume", flush=True)
        raise
    if bar is not None:
        bar.close()
    logger.close()
    summary.update({"step": step, "skipped_videos": len(skipped_sources), "skip_events": skip_events,
                    "checkpoint": str(latest_checkpoint(out))})
    if return_model:
        summary["model"] = _unwrap(model)
    if env.is_main and skipped_sources:
        print(f"skipped {len(skipped_sources)} unreadable or too-short videos, {skip_events} times in all "
              "(each epoch meets them again; see warnings above)")
    return summary
