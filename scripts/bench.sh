#!/usr/bin/env bash
# Every benchmark in one run, each against a baseline measured in the same
# run on the same machine: medians, ratios, and the commands that made them.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"

usage() {
    cat <<USAGE
Usage: scripts/bench.sh [--quick] [--out DIR] [--help]

Runs, at 2 ranks unless noted (this machine has $(nproc) cores):
  datapath   square over 10 M items vs memcpy of the same bytes
  pingpong   one-way latency and bandwidth, 1 B .. 64 MiB, Hockney fit
  overhead   empty tasks, chunk 1, dynamic vs 1-byte MPI latency, and
             Python's multiprocessing.Pool(2).map over trivial tasks
  schedules  static vs dynamic vs guided: mandelbrot 4096x4096 max-iter 1000,
             spin with skew 4, uniform spin
  hybrid     ranks x threads: -n 1 -t 1, -n 1 -t 2, -n 2 -t 1, -n 2 -t 2
             (mpirun --bind-to none so threads get their own cores)
  memory     the root's peak memory for square at 10 M and 100 M items,
             dynamic schedule, every result streamed to disk (--results)
Writes everything to DIR (default: bench-results/) and prints it.
  --quick    smaller sizes and fewer repetitions (a smoke test, not figures)
More ranks than cores measure contention, not scaling: keep -n at the core count.
USAGE
}

quick=0 out=$HPCMAP_ROOT/bench-results
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --quick) quick=1; shift ;;
        --out) out=$2; shift 2 ;;
        *) usage >&2; exit 2 ;;
    esac
done

ensure_packages
ensure_rust
mpi_env
build_release
mkdir -p "$out"
log=$out/bench.txt
: >"$log"

# run TITLE CMD...: prints the command and its output, and keeps both.
run() {
    local title=$1
    shift
    { printf '\n## %s\n$ %s\n' "$title" "$*"; "$@"; } 2>&1 | tee -a "$log"
}

H=$HPCMAP_BIN
if [ "$quick" -eq 1 ]; then
    items=1000000 repeat=3 tasks=20000 mandel=(--width 512 --height 512 --max-iter 200) spin=(--items 400 --micros 200)
else
    items=10000000 repeat=9 tasks=200000 mandel=(--width 4096 --height 4096 --max-iter 1000) spin=(--items 2000 --micros 500)
fi

{ date -u '+%Y-%m-%d %H:%M UTC'; uname -srm; nproc; mpirun --version | head -1; } | tee -a "$log"

run datapath mpirun -n 2 "$H" bench datapath --items "$items" --repeat "$repeat"
run pingpong mpirun -n 2 "$H" bench pingpong --repeat 5
run overhead mpirun -n 2 "$H" bench overhead --tasks "$tasks" --repeat 5
run "python multiprocessing.Pool(2).map, chunksize 1" python3 - "$tasks" <<'PY'
import sys, time
from multiprocessing import Pool

def noop(x):
    return x

if __name__ == "__main__":
    n = int(sys.argv[1])
    with Pool(2) as p:
        p.map(noop, range(1000), chunksize=1)  # warm up the workers
        walls = []
        for _ in range(5):
            t = time.perf_counter()
            p.map(noop, range(n), chunksize=1)
            walls.append(time.perf_counter() - t)
    walls.sort()
    print(f"  per task {walls[2] / n * 1e6:.3f} us (median of 5, {n} tasks)")
PY
run "schedules: mandelbrot" mpirun -n 2 "$H" bench schedules --repeat 3 mandelbrot "${mandel[@]}"
run "schedules: skewed spin" mpirun -n 2 "$H" bench schedules --repeat 3 spin "${spin[@]}" --skew 4
run "schedules: uniform spin" mpirun -n 2 "$H" bench schedules --repeat 3 spin "${spin[@]}"

hybrid=$out/hybrid.jsonl
: >"$hybrid"
for _ in $(seq 3); do
    for cfg in "1 1" "1 2" "2 1" "2 2"; do
        read -r n t <<<"$cfg"
        mpirun --bind-to none -n "$n" "$H" run mandelbrot --width 2048 --height 2048 --max-iter 500 \
            --threads "$t" --json "$hybrid" --quiet >/dev/null
    done
done
run "hybrid ranks x threads (mandelbrot 2048x2048, max-iter 500, 3 runs each)" "$H" report "$hybrid" --markdown

# The root's memory must not grow with the item count.
[ "$quick" -eq 1 ] && sizes=(1000000 10000000) || sizes=(10000000 100000000)
for n in "${sizes[@]}"; do
    run "memory: square --items $n, dynamic, --results" \
        mpirun -n 2 "$H" run square --items "$n" --schedule dynamic --results "$out/results.jsonl"
done
rm -f "$out/results.jsonl"
echo "results in $out" >&2
