#!/usr/bin/env bash
# A single-node SLURM (Debian 12's Slurm 22.05) on this machine, for tests/test_workflow_slurm.py.
#
#   .ci/start_slurm.sh [start]        install what is missing, write the config, start the daemons
#   .ci/start_slurm.sh --no-install   the same, but exit 3 when the packages are absent
#   .ci/start_slurm.sh status         exit 0 when munged, slurmctld and slurmd all run
#   .ci/start_slurm.sh stop           stop the daemons (by their pid files)
#
# Idempotent: when all three daemons run, a call only checks that; when some do not (killed, a
# machine restarted), all are restarted under a freshly written config. The daemons are left
# running (stop them with `stop`); stale pid files are recognised. No accounting database: jobs are followed with `squeue`, so Snakemake
# must run with `--slurm-status-command squeue` (the plugin's default, sacct, hangs without one).
# Needs root (exit 3 otherwise). Refuses to overwrite a slurm.conf that it did not write.
# Package installs only print "policy-rc.d denied execution of start": the daemons are started
# here directly, in order munged, slurmctld, slurmd; the script waits until the node is idle.
set -euo pipefail

ACTION=${1:-start}
MARK="# Written by .ci/start_slurm.sh (single-node test cluster); delete this file to write your own."
CONF=/etc/slurm/slurm.conf
PACKAGES=(munge slurmctld slurmd slurm-client)
MUNGE_PID=/run/munge/munged.pid
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid

say() { echo "start_slurm: $*" >&2; }

alive() { [ -d "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

running() { # pid file, daemon name -> 0 if that daemon runs under that pid (not a reused pid)
  [ -s "$1" ] && [ "$(cat "/proc/$(cat "$1")/comm" 2>/dev/null)" = "$2" ] && alive "$(cat "$1")"
}

all_running() { running "$MUNGE_PID" munged && running "$CTLD_PID" slurmctld && running "$SLURMD_PID" slurmd; }

stop_daemon() { # pid file, name
  local pid
  running "$1" "$2" || { rm -f "$1"; return 0; }
  pid=$(cat "$1")
  kill "$pid"
  for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then say "$2 (pid $pid) ignored SIGTERM for 10 s; killing it"; kill -9 "$pid" || true; fi
  rm -f "$1"
}

stop_all() {
  stop_daemon "$SLURMD_PID" slurmd
  stop_daemon "$CTLD_PID" slurmctld
  stop_daemon "$MUNGE_PID" munged
}

case "$ACTION" in
  status)
    all_running
    exit
    ;;
  stop)
    stop_all
    exit 0
    ;;
  start|--no-install) ;;
  *)
    say "unknown action '$ACTION' (start, --no-install, status, stop)"
    exit 2
    ;;
esac

if all_running; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  say "needs root to install and start the SLURM daemons (run it with sudo)"
  exit 3
fi
started=$(date +%s%N)

# --- packages -------------------------------------------------------------------------------
export PATH=$PATH:/usr/sbin:/sbin
missing=0
for bin in munged slurmctld slurmd sbatch squeue sinfo; do
  command -v "$bin" >/dev/null || missing=1
done
if [ "$missing" -eq 1 ]; then
  if [ "$ACTION" = --no-install ] || ! command -v apt-get >/dev/null; then
    say "Slurm packages absent (${PACKAGES[*]}); run .ci/start_slurm.sh as root on Debian/Ubuntu to install them"
    exit 3
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/tmp/start_slurm.apt.log 2>&1 ||
         { apt-get update -qq >>/tmp/start_slurm.apt.log 2>&1 &&
           apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >>/tmp/start_slurm.apt.log 2>&1; }; }; then
    tail -n 5 /tmp/start_slurm.apt.log >&2
    say "could not install ${PACKAGES[*]} with apt-get (log: /tmp/start_slurm.apt.log)"
    exit 3
  fi
fi

# The Snakemake executor plugin, pinned by this project's `slurm` extra, into the project's venv
# only (SLURM_TEST_PYTHON, default .venv/bin/python; never a system Python).
PY=${SLURM_TEST_PYTHON:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}
if [ -x "$PY" ] && ! "$PY" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("snakemake_executor_plugin_slurm") is None)'; then
  if [ "$("$PY" -c 'import sys; print(sys.prefix != sys.base_prefix)')" != True ]; then
    say "$PY is not a virtual environment: install the plugin yourself (pip install -e '.[slurm]')"
  else
    reqs=$(cd "$(dirname "$0")/.." && "$PY" -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["slurm"]))')
    say "installing the SLURM executor plugin into $PY: $(echo $reqs)"
    mapfile -t reqs <<<"$reqs"
    "$PY" -m pip install -q "${reqs[@]}"
  fi
fi

# --- configuration --------------------------------------------------------------------------
if [ -e "$CONF" ] && ! grep -qxF "$MARK" "$CONF"; then
  say "$CONF exists and was not written by this script; not touching a real cluster's config"
  exit 1
fi
host=$(hostname -s)
cpus=$(nproc)
mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
mem=$(( mem * 85 / 100 ))  # leave room for the daemons, or slurmd reports "Low RealMemory"
mkdir -p /etc/slurm /var/log/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd
chown slurm:slurm /var/log/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd
tmp=$(mktemp /etc/slurm/.slurm.conf.XXXXXX)
cat >"$tmp" <<EOF
$MARK
ClusterName=ci
SlurmctldHost=$host(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, a job without --mem takes the whole node and jobs run one at a time.
DefMemPerCPU=1000
SchedulerType=sched/backfill
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
JobCompType=jobcomp/none
# No accounting database: sacct cannot answer, Snakemake must use --slurm-status-command squeue.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
chmod 644 "$tmp"
mv -f "$tmp" "$CONF"

# --- daemons --------------------------------------------------------------------------------
# From a clean start: some left running (a killed earlier run) may hold an older config.
stop_all
[ -s /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key; chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
mkdir -p /run/munge
chown munge:munge /run/munge
chmod 755 /run/munge
runuser -u munge -- munged --force
slurmctld
slurmd

SECONDS=0
while [ "$SECONDS" -lt 60 ]; do
  state=$(timeout 10 sinfo -h -o %t 2>/dev/null | head -n 1 || true)
  case "$state" in
    idle|mix|alloc) break ;;
  esac
  sleep 0.2
done
if ! [[ "$state" =~ ^(idle|mix|alloc)$ ]]; then
  say "the node did not become idle within 60 s (state '${state:-no answer}'); logs: /var/log/slurm/"
  tail -n 5 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
  exit 1
fi
say "single-node SLURM up ($host, $cpus CPUs, ${mem} MB) in $(( ($(date +%s%N) - started) / 1000000 )) ms"
