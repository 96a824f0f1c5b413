#!/usr/bin/env bash
# Set up everything the tests need on a fresh machine, then run them.
#   bash scripts/test.sh            # default suite (slow tests excluded)
#   bash scripts/test.sh -m slow    # extra pytest arguments are passed on
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
if [[ -x tests/slurm/start.sh ]]; then
  bash tests/slurm/start.sh
  trap 'bash tests/slurm/stop.sh || true' EXIT
fi
python3 -m ruff check .
export AIMSCALE_STRICT=1  # reports raise a crashing section instead of only noting it
python3 -m pytest "$@"
