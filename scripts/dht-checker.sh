#!/usr/bin/env bash
# The DHT fault-injection checker (tests/tests/dht_checker.rs, issue 17), run long.
#
# Builds the binaries, then runs the checker's test with many rounds: each round applies
# one fault of the list (kill -9 / SIGSTOP / restart of workers and of the coordinator,
# iptables partitions between workers and from the coordinator, overlapping faults of two
# workers at once), holds it, heals it and waits until the cluster is healthy and writing
# again, with writers and readers on every worker's RESP port throughout. At the end every
# key is read and the whole history is checked (tests/src/history.rs).
#
#   scripts/dht-checker.sh [ROUNDS] [HOLD_SECS]
#
# ROUNDS (default 90: ten passes over the nine faults, with other targets each pass) and
# HOLD_SECS (default 8: how long each fault is held) become RINGFLOW_CHECKER_ROUNDS and
# RINGFLOW_CHECKER_SECS. The history is written to target/dht-checker-history.txt
# (RINGFLOW_CHECKER_HISTORY). Partition faults need root and iptables; without them they
# are skipped (the run prints `SKIPPED partition faults: ...`).
#
# CI runs the short version (one round of each fault, held 6 s) with the other tests.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds="${1:-90}"
hold="${2:-8}"
target="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --workspace --bins --examples --locked
export RINGFLOW_BIN="$target/debug/ringflow"
export RINGFLOW_EXAMPLES_DIR="$target/debug/examples"
export RINGFLOW_CHECKER_ROUNDS="$rounds"
export RINGFLOW_CHECKER_SECS="$hold"
export RINGFLOW_CHECKER_HISTORY="${RINGFLOW_CHECKER_HISTORY:-$target/dht-checker-history.txt}"
echo "dht checker: $rounds rounds, faults held ${hold}s, history in $RINGFLOW_CHECKER_HISTORY"
exec cargo test --locked -p ringflow-tests --test dht_checker -- --nocapture
