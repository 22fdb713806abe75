"""Cross-attention of query frames over context frames, with the strict-earlier rule (paper Eq. 2).

A query frame at time ``τ'`` sees a context frame at ``τ`` iff ``τ < τ'`` and the frame is real
(not padding). That rule lives in one place, :class:`Visibility`, and every backend follows it:

- ``dense``: SDPA with the materialised ``(B, 1, Tq·HWq, T·HW)`` boolean mask (the reference);
- ``grouped``: query frames grouped by the set of frames they see; each group runs maskless SDPA
  on just those frames (no dense mask, no work on masked pairs; the CPU default);
- ``flex``: FlexAttention with a block mask built from the same rule (the CUDA default).

A query frame that sees nothing (its time is not after any real frame) attends to every frame and
its attention output is then multiplied by zero (:attr:`Visibility.keep`), so it gets exactly the
query embedding passed through the MLPs, in every backend.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import UserError

BACKENDS = ("auto", "dense", "grouped", "flex")
#: this torch has FlexAttention (torch >= 2.5)
_HAS_FLEX = importlib.util.find_spec("torch.nn.attention.flex_attention") is not None


@dataclass
class Visibility:
    """Who sees whom, per frame: ``context_times (B, T)``, ``context_mask (B, T)`` (False = padding),
    ``query_times (B, Tq)``; ``hw_q`` / ``hw_kv`` tokens per query / context frame."""

    context_times: torch.Tensor
    context_mask: torch.Tensor
    query_times: torch.Tensor
    hw_q: int
    hw_kv: int

    def __post_init__(self) -> None:
        #: (B, Tq, T) the rule itself, per frame pair (no blind-frame fix)
        self.seen = sees(self.context_times[:, None, :], self.context_mask[:, None, :], self.query_times[:, :, None])
        self.blind = ~self.seen.any(dim=-1)  # (B, Tq): query frames with nothing to look at

    def mask_mod(self, b, h, q_idx, kv_idx):
        """FlexAttention ``mask_mod``: may query token ``q_idx`` of batch item ``b`` attend to ``kv_idx``?"""
        fq, fk = q_idx // self.hw_q, kv_idx // self.hw_kv
        return sees(self.context_times[b, fk], self.context_mask[b, fk], self.query_times[b, fq]) | self.blind[b, fq]

    def frames(self) -> torch.Tensor:
        """Frame-level attention pattern ``(B, Tq, T)``: the rule, with blind query frames seeing all."""
        return self.seen | self.blind[:, :, None]

    def dense(self) -> torch.Tensor:
        """The materialised token mask ``(B, 1, Tq·hw_q, T·hw_kv)`` (reference path and attention maps)."""
        vis = self.frames()
        return vis.repeat_interleave(self.hw_q, dim=1).repeat_interleave(self.hw_kv, dim=2)[:, None]

    def keep(self, dtype: torch.dtype) -> torch.Tensor:
        """``(B, Tq·hw_q, 1)``: 0 for tokens of blind query frames, 1 elsewhere."""
        return (~self.blind).repeat_interleave(self.hw_q, dim=1)[:, :, None].to(dtype)


def sees(context_time: torch.Tensor, context_real: torch.Tensor, query_time: torch.Tensor) -> torch.Tensor:
    """The visibility rule (paper Eq. 2), elementwise: a real context frame strictly before the query."""
    return (context_time < query_time) & context_real


def resolve_backend(name: str, device: torch.device) -> str:
    """``auto`` -> ``flex`` on CUDA (when this torch has FlexAttention), else ``grouped``."""
    if name not in BACKENDS:
        raise UserError(f"unknown attention backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if name != "auto":
        return name
    return "flex" if device.type == "cuda" and _HAS_FLEX else "grouped"


@dataclass
class AttentionPlan:
    """How one forward pass attends: the visibility rule, the backend, and what they need
    (built once per forward by :func:`plan_attention`, shared by every block)."""

    vis: Visibility
    backend: str
    keep: torch.Tensor | None = None  #: (B, Tq·hw_q, 1) zeros for blind query frames; None = none blind
    block_mask: Any = None  #: FlexAttention block mask (flex backend only)
    dense: torch.Tensor | None = None  #: the materialised mask (dense backend only)


def plan_attention(context_times: torch.Tensor, context_mask: torch.Tensor, query_times: torch.Tensor,
                   hw_q: int, hw_kv: int, backend: str, dtype: torch.dtype) -> AttentionPlan | None:
    """The attention plan of one forward pass; ``None`` when every query sees every context token.

    ``backend`` is resolved (not ``auto``). The flex backend never reads values back from the
    device (no host sync, nothing data-dependent for ``torch.compile``); the others check once
    whether everything is visible or some query frame is blind, and skip the mask or the zeroing.
    """
    vis = Visibility(context_times, context_mask, query_times, hw_q, hw_kv)
    if backend == "flex":
        return AttentionPlan(vis, backend, keep=vis.keep(dtype), block_mask=flex_block_mask(vis))
    if bool(vis.seen.all()):
        return None
    keep = vis.keep(dtype) if bool(vis.blind.any()) else None
    return AttentionPlan(vis, backend, keep=keep, dense=vis.dense() if backend == "dense" else None)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, plan: AttentionPlan | None) -> torch.Tensor:
    """Attention output ``(B, h, Tq·hw_q, hd)`` of ``q`` over ``k, v`` ``(B, h, T·hw_kv, hd)``.

    ``plan=None``: every context token is visible to every query (plain SDPA, no mask).
    """
    if plan is None:
        return F.scaled_dot_product_attention(q, k, v)
    if plan.backend == "dense":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=plan.dense)
    if plan.backend == "grouped":
        return grouped_attention(q, k, v, plan.vis)
    if plan.backend == "flex":
        return _flex(q.device)(q, k, v, block_mask=plan.block_mask)
    raise ValueError(f"unknown attention backend {plan.backend!r}")


def grouped_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, vis: Visibility) -> torch.Tensor:
    """Maskless SDPA per group of query frames that see the same context frames.

    A teacher-forced clip of T frames makes T-1 groups (query frame j sees frames < j) covering the
    whole batch, whose keys are a prefix: a view, no copy. Other patterns gather their frames.
    """
    b, h, _, hd = q.shape
    frames = vis.frames()  # (B, Tq, T)
    tq, t = frames.shape[1:]
    qf = q.view(b, h, tq, vis.hw_q, hd)
    kf, vf = k.view(b, h, t, vis.hw_kv, hd), v.view(b, h, t, vis.hw_kv, hd)
    patterns, group = torch.unique(frames.flatten(0, 1), dim=0, return_inverse=True)  # (G, T), (B·Tq,)
    parts, order = [], []
    for g, pattern in enumerate(patterns):
        rows = (group == g).nonzero().squeeze(1)  # flat (item, query frame) indices
        bi, ji = rows // tq, rows % tq
        cols = pattern.nonzero().squeeze(1)
        n = cols.numel()
        arange_b, arange_n = torch.arange(b, device=q.device), torch.arange(n, device=q.device)
        if rows.numel() == b and bool((bi == arange_b).all()) and bool((cols == arange_n).all()):
            kg, vg = kf[:, :, :n], vf[:, :, :n]  # the same prefix for every item: views, no copy
        else:
            kg, vg = kf[bi][:, :, cols], vf[bi][:, :, cols]
        g_n = rows.numel()
        parts.append(F.scaled_dot_product_attention(
            qf[bi, :, ji], kg.reshape(g_n, h, n * vis.hw_kv, hd), vg.reshape(g_n, h, n * vis.hw_kv, hd)))
        order.append(rows)
    out = torch.cat(parts)[torch.argsort(torch.cat(order))]  # (B·Tq, h, hw_q, hd), item-major
    return out.view(b, tq, h, vis.hw_q, hd).transpose(1, 2).reshape(b, h, tq * vis.hw_q, hd)


# ---------------------------------------------------------------------------------- FlexAttention
_COMPILED_FLEX = None


def _flex(device: torch.device):
    """FlexAttention, compiled once when called eagerly (eager FlexAttention is a slow reference);
    inside a compiled region the plain function is traced into the caller's graph."""
    global _COMPILED_FLEX
    from torch.nn.attention.flex_attention import flex_attention

    if torch.compiler.is_compiling() or device.type != "cuda":
        return flex_attention
    if _COMPILED_FLEX is None:
        _COMPILED_FLEX = torch.compile(flex_attention, dynamic=False)
    return _COMPILED_FLEX


def flex_block_mask(vis: Visibility, block: int = 128):
    """The FlexAttention block mask of :meth:`Visibility.mask_mod`, built from frame-level visibility.

    Tokens of a frame are contiguous, so the number of visible pairs in each (query block, key
    block) tile is ``overlap_q @ frames @ overlap_kᵀ`` (token counts of each frame in each block):
    two small matmuls instead of evaluating the mask on every token pair. Tiles with every pair
    visible are "full" (no mask_mod inside), tiles with some are "partial", the rest are skipped.
    """
    from torch.nn.attention.flex_attention import BlockMask

    b, tq = vis.query_times.shape
    t = vis.context_times.shape[1]
    q_len, kv_len = tq * vis.hw_q, t * vis.hw_kv
    dev = vis.query_times.device
    counts = _overlap(tq, vis.hw_q, block, dev) @ vis.frames().float() @ _overlap(t, vis.hw_kv, block, dev).T
    full = counts == block * block  # (B, Qb, Kb); tiles reaching past the sequence end are never full
    partial = (counts > 0) & ~full

    def ordered(tiles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # (B, 1, Qb), (B, 1, Qb, Kb)
        tiles = tiles[:, None].to(torch.int8)
        return tiles.sum(-1, dtype=torch.int32), tiles.argsort(dim=-1, descending=True, stable=True).to(torch.int32)

    def mask_mod(b_idx, h_idx, q_idx, kv_idx):  # FlexAttention wants a plain 4-argument function
        return vis.mask_mod(b_idx, h_idx, q_idx, kv_idx)

    return BlockMask.from_kv_blocks(*ordered(partial), *ordered(full), BLOCK_SIZE=block, mask_mod=mask_mod,
                                    seq_lengths=(q_len, kv_len))


def _overlap(frames: int, tokens: int, block: int, device) -> torch.Tensor:
    """``(num_blocks, frames)``: how many tokens of each frame fall in each block of ``block`` tokens."""
    n_blocks = -(-frames * tokens // block)
    starts = torch.arange(n_blocks, device=device)[:, None] * block
    f_lo = torch.arange(frames, device=device)[None, :] * tokens
    lo, hi = torch.maximum(starts, f_lo), torch.minimum(starts + block, f_lo + tokens)
    return (hi - lo).clamp_min(0).float()
