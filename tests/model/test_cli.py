"""`aimscale model`: counts and FLOPs without allocating weights."""

from __future__ import annotations

import json
import subprocess
import sys

from aimscale.cli import main
from aimscale.config import compose
from aimscale.flops import flops_per_image, param_counts


def test_json_for_the_7b_preset(capsys):
    assert main(["model", "aim-7b", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    cfg = compose(["model=aim-7b"]).model
    assert (info["width"], info["depth"], info["heads"]) == (4096, 32, 32)
    assert info["trunk_params"] == param_counts(cfg).trunk
    assert info["head_params"] == param_counts(cfg).head
    assert info["flops_per_image"] == flops_per_image(cfg)
    assert (info["head_block"], info["target_var"]) == ("l3m", "unbiased")
    assert main(["model", "aim-7b", "model.head_block=plain", "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert info["head_params"] - plain["head_params"] == 49_152
    assert plain["flops_per_image"] == info["flops_per_image"]  # LayerNorms are not counted


def test_overrides_and_table(capsys):
    assert main(["model", "aim-600m", "model.depth=12"]) == 0
    out = capsys.readouterr().out
    assert "depth 12" in out
    assert f"{param_counts(compose(['model=aim-600m', 'model.depth=12']).model).trunk:,}" in out


def test_bad_override_is_an_error(capsys):
    assert main(["model", "aim-tiny", "model.dept=3"]) == 2
    assert "dept" in capsys.readouterr().err


def test_does_not_import_torch():
    code = (
        "import sys; from aimscale.cli import main; main(['model', 'aim-7b', '--json']); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
