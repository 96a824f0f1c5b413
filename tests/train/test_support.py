"""Settings that `plan` sizes but the loop cannot run yet are refused before anything runs."""

from __future__ import annotations

import pytest

from aimscale.cli import main
from aimscale.config import compose


def test_train_refuses_fsdp_until_the_loop_has_it_with_exit_2(tmp_path, capsys):
    code = main(["train", "train.strategy=fsdp", "data=synthetic", f"run_dir={tmp_path / 'run'}"])
    assert code == 2
    assert "train.strategy=fsdp is not implemented yet" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_job_that_bypasses_the_cli_fails_before_writing(tmp_path):
    from aimscale.train.loop import train

    cfg = compose(["train.strategy=fsdp", "data=synthetic", "train.device=cpu",
                   f"run_dir={tmp_path / 'run'}"])
    with pytest.raises(NotImplementedError, match="train.strategy=fsdp"):
        train(cfg)
    assert not (tmp_path / "run" / "config.yaml").exists()
