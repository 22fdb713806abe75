"""Wall: DINO-WM's dot-wall world (two rooms, one door), reproduced from its reference code.

Reference: ``env/wall`` of DINO-WM (github.com/gaoyuezhou/dino_wm), itself derived from PLDM's
DotWall. Paths below are relative to that repository. PLDM's own DotWall (``pldm_envs/wall/wall.py``,
``check_wall_intersect`` in ``pldm_envs/wall/data/wall_utils.py``) has the same crossing logic but a
random bounce (``|N(0, 0.5^2)|`` where DINO-WM uses the constant 0.5) and other constants (a
64-px world, wall width 3, dot std 1.3, ``pos + a``); none of that is used here.

Coordinates are pixel coordinates of the 65 x 65 reference canvas: pixel ``(row r, column c)`` is
centred on ``(x, y) = (c, r)``, ``x`` to the right, ``y`` downwards.

Constants (name = value: source)

* ``WORLD_PX = 65``: canvas size, ``img_size=65`` in ``DEFAULT_CFG`` of ``env/wall/wall_env_wrapper.py``.
* ``BORDER_WALL_LOC = 5``: same config (``border_wall_loc``). Border lines at ``BORDER_LO = 4``
  (``border_wall_loc - 1``) and ``BORDER_HI = 60`` (``img_size - border_wall_loc``), one pixel each
  (``_render_walls`` in ``env/wall/envs/wall.py``; ``check_wall_intersect`` in ``env/wall/envs/utils.py``).
* ``WALL_WIDTH = 6`` (``wall_width``, same config): the wall's faces are ``x = wall_x -/+ 3``
  (``wall_width // 2``); the mask ``wall_x - 3 <= c <= wall_x + 3`` draws 7 pixel columns.
* ``DOOR_SPACE = 4`` (``door_space``, same config): the door is ``door_y - 4 <= y <= door_y + 4``.
* ``DOT_STD = 1.7`` (``dot_std``, same config): the agent is a Gaussian dot.
* ``WALL_PADDING = 20``, ``DOOR_PADDING = 10`` (same config): layouts are the integer pairs
  ``wall_x in range(20, 45)``, ``door_y in range(10, 55)``, drawn uniformly
  (``generate_wall_layouts`` in ``env/wall/data/wall_utils.py`` with ``fix_wall=False``).
  ``DEFAULT_LAYOUT = (32, 30)``: ``fix_wall_location`` / ``fix_door_location`` of the same
  config, the env's layout until ``update_env`` copies one from a dataset episode (``WallEnv(layout=...)``).
* ``STEP_SCALE = 2``: ``_generate_transition`` in ``env/wall/envs/wall.py``: ``pos + 2 * action``,
  no clipping.
* ``BOUNCE = 0.5``, ``NUDGE = 0.3``: ``check_wall_intersect`` (``env/wall/envs/utils.py``).
* ``SUCCESS_DIST = 4.5``: ``eval_state`` in ``env/wall/wall_env_wrapper.py``:
  ``||goal[:2] - state[:2]|| < 4.5``.
* ``GOAL_PADDING = 2 * DOT_STD = 3.4``: ``padding`` / ``border_padding`` in ``DotWall.__init__`` and
  ``generate_random_state`` (``env/wall/envs/wall.py``), the start/goal sampler of ``plan_wall.yaml``'s
  ``goal_source: random_state``.
* ``ACTION_ANGLE_NOISE = 0.2``, ``STEP_MEAN = 1.0``, ``STEP_STD = 0.4``, ``STEP_BOUNDS = (0.2, 1.8)``:
  ``DEFAULT_CFG`` (``env/wall/wall_env_wrapper.py``), used by ``generate_actions`` in
  ``env/wall/data/single.py``.

Rules

* Step (``next_position``, from ``DotWall._calculate_next_position`` and ``check_wall_intersect``):
  ``q = p + 2 a``. (1) If the move goes down (``+y``) across the door's lower edge ``y = door_y + 4``
  at an ``x`` between the faces, the agent stops at that crossing point ``+ (0.5, -0.5)``; across
  the upper edge ``y = door_y - 4`` going up: ``+ (0.5, +0.5)``. (2) Otherwise the segment ``p -> q``
  is tested against the two vertical lines bounding the agent's side (the border and the near
  face of the wall; the face is open inside the door) and the two horizontal border lines. A line
  counts as crossed when ``p`` and ``q`` are on opposite sides or on it. Of a vertical and a
  horizontal hit the one nearer ``p`` wins (the horizontal one on a tie). The agent goes to the hit
  point plus ``(±0.5, +0.5)`` (vertical hit, x back toward ``p``) or ``(+0.5, ±0.5)`` (horizontal
  hit, y back toward ``p``), clamped to its side's box and moved 0.3 inside any line it lands on.
  (3) With no hit, ``q``.
* Rendering (``_render_walls``, ``_render_dot``, ``channels_to_img`` in ``env/wall/envs/wall.py``;
  ``TRANSFORM`` in ``env/wall/wall_env_wrapper.py``): on the 65-px canvas the dot is
  ``exp(-d^2 / (2 * 1.7^2))`` normalised by its maximum over the pixel grid, ``red = floor(255 * dot)``;
  floor pixels are ``(255, 255 - red, 255 - red)``, wall pixels ``(0, 0, 0)``. The image is then
  resized like ``torchvision.transforms.Resize((224, 224))`` on a float tensor: bilinear,
  half-pixel centres, antialiased (torchvision >= 0.17; the same as plain bilinear when enlarging),
  here to ``img_size``, and rounded to ``uint8``.
* Success: ``||goal[:2] - state[:2]|| < 4.5``.
* Starts (``sample_state``): ``generate_state`` of ``env/wall/data/single.py`` (the data generator):
  uniform in ``[4, 60]^2``; a point in the wall outside the door gets a new ``x``, uniform in
  ``[4, wall_x - 3]`` or ``[wall_x + 3, 60]`` with probability 1/2 each.
* Goals (``_goal_like``, ``random_state_pair``): ``generate_random_state``: start and goal in
  opposite rooms, ``x`` uniform in ``[7.4, wall_x - 3 - 3.4]`` (left) or ``[wall_x + 3 + 3.4, 56.6]``
  (right), ``y`` uniform in ``[7.4, 56.6]``.
* Exploration (``random_policy``): ``generate_actions`` of ``env/wall/data/single.py``: a heading
  ``theta_0 ~ U[0, 2 pi)``, then ``theta_t = theta_{t-1} + VonMises(0, 1 / 0.2)``; a length
  ``s_t ~ N(1, 0.4^2)`` truncated to ``[0.2, 1.8]``; action ``s_t (cos theta_t, sin theta_t)``.

Where this differs from the reference, on purpose

* Actions are not clipped (``_check_action`` only checks shape and finiteness), as in the reference.
  ``action_low/high = -/+1.8`` (the exploration policy's largest step) only describe the action
  space for sampling; ``step`` accepts any finite action.
* The reference divides by the move's ``dx`` (or ``dy``); a move with ``dx == 0`` exactly then
  gives NaN (border) or misses the door edges. Here such moves use the geometric limit (the line
  ``x = x_0``), and a move lying on a horizontal line meets it at its start.
* Arithmetic is float64 (the reference is float64 from its own starts, float32 from dataset states).
* ``render_state`` returns ``uint8`` (the reference keeps the resized float image); a dot whose
  Gaussian vanishes on the whole grid (only reachable through ``set_state``) is not drawn (NaN there).
* The goal sampler uses the layout's own faces (the reference keeps those of its initial
  layout, wall 32, after ``update_env``).
* The reference's data generator (``WallDataset.generate_transitions`` in
  ``env/wall/data/wall.py``) leaves the dot in place on any collision; the env, which plans and
  scores, uses the rule above, and so does this class.

Not fixed by the reference code: how DINO-WM's released ``wall_single`` data was generated (no
script is published). This class assumes it came from this env with the generator's actions
stored as they are (so :func:`dinoworld.data.dino_wm.wall` passes actions unchanged) and layouts drawn from the
grid above; ``WallEnv(layout=DEFAULT_LAYOUT)`` gives the single default layout instead.

State: ``[x, y, wall_x, door_y]`` (``state_fields``): the dot and the layout, so ``set_state`` and
``render_state`` are exact. Goals keep the start's layout. DINO-WM's released data stores the dot
position as ``states`` and the layout per frame as ``wall_locations`` / ``door_locations``; see
:func:`dinoworld.data.dino_wm.wall`.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ..data.trajectories import dino_wm_world
from .base import GoalEnv, Policy

WORLD_PX = 65
BORDER_WALL_LOC = 5
BORDER_LO = float(BORDER_WALL_LOC - 1)
BORDER_HI = float(WORLD_PX - BORDER_WALL_LOC)
WALL_WIDTH = 6
DOOR_SPACE = 4
DOT_STD = 1.7
WALL_PADDING = 20
DOOR_PADDING = 10
DEFAULT_LAYOUT = (32, 30)
STEP_SCALE = 2.0
BOUNCE = 0.5
NUDGE = 0.3
SUCCESS_DIST = 4.5
GOAL_PADDING = 2 * DOT_STD
ACTION_ANGLE_NOISE = 0.2
STEP_MEAN = 1.0
STEP_STD = 0.4
STEP_BOUNDS = (0.2, 1.8)


# --------------------------------------------------------------------------- dynamics
def _x_on_line(p: np.ndarray, q: np.ndarray, y_line: float) -> float:
    """``x`` where the line through ``p`` and ``q`` meets ``y = y_line``."""
    dx, dy = q[0] - p[0], q[1] - p[1]
    if dx == 0.0 or dy == 0.0:  # vertical move, or a move lying on the line
        return float(p[0])
    a = dy / dx
    return float((y_line - (p[1] - a * p[0])) / a)


def _y_on_line(p: np.ndarray, q: np.ndarray, x_line: float) -> float:
    """``y`` where the line through ``p`` and ``q`` meets ``x = x_line``."""
    dx, dy = q[0] - p[0], q[1] - p[1]
    if dx == 0.0:  # the move lies on the line
        return float(p[1])
    a = dy / dx
    return float(a * x_line + (p[1] - a * p[0]))


def _crosses(a: float, b: float, line: float) -> bool:
    """``a`` and ``b`` on opposite sides of ``line``, or one of them on it."""
    return bool(np.sign(a - line) * np.sign(b - line) <= 0)


def _hit_vertical(p: np.ndarray, q: np.ndarray, x_line: float, door_y: float | None) -> np.ndarray | None:
    """Where ``p -> q`` meets ``x = x_line`` outside the door (any crossing if ``door_y`` is None)."""
    if not _crosses(p[0], q[0], x_line):
        return None
    y = _y_on_line(p, q, x_line)
    if door_y is None or y < door_y - DOOR_SPACE or y > door_y + DOOR_SPACE:
        return np.array([x_line, y])
    return None


def _hit_horizontal(p: np.ndarray, q: np.ndarray, y_line: float) -> np.ndarray | None:
    """Where ``p -> q`` meets ``y = y_line`` (a border: no door)."""
    if not _crosses(p[1], q[1], y_line):
        return None
    return np.array([_x_on_line(p, q, y_line), y_line])


def next_position(pos: np.ndarray, action: np.ndarray, wall_x: float, door_y: float) -> np.ndarray:
    """DINO-WM's step: the dot at ``pos`` moved by ``2 * action`` with the wall and border rules."""
    p = np.asarray(pos, dtype=np.float64)
    q = p + STEP_SCALE * np.asarray(action, dtype=np.float64)
    half = WALL_WIDTH // 2
    face_lo, face_hi = wall_x - half, wall_x + half
    door_lo, door_hi = door_y - DOOR_SPACE, door_y + DOOR_SPACE

    # Leaving the door passage through one of its edges, inside the wall's thickness.
    if q[1] > p[1] and q[1] > door_hi and p[1] < door_hi:
        x = _x_on_line(p, q, door_hi)
        if face_lo <= x <= face_hi:
            return np.array([x + BOUNCE, door_hi - BOUNCE])
    if q[1] < p[1] and q[1] < door_lo and p[1] > door_lo:
        x = _x_on_line(p, q, door_lo)
        if face_lo <= x <= face_hi:
            return np.array([x + BOUNCE, door_lo + BOUNCE])

    # The box of the agent's side: border lines and the near face of the wall (open at the door).
    if wall_x > p[0]:
        left, left_door, right, right_door = BORDER_LO, None, face_lo, door_y
    else:
        left, left_door, right, right_door = face_hi, door_y, BORDER_HI, None
    top, bottom = BORDER_LO, BORDER_HI

    vertical = _hit_vertical(p, q, left, left_door)
    if vertical is None:
        vertical = _hit_vertical(p, q, right, right_door)
    horizontal = _hit_horizontal(p, q, top)
    if horizontal is None:
        horizontal = _hit_horizontal(p, q, bottom)

    if vertical is not None and (
        horizontal is None or np.linalg.norm(p - vertical) < np.linalg.norm(p - horizontal)
    ):
        hit, offset = vertical, np.array([BOUNCE * np.sign(p[0] - vertical[0]), BOUNCE])
    elif horizontal is not None:
        hit, offset = horizontal, np.array([BOUNCE, BOUNCE * np.sign(p[1] - horizontal[1])])
    else:
        return q

    x, y = hit + offset
    x, y = min(max(x, left), right), min(max(y, top), bottom)
    if x <= left:
        x = left + NUDGE
    if x >= right:
        x = right - NUDGE
    if y <= top:
        y = top + NUDGE
    if y >= bottom:
        y = bottom - NUDGE
    return np.array([x, y])


# --------------------------------------------------------------------------- rendering
def wall_mask(wall_x: float, door_y: float) -> np.ndarray:
    """Boolean ``(65, 65)`` mask (rows = y, columns = x) of the wall, its door and the border lines."""
    grid = np.arange(WORLD_PX, dtype=np.float64)
    half = WALL_WIDTH // 2
    in_wall = (grid >= wall_x - half) & (grid <= wall_x + half)
    in_door = (grid >= door_y - DOOR_SPACE) & (grid <= door_y + DOOR_SPACE)
    mask = in_wall[None, :] & ~in_door[:, None]
    for line in (int(BORDER_LO), int(BORDER_HI)):
        mask[:, line] = True
        mask[line, :] = True
    return mask


def dot_image(x: float, y: float) -> np.ndarray:
    """The Gaussian dot on the 65-px grid, normalised to a maximum of 1 (float64, rows = y)."""
    grid = np.arange(WORLD_PX, dtype=np.float64)
    d2 = (grid[None, :] - x) ** 2 + (grid[:, None] - y) ** 2
    img = np.exp(-d2 / (2.0 * DOT_STD * DOT_STD))
    peak = img.max()
    return img / peak if peak > 0 else img


def render_native(state: np.ndarray) -> np.ndarray:
    """Image ``uint8 (65, 65, 3)`` of a state at the reference resolution."""
    x, y, wall_x, door_y = (float(v) for v in np.asarray(state)[:4])
    red = np.floor(dot_image(x, y) * 255.0)
    img = np.full((WORLD_PX, WORLD_PX, 3), 255.0)
    img[..., 1] = img[..., 2] = 255.0 - red
    img[wall_mask(wall_x, door_y)] = 0.0
    return img.astype(np.uint8)


@functools.lru_cache(maxsize=16)
def resize_weights(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` weights of torch's antialiased bilinear resize (half-pixel centres).

    ``W @ column`` resizes one axis as ``torch.nn.functional.interpolate(..., mode="bilinear",
    align_corners=False, antialias=True)`` does, which ``torchvision.transforms.Resize`` calls.
    """
    scale = n_in / n_out
    support = max(scale, 1.0)
    inv = 1.0 / scale if scale > 1.0 else 1.0
    w = np.zeros((n_out, n_in))
    for i in range(n_out):
        center = scale * (i + 0.5)
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), n_in)
        taps = np.maximum(0.0, 1.0 - np.abs((np.arange(lo, hi) - center + 0.5) * inv))
        w[i, lo:hi] = taps / taps.sum()
    w.flags.writeable = False
    return w


def resize(img: np.ndarray, size: int) -> np.ndarray:
    """Resize an ``(H, W, C)`` image to ``(size, size, C)`` (float64, see :func:`resize_weights`)."""
    h, w, c = img.shape
    rows = resize_weights(h, size) @ img.astype(np.float64).reshape(h, w * c)  # (size, w * c)
    cols = rows.reshape(size, w, c).transpose(0, 2, 1) @ resize_weights(w, size).T  # (size, c, size)
    return cols.transpose(0, 2, 1)


def render_wall_state(state: np.ndarray, img_size: int) -> np.ndarray:
    """Image ``uint8 (img_size, img_size, 3)`` of a state: drawn at 65 px, then resized."""
    img = render_native(state)
    if img_size == WORLD_PX:
        return img
    return np.clip(np.rint(resize(img, img_size)), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- DINO-WM data
# --------------------------------------------------------------------------- environment
def _truncated_normal(rng: np.random.Generator, mean: float, std: float, lo: float, hi: float) -> float:
    while True:
        v = rng.normal(mean, std)
        if lo <= v <= hi:
            return float(v)


class WallEnv(GoalEnv):
    """DINO-WM's wall world: a Gaussian dot moved by ``2 * action`` between two rooms."""

    name = "wall"
    action_dim = 2
    state_dim = 4
    state_fields = ("x", "y", "wall_x", "door_y")
    action_low = -STEP_BOUNDS[1]  # the range random actions are drawn from; steps apply any action as given
    action_high = STEP_BOUNDS[1]
    clip_actions = False  # the reference moves the dot by 2 * action, unclipped
    world_version = dino_wm_world("wall")

    def __init__(self, img_size: int = 224, layout: tuple[float, float] | None = None) -> None:
        """``layout``: a fixed ``(wall_x, door_y)`` for every episode (e.g. ``DEFAULT_LAYOUT``);
        None draws one per episode."""
        super().__init__(img_size=img_size)
        self.layout = None if layout is None else (float(layout[0]), float(layout[1]))
        wall_x, door_y = self.layout or DEFAULT_LAYOUT
        self._state = np.array([16.0, 32.0, wall_x, door_y], dtype=np.float64)

    # ---------------------------------------------------------------- sampling
    def sample_layout(self, rng: np.random.Generator) -> tuple[float, float]:
        """``(wall_x, door_y)``: the fixed layout, or integers uniform over the reference's grid."""
        if self.layout is not None:
            return self.layout
        wall_x = rng.integers(WALL_PADDING, WORLD_PX - WALL_PADDING)
        door_y = rng.integers(DOOR_PADDING, WORLD_PX - DOOR_PADDING)
        return float(wall_x), float(door_y)

    def sample_state(self, rng: np.random.Generator) -> np.ndarray:
        """A start as the reference data generator draws it (see the module docstring)."""
        wall_x, door_y = self.sample_layout(rng)
        x, y = rng.uniform(BORDER_LO, BORDER_HI, size=2)
        half = WALL_WIDTH // 2
        if wall_x - half <= x <= wall_x + half and abs(y - door_y) > DOOR_SPACE:
            x = rng.uniform(BORDER_LO, wall_x - half) if rng.random() < 0.5 else rng.uniform(wall_x + half, BORDER_HI)
        return np.array([x, y, wall_x, door_y])

    def sample_room_position(self, rng: np.random.Generator, wall_x: float, room: int) -> np.ndarray:
        """DINO-WM's planning start/goal position in ``room`` (0: left of the wall, 1: right)."""
        half = WALL_WIDTH // 2
        lo, hi = BORDER_LO + GOAL_PADDING, WORLD_PX - 1 - BORDER_LO - GOAL_PADDING
        xr = (lo, wall_x - half - GOAL_PADDING) if room == 0 else (wall_x + half + GOAL_PADDING, hi)
        return np.array([rng.uniform(*xr), rng.uniform(lo, hi)])

    def random_state_pair(self, rng: np.random.Generator, like: np.ndarray | None = None
                          ) -> tuple[np.ndarray, np.ndarray]:
        """A (start, goal) pair in opposite rooms, as DINO-WM's ``goal_source: random_state``, in the
        layout of the state ``like`` (a random layout without one)."""
        wall_x, door_y = self.sample_layout(rng) if like is None else (float(like[2]), float(like[3]))
        room = int(rng.integers(2))
        start = self.sample_room_position(rng, wall_x, room)
        goal = self.sample_room_position(rng, wall_x, 1 - room)
        return np.r_[start, wall_x, door_y], np.r_[goal, wall_x, door_y]

    def _goal_like(self, start: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A goal in the room opposite the start's, same layout."""
        wall_x, door_y = float(start[2]), float(start[3])
        room = 1 if start[0] < wall_x else 0
        return np.r_[self.sample_room_position(rng, wall_x, room), wall_x, door_y]

    def random_policy(self, rng: np.random.Generator) -> Policy:
        """The reference data generator's actions: a von Mises walk of headings, truncated-normal lengths."""
        heading = rng.uniform(0.0, 2.0 * np.pi)
        started = False

        def act(state: np.ndarray) -> np.ndarray:
            nonlocal heading, started
            if started:
                heading = np.fmod(heading + rng.vonmises(0.0, 1.0 / ACTION_ANGLE_NOISE), 2.0 * np.pi)
            started = True
            length = _truncated_normal(rng, STEP_MEAN, STEP_STD, *STEP_BOUNDS)
            return length * np.array([np.cos(heading), np.sin(heading)])

        return act

    # ---------------------------------------------------------------- state
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
        s[:2] = next_position(s[:2], action, s[2], s[3])
