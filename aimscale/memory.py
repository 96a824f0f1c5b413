"""Memory per GPU of a training run, in closed form from its config (no torch, no weights).

    total = parameters + gradients + optimiser state + buffers + activations

Model state, N parameters (trunk + head), AdamW with fp32 master weights and two fp32 moments:
- `ddp`: every rank holds everything: 4N weights + 4N gradients + 8N moments = 16 B/param, plus
  DDP's flat gradient buckets (4N, `gradient_as_bucket_view` is off) when there is more than one
  rank, plus the bf16 copies autocast makes of the weights for the forward and keeps for the
  backward (2N) under bf16.
- `fsdp` (FSDP2, bf16 params and fp32 reduction): the 16 B/param are sharded over the W ranks;
  on top, the gathered bf16 weights of the unit in use and of the prefetched next one (2 × 2 B ×
  the largest unit) and that unit's fp32 gradient before its reduce-scatter (4 B × unit). Units
  are the trunk blocks, the head blocks and the root (everything else).

Activations kept for the backward at the micro-batch b, sequence s = patches, width h, heads a,
MLP ratio r, e bytes per activation (2 under bf16 autocast, 4 in fp32), per trunk block
(Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models",
§4.1, without its dropout masks since AIM has no dropout):
    e·s·b·h·(8 + 2r)  [qkv input, q, k, v, proj input, fc1 input, GELU input, fc2 input, 2 LN]
(e = 2, r = 4: 32·s·b·h, the paper's 34 less its two dropout masks). Its 5·a·s²·b attention
term is gone: `scaled_dot_product_attention` runs fused (flash / memory-efficient) kernels, on
CPU too, which keep a logsumexp per row instead of the s×s matrix (`fused_attention=False` adds
the softmax output back, e·a·s²·b, for the math kernel). With activation checkpointing
(aimscale/train/act_ckpt.py, trunk blocks only) a block keeps only its fp32 input (4·s·b·h) and
one block at a time is recomputed in full. The MLP head keeps e·s·b·w·(2 + 2·4) per block
(+ e·s·b·w for the l3m LayerNorm), plus the fp32 predictions and targets of the loss. A real
fp32 forward on CPU saves within 3% of this (tests/sweep/test_memory.py, test_act_ckpt.py).
Excluded: the CUDA context, NCCL buffers, allocator fragmentation and temporaries — `fits`
leaves `HEADROOM` of the GPU for them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from aimscale.flops import _block_params, _mlp_hidden, _out_dim, param_counts
from aimscale.model.config import ModelConfig
from aimscale.train.config import TrainConfig

GB = 1e9
HEADROOM = 0.9  # usable fraction of a GPU's memory: the rest is context, NCCL, fragmentation


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per GPU (per rank) of one run under one strategy."""

    strategy: str
    activation_checkpointing: bool
    world_size: int
    micro_batch: int
    params: float
    grads: float
    optimizer: float
    buffers: float  # DDP buckets + autocast weight copies, or FSDP's gathered units
    activations: float

    @property
    def total(self) -> float:
        return self.params + self.grads + self.optimizer + self.buffers + self.activations

    @property
    def total_gb(self) -> float:
        return self.total / GB

    def to_dict(self) -> dict:
        return {
            "strategy": self.strategy, "activation_checkpointing": self.activation_checkpointing,
            "world_size": self.world_size, "micro_batch": self.micro_batch,
            **{f"{k}_gb": round(getattr(self, k) / GB, 3) for k in
               ("params", "grads", "optimizer", "buffers", "activations", "total")},
        }


def activation_bytes(model: ModelConfig, micro_batch: int, act_bytes: int,
                     checkpointing: bool, fused_attention: bool = True) -> float:
    """Activations kept for the backward pass, trunk and head, at one micro-batch."""
    s, b, h = model.num_patches, micro_batch, model.width
    r = _mlp_hidden(h, model.mlp_ratio) / h
    block = act_bytes * s * b * h * (8 + 2 * r)
    if not fused_attention:
        block += act_bytes * model.heads * s * s * b
    trunk = model.depth * 4 * s * b * h + block if checkpointing else model.depth * block
    embed = act_bytes * b * model.channels * model.image_size**2 + 4 * s * b * h  # input, LN
    out = _out_dim(model)
    loss = 4 * 2 * s * b * out  # fp32 prediction and target
    w = model.head_width
    if model.head == "none":
        head = act_bytes * s * b * h
    elif model.head == "mlp":
        per_block = act_bytes * s * b * w * (2 + 2 * 4 + (1 if model.head_block == "l3m" else 0))
        head = act_bytes * s * b * (h + 2 * w) + model.head_depth * per_block
    else:  # transformer head: blocks like the trunk's, width w, MLP ratio 4
        per_block = act_bytes * s * b * w * 16
        if not fused_attention:
            per_block += act_bytes * model.heads * s * s * b
        head = act_bytes * s * b * (h + 2 * w) + model.head_depth * per_block
    return float(trunk + embed + head + loss)


def _units(model: ModelConfig) -> list[int]:
    """FSDP units' parameter counts: each trunk block, each head block, and the root."""
    counts = param_counts(model)
    trunk_block = _block_params(model.width, _mlp_hidden(model.width, model.mlp_ratio))
    w = model.head_width
    if model.head == "mlp":
        head_block = 8 * w * w + 2 * w + (2 * w if model.head_block == "l3m" else 0)
    elif model.head == "transformer":
        head_block = _block_params(w, 4 * w)
    else:
        head_block = 0
    head_blocks = model.head_depth * head_block if model.head != "none" else 0
    root = counts.total - model.depth * trunk_block - head_blocks
    return [trunk_block, head_block, root]


def estimate_memory(model: ModelConfig, train: TrainConfig, world_size: int,
                    on_gpu: bool) -> MemoryEstimate:
    """Memory per rank of `model` trained with `train` over `world_size` ranks."""
    world = max(1, world_size)
    micro = train.micro_batch_size or max(1, train.batch_size // world)
    precision = train.precision
    if precision == "auto":
        precision = "bf16" if on_gpu else "fp32"
    act = 2 if precision == "bf16" else 4
    n = param_counts(model).total
    if train.strategy == "fsdp":
        largest = max(_units(model))
        params, grads, optim = 4 * n / world, 4 * n / world, 8 * n / world
        buffers = 2 * 2 * largest + 4 * largest
    else:
        params, grads, optim = 4 * n, 4 * n, 8 * n
        buffers = (4 * n if world > 1 else 0) + (2 * n if precision == "bf16" else 0)
    activations = activation_bytes(model, micro, act, train.activation_checkpointing)
    return MemoryEstimate(train.strategy, train.activation_checkpointing, world, micro,
                          float(params), float(grads), float(optim), float(buffers), activations)


def fits(estimate: MemoryEstimate, capacity_gb: float | None) -> bool | None:
    """Whether the estimate fits `HEADROOM` of the GPU; None when the capacity is unknown."""
    if capacity_gb is None:
        return None
    return estimate.total <= HEADROOM * capacity_gb * GB


def suggest(model: ModelConfig, train: TrainConfig, world_size: int, capacity_gb: float
            ) -> tuple[str, MemoryEstimate] | None:
    """The first of: fsdp, fsdp + activation checkpointing, then halved micro-batches with
    both, that fits; as (overrides text, estimate), or None if nothing does."""
    micro = train.micro_batch_size or max(1, train.batch_size // max(1, world_size))
    options = [("train.strategy=fsdp", replace(train, strategy="fsdp",
                                               activation_checkpointing=False)),
               ("train.strategy=fsdp train.activation_checkpointing=true",
                replace(train, strategy="fsdp", activation_checkpointing=True))]
    while micro > 1:
        micro //= 2
        options.append((f"train.strategy=fsdp train.activation_checkpointing=true "
                        f"train.micro_batch_size={micro}",
                        replace(train, strategy="fsdp", activation_checkpointing=True,
                                micro_batch_size=micro)))
    current = (train.strategy, train.activation_checkpointing, train.micro_batch_size)
    for text, option in options:
        if (option.strategy, option.activation_checkpointing, option.micro_batch_size) == current:
            continue
        estimate = estimate_memory(model, option, world_size, on_gpu=True)
        if fits(estimate, capacity_gb):
            return text, estimate
    return None


def run_memory(cfg, resource, cache: dict | None = None) -> dict:
    """The plan's memory record of one run (`cfg`: RunConfig) on a resource class: the estimate
    per GPU, the class's GPU memory, whether it fits and, when it does not, what would."""
    t = cfg.train
    key = (tuple(vars(cfg.model).values()), t.strategy, t.activation_checkpointing,
           t.micro_batch_size, t.batch_size, t.precision, resource.world_size,
           resource.gpus_per_node, resource.gpu_memory)
    if cache is not None and key in cache:
        return cache[key]
    on_gpu = resource.gpus_per_node > 0
    capacity = resource.gpu_memory
    estimate = estimate_memory(cfg.model, t, resource.world_size, on_gpu)
    record = {**estimate.to_dict(), "capacity_gb": capacity, "fits": fits(estimate, capacity)}
    if record["fits"] is False:
        found = suggest(cfg.model, t, resource.world_size, capacity)
        record["suggestion"] = found[0] if found else None
        record["suggestion_gb"] = round(found[1].total_gb, 3) if found else None
    if cache is not None:
        cache[key] = record
    return record


def memory_warnings(runs) -> list[str]:
    """One line per run (PlannedRun) whose estimate exceeds its class's GPU memory."""
    lines = []
    for run in runs:
        m = run.memory
        if not m or m.get("fits") is not False:
            continue
        cap = m["capacity_gb"]
        line = (f"{run.run_id}: ~{m['total_gb']:.1f} GB per GPU under {m['strategy']}"
                f"{' + activation checkpointing' if m['activation_checkpointing'] else ''} "
                f"does not fit {HEADROOM:.0%} of the {cap:g} GB GPUs of class "
                f"{run.resource_class!r}; ")
        if m.get("suggestion"):
            line += f"set {m['suggestion']} (~{m['suggestion_gb']:.1f} GB)"
        else:
            line += "no strategy fits: use a class with more GPUs or larger ones"
        lines.append(line)
    return lines
