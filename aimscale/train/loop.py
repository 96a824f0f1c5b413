"""`train(cfg)`: pre-train one AIM run into its run directory, resumably.

One optimiser step consumes `train.batch_size` images: every rank draws `micro_batch_size`
images per micro-step, `batch_size / (micro_batch_size · world_size)` times, accumulating
gradients. The loss is token-weighted over the whole global batch (each micro-batch's gradient
is weighted by its number of scored patches), so splitting a batch over ranks or micro-steps does
not change the maths.

Randomness: before each micro-batch the global RNG is seeded from (seed, step), the same on every
rank and micro-step; the model draws prefix lengths (or MIM masks) for the whole global batch and
keeps the rows of its own samples (`sample_index`: the data stream gives rank r the positions
r, r + W, r + 2W, … of each micro-step's W·micro chunk). A batch split over ranks or micro-steps
therefore sees exactly the draws of the unsplit batch, and a resumed run repeats the draws of an
uninterrupted one without relying on where the RNG stream stood. The data stream is a pure
function of its position (see `aimscale.data.stream`), which every checkpoint stores.

Files (docs/ARCHITECTURE.md, "Run directory"): only rank 0 writes, holding the run directory's
lock (`aimscale.train.rundir`); every other rank only reads checkpoints, except that under
`train.strategy=fsdp` (`aimscale.train.fsdp`) every rank writes its own shards of each checkpoint.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from aimscale.config import RunConfig
from aimscale.train import branches, distributed, rundir
from aimscale.train import checkpoint as ckpt
from aimscale.train.distributed import DistEnv
from aimscale.train.evaluate import validation_loss
from aimscale.train.metrics import METRICS_FILE, MetricsWriter, read_metrics
from aimscale.train.mfu import median_throughput, throughput_fields
from aimscale.train.optim import build_optimizer, set_lr
from aimscale.train.progress import Progress
from aimscale.train.rundir import RunRefused
from aimscale.train.runstate import (
    RunStatus,
    clear_error,
    resolve_run_dir,
    write_error,
    write_summary,
)

PREPARE_SEED_OFFSET = 7919  # the images for AIM.prepare come from their own stream


class Diverged(RuntimeError):
    """The loss or the gradient norm became NaN or infinite."""


def train(cfg: RunConfig, stop_requested: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Train (or resume) the run of `cfg`; return its summary.

    Rank 0 first claims the run directory (`aimscale.train.rundir`: lock, recognise, check the
    config and the files) for the life of the call; a refusal raises `RunRefused` on every rank
    before anything is trained. If `summary.json` exists the run is done and its summary is
    returned without training. When `stop_requested()` turns true (checked after every step, on
    every rank; pass the same kind of callable on all ranks) a checkpoint is saved, status.json
    says `stopped`, and `{"status": "stopped", "step": k}` is returned; calling `train` again
    resumes. A NaN/inf loss raises `Diverged` after recording the failure in status.json and
    error.txt; other errors are recorded the same way and re-raised.
    """
    from aimscale.train.support import unsupported

    if unsupported(cfg.train):  # the CLI refuses these with exit 2; a job fails here, unwritten
        raise NotImplementedError("; ".join(unsupported(cfg.train)))
    run_dir = resolve_run_dir(cfg)
    env = distributed.setup(cfg.train.device)
    lock = None
    try:
        lock, done = _claim(env, run_dir, cfg)
        if done is not None:
            return done
        return _Trainer(cfg, run_dir, env, stop_requested).run()
    finally:
        if lock is not None:
            lock.release()
        distributed.teardown(env)


def _claim(env: DistEnv, run_dir: Path, cfg: RunConfig):
    """Rank 0 claims the run directory and tells the other ranks the outcome: every rank returns
    (the lock on rank 0, else None; the summary if done) or raises the same refusal."""
    lock = outcome = None
    if env.is_main:
        try:
            lock, summary = rundir.claim(run_dir, cfg)
        except Exception as err:
            if env.distributed:  # the other ranks wait for rank 0's outcome
                refused = isinstance(err, RunRefused)
                outcome = ("refused", str(err)) if refused else ("failed", repr(err))
                distributed.all_gather_objects(env, outcome)
            raise
        outcome = ("claimed", summary)
    kind, value = distributed.all_gather_objects(env, outcome)[0]
    if kind == "refused":
        raise RunRefused(value)
    if kind == "failed":
        raise RuntimeError(f"rank 0 could not claim {run_dir}: {value}")
    return lock, value


def _micro_seed(seed: int, step: int, index: int) -> int:
    digest = hashlib.blake2b(f"{seed}/{step}/{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1  # manual_seed takes < 2**63


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    model = getattr(model, "_orig_mod", model)  # torch.compile
    return getattr(model, "module", model)  # DistributedDataParallel


class _Trainer:
    def __init__(self, cfg: RunConfig, run_dir: Path, env: DistEnv, stop_requested):
        self.cfg, self.run_dir, self.env = cfg, run_dir, env
        self.stop_requested = stop_requested
        self.total = cfg.train.steps
        world = env.world_size
        self.micro = cfg.train.micro_batch_size or cfg.train.batch_size // world
        if cfg.train.batch_size % (self.micro * world):
            raise RunRefused(
                f"train.batch_size={cfg.train.batch_size} is not a multiple of micro_batch_size "
                f"× world_size = {self.micro} × {world}; change one of them"
            )
        self.accum = cfg.train.batch_size // (self.micro * world)
        self.fsdp = cfg.train.strategy == "fsdp"  # [fsdp] sharded model, DCP checkpoints
        if self.env.is_main:  # which code, packages, host and job this start runs
            from aimscale.provenance import write_provenance

            write_provenance(self.run_dir)

    # ---- set-up --------------------------------------------------------------------------

    def _autocast(self):
        precision = self.cfg.train.precision
        if precision == "auto":
            precision = "bf16" if self.env.device.type == "cuda" else "fp32"
        if precision == "fp32":
            return nullcontext()
        return torch.autocast(self.env.device.type, dtype=torch.bfloat16)

    def _build(self) -> None:
        from aimscale.data import build_pretrain_data, build_val_images
        from aimscale.flops import flops_per_image, param_counts
        from aimscale.model import AIM

        cfg, env = self.cfg, self.env
        torch.manual_seed(cfg.train.seed)  # the same initial weights on every rank
        self.model = AIM(cfg.model).to(env.device)
        if cfg.train.activation_checkpointing:
            from aimscale.train.act_ckpt import apply_activation_checkpointing

            apply_activation_checkpointing(self.model)
        if self.fsdp:  # [fsdp] shard before the optimiser is built over the parameters
            from aimscale.train.fsdp import shard_model

            shard_model(self.model, env, cfg.train.precision)
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.data = build_pretrain_data(
            cfg.data, cfg.model, cfg.train.seed, env.rank, env.world_size
        )
        self.val_images = None
        if cfg.train.eval_images > 0:
            self.val_images = build_val_images(cfg.data, cfg.model, cfg.train.eval_images)
        self.flops_per_image = flops_per_image(cfg.model)
        self.params = param_counts(cfg.model)
        self.peak_flops = None
        if env.is_main:  # only rank 0 writes rows
            from aimscale.train.mfu import device_peak

            self.peak_flops, source = device_peak(env.device, cfg.train.precision,
                                                  cfg.train.peak_flops)
            self.peak_source = source

    def _prepare(self) -> None:
        """Fit what the objective needs (k-means codebook) on training images from their own
        deterministic stream; identical on every rank."""
        from aimscale.data import build_pretrain_data

        n = self.cfg.train.prepare_images
        if n == 0:
            return
        stream = build_pretrain_data(
            self.cfg.data, self.cfg.model, self.cfg.train.seed + PREPARE_SEED_OFFSET
        )
        try:
            self.model.prepare(stream.next_batch(n))
        finally:
            stream.close()

    def _resume(self) -> tuple[int, int, float]:
        """Load the newest good checkpoint (chosen by rank 0); return (step, metrics offset,
        elapsed seconds). A fresh run prepares the model and starts at 0."""
        path = ckpt.latest_checkpoint(self.run_dir) if self.env.is_main else None
        path = distributed.all_gather_objects(self.env, path)[0]
        if self.env.is_main:
            for moved in ckpt.quarantine_unreadable(self.run_dir, self._step_of(path)):
                self.progress.message(f"unreadable checkpoint set aside as {moved}")
        # cooldown branch (aimscale/train/branches.py): its first start loads the trunk's
        # checkpoint at the branch point, and its metrics start as the trunk's up to there
        branch_start = path is None and self.cfg.branch.active
        if branch_start:
            path = branches.trunk_checkpoint(self.cfg, self.run_dir)
        if path is None:
            self._prepare()
            return 0, 0, 0.0
        state = ckpt.restore_checkpoint(path, self.model, self.optimizer)  # [fsdp] either format
        self.data.load_state_dict(self._my_data_state(state))
        torch.set_rng_state(state["rng"]["torch_cpu"])
        if self.env.device.type == "cuda" and state["rng"].get("torch_cuda"):
            torch.cuda.set_rng_state_all(state["rng"]["torch_cuda"])
        offset = int(state["metrics_offset"])
        if branch_start and self.env.is_main:
            offset = branches.start_metrics(self.cfg, self.run_dir, offset)
        return int(state["step"]), offset, float(state["elapsed_s"])

    @staticmethod
    def _step_of(path: Path | None) -> int:
        return -1 if path is None else int(Path(path).stem.split("_")[1])

    def _my_data_state(self, state: dict) -> dict:
        ranks = state["data_ranks"]
        if len(ranks) == self.env.world_size:
            return ranks[self.env.rank]
        # another world size: positions are global, only the per-rank skip counts differ
        total_skipped = sum(r["skipped"] for r in ranks)
        return {**ranks[0], "skipped": total_skipped if self.env.is_main else 0}

    # ---- the loop ------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        cfg, env = self.cfg, self.env
        main = env.is_main
        self.progress = Progress(cfg.logging.progress, self.total, 0, enabled=main)
        self.status = RunStatus.begin(self.run_dir, self.total) if main else None
        self.writer = self.wandb = None
        step = 0
        try:
            self._build()
            step, metrics_offset, self.elapsed_before = self._resume()
            if main:
                self.writer = MetricsWriter(self.run_dir / METRICS_FILE, truncate_to=metrics_offset)
                self.status.write("running", step)
                if cfg.logging.wandb and step < self.total:
                    from aimscale.train.wandb_mirror import WandbMirror

                    self.wandb = WandbMirror(cfg, self.run_dir)
            self.progress.step(step)
            return self._loop(step)
        except Diverged as err:
            self._fail(str(err), None)
            raise
        except KeyboardInterrupt:
            if main:
                self.status.write("stopped", self._last_step, reason="interrupted")
            raise
        except BaseException as err:
            self._fail(f"{type(err).__name__}: {err}", err)
            raise
        finally:
            self.ddp = None  # it holds the process group, which teardown frees
            self.progress.close()
            if getattr(self, "data", None) is not None:
                self.data.close()
            if self.writer is not None:
                self.writer.close()
            if self.wandb is not None:
                self.wandb.finish()

    _last_step = 0

    def _fail(self, reason: str, err: BaseException | None) -> None:
        if self.env.is_main and self.status is not None:
            write_error(self.run_dir, reason, err)
            self.status.write("failed", self._last_step, reason=reason.splitlines()[0][:500])
            if self.wandb is not None:
                self.wandb.finish(exit_code=1)
                self.wandb = None

    def _loop(self, step: int) -> dict[str, Any]:
        cfg, env = self.cfg, self.env
        model: torch.nn.Module = self.model
        self.ddp = None
        if env.distributed and not self.fsdp:  # [fsdp] FSDP reduces the gradients itself
            device_ids = [env.device] if env.device.type == "cuda" else None
            # buffers (codebook, orders) are identical on every rank by construction
            model = self.ddp = DistributedDataParallel(
                model, device_ids=device_ids, broadcast_buffers=False
            )
        if cfg.train.compile:
            model = torch.compile(model)
        model.train()
        params = [p for p in self.model.parameters() if p.requires_grad]
        kept = cfg.train.kept_steps()
        self._last_step = step
        lr_of = branches.lr_schedule(cfg)  # a branch cools down from its branch point
        self.started = time.perf_counter()
        last_row_time, last_row_step = self.started, step
        while step < self.total:
            lr = lr_of(step)
            loss, grad_norm, skipped = self._step(model, params, step, lr)
            step += 1
            self._last_step = step
            self.progress.step(step)
            evaluate = self.val_images is not None and (
                step % cfg.train.eval_every == 0 or step == self.total
            )
            if step % cfg.train.log_every == 0 or step == self.total or evaluate:
                self._check_finite()
                now = time.perf_counter()
                row = self._row(
                    step, lr, loss, grad_norm, skipped, now, last_row_time, last_row_step
                )
                if evaluate:
                    row["val_loss"] = validation_loss(
                        self.model, self.val_images, env, self._autocast, lockstep=self.fsdp
                    )
                last_row_time, last_row_step = now, step
                self._log(row)
            stop = self.stop_requested is not None and distributed.any_rank(
                env, bool(self.stop_requested())
            )
            if (
                step % cfg.train.checkpoint_every == 0
                or step == self.total
                or step in kept
                or (stop and step < self.total)
            ):
                self._save(step, kept)
            if stop and step < self.total:
                if env.is_main:
                    self.status.write("stopped", step, reason="stop requested")
                    self.progress.message(f"stopped at step {step}; run again to resume")
                return {"status": "stopped", "step": step}
        return self._finish(step)

    def _step(self, model, params, step: int, lr: float) -> tuple[float, float, int]:
        """One optimiser step over the global batch; returns (loss, grad norm, skipped)."""
        env = self.env
        set_lr(self.optimizer, lr)
        loss_sum = torch.zeros((), dtype=torch.float64, device=env.device)
        targets = 0
        for micro_step in range(self.accum):
            images = self.data.next_batch(self.micro).to(env.device, non_blocking=True)
            torch.manual_seed(_micro_seed(self.cfg.train.seed, step, 0))
            chunk = self.micro * env.world_size
            sample_index = micro_step * chunk + env.rank + env.world_size * torch.arange(
                self.micro
            )
            last = micro_step == self.accum - 1
            # DDP all-reduces on the last micro-step only
            sync = self.ddp.no_sync() if self.ddp is not None and not last else nullcontext()
            with sync:
                with self._autocast():
                    out = model(images, sample_index, self.cfg.train.batch_size)
                # sum of per-patch losses: normalised by the global target count below
                weighted = out["loss"].float() * out["num_targets"]
                weighted.backward()
            loss_sum += weighted.detach().double()
            targets += out["num_targets"]
        # the scalars stay tensors on the device: no host sync on the hot path; they are read
        # at log steps (`_row`) and the finiteness flag before a row or a checkpoint is written
        loss_sum, total_targets, skipped = distributed.all_reduce_sum_tensor(
            env, loss_sum, [targets, self.data.skipped]
        )
        # DDP averaged the gradient sums over ranks; turn them into the token-weighted mean
        scale = env.world_size / total_targets
        grads = [p.grad for p in params if p.grad is not None]
        torch._foreach_mul_(grads, scale)
        max_norm = self.cfg.optim.grad_clip if self.cfg.optim.grad_clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        if self.fsdp:  # [fsdp] the global norm over the sharded gradients, as a plain tensor
            from aimscale.train.fsdp import local_value

            grad_norm = local_value(grad_norm)
        loss = loss_sum / total_targets
        self._track_finite(step + 1, loss, grad_norm, lr)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss, grad_norm, skipped

    _bad = None  # [first non-finite step or -1, its loss, its grad norm], on the device

    def _track_finite(self, step: int, loss, grad_norm, lr: float) -> None:
        if self._bad is None:
            self._bad = torch.tensor([-1.0, 0.0, 0.0], dtype=torch.float64, device=loss.device)
            self._bad_lr: dict[int, float] = {}
        bad = ~(torch.isfinite(loss) & torch.isfinite(grad_norm)) & (self._bad[0] < 0)
        values = torch.stack([  # torch.full: a fill kernel, no host-to-device copy
            torch.full((), float(step), dtype=torch.float64, device=loss.device),
            loss.double(), grad_norm.double()])
        self._bad = torch.where(bad, values, self._bad)
        self._bad_lr[step] = lr  # a few floats per step, cleared at each check

    def _check_finite(self) -> None:
        """Raise Diverged (with the first bad step) if a loss or gradient norm was NaN/inf."""
        if self._bad is None:
            return
        bad_step, loss, grad_norm = self._bad.tolist()  # syncs: log and checkpoint steps only
        lrs, self._bad_lr = self._bad_lr, {}
        if bad_step >= 0:
            step = int(bad_step)
            self._last_step = step - 1  # the last step whose update was finite
            raise Diverged(
                f"training diverged at step {step}: loss={loss}, grad_norm={grad_norm} "
                f"(lr={lrs.get(step, float('nan')):.3g}); lower optim.lr or raise "
                "optim.warmup_fraction"
            )

    # ---- records -------------------------------------------------------------------------

    def _row(self, step, lr, loss, grad_norm, skipped, now, last_time, last_step) -> dict:
        images = step * self.cfg.train.batch_size
        interval_images = (step - last_step) * self.cfg.train.batch_size
        images_per_s = interval_images / max(now - last_time, 1e-9)
        return {
            "step": step,
            "images_seen": images,
            "patches_seen": images * self.cfg.model.num_patches,
            "flops": images * self.flops_per_image,
            "lr": lr,
            "loss": float(loss),  # device scalars: read here, at log steps only
            "grad_norm": float(grad_norm),
            "skipped_images": int(skipped),
            "time_s": round(self._elapsed(now), 3),
            "images_per_s": round(images_per_s, 2),
            **throughput_fields(self.flops_per_image, images_per_s, self.peak_flops,
                                self.env.world_size),
        }

    def _elapsed(self, now: float | None = None) -> float:
        now = time.perf_counter() if now is None else now
        return self.elapsed_before + (now - self.started)

    def _log(self, row: dict) -> None:
        if not self.env.is_main:
            return
        self.writer.write(row)
        self.status.write("running", row["step"])
        self.progress.row(row)
        if self.wandb is not None:
            self.wandb.log(row)

    def _save(self, step: int, kept: list[int]) -> None:
        self._check_finite()  # never checkpoint diverged weights
        data_ranks = distributed.all_gather_objects(self.env, self.data.state_dict())
        rng = {"torch_cpu": torch.get_rng_state()}
        if self.env.device.type == "cuda":
            rng["torch_cuda"] = torch.cuda.get_rng_state_all()
        rng_ranks = distributed.all_gather_objects(self.env, rng)
        # [fsdp] every rank writes its shards; rank 0 alone the rest of the state
        sharded = (self.model, self.optimizer) if self.fsdp else None
        if not self.env.is_main:
            if sharded is not None:
                ckpt.save_checkpoint(self.run_dir, step, None, 0, (), sharded=sharded)
            return
        state = {
            "scheduler": {"step": step, "total_steps": self.total},  # lr_at(step) is the rest
            "rng": rng,
            "rng_ranks": rng_ranks,
            "data": data_ranks[0],
            "data_ranks": data_ranks,
            "metrics_offset": self.writer.offset(),
            "elapsed_s": self._elapsed(),
        }
        if sharded is None:
            state["model"] = self.model.state_dict()
            state["optimizer"] = self.optimizer.state_dict()
        ckpt.save_checkpoint(self.run_dir, step, state, self.cfg.train.keep_checkpoints, kept,
                             sharded=sharded)

    def _finish(self, step: int) -> dict[str, Any]:
        """Write summary.json (last) from metrics.jsonl, the authoritative record."""
        if not self.env.is_main:
            return distributed.all_gather_objects(self.env, None)[0]
        rows = read_metrics(self.run_dir / METRICS_FILE)
        last = rows[-1]
        val = [r["val_loss"] for r in rows if "val_loss" in r]
        images = last["images_seen"]
        summary = {
            "status": "done",
            "final_loss": last["loss"],
            "final_val_loss": last.get("val_loss"),
            "best_val_loss": min(val) if val else None,
            "trunk_params": self.params.trunk,
            "head_params": self.params.head,
            "flops_per_image": self.flops_per_image,
            "total_flops": last["flops"],
            "images_seen": images,
            "patches_seen": last["patches_seen"],
            "steps": step,
            "wall_time_s": last["time_s"],
            "skipped_images": last["skipped_images"],
            **median_throughput(rows),
            **branches.summary_fields(self.cfg, self.flops_per_image),  # {} unless a branch
        }
        self.status.write("done", step)
        clear_error(self.run_dir)
        if self.wandb is not None:
            self.wandb.summary(summary)
        write_summary(self.run_dir, summary)
        self.progress.message(
            f"done: {step} steps, final loss {summary['final_loss']:.4f}"
            + (f", val loss {summary['final_val_loss']:.4f}" if val else "")
        )
        distributed.all_gather_objects(self.env, summary)  # the other ranks return it too
        return summary
