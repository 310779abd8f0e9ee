#!/usr/bin/env bash
# Wall time of the core bench's rows for two checkouts on this machine, their runs taking
# turns (A B A B …) so both see the same machine; per row the fastest round of all runs
# (noise only ever slows a round down). For a change meant to leave speed alone.
# Usage: scripts/compare-core-bench.sh BEFORE_CHECKOUT AFTER_CHECKOUT [RUNS] [ROUNDS]
#   e.g. git worktree add /tmp/before-wt HEAD~1
#        scripts/compare-core-bench.sh /tmp/before-wt . 4 100
set -euo pipefail
runs=${3:-4}
rounds=${4:-100}
bench_binary() { # checkout -> path of its core bench binary (built if needed)
  (cd "$1" && cargo bench --bench core --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "core" and m.get("executable"):
        print(m["executable"])')
}
before=$(bench_binary "$1")
after=$(bench_binary "$2")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for run in $(seq "$runs"); do
  (cd "$1" && CORE_BENCH_INTERLEAVED=$rounds "$before" --bench) >"$out/before.$run"
  (cd "$2" && CORE_BENCH_INTERLEAVED=$rounds "$after" --bench) >"$out/after.$run"
done
python3 - "$out" "$runs" <<'PY'
import sys, glob
out, runs = sys.argv[1], int(sys.argv[2])
def best(side):
    rows = {}
    for path in glob.glob(f"{out}/{side}.*"):
        for line in open(path):
            parts = line.split()
            if len(parts) >= 2 and parts[0] != "row":
                try:
                    ns = float(parts[1])
                except ValueError:
                    continue
                rows[parts[0]] = min(ns, rows.get(parts[0], float("inf")))
    return rows
b, a = best("before"), best("after")
print(f"{'row':<42}{'before ns':>10}{'after ns':>10}{'change':>9}")
for row in b:
    if row in a:
        print(f"{row:<42}{b[row]:>10.1f}{a[row]:>10.1f}{(a[row] / b[row] - 1) * 100:>8.1f}%")
PY
