"""Typed configuration of the optimiser, the training loop and logging."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

PRECISIONS = ("auto", "fp32", "bf16")
WANDB_MODES = ("offline", "online", "disabled")
PROGRESS_MODES = ("auto", "bar", "lines", "none")
SCHEDULES = ("cosine", "wsd")
COOLDOWN_SHAPES = ("1-sqrt", "linear")
STRATEGIES = ("ddp", "fsdp")  # data parallel (replicated state) | fully sharded (FSDP2)


@dataclass
class OptimConfig:
    """AdamW with linear warmup, then cosine decay (the paper's recipe) or WSD.

    `schedule=wsd` (warmup-stable-decay): warmup, constant at `lr`, then a cooldown to `min_lr`
    over the last `cooldown_fraction` of the steps, shaped `1-sqrt` or `linear`
    (see `aimscale.train.optim.lr_at`).
    """

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.05  # not on biases, norms or positions
    warmup_fraction: float = 0.025
    min_lr: float = 0.0
    grad_clip: float = 1.0
    schedule: str = "cosine"  # cosine | wsd
    cooldown_fraction: float = 0.2  # wsd only: share of the steps spent cooling down
    cooldown_shape: str = "1-sqrt"  # wsd only: 1-sqrt | linear

    def problems(self) -> list[str]:
        keys = ("lr", "beta1", "beta2", "eps", "weight_decay", "warmup_fraction", "min_lr",
                "grad_clip")
        # nan compares false with everything, so it would pass the range checks below
        bad = {key for key in keys if not math.isfinite(getattr(self, key))}
        found = [f"optim.{key} must be a finite number, got {getattr(self, key)}"
                 for key in keys if key in bad]
        for key in ("lr", "eps"):
            if key not in bad and getattr(self, key) <= 0:
                found.append(f"optim.{key} must be positive, got {getattr(self, key)}")
        if not bad & {"beta1", "beta2"} and not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            found.append(f"optim.beta1/beta2 must be in [0, 1), got {self.beta1}/{self.beta2}")
        if "warmup_fraction" not in bad and not 0 <= self.warmup_fraction < 1:
            found.append(f"optim.warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        for key in ("weight_decay", "grad_clip", "min_lr"):
            if key not in bad and getattr(self, key) < 0:
                found.append(f"optim.{key} must be >= 0, got {getattr(self, key)}")
        if self.schedule not in SCHEDULES:
            found.append(f"optim.schedule={self.schedule!r} is not one of {SCHEDULES}")
        if self.cooldown_shape not in COOLDOWN_SHAPES:
            found.append(f"optim.cooldown_shape={self.cooldown_shape!r} is not one of "
                         f"{COOLDOWN_SHAPES}")
        if not 0 <= self.cooldown_fraction <= 1:
            found.append(f"optim.cooldown_fraction must be in [0, 1], got {self.cooldown_fraction}")
        elif self.schedule == "wsd" and self.warmup_fraction + self.cooldown_fraction > 1:
            found.append(
                f"optim.warmup_fraction + optim.cooldown_fraction = "
                f"{self.warmup_fraction + self.cooldown_fraction:g} exceeds 1; shorten one of them"
            )
        return found


@dataclass
class TrainConfig:
    """The loop: how long, how big, how often to log, evaluate and checkpoint."""

    steps: int = 200
    batch_size: int = 64  # global batch (images per optimiser step, all ranks)
    micro_batch_size: int | None = None  # per rank per forward; None = batch / world size
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto: bf16 autocast on GPU, fp32 on CPU
    compile: bool = False
    log_every: int = 10
    eval_every: int = 100
    eval_images: int = 512
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    # fractions of `steps` whose checkpoints are also saved and never rotated away (probing
    # along training, e.g. [0.25, 0.5]); the final step's checkpoint is always kept
    keep_fractions: list[float] = field(default_factory=list)
    # training images drawn (separate seed) for AIM.prepare, e.g. the k-means codebook
    prepare_images: int = 1024
    # how the model is spread over ranks: `ddp` replicates parameters, gradients and optimiser
    # state on every GPU; `fsdp` shards them (FSDP2); `plan` estimates the memory of either
    strategy: str = "ddp"
    # recompute each trunk block's activations in the backward pass (keep only block inputs)
    activation_checkpointing: bool = False
    # the device's peak FLOP/s for MFU; None: known GPUs by name, a measured GEMM peak on CPU
    peak_flops: float | None = None

    def problems(self) -> list[str]:
        found = []
        for key in ("steps", "batch_size", "log_every", "eval_every", "checkpoint_every"):
            if getattr(self, key) <= 0:
                found.append(f"train.{key} must be positive, got {getattr(self, key)}")
        if self.micro_batch_size is not None and self.micro_batch_size <= 0:
            found.append(f"train.micro_batch_size must be positive, got {self.micro_batch_size}")
        if self.eval_images < 0 or self.prepare_images < 0:
            found.append("train.eval_images and train.prepare_images must be >= 0")
        bad = [f for f in self.keep_fractions if not 0.0 < f <= 1.0]
        if bad:
            found.append(f"train.keep_fractions must lie in (0, 1], got {bad}")
        if self.keep_checkpoints < 1:
            found.append(f"train.keep_checkpoints must be >= 1, got {self.keep_checkpoints}")
        if self.precision not in PRECISIONS:
            found.append(f"train.precision={self.precision!r} is not one of {PRECISIONS}")
        if self.strategy not in STRATEGIES:
            found.append(f"train.strategy={self.strategy!r} is not one of {STRATEGIES}")
        if self.peak_flops is not None and not self.peak_flops > 0:
            found.append(f"train.peak_flops must be positive (FLOP/s per device), got "
                         f"{self.peak_flops}")
        if self.device not in ("auto", "cpu", "cuda"):
            found.append(f"train.device={self.device!r} is not one of ('auto', 'cpu', 'cuda')")
        return found

    def kept_steps(self) -> list[int]:
        """Steps whose checkpoints survive rotation: `keep_fractions` of `steps` (rounded, at
        least 1) and the final step."""
        steps = {min(self.steps, max(1, round(f * self.steps))) for f in self.keep_fractions}
        return sorted(steps | {self.steps})

    def final_checkpoint_steps(self) -> list[int]:
        """Steps whose checkpoints a finished run still has: the newest `keep_checkpoints` of
        those saved (every `checkpoint_every` steps, the kept steps, the last) and the kept ones."""
        kept = self.kept_steps()
        last = self.steps // self.checkpoint_every
        first = max(1, last - self.keep_checkpoints + 1)
        saved = {self.checkpoint_every * i for i in range(first, last + 1)} | set(kept)
        return sorted(set(sorted(saved)[-self.keep_checkpoints:]) | set(kept))


@dataclass
class BranchConfig:
    """A cooldown branch (`aimscale.train.branches`): this run starts from the checkpoint of
    run `trunk` at `step`, with its data position, optimiser and RNG, and trains the cooldown
    from there to `train.steps`. `warmup` is the trunk's warmup in steps, so the schedule before
    `step` is the trunk's. `trunk == ""` (the default): an ordinary run, and the section is left
    out of the run's hash."""

    trunk: str = ""  # the trunk's run id; its run directory is a sibling of this run's
    step: int = 0  # the trunk's step the branch starts from: this run's cooldown start
    warmup: int = 0  # the trunk's warmup, in steps

    @property
    def active(self) -> bool:
        return bool(self.trunk)

    def problems(self) -> list[str]:
        if not self.active:
            return []
        found = []
        if "/" in self.trunk or self.trunk in (".", ".."):
            found.append(f"branch.trunk={self.trunk!r} must be a run id (the name of a sibling "
                         "run directory), not a path")
        if self.step < 1:
            found.append(f"branch.step must be >= 1, got {self.step}")
        if not 0 <= self.warmup <= self.step:
            found.append(f"branch.warmup must be in [0, branch.step={self.step}], got "
                         f"{self.warmup}")
        return found


@dataclass
class LoggingConfig:
    """Where metrics go besides metrics.jsonl (which is always written and authoritative)."""

    wandb: bool = False
    wandb_project: str = "aimscale"
    wandb_mode: str = "offline"  # offline | online | disabled
    progress: str = "auto"  # auto (bar on a terminal, log lines otherwise) | bar | lines | none

    def problems(self) -> list[str]:
        found = []
        if self.wandb_mode not in WANDB_MODES:
            found.append(f"logging.wandb_mode={self.wandb_mode!r} is not one of {WANDB_MODES}")
        if self.progress not in PROGRESS_MODES:
            found.append(f"logging.progress={self.progress!r} is not one of {PROGRESS_MODES}")
        return found
