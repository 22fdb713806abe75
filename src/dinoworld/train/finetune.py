"""Action-conditioned fine-tuning on offline trajectories (paper §3.3, §4.3, App. D.2).

Clips. An episode has frames ``x_0 .. x_L`` and actions ``a_0 .. a_{L-1}`` (``a_t`` leads from
``x_t`` to ``x_{t+1}``). A clip of ``T`` frames with frameskip ``f`` starting at ``s`` holds the
frames ``x_s, x_{s+f}, .., x_{s+(T-1)f}`` and ``T-1`` model-level actions; model action ``k`` is the
concatenation ``[a_{s+kf}, .., a_{s+kf+f-1}]`` (width ``A·f``, raw action ``j`` of the group in
columns ``j·A .. (j+1)·A``). The frames in between are neither given nor predicted ("skipped,
not stacked", App. D.2). Each raw action dimension is normalised with the mean / std of all
actions of the *training* episodes; the same statistics are tiled ``f`` times for the
concatenation, and saved in the checkpoint (``action_norm``) so planning normalises identically.

Time. Trajectories have no wall clock; frame ``i`` gets the timestamp ``i / CONTROL_RATE_HZ``
with a nominal 10 Hz for every environment (the envs' ``render_fps``; PushT's control rate in
DINO-WM). With ``f = 5`` model steps are 0.5 s apart, inside the pre-training gap range.

Split. Episodes are split at random (``seed``) into ``1 - val_fraction`` / ``val_fraction``
(paper: 90 % / 10 %); the episode ids of both parts are saved with the checkpoint.

Epochs. One epoch is every window (every start ``s``, stride 1) of every training episode once,
in a random order: the windows of DINO-WM's trajectory slicer, which the paper follows.
``steps_for_epochs`` turns "25 epochs" into optimizer steps: ``ceil(25 · windows / batch_size)``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..cli import verb
from ..data.sources import ResumableStream, _Outcome
from ..data.trajectories import NpzTrajectories, TrajectoryDataset, episode_path, load_trajectories
from ..errors import UserError
from .config import Stage, TrainConfig

#: nominal control rate of every environment: frame ``i`` is at ``i / 10`` seconds
CONTROL_RATE_HZ = 10.0
#: fine-tuning modes of the paper (Table 4): random init, frozen + action blocks, full fine-tune
MODES = ("scratch", "frozen", "full")
#: decoded episodes kept in memory per process (a small dataset is then read once)
EPISODE_CACHE_BYTES = 256 * 2**20


# ------------------------------------------------------------------------------ clip arithmetic
def num_windows(length: int, num_frames: int, frameskip: int) -> int:
    """Clip starts in an episode of ``length`` actions (``length + 1`` frames)."""
    return max(0, int(length) - (int(num_frames) - 1) * int(frameskip) + 1)


def clip_frame_indices(start: int, num_frames: int, frameskip: int) -> np.ndarray:
    """Frame indices ``start, start + f, ..`` of a clip."""
    return int(start) + int(frameskip) * np.arange(int(num_frames))


def group_actions(actions: np.ndarray | torch.Tensor, frameskip: int):
    """Raw actions ``(..., n·f, A)`` -> model actions ``(..., n, f·A)`` (consecutive ones concatenated)."""
    *lead, n, a = actions.shape
    if n % frameskip:
        raise UserError(f"{n} actions cannot be grouped by frameskip {frameskip}")
    return actions.reshape(*lead, n // frameskip, frameskip * a)


def normalize_actions(actions: np.ndarray | torch.Tensor, mean: Sequence[float], std: Sequence[float]):
    """Normalise model actions ``(..., f·A)`` (or raw ``(..., A)``) with per-raw-dimension stats."""
    mean_a, std_a = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    reps = actions.shape[-1] // mean_a.shape[0]
    if reps * mean_a.shape[0] != actions.shape[-1]:
        raise UserError(f"actions of width {actions.shape[-1]} do not fit {mean_a.shape[0]}-d action stats")
    m, s = np.tile(mean_a, reps), np.tile(std_a, reps)
    if isinstance(actions, torch.Tensor):
        return (actions - actions.new_tensor(m)) / actions.new_tensor(s)
    return ((actions - m) / s).astype(np.float32)


def steps_for_epochs(dataset: TrajectoryDataset | Sequence[int], epochs: float, batch_size: int,
                     num_frames: int, frameskip: int, episodes: Iterable[int] | None = None) -> int:
    """Optimizer steps for ``epochs`` passes over every clip window (at least 1).

    ``dataset`` is a :class:`TrajectoryDataset` or a list of episode lengths (actions per episode);
    ``episodes`` restricts the count to those positions (e.g. the training split).
    """
    lengths = dataset if not isinstance(dataset, TrajectoryDataset) else [
        dataset.length(i) for i in range(len(dataset))]
    picked = range(len(lengths)) if episodes is None else episodes
    windows = sum(num_windows(lengths[i], num_frames, frameskip) for i in picked)
    return max(1, math.ceil(float(epochs) * windows / int(batch_size)))


def split_episodes(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Random ``(train, val)`` positions of ``n`` episodes; both sorted; ``round(n·val_fraction)`` held out.

    At least one episode is held out when ``val_fraction > 0`` and ``n >= 2``.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"finetune.val_fraction must be in [0, 1), got {val_fraction}")
    n_val = int(round(n * val_fraction))
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    order = np.random.default_rng([int(seed), 0x5B1]).permutation(n)
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


# ------------------------------------------------------------------------------ dataset summary
def _episode_ids(ds: TrajectoryDataset) -> list[int]:
    return list(ds.episode_ids) if isinstance(ds, NpzTrajectories) else list(range(len(ds)))


def _episode_actions(ds: TrajectoryDataset, i: int) -> np.ndarray:
    if isinstance(ds, NpzTrajectories):  # reads only the actions member of the npz
        path = episode_path(ds.root, ds.episode_ids[i])
        try:
            with np.load(path) as z:
                return np.asarray(z["actions"], np.float32)
        except (OSError, ValueError, EOFError, KeyError) as exc:
            raise UserError(f"cannot read {path}: {exc}; delete it and re-run collect to redo it") from exc
    actions = getattr(ds, "actions", None)
    if actions is not None and hasattr(ds, "lengths"):  # DINO-WM layout: all actions in memory
        return np.asarray(actions[i, : ds.length(i)], np.float32)
    return np.asarray(ds.episode(i)["actions"], np.float32)


def _episode_arrays(ds: TrajectoryDataset, i: int) -> tuple[np.ndarray, np.ndarray]:
    """``(frames uint8 (L+1, H, W, 3), actions float32 (L, A))`` of episode position ``i``."""
    if isinstance(ds, NpzTrajectories):
        path = episode_path(ds.root, ds.episode_ids[i])
        try:
            with np.load(path) as z:
                frames, actions = z["frames"], z["actions"]
        except (OSError, ValueError, EOFError, KeyError) as exc:
            raise UserError(f"cannot read {path}: {exc}; delete it and re-run collect to redo it") from exc
    else:
        ep = ds.episode(i)
        frames, actions = ep["frames"], ep["actions"]
    if frames.shape[0] < actions.shape[0] + 1:
        raise UserError(f"episode {i} of {ds.root} has {frames.shape[0]} frames for {actions.shape[0]} actions")
    return frames, np.asarray(actions, np.float32)


@dataclass
class TrajectoryInfo:
    """What the stream, the checkpoint metadata and the CLI need to know about a trajectory folder."""

    dataset: TrajectoryDataset
    episode_ids: list[int]  # per position: file number (our format) or index (DINO-WM)
    lengths: list[int]  # actions per episode
    train: list[int]  # positions
    val: list[int]
    mean: list[float]  # per raw action dimension, over the training episodes
    std: list[float]
    seed: int
    val_fraction: float

    @property
    def env(self) -> str | None:
        return getattr(self.dataset, "env", None)

    @property
    def raw_action_dim(self) -> int:
        return int(self.dataset.action_dim)


_INFO_CACHE: dict[tuple, TrajectoryInfo] = {}


def trajectory_info(source: str | os.PathLike, seed: int, val_fraction: float) -> TrajectoryInfo:
    """Split and action statistics of a trajectory folder (cached per process)."""
    root = Path(source).expanduser()
    if not root.is_dir():
        raise UserError(f"trajectory folder {root} does not exist; write one with `dinoworld collect` "
                        "or point at DINO-WM's dataset")
    key = (str(root.resolve()), root.stat().st_mtime_ns, int(seed), float(val_fraction))
    if key in _INFO_CACHE:
        return _INFO_CACHE[key]
    ds = load_trajectories(root)
    if len(ds) == 0:
        raise UserError(f"{root} holds no episodes; collect some first")
    actions = [_episode_actions(ds, i) for i in range(len(ds))]
    train, val = split_episodes(len(ds), val_fraction, seed)
    flat = np.concatenate([actions[i] for i in train], axis=0).astype(np.float64)
    if flat.shape[0] == 0:
        raise UserError(f"the training episodes of {root} hold no actions")
    std = flat.std(axis=0)
    std = np.where(std > 1e-6, std, 1.0)  # a constant action dimension is only centred
    info = TrajectoryInfo(ds, _episode_ids(ds), [int(a.shape[0]) for a in actions], train, val,
                          flat.mean(axis=0).tolist(), std.tolist(), int(seed), float(val_fraction))
    _INFO_CACHE[key] = info
    return info


# ------------------------------------------------------------------------------ the stream
class TrajectoryClipDataset(ResumableStream):
    """Resumable stream of frameskipped clips with concatenated, normalised actions.

    Work units are clip windows ``(episode position, start)``, shuffled per epoch and dealt to
    ranks and DataLoader workers by :class:`ResumableStream`. Yields dicts::

        frames   (T, 3, r, r) float32 in [0, 1]
        times    (T,) float32      frame index / control rate (seconds)
        actions  (T-1, f·A) float32 normalised; actions[k] leads from frame k to frame k+1
        episode  int               episode id (file number, or index for DINO-WM data)
        start    int               first frame index
        source   str
        skipped  int, data_pos (3,) as in :class:`ResumableStream`
    """

    def __init__(self, info: TrajectoryInfo, episodes: Sequence[int], num_frames: int = 4, frameskip: int = 5,
                 size: int = 224, seed: int = 0, rank: int = 0, world_size: int = 1, loop: bool = True,
                 shuffle: bool = True, policy: str = "crop", control_rate_hz: float = CONTROL_RATE_HZ,
                 cache_bytes: int = EPISODE_CACHE_BYTES):
        super().__init__(seed, rank, world_size, loop, shuffle)
        if num_frames < 2 or frameskip < 1:
            raise UserError(f"need data.num_frames >= 2 and data.frameskip >= 1, got {num_frames} and {frameskip}")
        self.info, self.episodes = info, [int(e) for e in episodes]
        self.num_frames, self.frameskip, self.size = int(num_frames), int(frameskip), int(size)
        self.policy, self.rate, self.cache_bytes = policy, float(control_rate_hz), int(cache_bytes)
        rows = [(p, s) for p in self.episodes
                for s in range(num_windows(info.lengths[p], self.num_frames, self.frameskip))]
        if not rows:
            longest = max((info.lengths[p] for p in self.episodes), default=0)
            raise UserError(
                f"no clip fits in the {len(self.episodes)} episodes of {info.dataset.root} (longest: {longest} "
                f"actions; {self.num_frames} frames at frameskip {self.frameskip} need "
                f"{(self.num_frames - 1) * self.frameskip}); lower data.num_frames or data.frameskip")
        self.windows = np.asarray(rows, np.int64)  # (N, 2): episode position, start
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._cached = 0

    def __len__(self) -> int:
        """Windows per epoch (all ranks together)."""
        return int(self.windows.shape[0])

    def __getstate__(self) -> dict[str, Any]:  # workers start with an empty episode cache
        state = self.__dict__.copy()
        state["_cache"], state["_cached"] = OrderedDict(), 0
        return state

    def _units(self) -> np.ndarray:
        return self.windows

    def _describe(self) -> str:
        return f"{len(self.episodes)} episodes of {self.info.dataset.root}"

    def _episode(self, pos: int) -> tuple[np.ndarray, np.ndarray]:
        hit = self._cache.get(pos)
        if hit is not None:
            self._cache.move_to_end(pos)
            return hit
        arrays = _episode_arrays(self.info.dataset, pos)
        nbytes = arrays[0].nbytes + arrays[1].nbytes
        if nbytes <= self.cache_bytes:
            while self._cached + nbytes > self.cache_bytes and self._cache:
                _, old = self._cache.popitem(last=False)
                self._cached -= old[0].nbytes + old[1].nbytes
            self._cache[pos] = arrays
            self._cached += nbytes
        return arrays

    def clip(self, pos: int, start: int) -> dict[str, Any]:
        """The clip of episode position ``pos`` starting at frame ``start``."""
        from ..data import resize_crop

        frames, actions = self._episode(pos)
        idx = clip_frame_indices(start, self.num_frames, self.frameskip)
        raw = actions[start : start + (self.num_frames - 1) * self.frameskip]  # (f(T-1), A)
        acts = normalize_actions(group_actions(raw, self.frameskip), self.info.mean, self.info.std)
        return {
            "frames": resize_crop(frames[idx], self.size, self.policy),  # (T, 3, r, r)
            "times": torch.from_numpy((idx / self.rate).astype(np.float32)),  # (T,)
            "actions": torch.from_numpy(np.ascontiguousarray(acts, np.float32)),  # (T-1, f*A)
            "episode": self.info.episode_ids[pos],
            "start": int(start),
            "source": f"{self.info.dataset.root}#{self.info.episode_ids[pos]}@{start}",
        }

    def _process(self, unit: Any, epoch: int, gpos: int, first_member: int) -> Iterator[_Outcome]:
        if first_member > 0:  # consumed before a resume
            return
        pos, start = int(unit[0]), int(unit[1])
        yield _Outcome(0, f"episode {self.info.episode_ids[pos]}", self.clip(pos, start))


def _same_folder(a: str, b: str) -> bool:
    try:
        return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()
    except OSError:
        return a == b


def trajectory_stream(cfg: TrainConfig, source: str, resolution: int, env: Any, seed: int,
                      val: bool = False) -> TrajectoryClipDataset:
    """The training loop's stream for ``data.kind=trajectories``.

    The split and action statistics always come from ``cfg.data.source`` (seed ``cfg.seed``).
    ``val=False``: training episodes of ``source``. ``val=True``: its held-out episodes, or every
    episode when ``source`` is another folder than ``cfg.data.source``; one pass, fixed order.
    """
    d = cfg.data
    info = trajectory_info(d.source, cfg.seed, cfg.finetune.val_fraction)
    want = info.raw_action_dim * d.frameskip
    if cfg.model.action_dim and cfg.model.action_dim != want:
        raise UserError(f"model.action_dim={cfg.model.action_dim} but the data gives {info.raw_action_dim}-d actions "
                        f"x frameskip {d.frameskip} = {want}; set model.action_dim={want}")
    if not cfg.model.action_dim and not cfg.finetune.init:
        raise UserError(f"trajectory clips carry actions: set model.action_dim={want} "
                        f"({info.raw_action_dim}-d actions x frameskip {d.frameskip})")
    if _same_folder(source, d.source):
        episodes = info.val if val else info.train
        if not episodes:
            raise UserError(f"no {'held-out' if val else 'training'} episodes in {source} "
                            f"(finetune.val_fraction={cfg.finetune.val_fraction}, {len(info.lengths)} episodes)"
                            + ("; set data.val_source='' to skip validation" if val else ""))
        target = info
    else:
        other = trajectory_info(source, cfg.seed, 0.0)
        if other.raw_action_dim != info.raw_action_dim:
            raise UserError(f"{source} has {other.raw_action_dim}-d actions but {d.source} has {info.raw_action_dim}-d")
        # another folder: its own episodes, normalised with the training statistics
        target = TrajectoryInfo(other.dataset, other.episode_ids, other.lengths, other.train, other.val,
                                info.mean, info.std, info.seed, info.val_fraction)
        episodes = list(range(len(other.lengths)))
    return TrajectoryClipDataset(
        target, episodes, num_frames=d.num_frames, frameskip=d.frameskip, size=resolution, seed=seed,
        rank=env.rank, world_size=env.world_size, loop=not val, shuffle=True, policy=d.crop)


def trajectory_meta(cfg: TrainConfig) -> dict[str, Any]:
    """Metadata saved in the checkpoint's ``config.json`` so planning can rebuild actions exactly."""
    info = trajectory_info(cfg.data.source, cfg.seed, cfg.finetune.val_fraction)
    env = cfg.finetune.env or info.env
    return {
        "env": env,
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
        },
    }


# ------------------------------------------------------------------------------ evaluation
def _derangement(n: int, generator: torch.Generator) -> torch.Tensor:
    """A random permutation of ``range(n)`` with no fixed point (``n >= 2``)."""
    perm = torch.randperm(n, generator=generator)
    out = torch.empty_like(perm)
    out[perm] = perm.roll(1)
    return out


@torch.no_grad()
def action_conditioned_errors(model: Any, data: Any, encoder: Any = None, *, batch_size: int = 8,
                              max_batches: int | None = None, seed: int = 0, device: Any = None) -> dict[str, float]:
    """Held-out next-latent error with the true actions vs actions shuffled across the batch.

    ``model``: a :class:`~dinoworld.model.Predictor` or a :class:`~dinoworld.world_model.WorldModel`
    (its encoder is used unless ``encoder`` is given). ``data``: an iterable of collated batches, or
    a stream (e.g. ``trajectory_stream(..., val=True)``) read in batches of ``batch_size``.
    Teacher forcing as in training: frames 2..T predicted from the earlier ones. Returns the mean
    smooth-L1 loss with ``true`` actions, ``shuffled`` actions (each clip gets another clip's
    actions), and the ``copy_last`` baseline, plus the number of ``clips``.
    """
    from torch.utils.data import DataLoader, IterableDataset

    from ..model import prediction_loss
    from .loop import Featurizer

    predictor = getattr(model, "predictor", model)
    encoder = encoder if encoder is not None else getattr(model, "encoder", None)
    device = torch.device(device) if device is not None else next(predictor.parameters()).device
    if isinstance(data, IterableDataset):
        data = DataLoader(data, batch_size=batch_size, drop_last=True, num_workers=0)
    featurize = Featurizer(encoder, device)
    gen = torch.Generator().manual_seed(seed)
    was_training = predictor.training
    predictor.eval()
    sums, clips = torch.zeros(3, dtype=torch.float64), 0
    try:
        for i, batch in enumerate(data):
            if max_batches is not None and i >= max_batches:
                break
            feats, times, actions = featurize(batch)
            if actions is None:
                raise UserError("these clips carry no actions")
            b = feats.shape[0]
            if b < 2:
                continue
            target = feats[:, 1:]
            true = predictor(feats, times, times[:, 1:], actions)
            shuffled = predictor(feats, times, times[:, 1:], actions[_derangement(b, gen).to(device)])
            losses = [prediction_loss(true, target), prediction_loss(shuffled, target),
                      prediction_loss(feats[:, :-1], target)]
            sums += b * torch.tensor([x.item() for x in losses], dtype=torch.float64)
            clips += b
    finally:
        predictor.train(was_training)
    if clips == 0:
        raise UserError("no batch of at least 2 clips to compare actions on")
    mean = (sums / clips).tolist()
    return {"true": mean[0], "shuffled": mean[1], "copy_last": mean[2], "clips": clips}


# ------------------------------------------------------------------------------ configuration
def _resolve_init(init: str) -> Path:
    """A checkpoint folder, or a run folder (its latest checkpoint)."""
    from .checkpoint import CONFIG_FILE, MODEL_FILE, latest_checkpoint

    p = Path(init).expanduser()
    if not p.exists():
        raise UserError(f"--init {init}: no such checkpoint folder")
    if not (p / CONFIG_FILE).is_file() and latest_checkpoint(p) is not None:
        p = latest_checkpoint(p)
    if not (p / CONFIG_FILE).is_file() or not (p / MODEL_FILE).is_file():
        raise UserError(f"--init {init} is not a dinoworld checkpoint (needs {CONFIG_FILE} and {MODEL_FILE})")
    return p


def _user_updates(config: str | None, overrides: Sequence[str]) -> list[dict[str, Any]]:
    """The YAML file's and the dotted overrides' nested dicts, in order of application."""
    import yaml

    from ..config import parse_overrides

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
                    overrides: Sequence[str] = (), epochs: float = 25.0, out: str | None = None) -> TrainConfig:
    """The :class:`TrainConfig` of ``dinoworld finetune`` (paper App. D.2 defaults).

    Precedence: paper defaults < fine-tuning defaults (T=4, base size, validation on the held-out
    episodes, the init checkpoint's encoder) < ``config`` file < ``overrides`` < what the mode and
    data impose (``data.kind``/``source``, ``model.action_dim = A·f``, ``finetune.init``/``trainable``).
    Unless given, ``stages`` is one 224-px stage of ``steps_for_epochs(epochs)`` steps on the training
    split, and the warm-up is shortened to 10 % of the run (capped at the default).
    """
    from ..config import merge
    from ..envs import ENV_NAMES

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
    init_folder = _resolve_init(init) if init else None
    if init_folder is not None:
        meta = json.loads((init_folder / "config.json").read_text())
        enc = meta.get("encoder") or {}
        if enc.get("name") and enc["name"] != "unknown":
            base["model"]["encoder"] = enc["name"]
            if enc.get("weights"):
                base["model"]["encoder_weights"] = enc["weights"]
    updates = _user_updates(config, overrides)
    cfg = merge(TrainConfig(), base)
    for u in updates:
        cfg = merge(cfg, u)
    if out:
        cfg = merge(cfg, {"out_dir": out})

    ft_updates: dict[str, Any] = {"init": str(init_folder or ""), "trainable": "actions" if mode == "frozen" else "all"}
    ft_updates["env"] = env
    action_dim = ds.action_dim * cfg.data.frameskip
    cfg = merge(cfg, {"data": {"kind": "trajectories", "source": str(root)}, "model": {"action_dim": action_dim},
                      "finetune": ft_updates})
    if init_folder is not None:
        have = int((meta.get("predictor") or {}).get("action_dim", 0))
        if have not in (0, action_dim):
            raise UserError(f"--init {init} already has {have}-d action blocks but the data needs {action_dim} "
                            f"({ds.action_dim}-d actions x frameskip {cfg.data.frameskip})")

    if not _user_set(updates, "stages"):
        info = trajectory_info(root, cfg.seed, cfg.finetune.val_fraction)
        steps = steps_for_epochs(info.lengths, epochs, cfg.optim.batch_size, cfg.data.num_frames,
                                 cfg.data.frameskip, episodes=info.train)
        cfg = merge(cfg, {"stages": [Stage(steps, 224)]})
    if not _user_set(updates, "optim", "warmup_steps"):
        warmup = min(cfg.optim.warmup_steps, max(1, math.ceil(0.1 * cfg.total_steps)))
        cfg = merge(cfg, {"optim": {"warmup_steps": warmup}})
    return cfg


# ------------------------------------------------------------------------------ command line
def _finetune_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", required=True, help="environment of the trajectories: pusht, wall or pointmaze")
    p.add_argument("--data", required=True, help="trajectory folder (`dinoworld collect` output or DINO-WM's layout)")
    p.add_argument("--mode", required=True, choices=MODES,
                   help="scratch: random init, all trained; frozen: --init frozen, action blocks trained; "
                        "full: --init, everything trained")
    p.add_argument("--init", help="pre-trained checkpoint folder (or run folder: its latest checkpoint)")
    p.add_argument("--config", help="YAML file of overrides (same keys as `dinoworld train`)")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. optim.batch_size=256 data.num_workers=8")
    p.add_argument("--epochs", type=float, default=25.0,
                   help="passes over every clip window of the training episodes (default 25, as the paper); "
                        "ignored when stages=... is given")
    p.add_argument("--out", help="run folder (default runs/finetune-ENV-MODE); rerun to resume")
    p.add_argument("--no-resume", action="store_true", help="ignore checkpoints already in the run folder")
    p.add_argument("--max-steps", type=int, help="stop after this global step (the schedule is unchanged)")
    p.add_argument("--check-batches", type=int, default=8,
                   help="held-out batches for the true-vs-shuffled-actions check at the end (0 = skip)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object last")


@verb("finetune", "action-conditioned fine-tuning on env trajectories (scratch, frozen or full)",
      "dinoworld finetune --env wall --data data/wall --mode frozen --init runs/base/checkpoints/step_00350000")(
    _finetune_args)
def run_finetune(args: argparse.Namespace) -> int:
    from ..encoders import load_encoder
    from .distributed import Dist
    from .loop import train

    cfg = finetune_config(args.env, args.data, args.mode, init=args.init, config=args.config,
                          overrides=args.overrides, epochs=args.epochs, out=args.out)
    print(f"finetune {args.mode} on {args.env}: {cfg.total_steps} steps of {cfg.optim.batch_size} clips "
          f"({cfg.data.num_frames} frames, frameskip {cfg.data.frameskip}, actions {cfg.model.action_dim}-d)")
    summary = train(cfg, resume=not args.no_resume, max_steps=args.max_steps, return_model=True)
    model = summary.pop("model")
    if "val/loss" in summary:
        print(f"final val loss {summary['val/loss']:.4f} vs copy-last {summary['val/copy_last']:.4f}")
    single = int(os.environ.get("WORLD_SIZE", "1")) == 1
    if args.check_batches > 0 and single and cfg.finetune.val_fraction > 0:
        device = next(model.parameters()).device
        encoder = load_encoder(cfg.model.encoder, weights=cfg.model.encoder_weights, device=device)
        resolution = cfg.stages[-1].resolution
        stream = trajectory_stream(cfg, cfg.data.source, resolution, Dist(), seed=12345, val=True)
        errs = action_conditioned_errors(model, stream, encoder, batch_size=cfg.optim.micro_batch_size,
                                         max_batches=args.check_batches)
        summary["action_check"] = errs
        print(f"held-out next-latent loss: true actions {errs['true']:.5g}, shuffled {errs['shuffled']:.5g}, "
              f"copy-last {errs['copy_last']:.5g} ({errs['clips']} clips)")
    print(f"step {summary['step']}: checkpoint {summary['checkpoint']}")
    if args.json:
        print(json.dumps(summary))
    return 0


__all__ = [
    "CONTROL_RATE_HZ", "MODES", "TrajectoryClipDataset", "TrajectoryInfo", "action_conditioned_errors",
    "clip_frame_indices", "finetune_config", "group_actions", "normalize_actions", "num_windows",
    "split_episodes", "steps_for_epochs", "trajectory_info", "trajectory_meta", "trajectory_stream",
]
