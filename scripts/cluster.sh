#!/usr/bin/env bash
# A multi-node MPI "cluster" on one machine, built from network namespaces.
#
# Each node is a network namespace nodeN with a veth pair (eth0 inside) plugged
# into a bridge that has no address on the host, an address on a private /24
# that does not collide with any network the host knows, and its own hostname
# (set by `unshare --uts` whenever something is started in it). OpenMPI is wired
# to it through an rsh agent and a hostfile kept in a state directory.
# With --login, a namespace "login" on the same bridge plays the login node
# (scripts/slurm.sh runs slurmctld and the Slurm clients there).
set -euo pipefail

PROG=$(basename "$0")
STATE_DIR=${HPCMAP_CLUSTER_DIR:-/tmp/hpcmap-cluster}
BRIDGE=${HPCMAP_CLUSTER_BRIDGE:-hpcmapbr0}
VETH_PREFIX=hpcmapv            # host side of node N's veth: hpcmapvN
HOSTS_FILE=${HPCMAP_HOSTS_FILE:-/etc/hosts}
MARK_BEGIN="# >>> hpcmap-cluster (managed by scripts/cluster.sh; removed by 'down') >>>"
MARK_END="# <<< hpcmap-cluster <<<"
# Private /24s tried in order; the first one that overlaps nothing on the host wins.
SUBNET_CANDIDATES=(10.231.0 10.231.77 10.199.31 172.31.231 192.168.231 10.87.13)
MAX_NODES=200
LOGIN_NS=login                 # the login node's namespace and hostname
LOGIN_HOST_ID=254              # its address: SUBNET.254

usage() {
    cat <<EOF
Usage: $PROG up|down|status|exec|login [options]

Multi-node MPI cluster on this machine from network namespaces node1..nodeK.

Commands:
  up       create (or update) the cluster; idempotent. Re-running with another
           --rate re-applies the cap; another --nodes adds/removes nodes.
  down     remove everything: namespaces, veths, bridge, /etc/hosts entries,
           state directory. Safe to run on a partial or absent cluster.
  status   show nodes, addresses, hostnames and bandwidth caps.
  exec ARGS...
           run 'mpirun <wiring> ARGS...' on the cluster, with mpirun started
           inside node1. Example:
             $PROG exec -n 4 target/release/hpcmap run square --items 1000000
  login CMD [ARGS...]
           run CMD inside the login namespace as host 'login' (needs
           'up --login'), e.g. $PROG login ping -c1 node2

Options for 'up':
  --nodes K    number of nodes (default 2)
  --slots S    slots per node in the hostfile (default 2)
  --rate RATE  per-node egress bandwidth cap for tc tbf, e.g. 1gbit, 100mbit;
               'none' (the default when omitted) removes any cap
  --login      also create the namespace 'login' (address .254, no cap): a
               login node on the cluster's network. Kept by later 'up's
               until 'down'.
  --help       this text

Environment:
  HPCMAP_CLUSTER_DIR   state directory (default /tmp/hpcmap-cluster); it holds
                       rsh-agent, hostfile, mpirun (wrapper) and cluster.env
  HPCMAP_HOSTS_FILE    hosts file that gets the node names (default /etc/hosts)

Needs root. Installs iproute2, util-linux (and openmpi-bin for 'exec') with apt
when missing. Traffic stays between the namespaces: the bridge has no host
address and the subnet is chosen so that it overlaps no host route.
EOF
}

die() { echo "$PROG: error: $*" >&2; exit 1; }
log() { echo "$PROG: $*" >&2; }

need_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces, /etc/hosts)"
}

apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "missing $* and no apt-get to install it"
    log "installing $* with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "$@" >/dev/null; then
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends "$@" >/dev/null
    fi
}

ensure_cmd() { # ensure_cmd COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 || apt_install "$2"
    command -v "$1" >/dev/null 2>&1 || die "'$1' still missing after installing $2"
}

ensure_base_deps() {
    ensure_cmd ip iproute2
    ensure_cmd tc iproute2
    ensure_cmd unshare util-linux
    ensure_cmd nsenter util-linux
}

# ---------------------------------------------------------------- state
load_state() {
    NODES_STATE=0 SUBNET="" RATE_STATE=none SLOTS_STATE=2 LOGIN_STATE=0
    if [[ -f $STATE_DIR/cluster.env ]]; then
        # shellcheck disable=SC1091
        . "$STATE_DIR/cluster.env"
        NODES_STATE=${NODES:-0} SUBNET=${SUBNET:-} RATE_STATE=${RATE:-none} SLOTS_STATE=${SLOTS:-2}
        LOGIN_STATE=${LOGIN:-0}
    fi
}

save_state() { # save_state NODES SLOTS SUBNET RATE LOGIN
    mkdir -p "$STATE_DIR"
    cat >"$STATE_DIR/cluster.env.tmp" <<EOF
# written by scripts/cluster.sh
NODES=$1
SLOTS=$2
SUBNET=$3
RATE=$4
LOGIN=$5
BRIDGE=$BRIDGE
EOF
    mv "$STATE_DIR/cluster.env.tmp" "$STATE_DIR/cluster.env"
}

# Namespaces are recorded before they are created, so 'down' finds them even
# after a failure half-way through 'up'.
record_ns() {
    mkdir -p "$STATE_DIR"
    touch "$STATE_DIR/namespaces"
    grep -qx "$1" "$STATE_DIR/namespaces" || echo "$1" >>"$STATE_DIR/namespaces"
}

ns_exists() { [[ -e /run/netns/$1 ]] || ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$1"; }

# ---------------------------------------------------------------- subnet choice
ip2int() {
    local a b c d
    IFS=. read -r a b c d <<<"$1"
    echo $(((a << 24) | (b << 16) | (c << 8) | d))
}

# Every IPv4 prefix the host knows (routes in all tables, addresses), as a.b.c.d/len.
host_prefixes() {
    ip -4 route show table all 2>/dev/null | awk '
        { p = $1
          if (p ~ /^(local|broadcast|unicast|multicast|anycast|unreachable|blackhole|prohibit|throw|nat)$/) p = $2
          if (p == "default") next
          if (p !~ /\//) p = p "/32"
          print p }'
    ip -4 -o addr show 2>/dev/null | awk '{print $4}'
}

prefix_overlaps() { # prefix_overlaps NET/LEN NET/LEN
    local n1=${1%/*} l1=${1#*/} n2=${2%/*} l2=${2#*/} l mask
    l=$((l1 < l2 ? l1 : l2))
    mask=$(((0xFFFFFFFF << (32 - l)) & 0xFFFFFFFF))
    (( ($(ip2int "$n1") & mask) == ($(ip2int "$n2") & mask) ))
}

choose_subnet() {
    local cand p ok prefixes
    prefixes=$(host_prefixes | sort -u)
    for cand in "${SUBNET_CANDIDATES[@]}"; do
        ok=1
        while read -r p; do
            [[ -n $p ]] || continue
            if prefix_overlaps "$cand.0/24" "$p"; then ok=0; break; fi
        done <<<"$prefixes"
        if ((ok)); then echo "$cand"; return 0; fi
    done
    die "no free private /24 among: ${SUBNET_CANDIDATES[*]}"
}

# ---------------------------------------------------------------- wiring files
write_wiring() { # write_wiring NODES SLOTS
    local nodes=$1 slots=$2 i
    mkdir -p "$STATE_DIR"
    cat >"$STATE_DIR/rsh-agent" <<'EOF'
#!/bin/sh
# rsh agent for OpenMPI: "rsh-agent HOST COMMAND..." runs COMMAND inside the
# network namespace HOST with the hostname HOST (own UTS namespace).
host=$1
shift
exec ip netns exec "$host" unshare --uts sh -c "hostname $host; $*"
EOF
    chmod 755 "$STATE_DIR/rsh-agent"

    : >"$STATE_DIR/hostfile.tmp"
    for ((i = 1; i <= nodes; i++)); do
        echo "node$i slots=$slots" >>"$STATE_DIR/hostfile.tmp"
    done
    mv "$STATE_DIR/hostfile.tmp" "$STATE_DIR/hostfile"

    cat >"$STATE_DIR/mpirun" <<EOF
#!/bin/sh
# mpirun on the hpcmap namespace cluster (started inside node1 as host node1).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
exec ip netns exec node1 unshare --uts sh -c 'hostname node1; exec "\$@"' sh \\
    mpirun --hostfile "$STATE_DIR/hostfile" \\
    --mca plm_rsh_agent "$STATE_DIR/rsh-agent" \\
    --mca btl tcp,self,vader --mca btl_tcp_if_include eth0 --mca oob_tcp_if_include eth0 \\
    "\$@"
EOF
    chmod 755 "$STATE_DIR/mpirun"
}

# Rewrite the managed block of /etc/hosts in place (keeps the inode: /etc/hosts
# is often a bind mount in containers).
hosts_block_remove() {
    [[ -f $HOSTS_FILE ]] || return 0
    grep -qxF "$MARK_BEGIN" "$HOSTS_FILE" || return 0
    local tmp
    tmp=$(mktemp)
    awk -v b="$MARK_BEGIN" -v e="$MARK_END" '
        $0 == b { skip = 1; next }
        skip && $0 == e { skip = 0; next }
        !skip' "$HOSTS_FILE" >"$tmp"
    cat "$tmp" >"$HOSTS_FILE"
    rm -f "$tmp"
}

hosts_block_write() { # hosts_block_write NODES SUBNET LOGIN
    local nodes=$1 subnet=$2 login=$3 i
    hosts_block_remove
    # A file without a final newline would glue the marker to its last line.
    [[ ! -s $HOSTS_FILE || -z $(tail -c 1 "$HOSTS_FILE") ]] || echo >>"$HOSTS_FILE"
    {
        echo "$MARK_BEGIN"
        for ((i = 1; i <= nodes; i++)); do
            echo "$subnet.$i node$i"
        done
        ((login)) && echo "$subnet.$LOGIN_HOST_ID $LOGIN_NS"
        echo "$MARK_END"
    } >>"$HOSTS_FILE"
}

# ---------------------------------------------------------------- up
disable_ipv6() { # disable_ipv6 [netns] IFACE  -- keep the links quiet (no RS/DAD/MLD)
    local f
    if [[ $# -eq 2 ]]; then
        ip netns exec "$1" sh -c "echo 1 > /proc/sys/net/ipv6/conf/$2/disable_ipv6" 2>/dev/null || true
    else
        f=/proc/sys/net/ipv6/conf/$1/disable_ipv6
        if [[ -w $f ]]; then echo 1 >"$f" 2>/dev/null || true; fi
    fi
}

node_up() { # node_up I SUBNET RATE
    ns_up "node$1" "$VETH_PREFIX$1" "$2.$1" "$3"
}

# ns_up NS VETH ADDRESS RATE: namespace NS on the bridge with ADDRESS/24 on its eth0.
ns_up() {
    local ns=$1 veth=$2 addr=$3 rate=$4
    record_ns "$ns"
    ns_exists "$ns" || ip netns add "$ns"
    # Inside the namespace: IPv6 off before any link comes up.
    # shellcheck disable=SC2016 # $f expands in the inner shell
    ip netns exec "$ns" sh -c 'for f in /proc/sys/net/ipv6/conf/all/disable_ipv6 /proc/sys/net/ipv6/conf/default/disable_ipv6; do [ -w "$f" ] && echo 1 > "$f"; done; true' 2>/dev/null || true
    if ! ip link show "$veth" >/dev/null 2>&1 || ! ip netns exec "$ns" ip link show eth0 >/dev/null 2>&1; then
        ip link del "$veth" 2>/dev/null || true
        ip netns exec "$ns" ip link del eth0 2>/dev/null || true
        ip link add "$veth" type veth peer name eth0 netns "$ns"
    fi
    disable_ipv6 "$veth"
    ip link set "$veth" master "$BRIDGE"
    ip link set "$veth" up
    ip netns exec "$ns" ip link set lo up
    disable_ipv6 "$ns" eth0
    ip netns exec "$ns" ip -4 addr flush dev eth0
    ip netns exec "$ns" ip addr add "$addr/24" dev eth0
    ip netns exec "$ns" ip link set eth0 up
    if [[ $rate == none ]]; then
        ip netns exec "$ns" tc qdisc del dev eth0 root 2>/dev/null || true
    else
        ip netns exec "$ns" tc qdisc replace dev eth0 root tbf rate "$rate" burst 256kb latency 50ms
    fi
}

node_down() { # node_down NAME (nodeK or login)
    local ns=$1 n=${1#node}
    ip link del "$VETH_PREFIX$n" 2>/dev/null || true
    if ns_exists "$ns"; then
        # Leftover processes (e.g. ranks of an interrupted job) keep the
        # namespace alive: end them by pid, TERM first, then KILL.
        local pids
        pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
        if [[ -n ${pids// /} ]]; then
            log "ending leftover processes in $ns: $pids"
            # shellcheck disable=SC2086 # word splitting of the pid list is wanted
            kill -TERM $pids 2>/dev/null || true
            sleep 1
            pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
            # shellcheck disable=SC2086
            [[ -z ${pids// /} ]] || kill -KILL $pids 2>/dev/null || true
        fi
        ip netns del "$ns" 2>/dev/null || true
    fi
}

cmd_up() {
    local nodes=2 slots=2 rate=none login=0 i
    while [[ $# -gt 0 ]]; do
        case $1 in
            --login) login=1; shift ;;
            --nodes) nodes=${2:?--nodes needs a value}; shift 2 ;;
            --nodes=*) nodes=${1#*=}; shift ;;
            --slots) slots=${2:?--slots needs a value}; shift 2 ;;
            --slots=*) slots=${1#*=}; shift ;;
            --rate) rate=${2:?--rate needs a value}; shift 2 ;;
            --rate=*) rate=${1#*=}; shift ;;
            -h | --help) usage; exit 0 ;;
            *) die "unknown option for up: $1 (see --help)" ;;
        esac
    done
    if ! [[ $nodes =~ ^[0-9]+$ ]] || ((nodes < 1 || nodes > MAX_NODES)); then
        die "--nodes must be 1..$MAX_NODES"
    fi
    if ! [[ $slots =~ ^[0-9]+$ ]] || ((slots < 1)); then
        die "--slots must be a positive integer"
    fi
    case $rate in
        none | off | "") rate=none ;;
        *) [[ $rate =~ ^[0-9]+(\.[0-9]+)?([kmgt]?(bit|bps))$ ]] || die "--rate must look like 100mbit or 1gbit (or 'none'), got '$rate'" ;;
    esac
    need_root
    ensure_base_deps

    load_state
    if [[ -z $SUBNET ]]; then
        SUBNET=$(choose_subnet)
    fi
    ((LOGIN_STATE)) && login=1 # a login node stays until 'down'
    save_state "$nodes" "$slots" "$SUBNET" "$rate" "$login"

    # Fewer nodes than before: drop the extra ones.
    if ((NODES_STATE > nodes)); then
        for ((i = nodes + 1; i <= NODES_STATE; i++)); do node_down "node$i"; done
    fi

    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link add "$BRIDGE" type bridge
    fi
    disable_ipv6 "$BRIDGE"
    ip -4 addr flush dev "$BRIDGE" 2>/dev/null || true
    ip link set "$BRIDGE" up

    for ((i = 1; i <= nodes; i++)); do
        node_up "$i" "$SUBNET" "$rate"
    done
    if ((login)); then
        ns_up "$LOGIN_NS" "${VETH_PREFIX}$LOGIN_NS" "$SUBNET.$LOGIN_HOST_ID" none
    fi
    write_wiring "$nodes" "$slots"
    hosts_block_write "$nodes" "$SUBNET" "$login"

    # Quick reachability check node1 -> nodeN (inside the bridge only).
    for ((i = 2; i <= nodes; i++)); do
        if command -v ping >/dev/null 2>&1; then
            ip netns exec node1 ping -c 1 -W 2 "$SUBNET.$i" >/dev/null 2>&1 ||
                log "warning: node1 cannot ping node$i ($SUBNET.$i)"
        fi
    done

    cat <<EOF
cluster up: $nodes node(s) x $slots slot(s), subnet $SUBNET.0/24, cap: $rate$( ((login)) && echo ", login node $LOGIN_NS ($SUBNET.$LOGIN_HOST_ID)")
state: $STATE_DIR (hostfile, rsh-agent, mpirun)
run a job on it:
  scripts/cluster.sh exec -n $((nodes * slots)) target/release/hpcmap run square --items 1000000
or directly:
  $STATE_DIR/mpirun -n $((nodes * slots)) hostname
tear down:
  scripts/cluster.sh down
EOF
}

# ---------------------------------------------------------------- down
cmd_down() {
    local nodes_opt=0 ns i
    while [[ $# -gt 0 ]]; do
        case $1 in
            --nodes) nodes_opt=${2:?}; shift 2 ;;
            --nodes=*) nodes_opt=${1#*=}; shift ;;
            -h | --help) usage; exit 0 ;;
            *) shift ;; # accept (and ignore) up's options
        esac
    done
    need_root
    load_state
    {
        [[ -f $STATE_DIR/namespaces ]] && cat "$STATE_DIR/namespaces"
        for ((i = 1; i <= NODES_STATE || i <= nodes_opt; i++)); do echo "node$i"; done
        # host-side veths left behind tell which nodes existed
        ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed -n "s/^$VETH_PREFIX\([0-9]\+\)@.*/node\1/p; s/^$VETH_PREFIX\([0-9]\+\)$/node\1/p"
        if ip -o link show "${VETH_PREFIX}$LOGIN_NS" >/dev/null 2>&1 || ns_exists "$LOGIN_NS"; then
            echo "$LOGIN_NS"
        fi
    } | sort -u | while read -r ns; do
        [[ $ns =~ ^node[0-9]+$ || $ns == "$LOGIN_NS" ]] || continue
        node_down "$ns"
    done
    ip link del "$BRIDGE" 2>/dev/null || true
    hosts_block_remove
    rm -rf "$STATE_DIR"
    echo "cluster down"
}

# ---------------------------------------------------------------- status
cmd_status() {
    [[ ${1:-} == -h || ${1:-} == --help ]] && { usage; exit 0; }
    load_state
    if [[ ! -f $STATE_DIR/cluster.env ]]; then
        echo "cluster: down (no state in $STATE_DIR)"
        return 1
    fi
    local i ns addr cap st up=1
    echo "cluster: $NODES_STATE node(s) x $SLOTS_STATE slot(s), subnet $SUBNET.0/24, bridge $BRIDGE, requested cap: $RATE_STATE"
    echo "state:   $STATE_DIR"
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        echo "bridge $BRIDGE: MISSING"; up=0
    fi
    printf '%-8s %-8s %-18s %-8s %s\n' NODE HOSTNAME ADDRESS LINK CAP
    for ((i = 1; i <= NODES_STATE; i++)); do
        ns=node$i
        if ! ns_exists "$ns"; then
            printf '%-8s %-8s %-18s %-8s %s\n' "$ns" - - MISSING -; up=0; continue
        fi
        addr=$(ip netns exec "$ns" ip -4 -o addr show dev eth0 2>/dev/null | awk '{print $4}' | head -1)
        st=$(ip netns exec "$ns" ip -o link show dev eth0 2>/dev/null | grep -q 'state UP\|LOWER_UP' && echo up || echo down)
        cap=$(ip netns exec "$ns" tc qdisc show dev eth0 root 2>/dev/null | sed -n 's/.*tbf .*rate \([^ ]*\).*/\1/p')
        printf '%-8s %-8s %-18s %-8s %s\n' "$ns" "$ns" "${addr:--}" "$st" "${cap:-none}"
        [[ -n $addr && $st == up ]] || up=0
    done
    if ((LOGIN_STATE)); then
        ns=$LOGIN_NS
        if ns_exists "$ns"; then
            addr=$(ip netns exec "$ns" ip -4 -o addr show dev eth0 2>/dev/null | awk '{print $4}' | head -1)
            printf '%-8s %-8s %-18s %-8s %s\n' "$ns" "$ns" "${addr:--}" "login" none
            [[ -n $addr ]] || up=0
        else
            printf '%-8s %-8s %-18s %-8s %s\n' "$ns" - - MISSING -; up=0
        fi
    fi
    if grep -qxF "$MARK_BEGIN" "$HOSTS_FILE" 2>/dev/null; then
        echo "$HOSTS_FILE: entries present"
    else
        echo "$HOSTS_FILE: entries MISSING"; up=0
    fi
    if ((up)); then
        echo "status: up"
    else
        echo "status: degraded (run 'up' again or 'down')"; return 1
    fi
}

# ---------------------------------------------------------------- exec
cmd_exec() {
    if [[ $# -eq 0 || $1 == -h || $1 == --help ]]; then
        usage; [[ $# -eq 0 ]] && exit 2; exit 0
    fi
    need_root
    [[ -x $STATE_DIR/mpirun && -f $STATE_DIR/cluster.env ]] || die "cluster is not up (run '$PROG up' first)"
    ensure_cmd mpirun openmpi-bin
    exec "$STATE_DIR/mpirun" "$@"
}

# ---------------------------------------------------------------- login
cmd_login() {
    if [[ $# -eq 0 || $1 == -h || $1 == --help ]]; then
        usage; [[ $# -eq 0 ]] && exit 2; exit 0
    fi
    need_root
    load_state
    if ! ((LOGIN_STATE)) || ! ns_exists "$LOGIN_NS"; then
        die "no login node (run '$PROG up --login' first)"
    fi
    # shellcheck disable=SC2016 # $1 and $@ expand in the inner shell
    exec ip netns exec "$LOGIN_NS" unshare --uts sh -c 'hostname "$1"; shift; exec "$@"' sh "$LOGIN_NS" "$@"
}

main() {
    local cmd=${1:-}
    [[ $# -gt 0 ]] && shift
    case $cmd in
        up) cmd_up "$@" ;;
        down) cmd_down "$@" ;;
        status) cmd_status "$@" ;;
        exec) cmd_exec "$@" ;;
        login) cmd_login "$@" ;;
        -h | --help | help) usage ;;
        "") usage >&2; exit 2 ;;
        *) echo "$PROG: unknown command '$cmd'" >&2; usage >&2; exit 2 ;;
    esac
}

main "$@"
