#!/usr/bin/env bash
# The main job on a fresh machine: set up, then a small scaling study end to end with its report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
python3 -m aimscale demo "$@"
