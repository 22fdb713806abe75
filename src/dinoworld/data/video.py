"""Video I/O with PyAV: probe, nearest-frame decoding at wanted timestamps, resize, write.

All timestamps are in seconds *relative to the video stream's first presentation timestamp*, so the
first frame of a normal video is at 0.0. Frames are returned as RGB ``uint8``; rotation metadata
(phone videos) is not applied.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO, Union

import av
import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from ..files import atomic_path

VideoSource = Union[str, os.PathLike, bytes, bytearray, BinaryIO]

# Errors PyAV / the OS raise on unreadable or damaged media.
_MEDIA_ERRORS = (av.error.FFmpegError, OSError, ValueError, EOFError, IndexError)


class CorruptVideo(UserError):
    """A video file that cannot be read (missing, zero-length, audio-only, truncated, damaged)."""


@dataclass(frozen=True)
class VideoInfo:
    """Basic facts about the first video stream of a file."""

    duration: float  # seconds covered by the stream (about num_frames / fps)
    fps: float  # average frame rate; 0.0 if the file does not say
    num_frames: int  # from the container when stored, else round(duration * fps)
    width: int
    height: int
    num_frames_exact: bool = False  # True when num_frames comes from the container index
    start_time: float = 0.0  # first presentation time in the stream's own clock (seconds)

    @property
    def span(self) -> float:
        """Time of the last frame relative to the first (``duration - 1/fps``, at least 0)."""
        if self.fps > 0:
            return max(self.duration - 1.0 / self.fps, 0.0)
        return self.duration


def source_name(source: VideoSource) -> str:
    """A printable name for a path or in-memory video."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes in memory>"
    return str(getattr(source, "name", "<file object>"))


def _open_container(source: VideoSource) -> Any:
    """Open ``source`` for reading with PyAV (module-level so tests can wrap the container)."""
    if isinstance(source, (bytes, bytearray)):
        return av.open(io.BytesIO(bytes(source)), mode="r")
    if isinstance(source, (str, os.PathLike)):
        return av.open(os.fspath(source), mode="r")
    return av.open(source, mode="r")


def _reason(e: BaseException) -> str:
    """FFmpeg's message without the file name it appends."""
    return str(getattr(e, "strerror", None) or e)


def open_video(source: VideoSource) -> Any:
    name = source_name(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise CorruptVideo(f"video not found: {name} (check the path or the manifest entry)")
        if path.stat().st_size == 0:
            raise CorruptVideo(f"video is empty (0 bytes): {name}; re-download or remove it")
    elif isinstance(source, (bytes, bytearray)) and len(source) == 0:
        raise CorruptVideo(f"video is empty (0 bytes): {name}; re-download or remove it")
    try:
        return _open_container(source)
    except _MEDIA_ERRORS as e:
        raise CorruptVideo(
            f"cannot read video {name}: {_reason(e)} (truncated or not a video?)"
        ) from e


def _fraction_or_none(x: Any) -> Fraction | None:
    if x is None:
        return None
    f = Fraction(x)
    return f if f > 0 else None


def read_info(container: Any, name: str) -> VideoInfo:
    """Read stream metadata (no frame decoding)."""
    if not container.streams.video:
        raise CorruptVideo(f"no video stream in {name} (audio-only or not a video); remove it")
    stream = container.streams.video[0]
    tb = stream.time_base
    rate = (
        _fraction_or_none(stream.average_rate)
        or _fraction_or_none(stream.guessed_rate)
        or _fraction_or_none(stream.base_rate)
    )
    duration: float | None = None
    if stream.duration and tb:
        duration = float(stream.duration * tb)
    elif container.duration:
        duration = container.duration / 1_000_000  # AV_TIME_BASE units
    frames = int(stream.frames or 0)
    fps = float(rate) if rate else 0.0
    if fps == 0.0 and frames > 0 and duration:
        fps = frames / duration
    if (duration is None or duration <= 0) and frames > 0 and fps > 0:
        duration = frames / fps
    if duration is None or duration <= 0:
        raise CorruptVideo(f"video has zero or unknown duration: {name}; re-encode or remove it")
    exact = frames > 0
    if not exact:
        frames = max(int(round(duration * fps)), 1) if fps > 0 else 1
    start = float(stream.start_time * tb) if (stream.start_time is not None and tb) else 0.0
    width = int(stream.codec_context.width or stream.width or 0)
    height = int(stream.codec_context.height or stream.height or 0)
    return VideoInfo(duration, fps, frames, width, height, exact, start)


def probe_video(source: VideoSource, check_frames: bool = True) -> VideoInfo:
    """Read duration / fps / frame count / size of a video's first video stream.

    With ``check_frames`` the first frame is also decoded, so files whose header is intact but whose
    data is missing are caught here. Raises :class:`CorruptVideo` for unreadable files.
    """
    name = source_name(source)
    container = open_video(source)
    try:
        info = read_info(container, name)
        if check_frames:
            try:
                first = next(iter(container.decode(container.streams.video[0])), None)
            except _MEDIA_ERRORS as e:
                raise CorruptVideo(
                    f"cannot decode video {name}: {_reason(e)} (truncated or damaged)"
                ) from e
            if first is None:
                raise CorruptVideo(f"no decodable frame in {name} (truncated?); remove it")
        return info
    finally:
        container.close()


def nearest_frames(
    container: Any, name: str, wanted: np.ndarray, fps: float
) -> Iterator[tuple[int, Any, float]]:
    """Yield ``(k, frame, t)`` for each ``wanted[k]`` (sorted ascending), in order.

    ``frame`` is the PyAV frame whose presentation time ``t`` (seconds from stream start) is nearest
    to ``wanted[k]`` (ties go to the earlier frame). Does at most one seek (to the keyframe at or
    before ``wanted[0]``), then decodes forward; if the seek lands after ``wanted[0]`` by more than
    half a frame period it falls back to one more seek, to the start of the stream.
    """
    n = len(wanted)
    if n == 0:
        return
    stream = container.streams.video[0]
    tb = stream.time_base
    start_pts = int(stream.start_time or 0)
    half_period = 0.5 / fps if fps > 0 else 0.0
    seek_pts: int | None = None
    if wanted[0] > half_period and tb:
        seek_pts = start_pts + int(math.floor(wanted[0] / float(tb)))

    for attempt in range(2):
        if seek_pts is not None:
            container.seek(seek_pts, stream=stream, backward=True, any_frame=False)
        prev: tuple[Any, float] | None = None
        k = 0
        try:
            for frame in container.decode(stream):
                if frame.pts is not None and tb:
                    t = float((frame.pts - start_pts) * tb)
                else:  # no timestamp: assume constant rate after the previous frame
                    t = prev[1] + 2 * half_period if prev is not None else 0.0
                if prev is None and seek_pts is not None and attempt == 0:
                    if t > wanted[0] + half_period and t > half_period:
                        break  # seek overshot: retry from the start of the stream
                while k < n and wanted[k] <= t:
                    if prev is not None and wanted[k] - prev[1] <= t - wanted[k]:
                        yield k, prev[0], prev[1]
                    else:
                        yield k, frame, t
                    k += 1
                if k == n:
                    return
                prev = (frame, t)
            else:  # end of stream: the last frame is nearest to all remaining times
                if prev is None:
                    raise CorruptVideo(f"no decodable frame in {name} (truncated?); remove it")
                for kk in range(k, n):
                    yield kk, prev[0], prev[1]
                return
        except _MEDIA_ERRORS as e:
            at = f"{prev[1]:.2f}s" if prev is not None else "the first frame"
            raise CorruptVideo(
                f"decoding {name} failed after {at}: {_reason(e)} (truncated or damaged); remove it"
            ) from e
        seek_pts = start_pts  # only reached after an overshooting seek


def frame_to_rgb(frame: Any, size: tuple[int, int] | None) -> np.ndarray:
    """PyAV frame -> (H, W, 3) uint8; reformats to ``size`` (h, w) if the stream changed size."""
    if size is not None and (frame.height, frame.width) != size:
        return frame.to_ndarray(format="rgb24", height=size[0], width=size[1])
    return frame.to_ndarray(format="rgb24")


def decode_open(
    container: Any, name: str, times: Sequence[float], fps: float, max_error: float | None
) -> tuple[np.ndarray, np.ndarray]:
    wanted = np.asarray(times, dtype=np.float64).reshape(-1)  # (T,)
    if wanted.size == 0:
        raise ValueError("decode_at needs at least one wanted time")
    order = np.argsort(wanted, kind="stable")
    out: list[np.ndarray | None] = [None] * wanted.size
    actual = np.empty(wanted.size, dtype=np.float64)  # (T,)
    last_frame: Any = None  # repeats of one frame are consecutive in sorted order
    rgb: np.ndarray | None = None
    shape: tuple[int, int] | None = None
    for k, frame, t in nearest_frames(container, name, wanted[order], fps):
        if frame is not last_frame:
            rgb = frame_to_rgb(frame, shape)
            shape = shape or rgb.shape[:2]
            last_frame = frame
        i = int(order[k])
        out[i] = rgb
        actual[i] = t
    if max_error is not None:
        err = np.abs(actual - wanted)
        worst = int(np.argmax(err))
        if err[worst] > max_error:
            raise CorruptVideo(
                f"no frame within {max_error:.3f}s of t={wanted[worst]:.3f}s in {name} (nearest at "
                f"{actual[worst]:.3f}s); the file is probably truncated or has a gap"
            )
    return np.stack(out), actual  # (T, H, W, 3) uint8, (T,) float64


def decode_at(
    source: VideoSource, times: Sequence[float], max_error: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Decode the frame nearest to each wanted time and return it with its actual timestamp.

    One seek (to the keyframe at or before the earliest wanted time), then a forward decode; no
    per-frame seeking. Wanted times may be in any order and may repeat (repeats return the same
    frame). Times past the end map to the last frame.

    Args:
        source: a path, raw bytes, or a readable binary file object.
        times: ``(T,)`` wanted times in seconds from the start of the video stream.
        max_error: if given, raise :class:`CorruptVideo` when a nearest frame is farther than this
            from its wanted time (catches files whose data ends before their header says).

    Returns:
        ``frames`` ``(T, H, W, 3)`` uint8 RGB and ``actual`` ``(T,)`` float64 seconds.
    """
    name = source_name(source)
    container = open_video(source)
    try:
        info = read_info(container, name)
        return decode_open(container, name, times, info.fps, max_error)
    finally:
        container.close()


def resize_crop(
    frames: np.ndarray | torch.Tensor,
    size: int | tuple[int, int],
    policy: str = "crop",
) -> torch.Tensor:
    """``(T, H, W, 3)`` uint8 frames -> ``(T, 3, h, w)`` float32 in ``[0, 1]``.

    Policies:
      - ``"crop"`` (default): resize so the shorter side fits (aspect kept), then centre-crop.
      - ``"resize"``: stretch to ``(h, w)`` (aspect not kept).
      - ``"pad"``: resize so the longer side fits (aspect kept), then centre on black.

    Uses bilinear interpolation with antialiasing, so downscaling does not alias.
    """
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    x = torch.as_tensor(np.ascontiguousarray(frames) if isinstance(frames, np.ndarray) else frames)
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected frames of shape (T, H, W, 3), got {tuple(x.shape)}")
    x = x.permute(0, 3, 1, 2).to(torch.float32).div_(255.0)  # (T, 3, H, W)
    H, W = x.shape[-2:]

    def _resize(t: torch.Tensor, hh: int, ww: int) -> torch.Tensor:
        if (hh, ww) == tuple(t.shape[-2:]):
            return t
        return F.interpolate(t, size=(hh, ww), mode="bilinear", antialias=True, align_corners=False)

    if policy == "resize":
        y = _resize(x, h, w)
    elif policy == "crop":
        scale = max(h / H, w / W)
        nh, nw = max(h, round(H * scale)), max(w, round(W * scale))
        y = _resize(x, nh, nw)
        top, left = (nh - h) // 2, (nw - w) // 2
        y = y[:, :, top : top + h, left : left + w]
    elif policy == "pad":
        scale = min(h / H, w / W)
        nh, nw = min(h, max(1, round(H * scale))), min(w, max(1, round(W * scale)))
        y = x.new_zeros(x.shape[0], 3, h, w)
        top, left = (h - nh) // 2, (w - nw) // 2
        y[:, :, top : top + nh, left : left + nw] = _resize(x, nh, nw)
    else:
        raise UserError(f"unknown resize policy {policy!r}; use 'crop', 'resize' or 'pad'")
    return y.clamp_(0.0, 1.0).contiguous()


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray,
    fps: float,
    codec: str = "libx264",
    options: dict[str, str] | None = None,
) -> str:
    """Write ``(T, H, W, 3)`` uint8 RGB frames to a video (yuv420p); frame ``i`` at ``i / fps``.

    The container comes from the extension (``.mp4``). ``libx264`` is bundled with the PyAV wheel;
    ``options`` are codec options, e.g. ``{"crf": "18", "g": "8"}`` (quality, keyframe interval).
    H.264/yuv420p needs even width and height. The video is written to a temporary sibling and
    renamed into place, so ``path`` never holds a partial video.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if len(frames) == 0:
        raise ValueError("cannot write a video with zero frames")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise UserError(f"video size {width}x{height} must be even for yuv420p; crop or pad it")
    rate = Fraction(fps).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w") as container:
        stream = container.add_stream(codec, rate=rate, options=dict(options or {}))
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)
