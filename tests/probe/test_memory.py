"""Peak memory of a probe does not grow with the data set: 10× the images, at most 1.3× the RSS.

Each probe runs in its own process (peak RSS is per process: `ru_maxrss` of RUSAGE_SELF, printed
by the child). Before streaming, the probe held every rendered image and every feature: 295 MiB
for 1k synthetic images and 503 MiB for 10k (1.7×) with the test trunk.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHILD = """
import resource, sys
import torch
torch.set_num_threads(1)
from aimscale.probe.config import probe_config
from aimscale.probe.run import run_probes
run_dir, limit, cache, epochs = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
(attentive, linear) = run_probes(run_dir, probe_config(
    dataset="synthetic", kind="both", limit_train=limit, limit_test=500, epochs=epochs,
    lrs=[1e-2], weight_decays=[0.0], cache=cache))
assert attentive["num_train"] + attentive["num_val"] == limit
assert attentive["stream"]["cache"] == ("none" if cache == "none" or epochs < 2 else
                                        "temporary" if cache == "auto" else "disk")
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux
"""


def peak_rss_mib(run_dir: Path, limit: int, cache: str, epochs: int) -> float:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(run_dir), str(limit), cache, str(epochs)],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return int(result.stdout.split()[-1]) / 1024


def test_peak_memory_is_flat_in_the_data_size(run_copy):
    """One epoch (the trunk streams every batch): 1k vs 10k training images."""
    small = peak_rss_mib(run_copy, 1000, "auto", 1)
    large = peak_rss_mib(run_copy, 10_000, "auto", 1)
    assert large <= 1.3 * small, (small, large)


@pytest.mark.slow
@pytest.mark.parametrize("cache", ["none", "auto", "disk"])
def test_peak_memory_is_flat_with_every_cache(run_copy, cache):
    """Two epochs, 2k vs 20k images: re-streamed, from a temporary store, from a kept store."""
    small = peak_rss_mib(run_copy, 2000, cache, 2)
    large = peak_rss_mib(run_copy, 20_000, cache, 2)
    assert large <= 1.3 * small, (cache, small, large)
