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
cargo test --workspace --locked "$@"
