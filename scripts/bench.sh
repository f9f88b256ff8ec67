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
  datapath   square over 10 M u64 (static, dynamic) and a serde struct over
             2 M items vs memcpy of the same bytes, each phase vs its limit
  pingpong   one-way latency and bandwidth, 1 B .. 64 MiB, Hockney fit
  overhead   empty tasks, chunk 1, dynamic vs 1-byte MPI latency, with a
             progress bar and with a timeline; Python's
             multiprocessing.Pool(2).map over trivial tasks
  exec       \`true\` per item, 20 000 items, 2 at a time: hpcmap exec vs
             xargs -P 2 (the fork/exec floor) vs GNU parallel -j 2
  pipe       200 000 items through a Python identity worker: hpcmap pipe vs
             Pool(2).map (chunksize 1 and its default)
  schedules  static vs dynamic vs guided: mandelbrot 4096x4096 max-iter 1000,
             spin with skew 4, uniform spin
  hybrid     ranks x threads: -n 1 -t 1, -n 1 -t 2, -n 2 -t 1, -n 2 -t 2,
             under each schedule (mpirun --bind-to none so threads get their
             own cores)
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

ensure_packages parallel # GNU parallel, next to hpcmap exec
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
    records=200000 nexec=2000 npipe=20000
else
    items=10000000 repeat=9 tasks=200000 mandel=(--width 4096 --height 4096 --max-iter 1000) spin=(--items 2000 --micros 500)
    records=2000000 nexec=20000 npipe=200000
fi

# median_wall REPEAT CMD...: the median wall time of CMD in seconds (output discarded).
median_wall() {
    local repeat=$1 t0 t1
    shift
    for _ in $(seq "$repeat"); do
        t0=$(date +%s.%N)
        "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; return 1; }
        t1=$(date +%s.%N)
        awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", b - a }'
    done | sort -g | awk '{ w[NR] = $1 } END { print w[int((NR + 1) / 2)] }'
}

{ date -u '+%Y-%m-%d %H:%M UTC'; uname -srm; nproc; mpirun --version | head -1; } | tee -a "$log"

run "datapath, static" mpirun -n 2 "$H" bench datapath --items "$items" --repeat "$repeat"
run "datapath, dynamic" mpirun -n 2 "$H" bench datapath --items "$items" --repeat "$repeat" --schedule dynamic
run "datapath, serde struct" mpirun -n 2 "$H" bench datapath --kind struct --items "$records" --repeat "$repeat"
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
# exec: a command per item, next to the fork/exec floor and GNU parallel.
seq "$nexec" >"$out/items.txt"
exec_bench() {
    local e x p
    e=$(median_wall 3 mpirun -n 2 "$H" exec --lines "$out/items.txt" -q -- true)
    x=$(median_wall 3 sh -c "xargs -P 2 -n 1 true <'$out/items.txt'")
    p=$(median_wall 3 parallel --will-cite -j 2 true :::: "$out/items.txt")
    awk -v n="$nexec" -v e="$e" -v x="$x" -v p="$p" 'BEGIN {
        printf "  hpcmap exec (mpirun -n 2)   %8.3f s   %7.1f us per item\n", e, e / n * 1e6
        printf "  xargs -P 2 -n 1             %8.3f s   %7.1f us per item\n", x, x / n * 1e6
        printf "  GNU parallel -j 2           %8.3f s   %7.1f us per item\n", p, p / n * 1e6
        printf "ratio: exec / xargs = %.2f; GNU parallel / exec = %.1f\n", e / x, p / e
    }'
}
run "exec: true per item, $nexec items, 2 at a time, median of 3 (wall including mpirun start-up)" exec_bench

# pipe: a warm Python worker, next to multiprocessing.Pool(2).map.
seq "$npipe" >"$out/pipe-items.txt"
worker=$out/identity.py
printf '%s\n' 'import sys' 'for line in sys.stdin:' '    sys.stdout.write(line)' '    sys.stdout.flush()' >"$worker"
pipe_bench() {
    local w
    w=$(median_wall 3 mpirun -n 2 "$H" pipe --lines "$out/pipe-items.txt" -q -- python3 -u "$worker")
    awk -v n="$npipe" -v w="$w" 'BEGIN {
        printf "  hpcmap pipe (mpirun -n 2, one worker per rank)  %8.3f s  %7.2f us per item\n", w, w / n * 1e6 }'
    python3 - "$npipe" <<'PY'
import sys, time
from multiprocessing import Pool

def identity(x):
    return x

if __name__ == "__main__":
    n = int(sys.argv[1])
    items = [f"{i}\n" for i in range(1, n + 1)]
    with Pool(2) as p:
        for label, size in (("chunksize 1", 1), ("default chunksize", None)):
            walls = []
            for _ in range(3):
                t = time.perf_counter()
                p.map(identity, items, chunksize=size)
                walls.append(time.perf_counter() - t)
            w = sorted(walls)[1]
            print(f"  Pool(2).map, {label:<33} {w:8.3f} s  {w / n * 1e6:7.2f} us per item")
PY
}
run "pipe: $npipe items through a Python identity worker, median of 3 (pipe: wall including mpirun and Python start-up)" pipe_bench

run "schedules: mandelbrot" mpirun -n 2 "$H" bench schedules --repeat 3 mandelbrot "${mandel[@]}"
run "schedules: skewed spin" mpirun -n 2 "$H" bench schedules --repeat 3 spin "${spin[@]}" --skew 4
run "schedules: uniform spin" mpirun -n 2 "$H" bench schedules --repeat 3 spin "${spin[@]}"

hybrid=$out/hybrid.jsonl
: >"$hybrid"
for _ in $(seq 3); do
    for schedule in static dynamic guided; do
        for cfg in "1 1" "1 2" "2 1" "2 2"; do
            read -r n t <<<"$cfg"
            mpirun --bind-to none -n "$n" "$H" run mandelbrot --width 2048 --height 2048 --max-iter 500 \
                --schedule "$schedule" --threads "$t" --json "$hybrid" --quiet >/dev/null
        done
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
