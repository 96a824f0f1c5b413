"""The probe stage: frozen-trunk attentive / linear probes and LoRA fine-tuning of a run.

`probe_run(run_dir, cfg)` (the entry point of a probe job: joins its ranks, keeps results
already made), `run_probes(run_dir, cfg)` (every result a ProbeConfig names, in this process),
`run_probe` (exactly one), `run_layer_sweep` (one result per block window); results in
RUN_DIR/probe/<name>.json. The functions import torch lazily, so `aimscale.probe.config` stays
light.

Modules, in the order data flows: config (ProbeConfig), windows (which blocks), data (labelled
splits, rendered a batch at a time), features (trunk pass over a batch), store (fp16 feature
shards on disk), stream (batches -> features, shared over ranks), cache (trunk or store between
epochs), heads (G heads at once), fit (grid training, GridAdamW), lora (adapters), run
(orchestration, result files), cli.
"""

from __future__ import annotations

from aimscale.probe.config import ProbeConfig, ProbeError, probe_config

__all__ = [
    "ProbeConfig", "ProbeError", "probe_config", "probe_run", "run_layer_sweep", "run_probe",
    "run_probes",
]  # fmt: skip


def __getattr__(name: str):
    if name in ("probe_run", "run_probe", "run_probes", "run_layer_sweep"):
        from aimscale.probe import run

        return getattr(run, name)
    raise AttributeError(f"module 'aimscale.probe' has no attribute {name!r}")
