#!/usr/bin/env bash
# Starts an S3 stand-in (moto_server, PyPI `moto[server]`, installed with pip when missing)
# on 127.0.0.1, so that tansu can run with `s3://` storage and keep its topics and messages
# across its own restarts (memory storage loses them): the broker-outage test needs that.
# Creates the bucket `tansu` and prints shell lines to eval:
#   eval "$(scripts/moto.sh)"      # sets MOTO_PID and exports AWS_ENDPOINT, AWS_* ...
#   scripts/tansu.sh PORT "" s3://tansu/
# Usage: scripts/moto.sh [PORT] [DIR]   (a free port by default; the log goes to DIR)
set -euo pipefail
version=5.2.1
dir=${2:-${TMPDIR:-/tmp}/feedback-loop-moto}
mkdir -p "$dir"
if ! python3 -c 'import moto.server' 2>/dev/null; then
  python3 -m pip install -q "moto[server]==$version" >&2
fi
port=${1:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
python3 -m moto.server -H 127.0.0.1 -p "$port" >"$dir/moto-$port.log" 2>&1 &
pid=$!
endpoint="http://127.0.0.1:$port"
# Bucket creation doubles as the readiness probe (moto needs a second or two to import).
for _ in $(seq 1 150); do
  if python3 - "$endpoint" <<'PY' 2>/dev/null; then
import sys, urllib.request
request = urllib.request.Request(sys.argv[1] + "/tansu", method="PUT")
urllib.request.urlopen(request, timeout=2).read()
PY
    cat <<EOF
MOTO_PID=$pid
export AWS_ENDPOINT=$endpoint
export AWS_ALLOW_HTTP=true
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_DEFAULT_REGION=eu-west-2
EOF
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then break; fi
  sleep 0.2
done
echo "moto_server did not start; log:" >&2
tail -n 50 "$dir/moto-$port.log" >&2
kill "$pid" 2>/dev/null || true
exit 1
