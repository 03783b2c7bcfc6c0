#!/usr/bin/env bash
# HTTP latency of `fusionrec serve` measured with wrk (a C client), so the client's own CPU and
# scheduling do not leak into the server's tail latency as they do with a Python client.
# Usage: bash bench/serve_wrk.sh MODEL_DIR [PORT]   (e.g. the ml1m BPR that bench/serve_load.py trains
# into --workdir: /tmp/fusionrec-serve-bench/ml1m-bpr). Needs Debian's wrk (apt-get install wrk).
# Bounded: 3 runs x 15 s at 1, 8 and 64 connections, loopback only.
set -euo pipefail
model=${1:?usage: serve_wrk.sh MODEL_DIR [PORT]}
port=${2:-18777}
here=$(cd "$(dirname "$0")" && pwd)
db=$(mktemp -d)/bench.sqlite3
FUSIONREC_API_KEYS=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))') HF_HUB_OFFLINE=1 \
  python3 -m fusionrec.cli serve --model "$model" --db "$db" --port "$port" --no-encoders --log-level warning &
server=$!
trap 'kill $server 2>/dev/null' EXIT
for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 1; done
wrk -t1 -c8 -d2s -s "$here/wrk_random_user.lua" "http://127.0.0.1:$port" >/dev/null   # warm-up
echo "# $(date -u) load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for c in 1 8 64; do
  for r in 1 2 3; do
    echo "## connections=$c run=$r"
    wrk -t1 -c"$c" -d15s --latency -s "$here/wrk_random_user.lua" "http://127.0.0.1:$port"
  done
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
