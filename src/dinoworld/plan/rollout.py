"""Candidate rollouts for planning: every candidate of an episode shares its start context.

The start context's per-block keys/values are computed once per plan and broadcast to the
candidates; candidates go through the predictor in chunks that fit a memory budget; each
autoregressive step appends only the new frame's keys/values. :func:`naive_rollout` is the
reference: one candidate at a time through the plain forward pass.
"""

from __future__ import annotations

import torch

from ..devices import module_device
from ..errors import UserError
from ..model.loss import self_fed_prediction
from ..model.predictor import ContextState, Predictor


def broadcast_state(state: ContextState, n: int) -> ContextState:
    """A context of ``E`` episodes repeated for ``n`` candidates each -> batch ``E·n`` (episode-major)."""
    def rep(x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1).expand(x.shape[0], n, *x.shape[1:]).reshape(x.shape[0] * n, *x.shape[1:])

    return ContextState(kv=[(rep(k), rep(v)) for k, v in state.kv], times=rep(state.times), mask=rep(state.mask),
                        t0=rep(state.t0), hw=state.hw, feats=None if state.feats is None else rep(state.feats))


def bytes_per_candidate(predictor: Predictor, tokens_per_frame: int, frames: int, dtype: torch.dtype) -> int:
    """Memory one candidate needs: keys/values of every block for ``frames`` frames, plus the
    query activations of one frame (x8 for the attention and MLP intermediates)."""
    cfg = predictor.cfg
    elt = torch.finfo(dtype).bits // 8
    kv = cfg.depth * 2 * frames * tokens_per_frame * cfg.dim * elt
    act = 8 * tokens_per_frame * max(cfg.dim * cfg.mlp_ratio, cfg.in_dim) * elt
    return int(kv + act)


def default_memory_budget(device: torch.device) -> int:
    """Half the free accelerator memory, or 2 GiB on the CPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.5)
    return 2 * 2**30


class LatentRollout:
    """Final predicted latents of candidate action sequences from fixed start contexts.

    ``context (E, T, h, w, D)`` at ``context_times (E, T)``; model steps are ``step_seconds``
    apart after the last context frame. Calling it with normalised model actions ``(E, N, H, A)``
    returns the latents ``(E, N, h, w, D)`` after ``H`` steps (or every step with ``all_steps``).
    """

    def __init__(self, predictor: Predictor, context: torch.Tensor, context_times: torch.Tensor,
                 step_seconds: float, *, chunk: int | None = None, memory_budget: int | None = None) -> None:
        if predictor.action_blocks is None:
            raise UserError("this predictor has no action blocks: fine-tune it with actions before planning")
        self.predictor = predictor
        with torch.no_grad():  # once per plan, in the predictor's precision
            self.state = predictor.encode_context(context.to(predictor.query.dtype), context_times)
        self.last_time = context_times[:, -1]
        self.step = float(step_seconds)
        # read once here, never inside the planning loop
        self.chunk = chunk
        self.memory_budget = memory_budget or (None if chunk else default_memory_budget(module_device(predictor)))

    def chunk_size(self, n: int, horizon: int) -> int:
        if self.chunk:
            return max(1, min(self.chunk, n))
        e = self.state.times.shape[0]
        hw = self.state.hw[0] * self.state.hw[1]
        frames = self.state.times.shape[1] + horizon
        per = bytes_per_candidate(self.predictor, hw, frames, self.predictor.query.dtype) * e
        return max(1, min(n, self.memory_budget // max(per, 1)))

    def __call__(self, actions: torch.Tensor, all_steps: bool = False) -> torch.Tensor:
        e, n, horizon, _ = actions.shape
        if e != self.state.times.shape[0]:
            raise UserError(f"actions are for {e} episodes but the rollout holds {self.state.times.shape[0]}")
        size = self.chunk_size(n, horizon)
        outs = [self._chunk(actions[:, i : i + size], all_steps) for i in range(0, n, size)]
        return torch.cat(outs, dim=1)

    def _chunk(self, actions: torch.Tensor, all_steps: bool) -> torch.Tensor:
        e, n, horizon, a_dim = actions.shape
        p = self.predictor
        state = broadcast_state(self.state, n)
        last = self.last_time.repeat_interleave(n)[:, None]  # (E·n, 1)
        acts = actions.reshape(e * n, horizon, a_dim).to(p.query.dtype)
        preds = []
        for k in range(horizon):
            t = last + self.step * (k + 1)
            pred = p.decode(state, t, acts[:, k : k + 1], all_visible=True)  # (E·n, 1, h, w, D)
            preds.append(pred)
            if k + 1 < horizon:
                state = p.extend_context(state, pred, t)
        out = torch.cat(preds, dim=1) if all_steps else preds[-1][:, 0]
        return out.view(e, n, *out.shape[1:])


def naive_rollout(predictor: Predictor, context: torch.Tensor, context_times: torch.Tensor, step_seconds: float,
                  actions: torch.Tensor) -> torch.Tensor:
    """Reference: each candidate alone, the whole (growing) context re-encoded at every step.

    Same contract as :class:`LatentRollout` (final latents ``(E, N, h, w, D)``)."""
    e, n, horizon, _ = actions.shape
    steps = torch.tensor([step_seconds * (k + 1) for k in range(horizon)], dtype=context_times.dtype,
                         device=context_times.device)
    out = torch.empty(e, n, *context.shape[2:], dtype=context.dtype, device=context.device)
    for i in range(e):
        future = context_times[i : i + 1, -1:] + steps
        for j in range(n):
            out[i, j] = self_fed_prediction(predictor, context[i : i + 1], context_times[i : i + 1], future,
                                            actions[i : i + 1, j])[0, -1]
    return out


def latent_distance(pred: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
    """Planning cost: mean squared distance of predicted latents ``(E, N, h, w, D)`` to the goal's ``(E, h, w, D)``."""
    return (pred.float() - goal.float()[:, None]).pow(2).mean(dim=(-3, -2, -1))
