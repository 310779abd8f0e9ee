#!/usr/bin/env bash
# Cycles and instructions per event of the core bench's rows, counted over a fixed number
# of runs (CORE_BENCH_FIXED in benches/core.rs), minus the cost of building the records
# (0 runs). Less sensitive to a shared machine than wall time.
# With `perf` (Debian: linux-perf) on a machine that exposes the hardware counters: cycles
# and instructions, best of REPEATS. Without them (`perf stat` says "not supported", as on
# virtual machines that hide the PMU): instructions only, counted by valgrind's callgrind,
# which repeat exactly from run to run (RUNS defaults to 2 then: callgrind is ~50x slower).
# Usage: scripts/bench-core-cycles.sh [RUNS]   (default 20 with perf; best of REPEATS=3 per
#        row; ROWS="row ..." for some rows only)
# Wall time on such a machine: CORE_BENCH_INTERLEAVED=<rounds> cargo bench --bench core.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(cargo bench --bench core --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "core" and m.get("executable"):
        print(m["executable"])')
records=$(mktemp)
trap 'rm -f "$records"' EXIT
rows=${ROWS:-parse_only_borrowed_struct parse_only_borrowed_struct_checked_utf8 decode_only \
  join_aggregate_only decode_join_aggregate decode_join_aggregate_one_by_one \
  decode_join_aggregate_features decode_join_aggregate_drift \
  decode_join_aggregate_estimation}

# Counters exist when perf prints a number for them (not "<not supported>", "<not counted>",
# nor an error for a missing perf).
if ! perf stat -x, -e cycles:u,instructions:u true 2>&1 | grep -q '^[0-9]\+,,cycles'; then
  runs=${1:-2}
  count() { # row runs -> "instructions records"
    local out
    out=$(CORE_BENCH_FIXED="$1:$2" valgrind --tool=callgrind --callgrind-out-file=/dev/null \
      "$bin" 2>&1 >"$records")
    echo "$(sed -n 's/.*Collected : //p' <<<"$out") $(cat "$records")"
  }
  echo "(no hardware counters here: instructions by callgrind, $runs runs per row)"
  printf '%-34s %22s\n' row instructions/event
  for row in $rows; do
    read -r i0 _ < <(count "$row" 0)
    read -r i n < <(count "$row" "$runs")
    printf '%-34s %22s\n' "$row" $(( (i - i0) / (runs * n) ))
  done
  exit 0
fi

runs=${1:-20}
count() { # row runs -> "cycles instructions records"
  local out
  out=$(CORE_BENCH_FIXED="$1:$2" perf stat -x, -e cycles:u,instructions:u "$bin" 2>&1 >"$records")
  echo "$(grep cycles <<<"$out" | cut -d, -f1) $(grep instructions <<<"$out" | cut -d, -f1) $(cat "$records")"
}
printf '%-34s %16s %22s\n' row cycles/event instructions/event
repeats=${REPEATS:-3}
for row in $rows; do
  read -r c0 i0 _ < <(count "$row" 0)
  best=""
  for _ in $(seq "$repeats"); do
    read -r c i n < <(count "$row" "$runs")
    per=$(( (c - c0) / (runs * n) ))
    if [ -z "$best" ] || [ "$per" -lt "$best" ]; then best=$per; ipe=$(( (i - i0) / (runs * n) )); fi
  done
  printf '%-34s %16s %22s\n' "$row" "$best" "$ipe"
done
