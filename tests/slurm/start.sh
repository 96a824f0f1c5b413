#!/usr/bin/env bash
# Start a single-node SLURM cluster on loopback for the tests (idempotent; needs root).
#   bash tests/slurm/start.sh        # install (apt-get) if needed, configure, start, wait for idle
# Debian's packages (Slurm 22.05, munge); no systemd needed: the daemons are started directly.
# Re-running it while the cluster is up and configured the same way does nothing; with the same
# configuration it restarts only a daemon that is down (slurmctld keeps its saved queue, so jobs
# survive a restart of slurmd). Only a changed configuration restarts both, clean.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
t0=$(date +%s%N)
STATE=/var/spool/aimscale-slurm
LOGS=/var/log/slurm
CONF=/etc/slurm/slurm.conf

if [[ $(id -u) -ne 0 ]]; then
  echo "tests/slurm/start.sh: needs root (it installs packages and starts daemons)" >&2
  exit 1
fi

# 1. packages (idempotent)
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
  || ! command -v sinfo >/dev/null || ! command -v munged >/dev/null; then
  echo "installing munge and slurm (apt-get) ..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends munge slurmctld slurmd slurm-client >/dev/null \
    || { apt-get update -qq && apt-get install -y --no-install-recommends \
         munge slurmctld slurmd slurm-client >/dev/null; }
fi

# 2. munge: a generated key, munged running as user munge
install -d -o munge -g munge -m 0700 /etc/munge /var/log/munge
install -d -o munge -g munge -m 0711 /var/lib/munge /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
fi
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  rm -f /run/munge/munged.pid /run/munge/munge.socket.2*
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  munge -n | unmunge >/dev/null || { echo "munged did not start; see /var/log/munge" >&2; exit 1; }
fi

# 3. slurm.conf from the template, with this machine's CPUs and memory: as slurmd itself counts
# them (not `nproc`, which honours OMP_NUM_THREADS)
node=$(hostname -s)
hardware=$(slurmd -C)
cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$hardware" | head -1)
[[ -n $cpus ]] || cpus=$(nproc --all)
mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hardware" | head -1)
mem=$(( mem > 1024 ? mem - 512 : mem ))  # leave a little for the daemons
install -d -m 0755 /etc/slurm "$LOGS" "$STATE" "$STATE/slurmctld" "$STATE/slurmd"
new_conf=$(sed -e "s|@NODE@|$node|g" -e "s|@HOST@|$(hostname)|g" -e "s|@CPUS@|$cpus|g" \
  -e "s|@MEM@|$mem|g" -e "s|@STATE@|$STATE|g" -e "s|@LOGS@|$LOGS|g" "$here/slurm.conf.in")

alive() { [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
if [[ -f $CONF ]] && [[ "$(cat "$CONF")" == "$new_conf" ]]; then
  started=""
  if ! alive "$STATE/slurmctld.pid"; then
    slurmctld  # no -c: recover the saved queue and running jobs
    started+=" slurmctld"
  fi
  if ! alive "$STATE/slurmd.pid"; then
    slurmd -N "$node"
    started+=" slurmd"
  fi
  if [[ -z $started ]]; then
    echo "slurm already running with this configuration"
  else
    echo "restarted${started} (queue kept)"
  fi
else
  bash "$here/stop.sh" --quiet
  printf '%s\n' "$new_conf" >"$CONF"
  # a new configuration: -c starts clean (no jobs left from an earlier cluster); -N: node name
  slurmctld -c
  slurmd -N "$node"
fi

# 4. wait until the node is idle (or mixed/allocated: already running test jobs)
for _ in $(seq 300); do
  state=$(sinfo -h -n "$node" -o %T 2>/dev/null | head -1 || true)
  case "$state" in
    idle | mixed | allocated | completing) break ;;
    down* | drain* | *"*")
      scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true ;;
  esac
  sleep 0.2
done
if [[ ! "$state" =~ ^(idle|mixed|allocated|completing)$ ]]; then
  echo "slurm node $node is '$state', not idle; see $LOGS/slurmctld.log and $LOGS/slurmd.log" >&2
  exit 1
fi
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
printf 'slurm cluster up: node %s (%s CPUs, %s MB) %s, took %d.%03d s\n' "$node" "$cpus" "$mem" \
  "$state" $((ms / 1000)) $((ms % 1000))
