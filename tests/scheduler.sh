#!/usr/bin/env bash
# End-to-end test of the job templates in pbs/ under a real scheduler.
#
# Starts a single-node Slurm (scripts/slurm.sh up), submits pbs/map.pbs,
# pbs/scaling.pbs and pbs/array.pbs with Slurm's PBS `qsub` exactly as a user
# would (small workloads through -v), waits with the scheduler's own commands,
# and checks answers, JSON records, exit states, qdel and signal forwarding.
# No PBS server exists here, so each template's PBS branch is also run directly
# with a PBS-style environment (PBS_NODEFILE, PBS_O_WORKDIR, PBS_JOBID, array
# indices of PBS Pro and Torque, a PBS walltime kill of the job's session, a
# stand-in qsub for the continuation of RESUBMIT=1). Every wait is bounded.
# Checks that need a newer hpcmap (--deadline, exec) print a SKIP line.
# Helpers run through check() look unreachable to shellcheck:
# shellcheck disable=SC2317
set -uo pipefail

PROG=$(basename "$0")
REPO=$(cd "$(dirname "$0")/.." && pwd)

usage() {
    cat <<EOF
Usage: bash tests/$PROG [--keep] [--help]

Tests pbs/*.pbs under a real local Slurm (with its PBS qsub/qstat/qdel
wrappers) and their PBS branches with a simulated PBS environment. Needs root
and the release binary (cargo build --release). Installs slurm-wlm,
slurm-wlm-torque, munge and shellcheck with apt when missing. Ends with the
line 'N passed, M failed'; exits non-zero if any check failed.

Options:
  --keep   keep the work directory and leave Slurm running afterwards
           (by default Slurm is stopped again if this test started it)

Environment:
  HPCMAP_BIN       binary to test (default: target/release/hpcmap)
  HPCMAP_TEST_DIR  parent of the work directory (default: /tmp)

When the binary's 'run --help' mentions --deadline, a job with a 1-minute
walltime runs a map that needs about 3 (DEADLINE=auto, RESUBMIT=1) and the
chain of continuations must finish it: that adds about 5 minutes
(HPCMAP_DEADLINE_ITEMS, default 340000 spin items of 1 ms: about 3 minutes on 2 ranks).
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
# check DESC CMD...: one check, passing when CMD succeeds.
check() {
    local desc=$1 out
    shift
    if out=$("$@" 2>&1); then ok "$desc"; else not_ok "$desc" "$out"; fi
}
# check_eq DESC EXPECTED ACTUAL
check_eq() {
    if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "expected: $2"$'\n'"actual:   $3"; fi
}
finish() {
    echo "$PASS passed, $FAIL failed"
    [ "$FAIL" -eq 0 ]
    exit $?
}

# json FILE N PATH...: fields of the Nth JSON line (-1: the last), space-separated;
# PATH is dot-separated (answer.value, hosts.0); a missing or null field prints null.
json() {
    perl -MJSON::PP -e '
        my ($file, $n, @paths) = @ARGV;
        open my $fh, "<", $file or die "cannot open $file\n";
        my @recs = map { JSON::PP->new->allow_bignum->decode($_) } grep { /\S/ } <$fh>;
        my $r = $recs[$n > 0 ? $n - 1 : $n] or die "no record $n in $file\n";
        my @out;
        for my $path (@paths) {
            my $v = $r;
            for my $k (split /\./, $path) {
                $v = ref($v) eq "ARRAY" ? $v->[$k] : ref($v) eq "HASH" ? $v->{$k} : undef;
            }
            push @out, defined $v ? (ref($v) =~ /^(HASH|ARRAY)$/ ? "<$1>" : "$v") : "null";
        }
        print join(" ", @out);
    ' "$@"
}
no_nulls() { local v; v=$(json "$@") && ! grep -qw null <<<"$v"; }
qstat_lists() { timeout 10 qstat | grep -q "^$1 "; }
json_count() { [ -f "$1" ] && grep -c . "$1" || echo 0; }
# wait_journal DIR: until a run's journal exists (bounded, 30 s). The root
# creates it after MPI started, so from then on every rank has its walltime
# handlers and a signal winds the run down instead of killing a loading rank.
wait_journal() {
    local i
    for i in $(seq 1 300); do [ -f "$1/journal.hpcmap" ] && return 0; sleep 0.1; done
    return 1
}

# --- prerequisites -------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || { echo "$PROG: must run as root" >&2; exit 2; }
BIN=${HPCMAP_BIN:-$REPO/target/release/hpcmap}
if [ ! -x "$BIN" ]; then
    not_ok "release binary exists" "no executable $BIN: run 'cargo build --release' first"
    finish
fi

WORK=$(mktemp -d "${HPCMAP_TEST_DIR:-/tmp}/hpcmap-scheduler.XXXXXX")
SUBMITTED=()
SLURM_STARTED=0
cleanup() {
    local id
    for id in "${SUBMITTED[@]}"; do qdel "$id" >/dev/null 2>&1 || true; done
    if [ "$KEEP" -eq 1 ]; then
        echo "kept work directory $WORK"
    else
        rm -rf "$WORK"
        [ "$SLURM_STARTED" -eq 1 ] && timeout 60 bash "$REPO/scripts/slurm.sh" down >/dev/null 2>&1
    fi
    return 0
}
trap cleanup EXIT
echo "# work directory: $WORK; binary: $BIN"

# A submit directory shaped like the repo root: the templates find the
# binary at target/release/hpcmap relative to it, or through HPCMAP_BIN.
SUB=$WORK/submit
mkdir -p "$SUB/pbs" "$SUB/scripts"
cp "$REPO"/pbs/*.pbs "$REPO/pbs/job.sh" "$SUB/pbs/"
cp "$REPO/scripts/merge-parts.sh" "$SUB/scripts/"
if [ -n "${HPCMAP_BIN:-}" ]; then
    VBIN="HPCMAP_BIN=$BIN,"
else
    mkdir -p "$SUB/target/release"
    ln -s "$BIN" "$SUB/target/release/hpcmap"
    VBIN=""
fi
HOST=$(hostname)
SQ1000=333833500 # sum of squares 1..1000
SQ100K=333338333350000 # sum of squares 1..100000
PI1E5=9592 # primes below 100000
PI1E6=78498 # primes below 1000000

# --- static checks -------------------------------------------------------------------
check "tests/lint-shell.sh: shellcheck and bash 4.2 constructs" timeout 300 bash "$REPO/tests/lint-shell.sh"
check "scripts/slurm.sh --help" bash "$REPO/scripts/slurm.sh" --help
check "scripts/merge-parts.sh --help" bash "$REPO/scripts/merge-parts.sh" --help

# --- Slurm up --------------------------------------------------------------------------
if ! timeout 5 sinfo -h >/dev/null 2>&1; then SLURM_STARTED=1; fi
if out=$(timeout 240 bash "$REPO/scripts/slurm.sh" up 2>&1); then
    ok "scripts/slurm.sh up"
else
    not_ok "scripts/slurm.sh up" "$out"
    finish
fi
pids_before=$(cat /run/slurmctld.pid /run/slurmd.pid 2>/dev/null | tr '\n' ' ')
check "scripts/slurm.sh up is idempotent" timeout 60 bash "$REPO/scripts/slurm.sh" up
check_eq "second 'up' keeps the running daemons" "$pids_before" "$(cat /run/slurmctld.pid /run/slurmd.pid 2>/dev/null | tr '\n' ' ')"
check "scripts/slurm.sh status" timeout 20 bash "$REPO/scripts/slurm.sh" status
check_eq "sinfo shows node $(hostname -s) idle" idle "$(timeout 10 sinfo -h -N -n "$(hostname -s)" -o %T | head -1)"

# --- submit with qsub, as a user would -------------------------------------------------
# submit VAR ARGS...: qsub ARGS from the submit dir, job id into VAR.
submit() {
    local var=$1 id
    shift
    if id=$(cd "$SUB" && timeout 30 qsub "$@" 2>&1) && [[ $id =~ ^[0-9]+$ ]]; then
        SUBMITTED+=("$id")
        printf -v "$var" '%s' "$id"
        ok "qsub $*  -> job $id"
    else
        printf -v "$var" '%s' ""
        not_ok "qsub $*" "$id"
    fi
}
submit J_SQ -v "${VBIN}WORKLOAD=square,ITEMS=1000" pbs/map.pbs
submit J_PR -v "${VBIN}WORKLOAD=primes,LIMIT=100000" pbs/map.pbs
submit J_OVER -l nodes=1:ppn=1 -v "${VBIN}WORKLOAD=square,ITEMS=1000,RANKS_PER_NODE=3" pbs/map.pbs
submit J_BAD -v "${VBIN}WORKLOAD=square,ITEMS=notanumber" pbs/map.pbs
submit J_SCALE -v "${VBIN}WORKLOAD=square,ITEMS=100000,MAX_RPN=4" pbs/scaling.pbs
submit J_ARR -t 1-4 -v "${VBIN}WORKLOAD=primes,LIMIT=1000000" pbs/array.pbs
submit J_ARR3 -t 1-3 -v "${VBIN}WORKLOAD=square,ITEMS=1000" pbs/array.pbs
# ~3 s of work, a progress line every 0.5 s: the batch job's default is lines.
submit J_PROG -v "${VBIN}WORKLOAD=spin,ITEMS=15000,MICROS=300,SCHEDULE=dynamic,EXTRA_ARGS=--progress-interval=0.5" pbs/map.pbs
if [ -n "$J_SQ" ]; then
    check "qstat lists job $J_SQ" qstat_lists "$J_SQ"
fi

# --- meanwhile: the PBS branches, run directly with a PBS-style environment ---------------
PBSW=$WORK/pbs-workdir # a submit directory: the templates in pbs/, results/ appear
mkdir -p "$PBSW"
cp -r "$SUB/pbs" "$PBSW/"
printf '%s\n' "$HOST" "$HOST" "$HOST" >"$WORK/nodefile3"
printf '%s\n' "$HOST" "$HOST" >"$WORK/nodefile2"
# pbs_run LOG NODEFILE TEMPLATE VAR=VALUE...: the template as PBS would start it.
pbs_run() {
    local log=$1 nodefile=$2 template=$3
    shift 3
    (cd / && env -u SLURM_JOB_ID -u SLURM_JOBID -u SLURM_ARRAY_TASK_ID -u SLURM_ARRAY_JOB_ID \
        PBS_NODEFILE="$nodefile" PBS_O_WORKDIR="$PBSW" PBS_ENVIRONMENT=PBS_BATCH \
        HPCMAP_BIN="$BIN" "$@" timeout 60 bash "$REPO/pbs/$template") >"$log" 2>&1
}
pbs_run "$WORK/pbs-map.log" "$WORK/nodefile3" map.pbs PBS_JOBID=4242.pbsserver WORKLOAD=square ITEMS=1000
rc=$?
check_eq "PBS branch: map.pbs exit code" 0 "$rc"
check "PBS branch: map.pbs saw the nodefile allocation ($HOST:3)" \
    grep -q "allocation: 1 node(s): $HOST:3" "$WORK/pbs-map.log"
check "PBS branch: map.pbs used PBS_JOBID and PBS_O_WORKDIR" grep -q "scheduler: pbs, job 4242.pbsserver, workdir $PBSW" "$WORK/pbs-map.log"
F=$PBSW/results/4242.pbsserver.jsonl
check_eq "PBS branch: map.pbs JSON record in results/4242.pbsserver.jsonl" 1 "$(json_count "$F")"
check_eq "PBS branch: map.pbs record ranks" 3 "$(json "$F" 1 ranks 2>&1)"
check_eq "PBS branch: map.pbs answer.value" "$SQ1000" "$(json "$F" 1 answer.value 2>&1)"

pbs_run "$WORK/pbs-scaling.log" "$WORK/nodefile2" scaling.pbs PBS_JOBID=4243.pbsserver WORKLOAD=square ITEMS=1000
rc=$?
check_eq "PBS branch: scaling.pbs exit code" 0 "$rc"
F=$PBSW/results/4243.pbsserver.scaling.jsonl
check_eq "PBS branch: scaling.pbs ranks per run (1, 2 for 2 slots)" "1 2" \
    "$(for n in 1 2; do json "$F" "$n" ranks 2>&1; echo; done | xargs)"

for i in 1 2; do # PBS Pro array
    pbs_run "$WORK/pbs-array-pro$i.log" "$WORK/nodefile2" array.pbs "PBS_JOBID=4244[$i].pbsserver" \
        "PBS_ARRAY_ID=4244[].pbsserver" PBS_ARRAY_INDEX=$i PARTS=2 WORKLOAD=primes LIMIT=1000000 ||
        not_ok "PBS Pro array part $i exit code" "$(cat "$WORK/pbs-array-pro$i.log")"
done
check_eq "PBS Pro array (PBS_ARRAY_INDEX): merged parts" "answer: $PI1E6" \
    "$(bash "$REPO/scripts/merge-parts.sh" "$PBSW/results/4244.pbsserver.parts" 2>&1 | tail -1)"
for i in 1 2 3; do # Torque array
    pbs_run "$WORK/pbs-array-torque$i.log" "$WORK/nodefile2" array.pbs "PBS_JOBID=4245[$i].pbsserver" \
        PBS_ARRAYID=$i PARTS=3 WORKLOAD=square ITEMS=1000 ||
        not_ok "Torque array part $i exit code" "$(cat "$WORK/pbs-array-torque$i.log")"
done
check_eq "Torque array (PBS_ARRAYID): merged parts" "answer: $SQ1000" \
    "$(bash "$REPO/scripts/merge-parts.sh" "$PBSW/results/4245.pbsserver.parts" 2>&1 | tail -1)"
check_eq "Torque array part record has part \"2/3\"" "2/3" \
    "$(json "$PBSW/results/4245.pbsserver.parts/part-2.jsonl" 1 part 2>&1)"
rm -f "$PBSW/results/4245.pbsserver.parts/part-3.jsonl"
bash "$REPO/scripts/merge-parts.sh" "$PBSW/results/4245.pbsserver.parts" >"$WORK/merge-missing.log" 2>&1
rc=$?
check_eq "merge-parts.sh fails (1) when a part is missing" 1 "$rc"

pbs_run "$WORK/pbs-array-none.log" "$WORK/nodefile2" array.pbs PBS_JOBID=4246.pbsserver
rc=$?
check_eq "array.pbs outside an array job exits 2" 2 "$rc"

# Signal forwarding: SIGTERM to the job shell (PBS at the walltime) reaches mpirun.
(cd / && exec env -u SLURM_JOB_ID PBS_NODEFILE="$WORK/nodefile2" PBS_O_WORKDIR="$PBSW" \
    PBS_JOBID=4247.pbsserver HPCMAP_BIN="$BIN" WORKLOAD=spin ITEMS=1000000 MICROS=1000 \
    EXTRA_ARGS="--schedule dynamic --journal $WORK/pbs-journal" \
    bash "$REPO/pbs/map.pbs") >"$WORK/pbs-signal.log" 2>&1 &
SIGPID=$!
wait_journal "$WORK/pbs-journal" && sleep 1 # some chunks done
kill -TERM "$SIGPID" 2>/dev/null
ended=0
for _ in $(seq 1 200); do kill -0 "$SIGPID" 2>/dev/null || { ended=1; break; }; sleep 0.1; done
if [ "$ended" -eq 1 ]; then
    ok "PBS branch: SIGTERM to the job script ends the run within 20 s"
else
    not_ok "PBS branch: SIGTERM to the job script ends the run within 20 s" "$(cat "$WORK/pbs-signal.log")"
    kill -KILL "$SIGPID" 2>/dev/null
fi
wait "$SIGPID" 2>/dev/null
check "PBS branch: SIGTERM forwarded to mpirun" grep -q "received SIGTERM; forwarding to mpirun" "$WORK/pbs-signal.log"
check "PBS branch: the interrupted run exits 75 (resumable)" grep -q "mpirun exit code 75" "$WORK/pbs-signal.log"
check "PBS branch: what was done is journaled" test -s "$WORK/pbs-journal/journal.hpcmap"

# --- arrays: parts fixed by the array's own id, re-runs join their siblings -----------------
# PBS Pro: a sub-job re-run (qrerun 4244[2]) has the same PBS_ARRAY_ID and no PARTS.
pbs_run "$WORK/pbs-array-rerun.log" "$WORK/nodefile2" array.pbs "PBS_JOBID=4244[2].pbsserver" \
    "PBS_ARRAY_ID=4244[].pbsserver" PBS_ARRAY_INDEX=2 WORKLOAD=primes LIMIT=1000000
rc=$?
check_eq "PBS Pro sub-job re-run without PARTS: exit code" 0 "$rc"
check "PBS Pro re-run: K=2 read from the parts folder" grep -q "array 4244.pbsserver, part 2/2" "$WORK/pbs-array-rerun.log"
check_eq "PBS Pro re-run: appended to the same part file (2 records)" 2 \
    "$(json_count "$PBSW/results/4244.pbsserver.parts/part-2.jsonl")"
check_eq "PBS Pro re-run: merged parts still give the whole answer" "answer: $PI1E6" \
    "$(bash "$REPO/scripts/merge-parts.sh" "$PBSW/results/4244.pbsserver.parts" 2>&1 | tail -1)"
pbs_run "$WORK/pbs-array-noparts.log" "$WORK/nodefile2" array.pbs "PBS_JOBID=4248[5].pbsserver" \
    "PBS_ARRAY_ID=4248[].pbsserver" PBS_ARRAY_INDEX=5 WORKLOAD=square ITEMS=1000
rc=$?
check_eq "PBS Pro array, size unknown and no PARTS: exit code 2 (no guess)" 2 "$rc"
check "PBS Pro array without PARTS: the message asks for PARTS" grep -q "set PARTS" "$WORK/pbs-array-noparts.log"
# Torque, 8 parts: parts 5-8 work (they exited 2 when PARTS defaulted to 4);
# only the first part to run is told PARTS, its siblings read it from the folder.
for i in 5 1 2 3 4 6 7 8; do
    parts=()
    [ "$i" -eq 5 ] && parts=(PARTS=8)
    pbs_run "$WORK/pbs-torque8-$i.log" "$WORK/nodefile2" array.pbs "PBS_JOBID=4249[$i].pbsserver" \
        PBS_ARRAYID=$i ${parts[@]+"${parts[@]}"} WORKLOAD=square ITEMS=1000 ||
        not_ok "Torque 8-part array: part $i exit code" "$(cat "$WORK/pbs-torque8-$i.log")"
done
check_eq "Torque 8-part array: merged parts (PARTS given to part 5 only)" "answer: $SQ1000" \
    "$(bash "$REPO/scripts/merge-parts.sh" "$PBSW/results/4249.pbsserver.parts" 2>&1 | tail -1)"
# Torque: part 3 of array 4245 (removed above) re-run as a new array job.
pbs_run "$WORK/pbs-torque-rerun.log" "$WORK/nodefile2" array.pbs "PBS_JOBID=4250[3].pbsserver" \
    PBS_ARRAYID=3 ARRAY_ID=4245.pbsserver WORKLOAD=square ITEMS=1000
rc=$?
check_eq "Torque re-run of part 3 as a new array with ARRAY_ID=4245.pbsserver: exit code" 0 "$rc"
check "Torque re-run: landed in results/4245.pbsserver.parts" test -s "$PBSW/results/4245.pbsserver.parts/part-3.jsonl"
check_eq "Torque re-run: merged parts complete again" "answer: $SQ1000" \
    "$(bash "$REPO/scripts/merge-parts.sh" "$PBSW/results/4245.pbsserver.parts" 2>&1 | tail -1)"
# Any scheduler: a plain (non-array) job running part 1 of array 4245 by hand.
pbs_run "$WORK/pbs-byhand.log" "$WORK/nodefile2" array.pbs PBS_JOBID=4257.pbsserver \
    ARRAY_INDEX=1 ARRAY_ID=4245.pbsserver WORKLOAD=square ITEMS=1000
rc=$?
check_eq "a plain job with ARRAY_INDEX=1 ARRAY_ID=4245.pbsserver: exit code" 0 "$rc"
check_eq "by hand: part 1/3 appended to results/4245.pbsserver.parts" "2 1/3" \
    "$(json_count "$PBSW/results/4245.pbsserver.parts/part-1.jsonl") $(json "$PBSW/results/4245.pbsserver.parts/part-1.jsonl" -1 part 2>&1)"
pbs_run "$WORK/pbs-torque-mismatch.log" "$WORK/nodefile2" array.pbs "PBS_JOBID=4251[1].pbsserver" \
    PBS_ARRAYID=1 ARRAY_ID=4245.pbsserver PARTS=5 WORKLOAD=square ITEMS=1000
rc=$?
check_eq "PARTS=5 for a folder of 3 parts: exit code 2" 2 "$rc"

# --- THREADS, modules, a missing mpirun ---------------------------------------------------------
pbs_run "$WORK/pbs-threads.log" "$WORK/nodefile2" map.pbs PBS_JOBID=4252.pbsserver OMP_NUM_THREADS=2 \
    WORKLOAD=square ITEMS=1000
rc=$?
check_eq "THREADS from OMP_NUM_THREADS=2 on 2 slots: exit code" 0 "$rc"
check "THREADS=2 on 2 slots: 1 rank bound to 2 cores (--map-by slot:PE=2), no oversubscription" \
    grep -q -- "running: mpirun -n 1 --host $HOST:1 --map-by slot:PE=2 .* --threads 2 " "$WORK/pbs-threads.log"
check_eq "THREADS=2: record ranks, threads, answer" "1 2 $SQ1000" \
    "$(json "$PBSW/results/4252.pbsserver.jsonl" 1 ranks threads answer.value 2>&1)"
pbs_run "$WORK/pbs-nompirun.log" "$WORK/nodefile2" map.pbs PBS_JOBID=4253.pbsserver MPIRUN=sitempirun \
    WORKLOAD=square ITEMS=1000
rc=$?
check_eq "mpirun missing: exit code 1 before anything runs" 1 "$rc"
check "mpirun missing: the output names it and hints at MODULES" \
    grep -q "hint: .*MODULES=openmpi" "$WORK/pbs-nompirun.log"
pbs_run "$WORK/pbs-nomodule.log" "$WORK/nodefile2" map.pbs PBS_JOBID=4254.pbsserver MODULES=openmpi \
    MODULESHOME=/nonexistent WORKLOAD=square ITEMS=1000
rc=$?
check_eq "MODULES set where no module command exists: exit code 1" 1 "$rc"
check "no module command: a clear message" grep -q "no 'module' command" "$WORK/pbs-nomodule.log"
# A site whose 'module load openmpi' puts mpirun on PATH (as sitempirun here).
mkdir -p "$WORK/modules/openmpi"
ln -sf "$(command -v mpirun)" "$WORK/modules/openmpi/sitempirun"
# shellcheck disable=SC2329 # called inside the job through the exported function
module() { [ "$1" = load ] && [ -d "$MODULEROOT/$2" ] && PATH=$MODULEROOT/$2:$PATH; }
export -f module
pbs_run "$WORK/pbs-module.log" "$WORK/nodefile2" map.pbs PBS_JOBID=4255.pbsserver MODULES=openmpi \
    MODULEROOT="$WORK/modules" MPIRUN=sitempirun WORKLOAD=square ITEMS=1000
rc=$?
unset -f module
check_eq "MODULES=openmpi: 'module load' makes the site's mpirun available, exit code 0" 0 "$rc"
check "MODULES=openmpi: logged and answered" grep -q "module loaded: openmpi" "$WORK/pbs-module.log"

# --- PBS walltime: the server signals the job's whole session ------------------------------------
# The job script leads its session, as under pbs_mom; at the walltime every
# process of that session gets SIGTERM. mpirun runs in its own session, so
# only the script's forwarding (as SIGUSR1) reaches it and the run ends 75.
(cd / && exec setsid env -u SLURM_JOB_ID PBS_NODEFILE="$WORK/nodefile2" PBS_O_WORKDIR="$PBSW" \
    PBS_JOBID=4256.pbsserver HPCMAP_BIN="$BIN" WORKLOAD=spin ITEMS=1000000 MICROS=1000 \
    JOURNAL="$WORK/pbs-session-journal" SCHEDULE=dynamic \
    bash "$REPO/pbs/map.pbs") >"$WORK/pbs-session.log" 2>&1 &
SESS=$!
wait_journal "$WORK/pbs-session-journal" && sleep 1 # some chunks done
in_session=$(ps -e -o pid=,sid= | awk -v s="$SESS" '$2 == s { print $1 }' | xargs)
mpirun_sid=$(ps -e -o ppid=,sid=,comm= | awk -v p="$SESS" '$1 == p && $3 == "mpirun" { print $2 }' | head -1)
check "PBS walltime: mpirun runs outside the job's session" test -n "$mpirun_sid" -a "$mpirun_sid" != "$SESS"
# shellcheck disable=SC2086 # the pid list
[ -n "$in_session" ] && kill -TERM $in_session 2>/dev/null
ended=0
for _ in $(seq 1 200); do kill -0 "$SESS" 2>/dev/null || { ended=1; break; }; sleep 0.1; done
[ "$ended" -eq 1 ] || kill -KILL "$SESS" 2>/dev/null
wait "$SESS" 2>/dev/null
check "PBS walltime (TERM to the whole session): the run exits 75, resumable" \
    grep -q "mpirun exit code 75" "$WORK/pbs-session.log"
check "PBS walltime: the finished chunks are journaled" test -s "$WORK/pbs-session-journal/journal.hpcmap"

# --- RESUBMIT=1 under PBS: the continuation, through a stand-in qsub and qstat --------------------
SPIN_ITEMS=6000
SPIN_MICROS=1000
REF=$(cd "$WORK" && timeout 60 "$BIN" run spin --items $SPIN_ITEMS --micros $SPIN_MICROS 2>&1 | grep -E '^(answer|checksum):' | xargs)
mkdir -p "$WORK/fakepbs"
cat >"$WORK/fakepbs/qsub" <<EOF
#!/bin/bash
# Stand-in for PBS's qsub: records the arguments and the environment.
printf '%s\n' "\$@" >"$WORK/fakepbs/qsub.args"
env -0 >"$WORK/fakepbs/qsub.env"
echo 4261.pbsserver
EOF
cat >"$WORK/fakepbs/qstat" <<'EOF'
#!/bin/bash
# Stand-in for PBS's qstat -f: the job's resources, one wrapped line.
printf 'Job Id: %s\n    Resource_List.walltime = 00:30:00\n    Resource_List.nodes = 1:ppn=\n\t2\n' "$2"
EOF
chmod +x "$WORK/fakepbs/qsub" "$WORK/fakepbs/qstat"
(cd / && exec env -u SLURM_JOB_ID PATH="$WORK/fakepbs:$PATH" PBS_NODEFILE="$WORK/nodefile2" \
    PBS_O_WORKDIR="$PBSW" PBS_JOBID=4260.pbsserver PBS_JOBNAME=hpcmap HPCMAP_BIN="$BIN" \
    HPCMAP_JOB_LIB="$REPO/pbs/job.sh" WORKLOAD=spin ITEMS=$SPIN_ITEMS MICROS=$SPIN_MICROS \
    JOURNAL="$WORK/pbs-resub-journal" RESUBMIT=1 SCHEDULE=dynamic \
    bash "$REPO/pbs/map.pbs") >"$WORK/pbs-resub1.log" 2>&1 &
RPID=$!
wait_journal "$WORK/pbs-resub-journal" && sleep 1 # some chunks done
kill -TERM "$RPID" 2>/dev/null
for _ in $(seq 1 200); do kill -0 "$RPID" 2>/dev/null || break; sleep 0.1; done
wait "$RPID"
rc=$?
check_eq "RESUBMIT=1 (PBS): the interrupted job exits 75" 75 "$rc"
check "RESUBMIT=1 (PBS): continuation submitted" grep -q "continuation submitted: job 4261.pbsserver" "$WORK/pbs-resub1.log"
check_eq "RESUBMIT=1 (PBS): qsub -V -W depend=afterany:4260.pbsserver with the job's resources and name" \
    "-V -W depend=afterany:4260.pbsserver -l walltime=00:30:00 -l nodes=1:ppn=2 -N hpcmap $PBSW/pbs/map.pbs" \
    "$(xargs <"$WORK/fakepbs/qsub.args" 2>&1)"
envget() { tr '\0' '\n' <"$WORK/fakepbs/qsub.env" | sed -n "s/^$1=//p"; }
check_eq "RESUBMIT=1 (PBS): the continuation's environment (RESUME, CHAIN, WORKLOAD, JOURNAL, SCHEDULE)" \
    "1 1 spin $WORK/pbs-resub-journal dynamic" \
    "$(envget RESUME) $(envget CHAIN) $(envget WORKLOAD) $(envget JOURNAL) $(envget SCHEDULE)"
check_eq "RESUBMIT=1 (PBS): no stale PBS_JOBID handed on" "" "$(envget PBS_JOBID)"
# Run the continuation as the PBS server would: its recorded environment, a new job id.
(cd / && mapfile -d '' -t cenv <"$WORK/fakepbs/qsub.env" &&
    exec env -i "${cenv[@]}" PBS_NODEFILE="$WORK/nodefile2" PBS_O_WORKDIR="$PBSW" \
        PBS_JOBID=4261.pbsserver timeout 60 bash "$REPO/pbs/map.pbs") >"$WORK/pbs-resub2.log" 2>&1
rc=$?
check_eq "RESUBMIT=1 (PBS): the continuation exits 0" 0 "$rc"
check "RESUBMIT=1 (PBS): the continuation resumed the journal" grep -q -- "--resume" "$WORK/pbs-resub2.log"
check_eq "RESUBMIT=1 (PBS): answer and checksum equal an uninterrupted run's" "$REF" \
    "$(grep -E '^(answer|checksum):' "$WORK/pbs-resub2.log" | xargs)"

# --- exec.pbs: the task farm (needs 'hpcmap exec') ---------------------------------------------------
if ! "$BIN" --help 2>/dev/null | grep -qE '^ +exec '; then
    echo "SKIP: hpcmap has no exec (pbs/exec.pbs untested)"
    pbs_run "$WORK/pbs-exec-missing.log" "$WORK/nodefile2" exec.pbs PBS_JOBID=4270.pbsserver \
        LINES=/etc/hostname CMD="echo {}"
    rc=$?
    check_eq "exec.pbs with an hpcmap without exec: exit code 2" 2 "$rc"
    check "exec.pbs without exec: a clear message" grep -q "has no 'exec' command" "$WORK/pbs-exec-missing.log"
else
    seq 1 40 >"$PBSW/lines.txt"
    pbs_run "$WORK/pbs-exec.log" "$WORK/nodefile2" exec.pbs PBS_JOBID=4270.pbsserver \
        LINES=lines.txt CMD="echo {}" JOBLOG=exec.joblog JOURNAL="$WORK/exec-journal"
    rc=$?
    check_eq "exec.pbs: 40 lines over 2 ranks, exit code" 0 "$rc"
    check "exec.pbs: a joblog with a line per task" test "$(wc -l <"$PBSW/exec.joblog" 2>/dev/null || echo 0)" -ge 40
    # The same command over a complete journal: nothing runs again, the
    # output is replayed whole; another command is another run, refused.
    pbs_run "$WORK/pbs-exec2.log" "$WORK/nodefile2" exec.pbs PBS_JOBID=4271.pbsserver \
        LINES=lines.txt CMD="echo {}" JOURNAL="$WORK/exec-journal" RESUME=1
    rc=$?
    check_eq "exec.pbs RESUME=1 over a complete journal: exit code" 0 "$rc"
    pbs_run "$WORK/pbs-exec3.log" "$WORK/nodefile2" exec.pbs PBS_JOBID=4272.pbsserver \
        LINES=lines.txt CMD="true {}" JOURNAL="$WORK/exec-journal" RESUME=1
    rc=$?
    check_eq "exec.pbs RESUME=1 with another command: refused (exit 1)" 1 "$rc"
    check "exec.pbs: the refusal names the other run" grep -q "written by a different run" "$WORK/pbs-exec3.log"
fi

# --- wait for the Slurm jobs with the scheduler's own commands ------------------------------
TERMINAL='COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED'
# states ID: JobState of the job (every task of an array), one per line.
states() { timeout 10 scontrol -o show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }
# wait_done ID...: until squeue shows none of them pending or running (bounded).
wait_done() {
    local id busy
    while [ "$SECONDS" -lt "$DEADLINE" ]; do
        busy=0
        for id in "$@"; do
            [ -z "$id" ] && continue
            if states "$id" | grep -qvE "^($TERMINAL)$"; then busy=1; fi
            [ -n "$(timeout 10 squeue -h -j "$id" -t PD,R,CG,CF,S 2>/dev/null)" ] && busy=1
        done
        [ "$busy" -eq 0 ] && return 0
        sleep 0.5
    done
    return 1
}
if wait_done "$J_SQ" "$J_PR" "$J_OVER" "$J_BAD" "$J_SCALE" "$J_ARR" "$J_ARR3" "$J_PROG"; then
    ok "all submitted jobs finished (squeue/scontrol)"
else
    not_ok "all submitted jobs finished before the deadline" "$(timeout 10 squeue 2>&1)"
fi

# job_out ID [TASK]: the job's output file (qsub's default name: <script>.o<id>[.<task>]).
job_out() {
    local f
    for f in "$SUB"/*.o"$1""${2:+.$2}"; do [ -e "$f" ] && { echo "$f"; return; }; done
}

# map.pbs, square
if [ -n "$J_SQ" ]; then
    O=$(job_out "$J_SQ")
    check_eq "map.pbs square: job state" COMPLETED "$(states "$J_SQ")"
    check_eq "map.pbs square: qstat shows the job completed (C)" C \
        "$(timeout 10 qstat "$J_SQ" | awk -v id="$J_SQ" '$1 == id { print $5 }')"
    check "map.pbs square: output file map.pbs.o$J_SQ has the answer" grep -qE "^answer: .*\\b$SQ1000\\b" "$O"
    check "map.pbs square: output shows the Slurm allocation" grep -q "scheduler: slurm, job $J_SQ" "$O"
    check "map.pbs square: report shows ranks: 2" grep -q "^ranks: 2" "$O"
    F=$SUB/results/$J_SQ.jsonl
    check_eq "map.pbs square: one JSON record in results/$J_SQ.jsonl" 1 "$(json_count "$F")"
    check_eq "map.pbs square: record answer.value" "$SQ1000" "$(json "$F" 1 answer.value 2>&1)"
    check_eq "map.pbs square: record workload/ranks/nodes/hosts/part" "square 2 1 $HOST null" \
        "$(json "$F" 1 workload ranks nodes hosts.0 part 2>&1)"
    check "map.pbs square: record has answer.text, checksum, wall_s, threads, phases" \
        no_nulls "$F" 1 answer.text checksum wall_s threads phases
fi
# map.pbs in a batch job: periodic progress lines in the output file, no bar
if [ -n "$J_PROG" ]; then
    O=$(job_out "$J_PROG")
    check_eq "map.pbs progress: job state" COMPLETED "$(states "$J_PROG")"
    n=$(grep -c '^hpcmap: progress .*/15000 items), .*items/s' "$O" 2>/dev/null || true)
    check "map.pbs progress: the output file has periodic progress lines ($n)" test "${n:-0}" -ge 3
    check "map.pbs progress: no bar escape sequences in the file" bash -c "! grep -q $'\e' '$O'"
    check "map.pbs progress: the answer follows" grep -q "^answer: 15000 items" "$O"
fi
# map.pbs, primes
if [ -n "$J_PR" ]; then
    O=$(job_out "$J_PR")
    check_eq "map.pbs primes: job state" COMPLETED "$(states "$J_PR")"
    check_eq "map.pbs primes: record answer.value and ranks" "$PI1E5 2" \
        "$(json "$SUB/results/$J_PR.jsonl" 1 answer.value ranks 2>&1)"
    check "map.pbs primes: output has the answer" grep -qE "^answer: .*\\b$PI1E5\\b" "$O"
fi
# map.pbs, 1 slot granted but 3 ranks asked for
if [ -n "$J_OVER" ]; then
    O=$(job_out "$J_OVER")
    check_eq "map.pbs RANKS_PER_NODE=3: job state" COMPLETED "$(states "$J_OVER")"
    check "map.pbs RANKS_PER_NODE=3: -l nodes=1:ppn=1 seen as 1 slot, oversubscribed to 3 ranks" \
        grep -q "allocation: 1 node(s): $(hostname -s):3 (granted slots: 1)" "$O"
    check_eq "map.pbs RANKS_PER_NODE=3: record answer.value and ranks" "$SQ1000 3" \
        "$(json "$SUB/results/$J_OVER.jsonl" 1 answer.value ranks 2>&1)"
fi
# map.pbs with a bad argument
if [ -n "$J_BAD" ]; then
    O=$(job_out "$J_BAD")
    check_eq "bad argument: job state FAILED" FAILED "$(states "$J_BAD")"
    check_eq "bad argument: scheduler exit code 2 (usage error)" "2:0" \
        "$(timeout 10 scontrol -o show job "$J_BAD" | grep -o ' ExitCode=[0-9:]*' | cut -d= -f2)"
    check "bad argument: the error is in the job's output file" grep -qi "notanumber" "$O"
    check "bad argument: no JSON record written" test ! -s "$SUB/results/$J_BAD.jsonl"
fi
# scaling.pbs
if [ -n "$J_SCALE" ]; then
    O=$(job_out "$J_SCALE")
    F=$SUB/results/$J_SCALE.scaling.jsonl
    check_eq "scaling.pbs: job state" COMPLETED "$(states "$J_SCALE")"
    check_eq "scaling.pbs: runs at 1, 2, 4 ranks in one JSON-lines file" "1 2 4" \
        "$(for n in 1 2 3; do json "$F" "$n" ranks 2>&1; echo; done | xargs)"
    check_eq "scaling.pbs: every run has the same answer" "$SQ100K $SQ100K $SQ100K" \
        "$(for n in 1 2 3; do json "$F" "$n" answer.value 2>&1; echo; done | xargs)"
    check "scaling.pbs: output ends with the summary table" grep -q "summary of" "$O"
fi
# array.pbs under Slurm
if [ -n "$J_ARR" ]; then
    check_eq "array.pbs 1-4: all 4 tasks completed" "COMPLETED COMPLETED COMPLETED COMPLETED" \
        "$(states "$J_ARR" | xargs)"
    check "array.pbs 1-4: one output file per task (array.pbs.o$J_ARR.1 .. .4)" \
        test -s "$(job_out "$J_ARR" 1)" -a -s "$(job_out "$J_ARR" 4)"
    check_eq "array.pbs 1-4: parts of primes below 1000000 sum to $PI1E6" "answer: $PI1E6" \
        "$(cd "$SUB" && bash scripts/merge-parts.sh "results/$J_ARR.parts" 2>&1 | tail -1)"
    check_eq "array.pbs 1-4: task 3 mapped part 3/4" "3/4" \
        "$(json "$SUB/results/$J_ARR.parts/part-3.jsonl" 1 part 2>&1)"
fi
if [ -n "$J_ARR3" ]; then
    check_eq "array.pbs 1-3: parts of square 1000 sum to $SQ1000 (merge --json)" "$SQ1000" \
        "$(cd "$SUB" && bash scripts/merge-parts.sh --json "results/$J_ARR3.parts" | perl -MJSON::PP -ne 'print decode_json($_)->{answer}' 2>&1)"
fi

# --- walltime-style signal and qdel on running jobs ---------------------------------------
submit J_SIG -l nodes=1:ppn=1 -v "${VBIN}WORKLOAD=spin,ITEMS=1000000,MICROS=1000" pbs/map.pbs
submit J_DEL -l nodes=1:ppn=1 -v "${VBIN}WORKLOAD=spin,ITEMS=1000000,MICROS=1000" pbs/map.pbs
# wait_running ID: until the job's output shows mpirun started (bounded).
wait_running() {
    local o
    while [ "$SECONDS" -lt "$DEADLINE" ]; do
        o=$(job_out "$1")
        [ -n "$o" ] && grep -q "running:" "$o" && { sleep 1; return 0; }
        sleep 0.3
    done
    return 1
}
if [ -n "$J_SIG" ] && wait_running "$J_SIG"; then
    O=$(job_out "$J_SIG")
    check_eq "spin job $J_SIG is running" RUNNING "$(states "$J_SIG")"
    # What Slurm does before the walltime with '#SBATCH --signal=B:USR1@60'.
    check "scancel --signal=USR1 --batch $J_SIG" timeout 10 scancel --signal=USR1 --batch "$J_SIG"
    fwd=0
    for _ in $(seq 1 50); do
        grep -q "received SIGUSR1; forwarding to mpirun" "$O" && { fwd=1; break; }
        sleep 0.2
    done
    if [ "$fwd" -eq 1 ]; then ok "Slurm: SIGUSR1 forwarded to mpirun"; else not_ok "Slurm: SIGUSR1 forwarded to mpirun" "$(cat "$O")"; fi
else
    not_ok "spin job ${J_SIG:-?} started" "$(timeout 10 squeue 2>&1)"
fi
if [ -n "$J_DEL" ] && wait_running "$J_DEL"; then
    check_eq "spin job $J_DEL is running" RUNNING "$(states "$J_DEL")"
    check "qdel $J_DEL" timeout 10 qdel "$J_DEL"
    if wait_done "$J_DEL"; then
        check_eq "qdel: job state CANCELLED" CANCELLED "$(states "$J_DEL")"
    else
        not_ok "job $J_DEL ended after qdel" "$(timeout 10 squeue 2>&1)"
    fi
else
    not_ok "spin job ${J_DEL:-?} started" "$(timeout 10 squeue 2>&1)"
fi
[ -n "$J_SIG" ] && { timeout 10 qdel "$J_SIG" >/dev/null 2>&1; wait_done "$J_SIG"; }

# --- array re-runs under Slurm ---------------------------------------------------------------
# Re-running part 3 as a new array: '--array=3' alone must not become PARTS=3.
submit J_RE_BAD -t 3 -v "${VBIN}WORKLOAD=primes,LIMIT=1000000" pbs/array.pbs
submit J_RE -t 3 -v "${VBIN}WORKLOAD=primes,LIMIT=1000000,ARRAY_ID=$J_ARR" pbs/array.pbs
if wait_done "$J_RE_BAD" "$J_RE"; then
    if [ -n "$J_RE_BAD" ]; then
        check_eq "qsub -t 3 (a new array of one part, no ARRAY_ID): FAILED with exit 2, no guess" "FAILED 2:0" \
            "$(states "$J_RE_BAD") $(timeout 10 scontrol -o show job "$J_RE_BAD" | grep -o ' ExitCode=[0-9:]*' | cut -d= -f2)"
        check "qsub -t 3 without ARRAY_ID: the output says how to re-run a part" \
            grep -q "ARRAY_ID=N" "$(job_out "$J_RE_BAD" 3)"
    fi
    if [ -n "$J_RE" ] && [ -n "$J_ARR" ]; then
        check_eq "qsub -t 3 -v ARRAY_ID=$J_ARR: COMPLETED" COMPLETED "$(states "$J_RE")"
        check_eq "re-run part: appended to results/$J_ARR.parts/part-3.jsonl as part 3/4" "2 3/4" \
            "$(json_count "$SUB/results/$J_ARR.parts/part-3.jsonl") $(json "$SUB/results/$J_ARR.parts/part-3.jsonl" -1 part 2>&1)"
        check_eq "re-run part: the merge still gives the whole answer" "answer: $PI1E6" \
            "$(cd "$SUB" && bash scripts/merge-parts.sh "results/$J_ARR.parts" 2>&1 | tail -1)"
    fi
else
    not_ok "array re-run jobs finished" "$(timeout 10 squeue 2>&1)"
fi

# --- RESUBMIT=1 under Slurm: interrupted, continued, same answer ----------------------------------
# sbatch_submit VAR ARGS...: sbatch --parsable ARGS from the submit dir, job id into VAR.
sbatch_submit() {
    local var=$1 id
    shift
    if id=$(cd "$SUB" && timeout 30 sbatch --parsable "$@" 2>&1) && [[ $id =~ ^[0-9]+$ ]]; then
        SUBMITTED+=("$id")
        printf -v "$var" '%s' "$id"
        ok "sbatch $*  -> job $id"
    else
        printf -v "$var" '%s' ""
        not_ok "sbatch $*" "$id"
    fi
}
# continuation_of ID: the job id a job's output names as its continuation.
continuation_of() {
    local o
    o=$(job_out "$1")
    [ -n "$o" ] && sed -n 's/.*continuation submitted: job \([0-9]*\).*/\1/p' "$o" | head -1
}
spin_ref() { (cd "$WORK" && timeout 60 "$BIN" run spin --items "$1" --micros 0 2>&1 | grep -E '^(answer|checksum):' | xargs); }
REF8K=$(spin_ref 8000)
sbatch_submit J_RS -N 1 --ntasks-per-node=2 -o "map.pbs.o%j" \
    --export="ALL,WORKLOAD=spin,ITEMS=8000,MICROS=1000,JOURNAL=journal-resubmit,RESUBMIT=1,SCHEDULE=dynamic" \
    pbs/map.pbs
if [ -n "$J_RS" ] && wait_running "$J_RS"; then
    check "scancel --signal=USR1 --batch $J_RS (Slurm's early walltime warning)" \
        timeout 10 scancel --signal=USR1 --batch "$J_RS"
    wait_done "$J_RS"
    check_eq "RESUBMIT=1 (Slurm): the interrupted job ends FAILED with exit 75" "FAILED 75:0" \
        "$(states "$J_RS") $(timeout 10 scontrol -o show job "$J_RS" | grep -o ' ExitCode=[0-9:]*' | cut -d= -f2)"
    J_CONT=$(continuation_of "$J_RS")
    if [ -n "$J_CONT" ]; then
        SUBMITTED+=("$J_CONT")
        ok "RESUBMIT=1 (Slurm): continuation job $J_CONT submitted"
        check "RESUBMIT=1 (Slurm): with --dependency=afterany:$J_RS" \
            grep -q -- "--dependency=afterany:$J_RS" "$(job_out "$J_RS")"
        wait_done "$J_CONT"
        check_eq "RESUBMIT=1 (Slurm): continuation COMPLETED 0:0" "COMPLETED 0:0" \
            "$(states "$J_CONT") $(timeout 10 scontrol -o show job "$J_CONT" | grep -o ' ExitCode=[0-9:]*' | cut -d= -f2)"
        check_eq "RESUBMIT=1 (Slurm): answer and checksum equal an uninterrupted run's" "$REF8K" \
            "$(grep -E '^(answer|checksum):' "$(job_out "$J_CONT")" | xargs)"
    else
        not_ok "RESUBMIT=1 (Slurm): a continuation was submitted" "$(cat "$(job_out "$J_RS")" 2>&1)"
    fi
else
    not_ok "RESUBMIT=1 job ${J_RS:-?} started" "$(timeout 10 squeue 2>&1)"
fi

# --- a 1-minute walltime, a 3-minute map: --deadline and a chain of continuations -------------------
if ! "$BIN" run --help 2>/dev/null | grep -q -- '--deadline'; then
    echo "SKIP: hpcmap has no --deadline (the 1-minute-walltime chain test is off)"
else
    # ~3 minutes: 2 ranks of 1 ms items under the dynamic schedule map about
    # 2000 items/s here (the root maps a share between hand-outs).
    DL_ITEMS=${HPCMAP_DEADLINE_ITEMS:-340000}
    REF_DL=$(spin_ref "$DL_ITEMS")
    DEADLINE=$((SECONDS + 540)) # this test's own bound
    # The template's '#SBATCH --signal=B:USR1@60' would fire at once in a
    # 1-minute job and end it 75 by itself: a harmless signal (URG) takes its
    # place here and in every continuation, so only --deadline ends a run early.
    NOSIG=--signal=B:URG@5
    sbatch_submit J_DL -N 1 --ntasks-per-node=2 -t 1 "$NOSIG" -o "map.pbs.o%j" \
        --export="ALL,WORKLOAD=spin,ITEMS=$DL_ITEMS,MICROS=1000,JOURNAL=journal-deadline,RESUBMIT=1,DEADLINE=auto,SCHEDULE=dynamic,RESUBMIT_ARGS=$NOSIG" \
        pbs/map.pbs
    CHAIN_IDS=()
    id=$J_DL
    while [ -n "$id" ] && wait_done "$id"; do
        CHAIN_IDS+=("$id")
        id=$(continuation_of "$id")
        [ -n "$id" ] && SUBMITTED+=("$id") # cancelled at the end if still queued
    done
    [ -n "$id" ] && not_ok "deadline chain finished within 8 minutes" "$(timeout 10 squeue 2>&1)"
    if [ -n "$J_DL" ] && [ "${#CHAIN_IDS[@]}" -ge 1 ]; then
        first=${CHAIN_IDS[0]}
        last=${CHAIN_IDS[${#CHAIN_IDS[@]} - 1]}
        check_eq "deadline: the first 1-minute job ends with exit 75 before the kill (not TIMEOUT)" "FAILED 75:0" \
            "$(states "$first") $(timeout 10 scontrol -o show job "$first" | grep -o ' ExitCode=[0-9:]*' | cut -d= -f2)"
        check "deadline: the first job's journal was complete enough to resume (its continuation ran)" \
            test "${#CHAIN_IDS[@]}" -ge 2
        check "deadline: a 3-minute map needed at least 3 jobs of 1 minute (${#CHAIN_IDS[@]})" \
            test "${#CHAIN_IDS[@]}" -ge 3
        check "deadline: the first job received no signal (it stopped by its deadline)" \
            bash -c "! grep -q 'received SIG' '$(job_out "$first")'"
        check_eq "deadline: the last job COMPLETED 0:0" "COMPLETED 0:0" \
            "$(states "$last") $(timeout 10 scontrol -o show job "$last" | grep -o ' ExitCode=[0-9:]*' | cut -d= -f2)"
        check_eq "deadline: answer and checksum equal an uninterrupted run's" "$REF_DL" \
            "$(grep -E '^(answer|checksum):' "$(job_out "$last")" | xargs)"
        timeouts=$(for j in "${CHAIN_IDS[@]}"; do states "$j"; done | grep -c TIMEOUT)
        check_eq "deadline: no job of the chain was killed at its walltime" 0 "$timeouts"
    fi
fi

finish
