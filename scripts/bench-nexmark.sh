#!/usr/bin/env bash
# Nexmark queries on the local 3-worker cluster, beside the generator alone, same run.
#
#   scripts/bench-nexmark.sh [EVENTS]        (default 10000000)
#
# Starts `ringflow local --workers 3` in a temp dir (its own client profile), runs
# examples/nexmark_gen.rs (one thread generating the same events and dropping them: the
# most a core can generate, so the bound of a query whose rate includes generation), then
# each query with `ringflow nexmark run --query Q --events EVENTS` (results to
# sink.discard). A query's rate is events / (submit to end, the coordinator's times, so
# deployment counts); per core is that rate divided by the cores the cluster used during
# the job (its processes' CPU time / wall time). Medians of JOB_RUNS runs (default 3).
# Env: JOB_RUNS, QUERIES (default all nine, "q0 ... q8"), NO_BUILD=1, KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS="${1:-10000000}"
JOB_RUNS="${JOB_RUNS:-3}"
QUERIES="${QUERIES:-q0 q1 q2 q3 q4 q5 q6 q7 q8}"
if [ "${NO_BUILD:-0}" != 1 ]; then
  cargo build --release -q -p ringflow --bin ringflow -p ringflow-examples --example nexmark-gen
fi
WORK="$(mktemp -d -t ringflow-bench-nexmark.XXXXXX)"
LOCAL_PID=
cleanup() {
  [ -n "$LOCAL_PID" ] && kill -INT "$LOCAL_PID" 2>/dev/null && wait "$LOCAL_PID" 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$WORK/bin"
cp target/release/ringflow target/release/examples/nexmark-gen "$WORK/bin/"
BIN="$WORK/bin/ringflow"
export RINGFLOW_PROFILE="$WORK/profile.toml" XDG_CONFIG_HOME="$WORK/cfg"
unset RINGFLOW_CLUSTER RINGFLOW_CERTS

echo "generator alone (3 runs)..." >&2
"$WORK/bin/nexmark-gen" "$EVENTS" 3 >"$WORK/gen.json"

"$BIN" local --workers 3 --port 0 --no-resp --dir "$WORK/cluster" >"$WORK/local.out" 2>&1 &
LOCAL_PID=$!
for _ in $(seq 600); do grep -q "local cluster is up" "$WORK/local.out" && break; sleep 0.1; done
grep -q "local cluster is up" "$WORK/local.out" || { cat "$WORK/local.out"; exit 1; }

# CPU seconds of the cluster's processes so far.
cluster_cpu() {
  python3 - "$LOCAL_PID" <<'PY'
import os, sys
root = sys.argv[1]
hz = os.sysconf("SC_CLK_TCK")
pids = [root]
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            st = open(f"/proc/{p}/stat").read()
        except OSError:
            continue
        if st[st.rindex(")") + 2:].split()[1] == root:
            pids.append(p)
t = 0
for p in pids:
    try:
        f = open(f"/proc/{p}/stat").read()
        f = f[f.rindex(")") + 2:].split()
        t += int(f[11]) + int(f[12])
    except OSError:
        pass
print(t / hz)
PY
}

for q in $QUERIES; do
  for i in $(seq "$JOB_RUNS"); do
    before=$(cluster_cpu)
    "$BIN" nexmark run --query "$q" --events "$EVENTS" --json >"$WORK/$q-$i.json" 2>"$WORK/$q-$i.err" \
      || { cat "$WORK/$q-$i.err" >&2; exit 1; }
    after=$(cluster_cpu)
    echo "$before $after" >"$WORK/$q-$i.cpu"
    tail -1 "$WORK/$q-$i.json" >&2
  done
done

python3 - "$WORK" "$EVENTS" "$JOB_RUNS" $QUERIES <<'PY'
import json, statistics, sys
work, events, runs, queries = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
gen = json.load(open(f"{work}/gen.json"))
gen_rate = gen["events"] / gen["median_secs"]
print(f"\nNexmark, {events:,} events, seed 0; ringflow local, 3 workers; 2 CPUs shared by all")
print(f"generator alone, one thread: {gen_rate:,.0f} events/s (runs {[round(s, 3) for s in gen['secs']]} s)\n")
print(f"{'query':<6} {'events/s':>12} {'cores':>6} {'per core':>12} {'vs generator':>13}  runs (s)")
for q in queries:
    rates, cores, secs = [], [], []
    for i in range(1, runs + 1):
        text = open(f"{work}/{q}-{i}.json").read()
        j = json.loads(text[: text.rindex("}") + 1])
        s = (j["ended_ms"] - j["submitted_ms"]) / 1000
        b, a = (float(x) for x in open(f"{work}/{q}-{i}.cpu").read().split())
        secs.append(s)
        rates.append(events / s)
        cores.append((a - b) / s)
    r, c = statistics.median(rates), statistics.median(cores)
    print(f"{q:<6} {r:>12,.0f} {c:>6.2f} {r / c:>12,.0f} {r / c / gen_rate:>13.2f}  {[round(x, 3) for x in secs]}")
PY
