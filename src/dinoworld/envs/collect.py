"""Collect offline trajectories in an environment (written in :mod:`dinoworld.data.trajectories`' format).

Episode ``i`` is fully determined by ``(seed, i)``: the result does not depend on the number of
workers or on resuming; episodes already on disk are skipped, so rerunning resumes.

Default policies: PushT uses the noisy scripted expert (:mod:`dinoworld.envs.expert`) with a
per-episode noise level uniform in ``[0, 0.1]`` action units (10 px); Wall and PointMaze use their
env's ``random_policy``, the exploration DINO-WM's datasets were made with (Wall: its generator's
heading walk; PointMaze: uniform random actions).
"""

from __future__ import annotations

import json
import multiprocessing
import pickle
import time
from pathlib import Path
from typing import Any, Callable, Sequence, Union

import numpy as np

from ..data.trajectories import FORMAT_NAME, FORMAT_VERSION, META_FILE, episode_path, write_episode, write_meta
from ..errors import UserError

#: Paper (Table 7) dataset sizes: env -> (episodes, steps per episode or (min, max)).
PAPER_SIZES: dict[str, tuple[int, Union[int, tuple[int, int]]]] = {
    "wall": (1920, 50),
    "pointmaze": (2000, 100),
    "pusht": (18500, (100, 300)),
}

Steps = Union[int, Sequence[int]]
#: A policy factory: ``factory(env, rng) -> policy`` where ``policy(state) -> action``.
PolicyFactory = Callable[[Any, np.random.Generator], Callable[[np.ndarray], np.ndarray]]


# --------------------------------------------------------------------------- policies
def random_policy(env: Any, rng: np.random.Generator) -> Callable[[np.ndarray], np.ndarray]:
    """The env's own exploration policy (smooth random walk)."""
    return env.random_policy(rng)


def expert_policy(env: Any, rng: np.random.Generator) -> Callable[[np.ndarray], np.ndarray]:
    """Noisy PushT expert with a per-episode noise level uniform in [0, 0.1]."""
    from .expert import PushTExpert

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
    from . import make_env

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
        # the action as stored (float32) is the one applied, so replaying the file reproduces the states
        a = env._check_action(np.asarray(act(states[-1]), dtype=np.float64)).astype(np.float32)
        obs, _, _, _, _ = env.step(a.astype(np.float64))
        actions.append(a)
        frames.append(obs)
        states.append(env.get_state())
    return {
        "frames": np.stack(frames).astype(np.uint8),
        "actions": np.asarray(actions, dtype=np.float32).reshape(length, env.action_dim),
        "states": np.stack(states).astype(np.float64),  # exact: a replay from states[0] gives them back
        "goal": np.asarray(env.goal_state, dtype=np.float64),
    }


def _collect_one(task: tuple, env: Any = None) -> tuple[int, int, bool]:
    env_name, img_size, env_kwargs, out_dir, index, seed, steps, policy, compress = task
    if env is None:  # pool worker: one env per process, reused across episodes
        env = _get_env(env_name, img_size, env_kwargs)
    arrays = run_episode(env, policy, steps, seed, index)
    write_episode(episode_path(out_dir, index), arrays, compress=compress)
    success = bool(env.eval_state(arrays["goal"], arrays["states"][-1])["success"])
    return index, int(arrays["actions"].shape[0]), success


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
    from . import ENV_NAMES, env_class

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
        "world_version": cls.world_version,
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
        keys = ("format", "env", "world_version", "img_size", "steps", "seed", "policy", "env_kwargs")
        diff = [k for k in keys if old.get(k, "") != meta[k]]
        if diff:
            found = ", ".join(f"{k}={old.get(k)!r}" for k in diff)
            raise UserError(f"{out} already holds a different collection ({found}); "
                            "use another out_dir or the same settings to resume")
        meta["episodes"] = max(int(old.get("episodes", 0)), episodes)
    write_meta(out, meta)

    todo = [i for i in range(episodes) if not episode_path(out, i).exists()]
    skipped = episodes - len(todo)
    tasks = [(env_name, int(img_size), env_kwargs, str(out), i, int(seed), (lo, hi), policy_obj, compress)
             for i in todo]
    t0 = time.perf_counter()
    results: list[tuple[int, int, bool]] = []
    from ..progress import progress_bar

    bar = progress_bar(total=episodes, initial=skipped, disable=not progress, unit="ep",
               desc=f"collect {env_name}")
    try:
        if workers == 1 or len(tasks) <= 1:
            if tasks:
                from . import make_env

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


__all__ = ["PAPER_SIZES", "DEFAULT_POLICY", "collect", "expert_policy", "random_policy", "run_episode"]
