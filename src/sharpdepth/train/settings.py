"""`TrainSettings`: every option of a fine-tuning run and its default, in one place.

The CLI (and any other front end) builds one of these and hands it to
`sharpdepth.train.loop.run_finetune`; nothing else re-states a default. It is
keyword-only and validated on construction, so a bad value fails before any
model or data is touched.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import OptionError
from ..family import Training
from ..registry import get_family

LOSSES = ("depth-pro", "silog", "ssi", "affine", "fov")
PARTS = ("encoder", "decoder", "head", "fov")
TRAIN_CHOICES = ("all", "decoder", "head", "fov")
PRECISIONS = ("fp32", "bf16")


def training_facts(family: str) -> Training:
    """The family's declared trainable parts and losses (`Family.training`); OptionError when it declares none."""
    training = get_family(family).training
    if training is None:
        raise OptionError(f"the {family} family cannot be fine-tuned (it declares no trainable parts)")
    return training


def default_loss(family: str, metric: bool) -> str:
    """The loss the family's own paper fine-tunes with, as it declares: e.g. Depth Pro -> depth-pro,
    metric Depth Anything -> silog, relative Depth Anything -> affine, MiDaS -> ssi."""
    return training_facts(family).default_loss(metric)


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    # ---- model
    model: str
    weights: Path | None = None
    random_weights: bool = False
    """Start from random weights (plumbing tests only)."""
    input_size: int | None = None
    device: str = "auto"
    precision: str = "fp32"
    """fp32, or bf16 autocast (weights and optimizer stay float32)."""
    # ---- data
    dataset: str = "folder"
    root: Path
    dataset_options: tuple[tuple[str, str], ...] = ()
    val_root: Path | None = None
    """Separate validation data (same loader); otherwise a split of `root` by scene."""
    val_fraction: float = 0.1
    val_scenes: tuple[str, ...] = ()
    max_val_images: int = 16
    flip: bool = True
    crop_min: float = 0.8
    """Random crops keep this share of each side at least (1 disables cropping)."""
    color_jitter: float = 0.2
    """Brightness/contrast/saturation factors drawn from [1 - j, 1 + j] (0 disables)."""
    # ---- objective
    loss: str | None = None
    """None: the family's own loss (`default_loss`)."""
    silog_lambda: float = 0.5
    ssi_alpha: float = 0.5
    """Weight of MiDaS's gradient-matching term."""
    trim: float = 0.2
    """Depth Pro MAE: share of the largest errors discarded per image."""
    derivative_weight: float = 1.0
    """Depth Pro: weight of MAGE + MALE + MSGE."""
    scales: int = 4
    fov_weight: float = 1.0
    """Depth Pro: weight of the FOV term whenever the FOV head is being trained."""
    # ---- optimisation
    epochs: float | None = None
    steps: int | None = None
    """Optimizer steps; overrides epochs. Neither given: one epoch."""
    batch_size: int = 1
    """Images per process per micro-step (the global batch is batch * processes * accumulate)."""
    accumulate: int = 1
    lr: float = 1e-5
    weight_decay: float = 0.01
    warmup_steps: int | None = None
    """None: 5 % of the steps."""
    min_lr_ratio: float = 0.0
    clip_grad: float = 1.0
    """Max global gradient norm (0 disables)."""
    freeze: tuple[str, ...] = ()
    train: str = "all"
    lora_rank: int = 0
    """> 0: LoRA adapters of this rank on every attention projection, base weights frozen."""
    lora_alpha: float | None = None
    seed: int = 0
    # ---- bookkeeping
    output: Path
    val_every: int = 0
    """Validate every N steps (0: only at the end)."""
    save_every: int = 0
    """Write the resumable `last/` checkpoint every N steps (0: only at the end)."""
    resume: Path | None = None
    stop_after: int | None = None
    """Stop after this step with a resumable checkpoint (the schedule still spans all steps)."""
    quiet: bool = False

    def __post_init__(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise OptionError(message)

        need(bool(self.model), "--model is required")
        need(self.weights is None or not self.random_weights, "give --weights or --random-weights, not both")
        need(self.precision in PRECISIONS, f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision}")
        need(self.loss is None or self.loss in LOSSES, f"unknown --loss {self.loss!r}; choose from {', '.join(LOSSES)}")
        need(self.train in TRAIN_CHOICES, f"--train must be one of {', '.join(TRAIN_CHOICES)}, got {self.train!r}")
        for part in self.freeze:
            need(part in PARTS, f"--freeze takes {', '.join(PARTS)}; got {part!r}")
        need(self.input_size is None or self.input_size > 0, "--input-size must be positive")
        need(0.0 <= self.val_fraction < 1.0, "--val-fraction must be in [0, 1)")
        need(self.max_val_images >= 0, "--max-val-images must be >= 0")
        need(0.1 <= self.crop_min <= 1.0, "--crop-min must be in [0.1, 1]")
        need(0.0 <= self.color_jitter < 1.0, "--color-jitter must be in [0, 1)")
        need(self.silog_lambda >= 0 and self.ssi_alpha >= 0, "loss weights must be >= 0")
        need(0.0 <= self.trim < 1.0, "--trim must be in [0, 1)")
        need(self.derivative_weight >= 0 and self.fov_weight >= 0, "loss weights must be >= 0")
        need(1 <= self.scales <= 8, "--scales must be in 1..8")
        need(self.epochs is None or self.epochs > 0, "--epochs must be positive")
        need(self.steps is None or self.steps > 0, "--steps must be positive")
        need(self.batch_size >= 1, "--batch-size must be at least 1")
        need(self.accumulate >= 1, "--accumulate must be at least 1")
        need(self.lr > 0, "--lr must be positive")
        need(self.weight_decay >= 0, "--weight-decay must be >= 0")
        need(self.warmup_steps is None or self.warmup_steps >= 0, "--warmup-steps must be >= 0")
        need(0.0 <= self.min_lr_ratio <= 1.0, "--min-lr-ratio must be in [0, 1]")
        need(self.clip_grad >= 0, "--clip-grad must be >= 0 (0 disables)")
        need(self.lora_rank >= 0, "--lora-rank must be >= 0")
        need(self.stop_after is None or self.stop_after > 0, "--stop-after must be positive")
        need(self.val_every >= 0 and self.save_every >= 0, "--val-every / --save-every must be >= 0")
        need(self.train != "fov" or self.loss in (None, "fov"), "--train fov trains the FOV head with --loss fov")
        need(self.loss != "fov" or self.train == "fov", "--loss fov is for --train fov")
        need(self.train not in self.freeze, f"--train {self.train} and --freeze {self.train} contradict each other")

    def loss_for(self, family: str, metric: bool) -> str:
        if self.train == "fov":
            return "fov"
        return self.loss or default_loss(family, metric)

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str, indent=2, sort_keys=True)
