"""Does the model use its actions? Held-out error with true vs shuffled actions, teacher-forced (next
latent) and self-fed from one frame (as a planner rolls out)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset

from ..data.featurize import Featurizer
from ..devices import module_device
from ..errors import UserError
from ..model import prediction_loss, self_fed_prediction, teacher_forced_baseline_losses


def _derangement(n: int, generator: torch.Generator) -> torch.Tensor:
    """A random permutation of ``range(n)`` with no fixed point (``n >= 2``)."""
    perm = torch.randperm(n, generator=generator)
    out = torch.empty_like(perm)
    out[perm] = perm.roll(1)
    return out


def _held_out_batches(model: Any, data: Any, encoder: Any, batch_size: int, max_batches: int | None, seed: int,
                      device: Any) -> Iterator[tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``(predictor, features, times, true actions, shuffled actions)`` of each batch of at least 2 clips,
    with the predictor in eval mode meanwhile (see :func:`action_conditioned_errors` for the arguments)."""
    predictor = getattr(model, "predictor", model)
    encoder = encoder if encoder is not None else getattr(model, "encoder", None)
    device = torch.device(device) if device is not None else module_device(predictor)
    if isinstance(data, IterableDataset):
        data = DataLoader(data, batch_size=batch_size, drop_last=True, num_workers=0)
    featurize = Featurizer(encoder, device)
    gen = torch.Generator().manual_seed(seed)
    was_training = predictor.training
    predictor.eval()
    try:
        for i, batch in enumerate(data):
            if max_batches is not None and i >= max_batches:
                break
            feats, times, actions = featurize(batch)
            if actions is None:
                raise UserError("these clips carry no actions")
            if feats.shape[0] >= 2:
                yield predictor, feats, times, actions, actions[_derangement(feats.shape[0], gen).to(device)]
    finally:
        predictor.train(was_training)


@torch.no_grad()
def action_conditioned_errors(model: Any, data: Any, encoder: Any = None, *, batch_size: int = 8,
                              max_batches: int | None = None, seed: int = 0, device: Any = None) -> dict[str, float]:
    """Held-out next-latent error with the true actions vs actions shuffled across the batch.

    ``model``: a :class:`~dinoworld.model.Predictor` or a :class:`~dinoworld.model.WorldModel`
    (its encoder is used unless ``encoder`` is given). ``data``: an iterable of collated batches, or
    a stream (e.g. ``trajectory_clip_stream(..., val=True)``) read in batches of ``batch_size``.
    Teacher forcing as in training: frames 2..T predicted from the earlier ones. Returns the mean
    smooth-L1 loss with ``true`` actions, ``shuffled`` actions (each clip gets another clip's
    actions), and the ``copy_last`` and ``context_mean`` baselines (frame t + 1 gets the mean of frames
    1..t), plus the number of ``clips``. The ``self_fed_*`` entries
    are the same comparison with frames 2..T predicted from frame 1 alone, each prediction fed back (what
    a planner does; one step's action effect can be tiny while the effect of several adds up), and
    ``copy_first``, frame 1 for all of them (from one frame, also the context mean).
    """
    sums, clips = torch.zeros(7, dtype=torch.float64), 0
    for predictor, feats, times, actions, other in _held_out_batches(model, data, encoder, batch_size, max_batches,
                                                                     seed, device):
        space = predictor.standardize  # compare in the space the model was trained in
        seen = space(feats)
        target = seen[:, 1:]
        true = space(predictor(feats, times, times[:, 1:], actions))
        shuffled = space(predictor(feats, times, times[:, 1:], other))
        fed_true = space(self_fed_prediction(predictor, feats[:, :1], times[:, :1], times[:, 1:], actions))
        fed_shuffled = space(self_fed_prediction(predictor, feats[:, :1], times[:, :1], times[:, 1:], other))
        copy_last, context_mean = teacher_forced_baseline_losses(seen).tolist()
        losses = [prediction_loss(true, target).item(), prediction_loss(shuffled, target).item(), copy_last,
                  prediction_loss(fed_true, target).item(), prediction_loss(fed_shuffled, target).item(),
                  prediction_loss(seen[:, :1].expand_as(target), target).item(), context_mean]
        sums += feats.shape[0] * torch.tensor(losses, dtype=torch.float64)
        clips += feats.shape[0]
    if clips == 0:
        raise UserError("no batch of at least 2 clips to compare actions on")
    mean = (sums / clips).tolist()
    return {"true": mean[0], "shuffled": mean[1], "copy_last": mean[2], "self_fed_true": mean[3],
            "self_fed_shuffled": mean[4], "copy_first": mean[5], "context_mean": mean[6], "clips": clips}


@torch.no_grad()
def context_errors(model: Any, data: Any, encoder: Any = None, *, contexts: Sequence[int] = (1, 2, 3),
                   batch_size: int = 8, max_batches: int | None = None, seed: int = 0,
                   device: Any = None) -> dict[str, Any]:
    """Self-fed held-out error of the same frames from more or fewer context frames, with the true and
    with shuffled actions: does a history (which shows velocities; one frame cannot) make the
    rollouts better and the actions matter more?

    With ``m = max(contexts)``, the targets are frames ``m+1..T`` of each clip (1-based) and context
    ``c`` is frames ``m-c+1..m``; ``copy_last`` repeats frame ``m`` and each context's ``context_mean``
    repeats the mean of its frames. Arguments as :func:`action_conditioned_errors`. Returns
    ``{"contexts": {c: {"true", "shuffled", "gap", "context_mean"}}, "copy_last", "clips", "targets"}``."""
    contexts = sorted({int(c) for c in contexts})
    if not contexts or contexts[0] < 1:
        raise UserError(f"context lengths must be at least 1 frame, got {contexts}")
    m = contexts[-1]
    sums, base, clips, targets = torch.zeros(len(contexts), 3, dtype=torch.float64), 0.0, 0, 0
    for predictor, feats, times, actions, other in _held_out_batches(model, data, encoder, batch_size, max_batches,
                                                                     seed, device):
        targets = feats.shape[1] - m
        if targets < 1:
            raise UserError(f"clips of {feats.shape[1]} frames leave no target after {m} context frames; "
                            f"use longer clips (data.num_frames) or shorter contexts")
        space, b = predictor.standardize, feats.shape[0]
        target = space(feats[:, m:])
        for i, c in enumerate(contexts):  # action k leads to frame k + 1
            for j, acts in enumerate((actions, other)):
                pred = self_fed_prediction(predictor, feats[:, m - c : m], times[:, m - c : m], times[:, m:],
                                           acts[:, m - 1 :])
                sums[i, j] += b * prediction_loss(space(pred), target).item()
            mean = space(feats[:, m - c : m]).mean(dim=1, keepdim=True)
            sums[i, 2] += b * prediction_loss(mean.expand_as(target), target).item()
        base += b * prediction_loss(space(feats[:, m - 1 : m]).expand_as(target), target).item()
        clips += b
    if clips == 0:
        raise UserError("no batch of at least 2 clips to compare contexts on")
    mean = (sums / clips).tolist()
    return {"contexts": {c: {"true": t, "shuffled": s, "gap": s / max(t, 1e-30), "context_mean": cm}
                         for c, (t, s, cm) in zip(contexts, mean)},
            "copy_last": base / clips, "clips": clips, "targets": targets}


#: below this ratio of self-fed errors (shuffled / true actions) the actions barely steer the rollouts
FLAT_ACTION_GAP = 1.05


def action_verdict(errs: dict[str, float]) -> tuple[float, str]:
    """``(gap, one line)`` from :func:`action_conditioned_errors`: the gap is the self-fed error with
    shuffled actions over the one with the true actions, the number planning depends on. Measured in
    the earlier look-alike worlds (results/planning-wall-lookalike-cpu-202611.md,
    results/planning-pointmaze-lookalike-cpu-202611.md): 13x and 5.5x planned Wall at 0.94 and 0.84;
    1.00x planned PointMaze at 0.36 where the simulator reached 0.98."""
    gap = errs["self_fed_shuffled"] / max(errs["self_fed_true"], 1e-30)
    if gap < FLAT_ACTION_GAP:
        return gap, (f"actions barely steer the self-fed rollouts (shuffled / true = {gap:.2f}x): expect plans "
                     "little better than random actions; train longer or on more varied actions")
    worse = "" if errs["self_fed_true"] < errs["copy_first"] else " but the rollouts are no better than copy-first"
    return gap, f"shuffling the actions makes the self-fed rollouts {gap:.1f}x worse: the model uses its actions{worse}"


__all__ = ["FLAT_ACTION_GAP", "action_conditioned_errors", "action_verdict", "context_errors"]
