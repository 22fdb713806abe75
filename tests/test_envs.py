"""Planning environments: determinism, state access, rendering, goals, physics specifics."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from dinoworld.envs import ENV_NAMES, make_env
from dinoworld.errors import UserError

IMG = 64


def _needs(name: str) -> None:
    if name == "pointmaze":
        pytest.importorskip("mujoco")
        pytest.importorskip("gymnasium_robotics")
    if name == "pusht":
        pytest.importorskip("pymunk")
        pytest.importorskip("gym_pusht")
    pytest.importorskip("gymnasium")


@pytest.fixture(scope="module")
def envs():
    """One env per name, shared by the module (PointMaze setup costs ~1 s)."""
    made = {}
    yield made
    for env in made.values():
        env.close()


def get_env(envs, name):
    _needs(name)
    if name not in envs:
        envs[name] = make_env(name, img_size=IMG)
    return envs[name]


def _run(env, seed: int, n: int = 6):
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng(123)
    states, images = [info["state"]], [obs]
    for _ in range(n):
        obs, _, _, _, info = env.step(rng.uniform(-1, 1, size=env.action_dim))
        states.append(info["state"])
        images.append(obs)
    return np.stack(states), np.stack(images)


def test_registry():
    assert set(ENV_NAMES) == {"pusht", "wall", "pointmaze"}
    with pytest.raises(UserError, match="unknown environment"):
        make_env("cartpole")


@pytest.mark.parametrize("name", ENV_NAMES)
def test_determinism_under_seed(envs, name):
    _needs(name)
    a, b = make_env(name, img_size=IMG), make_env(name, img_size=IMG)
    try:
        sa, ia = _run(a, seed=7)
        sb, ib = _run(b, seed=7)
        sc, _ = _run(b, seed=8)
    finally:
        a.close()
        b.close()
    assert ia.dtype == np.uint8 and ia.shape == (7, IMG, IMG, 3)
    np.testing.assert_array_equal(sa, sb)
    np.testing.assert_array_equal(ia, ib)
    assert not np.allclose(sa[0], sc[0])


@pytest.mark.parametrize("name", ENV_NAMES)
def test_spaces_and_info(envs, name):
    env = get_env(envs, name)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert env.action_space.shape == (env.action_dim,)
    assert info["state"].shape == (env.state_dim,) and len(env.state_fields) == env.state_dim
    assert "goal_state" in info and isinstance(info["success"], bool)
    obs, reward, terminated, truncated, info = env.step(np.zeros(env.action_dim))
    assert obs.shape == (IMG, IMG, 3) and obs.dtype == np.uint8
    assert reward in (0.0, 1.0) and terminated is False and truncated is False


@pytest.mark.parametrize("name", ENV_NAMES)
def test_eval_state_goal_and_far(envs, name):
    env = get_env(envs, name)
    _, info = env.reset(seed=1)
    goal = info["goal_state"]
    res = env.eval_state(goal, goal)
    assert res["success"] is True and res["distance"] == pytest.approx(0.0)
    far = goal.copy()
    far[0] += {"pusht": 200.0, "wall": 20.0, "pointmaze": 2.0}[name]
    res = env.eval_state(goal, far)
    assert res["success"] is False and res["distance"] > 1.0


@pytest.mark.parametrize("name", ENV_NAMES)
def test_render_state_pure_and_repeatable(envs, name):
    env = get_env(envs, name)
    env.reset(seed=2)
    for _ in range(3):
        env.step(np.full(env.action_dim, 0.5))
    current = env.get_state()
    other = env.sample_state(np.random.default_rng(5))
    img1 = env.render_state(other)
    img2 = env.render_state(other)
    np.testing.assert_array_equal(img1, img2)
    np.testing.assert_array_equal(env.get_state(), current)
    assert not np.array_equal(img1, env.render())  # a different state looks different
    np.testing.assert_array_equal(env.render(), env.render_state(current))


@pytest.mark.parametrize("name", ENV_NAMES)
def test_set_state_is_exact(envs, name):
    """set_state(s_t) then step(a_t) reproduces the trajectory bit for bit."""
    env = get_env(envs, name)
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, size=(8, env.action_dim))
    states = [env.get_state()]
    for a in actions:
        env.step(a)
        states.append(env.get_state())
    env.reset(seed=99)  # somewhere else entirely
    env.set_state(states[4])
    np.testing.assert_array_equal(env.get_state(), states[4])
    for t in range(4, 8):
        env.step(actions[t])
        np.testing.assert_array_equal(env.get_state(), states[t + 1])
    np.testing.assert_array_equal(env.rollout(states[0], actions)[-1], states[-1])


@pytest.mark.parametrize("name", ENV_NAMES)
def test_at_rest_keeps_what_one_frame_shows_and_drops_the_motion(envs, name):
    """``at_rest`` zeroes the velocities and nothing else: the frame is the same, the future is not
    (where the world has velocities in its state; Wall has none)."""
    env = get_env(envs, name)
    states, _ = _run(env, seed=5, n=6)
    moving = states[-1]
    still = env.at_rest(moving)
    motion = [env.state_fields.index(f) for f in env.motion_fields]
    assert len(env.state_fields) == env.state_dim and (name == "wall") == (not motion)
    np.testing.assert_array_equal(np.delete(still, motion), np.delete(moving, motion))
    assert not still[motion].any() and moving[motion].any() == bool(motion)
    np.testing.assert_array_equal(env.render_state(still), env.render_state(moving))
    idle = np.zeros((5, env.action_dim))
    ends_apart = not np.array_equal(env.rollout(still, idle)[-1], env.rollout(moving, idle)[-1])
    assert ends_apart == bool(motion)


@pytest.mark.parametrize("name", ENV_NAMES)
def test_sample_goal_pair_restores_state(envs, name):
    env = get_env(envs, name)
    env.reset(seed=4)
    before = env.get_state()
    start, goal = env.sample_goal_pair(np.random.default_rng(0), steps=5)
    assert start.shape == goal.shape == (env.state_dim,)
    np.testing.assert_array_equal(env.get_state(), before)
    np.testing.assert_array_equal(env.rollout(start, np.zeros((0, env.action_dim)))[0], start)


# ------------------------------------------------------------------------------ PushT
def test_pusht_block_moves_when_pushed(envs):
    env = get_env(envs, "pusht")
    # Block upright at (256, 250); pusher right below the stem's end (y = 250 + 120 + 15 + 10).
    start = np.array([256.0, 395.0, 256.0, 250.0, 0.0])
    env.reset(seed=0, options={"state": start})
    for _ in range(10):
        env.step(np.array([0.0, -0.3]))  # drive the pusher upward, into the block
    s = env.get_state()
    assert s[3] < 250.0 - 20.0, "block should be pushed up"
    assert abs(s[2] - 256.0) < 5.0 and min(s[4], 2 * np.pi - s[4]) < 0.1  # straight push
    # Pushing away from the block leaves it in place.
    env.reset(seed=0, options={"state": start})
    for _ in range(10):
        env.step(np.array([0.0, 0.3]))
    np.testing.assert_allclose(env.get_state()[2:5], start[2:5], atol=1e-9)
    # DINO-WM's 5- and 7-float states are accepted (missing velocities are zero); as DINO-WM's
    # _set_state, setting a state runs one 0.01 s physics step (here the pusher moves by v * 0.01).
    env.set_state(start)
    np.testing.assert_array_equal(env.get_state(), np.r_[start, 0.0, 0.0, 0.0, 0.0, 0.0])
    env.set_state(np.r_[start, 3.0, 4.0])
    np.testing.assert_allclose(env.get_state(), np.r_[256.03, 395.04, start[2:], 3.0, 4.0, 0, 0, 0])


def test_pusht_success_rule(envs):
    env = get_env(envs, "pusht")
    goal = np.array([200.0, 200.0, 300.0, 300.0, 0.05] + [0.0] * 5)
    near = goal.copy()
    near[:4] += 9.0  # ||(9, 9, 9, 9)|| = 18 < 20
    near[4] = 2 * np.pi - 0.2  # wrapped angle error 0.25 < pi/9
    assert env.eval_state(goal, near)["success"]
    off = near.copy()
    off[4] = 0.05 + np.pi / 9 + 0.01
    assert not env.eval_state(goal, off)["success"]
    off = near.copy()
    off[2] += 5.0
    assert not env.eval_state(goal, off)["success"]


def test_pusht_expert_moves_block_toward_goal(envs):
    from dinoworld.envs.expert import PushTExpert
    from dinoworld.envs.pusht import block_cog

    env = get_env(envs, "pusht")
    before, after = [], []
    for seed in range(4):
        _, info = env.reset(seed=seed)
        goal = info["goal_state"]
        expert = PushTExpert(goal, rng=np.random.default_rng(seed), noise_std=0.05)
        before.append(np.linalg.norm(block_cog(env.get_state()) - block_cog(goal)))
        for _ in range(80):
            env.step(expert(env.get_state()))
        after.append(np.linalg.norm(block_cog(env.get_state()) - block_cog(goal)))
    assert np.mean(after) < 0.6 * np.mean(before), (before, after)


# ------------------------------------------------------------------------------ PointMaze
def test_pointmaze_headless_and_threshold(envs):
    env = get_env(envs, "pointmaze")
    obs, info = env.reset(seed=0)
    assert obs.shape == (IMG, IMG, 3) and obs.std() > 5  # a real picture, not a blank buffer
    state = np.array([0.8, 1.0, 0.3, -0.2])  # D4RL frame: row 1 of the U-maze
    env.set_state(state)
    np.testing.assert_array_equal(env.get_state(), state)
    env.step(np.array([1.0, 0.0]))
    assert env.get_state()[2] > 0.3  # pushed along +x
    goal = np.array([2.8, 1.0, 0.0, 0.0])
    assert env.eval_state(goal, goal + np.array([0.49, 0, 0, 0]))["success"]
    assert not env.eval_state(goal, goal + np.array([0.0, 0.51, 0, 0]))["success"]
    # The ball stays inside the maze when driven into a wall.
    env.set_state(np.array([0.8, 1.0, 0.0, 0.0]))
    for _ in range(100):
        env.step(np.array([0.0, 1.0]))
    assert 3.0 < env.get_state()[1] < 3.25  # the wall's face is at y = 3.3, the ball's radius 0.1


def test_import_is_light_and_missing_extra_is_a_user_error(monkeypatch):
    code = ("import sys, dinoworld.envs, dinoworld.envs.base; "
            "print(any(m in sys.modules for m in ('mujoco', 'gymnasium_robotics', 'pymunk')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    monkeypatch.setitem(sys.modules, "mujoco", None)
    with pytest.raises(UserError, match=r"pip install 'dinoworld\[envs\]'"):
        make_env("pointmaze", img_size=IMG)
