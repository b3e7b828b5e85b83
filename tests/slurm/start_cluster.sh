#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine, for tests and CI (Debian/Ubuntu, run as root).
#
#   apt-get install -y slurm-wlm munge      # once
#   tests/slurm/start_cluster.sh            # idempotent: does nothing when the cluster already answers
#   tests/slurm/stop_cluster.sh [--purge]   # stop it (--purge: also its state, logs and slurm.conf)
#
# A re-run after a change to the configuration below (or to the machine's CPUs/memory) restarts the daemons
# so that the change takes effect. An /etc/slurm/slurm.conf that this script did not write is never touched.
#
# One node (this host, its real hostname), one partition "debug", no cgroups (proctrack/linuxproc,
# task/none) and no GPU gres, so it runs inside containers. Job output goes where sbatch says.
set -euo pipefail

CONF_DIR=/etc/slurm
STATE_DIR=/var/spool/slurm-rankvideo
LOG_DIR=/var/log/slurm-rankvideo
# The first line of the slurm.conf this script writes: how stop_cluster.sh and a re-run recognise it.
MARKER="# Written by tests/slurm/start_cluster.sh"

log() { echo "start_cluster: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
    log "must run as root (it writes $CONF_DIR and starts munged, slurmctld, slurmd)"
    exit 1
fi
for tool in munged slurmctld slurmd sinfo; do
    if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
        log "$tool not found: apt-get install -y slurm-wlm munge"
        exit 1
    fi
done
export PATH="$PATH:/usr/sbin"

# Never overwrite the configuration of a real SLURM installation.
if [ -e "$CONF_DIR/slurm.conf" ] && [[ "$(head -n1 "$CONF_DIR/slurm.conf")" != "$MARKER"* ]]; then
    log "$CONF_DIR/slurm.conf was not written by this script: refusing to replace a real SLURM configuration"
    exit 1
fi

host=$(hostname -s)
# not plain nproc: it answers OMP_NUM_THREADS when that is set (pytest-xdist workers set it to 1)
cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
# Leave the OS some memory; slurmd refuses a node that claims more than it has.
memory_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)

mkdir -p "$CONF_DIR" "$STATE_DIR/ctld" "$STATE_DIR/d" "$LOG_DIR" /run/munge /var/lib/munge /var/log/munge
if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null ||
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 0700 /etc/munge
chmod 0400 /etc/munge/munge.key
chmod 0755 /run/munge
start_munged() {
    if ! pgrep -x -r R,S,D,I munged >/dev/null; then
        runuser -u munge -- /usr/sbin/munged
        # stop_cluster.sh stops munged only if this script started it (a system munged may serve others).
        touch "$STATE_DIR/started-munged"
    fi
    for _ in $(seq 50); do munge -n >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n | unmunge >/dev/null
}
start_munged

conf=$(
    cat <<CONF
$MARKER
# A one-node test cluster.
ClusterName=rankvideo-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
# Test all pending jobs every 2 s (default 60 s; backfill every 30 s): a requeued task's begin time passing is
# no event that wakes the scheduler, and a test would wait for the next pass.
SchedulerParameters=sched_interval=2,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
JobRequeue=1
# A requeued job waits cred_expire + 1 s before it may start again (default 120 s: too slow for tests).
AuthInfo=cred_expire=5
KillWait=30
MinJobAge=3600
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE_DIR/ctld
SlurmdSpoolDir=$STATE_DIR/d
SlurmctldPidFile=/run/slurmctld-rankvideo.pid
SlurmdPidFile=/run/slurmd-rankvideo.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
DefMemPerCPU=$((memory_mb / cpus))
NodeName=$host CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
)
if [ "$conf" = "$(cat "$CONF_DIR/slurm.conf" 2>/dev/null)" ]; then
    if sinfo -h -o '%T' 2>/dev/null | grep -qxE '(idle|mixed|allocated)'; then
        log "cluster already up"
        exit 0
    fi
elif pgrep -x -r R,S,D,I 'slurm(ctl)?d' >/dev/null; then
    # Daemons running with an older configuration (this script changed, or the machine did) would ignore
    # the new one: restart them.
    log "the test cluster's configuration changed: restarting it"
    "$(dirname "$0")/stop_cluster.sh"
    start_munged # the stop took the munged this script started with it
fi
printf '%s\n' "$conf" >"$CONF_DIR/slurm.conf"
rm -f "$CONF_DIR/cgroup.conf"

pgrep -x -r R,S,D,I slurmctld >/dev/null || /usr/sbin/slurmctld
if ! pgrep -x -r R,S,D,I slurmd >/dev/null; then
    # slurmd (22.05) always loads a cgroup plugin even with proctrack/linuxproc; in a container with only a
    # systemd-less cgroup v2 the default autodetection can fail: retry telling it to leave systemd alone.
    if ! /usr/sbin/slurmd; then
        log "slurmd failed with the default cgroup settings; retrying with IgnoreSystemd=yes"
        printf 'CgroupPlugin=autodetect\nIgnoreSystemd=yes\n' >"$CONF_DIR/cgroup.conf"
        /usr/sbin/slurmd
    fi
fi

for _ in $(seq 100); do
    state=$(sinfo -h -o '%T' 2>/dev/null | head -n1 || true)
    case "$state" in
        idle | mixed | allocated) log "cluster up: node $host ($cpus CPUs, ${memory_mb} MB), partition debug"; exit 0 ;;
        down* | drain* | inval*) scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 0.2
done
log "the cluster did not come up; last node state: ${state:-none}"
tail -n 20 "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" >&2 || true
exit 1
