"""Bad input: a ProbeError that names the problem and the fix, before any training."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from aimscale.cli import main
from aimscale.probe import run as probe_run
from aimscale.probe.config import ProbeError, probe_config


@pytest.fixture(autouse=True)
def _no_training(monkeypatch):
    """Fail loudly if a test got as far as loading a trunk or training a head."""

    def forbidden(*args, **kwargs):
        raise AssertionError("the probe started work before reporting the bad input")

    monkeypatch.setattr(probe_run, "load_trunk", forbidden)
    monkeypatch.setattr(probe_run, "fit_grids", forbidden)


def _probe(run_dir, **fields):
    return probe_run.run_probes(run_dir, probe_config(dataset="synthetic", **fields))


def test_not_a_run_directory(tmp_path):
    with pytest.raises(ProbeError, match="not a run directory \\(no config.yaml\\)"):
        _probe(tmp_path)


def test_run_without_checkpoint(trained_run, tmp_path):
    shutil.copy(trained_run / "config.yaml", tmp_path / "config.yaml")
    with pytest.raises(ProbeError, match="has no checkpoint in .*; train the run first"):
        _probe(tmp_path)


def test_checkpoint_step_not_kept(trained_run):
    with pytest.raises(ProbeError, match=r"no checkpoint at step 15; kept steps: \[10, 20\]"):
        _probe(trained_run, checkpoint="15")


def test_block_index_out_of_range(trained_run):
    with pytest.raises(ProbeError, match="out of range for a trunk with 3 blocks.*within 0-2"):
        _probe(trained_run, blocks="1-3")
    with pytest.raises(ProbeError, match="window_size=4 exceeds the trunk depth 3"):
        _probe(trained_run, window_size=4)


def test_channels_that_do_not_fit(trained_run, tmp_path):
    shutil.copytree(trained_run, tmp_path / "run")
    config = tmp_path / "run" / "config.yaml"
    config.write_text(config.read_text().replace("channels: 3", "channels: 2"))
    with pytest.raises(ProbeError, match="model.channels=2 is not supported"):
        _probe(tmp_path / "run")


def test_images_without_labels(trained_run, tmp_path):
    """An image folder with no class sub-directories has no labels to probe."""
    for split in ("train", "val"):
        (tmp_path / "flat" / split).mkdir(parents=True)
        for i in range(4):
            pixels = np.full((32, 32, 3), 40 * i, dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "flat" / split / f"{i}.png")
    with pytest.raises(ProbeError, match="no class sub-directories"):
        probe_run.run_probes(trained_run, probe_config(dataset=f"image-folder:{tmp_path / 'flat'}"))


def test_cli_reports_the_error(trained_run, capsys):
    assert main(["probe", str(trained_run), "--dataset", "synthetic", "--blocks", "7"]) == 2
    assert "out of range for a trunk with 3 blocks" in capsys.readouterr().err


def test_unreadable_checkpoint_is_bad_input(run_copy, capsys):
    """`--checkpoint 10` on a file that is not a checkpoint: exit 2 naming it, no traceback."""
    path = run_copy / "checkpoints" / "step_00000010.pt"
    path.write_bytes(b"\x80\x02 this is not a checkpoint")  # a pickle opcode, then garbage
    code = main(["probe", str(run_copy), "--dataset", "synthetic", "--checkpoint", "10"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"checkpoint {path} cannot be read" in err and "[20]" in err
    assert "Traceback" not in err and "Unpickling" not in err


def test_config_with_an_extra_key_is_bad_input(run_copy, capsys):
    config = run_copy / "config.yaml"
    config.write_text(config.read_text() + "extra_key: 1\n")
    code = main(["probe", str(run_copy), "--dataset", "synthetic"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"{config}: Key 'extra_key' not in 'RunConfig'" in err and "ConfigKeyError" not in err


def test_plan_time_checkpoint_steps_match_what_training_kept(trained_run):
    """`final_checkpoint_steps` (what plan checks probe checkpoints against) is what a finished
    run really has on disk."""
    from aimscale.config import from_yaml
    from aimscale.train.checkpoint import list_checkpoints

    cfg = from_yaml(trained_run / "config.yaml")
    kept = cfg.train.final_checkpoint_steps()
    assert [step for step, _ in list_checkpoints(trained_run)] == kept == [10, 20]
    assert probe_config(checkpoint="15").run_problems(cfg)  # 15 is not kept
    assert probe_config(checkpoint="10", blocks="0-2").run_problems(cfg) == []
    assert "out of range" in probe_config(blocks="1-3").run_problems(cfg)[0]
