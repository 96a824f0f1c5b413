"""Probe a pre-trained run: checkpoints × block windows × kinds -> RUN_DIR/probe/<name>.json.

Everything that can be wrong (no run, no checkpoint, a block window out of range, unusable data)
is checked before any training. Per checkpoint, images stream through the frozen trunk in
batches (`stream.py`); from each batch the whole learning-rate × weight-decay grid of every
window and kind trains at once (`fit_grids`); validation (grid member selection) and test are
streamed too. Memory does not grow with the data set. Between epochs the features come from an
fp16 store on disk or from the trunk again (`cache.py`). LoRA: one grid member after another,
since the trunk itself changes.

Result names: `<kind>_<window>` (`attentive_last`, `linear_best`, `attentive_blocks2-3`), with
`_step<k>` appended when a checkpoint is chosen explicitly (`--checkpoint` / `--fractions`).
A given `name` is used as is for a single result and as a prefix (`<name>_<default>`) otherwise.
Baselines (`features: untrained | pixels`, see `features.py`) need no checkpoint (step 0) and
are named `<features>_<kind>_<window>` (`pixels_linear_last`); the window of a pixels result
only says which trunk protocol it mirrors.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from aimscale.atomic import atomic_write_json
from aimscale.jsonfiles import UnreadableFileError, read_json
from aimscale.probe.cache import feature_streams
from aimscale.probe.config import ProbeConfig, ProbeError, probe_config
from aimscale.probe.data import ProbeSets, open_sets, stream_images
from aimscale.probe.features import PixelPatches, build_untrained_trunk, load_trunk
from aimscale.probe.fit import (
    GridFit,
    Hparams,
    batches,
    epoch_generator,
    fit_grids,
    make_grid,
    topk_correct,
)
from aimscale.probe.heads import AttentiveHeads, LinearHeads
from aimscale.probe.stream import FeatureStream
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
    if cfg.features != "trunk":  # a baseline: the trunk at step 0, or no trunk
        return Plan(run_dir, run_cfg, [0], False, windows)
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
    single = len(cfg.kinds) * len(plan.windows) * len(plan.steps) == 1
    name = default if cfg.name is None else cfg.name if single else f"{cfg.name}_{default}"
    return name if cfg.features == "trunk" else f"{cfg.features}_{name}"  # never a trunk's name


def run_probes(
    run_dir: str | Path, cfg: ProbeConfig | dict, skip_existing: bool = False, env=None
) -> list[dict]:
    """Run every probe `cfg` names on `run_dir`; write (rank 0) and return one result dict each.

    All block windows and head kinds of a checkpoint train together from one stream of trunk
    batches. `skip_existing`: a result file already made by the same request is kept (and
    returned) instead of being recomputed. `env` (a DistEnv) shares the trunk's work between the
    ranks of a probe job (`probe_run` sets it up); by default this process works alone.
    """
    cfg = probe_config(cfg) if isinstance(cfg, dict) else cfg
    plan = plan_probes(run_dir, cfg)
    sets = open_sets(cfg, plan.run_cfg.model)
    env = env or _alone(_device(cfg.device))
    results = []
    for step in plan.steps:
        jobs = [(kind, window) for window in plan.windows for kind in cfg.kinds]
        records = {}
        if skip_existing:
            for job in jobs:
                kept = _existing(plan, cfg, *job, step)
                if kept is not None:
                    records[job] = kept
        todo = [job for job in jobs if job not in records]
        if todo:
            trunk = _LazyTrunk(plan.run_dir, step, env.device, cfg.features, plan.run_cfg)
            start = time.perf_counter()
            heads_jobs = [job for job in todo if job[0] != "lora"]
            fresh = _head_probes(cfg, sets, trunk, heads_jobs, plan, env) if heads_jobs else {}
            for job in todo:
                if job[0] == "lora":
                    lora_start = time.perf_counter()
                    fresh[job] = (_lora_probe(cfg, sets, trunk(), job[1], plan, env), 0.0)
                    fresh[job][0]["wall_time_s"] = round(time.perf_counter() - lora_start, 3)
            wall = round(time.perf_counter() - start, 3)
            for (kind, window), (record, feature_s) in fresh.items():
                record.update(
                    name=result_name(cfg, kind, window, step, plan),
                    kind=kind,
                    dataset=cfg.dataset,
                    step=step,
                    train_steps=plan.run_cfg.train.steps,
                    blocks=None if cfg.features == "pixels" else window.span,
                    window=window.label,
                    features=cfg.features,
                    seed=cfg.seed,
                    request=_request(cfg, kind, window, step),
                    feature_time_s=round(feature_s, 3),
                )
                record.setdefault("wall_time_s", wall)  # heads trained together share it
                if env.rank == 0:
                    atomic_write_json(plan.run_dir / "probe" / f"{record['name']}.json", record)
                records[(kind, window)] = record
        results += [records[job] for job in jobs]
    return results


def probe_run(
    run_dir: str | Path, probe_cfg: ProbeConfig | dict, skip_existing: bool = True
) -> list[dict]:
    """The entry point of a probe job: everything `probe_cfg` asks of the run in `run_dir`.

    Self-contained: loads the checkpoint, streams the data, writes RUN_DIR/probe/<name>.json
    atomically, and keeps results already made by the same request (so a rerun or a requeued
    job redoes only what is missing). Started with several ranks (torchrun, or a submitit job
    of N tasks), the ranks share the trunk's work (see `aimscale.probe.stream`); rank 0 writes.
    Bad input is a ProbeError on every rank before anything is computed.
    """
    from aimscale.train.distributed import setup, teardown

    cfg = probe_config(probe_cfg) if isinstance(probe_cfg, dict) else probe_cfg.check()
    _device(cfg.device)  # a ProbeError, not a RuntimeError, when CUDA is asked for but absent
    plan_probes(run_dir, cfg)  # bad input stops every rank before any process group forms
    env = setup(cfg.device)
    try:
        return run_probes(run_dir, cfg, skip_existing=skip_existing, env=env)
    finally:
        teardown(env)


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
    """Loads the checkpoint's trunk on first use (not at all when every feature is cached); for
    a baseline, builds the step-0 trunk or the pixel patcher instead (no checkpoint)."""

    def __init__(self, run_dir: Path, step: int, device: torch.device,
                 features: str = "trunk", run_cfg=None):
        self.run_dir, self.step, self.device = run_dir, step, device
        self.features, self.run_cfg = features, run_cfg
        if features == "trunk":
            stat = checkpoint_path(run_dir, step).stat()
            self.identity = {"step": step, "mtime_ns": stat.st_mtime_ns, "bytes": stat.st_size}
        else:  # a function of the config alone
            self.identity = {"step": step, "features": features, "seed": run_cfg.train.seed}
        self._trunk = None

    def __call__(self) -> torch.nn.Module:
        if self._trunk is None:
            if self.features == "pixels":
                self._trunk = PixelPatches(self.run_cfg.model.patch_size, self.device)
            elif self.features == "untrained":
                self._trunk = build_untrained_trunk(self.run_cfg.model, self.run_cfg.train.seed,
                                                    self.device)
            else:
                self._trunk = load_trunk(self.run_dir, self.step, self.device)
        return self._trunk


def feature_model(features: str, model):
    """The ModelConfig the streams and heads see: the run's, or for `pixels` one whose width is
    a patch's C·p·p values (the token width) and whose heads divide it (gcd with the run's)."""
    if features != "pixels":
        return model
    import math

    width = model.channels * model.patch_size**2
    return replace(model, width=width, heads=math.gcd(model.heads, width))


def _head_probes(cfg, sets, trunk, jobs, plan, env) -> dict:
    """Attentive / linear probes of several windows, trained together from each batch of one
    feature stream: {(kind, window): (record, trunk seconds)}."""
    model = feature_model(cfg.features, plan.run_cfg.model)
    windows = [w for w in plan.windows if any(w == window for _, window in jobs)]
    grid = make_grid(cfg.lrs, cfg.weight_decays)
    flat = cfg.features == "pixels"  # the linear probe of pixels sees every pixel, not the mean
    fits = []
    for kind, _ in jobs:
        init = torch.Generator().manual_seed(cfg.seed + 1)  # every probe starts alike
        if kind == "attentive":
            heads = AttentiveHeads(len(grid), model.width, model.heads, sets.num_classes, init)
        else:
            width = model.width * (model.num_patches if flat else 1)
            heads = LinearHeads(len(grid), width, sets.num_classes, init)
        fits.append(GridFit(heads.to(env.device), grid))
    slots = [(windows.index(window), kind == "linear") for kind, window in jobs]

    def pool(x: torch.Tensor) -> torch.Tensor:  # [B, K, D] -> [B, D] (pixels: [B, K·D])
        return x.flatten(1) if flat else x.mean(1)

    def inputs(feats: torch.Tensor) -> list[torch.Tensor]:  # [W, B, K, D] -> one per grid
        return [pool(feats[w]) if pooled else feats[w] for w, pooled in slots]

    with feature_streams(cfg, sets, model, windows, trunk, env, plan) as (train, test, cache):
        n_fit = len(sets.fit_positions)

        def epoch_batches(epoch: int):
            order = batches(n_fit, cfg.batch_size, epoch_generator(cfg.seed, epoch))
            for feats, labels in train(sets.fit_positions[b.numpy()] for b in order):
                yield inputs(feats), labels

        fit_grids(fits, epoch_batches, cfg.epochs, len(batches(n_fit, cfg.batch_size)))
        heads = [fit.heads for fit in fits]
        val = evaluate(heads, inputs, train, sets.val_positions, cfg.batch_size)
        test_counts = evaluate(heads, inputs, test, np.arange(len(sets.test)), cfg.batch_size)
        seconds = train.seconds + test.seconds
    out = {}
    for i, job in enumerate(jobs):
        record = _select(grid, val[i], test_counts[i], sets)
        record["hparams"].update(epochs=cfg.epochs, batch_size=cfg.batch_size, recipe=RECIPE)
        record["stream"] = {"cache": cache, "ranks": env.world_size}
        out[job] = (record, seconds)
    return out


def _lora_probe(cfg, sets, trunk, window, plan, env) -> dict:
    """LoRA: one grid member after another (the trunk changes). Runs on each rank alone (the
    adapters' gradients are not exchanged), so several ranks repeat the same work."""
    from aimscale.probe.lora import finetune_lora

    model = plan.run_cfg.model
    alone = _alone(env.device)
    grid = make_grid(cfg.lrs, cfg.weight_decays)
    fit, n_fit = sets.fit, len(sets.fit)

    def image_batches(epoch: int):
        order = batches(n_fit, cfg.batch_size, epoch_generator(cfg.seed, epoch))
        for images, labels, _ in stream_images(fit, [b.numpy() for b in order], model):
            yield images, labels

    val, test = [], []
    for i, hp in enumerate(grid):
        gen = torch.Generator().manual_seed(cfg.seed + 3 + i)
        tuned, head = finetune_lora(
            trunk, window.blocks, hp, image_batches, len(batches(n_fit, cfg.batch_size)),
            sets.num_classes, model.heads, cfg.lora_rank, cfg.lora_epochs, gen,
        )  # fmt: skip
        for split, positions, counts in (
            (sets.train, sets.val_positions, val),
            (sets.test, np.arange(len(sets.test)), test),
        ):
            stream = FeatureStream(split, model, [window], lambda tuned=tuned: tuned, alone)
            counts.append(evaluate([head], lambda f: [f[0]], stream, positions, cfg.batch_size)[0])
    record = _select(grid, _stack(val), _stack(test), sets)
    record["hparams"].update(
        epochs=cfg.lora_epochs, batch_size=cfg.batch_size, lora_rank=cfg.lora_rank,
        recipe=RECIPE + "; LoRA on attention qkv/proj, base frozen",
    )  # fmt: skip
    record["stream"] = {"cache": "none", "ranks": 1}
    return record


@torch.no_grad()
def evaluate(heads_list, inputs, stream, positions: np.ndarray, batch_size: int) -> list[dict]:
    """Per grid of heads: {"top1": correct [G], "top5": correct [G], "n": images} over
    `positions`, streamed in order (eval mode: BatchNorm running statistics)."""
    counts = [{"top1": 0, "top5": 0, "n": 0} for _ in heads_list]
    chunks = [positions[i : i + batch_size] for i in range(0, len(positions), batch_size)]
    for feats, labels in stream(chunks):
        if not len(labels):
            continue
        for heads, x, c in zip(heads_list, inputs(feats), counts, strict=True):
            logits = heads.eval()(x)
            c["top1"] = c["top1"] + topk_correct(logits, labels, 1).cpu()
            c["top5"] = c["top5"] + topk_correct(logits, labels, 5).cpu()
            c["n"] += len(labels)
    return counts


def _stack(counts: list[dict]) -> dict:
    """Single-head counts of several grid members -> one count dict over the grid."""
    return {
        "top1": torch.cat([c["top1"] for c in counts]),
        "top5": torch.cat([c["top5"] for c in counts]),
        "n": counts[0]["n"],
    }


def _select(grid: list[Hparams], val: dict, test: dict, sets: ProbeSets) -> dict:
    """The grid member with the best validation top-1 (first in grid order on ties), scored on
    the test split."""
    if not val["n"] or not test["n"]:
        raise ProbeError("no validation or test image of the probe could be decoded")
    val_acc = [c / val["n"] for c in torch.as_tensor(val["top1"]).tolist()]  # exact fractions
    best = max(range(len(grid)), key=lambda g: (val_acc[g], -g))
    return {
        "top1": int(test["top1"][best]) / test["n"],
        "top5": int(test["top5"][best]) / test["n"],
        "val_accuracy": val_acc[best],
        "num_train": len(sets.fit_positions),
        "num_val": val["n"],
        "num_test": test["n"],
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


def _request(cfg: ProbeConfig, kind: str, window: Window, step: int) -> dict:
    """What a result depends on: a result file with the same request is not redone."""
    request = {
        "kind": kind, "dataset": cfg.dataset, "blocks": window.span, "step": step,
        "lrs": [float(x) for x in cfg.lrs], "weight_decays": [float(x) for x in cfg.weight_decays],
        "epochs": cfg.epochs, "batch_size": cfg.batch_size, "val_fraction": cfg.val_fraction,
        "seed": cfg.seed, "limit_train": cfg.limit_train, "limit_test": cfg.limit_test,
    }  # fmt: skip
    if cfg.features != "trunk":  # absent for trunk probes: their earlier results still match
        request["features"] = cfg.features
    if kind == "lora":
        request.update(lora_rank=cfg.lora_rank, lora_epochs=cfg.lora_epochs)
    return request


def _existing(plan: Plan, cfg: ProbeConfig, kind: str, window: Window, step: int) -> dict | None:
    path = plan.run_dir / "probe" / f"{result_name(cfg, kind, window, step, plan)}.json"
    try:
        record = read_json(path)
    except UnreadableFileError:
        return None  # damaged: made again
    if isinstance(record, dict) and record.get("request") == _request(cfg, kind, window, step):
        return record
    return None


def _alone(device: torch.device):
    from aimscale.train.distributed import DistEnv

    return DistEnv(rank=0, world_size=1, local_rank=0, device=device, owns_group=False)


def _device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ProbeError("probe device=cuda but no CUDA device is visible; use device=cpu")
    return torch.device(name)
