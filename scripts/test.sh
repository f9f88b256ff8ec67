#!/usr/bin/env bash
# Fresh machine to a full test run: installs what is missing, builds, and runs
# every test: formatting and lints, unit tests, the integration tests that
# launch the real binary under mpirun, the PBS templates under a real local
# Slurm, and a job across a two-node cluster of network namespaces.
set -uo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"

usage() {
    cat <<USAGE
Usage: scripts/test.sh [--skip-slurm] [--skip-cluster] [--help]

Installs OpenMPI and build tools if missing (as root, via apt), then runs:
  lint      cargo fmt --check; cargo clippy --all-targets -- -D warnings
            (with and without the cli feature); tests/lint-shell.sh
  cargo     cargo test --release: unit tests, and tests/mpi which runs the
            release binary and the examples under mpirun at 1-8 ranks
  slurm     tests/scheduler.sh: submits pbs/*.pbs with qsub to a local Slurm
  cluster   tests/cluster.sh: a job across two network-namespace nodes
  slurm-cluster  tests/slurm-cluster.sh: a real two-node Slurm on those
            namespaces; qsub and sbatch jobs across both nodes
Every stage runs under a timeout. Ends with 'N passed, M failed' over all
stages' checks and exits non-zero if anything failed.

  --skip-slurm     leave out the Slurm stage (needs root)
  --skip-cluster   leave out the namespace cluster stage (needs root)
USAGE
}

skip_slurm=0 skip_cluster=0
for arg in "$@"; do
    case "$arg" in
        -h|--help) usage; exit 0 ;;
        --skip-slurm) skip_slurm=1 ;;
        --skip-cluster) skip_cluster=1 ;;
        *) usage >&2; exit 2 ;;
    esac
done

passed=0 failed=0
logs=$(mktemp -d /tmp/hpcmap-test-logs.XXXXXX)

# stage NAME SECONDS CMD...: runs CMD under a timeout, adds its checks to the totals.
# A stage that prints 'N passed, M failed' (or cargo's 'test result' lines)
# contributes those counts; otherwise it counts as one check.
stage() {
    local name=$1 limit=$2 log="$logs/$1.log" rc counts p f
    shift 2
    say "stage $name: $*"
    timeout -k 10 "$limit" "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    counts=$(grep -Eo '^test result: [a-zA-Z]+\. [0-9]+ passed; [0-9]+ failed' "$log" |
        awk '{p += $4; f += $6} END {if (NR) print p, f}')
    [ -n "$counts" ] || counts=$(grep -Eo '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1 | awk '{print $1, $3}')
    if [ -n "$counts" ]; then
        read -r p f <<<"$counts"
    elif [ "$rc" -eq 0 ]; then
        p=1 f=0
    else
        p=0 f=1
    fi
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1 # a crash or a timeout fails the stage even if no check said so
        [ "$rc" -eq 124 ] && say "stage $name timed out after ${limit}s"
    fi
    passed=$((passed + p)) failed=$((failed + f))
    say "stage $name: $p passed, $f failed (exit $rc)"
}

ensure_packages tmux # tests/mpi/follow.rs: the progress bar in a real terminal
ensure_rust
mpi_env
cd "$HPCMAP_ROOT" || exit 1

stage fmt 120 cargo fmt --check
stage clippy 900 cargo clippy --release --all-targets --quiet -- -D warnings
stage clippy-lib 600 cargo clippy --release --lib --no-default-features --quiet -- -D warnings
stage lint-shell 120 bash tests/lint-shell.sh
stage build 900 cargo build --release --bins --examples --quiet
stage cargo 1500 cargo test --release -- --test-threads 2
if [ "$skip_slurm" -eq 0 ]; then
    stage slurm 600 bash tests/scheduler.sh
fi
if [ "$skip_cluster" -eq 0 ]; then
    stage cluster 300 bash tests/cluster.sh
    stage slurm-cluster 400 bash tests/slurm-cluster.sh
fi

rm -rf "$logs"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
