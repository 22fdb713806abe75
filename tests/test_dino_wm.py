"""Data that round-trips, in all three worlds: `collect` -> our format -> replay gives the recorded
states exactly; `collect` -> DINO-WM's released layout (written here, file by file, as its dataset
loaders read it) -> `load_trajectories` -> replay gives them to float32 rounding."""

import pickle

import numpy as np
import pytest

from dinoworld.data import dino_wm
from dinoworld.data.trajectories import load_trajectories
from dinoworld.envs import make_env
from dinoworld.envs.collect import collect

torch = pytest.importorskip("torch")
IMG = 32
WORLDS = {"wall": "random", "pointmaze": "random", "pusht": "expert"}  # PushT's expert pushes the block


@pytest.fixture(scope="module", params=list(WORLDS))
def collection(request, tmp_path_factory):
    pytest.importorskip("gymnasium")
    name = request.param
    out = tmp_path_factory.mktemp(name)
    collect(name, out, episodes=3, steps=30, img_size=IMG, policy=WORLDS[name], progress=False)
    return name, out


def test_our_format_replays_exactly(collection):
    name, out = collection
    ds, env = load_trajectories(out), make_env(name, img_size=IMG)
    assert ds.world_version == env.world_version != ""
    for i in range(len(ds)):
        ep = ds.episode(i)
        np.testing.assert_array_equal(env.rollout(ep["states"][0], ep["actions"]), ep["states"])


def _write_dino_wm(name: str, ds, root) -> None:
    """Our collection in DINO-WM's released layout: float32 tensors padded to the longest episode, one
    action per frame (the last leads nowhere), frames under obses/."""
    eps = [ds.episode(i) for i in range(len(ds))]
    tmax = max(len(e["states"]) for e in eps)

    def pad(key, arrays):
        out = np.zeros((len(arrays), tmax) + arrays[0].shape[1:], np.float32)
        for k, a in enumerate(arrays):
            out[k, : len(a)] = a
        torch.save(torch.from_numpy(out), root / key)

    states = [e["states"] for e in eps]
    actions = [np.r_[e["actions"], np.zeros((1, 2))] for e in eps]
    if name == "pusht":  # pixels, the agent velocity apart, lengths pickled
        pad("states.pth", [s[:, :5] for s in states])
        pad("velocities.pth", [s[:, 5:7] for s in states])
        pad("rel_actions.pth", [a * dino_wm.PUSHT_ACTION_SCALE for a in actions])
        with open(root / "seq_lengths.pkl", "wb") as f:
            pickle.dump([len(s) for s in states], f)
    elif name == "wall":  # the dot, and the layout per frame
        pad("states.pth", [s[:, :2] for s in states])
        pad("wall_locations.pth", [s[:, 2] for s in states])
        pad("door_locations.pth", [s[:, 3] for s in states])
        pad("actions.pth", actions)
    else:
        pad("states.pth", states)
        pad("actions.pth", actions)
        torch.save(torch.tensor([len(s) for s in states]), root / "seq_lengths.pth")
    (root / "obses").mkdir()
    for k, e in enumerate(eps):
        torch.save(torch.from_numpy(e["frames"]), root / "obses" / f"episode_{k:03d}.pth")


def test_dino_wm_layout_reads_back_and_replays(collection, tmp_path):
    name, out = collection
    ours = load_trajectories(out)
    _write_dino_wm(name, ours, tmp_path)
    theirs, env = load_trajectories(tmp_path), make_env(name, img_size=IMG)
    assert theirs.env == name and theirs.world_version == env.world_version
    assert theirs.state_dim == env.state_dim and theirs.action_dim == env.action_dim
    for i in range(len(theirs)):
        a, b = ours.episode(i), theirs.episode(i)
        np.testing.assert_array_equal(b["frames"], a["frames"])
        np.testing.assert_allclose(b["actions"], a["actions"], atol=1e-6)
        kept = 7 if name == "pusht" else None  # DINO-WM's PushT files hold no block velocities
        np.testing.assert_allclose(b["states"][:, :kept], a["states"][:, :kept], rtol=1e-6, atol=1e-4)  # float32
        replay = env.rollout(b["states"][0], b["actions"])
        np.testing.assert_allclose(replay, a["states"], rtol=1e-5, atol=1e-3)


def test_converters_units_and_layouts():
    rng = np.random.default_rng(0)
    s7 = np.c_[rng.uniform(0, 500, (6, 4)), rng.uniform(-7, 7, (6, 1)), rng.normal(size=(6, 2))]
    rel = rng.uniform(-50, 50, (6, 2))
    s, a = dino_wm.pusht(s7[None, :, :5], rel[None], velocities=s7[None, :, 5:])
    assert s.shape == (1, 6, 10) and np.all(s[..., 7:] == 0) and np.all((0 <= s[..., 4]) & (s[..., 4] < 2 * np.pi))
    np.testing.assert_allclose(a[0], rel / 100.0)
    _, a_abs = dino_wm.pusht(s7, s7[:, :2] + rel, absolute=True)  # targets -> offsets from the agent
    np.testing.assert_allclose(a_abs, rel / 100.0, atol=1e-12)
    xy = rng.uniform(5, 60, (2, 3, 2))
    per_frame, _ = dino_wm.wall(xy, np.zeros((2, 3, 2)), np.array([[32.0] * 3, [40.0] * 3]), np.array([30.0, 12.0]))
    np.testing.assert_array_equal(per_frame[1, :, 2:], [[40.0, 12.0]] * 3)
    s4 = rng.normal(size=(2, 5, 4))
    np.testing.assert_array_equal(dino_wm.pointmaze(s4, np.zeros((2, 5, 2)))[0], s4)
    with pytest.raises(Exception, match="PushT"):
        dino_wm.pusht(np.zeros((3, 4)), np.zeros((3, 2)))
