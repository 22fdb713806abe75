"""Action-conditioned fine-tuning as a configuration of the one training loop (paper §3.3, §4.3, App. D.2).

:func:`finetune_config` assembles the :class:`TrainConfig` of ``dinoworld finetune``: trajectory
clips (:mod:`dinoworld.data.trajectory_clips`), action blocks of width ``A · frameskip``, the
paper's three modes, and a step count from epochs over the training split. :func:`action_check`
is the held-out true-vs-shuffled-actions check that ends ``dinoworld finetune``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from ..config import merge, parse_overrides
from ..data.trajectories import load_trajectories
from ..data.trajectory_clips import (
    TrajectoryInfo,
    num_windows,
    same_folder,
    split_episodes,
    steps_for_epochs,
)
from ..devices import module_device
from ..envs import ENV_NAMES
from ..errors import UserError
from ..eval.actions import action_conditioned_errors, action_verdict, context_errors
from ..model import SIZES
from ..model.actions import model_action_dim
from ..model.folder import checkpoint_folder, naming_checkpoint, read_meta
from .config import Stage, TrainConfig
from .streams import VAL_SEED, DataSource, run_split

#: fine-tuning modes of the paper (Table 4): random init, frozen + action blocks, full fine-tune
MODES = ("scratch", "frozen", "full")


def _user_updates(config: str | None, overrides: Sequence[str]) -> list[dict[str, Any]]:
    """The YAML file's and the dotted overrides' nested dicts, in order of application."""
    out = []
    if config:
        p = Path(config)
        if not p.is_file():
            raise UserError(f"config file {p} does not exist")
        data = yaml.safe_load(p.read_text()) or {}
        if not isinstance(data, dict):
            raise UserError(f"config file {p} must contain a mapping at the top level")
        out.append(data)
    if overrides:
        out.append(parse_overrides(list(overrides)))
    return out


def _user_set(updates: list[dict[str, Any]], *path: str) -> bool:
    for u in updates:
        node: Any = u
        for k in path:
            if not isinstance(node, dict) or k not in node:
                break
            node = node[k]
        else:
            return True
    return False


def finetune_config(env: str, data: str, mode: str, init: str | None = None, config: str | None = None,
                    overrides: Sequence[str] = (), epochs: float = 25.0, out: str | None = None,
                    features: str | None = None) -> TrainConfig:
    """The :class:`TrainConfig` of ``dinoworld finetune`` (see :func:`prepare_finetune`)."""
    return prepare_finetune(env, data, mode, init, config, overrides, epochs, out, features)[0]


def prepare_finetune(env: str, data: str, mode: str, init: str | None = None, config: str | None = None,
                     overrides: Sequence[str] = (), epochs: float = 25.0, out: str | None = None,
                     features: str | None = None) -> tuple[TrainConfig, TrajectoryInfo]:
    """The :class:`TrainConfig` of ``dinoworld finetune`` (paper App. D.2 defaults), and the split and
    action statistics of ``data`` it was checked against (``trajectory_info`` with the config's seed and
    held-out fraction: hand it on to :func:`heldout_check_problem` and :func:`action_check`).

    Precedence: paper defaults < fine-tuning defaults (T=4, base size, validation on the held-out
    episodes, the init checkpoint's encoder) < ``config`` file < ``overrides`` < what the mode and
    data impose (``data.kind``/``source``, ``model.action_dim = A·f``, ``finetune.init``/``trainable``;
    ``data.features`` when ``features``, a feature cache of ``data``, is given).
    Unless given, ``stages`` is one stage at ``finetune.resolution`` px (224, the paper's) of
    ``steps_for_epochs(epochs)`` steps on the training split, and the warm-up is shortened to 10 % of
    the run (capped at the default).
    """
    env = str(env).lower()
    if env not in ENV_NAMES:
        raise UserError(f"unknown environment {env!r}; choose one of {', '.join(ENV_NAMES)}")
    if mode not in MODES:
        raise UserError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    root = Path(data).expanduser()
    if not root.is_dir():
        raise UserError(f"--data {data}: no such folder; write one with `dinoworld collect --env {env} "
                        f"--out {data}` or point at DINO-WM's dataset")
    ds = load_trajectories(root)
    if ds.env and ds.env != env:
        raise UserError(f"--env {env} but {root} holds {ds.env} trajectories; pass --env {ds.env} or other --data")
    if mode == "scratch" and init:
        raise UserError("--mode scratch trains from a random init; drop --init (or use --mode full / frozen)")
    if mode != "scratch" and not init:
        raise UserError(f"--mode {mode} starts from a pre-trained model: give --init CHECKPOINT")

    base: dict[str, Any] = {
        "out_dir": out or f"runs/finetune-{env}-{mode}",
        "data": {"kind": "trajectories", "source": str(root), "val_source": str(root), "num_frames": 4},
        "model": {"size": "base"},
    }
    init_folder = None
    if init:
        with naming_checkpoint(init):
            init_folder = checkpoint_folder(init)
            meta = read_meta(init_folder)
    if init_folder is not None:
        if meta.encoder.name != "unknown":
            base["model"]["encoder"] = meta.encoder.name
            if meta.encoder.weights:
                base["model"]["encoder_weights"] = meta.encoder.weights
    updates = _user_updates(config, overrides)
    cfg = merge(TrainConfig(), base)
    for u in updates:
        cfg = merge(cfg, u)
    if out:
        cfg = merge(cfg, {"out_dir": out})

    ft_updates: dict[str, Any] = {"init": str(init_folder or ""), "trainable": "actions" if mode == "frozen" else "all"}
    ft_updates["env"] = env
    action_dim = model_action_dim(ds.action_dim, cfg.data.frameskip)
    data_updates = {"kind": "trajectories", "source": str(root), **({"features": str(features)} if features else {})}
    cfg = merge(cfg, {"data": data_updates, "model": {"action_dim": action_dim},
                      "finetune": ft_updates})
    if init_folder is not None:
        have = int(meta.predictor.get("action_dim", 0))
        if have not in (0, action_dim):
            raise UserError(f"--init {init} already has {have}-d action blocks but the data needs {action_dim} "
                            f"({ds.action_dim}-d actions x frameskip {cfg.data.frameskip})")

    info = run_split(cfg)
    _check_windows(cfg, info)
    if not _user_set(updates, "stages"):
        steps = steps_for_epochs(info.lengths, epochs, cfg.optim.batch_size, cfg.data.num_frames,
                                 cfg.data.frameskip, episodes=info.train)
        cfg = merge(cfg, {"stages": [Stage(steps, cfg.finetune.resolution)]})
    if not _user_set(updates, "optim", "warmup_steps"):
        warmup = min(cfg.optim.warmup_steps, max(1, math.ceil(0.1 * cfg.total_steps)))
        cfg = merge(cfg, {"optim": {"warmup_steps": warmup}})
    return cfg, info


def _windows(cfg: TrainConfig, info: TrajectoryInfo, episodes: Sequence[int]) -> int:
    return sum(num_windows(info.lengths[i], cfg.data.num_frames, cfg.data.frameskip) for i in episodes)


def _clip_needs(cfg: TrainConfig) -> str:
    d = cfg.data
    need = (d.num_frames - 1) * d.frameskip
    return f"a clip of {d.num_frames} frames at frameskip {d.frameskip} needs {need} actions"


def _check_windows(cfg: TrainConfig, info: TrajectoryInfo) -> None:
    """Refuse a collection with no training clip window, or (when validating on its held-out split) no held-out one."""
    root = info.dataset.root
    if _windows(cfg, info, info.train) == 0:
        longest = max(info.lengths[i] for i in info.train)
        raise UserError(f"{root} is too small to fine-tune on: its {len(info.train)} training episodes hold at most "
                        f"{longest} actions and {_clip_needs(cfg)}; collect longer episodes (--steps) or lower "
                        "data.num_frames / data.frameskip")
    if cfg.data.val_source and same_folder(cfg.data.val_source, root) and _windows(cfg, info, info.val) == 0:
        raise UserError(f"{root} has no held-out clip to validate on ({len(info.val)} of {len(info.lengths)} episodes "
                        f"held out with finetune.val_fraction={cfg.finetune.val_fraction}; {_clip_needs(cfg)}); "
                        "collect more episodes, raise finetune.val_fraction, or set data.val_source='' to skip "
                        "validation")


def heldout_check_problem(cfg: TrainConfig, info: TrajectoryInfo | None = None) -> str | None:
    """Why the held-out action check at the end of ``dinoworld finetune`` (batches of ``optim.micro_batch_size``
    clips of the held-out episodes, incomplete batches dropped) would get no batch of at least 2 clips, in one
    line with what to change; None when it gets one. ``info``: ``trajectory_info`` of ``data.source`` with the
    config's seed and held-out fraction (read from the folder when not given)."""
    d, batch, vf = cfg.data, cfg.optim.micro_batch_size, cfg.finetune.val_fraction
    if vf <= 0:
        return "no episode is held out (finetune.val_fraction=0)"
    if batch < 2:
        return (f"optim.micro_batch_size={batch}: the check compares the actions of the clips of a batch and needs "
                "at least 2; set optim.micro_batch_size=2 or more")
    if info is None:
        info = run_split(cfg)
    have = _windows(cfg, info, info.val)
    if have >= batch:
        return None
    n = len(info.lengths)
    per_episode = _windows(cfg, info, range(n)) / n
    text = (f"the {len(info.val)} held-out episodes of {n} (finetune.val_fraction={vf}) give {have} clips of "
            f"{d.num_frames} frames at frameskip {d.frameskip}, fewer than one batch of {batch} "
            "(optim.micro_batch_size)")
    if per_episode == 0:
        return f"{text}; collect longer episodes or lower optim.micro_batch_size"
    need = math.ceil(batch / per_episode)
    total = max(n + 1, math.ceil((need - 0.5) / vf))
    while len(split_episodes(total, vf, cfg.split_seed)[1]) < need:
        total += 1
    return (f"{text}; it needs about {need} held-out episodes: collect about {total} episodes, raise "
            f"finetune.val_fraction or lower optim.micro_batch_size")


def action_check(cfg: TrainConfig, model: Any, batches: int, info: TrajectoryInfo | None = None) -> dict[str, Any]:
    """Does the fine-tuned ``model`` use its actions? Its held-out errors with true vs shuffled actions
    (:func:`~dinoworld.eval.actions.action_conditioned_errors`) on up to ``batches`` batches of
    ``optim.micro_batch_size`` clips of the held-out episodes of ``data.source``, at the last stage's
    resolution, plus ``gap`` (:func:`~dinoworld.eval.actions.action_verdict`).

    The data are resolved from ``cfg``: with ``data.features`` the features come from the cache and no
    encoder is loaded. ``info``: ``trajectory_info`` of ``data.source`` (as :func:`prepare_finetune`
    gives it), read from the folder when not given.
    """
    stream, encoder = _heldout(cfg, model, info)
    errs = action_conditioned_errors(model, stream, encoder, batch_size=cfg.optim.micro_batch_size,
                                     max_batches=batches)
    errs["gap"], _ = action_verdict(errs)
    return errs


def context_check(cfg: TrainConfig, model: Any, batches: int, contexts: Sequence[int],
                  info: TrajectoryInfo | None = None) -> dict[str, Any]:
    """:func:`~dinoworld.eval.actions.context_errors` on the held-out clips :func:`action_check` reads
    (``cfg.data.num_frames`` long: at least ``max(contexts)`` + the targets)."""
    stream, encoder = _heldout(cfg, model, info)
    return context_errors(model, stream, encoder, contexts=contexts, batch_size=cfg.optim.micro_batch_size,
                          max_batches=batches)


def _heldout(cfg: TrainConfig, model: Any, info: TrajectoryInfo | None) -> tuple[Any, Any]:
    """The held-out clip stream of ``cfg`` at its last stage's resolution, and the encoder (None from a cache)."""
    data = DataSource.resolve(cfg, module_device(model), trajectory=info)
    return data.heldout_stream(cfg.stages[-1].resolution, seed=VAL_SEED), data.encoder


def action_check_lines(errs: dict[str, Any]) -> list[str]:
    """The lines that tell :func:`action_check`'s result: teacher-forced errors, self-fed errors, verdict."""
    return [f"held-out next-latent loss: true actions {errs['true']:.5g}, shuffled {errs['shuffled']:.5g}, "
            f"copy-last {errs['copy_last']:.5g}, context-mean {errs['context_mean']:.5g} ({errs['clips']} clips)",
            f"self-fed from one frame (as planning rolls out): true actions {errs['self_fed_true']:.5g}, "
            f"shuffled {errs['self_fed_shuffled']:.5g}, copy-first (= the context mean) {errs['copy_first']:.5g}",
            action_verdict(errs)[1]]


def predictor_size(cfg: TrainConfig) -> str:
    """The size of the predictor a run trains: ``model.size``, or with ``finetune.init`` the init
    checkpoint's (the name in ``SIZES`` its architecture matches, else "pre-trained")."""
    if not cfg.finetune.init:
        return cfg.model.size
    arch = read_meta(checkpoint_folder(cfg.finetune.init)).predictor
    return next((n for n, s in SIZES.items() if all(arch.get(k) == v for k, v in s.items())), "pre-trained")


#: the config ``finetune`` points CPU-only users to
CPU_FINETUNE_CONFIG = "configs/finetune-cpu.yaml"


def cpu_warning(cfg) -> str | None:
    """One line when a fine-tuning config is far too big for a machine without a GPU, else None."""
    import torch

    if torch.cuda.is_available() or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return None
    res, size = cfg.stages[-1].resolution, predictor_size(cfg)  # with an init, its size, whatever model.size says
    if size in ("tiny", "small") and res <= 112:
        return None
    return (f"warning: no GPU found, and the {size} predictor at {res} px is sized for GPUs (days on a CPU); for a "
            f"CPU-sized run add --config {CPU_FINETUNE_CONFIG} (tiny predictor, pixel-pyramid encoder, 56 px)")


__all__ = ["CPU_FINETUNE_CONFIG", "MODES", "action_check", "action_check_lines", "context_check", "cpu_warning",
           "finetune_config", "heldout_check_problem", "predictor_size", "prepare_finetune"]
