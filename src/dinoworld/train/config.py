"""Training configuration. Defaults are the paper's recipe (App. A.2); tiny CPU runs override them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..config import above, at_least, between, not_empty, one_of
from ..data.sampler import DT_MAX, DT_MIN
from ..model.predictor import SIZES


@dataclass
class DataConfig:
    """Where clips come from and how they are sampled (paper §3.2 "Variable FPS")."""

    #: videos: a folder, a manifest (.txt/.csv/.jsonl), tar shards ("shards-{000..099}.tar"), or a
    #: feature cache written by `dinoworld encode` (detected by its index.json); or an env
    #: trajectory folder written by `dinoworld collect` (kind "trajectories")
    source: str = ""
    #: held-out videos for the validation loss (same forms as ``source``; "" = no validation)
    val_source: str = ""
    #: "auto" (detect from ``source``), "video", "cache" or "trajectories"
    kind: str = "auto"
    num_frames: int = 8  #: T frames per clip (paper: 8)
    #: time gaps between sampled frames are uniform in [dt_min, dt_max] seconds (see data.sampler.DT_MIN)
    dt_min: float = DT_MIN
    dt_max: float = DT_MAX
    crop: str = "crop"  #: aspect-ratio policy: "crop" (short side resize + centre crop) or "resize"
    num_workers: int = 4  #: DataLoader workers per rank (0 = in process); resume is exact when unchanged
    frameskip: int = 5  #: trajectories only: frames skipped between steps (actions concatenated)
    #: trajectories only: a feature cache of ``source`` (`dinoworld encode TRAJECTORY_FOLDER --out DIR`),
    #: read instead of encoding the frames at every step ("" = encode on the fly)
    features: str = ""

    CHECKS = {"kind": one_of("auto", "video", "cache", "trajectories"), "num_frames": at_least(2),
              "dt_min": above(0), "dt_max": above(0), "crop": one_of("crop", "resize"), "num_workers": at_least(0),
              "frameskip": at_least(1)}


@dataclass
class ModelConfig:
    size: str = "giant"  #: predictor size (tiny, small, base, large, giant); the paper's main model is giant
    predictor: dict[str, Any] = field(default_factory=dict)  #: overrides of PredictorConfig fields
    #: frozen encoder: a name in `dinoworld.encoders.ENCODER_NAMES` or "hf:<hub id or folder>"
    encoder: str = "dinov2-b14-reg"
    encoder_weights: str | None = None  #: hub id or local path of the encoder weights (None = default hub id)
    action_dim: int = 0  #: > 0 adds action blocks (fine-tuning)

    CHECKS = {"size": one_of(*SIZES), "action_dim": at_least(0)}


@dataclass
class OptimConfig:
    lr: float = 1e-4  #: peak learning rate (constant after warm-up)
    warmup_steps: int = 5000  #: linear warm-up from 0
    schedule: str = "constant"  #: after warm-up: "constant" (paper) or "cosine" (decay to min_lr_ratio * lr)
    min_lr_ratio: float = 0.0  #: final lr / peak lr of the cosine schedule
    weight_decay: float = 0.4
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 0.0  #: max global grad norm; 0 disables clipping
    batch_size: int = 1024  #: clips per optimizer step, summed over all ranks
    micro_batch_size: int = 8  #: clips per forward pass per rank (gradient accumulation fills the rest)

    CHECKS = {"lr": above(0), "warmup_steps": at_least(0), "schedule": one_of("constant", "cosine"),
              "min_lr_ratio": between(0, 1), "weight_decay": at_least(0), "betas": between(0, 1, hi_open=True),
              "grad_clip": at_least(0), "batch_size": at_least(1), "micro_batch_size": at_least(1)}


@dataclass
class Stage:
    steps: int = 300_000  #: optimizer steps in this stage
    resolution: int = 224  #: square frame side in pixels (a multiple of the encoder's patch size)

    CHECKS = {"steps": at_least(1), "resolution": at_least(1)}


@dataclass
class FinetuneConfig:
    env: str = ""  #: environment the trajectories come from (pusht, wall, pointmaze), recorded in checkpoints
    init: str = ""  #: checkpoint folder to start from ("" = random init, i.e. from scratch)
    #: "all" trains every parameter; "actions" freezes the pre-trained predictor and trains only
    #: the action projection and action blocks
    trainable: str = "all"
    val_fraction: float = 0.1  #: trajectories held out (random split saved with the checkpoint)
    #: train on this many of the training split's trajectories, drawn with the split's seed (0 = all); the
    #: held-out split does not change, so runs with different counts plan the same episodes
    train_episodes: int = 0
    #: seed of the held-out split and of the ``train_episodes`` draw (None = ``seed``): set it to repeat a run
    #: with another ``seed`` (initialisation, clip order) on the same split
    split_seed: int | None = None
    #: frame side (px) of the fine-tuning stage when ``stages`` is not given (paper: 224)
    resolution: int = 224

    CHECKS = {"trainable": one_of("all", "actions"), "val_fraction": between(0, 1, hi_open=True),
              "train_episodes": at_least(0), "resolution": at_least(1)}


@dataclass
class TrainConfig:
    out_dir: str = "runs/dinoworld"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    #: paper: 300k steps at 224², then 50k at 448²
    stages: list[Stage] = field(default_factory=lambda: [Stage(300_000, 224), Stage(50_000, 448)])
    log_every: int = 10
    val_every: int = 1000
    val_batches: int = 8  #: micro-batches per rank in one validation pass
    ckpt_every: int = 1000
    keep_checkpoints: int = 3
    precision: str = "auto"  #: "auto" (bf16 autocast on CUDA, fp32 on CPU), "bf16", "fp32"
    activation_checkpointing: bool = False
    #: torch.compile: "auto" (CUDA: the whole predictor, or each block under FSDP2 / activation
    #: checkpointing; CPU: none), "model", "blocks", "none". Measured: results/train-throughput-h200-202611.md.
    compile: str = "auto"
    #: attention backend: "auto" (FlexAttention on CUDA, grouped maskless SDPA on CPU), "flex",
    #: "grouped", "dense" (the reference: SDPA with the materialised boolean mask)
    attention: str = "auto"
    strategy: str = "auto"  #: "auto" (FSDP2 for giant, DDP otherwise when distributed), "ddp", "fsdp"
    tensorboard: bool = True
    progress: bool = True

    CHECKS = {"stages": not_empty, "log_every": at_least(1), "val_every": at_least(1), "val_batches": at_least(1),
              "ckpt_every": at_least(1), "keep_checkpoints": at_least(1),
              "precision": one_of("auto", "bf16", "fp32"), "compile": one_of("auto", "model", "blocks", "none"),
              "attention": one_of("auto", "flex", "grouped", "dense"), "strategy": one_of("auto", "ddp", "fsdp")}

    @property
    def split_seed(self) -> int:
        """The seed of the trajectory split (``finetune.split_seed``, else ``seed``)."""
        return self.seed if self.finetune.split_seed is None else int(self.finetune.split_seed)

    @property
    def total_steps(self) -> int:
        return sum(s.steps for s in self.stages)
