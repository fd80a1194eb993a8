#!/usr/bin/env bash
# Copied from ../shared/tools/slurm-single-node.sh (tested on this project's Debian 12 machines;
# see ../shared/SLURM-LOCAL.md). Used by tests/slurm_cluster.py, .ci/run and bench/bench_slurm.py.
# Minimal single-node SLURM (slurmctld + slurmd on localhost) for CI / tests.
# Tested on Debian 12 container: slurm-wlm 22.05.8-4+deb12u3, munge 0.5.15-2+deb12u1.
#
#   apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y slurm-wlm munge
#   ./slurm-single-node.sh start     # writes config, starts munged, slurmctld, slurmd, waits for node idle
#   ./slurm-single-node.sh status
#   ./slurm-single-node.sh stop      # stops slurmd, slurmctld, munged by PID file
#
# Env knobs: SLURM_DIR (runtime dir, default /tmp/slurm), SLURM_CONF (default /etc/slurm/slurm.conf),
#            AUTH=munge|none (default munge), CLUSTER (default localci), CPUS (default nproc),
#            SCHED_PARAMS (default batch_sched_delay=0,sched_min_interval=0; empty = Slurm defaults)
set -euo pipefail
SLURM_DIR=${SLURM_DIR:-/tmp/slurm}
export SLURM_CONF=${SLURM_CONF:-/etc/slurm/slurm.conf}
AUTH=${AUTH:-munge}
CLUSTER=${CLUSTER:-localci}
HOST=$(hostname -s)
# CPUS > nproc over-declares CPUs (more concurrent trivial jobs per scheduling pass); needs config_overrides
CPUS=${CPUS:-$(nproc)}
# slurmd -C reports RealMemory; leave ~5% headroom
MEM=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p'); MEM=$(( ${MEM:-1024} * 95 / 100 ))
# Default Slurm batch_sched_delay=3 makes a queue of short jobs advance only every ~3 s;
# SCHED_PARAMS= (empty) restores Slurm defaults.
SCHED_PARAMS=${SCHED_PARAMS-batch_sched_delay=0,sched_min_interval=0}

write_conf() {
  mkdir -p "$SLURM_DIR"/{state,spool} "$(dirname "$SLURM_CONF")"
  cat > "$SLURM_CONF" <<EOF
ClusterName=$CLUSTER
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/$AUTH
CredType=cred/$([ "$AUTH" = munge ] && echo munge || echo none)
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$SLURM_DIR/jobcomp.txt
SchedulerType=sched/backfill
$([ -n "$SCHED_PARAMS" ] && echo "SchedulerParameters=$SCHED_PARAMS")
MailProg=/bin/true
$([ "$CPUS" -gt "$(nproc)" ] && echo "SlurmdParameters=config_overrides")
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MaxArraySize=10001
MaxJobCount=100000
MinJobAge=300
StateSaveLocation=$SLURM_DIR/state
SlurmdSpoolDir=$SLURM_DIR/spool
SlurmctldPidFile=$SLURM_DIR/slurmctld.pid
SlurmdPidFile=$SLURM_DIR/slurmd.pid
SlurmctldLogFile=$SLURM_DIR/slurmctld.log
SlurmdLogFile=$SLURM_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
  [ "$AUTH" = munge ] || return 0
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  chmod 0755 /run/munge
  [ -s /etc/munge/munge.key ] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
  if [ -f /run/munge/munged.pid ] && kill -0 "$(cat /run/munge/munged.pid)" 2>/dev/null; then return 0; fi
  runuser -u munge -- /usr/sbin/munged
  munge -n | unmunge > /dev/null   # sanity check
}

start() {
  write_conf
  start_munge
  # -c: clear saved state (fresh cluster every CI run); daemons fork into background and write pidfiles
  slurmctld -c
  slurmd
  for i in $(seq 1 60); do
    st=$(sinfo -h -N -o '%T' 2>/dev/null | head -1 || true)
    [ "$st" = idle ] && { echo "slurm up: node $HOST $st"; return 0; }
    sleep 0.5
  done
  echo "node not idle after 30s (state='$st')"; sinfo -N -l || true
  tail -20 "$SLURM_DIR/slurmctld.log" "$SLURM_DIR/slurmd.log" || true
  return 1
}

killpid() { # killpid PIDFILE NAME
  [ -f "$1" ] || return 0
  local p; p=$(cat "$1")
  if kill -0 "$p" 2>/dev/null; then
    kill "$p"; for i in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && kill -9 "$p"
    echo "stopped $2 ($p)"
  fi
  rm -f "$1"
}

stop() {
  killpid "$SLURM_DIR/slurmd.pid" slurmd
  killpid "$SLURM_DIR/slurmctld.pid" slurmctld
  [ "$AUTH" = munge ] && killpid /run/munge/munged.pid munged
  return 0
}

status() { sinfo; squeue; }

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  conf) write_conf; cat "$SLURM_CONF" ;;
  *) echo "usage: $0 start|stop|status|conf"; exit 2 ;;
esac
