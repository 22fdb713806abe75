"""Dense-forecasting protocols (App. C.1): which frames of a window a forecast reads, how frames are
read, and the windows of a dataset.

:class:`Protocol` / :data:`PROTOCOLS` (frame indices per dataset), :class:`Scoring` / :data:`SCORING` /
:data:`HEAD_CROP` (resize, sliding window, head-training crop per dataset), :class:`Sample` and
:func:`windows_of` (one window per annotated frame), :func:`protocol_for`, and the column names
:data:`HORIZONS`, :data:`METHODS`, :data:`KEYS`.

Frame indices inside a window whose scored frame is an annotated frame; every frame is fed at its
real timestamp ``index / fps`` (the dataset's native rate):

============  =====  ==========================  ====================================================
dataset        fps    short                       mid (autoregressive, scored at the last query)
============  =====  ==========================  ====================================================
cityscapes     16     [7, 10, 13, 16] -> 19        [1, 4, 7, 10] -> 13, 16, 19   (187.5 / 562.5 ms)
vspw           15     [7, 10, 13, 16] -> 19        [1, 4, 7, 10] -> 13, 16, 19   (200 / 600 ms)
kitti          10     [5, 7, 9, 11] -> 13          [1, 3, 5, 7] -> 9, 11, 13     (200 / 600 ms)
synthetic     probe   VSPW's indices (15 fps by default: 200 / 600 ms)
============  =====  ==========================  ====================================================

Every annotated frame ``a`` with ``a >= target`` of a sequence gives one window starting at
``a - target``: the 20th frame of each Cityscapes snippet, every 20-frame window of a VSPW video
(all its frames are annotated), every annotated KITTI frame with 13 frames before it.

Three columns, as Table 1: the head on the *predicted* features (``model``), on the last context
frame's features (``copy_last``: frame 16 / 10 for Cityscapes) and on the true features of the
scored frame (``present``, the upper bound).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import UserError
from .readers import DATASETS, DenseDataset

HORIZONS = ("short", "mid")
METHODS = ("model", "copy_last", "context_mean")  #: context_mean: the hedging baseline
#: output keys: the present-time upper bound, then (horizon, method)
KEYS: tuple[str, ...] = ("present", *(f"{h}/{m}" for h in HORIZONS for m in METHODS))


# -- protocols ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Protocol:
    """Frame indices inside a window (App. C.1); ``fps`` is the dataset's native rate."""

    name: str
    fps: float
    short_context: tuple[int, ...]
    short_target: int
    mid_context: tuple[int, ...]
    mid_queries: tuple[int, ...]  # autoregressive; the last one is scored

    @property
    def target(self) -> int:
        return self.short_target

    def horizon_s(self, horizon: str, fps: float | None = None) -> float:
        ctx = self.short_context if horizon == "short" else self.mid_context
        return (self.target - ctx[-1]) / float(fps or self.fps)

    def indices(self) -> list[int]:
        """Every window index a forecast reads, ascending (the scored frame included)."""
        return sorted({*self.short_context, self.short_target, *self.mid_context, *self.mid_queries})


_CS_IDX = dict(short_context=(7, 10, 13, 16), short_target=19, mid_context=(1, 4, 7, 10), mid_queries=(13, 16, 19))
PROTOCOLS: dict[str, Protocol] = {
    "cityscapes": Protocol("cityscapes", 16.0, **_CS_IDX),
    "vspw": Protocol("vspw", 15.0, **_CS_IDX),
    "kitti": Protocol("kitti", 10.0, (5, 7, 9, 11), 13, (1, 3, 5, 7), (9, 11, 13)),
    "synthetic": Protocol("synthetic", 15.0, **_CS_IDX),
}
for _p in PROTOCOLS.values():
    assert _p.mid_queries[-1] == _p.short_target


def protocol_for(dataset: str, fps: float | None = None) -> Protocol:
    if dataset not in PROTOCOLS:
        raise UserError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    p = PROTOCOLS[dataset]
    if fps and fps != p.fps:
        p = Protocol(p.name, float(fps), p.short_context, p.short_target, p.mid_context, p.mid_queries)
    return p


@dataclass(frozen=True)
class Scoring:
    """How frames are read: ``short_side`` resize (0 = native), sliding ``window`` (0 = whole image)
    with ``stride``."""

    short_side: int = 448
    window: tuple[int, int] = (448, 448)
    stride: int = 300


#: scoring and head-training crop per dataset (paper: 448 / 448² / 300 for segmentation, whole
#: 352×1216 images for KITTI depth; the synthetic probe is read whole at its own size)
SCORING: dict[str, Scoring] = {
    "cityscapes": Scoring(), "vspw": Scoring(), "kitti": Scoring(0, (0, 0), 0), "synthetic": Scoring(0, (0, 0), 0),
}
HEAD_CROP: dict[str, tuple[int, int]] = {"cityscapes": (448, 448), "vspw": (448, 448), "kitti": (352, 704),
                                         "synthetic": (0, 0)}


@dataclass(frozen=True)
class Sample:
    sequence: int  # index into dataset.sequences
    start: int  # frame index of the window's frame 0


def windows_of(ds: DenseDataset, protocol: Protocol) -> list[Sample]:
    """One sample per annotated frame ``a >= protocol.target`` (window start ``a - target``), frames
    whose label file is missing (:attr:`DenseSequence.missing_labels`) included."""
    out = []
    for k, s in enumerate(ds.sequences):
        for a in sorted({*s.labels, *s.missing_labels}):
            if a >= protocol.target and a < len(s.frames):
                out.append(Sample(k, a - protocol.target))
    return out


def _missing_label(datasets: dict[str, DenseDataset], sample: Sample, frame: int) -> str | None:
    """Why a window cannot be scored for lack of a label of its scored ``frame``, or None."""
    for task, ds in datasets.items():
        seq = ds.sequences[sample.sequence]
        if frame not in seq.labels:
            path = seq.missing_labels.get(frame)
            return f"{seq.name} frame {frame}: no {task} label{f' ({path} missing)' if path else ''}"
    return None
