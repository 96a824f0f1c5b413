"""Probe a pre-trained run: checkpoints × block windows × kinds -> RUN_DIR/probe/<name>.json.

Everything that can be wrong (no run, no checkpoint, a block window out of range, unusable data)
is checked before any training. Per checkpoint the trunk runs once per split over all windows;
per window and kind, the whole learning-rate × weight-decay grid trains at once on the cached
features (LoRA: one grid member after another, since the trunk itself changes).

Result names: `<kind>_<window>` (`attentive_last`, `linear_best`, `attentive_blocks2-3`), with
`_step<k>` appended when a checkpoint is chosen explicitly (`--checkpoint` / `--fractions`).
A given `name` is used as is for a single result and as a prefix (`<name>_<default>`) otherwise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from aimscale.atomic import atomic_write_json
from aimscale.probe.config import ProbeConfig, ProbeError, probe_config
from aimscale.probe.data import ProbeSets, load_sets
from aimscale.probe.features import FeatureKey, extract_windows, load_trunk, window_features
from aimscale.probe.fit import Hparams, fit_heads, make_grid, predict, topk_accuracy
from aimscale.probe.heads import AttentiveHeads, LinearHeads
from aimscale.probe.windows import Window, resolve_windows
from aimscale.train.checkpoint import (
    checkpoint_path,
    is_loadable,
    latest_checkpoint,
    list_checkpoints,
)

RECIPE = "AdamW(0.9, 0.999), warmup min(1 epoch, 10% of steps), cosine to 0, no augmentation"


@dataclass
class Plan:
    run_dir: Path
    run_cfg: object  # aimscale.config.RunConfig
    steps: list[int]
    step_in_name: bool
    windows: list[Window]


def plan_probes(run_dir: str | Path, cfg: ProbeConfig) -> Plan:
    """Check the request against the run; ProbeError naming the problem and the fix."""
    from aimscale.config import ConfigError, from_yaml

    cfg.check()
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ProbeError(
            f"{run_dir} is not a run directory (no config.yaml); pass the directory a training "
            "run wrote (aimscale train run_dir=...)"
        )
    try:
        run_cfg = from_yaml(run_dir / "config.yaml")
    except (ConfigError, ValueError) as err:
        raise ProbeError(f"{run_dir}/config.yaml cannot be read back: {err}") from None
    windows = resolve_windows(cfg.blocks, run_cfg.model.depth, cfg.window_size)
    steps = resolve_steps(run_dir, run_cfg.train.steps, cfg)
    step_in_name = cfg.checkpoint != "last" or cfg.fractions is not None
    return Plan(run_dir, run_cfg, steps, step_in_name, windows)


def resolve_steps(run_dir: Path, train_steps: int, cfg: ProbeConfig) -> list[int]:
    """The checkpoint steps to probe: the last, the one asked for, or the kept checkpoints
    nearest to each fraction of `train_steps` (duplicates removed)."""
    available = [step for step, _ in list_checkpoints(run_dir)]
    if not available:
        raise ProbeError(
            f"{run_dir} has no checkpoint in {run_dir / 'checkpoints'}; train the run first "
            "(or wait for its first checkpoint, every train.checkpoint_every steps)"
        )
    if cfg.fractions is not None:
        steps = []
        for fraction in cfg.fractions:
            target = min(train_steps, max(1, round(fraction * train_steps)))
            nearest = min(available, key=lambda s: (abs(s - target), s))
            if nearest not in steps:
                steps.append(nearest)
        return [_readable(run_dir, step, available) for step in steps]
    if cfg.checkpoint_step is not None:
        if cfg.checkpoint_step not in available:
            raise ProbeError(
                f"{run_dir} has no checkpoint at step {cfg.checkpoint_step}; kept steps: "
                f"{available} (keep more with train.keep_fractions, or probe with --fractions)"
            )
        return [_readable(run_dir, cfg.checkpoint_step, available)]
    path = latest_checkpoint(run_dir)
    if path is None:
        raise ProbeError(f"no checkpoint of {run_dir} can be read; re-run or resume training")
    return [int(path.stem.split("_")[1])]


def _readable(run_dir: Path, step: int, available: list[int]) -> int:
    """`step` if its checkpoint loads, else a ProbeError naming the file and the other steps."""
    path = checkpoint_path(run_dir, step)
    if not is_loadable(path):
        others = [s for s in available if s != step]
        raise ProbeError(
            f"checkpoint {path} cannot be read (truncated or not a checkpoint); probe another "
            f"kept step ({others}) or resume training to rewrite it"
        )
    return step


def result_name(cfg: ProbeConfig, kind: str, window: Window, step: int, plan: Plan) -> str:
    default = f"{kind}_{window.label}" + (f"_step{step}" if plan.step_in_name else "")
    if cfg.name is None:
        return default
    single = len(cfg.kinds) * len(plan.windows) * len(plan.steps) == 1
    return cfg.name if single else f"{cfg.name}_{default}"


def run_probes(run_dir: str | Path, cfg: ProbeConfig | dict) -> list[dict]:
    """Run every probe `cfg` names on `run_dir`; write and return one result dict each."""
    cfg = probe_config(cfg) if isinstance(cfg, dict) else cfg
    plan = plan_probes(run_dir, cfg)
    sets = load_sets(cfg, plan.run_cfg.model)
    device = _device(cfg.device)
    results = []
    for step in plan.steps:
        trunk = _LazyTrunk(plan.run_dir, step, device)
        for window in plan.windows:
            for kind in cfg.kinds:
                start = time.perf_counter()
                if kind == "lora":
                    record, feature_s = _lora_probe(cfg, sets, trunk(), window, plan), 0.0
                else:
                    record, feature_s = _head_probe(cfg, kind, sets, trunk, window, plan)
                record.update(
                    name=result_name(cfg, kind, window, step, plan),
                    kind=kind,
                    dataset=cfg.dataset,
                    step=step,
                    train_steps=plan.run_cfg.train.steps,
                    blocks=window.span,
                    window=window.label,
                    seed=cfg.seed,
                    feature_time_s=round(feature_s, 3),
                    wall_time_s=round(time.perf_counter() - start, 3),
                )
                atomic_write_json(plan.run_dir / "probe" / f"{record['name']}.json", record)
                results.append(record)
    return results


def run_probe(run_dir: str | Path, cfg: ProbeConfig | dict) -> dict:
    """One probe result (one kind, one window, one checkpoint); see `run_probes` for more."""
    results = run_probes(run_dir, cfg)
    if len(results) != 1:
        raise ProbeError(f"run_probe made {len(results)} results; call run_probes for several")
    return results[0]


def run_layer_sweep(run_dir: str | Path, cfg: ProbeConfig | dict) -> list[dict]:
    """Accuracy per block window sliding over depth: `<kind>_blocks<start>-<end>.json` each."""
    cfg = probe_config(cfg) if isinstance(cfg, dict) else cfg
    return run_probes(run_dir, replace(cfg, blocks="all-windows"))


class _LazyTrunk:
    """Loads the checkpoint's trunk on first use (not at all when every feature is cached)."""

    def __init__(self, run_dir: Path, step: int, device: torch.device):
        self.run_dir, self.step, self.device = run_dir, step, device
        self.mtime_ns = checkpoint_path(run_dir, step).stat().st_mtime_ns
        self._trunk = None

    def __call__(self) -> torch.nn.Module:
        if self._trunk is None:
            self._trunk = load_trunk(self.run_dir, self.step, self.device)
        return self._trunk


def _features(cfg: ProbeConfig, sets: ProbeSets, trunk: _LazyTrunk, window: Window, plan: Plan):
    disk = plan.run_dir / "probe" / "cache" if cfg.disk_cache else None
    out, seconds = [], 0.0
    for split, images, limit in (
        ("train", sets.train_images, cfg.limit_train),
        ("test", sets.test_images, cfg.limit_test),
    ):
        key = FeatureKey(str(plan.run_dir.resolve()), trunk.step, trunk.mtime_ns, cfg.dataset,
                         split, limit, window.start, window.end)  # fmt: skip
        # all windows of this checkpoint in one trunk pass: ask for every one not yet cached
        keys = [replace(key, start=w.start, end=w.end) for w in plan.windows]
        feats, elapsed = window_features(keys, plan.windows, images, trunk, disk)
        out.append(feats[plan.windows.index(window)].to(trunk.device))
        seconds += elapsed
    return out, seconds


def _head_probe(cfg, kind, sets, trunk, window, plan) -> tuple[dict, float]:
    (train_x, test_x), feature_s = _features(cfg, sets, trunk, window, plan)
    if kind == "linear":  # mean-pooled tokens
        train_x, test_x = train_x.mean(1), test_x.mean(1)
    grid = make_grid(cfg.lrs, cfg.weight_decays)
    init = torch.Generator().manual_seed(cfg.seed + 1)
    width = plan.run_cfg.model.width
    if kind == "attentive":
        heads = AttentiveHeads(len(grid), width, plan.run_cfg.model.heads, sets.num_classes, init)
    else:
        heads = LinearHeads(len(grid), width, sets.num_classes, init)
    heads.to(train_x.device)
    labels = sets.train_labels.to(train_x.device)
    shuffle = torch.Generator().manual_seed(cfg.seed + 2)
    fit_heads(heads, grid, train_x, labels, sets.fit_index, cfg.epochs, cfg.batch_size, shuffle)
    val_index = sets.val_index.to(train_x.device)
    val_logits = predict(heads, train_x[val_index])
    test_logits = predict(heads, test_x)
    record = _select(grid, val_logits, labels[val_index], test_logits, sets)
    record["hparams"].update(epochs=cfg.epochs, batch_size=cfg.batch_size, recipe=RECIPE)
    return record, feature_s


def _lora_probe(cfg, sets, trunk, window, plan) -> dict:
    from aimscale.probe.lora import finetune_lora

    grid = make_grid(cfg.lrs, cfg.weight_decays)
    val_logits, test_logits = [], []
    val_images, test_images = sets.train_images[sets.val_index], sets.test_images
    for i, hp in enumerate(grid):
        gen = torch.Generator().manual_seed(cfg.seed + 3 + i)
        tuned, head = finetune_lora(
            trunk, window.blocks, hp, sets.train_images, sets.train_labels, sets.fit_index,
            sets.num_classes, plan.run_cfg.model.heads, cfg.lora_rank, cfg.lora_epochs,
            cfg.batch_size, gen,
        )  # fmt: skip
        val_x, test_x = (extract_windows(tuned, x, [window])[0] for x in (val_images, test_images))
        val_logits.append(predict(head, val_x)[0])
        test_logits.append(predict(head, test_x)[0])
    device = val_logits[0].device
    val_labels = sets.train_labels[sets.val_index].to(device)
    record = _select(grid, torch.stack(val_logits), val_labels, torch.stack(test_logits), sets)
    record["hparams"].update(
        epochs=cfg.lora_epochs, batch_size=cfg.batch_size, lora_rank=cfg.lora_rank,
        recipe=RECIPE + "; LoRA on attention qkv/proj, base frozen",
    )  # fmt: skip
    return record


def _select(
    grid: list[Hparams],
    val_logits: torch.Tensor,
    val_labels: torch.Tensor,
    test_logits: torch.Tensor,
    sets: ProbeSets,
) -> dict:
    """The grid member with the best validation top-1 (first in grid order on ties), scored on
    the test split."""
    val_acc = topk_accuracy(val_logits, val_labels, 1)
    best = max(range(len(grid)), key=lambda g: (val_acc[g], -g))
    test_labels = sets.test_labels.to(test_logits.device)
    return {
        "top1": topk_accuracy(test_logits[best : best + 1], test_labels, 1)[0],
        "top5": topk_accuracy(test_logits[best : best + 1], test_labels, 5)[0],
        "val_accuracy": val_acc[best],
        "num_train": len(sets.fit_index),
        "num_val": len(sets.val_index),
        "num_test": len(sets.test_labels),
        "num_classes": sets.num_classes,
        "hparams": {
            "lr": grid[best].lr,
            "weight_decay": grid[best].weight_decay,
            "grid": [
                {"lr": hp.lr, "weight_decay": hp.weight_decay, "val_accuracy": acc}
                for hp, acc in zip(grid, val_acc, strict=True)
            ],
        },
    }


def _device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ProbeError("probe device=cuda but no CUDA device is visible; use device=cpu")
    return torch.device(name)
