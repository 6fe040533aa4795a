#!/usr/bin/env bash
# Benchmarks `image-compat audit`: 1,000 images (200 with an artifact) x 100 saved nodes
# against an in-process loopback registry, cold then warm (the answers cached on disk): wall
# time, registry requests, peak RSS. Prints the figures; BENCHMARKS.md "## Audit" records them.
#
# Usage: scripts/bench-audit.sh [IMAGES [NODES [JOBS]]]     (default 1000 100 8)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet --bin image-compat --example bench_audit
exec target/release/examples/bench_audit "$(pwd)/target/release/image-compat" "$@"
