"""Goal-conditioned planning environments: PushT, Wall, PointMaze.

>>> from dinoworld.envs import make_env
>>> env = make_env("wall", img_size=64)
>>> obs, info = env.reset(seed=0)        # obs: uint8 (64, 64, 3); info["state"], info["goal_state"]
>>> obs, reward, terminated, truncated, info = env.step([0.5, 0.0])
>>> env.eval_state(info["goal_state"], env.get_state())["success"]

Modules are imported on demand, so ``import dinoworld.envs`` works without the ``[envs]``
extra; a missing optional package raises a one-line :class:`dinoworld.errors.UserError`.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from ..errors import UserError

if TYPE_CHECKING:
    from .base import GoalEnv

# MuJoCo picks its OpenGL backend when first imported: default to headless EGL. Setting a
# default environment variable is the only thing done at import time.
os.environ.setdefault("MUJOCO_GL", "egl")

#: name -> (module, class)
_REGISTRY: dict[str, tuple[str, str]] = {
    "pusht": ("dinoworld.envs.pusht", "PushTEnv"),
    "wall": ("dinoworld.envs.wall", "WallEnv"),
    "pointmaze": ("dinoworld.envs.pointmaze", "PointMazeEnv"),
}
ENV_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def env_class(name: str) -> type:
    """The environment class registered under ``name``."""
    key = str(name).lower()
    if key not in _REGISTRY:
        raise UserError(f"unknown environment {name!r}; choose one of {', '.join(ENV_NAMES)}")
    module, cls = _REGISTRY[key]
    return getattr(importlib.import_module(module), cls)


def make_env(name: str, **kwargs: Any) -> "GoalEnv":
    """Build a planning environment by name (``"pusht"``, ``"wall"``, ``"pointmaze"``).

    Keyword arguments go to the constructor (all take ``img_size``, default 224).
    """
    return env_class(name)(**kwargs)


def __getattr__(attr: str) -> Any:  # lazy access to GoalEnv without importing gymnasium early
    if attr == "GoalEnv":
        from .base import GoalEnv

        return GoalEnv
    raise AttributeError(attr)


__all__ = ["ENV_NAMES", "GoalEnv", "env_class", "make_env"]
