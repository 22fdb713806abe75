"""PointMaze against its references: Gymnasium-Robotics' PointMaze physics, DINO-WM's maze and camera.

The numbers written here (5 steps per action, the 1.8 offset, DINO-WM's free-space rule and its
velocity range) are restated from the reference files on purpose, not imported from the module,
so that changing a constant in the module fails these tests.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

pytest.importorskip("gymnasium")
mujoco = pytest.importorskip("mujoco")

from dinoworld.envs.pointmaze import PointMazeEnv, is_free

REF_FRAME_SKIP = 5  # DINO-WM env/pointmaze/maze_model.py: MujocoEnv.__init__(..., frame_skip=5)
REF_START_SPEED = 5.2262554  # DINO-WM point_maze_wrapper.py STATE_RANGES[2:4]


def to_gym(states: np.ndarray) -> np.ndarray:
    """D4RL/DINO-WM frame -> Gymnasium-Robotics' centred frame (positions and velocities)."""
    s = np.asarray(states, dtype=np.float64)
    return np.stack([s[..., 1] - 1.8, 1.8 - s[..., 0], s[..., 3], -s[..., 2]], axis=-1)


def action_to_gym(a: np.ndarray) -> np.ndarray:
    return np.array([a[1], -a[0]])


def dino_wm_free(x: float, y: float) -> bool:
    """DINO-WM's ``sample_random_init_goal_states`` acceptance rule."""
    return ((0.5 <= x <= 1.1 or 2.5 <= x <= 3.1) and 0.5 <= y <= 3.1) or (1.1 < x < 2.5 and 2.5 <= y <= 3.1)


@pytest.fixture(scope="module")
def env():
    made = PointMazeEnv(img_size=224)
    yield made
    made.close()


@pytest.fixture(scope="module")
def ref():
    """Gymnasium-Robotics' PointMaze_UMaze with DINO-WM's step: its ``PointEnv`` at frame_skip 5."""
    pytest.importorskip("gymnasium_robotics")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from gymnasium_robotics.envs.maze.maps import U_MAZE
        from gymnasium_robotics.envs.maze.point_maze import PointMazeEnv as RefPointMaze

    maze = RefPointMaze(maze_map=U_MAZE, continuing_task=True)
    tmp_xml = getattr(maze, "tmp_xml_file_path", None)
    if tmp_xml and os.path.exists(tmp_xml):
        os.remove(tmp_xml)
    maze.reset(seed=0)
    maze.point_env.frame_skip = REF_FRAME_SKIP
    yield maze
    maze.close()


def ref_set(ref, state_d4rl: np.ndarray) -> None:
    g = to_gym(state_d4rl)
    ref.point_env.set_state(g[:2], g[2:])


def ref_state(ref) -> np.ndarray:
    return ref.point_env._get_obs()[0].copy()


def wall_contacts(env) -> int:
    names = [mujoco.mj_id2name(env.model, mujoco.mjtObj.mjOBJ_GEOM, int(c.geom[k]))
             for c in env.data.contact[: env.data.ncon] for k in (0, 1)]
    return sum(n.startswith("wall") for n in names)


def test_parity_with_gymnasium_robotics(env, ref):
    """Same trajectories as Gymnasium-Robotics' PointMaze stepped 5 times per action."""
    rng = np.random.default_rng(0)
    starts = [env.sample_state(rng) for _ in range(16)]
    starts += [np.array([0.8, 1.0, 0.0, 5.2]), np.array([2.8, 3.0, -5.2, 0.0])]  # fast, into walls
    touching, fast = 0, 0
    for start in starts:
        actions = rng.uniform(-1.3, 1.3, size=(40, 2))  # beyond the action bounds too
        states = env.rollout(start, actions)
        ref_set(ref, start)
        ref_states = [to_gym(start)]
        for a in actions:
            ref.point_env.step(action_to_gym(a))
            ref_states.append(ref_state(ref))
        for s in states:
            env.set_state(s)
            touching += wall_contacts(env) > 0
            fast += np.abs(s[2:]).max() > 5.0
        np.testing.assert_allclose(to_gym(states), np.stack(ref_states), rtol=0, atol=1e-6)
        # One step from every visited state agrees to rounding (no accumulation).
        for s, a, nxt in zip(states[:-1], actions, states[1:]):
            ref_set(ref, s)
            ref.point_env.step(action_to_gym(a))
            np.testing.assert_allclose(to_gym(nxt), ref_state(ref), rtol=0, atol=1e-9)
    assert touching > 50 and fast > 10  # wall contacts and velocity clipping were exercised


def test_one_action_lasts_five_substeps(env):
    env.set_state(np.array([0.8, 1.0, 0.0, 0.0]))
    t0 = env.data.time
    env.step(np.zeros(2))
    assert env.data.time - t0 == pytest.approx(REF_FRAME_SKIP * 0.01)
    assert PointMazeEnv.world_version == "dino-wm-pointmaze-1"


def test_dino_wm_free_space_is_free_here(env, ref):
    """DINO-WM's free positions are collision-free here and in Gymnasium-Robotics' maze mapped."""
    rs = np.random.RandomState(0)
    pts = []
    while len(pts) < 2000:
        x, y = rs.uniform(0.5, 3.1), rs.uniform(0.5, 3.1)
        if dino_wm_free(x, y):
            pts.append((x, y))
    saved = env.get_state()
    ref_map = ref.maze.maze_map
    for x, y in pts:
        assert is_free(np.array([x, y])) and is_free(np.array([x, y]), margin=0.2)
        env.set_state(np.array([x, y, 0.0, 0.0]))
        assert wall_contacts(env) == 0
        gx, gy = to_gym(np.array([x, y, 0.0, 0.0]))[:2]
        for dx in (-0.1, 0.1):
            for dy in (-0.1, 0.1):
                i, j = ref.maze.cell_xy_to_rowcol(np.array([gx + dx, gy + dy]))
                assert ref_map[i][j] != 1
    env.set_state(saved)
    # The middle bar and the outer walls are walls.
    assert not is_free(np.array([1.8, 1.0])) and not is_free(np.array([0.2, 2.0]))
    assert not is_free(np.array([3.3, 2.0])) and not is_free(np.array([2.0, 3.35]))
    # Random states: DINO-WM's positions and its velocity range.
    rng = np.random.default_rng(1)
    states = np.stack([env.sample_state(rng) for _ in range(500)])
    assert all(dino_wm_free(x, y) for x, y in states[:, :2])
    assert np.abs(states[:, 2:]).max() <= REF_START_SPEED and np.abs(states[:, 2:]).max() > 5.0
    assert np.std(states[:, 2:]) == pytest.approx(REF_START_SPEED / np.sqrt(3), rel=0.1)
    assert states[:, 0].min() < 0.6 and states[:, 0].max() > 3.0 and states[:, 1].max() > 3.0


def test_doing_nothing_rarely_reaches_25_step_goals(env):
    rng = np.random.default_rng(0)
    wins = 0
    for _ in range(300):
        start, goal = env.sample_goal_pair(rng, steps=25)
        final = env.rollout(start, np.zeros((25, 2)))[-1]
        wins += env.eval_state(goal, final)["success"]
    assert wins / 300 < 0.3


def _green_centroid(img: np.ndarray) -> np.ndarray:
    rgb = img.astype(int)
    mask = (rgb[..., 1] > rgb[..., 0] + 30) & (rgb[..., 1] > rgb[..., 2] + 30)
    rows, cols = np.nonzero(mask)
    assert rows.size > 20
    return np.array([rows.mean(), cols.mean()])


def test_top_down_camera_as_dino_wm(env):
    """mujoco-py's free camera at the maze centre, 9.73 m up, fovy 45, rows bottom-up."""
    size, f = 224, 112 / np.tan(np.radians(22.5))
    assert env.model.stat.extent == pytest.approx(9.7348, abs=1e-3)
    for x, y in [(0.5, 0.5), (0.5, 3.1), (3.1, 0.5), (3.1, 3.1), (1.8, 3.0)]:  # the free corners
        world = np.array([x, y]) + 1.2
        col = size / 2 + f * (world[0] - 3.0) / env.model.stat.extent - 0.5
        row = size / 2 + f * (world[1] - 3.0) / env.model.stat.extent - 0.5
        np.testing.assert_allclose(_green_centroid(env.render_state(np.array([x, y, 1.0, 0.0]))),
                                   [row, col], atol=0.5)
