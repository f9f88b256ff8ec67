#!/usr/bin/env bash
# The README's timeline pictures (hpcmap run --timeline): where each rank's
# time goes, static against dynamic on skewed work, and one node against two
# on data-heavy work. Each picture is drawn from a JSON timeline kept next to
# it, so `hpcmap report FILE.json --plot FILE.png` draws it again.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"

usage() {
    cat <<USAGE
Usage: scripts/timelines.sh [--out DIR] [--rate RATE] [--help]

Writes to DIR (default: docs/):
  timeline-static.svg, timeline-dynamic.svg
      mpirun -n 2 hpcmap run spin --items 400 --micros 5000 --skew 3
      --schedule static (a block per rank) and --schedule dynamic --chunk 10:
      static leaves rank 1 the expensive half, dynamic balances it
  timeline-1node.svg, timeline-2nodes.svg
      hpcmap run square --items 4000000 on 1 node x 2 ranks and on 2 nodes x
      1 rank of the namespace cluster (scripts/cluster.sh, needs root), the
      link capped at RATE (default 1gbit): the same compute, the moving of
      data stretched by the link
and the .json timeline of each.
USAGE
}

out=$HPCMAP_ROOT/docs rate=1gbit
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --out) out=$2; shift 2 ;;
        --rate) rate=$2; shift 2 ;;
        *) usage >&2; exit 2 ;;
    esac
done

# shellcheck disable=SC2119 # no tools beyond what the build needs
ensure_packages
ensure_rust
mpi_env
build_release
mkdir -p "$out"
H=$HPCMAP_BIN

# picture NAME CMD...: CMD writes NAME.json; the picture is drawn from it.
picture() {
    local name=$1
    shift
    say "$name: $*"
    "$@" --timeline "$out/$name.json" --quiet
    "$H" report "$out/$name.json" --plot "$out/$name.svg"
}

spin=(run spin --items 400 --micros 5000 --skew 3)
picture timeline-static timeout 120 mpirun -n 2 "$H" "${spin[@]}" --schedule static
picture timeline-dynamic timeout 120 mpirun -n 2 "$H" "${spin[@]}" --schedule dynamic --chunk 10

CLUSTER=$HPCMAP_ROOT/scripts/cluster.sh
trap 'bash "$CLUSTER" down >/dev/null 2>&1 || true' EXIT
bash "$CLUSTER" up --nodes 2 --slots 1 --rate "$rate" >/dev/null
# One node: both ranks on node1; two nodes: one rank each. The ranks yield
# while waiting: the "nodes" share this machine's cores (see compare-nodes.sh).
picture timeline-1node timeout 120 bash "$CLUSTER" exec --mca mpi_yield_when_idle 1 \
    -n 2 --host node1:2 "$H" run square --items 4000000
picture timeline-2nodes timeout 120 bash "$CLUSTER" exec --mca mpi_yield_when_idle 1 \
    -n 2 --host node1:1,node2:1 "$H" run square --items 4000000
say "pictures in $out"
