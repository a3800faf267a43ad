#!/usr/bin/env bash
# The project's test command: everything a fresh machine needs, then the whole suite.
# Integration tests start real ringflow processes on loopback (ephemeral ports, temp dirs).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install a Rust toolchain (https://rustup.rs) first" >&2
  exit 1
fi

# The binaries the integration tests spawn (ringflow and the custom-worker example),
# built once up front with the workspace's features.
cargo build --workspace --bins --examples --locked
export RINGFLOW_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/ringflow"
export RINGFLOW_EXAMPLES_DIR="${CARGO_TARGET_DIR:-$PWD/target}/debug/examples"

# The chaos suite (tests/tests/chaos.rs) runs the cluster in containers of the FROM-scratch
# image; build it here where a Docker engine is reachable (the suite skips, saying so,
# where none is).
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  export RINGFLOW_IMAGE="ringflow:test"
  bash deploy/docker/build.sh "$RINGFLOW_IMAGE"
else
  echo "no Docker engine reachable: the chaos suite will skip"
fi
cargo test --workspace --locked "$@"
