"""Feature cache of a trajectory folder: the features it stores, resume, refusals, fine-tuning from it."""

import json

import numpy as np
import pytest
import torch

from conftest import one_error_line
from dinoworld.cli import main
from dinoworld.data.featurize import Featurizer
from dinoworld.data.trajectories import episode_path
from dinoworld.data.trajectory_cache import ARRAY_FILE, PROGRESS_FILE, TrajectoryFeatures, encode_trajectories
from dinoworld.data.trajectory_clips import trajectory_clip_stream, trajectory_info
from dinoworld.data.video import resize_crop, write_video
from dinoworld.encoders import load_encoder
from dinoworld.envs.collect import collect
from dinoworld.model.folder import latest_checkpoint, read_meta

SIZE = 28
EPISODES = 20
#: a few-step fine-tuning run on the collection below
TINY = ["--config", "configs/finetune-cpu.yaml", f"stages=[{{steps: 3, resolution: {SIZE}}}]",
        "optim.batch_size=4", "optim.micro_batch_size=4", "val_every=3", "val_batches=1", "progress=false",
        "--check-batches", "1", "--json"]


@pytest.fixture(scope="module")
def wall(tmp_path_factory):
    root = tmp_path_factory.mktemp("wall")
    collect("wall", root, episodes=EPISODES, steps=20, img_size=56, progress=False)
    return root


@pytest.fixture(scope="module")
def encoder():
    return load_encoder("pixel-pyramid", device=torch.device("cpu"))


@pytest.fixture(scope="module")
def cache(wall, encoder, tmp_path_factory):
    out = tmp_path_factory.mktemp("features")
    encode_trajectories(wall, encoder, out, size=SIZE, batch_size=7, chunk_episodes=3, progress=False)
    return out


def test_cache_holds_every_frame_encoded_as_training_would(wall, encoder, cache):
    feats = TrajectoryFeatures(cache)
    info = trajectory_info(wall, 0, 0.0)
    for pos in (0, 4, EPISODES - 1):
        with np.load(episode_path(wall, info.episode_ids[pos])) as z:
            frames = z["frames"][: info.lengths[pos] + 1]
        want = encoder(resize_crop(frames, SIZE, "crop"))
        got = torch.from_numpy(feats.episode(pos).astype(np.float32))
        assert got.shape == want.shape == (info.lengths[pos] + 1, 2, 2, encoder.dim)
        torch.testing.assert_close(got, want, rtol=2e-3, atol=2e-3)  # float16 storage


def test_clips_from_the_cache_match_clips_encoded_on_the_fly(wall, encoder, cache):
    kw = dict(num_frames=4, frameskip=3, size=SIZE, seed=5)
    raw = trajectory_clip_stream(wall, **kw)
    cached = trajectory_clip_stream(wall, features=cache, **kw)
    assert trajectory_clip_stream(wall, features="", **kw).clip(0, 0).keys() == raw.clip(0, 0).keys()  # the default
    featurize = Featurizer(encoder, torch.device("cpu"))
    for pos, start in [(0, 0), (3, 7), (8, 4)]:
        a, b = raw.clip(pos, start), cached.clip(pos, start)
        assert "frames" not in b and b["source"] == a["source"]
        torch.testing.assert_close(b["actions"], a["actions"], rtol=0, atol=0)
        torch.testing.assert_close(b["times"], a["times"], rtol=0, atol=0)
        fa = featurize({"frames": a["frames"][None], "times": a["times"][None]})[0][0]
        torch.testing.assert_close(b["features"], fa, rtol=2e-3, atol=2e-3)


def test_an_interrupted_encode_resumes_to_the_same_cache(wall, encoder, cache, tmp_path):
    calls = {"n": 0}

    class Interrupted(type(encoder)):
        def forward(self, x, **kw):
            calls["n"] += 1
            if calls["n"] == 6:  # the probe, then a few batches: two chunks are done
                raise KeyboardInterrupt
            return super().forward(x, **kw)

    out = tmp_path / "f"
    with pytest.raises(KeyboardInterrupt):
        encode_trajectories(wall, Interrupted(), out, size=SIZE, batch_size=20, chunk_episodes=2, progress=False)
    done = json.loads((out / PROGRESS_FILE).read_text())["episodes_done"]
    assert 0 < done < EPISODES
    with pytest.raises(Exception, match="interrupted"):
        TrajectoryFeatures(out)
    summary = encode_trajectories(wall, encoder, out, size=SIZE, batch_size=20, chunk_episodes=2, progress=False)
    assert summary.episodes_encoded == EPISODES - done and not (out / PROGRESS_FILE).exists()
    np.testing.assert_allclose(np.load(out / ARRAY_FILE), np.load(cache / ARRAY_FILE), rtol=0, atol=2e-3)
    assert encode_trajectories(wall, encoder, out, size=SIZE, progress=False).episodes_encoded == 0


def test_finetune_from_the_cache_trains_like_from_frames(wall, cache, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(__import__("pathlib").Path(__file__).parents[1])
    common = ["finetune", "--env", "wall", "--data", str(wall), "--mode", "scratch", *TINY]
    assert main([*common, "--out", str(tmp_path / "raw")]) == 0
    raw = json.loads(capsys.readouterr().out)
    calls = []
    import dinoworld.train.streams as streams

    # neither training nor the held-out action check after it loads the encoder
    monkeypatch.setattr(streams, "load_encoder", lambda *a, **k: calls.append(a) or pytest.fail("encoder loaded"))
    import dinoworld.data.trajectory_cache as trajectory_cache

    checks, fingerprint = [], trajectory_cache.collection_fingerprint
    monkeypatch.setattr(trajectory_cache, "collection_fingerprint", lambda *a: checks.append(a) or fingerprint(*a))
    assert main([*common, "--features", str(cache), "--out", str(tmp_path / "cached"), "val_every=1"]) == 0
    cached = json.loads(capsys.readouterr().out)
    assert not calls
    # the cache is checked against the collection once per run (training, then the action check), not per stream
    assert len(checks) == 2
    for key in ("train_loss", "val/loss"):
        assert cached[key] == pytest.approx(raw[key], rel=2e-2)
    assert cached["action_check"]["clips"] == raw["action_check"]["clips"]
    meta = read_meta(latest_checkpoint(tmp_path / "cached"))
    assert meta.encoder.name == "pixel-pyramid" and meta.resolution == SIZE and meta.env == "wall"


def test_a_cache_of_other_data_or_settings_is_refused(wall, encoder, cache, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(__import__("pathlib").Path(__file__).parents[1])
    other = tmp_path / "other"
    collect("wall", other, episodes=EPISODES, steps=21, img_size=56, progress=False)
    common = ["finetune", "--env", "wall", "--mode", "scratch", "--features", str(cache), *TINY]
    cases = [
        ([*common, "--data", str(other)], "not of"),
        ([*common, "--data", str(wall), "stages=[{steps: 3, resolution: 56}]"], "encoded at 28x28 px"),
        ([*common, "--data", str(wall), "model.encoder=dinov2-s14"], "feature cache of encoder"),
        ([*common, "--data", str(wall), f"data.val_source={other}"], "validation reads"),
        (["finetune", "--env", "wall", "--mode", "scratch", "--data", str(wall), "--features", str(tmp_path), *TINY],
         "no trajectory feature cache"),
    ]
    for i, (argv, says) in enumerate(cases):
        assert main([*argv, "--out", str(tmp_path / f"run{i}")]) == 2, argv
        assert says in one_error_line(capsys, alone=False)
        assert not (tmp_path / f"run{i}" / "checkpoints").exists()
    with pytest.raises(Exception, match="other settings"):
        encode_trajectories(wall, encoder, cache, size=SIZE + 14, progress=False)


def test_encode_verb_writes_a_trajectory_cache(wall, tmp_path, capsys):
    out = tmp_path / "f"
    assert main(["encode", str(wall), "--out", str(out), "--encoder", "pixel-pyramid", "--resolution", str(SIZE),
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["num_episodes"] == EPISODES and summary["feature_shape"] == [2, 2, 36]
    assert TrajectoryFeatures(out).size == SIZE


def test_a_trajectory_cache_given_for_video_data_is_refused(cache, tmp_path, capsys):
    videos = tmp_path / "videos"
    write_video(str(videos / "a.mp4"), np.zeros((8, 32, 32, 3), np.uint8), fps=8)
    argv = ["train", f"data.source={videos}", f"data.features={cache}", f"out_dir={tmp_path / 'run'}",
            "model.size=tiny", "model.encoder=pixel-pyramid", "stages=[{steps: 1, resolution: 28}]"]
    assert main(argv) == 2
    assert "data.features is for trajectory folders" in one_error_line(capsys, alone=False)
    assert not (tmp_path / "run" / "checkpoints").exists()
