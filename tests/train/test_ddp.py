"""Data parallelism: 2 CPU ranks (torchrun, gloo) with global batch B train like 1 rank with B."""

from __future__ import annotations

import subprocess
import sys

from aimscale.train import train
from aimscale.train.metrics import read_metrics

from .conftest import REPO, SYNTHETIC, TINY, cli_env, compose_run

# prefix attention (the default): the prefix lengths are drawn for the whole global batch, so a
# batch split over ranks sees the same draws as the unsplit one
DDP_RUN = [
    "train.steps=6",
    "train.log_every=1",
    "train.eval_every=3",
    "train.eval_images=64",
    "model.attention=prefix",
]
TOLERANCE = 1e-5  # measured: loss 3e-7, grad norm 5e-7, val loss 0 (float32 sum order)


def test_two_ranks_match_one_rank(tmp_path):
    two = tmp_path / "two_ranks"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "aimscale",
        "train",
        *TINY,
        *SYNTHETIC,
        *DDP_RUN,
        f"run_dir={two}",
    ]
    result = subprocess.run(
        cmd, env=cli_env(), cwd=REPO, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stderr[-3000:]

    one = tmp_path / "one_rank"
    # one rank, the whole batch of 16 in a single forward (two ranks ran 8 each)
    train(compose_run(one, *DDP_RUN, "train.micro_batch_size=16"))
    rows_two = read_metrics(two / "metrics.jsonl")
    rows_one = read_metrics(one / "metrics.jsonl")
    assert [r["step"] for r in rows_two] == [r["step"] for r in rows_one] == list(range(1, 7))
    for a, b in zip(rows_one, rows_two, strict=True):
        assert a["images_seen"] == b["images_seen"]
        for key in ("loss", "grad_norm", "val_loss"):
            if key in a:
                assert abs(a[key] - b[key]) < TOLERANCE, (key, a["step"], a[key], b[key])
    # only rank 0 wrote: one row per step, one summary
    assert len(list(two.glob("summary.json"))) == 1
