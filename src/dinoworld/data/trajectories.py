"""Offline trajectories for action-conditioned fine-tuning: collection and loading.

On-disk format (``format = "dinoworld-trajectories"``, version 1)::

    out_dir/
      meta.json            env, img_size, action_dim, state_dim, state_fields, episodes
                           (requested), steps, seed, policy, env_kwargs, format, version, convention
      episode_000000.npz   one episode (``np.savez_compressed``) holding
                             frames  uint8   (T+1, H, W, 3)  RGB observations
                             actions float32 (T, A)          as applied (clipped to the action space)
                             states  float32 (T+1, S)        env.get_state() at each frame
                             goal    float32 (S,)            the episode's goal state
      episode_000001.npz   ...

Convention: ``actions[t]`` maps ``frames[t]`` / ``states[t]`` to ``frames[t+1]`` / ``states[t+1]``.
Episodes are written atomically (temporary file + ``os.replace``), so a file that exists is
complete; a new ``collect`` into the same folder skips them (resume). Episode ``i`` is fully
determined by ``(seed, i)``: the result does not depend on the number of workers or on resuming.

Default policies: PushT uses the noisy scripted expert (:mod:`dinoworld.envs.expert`) with a
per-episode noise level uniform in ``[0, 0.1]`` action units (10 px); Wall and PointMaze use their
env's smooth random walk (AR(1) actions, see ``random_policy`` of each env).

:func:`load_trajectories` also reads the layout of DINO-WM's released datasets: ``states.pth``,
``rel_actions.pth`` / ``actions.pth`` / ``abs_actions.pth`` (tensors ``(N, Tmax, .)``),
``seq_lengths.pth`` (or ``seq_lengths.pkl``), optional ``velocities.pth`` (appended to states, as
DINO-WM does; PushT states become the first 7 entries of ours), optional ``wall_locations.pth`` /
``door_locations.pth`` (appended: Wall states become ``[x, y, wall_x, door_y]`` like ours, though
DINO-WM's 65-px wall world differs slightly from our 64-unit one), and ``obses/episode_XXX.mp4``
or ``obses/episode_XXX.pth``. There, an episode of ``L`` frames stores ``L`` actions whose last
one leads nowhere; it is dropped so both layouts follow the convention above. PushT actions there are in pixels; they are divided by 100
(DINO-WM's ``action_scale``) to match :class:`dinoworld.envs.pusht.PushTEnv` actions.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import re
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, Union

import numpy as np

from dinoworld.errors import UserError

FORMAT_NAME = "dinoworld-trajectories"
FORMAT_VERSION = 1
META_FILE = "meta.json"
EPISODE_PATTERN = re.compile(r"^episode_(\d+)\.npz$")

#: Paper (Table 7) dataset sizes: env -> (episodes, steps per episode or (min, max)).
PAPER_SIZES: dict[str, tuple[int, Union[int, tuple[int, int]]]] = {
    "wall": (1920, 50),
    "pointmaze": (2000, 100),
    "pusht": (18500, (100, 300)),
}

Steps = Union[int, Sequence[int]]
#: A policy factory: ``factory(env, rng) -> policy`` where ``policy(state) -> action``.
PolicyFactory = Callable[[Any, np.random.Generator], Callable[[np.ndarray], np.ndarray]]


def episode_path(out_dir: Union[str, Path], index: int) -> Path:
    """Path of episode ``index`` in our format."""
    return Path(out_dir) / f"episode_{index:06d}.npz"


# --------------------------------------------------------------------------- policies
def random_policy(env: Any, rng: np.random.Generator) -> Callable[[np.ndarray], np.ndarray]:
    """The env's own exploration policy (smooth random walk)."""
    return env.random_policy(rng)


def expert_policy(env: Any, rng: np.random.Generator) -> Callable[[np.ndarray], np.ndarray]:
    """Noisy PushT expert with a per-episode noise level uniform in [0, 0.1]."""
    from dinoworld.envs.expert import PushTExpert

    if getattr(env, "name", None) != "pusht":
        raise UserError("the 'expert' policy exists only for pusht; use policy='random'")
    return PushTExpert(env.goal_state, rng=rng, noise_std=float(rng.uniform(0.0, 0.1)))


_NAMED_POLICIES: dict[str, PolicyFactory] = {"random": random_policy, "expert": expert_policy}
DEFAULT_POLICY = {"pusht": "expert", "wall": "random", "pointmaze": "random"}


def _resolve_policy(env_name: str, policy: Union[str, PolicyFactory, None]) -> tuple[Any, str]:
    if policy is None:
        policy = DEFAULT_POLICY.get(env_name, "random")
    if isinstance(policy, str):
        if policy not in _NAMED_POLICIES:
            raise UserError(f"unknown policy {policy!r}; use one of {sorted(_NAMED_POLICIES)} "
                            "or a callable factory(env, rng) -> policy(state) -> action")
        return policy, policy
    name = f"{getattr(policy, '__module__', '?')}.{getattr(policy, '__qualname__', repr(policy))}"
    return policy, name


def _steps_spec(steps: Steps) -> tuple[int, int]:
    if isinstance(steps, (int, np.integer)):
        lo = hi = int(steps)
    else:
        seq = list(steps)
        if len(seq) != 2:
            raise UserError(f"steps must be an int or a (min, max) pair, got {steps!r}")
        lo, hi = int(seq[0]), int(seq[1])
    if lo < 1 or hi < lo:
        raise UserError(f"steps must be >= 1 (and min <= max), got {steps!r}")
    return lo, hi


# --------------------------------------------------------------------------- collection
_WORKER_ENVS: dict[tuple, Any] = {}


def _get_env(env_name: str, img_size: int, env_kwargs: dict[str, Any]) -> Any:
    from dinoworld.envs import make_env

    key = (env_name, img_size, tuple(sorted(env_kwargs.items())))
    if key not in _WORKER_ENVS:
        _WORKER_ENVS[key] = make_env(env_name, img_size=img_size, **env_kwargs)
    return _WORKER_ENVS[key]


def _episode_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def run_episode(
    env: Any, policy: Any, steps: tuple[int, int], seed: int, index: int
) -> dict[str, np.ndarray]:
    """Roll out episode ``index`` (deterministic in ``(seed, index)``); returns the arrays."""
    rng = _episode_rng(seed, index)
    length = int(rng.integers(steps[0], steps[1] + 1))
    env_seed = int(rng.integers(2**31 - 1))
    obs, _ = env.reset(seed=env_seed)
    factory = _NAMED_POLICIES[policy] if isinstance(policy, str) else policy
    act = factory(env, rng)
    frames = [obs]
    states = [env.get_state()]
    actions = []
    for _ in range(length):
        a = np.asarray(act(states[-1]), dtype=np.float64)
        obs, _, _, _, _ = env.step(a)
        actions.append(np.clip(a, env.action_low, env.action_high))
        frames.append(obs)
        states.append(env.get_state())
    return {
        "frames": np.stack(frames).astype(np.uint8),
        "actions": np.asarray(actions, dtype=np.float32).reshape(length, env.action_dim),
        "states": np.stack(states).astype(np.float32),
        "goal": np.asarray(env.goal_state, dtype=np.float32),
    }


def write_episode(path: Union[str, Path], arrays: dict[str, np.ndarray], compress: bool = True) -> None:
    """Write one episode atomically (temporary file in the same folder, then ``os.replace``)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            (np.savez_compressed if compress else np.savez)(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _collect_one(task: tuple, env: Any = None) -> tuple[int, int, bool]:
    env_name, img_size, env_kwargs, out_dir, index, seed, steps, policy, compress = task
    if env is None:  # pool worker: one env per process, reused across episodes
        env = _get_env(env_name, img_size, env_kwargs)
    arrays = run_episode(env, policy, steps, seed, index)
    write_episode(episode_path(out_dir, index), arrays, compress=compress)
    success = bool(env.eval_state(arrays["goal"], arrays["states"][-1])["success"])
    return index, int(arrays["actions"].shape[0]), success


def _write_json_atomic(path: Path, obj: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def collect(
    env_name: str,
    out_dir: Union[str, Path],
    episodes: int | None = None,
    steps: Steps | None = None,
    seed: int = 0,
    workers: int = 1,
    img_size: int = 224,
    progress: bool = True,
    policy: Union[str, PolicyFactory, None] = None,
    env_kwargs: dict[str, Any] | None = None,
    compress: bool = True,
) -> dict[str, Any]:
    """Roll out ``episodes`` episodes of ``steps`` actions in ``env_name`` and save them.

    ``episodes`` / ``steps`` default to :data:`PAPER_SIZES`; ``steps`` may be ``(min, max)``
    (length drawn per episode). ``policy`` is ``"random"``, ``"expert"`` (PushT), ``None`` (the
    env's default) or a picklable factory ``(env, rng) -> policy(state) -> action``. Episodes
    already on disk are skipped. ``workers > 1`` uses a ``spawn`` process pool (call it under
    ``if __name__ == "__main__":`` in scripts). Returns a summary dict (episodes written / skipped,
    transitions, frames, seconds, success rate of the written episodes' last state vs their goal).
    """
    from dinoworld.envs import ENV_NAMES, env_class

    env_name = str(env_name).lower()
    if env_name not in ENV_NAMES:
        raise UserError(f"unknown environment {env_name!r}; choose one of {', '.join(ENV_NAMES)}")
    default_episodes, default_steps = PAPER_SIZES[env_name]
    episodes = default_episodes if episodes is None else int(episodes)
    if episodes < 0:
        raise UserError(f"episodes must be >= 0, got {episodes}")
    lo, hi = _steps_spec(default_steps if steps is None else steps)
    workers = max(1, int(workers))
    env_kwargs = dict(env_kwargs or {})
    policy_obj, policy_name = _resolve_policy(env_name, policy)
    cls = env_class(env_name)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / META_FILE
    meta = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "env": env_name,
        "img_size": int(img_size),
        "action_dim": int(cls.action_dim),
        "state_dim": int(cls.state_dim),
        "state_fields": list(cls.state_fields),
        "episodes": episodes,
        "steps": lo if lo == hi else [lo, hi],
        "seed": int(seed),
        "policy": policy_name,
        "env_kwargs": env_kwargs,
        "convention": "actions[t] maps frames[t] (states[t]) to frames[t+1] (states[t+1])",
    }
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        keys = ("format", "env", "img_size", "steps", "seed", "policy", "env_kwargs")
        diff = [k for k in keys if old.get(k) != meta[k]]
        if diff:
            found = ", ".join(f"{k}={old.get(k)!r}" for k in diff)
            raise UserError(f"{out} already holds a different collection ({found}); "
                            "use another out_dir or the same settings to resume")
        meta["episodes"] = max(int(old.get("episodes", 0)), episodes)
    _write_json_atomic(meta_path, meta)

    todo = [i for i in range(episodes) if not episode_path(out, i).exists()]
    skipped = episodes - len(todo)
    tasks = [(env_name, int(img_size), env_kwargs, str(out), i, int(seed), (lo, hi), policy_obj, compress)
             for i in todo]
    t0 = time.perf_counter()
    results: list[tuple[int, int, bool]] = []
    from tqdm.auto import tqdm

    bar = tqdm(total=episodes, initial=skipped, disable=not progress, unit="ep",
               desc=f"collect {env_name}")
    try:
        if workers == 1 or len(tasks) <= 1:
            if tasks:
                from dinoworld.envs import make_env

                env = make_env(env_name, img_size=int(img_size), **env_kwargs)
                try:
                    for task in tasks:
                        results.append(_collect_one(task, env))
                        bar.update(1)
                finally:
                    env.close()
        else:
            try:
                pickle.dumps(policy_obj)
            except Exception as exc:
                raise UserError("with workers > 1 the policy factory must be picklable "
                                "(a module-level function or class, not a lambda)") from exc
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(min(workers, len(tasks))) as pool:
                for res in pool.imap_unordered(_collect_one, tasks):
                    results.append(res)
                    bar.update(1)
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    n_steps = sum(r[1] for r in results)
    return {
        "env": env_name,
        "out_dir": str(out),
        "episodes": episodes,
        "written": len(results),
        "skipped": skipped,
        "transitions": n_steps,
        "frames": n_steps + len(results),
        "seconds": seconds,
        "episodes_per_s": len(results) / seconds if seconds > 0 and results else 0.0,
        "success_rate": float(np.mean([r[2] for r in results])) if results else None,
    }


# --------------------------------------------------------------------------- loading
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
        self.img_size: int | None = self.meta.get("img_size")
        self.action_dim: int = int(self.meta["action_dim"])
        self.state_dim: int = int(self.meta["state_dim"])

    def __len__(self) -> int:
        return len(self.episode_ids)

    def _path(self, i: int) -> Path:
        return episode_path(self.root, self.episode_ids[self._check_index(i)])

    def episode(self, i: int) -> dict[str, np.ndarray]:
        path = self._path(i)
        try:
            with np.load(path) as z:
                out = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError) as exc:
            raise UserError(f"cannot read {path}: {exc}; delete it and re-run collect to redo it") from exc
        return out

    def length(self, i: int) -> int:
        with np.load(self._path(i)) as z:
            return int(z["actions"].shape[0])


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

        states = as_np(load("states.pth")).astype(np.float32)
        if states.ndim == 2:
            states = states[..., None]
        n, tmax = states.shape[:2]
        extras = ["velocities.pth", "wall_locations.pth", "door_locations.pth"]
        for name in extras:  # PushT pusher velocity; Wall layout -> [x, y, wall_x, door_y]
            if (self.root / name).exists():
                extra = as_np(load(name)).astype(np.float32).reshape(n, tmax, -1)
                states = np.concatenate([states, extra], axis=-1)
        for name in ("rel_actions.pth", "actions.pth", "abs_actions.pth"):
            if (self.root / name).exists():
                self.action_file = name
                actions = as_np(load(name)).astype(np.float32)
                break
        else:
            raise UserError(f"{self.root} has states.pth but no rel_actions.pth / actions.pth")
        if action_scale is None:  # DINO-WM's PushT stores pixels and divides by 100
            action_scale = 100.0 if self.action_file in ("rel_actions.pth", "abs_actions.pth") else 1.0
        self.action_scale = float(action_scale)
        actions = actions / self.action_scale
        if (self.root / "seq_lengths.pth").exists():
            lengths = as_np(load("seq_lengths.pth")).reshape(-1)
        elif (self.root / "seq_lengths.pkl").exists():
            with open(self.root / "seq_lengths.pkl", "rb") as f:  # DINO-WM's PushT (trusted data)
                lengths = np.asarray(pickle.load(f)).reshape(-1)
        else:
            lengths = np.full(n, states.shape[1])
        self.lengths = np.minimum(lengths.astype(np.int64), states.shape[1])
        self.states, self.actions = states, actions
        #: best guess of the environment from the files present (None if unsure)
        self.env: str | None = (
            "wall" if (self.root / "door_locations.pth").exists()
            else "pusht" if self.action_file in ("rel_actions.pth", "abs_actions.pth")
            else "pointmaze" if (states.shape[-1] == 4 and (self.root / "seq_lengths.pth").exists())
            else None
        )
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


__all__ = [
    "PAPER_SIZES",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "TrajectoryDataset",
    "NpzTrajectories",
    "DinoWMTrajectories",
    "collect",
    "decode_mp4",
    "episode_path",
    "load_trajectories",
    "run_episode",
    "write_episode",
]
