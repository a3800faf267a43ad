#!/usr/bin/env bash
# Builds the ringflow container image FROM scratch: a statically linked release binary
# (glibc with +crt-static on x86_64-unknown-linux-gnu), then `docker build`.
# Usage: deploy/docker/build.sh [TAG]   (default ringflow:dev)
set -euo pipefail
cd "$(dirname "$0")/../.."
tag="${1:-ringflow:dev}"
target=x86_64-unknown-linux-gnu
# Only target artifacts are linked statically; build scripts and proc macros stay dynamic.
CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --release --locked --target "$target" -p ringflow --bin ringflow
bin="${CARGO_TARGET_DIR:-target}/$target/release/ringflow"
case "$(ldd "$bin" 2>&1 || true)" in
  *"statically linked"* | *"not a dynamic executable"*) ;;
  *) echo "error: $bin is dynamically linked:" >&2; ldd "$bin" >&2; exit 1 ;;
esac
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp deploy/docker/Dockerfile "$ctx/"
cp "$bin" "$ctx/ringflow"
# The image carries no debug info (the build keeps it for profiling on the host).
strip "$ctx/ringflow" 2>/dev/null || true
mkdir "$ctx/empty"
docker build --quiet -t "$tag" "$ctx" >/dev/null
echo "built image $tag ($(du -h "$ctx/ringflow" | cut -f1) static binary)"
