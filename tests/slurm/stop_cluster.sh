#!/usr/bin/env bash
# Stop the single-node test cluster that tests/slurm/start_cluster.sh started (run as root):
#
#   tests/slurm/stop_cluster.sh            # slurmd, slurmctld, and munged if start_cluster.sh started it
#   tests/slurm/stop_cluster.sh --purge    # also forget its jobs, state, logs and slurm.conf
#
# Only daemons found through start_cluster.sh's pid files are stopped, so a system SLURM or munge on the
# same machine is left alone. Jobs still running are killed with the node (their slurmstepd goes with it).
set -euo pipefail

CONF_DIR=/etc/slurm
STATE_DIR=/var/spool/slurm-rankvideo
LOG_DIR=/var/log/slurm-rankvideo
MARKER="# Written by tests/slurm/start_cluster.sh"

log() { echo "stop_cluster: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
    log "must run as root (the daemons run as root and munge)"
    exit 1
fi
purge=0
case "${1:-}" in
    "") ;;
    --purge) purge=1 ;;
    *) log "usage: $0 [--purge]"; exit 2 ;;
esac

# Wait for the process to go: a new start_cluster.sh right after must not find the ports still bound.
stop_pidfile() {
    local name=$1 pidfile=$2 pid
    [ -s "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if ! kill -0 "$pid" 2>/dev/null; then
        rm -f "$pidfile"
        return 0
    fi
    kill -TERM "$pid"
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        # A zombie (no init reaping in some containers) is as good as gone.
        [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" = Z ] && break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null && [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" != Z ]; then
        log "$name (pid $pid) ignored SIGTERM for 10 s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    log "stopped $name (pid $pid)"
}

ours=0
if [ -f "$CONF_DIR/slurm.conf" ] && [[ "$(head -n1 "$CONF_DIR/slurm.conf")" == "$MARKER"* ]]; then
    ours=1
fi
ctld_pid=$(cat /run/slurmctld-rankvideo.pid 2>/dev/null || true)
if [ "$ours" = 1 ] && [ -n "$ctld_pid" ] && kill -0 "$ctld_pid" 2>/dev/null; then
    # Left-over jobs would be recovered from the saved state and run again at the next start.
    mapfile -t jobs < <(squeue -h -o %i 2>/dev/null | sort -u)
    if [ "${#jobs[@]}" -gt 0 ]; then
        scancel --quiet "${jobs[@]}" 2>/dev/null || true
        log "cancelled ${#jobs[@]} left-over job(s)"
    fi
fi
stop_pidfile slurmd /run/slurmd-rankvideo.pid
if [ "$ours" = 1 ]; then
    # Job steps outlive slurmd by design (to be adopted by the next one); here they must go with the node.
    for pid in $(pgrep -x slurmstepd || true); do kill -KILL "$pid" 2>/dev/null || true; done
fi
stop_pidfile slurmctld /run/slurmctld-rankvideo.pid
if [ -e "$STATE_DIR/started-munged" ]; then
    stop_pidfile munged /run/munge/munged.pid
    rm -f "$STATE_DIR/started-munged"
fi

if [ "$purge" = 1 ]; then
    rm -rf "$STATE_DIR" "$LOG_DIR"
    [ "$ours" = 1 ] && rm -f "$CONF_DIR/slurm.conf" "$CONF_DIR/cgroup.conf"
    log "purged $STATE_DIR, $LOG_DIR and the test slurm.conf"
fi
