"""The DINO-world predictor: a stack of pre-norm cross-attention blocks (paper §3.2, App. A.1).

Every output token starts from one learnable query embedding shared by all queries; it learns
*where and when* it is only through the 3-axial RoPE of its coordinates ``(t, y, x)``. Queries
never attend to each other, only to the context tokens (encoder patch tokens projected to the
model width), and a query at time ``τ'`` only sees context frames with ``τ < τ'`` (Eq. 2).

Call contract (stable, relied on by training, rollouts and planning)::

    predictor(context, context_times, query_times, actions=None) -> (B, Tq, H, W, D)

with ``context (B, T, H, W, D)``, ``context_times (B, T)`` and ``query_times (B, Tq)`` in seconds.
Teacher forcing is the special case ``query_times = context_times[:, 1:]``.

Optional action blocks (paper §3.3): one after each block, ``q <- q + γ·MLP(LN([q, a]))`` with the
layer scale ``γ`` initialised to zero (identity at start); actions enter through a single
``Linear(A -> D')``. The action MLP maps ``2D' -> D' -> D'``; on ``base`` with 10-d actions this adds
21.3M parameters (the paper says "approximately 22M").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..config import above, at_least, check_ranges
from ..errors import UserError
from .attention import AttentionPlan, attend, plan_attention, resolve_backend
from .loss import copy_last_prediction
from .rope import apply_rope, rope_angles, rope_periods, token_coords


@dataclass(frozen=True)
class PredictorConfig:
    """Architecture of a predictor. Sizes in :data:`SIZES`; every field can be overridden."""

    in_dim: int = 768  #: encoder feature width D (768 for DINOv2 ViT-B)
    dim: int = 768  #: model width D'
    depth: int = 12  #: number of cross-attention blocks N
    num_heads: int = 12  #: attention heads (head dim = dim / num_heads; 64 in all paper sizes)
    mlp_ratio: float = 4.0  #: MLP hidden width = mlp_ratio * dim
    action_dim: int = 0  #: action width A; 0 means no action blocks
    rope_freqs: int = 10  #: periods per RoPE axis; rotates 6 * rope_freqs channels of each head
    rope_min_period: float = 1e-2  #: shortest RoPE period (seconds for time, grid units for space)
    rope_max_period: float = 1e2  #: longest RoPE period
    # -- options that deviate from the paper (off by default; measured in results/forecast-probe-cpu-202611.md) --
    #: standardise features per channel (mean / std buffers set from the training data): the model
    #: reads, predicts and is trained on standardised features, so small channels count as much as big ones
    standardize: bool = False
    #: predict the change since the latest visible context frame instead of rebuilding every token
    residual: bool = False
    #: rotate values with their token's RoPE and attention outputs back with the query's, so what a
    #: query reads carries *where and when* it came from relative to the query (positions of moving things)
    value_rope: bool = False

    CHECKS = {"in_dim": at_least(1), "dim": at_least(1), "depth": at_least(1), "num_heads": at_least(1),
              "mlp_ratio": above(0), "action_dim": at_least(0), "rope_freqs": at_least(1),
              "rope_min_period": above(0), "rope_max_period": above(0)}

    def __post_init__(self) -> None:
        check_ranges(self, "model.predictor.")
        if self.dim % self.num_heads:
            raise UserError(f"predictor dim {self.dim} is not divisible by num_heads {self.num_heads}")
        if 6 * self.rope_freqs > self.head_dim:
            raise UserError(
                f"RoPE needs 6*rope_freqs={6 * self.rope_freqs} channels but heads have {self.head_dim}; "
                "lower rope_freqs or num_heads"
            )

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PredictorConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise UserError(f"unknown predictor config keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


#: Paper Table 5 (base/large/giant) plus small CPU-friendly sizes. Head dim is 64 everywhere.
SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(dim=128, depth=2, num_heads=2),
    "small": dict(dim=384, depth=6, num_heads=6),
    "base": dict(dim=768, depth=12, num_heads=12),
    "large": dict(dim=1024, depth=24, num_heads=16),
    "giant": dict(dim=1536, depth=40, num_heads=24),
}


def predictor_config(size: str | PredictorConfig | dict = "base", **overrides: Any) -> PredictorConfig:
    """Resolve a size name, a dict or a config, then apply keyword overrides."""
    if isinstance(size, PredictorConfig):
        return replace(size, **overrides)
    if isinstance(size, dict):
        return PredictorConfig.from_dict({**size, **overrides})
    if size not in SIZES:
        raise UserError(f"unknown predictor size {size!r}; choose one of {', '.join(SIZES)} or pass a config")
    return PredictorConfig.from_dict({**SIZES[size], **overrides})


def _init_weights(module: nn.Module) -> None:
    """Truncated-normal (std 0.02) linear weights, zero biases, unit LayerNorms, zero action γ."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, ActionBlock):
            nn.init.zeros_(m.gamma)


class Mlp(nn.Sequential):
    def __init__(self, d_in: int, d_hidden: int, d_out: int) -> None:
        super().__init__(nn.Linear(d_in, d_hidden), nn.GELU(), nn.Linear(d_hidden, d_out))


class CrossAttentionBlock(nn.Module):
    """``q <- q + CrossAttn(LN(q), ctx)``; ``q <- q + MLP(LN(q))``."""

    def __init__(self, cfg: PredictorConfig) -> None:
        super().__init__()
        self.num_heads = cfg.num_heads
        self.value_rope = cfg.value_rope
        self.norm1 = nn.LayerNorm(cfg.dim)
        self.q = nn.Linear(cfg.dim, cfg.dim)
        self.kv = nn.Linear(cfg.dim, 2 * cfg.dim)
        self.proj = nn.Linear(cfg.dim, cfg.dim)
        self.norm2 = nn.LayerNorm(cfg.dim)
        self.mlp = Mlp(cfg.dim, int(cfg.dim * cfg.mlp_ratio), cfg.dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, dim) -> (B, h, N, hd)
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, -1).transpose(1, 2)

    def context_kv(self, ctx: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys (rotated) and values of context tokens ``(B, N, dim)`` -> two ``(B, h, N, hd)``."""
        k, v = self.kv(ctx).chunk(2, dim=-1)
        v = self._heads(v)
        return apply_rope(self._heads(k), cos, sin), apply_rope(v, cos, sin) if self.value_rope else v

    def attend(self, q: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor], cos: torch.Tensor, sin: torch.Tensor,
               plan: AttentionPlan | None) -> torch.Tensor:
        """Multi-head cross-attention output ``(B, M, dim)`` for queries ``q`` ``(B, M, dim)``."""
        qh = apply_rope(self._heads(self.q(self.norm1(q))), cos, sin)
        out = attend(qh, kv[0], kv[1], plan)
        if self.value_rope:  # rotate back by the query's angles: each value now sits at its relative offset
            out = apply_rope(out, cos, -sin)
        b, _, m, _ = out.shape
        return self.proj(out.transpose(1, 2).reshape(b, m, -1))

    def attention_weights(self, q, kv, cos, sin, mask) -> torch.Tensor:
        """Softmax attention of queries ``(B, M, dim)`` over context tokens, averaged over heads -> ``(B, M, N)``.
        ``mask`` is a dense ``(B, 1, M, N)`` boolean mask or None."""
        qh = apply_rope(self._heads(self.q(self.norm1(q))), cos, sin)
        logits = qh @ kv[0].transpose(-1, -2) / qh.shape[-1] ** 0.5  # (B, h, M, N)
        if mask is not None:
            logits = logits.masked_fill(~mask, float("-inf"))
        return logits.softmax(dim=-1).mean(dim=1)

    def forward(self, q, kv, cos, sin, plan):  # type: ignore[override]
        att = self.attend(q, kv, cos, sin, plan)
        q = q + (att if plan is None or plan.keep is None else att * plan.keep)
        return q + self.mlp(self.norm2(q))


class ActionBlock(nn.Module):
    """``q <- q + γ·MLP(LN([q, a]))`` with ``γ`` (per channel) initialised to zero."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(2 * dim)
        self.mlp = Mlp(2 * dim, dim, dim)
        self.gamma = nn.Parameter(torch.zeros(dim))

    def forward(self, q: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return q + self.gamma * self.mlp(self.norm(torch.cat([q, a], dim=-1)))


@dataclass
class ContextState:
    """Per-block keys/values of the context, computed once and reusable for many queries.

    ``t0`` is the time origin subtracted from every timestamp before RoPE. RoPE only sees time
    differences, so this changes nothing mathematically and keeps float precision for long videos.
    """

    kv: list[tuple[torch.Tensor, torch.Tensor]]  # per block: (B, h, T*H*W, hd) each
    times: torch.Tensor  # (B, T) seconds
    mask: torch.Tensor  # (B, T) bool, False = padding frame
    t0: torch.Tensor  # (B,) seconds
    hw: tuple[int, int]
    feats: torch.Tensor | None = None  # (B, T, H, W, D) standardised context, kept by residual predictors only


class Predictor(nn.Module):
    """Cross-attention future predictor. See the module docstring for the call contract."""

    def __init__(self, cfg: PredictorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.query = nn.Parameter(torch.zeros(cfg.dim))
        self.in_proj = nn.Linear(cfg.in_dim, cfg.dim)
        self.blocks = nn.ModuleList(CrossAttentionBlock(cfg) for _ in range(cfg.depth))
        self.out_norm = nn.LayerNorm(cfg.dim)
        self.out_proj = nn.Linear(cfg.dim, cfg.in_dim)
        if cfg.action_dim > 0:
            self.action_proj = nn.Linear(cfg.action_dim, cfg.dim)
            self.action_blocks = nn.ModuleList(ActionBlock(cfg.dim) for _ in range(cfg.depth))
        else:
            self.action_proj, self.action_blocks = None, None
        self.register_buffer(
            "periods", rope_periods(cfg.rope_freqs, cfg.rope_min_period, cfg.rope_max_period), persistent=False
        )
        if cfg.standardize:  # saved with the weights; set by set_feature_stats before training
            self.register_buffer("feature_mean", torch.zeros(cfg.in_dim))
            self.register_buffer("feature_std", torch.ones(cfg.in_dim))
        self.grad_checkpointing = False
        #: attention backend (see :mod:`.attention`): auto = flex on CUDA, grouped elsewhere; dense = reference
        self.attention_backend = "auto"
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Truncated-normal (std 0.02) linear weights, zero biases, unit LayerNorms, zero action γ."""
        _init_weights(self)
        nn.init.trunc_normal_(self.query, std=0.02)

    def add_action_blocks(self, action_dim: int) -> None:
        """Add fresh (identity) action blocks to an unconditional predictor, in place."""
        if self.action_blocks is not None:
            raise UserError("this predictor already has action blocks")
        self.cfg = replace(self.cfg, action_dim=action_dim)
        ref = self.query
        self.action_proj = nn.Linear(action_dim, self.cfg.dim).to(ref.device, ref.dtype)
        self.action_blocks = nn.ModuleList(ActionBlock(self.cfg.dim) for _ in range(self.cfg.depth))
        self.action_blocks.to(ref.device, ref.dtype)
        _init_weights(self.action_proj)
        _init_weights(self.action_blocks)

    def action_parameters(self) -> list[nn.Parameter]:
        """Parameters of the action projection and action blocks (empty without actions)."""
        if self.action_blocks is None:
            return []
        return [*self.action_proj.parameters(), *self.action_blocks.parameters()]

    # -- feature space -----------------------------------------------------------------------
    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder features -> the space the model predicts and is trained in (identity unless ``standardize``)."""
        if not self.cfg.standardize:
            return x
        return (x - self.feature_mean.to(x.dtype)) / self.feature_std.to(x.dtype)

    def destandardize(self, z: torch.Tensor) -> torch.Tensor:
        if not self.cfg.standardize:
            return z
        return z * self.feature_std.to(z.dtype) + self.feature_mean.to(z.dtype)

    @torch.no_grad()
    def set_feature_stats(self, features: torch.Tensor, min_std: float = 1e-3) -> None:
        """Per-channel mean / std of encoder features ``(..., D)`` (a sample of the training data)."""
        if not self.cfg.standardize:
            raise UserError("set_feature_stats needs a predictor built with standardize=True")
        flat = features.reshape(-1, features.shape[-1]).double()
        self.feature_mean.copy_(flat.mean(0).to(self.feature_mean))
        self.feature_std.copy_(flat.std(0).clamp_min(min_std).to(self.feature_std))

    # -- context -----------------------------------------------------------------------------
    def encode_context(
        self, context: torch.Tensor, context_times: torch.Tensor, context_mask: torch.Tensor | None = None,
        t0: torch.Tensor | None = None,
    ) -> ContextState:
        """Project context ``(B, T, H, W, D)`` at ``context_times (B, T)`` to per-block keys/values."""
        b, t, h, w, d = context.shape
        if d != self.cfg.in_dim:
            raise UserError(f"context features have width {d} but the predictor expects {self.cfg.in_dim}")
        if context_times.shape != (b, t):
            raise UserError(f"context_times must have shape {(b, t)}, got {tuple(context_times.shape)}")
        mask = torch.ones(b, t, dtype=torch.bool, device=context.device) if context_mask is None else context_mask
        if t0 is None:
            t0 = torch.where(mask, context_times.double(), torch.inf).amin(dim=1)
            t0 = torch.where(torch.isfinite(t0), t0, torch.zeros_like(t0))
        coords = token_coords(context_times.double() - t0[:, None], h, w)
        cos, sin = rope_angles(coords, self.periods)
        z = self.standardize(context)
        ctx = self.in_proj(z.reshape(b, t * h * w, d))
        kv = [blk.context_kv(ctx, cos, sin) for blk in self.blocks]
        return ContextState(kv=kv, times=context_times, mask=mask, t0=t0, hw=(h, w),
                            feats=z if self.cfg.residual else None)

    def extend_context(self, state: ContextState, context: torch.Tensor, context_times: torch.Tensor,
                       context_mask: torch.Tensor | None = None) -> ContextState:
        """Append frames ``(B, T', H, W, D)`` to a context; only their keys/values are computed."""
        new = self.encode_context(context, context_times, context_mask, t0=state.t0)
        if new.hw != state.hw:
            raise UserError(f"new frames have a {new.hw} grid but the context has {state.hw}")
        kv = [(torch.cat([k0, k1], dim=2), torch.cat([v0, v1], dim=2)) for (k0, v0), (k1, v1) in zip(state.kv, new.kv)]
        feats = None if state.feats is None else torch.cat([state.feats, new.feats], dim=1)
        return ContextState(kv=kv, times=torch.cat([state.times, new.times], dim=1),
                            mask=torch.cat([state.mask, new.mask], dim=1), t0=state.t0, hw=state.hw, feats=feats)

    def trim_context(self, state: ContextState, max_frames: int) -> ContextState:
        """Keep only the newest ``max_frames`` frames of a context (a sliding window for live video)."""
        t = state.times.shape[1]
        if t <= max_frames:
            return state
        n = max_frames * state.hw[0] * state.hw[1]
        kv = [(k[:, :, -n:], v[:, :, -n:]) for k, v in state.kv]
        feats = None if state.feats is None else state.feats[:, -max_frames:]
        return ContextState(kv=kv, times=state.times[:, -max_frames:], mask=state.mask[:, -max_frames:],
                            t0=state.t0, hw=state.hw, feats=feats)

    # -- queries -----------------------------------------------------------------------------
    def decode(
        self, state: ContextState, query_times: torch.Tensor, actions: torch.Tensor | None = None,
        query_size: tuple[int, int] | None = None, probe=None, all_visible: bool = False,
    ) -> torch.Tensor:
        """Predict features at ``query_times (B, Tq)`` from a :class:`ContextState` -> ``(B, Tq, H, W, D)``.

        ``probe(i, block, q, kv, cos, sin, plan)``, if given, is called before each block (for
        attention maps). ``all_visible=True`` promises that every context frame is real and earlier
        than every query (autoregressive rollouts): no mask is built and nothing is read back from
        the device.
        """
        b, tq = query_times.shape
        h, w = query_size or state.hw
        hw = h * w
        # Frame-level visibility (Eq. 2): strictly earlier context frames, no padding frames.
        plan = None if all_visible else plan_attention(
            state.times, state.mask, query_times, hw, state.hw[0] * state.hw[1],
            resolve_backend(self.attention_backend, query_times.device), self.query.dtype)
        coords = token_coords(query_times.double() - state.t0[:, None], h, w)
        cos, sin = rope_angles(coords, self.periods)
        q = self.query.expand(b, tq * hw, -1)
        a = None
        if actions is not None:
            if self.action_blocks is None:
                raise UserError("actions were given but this predictor has no action blocks (action_dim=0)")
            if actions.shape[:2] != (b, tq):
                raise UserError(f"actions must have shape {(b, tq, self.cfg.action_dim)}, got {tuple(actions.shape)}")
            a = self.action_proj(actions.to(self.query.dtype)).repeat_interleave(hw, dim=1)  # (B, Tq*H*W, D')
        for i, blk in enumerate(self.blocks):
            if probe is not None:
                probe(i, blk, q, state.kv[i], cos, sin, plan)
            if self.grad_checkpointing and torch.is_grad_enabled():
                q = checkpoint(blk, q, state.kv[i], cos, sin, plan, use_reentrant=False)
            else:
                q = blk(q, state.kv[i], cos, sin, plan)
            if a is not None:
                q = self.action_blocks[i](q, a)
        out = self.out_proj(self.out_norm(q)).view(b, tq, h, w, self.cfg.in_dim)
        if self.cfg.residual:
            out = out + self._latest_visible(state, query_times, (h, w))
        return self.destandardize(out)

    @staticmethod
    def _latest_visible(state: ContextState, query_times: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        """Per query, the latest real context frame strictly before it (the first one if none) -> (B, Tq, H, W, D)."""
        if tuple(hw) != tuple(state.hw):
            raise UserError(f"a residual predictor predicts on its context grid {state.hw}, not {tuple(hw)}")
        return copy_last_prediction(state.feats, state.times, query_times, state.mask)

    @torch.no_grad()
    def attention_maps(self, context: torch.Tensor, context_times: torch.Tensor, query_time: torch.Tensor,
                       token: int, blocks: list[int] | None = None) -> torch.Tensor:
        """Cross-attention of one query token over all context patches (paper Fig. 6).

        ``query_time (B, 1)``; ``token`` = row * W + col of the query. Returns
        ``(len(blocks), B, T, H, W)`` attention weights averaged over heads.
        """
        blocks = list(range(self.cfg.depth)) if blocks is None else blocks
        state = self.encode_context(context, context_times)
        maps: dict[int, torch.Tensor] = {}

        def probe(i, blk, q, kv, cos, sin, plan):
            if i in blocks:
                m = None if plan is None else plan.vis.dense()[:, :, token : token + 1]
                maps[i] = blk.attention_weights(q[:, token : token + 1], kv, cos[:, :, token : token + 1],
                                                sin[:, :, token : token + 1], m)[:, 0]

        self.decode(state, query_time, probe=probe)
        b, t, h, w, _ = context.shape
        return torch.stack([maps[i].view(b, t, h, w) for i in blocks])

    def forward(
        self, context: torch.Tensor, context_times: torch.Tensor, query_times: torch.Tensor,
        actions: torch.Tensor | None = None, context_mask: torch.Tensor | None = None,
        query_size: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Predict ``(B, Tq, H, W, D)`` at ``query_times`` from ``context`` seen at ``context_times``.

        ``context_mask (B, T)`` marks real frames (False = padding) so clips of different lengths
        share one batch. ``query_size`` predicts on another grid than the context's (both on [-1, 1]).
        """
        state = self.encode_context(context, context_times, context_mask)
        return self.decode(state, query_times, actions, query_size)


def build_predictor(size: str | PredictorConfig | dict = "base", **overrides: Any) -> Predictor:
    """Build a randomly initialised predictor, e.g. ``build_predictor("base", action_dim=10)``."""
    return Predictor(predictor_config(size, **overrides))


#: how a predictor can be compiled (see :func:`compile_predictor`)
COMPILE_MODES = ("none", "blocks", "model")


def compile_predictor(pred: Predictor, mode: str) -> None:
    """``torch.compile`` a predictor in place (state-dict keys unchanged).

    ``blocks`` compiles each cross-attention and action block (identical blocks share one graph;
    mask planning and other data-dependent code stay eager; seconds to compile); ``model`` compiles
    the whole forward (faster steps, a minute or more to compile). Measured on an H200
    (results/train-throughput-h200-202611.md): base at 224², batch 32, 1.46x (blocks) and 1.74x
    (model) the eager reference.
    """
    if mode not in COMPILE_MODES:
        raise UserError(f"unknown compile mode {mode!r}; choose one of auto, {', '.join(COMPILE_MODES)}")
    if mode == "blocks":
        for blk in [*pred.blocks, *(pred.action_blocks or [])]:
            blk.compile()
    elif mode == "model":
        pred.compile()


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Total and action-block parameter counts (works on the meta device)."""
    total = sum(p.numel() for p in model.parameters())
    action = sum(p.numel() for p in model.action_parameters()) if isinstance(model, Predictor) else 0
    return {"total": total, "action": action, "base": total - action}
