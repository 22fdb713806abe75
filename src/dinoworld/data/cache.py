"""Feature cache: encode videos once with a frozen encoder, then train on cached patch tokens.

Layout of a cache folder::

    shard-000000.safetensors  features    (N, H, W, D) float16  kept frames of the shard's videos
                              times       (N,) float64  actual frame timestamps (s, per video)
                              video_index (N,) int64    position of the video in ``paths``
    shard-000000.json         settings, the shard's planned sources, per-video offset, frame
                              count, first / last timestamp; skipped files with reasons
    index.json                settings, feature shape, shard list and totals (written last)

Shard ``k`` holds ``paths[k * shard_size : (k + 1) * shard_size]``, so the plan depends only on the
path list. Each shard is written atomically (temp file + ``os.replace``; the JSON goes last and
marks the shard done), so an interrupted run resumes by skipping finished shards.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..devices import module_device
from ..errors import UserError
from ..files import atomic_write_json
from ..progress import progress_bar
from .sampler import DT_MAX, DT_MIN, TooShort, nearest_indices, sample_clip_times
from .stream import Outcome, ResumableStream, SkippedVideoWarning
from .video import CorruptVideo, frame_to_rgb, nearest_frames, open_video, read_info, resize_crop

CACHE_VERSION = 1
Encoder = Callable[[torch.Tensor], torch.Tensor]  # (B, 3, h, w) in [0, 1] -> (B, H, W, D)


@dataclass
class CacheSummary:
    """What :func:`encode_videos_to_cache` did."""

    out_dir: str
    num_videos: int  # paths given
    num_encoded: int  # videos with features in the cache (this run or earlier)
    num_skipped: int  # unreadable videos (this run or earlier)
    num_frames: int  # cached frames in total
    num_shards: int
    shards_written: int  # this run
    shards_reused: int  # finished by an earlier run
    feature_shape: tuple[int, int, int] | None  # (H, W, D); None if nothing was encoded
    encoder_name: str
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


INDEX_FILE = "index.json"


def is_feature_cache(path: str | os.PathLike) -> bool:
    """A folder written by :func:`encode_videos_to_cache` (its index is written last)."""
    return (Path(path) / INDEX_FILE).is_file()


def _encoder_name(encoder: Any) -> str:
    name = getattr(encoder, "name", None)
    if isinstance(name, str) and name:
        return name
    return getattr(encoder, "__name__", None) or type(encoder).__name__


def _encode_video(
    path: str,
    encoder: Encoder,
    fps: float,
    size: tuple[int, int],
    policy: str,
    batch_size: int,
    device: torch.device,
) -> tuple[torch.Tensor, np.ndarray]:
    """Decode ``path`` at about ``fps`` (nearest frames, each kept once) and encode it.

    Returns ``features`` ``(N, H, W, D)`` float16 on CPU and ``times`` ``(N,)`` float64 (actual).
    """
    container = open_video(path)
    feats: list[torch.Tensor] = []
    times: list[float] = []
    batch: list[np.ndarray] = []

    def flush() -> None:
        x = resize_crop(np.stack(batch), size, policy).to(device)  # (B, 3, h, w)
        with torch.no_grad():
            y = encoder(x)
        if not isinstance(y, torch.Tensor) or y.ndim != 4 or y.shape[0] != len(batch):
            got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ValueError(f"encoder must map (B, 3, h, w) to (B, H, W, D), got {got}")
        feats.append(y.detach().to("cpu", torch.float16))
        batch.clear()

    try:
        info = read_info(container, path)
        wanted = np.arange(0.0, info.span + 1e-9, 1.0 / fps)  # (N_wanted,)
        last: Any = None
        shape: tuple[int, int] | None = None
        for _, frame, t in nearest_frames(container, path, wanted, info.fps):
            if frame is last or (times and t <= times[-1]):
                continue  # the same frame is nearest to several wanted times: keep it once
            last = frame
            rgb = frame_to_rgb(frame, shape)
            shape = shape or rgb.shape[:2]
            batch.append(rgb)
            times.append(t)
            if len(batch) == batch_size:
                flush()
        if batch:
            flush()
    finally:
        container.close()
    return torch.cat(feats), np.asarray(times, dtype=np.float64)


def encode_videos_to_cache(
    paths: Sequence[str],
    encoder: Encoder,
    out_dir: str | os.PathLike,
    fps: float = 8.0,
    size: int | tuple[int, int] = (224, 224),
    batch_size: int = 16,
    shard_size: int = 64,
    progress: bool = True,
    policy: str = "crop",
    encoder_name: str | None = None,
) -> CacheSummary:
    """Encode every video's frames at about ``fps`` into sharded safetensors files (resumable).

    For each video, the frame nearest to each of ``0, 1/fps, 2/fps, ...`` is decoded (one seek,
    forward decode), duplicates are dropped (a video slower than ``fps`` keeps all its frames),
    frames are resized with ``policy`` to ``size`` and encoded in batches under ``torch.no_grad``.
    ``encoder`` maps ``(B, 3, h, w)`` floats in ``[0, 1]`` to ``(B, H, W, D)`` patch tokens; frames
    are moved to its parameters' device (or its ``.device``; else CPU). Unreadable videos are
    skipped, warned about, and counted; if no video can be encoded a :class:`UserError` says so and
    no cache is left behind.

    Memory: one shard's features are held in RAM before writing (``shard_size`` videos).
    Rerunning with the same paths and settings skips finished shards; different settings raise.
    """
    out = Path(out_dir)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    if fps <= 0 or batch_size < 1 or shard_size < 1:
        raise ValueError("need fps > 0, batch_size >= 1 and shard_size >= 1")
    hw = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    name = encoder_name or _encoder_name(encoder)
    settings = {"fps": float(fps), "size": list(hw), "policy": policy, "encoder": name}
    device = module_device(encoder)
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise UserError("no videos to encode; give a folder or manifest with videos")

    num_shards = -(-len(paths) // shard_size)
    written = reused = 0
    shard_entries = []
    skipped: list[tuple[str, str]] = []
    feature_shape: list[int] | None = None
    bar = progress_bar(total=len(paths), desc="encode", unit="video", disable=not progress)
    try:
        for k in range(num_shards):
            stem = f"shard-{k:06d}"
            json_path, st_path = out / f"{stem}.json", out / f"{stem}.safetensors"
            planned = paths[k * shard_size : (k + 1) * shard_size]
            if json_path.is_file() and st_path.is_file():
                meta = json.loads(json_path.read_text())
                if meta.get("settings") != settings or meta.get("sources") != planned:
                    raise UserError(
                        f"cache {out} was built with other settings or videos ({stem}: "
                        f"{meta.get('settings')}); use a new output folder or delete it"
                    )
                reused += 1
                bar.update(len(planned))
            else:
                meta = _encode_shard(
                    k * shard_size, planned, encoder, settings, hw, policy, batch_size, device, bar
                )
                tensors = meta.pop("_tensors")
                tmp = st_path.with_name(st_path.name + ".tmp")
                st_meta = {"encoder": name, "version": str(CACHE_VERSION)}
                save_file(tensors, str(tmp), metadata=st_meta)
                os.replace(tmp, st_path)
                atomic_write_json(json_path, meta, indent=1)  # last: marks the shard as done
                written += 1
            skipped += [(s["source"], s["reason"]) for s in meta["skipped"]]
            if meta.get("feature_shape") and feature_shape is None:
                feature_shape = meta["feature_shape"]
            shard_entries.append(
                {"name": stem, "num_videos": len(meta["videos"]), "num_frames": meta["num_frames"]}
            )
    finally:
        bar.close()

    num_frames = sum(s["num_frames"] for s in shard_entries)
    num_encoded = sum(s["num_videos"] for s in shard_entries)
    if num_encoded == 0:
        _remove_cache_files(out, num_shards, created)
        first = f" (first: {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise UserError(f"none of the {len(paths)} videos could be encoded{first}; nothing was cached in {out}: "
                        "check the files (and that PyAV can decode them) and rerun")
    index = {
        "version": CACHE_VERSION,
        "settings": settings,
        "feature_shape": feature_shape,
        "dtype": "float16",
        "num_videos": num_encoded,
        "num_frames": num_frames,
        "num_skipped": len(skipped),
        "shards": shard_entries,
    }
    atomic_write_json(out / INDEX_FILE, index, indent=1)
    return CacheSummary(
        out_dir=str(out),
        num_videos=len(paths),
        num_encoded=num_encoded,
        num_skipped=len(skipped),
        num_frames=num_frames,
        num_shards=num_shards,
        shards_written=written,
        shards_reused=reused,
        feature_shape=tuple(feature_shape) if feature_shape else None,
        encoder_name=name,
        skipped=skipped,
    )


def _remove_cache_files(out: Path, num_shards: int, folder_created: bool) -> None:
    """Delete the shards and index of a cache that holds no video (and the folder when it was made for it)."""
    names = [INDEX_FILE] + [f"shard-{k:06d}{ext}" for k in range(num_shards) for ext in (".json", ".safetensors")]
    for name in names:
        (out / name).unlink(missing_ok=True)
    if folder_created and not any(out.iterdir()):
        out.rmdir()


def _encode_shard(
    first_index: int,
    planned: list[str],
    encoder: Encoder,
    settings: dict[str, Any],
    size: tuple[int, int],
    policy: str,
    batch_size: int,
    device: torch.device,
    bar: Any,
) -> dict[str, Any]:
    """Encode one shard's videos; returns its JSON metadata plus ``_tensors`` to save."""
    feats, times, vids, videos, skipped = [], [], [], [], []
    offset = 0
    for j, path in enumerate(planned):
        try:
            f, t = _encode_video(path, encoder, settings["fps"], size, policy, batch_size, device)
        except CorruptVideo as e:
            warnings.warn(f"skipping {path}: {e}", SkippedVideoWarning)
            skipped.append({"source": path, "reason": str(e)})
        else:
            feats.append(f)
            times.append(t)
            vids.append(np.full(len(t), first_index + j, dtype=np.int64))
            videos.append(
                {
                    "source": path,
                    "video_index": first_index + j,
                    "offset": offset,
                    "num_frames": len(t),
                    "t_first": float(t[0]),
                    "t_last": float(t[-1]),
                }
            )
            offset += len(t)
        bar.update(1)
    if feats:
        features = torch.cat(feats)  # (N, H, W, D)
        shape = list(features.shape[1:])
    else:
        features, shape = torch.zeros(0, 0, 0, 0, dtype=torch.float16), None
    tensors = {
        "features": features.contiguous(),
        "times": torch.from_numpy(np.concatenate(times) if times else np.zeros(0)),
        "video_index": torch.from_numpy(
            np.concatenate(vids) if vids else np.zeros(0, dtype=np.int64)
        ),
    }
    return {
        "version": CACHE_VERSION,
        "settings": settings,
        "sources": planned,
        "videos": videos,
        "skipped": skipped,
        "num_frames": offset,
        "feature_shape": shape,
        "_tensors": tensors,
    }


class FeatureClipDataset(ResumableStream):
    """Stream of variable-FPS clips of cached patch tokens (never decodes video).

    Same sampling as :class:`~dinoworld.data.sources.VideoClipDataset`: ``num_frames`` times from
    :func:`sample_clip_times` over the cached video's span, then the nearest *cached* frame to each
    (:func:`nearest_indices`) with its actual timestamp. The cache's ``fps`` bounds the finest
    usable gap: keep ``dt_min`` at or above ``1 / fps`` of the cache. Only the needed rows are read
    (memory-mapped safetensors). Yields dicts::

        features (T, H, W, D) float32
        times    (T,) float32  actual timestamps, seconds from the video's start
        source   str
        skipped  int           videos too short for the clip since the previous sample
        skipped_sources str    those skipped for the first time, newline-joined (see ResumableStream)
        data_pos (5,) int64    position after this sample and its worker, for :meth:`observe`

    Sharding, shuffling, resume and the all-too-short error work as in ``VideoClipDataset``.
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike,
        num_frames: int = 8,
        dt_min: float = DT_MIN,
        dt_max: float = DT_MAX,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        loop: bool = True,
        shuffle: bool = True,
    ):
        super().__init__(seed, rank, world_size, loop, shuffle)
        self.cache_dir = Path(cache_dir)
        self.num_frames, self.dt_min, self.dt_max = int(num_frames), float(dt_min), float(dt_max)
        index_path = self.cache_dir / INDEX_FILE
        if not index_path.is_file():
            raise UserError(
                f"no feature cache at {self.cache_dir} (index.json missing); run "
                f"`dinoworld encode` first, or rerun it to finish an interrupted cache"
            )
        self.index = json.loads(index_path.read_text())
        self.settings = self.index["settings"]
        self.feature_shape = self.index.get("feature_shape")
        #: frame size (h, w) in px and encoder name the features were computed with
        self.frame_size: tuple[int, int] = tuple(int(x) for x in self.settings.get("size", (0, 0)))  # type: ignore[assignment]
        self.encoder_name: str = str(self.settings.get("encoder", "unknown"))
        self.shard_files: list[str] = []
        sources: list[str] = []
        shard_id, offset, count, t_first, t_last = [], [], [], [], []
        for s_id, entry in enumerate(self.index["shards"]):
            meta = json.loads((self.cache_dir / f"{entry['name']}.json").read_text())
            self.shard_files.append(str(self.cache_dir / f"{entry['name']}.safetensors"))
            for v in meta["videos"]:
                sources.append(v["source"])
                shard_id.append(s_id)
                offset.append(v["offset"])
                count.append(v["num_frames"])
                t_first.append(v["t_first"])
                t_last.append(v["t_last"])
        if not sources:
            raise UserError(f"feature cache {self.cache_dir} holds no videos; re-encode your data")
        self.sources = sources
        self._shard = np.asarray(shard_id, np.int32)  # per video
        self._offset = np.asarray(offset, np.int64)
        self._count = np.asarray(count, np.int64)
        self._t_first = np.asarray(t_first, np.float64)
        self._t_last = np.asarray(t_last, np.float64)
        self._video_ids = range(len(sources))
        self._handles: dict[int, Any] = {}

    def __len__(self) -> int:
        """Number of cached videos (one clip per video per epoch)."""
        return len(self.sources)

    def __getstate__(self) -> dict[str, Any]:  # file handles stay in their process
        state = self.__dict__.copy()
        state["_handles"] = {}
        return state

    def _units(self) -> Sequence[int]:
        return self._video_ids

    def _describe(self) -> str:
        return f"the feature cache {self.cache_dir} ({len(self.sources)} videos)"

    def _handle(self, shard: int) -> Any:
        h = self._handles.get(shard)
        if h is None:
            h = self._handles[shard] = safe_open(self.shard_files[shard], framework="pt")
        return h

    def clip(self, video: int, rng: np.random.Generator) -> dict[str, Any]:
        """Sample one clip from cached video ``video`` (raises :class:`TooShort`)."""
        t0 = self._t_first[video]
        span = float(self._t_last[video] - t0)
        wanted = t0 + sample_clip_times(span, self.num_frames, self.dt_min, self.dt_max, rng)
        h = self._handle(int(self._shard[video]))
        start, n = int(self._offset[video]), int(self._count[video])
        frame_times = h.get_slice("times")[start : start + n].numpy()  # (n,)
        idx = nearest_indices(frame_times, wanted)  # (T,)
        lo, hi = int(idx.min()), int(idx.max()) + 1
        block = h.get_slice("features")[start + lo : start + hi]  # (hi - lo, H, W, D)
        return {
            "features": block[torch.from_numpy(idx - lo)].to(torch.float32),  # (T, H, W, D)
            "times": torch.from_numpy(frame_times[idx].astype(np.float32)),  # (T,)
            "source": self.sources[video],
        }

    def _process(self, unit: Any, epoch: int, gpos: int, first_member: int) -> Iterator[Outcome]:
        if first_member > 0:  # consumed before a resume
            return
        video = int(unit)
        rng = np.random.default_rng([self.seed, epoch, gpos, 0])
        try:
            yield Outcome(0, self.sources[video], self.clip(video, rng))
        except TooShort as e:
            yield Outcome(0, self.sources[video], None, str(e))
