"""DINO-WM's released datasets as this project's states and actions: one pure function per world.

The worlds in :mod:`dinoworld.envs` are DINO-WM's own (``world_version`` ``dino-wm-<env>-1``), so the
conversion is a matter of layout and units, never of physics:

* **PushT** (``datasets/pusht_dset.py``): ``states.pth`` holds ``[agent x, y, block x, y, angle]``
  (5 floats) and ``velocities.pth`` the agent velocity, which DINO-WM's loader appends; actions are
  pixels, ``rel_actions.pth`` (offsets of the pusher's target) or ``abs_actions.pth`` (the targets),
  divided by ``action_scale`` 100. Our state adds the block's velocities (10 floats): 0 here.
* **Wall** (``datasets/wall_dset.py``): ``states.pth`` is the dot's ``(x, y)`` in the 65-px world,
  ``wall_locations.pth`` / ``door_locations.pth`` the layout (per frame or per episode), appended
  to give ``[x, y, wall_x, door_y]``; ``actions.pth`` is already in env units (the env moves ``2·a``).
* **PointMaze** (``datasets/point_maze_dset.py``): ``states.pth`` is ``[x, y, vx, vy]`` (MuJoCo
  ``qpos, qvel`` in D4RL's frame, which is ours) and ``actions.pth`` is unscaled: nothing changes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UserError

#: DINO-WM divides PushT's pixel actions by this (``action_scale`` of its PushT dataset)
PUSHT_ACTION_SCALE = 100.0
PUSHT_STATE_DIM = 10


def pusht(states: Any, actions: Any, velocities: Any = None, absolute: bool = False,
          action_scale: float = PUSHT_ACTION_SCALE) -> tuple[np.ndarray, np.ndarray]:
    """``(states (..., T, 10), actions (..., T', 2))`` of DINO-WM's PushT arrays (see the module doc);
    absolute actions are taken relative to the agent position of the same step."""
    s = np.asarray(states, dtype=np.float64)
    if velocities is not None and s.shape[-1] == 5:
        s = np.concatenate([s, np.asarray(velocities, dtype=np.float64).reshape(s.shape[:-1] + (-1,))], axis=-1)
    if s.shape[-1] not in (5, 7):
        raise UserError(f"DINO-WM PushT states hold 5 or 7 entries, got shape {s.shape}; is this a PushT dataset?")
    s = np.concatenate([s, np.zeros(s.shape[:-1] + (PUSHT_STATE_DIM - s.shape[-1],))], axis=-1)
    s[..., 4] %= 2 * np.pi
    a = np.asarray(actions, dtype=np.float64)
    if absolute:
        a = a - s[..., : a.shape[-2], :2]
    return s, a / float(action_scale)


def wall(states: Any, actions: Any, wall_locations: Any, door_locations: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(states (..., 4), actions (..., 2))`` of DINO-WM's Wall arrays; a per-episode layout ``(N,)``
    is repeated over the frames."""
    xy = np.asarray(states, dtype=np.float64)
    if xy.shape[-1] != 2:
        raise UserError(f"DINO-WM Wall states hold the dot's (x, y), got shape {xy.shape}; is this a Wall dataset?")

    def per_frame(v: Any) -> np.ndarray:
        arr = np.asarray(v, dtype=np.float64)
        if arr.ndim == xy.ndim:
            arr = arr[..., 0]
        while arr.ndim < xy.ndim - 1:
            arr = arr[..., None]
        return np.broadcast_to(arr, xy.shape[:-1])

    layout = np.stack([per_frame(wall_locations), per_frame(door_locations)], axis=-1)
    return np.concatenate([xy, layout], axis=-1), np.asarray(actions, dtype=np.float64)


def pointmaze(states: Any, actions: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(states (..., 4), actions (..., 2))`` of DINO-WM's PointMaze arrays: already ours."""
    s, a = np.asarray(states, dtype=np.float64), np.asarray(actions, dtype=np.float64)
    if s.shape[-1] != 4 or a.shape[-1] != 2:
        raise UserError(f"DINO-WM PointMaze states are (..., 4) and actions (..., 2), got {s.shape} and {a.shape}")
    return s, a
