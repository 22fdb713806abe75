"""The one training loop: video pre-training and action-conditioned fine-tuning.

:func:`train` runs a :class:`Trainer`, a run made of parts that each do one thing: the data
(:class:`~dinoworld.train.streams.DataSource`, resolved once), the model and optimizer
(:mod:`~dinoworld.train.build`, :mod:`~dinoworld.train.step`), :meth:`Trainer.resume`,
:meth:`Trainer.step` (micro-batches, gradient accumulation, update), :meth:`Trainer.validate`,
:meth:`Trainer.save`, and :meth:`Trainer.run`, the loop with logging, checkpoints and Ctrl-C.
The loss (paper Eq. 4, teacher forcing) is :func:`~dinoworld.train.step.teacher_forcing_loss`.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ..data.featurize import Featurizer
from ..data.trajectory_clips import TrajectoryInfo
from ..devices import uses_bf16
from ..errors import UserError
from ..model.folder import latest_checkpoint
from ..progress import progress_bar
from .build import build_model, compile_mode, feature_stats_from_data, setup_model
from .checkpoint import remove_stale_writes, resume_point, save_checkpoint
from .config import TrainConfig
from .distributed import Dist, all_gather_objects, all_reduce_sum, barrier, init_distributed, shutdown_distributed
from .logging import MetricsLogger
from .state import Progress, full_state, load_full_state, rng_state, seed_everything, set_rng_state, unwrap
from .step import (
    BASELINES,
    accumulate_gradients,
    accumulation_steps,
    heldout_loss,
    loader,
    lr_factor,
    make_optimizer,
    optimizer_step,
    param_groups,
    teacher_forcing_loss,
)
from .streams import VAL_SEED, WEIGHTS_HINT, DataSource


def stage_at(cfg: TrainConfig, step: int) -> tuple[int, int]:
    """(stage index, step at which it ends) for a global step."""
    end = 0
    for i, s in enumerate(cfg.stages):
        end += s.steps
        if step < end:
            return i, end
    return len(cfg.stages) - 1, end


class Trainer:
    """One training run: its data, model, optimizer and progress, and the parts of the loop.

    Made from the config (``data``: an already resolved :class:`DataSource`, else resolved here after
    seeding). :meth:`run` is the whole loop; :meth:`resume`, :meth:`stage_batches`, :meth:`step`,
    :meth:`validate` and :meth:`save` can be called alone.
    """

    def __init__(self, cfg: TrainConfig, env: Dist, data: DataSource | None = None,
                 trajectory: TrajectoryInfo | None = None) -> None:
        self.cfg, self.env, self.out = cfg, env, Path(cfg.out_dir)
        seed_everything(cfg.seed)
        self.accum = accumulation_steps(cfg.optim, env.world_size)
        self.data = data if data is not None else DataSource.resolve(cfg, env.device, trajectory)
        self.model, self.meta = setup_model(cfg, self.data, env)
        self.optimizer, self.scheduler = make_optimizer(cfg, self.model, env.device)
        use_bf16 = uses_bf16(cfg.precision, env.device)
        self.autocast = (lambda: torch.autocast(env.device.type, dtype=torch.bfloat16)) if use_bf16 \
            else contextlib.nullcontext
        self.conditioned = unwrap(self.model).action_blocks is not None
        self.featurize = Featurizer(self.data.encoder, env.device, torch.bfloat16 if use_bf16 else torch.float32,
                                    actions=self.conditioned)
        self.progress = Progress()
        self.step_rng: dict[str, Any] | None = None  # the generators at the end of the last step
        self.logger: MetricsLogger | None = None
        self.bar = None
        self._t_last, self._clips = time.time(), 0  # since the last logged step

    # ------------------------------------------------------------------------------- parts
    def resume(self, enabled: bool = True) -> Path | None:
        """Clear what killed checkpoint writes left; with ``enabled``, continue from the newest usable
        checkpoint (weights, optimizer, schedule, progress, random generators). Returns it, or None."""
        env = self.env
        if env.is_main:
            remove_stale_writes(self.out)  # temporary folders of checkpoint writes killed mid-way
        barrier(env)
        found = resume_point(self.out, say=print if env.is_main else (lambda _: None), move=env.is_main) \
            if enabled else None
        if found is None:
            return None
        ckpt, state, weights = found
        load_full_state(self.model, self.optimizer, weights, state["optimizer"], env)
        self.scheduler.load_state_dict(state["scheduler"])
        self.progress = Progress.from_train_state(state)
        set_rng_state(state["rng"])
        if env.is_main:
            print(f"resuming from {ckpt} at step {self.progress.step}")
        return ckpt

    def init_feature_stats(self) -> None:
        """A fresh standardising predictor: its feature statistics from the first training batches (a
        resumed run has them in its checkpoint, an initialised one from its init)."""
        if unwrap(self.model).cfg.standardize and not self.cfg.finetune.init:
            feature_stats_from_data(self.cfg, unwrap(self.model), self.data, self.featurize, self.env)

    def stage_batches(self, stage: int) -> tuple[Any, Iterator[dict[str, Any]]]:
        """The training stream of stage ``stage`` (where the run left it, when it was in that stage) and its batches."""
        cfg = self.cfg
        stream = self.data.train_stream(cfg.stages[stage].resolution, self.env, seed=cfg.seed + 1000 * stage)
        at = self.progress.data
        if at is not None and at.get("stage") == stage:
            stream.load_state_dict(at["stream"])
        return stream, loader(stream, cfg.optim.micro_batch_size, cfg.data.num_workers)

    def step(self, stream, batches: Iterator[dict[str, Any]], stage: int) -> tuple[torch.Tensor, Any]:
        """One optimizer step on the next micro-batches of ``stream``'s ``batches``. Returns the losses
        ``(2,)`` (model, copy-last; averaged over micro-batches and ranks) and the gradient norm (or None)."""
        env, p = self.env, self.progress
        got = accumulate_gradients(self.model, batches, self.featurize, env, self.accum, self.autocast,
                                   loss_fn=teacher_forcing_loss, observe=stream.observe)
        if not torch.isfinite(got.loss[0]):
            prev = latest_checkpoint(self.out)
            raise UserError(
                f"non-finite loss ({got.loss[0].item()}) at step {p.step + 1}; stopped without saving. "
                f"Last good checkpoint: {prev or 'none'}. Lower optim.lr or enable optim.grad_clip"
            )
        gnorm = optimizer_step(self.model, self.optimizer, self.scheduler, self.cfg.optim.grad_clip)
        p.step += 1
        p.skip_events += int(all_reduce_sum(torch.tensor(float(got.skipped), device=env.device), env).item())
        p.skipped_sources.update(all_gather_objects(got.new_sources, env))
        self.step_rng = rng_state()  # what an interrupted run saves (the state at this step's end)
        p.data = {"stage": stage, "stream": stream.state_dict()}
        return got.loss, gnorm

    @torch.no_grad()
    def validate(self, resolution: int) -> dict[str, float]:
        """Mean model loss and copy-last loss on the first ``val_batches`` micro-batches of held-out clips;
        empty when the held-out data cannot fill one micro-batch (never a made-up 0.0)."""
        stream = self.data.val_stream(resolution, self.env, seed=VAL_SEED)
        batches = loader(stream, self.cfg.optim.micro_batch_size, 0)
        return heldout_loss(self.model, batches, self.featurize, self.env, self.cfg.val_batches, self.autocast,
                            loss_fn=teacher_forcing_loss)

    def save(self, rng: dict[str, Any] | None = None) -> None:
        """Checkpoint the current step (every rank gathers; rank 0 writes). ``rng``: the generators to
        save (default: as they are now)."""
        msd, osd = full_state(self.model, self.optimizer, self.env)
        if self.env.is_main:
            at = self.progress.step
            state = self.progress.train_state(osd, self.scheduler.state_dict(), at, rng or rng_state())
            save_checkpoint(self.out, at, msd, self.meta, state, keep=self.cfg.keep_checkpoints)
        barrier(self.env)

    def log(self, losses: torch.Tensor, gnorm: Any, resolution: int) -> dict[str, float]:
        """Log the step's training row (and show it on the progress bar)."""
        p = self.progress
        dt = max(time.time() - self._t_last, 1e-9)
        row = {"train/loss": losses[0].item(), **{f"train/{k}": v.item() for k, v in zip(BASELINES, losses[1:])},
               "lr": self.scheduler.get_last_lr()[0], "clips_per_s": self._clips / dt,
               "resolution": resolution, "skipped_videos": len(p.skipped_sources)}
        if gnorm is not None:
            row["grad_norm"] = float(gnorm)
        if self.logger is not None:
            self.logger.log(p.step, row)
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{row['train/loss']:.4f}", copy=f"{row['train/copy_last']:.4f}",
                                 clips_s=f"{row['clips_per_s']:.1f}", skipped=len(p.skipped_sources))
        self._t_last, self._clips = time.time(), 0
        return row

    def _validate_and_log(self, resolution: int, summary: dict[str, Any]) -> None:
        v = self.validate(resolution)
        if not v and "val_skipped" not in summary:
            summary["val_skipped"] = (f"{self.cfg.data.val_source} gives no micro-batch of "
                                      f"{self.cfg.optim.micro_batch_size} held-out clips")
            print(f"warning: no validation loss: {summary['val_skipped']}", file=sys.stderr, flush=True)
        if v and self.logger is not None:
            self.logger.log(self.progress.step, v)
        summary.update(v)
        if self.bar is not None and v:
            self.bar.write(f"step {self.progress.step}: val loss {v['val/loss']:.4f} "
                           f"(copy-last {v['val/copy_last']:.4f}, context-mean {v['val/context_mean']:.4f})")

    # -------------------------------------------------------------------------------- loop
    def run(self, resume: bool = True, max_steps: int | None = None) -> dict[str, Any]:
        """Train (or resume) to ``max_steps`` or the end of the stages; the summary dict of :func:`train`.

        Ctrl-C on a single process saves a checkpoint at the last finished step, then re-raises.
        """
        cfg, env = self.cfg, self.env
        found = self.resume(resume)
        p = self.progress
        self.logger = MetricsLogger(self.out, env.is_main, cfg.tensorboard, start_step=p.step)
        if self.data.kind == "trajectories" and not self.conditioned and env.is_main:
            print("trajectory data with model.action_dim=0: action-free pre-training on the frames (actions ignored); "
                  "fine-tune with actions afterwards (dinoworld finetune --mode frozen|full --init RUN)")
        if found is None:
            self.init_feature_stats()
        last_step = min(cfg.total_steps, max_steps) if max_steps is not None else cfg.total_steps
        if env.is_main and cfg.progress:
            self.bar = progress_bar(total=last_step, initial=p.step, desc="train", unit="step", dynamic_ncols=True)
        summary: dict[str, Any] = {"start_step": p.step}
        self.model.train()
        self._t_last, self._clips = time.time(), 0
        saved_step = p.step
        try:
            while p.step < last_step:
                stage, stage_end = stage_at(cfg, p.step)
                resolution = cfg.stages[stage].resolution
                stream, batches = self.stage_batches(stage)
                while p.step < min(stage_end, last_step):
                    losses, gnorm = self.step(stream, batches, stage)
                    self._clips += cfg.optim.batch_size
                    if p.step % cfg.log_every == 0 or p.step == last_step:
                        row = self.log(losses, gnorm, resolution)
                        summary.update({k.replace("/", "_"): row[k] for k in row if k.startswith("train/")})
                    if cfg.data.val_source and (p.step % cfg.val_every == 0 or p.step == last_step):
                        self._validate_and_log(resolution, summary)
                    if p.step % cfg.ckpt_every == 0 or p.step == last_step:
                        self.save()
                        saved_step = p.step
                    if self.bar is not None:
                        self.bar.update(1)
        except KeyboardInterrupt:
            # Ctrl-C: keep the finished steps. Only on one process: ranks of a distributed run are not
            # interrupted at the same point, so a gathered save could hang; they keep the last periodic one.
            if p.step > saved_step and not env.enabled:
                self.save(self.step_rng)
                if env.is_main:
                    print(f"interrupted: saved a checkpoint at step {p.step}; rerun the same command to resume",
                          flush=True)
            raise
        if self.bar is not None:
            self.bar.close()
        self.logger.close()
        summary.update({"step": p.step, "skipped_videos": len(p.skipped_sources), "skip_events": p.skip_events,
                        "checkpoint": str(latest_checkpoint(self.out))})
        return summary


def train(cfg: TrainConfig, resume: bool = True, max_steps: int | None = None,
          return_model: bool = False, trajectory: TrajectoryInfo | None = None) -> dict[str, Any]:
    """Train (or resume) according to ``cfg``. Returns a summary dict (rank 0 has the full picture).

    ``max_steps`` stops early after that global step (the schedule still follows ``cfg.stages``);
    ``return_model`` adds the trained (possibly wrapped) module under ``"model"``. ``trajectory``: the
    ``trajectory_info`` of ``data.source`` when the caller has read it already (it is not read again).

    Resuming starts from the newest checkpoint that has readable weights and ``train_state.pt``
    (newer unusable ones are moved aside, with one line saying so). Ctrl-C on a single process saves
    a checkpoint at the last finished step, then re-raises ``KeyboardInterrupt``.
    """
    if not cfg.data.source:
        raise UserError("no training data: set data.source=PATH (videos, a manifest, shards or a feature cache)")
    env = init_distributed()  # under torchrun: joins (or creates, and then destroys) the process group
    try:
        summary = _train(cfg, env, resume, max_steps, return_model, trajectory)
    except BaseException:
        shutdown_distributed(env, clean=False)
        raise
    shutdown_distributed(env)
    return summary


def _train(cfg: TrainConfig, env: Dist, resume: bool, max_steps: int | None, return_model: bool,
           trajectory: TrajectoryInfo | None) -> dict[str, Any]:
    # the Trainer (and with it a DDP/FSDP2 wrapper holding the process group) is gone when this returns
    trainer = Trainer(cfg, env, trajectory=trajectory)
    summary = trainer.run(resume, max_steps)
    if return_model:
        summary["model"] = unwrap(trainer.model)
    skipped = trainer.progress.skipped_sources
    if env.is_main and skipped:
        print(f"skipped {len(skipped)} unreadable or too-short videos, {trainer.progress.skip_events} times in all "
              "(each epoch meets them again; see warnings above)")
    return summary


__all__ = ["VAL_SEED", "WEIGHTS_HINT", "Trainer", "build_model", "compile_mode", "lr_factor", "param_groups",
           "stage_at", "teacher_forcing_loss", "train"]
