#!/usr/bin/env bash
# Stream jobs on the local 3-worker cluster, beside references measured in the same run.
#
#   scripts/bench-stream.sh [LINES]        (default 2000000)
#
# Generates LINES lines of text (~10 words a line, 12 files, deterministic) in a temp dir,
# starts `ringflow local --workers 3` there (its own profile: the user's is never read or
# written), and measures, from `job submit` to the job's end (the coordinator's
# submitted_ms/ended_ms, so deployment is included):
#
#   wordcount  source.files -> flat_map split_words -> key_by "." -hash-> count -> sink.discard
#   pipeline   source.files -> map lowercase -> filter contains "qu" -> sink.discard (forward)
#   edge       source.files on worker-2 only -gather-> sink.discard on worker-1: every record
#              crosses one edge between two workers; the same job with the file read on
#              worker-1 (a local edge) is run too
#   shuffle    source.generate sequence on every worker -> key_by n -hash-> sink.discard
#              ((W-1)/W of the records cross workers), beside the same job with forward edges
#   noop       one generated record -> sink.discard: the fixed cost of a job
#
# References: examples/bench_stream_ref.rs (one thread, a plain loop doing the work of the
# wordcount and pipeline jobs on the same files) and examples/quic_raw.rs (1 GiB in 64 KiB
# frames over one QUIC stream between two ringflow_net endpoints on loopback; also the
# wire size of a record of this corpus as an edge frames it, and the edge codec alone).
# References are medians of 3 runs; jobs are medians of JOB_RUNS runs (default 3); while a
# job runs its queues are sampled every 0.5 s with `ringflow job status` (a few % of a core).
# Everything shares the machine's cores. Prints one table, then per-job details (per-vertex
# rates, queue fill, cluster CPU). KEEP=1 keeps the temp dir (specs, results, cluster logs).
# Env: JOB_RUNS (3), QUIC_BYTES (1 GiB), JOB_TIMEOUT (900 s a run), KEEP, NO_BUILD=1 (use the
# binaries already built).
set -euo pipefail
cd "$(dirname "$0")/.."
LINES="${1:-2000000}"
JOB_RUNS="${JOB_RUNS:-3}"
FILES=12
SUBSTRING=qu
QUIC_BYTES="${QUIC_BYTES:-1073741824}"
JOB_TIMEOUT="${JOB_TIMEOUT:-900}"

if [ "${NO_BUILD:-0}" != 1 ]; then
  cargo build --release -q -p ringflow --bin ringflow \
    -p ringflow-examples --example bench-stream-ref --example quic-raw
fi
WORK="$(mktemp -d -t ringflow-bench-stream.XXXXXX)"
LOCAL_PID=
SAMPLER_PID=
cleanup() {
  [ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null && wait "$SAMPLER_PID" 2>/dev/null || true
  [ -n "$LOCAL_PID" ] && kill -INT "$LOCAL_PID" 2>/dev/null && wait "$LOCAL_PID" 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# Private copies: a build started elsewhere during the run cannot swap the binaries.
mkdir -p "$WORK/bin"
cp target/release/ringflow target/release/examples/bench-stream-ref target/release/examples/quic-raw "$WORK/bin/"
BIN="$WORK/bin/ringflow"
EX="$WORK/bin"
# The cluster's client profile lives in WORK; nothing inherited may point elsewhere.
export RINGFLOW_PROFILE="$WORK/profile.toml" XDG_CONFIG_HOME="$WORK/cfg"
unset RINGFLOW_CLUSTER RINGFLOW_CERTS
R="$WORK/results"
mkdir -p "$R"

echo "generating $LINES lines in $FILES files..." >&2
"$EX/bench-stream-ref" gen "$WORK/corpus" "$LINES" "$FILES" >"$R/corpus.json"
# The edge jobs read one file holding the whole corpus, on one worker: source.files gives
# the file at position p of a directory to instance p % instances, and instance i runs on
# the i-th worker by id; a parallelism-1 sink runs on the first worker.
mkdir -p "$WORK/edge-remote" "$WORK/edge-local"
cat "$WORK"/corpus/part-*.txt >"$WORK/edge-local/a"
: >"$WORK/edge-remote/a"
ln "$WORK/edge-local/a" "$WORK/edge-remote/b"
SHUFFLE_PER_WORKER=$((LINES / 3))

echo "references (3 runs each)..." >&2
"$EX/bench-stream-ref" wordcount "$WORK/corpus" 3 >"$R/ref-wordcount.json"
"$EX/bench-stream-ref" pipeline "$WORK/corpus" "$SUBSTRING" 3 >"$R/ref-pipeline.json"
"$EX/quic-raw" --bytes "$QUIC_BYTES" --runs 3 --sample "$WORK/edge-local/a" --records "$LINES" \
  >"$R/ref-quic.json"

"$BIN" local --workers 3 --port 0 --no-resp --dir "$WORK/cluster" >"$WORK/local.out" 2>&1 &
LOCAL_PID=$!
for _ in $(seq 600); do grep -q "local cluster is up" "$WORK/local.out" && break; sleep 0.1; done
grep -q "local cluster is up" "$WORK/local.out" || { cat "$WORK/local.out"; exit 1; }

# CPU seconds used so far: by the cluster's processes (the coordinator and the workers),
# by the whole machine (busy, from /proc/stat), stolen by the hypervisor, and by this
# script with its finished children (CLI calls, samplers); then the wall clock.
cluster_cpu() {
  python3 - "$LOCAL_PID" "$$" <<'PY'
import os, sys, time
root, me = sys.argv[1], sys.argv[2]
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
ticks = 0
for p in pids:
    try:
        f = open(f"/proc/{p}/stat").read()
        f = f[f.rindex(")") + 2:].split()
        ticks += int(f[11]) + int(f[12])
    except OSError:
        pass
cpu = [int(x) for x in open("/proc/stat").readline().split()[1:]]
# user nice system idle iowait irq softirq steal ...
busy = cpu[0] + cpu[1] + cpu[2] + cpu[5] + cpu[6]
f = open(f"/proc/{me}/stat").read()
f = f[f.rindex(")") + 2:].split()
mine = sum(int(x) for x in f[11:15])
print(ticks / hz, busy / hz, cpu[7] / hz, mine / hz, time.time())
PY
}

# run_job NAME SPEC: submits SPEC JOB_RUNS times with --wait; while it runs, samples its
# queues every 0.5 s. Writes NAME-i.json (final status), NAME-i.samples, NAME-i.cpu.
run_job() {
  local name="$1" spec="$2" i id
  for i in $(seq "$JOB_RUNS"); do
    local before after
    before=$(cluster_cpu)
    timeout "$JOB_TIMEOUT" "$BIN" job submit "$spec" --wait --json >"$R/$name-$i.json" 2>"$WORK/$name-$i.err" &
    local submit=$!
    id=
    for _ in $(seq 200); do
      id=$(sed -n 's/^submitted //p' "$WORK/$name-$i.err")
      [ -n "$id" ] && break
      kill -0 "$submit" 2>/dev/null || break
      sleep 0.05
    done
    if [ -n "$id" ]; then
      ( while sleep 0.5; do "$BIN" job status "$id" --json 2>/dev/null | tr -d '\n'; echo; done ) \
        >"$R/$name-$i.samples" &
      SAMPLER_PID=$!
    fi
    local rc=0
    wait "$submit" || rc=$?
    if [ -n "$SAMPLER_PID" ]; then kill "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null || true; SAMPLER_PID=; fi
    after=$(cluster_cpu)
    echo "$before $after" >"$R/$name-$i.cpu"
    if [ "$rc" != 0 ]; then
      echo "job $name failed (exit $rc; 124: no end within $JOB_TIMEOUT s):" >&2
      cat "$WORK/$name-$i.err" "$R/$name-$i.json" >&2
      exit 1
    fi
    python3 - "$R/$name-$i.json" "$before $after" "$name run $i" >&2 <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
c = [float(x) for x in sys.argv[2].split()]
b, a = c[:5], c[5:]
s = max(j["ended_ms"] - j["submitted_ms"], 1) / 1000
other = max((a[1] - b[1]) - (a[0] - b[0]) - (a[3] - b[3]), 0) / (a[4] - b[4])
cores = f"{(a[0] - b[0]) / s:.2f}" if s >= 0.1 else "-"
print(f"  {sys.argv[3]}: {s:.3f} s, cluster {cores} cores, other processes {other:.2f} cores")
PY
  done
}

cat >"$WORK/wordcount.toml" <<EOF
name = "bench-wordcount"
[[vertex]]
name = "lines"
operator = "source.files"
config = { path = "$WORK/corpus" }
[[vertex]]
name = "words"
operator = "flat_map"
config = { function = "split_words" }
inputs = ["lines"]
[[vertex]]
name = "keyed"
operator = "key_by"
config = { field = "." }
inputs = ["words"]
[[vertex]]
name = "count"
operator = "count"
inputs = [{ from = "keyed", edge = "hash" }]
[[vertex]]
name = "out"
operator = "sink.discard"
inputs = ["count"]
EOF

cat >"$WORK/pipeline.toml" <<EOF
name = "bench-pipeline"
[[vertex]]
name = "lines"
operator = "source.files"
config = { path = "$WORK/corpus" }
[[vertex]]
name = "lower"
operator = "map"
config = { function = "lowercase" }
inputs = ["lines"]
[[vertex]]
name = "keep"
operator = "filter"
config = { function = "contains", substring = "$SUBSTRING" }
inputs = ["lower"]
[[vertex]]
name = "out"
operator = "sink.discard"
inputs = ["keep"]
EOF

for where in remote local; do
  cat >"$WORK/edge-$where.toml" <<EOF
name = "bench-edge-$where"
[[vertex]]
name = "lines"
operator = "source.files"
config = { path = "$WORK/edge-$where" }
[[vertex]]
name = "out"
operator = "sink.discard"
inputs = [{ from = "lines", edge = "gather" }]
parallelism = 1
EOF
done

for edge in hash forward; do
  cat >"$WORK/shuffle-$edge.toml" <<EOF
name = "bench-shuffle-$edge"
[[vertex]]
name = "gen"
operator = "source.generate"
config = { kind = "sequence", count = $SHUFFLE_PER_WORKER }
[[vertex]]
name = "keyed"
operator = "key_by"
config = { field = "n" }
inputs = ["gen"]
[[vertex]]
name = "out"
operator = "sink.discard"
inputs = [{ from = "keyed", edge = "$edge" }]
EOF
done

cat >"$WORK/noop.toml" <<EOF
name = "bench-noop"
[[vertex]]
name = "gen"
operator = "source.generate"
config = { kind = "sequence", count = 1 }
[[vertex]]
name = "out"
operator = "sink.discard"
inputs = ["gen"]
EOF

echo "jobs ($JOB_RUNS run(s) each)..." >&2
run_job noop "$WORK/noop.toml"
run_job wordcount "$WORK/wordcount.toml"
run_job pipeline "$WORK/pipeline.toml"
run_job edge-remote "$WORK/edge-remote.toml"
run_job edge-local "$WORK/edge-local.toml"
run_job shuffle-hash "$WORK/shuffle-hash.toml"
run_job shuffle-forward "$WORK/shuffle-forward.toml"

python3 - "$R" "$JOB_RUNS" "$SUBSTRING" <<'PY'
import glob, json, os, statistics, sys

R, runs, substring = sys.argv[1], int(sys.argv[2]), sys.argv[3]
load = lambda f: json.load(open(os.path.join(R, f)))
corpus = load("corpus.json")
ref_wc, ref_pl, quic = load("ref-wordcount.json"), load("ref-pipeline.json"), load("ref-quic.json")

def job(name):
    """Median run of a job: (seconds, final info, cpu seconds, samples)."""
    out = []
    for i in range(1, runs + 1):
        j = load(f"{name}-{i}.json")
        if j["state"].lower() != "finished":
            sys.exit(f"{name}: {j['state']} {j.get('reason')}")
        secs = (j["ended_ms"] - j["submitted_ms"]) / 1000
        c = [float(x) for x in open(os.path.join(R, f"{name}-{i}.cpu")).read().split()]
        # cluster, machine busy, steal, this script, wall: before, then after.
        b, a = c[:5], c[5:]
        wall = a[4] - b[4]
        cpu = {"cluster": a[0] - b[0], "steal": (a[2] - b[2]) / wall,
               "other": max((a[1] - b[1]) - (a[0] - b[0]) - (a[3] - b[3]), 0) / wall}
        samples = []
        for line in open(os.path.join(R, f"{name}-{i}.samples")):
            try:
                samples.append(json.loads(line))
            except ValueError:
                pass
        out.append((secs, j, cpu, samples))
    out.sort(key=lambda r: r[0])
    return out[len(out) // 2], [r[0] for r in out]

def v(info, name):
    return next(x for x in info["vertices"] if x["name"] == name)

problems = []
def check(what, got, want):
    if got != want:
        problems.append(f"{what}: ringflow {got} != reference {want}")

rows, details = [], []
def row(name, ours, ref, unit):
    rows.append((name, ours, ref, unit))

(wc_s, wc, wc_cpu, wc_samp), wc_all = job("wordcount")
lines = v(wc, "lines")["records_out"]
words = v(wc, "words")["records_out"]
check("wordcount lines", lines, ref_wc["lines"])
check("wordcount words", words, ref_wc["words"])
check("wordcount distinct words", v(wc, "count")["records_out"], ref_wc["distinct"])
ref_s = ref_wc["median_secs"]
row("word count: lines/s", lines / wc_s, ref_wc["lines"] / ref_s, "1 thread, HashMap")
row("word count: words/s", words / wc_s, ref_wc["words"] / ref_s, "1 thread, HashMap")

(pl_s, pl, pl_cpu, pl_samp), pl_all = job("pipeline")
check("pipeline lines", v(pl, "lines")["records_out"], ref_pl["lines"])
check("pipeline kept", v(pl, "keep")["records_out"], ref_pl["kept"])
row(f"map lowercase + filter contains '{substring}': lines/s",
    v(pl, "lines")["records_out"] / pl_s, ref_pl["lines"] / ref_pl["median_secs"], "1 thread, loop")

(er_s, er, er_cpu, er_samp), er_all = job("edge-remote")
(el_s, el, el_cpu, el_samp), el_all = job("edge-local")
check("edge records", v(er, "out")["records_in"], corpus["lines"])
check("local edge records", v(el, "out")["records_in"], corpus["lines"])
row("one cross-node edge (worker-2 -> worker-1): records/s", corpus["lines"] / er_s,
    quic["raw_equiv_records_per_sec"], "raw QUIC stream, same bytes")
row("same job, local edge (worker-1 -> worker-1): records/s", corpus["lines"] / el_s, None, "")

(sh_s, sh, sh_cpu, sh_samp), sh_all = job("shuffle-hash")
(sf_s, sf, sf_cpu, sf_samp), sf_all = job("shuffle-forward")
n_sh = v(sh, "out")["records_in"]
row("hash shuffle, 3 workers (2/3 cross): records/s", n_sh / sh_s,
    v(sf, "out")["records_in"] / sf_s, "same job, forward edges")

(no_s, no, no_cpu, no_samp), no_all = job("noop")
raw = quic["raw"]
print(f"\nstream jobs, {corpus['lines']:,} lines ({corpus['bytes'] / 1e6:.0f} MB, {words:,} words) "
      f"in {corpus['files']} files; ringflow local, 3 workers; {os.cpu_count()} CPUs shared by all")
print(f"jobs: median of {runs} run(s), submit to end; references: median of 3 runs\n")
w = max(len(r[0]) for r in rows)
print(f"{'benchmark':<{w}} {'ringflow/s':>12} {'reference/s':>12} {'ratio':>7}  reference")
for name, ours, ref, unit in rows:
    refs = f"{ref:12,.0f}" if ref else f"{'-':>12}"
    ratio = f"{ours / ref:7.3f}" if ref else f"{'-':>7}"
    print(f"{name:<{w}} {ours:12,.0f} {refs} {ratio}  {unit}")

print(f"\nraw QUIC, one stream on loopback: {raw['median_bytes_per_sec'] / 1e6:,.0f} MB/s "
      f"({raw['bytes'] / 2**30:.1f} GiB in {raw['frame'] // 1024} KiB frames; runs {raw['secs']} s); "
      f"a record of this corpus is {quic['record_wire_bytes']:.1f} bytes on an edge "
      f"({quic['sample_line_bytes']:.1f}-byte lines), so {quic['raw_equiv_records_per_sec']:,.0f} records/s")
c = quic["codec"]
print(f"edge codec alone over one QUIC stream (encode {c['batch']}-record batches, DataFrame, decode; "
      f"no runtime): {c['median_records_per_sec']:,.0f} records/s (runs {c['secs']} s)")

def detail(name, secs, info, cpu, samples, all_secs):
    first = info["vertices"][0]["records_out"]
    c = cpu["cluster"]
    print(f"\n{name}: {secs:.2f} s (runs {all_secs}), cluster CPU {c:.1f} s = {c / secs:.2f} cores, "
          f"{c / max(first, 1) * 1e6:.2f} CPU-us per source record; other processes on the machine "
          f"{cpu['other']:.2f} cores, steal {cpu['steal']:.2f}")
    print(f"  {'vertex':<8} {'inst':>4} {'records in':>12} {'records out':>12} {'out/s':>12} "
          f"{'queue fill mean':>15} {'max':>5}")
    for x in info["vertices"]:
        fills = []
        for s in samples:
            for y in s.get("vertices", []):
                if y["name"] == x["name"] and y["queue_capacity"]:
                    fills.append(y["queued"] / y["queue_capacity"])
        mean = f"{statistics.mean(fills):15.2f}" if fills else f"{'-':>15}"
        mx = f"{max(fills):5.2f}" if fills else f"{'-':>5}"
        print(f"  {x['name']:<8} {x['instances']:>4} {x['records_in']:12,} {x['records_out']:12,} "
              f"{x['records_out'] / secs:12,.0f} {mean} {mx}")

detail("wordcount", wc_s, wc, wc_cpu, wc_samp, wc_all)
detail("pipeline", pl_s, pl, pl_cpu, pl_samp, pl_all)
detail("edge-remote", er_s, er, er_cpu, er_samp, er_all)
detail("edge-local", el_s, el, el_cpu, el_samp, el_all)
detail("shuffle-hash", sh_s, sh, sh_cpu, sh_samp, sh_all)
detail("shuffle-forward", sf_s, sf, sf_cpu, sf_samp, sf_all)
print(f"\nfixed cost of a job (one record, submit to end): {no_s * 1000:.0f} ms (runs {no_all})")
print(f"\nreference runs (s): wordcount {ref_wc['secs']}, pipeline {ref_pl['secs']}; "
      f"CPU-us per line: wordcount {ref_s / ref_wc['lines'] * 1e6:.2f}, "
      f"pipeline {ref_pl['median_secs'] / ref_pl['lines'] * 1e6:.3f}")
if problems:
    print("\nMISMATCHES:\n  " + "\n  ".join(problems))
    sys.exit(1)
print("results checked: line, word, distinct-word and kept counts equal the references")
PY
