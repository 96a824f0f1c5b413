#!/usr/bin/env bash
# Install aimscale and what it needs on a fresh machine (idempotent).
#   bash scripts/setup.sh          # runtime
#   bash scripts/setup.sh --dev    # + test tools, SLURM test cluster packages
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# Keep an existing torch (e.g. a CUDA build on a GPU node); otherwise take the CPU wheel.
if ! "$PY" -c "import torch" 2>/dev/null; then
  "$PY" -m pip install --quiet "torch==2.13.0"
fi
extras=""
[[ "${1:-}" == "--dev" ]] && extras="[dev]"
"$PY" -m pip install --quiet -e ".${extras}"
# The default dataset: Debian's Fashion-MNIST package when apt is available, else a download.
"$PY" -m aimscale data fetch fashion-mnist
