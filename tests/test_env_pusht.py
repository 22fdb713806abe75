"""PushT against the reference: gym-pusht driven as DINO-WM drives its PushT."""

from __future__ import annotations

import numpy as np
import pytest

from dinoworld.envs import pusht

pytest.importorskip("gymnasium")
gym_pusht = pytest.importorskip("gym_pusht.envs.pusht")

IMG = 96


class Reference(gym_pusht.PushTEnv):
    """gym-pusht with DINO-WM's relative actions (x100) and DINO-WM's ``_set_state``.

    DINO-WM (``env/pusht/pusht_env.py``) sets the agent velocity, the agent position, the block
    angle and then the block position, and runs one physics step; gym-pusht sets the block position
    before the angle and no velocity.
    """

    def _set_state(self, state):
        self.agent.velocity = tuple(state[5:7]) if len(state) > 5 else (0.0, 0.0)
        self.agent.position = tuple(state[:2])
        self.block.angle = state[4]
        self.block.position = tuple(state[2:4])
        self.space.step(self.dt)

    def step_relative(self, action):
        self.step(np.array(self.agent.position) + 100.0 * np.asarray(action))

    def full_state(self):
        a, b = self.agent, self.block
        return np.array([*a.position, *b.position, b.angle % (2 * np.pi), *a.velocity,
                         *b.velocity, b.angular_velocity])

    def cog(self):
        return np.array(self.block.local_to_world(self.block.center_of_gravity))


def _start(rng, ref):
    """Block somewhere inside, pusher 80-130 px from its centre of gravity, all at rest."""
    while True:
        block = rng.integers(150, 360, size=2).astype(float)
        angle = float(rng.uniform(0.0, 2 * np.pi))
        cog = pusht.block_cog(np.r_[0.0, 0.0, block, angle])
        phi = rng.uniform(0.0, 2 * np.pi)
        agent = np.round(cog + rng.uniform(80.0, 130.0) * np.array([np.cos(phi), np.sin(phi)]))
        if np.all((agent > 30) & (agent < 480)) and pusht.distance_to_block(agent, block, angle) > 20:
            state = np.r_[agent, block, angle, np.zeros(5)]
            ref.reset(options={"reset_to_state": state[:7]})
            np.testing.assert_allclose(ref.full_state(), state, atol=1e-9)  # its extra step: no-op
            return state


def _pushing_action(ref, rng, toward_cog):
    """Toward the block (its origin or its centre of gravity) by 20-60 px, with noise."""
    aim = ref.cog() if toward_cog else np.array(ref.block.position)
    d = aim - np.array(ref.agent.position)
    a = d / (np.linalg.norm(d) + 1e-9) * rng.uniform(0.2, 0.6) + rng.normal(0.0, 0.15, size=2)
    return np.clip(a, -1.0, 1.0)


def test_constants_match_gym_pusht():
    ref = gym_pusht.PushTEnv()
    ref.reset(seed=0)
    assert (pusht.KP, pusht.KD, pusht.DT) == (ref.k_p, ref.k_v, ref.dt)
    assert pusht.SUBSTEPS == int(1 / (ref.dt * ref.control_hz))
    block = ref.block
    assert block.mass == pusht.BLOCK_MASS and block.moment == pusht.BLOCK_MOMENT
    np.testing.assert_array_equal(block.center_of_gravity, pusht.BLOCK_COG)
    pieces = sorted(sorted(tuple(v) for v in s.get_vertices()) for s in ref._block_shapes)
    ours = sorted(sorted(map(tuple, p)) for p in (pusht.BAR, pusht.STEM))
    assert pieces == ours
    (circle,) = ref.agent.shapes
    assert circle.radius == pusht.AGENT_RADIUS
    assert all(s.friction == 0 and s.elasticity == 0 for s in ref.space.shapes)


def test_pushing_trajectories_match_reference():
    """Same starts, same actions, 30 episodes x 25 steps of pushing: the same states (bit for bit)."""
    rng = np.random.default_rng(0)
    ref = Reference(obs_type="state")
    env = pusht.PushTEnv(img_size=IMG)
    dev_pos, dev_rest, moved = [], [], []
    for ep in range(30):
        start = _start(rng, ref)
        theirs, actions = [ref.full_state()], []
        for _ in range(25):
            actions.append(_pushing_action(ref, rng, toward_cog=ep % 2 == 1))
            ref.step_relative(actions[-1])
            theirs.append(ref.full_state())
        ours, theirs = env.rollout(start, np.array(actions)), np.array(theirs)
        diff = np.abs(ours - theirs)
        diff[:, 4] = np.abs(pusht.wrap_angle(ours[:, 4] - theirs[:, 4]))
        dev_pos.append(diff[:, :4].max())
        dev_rest.append(diff[:, 4:].max())
        moved.append(np.linalg.norm(theirs[-1, 2:4] - start[2:4])
                     + 60.0 * abs(pusht.wrap_angle(theirs[-1, 4] - start[4])))
    assert np.mean(np.array(moved) > 10.0) >= 0.8, moved  # the episodes do push the block
    assert max(dev_pos) < 1e-6, dev_pos  # px
    assert max(dev_rest) < 1e-6, dev_rest  # rad, px/s, rad/s


def test_render_matches_reference():
    rng = np.random.default_rng(1)
    ref = Reference(obs_type="pixels", observation_width=IMG, observation_height=IMG)
    env = pusht.PushTEnv(img_size=IMG)
    for _ in range(3):
        start = _start(rng, ref)
        np.testing.assert_array_equal(env.render_state(start), ref.get_obs())
        env.reset(options={"state": start})
        for _ in range(5):
            a = _pushing_action(ref, rng, toward_cog=True)
            ref.step_relative(a)
            env.step(a)
        np.testing.assert_array_equal(env.render(), ref.get_obs())


def test_set_state():
    """A visited state continues bit for bit; any other state is set as DINO-WM's prepare sets it."""
    rng = np.random.default_rng(2)
    ref = Reference(obs_type="state")
    env = pusht.PushTEnv(img_size=IMG)
    start = _start(rng, ref)
    actions = np.array([_pushing_action(ref, rng, toward_cog=True) for _ in range(20)])
    states = env.rollout(start, actions)
    env.reset(seed=5)
    env.set_state(states[10])
    np.testing.assert_array_equal(env.get_state(), states[10])
    np.testing.assert_array_equal(env.rollout(states[10], actions[10:]), states[10:])
    other = pusht.PushTEnv(img_size=IMG)  # DINO-WM's 7 floats, mid-push: its extra step moves things
    other.set_state(states[10][:7])
    ref.reset(options={"reset_to_state": states[10][:7]})
    assert not np.allclose(ref.full_state()[:7], states[10][:7])
    np.testing.assert_array_equal(other.get_state(), ref.full_state())
    for a in actions[10:]:
        other.step(a)
        ref.step_relative(a)
    np.testing.assert_array_equal(other.get_state(), ref.full_state())
    assert pusht.PushTEnv.world_version == "dino-wm-pusht-1"


def test_state_cost_weighs_both_parts_of_the_success_test():
    """PushT's true-state planning cost: 0 at the goal, each error in units of its success threshold."""
    from dinoworld.envs import make_env
    from dinoworld.envs.pusht import SUCCESS_ANGLE, SUCCESS_POS

    env = make_env("pusht", img_size=56)
    goal = np.array([200.0, 200.0, 300.0, 300.0, 0.5])
    assert env.state_cost(goal, goal) == 0.0
    moved = goal + np.array([SUCCESS_POS, 0, 0, 0, 0])
    turned = goal + np.array([0, 0, 0, 0, SUCCESS_ANGLE / 2])
    assert env.state_cost(goal, moved) == pytest.approx(1.0)
    assert env.state_cost(goal, turned) == pytest.approx(0.5)
    ev = env.eval_state(goal, turned + np.array([0, 0, 0, 0, SUCCESS_ANGLE]))
    assert ev["position_success"] and not ev["angle_success"] and not ev["success"]


def test_the_opponent_standin_sees_the_pusher(tmp_path):
    """scripts/pusht_cost_weights.py: moving the pusher weighs far more, against moving the block as far,
    in pixel-pyramid-opponent's standardised cost than in pixel-pyramid's, where the blur all but
    erases the 2-px disc (the reason PushT plans with the opponent stand-in)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from dinoworld.envs.collect import collect

    collect("pusht", tmp_path / "pusht", episodes=4, steps=3, img_size=56, progress=False)
    script = Path(__file__).resolve().parents[1] / "scripts" / "pusht_cost_weights.py"
    done = subprocess.run([sys.executable, str(script), "--data", str(tmp_path / "pusht"), "--episodes", "4",
                           "--distances", "20"], capture_output=True, text=True, check=True)
    ratio = {name: rows["20.0"]["ratio"] for name, rows in json.loads(done.stdout)["encoders"].items()}
    assert ratio["pixel-pyramid"] < 0.15
    assert ratio["pixel-pyramid-opponent"] > 3 * ratio["pixel-pyramid"]
    too_few = subprocess.run([sys.executable, str(script), "--data", str(tmp_path / "pusht"), "--episodes", "5"],
                             capture_output=True, text=True)
    assert too_few.returncode == 2 and "fewer than 5 episodes" in too_few.stderr
