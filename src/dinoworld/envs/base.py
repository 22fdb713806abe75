"""The goal-conditioned environment interface shared by PushT, Wall and PointMaze.

Every environment is a :class:`gymnasium.Env` whose observation is an RGB image
``uint8 (img_size, img_size, 3)`` and whose action is a float vector of size ``action_dim``.
On top of the Gymnasium API, planning needs to talk about *states*:

* ``get_state()`` / ``state`` return a float64 vector that fully describes the simulation:
  ``set_state(get_state())`` followed by ``step(a)`` gives exactly the same result as stepping on,
* ``set_state(state)`` resets the simulation to a given state,
* ``render_state(state)`` draws any state without disturbing the current one,
* ``eval_state(goal_state, state)`` scores a state against a goal
  (``{"success": bool, "distance": float}``),
* ``sample_state(rng)`` draws a random valid state and ``sample_goal_pair(rng, steps)`` a
  (start, goal) pair where the goal is reached from the start by ``steps`` policy actions.

``reset(seed=..., options=...)`` draws a start and a goal state from ``self.np_random`` (seeded by
``seed``, as in Gymnasium); ``options={"state": s, "goal": g}`` fixes either. ``step`` returns
``reward = 1.0`` on success and ``0.0`` otherwise, never terminates (planning executes a fixed
number of actions, as in DINO-WM), and puts ``state``, ``goal_state``, ``success`` and
``distance`` in ``info``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..errors import UserError

try:  # gymnasium is part of the [envs] extra; importing this module must not need it.
    import gymnasium as _gym

    _EnvBase: type = _gym.Env
except ImportError:  # pragma: no cover - exercised only without the extra
    _gym = None
    _EnvBase = object

ENVS_EXTRA_HINT = "pip install 'dinoworld[envs]'"

Policy = Callable[[np.ndarray], np.ndarray]
"""A policy maps the current state vector to an action (float array of size ``action_dim``)."""


def require(module: str, what: str) -> Any:
    """Import ``module`` or raise a one-line :class:`UserError` naming the [envs] extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise UserError(f"{what} needs the '{module}' package: {ENVS_EXTRA_HINT}") from exc


def wrap_angle(angle: np.ndarray | float) -> np.ndarray | float:
    """Wrap an angle (radians) to ``[-pi, pi)``."""
    return (np.asarray(angle) + np.pi) % (2.0 * np.pi) - np.pi


def ar1_policy(rng: np.random.Generator, action_dim: int, rho: float, sigma: float,
               low: float = -1.0, high: float = 1.0) -> Policy:
    """A smooth random policy: ``a_t = rho a_{t-1} + sqrt(1 - rho^2) sigma eps``, clipped."""
    prev = rng.normal(0.0, sigma, size=action_dim)
    scale = float(np.sqrt(1.0 - rho * rho)) * sigma

    def act(state: np.ndarray) -> np.ndarray:
        nonlocal prev
        prev = rho * prev + scale * rng.normal(size=action_dim)
        return np.clip(prev, low, high)

    return act


class GoalEnv(_EnvBase):  # type: ignore[misc, valid-type]
    """Base class: image observations, state access, goal evaluation.

    Subclasses set ``name``, ``action_dim``, ``state_dim`` and implement ``sample_state``,
    ``get_state``, ``set_state``, ``render_state``, ``eval_state`` and ``_apply_action``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    name: str = "base"
    action_dim: int = 2
    state_dim: int = 0
    action_low: float = -1.0
    action_high: float = 1.0
    #: whether ``step`` clips actions to ``[action_low, action_high]`` (Wall applies them as given)
    clip_actions: bool = True
    #: Names of the state vector entries, in order (documentation and meta files).
    state_fields: tuple[str, ...] = ()
    #: The ``state_fields`` that one frame cannot show (velocities): :meth:`at_rest` zeroes them.
    motion_fields: tuple[str, ...] = ()
    #: Which simulation this is: written into collections and checkpoints, so that a model is never
    #: planned in a world other than the one its data came from. Change it whenever the dynamics,
    #: the rendering or the meaning of the state or actions change.
    world_version: str = ""

    def __init__(self, img_size: int = 224) -> None:
        if _gym is None:
            raise UserError(f"the planning environments need gymnasium: {ENVS_EXTRA_HINT}")
        if int(img_size) <= 0:
            raise UserError(f"img_size must be a positive integer, got {img_size!r}")
        self.img_size = int(img_size)
        self.render_mode = "rgb_array"
        spaces = _gym.spaces
        self.action_space = spaces.Box(
            self.action_low, self.action_high, shape=(self.action_dim,), dtype=np.float32
        )
        self.observation_space = spaces.Box(
            0, 255, shape=(self.img_size, self.img_size, 3), dtype=np.uint8
        )
        self._goal: np.ndarray | None = None

    # ----------------------------------------------------------------- to implement
    def sample_state(self, rng: np.random.Generator) -> np.ndarray:
        """A random valid state (used for reset starts and goals)."""
        raise NotImplementedError

    def get_state(self) -> np.ndarray:
        """The current state, a float64 copy of shape ``(state_dim,)``."""
        raise NotImplementedError

    def set_state(self, state: np.ndarray) -> None:
        """Put the simulation exactly in ``state``."""
        raise NotImplementedError

    def render_state(self, state: np.ndarray) -> np.ndarray:
        """Image ``uint8 (img_size, img_size, 3)`` of ``state``; the current state is untouched."""
        raise NotImplementedError

    def eval_state(self, goal_state: np.ndarray, state: np.ndarray) -> dict[str, Any]:
        """``{"success": bool, "distance": float, ...}`` of ``state`` against ``goal_state``."""
        raise NotImplementedError

    def _apply_action(self, action: np.ndarray) -> None:
        """Advance the simulation by one environment step."""
        raise NotImplementedError

    def state_cost(self, goal_state: np.ndarray, state: np.ndarray) -> float:
        """A cost on true states that is 0 at the goal and grows with what the success test measures:
        what planning on the simulator minimises to find the ceiling of the search itself, free of
        any encoder. Default: the success test's distance."""
        return float(self.eval_state(goal_state, state)["distance"])

    def random_policy(self, rng: np.random.Generator) -> Policy:
        """The default exploration policy of this environment (used for data and goal pairs)."""
        low, high = self.action_low, self.action_high

        def act(state: np.ndarray) -> np.ndarray:
            return rng.uniform(low, high, size=self.action_dim)

        return act

    # ----------------------------------------------------------------- shared API
    def at_rest(self, state: np.ndarray) -> np.ndarray:
        """``state`` with its :attr:`motion_fields` zeroed: what a planner that sees one frame of it knows."""
        out = self._check_state(state)
        out[[self.state_fields.index(f) for f in self.motion_fields]] = 0.0
        return out

    @property
    def state(self) -> np.ndarray:
        """The current state (see :meth:`get_state`)."""
        return self.get_state()

    @state.setter
    def state(self, value: np.ndarray) -> None:
        self.set_state(value)

    @property
    def goal_state(self) -> np.ndarray:
        """The goal state of the current episode (set by ``reset``)."""
        if self._goal is None:
            raise RuntimeError("call reset() before asking for the goal state")
        return self._goal.copy()

    @goal_state.setter
    def goal_state(self, value: np.ndarray) -> None:
        self._goal = self._check_state(value)

    def _check_state(self, state: np.ndarray) -> np.ndarray:
        arr = np.asarray(state, dtype=np.float64).reshape(-1)
        if arr.shape[0] != self.state_dim:
            raise ValueError(f"{self.name}: expected a state of size {self.state_dim}, got {arr.shape}")
        return arr.copy()

    def _check_action(self, action: np.ndarray) -> np.ndarray:
        arr = np.asarray(action, dtype=np.float64).reshape(-1)
        if arr.shape[0] != self.action_dim:
            raise ValueError(f"{self.name}: expected an action of size {self.action_dim}, got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{self.name}: action has non-finite entries: {arr}")
        return np.clip(arr, self.action_low, self.action_high) if self.clip_actions else arr

    def _info(self) -> dict[str, Any]:
        state = self.get_state()
        info: dict[str, Any] = {"state": state}
        if self._goal is not None:
            ev = self.eval_state(self._goal, state)
            info.update(goal_state=self._goal.copy(), success=bool(ev["success"]),
                        distance=float(ev["distance"]))
        return info

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode; ``options`` may hold ``"state"`` and/or ``"goal"`` vectors."""
        super().reset(seed=seed)
        options = options or {}
        start = options.get("state")
        goal = options.get("goal")
        start = self.sample_state(self.np_random) if start is None else self._check_state(start)
        self._goal = (self._goal_like(start, self.np_random) if goal is None
                      else self._check_state(goal))
        self.set_state(start)
        return self.render(), self._info()

    def _goal_like(self, start: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A random goal compatible with ``start`` (Wall keeps the layout; default: any state)."""
        return self.sample_state(rng)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply one (clipped) action; returns ``obs, reward, terminated, truncated, info``."""
        self._apply_action(self._check_action(action))
        info = self._info()
        reward = 1.0 if info.get("success", False) else 0.0
        return self.render(), reward, False, False, info

    def render(self) -> np.ndarray:  # type: ignore[override]
        """Image of the current state."""
        return self.render_state(self.get_state())

    def sample_goal_pair(
        self, rng: np.random.Generator, steps: int, policy: Policy | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(start, goal): a random start and the state reached after ``steps`` policy actions.

        The environment's current state is restored afterwards.
        """
        saved = self.get_state()
        try:
            start = self.sample_state(rng)
            self.set_state(start)
            act = policy or self.random_policy(rng)
            for _ in range(int(steps)):
                self._apply_action(self._check_action(act(self.get_state())))
            goal = self.get_state()
        finally:
            self.set_state(saved)
        return start, goal

    def random_state_pair(self, rng: np.random.Generator, like: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(start, goal) drawn as DINO-WM's ``sample_random_init_goal_states`` draws them for its
        ``goal_source: random_state`` planning protocol; ``like`` is a recorded state whose fixed parts
        (Wall's layout) both keep. Default: two independent random states."""
        start = self.sample_state(rng)
        return start, self._goal_like(start, rng)

    def rollout(self, state: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """States ``(T+1, state_dim)`` visited from ``state`` under ``actions (T, A)``.

        The environment is left in the final state.
        """
        self.set_state(state)
        out = [self.get_state()]
        for a in np.asarray(actions, dtype=np.float64).reshape(-1, self.action_dim):
            self._apply_action(self._check_action(a))
            out.append(self.get_state())
        return np.stack(out)
