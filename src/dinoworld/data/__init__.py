"""Video data: decoding at timestamps, variable-FPS clip sampling, datasets, feature cache."""

from .cache import CacheSummary, FeatureClipDataset, encode_videos_to_cache
from .sampler import TooShort, nearest_indices, sample_clip_times
from .sources import (
    CorruptShard,
    VideoClipDataset,
    expand_shards,
    iter_tar_videos,
    list_videos,
)
from .stream import ResumableStream, SkippedVideoWarning
from .synthetic import make_moving_objects_video, write_synthetic_dataset
from .video import (
    CorruptVideo,
    VideoInfo,
    decode_at,
    probe_video,
    resize_crop,
    write_video,
)

__all__ = [
    "CacheSummary",
    "CorruptShard",
    "CorruptVideo",
    "FeatureClipDataset",
    "ResumableStream",
    "SkippedVideoWarning",
    "TooShort",
    "VideoClipDataset",
    "VideoInfo",
    "decode_at",
    "encode_videos_to_cache",
    "expand_shards",
    "iter_tar_videos",
    "list_videos",
    "make_moving_objects_video",
    "nearest_indices",
    "probe_video",
    "resize_crop",
    "sample_clip_times",
    "write_synthetic_dataset",
    "write_video",
]
