#!/usr/bin/env bash
# What checkpoints cost stream jobs, on the local 3-worker cluster, beside the same jobs
# without checkpoints measured in the same run; then what a kill -9 and a rescale cost.
#
#   scripts/bench-checkpoints.sh [LINES] [EVENTS]     (defaults 4000000, 3000000)
#
# Jobs (each timed from `job submit` to its end with the coordinator's submitted_ms and
# ended_ms; medians of JOB_RUNS runs, default 3, the three settings interleaved):
#   wordcount  LINES generated lines (12 files) -> split_words -> key_by -hash-> count
#              -> sink.file
#   windows    source.generate metrics, EVENTS per worker, 1 ms apart in event time ->
#              key_by host -hash-> tumbling 1 s window (count, avg cpu) -> sink.file
# each with no checkpoints, checkpoint_interval_ms = 10000 and = 1000. Printed: duration,
# throughput ratio against the job without checkpoints, checkpoints completed, the last
# one's size, duration and alignment.
# Then, on a job that runs until cancelled (checkpoints every 1 s): the time from kill -9
# of worker-3 to the job running again from its last checkpoint and reading records
# (failure timeout FAILURE_MS, default 2000), and the pause of `ringflow job rescale`
# after worker-3 is started again (3 -> 3 workers after the kill's restart on 2, i.e.
# 2 -> 3). KEEP=1 keeps the temp dir; NO_BUILD=1 uses the binaries already built;
# JOBS="wordcount windows" picks the jobs (the kill and rescale part always runs).
set -euo pipefail
cd "$(dirname "$0")/.."
LINES="${1:-4000000}"
EVENTS="${2:-3000000}"
JOB_RUNS="${JOB_RUNS:-3}"
FAILURE_MS="${FAILURE_MS:-2000}"

if [ "${NO_BUILD:-0}" != 1 ]; then
  cargo build --release -q -p ringflow --bin ringflow -p ringflow-examples --example bench-stream-ref
fi
WORK="$(mktemp -d -t ringflow-bench-cp.XXXXXX)"
LOCAL_PID=
cleanup() {
  [ -n "$LOCAL_PID" ] && kill -INT "$LOCAL_PID" 2>/dev/null && wait "$LOCAL_PID" 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$WORK/bin"
cp target/release/ringflow target/release/examples/bench-stream-ref "$WORK/bin/"
BIN="$WORK/bin/ringflow"
export RINGFLOW_PROFILE="$WORK/profile.toml" XDG_CONFIG_HOME="$WORK/cfg"
unset RINGFLOW_CLUSTER RINGFLOW_CERTS

echo "generating $LINES lines..." >&2
"$WORK/bin/bench-stream-ref" gen "$WORK/corpus" "$LINES" 12 >/dev/null

"$BIN" local --workers 3 --port 0 --no-resp --failure-timeout-ms "$FAILURE_MS" \
  --dir "$WORK/cluster" >"$WORK/local.out" 2>&1 &
LOCAL_PID=$!
for _ in $(seq 600); do grep -q "local cluster is up" "$WORK/local.out" && break; sleep 0.1; done
grep -q "local cluster is up" "$WORK/local.out" || { cat "$WORK/local.out"; exit 1; }

python3 - "$BIN" "$WORK" "$JOB_RUNS" "$EVENTS" "$FAILURE_MS" "$LOCAL_PID" <<'PY'
import json, os, signal, statistics, subprocess, sys, time
bin_, work, runs, events, failure_ms, local_pid = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]

def cli(*args, check=True):
    p = subprocess.run([bin_, *args], capture_output=True, text=True)
    if check and p.returncode != 0:
        sys.exit(f"ringflow {' '.join(args)}: {p.stderr}")
    return p

def status(job):
    return json.loads(cli("job", "status", job, "--json").stdout)

def submit(spec, name):
    path = os.path.join(work, f"{name}.toml")
    open(path, "w").write(spec)
    return cli("job", "submit", path).stdout.strip()

def wordcount(interval, n):
    out = os.path.join(work, "out", f"wc-{interval}-{n}")
    cp = "" if interval is None else f"checkpoint_interval_ms = {interval}"
    return f'''
name = "wc"
[settings]
{cp}
[[vertex]]
name = "lines"
operator = "source.files"
config = {{ path = "{work}/corpus" }}
[[vertex]]
name = "words"
operator = "flat_map"
config = {{ function = "split_words" }}
inputs = ["lines"]
[[vertex]]
name = "keyed"
operator = "key_by"
config = {{ field = "." }}
inputs = ["words"]
[[vertex]]
name = "counts"
operator = "count"
inputs = [{{ from = "keyed", edge = "hash" }}]
[[vertex]]
name = "out"
operator = "sink.file"
config = {{ path = "{out}" }}
inputs = ["counts"]
'''

def windows(interval, n, count=events, rate=""):
    out = os.path.join(work, "out", f"win-{interval}-{n}")
    cp = "" if interval is None else f"checkpoint_interval_ms = {interval}"
    c = "" if count is None else f", count = {count}"
    return f'''
name = "windows"
[settings]
{cp}
[[vertex]]
name = "gen"
operator = "source.generate"
config = {{ kind = "metrics", hosts = 1000, start_time_ms = 1700000000000, interval_ms = 1{c}{rate} }}
[[vertex]]
name = "wm"
operator = "watermark"
config = {{ time_field = "ts", max_delay_ms = 0 }}
inputs = ["gen"]
[[vertex]]
name = "keyed"
operator = "key_by"
config = {{ field = "host" }}
inputs = ["wm"]
[[vertex]]
name = "win"
operator = "window"
config = {{ kind = "tumbling", size_ms = 1000, time_field = "ts", field = "cpu", aggregates = ["count", "mean"] }}
inputs = [{{ from = "keyed", edge = "hash" }}]
[[vertex]]
name = "out"
operator = "sink.file"
config = {{ path = "{out}" }}
inputs = ["win"]
'''

def run(make, interval, n):
    job = submit(make(interval, n), f"job-{interval}-{n}")
    while True:
        j = status(job)
        if j["state"] in ("Finished", "Failed", "Cancelled"):
            break
        time.sleep(0.2)
    if j["state"] != "Finished":
        sys.exit(f"job {job} {j['state']}: {j.get('reason')}")
    return j, (j["ended_ms"] - j["submitted_ms"]) / 1000.0

settings = [None, 10000, 1000]
results = {}
wanted = os.environ.get("JOBS", "wordcount windows").split()
for name, make in (("wordcount", wordcount), ("windows", windows)):
    if name not in wanted:
        continue
    times = {s: [] for s in settings}
    last = {}
    for n in range(runs):
        for s in settings:
            j, t = run(make, s, n)
            times[s].append(t)
            last[s] = j
            print(f"  {name} interval={s}: {t:.2f} s", file=sys.stderr)
    results[name] = (times, last)

def fmt_cp(j):
    c = j["checkpoints"]
    l = c.get("last")
    if not l:
        return f"{c['completed']} completed", "", "", ""
    return (f"{c['completed']} completed, {c['failed']} failed", f"{l['size_bytes']/1024:.0f} KiB",
            f"{l['duration_ms']} ms", f"{l['alignment_ms']} ms")

print("| job | checkpoints | duration (median) | throughput vs none | checkpoints | last size | last duration | last alignment |")
print("| --- | --- | ---: | ---: | --- | ---: | ---: | ---: |")
for name, (times, last) in results.items():
    base = statistics.median(times[None])
    for s in settings:
        m = statistics.median(times[s])
        cps = fmt_cp(last[s]) if s else ("", "", "", "")
        label = "none" if s is None else f"every {s // 1000} s"
        print(f"| {name} | {label} | {m:.2f} s | {base / m:.2f} | {cps[0]} | {cps[1]} | {cps[2]} | {cps[3]} |")

# Kill -9 of a worker under a job that runs until cancelled, then a rescale.
job = submit(windows(1000, "endless", count=None, rate=", rate_per_sec = 20000"), "endless")
while (status(job)["checkpoints"]["completed"] or 0) < 3:
    time.sleep(0.2)
pids = subprocess.run(["pgrep", "-f", "--", "--id worker-3"], capture_output=True, text=True).stdout.split()
pids = [p for p in pids if p != str(os.getpid())]
if not pids:
    sys.exit("cannot find worker-3's process")
argv = [a for a in open(f"/proc/{pids[0]}/cmdline").read().split("\0") if a]
cwd = os.readlink(f"/proc/{pids[0]}/cwd")
t0 = time.time()
os.kill(int(pids[0]), signal.SIGKILL)
detected = None
while True:
    j = status(job)
    if detected is None and j.get("restarts", 0) >= 1:
        detected = time.time() - t0
    gen = next(v for v in j["vertices"] if v["name"] == "gen")
    if j.get("restarts", 0) >= 1 and j.get("restored_from") and gen["records_out"] > 0 and len(j["workers"]) == 2:
        back = time.time() - t0
        break
    if time.time() - t0 > 120:
        sys.exit(f"no progress 120 s after the kill: {j}")
    time.sleep(0.05)
print()
print(f"kill -9 of worker-3 (failure timeout {failure_ms} ms): restart decided after {detected:.2f} s, "
      f"job reading again from checkpoint #{j['restored_from']} on 2 workers {back:.2f} s after the kill "
      f"(aim: <= 2 x failure timeout + 2 s = {2 * failure_ms / 1000 + 2:.1f} s)")
# The local cluster does not restart a killed worker: start worker-3 again as it was,
# wait until it is back, then move the job from 2 to 3 workers (and again 3 -> 3).
w3 = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
for _ in range(600):
    s = json.loads(cli("status", "--json").stdout)
    if sum(1 for m in s["members"] if m["state"] == "Alive") == 3 and not s["unowned"]:
        break
    time.sleep(0.1)
pauses = []
for _ in range(3):
    p = cli("job", "rescale", job, check=False)
    line = p.stdout.splitlines()[0] if p.stdout else p.stderr.strip()
    print(f"job rescale: {line}")
    if p.returncode == 0:
        pauses.append(status(job)["last_rescale_pause_ms"])
    time.sleep(2)
if pauses:
    print(f"rescale pause (stop with a checkpoint -> restored and started), median of {len(pauses)}: {statistics.median(pauses)} ms")
cli("job", "cancel", job)
w3.send_signal(signal.SIGTERM)
w3.wait(timeout=30)
PY
