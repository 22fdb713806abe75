"""PushT as DINO-WM runs it: gym-pusht's pymunk scene behind the :class:`GoalEnv` interface.

The simulation is the one of ``gym-pusht`` (LeRobot, ``gym_pusht/envs/pusht.py``), which builds the
same scene as DINO-WM's ``env/pusht/pusht_env.py`` and diffusion policy's
``diffusion_policy/env/pusht/pusht_env.py`` (the origin of both, with the same constants): an
episode builds it once with gym-pusht's ``_setup()`` and steps that one ``pymunk.Space``, so
contacts carry over from step to step as in the references. On top of it, this module does what
DINO-WM's ``PushTEnv`` does differently from gym-pusht: relative actions, its state-setting order,
the agent velocity in the state, and its observation size.

Constants and their sources:

* Arena 512 x 512 px, y downwards; walls: segments between (5, 5) and (506, 506), radius 2; no
  gravity; ``space.damping = 0`` (each physics step moves a body by its last velocity, then
  clears that velocity before solving contacts) -- gym-pusht ``_setup`` (= DINO-WM ``_setup``).
* Pusher: kinematic disc, ``AGENT_RADIUS = 15`` -- gym-pusht ``add_circle``.
* T block (gym-pusht ``add_tee``, scale 30, length 4): ``BAR`` 120 x 30 (local x in [-60, 60],
  y in [0, 30]) and ``STEM`` 30 x 90 (x in [-15, 15], y in [30, 120]); mass 1; moment of inertia
  ``BLOCK_MOMENT = 3000`` (the bar's moment about the local origin counted twice, as
  ``add_tee`` does); centre of gravity ``BLOCK_COG = (0, 45)`` (mean of the two pieces'
  centroids). The block's position is its local origin (middle of the bar's top edge).
* Friction and elasticity 0: pymunk's shape defaults (the references set ``friction`` on bodies,
  which pymunk ignores).
* Control: PD gains ``KP = 100``, ``KD = 20``; ``SUBSTEPS = 10`` physics steps of ``DT = 0.01`` s
  per action (100 Hz physics, 10 Hz control) -- gym-pusht ``__init__`` / ``step`` (DINO-WM:
  ``k_p, k_v = 100, 20``, ``sim_hz = 100``, ``control_hz = 10``).
* Relative actions: ``step(a)`` (``a`` clipped to [-1, 1]^2) drives the pusher toward
  ``agent_pos + ACTION_SCALE * a`` with ``ACTION_SCALE = 100`` px -- DINO-WM ``PushTEnv(relative=True,
  action_scale=100)``; its ``datasets/pusht_dset.py`` divides the stored pixel actions by 100.
  gym-pusht takes the absolute target instead.
* ``set_state``: agent velocity, agent position, block angle, then block position (setting the angle
  turns the block about its centre of gravity, so the angle goes first), then one physics step of
  ``DT`` -- DINO-WM ``_set_state`` (non-legacy; diffusion policy's is the same without the velocity).
  gym-pusht sets the position before the angle and no velocity. The extra step matters even where
  it moves nothing: pymunk's contact solving depends on the space's history (without it, 2 of 30
  pushing episodes ended ~2 px from the reference).
* Success: ``||goal[:4] - state[:4]|| < SUCCESS_POS = 20`` (agent and block positions together) and
  block angle error ``< SUCCESS_ANGLE = pi / 9`` -- DINO-WM ``env/pusht/pusht_wrapper.py``
  ``eval_state``.
* Rendering (DINO-WM ``_render_frame``, the same drawing as gym-pusht's ``_render``, which draws it
  here): a 512-px pygame canvas, white; the target T in LightGreen at the fixed pose
  ``(256, 256, pi / 4)`` (DINO-WM ``with_target=True``; decoration, not the episode's goal); walls
  LightGray, 4 px wide; the pusher RoyalBlue with a 1.2x lighter disc 4 px smaller inside; the
  block with a LightSlateGray outline 4 px wide and a 1.2x lighter fill; pymunk's current contact
  points as short red lines (231, 76, 60); then ``cv2.resize`` (bilinear) to ``img_size``
  (DINO-WM ``render_size = 224``).
  ``render_state`` of a state other than the current one draws it without contact points.
* Reset: agent at integer positions in [50, 450)^2, block in [100, 400)^2 (gym-pusht / DINO-WM
  ``reset``), angle uniform (gym-pusht), at rest; here also resampled while the pusher is within
  5 px of the block.

State (10 floats, ``state_fields``): ``[agent_x, agent_y, block_x, block_y, block_angle, agent_vx,
agent_vy, block_vx, block_vy, block_omega]``. The first seven are DINO-WM's (``states.pth`` +
``velocities.pth``, angle in ``[0, 2 pi)``); the block's velocities are kept because the next
physics step moves the block by them (see damping above). 5- and 7-float DINO-WM states
are accepted (missing velocities are 0); :func:`dinoworld.data.dino_wm.pusht` converts DINO-WM's files.

Exactness: what the state vector cannot hold is pymunk's contact cache. ``set_state(s)`` for a state
this env has visited (among the last ``HISTORY``) sets the state that episode started from and
replays its actions, so stepping on from ``s`` is bit-identical to the original run, contacts
included. Any other state starts a new scene as DINO-WM's ``prepare`` does (above); ``get_state()``
then returns ``s`` itself when that step moved nothing (a state at rest, the pusher off the block),
else the state after it.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..data.trajectories import dino_wm_world
from .base import GoalEnv, Policy, ar1_policy, require, wrap_angle

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # gym-pusht imports pygame

ARENA = 512.0
AGENT_RADIUS = 15.0
BAR = np.array([[-60.0, 0.0], [60.0, 0.0], [60.0, 30.0], [-60.0, 30.0]])
STEM = np.array([[-15.0, 30.0], [15.0, 30.0], [15.0, 120.0], [-15.0, 120.0]])
#: Outline of the T in local coordinates, one closed loop (used by the expert for contact points).
T_OUTLINE = np.array([[-60.0, 0.0], [60.0, 0.0], [60.0, 30.0], [15.0, 30.0], [15.0, 120.0],
                      [-15.0, 120.0], [-15.0, 30.0], [-60.0, 30.0]])
BLOCK_MASS = 1.0
BLOCK_MOMENT = 3000.0
BLOCK_COG = np.array([0.0, 45.0])
ACTION_SCALE = 100.0
KP, KD = 100.0, 20.0
DT = 0.01
SUBSTEPS = 10
SUCCESS_POS, SUCCESS_ANGLE = 20.0, np.pi / 9
HISTORY = 4096


def rotation(angle: float) -> np.ndarray:
    """2x2 rotation matrix (pymunk convention; y down on screen)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def to_world(local: np.ndarray, pos: np.ndarray, angle: float) -> np.ndarray:
    """Block-local points ``(..., 2)`` to world coordinates."""
    return np.asarray(local) @ rotation(angle).T + np.asarray(pos)


def to_local(world: np.ndarray, pos: np.ndarray, angle: float) -> np.ndarray:
    """World points ``(..., 2)`` to block-local coordinates."""
    return (np.asarray(world) - np.asarray(pos)) @ rotation(angle)


def block_cog(state: np.ndarray) -> np.ndarray:
    """World position of the block's centre of gravity."""
    return to_world(BLOCK_COG, state[2:4], state[4])


def distance_to_block(points: np.ndarray, pos: np.ndarray, angle: float) -> np.ndarray:
    """Euclidean distance from world points ``(..., 2)`` to the T (0 inside)."""
    p = to_local(points, pos, angle)
    out = None
    for rect in (BAR, STEM):
        lo, hi = rect.min(0), rect.max(0)
        center, half = (lo + hi) / 2, (hi - lo) / 2
        d = np.linalg.norm(np.maximum(np.abs(p - center) - half, 0.0), axis=-1)
        out = d if out is None else np.minimum(out, d)
    return out


def _reference_scene(img_size: int) -> Any:
    """A gym-pusht PushT env whose scene (``space``, ``agent``, ``block``) is built and drawn."""
    gym_pusht = require("gym_pusht.envs.pusht", "PushT")
    scene = gym_pusht.PushTEnv(obs_type="state", render_mode="rgb_array",
                               observation_width=img_size, observation_height=img_size)
    scene._setup()
    return scene


def _place(scene: Any, state: np.ndarray) -> None:
    """Put the scene's bodies in ``state`` (DINO-WM's order: the angle before the position)."""
    agent, block = scene.agent, scene.block
    agent.velocity = (state[5], state[6])
    agent.position = (state[0], state[1])
    block.angle = state[4]
    block.position = (state[2], state[3])
    block.velocity = (state[7], state[8])
    block.angular_velocity = state[9]


def _read(scene: Any) -> np.ndarray:
    agent, block = scene.agent, scene.block
    return np.array([*agent.position, *block.position, block.angle % (2 * np.pi),
                     *agent.velocity, *block.velocity, block.angular_velocity], dtype=np.float64)


class PushTEnv(GoalEnv):
    """PushT with relative 2-D actions (see the module docstring for every constant)."""

    name = "pusht"
    world_version = dino_wm_world("pusht")
    action_dim = 2
    state_dim = 10
    state_fields = ("agent_x", "agent_y", "block_x", "block_y", "block_angle",
                    "agent_vx", "agent_vy", "block_vx", "block_vy", "block_omega")
    motion_fields = state_fields[5:]

    def __init__(self, img_size: int = 224) -> None:
        super().__init__(img_size=img_size)
        self._scene = _reference_scene(self.img_size)  # the simulation
        self._painter = _reference_scene(self.img_size)  # draws any state (render_state)
        self._visited: dict[bytes, tuple[np.ndarray, tuple[np.ndarray, ...]]] = {}
        self._state = np.full(self.state_dim, np.nan)
        self.set_state(np.array([256.0, 400.0, 256.0, 300.0] + [0.0] * 6))

    def sample_state(self, rng: np.random.Generator) -> np.ndarray:
        while True:
            agent = rng.integers(50, 450, size=2).astype(np.float64)
            block = rng.integers(100, 400, size=2).astype(np.float64)
            angle = float(np.float32(rng.uniform(0.0, 6.283185)))  # float32-exact and < 2 pi
            if distance_to_block(agent, block, angle) > AGENT_RADIUS + 5.0:
                return np.concatenate([agent, block, [angle], np.zeros(5)])

    def _check_state(self, state: np.ndarray) -> np.ndarray:
        arr = np.asarray(state, dtype=np.float64).reshape(-1)
        if arr.shape[0] in (5, 7):  # DINO-WM layouts without (all) velocities
            arr = np.concatenate([arr, np.zeros(self.state_dim - arr.shape[0])])
        return super()._check_state(arr)

    def get_state(self) -> np.ndarray:
        return self._state.copy()

    def set_state(self, state: np.ndarray) -> None:
        s = self._check_state(state)
        if np.array_equal(s, self._state):
            return
        start, actions = self._visited.get(s.tobytes(), (s, ()))
        scene = self._scene
        scene._setup()
        _place(scene, start)
        scene.space.step(DT)  # as DINO-WM's and gym-pusht's _set_state
        settled = _read(scene)
        at_rest = np.allclose(settled, start, rtol=0.0, atol=1e-9)  # only rounding changed
        self._start, self._actions = start, ()
        self._state = start.copy() if at_rest else settled
        self._remember()
        for a in actions:
            self._apply_action(a)

    def _remember(self) -> None:
        self._visited[self._state.tobytes()] = (self._start, self._actions)
        if len(self._visited) > HISTORY:
            del self._visited[next(iter(self._visited))]

    def _apply_action(self, action: np.ndarray) -> None:
        from pymunk.vec2d import Vec2d

        agent, space = self._scene.agent, self._scene.space
        target = agent.position + ACTION_SCALE * Vec2d(*action)
        for _ in range(SUBSTEPS):
            agent.velocity += (KP * (target - agent.position) - KD * agent.velocity) * DT
            space.step(DT)
        self._actions += (action,)
        self._state = _read(self._scene)
        self._remember()

    def render_state(self, state: np.ndarray) -> np.ndarray:
        s = self._check_state(state)
        scene = self._scene  # the current state: drawn with its contact points, as in DINO-WM
        if not np.array_equal(s, self._state):
            scene = self._painter
            _place(scene, s)
            for shape in scene.space.shapes:
                shape.cache_bb()  # drawing reads the shapes' cached world coordinates
        return np.ascontiguousarray(scene._render(), dtype=np.uint8)

    def eval_state(self, goal_state: np.ndarray, state: np.ndarray) -> dict[str, Any]:
        goal = np.asarray(goal_state, dtype=np.float64).reshape(-1)
        cur = np.asarray(state, dtype=np.float64).reshape(-1)
        pos_err = float(np.linalg.norm(goal[:4] - cur[:4]))
        ang_err = float(abs(wrap_angle(goal[4] - cur[4])))
        return {
            "success": bool(pos_err < SUCCESS_POS and ang_err < SUCCESS_ANGLE),
            "distance": pos_err,
            "angle_error": ang_err,
            "block_distance": float(np.linalg.norm(goal[2:4] - cur[2:4])),
            "position_success": bool(pos_err < SUCCESS_POS),  # the two parts of the test, to see which fails
            "angle_success": bool(ang_err < SUCCESS_ANGLE),
        }

    def state_cost(self, goal_state: np.ndarray, state: np.ndarray) -> float:
        """Both errors of the success test, each in units of its threshold."""
        ev = self.eval_state(goal_state, state)
        return ev["distance"] / SUCCESS_POS + ev["angle_error"] / SUCCESS_ANGLE

    def random_policy(self, rng: np.random.Generator) -> Policy:
        """Smooth random target offsets (AR(1), rho 0.8, sigma 0.3): mostly wanders the pusher."""
        return ar1_policy(rng, self.action_dim, rho=0.8, sigma=0.3)
