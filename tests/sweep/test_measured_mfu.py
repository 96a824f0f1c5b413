"""`plan --mfu-from SWEEP_DIR`: GPU-hours at the median MFU of finished runs per class."""

from __future__ import annotations

import json

from sweep_helpers import aimscale, write_spec

from aimscale.atomic import atomic_write_json
from aimscale.sweep.manifest import new_manifest, write_manifest


def _measured_sweep(root, mfus_by_class):
    manifest = new_manifest("old", {})
    for cls, mfus in mfus_by_class.items():
        for i, mfu in enumerate(mfus):
            run_id = f"{cls}-{i}"
            (root / run_id).mkdir(parents=True)
            status = "done" if mfu is not None else "failed"
            atomic_write_json(root / run_id / "summary.json",
                              {"status": status, **({"mfu": mfu} if mfu else {})})
            manifest["runs"][run_id] = {"run_dir": str(root / run_id), "resource_class": cls}
    write_manifest(root, manifest)
    return root


def test_gpu_hours_use_the_median_measured_mfu_of_the_class(tmp_path):
    old = _measured_sweep(tmp_path / "old", {"default": [0.1, 0.3, 0.2, None]})
    spec = write_spec(tmp_path / "s.yaml", "new", tmp_path / "new",
                      cost={"gpu_peak_flops": 1.0e12, "mfu": 0.5})
    plain = json.loads(aimscale("plan", str(spec), "--json").stdout)
    measured = json.loads(aimscale("plan", str(spec), "--json", "--mfu-from", str(old)).stdout)
    for a, b in zip(plain["runs"], measured["runs"], strict=True):
        assert a["gpu_hours"] == a["total_flops"] / (1e12 * 0.5) / 3600
        assert b["gpu_hours"] == b["total_flops"] / (1e12 * 0.2) / 3600  # median of 3 done
    text = aimscale("plan", str(spec), "--mfu-from", str(old)).stdout
    assert "measured MFU of class default: 0.2 (median of 3 run(s))" in text


def test_mfu_from_a_directory_without_measurements_is_an_input_error(tmp_path):
    spec = write_spec(tmp_path / "s.yaml", "new", tmp_path / "new")
    out = aimscale("plan", str(spec), "--mfu-from", str(tmp_path / "nothing"), check=False)
    assert out.returncode == 2 and "no sweep.json there" in out.stderr
    old = _measured_sweep(tmp_path / "old", {"default": [None]})
    out = aimscale("plan", str(spec), "--mfu-from", str(old), check=False)
    assert out.returncode == 2 and "no finished run there has a measured mfu" in out.stderr


def test_collect_rows_carry_the_summary_mfu(tmp_path):
    from aimscale.sweep.collect import run_row

    atomic_write_json(tmp_path / "summary.json",
                      {"status": "done", "mfu": 0.31, "model_flops_per_s": 3.1e14})
    row = run_row("r", tmp_path, {}, "done")
    assert row["mfu"] == 0.31 and row["model_flops_per_s"] == 3.1e14
