"""Offline trajectories: collection (parallel, resumable), our format, DINO-WM's layout."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from dinoworld.data.trajectories import episode_path, load_trajectories
from dinoworld.envs.collect import PAPER_SIZES, collect
from dinoworld.errors import UserError

pytest.importorskip("gymnasium")
IMG = 64


def test_paper_sizes():
    assert PAPER_SIZES == {"wall": (1920, 50), "pointmaze": (2000, 100), "pusht": (18500, (100, 300))}


def test_collect_resume_and_load(tmp_path):
    from dinoworld.envs import make_env

    out = tmp_path / "wall"
    summary = collect("wall", out, episodes=3, steps=5, seed=0, workers=2, img_size=IMG, progress=False)
    assert summary["written"] == 3 and summary["skipped"] == 0 and summary["frames"] == 18

    meta = json.loads((out / "meta.json").read_text())
    assert meta["env"] == "wall" and meta["img_size"] == IMG and meta["episodes"] == 3
    assert meta["action_dim"] == 2 and meta["state_dim"] == 4 and meta["seed"] == 0
    assert meta["format"] == "dinoworld-trajectories" and meta["version"] == 1
    files = sorted(p.name for p in out.iterdir())
    assert files == ["episode_000000.npz", "episode_000001.npz", "episode_000002.npz", "meta.json"]

    ds = load_trajectories(out)
    assert len(ds) == 3 and ds.action_dim == 2 and ds.state_dim == 4 and ds.length(1) == 5
    ep = ds.episode(1)
    assert ep["frames"].shape == (6, IMG, IMG, 3) and ep["frames"].dtype == np.uint8
    assert ep["actions"].shape == (5, 2) and ep["actions"].dtype == np.float32
    assert ep["states"].shape == (6, 4) and ep["states"].dtype == np.float64
    # Convention: actions[t] maps frame/state t to t+1 (replay in a fresh env).
    env = make_env("wall", img_size=IMG)
    env.set_state(ep["states"][0])
    np.testing.assert_array_equal(env.render(), ep["frames"][0])
    for t in range(5):
        obs, *_ = env.step(ep["actions"][t])
        np.testing.assert_array_equal(env.get_state(), ep["states"][t + 1])  # the stored actions were applied
        assert np.abs(obs.astype(int) - ep["frames"][t + 1]).max() <= 2
    assert not np.array_equal(ds.episode(0)["states"], ds.episode(1)["states"])

    # Resume: nothing is rewritten.
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("episode_*.npz")}
    again = collect("wall", out, episodes=3, steps=5, seed=0, workers=2, img_size=IMG, progress=False)
    assert again["written"] == 0 and again["skipped"] == 3
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("episode_*.npz")} == stamps

    # A missing episode is redone identically (episodes depend on (seed, index) only,
    # not on the number of workers), and asking for more extends the collection.
    before = ds.episode(2)
    episode_path(out, 2).unlink()
    more = collect("wall", out, episodes=4, steps=5, seed=0, workers=1, img_size=IMG, progress=False)
    assert more["written"] == 2 and more["skipped"] == 2
    assert stamps["episode_000000.npz"] == episode_path(out, 0).stat().st_mtime_ns
    ds = load_trajectories(out)
    assert len(ds) == 4
    for key in ("frames", "actions", "states"):
        np.testing.assert_array_equal(ds.episode(2)[key], before[key])
    assert not list(out.glob("*.tmp"))

    with pytest.raises(UserError, match="different collection"):
        collect("wall", out, episodes=3, steps=5, seed=1, img_size=IMG, progress=False)


def test_collect_pusht_expert_variable_lengths(tmp_path):
    pytest.importorskip("pymunk")
    summary = collect("pusht", tmp_path, episodes=3, steps=(4, 9), seed=3, img_size=IMG, progress=False)
    ds = load_trajectories(tmp_path)
    lengths = [ds.length(i) for i in range(len(ds))]
    assert all(4 <= n <= 9 for n in lengths) and summary["transitions"] == sum(lengths)
    assert json.loads((tmp_path / "meta.json").read_text())["policy"] == "expert"
    ep = ds.episode(0)
    assert ep["states"].shape == (lengths[0] + 1, 10) and np.abs(ep["actions"]).max() <= 1.0


def test_collect_pointmaze_custom_policy(tmp_path):
    pytest.importorskip("gymnasium_robotics")
    summary = collect("pointmaze", tmp_path, episodes=1, steps=4, img_size=IMG, progress=False,
                      policy=_push_right)
    assert summary["written"] == 1
    ep = load_trajectories(tmp_path).episode(0)
    np.testing.assert_array_equal(ep["actions"], np.tile([1.0, 0.0], (4, 1)).astype(np.float32))
    assert ep["states"][-1, 2] > ep["states"][0, 2]  # velocity along +x grew


def _push_right(env, rng):
    return lambda state: np.array([1.0, 0.0])


# ---------------------------------------------------------------------------- DINO-WM layout
def _write_mp4(path, frames: np.ndarray, fps: int = 10) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "0"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _flat_frames(n: int, size: int = 32, offset: int = 0) -> np.ndarray:
    """Frames of one flat grey level each (survive lossy coding), level = 20 * (i + offset)."""
    return np.stack([np.full((size, size, 3), 20 * (i + offset), np.uint8) for i in range(n)])


def test_dino_wm_layout_pusht_mp4(tmp_path):
    torch = pytest.importorskip("torch")
    n, tmax = 2, 6
    states = torch.arange(n * tmax * 5, dtype=torch.float32).reshape(n, tmax, 5)
    vel = torch.ones(n, tmax, 2)
    rel = torch.full((n, tmax, 2), 50.0)  # pixels in DINO-WM's PushT files
    torch.save(states, tmp_path / "states.pth")
    torch.save(vel, tmp_path / "velocities.pth")
    torch.save(rel, tmp_path / "rel_actions.pth")
    with open(tmp_path / "seq_lengths.pkl", "wb") as f:
        pickle.dump([6, 4], f)
    (tmp_path / "obses").mkdir()
    _write_mp4(tmp_path / "obses" / "episode_000.mp4", _flat_frames(6))
    _write_mp4(tmp_path / "obses" / "episode_001.mp4", _flat_frames(4, offset=3))

    ds = load_trajectories(tmp_path)
    assert len(ds) == 2 and ds.action_dim == 2 and ds.state_dim == 10 and ds.env == "pusht"
    assert ds.length(0) == 5 and ds.length(1) == 3
    ep = ds.episode(1)
    assert ep["frames"].shape == (4, 32, 32, 3) and ep["frames"].dtype == np.uint8
    assert ep["actions"].shape == (3, 2) and np.allclose(ep["actions"], 0.5)  # / action_scale 100
    assert ep["states"].shape == (4, 10)  # + the agent velocity, + the block's (0: not in DINO-WM's files)
    np.testing.assert_array_equal(ep["states"][:, :4], states[1, :4, :4].numpy())
    np.testing.assert_allclose(ep["states"][:, 4], states[1, :4, 4].double().numpy() % (2 * np.pi))
    assert (ep["states"][:, 5:7] == 1).all() and (ep["states"][:, 7:] == 0).all()
    levels = ep["frames"].reshape(4, -1).mean(axis=1)
    np.testing.assert_allclose(levels, [60, 80, 100, 120], atol=3)


def test_dino_wm_layout_pth_frames(tmp_path):
    torch = pytest.importorskip("torch")
    # PointMaze-like: actions.pth, seq_lengths.pth, (T, H, W, C) uint8 frames.
    pm = tmp_path / "point_maze"
    (pm / "obses").mkdir(parents=True)
    torch.save(torch.zeros(1, 5, 4), pm / "states.pth")
    torch.save(torch.full((1, 5, 2), 0.25), pm / "actions.pth")
    torch.save(torch.tensor([5]), pm / "seq_lengths.pth")
    torch.save(torch.from_numpy(_flat_frames(5)), pm / "obses" / "episode_000.pth")
    ds = load_trajectories(pm)
    assert ds.env == "pointmaze"
    ep = ds.episode(0)
    np.testing.assert_array_equal(ep["frames"], _flat_frames(5))
    assert np.allclose(ep["actions"], 0.25) and ep["actions"].shape == (4, 2)  # not rescaled

    # Wall-like: no seq_lengths, (T, C, H, W) float frames in [0, 255].
    wall = tmp_path / "wall"
    (wall / "obses").mkdir(parents=True)
    torch.save(torch.zeros(1, 3, 2), wall / "states.pth")
    torch.save(torch.zeros(1, 3, 2), wall / "actions.pth")
    torch.save(torch.full((1, 3), 32.0), wall / "wall_locations.pth")
    torch.save(torch.full((1, 3), 20.0), wall / "door_locations.pth")
    chw = torch.from_numpy(_flat_frames(3)).permute(0, 3, 1, 2).float()
    torch.save(chw, wall / "obses" / "episode_000.pth")
    ds = load_trajectories(wall)
    assert ds.env == "wall" and ds.state_dim == 4
    ep = ds.episode(0)
    np.testing.assert_array_equal(ep["frames"], _flat_frames(3))
    assert ep["actions"].shape == (2, 2) and ep["states"].shape == (3, 4)
    np.testing.assert_array_equal(ep["states"][0], [0.0, 0.0, 32.0, 20.0])  # [x, y, wall_x, door_y]


def test_load_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_trajectories(tmp_path / "nope")
    with pytest.raises(UserError, match="neither"):
        load_trajectories(tmp_path)
    torch = pytest.importorskip("torch")
    (tmp_path / "train").mkdir()
    torch.save(torch.zeros(1, 2, 2), tmp_path / "train" / "states.pth")
    with pytest.raises(UserError, match="splits"):
        load_trajectories(tmp_path)
