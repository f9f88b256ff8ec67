#!/usr/bin/env bash
# Fresh machine to a finished job: installs what is missing, builds, and runs
# one hpcmap job under mpirun.
#
#   scripts/run.sh                        # default: square over 10 M items on every core
#   scripts/run.sh -n 4 mandelbrot --width 2048 --height 2048 --output mandel.png
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"

usage() {
    cat <<USAGE
Usage: scripts/run.sh [-n RANKS] [WORKLOAD [OPTIONS...]]

Installs OpenMPI and build tools if missing (as root, via apt), builds
hpcmap in release mode, and runs: mpirun -n RANKS hpcmap run WORKLOAD OPTIONS.

  -n RANKS   MPI ranks (default: the number of cores, $(nproc) here). More
             ranks than cores are allowed (oversubscribed), but then timings
             measure contention, not scaling.
  WORKLOAD   default: square --items 10000000. See: target/release/hpcmap run --help
USAGE
}

ranks=$(nproc)
case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    -n) [ $# -ge 2 ] || die "-n needs a number"; ranks=$2; shift 2 ;;
esac
[[ $ranks =~ ^[1-9][0-9]*$ ]] || die "-n needs a positive number, got '$ranks'"
[ $# -gt 0 ] || set -- square --items 10000000

# shellcheck disable=SC2119 # no tools beyond what the build needs
ensure_packages
ensure_rust
mpi_env
build_release
say "mpirun -n $ranks hpcmap run $*"
exec mpirun -n "$ranks" "$HPCMAP_BIN" run "$@"
