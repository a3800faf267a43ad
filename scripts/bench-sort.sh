#!/usr/bin/env bash
# Distributed sort on the local 3-worker cluster, beside references measured in the same run.
#
#   scripts/bench-sort.sh [SIZE_MIB]        (default 1024 = 1 GiB; 10240 for 10 GiB)
#
# Data: SIZE_MIB MiB of 100-byte ASCII gensort-style records (printable 10-byte keys,
# "\r\n" at the end, like `gensort -a`): valid fixed-size records for
# `ringflow sort --format gensort` and valid lines for GNU sort, with the same order.
# Measured (wall time, GB/s of input, peak RSS of every process):
#   ringflow   `ringflow sort --format gensort --memory MEM/3` on `ringflow local --workers 3`
#              (each worker reads a third of the input; MEM is split across the workers)
#   gnu-sort   `LC_ALL=C sort -S MEM --parallel=2 -T tmp` on the same file
#   in-memory  examples/sort_ref.rs: one process reads everything, sort_unstable, writes
# The outputs are checked with `ringflow sort --verify` and compared byte for byte (cmp).
# Env: MEM (total sort memory, default 1GiB), KEEP=1 keeps the temp dir, NO_BUILD=1.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB="${1:-1024}"
MEM="${MEM:-1GiB}"
RECORDS=$(( SIZE_MIB * 1048576 / 100 ))

if [ "${NO_BUILD:-0}" != 1 ]; then
  cargo build --release -q -p ringflow --bin ringflow -p ringflow-examples --example sort-ref
fi
BIN="$PWD/target/release/ringflow"
REF="$PWD/target/release/examples/sort-ref"
WORK="$(mktemp -d)"
LOCAL_PID=
cleanup() {
  [ -n "$LOCAL_PID" ] && kill -INT "$LOCAL_PID" 2>/dev/null && wait "$LOCAL_PID" 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export RINGFLOW_PROFILE="$WORK/profile.toml"
export XDG_CONFIG_HOME="$WORK/config"

bytes_of() { numfmt --to=iec-i --suffix=B "$1"; }
mem_bytes() {  # 1GiB -> bytes
  numfmt --from=iec-i "${1%B}"
}
MEM_BYTES=$(mem_bytes "$MEM")
PER_WORKER=$(( MEM_BYTES / 3 ))

echo "generating $RECORDS records ($(bytes_of $(( RECORDS * 100 ))))..." >&2
mkdir -p "$WORK/in" "$WORK/tmp"
"$REF" gen-ascii "$RECORDS" "$WORK/in/data.dat" 7

"$BIN" local --workers 3 --dir "$WORK/cluster" --port 0 --no-resp --fresh >"$WORK/local.log" 2>&1 &
LOCAL_PID=$!
for _ in $(seq 1 120); do grep -q "local cluster is up" "$WORK/local.log" && break; sleep 0.5; done
grep -q "local cluster is up" "$WORK/local.log" || { cat "$WORK/local.log"; exit 1; }
PIDS=$(pgrep -f -- "--data-dir $WORK/cluster" | tr '\n' ' ')

peak_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# ringflow
sync; T0=$(date +%s.%N)
"$BIN" sort --input "$WORK/in/data.dat" --output "$WORK/out-ringflow" --format gensort \
  --memory "$PER_WORKER" --no-progress --json >"$WORK/ringflow.json"
T1=$(date +%s.%N)
RF_S=$(echo "$T1 - $T0" | bc -l)
RF_RSS=""
for p in $PIDS; do RF_RSS="$RF_RSS $(( $(peak_kib "$p") / 1024 ))"; done
"$BIN" sort --verify "$WORK/out-ringflow" >"$WORK/verify.txt"

# GNU sort, same total memory
sync; T0=$(date +%s.%N)
LC_ALL=C /usr/bin/time -f "%M" -o "$WORK/gnu.rss" sort -S "$MEM_BYTES"b --parallel=2 \
  -T "$WORK/tmp" -o "$WORK/gnu-sorted.dat" "$WORK/in/data.dat"
T1=$(date +%s.%N)
GNU_S=$(echo "$T1 - $T0" | bc -l)
GNU_RSS=$(( $(cat "$WORK/gnu.rss") / 1024 ))

# Single process, in memory
sync; T0=$(date +%s.%N)
/usr/bin/time -f "%M" -o "$WORK/ref.rss" "$REF" sort "$WORK/in/data.dat" "$WORK/ref-sorted.dat" >/dev/null
T1=$(date +%s.%N)
REF_S=$(echo "$T1 - $T0" | bc -l)
REF_RSS=$(( $(cat "$WORK/ref.rss") / 1024 ))

# The parts in order are the sorted file (compared without another copy on disk).
cat "$WORK"/out-ringflow/part-*.dat | cmp -s - "$WORK/gnu-sorted.dat" || { echo "ringflow and GNU sort outputs differ" >&2; exit 1; }
cat "$WORK"/out-ringflow/part-*.dat | cmp -s - "$WORK/ref-sorted.dat" || { echo "ringflow and in-memory outputs differ" >&2; exit 1; }

GB=$(echo "$RECORDS * 100 / 1000000000" | bc -l)
printf '\ndistributed sort of %s (%d records), memory %s total\n' "$(bytes_of $(( RECORDS * 100 )))" "$RECORDS" "$MEM"
printf '%-12s %10s %8s %18s %s\n' "run" "wall s" "GB/s" "peak RSS MiB" "ratio (their time / ringflow time)"
printf '%-12s %10.2f %8.3f %18s %s\n' "ringflow" "$RF_S" "$(echo "$GB / $RF_S" | bc -l)" "${RF_RSS# }" "1.00"
printf '%-12s %10.2f %8.3f %18s %.2f\n' "gnu-sort" "$GNU_S" "$(echo "$GB / $GNU_S" | bc -l)" "$GNU_RSS" "$(echo "$GNU_S / $RF_S" | bc -l)"
printf '%-12s %10.2f %8.3f %18s %.2f\n' "in-memory" "$REF_S" "$(echo "$GB / $REF_S" | bc -l)" "$REF_RSS" "$(echo "$REF_S / $RF_S" | bc -l)"
echo "(ringflow RSS: coordinator and workers; outputs identical; verify: $(head -1 "$WORK/verify.txt"))"
echo "ringflow summary: $(cat "$WORK/ringflow.json" | tr -d '\n' | head -c 400)"
