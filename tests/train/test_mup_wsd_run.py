"""A real μP + WSD run: the LR it logs is the schedule's, its hidden groups train at lr/m, and a
stopped run resumes equal to its uninterrupted twin."""

from __future__ import annotations

import pytest

from aimscale.train import train
from aimscale.train.checkpoint import checkpoint_path, load_checkpoint
from aimscale.train.metrics import read_metrics, without_timing
from aimscale.train.optim import lr_at

from .conftest import StopAfter, compose_run

STEPS = 12
EXTRA = (
    "model.parametrization=mup", "model.mup_base_width=16",  # width 32: m = 2
    "optim.schedule=wsd", "optim.warmup_fraction=0.25", "optim.cooldown_fraction=0.25",
    "optim.min_lr=1e-5", f"train.steps={STEPS}", "train.log_every=1", "train.eval_every=6",
    "train.checkpoint_every=4",
)




def rows(run_dir) -> list[dict]:
    return [without_timing(r) for r in read_metrics(run_dir / "metrics.jsonl")]


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("mup_wsd")
    cfg = compose_run(run_dir, *EXTRA)
    train(cfg)
    return run_dir, cfg


def test_logged_lr_is_the_wsd_schedule(twin):
    run_dir, cfg = twin
    logged = [r["lr"] for r in rows(run_dir)]
    assert logged == [lr_at(step, cfg.optim, STEPS) for step in range(STEPS)]
    # warmup: updates 0..2; constant; the cooldown starts at update 9 from the peak
    assert logged[2] == logged[9] == cfg.optim.lr and logged[1] < cfg.optim.lr
    assert cfg.optim.min_lr < logged[11] < logged[10] < logged[9]
    state = load_checkpoint(checkpoint_path(run_dir, 8))
    groups = [(g["lr_mult"], g["lr"]) for g in state["optimizer"]["param_groups"]]
    lr = lr_at(7, cfg.optim, STEPS)  # the update that led to step 8
    assert groups == [(1.0, lr), (1.0, lr), (0.5, lr * 0.5)]


def test_stopped_mup_wsd_run_resumes_equal(twin, tmp_path):
    reference, _ = twin
    cfg = compose_run(tmp_path, *EXTRA)
    assert train(cfg, stop_requested=StopAfter(10)) == {"status": "stopped", "step": 10}
    train(cfg)  # resumes in the cooldown
    assert rows(tmp_path) == rows(reference)
