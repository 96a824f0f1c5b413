"""`plan` warns about a resource class whose time limit is shorter than SLURM's stop signal
delay plus a checkpoint interval (a job would be signalled before it saves any progress)."""

from __future__ import annotations

from sweep_helpers import aimscale, write_spec


def test_plan_warns_about_a_time_limit_inside_the_signal_window(tmp_path):
    short = {"classes": {"short": {"time_min": 1}}, "signal_delay_s": 60}
    spec = write_spec(tmp_path / "s.yaml", "short", tmp_path / "sweep", resources=short)
    out = aimscale("plan", str(spec))
    assert "resources.classes.short: time_min=1 (60 s) is shorter than signal_delay_s=60" in (
        out.stderr)
    assert "0 s after it starts" in out.stderr


def test_plan_warns_when_a_checkpoint_interval_does_not_fit(tmp_path):
    """A 1-GPU class with 10 min; the cost model puts one checkpoint interval at ~hours."""
    resources = {"classes": {"gpu": {"time_min": 10, "gpus_per_node": 1}}, "signal_delay_s": 60}
    base = {"model": {"preset": "aim-tiny", "width": 1024, "depth": 24, "heads": 16},
            "data": {"preset": "synthetic", "num_images": 512, "val_images": 64},
            "train": {"steps": 100000, "batch_size": 4096, "checkpoint_every": 50000,
                      "eval_images": 64, "device": "cpu"}}
    spec = write_spec(tmp_path / "s.yaml", "big", tmp_path / "sweep", base=base,
                      resources=resources, cost={"gpu_peak_flops": 1.0e12, "mfu": 0.1})
    out = aimscale("plan", str(spec), "--json")
    assert "resources.classes.gpu: time_min=10 (600 s) is shorter than" in out.stderr


def test_plan_is_quiet_when_the_limit_leaves_room(tmp_path):
    roomy = {"classes": {"roomy": {"time_min": 30}}, "signal_delay_s": 60}
    spec = write_spec(tmp_path / "s.yaml", "roomy", tmp_path / "sweep", resources=roomy)
    assert "warning" not in aimscale("plan", str(spec)).stderr
