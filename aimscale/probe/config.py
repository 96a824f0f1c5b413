"""Typed configuration of a downstream probe (frozen trunk + small trained head).

Recipe (the paper's appendix is not available; this is ours, sized for CPU-scale sweeps):
AdamW (β = 0.9, 0.999), linear warmup over the first epoch then cosine to 0, batch 256, a grid of
learning rate × weight decay trained together from the same streamed batches of features, the
grid member with the best accuracy on a validation split (carved deterministically from the
training split) is reported on the test split. No augmentation, so an image's features are fixed
and may be cached on disk (`cache`), instead of re-running the trunk every epoch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from aimscale.errors import UserError

KINDS = ("attentive", "linear", "both", "lora")
DATASET_KINDS = ("fashion-mnist", "mnist", "image-folder", "synthetic")
WINDOW_NAMES = ("last", "best", "all-windows")
CACHE_MODES = ("auto", "disk", "none")
FEATURES = ("trunk", "pixels", "untrained")  # baselines: see aimscale/probe/features.py
_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


class ProbeError(UserError, ValueError):
    """A probe that cannot run as asked; the message names the problem and the fix."""


@dataclass
class ProbeConfig:
    """One probe request; expands to one result per (kind, block window, checkpoint).

    - kind: attentive | linear | both (attentive + linear on one trunk pass) | lora (rank-r
      adapters on the attention projections, base frozen, attentive head on top).
    - dataset: fashion-mnist | mnist | synthetic | image-folder:PATH (PATH/train, PATH/val).
    - blocks: last | best | all-windows | START-END | N (0-based, inclusive); see `windows.py`.
    - checkpoint: last | a training step; `fractions` (e.g. [0.25, 0.5, 1.0]) instead picks the
      kept checkpoint nearest to each fraction of train.steps.
    - limit_train / limit_test: number of images used (null: the whole split).
    - features: trunk (the run's checkpoint) | untrained (its trunk at step 0, same init seed) |
      pixels (the patches, no trunk): the same protocol on a baseline; results are named
      `<features>_<kind>_<window>` for the baselines (features.py says what each one is).
    """

    kind: str = "attentive"
    dataset: str = "fashion-mnist"
    blocks: str = "last"
    window_size: int | None = None  # blocks per window; null: min(6, max(1, round(depth / 4)))
    checkpoint: str = "last"
    fractions: list[float] | None = None
    lrs: list[float] = field(default_factory=lambda: [3e-3, 1e-2, 3e-2, 1e-1])
    weight_decays: list[float] = field(default_factory=lambda: [0.0, 0.05])
    epochs: int = 10
    batch_size: int = 256
    val_fraction: float = 0.1
    seed: int = 0
    limit_train: int | None = 4000
    limit_test: int | None = 2000
    lora_rank: int = 8
    lora_epochs: int = 2
    name: str | None = None  # null: <kind>_<window>[_step<k>]
    device: str = "auto"  # auto | cpu | cuda
    # features between epochs: auto (a temporary fp16 store on disk, deleted when the probe ends,
    # when epochs > 1 and it needs at most AIMSCALE_PROBE_CACHE_GB, default 4; else none) |
    # disk (kept in RUN_DIR/probe/cache/ for later probes of the same checkpoint) |
    # none (the trunk runs over the images every epoch)
    cache: str = "auto"
    features: str = "trunk"

    def problems(self) -> list[str]:
        """Every inconsistency, as sentences (empty when valid)."""
        found = []
        if self.kind not in KINDS:
            found.append(f"probe kind={self.kind!r} is not one of {KINDS}")
        kind = self.dataset.split(":", 1)[0]
        if kind not in DATASET_KINDS:
            found.append(
                f"probe dataset={self.dataset!r} is not one of {DATASET_KINDS} "
                "(image-folder takes a path: image-folder:/data/pets)"
            )
        elif kind == "image-folder" and not self.dataset.partition(":")[2]:
            found.append("probe dataset image-folder needs a path: image-folder:/path/to/folder")
        if self.blocks not in WINDOW_NAMES and not _RANGE.match(self.blocks):
            found.append(
                f"probe blocks={self.blocks!r} is not one of {WINDOW_NAMES} nor START-END "
                "(0-based, inclusive, e.g. 2-5)"
            )
        if self.window_size is not None and self.window_size < 1:
            found.append(f"probe window_size must be >= 1 or null, got {self.window_size}")
        if self.checkpoint != "last" and not str(self.checkpoint).isdigit():
            found.append(
                f"probe checkpoint={self.checkpoint!r} is neither 'last' nor a training step"
            )
        if self.fractions is not None:
            if not self.fractions or any(not 0 < f <= 1 for f in self.fractions):
                found.append(f"probe fractions must be in (0, 1], got {self.fractions}")
            if self.checkpoint != "last":
                found.append("give either probe checkpoint or probe fractions, not both")
        if not self.lrs or any(lr <= 0 for lr in self.lrs):
            found.append(f"probe lrs must be a non-empty list of positive numbers, got {self.lrs}")
        if not self.weight_decays or any(wd < 0 for wd in self.weight_decays):
            found.append(
                f"probe weight_decays must be a non-empty list of numbers >= 0, "
                f"got {self.weight_decays}"
            )
        for key in ("epochs", "batch_size", "lora_rank", "lora_epochs"):
            if getattr(self, key) < 1:
                found.append(f"probe {key} must be >= 1, got {getattr(self, key)}")
        if not 0 < self.val_fraction < 1:
            found.append(f"probe val_fraction must be in (0, 1), got {self.val_fraction}")
        for key in ("limit_train", "limit_test"):
            value = getattr(self, key)
            if value is not None and value < 2:
                found.append(f"probe {key} must be >= 2 or null (whole split), got {value}")
        if self.cache not in CACHE_MODES:
            found.append(f"probe cache={self.cache!r} is not one of {CACHE_MODES}")
        if self.device not in ("auto", "cpu", "cuda"):
            found.append(f"probe device={self.device!r} is not one of ('auto', 'cpu', 'cuda')")
        if self.features not in FEATURES:
            found.append(f"probe features={self.features!r} is not one of {FEATURES}")
        elif self.features != "trunk":
            if self.kind == "lora":
                found.append(f"probe features={self.features}: LoRA fine-tunes a trained trunk; "
                             "use kind attentive, linear or both for a baseline")
            if self.checkpoint != "last" or self.fractions is not None:
                found.append(f"probe features={self.features} uses no checkpoint; drop "
                             "checkpoint/fractions")
            if self.features == "pixels" and self.blocks == "all-windows":
                found.append("probe features=pixels has no blocks to sweep; use blocks=last")
        if self.name is not None and not re.fullmatch(r"[A-Za-z0-9_.\-]+", self.name):
            found.append(
                f"probe name={self.name!r} must be a file-name stem (letters, digits, _ . -)"
            )
        return found

    def check(self) -> ProbeConfig:
        problems = self.problems()
        if problems:
            raise ProbeError(_listing("invalid probe configuration", problems))
        return self

    def run_problems(self, run_cfg: Any) -> list[str]:
        """What would stop this probe on a run trained with `run_cfg` (an
        `aimscale.config.RunConfig`), known before training: blocks outside the trunk, a
        checkpoint step that training does not keep."""
        from aimscale.probe.windows import resolve_windows

        found = []
        try:
            resolve_windows(self.blocks, run_cfg.model.depth, self.window_size)
        except ProbeError as err:
            found.append(str(err))
        step = self.checkpoint_step
        if step is not None and self.fractions is None and self.features == "trunk":
            kept = run_cfg.train.final_checkpoint_steps()
            if step not in kept:
                found.append(
                    f"probe checkpoint={step}: training keeps the checkpoints of steps {kept} "
                    f"only; pick one of them, or keep step {step} with train.keep_fractions"
                )
        return found

    @property
    def kinds(self) -> list[str]:
        return ["attentive", "linear"] if self.kind == "both" else [self.kind]

    @property
    def checkpoint_step(self) -> int | None:
        """The requested step, or None for the last checkpoint."""
        return None if self.checkpoint == "last" else int(self.checkpoint)


def _listing(title: str, problems: list[str]) -> str:
    lines = "\n".join(f"  - {p}" for p in problems)
    return f"{title} ({len(problems)} problem(s)):\n{lines}"


def probe_config(values: dict[str, Any] | ProbeConfig | None = None, **overrides) -> ProbeConfig:
    """A validated ProbeConfig from a plain dict (e.g. a sweep spec's `probe:` entry).

    Merged onto the defaults in struct mode: an unknown key or a value of the wrong type is a
    ProbeError that names it.
    """
    if isinstance(values, ProbeConfig):
        values = OmegaConf.to_container(OmegaConf.structured(values))
    schema = OmegaConf.structured(ProbeConfig)
    OmegaConf.set_struct(schema, True)
    problems = []
    for source in (values or {}, overrides):
        for key, value in source.items():
            try:
                schema.merge_with({key: value})
            except OmegaConfBaseException as err:
                reason = str(err).splitlines()[0]
                if key not in schema:
                    known = ", ".join(schema.keys())
                    reason = f"unknown key {key!r}; known keys: {known}"
                problems.append(f"probe {key}={value!r}: {reason}")
    cfg: ProbeConfig = OmegaConf.to_object(schema)
    problems += cfg.problems()
    if problems:
        raise ProbeError(_listing("invalid probe configuration", problems))
    return cfg
