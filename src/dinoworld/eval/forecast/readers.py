"""Dense-forecasting datasets: image sequences at their native frame rate with per-pixel labels.

Every reader returns :class:`DenseSequence` records: the frame files of one video in order (frame
``i`` is seen at ``i / fps`` seconds, the dataset's native rate) and the labels of its annotated
frames. The forecasting protocols (:mod:`.protocol`) pick windows of frames from them; the
present-time heads (:mod:`.heads`) train on their (frame, label) pairs. Also here: the label and
depth PNG formats (:data:`IGNORE`, :data:`DEPTH_SCALE`, read and write) and :func:`read_dense`, the
reader of a dataset by name.

Layouts (``ROOT`` is ``--root``):

* ``cityscapes`` (16 fps, 19 classes): ``ROOT/leftImg8bit_sequence/{split}/{city}/{city}_{seq}_{frame}_leftImg8bit.png``
  (30-frame snippets) and ``ROOT/gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_labelTrainIds.png``
  for the annotated frame, the 20th (index 19) of its snippet. Without ``*_labelTrainIds.png``
  (made by cityscapesscripts' ``createTrainIdLabelImgs``) the ``*_labelIds.png`` are mapped to the 19
  train ids here. Without ``leftImg8bit_sequence`` the single ``leftImg8bit`` frames serve
  present-time head training only.
* ``vspw`` (15 fps, 124 classes): ``ROOT/data/<video>/origin/*.jpg`` + ``ROOT/data/<video>/mask/*.png``
  (same stems), videos listed in ``ROOT/{split}.txt`` (one name a line). Masks hold 0 = "others",
  1..124 = classes, 255 = void; as mmsegmentation's VSPW reader (``reduce_zero_label``), 0 and 255
  are ignored and 1..124 become 0..123.
* ``kitti`` (10 fps, depth): raw sequences ``ROOT/raw/<date>/<drive>/image_02/data/*.png`` (or
  ``ROOT/<date>/<drive>/...``) and the annotated depth ``ROOT/data_depth_annotated/{split}/<drive>/
  proj_depth/groundtruth/image_02/*.png`` (uint16, metres × 256, 0 = no measurement), matched by
  drive and frame number. An optional ``ROOT/{split}_files.txt`` (lines ``<date>/<drive> <frame>`` or
  ``<date>/<drive>/image_02/data/<frame>.png ...`` as the usual Eigen split files) restricts the
  annotated frames; with it, a split that is not a folder (``--split eigen_test`` with
  ``ROOT/eigen_test_files.txt``: the Eigen test split's 652 annotated frames) is looked up in both
  ``train`` and ``val``.
* ``synthetic`` (written by ``dinoworld make-forecast-probe``): ``ROOT/sequences/{split}/<seq>/
  frames/*.png``, ``classes/*.png`` (uint8 class ids) and ``depth/*.png`` (uint16 metres × 256),
  every frame annotated; ``ROOT/forecast_probe.json`` gives ``fps`` and the class names.

A missing root, split or file is one :class:`~dinoworld.errors.UserError` line that names it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import UserError

#: the label of pixels that no metric scores (segmentation)
IGNORE = 255
#: depth PNGs (KITTI and the synthetic probe) store metres × this factor as uint16, 0 = no value
DEPTH_SCALE = 256.0

CITYSCAPES_CLASSES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)
#: Cityscapes label id -> train id (cityscapesscripts' labels.py); every other id is ignored
CITYSCAPES_ID_TO_TRAIN_ID = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
                             25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
VSPW_NUM_CLASSES = 124


@dataclass
class DenseSequence:
    """One video: frame ``i`` is ``frames[i]`` at ``i / fps`` s; ``labels[i]`` is its label file;
    ``missing_labels[i]`` the label file a frame of a fully annotated dataset lacks."""

    name: str
    frames: list[Path]
    fps: float
    labels: dict[int, Path] = field(default_factory=dict)
    missing_labels: dict[int, Path] = field(default_factory=dict)


@dataclass
class DenseDataset:
    name: str
    task: str  # "segmentation" | "depth"
    split: str
    sequences: list[DenseSequence]
    num_classes: int = 0  # segmentation only
    class_names: tuple[str, ...] = ()
    read_label: Callable[[Path], np.ndarray] | None = None  # path -> (H, W) uint8 ids or float32 metres
    crop: Callable[[np.ndarray], np.ndarray] | None = None  # applied to frames and labels alike (KITTI)
    problems: list[str] = field(default_factory=list)

    def pairs(self) -> list[tuple[Path, Path]]:
        """Every (frame, label) pair: the present-time training set."""
        return [(s.frames[i], s.labels[i]) for s in self.sequences for i in sorted(s.labels)]

    def load_frame(self, path: Path) -> np.ndarray:
        img = read_rgb(path)
        return self.crop(img) if self.crop else img

    def load_label(self, path: Path) -> np.ndarray:
        assert self.read_label is not None
        lab = self.read_label(path)
        return self.crop(lab) if self.crop else lab


# -- file helpers ---------------------------------------------------------------------------------
def read_rgb(path: str | Path) -> np.ndarray:
    """``(H, W, 3)`` uint8; an unreadable file is a UserError naming it."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read image {path}: {err}") from None


def read_index_png(path: str | Path) -> np.ndarray:
    """Class ids ``(H, W)`` uint8 from a grey or palette PNG (palette indices, not colours)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "P", "I", "I;16"):
                im = im.convert("L")
            return np.asarray(im).astype(np.uint8)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read label {path}: {err}") from None


def read_depth_png(path: str | Path) -> np.ndarray:
    """Metres ``(H, W)`` float32 from a uint16 PNG (value / 256; 0 = no measurement)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            raw = np.asarray(im).astype(np.float32)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read depth map {path}: {err}") from None
    return raw / DEPTH_SCALE


def write_index_png(path: str | Path, ids: np.ndarray) -> None:
    from PIL import Image

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(ids, dtype=np.uint8), mode="L").save(path)


def write_depth_png(path: str | Path, metres: np.ndarray) -> None:
    from PIL import Image

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    raw = np.clip(np.round(np.asarray(metres, dtype=np.float64) * DEPTH_SCALE), 0, 65535).astype(np.uint16)
    Image.fromarray(raw).save(path)


def _split_labels(expected: list[Path]) -> tuple[dict[int, Path], dict[int, Path]]:
    """``(labels, missing_labels)`` of a sequence whose every frame ``i`` should have ``expected[i]``."""
    have = [p.is_file() for p in expected]
    return ({i: p for i, (p, h) in enumerate(zip(expected, have)) if h},
            {i: p for i, (p, h) in enumerate(zip(expected, have)) if not h})


def _need_dir(p: Path, what: str) -> Path:
    if not p.is_dir():
        raise UserError(f"{what} {p} does not exist (or is not a folder)")
    return p


def _root(root: str | Path) -> Path:
    r = Path(root).expanduser()
    if not r.is_dir():
        raise UserError(f"dataset root {r} does not exist (or is not a folder); pass --root DIR")
    return r


# -- Cityscapes -----------------------------------------------------------------------------------
CITYSCAPES_FPS = 16.0
_CS_RE = re.compile(r"^(?P<city>.+)_(?P<seq>\d{6})_(?P<frame>\d{6})_gtFine_label(?P<kind>TrainIds|Ids)\.png$")


def _cityscapes_train_ids(path: Path) -> np.ndarray:
    ids = read_index_png(path)
    if path.name.endswith("_labelTrainIds.png"):
        return ids
    lut = np.full(256, IGNORE, np.uint8)
    for k, v in CITYSCAPES_ID_TO_TRAIN_ID.items():
        lut[k] = v
    return lut[ids]


def read_cityscapes(root: str | Path, split: str = "val", annotated_index: int = 19,
                    snippet: int = 30) -> DenseDataset:
    """Cityscapes snippets; frame ``annotated_index`` of each carries the gtFine label."""
    r = _root(root)
    gt = _need_dir(r / "gtFine" / split, f"Cityscapes split {split!r}: folder")
    seq_dir = r / "leftImg8bit_sequence" / split
    single_dir = r / "leftImg8bit" / split
    if not seq_dir.is_dir() and not single_dir.is_dir():
        raise UserError(f"Cityscapes frames not found: neither {seq_dir} nor {single_dir} exists")
    labels: dict[tuple[str, str, str], Path] = {}
    for p in sorted(gt.glob("*/*_gtFine_label*.png")):
        m = _CS_RE.match(p.name)
        if m:
            key = (m["city"], m["seq"], m["frame"])
            if m["kind"] == "TrainIds" or key not in labels:
                labels[key] = p
    ds = DenseDataset("cityscapes", "segmentation", split, [], len(CITYSCAPES_CLASSES), CITYSCAPES_CLASSES,
                      _cityscapes_train_ids)
    for (city, seq, frame), lab in sorted(labels.items()):
        f = int(frame)
        frames = [seq_dir / city / f"{city}_{seq}_{f - annotated_index + i:06d}_leftImg8bit.png"
                  for i in range(snippet)]
        have = [p.is_file() for p in frames]
        n = 0
        while n < snippet and have[n]:
            n += 1
        name = f"{city}_{seq}_{frame}"
        if n > annotated_index:
            ds.sequences.append(DenseSequence(name, frames[:n], CITYSCAPES_FPS, {annotated_index: lab}))
            continue
        single = single_dir / city / f"{city}_{seq}_{frame}_leftImg8bit.png"
        if single.is_file():  # present-time only: a one-frame "sequence"
            ds.sequences.append(DenseSequence(name, [single], CITYSCAPES_FPS, {0: lab}))
            ds.problems.append(f"{name}: no sequence frames (first missing {frames[n].name}); present-time only")
        else:
            ds.problems.append(f"{name}: frame {frames[n].name} missing")
    if not ds.sequences:
        extra = f"; first problem: {ds.problems[0]}" if ds.problems else ""
        raise UserError(f"no Cityscapes samples under {r} split {split!r}: "
                        f"expected {gt}/CITY/*_gtFine_labelTrainIds.png and {seq_dir}/CITY/*_leftImg8bit.png{extra}")
    return ds


# -- VSPW -----------------------------------------------------------------------------------------
VSPW_FPS = 15.0


def _vspw_label(path: Path) -> np.ndarray:
    ids = read_index_png(path).astype(np.int16)
    out = ids - 1  # reduce_zero_label: 0 ("others") -> ignore, 1..124 -> 0..123
    out[(ids == 0) | (ids == IGNORE) | (out >= VSPW_NUM_CLASSES)] = IGNORE
    return out.astype(np.uint8)


def read_vspw(root: str | Path, split: str = "val") -> DenseDataset:
    r = _root(root)
    lst = r / f"{split}.txt"
    if not lst.is_file():
        found = ", ".join(sorted(p.stem for p in r.glob("*.txt"))) or "none"
        raise UserError(f"VSPW split list {lst} does not exist (split lists found: {found})")
    data = _need_dir(r / "data", "VSPW data folder")
    names = [ln.strip() for ln in lst.read_text().splitlines() if ln.strip()]
    ds = DenseDataset("vspw", "segmentation", split, [], VSPW_NUM_CLASSES,
                      tuple(f"class_{i}" for i in range(VSPW_NUM_CLASSES)), _vspw_label)
    for name in names:
        origin, mask = data / name / "origin", data / name / "mask"
        if not origin.is_dir():
            ds.problems.append(f"{origin} missing")
            continue
        frames = sorted(p for p in origin.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        labels, missing = _split_labels([mask / f"{p.stem}.png" for p in frames])
        if not frames or not labels:
            ds.problems.append(f"{data / name}: {len(frames)} frames, {len(labels)} masks")
            continue
        ds.sequences.append(DenseSequence(name, frames, VSPW_FPS, labels, missing))
    if not ds.sequences:
        extra = f"; first problem: {ds.problems[0]}" if ds.problems else ""
        raise UserError(f"no VSPW videos of {lst} found under {data} "
                        f"(expected data/VIDEO/origin/*.jpg + mask/*.png){extra}")
    return ds


# -- KITTI depth ----------------------------------------------------------------------------------
KITTI_FPS = 10.0
KITTI_CROP = (352, 1216)


def kitti_crop(img: np.ndarray) -> np.ndarray:
    """The usual KITTI depth crop (Garg / "KB"): the bottom 352 rows, the centre 1216 columns."""
    h, w = img.shape[:2]
    ch, cw = min(KITTI_CROP[0], h), min(KITTI_CROP[1], w)
    top, left = h - ch, (w - cw) // 2
    return img[top : top + ch, left : left + cw]


def _kitti_split_filter(path: Path) -> set[tuple[str, int]]:
    keep: set[tuple[str, int]] = set()
    for ln in path.read_text().splitlines():
        parts = ln.split()
        if not parts:
            continue
        if len(parts) >= 2 and parts[1].isdigit():  # "<date>/<drive> <frame> [l|r]"
            keep.add((Path(parts[0]).name, int(parts[1])))
            continue
        p = Path(parts[0])  # ".../<drive>/image_02/data/<frame>.png"
        if p.stem.isdigit() and len(p.parts) >= 4:
            keep.add((p.parts[-4], int(p.stem)))
    return keep


def read_kitti(root: str | Path, split: str = "val") -> DenseDataset:
    r = _root(root)
    raw = r / "raw" if (r / "raw").is_dir() else r
    filt_file = r / f"{split}_files.txt"
    filt = _kitti_split_filter(filt_file) if filt_file.is_file() else None
    ann = r / "data_depth_annotated" / split
    if ann.is_dir():
        drives = sorted(p for p in ann.iterdir() if p.is_dir())
    elif filt is not None:  # a split list over the whole benchmark, e.g. eigen_test_files.txt
        drives = sorted(p for sub in ("train", "val") if (r / "data_depth_annotated" / sub).is_dir()
                        for p in (r / "data_depth_annotated" / sub).iterdir() if p.is_dir())
    else:
        raise UserError(f"KITTI depth split {split!r}: neither {ann} nor {filt_file} exists")
    ds = DenseDataset("kitti", "depth", split, [], read_label=read_depth_png, crop=kitti_crop)
    for drive_dir in drives:
        drive = drive_dir.name
        gt = drive_dir / "proj_depth" / "groundtruth" / "image_02"
        if not gt.is_dir():
            ds.problems.append(f"{gt} missing")
            continue
        date = drive[:10]
        img_dir = raw / date / drive / "image_02" / "data"
        if not img_dir.is_dir():
            ds.problems.append(f"{drive}: raw frames {img_dir} missing")
            continue
        frames = sorted(p for p in img_dir.iterdir() if p.suffix.lower() == ".png" and p.stem.isdigit())
        index = {int(p.stem): i for i, p in enumerate(frames)}
        labels = {}
        for g in sorted(gt.glob("*.png")):
            if g.stem.isdigit() and int(g.stem) in index and (filt is None or (drive, int(g.stem)) in filt):
                labels[index[int(g.stem)]] = g
        if labels:
            ds.sequences.append(DenseSequence(drive, frames, KITTI_FPS, labels))
    if not ds.sequences:
        extra = f"; first problem: {ds.problems[0]}" if ds.problems else ""
        raise UserError(f"no annotated KITTI frames under {ann} matched raw frames "
                        f"in {raw}/DATE/DRIVE/image_02/data{extra}")
    return ds


# -- the synthetic probe --------------------------------------------------------------------------
PROBE_META = "forecast_probe.json"


def read_synthetic(root: str | Path, split: str = "val", task: str = "segmentation") -> DenseDataset:
    r = _root(root)
    meta_path = r / PROBE_META
    if not meta_path.is_file():
        raise UserError(f"{meta_path} does not exist; "
                        f"write the benchmark with `dinoworld make-forecast-probe --out {r}`")
    meta = json.loads(meta_path.read_text())
    sd = _need_dir(r / "sequences" / split, f"synthetic split {split!r}: folder")
    sub = "classes" if task == "segmentation" else "depth"
    classes = tuple(meta.get("classes", ()))
    ds = DenseDataset("synthetic", task, split, [], len(classes) if task == "segmentation" else 0, classes,
                      read_index_png if task == "segmentation" else read_depth_png)
    for seq in sorted(p for p in sd.iterdir() if p.is_dir()):
        frames = sorted((seq / "frames").glob("*.png"))
        labels, missing = _split_labels([seq / sub / p.name for p in frames])
        if frames and labels:
            ds.sequences.append(DenseSequence(seq.name, frames, float(meta["fps"]), labels, missing))
        else:
            ds.problems.append(f"{seq}: {len(frames)} frames, {len(labels)} {sub} labels")
    if not ds.sequences:
        raise UserError(f"no sequences under {sd} (expected SEQ/frames/*.png + SEQ/{sub}/*.png)")
    return ds


DATASETS: tuple[str, ...] = ("cityscapes", "vspw", "kitti", "synthetic")
#: the tasks each dataset is scored on (Table 1: segmentation for Cityscapes / VSPW, depth for KITTI)
TASKS: dict[str, tuple[str, ...]] = {"cityscapes": ("segmentation",), "vspw": ("segmentation",), "kitti": ("depth",),
                                     "synthetic": ("segmentation", "depth")}


def read_dense(dataset: str, root: str | Path, split: str = "val", task: str | None = None) -> DenseDataset:
    """The ``task`` labels of ``dataset``'s ``split`` under ``root``."""
    if dataset not in TASKS:
        raise UserError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    task = task or TASKS[dataset][0]
    if task not in TASKS[dataset]:
        raise UserError(f"{dataset} has no {task} labels (it has {', '.join(TASKS[dataset])})")
    if dataset == "cityscapes":
        return read_cityscapes(root, split)
    if dataset == "vspw":
        return read_vspw(root, split)
    if dataset == "kitti":
        return read_kitti(root, split)
    return read_synthetic(root, split, task)
