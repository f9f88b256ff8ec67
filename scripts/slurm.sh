#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, with the PBS front-end.
#
# Installs (apt, only when missing) slurm-wlm, slurm-wlm-torque (qsub, qstat,
# qdel wrappers) and munge; creates the munge key; starts munged, slurmctld and
# slurmd directly (no systemd needed) and waits until the node is idle. It is
# what tests/scheduler.sh uses to submit pbs/*.pbs with `qsub` for real.
# Safe to run twice: `up` only (re)starts what is not running and only
# rewrites slurm.conf when its content changes.
set -euo pipefail

PROG=$(basename "$0")
SLURM_CONF=${SLURM_CONF:-/etc/slurm/slurm.conf}
STATE_DIR=/run/hpcmap-slurm        # marks which daemons this script started
WAIT_SECS=${HPCMAP_SLURM_WAIT:-60}
PACKAGES=(slurm-wlm slurm-wlm-torque munge)

usage() {
    cat <<EOF
Usage: $PROG up|down|status [--help]

Single-node Slurm (with Slurm's PBS qsub/qstat/qdel wrappers) on this machine.

Commands:
  up      install slurm-wlm slurm-wlm-torque munge with apt when missing,
          create the munge key, start munged, write $SLURM_CONF for this
          host (CPUs=\$(nproc), one default partition with OverSubscribe=YES),
          start slurmctld and slurmd, and wait (at most ${WAIT_SECS}s) until
          sinfo shows the node idle. Idempotent.
  down    stop slurmd and slurmctld (and munged if this script started it).
          Safe when nothing runs.
  status  show daemons, sinfo and squeue; exit code 1 when a daemon is
          not running.

Environment:
  HPCMAP_SLURM_WAIT  seconds to wait for the node to become idle (default 60)
  SLURM_CONF         config path (default /etc/slurm/slurm.conf)

Needs root. Daemons are started directly, not through systemd. Finished jobs
stay visible to 'scontrol show job' for 30 minutes (MinJobAge) and are logged
to /var/log/slurm/jobcomp.log (there is no slurmdbd, so no sacct).
EOF
}

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { log "error: $*"; exit 1; }

need_root() { [ "$(id -u)" -eq 0 ] || die "must run as root"; }

# pid_alive PIDFILE: true when the pid in PIDFILE is a live process.
pid_alive() {
    local pid
    [ -s "$1" ] || return 1
    pid=$(cat "$1" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

install_packages() {
    local missing=()
    command -v slurmctld >/dev/null || missing+=(slurm-wlm)
    command -v slurmd >/dev/null || missing+=(slurm-wlm)
    command -v qsub >/dev/null || missing+=(slurm-wlm-torque)
    command -v munged >/dev/null || missing+=(munge)
    command -v sinfo >/dev/null || missing+=(slurm-wlm)
    [ "${#missing[@]}" -eq 0 ] && return 0
    log "installing ${PACKAGES[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Use the package lists as they are; refresh them only if that fails.
    if ! apt-get install -y -q "${PACKAGES[@]}" >/tmp/hpcmap-slurm-apt.log 2>&1; then
        apt-get update -q >>/tmp/hpcmap-slurm-apt.log 2>&1 || true
        apt-get install -y -q "${PACKAGES[@]}" >>/tmp/hpcmap-slurm-apt.log 2>&1 ||
            { tail -20 /tmp/hpcmap-slurm-apt.log >&2; die "apt-get install failed"; }
    fi
    # The packages may start daemons through invoke-rc.d; we manage our own.
}

start_munge() {
    mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge "$STATE_DIR"
    if [ ! -s /etc/munge/munge.key ]; then
        log "creating munge key"
        if command -v mungekey >/dev/null; then
            mungekey -c -f -k /etc/munge/munge.key
        else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
        fi
    fi
    chown munge:munge /etc/munge /etc/munge/munge.key /var/lib/munge /var/log/munge /run/munge
    chmod 700 /etc/munge
    chmod 400 /etc/munge/munge.key
    chmod 755 /run/munge
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return 0
    fi
    log "starting munged"
    rm -f /run/munge/munged.pid
    runuser -u munge -- munged
    touch "$STATE_DIR/munged.started"
    for _ in $(seq 1 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "munged does not answer"
}

node_name() { hostname -s; }

write_conf() {
    local host cpus mem_mb tmp
    host=$(node_name)
    cpus=$(nproc)
    # RealMemory must not exceed what slurmd measures, or the node drains.
    mem_mb=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
    [ "$mem_mb" -gt 0 ] || mem_mb=1000
    mkdir -p "$(dirname "$SLURM_CONF")" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
    tmp=$(mktemp)
    cat >"$tmp" <<EOF
# Written by scripts/slurm.sh (hpcmap): a single-node cluster for testing
# the PBS/Slurm job templates. Rewritten by 'scripts/slurm.sh up'.
ClusterName=hpcmap
SlurmctldHost=$host(127.0.0.1)
AuthType=auth/munge
CryptoType=crypto/munge
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
# Keep finished jobs visible to scontrol/qstat for 30 minutes.
MinJobAge=1800
KillWait=10
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
MaxArraySize=1001
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=batch Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
    if [ -f "$SLURM_CONF" ] && cmp -s "$tmp" "$SLURM_CONF"; then
        rm -f "$tmp"
        return 1 # unchanged
    fi
    log "writing $SLURM_CONF"
    install -m 644 "$tmp" "$SLURM_CONF"
    rm -f "$tmp"
    return 0
}

stop_daemon() { # NAME PIDFILE
    local name=$1 pidfile=$2 pid
    pid_alive "$pidfile" || { rm -f "$pidfile"; return 0; }
    pid=$(cat "$pidfile")
    log "stopping $name (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name did not stop; sending SIGKILL"
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

node_state() { timeout 10 sinfo -h -N -n "$(node_name)" -o '%T' 2>/dev/null | head -1; }

cmd_up() {
    need_root
    install_packages
    start_munge
    local changed=0
    write_conf && changed=1
    if [ "$changed" -eq 1 ]; then
        # A running daemon would keep the old config.
        stop_daemon slurmd /run/slurmd.pid
        stop_daemon slurmctld /run/slurmctld.pid
    fi
    if ! pid_alive /run/slurmctld.pid; then
        log "starting slurmctld"
        slurmctld
    fi
    if ! pid_alive /run/slurmd.pid; then
        log "starting slurmd"
        slurmd
    fi
    local deadline state
    deadline=$((SECONDS + WAIT_SECS))
    while :; do
        state=$(node_state || true)
        case "$state" in
        idle | mixed | allocated | completing)
            log "node $(node_name) is $state"
            return 0
            ;;
        down* | drain* | fail*)
            # Left over from an earlier run (e.g. a slurmd that was killed).
            scontrol update NodeName="$(node_name)" State=RESUME >/dev/null 2>&1 || true
            ;;
        esac
        if [ "$SECONDS" -ge "$deadline" ]; then
            sinfo -N -l >&2 || true
            tail -5 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
            die "node $(node_name) not idle after ${WAIT_SECS}s (state: ${state:-unknown})"
        fi
        sleep 0.5
    done
}

cmd_down() {
    need_root
    stop_daemon slurmd /run/slurmd.pid
    stop_daemon slurmctld /run/slurmctld.pid
    if [ -e "$STATE_DIR/munged.started" ]; then
        stop_daemon munged /run/munge/munged.pid
        rm -f "$STATE_DIR/munged.started"
    fi
    log "down"
}

cmd_status() {
    local name pidfile rc=0
    for name in munged slurmctld slurmd; do
        case $name in
        munged) pidfile=/run/munge/munged.pid ;;
        *) pidfile=/run/$name.pid ;;
        esac
        if pid_alive "$pidfile"; then
            echo "$name: running (pid $(cat "$pidfile"))"
        else
            echo "$name: stopped"
            rc=1
        fi
    done
    if [ "$rc" -eq 0 ]; then
        sinfo -N -l || rc=1
        squeue || rc=1
    fi
    return "$rc"
}

main() {
    case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    -h | --help | help) usage ;;
    "") usage >&2; exit 2 ;;
    *) log "unknown command: $1"; usage >&2; exit 2 ;;
    esac
}

main "$@"
