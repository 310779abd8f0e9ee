#!/usr/bin/env bash
# End-to-end benchmark (Kafka -> service), run by hand; figures in BENCHMARKS.md.
#
# Starts tansu (scripts/tansu.sh, memory storage) on a free port, creates the input topics
# (4 partitions each) and the output topics, pre-loads REQUESTS requests of the synthetic
# traffic of `feedback-loop generate` (every request gets its outcome: REQUESTS outcomes and
# 5/3 x REQUESTS predictions, keyed by id), then:
#   (a) a plain rdkafka consumer reads both topics from the beginning (the ceiling): RUNS runs
#       with BaseConsumer (the median is the ceiling) and one with StreamConsumer;
#   (b) `feedback-loop run` is started cold (fresh group) and /metrics is polled until
#       feedback_loop_input_records_total reaches the number of messages loaded; RSS is read
#       from /proc/PID/status at that point, then the service is stopped with SIGTERM.
# Prints a summary table.
#
# Usage: scripts/bench-e2e.sh
# Env: REQUESTS (1000000), RATE (500 requests/s of event time), RUNS (3),
#      KAFKA_CLIENT_EXTRA (lines added to the service's [kafka.client], e.g.
#        '"fetch.queue.backoff.ms" = 10'),
#      PROFILE=N (perf record -g the service for N s during the drain; report in WORK),
#      FEEDBACK_LOOP_BIN / PLAIN_CONSUMER_BIN (prebuilt binaries; default: cargo builds them),
#      WORK (scratch directory, default a new one under /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."

requests=${REQUESTS:-1000000}
rate=${RATE:-500}
runs=${RUNS:-3}
profile=${PROFILE:-0}
work=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/feedback-loop-bench.XXXXXX")}
mkdir -p "$work"

if [ -z "${FEEDBACK_LOOP_BIN:-}" ]; then
  cargo build --release --quiet --bin feedback-loop
  FEEDBACK_LOOP_BIN=${CARGO_TARGET_DIR:-target}/release/feedback-loop
fi
if [ -z "${PLAIN_CONSUMER_BIN:-}" ]; then
  PLAIN_CONSUMER_BIN=$(cargo bench --quiet --bench plain_consumer --no-run --message-format=json |
    jq -r 'select(.reason == "compiler-artifact" and .target.name == "plain_consumer") | .executable')
fi
bin=$FEEDBACK_LOOP_BIN
plain=$PLAIN_CONSUMER_BIN

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
now() { date +%s.%N; }

broker_port=$(free_port)
http_port=$(free_port)
broker=127.0.0.1:$broker_port
tansu_pid=""
service_pid=""
cleanup() {
  [ -n "$service_pid" ] && kill "$service_pid" 2>/dev/null || true
  [ -n "$tansu_pid" ] && kill "$tansu_pid" 2>/dev/null || true
}
trap cleanup EXIT

tansu_pid=$(scripts/tansu.sh "$broker_port" "${TMPDIR:-/tmp}/feedback-loop-tansu")
echo "tansu (pid $tansu_pid) on $broker; scratch $work" >&2

predictions=model-predictions
outcomes=actual-outcomes
"$plain" create --bootstrap "$broker" \
  --topics "$predictions:4,$outcomes:4,model-metrics:1,model-alerts:1,model-retrain-triggers:1,feedback-loop-dlq:1" 2>/dev/null

echo "loading $requests requests ..." >&2
"$plain" load --bootstrap "$broker" --predictions "$predictions" --outcomes "$outcomes" \
  --requests "$requests" --rate "$rate" | tee "$work/load.json" >&2
total=$(jq .messages "$work/load.json")

# (a) the ceiling
: >"$work/plain.jsonl"
for i in $(seq 1 "$runs"); do
  "$plain" consume --bootstrap "$broker" --topics "$predictions,$outcomes" --count "$total" --api base |
    tee -a "$work/plain.jsonl" >&2
done
"$plain" consume --bootstrap "$broker" --topics "$predictions,$outcomes" --count "$total" --api stream |
  tee -a "$work/plain.jsonl" >&2

# (b) the service, cold
config=$work/feedback-loop.toml
cat >"$config" <<EOF
[kafka]
bootstrap_servers = "$broker"
group_id = "feedback-loop-bench-$$-$(date +%s)"
predictions_topic = "$predictions"
outcomes_topic = "$outcomes"
[kafka.client]
"session.timeout.ms" = 6000
"heartbeat.interval.ms" = 1000
${KAFKA_CLIENT_EXTRA:-}
[http]
listen = "127.0.0.1:$http_port"
$(python3 -c 'import re,sys; t=open("src/traffic.rs").read(); print(re.search(r"DEMO_MODELS_TOML: &str = r#\"(.*?)\"#;", t, re.S).group(1))')
EOF

metric_sum() { # sum of a metric family in the last scrape
  awk -v name="$1" '$1 == name || index($1, name "{") == 1 { s += $NF } END { printf "%d\n", s }' "$work/metrics.txt"
}
scrape() { curl -sf "http://127.0.0.1:$http_port/metrics" >"$work/metrics.txt" 2>/dev/null; }

echo "starting the service (group cold) ..." >&2
tansu_ticks() { awk '{print $14 + $15}' "/proc/$tansu_pid/stat"; }
tansu_ticks_start=$(tansu_ticks)
t_start=$(now)
"$bin" run --config "$config" >"$work/service.log" 2>&1 &
service_pid=$!
t_first=""
t_end=""
consumed=0
deadline=$(($(date +%s) + 300))
while [ "$(date +%s)" -lt "$deadline" ]; do
  if ! kill -0 "$service_pid" 2>/dev/null; then
    echo "the service exited; log:" >&2; tail -20 "$work/service.log" >&2; exit 1
  fi
  if scrape; then
    consumed=$(metric_sum feedback_loop_input_records_total)
    if [ -z "$t_first" ] && [ "$consumed" -gt 0 ]; then
      t_first=$(now)
      first_count=$consumed
      if [ "$profile" -gt 0 ]; then
        perf record -g -o "$work/perf.data" -p "$service_pid" -- sleep "$profile" >/dev/null 2>&1 &
      fi
    fi
    if [ "$consumed" -ge "$total" ]; then t_end=$(now); break; fi
  fi
  if [ -z "$t_first" ]; then sleep 0.05; else sleep 0.2; fi
done
[ -n "$t_end" ] || { echo "not drained in 300 s: $consumed of $total" >&2; exit 1; }
status=$(cat "/proc/$service_pid/status")
hwm_kb=$(awk '/^VmHWM/ {print $2}' <<<"$status")
rss_kb=$(awk '/^VmRSS/ {print $2}' <<<"$status")
cpu_ticks=$(awk '{print $14 + $15}' "/proc/$service_pid/stat")
tansu_cpu_ticks=$(($(tansu_ticks) - tansu_ticks_start))
dead_letters=$(metric_sum feedback_loop_dead_letters_total)
output_records=$(metric_sum feedback_loop_output_records_total)
pending_p=$(metric_sum feedback_loop_pending_predictions)
pending_o=$(metric_sum feedback_loop_pending_outcomes)
kill -TERM "$service_pid"
exit_code=0
wait "$service_pid" || exit_code=$?
service_pid=""
wait # perf, if any

python3 - "$work" "$total" "$t_start" "$t_first" "$first_count" "$t_end" "$hwm_kb" "$rss_kb" \
  "$cpu_ticks" "$(getconf CLK_TCK)" "$exit_code" "$dead_letters" "$output_records" \
  "$pending_p" "$pending_o" "$tansu_cpu_ticks" <<'PY'
import json, statistics, sys
(work, total, t_start, t_first, first_count, t_end, hwm, rss, ticks, hz, code, dlq, out,
 pend_p, pend_o, tansu_ticks) = sys.argv[1:]
total, first_count = int(total), int(first_count)
t_start, t_first, t_end = float(t_start), float(t_first), float(t_end)
load = json.load(open(f"{work}/load.json"))
plain = [json.loads(l) for l in open(f"{work}/plain.jsonl")]
base = [p for p in plain if p["api"] == "base"]
stream = [p for p in plain if p["api"] == "stream"]
ceiling = statistics.median(p["msgs_per_s"] for p in base)
ceiling_after = statistics.median(p["msgs_per_s_after_first"] for p in base)
drain = t_end - t_start
after = t_end - t_first
rate = total / drain
rate_after = (total - first_count) / after
print()
print(f"data: {load['predictions']} predictions (mean {load['prediction_bytes_mean']:.0f} B) + "
      f"{load['outcomes']} outcomes (mean {load['outcome_bytes_mean']:.0f} B) = {total} messages, "
      f"loaded in {load['seconds']:.1f} s ({load['msgs_per_s']:.0f} msg/s)")
print()
print("| reader | msgs/s from start | msgs/s from first message | first message after |")
print("|---|---|---|---|")
for p in base:
    print(f"| plain BaseConsumer | {p['msgs_per_s']:.0f} | {p['msgs_per_s_after_first']:.0f} | {p['first_message_s']:.1f} s |")
for p in stream:
    print(f"| plain StreamConsumer | {p['msgs_per_s']:.0f} | {p['msgs_per_s_after_first']:.0f} | {p['first_message_s']:.1f} s |")
print(f"| feedback-loop run | {rate:.0f} | {rate_after:.0f} | {t_first - t_start:.1f} s (process start) |")
print()
print(f"ceiling (median plain BaseConsumer): {ceiling:.0f} msgs/s from start, {ceiling_after:.0f} from first message")
print(f"service / ceiling: {rate / ceiling:.1%} from start, {rate_after / ceiling_after:.1%} from first message (target >= 70%)")
if stream:
    s = statistics.median(p["msgs_per_s_after_first"] for p in stream)
    print(f"service / plain StreamConsumer (from first message): {rate_after / s:.1%}")
print(f"service: drained in {drain:.1f} s ({after:.1f} s after the first message); "
      f"CPU {int(ticks) / int(hz):.1f} s ({int(ticks) / int(hz) / drain:.2f} cores); "
      f"broker CPU meanwhile {int(tansu_ticks) / int(hz):.1f} s ({int(tansu_ticks) / int(hz) / drain:.2f} cores)")
print(f"service RSS at drain: VmRSS {int(rss) / 1024:.0f} MiB, VmHWM {int(hwm) / 1024:.0f} MiB")
print(f"service at drain: {dlq} dead letters, {out} output records, pending {pend_p} predictions / {pend_o} outcomes; exit code after SIGTERM {code}")
PY
if [ "$profile" -gt 0 ] && [ -f "$work/perf.data" ]; then
  perf report -i "$work/perf.data" --no-children --percent-limit 1.5 --stdio >"$work/perf.txt" 2>/dev/null || true
  echo "profile: $work/perf.txt" >&2
fi
