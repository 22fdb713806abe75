"""``WorldModel`` = frozen encoder + predictor: encode, predict (direct), roll out, stream.

    wm = WorldModel.from_pretrained("runs/demo")                 # run folder, checkpoint folder or hub id
    feats = wm.encode(frames)                                    # (B, T, 3, H, W) -> (B, T, h, w, D)
    direct = wm.predict(feats, times, query_times)               # any future timestamps at once
    ar = wm.rollout(feats, times, query_times)                   # one step at a time, fed back
    stream = wm.stream(); stream.push(frame, t); stream.predict([t + 0.25])
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..devices import module_device
from ..encoders import FrozenEncoder, load_encoder
from ..encoders.hf import hub_offline, hub_unreachable
from ..errors import UserError
from .actions import ActionSpace
from .folder import CheckpointMeta, EncoderInfo, load_predictor, naming_checkpoint, write_model_folder
from .predictor import ContextState, Predictor


def _as_batch(x: torch.Tensor, dims: int) -> torch.Tensor:
    return x.unsqueeze(0) if x.ndim == dims - 1 else x


#: ``owner/name`` as the hub spells repo ids
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


def _hub_id_shaped(text: str) -> bool:
    """``owner/name`` where no local ``owner`` folder exists (``runs/x`` beside a ``runs`` folder is a path)."""
    return bool(HUB_ID.match(text)) and ".." not in text and not Path(text.split("/")[0]).exists()


def _resolve_folder(path_or_hub_id: str | Path) -> Path:
    """A local checkpoint or run folder if it exists; else a hub repo id read from the HF cache, or
    fetched when the hub is reachable. A path that does not exist and cannot be a hub id is returned as
    is (the loader says "no such folder")."""
    p = Path(path_or_hub_id).expanduser()
    text = str(path_or_hub_id)
    if p.exists() or not _hub_id_shaped(text):
        return p
    from huggingface_hub import snapshot_download

    files = ["config.json", "model.safetensors"]
    try:
        return Path(snapshot_download(text, allow_patterns=files, local_files_only=True))
    except Exception:  # not in the hub cache
        pass
    if hub_offline():
        why = "not in the hub cache, and HF_HUB_OFFLINE is set"
    else:
        unreachable = hub_unreachable()
        if unreachable:
            why = f"not in the hub cache, and the hub cannot be reached: {unreachable}"
        else:
            try:
                return Path(snapshot_download(text, allow_patterns=files))
            except Exception as err:  # unknown repo, gated, ...
                first = str(err).strip().splitlines()[0][:160] if str(err).strip() else ""
                why = f"{type(err).__name__}: {first}"
    raise UserError(f"no local folder {text} and no hub model {text} reachable ({why}); pass an existing checkpoint "
                    "or run folder, or a hub id that is in the hub cache or reachable")


class WorldModel(nn.Module):
    def __init__(self, encoder: FrozenEncoder | None, predictor: Predictor,
                 meta: CheckpointMeta | dict[str, Any] | None = None):
        super().__init__()
        self.encoder = encoder
        self.predictor = predictor
        if not isinstance(meta, CheckpointMeta):  # a plain dict in config.json's layout (or nothing)
            meta = CheckpointMeta.from_json({**(meta or {}), "predictor": predictor.cfg.to_dict()})
        self.meta = meta
        #: raw env actions <-> normalised model actions (None for a model without actions)
        self.action_space: ActionSpace | None = self.meta.action_space()

    # -- loading / saving ---------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path_or_hub_id: str | Path, encoder_weights: str | None = None,
                        device: Any = "cpu", load_encoder_model: bool = True) -> "WorldModel":
        """Load a checkpoint folder, a run folder (its newest checkpoint that loads) or a hub id. The
        encoder is rebuilt by name; its weights come from ``encoder_weights``, else from the path
        recorded at training time, else the hub cache."""
        predictor, meta = load_predictor(_resolve_folder(path_or_hub_id))
        encoder = None
        if load_encoder_model:
            name = meta.encoder.name
            if not name or name == "unknown":
                raise UserError("this checkpoint does not record its encoder; "
                                "build WorldModel(encoder, predictor) yourself")
            encoder = load_encoder(name, weights=encoder_weights or meta.encoder.weights)
        return cls(encoder, predictor, meta).to(device)

    @classmethod
    def load(cls, checkpoint: str | Path, encoder_weights: str | None = None, device: Any = "cpu") -> "WorldModel":
        """:meth:`from_pretrained` with every failure as one :class:`UserError` that names ``checkpoint``:
        what the verbs that take ``--checkpoint`` call, so one damaged checkpoint reads the same everywhere."""
        try:
            with naming_checkpoint(checkpoint):
                return cls.from_pretrained(checkpoint, encoder_weights=encoder_weights, device=device)
        except UserError:
            raise
        except Exception as err:  # an encoder whose weights or code cannot be loaded
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise UserError(f"cannot load the encoder of checkpoint {checkpoint}: {type(err).__name__}: {first} "
                            "(pass --encoder-weights PATH?)") from None

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (hub-compatible; reload with :meth:`from_pretrained`)."""
        meta = dataclasses.replace(self.meta, predictor=self.predictor.cfg.to_dict(), step=None)
        if self.encoder is not None:
            meta.encoder = EncoderInfo(self.encoder.name, meta.encoder.weights, self.encoder.pretrained)
        write_model_folder(Path(folder), self.predictor.state_dict(), meta)
        return Path(folder)

    @property
    def device(self) -> torch.device:
        return module_device(self.predictor)

    # -- inference ----------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, frames: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
        """Frames ``(B, T, 3, H, W)`` (or ``(T, 3, H, W)``) in [0, 1] -> features ``(B, T, h, w, D)``."""
        if self.encoder is None:
            raise UserError("this WorldModel was loaded without its encoder")
        frames = _as_batch(frames, 5)
        b, t = frames.shape[:2]
        flat = frames.flatten(0, 1)
        out = torch.cat([self.encoder(flat[i : i + batch_size].to(self.device))
                         for i in range(0, len(flat), batch_size)])
        return out.view(b, t, *out.shape[1:])

    @torch.no_grad()
    def predict(self, context: torch.Tensor, context_times: torch.Tensor, query_times: torch.Tensor,
                actions: torch.Tensor | None = None) -> torch.Tensor:
        """Direct prediction at any future ``query_times (B, Tq)`` -> ``(B, Tq, h, w, D)``."""
        return self.predictor(context, context_times, query_times, actions)

    @torch.no_grad()
    def rollout(self, context: torch.Tensor, context_times: torch.Tensor, query_times: torch.Tensor,
                actions: torch.Tensor | None = None) -> torch.Tensor:
        """Autoregressive prediction: each predicted frame is appended to the context before the
        next query. ``query_times (B, K)`` must increase; ``actions (B, K, A)`` optional.
        Returns ``(B, K, h, w, D)``. With a constant step: ``query_times = last + step * arange(1, K+1)``.
        """
        state = self.predictor.encode_context(context, context_times)
        outs = []
        for k in range(query_times.shape[1]):
            a = None if actions is None else actions[:, k : k + 1]
            pred = self.predictor.decode(state, query_times[:, k : k + 1], a)  # (B, 1, h, w, D)
            outs.append(pred)
            state = self.predictor.extend_context(state, pred, query_times[:, k : k + 1])
        return torch.cat(outs, dim=1)

    def stream(self, max_context: int | None = None) -> "StreamingPredictor":
        return StreamingPredictor(self, max_context)


class StreamingPredictor:
    """Live video: each pushed frame is encoded and turned into per-block keys/values once.

    ``max_context`` keeps only the newest frames (a sliding window); ``None`` keeps all.
    """

    def __init__(self, wm: WorldModel, max_context: int | None = None) -> None:
        self.wm, self.max_context = wm, max_context
        self.state: ContextState | None = None

    @torch.no_grad()
    def push(self, frame: torch.Tensor | None = None, time: float = 0.0, features: torch.Tensor | None = None) -> None:
        """Add one frame ``(3, H, W)`` in [0, 1] (or its ``features (h, w, D)``) seen at ``time`` seconds."""
        if features is None:
            if frame is None:
                raise UserError("push needs a frame or its features")
            features = self.wm.encode(frame[None, None])[0, 0]
        feats = features.to(self.wm.device)[None, None]  # (1, 1, h, w, D)
        t = torch.tensor([[float(time)]], device=self.wm.device)
        p = self.wm.predictor
        if self.state is None:
            self.state = p.encode_context(feats, t)
        else:
            if time <= float(self.state.times[0, -1]):
                raise UserError(f"stream timestamps must increase; got {time} after {float(self.state.times[0, -1])}")
            self.state = p.extend_context(self.state, feats, t)
        if self.max_context is not None:
            self.state = p.trim_context(self.state, self.max_context)

    @torch.no_grad()
    def predict(self, query_times: Sequence[float] | torch.Tensor, actions: torch.Tensor | None = None) -> torch.Tensor:
        """Features at ``query_times`` (seconds) from everything pushed so far -> ``(Tq, h, w, D)``."""
        if self.state is None:
            raise UserError("push at least one frame before predicting")
        q = torch.as_tensor(query_times, dtype=torch.float32, device=self.wm.device).view(1, -1)
        a = None if actions is None else _as_batch(actions, 3)
        return self.wm.predictor.decode(self.state, q, a)[0]
