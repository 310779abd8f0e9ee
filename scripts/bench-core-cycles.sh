#!/usr/bin/env bash
# Cycles and instructions per event of the core bench's rows, counted by `perf stat` over a
# fixed number of runs (CORE_BENCH_FIXED in benches/core.rs), minus the cost of building
# the records (0 runs). Less sensitive to a shared machine than wall time. Needs `perf`
# (Debian: linux-perf) on a machine that exposes the counters.
# Usage: scripts/bench-core-cycles.sh [RUNS]   (default 20; best of REPEATS=3 per row;
#        ROWS="row ..." for some rows only)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
bin=$(cargo bench --bench core --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "core" and m.get("executable"):
        print(m["executable"])')
records=$(mktemp)
trap 'rm -f "$records"' EXIT
count() { # row runs -> "cycles instructions records"
  local out
  out=$(CORE_BENCH_FIXED="$1:$2" perf stat -x, -e cycles:u,instructions:u "$bin" 2>&1 >"$records")
  echo "$(grep cycles <<<"$out" | cut -d, -f1) $(grep instructions <<<"$out" | cut -d, -f1) $(cat "$records")"
}
printf '%-34s %16s %22s\n' row cycles/event instructions/event
repeats=${REPEATS:-3}
for row in ${ROWS:-parse_only_borrowed_struct decode_only decode_join_aggregate \
  decode_join_aggregate_features decode_join_aggregate_drift}; do
  read -r c0 i0 _ < <(count "$row" 0)
  best=""
  for _ in $(seq "$repeats"); do
    read -r c i n < <(count "$row" "$runs")
    per=$(( (c - c0) / (runs * n) ))
    if [ -z "$best" ] || [ "$per" -lt "$best" ]; then best=$per; ipe=$(( (i - i0) / (runs * n) )); fi
  done
  printf '%-34s %16s %22s\n' "$row" "$best" "$ipe"
done
