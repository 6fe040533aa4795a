#!/usr/bin/env bash
# Runs every test of the project, from a bare Debian bookworm machine: installs what the build
# and the real-stack tests need (into private prefixes where it is not bookworm's), then runs
# the formatting and lint checks, the unit and integration tests, and (as root) the real-stack
# end-to-end suites. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=../integration/lib/install.sh
source integration/lib/install.sh

step() { printf '\n== %s\n' "$*"; }

step "build tools"
# None system-wide; exports IC_REAL_PROTOC (bookworm's, private) for tests/protoc_fds.rs only.
ic_install_build_tools

step "no protoc on PATH: every build below takes tools/protoc (.cargo/config.toml)"
noprotoc=$(mktemp -d)
trap 'rm -rf "$noprotoc"' EXIT
printf '#!/bin/sh\necho "protoc from PATH was called: builds must take tools/protoc" >&2\nexit 1\n' \
  >"$noprotoc/protoc"
chmod +x "$noprotoc/protoc"
export PATH="$noprotoc:$PATH"
unset PROTOC

if [ "$(id -u)" = 0 ]; then
  step "real stack (private prefix: $(ic_default_prefix))"
  ic_install_stack >/dev/null
  export IMAGE_COMPAT_STACK
  IMAGE_COMPAT_STACK=$(ic_default_prefix)
else
  echo "not root: the real-stack tests (containerd, runc, registry, oras) will be skipped"
fi

step "format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings

step "examples (the CRI test client and the NRI probe the real-stack tests run)"
cargo build --examples --locked

step "unit, integration and real-stack tests (benchmarks run once each, as tests)"
cargo test --all-targets --locked --no-fail-fast

if [ "$(id -u)" = 0 ]; then
  step "packaging: container image, .deb, Kubernetes manifests (the debug binary just tested)"
  bash integration/package/image.sh target/debug/image-compat
  bash integration/package/deb.sh target/debug/image-compat
  bash integration/package/manifests.sh
else
  echo "not root: the packaging tests (buildah, dpkg --root, apt downloads) will be skipped"
fi
