#!/usr/bin/env bash
# Stop the SLURM test cluster started by tests/slurm/start.sh (idempotent). Leaves munged running.
#   bash tests/slurm/stop.sh [--quiet]
set -uo pipefail
STATE=/var/spool/aimscale-slurm
quiet=${1:-}
stop_pidfile() {  # name pidfile
  local pid
  [[ -s "$2" ]] || return 0
  pid=$(cat "$2")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
    [[ "$quiet" == --quiet ]] || echo "stopped $1 (pid $pid)"
  fi
  rm -f "$2"
}
stop_pidfile slurmd "$STATE/slurmd.pid"
stop_pidfile slurmctld "$STATE/slurmctld.pid"
exit 0
