"""Video sources (folders, manifests, tar shards) and the streaming clip dataset."""

import io
import json
import tarfile
import warnings
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from _video_files import read_index, write_bad_files, write_indexed_video
from dinoworld.data.sources import (
    CorruptShard,
    VideoClipDataset,
    expand_shards,
    iter_tar_videos,
    list_videos,
)
from dinoworld.data.stream import SkippedVideoWarning
from dinoworld.errors import UserError

FPS = (7.5, 10.0, 12.0)


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> list[str]:
    """Three indexed videos (frame i shows i) at different frame rates, 4 s each."""
    folder = tmp_path_factory.mktemp("good")
    return [
        write_indexed_video(folder / f"v{k}.mp4", int(4 * fps), fps, gop=6)
        for k, fps in enumerate(FPS)
    ]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory, good) -> Path:
    """A folder with two good videos, a too-short one, and four unreadable files."""
    folder = tmp_path_factory.mktemp("mixed")
    for p in good[:2]:
        (folder / Path(p).name).write_bytes(Path(p).read_bytes())
    write_indexed_video(folder / "short.mp4", 3, 10.0)  # 0.2 s: too short for the clips below
    write_bad_files(folder / "bad", good[0])
    return folder


def _clip_ds(source, **kw) -> VideoClipDataset:
    args = dict(num_frames=4, dt_min=0.2, dt_max=0.6, size=(64, 64), policy="resize")
    args.update(kw)
    return VideoClipDataset(source, **args)


def _take(ds, n):
    it = iter(ds)
    return [next(it) for _ in range(n)]


# ----------------------------------------------------------------------------- listing


def test_list_folder_recursive(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ["z.mp4", "a/y.MKV", "a/b/x.webm", "a/notes.txt", "a/b/img.png"]:
        (tmp_path / name).write_bytes(b"x")
    got = [Path(p).relative_to(tmp_path).as_posix() for p in list_videos(tmp_path)]
    assert got == ["a/b/x.webm", "a/y.MKV", "z.mp4"]


def test_manifests(tmp_path, good):
    sub = tmp_path / "lists"
    sub.mkdir()
    (tmp_path / "rel.mp4").write_bytes(Path(good[0]).read_bytes())
    txt = sub / "m.txt"
    txt.write_text(f"# comment\n../rel.mp4\n\n{good[1]}\n")
    assert list_videos(txt) == [str(sub / "../rel.mp4"), good[1]]
    csv = sub / "m.csv"
    csv.write_text(f"path,label\n../rel.mp4,1\n{good[2]},0\n")
    assert list_videos(csv) == [str(sub / "../rel.mp4"), good[2]]
    jsonl = sub / "m.jsonl"
    lines = [json.dumps({"path": good[2], "fps": 12}), "", json.dumps({"path": "../rel.mp4"})]
    jsonl.write_text("\n".join(lines))
    assert list_videos(jsonl) == [good[2], str(sub / "../rel.mp4")]
    assert len(_take(_clip_ds(str(csv)), 2)) == 2  # manifests feed the dataset


@pytest.mark.parametrize(
    "content, suffix, match",
    [
        ("label\n1\n", ".csv", "no 'path' column"),
        ('{"file": "a.mp4"}\n', ".jsonl", "no 'path' key"),
        ("# nothing\n", ".txt", "lists no videos"),
        ("nowhere/a.mp4\n", ".txt", "first entry"),
    ],
)
def test_bad_manifests(tmp_path, content, suffix, match):
    m = tmp_path / f"m{suffix}"
    m.write_text(content)
    with pytest.raises(UserError, match=match):
        list_videos(m)


def test_missing_and_empty_sources(tmp_path):
    with pytest.raises(UserError, match="not found") as err:
        list_videos(tmp_path / "nope")
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="no video files"):
        list_videos(tmp_path)
    with pytest.raises(UserError, match="not found"):
        VideoClipDataset(str(tmp_path / "shard-{000..002}.tar"))


# ----------------------------------------------------------------------------- tar shards


def _write_shard(path: Path, videos: list[str], gz: bool = False) -> str:
    with tarfile.open(path, "w:gz" if gz else "w") as tf:
        for k, v in enumerate(videos):
            for name, data in [
                (f"{k:05d}.json", json.dumps({"src": v}).encode()),
                (f"{k:05d}.mp4", Path(v).read_bytes()),
            ]:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return str(path)


def test_expand_shards():
    assert expand_shards("d/s-{000..003}.tar") == [f"d/s-{i:03d}.tar" for i in range(4)]
    assert expand_shards("{a,b}-{8..10}.tar") == [
        "a-8.tar", "a-9.tar", "a-10.tar", "b-8.tar", "b-9.tar", "b-10.tar"
    ]
    assert expand_shards(["x.tar", "y-{1..2}.tar"]) == ["x.tar", "y-1.tar", "y-2.tar"]


def test_tar_streaming(tmp_path, good):
    s0 = _write_shard(tmp_path / "shard-000.tar", good[:2])
    s1 = _write_shard(tmp_path / "shard-001.tar.gz", good[2:], gz=True)
    items = list(iter_tar_videos([s0, s1]))
    names = [name for name, _ in items]
    assert names == [f"{s0}::00000.mp4", f"{s0}::00001.mp4", f"{s1}::00000.mp4"]
    assert [data for _, data in items] == [Path(v).read_bytes() for v in good]

    broken = tmp_path / "broken.tar"
    broken.write_bytes(Path(s0).read_bytes()[:3000])
    with pytest.raises(CorruptShard, match="broken.tar"):
        list(iter_tar_videos([broken]))

    ds = _clip_ds(str(tmp_path / "shard-{000..000}.tar"), loop=False)
    clips = list(ds)
    assert sorted(c["source"] for c in clips) == [f"{s0}::00000.mp4", f"{s0}::00001.mp4"]
    assert all(c["frames"].shape == (4, 3, 64, 64) for c in clips)


# ----------------------------------------------------------------------------- clips


def test_clips_use_nearest_frames_and_actual_times(good):
    ds = _clip_ds(good, seed=3)
    fps_of = dict(zip(good, FPS))
    for clip in _take(ds, 9):
        frames, times = clip["frames"], clip["times"]
        assert frames.shape == (4, 3, 64, 64) and frames.dtype == torch.float32
        assert times.dtype == torch.float32 and clip["skipped"] == 0
        fps = fps_of[clip["source"]]
        rgb = (frames.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
        shown = np.array([read_index(f) for f in rgb])
        np.testing.assert_allclose(times.numpy(), shown / fps, atol=1e-4)  # actual frame times
        gaps = np.diff(times.numpy())
        assert np.all(gaps > 0.2 - 1 / fps) and np.all(gaps < 0.6 + 1 / fps)
        assert 0.0 <= times[0] and times[-1] <= 4.0


def test_bad_files_are_skipped_and_counted(mixed):
    ds = _clip_ds(str(mixed), seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clips = _take(ds, 4)  # two epochs of the two good videos
    assert sorted(Path(c["source"]).name for c in clips) == ["v0.mp4", "v0.mp4", "v1.mp4", "v1.mp4"]
    reported = sum(int(c["skipped"]) for c in clips)
    # Every bad file of epoch 0 is reported by the first clip of epoch 1 at the latest.
    assert 5 <= reported <= ds.skipped_total <= 10
    warned = {Path(str(w.message).split(":")[0].removeprefix("skipping ")).name for w in caught
              if issubclass(w.category, SkippedVideoWarning)}
    assert warned == {"short.mp4", "truncated.mp4", "empty.mp4", "audio_only.mp4", "junk.mp4"}


def test_skipped_sources_are_distinct_over_epochs_and_workers(mixed):
    """A bad file is met every epoch; each worker reports it once, so a consumer can count files."""
    bad = {"short.mp4", "truncated.mp4", "empty.mp4", "audio_only.mp4", "junk.mp4"}
    ds = _clip_ds(str(mixed), seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clips = _take(ds, 8)  # four epochs of the two good videos
    assert {Path(s).name for s in ds.skipped_sources} == bad
    reported = [s for c in clips for s in c["skipped_sources"].split("\n") if s]
    assert sorted(Path(s).name for s in reported) == sorted(bad)  # each once, though met up to 4 times
    assert ds.skipped_total > len(bad)  # skip events still count every meeting
    assert len([w for w in caught if issubclass(w.category, SkippedVideoWarning)]) == len(bad)  # one warning each
    loader = DataLoader(_clip_ds(str(mixed), seed=0), batch_size=2, num_workers=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batches = list(islice(loader, 6))  # a worker stops at an epoch whose share is all bad
    names = [s for b in batches for joined in b["skipped_sources"] for s in joined.split("\n") if s]
    assert {Path(s).name for s in names} <= bad
    assert max(names.count(s) for s in names) <= 2  # once per worker at most (the trainer keeps a set)


def test_all_bad_raises_user_error(mixed, tmp_path):
    bad = sorted(str(p) for p in (mixed / "bad").iterdir()) + [str(mixed / "short.mp4")]
    ds = _clip_ds(bad)
    with pytest.warns(SkippedVideoWarning), pytest.raises(UserError, match="no usable video"):
        next(iter(ds))
    loader = DataLoader(_clip_ds(bad), batch_size=2, num_workers=2)
    with pytest.raises(UserError, match="no usable video"):
        next(iter(loader))


def test_rank_and_worker_sharding(good):
    ranks = [
        [c["source"] for c in _clip_ds(good, rank=r, world_size=2, loop=False)] for r in (0, 1)
    ]
    assert sorted(ranks[0] + ranks[1]) == sorted(good) and not set(ranks[0]) & set(ranks[1])

    loader = DataLoader(_clip_ds(good, loop=False), batch_size=None, num_workers=2)
    seen = [c["source"] for c in loader]
    assert sorted(seen) == sorted(good)

    # Clips depend on (seed, epoch, position), not on the number of workers.
    single = {c["source"]: c["times"] for c in _clip_ds(good, loop=False)}
    for c in DataLoader(_clip_ds(good, loop=False), batch_size=None, num_workers=2):
        torch.testing.assert_close(c["times"], single[c["source"]])

    # More workers than videos: every worker still gets work and no error is raised.
    few = DataLoader(_clip_ds(good[:1]), batch_size=None, num_workers=2)
    it = iter(few)
    assert {next(it)["source"] for _ in range(4)} == {good[0]}


def test_epochs_reshuffle_deterministically(good):
    a = [c["source"] for c in _take(_clip_ds(good, seed=1), 12)]
    b = [c["source"] for c in _take(_clip_ds(good, seed=1), 12)]
    assert a == b
    epochs = [tuple(a[i : i + 3]) for i in range(0, 12, 3)]
    assert all(sorted(e) == sorted(good) for e in epochs) and len(set(epochs)) > 1


def test_resume_exact_in_single_process(good):
    ref = _take(_clip_ds(good, seed=2), 8)
    ds = _clip_ds(good, seed=2)
    _take(ds, 5)
    state = ds.state_dict()
    older = {k: state[k] for k in ("epoch", "index", "member", "seed")}  # saved before per-worker positions
    for saved in (state, older):
        resumed = _clip_ds(good, seed=2)
        resumed.load_state_dict(saved)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # exact: no warning
            got = _take(resumed, 3)
        for want, clip in zip(ref[5:], got):
            assert clip["source"] == want["source"]
            torch.testing.assert_close(clip["times"], want["times"])
            torch.testing.assert_close(clip["frames"], want["frames"])


def test_resume_with_workers_is_exact(good):
    """3 batches from 2 workers, save, then a fresh stream and loader go on exactly as the first would have.

    3 videos over 2 workers: their epochs roll over at different batches, and an odd count of
    consumed batches means the first batch after resume comes from worker 1.
    """
    ds = _clip_ds(good, seed=4)
    it = iter(DataLoader(ds, batch_size=2, num_workers=2))
    for _ in range(3):
        ds.observe(next(it))  # the main process records what it consumed
    want = [next(it) for _ in range(4)]  # what the uninterrupted loader gives next
    resumed = _clip_ds(good, seed=4)
    resumed.load_state_dict(ds.state_dict())
    it = iter(DataLoader(resumed, batch_size=2, num_workers=2))
    for w, got in zip(want, [next(it) for _ in range(4)]):
        assert got["source"] == w["source"]
        assert torch.equal(got["data_pos"], w["data_pos"])
        assert torch.equal(got["times"], w["times"]) and torch.equal(got["frames"], w["frames"])


def test_resume_with_other_worker_count_continues_after_furthest(good):
    ref = _take(_clip_ds(good, seed=4), 12)  # the single-process stream
    ds = _clip_ds(good, seed=4)
    it = iter(DataLoader(ds, batch_size=2, num_workers=2))
    for _ in range(2):
        ds.observe(next(it))
    state = ds.state_dict()
    key = (state["epoch"], state["index"], state["member"])
    assert key > (0, 0, 0)
    resumed = _clip_ds(good, seed=4)
    resumed.load_state_dict(state)
    with pytest.warns(UserWarning, match="furthest") as caught:
        got = _take(resumed, 3)  # in process: one logical worker instead of 2
    assert len(caught) == 1
    # Approximate resume: continue right after the furthest consumed sample, never repeating it.
    after = [c for c in ref if tuple(c["data_pos"][:3].tolist()) > key]
    for want, clip in zip(after, got):
        assert clip["source"] == want["source"]
        torch.testing.assert_close(clip["times"], want["times"])
