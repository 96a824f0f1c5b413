"""A probe job on 2 CPU ranks (torchrun, gloo) gives the results of 1 rank.

Each rank runs the trunk on its half of every batch; the halves are gathered, so both ranks
train the heads on the whole batch in one rank's order. Only the trunk's float32 arithmetic on
smaller batches differs, hence a tolerance instead of equality.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aimscale.probe.config import probe_config
from aimscale.probe.run import run_probes

REPO = Path(__file__).resolve().parents[2]
ARGS = dict(
    dataset="synthetic",
    kind="both",
    blocks="all-windows",
    limit_train=600,
    limit_test=300,
    epochs=3,
    batch_size=64,
    lrs=[1e-2, 3e-2],
    weight_decays=[0.0],
)
FLAGS = {"lrs": "lr", "weight_decays": "wd"}  # fmt: skip


def _two_ranks(run_dir: Path, cache: str, shard_mb: str) -> list[dict]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               AIMSCALE_PROBE_SHARD_MB=shard_mb)  # fmt: skip
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    options = [
        f"--{FLAGS.get(key, key).replace('_', '-')}="
        + (",".join(map(str, value)) if isinstance(value, list) else str(value))
        for key, value in ARGS.items()
    ]
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "aimscale", "probe", str(run_dir), *options, f"--cache={cache}", "--json",
    ]  # fmt: skip
    result = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def _compare(one: list[dict], two: list[dict]) -> None:
    assert [r["name"] for r in two] == [r["name"] for r in one]
    for a, b in zip(one, two, strict=True):
        assert b["stream"]["ranks"] == 2 and a["stream"]["ranks"] == 1
        for key in ("num_train", "num_val", "num_test", "blocks", "request"):
            assert a[key] == b[key], key
        assert abs(a["top1"] - b["top1"]) <= 0.01, (a["name"], a["top1"], b["top1"])
        for row_a, row_b in zip(a["hparams"]["grid"], b["hparams"]["grid"], strict=True):
            assert abs(row_a["val_accuracy"] - row_b["val_accuracy"]) <= 0.02


def _one_rank(trained_run: Path, tmp_path: Path, cache: str, monkeypatch) -> tuple[Path, list]:
    one = tmp_path / "one"
    shutil.copytree(trained_run, one, ignore=shutil.ignore_patterns("probe"))
    monkeypatch.setenv("AIMSCALE_PROBE_SHARD_MB", "0.1")
    return one, run_probes(one, probe_config(cache=cache, **ARGS))


def test_two_ranks_match_one_rank_from_a_shared_store(trained_run, tmp_path, monkeypatch):
    """cache=disk with 0.1 MB shards: 6 shards of 102 rows, written by both ranks."""
    one, results_one = _one_rank(trained_run, tmp_path, "disk", monkeypatch)
    two = tmp_path / "two"
    shutil.copytree(trained_run, two, ignore=shutil.ignore_patterns("probe"))
    results_two = _two_ranks(two, "disk", "0.1")
    _compare(results_one, results_two)
    store = two / "probe" / "cache" / "step20_synthetic_train_n600" / "blocks0-0"
    assert len(list(store.glob("shard_*.f16"))) == 6 and (store / "meta.json").is_file()
    written = sorted(p.name for p in (two / "probe").glob("*.json"))
    assert written == sorted(f"{r['name']}.json" for r in results_one)  # rank 0 wrote, once


@pytest.mark.slow
def test_two_ranks_match_one_rank_streaming_the_trunk(trained_run, tmp_path, monkeypatch):
    _, results_one = _one_rank(trained_run, tmp_path, "none", monkeypatch)
    two = tmp_path / "two"
    shutil.copytree(trained_run, two, ignore=shutil.ignore_patterns("probe"))
    _compare(results_one, _two_ranks(two, "none", "64"))
