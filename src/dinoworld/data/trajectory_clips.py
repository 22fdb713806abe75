"""Frameskipped clips with actions from offline trajectories (paper §3.3, §4.3, App. D.2).

A clip of ``T`` frames with frameskip ``f`` starting at ``s`` holds the frames ``x_s, x_{s+f}, ..,
x_{s+(T-1)f}`` and ``T-1`` model actions (:mod:`dinoworld.model.actions`: raw actions grouped by
``f`` and normalised with the *training* episodes' statistics). The frames in between are neither
given nor predicted ("skipped, not stacked", App. D.2). Frame ``i`` is at ``i / CONTROL_RATE_HZ``.

Split. Episodes are split at random (``seed``) into ``1 - val_fraction`` / ``val_fraction``
(paper: 90 % / 10 %); the episode ids of both parts are saved with the checkpoint.

Epochs. One epoch is every window (every start ``s``, stride 1) of every training episode once,
in a random order: the windows of DINO-WM's trajectory slicer, which the paper follows.
``steps_for_epochs`` turns "25 epochs" into optimizer steps: ``ceil(25 · windows / batch_size)``.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import UserError
from ..model.actions import CONTROL_RATE_HZ, group_actions, normalize_actions
from .stream import Outcome, ResumableStream
from .trajectories import TrajectoryDataset, episode_actions, episode_arrays, episode_ids, load_trajectories
from .trajectory_cache import TrajectoryFeatures
from .video import resize_crop

#: decoded episodes kept in memory per process (a small dataset is then read once)
EPISODE_CACHE_BYTES = 256 * 2**20


def num_windows(length: int, num_frames: int, frameskip: int) -> int:
    """Clip starts in an episode of ``length`` actions (``length + 1`` frames)."""
    return max(0, int(length) - (int(num_frames) - 1) * int(frameskip) + 1)


def clip_frame_indices(start: int, num_frames: int, frameskip: int) -> np.ndarray:
    """Frame indices ``start, start + f, ..`` of a clip."""
    return int(start) + int(frameskip) * np.arange(int(num_frames))


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
        raise UserError(f"the held-out fraction (finetune.val_fraction) must be in [0, 1), got {val_fraction}")
    n_val = int(round(n * val_fraction))
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    order = np.random.default_rng([int(seed), 0x5B1]).permutation(n)
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


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
    def world_version(self) -> str:
        return getattr(self.dataset, "world_version", "")

    @property
    def raw_action_dim(self) -> int:
        return int(self.dataset.action_dim)


def trajectory_info(source: str | os.PathLike, seed: int, val_fraction: float,
                    train_episodes: int = 0) -> TrajectoryInfo:
    """Split and action statistics of a trajectory folder.

    ``train_episodes > 0`` trains on that many of the training split's episodes, drawn with the seed
    (fewer are a subset of more); the held-out split is the same whatever the count.

    It reads every episode's actions: compute it once and hand it on (a training run keeps it in
    its ``DataSource``; :func:`trajectory_clip_stream` takes it as ``info``).
    """
    root = Path(source).expanduser()
    if not root.is_dir():
        raise UserError(f"trajectory folder {root} does not exist; write one with `dinoworld collect` "
                        "or point at DINO-WM's dataset")
    ds = load_trajectories(root)
    if len(ds) == 0:
        raise UserError(f"{root} holds no episodes; collect some first")
    actions = [episode_actions(ds, i) for i in range(len(ds))]
    train, val = split_episodes(len(ds), val_fraction, seed)
    if train_episodes:
        if train_episodes > len(train):
            raise UserError(f"finetune.train_episodes={train_episodes} but {root} has {len(train)} training episodes "
                            f"({len(ds)} less the {len(val)} held out); lower it, or set 0 for all")
        order = np.random.default_rng([int(seed), 0x7A1]).permutation(len(train))
        train = sorted(train[i] for i in order[:train_episodes])
    flat = np.concatenate([actions[i] for i in train], axis=0).astype(np.float64)
    if flat.shape[0] == 0:
        raise UserError(f"the training episodes of {root} hold no actions")
    std = flat.std(axis=0)
    std = np.where(std > 1e-6, std, 1.0)  # a constant action dimension is only centred
    return TrajectoryInfo(ds, episode_ids(ds), [int(a.shape[0]) for a in actions], train, val,
                          flat.mean(axis=0).tolist(), std.tolist(), int(seed), float(val_fraction))


# ------------------------------------------------------------------------------ the stream
class TrajectoryClipDataset(ResumableStream):
    """Resumable stream of frameskipped clips with concatenated, normalised actions.

    Work units are clip windows ``(episode position, start)``, shuffled per epoch and dealt to
    ranks and DataLoader workers by :class:`ResumableStream`. Yields dicts::

        frames   (T, 3, r, r) float32 in [0, 1]; or, with ``features`` (a
                 :class:`~dinoworld.data.trajectory_cache.TrajectoryFeatures`),
        features (T, H, W, D) float32 read from the cache
        times    (T,) float32      frame index / control rate (seconds)
        actions  (T-1, f·A) float32 normalised; actions[k] leads from frame k to frame k+1
        episode  int               episode id (file number, or index for DINO-WM data)
        start    int               first frame index
        source   str
        skipped  int, data_pos (5,) as in :class:`ResumableStream`
    """

    def __init__(self, info: TrajectoryInfo, episodes: Sequence[int], num_frames: int = 4, frameskip: int = 5,
                 size: int = 224, seed: int = 0, rank: int = 0, world_size: int = 1, loop: bool = True,
                 shuffle: bool = True, policy: str = "crop", control_rate_hz: float = CONTROL_RATE_HZ,
                 cache_bytes: int = EPISODE_CACHE_BYTES, features: Any = None):
        super().__init__(seed, rank, world_size, loop, shuffle)
        if num_frames < 2 or frameskip < 1:
            raise UserError(f"need data.num_frames >= 2 and data.frameskip >= 1, got {num_frames} and {frameskip}")
        self.info, self.episodes = info, [int(e) for e in episodes]
        self.num_frames, self.frameskip, self.size = int(num_frames), int(frameskip), int(size)
        self.policy, self.rate, self.cache_bytes = policy, float(control_rate_hz), int(cache_bytes)
        self.features = features
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
        arrays = (self.features.episode(pos), episode_actions(self.info.dataset, pos)) \
            if self.features is not None else episode_arrays(self.info.dataset, pos)
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
        frames, actions = self._episode(pos)
        idx = clip_frame_indices(start, self.num_frames, self.frameskip)
        raw = actions[start : start + (self.num_frames - 1) * self.frameskip]  # (f(T-1), A)
        acts = normalize_actions(group_actions(raw, self.frameskip), self.info.mean, self.info.std)
        pixels = {"features": torch.from_numpy(frames[idx].astype(np.float32))} if self.features is not None \
            else {"frames": resize_crop(frames[idx], self.size, self.policy)}  # (T, H, W, D) or (T, 3, r, r)
        return {
            **pixels,
            "times": torch.from_numpy((idx / self.rate).astype(np.float32)),  # (T,)
            "actions": torch.from_numpy(np.ascontiguousarray(acts, np.float32)),  # (T-1, f*A)
            "episode": self.info.episode_ids[pos],
            "start": int(start),
            "source": f"{self.info.dataset.root}#{self.info.episode_ids[pos]}@{start}",
        }

    def _process(self, unit: Any, epoch: int, gpos: int, first_member: int) -> Iterator[Outcome]:
        if first_member > 0:  # consumed before a resume
            return
        pos, start = int(unit[0]), int(unit[1])
        yield Outcome(0, f"episode {self.info.episode_ids[pos]}", self.clip(pos, start))


def same_folder(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    try:
        return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()
    except OSError:
        return str(a) == str(b)


def trajectory_clip_stream(source: str | os.PathLike, *, train_source: str | os.PathLike | None = None,
                           split_seed: int = 0, val_fraction: float = 0.1, val: bool = False,
                           num_frames: int = 4, frameskip: int = 5, size: int = 224, seed: int = 0,
                           rank: int = 0, world_size: int = 1, policy: str = "crop",
                           features: str | os.PathLike | TrajectoryFeatures | None = None,
                           info: TrajectoryInfo | None = None,
                           source_info: TrajectoryInfo | None = None) -> TrajectoryClipDataset:
    """Clips of ``source`` with actions normalised by the statistics of ``train_source``'s training split.

    ``val=False``: the training episodes of ``source`` (an endless stream). ``val=True``: its
    held-out episodes, or every episode when ``source`` is another folder than ``train_source``;
    one pass. ``train_source`` defaults to ``source``. ``features``: a feature cache of ``source``
    (:mod:`dinoworld.data.trajectory_cache`; its folder or the opened cache), read instead of
    decoding and encoding the frames. ``info`` (``trajectory_info(train_source, split_seed,
    val_fraction)``) and ``source_info`` (``trajectory_info(source, split_seed, 0.0)``, for another
    folder) are read from the folders when not given. A cache given as a folder is checked here against
    ``source`` and the frame size; an opened one is taken as checked (``DataSource`` checks it once).
    """
    train_source = source if train_source is None else train_source
    if info is None:
        info = trajectory_info(train_source, split_seed, val_fraction)
    if same_folder(source, train_source):
        episodes = info.val if val else info.train
        if not episodes:
            raise UserError(f"no {'held-out' if val else 'training'} episodes in {source} "
                            f"(held-out fraction {val_fraction}, {len(info.lengths)} episodes)"
                            + ("; set data.val_source='' to skip validation" if val else ""))
        target = info
    else:
        other = source_info if source_info is not None else trajectory_info(source, split_seed, 0.0)
        if other.raw_action_dim != info.raw_action_dim:
            raise UserError(f"{source} has {other.raw_action_dim}-d actions but {train_source} has "
                            f"{info.raw_action_dim}-d")
        # another folder: its own episodes, normalised with the training statistics
        target = replace(other, mean=info.mean, std=info.std)
        episodes = list(range(len(other.lengths)))
    cache = features or None  # "" (the config's default) is no cache
    if cache is not None and not isinstance(cache, TrajectoryFeatures):  # a folder: open and check it here
        cache = TrajectoryFeatures(cache)
        cache.check(target.dataset.root, target.episode_ids, size, policy)
    return TrajectoryClipDataset(
        target, episodes, num_frames=num_frames, frameskip=frameskip, size=size, seed=seed, rank=rank,
        world_size=world_size, loop=not val, shuffle=True, policy=policy, features=cache)


__all__ = [
    "EPISODE_CACHE_BYTES", "TrajectoryClipDataset", "TrajectoryInfo", "clip_frame_indices", "num_windows",
    "split_episodes", "steps_for_epochs", "trajectory_clip_stream", "trajectory_info",
]
