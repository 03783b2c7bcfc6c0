#!/usr/bin/env bash
# Requests/s of 1 vs 2 `fusionrec serve` replicas sharing one PostgreSQL store (issue 11, point 4),
# measured with wrk (Debian's `wrk`) on loopback.
#
# Usage: bash bench/replicas_wrk.sh MODEL_DIR MAX_USER_ID [SECONDS] [REPS]
#   MODEL_DIR    the model/ folder of a `fusionrec train` run
#   MAX_USER_ID  users are drawn uniformly from the original ids 1..MAX_USER_ID (ml100k: 943)
# A private PostgreSQL cluster (Debian's binaries, run as the postgres user, fsync on) is made in a
# temp folder and removed at the end. Per-key rate limits are switched off for the run (a serve
# config with rate_limits.read: 0), so the figure is the servers' capacity, not the limiter's.
# The same total of 8 client connections is used in both set-ups: 8 on the one replica, then
# 4 on each of the two replicas at the same time (their requests/s summed), alternating.
set -euo pipefail
model=${1:?usage: replicas_wrk.sh MODEL_DIR MAX_USER_ID [SECONDS] [REPS]}
max_user=${2:?usage: replicas_wrk.sh MODEL_DIR MAX_USER_ID [SECONDS] [REPS]}
seconds=${3:-15}
reps=${4:-3}
here=$(cd "$(dirname "$0")" && pwd)
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort | tail -1)
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 2; }
[ -x "$pgbin/initdb" ] || { echo "PostgreSQL binaries not found: apt-get install postgresql" >&2; exit 2; }

work=$(mktemp -d /tmp/fusionrec-replicas-XXXXXX)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$work" && chmod 755 "$work"
pgport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg "$pgbin/initdb" -D "$work/pg" -A trust -U postgres >/dev/null
as_pg "$pgbin/pg_ctl" -D "$work/pg" -o "-p $pgport -k $work -c listen_addresses=127.0.0.1" -l "$work/pg.log" -w start >/dev/null
dsn="postgresql://postgres@127.0.0.1:$pgport/postgres"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  as_pg "$pgbin/pg_ctl" -D "$work/pg" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

printf 'rate_limits:\n  read: 0\n' > "$work/serve.yaml"
export FUSIONREC_API_KEYS="bench-$(python3 -c 'import secrets; print(secrets.token_hex(12))'):read"
export HF_HUB_OFFLINE=1 WRK_MAX_USER=$max_user WRK_API_KEY=${FUSIONREC_API_KEYS%:read}

start_replica() {   # port
  python3 -m fusionrec.cli serve --model "$model" --db "$dsn" --port "$1" --config "$work/serve.yaml" \
    --no-encoders --log-level warning >"$work/replica-$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 180); do curl -sf "http://127.0.0.1:$1/health" >/dev/null && return 0; sleep 1; done
  echo "replica on port $1 did not start; its log:" >&2; cat "$work/replica-$1.log" >&2; exit 1
}
rps() { awk '/Requests\/sec/ {print $2}'; }
errors() { awk '/Non-2xx|Socket errors/ {print}'; }

port_a=$((pgport + 1)); port_b=$((pgport + 2))
start_replica "$port_a"
start_replica "$port_b"
for port in "$port_a" "$port_b"; do   # warm-up
  wrk -t1 -c4 -d3s -s "$here/wrk_user_range.lua" "http://127.0.0.1:$port" >/dev/null
done
echo "# $(date -u) model=$model users=1..$max_user ${seconds}s x $reps, load before: $(cut -d' ' -f1-3 /proc/loadavg)"
# one replica, then two, back to back in every repetition, so both see the same machine load
# (the second replica idles during the one-replica run: it only waits on LISTEN)
for r in $(seq 1 "$reps"); do
  wrk -t1 -c8 -d"${seconds}s" -s "$here/wrk_user_range.lua" "http://127.0.0.1:$port_a" >"$work/one.txt"
  echo "replicas=1 run=$r rps=$(rps <"$work/one.txt") load=$(cut -d' ' -f1 /proc/loadavg) $(errors <"$work/one.txt")"
  wrk -t1 -c4 -d"${seconds}s" -s "$here/wrk_user_range.lua" "http://127.0.0.1:$port_a" >"$work/a.txt" &
  wa=$!
  wrk -t1 -c4 -d"${seconds}s" -s "$here/wrk_user_range.lua" "http://127.0.0.1:$port_b" >"$work/b.txt"
  wait "$wa"
  a=$(rps <"$work/a.txt"); b=$(rps <"$work/b.txt")
  echo "replicas=2 run=$r rps=$(python3 -c "print(round($a + $b, 2))") (A $a + B $b) load=$(cut -d' ' -f1 /proc/loadavg) $(errors <"$work/a.txt") $(errors <"$work/b.txt")"
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
