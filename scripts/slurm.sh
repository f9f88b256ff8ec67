#!/usr/bin/env bash
# A real Slurm on this machine, with the PBS front-end: single-node on the host
# ('up'), or multi-node on the namespace cluster of scripts/cluster.sh
# ('cluster-up': slurmctld on a login node, one slurmd per node).
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
# The multi-node Slurm: its config, spool, logs and pid files all live here.
CLUSTER_SLURM_DIR=${HPCMAP_SLURM_CLUSTER_DIR:-/var/lib/hpcmap-slurm-cluster}
CLUSTER_SH=$(cd "$(dirname "$0")" && pwd)/cluster.sh

usage() {
    cat <<EOF
Usage: $PROG up|down|status [--help]
       $PROG cluster-up [--nodes K] [--slots S] | cluster-down | cluster-status
       $PROG exec CMD [ARGS...]

Slurm (with Slurm's PBS qsub/qstat/qdel wrappers) on this machine.

Single node, on the host:
  up      install slurm-wlm slurm-wlm-torque munge with apt when missing,
          create the munge key, start munged, write $SLURM_CONF for this
          host (CPUs=\$(nproc), one default partition with OverSubscribe=YES),
          start slurmctld and slurmd, and wait (at most ${WAIT_SECS}s) until
          sinfo shows the node idle. Idempotent.
  down    stop slurmd and slurmctld (and munged if this script started it).
          Safe when nothing runs.
  status  show daemons, sinfo and squeue; exit code 1 when a daemon is
          not running.

Several nodes, on the namespace cluster (scripts/cluster.sh):
  cluster-up [--nodes K] [--slots S]
          bring up scripts/cluster.sh's nodes node1..nodeK (default 2) and
          its login node, then slurmctld in the namespace 'login' (hostname
          login) and one slurmd in each node's namespace with its own
          hostname, spool, log and pid file; wait until every node is idle.
          Each namespace sees its own /etc/slurm and /etc/openmpi (bind
          mounts in a private mount namespace): Slurm's config, and OpenMPI's
          wiring for the namespace network (btl tcp,vader,self on eth0,
          mpi_yield_when_idle 1). S slots (CPUs) per node, default 2.
          Idempotent.
  cluster-down
          stop every daemon and job process, remove the namespaces, the
          /etc/hosts entries and $CLUSTER_SLURM_DIR. Safe to run twice.
  cluster-status
          daemons and sinfo; exit code 1 when something is missing.
  exec CMD [ARGS...]
          run CMD where a user would: on the login node, e.g.
            $PROG exec sbatch -N 2 --ntasks-per-node=2 pbs/map.pbs
            $PROG exec qsub -l nodes=2:ppn=2 pbs/map.pbs
            $PROG exec squeue
          Jobs run on node1..nodeK; mpirun inside a job starts the remote
          ranks through Slurm (srun) by itself.

Environment:
  HPCMAP_SLURM_WAIT  seconds to wait for the node(s) to become idle (default 60)
  SLURM_CONF         single-node config path (default /etc/slurm/slurm.conf)
  HPCMAP_SLURM_CLUSTER_DIR  state of the multi-node Slurm
                     (default /var/lib/hpcmap-slurm-cluster)
  HPCMAP_CLUSTER_DIR state of scripts/cluster.sh (default /tmp/hpcmap-cluster)

Needs root. Daemons are started directly, not through systemd. Finished jobs
stay visible to 'scontrol show job' for 30 minutes (MinJobAge) and are logged
to /var/log/slurm/jobcomp.log (multi-node: logs/jobcomp.log in its state
directory; there is no slurmdbd, so no sacct). The single-node and the
multi-node Slurm can run at the same time (different network namespaces).
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
    if [ -e "$STATE_DIR/munged.started" ] && ! pid_alive "$CLUSTER_SLURM_DIR/slurmctld.pid"; then
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


# ================================================================ multi-node
# The namespace cluster's Slurm. Every daemon and client runs through in_ns:
# inside the node's network namespace (nsenter, which keeps the host's /sys
# and so its cgroup mounts; 'ip netns exec' would remount /sys and slurmd
# fails with "No filesystem mounted on /sys/fs/cgroup"), in its own UTS
# namespace with the node's hostname, and in a private mount namespace where
# the cluster's /etc/slurm and /etc/openmpi are bind-mounted over the host's.
# Jobs inherit all of it from their slurmd.

# in_ns NS CMD...: run CMD as host NS inside the namespace NS.
in_ns() {
    local ns=$1
    shift
    # shellcheck disable=SC2016 # expanded by the inner shell
    nsenter --net="/run/netns/$ns" unshare --mount --uts sh -c '
        dir=$1 ns=$2
        shift 2
        mount --bind "$dir/etc/slurm" /etc/slurm &&
            mount --bind "$dir/etc/openmpi" /etc/openmpi &&
            hostname "$ns" &&
            exec "$@"' sh "$CLUSTER_SLURM_DIR" "$ns" "$@"
}

cluster_env() { # reads scripts/cluster.sh's state: NODES, SUBNET, SLOTS
    local f=${HPCMAP_CLUSTER_DIR:-/tmp/hpcmap-cluster}/cluster.env
    SUBNET=""
    [ -f "$f" ] || return 1
    # shellcheck disable=SC1090
    . "$f"
}

cluster_write_conf() { # NODES SLOTS SUBNET
    local nodes=$1 slots=$2 subnet=$3 d=$CLUSTER_SLURM_DIR i list=""
    mkdir -p "$d/etc/slurm" "$d/ctld" "$d/logs"
    for ((i = 1; i <= nodes; i++)); do
        mkdir -p "$d/node$i"
        list+="${list:+,}node$i"
    done
    {
        cat <<EOF
# Written by scripts/slurm.sh cluster-up (hpcmap): a $nodes-node Slurm on the
# namespace cluster of scripts/cluster.sh. Removed by 'cluster-down'.
ClusterName=hpcmapns
SlurmctldHost=login($subnet.254)
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
# The nodes share this machine's cores: take CPUs= as configured.
SlurmdParameters=config_overrides
StateSaveLocation=$d/ctld
SlurmctldPidFile=$d/slurmctld.pid
SlurmctldLogFile=$d/logs/slurmctld.log
# One slurmd per node on one machine: %n is the node's name.
SlurmdSpoolDir=$d/%n
SlurmdPidFile=$d/%n/slurmd.pid
SlurmdLogFile=$d/logs/slurmd-%n.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$d/logs/jobcomp.log
MinJobAge=1800
KillWait=10
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
MaxArraySize=1001
EOF
        for ((i = 1; i <= nodes; i++)); do
            echo "NodeName=node$i NodeAddr=$subnet.$i CPUs=$slots RealMemory=1000 State=UNKNOWN"
        done
        echo "PartitionName=batch Nodes=$list Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES"
    } >"$d/etc/slurm/slurm.conf.new"
    : >"$d/etc/slurm/plugstack.conf"
    # OpenMPI on the nodes, as a site would set it in /etc/openmpi: TCP
    # between nodes over eth0 (the only link), shared memory within one, and
    # ranks that yield when idle (the nodes share this machine's cores; ranks
    # spinning in MPI starve the kernel's packet processing).
    rm -rf "$d/etc/openmpi"
    cp -a /etc/openmpi "$d/etc/openmpi"
    sed -i 's/^\( *btl *=\)/# (hpcmap) \1/' "$d/etc/openmpi/openmpi-mca-params.conf"
    cat >>"$d/etc/openmpi/openmpi-mca-params.conf" <<'EOF'
# --- hpcmap namespace cluster (scripts/slurm.sh cluster-up) ---
btl = tcp,vader,self
btl_tcp_if_include = eth0
oob_tcp_if_include = eth0
mpi_yield_when_idle = 1
EOF
}

# cluster_states: "node state" per node, as the login node sees them.
cluster_states() {
    in_ns login timeout 10 sinfo -h -N -o '%N %T' 2>/dev/null
}

cmd_cluster_up() {
    local nodes=2 slots=2 i
    while [ $# -gt 0 ]; do
        case $1 in
        --nodes) nodes=${2:?--nodes needs a value}; shift 2 ;;
        --nodes=*) nodes=${1#*=}; shift ;;
        --slots) slots=${2:?--slots needs a value}; shift 2 ;;
        --slots=*) slots=${1#*=}; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option for cluster-up: $1" ;;
        esac
    done
    [[ $nodes =~ ^[1-9][0-9]*$ ]] || die "--nodes must be a positive integer"
    [[ $slots =~ ^[1-9][0-9]*$ ]] || die "--slots must be a positive integer"
    need_root
    install_packages
    if ! command -v mpirun >/dev/null || [ ! -d /etc/openmpi ]; then
        log "installing openmpi-bin"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q openmpi-bin >/dev/null 2>&1 ||
            { apt-get update -q >/dev/null 2>&1
              DEBIAN_FRONTEND=noninteractive apt-get install -y -q openmpi-bin >/dev/null; } ||
            die "apt-get install openmpi-bin failed"
    fi
    local had_munge=0
    [ -e "$STATE_DIR/munged.started" ] && had_munge=1
    start_munge
    bash "$CLUSTER_SH" up --nodes "$nodes" --slots "$slots" --login >&2 ||
        die "scripts/cluster.sh up failed"
    cluster_env || die "no cluster state after scripts/cluster.sh up"
    cluster_write_conf "$nodes" "$slots" "$SUBNET"
    # munged started here belongs to the cluster: cluster-down stops it.
    if [ "$had_munge" -eq 0 ] && [ -e "$STATE_DIR/munged.started" ]; then
        touch "$CLUSTER_SLURM_DIR/munged.started"
    fi
    local conf=$CLUSTER_SLURM_DIR/etc/slurm/slurm.conf
    if ! cmp -s "$conf.new" "$conf"; then
        cluster_stop_daemons # a running daemon would keep the old config
        mv -f "$conf.new" "$conf"
    else
        rm -f "$conf.new"
    fi
    if ! pid_alive "$CLUSTER_SLURM_DIR/slurmctld.pid"; then
        log "starting slurmctld on login"
        in_ns login slurmctld || die "slurmctld failed: $(tail -5 "$CLUSTER_SLURM_DIR/logs/slurmctld.log" 2>&1)"
    fi
    for ((i = 1; i <= nodes; i++)); do
        if ! pid_alive "$CLUSTER_SLURM_DIR/node$i/slurmd.pid"; then
            log "starting slurmd on node$i"
            in_ns "node$i" slurmd -N "node$i" ||
                die "slurmd on node$i failed: $(tail -5 "$CLUSTER_SLURM_DIR/logs/slurmd-node$i.log" 2>&1)"
        fi
    done
    local deadline=$((SECONDS + WAIT_SECS)) states ready
    while :; do
        states=$(cluster_states || true)
        ready=$(awk '$2 ~ /^(idle|mixed|allocated|completing)$/' <<<"$states" | wc -l)
        if [ "$ready" -eq "$nodes" ]; then
            log "cluster Slurm up: $(tr '\n' ' ' <<<"$states")"
            log "submit on the login node: $PROG exec sbatch|qsub ...; tear down: $PROG cluster-down"
            return 0
        fi
        if grep -qE ' (down|drain|fail)' <<<"$states"; then
            in_ns login scontrol update NodeName="node[1-$nodes]" State=RESUME >/dev/null 2>&1 || true
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            printf '%s\n' "$states" >&2
            tail -n 5 "$CLUSTER_SLURM_DIR"/logs/*.log >&2 || true
            die "cluster nodes not idle after ${WAIT_SECS}s"
        fi
        sleep 0.5
    done
}

cluster_stop_daemons() {
    local f
    for f in "$CLUSTER_SLURM_DIR"/node*/slurmd.pid; do
        [ -e "$f" ] && stop_daemon "slurmd ($(basename "$(dirname "$f")"))" "$f"
    done
    stop_daemon "slurmctld (login)" "$CLUSTER_SLURM_DIR/slurmctld.pid"
    return 0
}

cmd_cluster_down() {
    need_root
    cluster_stop_daemons
    # Job processes left in the namespaces (slurmstepd, mpirun, ranks) end
    # with them: scripts/cluster.sh down ends every process in a namespace,
    # then removes the namespaces, the bridge and the /etc/hosts entries.
    bash "$CLUSTER_SH" down >/dev/null || log "warning: scripts/cluster.sh down failed"
    if [ -e "$CLUSTER_SLURM_DIR/munged.started" ] && ! pid_alive /run/slurmctld.pid &&
        [ -e "$STATE_DIR/munged.started" ]; then
        stop_daemon munged /run/munge/munged.pid # started for the cluster, unused now
        rm -f "$STATE_DIR/munged.started"
    fi
    rm -rf "$CLUSTER_SLURM_DIR"
    log "cluster Slurm down"
}

cmd_cluster_status() {
    local rc=0 d
    if pid_alive "$CLUSTER_SLURM_DIR/slurmctld.pid"; then
        echo "slurmctld (login): running (pid $(cat "$CLUSTER_SLURM_DIR/slurmctld.pid"))"
    else
        echo "slurmctld (login): stopped"
        rc=1
    fi
    for d in "$CLUSTER_SLURM_DIR"/node*; do
        [ -d "$d" ] || { echo "no cluster Slurm in $CLUSTER_SLURM_DIR"; rc=1; continue; }
        if pid_alive "$d/slurmd.pid"; then
            echo "slurmd ($(basename "$d")): running (pid $(cat "$d/slurmd.pid"))"
        else
            echo "slurmd ($(basename "$d")): stopped"
            rc=1
        fi
    done
    if [ "$rc" -eq 0 ]; then cluster_states || rc=1; fi
    return "$rc"
}

cmd_exec() {
    [ $# -gt 0 ] || { usage >&2; exit 2; }
    need_root
    pid_alive "$CLUSTER_SLURM_DIR/slurmctld.pid" || die "the cluster Slurm is not up (run '$PROG cluster-up')"
    in_ns login "$@"
}

main() {
    local cmd=${1:-}
    [ $# -gt 0 ] && shift
    case "$cmd" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    cluster-up) cmd_cluster_up "$@" ;;
    cluster-down) cmd_cluster_down ;;
    cluster-status) cmd_cluster_status ;;
    exec) cmd_exec "$@" ;;
    -h | --help | help) usage ;;
    "") usage >&2; exit 2 ;;
    *) log "unknown command: $cmd"; usage >&2; exit 2 ;;
    esac
}

main "$@"
