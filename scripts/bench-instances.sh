#!/usr/bin/env bash
# Several instances against one (issue #15), run by hand; figures in BENCHMARKS.md
# ("Several instances"). The CPU a message costs when 3 instances in `[scale] mode =
# "partitioned"` share the input, against 1 instance of today's service.
#
# Starts tansu (scripts/tansu.sh, memory storage) on a free port, creates the input topics
# with 6 partitions each, pre-loads REQUESTS requests of the synthetic traffic (the
# end-to-end benchmark's `plain_consumer load`: 8/3 messages per request), then drains that
# same backlog once per run, each run with its own consumer group, state topic and partials
# topic, all of a run's instances started together:
#   single  1 instance, [scale] mode = "single" (the default: today's service)
#   part1   1 instance, mode = "partitioned" (the tasks and the merge in one process)
#   part3   3 instances, mode = "partitioned"
# Every instance's /metrics is polled (one Python process, every 100 ms). The drain ends at
# the first poll where the sum of feedback_loop_input_records_total over the instances
# reached its final value (unchanged for SETTLE seconds, and at least the messages loaded;
# what exceeds them was read twice, e.g. a partition that moved between instances at start
# before its offsets were committed: reported). CPU = user + system time of every instance
# (/proc/PID/stat) at that poll, summed (and again SETTLE s later: what the finalizer still
# did after the input, idle ticks included); wall time from the processes' start. Then every
# instance is stopped with SIGTERM. Prints a table; the raw figures are in WORK/runs.jsonl.
#
# Usage: scripts/bench-instances.sh
# Env: REQUESTS (600000: 1.6 M messages), RATE (500 requests/s of event time),
#      RUNS ("single part1 part3"; a run may appear twice), SETTLE (3 s), TIMEOUT (600 s a run),
#      FEEDBACK_LOOP_BIN / PLAIN_CONSUMER_BIN (prebuilt binaries; default: cargo builds them),
#      WORK (scratch directory, default a new one under /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."

requests=${REQUESTS:-600000}
rate=${RATE:-500}
runs=${RUNS:-single part1 part3}
settle=${SETTLE:-3}
timeout=${TIMEOUT:-600}
work=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/feedback-loop-bench-instances.XXXXXX")}
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

broker_port=$(free_port)
broker=127.0.0.1:$broker_port
tansu_pid=""
cleanup() { [ -n "$tansu_pid" ] && kill "$tansu_pid" 2>/dev/null || true; }
trap cleanup EXIT
tansu_pid=$(scripts/tansu.sh "$broker_port" "${TMPDIR:-/tmp}/feedback-loop-tansu")
echo "tansu (pid $tansu_pid) on $broker; scratch $work" >&2

predictions=model-predictions
outcomes=actual-outcomes
"$plain" create --bootstrap "$broker" \
  --topics "$predictions:6,$outcomes:6,model-metrics:1,model-alerts:1,model-retrain-triggers:1,feedback-loop-dlq:1" 2>/dev/null
echo "loading $requests requests ..." >&2
"$plain" load --bootstrap "$broker" --predictions "$predictions" --outcomes "$outcomes" \
  --requests "$requests" --rate "$rate" | tee "$work/load.json" >&2
total=$(jq .messages "$work/load.json")
models=$(python3 -c 'import re; t = open("src/traffic.rs").read(); print(re.search(r"DEMO_MODELS_TOML: &str = r#\"(.*?)\"#;", t, re.S).group(1))')

# config DIR MODE: one instance's configuration (its own HTTP port) for the run in DIR.
config() {
  local dir=$1 mode=$2 run_id
  run_id=$(basename "$(dirname "$dir")")
  mkdir -p "$dir"
  cat >"$dir/feedback-loop.toml" <<EOF
[kafka]
bootstrap_servers = "$broker"
group_id = "bench-instances-$run_id"
predictions_topic = "$predictions"
outcomes_topic = "$outcomes"
[kafka.client]
"session.timeout.ms" = 6000
"heartbeat.interval.ms" = 1000
[checkpoint]
topic = "bench-state-$run_id"
[scale]
mode = "$mode"
partials_topic = "bench-partials-$run_id"
[http]
listen = "127.0.0.1:$(free_port)"
$models
EOF
  echo "$dir/feedback-loop.toml"
}

: >"$work/runs.jsonl"
n=0
for run in $runs; do
  n=$((n + 1))
  case $run in
    single) mode=single instances=1 ;;
    part1) mode=partitioned instances=1 ;;
    part3) mode=partitioned instances=3 ;;
    *) echo "unknown run $run (single, part1, part3)" >&2; exit 1 ;;
  esac
  run_dir=$work/run-$n-$run-$$
  configs=()
  for i in $(seq 1 "$instances"); do configs+=("$(config "$run_dir/instance-$i" "$mode")"); done
  "$plain" create --bootstrap "$broker" --topics "bench-state-run-$n-$run-$$:1" 2>/dev/null
  echo "run $n: $run ($instances instance(s), mode $mode) ..." >&2
  python3 - "$bin" "$total" "$settle" "$timeout" "$run" "$tansu_pid" "${configs[@]}" \
    <<'PY' | tee -a "$work/runs.jsonl" >&2
import json, os, re, signal, subprocess, sys, time, urllib.request

binary, total, settle, timeout, run, tansu = sys.argv[1:7]
total, settle, timeout = int(total), float(settle), float(timeout)
configs = sys.argv[7:]
hz = os.sysconf("SC_CLK_TCK")

def ticks(pid):  # utime + stime, fields 14 and 15 of /proc/PID/stat
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])

def metric(port, name):
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1).read()
    except OSError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.decode().splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))

ports = [re.search(r'listen = "127.0.0.1:(\d+)"', open(c).read()).group(1) for c in configs]
tansu_start = ticks(tansu)
start = time.time()
procs = [subprocess.Popen([binary, "run", "--config", c],
                          stdout=open(os.path.join(os.path.dirname(c), "service.log"), "w"),
                          stderr=subprocess.STDOUT) for c in configs]
first = None
last_sum, last_change, at_final = -1, start, None
while True:
    for p, c in zip(procs, configs):
        if p.poll() is not None:
            sys.exit(f"an instance exited ({p.returncode}); log: {os.path.dirname(c)}/service.log")
    counts = [metric(port, "feedback_loop_input_records_total") for port in ports]
    now = time.time()
    cpu = [ticks(p.pid) for p in procs]
    s = sum(counts)
    if first is None and s > 0:
        first = now
    if s != last_sum:
        last_sum, last_change = s, now
        at_final = (now, counts, cpu, ticks(tansu))
    if s >= total and now - last_change >= settle:
        break
    if now - start > timeout:
        sys.exit(f"not drained in {timeout:.0f} s: {s:.0f} of {total} (by instance: {counts})")
    time.sleep(0.1)
end, counts, cpu, tansu_end = at_final
settled = sum(ticks(p.pid) for p in procs)  # SETTLE s later: work after the input (merge, flush)
hwm = [int(re.search(r"VmHWM:\s+(\d+)", open(f"/proc/{p.pid}/status").read()).group(1))
       for p in procs]
published = sum(metric(port, "feedback_loop_output_records_total") for port in ports)
for p in procs:
    p.send_signal(signal.SIGTERM)
codes = [p.wait(timeout=60) for p in procs]
print(json.dumps({
    "run": run, "instances": len(procs), "messages": total, "read": sum(counts),
    "read_by_instance": counts, "wall_s": end - start, "first_message_s": first - start,
    "cpu_s": sum(cpu) / hz, "cpu_s_by_instance": [c / hz for c in cpu],
    "cpu_settled_s": settled / hz,
    "tansu_cpu_s": (tansu_end - tansu_start) / hz, "vmhwm_mib": [h / 1024 for h in hwm],
    "output_records": published, "exit_codes": codes}))
PY
done

python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
load = json.load(open(f"{work}/load.json"))
runs = [json.loads(line) for line in open(f"{work}/runs.jsonl")]
single = [r for r in runs if r["run"] == "single"]
base = min(r["cpu_s"] / r["messages"] for r in single) if single else None
print()
print(f"data: {load['predictions']} predictions + {load['outcomes']} outcomes = "
      f"{load['messages']} messages on 6 + 6 partitions")
print()
print("| run | instances | drained in | msgs/s | msgs/s after the first | CPU (sum) | "
      "CPU per message | vs single | CPU SETTLE s later | read by instance | read twice | "
      "broker CPU | VmHWM | exit codes |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in runs:
    per = r["cpu_s"] / r["messages"]
    ratio = f"{per / base:.2f}x" if base else "-"
    by = " / ".join(f"{c / 1000:.0f}k" for c in r["read_by_instance"])
    print(f"| {r['run']} | {r['instances']} | {r['wall_s']:.1f} s | "
          f"{r['messages'] / r['wall_s'] / 1000:.0f}k | "
          f"{r['messages'] / (r['wall_s'] - r['first_message_s']) / 1000:.0f}k | {r['cpu_s']:.1f} s | "
          f"{per * 1e6:.2f} µs | {ratio} | {r['cpu_settled_s']:.1f} s | {by} | {r['read'] - r['messages']:.0f} | "
          f"{r['tansu_cpu_s']:.1f} s | {' / '.join(f'{h:.0f}' for h in r['vmhwm_mib'])} MiB | "
          f"{' '.join(map(str, r['exit_codes']))} |")
print()
print("CPU per message = user + system CPU of every instance at the drain / messages loaded; "
      "vs single = against the best `single` run; the bar of issue #15: part3 <= 1.3x. "
      "CPU SETTLE s later: the same sum when the drain was confirmed (idle ticks included).")
PY
