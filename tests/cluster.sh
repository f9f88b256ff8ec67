#!/usr/bin/env bash
# Multi-node test of hpcmap on a namespace cluster (scripts/cluster.sh).
set -uo pipefail

usage() {
    cat <<'EOF'
Usage: tests/cluster.sh [--help]

Brings up a 2-node cluster of network namespaces (scripts/cluster.sh up),
then checks:
  - mpirun across the cluster reaches both node1 and node2
  - 'hpcmap run square --items 200000' at 4 ranks (2 per node) reports both
    hostnames (report 'nodes:' line and the JSON 'hosts' array) and gives the
    same 'answer:' as the same job on one node (plain local mpirun)
  - at 1gbit and at 100mbit per node: 'hpcmap bench pingpong' on the 2 x 2
    placement fits both links the job uses (node1's shared memory, and
    node1 <-> node2), and the data-heavy job (--items 2000000, 12 MB each way,
    8 MB of it over the link) is explained per link: shared memory for rank
    1, the link for ranks 2 and 3, the prediction within MODEL_TOLERANCE
    (default 25%) of the communication measured in that same run
    (phases.scatter + phases.gather). Measured here: 2-14% off at either
    rate; the single fit before (flattered by the burst, charging every
    byte at the link rate) was 1.5-2x off, and a wrong model (the
    shared-memory fit for the link, a unit error) is off by 10x or more
  - at 100mbit the job is measurably slower across the nodes than on one
    node (and than across uncapped nodes), comparing wall_s from the --json
    records of this run
  - a run on this machine's own host with the cluster's model file says
    'model: none fits this placement' and names the missing link (JSON:
    model.missing, no prediction) instead of borrowing a cluster fit
  - scripts/compare-nodes.sh (--repeat 1, --items 200000, at the cap) runs
    end to end, prints its table and a 'verdict:' line naming the winning
    placement, writes one record per placement, leaves the (already up)
    cluster up with its cap, and 'hpcmap report' reads its records
The cluster is always torn down at the end (also on failure or Ctrl-C).
Every command runs under 'timeout'. Needs root. Takes well under 2 minutes.

Environment:
  HPCMAP_BIN         binary to test (default target/release/hpcmap; built
                     with 'cargo build --release' when missing)
  HPCMAP_CLUSTER_DIR state directory for scripts/cluster.sh
  CAP_RATE           the slow link's bandwidth cap (default 100mbit)
  MODEL_TOLERANCE    allowed |predicted - measured| / measured communication
                     (default 0.25)

Prints a final line 'N passed, M failed'; exits non-zero on any failure.
EOF
}

case ${1:-} in
    -h | --help) usage; exit 0 ;;
    "") ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
CLUSTER=$ROOT/scripts/cluster.sh
BIN=${HPCMAP_BIN:-$ROOT/target/release/hpcmap}
CAP_RATE=${CAP_RATE:-100mbit}
MODEL_TOLERANCE=${MODEL_TOLERANCE:-0.25}
SMALL=200000
BIG=2000000
WORK=$(mktemp -d /tmp/hpcmap-cluster-test.XXXXXX)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# 4 ranks on a 2-core machine: allow oversubscription for the local runs.
export OMPI_MCA_rmaps_base_oversubscribe=1

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "PASS: $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $*"; }

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    timeout 60 "$CLUSTER" down >/dev/null 2>&1 || echo "warning: cluster down failed" >&3
    rm -rf "$WORK"
}
finish() {
    echo "$PASSED passed, $FAILED failed"
    [[ $FAILED -eq 0 ]]
    exit
}
# t SECS CMD...: CMD under timeout, run in the background and waited for, so
# that Ctrl-C / SIGTERM reach the trap at once (bash defers traps while a
# foreground child runs) and the trap can stop the child by its pid.
CHILD=""
t() {
    timeout "$1" "${@:2}" &
    CHILD=$!
    wait "$CHILD"
    local rc=$?
    CHILD=""
    return $rc
}
# The test's own stderr, for messages from traps that fire while a command's
# output is redirected to a file.
exec 3>&2
# shellcheck disable=SC2317 # invoked by the INT/TERM traps
interrupted() {
    echo "interrupted" >&3
    [[ -n $CHILD ]] && kill -TERM "$CHILD" 2>/dev/null
    exit 130
}
trap cleanup EXIT
trap interrupted INT TERM

if [[ $(id -u) -ne 0 ]]; then
    fail "must run as root (network namespaces)"; finish
fi

# ---------------------------------------------------------------- binary
if [[ ! -x $BIN ]]; then
    echo "building $BIN (cargo build --release)"
    t 600 cargo build --release -q || true
fi
if [[ ! -x $BIN ]]; then
    fail "binary $BIN missing"; finish
fi
command -v mpirun >/dev/null 2>&1 || { fail "mpirun not installed"; finish; }

# ---------------------------------------------------------------- helpers
# json_get FILE KEY: top-level KEY of a JSON file; arrays joined with ','.
json_get() {
    if command -v python3 >/dev/null 2>&1; then
        python3 - "$1" "$2" <<'EOF'
import json, sys
v = json.load(open(sys.argv[1]))
if isinstance(v, list):  # one record per line/array: take the last
    v = v[-1]
v = v.get(sys.argv[2], "")
print(",".join(map(str, v)) if isinstance(v, list) else v)
EOF
    else
        # Fallback without python: flat regex on the first occurrence.
        tr -d '\n' <"$1" | grep -o "\"$2\": *\(\[[^]]*\]\|[-0-9.eE+]*\)" | head -1 |
            sed 's/^[^:]*: *//; s/[][" ]//g'
    fi
}

# run_cluster NAME ITEMS [RUN ARGS...]: 4 ranks over the 2 nodes; report in
# $WORK/NAME.out, JSON in $WORK/NAME.json
run_cluster() {
    t 90 "$CLUSTER" exec -n 4 "$BIN" run square --items "$2" --json "$WORK/$1.json" "${@:3}" >"$WORK/$1.out" 2>&1
}
# run_local NAME ITEMS: the same job with a plain mpirun on this machine (one node)
run_local() {
    t 90 mpirun -n 4 "$BIN" run square --items "$2" --json "$WORK/$1.json" >"$WORK/$1.out" 2>&1
}
show() { sed 's/^/    | /' "$WORK/$1.out" | tail -n 20; }
answer() { grep -m1 '^answer:' "$WORK/$1.out"; }

# ---------------------------------------------------------------- cluster up
if t 120 "$CLUSTER" up --nodes 2 --slots 2 >"$WORK/up.out" 2>&1 &&
    t 30 "$CLUSTER" status >"$WORK/status.out" 2>&1; then
    pass "cluster up (2 nodes x 2 slots) and status ok"
else
    cat "$WORK/up.out" "$WORK/status.out" 2>/dev/null
    fail "cluster up"; finish
fi

# ---------------------------------------------------------------- MPI wiring
hosts=$(timeout 60 "$CLUSTER" exec -n 4 hostname 2>&1 | sort | uniq -c | awk '{print $2 "x" $1}' | xargs)
if [[ $hosts == "node1x2 node2x2" ]]; then
    pass "mpirun -n 4 hostname spreads over the cluster ($hosts)"
else
    fail "mpirun -n 4 hostname: expected node1x2 node2x2, got '$hosts'"
fi

# ---------------------------------------------------------------- correctness across nodes
if run_cluster multi $SMALL; then
    pass "hpcmap run square --items $SMALL on 2 nodes x 2 ranks"
else
    show multi; fail "hpcmap on the cluster exited non-zero"
fi
nodes_line=$(grep -m1 '^nodes:' "$WORK/multi.out" || true)
if [[ $nodes_line =~ node1 && $nodes_line =~ node2 ]]; then
    pass "report lists both hosts: $nodes_line"
else
    show multi; fail "report 'nodes:' line lacks node1/node2: '$nodes_line'"
fi
if grep -q '^ranks: *4\b' "$WORK/multi.out"; then
    pass "report says ranks: 4"
else
    fail "report lacks 'ranks: 4'"
fi
json_hosts=$( [[ -s $WORK/multi.json ]] && json_get "$WORK/multi.json" hosts 2>/dev/null)
if [[ ,$json_hosts, == *,node1,* && ,$json_hosts, == *,node2,* ]]; then
    pass "JSON hosts = [$json_hosts]"
else
    fail "JSON hosts lacks node1/node2: '$json_hosts'"
fi

if run_local local $SMALL; then
    pass "hpcmap run square --items $SMALL on one node x 4 ranks"
else
    show local; fail "hpcmap local mpirun exited non-zero"
fi
a_multi=$(answer multi || true)
a_local=$(answer local || true)
if [[ -n $a_multi && $a_multi == "$a_local" ]]; then
    pass "same answer on 2 nodes and on 1 node ($a_multi)"
else
    fail "answers differ: cluster '$a_multi' vs local '$a_local'"
fi

# ---------------------------------------------------------------- the network model, per rate
wall() { json_get "$WORK/$1.json" wall_s 2>/dev/null; }
run_cluster big-fast $BIG || { show big-fast; fail "uncapped cluster run (--items $BIG)"; }
run_local big-local $BIG || { show big-local; fail "local run (--items $BIG)"; }

# model_check FILE: prints "predicted measured off%" and exits 0 when the
# model's prediction is within MODEL_TOLERANCE of the communication measured
# in the same run (scatter + gather); 1 outside it, 2 when fields are missing.
model_check() {
    python3 - "$1" "$MODEL_TOLERANCE" <<'EOF'
import json, sys
try:
    with open(sys.argv[1]) as f:
        r = [json.loads(l) for l in f if l.strip()][-1]
    p = float(r["model"]["predicted_comm_s"])
    m = float(r["phases"]["scatter"]) + float(r["phases"]["gather"])
except (OSError, LookupError, TypeError, ValueError) as e:
    print(f"missing model or phases: {e!r}")
    sys.exit(2)
off = abs(p - m) / m if m > 0 else float("inf")
print(f"{p:.3f} {m:.3f} {100 * off:.0f}%")
sys.exit(0 if off <= float(sys.argv[2]) else 1)
EOF
}
# model_field FILE EXPR: a Python expression over the last record's `model`
# (m), printed; empty when there is none.
model_field() {
    python3 - "$1" "$2" <<'EOF'
import json, sys
with open(sys.argv[1]) as f:
    r = [json.loads(l) for l in f if l.strip()][-1]
m = r.get("model") or {}
print(eval(sys.argv[2], {"m": m}))
EOF
}

# At each rate: fit the model on the 2 x 2 placement itself (rank 0 pings
# rank 1 on its own node and rank 2 on the other), then run the job and hold
# the prediction against the communication measured in that run. The ranks
# yield when idle: the "nodes" share this machine's cores, and ranks spinning
# in MPI starve the kernel's packet processing, so without it the measured
# communication is mostly CPU starvation, not the link (2-4x the link time at
# 1gbit), and the pingpong's round trips take milliseconds.
for rate in 1gbit "$CAP_RATE"; do
    if t 60 "$CLUSTER" up --nodes 2 --slots 2 --rate "$rate" >"$WORK/up-$rate.out" 2>&1 &&
        status=$(timeout 30 "$CLUSTER" status 2>&1) &&
        [[ $(grep -ci "^node[12] .* ${rate%bit}" <<<"$status") -eq 2 ]]; then
        pass "cap $rate applied to the nodes"
    else
        cat "$WORK/up-$rate.out"; timeout 30 "$CLUSTER" status
        fail "could not apply cap $rate"
        continue
    fi
    net=$WORK/net-$rate.json
    if t 60 "$CLUSTER" exec -n 4 --mca mpi_yield_when_idle 1 "$BIN" bench pingpong \
        --max-bytes 2097152 --repeat 1 --save "$net" >"$WORK/pingpong-$rate.out" 2>&1 &&
        grep -q '^hockney: node1 <-> node1 (same host)' "$WORK/pingpong-$rate.out" &&
        grep -q '^hockney: node1 <-> node2 (across hosts)' "$WORK/pingpong-$rate.out" && [[ -s $net ]]; then
        pass "pingpong at $rate fits both links: $(grep '^hockney:' "$WORK/pingpong-$rate.out" |
            sed 's/^hockney: //; s/ beta = [^(]*(/ /; s/, from the three largest sizes)//' | paste -sd ';')"
    else
        show "pingpong-$rate"; fail "pingpong on 2 nodes x 2 at $rate"
        continue
    fi
    grep '^warning:' "$WORK/pingpong-$rate.out" | sed 's/^/    | /'
    if ! t 90 "$CLUSTER" exec -n 4 --mca mpi_yield_when_idle 1 "$BIN" run square --items $BIG \
        --json "$WORK/big-$rate.json" --network "$net" >"$WORK/big-$rate.out" 2>&1; then
        show "big-$rate"; fail "cluster run at $rate (--items $BIG)"
        continue
    fi
    links=$(model_field "$WORK/big-$rate.json" \
        '" ".join("%s/%s/%s" % (l["between"], l["placement"], l["ranks"]) for l in m.get("links") or [])' 2>/dev/null)
    if [[ $links == "node1 <-> node1/same host/1 node1 <-> node2/across hosts/2" ]]; then
        pass "at $rate the run is explained per link: $links"
    else
        fail "at $rate the model's links are not shared memory to rank 1 and the link to ranks 2, 3: '$links'"
    fi
    # A wall-clock measurement on a shared machine: one noisy run is
    # measured again once before the model is judged wrong.
    if command -v python3 >/dev/null 2>&1 && ! model_check "$WORK/big-$rate.json" >/dev/null &&
        t 90 "$CLUSTER" exec -n 4 --mca mpi_yield_when_idle 1 "$BIN" run square --items $BIG \
            --json "$WORK/again-$rate.json" --network "$net" >"$WORK/again-$rate.out" 2>&1; then
        echo "    | model off at $rate in the first run; measured again"
        mv "$WORK/again-$rate.json" "$WORK/big-$rate.json"
        mv "$WORK/again-$rate.out" "$WORK/big-$rate.out"
    fi
    if ! command -v python3 >/dev/null 2>&1; then
        fail "python3 missing: cannot check the model against the measurement"
    elif mc=$(model_check "$WORK/big-$rate.json"); then
        read -r mp mm off <<<"$mc"
        pass "model within $(awk -v t="$MODEL_TOLERANCE" 'BEGIN { print 100 * t }')% at $rate: predicted $mp s vs measured $mm s (scatter + gather), off by $off"
    else
        grep -A2 '^model:' "$WORK/big-$rate.out"
        fail "model vs measured communication at $rate not within $MODEL_TOLERANCE: $mc"
    fi
done
big_capped=big-$CAP_RATE

w_local=$(wall big-local)
w_fast=$(wall big-fast)
w_capped=$(wall "$big_capped")
echo "wall_s for --items $BIG at 4 ranks: one node $w_local, 2 nodes uncapped $w_fast, 2 nodes at $CAP_RATE $w_capped"
isnum() { [[ $1 =~ ^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]]; }
if isnum "$w_local" && isnum "$w_capped" && isnum "$w_fast"; then
    # "Measurably slower": at least 1.5x and 50 ms more than one node.
    if awk -v c="$w_capped" -v l="$w_local" 'BEGIN { exit !(c > 1.5 * l && c - l > 0.05) }'; then
        pass "at $CAP_RATE the cluster run is slower than one node ($w_capped s vs $w_local s)"
    else
        fail "at $CAP_RATE the cluster run is not measurably slower ($w_capped s vs $w_local s)"
    fi
    if awk -v c="$w_capped" -v f="$w_fast" 'BEGIN { exit !(c > f) }'; then
        pass "the cap slows the cluster run ($w_capped s capped vs $w_fast s uncapped)"
    else
        fail "capped cluster run not slower than uncapped ($w_capped s vs $w_fast s)"
    fi
else
    fail "missing wall_s in JSON (local '$w_local', uncapped '$w_fast', capped '$w_capped')"
fi
if [[ $(answer "$big_capped") == "$(answer big-local)" && -n $(answer big-local) ]]; then
    pass "same answer for --items $BIG capped across nodes and on one node"
else
    fail "answers differ for --items $BIG: '$(answer "$big_capped")' vs '$(answer big-local)'"
fi

# A placement the model file has no fit for is named, not explained with
# the cluster's fits: this machine's own host was never measured.
here=$(hostname)
if t 60 mpirun -n 2 "$BIN" run square --items $SMALL --network "$WORK/net-$CAP_RATE.json" \
    --json "$WORK/nofit.json" >"$WORK/nofit.out" 2>&1 &&
    grep -q "^model: none fits this placement: no fit for $here <-> $here in $WORK/net-$CAP_RATE.json" "$WORK/nofit.out" &&
    [[ $(model_field "$WORK/nofit.json" 'm["missing"], m["predicted_comm_s"]' 2>/dev/null) == "(['$here <-> $here'], None)" ]]; then
    pass "a run on $here with only the cluster's fits says none fits ($here <-> $here)"
else
    show nofit; fail "a run whose placement has no fit did not say so"
fi

# ---------------------------------------------------------------- scripts/compare-nodes.sh
CMP=$WORK/compare
if t 150 "$ROOT/scripts/compare-nodes.sh" --ranks 4 --nodes 2 --rate "$CAP_RATE" --repeat 1 \
    --out "$CMP" --timeout 60 -- square --items $SMALL >"$WORK/compare.out" 2>&1; then
    pass "scripts/compare-nodes.sh --repeat 1 -- square --items $SMALL ran end to end"
else
    show compare; fail "scripts/compare-nodes.sh exited non-zero"
fi
verdict=$(grep -m1 '^verdict: ' "$WORK/compare.out" || true)
if [[ $verdict =~ ^verdict:\ (1\ node\ x\ 4|2\ nodes\ x\ 2)\ (wins\ by|is\ faster) ]]; then
    pass "compare-nodes verdict names the winner: $verdict"
else
    show compare; fail "compare-nodes printed no verdict naming a placement: '$verdict'"
fi
if grep -q '^placement .*1 node x 4 .*2 nodes x 2' "$WORK/compare.out" &&
    [[ $(wc -l <"$CMP/1node.jsonl" 2>/dev/null) -eq 1 && $(wc -l <"$CMP/2nodes.jsonl" 2>/dev/null) -eq 1 ]]; then
    pass "compare-nodes printed the table and wrote one record per placement"
else
    fail "compare-nodes table or records missing (in $CMP)"
fi
if status=$(timeout 30 "$CLUSTER" status 2>&1) &&
    [[ $(grep -ci "^node[12] .* ${CAP_RATE%bit}" <<<"$status") -eq 2 ]]; then
    pass "compare-nodes left the already-up cluster up, cap $CAP_RATE"
else
    echo "$status"; fail "cluster not up with cap $CAP_RATE after compare-nodes"
fi
if ! timeout 10 "$BIN" report --help >/dev/null 2>&1; then
    echo "SKIP: hpcmap report missing in this build"
elif timeout 30 "$BIN" report "$CMP/1node.jsonl" "$CMP/2nodes.jsonl" >"$WORK/report.out" 2>&1; then
    pass "hpcmap report reads the compare-nodes records"
else
    show report; fail "hpcmap report on the compare-nodes records"
fi

finish
