#!/usr/bin/env bash
# The project's test command: everything a fresh machine needs, then the whole suite.
# Integration tests start real ringflow processes on loopback (ephemeral ports, temp dirs).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install a Rust toolchain (https://rustup.rs) first" >&2
  exit 1
fi

# The binary the integration tests spawn, built once up front.
cargo build --workspace --bins --locked
export RINGFLOW_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/ringflow"
cargo test --workspace --locked "$@"
