"""Where videos come from (folders, manifests, tar shards) and the streaming clip dataset.

Sources:
  - a folder (searched recursively for video extensions), a single video file,
  - a manifest: ``.txt`` (one path per line, ``#`` comments), ``.csv`` (a ``path`` column) or
    ``.jsonl`` (a ``path`` key); relative paths are resolved against the manifest's folder,
  - tar shards in WebDataset layout (members ``KEY.mp4`` ...), given as paths or brace patterns
    such as ``data/shard-{000000..000099}.tar``; they are streamed with the stdlib ``tarfile``.

:class:`VideoClipDataset` turns them into an endless (or one-epoch) stream of variable-FPS clips.
"""

from __future__ import annotations

import csv
import json
import os
import re
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import UserError
from .sampler import DT_MAX, DT_MIN, TooShort, sample_clip_times
from .stream import Outcome, ResumableStream
from .video import (
    CorruptVideo,
    decode_open,
    open_video,
    read_info,
    resize_crop,
    source_name,
)

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".flv", ".wmv"}
    | {".3gp"}
)
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
MANIFEST_SUFFIXES = (".txt", ".csv", ".jsonl")

PathLike = str | os.PathLike


class CorruptShard(UserError):
    """A tar shard that is missing or cannot be read to the end."""


def _is_video(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


def _is_tar(name: str) -> bool:
    return name.lower().endswith(TAR_SUFFIXES)


# ----------------------------------------------------------------------------- listing


def _read_manifest(manifest: Path) -> list[str]:
    root = manifest.parent
    suffix = manifest.suffix.lower()
    entries: list[str] = []
    with open(manifest, newline="", encoding="utf-8") as f:
        if suffix == ".txt":
            entries = [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
        elif suffix == ".csv":
            reader = csv.DictReader(f)
            if not reader.fieldnames or "path" not in reader.fieldnames:
                raise UserError(
                    f"manifest {manifest} has no 'path' column; add a header row 'path,...'"
                )
            entries = [row["path"].strip() for row in reader if (row.get("path") or "").strip()]
        else:  # .jsonl
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise UserError(f"manifest {manifest} line {lineno} is not JSON: {e}") from e
                if not isinstance(obj, dict) or "path" not in obj:
                    raise UserError(f"manifest {manifest} line {lineno} has no 'path' key")
                entries.append(str(obj["path"]))
    paths = []
    for entry in entries:
        p = Path(entry).expanduser()
        paths.append(str(p if p.is_absolute() else root / p))
    if not paths:
        raise UserError(f"manifest {manifest} lists no videos; add one path per entry")
    if not os.path.exists(paths[0]):
        raise UserError(
            f"manifest {manifest}: first entry {entries[0]!r} not found at {paths[0]} "
            f"(relative paths are resolved against the manifest's folder)"
        )
    return paths


def list_videos(source: PathLike) -> list[str]:
    """List the video files of a folder tree, a manifest (.txt/.csv/.jsonl) or a single video.

    Folder listings are recursive (symlinks followed), filtered by extension and sorted. Manifest
    entries are kept in file order and not checked beyond the first (bad ones are skipped later).
    Raises :class:`UserError` for a missing path, an unknown file type or an empty result.
    """
    path = Path(source).expanduser()
    if not path.exists():
        raise UserError(f"video source not found: {source} (give a folder, a video, or a manifest)")
    if path.is_dir():
        found = []
        for dirpath, dirnames, filenames in os.walk(path, followlinks=True):
            dirnames.sort()
            found.extend(os.path.join(dirpath, fn) for fn in filenames if _is_video(fn))
        if not found:
            exts = " ".join(sorted(VIDEO_EXTENSIONS))
            raise UserError(f"no video files ({exts}) under {source}; check the folder")
        return sorted(found)
    name = path.name.lower()
    if name.endswith(MANIFEST_SUFFIXES):
        return _read_manifest(path)
    if _is_video(name) or _is_tar(name):
        return [str(path)]
    raise UserError(
        f"don't know how to read {source}: expected a folder, a video file, a manifest "
        f"({', '.join(MANIFEST_SUFFIXES)}) or a tar shard"
    )


_BRACE = re.compile(r"\{([^{}]*)\}")


def expand_shards(pattern: PathLike | Sequence[PathLike]) -> list[str]:
    """Expand brace patterns: ``a-{000..012}.tar`` (zero padding kept) and ``{x,y}``.

    Several braces multiply out; a list of patterns is expanded and concatenated in order.
    """
    if not isinstance(pattern, (str, os.PathLike)):
        return [s for p in pattern for s in expand_shards(p)]
    text = os.fspath(pattern)
    m = _BRACE.search(text)
    if m is None:
        return [text]
    head, body, tail = text[: m.start()], m.group(1), text[m.end() :]
    rng = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if rng:
        a, b = rng.group(1), rng.group(2)
        width = len(a) if a.startswith("0") or len(a) == len(b) else 0
        step = 1 if int(b) >= int(a) else -1
        options = [str(i).zfill(width) for i in range(int(a), int(b) + step, step)]
    else:
        options = body.split(",")
    return [s for opt in options for s in expand_shards(head + opt + tail)]


def iter_tar_videos(shards: Iterable[PathLike]) -> Iterator[tuple[str, bytes]]:
    """Stream ``(name, video_bytes)`` from WebDataset-style tar shards, in member order.

    ``name`` is ``"<shard>::<member>"``. Non-video members (``KEY.json`` ...) are ignored. Reads
    sequentially (``tarfile`` mode ``"r|*"``, compression auto-detected). Raises
    :class:`CorruptShard` if a shard is missing or breaks off.
    """
    for shard in shards:
        shard = os.fspath(shard)
        try:
            with tarfile.open(shard, mode="r|*") as tf:
                for member in tf:
                    if not member.isfile() or not _is_video(member.name):
                        continue
                    f = tf.extractfile(member)
                    if f is None:
                        continue
                    yield f"{shard}::{member.name}", f.read()
        except (tarfile.TarError, OSError, EOFError) as e:
            raise CorruptShard(f"cannot read tar shard {shard}: {e}; re-create or drop it") from e


def resolve_sources(sources: PathLike | Sequence[Any]) -> tuple[list[str], list[str]]:
    """Split (nested) sources into ``(video_files, tar_shards)``; see the module docstring."""
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    files: list[str] = []
    shards: list[str] = []
    for src in sources:
        if not isinstance(src, (str, os.PathLike)):
            f, s = resolve_sources(src)
            files += f
            shards += s
            continue
        text = os.fspath(src)
        if "{" in text or _is_tar(text):
            expanded = expand_shards(text)
            missing = [s for s in expanded if not os.path.isfile(s)]
            if missing:
                raise UserError(
                    f"tar shard not found: {missing[0]} ({len(missing)} missing in {text})"
                )
            shards += expanded
        else:
            for p in list_videos(text):
                (shards if _is_tar(p) else files).append(p)
    return files, shards


class VideoClipDataset(ResumableStream):
    """Stream of variable-FPS clips decoded from videos (paper §3.2).

    For each video: probe its duration, draw ``num_frames`` times with
    :func:`~dinoworld.data.sampler.sample_clip_times`, decode the nearest frames (one seek), and
    resize them. Yields dicts::

        frames   (T, 3, h, w) float32 in [0, 1]
        times    (T,) float32  actual frame timestamps, seconds from the video's start
        source   str           path, or "<shard>::<member>" for tar shards
        skipped  int           bad files this worker skipped since its previous sample
        skipped_sources str    those skipped for the first time, newline-joined (see ResumableStream)
        data_pos (5,) int64    position after this sample and its worker, for :meth:`observe`

    Each video gives one clip per epoch; each tar shard is a unit read whole by one worker.
    Corrupt, truncated, empty, audio-only and too-short files are skipped with a
    :class:`SkippedVideoWarning` and counted. If no file of an epoch is usable a :class:`UserError`
    is raised instead of looping forever.

    Resume: call :meth:`observe` on each consumed batch; ``state_dict()`` / ``load_state_dict()``
    then continue exactly, with or without DataLoader workers (with the same ``num_workers``).
    """

    def __init__(
        self,
        sources: PathLike | Sequence[Any],
        num_frames: int = 8,
        dt_min: float = DT_MIN,
        dt_max: float = DT_MAX,
        size: int | tuple[int, int] = (224, 224),
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        policy: str = "crop",
        loop: bool = True,
        shuffle: bool = True,
    ):
        super().__init__(seed, rank, world_size, loop, shuffle)
        if policy not in ("crop", "resize", "pad"):
            raise UserError(f"unknown resize policy {policy!r}; use 'crop', 'resize' or 'pad'")
        self.num_frames, self.dt_min, self.dt_max = int(num_frames), float(dt_min), float(dt_max)
        self.size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.policy = policy
        files, shards = resolve_sources(sources)
        self.files, self.shards = files, shards
        self._unit_list: list[tuple[str, str]] = [("file", f) for f in files] + [
            ("tar", s) for s in shards
        ]
        if not self._unit_list:
            raise UserError(f"no videos found in {sources!r}; check the paths")

    def _units(self) -> list[tuple[str, str]]:
        return self._unit_list

    def _describe(self) -> str:
        return f"{len(self.files)} video files and {len(self.shards)} tar shards"

    def clip(
        self, source: Any, rng: np.random.Generator, name: str | None = None
    ) -> dict[str, Any]:
        """Sample, decode and resize one clip from a path or bytes (raises on a bad file)."""
        name = name or source_name(source)
        container = open_video(source)
        try:
            info = read_info(container, name)
            times = sample_clip_times(info.span, self.num_frames, self.dt_min, self.dt_max, rng)
            # A nearest frame farther than this means the data ends early (truncated file).
            max_error = max(self.dt_max, 2.0 / info.fps) if info.fps > 0 else None
            frames, actual = decode_open(container, name, times, info.fps, max_error)
        finally:
            container.close()
        return {
            "frames": resize_crop(frames, self.size, self.policy),  # (T, 3, h, w)
            "times": torch.from_numpy(actual.astype(np.float32)),  # (T,)
            "source": name,
        }

    def _try(self, member: int, source: Any, name: str, rng: np.random.Generator) -> Outcome:
        try:
            return Outcome(member, name, self.clip(source, rng, name))
        except (CorruptVideo, TooShort) as e:
            return Outcome(member, name, None, str(e))

    def _process(self, unit: Any, epoch: int, gpos: int, first_member: int) -> Iterator[Outcome]:
        kind, path = unit
        if kind == "file":
            if first_member > 0:  # already consumed before a resume
                return
            yield self._try(0, path, path, np.random.default_rng([self.seed, epoch, gpos, 0]))
            return
        member = -1
        try:
            for member, (name, data) in enumerate(iter_tar_videos([path])):
                if member < first_member:
                    continue
                rng = np.random.default_rng([self.seed, epoch, gpos, member])
                yield self._try(member, data, name, rng)
        except CorruptShard as e:
            yield Outcome(max(member + 1, first_member), path, None, str(e))
