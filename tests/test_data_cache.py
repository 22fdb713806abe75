"""Feature cache: sharded safetensors, resume, and clip sampling from cached features."""

import json
import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from _video_files import write_bad_files, write_indexed_video
from dinoworld.data import video as video_mod
from dinoworld.data.cache import FeatureClipDataset, encode_videos_to_cache
from dinoworld.errors import UserError

SIZE = (32, 32)
PATCH = 8


def tiny_encoder(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, h, w) -> (B, h/8, w/8, 4): mean colour per patch plus the mean brightness."""
    pooled = F.avg_pool2d(x, PATCH)  # (B, 3, H, W)
    return torch.cat([pooled, pooled.mean(1, keepdim=True)], 1).permute(0, 2, 3, 1)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, list[str]]:
    folder = tmp_path_factory.mktemp("cachevids")
    good = [
        write_indexed_video(folder / "a.mp4", 30, 10.0),  # 3 s at 10 fps (denser than the cache)
        write_indexed_video(folder / "b.mp4", 16, 4.0),  # 4 s at 4 fps (sparser than the cache)
        write_indexed_video(folder / "c.mp4", 22, 7.5),
    ]
    bad = write_bad_files(folder / "bad", good[0])[:1]  # a truncated mp4
    return {"good": good, "bad": bad, "all": [good[0], bad[0], good[1], good[2]]}


def _encode(paths, out, **kw):
    args = dict(fps=8.0, size=SIZE, batch_size=3, shard_size=2, progress=False)
    args.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return encode_videos_to_cache(paths, tiny_encoder, out, **args)


def test_write_layout_and_actual_timestamps(videos, tmp_path):
    summary = _encode(videos["all"], tmp_path)
    assert (summary.num_videos, summary.num_encoded, summary.num_skipped) == (4, 3, 1)
    assert summary.skipped[0][0] == videos["bad"][0]
    assert (summary.num_shards, summary.shards_written, summary.shards_reused) == (2, 2, 0)
    assert summary.feature_shape == (4, 4, 4) and summary.encoder_name == "tiny_encoder"

    index = json.loads((tmp_path / "index.json").read_text())
    assert index["num_frames"] == summary.num_frames and len(index["shards"]) == 2
    s0 = load_file(str(tmp_path / "shard-000000.safetensors"))
    meta0 = json.loads((tmp_path / "shard-000000.json").read_text())
    assert meta0["sources"] == videos["all"][:2] and len(meta0["videos"]) == 1
    assert s0["features"].dtype == torch.float16 and s0["features"].shape[1:] == (4, 4, 4)
    assert s0["times"].dtype == torch.float64
    # a.mp4 (10 fps) sampled at ~8 fps: nearest frames at their actual 10 fps times, no repeats.
    t = s0["times"].numpy()
    wanted = [Fraction(k, 8) for k in range(24)]  # 0 .. 2.875 s (the last frame is at 2.9 s)
    nearest = [math.ceil(w * 10 - Fraction(1, 2)) for w in wanted]  # ties go to the earlier frame
    expected = np.unique(nearest) / 10
    np.testing.assert_allclose(t, expected, atol=1e-4)
    assert s0["video_index"].tolist() == [0] * len(t)

    s1 = load_file(str(tmp_path / "shard-000001.safetensors"))
    meta1 = json.loads((tmp_path / "shard-000001.json").read_text())
    b = meta1["videos"][0]
    assert (b["offset"], b["num_frames"]) == (0, 16)  # 4 fps < 8 fps: every frame kept once
    np.testing.assert_allclose(s1["times"][:16].numpy(), np.arange(16) / 4.0, atol=1e-4)
    assert sorted(set(s1["video_index"].tolist())) == [2, 3]

    # Features are the encoder's output for the decoded, resized frame.
    frames, _ = video_mod.decode_at(videos["good"][1], [1.0])
    want = tiny_encoder(video_mod.resize_crop(frames, SIZE)).half()
    torch.testing.assert_close(s1["features"][4:5], want)


def test_resume_skips_finished_shards(videos, tmp_path):
    _encode(videos["all"], tmp_path)
    files = sorted(tmp_path.glob("shard-*"))
    mtimes = {p: p.stat().st_mtime_ns for p in files}
    again = _encode(videos["all"], tmp_path)
    assert (again.shards_written, again.shards_reused, again.num_skipped) == (0, 2, 1)
    assert {p: p.stat().st_mtime_ns for p in files} == mtimes

    (tmp_path / "shard-000001.json").unlink()  # as if killed before shard 1 was done
    (tmp_path / "shard-000001.safetensors.tmp").write_bytes(b"partial")
    third = _encode(videos["all"], tmp_path)
    assert (third.shards_written, third.shards_reused) == (1, 1)
    assert (tmp_path / "shard-000000.safetensors").stat().st_mtime_ns == mtimes[
        tmp_path / "shard-000000.safetensors"
    ]
    assert not list(tmp_path.glob("*.tmp"))

    with pytest.raises(UserError, match="other settings"):
        _encode(videos["all"], tmp_path, fps=4.0)


def test_feature_clips_sample_cached_frames(videos, tmp_path, monkeypatch):
    _encode(videos["good"], tmp_path, shard_size=2)
    rows = {}
    for shard in sorted(tmp_path.glob("shard-*.json")):
        meta = json.loads(shard.read_text())
        tensors = load_file(str(shard.with_suffix(".safetensors")))
        for v in meta["videos"]:
            sl = slice(v["offset"], v["offset"] + v["num_frames"])
            rows[v["source"]] = (tensors["times"][sl].numpy(), tensors["features"][sl])

    def no_decoding(*args, **kwargs):
        raise AssertionError("training from the cache must not open video files")

    monkeypatch.setattr(video_mod, "_open_container", no_decoding)
    ds = FeatureClipDataset(tmp_path, num_frames=4, dt_min=0.25, dt_max=0.6, seed=1)
    assert len(ds) == 3
    it = iter(ds)
    for _ in range(6):
        clip = next(it)
        feats, times = clip["features"], clip["times"]
        assert feats.shape == (4, 4, 4, 4) and feats.dtype == torch.float32
        assert times.dtype == torch.float32 and clip["skipped"] == 0
        cached_t, cached_f = rows[clip["source"]]
        idx = [int(np.argmin(np.abs(cached_t - t))) for t in times.numpy()]
        np.testing.assert_allclose(times.numpy(), cached_t[idx], atol=1e-6)  # actual cached times
        torch.testing.assert_close(feats, cached_f[idx].float())
        gaps = np.diff(times.numpy())
        assert np.all(gaps > 0) and np.all(gaps < 0.6 + 0.25)

    shards = [
        FeatureClipDataset(tmp_path, 4, 0.25, 0.6, rank=r, world_size=2, loop=False)
        for r in (0, 1)
    ]
    ranks = [{c["source"] for c in ds} for ds in shards]
    assert not ranks[0] & ranks[1] and ranks[0] | ranks[1] == set(videos["good"])

    too_long = FeatureClipDataset(tmp_path, num_frames=8, dt_min=1.0, dt_max=1.0)
    with pytest.warns(UserWarning), pytest.raises(UserError, match="no usable video"):
        next(iter(too_long))


def test_missing_cache_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="dinoworld encode"):
        FeatureClipDataset(tmp_path / "none", num_frames=4, dt_min=0.1, dt_max=0.5)
