"""The whole intuitive-physics evaluation: every video of the pairs scored once, then the accuracies."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ...data.video import CorruptVideo
from ...errors import UserError
from .metrics import PairResult, summarize
from .readers import IMAGE_SEQUENCE_FPS, Pair, VideoRef, load_frames
from .surprise import Surprise, video_surprise


@dataclass
class PhysicsEval:
    results: list[PairResult]
    summary: dict[str, Any]
    skipped: list[str]  # "path: reason" of each unreadable video (its pairs are skipped)


def evaluate_pairs(wm: Any, pairs: Sequence[Pair], resolution: int, context: int = 4, stride: int = 1,
                   gap: float | None = None, frame_step: int = 1, image_fps: float = IMAGE_SEQUENCE_FPS,
                   batch_size: int = 32, copy_last_only: bool = False,
                   progress: Callable[[str], None] | None = None) -> PhysicsEval:
    """Surprise of every video of ``pairs`` (each video scored once) and the relative accuracies.
    Unreadable or too-short videos are skipped with their pairs and counted; never a crash midway."""
    cache: dict[VideoRef, Surprise | None] = {}
    skipped: list[str] = []

    def score(ref: VideoRef) -> Surprise | None:
        if ref not in cache:
            try:
                frames, times, idx = load_frames(ref, frame_step, image_fps)
                s = video_surprise(wm, frames, times, resolution, context, stride, gap, batch_size, copy_last_only)
                s.target_frames = idx[s.target_frames]  # frame numbers in the whole video
                cache[ref] = s
            except CorruptVideo as err:
                skipped.append(f"{ref.path}: {err}")
                cache[ref] = None
        return cache[ref]

    results = []
    for n, pair in enumerate(pairs):
        sp, si = score(pair.possible), score(pair.impossible)
        if sp is not None and si is not None:
            results.append(PairResult(pair, sp, si))
        if progress and ((n + 1) % 10 == 0 or n + 1 == len(pairs)):
            progress(f"pairs {n + 1}/{len(pairs)} ({len(skipped)} videos skipped)")
    if not results:
        first = f"; first: {skipped[0]}" if skipped else ""
        raise UserError(f"no pair could be evaluated ({len(skipped)} unreadable or too-short videos{first})")
    summary = summarize(results)
    summary["skipped_videos"] = len(skipped)
    return PhysicsEval(results, summary, skipped)
