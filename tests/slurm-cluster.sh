#!/usr/bin/env bash
# Multi-node test of the job templates under a real two-node Slurm on the
# namespace cluster (scripts/slurm.sh cluster-up): slurmctld on the login
# node, one slurmd per node, jobs submitted on the login node with qsub and
# sbatch as a user would, mpirun inside the job reaching the second node
# through Slurm. Torn down at the end, also on failure or Ctrl-C.
# Helpers run through check() look unreachable to shellcheck:
# shellcheck disable=SC2317
set -uo pipefail

PROG=$(basename "$0")
REPO=$(cd "$(dirname "$0")/.." && pwd)

usage() {
    cat <<EOF
Usage: bash tests/$PROG [--keep] [--help]

Brings up a two-node Slurm on network namespaces (scripts/slurm.sh
cluster-up), then checks:
  - the daemons run where they should (slurmctld as host 'login', slurmd as
    node1 and node2), a second cluster-up keeps them
  - qsub -l nodes=2:ppn=2 pbs/map.pbs and sbatch -N 2 pbs/map.pbs: one job on
    both nodes: both hostnames in the report ('nodes:') and the JSON record,
    the answer of square --items 1000000 (n(n+1)(2n+1)/6), COMPLETED with
    ExitCode 0:0 in 'scontrol show job'
  - THREADS under Slurm: sbatch -N 2 --ntasks-per-node=1 -c 2 runs 2 ranks
    with 2 threads each (--map-by slot:PE=2), same answer
  - qsub -t 1-4 pbs/array.pbs: the tasks spread over node1 and node2 and
    scripts/merge-parts.sh gives the whole answer
  - cluster-down removes daemons, job processes, namespaces, the /etc/hosts
    entries and the state directories, and is safe to run twice
Every wait is bounded; takes about a minute. Needs root. Ends with
'N passed, M failed'; exits non-zero if any check failed.

Options:
  --keep   leave the cluster and the work directory for inspection

Environment:
  HPCMAP_BIN   binary to test (default: target/release/hpcmap)
EOF
}

KEEP=0
for arg in "$@"; do
    case "$arg" in
    -h | --help) usage; exit 0 ;;
    --keep) KEEP=1 ;;
    *) echo "$PROG: unknown argument $arg" >&2; usage >&2; exit 2 ;;
    esac
done

PASS=0
FAIL=0
DEADLINE=$((SECONDS + ${HPCMAP_TEST_TIMEOUT:-170})) # all waits end by then
ok() { PASS=$((PASS + 1)); printf 'ok   %s\n' "$1"; }
not_ok() {
    FAIL=$((FAIL + 1))
    printf 'FAIL %s\n' "$1"
    [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/     | /' | tail -40
    return 0
}
check() {
    local desc=$1 out
    shift
    if out=$("$@" 2>&1); then ok "$desc"; else not_ok "$desc" "$out"; fi
}
check_eq() {
    if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "expected: $2"$'\n'"actual:   $3"; fi
}
finish() {
    echo "$PASS passed, $FAIL failed"
    [ "$FAIL" -eq 0 ]
    exit $?
}

[ "$(id -u)" -eq 0 ] || { echo "$PROG: must run as root" >&2; exit 2; }
BIN=${HPCMAP_BIN:-$REPO/target/release/hpcmap}
if [ ! -x "$BIN" ]; then
    not_ok "release binary exists" "no executable $BIN: run 'cargo build --release' first"
    finish
fi
SLURM=$REPO/scripts/slurm.sh
STATE=${HPCMAP_SLURM_CLUSTER_DIR:-/var/lib/hpcmap-slurm-cluster}
WORK=$(mktemp -d /tmp/hpcmap-slurm-cluster.XXXXXX)

# shellcheck disable=SC2329 # invoked by the traps below
cleanup() {
    if [ "$KEEP" -eq 1 ]; then
        echo "kept: cluster up (scripts/slurm.sh cluster-down), work directory $WORK"
        return 0
    fi
    timeout 90 bash "$SLURM" cluster-down >/dev/null 2>&1 || echo "warning: cluster-down failed" >&2
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM
echo "# work directory: $WORK; binary: $BIN"

# A submit directory shaped like the repo root.
SUB=$WORK/submit
mkdir -p "$SUB/pbs" "$SUB/scripts"
cp "$REPO"/pbs/*.pbs "$REPO/pbs/job.sh" "$SUB/pbs/"
cp "$REPO/scripts/merge-parts.sh" "$SUB/scripts/"
VBIN="HPCMAP_BIN=$BIN"
SQ1M=333333833333500000 # sum of squares 1..1000000 = n(n+1)(2n+1)/6
SQ100K=333338333350000  # sum of squares 1..100000
# login CMD...: CMD on the login node, from the submit directory.
login() { (cd "$SUB" && timeout 30 bash "$SLURM" exec "$@"); }

# json FILE PATH...: fields of the last JSON line (arrays joined with ',').
json() {
    perl -MJSON::PP -e '
        my ($file, @paths) = @ARGV;
        open my $fh, "<", $file or die "cannot open $file\n";
        my @recs = map { JSON::PP->new->allow_bignum->decode($_) } grep { /\S/ } <$fh>;
        my $r = $recs[-1] or die "no record in $file\n";
        print join(" ", map { my $v = $r; $v = ref($v) eq "HASH" ? $v->{$_} : undef for split /\./;
            ref($v) eq "ARRAY" ? join(",", @$v) : defined $v ? "$v" : "null" } @paths);
    ' "$@"
}

# --- up --------------------------------------------------------------------------------
if out=$(timeout 240 bash "$SLURM" cluster-up --nodes 2 --slots 2 2>&1); then
    ok "scripts/slurm.sh cluster-up --nodes 2 --slots 2"
else
    not_ok "scripts/slurm.sh cluster-up" "$out"
    finish
fi
pids() { cat "$STATE/slurmctld.pid" "$STATE"/node*/slurmd.pid 2>/dev/null | tr '\n' ' '; }
PIDS=$(pids)
check "scripts/slurm.sh cluster-up again (idempotent)" timeout 60 bash "$SLURM" cluster-up --nodes 2 --slots 2
check_eq "the second cluster-up keeps the daemons" "$PIDS" "$(pids)"
check "scripts/slurm.sh cluster-status" timeout 30 bash "$SLURM" cluster-status
# host_of PID: the hostname a daemon sees (its UTS namespace).
host_of() { nsenter --uts --target "$1" hostname 2>&1; }
read -r CTLD D1 D2 <<<"$PIDS"
check_eq "daemons' hostnames: slurmctld login, slurmd node1 and node2" "login node1 node2" \
    "$(host_of "$CTLD") $(host_of "$D1") $(host_of "$D2")"
check_eq "clients run on the login node" login "$(login hostname)"
check_eq "sinfo on the login node: node1 and node2 idle" "node1 idle,node2 idle" \
    "$(login sinfo -h -N -o '%N %T' | paste -sd,)"

# --- submit ------------------------------------------------------------------------------
SUBMITTED=()
# submit VAR CMD...: CMD (qsub or sbatch --parsable) on the login node; job id into VAR.
submit() {
    local var=$1 id
    shift
    if id=$(login "$@" 2>&1) && [[ $id =~ ^[0-9]+$ ]]; then
        SUBMITTED+=("$id")
        printf -v "$var" '%s' "$id"
        ok "$*  -> job $id"
    else
        printf -v "$var" '%s' ""
        not_ok "$*" "$id"
    fi
}
submit J_Q qsub -l nodes=2:ppn=2 -v "$VBIN,WORKLOAD=square,ITEMS=1000000" pbs/map.pbs
submit J_S sbatch --parsable -N 2 --ntasks-per-node=2 --export="ALL,$VBIN,WORKLOAD=square,ITEMS=1000000" pbs/map.pbs
submit J_T sbatch --parsable -N 2 --ntasks-per-node=1 -c 2 --export="ALL,$VBIN,WORKLOAD=square,ITEMS=1000000" pbs/map.pbs
submit J_A qsub -t 1-4 -v "$VBIN,WORKLOAD=square,ITEMS=100000" pbs/array.pbs

TERMINAL='COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED'
states() { login scontrol -o show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }
field() { login scontrol -o show job "$1" 2>/dev/null | grep -o " $2=[^ ]*" | cut -d= -f2; }
busy() { # busy ID...: true while any of them is not finished
    local id
    for id in "$@"; do
        [ -n "$id" ] || continue
        states "$id" | grep -qvE "^($TERMINAL)$" && return 0
        [ -n "$(states "$id")" ] || return 0
    done
    return 1
}
while busy ${SUBMITTED[@]+"${SUBMITTED[@]}"} && [ "$SECONDS" -lt "$DEADLINE" ]; do sleep 1; done
if busy ${SUBMITTED[@]+"${SUBMITTED[@]}"}; then
    not_ok "all jobs finished in time" "$(login squeue 2>&1)"
else
    ok "all jobs finished (scontrol show job)"
fi

# two_node_job NAME ID OUTPUT RANKS: checks of a map.pbs job across both nodes.
two_node_job() {
    local name=$1 id=$2 out=$3 ranks=$4 f
    [ -n "$id" ] || return 0
    f=$SUB/results/$id.jsonl
    check_eq "$name: JobState and ExitCode" "COMPLETED 0:0" "$(states "$id") $(field "$id" ExitCode)"
    check_eq "$name: allocated node[1-2]" "node[1-2]" "$(field "$id" NodeList)"
    check "$name: report names both hosts (nodes: 2 (node1, node2))" grep -q '^nodes: 2 (node1, node2)' "$out"
    check "$name: report answer is the single-node answer $SQ1M" grep -qE "^answer: .*\\b$SQ1M\\b" "$out"
    check_eq "$name: JSON record: answer, ranks" "$SQ1M $ranks" "$(json "$f" answer.value ranks 2>&1)"
    check_eq "$name: JSON record: hosts of the ranks" "node1 node2" \
        "$(json "$f" hosts 2>&1 | tr , '\n' | sort -u | xargs)"
}
[ -n "$J_Q" ] && two_node_job "qsub -l nodes=2:ppn=2 map.pbs" "$J_Q" "$SUB/map.pbs.o$J_Q" 4
[ -n "$J_S" ] && two_node_job "sbatch -N 2 map.pbs" "$J_S" "$SUB/slurm-$J_S.out" 4
if [ -n "$J_T" ]; then
    two_node_job "sbatch -N 2 -c 2 map.pbs (THREADS=2)" "$J_T" "$SUB/slurm-$J_T.out" 2
    check "THREADS=2 from SLURM_CPUS_PER_TASK: 1 rank per node bound to 2 cores" \
        grep -q -- "-n 2 --host node1:1,node2:1 --map-by slot:PE=2 .* --threads 2 " "$SUB/slurm-$J_T.out"
fi
if [ -n "$J_A" ]; then
    check_eq "array 1-4: all tasks COMPLETED" "COMPLETED COMPLETED COMPLETED COMPLETED" "$(states "$J_A" | xargs)"
    nodes=$(login scontrol -o show job "$J_A" | grep -o ' NodeList=node[0-9]*' | cut -d= -f2 | sort -u | xargs)
    check_eq "array 1-4: tasks ran on both nodes" "node1 node2" "$nodes"
    check_eq "array 1-4: merged parts give square 100000's answer" "answer: $SQ100K" \
        "$(cd "$SUB" && bash scripts/merge-parts.sh "results/$J_A.parts" 2>&1 | tail -1)"
fi

# --- down ----------------------------------------------------------------------------------
if [ "$KEEP" -eq 1 ]; then finish; fi
check "scripts/slurm.sh cluster-down" timeout 90 bash "$SLURM" cluster-down
alive=""
for p in $PIDS; do kill -0 "$p" 2>/dev/null && alive+=" $p"; done
check_eq "no daemon left running" "" "$alive"
check_eq "no slurmd/slurmstepd/orted/hpcmap process left" "" \
    "$(pgrep -a -f '(slurmd|slurmstepd|orted|hpcmap run) ' | grep -v pgrep || true)"
check_eq "no namespace left" "" "$(ip netns list 2>/dev/null)"
check "no /etc/hosts entries left" bash -c '! grep -q "hpcmap-cluster" /etc/hosts'
check "state directories removed" bash -c "[ ! -e '$STATE' ] && [ ! -e '${HPCMAP_CLUSTER_DIR:-/tmp/hpcmap-cluster}' ]"
check "cluster-down again is harmless" timeout 60 bash "$SLURM" cluster-down
finish
