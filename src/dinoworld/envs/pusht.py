"""PushT: push a T-shaped block with a disc pusher (after Chi et al. / DINO-WM), on pymunk < 7.

Geometry and physics follow the public PushT numbers used by DINO-WM:

* Arena 512 x 512 (y downwards, as in the image), static border segments from 5 to 506 with
  radius 2. The image is drawn with PIL at ``2 * img_size`` and box-filtered down to ``img_size``
  (no pygame, no display).
* Pusher: kinematic disc of radius 15. T block: a 120 x 30 bar (local ``x in [-60, 60]``,
  ``y in [0, 30]``) and a 30 x 90 stem (``x in [-15, 15]``, ``y in [30, 120]``); mass 1, moment of
  inertia ``2 * moment_for_poly(1, bar)`` (= 3000, the reference implementation's value), centre of
  gravity at local ``(0, 45)`` (mean of the two pieces' centroids). The block's *position* is its
  local origin (middle of the bar's top edge), its angle is in radians.
* No gravity, ``space.damping = 0`` (bodies lose all velocity each substep: quasi-static pushing);
  shapes have pymunk's default friction 0 (the reference sets ``friction`` on bodies, which pymunk
  ignores, so contacts are frictionless there too).
* Control: ``step(a)`` with ``a in [-1, 1]^2`` (clipped) sets the pusher target to
  ``agent_pos + 100 * a`` (relative action, ``ACTION_SCALE = 100`` px as DINO-WM's
  ``action_scale``) and runs ``SUBSTEPS = 10`` physics steps of ``DT = 0.01`` s (100 Hz physics,
  10 Hz control) with the PD law ``dv = (KP * (target - p) - KD * v) * DT``, ``KP = 100``,
  ``KD = 20``.
* State (10 floats): ``[agent_x, agent_y, block_x, block_y, block_angle, agent_vx, agent_vy,
  block_vx, block_vy, block_omega]``. The first seven match DINO-WM's ``states`` + ``velocities``
  (angle wrapped to ``[0, 2 pi)``); the block velocities are kept so that the state is *complete*:
  each step rebuilds the pymunk space from the state vector, so ``set_state(s); step(a)`` is
  bit-identical to stepping on from ``s`` (no hidden solver caches). ``set_state`` also accepts the
  5- or 7-float DINO-WM layouts (missing velocities = 0).
* Success (DINO-WM ``eval_state``): ``||goal[:4] - state[:4]|| < 20`` (agent and block positions
  together) and wrapped block angle error ``< pi / 9``.
* Reset: agent uniform in ``[50, 450]^2``, block position uniform in ``[100, 400]^2``, angle
  uniform in ``[0, 2 pi)``, resampled while the pusher overlaps the block; the goal is an
  independent draw. The light-green target T drawn in every frame sits at DINO-WM's fixed pose
  ``(256, 256, pi / 4)`` (``draw_target=False`` removes it); it is decoration, not the goal.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dinoworld.envs.base import GoalEnv, Policy, ar1_policy, require, wrap_angle

ARENA = 512.0
WALL_LO, WALL_HI, WALL_RADIUS = 5.0, 506.0, 2.0
AGENT_RADIUS = 15.0
BAR = np.array([[-60.0, 0.0], [60.0, 0.0], [60.0, 30.0], [-60.0, 30.0]])
STEM = np.array([[-15.0, 30.0], [15.0, 30.0], [15.0, 120.0], [-15.0, 120.0]])
#: Outline of the T in local coordinates, one closed loop (used by the expert for contact points).
T_OUTLINE = np.array([[-60.0, 0.0], [60.0, 0.0], [60.0, 30.0], [15.0, 30.0], [15.0, 120.0],
                      [-15.0, 120.0], [-15.0, 30.0], [-60.0, 30.0]])
BLOCK_MASS = 1.0
BLOCK_COG = np.array([0.0, 45.0])
ACTION_SCALE = 100.0
SIM_HZ, CONTROL_HZ = 100, 10
DT = 1.0 / SIM_HZ
SUBSTEPS = SIM_HZ // CONTROL_HZ
KP, KD = 100.0, 20.0
SUCCESS_POS, SUCCESS_ANGLE = 20.0, np.pi / 9
TARGET_POSE = np.array([256.0, 256.0, np.pi / 4])

BG_COLOR = (255, 255, 255)
WALL_COLOR = (211, 211, 211)  # LightGray
TARGET_COLOR = (144, 238, 144)  # LightGreen
AGENT_COLOR, AGENT_INNER = (65, 105, 225), (78, 126, 255)  # RoyalBlue and 1.2x lighter
BLOCK_EDGE, BLOCK_FILL = (119, 136, 153), (142, 163, 183)  # LightSlateGray and 1.2x lighter


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


def block_moment() -> float:
    """Moment of inertia of the block, as in the reference PushT (bar counted twice)."""
    pymunk = require("pymunk", "PushT")
    return 2.0 * pymunk.moment_for_poly(BLOCK_MASS, [tuple(v) for v in BAR])


def simulate_step(state: np.ndarray, action: np.ndarray, moment: float) -> np.ndarray:
    """One PushT env step from a full 10-float state: returns the next state (pure function)."""
    pymunk = require("pymunk", "PushT")
    space = pymunk.Space()
    space.gravity = (0.0, 0.0)
    space.damping = 0.0
    corners = [(WALL_LO, WALL_HI), (WALL_LO, WALL_LO), (WALL_HI, WALL_LO), (WALL_HI, WALL_HI)]
    for a, b in zip(corners, corners[1:] + corners[:1]):
        space.add(pymunk.Segment(space.static_body, a, b, WALL_RADIUS))

    agent = pymunk.Body(body_type=pymunk.Body.KINEMATIC)
    agent.position = (float(state[0]), float(state[1]))
    agent.velocity = (float(state[5]), float(state[6]))
    space.add(agent, pymunk.Circle(agent, AGENT_RADIUS))

    block = pymunk.Body(BLOCK_MASS, moment)
    shapes = [pymunk.Poly(block, [tuple(v) for v in BAR]), pymunk.Poly(block, [tuple(v) for v in STEM])]
    block.center_of_gravity = tuple(BLOCK_COG)
    block.angle = float(state[4])  # angle first: setting it rotates about the centre of gravity
    block.position = (float(state[2]), float(state[3]))
    block.velocity = (float(state[7]), float(state[8]))
    block.angular_velocity = float(state[9])
    space.add(block, *shapes)

    target = np.asarray(state[:2], dtype=np.float64) + ACTION_SCALE * np.asarray(action, dtype=np.float64)
    for _ in range(SUBSTEPS):
        p = np.array(agent.position)
        v = np.array(agent.velocity)
        acc = KP * (target - p) - KD * v
        agent.velocity = tuple(v + acc * DT)
        space.step(DT)

    return np.array([
        agent.position.x, agent.position.y, block.position.x, block.position.y,
        block.angle % (2 * np.pi), agent.velocity.x, agent.velocity.y,
        block.velocity.x, block.velocity.y, block.angular_velocity,
    ], dtype=np.float64)


def render_pusht_state(state: np.ndarray, img_size: int, draw_target: bool = True,
                       supersample: int = 2) -> np.ndarray:
    """RGB image ``uint8 (img_size, img_size, 3)`` of a PushT state (PIL, anti-aliased)."""
    from PIL import Image, ImageDraw

    big = img_size * supersample
    k = big / ARENA
    img = Image.new("RGB", (big, big), BG_COLOR)
    draw = ImageDraw.Draw(img)

    def poly(local: np.ndarray, pos: np.ndarray, angle: float) -> list[tuple[float, float]]:
        return [(float(x) * k, float(y) * k) for x, y in to_world(local, pos, angle)]

    def circle(c: np.ndarray, r: float, color: tuple[int, int, int]) -> None:
        x, y = float(c[0]) * k, float(c[1]) * k
        draw.ellipse([x - r * k, y - r * k, x + r * k, y + r * k], fill=color)

    if draw_target:
        for piece in (BAR, STEM):
            draw.polygon(poly(piece, TARGET_POSE[:2], TARGET_POSE[2]), fill=TARGET_COLOR)
    width = max(1, int(round(2 * WALL_RADIUS * k)))
    corners = [(WALL_LO, WALL_HI), (WALL_LO, WALL_LO), (WALL_HI, WALL_LO), (WALL_HI, WALL_HI)]
    for a, b in zip(corners, corners[1:] + corners[:1]):
        draw.line([(a[0] * k, a[1] * k), (b[0] * k, b[1] * k)], fill=WALL_COLOR, width=width)
    circle(state[:2], AGENT_RADIUS, AGENT_COLOR)
    circle(state[:2], AGENT_RADIUS - 4, AGENT_INNER)
    edge = max(1, int(round(4 * k)))
    for piece in (BAR, STEM):
        pts = poly(piece, state[2:4], state[4])
        draw.polygon(pts, fill=BLOCK_FILL)
        draw.line(pts + pts[:1], fill=BLOCK_EDGE, width=edge, joint="curve")
    if supersample > 1:
        img = img.reduce(supersample)
    return np.asarray(img, dtype=np.uint8).copy()


class PushTEnv(GoalEnv):
    """PushT with relative 2-D actions (see module docstring for every constant)."""

    name = "pusht"
    action_dim = 2
    state_dim = 10
    state_fields = ("agent_x", "agent_y", "block_x", "block_y", "block_angle",
                    "agent_vx", "agent_vy", "block_vx", "block_vy", "block_omega")

    def __init__(self, img_size: int = 224, draw_target: bool = True, supersample: int = 2) -> None:
        super().__init__(img_size=img_size)
        self.draw_target = bool(draw_target)
        self.supersample = int(supersample)
        self._moment = block_moment()
        self._state = np.array([256.0, 400.0, 256.0, 300.0] + [0.0] * 6)

    def sample_state(self, rng: np.random.Generator) -> np.ndarray:
        while True:
            agent = rng.uniform(50.0, 450.0, size=2)
            block = rng.uniform(100.0, 400.0, size=2)
            angle = rng.uniform(0.0, 2 * np.pi)
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
        self._state = self._check_state(state)

    def render_state(self, state: np.ndarray) -> np.ndarray:
        return render_pusht_state(self._check_state(state), self.img_size, self.draw_target,
                                  self.supersample)

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
        }

    def _apply_action(self, action: np.ndarray) -> None:
        self._state = simulate_step(self._state, action, self._moment)

    def random_policy(self, rng: np.random.Generator) -> Policy:
        """Smooth random target offsets (AR(1), rho 0.8, sigma 0.3): mostly wanders the pusher."""
        return ar1_policy(rng, self.action_dim, rho=0.8, sigma=0.3)

