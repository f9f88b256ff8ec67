#!/usr/bin/env bash
# One node or several? Runs the same hpcmap workload on 1 node x P ranks and on
# K nodes x P/K ranks, each explained by the network model of the links it
# used (shared memory inside a node, the network between nodes), and prints
# one table plus a verdict: which placement wins, by how much, and why.
set -euo pipefail

PROG=$(basename "$0")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CLUSTER=$ROOT/scripts/cluster.sh
BIN=${HPCMAP_BIN:-$ROOT/target/release/hpcmap}

usage() {
    cat <<EOF
Usage: scripts/$PROG [--ranks P] [--nodes K] [--rate RATE] [--repeat R]
                          [--out DIR] [--keep] [--help] [-- WORKLOAD ARGS...]

Runs 'hpcmap run WORKLOAD ARGS' on 1 node x P ranks and on K nodes x P/K ranks
and prints one table (wall, phases, bytes moved, model vs measured
communication per link, communication share of the wall) and a verdict
line, e.g.
  verdict: 1 node x 4 wins by 20.1x: across 2 nodes, moving 48.0 MB (32.0 MB
  over the link) took 93% of the wall (model: 2.686 s, 2.684 s of it over
  node1 <-> node2 at 11.9 MB/s)

Options:
  --ranks P      MPI ranks in both placements (default 4)
  --nodes K      nodes of the spread placement (default 2; K must divide P)
  --rate RATE    per-node bandwidth cap of the namespace cluster, as for
                 'scripts/cluster.sh up --rate' (default 1gbit; 'none': no cap).
                 Ignored inside a PBS/Slurm allocation.
  --repeat R     runs per placement; the table shows the run with the median
                 wall (default 3)
  --out DIR      where records, models and logs go (default /tmp/hpcmap-compare)
  --keep         leave the namespace cluster up at the end
  --pingpong-max-bytes N
                 largest pingpong message (default 2 MiB: well past a tbf
                 cap's 256 kB burst, and a few seconds at 100mbit)
  --network FILE use the fits in FILE (from an earlier 'hpcmap bench
                 pingpong' on these hosts) instead of measuring them
  --timeout S    limit for each mpirun (default 300 s)
  -- WORKLOAD ARGS
                 the workload (default: square --items 4000000, data-heavy)
  -h, --help     this text

Where the nodes come from:
  - inside a PBS or Slurm allocation (PBS_NODEFILE or SLURM_JOB_NODELIST set):
    the first K distinct nodes of the allocation, with plain 'mpirun --host'.
  - otherwise: the namespace cluster of scripts/cluster.sh, brought up with
    --nodes K --slots P/K --rate RATE (needs root) and torn down at the end
    (unless --keep, or it was already up: then its previous settings are
    restored and it stays up). There every "node" shares this machine's
    cores, so the comparison isolates the cost of the link. The ranks run
    with '--mca mpi_yield_when_idle 1': without it, ranks spinning in MPI on
    the shared cores starve the kernel's packet processing and a cross-node
    round trip takes milliseconds.

Before the runs, one 'hpcmap bench pingpong' on the spread placement fits a
Hockney model to each link a run can use: rank 0 with a rank on its own node
(shared memory; the one-node placement's only link) and with a rank on each
other node. The fits are saved keyed by hosts in DIR/network.json, and every
run gets it with --network: each run is explained by the fits of the links
its ranks used, or says which link has none. Everything runs under 'timeout'.

Output in DIR: 1node.jsonl and Knodes.jsonl (one record per run; feed them to
'hpcmap report'), network.json (the fits), *.log (each command's output),
table.txt (what is printed).

Environment: HPCMAP_BIN (default target/release/hpcmap), HPCMAP_CLUSTER_DIR.
EOF
}

# Messages go to the script's own stderr (fd 3), also from traps that fire
# while a command's output is redirected to a log.
exec 3>&2
die() { echo "$PROG: error: $*" >&3; exit 1; }
log() { echo "$PROG: $*" >&3; }

# ---------------------------------------------------------------- options
RANKS=4 NODES=2 RATE=1gbit REPEAT=3 OUT=/tmp/hpcmap-compare KEEP=0 PP_MAX=$((2 << 20)) TMO=300 NETWORK=""
WORKLOAD=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --ranks) RANKS=${2:?--ranks needs a value}; shift 2 ;;
        --ranks=*) RANKS=${1#*=}; shift ;;
        --nodes) NODES=${2:?--nodes needs a value}; shift 2 ;;
        --nodes=*) NODES=${1#*=}; shift ;;
        --rate) RATE=${2:?--rate needs a value}; shift 2 ;;
        --rate=*) RATE=${1#*=}; shift ;;
        --repeat) REPEAT=${2:?--repeat needs a value}; shift 2 ;;
        --repeat=*) REPEAT=${1#*=}; shift ;;
        --out) OUT=${2:?--out needs a value}; shift 2 ;;
        --out=*) OUT=${1#*=}; shift ;;
        --keep) KEEP=1; shift ;;
        --pingpong-max-bytes) PP_MAX=${2:?--pingpong-max-bytes needs a value}; shift 2 ;;
        --pingpong-max-bytes=*) PP_MAX=${1#*=}; shift ;;
        --network) NETWORK=${2:?--network needs a value}; shift 2 ;;
        --network=*) NETWORK=${1#*=}; shift ;;
        --timeout) TMO=${2:?--timeout needs a value}; shift 2 ;;
        --timeout=*) TMO=${1#*=}; shift ;;
        -h | --help) usage; exit 0 ;;
        --) shift; WORKLOAD=("$@"); break ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done
[[ ${#WORKLOAD[@]} -gt 0 ]] || WORKLOAD=(square --items 4000000)
isint() { [[ $1 =~ ^[0-9]+$ ]] && (($1 >= 1)); }
isint "$RANKS" || die "--ranks must be a positive integer"
if ! isint "$NODES" || ((NODES < 2)); then die "--nodes must be at least 2"; fi
isint "$REPEAT" || die "--repeat must be a positive integer"
isint "$TMO" || die "--timeout must be a positive number of seconds"
((RANKS % NODES == 0)) || die "--nodes ($NODES) must divide --ranks ($RANKS)"
isint "$PP_MAX" || die "--pingpong-max-bytes must be a positive integer"
[[ -z $NETWORK || -r $NETWORK ]] || die "--network $NETWORK is not a readable file"
SLOTS=$((RANKS / NODES))
command -v python3 >/dev/null 2>&1 || die "python3 is needed to read the JSON records"
command -v timeout >/dev/null 2>&1 || die "timeout (coreutils) is needed"

if [[ -n ${PBS_NODEFILE:-} || -n ${SLURM_JOB_NODELIST:-} ]]; then
    SOURCE=allocation
else
    SOURCE=cluster
fi

# ---------------------------------------------------------------- cleanup, timeouts
CLUSTER_STARTED=0 PREV_CLUSTER="" CHILD=""
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local rc=$?
    [[ -n $CHILD ]] && kill -TERM "$CHILD" 2>/dev/null
    if [[ $SOURCE == cluster ]]; then
        if [[ -n $PREV_CLUSTER ]]; then
            # It was up before: put its settings back, leave it up.
            # shellcheck disable=SC2086 # PREV_CLUSTER is a list of options
            timeout 120 "$CLUSTER" up $PREV_CLUSTER >/dev/null 2>&1 ||
                log "warning: could not restore the cluster ($PREV_CLUSTER)"
        elif ((CLUSTER_STARTED && !KEEP)); then
            timeout 120 "$CLUSTER" down >/dev/null 2>&1 || log "warning: 'cluster.sh down' failed"
        elif ((CLUSTER_STARTED)); then
            log "cluster left up (--keep); tear it down with: scripts/cluster.sh down"
        fi
    fi
    exit "$rc"
}
# shellcheck disable=SC2317 # invoked by the INT/TERM traps
interrupted() {
    log "interrupted"
    exit 130
}
trap cleanup EXIT
trap interrupted INT TERM

# t SECS CMD...: CMD under timeout, in the background so that a signal reaches
# the traps at once and they can stop it by its pid.
t() {
    timeout -k 10 "$1" "${@:2}" &
    CHILD=$!
    local rc=0
    wait "$CHILD" || rc=$?
    CHILD=""
    return "$rc"
}

# ---------------------------------------------------------------- binary, MPI
if [[ ! -x $BIN ]]; then
    log "building $BIN (cargo build --release)"
    (cd "$ROOT" && t 900 cargo build --release -q) || die "build failed"
fi
[[ -x $BIN ]] || die "binary $BIN missing"
command -v mpirun >/dev/null 2>&1 || die "mpirun not found (apt-get install openmpi-bin)"
if [[ $(id -u) -eq 0 ]]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# The one-node placement puts P ranks on one node whatever its slot count.
export OMPI_MCA_rmaps_base_oversubscribe=1

mkdir -p "$OUT"
ONE=1node MANY=${NODES}nodes
rm -f "$OUT/$ONE.jsonl" "$OUT/$MANY.jsonl" "$OUT/network.json" "$OUT"/*.log "$OUT/table.txt"

# ---------------------------------------------------------------- nodes
LAUNCH=()
HOSTS=()
if [[ $SOURCE == allocation ]]; then
    if [[ -n ${PBS_NODEFILE:-} ]]; then
        [[ -r $PBS_NODEFILE ]] || die "PBS_NODEFILE=$PBS_NODEFILE is not readable"
        mapfile -t HOSTS < <(awk 'NF && !seen[$1]++ {print $1}' "$PBS_NODEFILE")
        where="PBS allocation ($PBS_NODEFILE)"
    else
        command -v scontrol >/dev/null 2>&1 || die "SLURM_JOB_NODELIST is set but scontrol is missing"
        mapfile -t HOSTS < <(timeout 30 scontrol show hostnames "$SLURM_JOB_NODELIST" | awk 'NF && !seen[$1]++')
        where="Slurm allocation ($SLURM_JOB_NODELIST)"
    fi
    ((${#HOSTS[@]} >= NODES)) ||
        die "the $where has ${#HOSTS[@]} node(s) (${HOSTS[*]:-none}); need $NODES"
    HOSTS=("${HOSTS[@]:0:NODES}")
    LAUNCH=(mpirun)
    LINK="$where"
else
    [[ $(id -u) -eq 0 ]] || die "the namespace cluster needs root (or run inside a PBS/Slurm allocation)"
    state=${HPCMAP_CLUSTER_DIR:-/tmp/hpcmap-cluster}
    if timeout 30 "$CLUSTER" status >/dev/null 2>&1 && [[ -f $state/cluster.env ]]; then
        PREV_CLUSTER=$(
            # shellcheck disable=SC1091
            . "$state/cluster.env"
            echo "--nodes ${NODES:-2} --slots ${SLOTS:-2} --rate ${RATE:-none}"
        )
        log "cluster already up ($PREV_CLUSTER); reconfiguring it for this comparison, restored at the end"
    fi
    log "cluster up: $NODES nodes x $SLOTS slots, cap $RATE"
    CLUSTER_STARTED=1
    t 120 "$CLUSTER" up --nodes "$NODES" --slots "$SLOTS" --rate "$RATE" >"$OUT/cluster-up.log" 2>&1 ||
        { tail -20 "$OUT/cluster-up.log" >&3; die "scripts/cluster.sh up failed"; }
    for ((i = 1; i <= NODES; i++)); do HOSTS+=("node$i"); done
    LAUNCH=("$CLUSTER" exec --mca mpi_yield_when_idle 1)
    LINK="namespace cluster, cap $RATE per node (tc tbf); all nodes share this machine's $(nproc) cores"
fi

one_hosts="${HOSTS[0]}:$RANKS"
many_hosts=$(printf "%s:$SLOTS," "${HOSTS[@]}")
many_hosts=${many_hosts%,}
LABEL_ONE="1 node x $RANKS"
LABEL_MANY="$NODES nodes x $SLOTS"

# ---------------------------------------------------------------- pingpong fits
# One pingpong on the spread placement measures every link the runs use:
# rank 0 with a rank on its own node, and with the first rank on each other
# node. Messages up to PP_MAX: bandwidth is fitted from the three largest sizes,
# and the smallest of them, PP_MAX/4, must be past twice any shaper's burst
# (tbf here: 256 kB), where a ping-pong still sees more than the cap.
MODELS=$OUT/network.json
if [[ -n $NETWORK ]]; then
    cp "$NETWORK" "$MODELS"
    log "fits from $NETWORK"
else
    log "pingpong on $LABEL_MANY (--host $many_hosts, up to $PP_MAX bytes)"
    if ! t "$TMO" "${LAUNCH[@]}" --host "$many_hosts" -n "$RANKS" "$BIN" bench pingpong \
        --max-bytes "$PP_MAX" --repeat 3 --save "$MODELS" >"$OUT/pingpong.log" 2>&1; then
        tail -20 "$OUT/pingpong.log" >&3
        die "pingpong failed or timed out (log: $OUT/pingpong.log)"
    fi
    grep -q "^hockney: ${HOSTS[0]} <-> ${HOSTS[1]} (across hosts)" "$OUT/pingpong.log" ||
        die "pingpong measured no link ${HOSTS[0]} <-> ${HOSTS[1]} (log: $OUT/pingpong.log)"
    while read -r line; do log "  $line"; done < <(grep -E '^(hockney|warning):' "$OUT/pingpong.log")
fi

# ---------------------------------------------------------------- runs
# run TAG HOSTLIST I
run() {
    local tag=$1 hosts=$2 i=$3
    if ! t "$TMO" "${LAUNCH[@]}" --host "$hosts" -n "$RANKS" "$BIN" run "${WORKLOAD[@]}" \
        --json "$OUT/$tag.jsonl" --quiet --network "$MODELS" >"$OUT/run-$tag-$i.log" 2>&1; then
        tail -20 "$OUT/run-$tag-$i.log" >&3
        die "run $i on $tag failed or timed out (log: $OUT/run-$tag-$i.log)"
    fi
}
log "running '${WORKLOAD[*]}' $REPEAT time(s) per placement, alternating: $LABEL_ONE (--host $one_hosts), $LABEL_MANY (--host $many_hosts)"
for ((i = 1; i <= REPEAT; i++)); do
    run "$ONE" "$one_hosts" "$i"
    run "$MANY" "$many_hosts" "$i"
done

# ---------------------------------------------------------------- table, verdict
python3 - "$OUT" "$ONE" "$MANY" "$LABEL_ONE" "$LABEL_MANY" "$NODES" "$RANKS" "$REPEAT" "$LINK" \
    "${WORKLOAD[*]}" <<'EOF' | tee "$OUT/table.txt"
import json, statistics, sys

out, one, many, label_one, label_many, nodes, ranks, repeat, link, workload = sys.argv[1:]
nodes, ranks, repeat = int(nodes), int(ranks), int(repeat)

def records(tag):
    with open(f"{out}/{tag}.jsonl") as f:
        recs = [json.loads(line) for line in f if line.strip()]
    if len(recs) != repeat:
        sys.exit(f"compare-nodes: {tag}.jsonl has {len(recs)} records, expected {repeat}")
    for r in recs:
        if r.get("ranks") != ranks:
            sys.exit(f"compare-nodes: {tag}: a record has ranks={r.get('ranks')}, expected {ranks}")
    # The run with the median wall (the lower middle for an even count), so that
    # its phases add up to the wall shown.
    recs.sort(key=lambda r: r["wall_s"])
    return recs, recs[(len(recs) - 1) // 2]

def secs(x):
    if x is None:
        return "-"
    if x >= 1:
        return f"{x:.3f} s"
    if x >= 1e-3:
        return f"{x * 1e3:.1f} ms"
    return f"{x * 1e6:.0f} us"

def mb(n):
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"

cols = []
for tag, label in ((one, label_one), (many, label_many)):
    recs, r = records(tag)
    got_nodes = len(set(r.get("hosts") or []))
    want = 1 if tag == one else nodes
    if got_nodes != want:
        sys.exit(f"compare-nodes: {label}: the run used {got_nodes} host(s) {r.get('hosts')}, expected {want}")
    ph = r["phases"]
    comm = ph["scatter"] + ph["gather"]
    model = r.get("model") or {}
    moved = r["bytes_scattered"] + r["bytes_gathered"]
    walls = [x["wall_s"] for x in recs]
    cols.append(dict(
        label=label, r=r, comm=comm, model=model, moved=moved,
        walls=walls, wall=statistics.median(walls),
        hosts=",".join(dict.fromkeys(r.get("hosts") or [])),
    ))

def row(name, f):
    return [name] + [f(c) for c in cols]

def links(c, placement):
    return [l for l in c["model"].get("links") or [] if l["placement"] == placement]

# Each run is explained per link: shared memory inside the root's node, the
# network to the other nodes, each with its own fit.
def fit(c, placement):
    return "; ".join(f"{l['between'].replace(' ', '')} {l['alpha'] * 1e6:.1f} us, {rate(l['beta'])}"
                     for l in links(c, placement)) or "-"

def rate(per_byte):
    mbs = 1e-6 / per_byte
    return f"{mbs:.0f} MB/s" if mbs >= 100 else f"{mbs:.1f} MB/s"

# Big messages land in fresh pages, which move no faster than first touch.
def fresh(c):
    return "; ".join(sorted({rate(l["first_touch"]) for l in c["model"].get("links") or []
                             if l.get("first_touch")})) or "-"

def use(c, placement):
    return "; ".join(f"{mb(l['bytes'])} -> {secs(l['predicted_s'])}"
                     for l in links(c, placement)) or "-"

spread = lambda c: f" ({secs(min(c['walls']))}..{secs(max(c['walls']))})" if len(c["walls"]) > 1 else ""
rows = [
    row("placement", lambda c: c["label"]),
    row("hosts", lambda c: c["hosts"]),
    row(f"wall (median of {repeat})", lambda c: secs(c["wall"]) + spread(c)),
    row("  serialize", lambda c: secs(c["r"]["phases"]["serialize"])),
    row("  scatter", lambda c: secs(c["r"]["phases"]["scatter"])),
    row("  compute (max)", lambda c: secs(c["r"]["phases"]["compute"]["max"])),
    row("  wait", lambda c: secs(c["r"]["phases"]["wait"])),
    row("  gather", lambda c: secs(c["r"]["phases"]["gather"])),
    row("  assemble", lambda c: secs(c["r"]["phases"]["assemble"])),
    row("bytes moved (scatter+gather)", lambda c: mb(c["moved"])),
    row("model: same host (pingpong fit)", lambda c: fit(c, "same host")),
    row("  its bytes -> predicted", lambda c: use(c, "same host")),
    row("model: across hosts (pingpong fit)", lambda c: fit(c, "across hosts")),
    row("  its bytes -> predicted", lambda c: use(c, "across hosts")),
    row("model: first touch (fresh pages)", fresh),
    row("model: predicted comm", lambda c: (
        secs(c["model"]["predicted_comm_s"]) if c["model"].get("predicted_comm_s") is not None
        else "none fits: " + ", ".join(c["model"].get("missing") or ["no model"]))),
    row("measured comm (scatter+gather)", lambda c: secs(c["comm"])),
    row("  measured / predicted", lambda c: (
        f"{c['comm'] / c['model']['predicted_comm_s']:.2f}"
        if c["model"].get("predicted_comm_s") else "-")),
    row("communication share of wall", lambda c: f"{100 * c['comm'] / c['r']['wall_s']:.0f}%"),
]
w0 = max(len(x[0]) for x in rows)
ws = [max(len(x[i]) for x in rows) for i in range(1, len(cols) + 1)]
print(f"workload: {workload}; {ranks} ranks; {link}")
for i, x in enumerate(rows):
    print(f"{x[0]:<{w0}}  " + "  ".join(f"{v:>{w}}" for v, w in zip(x[1:], ws)))
    if i == 0:
        print("-" * (w0 + sum(w + 2 for w in ws)))

a, b = cols
fast, slow = (a, b) if a["wall"] <= b["wall"] else (b, a)
ratio = slow["wall"] / fast["wall"] if fast["wall"] > 0 else float("inf")
m = b  # the spread placement: where the link is
share = 100 * m["comm"] / m["r"]["wall_s"]
across = links(m, "across hosts")
why_model = ""
if across and m["model"].get("predicted_comm_s") is not None:
    over = "; ".join(f"{secs(l['predicted_s'])} of it over {l['between']} at {1e-6 / l['beta']:.1f} MB/s"
                     for l in across)
    why_model = f" (model: {secs(m['model']['predicted_comm_s'])}, {over})"
    moving = f"moving {mb(m['moved'])} ({mb(sum(l['bytes'] for l in across))} over the link)"
else:
    # Without a model: the root keeps its share, and of what it sends and
    # receives the ranks on other nodes account for (ranks - ranks_per_node) / (ranks - 1).
    over_link = m["moved"] * (ranks - ranks // nodes) / max(ranks - 1, 1)
    moving = f"moving {mb(m['moved'])} (~{mb(over_link)} over the link)"
if ratio < 1.05:
    verdict = (f"verdict: {fast['label']} is faster, but only by {ratio:.2f}x (a tie within noise): "
               f"across {nodes} nodes, {moving} took {share:.0f}% of the wall{why_model}")
elif fast is a:
    verdict = (f"verdict: {fast['label']} wins by {ratio:.1f}x: across {nodes} nodes, "
               f"{moving} took {share:.0f}% of the wall{why_model}")
else:
    verdict = (f"verdict: {fast['label']} wins by {ratio:.1f}x: across {nodes} nodes, "
               f"{moving} took only {share:.0f}% of the wall{why_model}, "
               f"so spreading the ranks costs little")
print(verdict)
print(f"records: {out}/{one}.jsonl {out}/{many}.jsonl (hpcmap report ...); models: {out}/network.json")
EOF
