#!/usr/bin/env bash
# Records the FileDescriptorSets that tools/protoc (the build scripts' protoc stand-in) answers
# from, with a real protoc: after an edit of proto/nri or a new containerd-client/k8s-cri version.
#
# Usage: bash scripts/protoc-fds.sh record     (then commit tools/protoc-fds/)
# The real protoc is IC_REAL_PROTOC, else the private bookworm one of integration/lib/install.sh,
# so that every recorded set comes from the same protoc (3.21.12) and tests/protoc_fds.rs can
# compare them byte for byte.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=../integration/lib/install.sh
source integration/lib/install.sh

case ${1:-} in
  record) ;;
  *) echo "usage: $0 record" >&2; exit 2 ;;
esac
IC_REAL_PROTOC=${IC_REAL_PROTOC:-$(ic_install_protoc)}
export IC_REAL_PROTOC IC_PROTOC_MODE=record
unset PROTOC
rm -rf tools/protoc-fds/*/
# Every crate that (build-)depends on a prost-build, so that each build script calling protoc
# runs again (`check` runs build scripts without compiling everything); a few are only on the
# way there, which costs their rebuild alone.
crates=()
for p in $(cargo tree --locked -e normal,build,dev --prefix none --format '{p}' |
  awk '$1 == "prost-build" { print $1 "@" substr($2, 2) }' | sort -u); do
  while read -r name version _; do
    crates+=(-p "$name@${version#v}")
  done < <(cargo tree --locked -i "$p" -e normal,build,dev --prefix none | sort -u)
done
cargo clean "${crates[@]}"
cargo check --all-targets --locked
git status --short tools/protoc-fds
