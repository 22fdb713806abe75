"""Feature cache of a trajectory folder: every frame encoded once, then fine-tuning reads features.

Fine-tuning on raw frames decodes, resizes and encodes every frame of every clip at every step.
The frozen encoder gives the same features each time, so ``dinoworld encode TRAJECTORY_FOLDER``
encodes each frame once into a folder that ``finetune --features FOLDER`` (``data.features``)
reads; the trajectory folder still gives the actions, the split and the action statistics.

Layout::

    features.npy   (N, H, W, D) float16   frames 0..L of every episode, episode after episode
    progress.json  while writing: the settings and how many episodes are done (resume point)
    features.json  written last: settings, feature shape, per-episode ids, offsets and frame counts

The settings name the collection (its path and :func:`collection_fingerprint`), the encoder, the
frame size and the resize policy; a reader refuses a cache whose collection, encoder or size differ
from the run's. An interrupted ``encode`` resumes after the last finished episode chunk.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..devices import module_device
from ..errors import UserError
from ..files import atomic_write_json
from ..progress import progress_bar
from .trajectories import collection_fingerprint, episode_arrays, episode_ids, load_trajectories
from .video import resize_crop

INDEX_FILE = "features.json"
PROGRESS_FILE = "progress.json"
ARRAY_FILE = "features.npy"
VERSION = 1


def is_trajectory_feature_cache(path: str | os.PathLike) -> bool:
    """A folder finished by :func:`encode_trajectories`."""
    return (Path(path) / INDEX_FILE).is_file()


@dataclass
class TrajectoryCacheSummary:
    """What :func:`encode_trajectories` did."""

    out_dir: str
    num_episodes: int
    num_frames: int
    episodes_encoded: int  # by this run (the rest by an earlier, interrupted one)
    feature_shape: tuple[int, int, int]
    encoder_name: str
    size: int


def _settings(root: Path, episode_ids: list[int], encoder: Any, weights: str | None, size: int,
              policy: str) -> dict[str, Any]:
    return {"version": VERSION, "source": str(root.resolve()),
            "fingerprint": collection_fingerprint(root, episode_ids),
            "encoder": getattr(encoder, "name", None) or type(encoder).__name__, "encoder_weights": weights,
            "pretrained": bool(getattr(encoder, "pretrained", False)), "size": int(size), "policy": policy}


def encode_trajectories(source: str | os.PathLike, encoder: Any, out_dir: str | os.PathLike, *, size: int = 224,
                        policy: str = "crop", batch_size: int = 64, chunk_episodes: int = 32,
                        encoder_weights: str | None = None, progress: bool = True) -> TrajectoryCacheSummary:
    """Encode frames 0..L of every episode of the trajectory folder ``source`` into ``out_dir``.

    ``encoder`` maps ``(B, 3, size, size)`` in ``[0, 1]`` to ``(B, H, W, D)`` (a :class:`FrozenEncoder`).
    ``encoder_weights`` (where its weights came from) is recorded for the checkpoints trained on the
    cache. Progress is saved after every ``chunk_episodes`` episodes; rerunning with the same settings
    continues there, other settings into a used folder are refused.
    """
    root = Path(source).expanduser()
    ds = load_trajectories(root)
    if len(ds) == 0:
        raise UserError(f"{root} holds no episodes; collect some first")
    ids = episode_ids(ds)
    out = Path(out_dir)
    settings = _settings(root, ids, encoder, encoder_weights, size, policy)
    frames_per_episode = [ds.length(i) + 1 for i in range(len(ds))]
    offsets = np.concatenate([[0], np.cumsum(frames_per_episode)]).astype(np.int64)
    total = int(offsets[-1])
    device = module_device(encoder)
    with torch.no_grad():
        probe = encoder(torch.zeros(1, 3, size, size, device=device))
    shape = tuple(int(x) for x in probe.shape[1:])

    out.mkdir(parents=True, exist_ok=True)
    done = 0
    for marker in (INDEX_FILE, PROGRESS_FILE):
        if (out / marker).is_file():
            old = json.loads((out / marker).read_text())
            if old.get("settings") != settings:
                raise UserError(f"{out} holds features of other settings ({old.get('settings')}); "
                                "use a new --out folder or delete it")
            done = len(frames_per_episode) if marker == INDEX_FILE else int(old["episodes_done"])
            break
    array_path = out / ARRAY_FILE
    if done and array_path.is_file():
        feats = np.lib.format.open_memmap(array_path, mode="r+")
    else:
        done = 0
        feats = np.lib.format.open_memmap(array_path, mode="w+", dtype=np.float16, shape=(total, *shape))
    start_episode = done
    bar = progress_bar(total=total, initial=int(offsets[done]), desc="encode", unit="frame", disable=not progress)
    try:
        for first in range(done, len(frames_per_episode), chunk_episodes):
            last = min(first + chunk_episodes, len(frames_per_episode))
            frames = np.concatenate([episode_arrays(ds, i)[0][: frames_per_episode[i]]
                                     for i in range(first, last)])
            row = int(offsets[first])
            for b in range(0, frames.shape[0], batch_size):
                x = resize_crop(frames[b: b + batch_size], size, policy).to(device)
                with torch.no_grad():
                    y = encoder(x)
                feats[row + b: row + b + y.shape[0]] = y.to("cpu", torch.float16).numpy()
                bar.update(int(y.shape[0]))
            feats.flush()
            atomic_write_json(out / PROGRESS_FILE, {"settings": settings, "episodes_done": last})
    finally:
        bar.close()
    del feats
    index = {"settings": settings, "feature_shape": list(shape), "dtype": "float16", "num_frames": total,
             "episode_ids": [int(e) for e in ids], "offsets": offsets[:-1].tolist(),
             "frames": frames_per_episode}
    atomic_write_json(out / INDEX_FILE, index, indent=None)  # last: marks the cache as finished
    (out / PROGRESS_FILE).unlink(missing_ok=True)
    return TrajectoryCacheSummary(str(out), len(frames_per_episode), total, len(frames_per_episode) - start_episode,
                                  shape, settings["encoder"], int(size))  # type: ignore[arg-type]


class TrajectoryFeatures:
    """Read side of a trajectory feature cache: ``episode(pos)`` gives ``(L+1, H, W, D)`` float16 rows.

    The array is memory-mapped lazily in each process (DataLoader workers open their own).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path).expanduser()
        if not is_trajectory_feature_cache(self.path):
            hint = (" (an interrupted `dinoworld encode`: rerun it to finish)" if (self.path / PROGRESS_FILE).is_file()
                    else "; write one with `dinoworld encode TRAJECTORY_FOLDER --out FOLDER`")
            raise UserError(f"no trajectory feature cache at {self.path}{hint}")
        index = json.loads((self.path / INDEX_FILE).read_text())
        self.settings: dict[str, Any] = index["settings"]
        self.feature_shape = tuple(int(x) for x in index["feature_shape"])
        self.episode_ids = [int(e) for e in index["episode_ids"]]
        self._offsets, self._frames = index["offsets"], index["frames"]
        self._array: np.ndarray | None = None

    @property
    def encoder_name(self) -> str:
        return str(self.settings["encoder"])

    @property
    def size(self) -> int:
        return int(self.settings["size"])

    def __getstate__(self) -> dict[str, Any]:  # the memory map stays in its process
        state = self.__dict__.copy()
        state["_array"] = None
        return state

    def check(self, source: str | os.PathLike, ids: list[int], size: int, policy: str) -> None:
        """Refuse a cache of another collection (or of this one before it changed; ``ids`` are its episode
        ids), or of frames resized otherwise than ``size`` px with ``policy``."""
        root = Path(source)
        if self.episode_ids != [int(e) for e in ids] or \
                self.settings["fingerprint"] != collection_fingerprint(root, ids):
            raise UserError(f"{self.path} holds the features of {self.settings['source']} as it was when encoded, "
                            f"not of {root} as it is now; rerun `dinoworld encode {root} --out NEW_FOLDER`")
        if (self.size, self.settings["policy"]) != (int(size), policy):
            raise UserError(f"{self.path} holds features of {self.size}-px frames ({self.settings['policy']}) but "
                            f"this run reads {size}-px frames ({policy}); encode a cache at {size} px")

    def episode(self, pos: int) -> np.ndarray:
        if self._array is None:
            self._array = np.load(self.path / ARRAY_FILE, mmap_mode="r")
        o = int(self._offsets[pos])
        return self._array[o: o + int(self._frames[pos])]


__all__ = ["TrajectoryCacheSummary", "TrajectoryFeatures", "encode_trajectories", "is_trajectory_feature_cache"]
