"""PointMaze as DINO-WM runs it: D4RL's maze2d U-maze, in D4RL's own coordinates.

DINO-WM's ``env/pointmaze/maze_model.py`` is D4RL's ``d4rl/pointmaze/maze_model.py`` (mujoco-py,
MuJoCo 2.1); its ``point_maze_wrapper.py`` adds the planning helpers. This module builds the same
MuJoCo model with the official ``mujoco`` bindings and steps it the same way.

Frame. A state is ``[x, y, vx, vy]`` = the ball's ``qpos`` and ``qvel`` exactly as DINO-WM stores
them: ``x`` runs along the rows of the maze string, ``y`` along its columns, and the ball's body
sits at ``BALL_BODY_POS`` so its world position is ``qpos + 1.2``. DINO-WM's released states and
actions therefore need no transform (:func:`dinoworld.data.dino_wm.pointmaze` only checks them).
Gymnasium-Robotics' ``PointMaze_UMaze`` simulates the same physics in a centred, rotated frame:
its state is ``(y - 1.8, 1.8 - x, vy, -vx)`` and its action ``(a_y, -a_x)`` (see the parity test).

Constants and their sources (DINO-WM file unless said otherwise):

* ``U_MAZE`` (``env/pointmaze/maze_model.py``, registered as ``point_maze`` in ``env/__init__.py``):
  rows ``#####``, ``#GOO#``, ``###O#``, ``#OOO#``, ``#####``; ``#`` is a wall, other cells are free.
* ``CELL`` 1 m, ``WALL_HALF_HEIGHT`` 0.2: a wall in row ``i``, column ``j`` is a box centred at
  ``(i + 1, j + 1, 0)`` with half-sizes ``(0.5, 0.5, 0.2)`` (``maze_model.point_maze``).
* ``BALL_BODY_POS`` ``(1.2, 1.2, 0)``, ``BALL_RADIUS`` 0.1, ``DENSITY`` 1000 (mass 4.19 kg), slide
  joints along x and y with ``DAMPING`` 1, geoms with friction ``.5 .1 .1``, margin 0.002,
  condim 1 (``maze_model.point_maze``; identical in Gymnasium-Robotics' ``assets/point/point.xml``).
* ``TIMESTEP`` 0.01 s, Euler integrator, no gravity, 20 solver iterations (same sources).
* ``GEAR`` 100: two motors, ``ctrlrange [-1, 1]``, force ``100 * ctrl`` N (same sources).
* ``FRAME_SKIP`` 5: ``MazeEnv.__init__`` builds the env with ``frame_skip=5``; one action lasts
  0.05 s (Gymnasium-Robotics' ``envs/maze/point.py`` uses 1).
* Step (``MazeEnv.step``; same order in Gymnasium-Robotics' ``PointEnv.step``): clip the action
  to ``[-1, 1]``; clip the velocity to ``[-MAX_VEL, MAX_VEL]`` with ``MAX_VEL`` 5, once per action
  (``clip_velocity``); hold ``ctrl = action`` for ``FRAME_SKIP`` ``mj_step``s. The solver's warm
  start is cleared at each action so that the next state is a function of ``(state, action)``.
* ``SUCCESS_DIST`` 0.5: success when ``||goal[:2] - state[:2]|| < 0.5``
  (``point_maze_wrapper.eval_state``).
* Random states (``point_maze_wrapper.sample_random_init_goal_states``, DINO-WM's ``random_state``
  goals): a position uniform in ``[0.5, 3.1]^2`` kept if ``START_MARGIN`` (0.2) from every wall
  (its rule: ``0.5 <= x <= 1.1`` or ``2.5 <= x <= 3.1`` with ``0.5 <= y <= 3.1``, or
  ``1.1 < x < 2.5`` with ``2.5 <= y <= 3.1``), each velocity uniform in ``[-START_SPEED,
  START_SPEED]`` with ``START_SPEED`` 5.2262554 (``STATE_RANGES``). Used by ``reset`` and
  :meth:`PointMazeEnv.sample_state`.
* Exploration policy: actions i.i.d. uniform in ``[-1, 1]^2`` (the base class's). The paper's
  dataset (Table 7: 2000 episodes x 100 steps) is "fully random"; its script is not released.
* Camera (``MazeEnv.prepare_for_render``, ``_render_frame``; mujoco-py 2.1 ``MjRenderContext``):
  the free camera that mujoco-py sets up, looking at the median of the geom positions (world
  ``CAMERA_LOOKAT`` ``(3, 3, 0)``, the maze centre, with the ball where ``prepare_for_render`` puts
  it) from ``model.stat.extent`` (9.73 m: MuJoCo's bounding box of the model, ground included),
  turned top-down by DINO-WM (``CAMERA_AZIMUTH`` 90, ``CAMERA_ELEVATION`` -90), vertical
  field of view 45 degrees (MuJoCo's default), rendered at ``img_size`` square (DINO-WM: 224).
  mujoco-py returns the OpenGL buffer bottom row first and DINO-WM does not flip it, so images
  here are flipped the same way: image column ~ ``x``, image row ~ ``y``. The ball is drawn as
  D4RL draws it, the green 0.2-radius ``particle_site`` (the 0.1 collision sphere is transparent).
  DINO-WM moves its target marker to (11, 11), out of view; here it is left out of the model.
  Known difference: mujoco-py renders right after ``mj_step`` without ``mj_forward``, so DINO-WM's
  frames after a step show the ball one substep earlier (``qpos - 0.01 * qvel``: at most about
  0.06 m, under 2 px at 224); here every frame shows the state's own position.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..data.trajectories import dino_wm_world
from ..errors import UserError
from .base import GoalEnv, require

U_MAZE = ("#####", "#GOO#", "###O#", "#OOO#", "#####")
CELL = 1.0
WALL_HALF_HEIGHT = 0.2
BALL_BODY_POS = 1.2
BALL_RADIUS = 0.1
DENSITY = 1000.0
DAMPING = 1.0
TIMESTEP = 0.01
GEAR = 100.0
FRAME_SKIP = 5
MAX_VEL = 5.0
SUCCESS_DIST = 0.5
START_BOX = (0.5, 3.1)
START_MARGIN = 0.2
START_SPEED = 5.2262554
CAMERA_LOOKAT = (3.0, 3.0, 0.0)
CAMERA_AZIMUTH = 90.0
CAMERA_ELEVATION = -90.0


def maze_xml() -> str:
    """The MJCF of D4RL's ``point_maze(U_MAZE)``, target marker left out."""
    walls = "\n".join(
        f'    <geom name="wall_{i}_{j}" type="box" material="wall" conaffinity="1" '
        f'pos="{(i + 1) * CELL} {(j + 1) * CELL} 0" size="{CELL / 2} {CELL / 2} {WALL_HALF_HEIGHT}"/>'
        for i, row in enumerate(U_MAZE) for j, cell in enumerate(row) if cell == "#"
    )
    return f"""<mujoco model="point_maze">
  <compiler inertiafromgeom="true" angle="radian"/>
  <option timestep="{TIMESTEP}" gravity="0 0 0" iterations="20" integrator="Euler"/>
  <default>
    <joint damping="{DAMPING}" limited="false"/>
    <geom friction=".5 .1 .1" density="{DENSITY}" margin="0.002" condim="1" contype="2" conaffinity="1"/>
  </default>
  <asset>
    <texture type="2d" name="groundplane" builtin="checker" rgb1="0.2 0.3 0.4" rgb2="0.1 0.2 0.3"
             width="100" height="100"/>
    <texture name="skybox" type="skybox" builtin="gradient" rgb1=".4 .6 .8" rgb2="0 0 0"
             width="800" height="800" mark="random" markrgb="1 1 1"/>
    <material name="groundplane" texture="groundplane" texrepeat="20 20"/>
    <material name="wall" rgba=".7 .5 .3 1"/>
  </asset>
  <visual>
    <headlight ambient=".4 .4 .4" diffuse=".8 .8 .8" specular="0.1 0.1 0.1"/>
    <map znear=".01"/>
    <quality shadowsize="2048"/>
  </visual>
  <worldbody>
    <geom name="ground" size="40 40 0.25" pos="0 0 -0.1" type="plane" contype="1" conaffinity="0"
          material="groundplane"/>
    <body name="particle" pos="{BALL_BODY_POS} {BALL_BODY_POS} 0">
      <geom name="particle_geom" type="sphere" size="{BALL_RADIUS}" rgba="0 0 1 0" contype="1"/>
      <site name="particle_site" pos="0 0 0" size="0.2" rgba="0.3 0.6 0.3 1"/>
      <joint name="ball_x" type="slide" pos="0 0 0" axis="1 0 0"/>
      <joint name="ball_y" type="slide" pos="0 0 0" axis="0 1 0"/>
    </body>
{walls}
  </worldbody>
  <actuator>
    <motor joint="ball_x" ctrlrange="-1 1" ctrllimited="true" gear="{GEAR}"/>
    <motor joint="ball_y" ctrlrange="-1 1" ctrllimited="true" gear="{GEAR}"/>
  </actuator>
</mujoco>
"""


def is_free(xy: np.ndarray, margin: float = BALL_RADIUS) -> bool:
    """Whether the square of half-size ``margin`` around ball position ``xy`` (qpos) avoids walls."""
    for dx in (-margin, margin):
        for dy in (-margin, margin):
            # cell (i, j) spans world [i + 0.5, i + 1.5] x [j + 0.5, j + 1.5]; world = qpos + 1.2
            i = int(np.floor((xy[0] + dx + BALL_BODY_POS) / CELL - 0.5))
            j = int(np.floor((xy[1] + dy + BALL_BODY_POS) / CELL - 0.5))
            if not (0 <= i < len(U_MAZE) and 0 <= j < len(U_MAZE[0])) or U_MAZE[i][j] == "#":
                return False
    return True


class PointMazeEnv(GoalEnv):
    """Force-actuated ball in D4RL's U-maze, stepped and rendered as DINO-WM does."""

    name = "pointmaze"
    world_version = dino_wm_world("pointmaze")
    action_dim = 2
    state_dim = 4
    state_fields = ("x", "y", "vx", "vy")
    motion_fields = ("vx", "vy")

    def __init__(self, img_size: int = 224) -> None:
        super().__init__(img_size=img_size)
        os.environ.setdefault("MUJOCO_GL", "egl")
        mj = require("mujoco", "PointMaze")
        self._mj = mj
        self.model = mj.MjModel.from_xml_string(maze_xml())
        self.data = mj.MjData(self.model)
        self._render_data = mj.MjData(self.model)
        glob = self.model.vis.global_
        glob.offwidth = max(glob.offwidth, self.img_size)
        glob.offheight = max(glob.offheight, self.img_size)
        self._renderer: Any = None
        self._camera = mj.MjvCamera()
        self._camera.type = mj.mjtCamera.mjCAMERA_FREE
        self._camera.lookat[:] = CAMERA_LOOKAT
        self._camera.distance = self.model.stat.extent
        self._camera.azimuth = CAMERA_AZIMUTH
        self._camera.elevation = CAMERA_ELEVATION
        self.set_state(np.array([1.0, 1.0, 0.0, 0.0]))

    # ---------------------------------------------------------------- states
    def sample_position(self, rng: np.random.Generator) -> np.ndarray:
        """A position as DINO-WM's ``random_state``: uniform, ``START_MARGIN`` from every wall."""
        while True:
            xy = rng.uniform(*START_BOX, size=2)
            if is_free(xy, START_MARGIN):
                return xy

    def sample_state(self, rng: np.random.Generator) -> np.ndarray:
        return np.concatenate([self.sample_position(rng), rng.uniform(-START_SPEED, START_SPEED, size=2)])

    def get_state(self) -> np.ndarray:
        return np.concatenate([self.data.qpos, self.data.qvel]).astype(np.float64)

    def set_state(self, state: np.ndarray) -> None:
        s = self._check_state(state)
        self._mj.mj_resetData(self.model, self.data)
        self.data.qpos[:] = s[:2]
        self.data.qvel[:] = s[2:]
        self._mj.mj_forward(self.model, self.data)

    def _apply_action(self, action: np.ndarray) -> None:
        d = self.data
        d.qvel[:] = np.clip(d.qvel, -MAX_VEL, MAX_VEL)
        d.qacc_warmstart[:] = 0.0
        d.ctrl[:] = np.clip(action, -1.0, 1.0)
        self._mj.mj_step(self.model, d, FRAME_SKIP)

    def eval_state(self, goal_state: np.ndarray, state: np.ndarray) -> dict[str, Any]:
        dist = float(np.linalg.norm(np.asarray(goal_state)[:2] - np.asarray(state)[:2]))
        return {"success": dist < SUCCESS_DIST, "distance": dist}

    # ---------------------------------------------------------------- images
    def render_state(self, state: np.ndarray) -> np.ndarray:
        s = self._check_state(state)
        mj = self._mj
        if self._renderer is None:
            try:
                self._renderer = mj.Renderer(self.model, self.img_size, self.img_size)
            except Exception as exc:  # no usable OpenGL backend
                raise UserError(
                    f"PointMaze cannot render with MUJOCO_GL={os.environ.get('MUJOCO_GL')!r} ({exc}); "
                    "set MUJOCO_GL=egl before anything imports mujoco and install EGL "
                    "(apt-get install libegl1 libgl1-mesa-dri)"
                ) from exc
        d = self._render_data
        d.qpos[:] = s[:2]
        d.qvel[:] = s[2:]
        mj.mj_kinematics(self.model, d)
        self._renderer.update_scene(d, camera=self._camera)
        return np.ascontiguousarray(self._renderer.render()[::-1])  # bottom row first, as mujoco-py

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
