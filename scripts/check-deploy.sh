#!/usr/bin/env bash
# Checks the deployment side of feedback-loop without a Docker engine:
#   (a) the compose file parses (docker compose / docker-compose config) and every file it
#       mounts or builds from, and every Dockerfile COPY source, exists; the compose config
#       loads (feedback-loop check-config); the Alertmanager config is valid (if amtool)
#   (b) promtool check config on config/prometheus/prometheus.yml
#   (c) promtool check rules + promtool test rules (alerts.yml, alerts.test.yml)
#   (d) live: `feedback-loop demo` + a real Prometheus scraping it every 2 s (and evaluating
#       alerts.yml); after ~90 s, /metrics passes `promtool check metrics` and every PromQL
#       expression of the dashboard and alerts.yml returns data (scripts/deploy_checks.py live)
#   (e) the Grafana dashboard is provisionable, and every metric it and alerts.yml use is
#       registered in src/telemetry.rs
# Prints one line per check and a final `N passed, N failed`; exits 1 if anything failed.
#
# Needs: bash, python3 + PyYAML, curl, promtool, prometheus, docker-compose (or the compose
# plugin); kcat to inject one undecodable message (the dead-letter alert must fire); amtool
# optional. Builds target/release/feedback-loop if it is missing. Env: LIVE_WAIT (seconds
# of demo traffic before querying, default 170), SKIP_LIVE=1 to skip (d).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

PASSED=0
FAILED=0
TMP=$(mktemp -d "${TMPDIR:-/tmp}/check-deploy.XXXXXX")
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pass() { echo "ok   - $*"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL - $*"; FAILED=$((FAILED + 1)); }

# check DESCRIPTION COMMAND...: passes when the command exits 0; shows its output otherwise.
check() {
    local desc=$1
    shift
    local out
    if out=$("$@" 2>&1); then
        pass "$desc"
    else
        fail "$desc"
        printf '%s\n' "$out" | head -40 | sed 's/^/       /'
    fi
}

# Runs a deploy_checks.py subcommand and counts its ok/FAIL lines.
pycheck() {
    local out
    out=$(python3 scripts/deploy_checks.py "$@" 2>&1) || { fail "deploy_checks.py $1 crashed"; printf '%s\n' "$out" | tail -20 | sed 's/^/       /'; return; }
    printf '%s\n' "$out"
    PASSED=$((PASSED + $(grep -c '^ok ' <<<"$out")))
    FAILED=$((FAILED + $(grep -c '^FAIL ' <<<"$out")))
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

section() { echo; echo "## $*"; }

# ------------------------------------------------------------------------------------ (a)
section "compose and Dockerfile"
if docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
    COMPOSE=(docker-compose)
else
    COMPOSE=()
fi
if [ ${#COMPOSE[@]} -gt 0 ]; then
    check "${COMPOSE[*]} config -q docker-compose.yml" "${COMPOSE[@]}" -f docker-compose.yml config -q
else
    fail "docker compose / docker-compose not installed"
fi
pycheck mounts
if command -v amtool >/dev/null 2>&1; then
    check "amtool check-config config/alertmanager/alertmanager.yml" amtool check-config config/alertmanager/alertmanager.yml
fi

BIN=$ROOT/target/release/feedback-loop
if [ ! -x "$BIN" ]; then
    echo "building $BIN (cargo build --release)"
    cargo build --release --quiet --bin feedback-loop || true
fi
if [ -x "$BIN" ]; then
    check "feedback-loop check-config config/feedback-loop.compose.toml" "$BIN" check-config config/feedback-loop.compose.toml
    check "feedback-loop check-config config/feedback-loop.toml" "$BIN" check-config config/feedback-loop.toml
else
    fail "target/release/feedback-loop is missing and could not be built"
fi

# ------------------------------------------------------------------------------- (b) (c)
section "Prometheus config and rules"
check "promtool check config config/prometheus/prometheus.yml" promtool check config config/prometheus/prometheus.yml
check "promtool check rules config/prometheus/alerts.yml" promtool check rules config/prometheus/alerts.yml
check "promtool test rules config/prometheus/alerts.test.yml" promtool test rules config/prometheus/alerts.test.yml

# ------------------------------------------------------------------------------------ (e)
section "Grafana dashboard"
pycheck dashboard
section "metric names used by the dashboard and alerts exist in src/telemetry.rs"
pycheck names

# ------------------------------------------------------------------------------------ (d)
if [ "${SKIP_LIVE:-0}" = 1 ]; then
    echo; echo "(live checks skipped: SKIP_LIVE=1)"
elif [ ! -x "$BIN" ]; then
    fail "live checks need target/release/feedback-loop"
else
    section "live: feedback-loop demo + Prometheus"
    APP_PORT=$(free_port)
    PROM_PORT=$(free_port)
    "$BIN" demo --listen "127.0.0.1:$APP_PORT" --drift-after 30s >"$TMP/demo.log" 2>&1 &
    PIDS+=($!)
    START=$(date +%s)

    cat >"$TMP/prometheus.yml" <<YAML
global:
  scrape_interval: 2s
  evaluation_interval: 2s
rule_files:
  - $ROOT/config/prometheus/alerts.yml
scrape_configs:
  - job_name: feedback-loop
    static_configs:
      - targets: ["127.0.0.1:$APP_PORT"]
YAML
    check "promtool check config (live config targeting 127.0.0.1:$APP_PORT)" promtool check config "$TMP/prometheus.yml"
    prometheus --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/tsdb" \
        --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn >"$TMP/prometheus.log" 2>&1 &
    PIDS+=($!)
    PROM=http://127.0.0.1:$PROM_PORT

    up=0
    for _ in $(seq 1 60); do
        if curl -fsS "http://127.0.0.1:$APP_PORT/healthz" >/dev/null 2>&1 && curl -fsS "$PROM/-/ready" >/dev/null 2>&1; then
            up=1
            break
        fi
        sleep 0.5
    done
    if [ $up = 1 ]; then pass "demo /healthz and prometheus /-/ready answer"; else
        fail "demo or prometheus did not come up"
        sed 's/^/       demo: /' "$TMP/demo.log" | tail -15
        sed 's/^/       prometheus: /' "$TMP/prometheus.log" | tail -15
    fi

    # One undecodable message: the dead-letter path end to end, and the dead-letter alert
    # must fire on this first one (the counters exist at 0 from the start, so Prometheus
    # sees an increase from 0 to 1, not a new series whose first sample counts as none).
    BOOTSTRAP=$(sed -n 's/.*embedded Kafka broker at \([^ ]*\).*/\1/p' "$TMP/demo.log" | head -1)
    if command -v kcat >/dev/null 2>&1 && [ -n "$BOOTSTRAP" ]; then
        # Only once Prometheus holds a 0 for the counter (as a running deployment does):
        # an increase needs a sample before it.
        for _ in $(seq 1 60); do
            if curl -fsS "$PROM/api/v1/query?query=feedback_loop_dead_letters_total" 2>/dev/null |
                python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["data"]["result"] else 1)'; then
                break
            fi
            sleep 0.5
        done
        sleep 3
        check "kcat: one undecodable message into model-predictions ($BOOTSTRAP)" \
            bash -c "printf 'this is not json' | kcat -P -b '$BOOTSTRAP' -t model-predictions -k check-deploy-bad -X socket.timeout.ms=5000"
    else
        fail "kcat missing or demo bootstrap unknown: cannot inject a dead letter"
    fi

    # The estimation check panel needs ~140 s: a reference of whole windows, complete only
    # max_label_delay after they close, then an estimated window and its labels.
    WAIT=${LIVE_WAIT:-170}
    now=$(date +%s)
    left=$((START + WAIT - now))
    if [ $left -gt 0 ]; then
        echo "waiting ${left}s for windows, drift and alerts..."
        sleep "$left"
    fi

    curl -fsS "http://127.0.0.1:$APP_PORT/metrics" >"$TMP/metrics.txt" 2>"$TMP/curl.err"
    check "/metrics is non-empty" test -s "$TMP/metrics.txt"
    check "promtool check metrics < /metrics" bash -c "promtool check metrics < '$TMP/metrics.txt'"
    check "curl /readyz = 200" curl -fsS "http://127.0.0.1:$APP_PORT/readyz"
    check "prometheus scrapes the demo (up == 1)" bash -c \
        "curl -fsS '$PROM/api/v1/query?query=up' | python3 -c 'import json,sys; r=json.load(sys.stdin)[\"data\"][\"result\"]; sys.exit(0 if r and r[0][\"value\"][1]==\"1\" else 1)'"
    check "the first dead letter fires FeedbackLoopDeadLetters" bash -c \
        "curl -fsS '$PROM/api/v1/alerts' | python3 -c 'import json,sys; a=json.load(sys.stdin)[\"data\"][\"alerts\"]; sys.exit(0 if any(x[\"labels\"][\"alertname\"]==\"FeedbackLoopDeadLetters\" and x[\"state\"]==\"firing\" for x in a) else 1)'"

    section "live: every PromQL expression returns data"
    pycheck live "$PROM"
    if [ "$FAILED" -gt 0 ]; then
        echo "       (demo log tail)"
        tail -5 "$TMP/demo.log" | sed 's/^/       /'
    fi
fi

echo
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
