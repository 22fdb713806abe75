"""Wall: DINO-WM's dot-wall world (``env/wall`` of gaoyuezhou/dino_wm) — constants, crossing rules, rendering."""

from __future__ import annotations

import numpy as np
import pytest

from dinoworld.envs import wall as W


@pytest.fixture(scope="module")
def env65():
    pytest.importorskip("gymnasium")
    return W.WallEnv(img_size=65)


@pytest.fixture(scope="module")
def env224():
    pytest.importorskip("gymnasium")
    return W.WallEnv(img_size=224)


# ------------------------------------------------------------------------------ constants
def test_published_constants():
    # env/wall/wall_env_wrapper.py DEFAULT_CFG, env/wall/envs/{wall,utils}.py, env/wall/data/single.py
    assert W.WORLD_PX == 65 and W.BORDER_WALL_LOC == 5
    assert (W.BORDER_LO, W.BORDER_HI) == (4.0, 60.0)
    assert W.WALL_WIDTH == 6 and W.DOOR_SPACE == 4 and W.DOT_STD == 1.7
    assert (W.WALL_PADDING, W.DOOR_PADDING, W.DEFAULT_LAYOUT) == (20, 10, (32, 30))
    assert W.STEP_SCALE == 2.0 and W.BOUNCE == 0.5 and W.NUDGE == 0.3
    assert W.SUCCESS_DIST == 4.5 and W.GOAL_PADDING == pytest.approx(3.4)
    assert (W.ACTION_ANGLE_NOISE, W.STEP_MEAN, W.STEP_STD, W.STEP_BOUNDS) == (0.2, 1.0, 0.4, (0.2, 1.8))
    assert W.WallEnv.world_version == "dino-wm-wall-1"
    assert W.WallEnv.state_fields == ("x", "y", "wall_x", "door_y")


# ------------------------------------------------------------------------------ crossing rules
# Layout wall_x = 32, door_y = 30: wall faces x = 29 and 35, door 26 <= y <= 34, borders 4 and 60.
# Each case: start (x, y), action, expected next (x, y), worked out by hand from check_wall_intersect.
PARITY = [
    # free move, unclipped: (15, 40) + 2 * (3, 0)
    ((15, 40), (3, 0), (21, 40)),
    # into the wall's left face outside the door: line y = 45 + (x - 27) / 3 meets x = 29 at y = 45 2/3;
    # pushed back by (-0.5, +0.5)
    ((27, 45), (1.5, 0.5), (28.5, 46 + 1 / 6)),
    # a huge action cannot tunnel through the wall
    ((20, 45), (10, 0), (28.5, 45.5)),
    # into the right face from the right room: hit (35, 45), pushed back by (+0.5, +0.5)
    ((37, 45), (-1.5, 0), (35.5, 45.5)),
    # through the door, in three moves: into the passage, along it, out of it
    ((27, 30), (1.5, 0), (30, 30)),
    ((30, 30), (2, 0), (34, 30)),
    ((34, 30), (2, 0), (38, 30)),
    # in the passage, down across the door's edge y = 34: line x = 31 + (y - 32) / 4 meets it at
    # x = 31.5, stopped at (31.5 + 0.5, 34 - 0.5)
    ((31, 32), (0.5, 2), (32, 33.5)),
    # in the passage, up across the edge y = 26: x = 31.5, stopped at (32, 26.5)
    ((31, 28), (0.5, -2), (32, 26.5)),
    # along the top border, without touching it
    ((10, 5), (1.5, 0), (13, 5)),
    # into the top border: line y = 6 - 3 (x - 10) meets y = 4 at x = 10 2/3; + (0.5, +0.5)
    ((10, 6), (0.5, -1.5), (11 + 1 / 6, 4.5)),
    # grazing the top border: y = 4.6 - (x - 10) / 2 meets y = 4 at x = 11.2; + (0.5, 0.5)
    ((10, 4.6), (1, -0.5), (11.7, 4.5)),
    # into the right border: hit (60, 40), + (-0.5, +0.5)
    ((58, 40), (1.5, 0), (59.5, 40.5)),
    # into the corner: both hits at (60, 60), tie -> the horizontal one, + (0.5, -0.5) = (60.5, 59.5),
    # clamped to x = 60, on the line -> 60 - 0.3
    ((58, 58), (1.5, 1.5), (59.7, 59.5)),
    # a vertical move into a border (the reference's NaN case): the limit x = x0
    ((10, 6), (0, -1.5), (10.5, 4.5)),
]


@pytest.mark.parametrize("start,action,expected", PARITY)
def test_crossing_rules_hand_computed(start, action, expected):
    got = W.next_position(np.array(start, float), np.array(action, float), 32.0, 30.0)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_crossing_uses_the_layout_of_the_state(env65):
    # wall 20 (faces 17, 23), door 50 (46..54): the same move is blocked here ...
    env65.set_state([15.0, 20.0, 20.0, 50.0])
    env65.step([1.5, 0.0])
    np.testing.assert_allclose(env65.get_state(), [16.5, 20.5, 20.0, 50.0], atol=1e-12)
    # ... and passes through this door
    env65.set_state([15.0, 50.0, 20.0, 50.0])
    for _ in range(5):
        env65.step([1.5, 0.0])
    np.testing.assert_allclose(env65.get_state(), [30.0, 50.0, 20.0, 50.0], atol=1e-12)


def test_actions_are_not_clipped(env65):
    env65.set_state([15.0, 40.0, 32.0, 30.0])
    env65.step([1.7, -1.2])  # beyond [-1, 1]: moves by 2 * a
    np.testing.assert_allclose(env65.get_state()[:2], [18.4, 37.6], atol=1e-12)
    with pytest.raises(ValueError):
        env65.step([np.nan, 0.0])


def test_random_walk_never_leaves_its_room_except_through_the_door(env65):
    rng = np.random.default_rng(0)
    for _ in range(40):
        s = env65.sample_state(rng)
        states = env65.rollout(s, np.array([a for a in _policy_actions(env65, rng, 50)]))
        x, y, wall_x, door_y = states.T
        assert np.all((x > W.BORDER_LO) & (x < W.BORDER_HI) & (y > W.BORDER_LO) & (y < W.BORDER_HI))
        inside = np.abs(x - wall_x) < W.WALL_WIDTH // 2
        assert np.all(np.abs(y[inside] - door_y[inside]) <= W.DOOR_SPACE + W.BOUNCE)


def _policy_actions(env, rng, n):
    act = env.random_policy(rng)
    return [act(None) for _ in range(n)]


# ------------------------------------------------------------------------------ rendering
def test_dot_is_a_gaussian_of_std_1_7_at_65_px(env65):
    img = env65.render_state([20.0, 30.0, 44.0, 12.0])
    assert img.shape == (65, 65, 3) and img.dtype == np.uint8
    for dy in range(-6, 7):
        for dx in range(-6, 7):
            red = np.floor(255.0 * np.exp(-(dx * dx + dy * dy) / (2 * 1.7**2)))
            assert tuple(img[30 + dy, 20 + dx]) == (255, 255 - red, 255 - red), (dx, dy)
    # Off the grid the dot is normalised by its brightest pixel and centred where the state says.
    img = env65.render_state([20.5, 30.25, 44.0, 12.0])
    assert img[30, 20, 1] == img[30, 21, 1] == 0
    red = (255.0 - img[..., 1]) * (img[..., 0] == 255)
    yy, xx = np.mgrid[0:65, 0:65]
    assert (red * xx).sum() / red.sum() == pytest.approx(20.5, abs=0.02)
    assert (red * yy).sum() / red.sum() == pytest.approx(30.25, abs=0.02)


def test_wall_door_and_border_are_drawn_where_the_state_says(env65):
    img = env65.render_state([10.0, 50.0, 44.0, 12.0])
    black = np.all(img == 0, axis=-1)
    rows = np.arange(5, 60)
    door = (rows >= 8) & (rows <= 16)
    for col in range(41, 48):  # wall_x -/+ 3, inclusive
        assert np.all(black[rows[~door], col]) and not np.any(black[rows[door], col])
    assert not np.any(black[5:60, 40]) and not np.any(black[5:60, 48])
    for line in (4, 60):  # border_wall_loc - 1 and img_size - border_wall_loc
        assert np.all(black[line, :]) and np.all(black[:, line])
    # The wall column spans the whole canvas (outside the border too); nothing else is black.
    expected = np.zeros((65, 65), dtype=bool)
    expected[[4, 60], :] = expected[:, [4, 60]] = True
    expected[:8, 41:48] = expected[17:, 41:48] = True
    np.testing.assert_array_equal(black, expected)


def test_resize_to_224_is_torch_bilinear(env224):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    state = np.array([20.3, 30.7, 40.0, 25.0])
    native = W.render_native(state)
    t = torch.tensor(native, dtype=torch.float32).permute(2, 0, 1)[None]
    for antialias in (True, False):  # torchvision's Resize; enlarging, both agree
        ref = F.interpolate(t, size=(224, 224), mode="bilinear", align_corners=False, antialias=antialias)
        ref = ref[0].permute(1, 2, 0).numpy()
        np.testing.assert_allclose(W.resize(native, 224), ref, atol=2e-3)
    img = env224.render_state(state)
    assert img.shape == (224, 224, 3) and np.abs(img.astype(float) - ref).max() <= 0.5 + 2e-3
    red = (255.0 - img[..., 1]) * (img[..., 0] > 250)
    yy, xx = np.mgrid[0:224, 0:224]
    scale = 224 / 65  # pixel centres: x_224 = (x_65 + 0.5) * scale - 0.5
    assert (red * xx).sum() / red.sum() == pytest.approx((20.3 + 0.5) * scale - 0.5, abs=0.05)
    assert (red * yy).sum() / red.sum() == pytest.approx((30.7 + 0.5) * scale - 0.5, abs=0.05)
    small = F.interpolate(t, size=(56, 56), mode="bilinear", align_corners=False, antialias=True)
    np.testing.assert_allclose(W.resize(native, 56), small[0].permute(1, 2, 0).numpy(), atol=2e-3)


def test_render_is_pure(env224):
    env224.set_state([15.0, 15.0, 30.0, 40.0])
    before = env224.get_state()
    a = env224.render_state([40.0, 40.0, 30.0, 40.0])
    b = env224.render_state([40.0, 40.0, 30.0, 40.0])
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(env224.get_state(), before)


# ------------------------------------------------------------------------------ success, sampling, policy
def test_success_rule(env65):
    goal = np.array([40.0, 40.0, 32.0, 30.0])
    assert env65.eval_state(goal, goal + [4.49, 0, 0, 0])["success"]
    assert not env65.eval_state(goal, goal + [4.5, 0, 0, 0])["success"]
    assert not env65.eval_state(goal, goal + [3.6, 2.7, 0, 0])["success"]  # distance exactly 4.5
    assert env65.eval_state(goal, goal + [3.0, 3.0, 0, 0])["distance"] == pytest.approx(np.hypot(3, 3))


def test_layouts_starts_and_goals(env65):
    rng = np.random.default_rng(0)
    starts = np.array([env65.sample_state(rng) for _ in range(3000)])
    assert set(starts[:, 2]) == set(map(float, range(20, 45)))
    assert set(starts[:, 3]) == set(map(float, range(10, 55)))
    x, y, wall_x, door_y = starts.T
    assert np.all((x >= 4) & (x <= 60) & (y >= 4) & (y <= 60))
    in_wall = (np.abs(x - wall_x) <= 3) & (np.abs(y - door_y) > 4)
    assert not in_wall.any()
    for s in starts[:300]:
        g = env65._goal_like(s, rng)
        np.testing.assert_array_equal(g[2:], s[2:])
        assert (g[0] < g[2]) != (s[0] < s[2])  # the other room
        assert 7.4 <= g[1] <= 56.6
        assert (7.4 <= g[0] <= g[2] - 6.4) or (g[2] + 6.4 <= g[0] <= 56.6)
        s0, g0 = env65.random_state_pair(rng, np.array([10.0, 10.0, 32.0, 30.0]))
        assert (s0[0] < 32) != (g0[0] < 32) and tuple(s0[2:]) == tuple(g0[2:]) == (32.0, 30.0)
    fixed = W.WallEnv(img_size=65, layout=W.DEFAULT_LAYOUT)
    assert {tuple(fixed.reset(seed=k)[1]["state"][2:]) for k in range(5)} == {(32.0, 30.0)}


def test_random_policy_is_the_reference_generator(env65):
    acts = np.array(_policy_actions(env65, np.random.default_rng(1), 20000))
    length = np.linalg.norm(acts, axis=1)
    assert length.min() >= 0.2 and length.max() <= 1.8
    assert length.mean() == pytest.approx(1.0, abs=0.01)  # symmetric truncation of N(1, 0.4^2)
    assert length.std() == pytest.approx(0.352, abs=0.01)  # 0.4 * sqrt(1 - 2 * 2 phi(2) / (2 Phi(2) - 1))
    turn = np.diff(np.arctan2(acts[:, 1], acts[:, 0]))
    assert np.cos(turn).mean() == pytest.approx(0.8934, abs=0.005)  # I1(5) / I0(5): von Mises, kappa 1 / 0.2
    again = np.array(_policy_actions(env65, np.random.default_rng(1), 20000))
    np.testing.assert_array_equal(acts, again)


# ------------------------------------------------------------------------------ determinism, state
def test_determinism_and_set_state_exactness(env65):
    def episode(seed):
        env65.reset(seed=seed)
        act = env65.random_policy(np.random.default_rng(seed))
        states, images, actions = [env65.get_state()], [env65.render()], []
        for _ in range(50):
            actions.append(act(states[-1]))
            obs, *_ = env65.step(actions[-1])
            states.append(env65.get_state())
            images.append(obs)
        return np.array(states), np.array(images), np.array(actions)

    s1, i1, a1 = episode(3)
    s2, i2, a2 = episode(3)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(i1, i2)
    for t in (0, 17, 49):
        env65.set_state(s1[t])
        env65.step(a1[t])
        np.testing.assert_array_equal(env65.get_state(), s1[t + 1])
        np.testing.assert_array_equal(env65.render(), i1[t + 1])
    np.testing.assert_array_equal(env65.rollout(s1[0], a1), s1)
