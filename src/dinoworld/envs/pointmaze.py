"""PointMaze: Gymnasium-Robotics ``PointMaze_UMaze`` (v3 model) behind the goal-env interface.

* Model: ``gymnasium_robotics.envs.maze.point_maze.PointMazeEnv`` with the U-maze map (D4RL's
  U-maze; cells of 1 m, maze centred on the origin, free cells span ``[-1.5, 1.5]^2`` minus the
  middle bar). The ball is a 2-DoF slide-jointed point (radius 0.1) driven by a force
  ``100 * clip(a, -1, 1)`` N; ``a in [-1, 1]^2``.
* Step: the same semantics as Gymnasium-Robotics' ``PointEnv.step`` (clip the action, clip the
  velocity to ``[-5, 5]``, one ``mj_step`` of 0.01 s), done directly on the MuJoCo model with the
  solver warm start cleared, so the next state is a pure function of ``(state, action)``:
  ``set_state(s); step(a)`` is exactly stepping on from ``s``. The library's goal bookkeeping
  (its own target, goal resampling, termination) is not used.
* State: ``[x, y, vx, vy]`` = MuJoCo ``qpos`` and ``qvel``.
* Images: MuJoCo offscreen rendering (``MUJOCO_GL=egl`` unless set otherwise before the first
  import of mujoco), an orthographic top-down camera framing the 5 x 5 m maze, ``img_size``
  square. The library's red target marker is hidden so an image depends on the state only.
* Success (DINO-WM): ball within 0.5 of the goal position.
* Reset: start and goal positions uniform over the free space (ball kept 0.15 from walls),
  zero velocity.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from dinoworld.envs.base import GoalEnv, Policy, ar1_policy, require
from dinoworld.errors import UserError

SUCCESS_DIST = 0.5
WALL_MARGIN = 0.15
MAX_VEL = 5.0
CAMERA_EXTENT = 5.0  # metres seen across the image (orthographic)


def _import_maze() -> Any:
    """Import MuJoCo (EGL by default) and Gymnasium-Robotics' point maze lazily."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    require("mujoco", "PointMaze")
    require("gymnasium_robotics", "PointMaze")
    return require("gymnasium_robotics.envs.maze.point_maze", "PointMaze")


class PointMazeEnv(GoalEnv):
    """Force-actuated ball in the U-maze; top-down MuJoCo images."""

    name = "pointmaze"
    action_dim = 2
    state_dim = 4
    state_fields = ("x", "y", "vx", "vy")

    def __init__(self, img_size: int = 224) -> None:
        super().__init__(img_size=img_size)
        point_maze = _import_maze()
        import mujoco

        self._mj = mujoco
        inner = point_maze.PointMazeEnv(maze_map=point_maze.U_MAZE, continuing_task=True)
        tmp_xml = getattr(inner, "tmp_xml_file_path", None)
        if tmp_xml and os.path.exists(tmp_xml):  # the library leaves its generated XML behind
            try:
                os.remove(tmp_xml)
            except OSError:
                pass
        self._inner = inner
        self.model = inner.point_env.model
        self.data = inner.point_env.data
        self.maze_map = [list(row) for row in inner.maze.maze_map]
        self._scaling = float(inner.maze.maze_size_scaling)
        self._x_center = float(inner.maze.x_map_center)
        self._y_center = float(inner.maze.y_map_center)
        target = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, "target")
        if target >= 0:
            self.model.site_rgba[target, 3] = 0.0
        if self.img_size > self.model.vis.global_.offwidth:
            self.model.vis.global_.offwidth = self.img_size
        if self.img_size > self.model.vis.global_.offheight:
            self.model.vis.global_.offheight = self.img_size
        self.model.vis.global_.orthographic = 1
        self.model.vis.global_.fovy = CAMERA_EXTENT
        self._renderer: Any = None
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FREE
        self._camera.lookat[:] = (0.0, 0.0, 0.0)
        self._camera.distance = 10.0
        self._camera.azimuth = 90.0
        self._camera.elevation = -90.0
        self._camera.orthographic = 1  # fovy is then the vertical extent in metres
        self.set_state(np.array([-1.0, 1.0, 0.0, 0.0]))

    # ---------------------------------------------------------------- geometry
    def is_free(self, xy: np.ndarray, margin: float = WALL_MARGIN) -> bool:
        """Whether a square of half-size ``margin`` around ``xy`` lies in free cells."""
        for dx in (-margin, margin):
            for dy in (-margin, margin):
                i = int(np.floor((self._y_center - (xy[1] + dy)) / self._scaling))
                j = int(np.floor((xy[0] + dx + self._x_center) / self._scaling))
                if not (0 <= i < len(self.maze_map) and 0 <= j < len(self.maze_map[0])):
                    return False
                if self.maze_map[i][j] == 1:
                    return False
        return True

    def sample_position(self, rng: np.random.Generator) -> np.ndarray:
        """Uniform free position (rejection sampling over the maze's bounding box)."""
        half_w, half_h = self._x_center, self._y_center
        while True:
            xy = np.array([rng.uniform(-half_w, half_w), rng.uniform(-half_h, half_h)])
            if self.is_free(xy):
                return xy

    def sample_state(self, rng: np.random.Generator) -> np.ndarray:
        return np.concatenate([self.sample_position(rng), np.zeros(2)])

    # ---------------------------------------------------------------- state
    def get_state(self) -> np.ndarray:
        return np.concatenate([self.data.qpos, self.data.qvel]).astype(np.float64)

    def set_state(self, state: np.ndarray) -> None:
        s = self._check_state(state)
        mj = self._mj
        mj.mj_resetData(self.model, self.data)
        self.data.qpos[:] = s[:2]
        self.data.qvel[:] = s[2:]
        mj.mj_forward(self.model, self.data)

    def _apply_action(self, action: np.ndarray) -> None:
        mj = self._mj
        self.data.qvel[:] = np.clip(self.data.qvel, -MAX_VEL, MAX_VEL)
        self.data.qacc_warmstart[:] = 0.0
        self.data.ctrl[:] = np.clip(action, -1.0, 1.0)
        mj.mj_step(self.model, self.data)

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
        saved = self.get_state()
        saved_ctrl = self.data.ctrl.copy()
        self.data.qpos[:] = s[:2]
        self.data.qvel[:] = s[2:]
        mj.mj_forward(self.model, self.data)
        self._renderer.update_scene(self.data, camera=self._camera)
        img = np.array(self._renderer.render(), dtype=np.uint8, copy=True)
        self.set_state(saved)
        self.data.ctrl[:] = saved_ctrl
        return img

    def random_policy(self, rng: np.random.Generator) -> Policy:
        """Smooth random forces: AR(1) actions (rho 0.8, sigma 0.8), clipped to [-1, 1]."""
        return ar1_policy(rng, self.action_dim, rho=0.8, sigma=0.8)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        inner = getattr(self, "_inner", None)
        if inner is not None:
            inner.close()
            self._inner = None
