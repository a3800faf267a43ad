#!/usr/bin/env bash
# DHT throughput through the Redis protocol, beside redis-server measured in the same run.
#
#   scripts/bench-dht.sh [REQUESTS]        (default 100000)
#   RINGFLOW_BIN=path/to/ringflow scripts/bench-dht.sh    (measure another build)
#
# Starts a local ringflow cluster (3 workers, RF=1 then RF=3), drives worker-1's RESP port
# with redis-benchmark (SET and GET, 50 clients, without and with -P 16), then redis-server
# with the same arguments (default persistence, and appendonly+appendfsync always, which
# is the durability ringflow gives: acknowledged = fsynced), and prints requests/s and ratios.
# Needs redis-server and redis-benchmark (Debian: redis-server, redis-tools); installs them
# with apt-get when run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-100000}"

if ! command -v redis-benchmark >/dev/null || ! command -v redis-server >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq --no-install-recommends redis-server redis-tools >/dev/null
  else
    echo "needs redis-server and redis-benchmark (apt-get install redis-server redis-tools)" >&2
    exit 1
  fi
fi
# RINGFLOW_BIN: measure that binary instead (e.g. an older build, for a before/after).
if [ -n "${RINGFLOW_BIN:-}" ]; then
  BIN="$RINGFLOW_BIN"
else
  cargo build --release --bin ringflow -q
  BIN="$PWD/target/release/ringflow"
fi
WORK="$(mktemp -d)"
cleanup() {
  [ -n "${LOCAL_PID:-}" ] && kill -INT "$LOCAL_PID" 2>/dev/null && wait "$LOCAL_PID" 2>/dev/null || true
  [ -n "${REDIS_PID:-}" ] && kill "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# rps TEST PORT [extra args]: requests per second of one redis-benchmark test.
rps() {
  local test="$1" port="$2"; shift 2
  redis-benchmark -h 127.0.0.1 -p "$port" -t "$test" -n "$N" -c 50 -r 100000 -d 100 --csv "$@" 2>/dev/null \
    | python3 -c 'import csv,sys; rows=[r for r in csv.reader(sys.stdin) if r and r[0]!="test"]; print(rows[-1][1] if rows else "nan")'
}

declare -A RESULT
run_suite() { # NAME PORT [extra redis-benchmark args]
  local name="$1" port="$2"; shift 2
  for t in set get; do
    RESULT["$name,$t,1"]=$(rps "$t" "$port" "$@")
    RESULT["$name,$t,16"]=$(rps "$t" "$port" -P 16 "$@")
  done
}

# RF 1 and 3, each with an fsync per write group (the default) and with
# --fsync-interval-ms 100 (acknowledged once the OS has it; survives kill -9).
SYSTEMS=()
for rf in 1 3; do
  for fsync in 0 100; do
    name="ringflow-rf$rf"; [ "$fsync" != 0 ] && name="$name-fsync${fsync}ms"
    SYSTEMS+=("$name")
    dir="$WORK/$name"
    XDG_CONFIG_HOME="$WORK/cfg" "$BIN" local --workers 3 --replication "$rf" --port 0 --dir "$dir" --no-profile \
      --fsync-interval-ms "$fsync" >"$WORK/$name.out" 2>&1 &
    LOCAL_PID=$!
    for _ in $(seq 600); do grep -q "local cluster is up" "$WORK/$name.out" && break; sleep 0.1; done
    grep -q "local cluster is up" "$WORK/$name.out" || { cat "$WORK/$name.out"; exit 1; }
    port=$(grep -m1 "Redis protocol on" "$WORK/$name.out" | sed 's/.*://')
    run_suite "$name" "$port"
    if [ "$rf" = 1 ]; then
      # Cluster-aware routing (CLUSTER SLOTS, then straight to each key's owner), as
      # Redis Cluster clients do: no forwarding hop through the gateway.
      SYSTEMS+=("$name-cluster")
      run_suite "$name-cluster" "$port" --cluster
    fi
    kill -INT "$LOCAL_PID"; wait "$LOCAL_PID" || true; LOCAL_PID=
  done
done

for mode in default fsync-always; do
  port=$(free_port)
  args=(--port "$port" --dir "$WORK" --dbfilename "dump-$mode.rdb" --save "" --daemonize no)
  [ "$mode" = fsync-always ] && args+=(--appendonly yes --appendfsync always --appendfilename "aof-$mode")
  redis-server "${args[@]}" >"$WORK/redis-$mode.log" 2>&1 &
  REDIS_PID=$!
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  run_suite "redis-$mode" "$port"
  kill "$REDIS_PID"; wait "$REDIS_PID" || true; REDIS_PID=
done

printf '\nrequests/s, %s requests, 50 clients, 100-byte values (redis-benchmark), one machine, same run\n' "$N"
printf '%-22s %12s %12s %12s %12s\n' system SET SET-P16 GET GET-P16
for sys in "${SYSTEMS[@]}" redis-default redis-fsync-always; do
  printf '%-22s %12s %12s %12s %12s\n' "$sys" "${RESULT[$sys,set,1]}" "${RESULT[$sys,set,16]}" "${RESULT[$sys,get,1]}" "${RESULT[$sys,get,16]}"
done
printf '\nratios ringflow / redis-server (default persistence):\n'
for sys in "${SYSTEMS[@]}"; do
  python3 - "$sys" "${RESULT[$sys,set,1]}" "${RESULT[$sys,set,16]}" "${RESULT[$sys,get,1]}" "${RESULT[$sys,get,16]}" \
    "${RESULT[redis-default,set,1]}" "${RESULT[redis-default,set,16]}" "${RESULT[redis-default,get,1]}" "${RESULT[redis-default,get,16]}" <<'PY'
import sys
name, *v = sys.argv[1:]
ours, ref = [float(x) for x in v[:4]], [float(x) for x in v[4:]]
print(f"{name:<22} " + " ".join(f"{o/r:12.3f}" for o, r in zip(ours, ref)))
PY
done
