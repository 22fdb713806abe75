"""An offline dense-forecasting benchmark on the project's synthetic scenes (``data/synthetic.py``).

:func:`render_labelled_scene` re-runs the scene of :func:`~dinoworld.data.synthetic.make_moving_objects_video`
for the same arguments (the same random draws in the same order, the same continuous-time
simulation, so its RGB frames are bit-identical to the generator's; a test checks it) and renders
per-pixel labels beside the frames:

* classes: 0 = background, 1 = disc, 2 = square (the object drawn on top where its coverage >= 1/2);
* depth in metres: background at :data:`BACKGROUND_DEPTH`, each object at ``0.5 / (radius / side)``
  (a bigger object is nearer, as with objects of one real size), 3.8-8.3 m.

:func:`write_forecast_probe` writes the benchmark::

    DIR/train/video_0000.mp4 ...                 unlabelled videos for the predictor (variable fps)
    DIR/sequences/{train,val}/seq_0000/frames/000000.png ...   labelled sequences at the probe's fps
                                      /classes/000000.png      uint8 class ids
                                      /depth/000000.png        uint16 metres x 256 (as KITTI)
    DIR/forecast_probe.json                      fps, size, classes, protocol, counts

``train`` sequences train the present-time heads, ``val`` sequences are forecast (the ``synthetic``
dataset of :mod:`.readers`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ...data.synthetic import composite, moving_objects_scene, write_synthetic_dataset
from ...files import atomic_write_json
from .readers import PROBE_META, write_depth_png, write_index_png

CLASSES: tuple[str, ...] = ("background", "disc", "square")
BACKGROUND_DEPTH = 12.0


def render_labelled_scene(seconds: float = 3.0, fps: float = 10.0, size: int | tuple[int, int] = 64,
                          num_objects: int = 3, seed: int = 0, gravity: float = 0.0,
                          background: str = "texture") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The scene of ``make_moving_objects_video(seconds, fps, size, num_objects, seed, gravity, background)``
    with labels: ``frames (T, H, W, 3)`` uint8 (identical to the generator's), ``classes (T, H, W)``
    uint8 and ``depth (T, H, W)`` float32 metres."""
    bg, colours, is_disc, radius, coverage = moving_objects_scene(seconds, fps, size, num_objects, seed, gravity,
                                                                  background)
    side = float(min(bg.shape[:2]))
    obj_class = np.where(is_disc, 1, 2).astype(np.uint8)
    obj_depth = (0.5 * side / radius).astype(np.float32)
    frames, classes, depth = [], [], []
    for alphas in coverage:
        frames.append(composite(bg, colours, alphas))
        cls = np.zeros(bg.shape[:2], np.uint8)
        dep = np.full(bg.shape[:2], BACKGROUND_DEPTH, np.float32)
        for j, alpha in enumerate(alphas):  # later objects are drawn on top, as in the frame
            on = alpha >= 0.5
            cls[on], dep[on] = obj_class[j], obj_depth[j]
        classes.append(cls)
        depth.append(dep)
    return np.stack(frames), np.stack(classes), np.stack(depth)


def write_forecast_probe(out: str | Path, train_videos: int = 48, train_sequences: int = 12, val_sequences: int = 64,
                         size: int = 112, fps: float = 15.0, seconds: float = 2.0, train_seconds: float = 4.0,
                         num_objects: int = 3, seed: int = 0,
                         progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write the benchmark (layout in the module docstring) and return ``forecast_probe.json``'s content.

    Predictor videos use seeds ``(seed, i)`` through :func:`write_synthetic_dataset` at several frame
    rates; labelled sequences use other seeds at ``fps`` (the probe's native rate, 15 by default as
    VSPW, so the VSPW indices give 200 ms / 600 ms horizons). A sequence needs >= 20 frames.
    """
    if size % 2 or size < 14:
        raise ValueError(f"size must be even and >= 14, got {size}")
    if int(math.floor(seconds * fps + 1e-9)) < 20:
        raise ValueError(f"labelled sequences need >= 20 frames; {seconds}s at {fps} fps gives fewer")
    o = Path(out)
    o.mkdir(parents=True, exist_ok=True)
    if train_videos:
        write_synthetic_dataset(o / "train", num_videos=train_videos, seconds=train_seconds,
                                fps=(7.5, 10.0, 12.0, 15.0, 20.0, 30.0), size=size, seed=seed, num_objects=num_objects)
        if progress:
            progress(f"wrote {train_videos} training videos to {o / 'train'}")
    counts = {}
    for split, num, offset in (("train", train_sequences, 1_000_000), ("val", val_sequences, 2_000_000)):
        for k in range(num):
            scene_seed = int(np.random.default_rng([seed, offset + k]).integers(2**31))
            frames, classes, depth = render_labelled_scene(seconds, fps, size, num_objects, seed=scene_seed)
            d = o / "sequences" / split / f"seq_{k:04d}"
            from PIL import Image

            for i in range(len(frames)):
                (d / "frames").mkdir(parents=True, exist_ok=True)
                Image.fromarray(frames[i]).save(d / "frames" / f"{i:06d}.png")
                write_index_png(d / "classes" / f"{i:06d}.png", classes[i])
                write_depth_png(d / "depth" / f"{i:06d}.png", depth[i])
        counts[split] = num
        if progress:
            progress(f"wrote {num} labelled {split} sequences")
    meta = {"fps": float(fps), "size": int(size), "seconds": float(seconds), "classes": list(CLASSES),
            "background_depth": BACKGROUND_DEPTH, "depth_scale": 256.0, "train_videos": int(train_videos),
            "sequences": counts, "num_objects": int(num_objects), "seed": int(seed),
            "protocol": "vspw indices: short [7,10,13,16]->19, mid [1,4,7,10]->13,16,19 (every 20-frame window)"}
    atomic_write_json(o / PROBE_META, meta)
    return meta
