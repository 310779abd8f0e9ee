#!/usr/bin/env bash
# Compares what two builds of feedback-loop print for the same backtests, byte for byte:
# `replay` of examples/, of every fixture under tests/oracle/core/, and of a generated
# 40-minute stream (drift after 15 min) under config/feedback-loop.compose.toml (the
# generator's models, drift and rules, so alerts and retrain triggers are compared too). Both stdout (records and
# events) and stderr (the summary) must match.
#
# Usage: scripts/compare-replay.sh BEFORE_BINARY AFTER_BINARY
# e.g. a build of the previous commit against this one:
#   git worktree add /tmp/before-wt HEAD~1 && (cd /tmp/before-wt && cargo build --release)
#   cargo build --release
#   scripts/compare-replay.sh /tmp/before-wt/target/release/feedback-loop target/release/feedback-loop
set -euo pipefail
cd "$(dirname "$0")/.."
before=$(realpath "$1")
after=$(realpath "$2")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$before" generate --output-dir "$work/generated" --duration 40m --drift-after 15m \
  --rate 8 >/dev/null 2>&1
mkdir -p "$work/shuffled" "$work/compressed"
for f in predictions outcomes; do
  # A fixed shuffle: the same lines, out of order.
  python3 -c 'import random,sys; l=open(sys.argv[1]).readlines(); random.Random(7).shuffle(l); sys.stdout.write("".join(l))' \
    "$work/generated/$f.jsonl" >"$work/shuffled/$f.jsonl"
  cp "$work/generated/$f.jsonl" "$work/compressed/$f.jsonl"
done
gzip -k "$work/compressed/predictions.jsonl"
# (Debian's zstd; without it the outcomes stay plain.)
if command -v zstd >/dev/null; then zstd -q -k "$work/compressed/outcomes.jsonl"; fi

cases=("examples examples/feedback-loop.toml examples")
for dir in tests/oracle/core/*/; do
  dir=${dir%/}
  cases+=("$(basename "$dir") $dir/config.toml $dir")
done
cases+=("generated config/feedback-loop.compose.toml $work/generated")
cases+=("shuffled config/feedback-loop.compose.toml $work/shuffled")
cases+=("compressed config/feedback-loop.compose.toml $work/compressed")

failed=0
for case in "${cases[@]}"; do
  read -r name config data <<<"$case"
  for side in before after; do
    bin=${!side}
    predictions=$data/predictions.jsonl
    outcomes=$data/outcomes.jsonl
    if [ "$name" = compressed ] && [ "$side" = after ]; then
      predictions=$predictions.gz
      [ -f "$outcomes.zst" ] && outcomes=$outcomes.zst
    fi
    # Timestamps in the summary come from the data, not the clock: the outputs must be equal.
    "$bin" replay --config "$config" --predictions "$predictions" \
      --outcomes "$outcomes" >"$work/$name.$side.out" 2>"$work/$name.$side.err" ||
      echo "exit $?" >>"$work/$name.$side.err"
  done
  lines=$(wc -l <"$work/$name.after.out")
  if cmp -s "$work/$name.before.out" "$work/$name.after.out" &&
    cmp -s "$work/$name.before.err" "$work/$name.after.err"; then
    echo "identical  $name ($lines lines)"
  else
    echo "DIFFERENT  $name"
    diff <(head -c 2000 "$work/$name.before.out") <(head -c 2000 "$work/$name.after.out") | head -20 || true
    diff "$work/$name.before.err" "$work/$name.after.err" | head -20 || true
    failed=1
  fi
done
exit $failed
