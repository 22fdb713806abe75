"""The checkpoint folder: ``config.json`` (typed :class:`CheckpointMeta`) + ``model.safetensors``.

This is the one place that reads and writes the format. A training run keeps its checkpoints in
``RUN/checkpoints/step_XXXXXXXX/``; every loader here takes a checkpoint folder (refused if damaged)
or a run folder: its newest checkpoint that loads, with one warning line on stderr naming the newer
damaged ones. The folder is hub-compatible (upload it as is).

``config.json`` keeps the flat key layout of format ``dinoworld-predictor/1`` so folders written
by any version load in any other; keys this version does not know are kept in ``extra``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch

from ..errors import UserError
from .actions import CONTROL_RATE_HZ, ActionSpace
from .predictor import Predictor, build_predictor

CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
FORMAT = "dinoworld-predictor/1"
CHECKPOINTS_DIR = "checkpoints"
STEP_DIR = re.compile(r"^step_(\d{8})$")
T = TypeVar("T")


@dataclass
class EncoderInfo:
    name: str = "unknown"  #: encoder name for :func:`dinoworld.encoders.load_encoder`
    weights: str | None = None  #: where its weights came from at training time
    pretrained: bool | None = None  #: False for random / weight-free encoders


@dataclass
class CheckpointMeta:
    """Everything a checkpoint records besides its weights."""

    predictor: dict[str, Any]  #: :class:`~dinoworld.model.PredictorConfig` as a dict
    encoder: EncoderInfo = field(default_factory=EncoderInfo)
    #: frame side (px) the training features were computed at (None in folders written before it was recorded)
    resolution: int | None = None
    step: int | None = None
    train_config: dict[str, Any] | None = None
    init: str | None = None  #: checkpoint this run started from
    # action-conditioned models (fine-tuning on trajectories)
    env: str | None = None
    #: the simulation the training episodes were recorded in (``GoalEnv.world_version``; "" or None: before versions)
    world: str | None = None
    frameskip: int | None = None
    control_rate_hz: float | None = None
    raw_action_dim: int | None = None
    action_norm: dict[str, Any] | None = None  #: {"mean": [...], "std": [...]} per raw action dimension
    split: dict[str, Any] | None = None  #: {"seed", "val_fraction", "train": [episode ids], "val": [...]}
    extra: dict[str, Any] = field(default_factory=dict)  #: keys written by other versions

    @property
    def training_resolution(self) -> int:
        """The frame side (px) to run this model at: the recorded resolution, else the last training
        stage's (older folders), else 224 (the paper's) for folders that record neither."""
        if self.resolution:
            return int(self.resolution)
        stages = (self.train_config or {}).get("stages") or []
        return int(stages[-1]["resolution"]) if stages else 224

    def action_space(self) -> ActionSpace | None:
        """The model's action space, or None for a model without actions."""
        if not self.action_norm or not self.frameskip:
            return None
        return ActionSpace(self.action_norm["mean"], self.action_norm["std"], self.frameskip,
                           self.control_rate_hz or CONTROL_RATE_HZ, self.env)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": FORMAT}
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            v = getattr(self, f.name)
            if v is not None:
                out[f.name] = dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v
        return {**self.extra, **out}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "CheckpointMeta":
        d = dict(d)
        d.pop("format", None)
        if "predictor" not in d:
            raise UserError("checkpoint config.json has no 'predictor' entry")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: d.pop(k) for k in list(d) if k in names}
        if not isinstance(known["predictor"], (dict, str)):
            raise UserError(f"checkpoint config.json has a {type(known['predictor']).__name__} as 'predictor', "
                            "expected a mapping of predictor settings")
        enc = known.get("encoder") or {}
        if isinstance(enc, str):  # a bare encoder name
            enc = {"name": enc}
        if not isinstance(enc, dict):
            raise UserError(f"checkpoint config.json has a {type(enc).__name__} as 'encoder', expected a mapping")
        enc_names = {f.name for f in dataclasses.fields(EncoderInfo)}
        known["encoder"] = EncoderInfo(**{k: v for k, v in enc.items() if k in enc_names})
        return cls(**known, extra=d)


def write_model_folder(folder: str | Path, state: dict[str, torch.Tensor], meta: CheckpointMeta) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into ``folder`` (callers make it atomic)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(folder / MODEL_FILE))
    (folder / CONFIG_FILE).write_text(json.dumps(meta.to_json(), indent=2, sort_keys=True))
    return folder


def complete_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoint folders of a run, oldest first (temporary folders of killed writes are ignored)."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and STEP_DIR.match(p.name) and (p / MODEL_FILE).is_file()]
    return sorted(found, key=lambda p: int(STEP_DIR.match(p.name).group(1)))


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = complete_checkpoints(run_dir)
    return found[-1] if found else None


def newest_usable(run_dir: str | Path, load: Callable[[Path], T]
                  ) -> tuple[Path, T, list[tuple[Path, UserError]]] | None:
    """The newest complete checkpoint of ``run_dir`` that ``load`` accepts: ``(folder, load(folder),
    refused)``, ``refused`` being the newer checkpoints ``load`` raised a :class:`UserError` for (newest
    first, with their errors). None for a run without checkpoints; the newest one's error if none loads."""
    refused: list[tuple[Path, UserError]] = []
    for folder in reversed(complete_checkpoints(run_dir)):
        try:
            return folder, load(folder), refused
        except UserError as err:
            refused.append((folder, err))
    if refused:
        raise refused[0][1]
    return None


def _existing(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"checkpoint {path} does not exist (no such folder); pass a checkpoint folder ({CONFIG_FILE} "
                        f"+ {MODEL_FILE}) or a run folder ({CHECKPOINTS_DIR}/step_*)")
    return p


def _is_run_folder(p: Path) -> bool:
    return not (p / CONFIG_FILE).is_file() and latest_checkpoint(p) is not None


def _model_files(p: Path) -> Path:
    if not (p / CONFIG_FILE).is_file() or not (p / MODEL_FILE).is_file():
        raise UserError(f"{p} is not a dinoworld checkpoint (needs {CONFIG_FILE} and {MODEL_FILE}) "
                        f"nor a run folder with {CHECKPOINTS_DIR}/step_*")
    return p


def _newest_loading(run: Path) -> tuple[Path, Predictor, CheckpointMeta]:
    """A run's newest checkpoint that loads (one warning line on stderr naming the newer ones that do not)."""
    try:
        folder, (model, meta), refused = newest_usable(run, _load_checkpoint)
    except UserError as err:
        if len(complete_checkpoints(run)) < 2:
            raise
        raise UserError(f"{err}; no older checkpoint of {run} loads either") from None
    if refused:
        names = ", ".join(f.name for f, _ in refused)
        print(f"warning: cannot load {names} of {run} ({refused[0][1]}); using {folder.name}, the newest "
              "checkpoint that loads", file=sys.stderr, flush=True)
    return folder, model, meta


def checkpoint_folder(path: str | Path) -> Path:
    """A checkpoint folder as given, or a run folder's newest checkpoint that loads (newer ones that
    do not are named in one warning line on stderr)."""
    p = _existing(path)
    return _newest_loading(p)[0] if _is_run_folder(p) else _model_files(p)


def _read_meta(folder: Path) -> CheckpointMeta:
    cfg = folder / CONFIG_FILE
    try:
        raw = json.loads(cfg.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{cfg} is not valid JSON ({err}); restore it from a copy or use another checkpoint") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
        raise UserError(f"{cfg} has format {found!r}, expected {FORMAT!r}")
    return CheckpointMeta.from_json(raw)


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        state = load_file(str(folder / MODEL_FILE))
    except Exception as err:  # safetensors raises its own error types for truncated / garbage files
        raise UserError(f"{folder / MODEL_FILE} cannot be read ({type(err).__name__}: {err}); the file is "
                        "damaged: use another checkpoint") from None
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise UserError(f"{folder / MODEL_FILE} holds NaN/Inf weights ({', '.join(bad[:3])}"
                        f"{', ...' if len(bad) > 3 else ''}); the run diverged: use an earlier checkpoint")
    return state


def _load_checkpoint(folder: Path) -> tuple[Predictor, CheckpointMeta]:
    """The predictor of one checkpoint folder (refused with one line if anything in it is damaged)."""
    folder = _model_files(folder)
    meta = _read_meta(folder)
    state = _read_weights(folder)
    try:
        model = build_predictor(meta.predictor)
    except (TypeError, ValueError, UserError) as err:  # a hand-edited or damaged config.json
        why = str(err) if isinstance(err, UserError) else f"{type(err).__name__}: {err}"
        raise UserError(f"the predictor settings in {folder / CONFIG_FILE} are invalid ({why}); restore it from a "
                        "copy or use another checkpoint") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise UserError(f"the weights in {folder} do not match its config.json ({first})") from None
    return model, meta


def read_meta(folder: str | Path) -> CheckpointMeta:
    """The typed metadata of a checkpoint (or run) folder."""
    return _read_meta(checkpoint_folder(folder))


def read_model_folder(folder: str | Path) -> tuple[CheckpointMeta, dict[str, torch.Tensor]]:
    """``(meta, state_dict)`` of a checkpoint (or run) folder; refuses unreadable or non-finite weights."""
    folder = checkpoint_folder(folder)
    return _read_meta(folder), _read_weights(folder)


@contextlib.contextmanager
def naming_checkpoint(ref: str | Path) -> Iterator[None]:
    """Any :class:`UserError` inside is re-raised as ``cannot load checkpoint REF: ...``: the one wording of a
    checkpoint that does not load, whichever verb (``--checkpoint``, ``--init``) asked for it."""
    try:
        yield
    except UserError as err:
        raise UserError(f"cannot load checkpoint {ref}: {err}") from None


def load_predictor(folder: str | Path, device: Any = "cpu") -> tuple[Predictor, CheckpointMeta]:
    """The predictor of a checkpoint folder, or of a run folder's newest checkpoint that loads (newer
    ones that do not are named in one warning line on stderr), in eval mode, and its metadata."""
    p = _existing(folder)
    model, meta = _newest_loading(p)[1:] if _is_run_folder(p) else _load_checkpoint(p)
    return model.to(device).eval(), meta


__all__ = [
    "CHECKPOINTS_DIR", "CONFIG_FILE", "FORMAT", "MODEL_FILE", "CheckpointMeta", "EncoderInfo", "checkpoint_folder",
    "complete_checkpoints", "latest_checkpoint", "load_predictor", "naming_checkpoint", "newest_usable", "read_meta",
    "read_model_folder",
    "write_model_folder",
]
