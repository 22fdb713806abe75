"""Offline trajectories on disk: our episode format, DINO-WM's released layout, one reader each.

On-disk format (``format = "dinoworld-trajectories"``, version 1)::

    out_dir/
      meta.json            env, img_size, action_dim, state_dim, state_fields, episodes
                           (requested), steps, seed, policy, env_kwargs, format, version, convention
      episode_000000.npz   one episode (``np.savez_compressed``) holding
                             frames  uint8   (T+1, H, W, 3)  RGB observations
                             actions float32 (T, A)          as applied (clipped to the action space)
                             states  float64 (T+1, S)        env.get_state() at each frame (float32
                                                             in collections written before 2026-12)
                             goal    float64 (S,)            the episode's goal state
      episode_000001.npz   ...

Convention: ``actions[t]`` maps ``frames[t]`` / ``states[t]`` to ``frames[t+1]`` / ``states[t+1]``.
Episodes are written atomically (temporary file + ``os.replace``), so a file that exists is
complete. Collection (:mod:`dinoworld.envs.collect`) writes this format.

:func:`load_trajectories` also reads the layout of DINO-WM's released datasets: ``states.pth``,
``rel_actions.pth`` / ``actions.pth`` / ``abs_actions.pth`` (tensors ``(N, Tmax, .)``),
``seq_lengths.pth`` (or ``seq_lengths.pkl``), optional ``velocities.pth``, ``wall_locations.pth`` /
``door_locations.pth``, and ``obses/episode_XXX.mp4`` or ``obses/episode_XXX.pth``. The world is
told by the files present, and :mod:`dinoworld.data.dino_wm` turns its arrays into this project's
states and actions (the worlds are DINO-WM's, so only layout and units change). There, an episode
of ``L`` frames stores ``L`` actions whose last one leads nowhere; it is dropped so both layouts
follow the convention above.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Iterator, Union

import numpy as np

from ..errors import UserError
from ..files import atomic_write, atomic_write_json
from . import dino_wm

FORMAT_NAME = "dinoworld-trajectories"
FORMAT_VERSION = 1
META_FILE = "meta.json"
EPISODE_PATTERN = re.compile(r"^episode_(\d+)\.npz$")


def dino_wm_world(env: str) -> str:
    """The world version of DINO-WM's simulation of ``env``: what its released datasets were recorded in,
    and what :mod:`dinoworld.envs` simulates (each env's ``world_version``)."""
    return f"dino-wm-{env}-1"


def episode_path(out_dir: Union[str, Path], index: int) -> Path:
    """Path of episode ``index`` in our format."""
    return Path(out_dir) / f"episode_{index:06d}.npz"


def is_trajectory_folder(path: Union[str, Path]) -> bool:
    """A folder in our format (``meta.json``) or DINO-WM's (``states.pth``)."""
    p = Path(path)
    return (p / META_FILE).is_file() or (p / "states.pth").is_file()


def write_episode(path: Union[str, Path], arrays: dict[str, np.ndarray], compress: bool = True) -> None:
    """Write one episode atomically (a file that exists is complete)."""
    atomic_write(path, lambda f: (np.savez_compressed if compress else np.savez)(f, **arrays))


def read_episode(path: Union[str, Path], keys: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """The arrays of one episode file (only ``keys`` when given); one clear error if unreadable."""
    try:
        with np.load(path) as z:
            return {k: z[k] for k in (keys or z.files)}
    except (OSError, ValueError, EOFError, KeyError) as exc:
        raise UserError(f"cannot read {path}: {exc}; delete it and re-run collect to redo it") from exc


def write_meta(out_dir: Union[str, Path], meta: dict[str, Any]) -> None:
    atomic_write_json(Path(out_dir) / META_FILE, meta)


def decode_mp4(path: Union[str, Path]) -> np.ndarray:
    """All frames of a video file as ``uint8 (T, H, W, 3)`` RGB (PyAV)."""
    import av

    try:
        with av.open(str(path)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except (av.error.FFmpegError, OSError) as exc:  # type: ignore[attr-defined]
        raise UserError(f"cannot decode video {path}: {exc}; re-download or re-encode it") from exc
    if not frames:
        raise UserError(f"video {path} has no frames; re-download or re-encode it")
    return np.stack(frames)


def _to_uint8_frames(arr: np.ndarray) -> np.ndarray:
    """Frames in any of DINO-WM's array layouts -> ``uint8 (T, H, W, 3)``."""
    a = np.asarray(arr)
    if a.ndim == 4 and a.shape[-1] != 3 and a.shape[1] == 3:  # (T, C, H, W)
        a = a.transpose(0, 2, 3, 1)
    if a.dtype != np.uint8:
        a = a.astype(np.float32)
        if a.size and float(a.max()) <= 1.0:
            a = a * 255.0
        a = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    return a


class TrajectoryDataset:
    """Episodes on disk; ``episode(i)`` returns ``dict(frames, actions, states)`` (numpy).

    ``frames uint8 (T+1, H, W, 3)``, ``actions float32 (T, A)``, ``states float32 (T+1, S)``.
    """

    source: str = ""

    def __len__(self) -> int:
        raise NotImplementedError

    def episode(self, i: int) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def length(self, i: int) -> int:
        """Number of actions ``T`` of episode ``i``."""
        raise NotImplementedError

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        return self.episode(i)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for i in range(len(self)):
            yield self.episode(i)

    def _check_index(self, i: int) -> int:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"episode {i} out of range ({n} episodes)")
        return i % n


class NpzTrajectories(TrajectoryDataset):
    """Our format (see module docstring)."""

    source = "dinoworld"

    def __init__(self, root: Union[str, Path]) -> None:
        self.root = Path(root)
        self.meta: dict[str, Any] = json.loads((self.root / META_FILE).read_text())
        if self.meta.get("format") != FORMAT_NAME:
            raise UserError(f"{self.root / META_FILE} is not a {FORMAT_NAME} meta file")
        if int(self.meta.get("version", 0)) > FORMAT_VERSION:
            raise UserError(f"{self.root} uses trajectory format v{self.meta['version']}; "
                            "upgrade dinoworld to read it")
        found = []
        for p in self.root.iterdir():
            m = EPISODE_PATTERN.match(p.name)
            if m:
                found.append(int(m.group(1)))
        #: episode numbers present on disk (an interrupted collection may have gaps)
        self.episode_ids: list[int] = sorted(found)
        self.env: str | None = self.meta.get("env")
        #: the simulation the episodes were recorded in ("" for collections older than world versions)
        self.world_version: str = self.meta.get("world_version", "")
        self.img_size: int | None = self.meta.get("img_size")
        self.action_dim: int = int(self.meta["action_dim"])
        self.state_dim: int = int(self.meta["state_dim"])

    def __len__(self) -> int:
        return len(self.episode_ids)

    def _path(self, i: int) -> Path:
        return episode_path(self.root, self.episode_ids[self._check_index(i)])

    def episode(self, i: int) -> dict[str, np.ndarray]:
        return read_episode(self._path(i))

    def length(self, i: int) -> int:
        return int(read_episode(self._path(i), ("actions",))["actions"].shape[0])


class DinoWMTrajectories(TrajectoryDataset):
    """DINO-WM's released layout (``states.pth``, ``*actions.pth``, ``obses/``)."""

    source = "dino_wm"

    def __init__(self, root: Union[str, Path], action_scale: float | None = None) -> None:
        import torch

        self.root = Path(root)

        def load(name: str) -> Any:
            return torch.load(self.root / name, map_location="cpu", weights_only=True)

        def as_np(x: Any) -> np.ndarray:
            return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)

        def optional(name: str) -> np.ndarray | None:
            return as_np(load(name)) if (self.root / name).exists() else None

        states = as_np(load("states.pth")).astype(np.float64)
        if states.ndim == 2:
            states = states[..., None]
        n = states.shape[0]
        for name in ("rel_actions.pth", "actions.pth", "abs_actions.pth"):
            if (self.root / name).exists():
                self.action_file = name
                actions = as_np(load(name)).astype(np.float64)
                break
        else:
            raise UserError(f"{self.root} has states.pth but no rel_actions.pth / actions.pth")
        #: the environment, told by the files present (None if unsure)
        self.env: str | None = (
            "wall" if (self.root / "door_locations.pth").exists()
            else "pusht" if self.action_file in ("rel_actions.pth", "abs_actions.pth")
            else "pointmaze" if (states.shape[-1] == 4 and (self.root / "seq_lengths.pth").exists())
            else None
        )
        if action_scale is None:  # DINO-WM's PushT stores pixels and divides by 100
            action_scale = dino_wm.PUSHT_ACTION_SCALE if self.env == "pusht" else 1.0
        self.action_scale = float(action_scale)
        if self.env == "pusht":
            states, actions = dino_wm.pusht(states, actions, optional("velocities.pth"),
                                            absolute=self.action_file == "abs_actions.pth", action_scale=action_scale)
        elif self.env == "wall":
            states, actions = dino_wm.wall(states, actions / action_scale, optional("wall_locations.pth"),
                                           optional("door_locations.pth"))
        elif self.env == "pointmaze":
            states, actions = dino_wm.pointmaze(states, actions / action_scale)
        else:
            vel = optional("velocities.pth")
            if vel is not None:
                states = np.concatenate([states, vel.reshape(states.shape[:2] + (-1,))], axis=-1)
            actions = actions / action_scale
        if (self.root / "seq_lengths.pth").exists():
            lengths = as_np(load("seq_lengths.pth")).reshape(-1)
        elif (self.root / "seq_lengths.pkl").exists():
            with open(self.root / "seq_lengths.pkl", "rb") as f:  # DINO-WM's PushT (trusted data)
                lengths = np.asarray(pickle.load(f)).reshape(-1)
        else:
            lengths = np.full(n, states.shape[1])
        self.lengths = np.minimum(lengths.astype(np.int64), states.shape[1])
        self.states, self.actions = states, actions.astype(np.float32)
        self.world_version = dino_wm_world(self.env) if self.env else ""
        self.img_size = None
        self.action_dim = int(actions.shape[-1])
        self.state_dim = int(states.shape[-1])
        self.meta = {"source": "dino_wm", "root": str(self.root), "action_file": self.action_file,
                     "action_scale": self.action_scale}

    def __len__(self) -> int:
        return int(self.states.shape[0])

    def length(self, i: int) -> int:
        return int(self.lengths[self._check_index(i)]) - 1

    def _frames(self, i: int) -> np.ndarray:
        obs = self.root / "obses"
        for name in (f"episode_{i:03d}.mp4", f"episode_{i}.mp4"):
            if (obs / name).exists():
                return decode_mp4(obs / name)
        for name in (f"episode_{i:03d}.pth", f"episode_{i}.pth"):
            if (obs / name).exists():
                import torch

                t = torch.load(obs / name, map_location="cpu", weights_only=True)
                return _to_uint8_frames(t.numpy() if isinstance(t, torch.Tensor) else np.asarray(t))
        raise UserError(f"no frames for episode {i} in {obs} (expected episode_{i:03d}.mp4 or .pth)")

    def episode(self, i: int) -> dict[str, np.ndarray]:
        i = self._check_index(i)
        n_frames = int(self.lengths[i])
        frames = self._frames(i)
        if frames.shape[0] < n_frames:
            raise UserError(f"episode {i} in {self.root} has {frames.shape[0]} frames, "
                            f"seq_lengths says {n_frames}; the dataset is incomplete")
        return {
            "frames": frames[:n_frames],
            "actions": self.actions[i, : n_frames - 1],
            "states": self.states[i, :n_frames],
        }


def load_trajectories(path: Union[str, Path], action_scale: float | None = None) -> TrajectoryDataset:
    """Open a trajectory folder in our format (``meta.json``) or DINO-WM's (``states.pth``).

    ``action_scale`` (DINO-WM layout only) divides the stored actions; by default 100 for PushT
    (``rel_actions.pth``) and 1 otherwise.
    """
    root = Path(path)
    if not root.is_dir():
        raise UserError(f"trajectory folder {root} does not exist")
    if (root / META_FILE).exists():
        return NpzTrajectories(root)
    if (root / "states.pth").exists():
        return DinoWMTrajectories(root, action_scale=action_scale)
    splits = [d.name for d in sorted(root.iterdir()) if d.is_dir() and (d / "states.pth").exists()]
    if splits:
        raise UserError(f"{root} holds DINO-WM splits {splits}: pass one of them, e.g. {root / splits[0]}")
    raise UserError(f"{root} has neither {META_FILE} (dinoworld) nor states.pth (DINO-WM)")

# ------------------------------------------------------------------------------ episode readers
def episode_ids(ds: TrajectoryDataset) -> list[int]:
    """Per position: the file number (our format) or the index (DINO-WM's layout)."""
    return list(ds.episode_ids) if isinstance(ds, NpzTrajectories) else list(range(len(ds)))


def episode_actions(ds: TrajectoryDataset, i: int) -> np.ndarray:
    """``actions float32 (L, A)`` of episode position ``i`` (without decoding its frames)."""
    if isinstance(ds, NpzTrajectories):  # reads only the actions member of the npz
        return np.asarray(read_episode(episode_path(ds.root, ds.episode_ids[i]), ("actions",))["actions"], np.float32)
    actions = getattr(ds, "actions", None)
    if actions is not None and hasattr(ds, "lengths"):  # DINO-WM layout: all actions in memory
        return np.asarray(actions[i, : ds.length(i)], np.float32)
    return np.asarray(ds.episode(i)["actions"], np.float32)


def episode_arrays(ds: TrajectoryDataset, i: int) -> tuple[np.ndarray, np.ndarray]:
    """``(frames uint8 (L+1, H, W, 3), actions float32 (L, A))`` of episode position ``i``."""
    ep = read_episode(episode_path(ds.root, ds.episode_ids[i]), ("frames", "actions")) \
        if isinstance(ds, NpzTrajectories) else ds.episode(i)
    frames, actions = ep["frames"], ep["actions"]
    if frames.shape[0] < actions.shape[0] + 1:
        raise UserError(f"episode {i} of {ds.root} has {frames.shape[0]} frames for {actions.shape[0]} actions")
    return frames, np.asarray(actions, np.float32)


def collection_fingerprint(path: Union[str, Path], episodes: Iterable[int] | None = None) -> str:
    """A short hash that tells trajectory collections apart without reading their episodes.

    Our format: ``meta.json`` (without its requested episode count, which grows when a collection is
    extended) and the name and size of each episode file (only ``episodes`` when given: the ids a
    split indexes; a missing one counts). DINO-WM's layout: the name, size and first MiB of each
    top-level ``.pth`` / ``.pkl`` file (``episodes`` is ignored: episodes are rows of those tensors).
    """
    root = Path(path)
    h = hashlib.sha256()
    if (root / META_FILE).is_file():
        meta = json.loads((root / META_FILE).read_text())
        meta.pop("episodes", None)
        h.update(json.dumps(meta, sort_keys=True).encode())
        if episodes is None:
            episodes = [int(m.group(1)) for p in root.iterdir() if (m := EPISODE_PATTERN.match(p.name))]
        for i in sorted(set(episodes)):
            p = episode_path(root, i)
            h.update(f"\n{p.name} {p.stat().st_size if p.is_file() else 'missing'}".encode())
    else:
        for p in sorted(root.iterdir()):
            if p.is_file() and p.suffix in (".pth", ".pkl") and not p.name.startswith("."):
                with open(p, "rb") as fh:
                    head = hashlib.sha256(fh.read(1 << 20)).hexdigest()
                h.update(f"\n{p.name} {p.stat().st_size} {head}".encode())
    return h.hexdigest()[:16]


__all__ = [
    "FORMAT_NAME", "FORMAT_VERSION", "META_FILE", "TrajectoryDataset", "NpzTrajectories", "DinoWMTrajectories",
    "collection_fingerprint", "decode_mp4", "episode_actions", "episode_arrays", "episode_ids", "episode_path",
    "is_trajectory_folder", "load_trajectories",
    "read_episode", "write_episode", "write_meta",
]
