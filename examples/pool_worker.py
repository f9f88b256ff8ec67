#!/usr/bin/env python3
"""A warm worker for `hpcmap pipe`: Python's Pool.map(f, items), on a cluster.

    mpirun -n 64 hpcmap pipe --lines items.jsonl --results out.jsonl -- python3 -u examples/pool_worker.py

hpcmap starts this program once per compute thread of every rank and writes
it one item per line (here: JSON); it answers each with exactly one line, in
order. Replace f with your function.
"""
import json
import sys


def f(x):
    return {"x": x, "square": x * x}


for line in sys.stdin:
    print(json.dumps(f(json.loads(line)), sort_keys=True, separators=(",", ":")), flush=True)
