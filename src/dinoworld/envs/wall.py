"""Wall: 2-D navigation between two rooms joined by a door (after DINO-WM's "Wall").

World: a 64 x 64 square in the env's own units (DINO-WM draws a ~64 px image and resizes it
to 224; we render straight at ``img_size``, so 1 unit = ``img_size / 64`` pixels). Coordinates are
``x`` to the right and ``y`` downwards, as in the image.

* Border walls: the free interior is ``[4, 60] x [4, 60]`` (1-unit border lines are drawn).
* Middle wall: the vertical band ``|x - wall_x| <= 3`` (6 units thick) with ``wall_x`` drawn
  uniformly in ``[28, 36]`` per episode, pierced by a door ``|y - door_y| <= 4.5`` (9 units tall)
  with ``door_y`` uniform in ``[14, 50]``.
* Agent: a disc of radius 1.5, drawn red. For collisions it is treated as its bounding square, so
  its centre must stay 1.5 units away (in x and y) from every wall; inside the door it must fit
  vertically (``|y - door_y| <= 3``) to get through.
* Action: ``a in [-1, 1]^2`` (clipped) moves the agent by ``2 * a`` units (DINO-WM's
  ``pos + 2 * action``). The move is taken in sub-steps of at most 0.25 units; a sub-step that
  would enter a wall keeps only its free axis (the agent slides along walls), so it can never
  tunnel through the 6-unit wall.
* State: ``[x, y, wall_x, door_y]`` (the layout is part of the state so ``set_state`` and
  ``render_state`` are exact). Goals keep the start's layout.
* Success (DINO-WM): agent within 4.5 units of the goal position.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from dinoworld.envs.base import GoalEnv, Policy, ar1_policy

WORLD = 64.0
INTERIOR = (4.0, 60.0)
BORDER_THICKNESS = 1.0
WALL_HALF_WIDTH = 3.0
WALL_X_RANGE = (28.0, 36.0)
DOOR_HALF_HEIGHT = 4.5
DOOR_Y_RANGE = (14.0, 50.0)
AGENT_RADIUS = 1.5
STEP_SCALE = 2.0
SUBSTEP = 0.25
SUCCESS_DIST = 4.5

BACKGROUND = np.array([255, 255, 255], dtype=np.float32)
WALL_COLOR = np.array([0, 0, 0], dtype=np.float32)
AGENT_COLOR = np.array([230, 20, 20], dtype=np.float32)


def is_free(x: float, y: float, wall_x: float, door_y: float) -> bool:
    """Whether the agent centre may be at ``(x, y)`` (bounding-square collision model)."""
    lo, hi = INTERIOR[0] + AGENT_RADIUS, INTERIOR[1] - AGENT_RADIUS
    if not (lo <= x <= hi and lo <= y <= hi):
        return False
    if abs(x - wall_x) < WALL_HALF_WIDTH + AGENT_RADIUS:
        return abs(y - door_y) <= DOOR_HALF_HEIGHT - AGENT_RADIUS
    return True


def move(pos: np.ndarray, delta: np.ndarray, wall_x: float, door_y: float) -> np.ndarray:
    """Move the agent centre by ``delta`` with wall collisions (sub-steps, sliding)."""
    x, y = float(pos[0]), float(pos[1])
    n = max(1, int(np.ceil(float(np.max(np.abs(delta))) / SUBSTEP)))
    dx, dy = float(delta[0]) / n, float(delta[1]) / n
    for _ in range(n):
        if is_free(x + dx, y + dy, wall_x, door_y):
            x, y = x + dx, y + dy
        elif is_free(x + dx, y, wall_x, door_y):
            x = x + dx
        elif is_free(x, y + dy, wall_x, door_y):
            y = y + dy
    return np.array([x, y], dtype=np.float64)


def _coverage_1d(lo: float, hi: float, edges: np.ndarray) -> np.ndarray:
    """Fraction of each pixel interval ``[edges[i], edges[i+1]]`` inside ``[lo, hi]``."""
    a = np.maximum(edges[:-1], lo)
    b = np.minimum(edges[1:], hi)
    return np.clip(b - a, 0.0, None) / (edges[1:] - edges[:-1])


@functools.lru_cache(maxsize=64)
def _background(wall_x: float, door_y: float, img_size: int) -> np.ndarray:
    """Float image of the walls for one layout (cached: the layout is fixed per episode)."""
    edges = np.linspace(0.0, WORLD, img_size + 1)
    # Wall rectangles (x0, x1, y0, y1); exact box-filter coverage per pixel, union by max.
    i0, i1, t = INTERIOR[0], INTERIOR[1], BORDER_THICKNESS
    rects = [
        (i0 - t, i1 + t, i0 - t, i0), (i0 - t, i1 + t, i1, i1 + t),  # top, bottom
        (i0 - t, i0, i0 - t, i1 + t), (i1, i1 + t, i0 - t, i1 + t),  # left, right
        (wall_x - WALL_HALF_WIDTH, wall_x + WALL_HALF_WIDTH, i0, door_y - DOOR_HALF_HEIGHT),
        (wall_x - WALL_HALF_WIDTH, wall_x + WALL_HALF_WIDTH, door_y + DOOR_HALF_HEIGHT, i1),
    ]
    wall = np.zeros((img_size, img_size), dtype=np.float32)
    for x0, x1, y0, y1 in rects:
        cov = np.outer(_coverage_1d(y0, y1, edges), _coverage_1d(x0, x1, edges))
        np.maximum(wall, cov, out=wall)
    img = BACKGROUND * (1.0 - wall[..., None]) + WALL_COLOR * wall[..., None]
    img.flags.writeable = False
    return img


def render_wall_state(state: np.ndarray, img_size: int) -> np.ndarray:
    """Anti-aliased image of a Wall state: white floor, black walls, red agent disc."""
    x, y, wall_x, door_y = (float(v) for v in state[:4])
    img = _background(wall_x, door_y, int(img_size)).copy()
    # Agent disc, composited in a window around it: linear ramp one pixel wide across the rim.
    px = WORLD / img_size
    reach = AGENT_RADIUS + 2.0 * px
    j0, j1 = max(0, int((x - reach) / px)), min(img_size, int((x + reach) / px) + 1)
    i0, i1 = max(0, int((y - reach) / px)), min(img_size, int((y + reach) / px) + 1)
    if j1 > j0 and i1 > i0:
        cx = (np.arange(j0, j1) + 0.5) * px
        cy = (np.arange(i0, i1) + 0.5) * px
        dist = np.sqrt((cx[None, :] - x) ** 2 + (cy[:, None] - y) ** 2)
        a = np.clip((AGENT_RADIUS - dist) / px + 0.5, 0.0, 1.0).astype(np.float32)[..., None]
        img[i0:i1, j0:j1] = img[i0:i1, j0:j1] * (1.0 - a) + AGENT_COLOR * a
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)

class WallEnv(GoalEnv):
    """Two rooms, one door, a disc agent moved by clipped 2-D displacements."""

    name = "wall"
    action_dim = 2
    state_dim = 4
    state_fields = ("x", "y", "wall_x", "door_y")

    def __init__(self, img_size: int = 224) -> None:
        super().__init__(img_size=img_size)
        self._state = np.array([16.0, 32.0, 32.0, 32.0])

    def sample_layout(self, rng: np.random.Generator) -> tuple[float, float]:
        """A random ``(wall_x, door_y)``."""
        return float(rng.uniform(*WALL_X_RANGE)), float(rng.uniform(*DOOR_Y_RANGE))

    def sample_position(self, rng: np.random.Generator, wall_x: float, door_y: float,
                        room: int | None = None) -> np.ndarray:
        """A uniform free position in ``room`` (0 = left, 1 = right, None = either)."""
        room = int(rng.integers(2)) if room is None else room
        lo, hi = INTERIOR[0] + AGENT_RADIUS, INTERIOR[1] - AGENT_RADIUS
        gap = WALL_HALF_WIDTH + AGENT_RADIUS
        xr = (lo, wall_x - gap) if room == 0 else (wall_x + gap, hi)
        return np.array([rng.uniform(*xr), rng.uniform(lo, hi)])

    def sample_state(self, rng: np.random.Generator) -> np.ndarray:
        wall_x, door_y = self.sample_layout(rng)
        pos = self.sample_position(rng, wall_x, door_y)
        return np.array([pos[0], pos[1], wall_x, door_y])

    def _goal_like(self, start: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        pos = self.sample_position(rng, start[2], start[3])
        return np.array([pos[0], pos[1], start[2], start[3]])

    def get_state(self) -> np.ndarray:
        return self._state.copy()

    def set_state(self, state: np.ndarray) -> None:
        self._state = self._check_state(state)

    def render_state(self, state: np.ndarray) -> np.ndarray:
        return render_wall_state(self._check_state(state), self.img_size)

    def eval_state(self, goal_state: np.ndarray, state: np.ndarray) -> dict[str, Any]:
        dist = float(np.linalg.norm(np.asarray(goal_state)[:2] - np.asarray(state)[:2]))
        return {"success": dist < SUCCESS_DIST, "distance": dist}

    def _apply_action(self, action: np.ndarray) -> None:
        s = self._state
        s[:2] = move(s[:2], STEP_SCALE * action, s[2], s[3])

    def random_policy(self, rng: np.random.Generator) -> Policy:
        """Smooth random walk: AR(1) actions ``a <- 0.9 a + sqrt(0.19) * 0.8 * N(0, I)``, clipped.

        Over 50 steps the agent moves ~22 units on average; ~12 % of such episodes pass the door.
        """
        return ar1_policy(rng, self.action_dim, rho=0.9, sigma=0.8)

