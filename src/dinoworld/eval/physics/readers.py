"""The intuitive-physics benchmarks on disk: matched (possible, impossible) pairs and their frames.

Readers (each returns :class:`PairSet`):

* ``intphys``: IntPhys dev ``ROOT/O{1,2,3}/<scene>/{1..4}/scene/*.png`` with
  ``ROOT/O?/<scene>/{1..4}/status.json`` -> ``header.is_possible``. Each quadruplet (2 possible, 2
  impossible) gives its 4 (possible, impossible) combinations as matched pairs (the IntPhys /
  InfLevel quadruplet comparison). Properties: O1 object permanence, O2 unchangeableness (shape
  constancy), O3 spatio-temporal continuity. Frames are taken at :data:`IMAGE_SEQUENCE_FPS` unless
  told otherwise.
* ``grasp``: ``ROOT/P_<Property>/NAME.mp4`` vs ``ROOT/IP_<Property>/NAME.mp4`` (same NAME).
* ``inflevel``: one CSV per property in ``ROOT`` (or ``ROOT/csv``), named after it
  (``continuity.csv`` ...), with ``vid1_path``, ``vid2_path`` (relative to ``ROOT``) and ``vid1_label``
  (``possible`` / ``impossible``; ``vid2_label`` optional, else the other one). Optional
  ``vid{1,2}_end_priming_2`` columns: the surprise is taken only after that frame (the priming part
  of an InfLevel video is not the test event).
* ``folder``: ``ROOT/possible/NAME.ext`` and ``ROOT/impossible/NAME.ext`` (any video extension, or a
  folder of images) with the same NAME; other files and folders beside them are ignored; a NAME
  without its partner is reported and skipped. Properties come from an optional ``ROOT/pairs.json``
  (``{"pairs": {NAME: {"property": ..., "departure_frame": ...}}}``, as ``make-physics-probe``
  writes) or, without ``possible/`` at the top, from sub-folders ``ROOT/<property>/{possible,impossible}``.

:func:`load_frames` reads the frames of one video (or image folder) with their actual timestamps.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...data.video import CorruptVideo, decode_at, probe_video
from ...errors import UserError

DATASETS: tuple[str, ...] = ("intphys", "grasp", "inflevel", "folder")
#: frame rate assumed for image sequences (IntPhys ships PNGs without timestamps)
IMAGE_SEQUENCE_FPS = 15.0
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
INTPHYS_PROPERTIES = {"O1": "object permanence", "O2": "unchangeableness", "O3": "spatio-temporal continuity"}


# -- pairs ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VideoRef:
    """A video file or a folder of frames; ``start_frame`` skips a priming part."""

    path: Path
    start_frame: int = 0


@dataclass
class Pair:
    name: str
    possible: VideoRef
    impossible: VideoRef
    property: str | None = None
    departure_frame: int | None = None  # first frame where the impossible video departs (when known)


@dataclass
class PairSet:
    pairs: list[Pair]
    problems: list[str] = field(default_factory=list)  # names without their partner, bad rows ...


def _is_video(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in VIDEO_EXTS


def _has_images(p: Path) -> bool:
    return p.is_dir() and any(q.suffix.lower() in IMAGE_EXTS for q in p.iterdir())


def _media_by_stem(folder: Path) -> dict[str, Path]:
    """NAME -> a video file or a folder of images (anything else is ignored)."""
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if _is_video(p) or _has_images(p):
            out.setdefault(p.stem if p.is_file() else p.name, p)
    return out


def _match(pos: dict[str, Path], imp: dict[str, Path], prop: str | None, where: str,
           meta: dict[str, dict] | None = None) -> PairSet:
    pairs, problems = [], []
    for name in sorted(set(pos) | set(imp)):
        if name not in imp:
            problems.append(f"{where}: {name} has no impossible partner")
        elif name not in pos:
            problems.append(f"{where}: {name} has no possible partner")
        else:
            m = (meta or {}).get(name, {})
            dep = m.get("departure_frame")
            pairs.append(Pair(name, VideoRef(pos[name]), VideoRef(imp[name]), m.get("property", prop),
                              int(dep) if dep is not None else None))
    return PairSet(pairs, problems)


def read_folder(root: Path) -> PairSet:
    if (root / "possible").is_dir() or (root / "impossible").is_dir():
        meta: dict[str, dict] = {}
        if (root / "pairs.json").is_file():
            try:
                raw = json.loads((root / "pairs.json").read_text())
            except json.JSONDecodeError as err:
                raise UserError(f"{root / 'pairs.json'} is not valid JSON ({err.msg} at line {err.lineno})") from None
            raw = raw.get("pairs", raw) if isinstance(raw, dict) else {}
            meta = {k: v for k, v in raw.items() if isinstance(v, dict)}
        pos = _media_by_stem(root / "possible") if (root / "possible").is_dir() else {}
        imp = _media_by_stem(root / "impossible") if (root / "impossible").is_dir() else {}
        return _match(pos, imp, None, str(root), meta)
    out = PairSet([])
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        if (sub / "possible").is_dir() and (sub / "impossible").is_dir():
            s = _match(_media_by_stem(sub / "possible"), _media_by_stem(sub / "impossible"), sub.name, str(sub))
            out.pairs += s.pairs
            out.problems += s.problems
    return out


def read_grasp(root: Path) -> PairSet:
    out = PairSet([])
    for pdir in sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("P_")):
        prop = pdir.name[2:]
        idir = root / f"IP_{prop}"
        if not idir.is_dir():
            out.problems.append(f"{pdir} has no IP_{prop} folder beside it")
            continue
        s = _match(_media_by_stem(pdir), _media_by_stem(idir), prop, f"GRASP {prop}")
        out.pairs += s.pairs
        out.problems += s.problems
    return out


def read_intphys(root: Path) -> PairSet:
    out = PairSet([])
    blocks = sorted(p for p in root.iterdir() if p.is_dir() and p.name in INTPHYS_PROPERTIES)
    for block in blocks:
        prop = INTPHYS_PROPERTIES[block.name]
        for scene in sorted(p for p in block.iterdir() if p.is_dir()):
            pos, imp = [], []
            for movie in sorted(p for p in scene.iterdir() if p.is_dir() and p.name.isdigit()):
                try:
                    possible = bool(json.loads((movie / "status.json").read_text())["header"]["is_possible"])
                except (OSError, KeyError, TypeError, json.JSONDecodeError):
                    out.problems.append(f"{movie}: no readable status.json header.is_possible")
                    continue
                (pos if possible else imp).append(movie / "scene")
            if not pos or not imp:
                out.problems.append(f"{scene}: needs possible and impossible movies ({len(pos)} / {len(imp)})")
                continue
            for p in pos:
                for i in imp:
                    out.pairs.append(Pair(f"{block.name}/{scene.name}/{p.parent.name}-{i.parent.name}",
                                          VideoRef(p), VideoRef(i), prop))
    return out


def read_inflevel(root: Path) -> PairSet:
    folder = root / "csv" if (root / "csv").is_dir() else root
    csvs = sorted(folder.glob("*.csv"))
    out = PairSet([])
    for path in csvs:
        prop = path.stem
        with path.open(newline="") as f:
            for k, row in enumerate(csv.DictReader(f)):
                try:
                    v1, v2 = row["vid1_path"].strip(), row["vid2_path"].strip()
                    l1 = row["vid1_label"].strip().lower()
                except (KeyError, AttributeError):
                    raise UserError(f"{path} needs columns vid1_path, vid2_path, vid1_label") from None
                if l1 not in ("possible", "impossible"):
                    out.problems.append(f"{path.name} row {k + 2}: vid1_label {l1!r} is neither possible "
                                        "nor impossible")
                    continue

                def ref(p: str, col: str) -> VideoRef:
                    s = (row.get(col) or "").strip()
                    return VideoRef(root / p, int(float(s)) + 1 if s else 0)

                r1, r2 = ref(v1, "vid1_end_priming_2"), ref(v2, "vid2_end_priming_2")
                pos, imp = (r1, r2) if l1 == "possible" else (r2, r1)
                out.pairs.append(Pair(f"{prop}/{k}", pos, imp, prop))
    return out


READERS: dict[str, Callable[[Path], PairSet]] = {
    "intphys": read_intphys, "grasp": read_grasp, "inflevel": read_inflevel, "folder": read_folder,
}


def read_pairs(dataset: str, root: str | Path) -> PairSet:
    """Matched pairs of ``dataset`` under ``root``; a missing root or an empty pair set is a UserError."""
    if dataset not in READERS:
        raise UserError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    r = Path(root).expanduser()
    if not r.is_dir():
        raise UserError(f"dataset root {r} does not exist (or is not a folder); pass --root DIR")
    ps = READERS[dataset](r)
    if not ps.pairs:
        hint = {"intphys": "O1/<scene>/{1..4}/scene/*.png + status.json",
                "grasp": "P_<prop>/NAME.mp4 + IP_<prop>/NAME.mp4",
                "inflevel": "<property>.csv with vid1_path, vid2_path, vid1_label",
                "folder": "possible/NAME.mp4 + impossible/NAME.mp4"}[dataset]
        extra = f" ({len(ps.problems)} problems, first: {ps.problems[0]})" if ps.problems else ""
        raise UserError(f"no (possible, impossible) pairs found under {r} for --dataset {dataset}; "
                        f"expected {hint}{extra}")
    return ps


# -- frames ---------------------------------------------------------------------------------------
def load_frames(ref: VideoRef, frame_step: int = 1,
                image_fps: float = IMAGE_SEQUENCE_FPS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All frames of a video (or image folder) from ``ref.start_frame`` on, every ``frame_step``-th:
    ``(T, H, W, 3)`` uint8, their actual timestamps ``(T,)`` in seconds and their indices in the
    whole video ``(T,)``. Raises CorruptVideo."""
    p = ref.path
    if p.is_dir():
        from PIL import Image

        files = sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_EXTS)[ref.start_frame :: frame_step]
        if not files:
            raise CorruptVideo(f"no images in {p}")
        try:
            frames = np.stack([np.asarray(Image.open(q).convert("RGB")) for q in files])
        except (OSError, ValueError) as err:
            raise CorruptVideo(f"cannot read the frames of {p}: {err}") from None
        idx = ref.start_frame + frame_step * np.arange(len(files))
        return frames, idx / float(image_fps), idx
    info = probe_video(p)
    fps = info.fps if info.fps > 0 else info.num_frames / max(info.duration, 1e-6)
    idx = np.arange(ref.start_frame, info.num_frames, frame_step)
    if len(idx) == 0:
        raise CorruptVideo(f"{p} has {info.num_frames} frames, none after frame {ref.start_frame}")
    frames, actual = decode_at(p, idx / fps)
    keep = np.concatenate([[True], np.diff(actual) > 1e-6])  # header over-counts: drop repeats of the last frame
    return frames[keep], actual[keep], idx[keep]
