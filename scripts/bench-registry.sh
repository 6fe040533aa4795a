#!/usr/bin/env bash
# Benchmarks `image-compat validate-node` against a loopback docker-registry, cold (a fresh
# process each run), side by side with `oras discover` and `oras discover` + `oras pull` of the
# same artifact: registry round trips per run (the registry's access log) and wall time
# (hyperfine). Prints the figures; BENCHMARKS.md "## Registry" records them.
#
# Usage: scripts/bench-registry.sh [RUNS]      (default 50; IC_BIN=path skips the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
RUNS=${1:-50}
# shellcheck source=../integration/lib/stack.sh
source integration/lib/stack.sh

if ! command -v hyperfine >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "bench-registry: hyperfine is missing; run as root or: apt-get install hyperfine" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get -q install -y hyperfine >/dev/null ||
    { DEBIAN_FRONTEND=noninteractive apt-get -q update >/dev/null &&
      DEBIAN_FRONTEND=noninteractive apt-get -q install -y hyperfine >/dev/null; }
fi
if [ -z "${IC_BIN:-}" ]; then
  cargo build --release --quiet --bin image-compat
  IC_BIN=$ROOT/target/release/image-compat
fi

ic_stack_init
ORAS=$(ic_bin oras)
WORK=$(mktemp -d /tmp/image-compat-bench.XXXXXX)
# oras and image-compat read no credentials of this machine.
export HOME=$WORK/home DOCKER_CONFIG=$WORK/home/.docker
mkdir -p "$HOME"
trap 'ic_teardown; rm -rf "$WORK"' EXIT

PORT=$(ic_free_port)
ic_registry_start "$WORK/registry" "$PORT"
HOST=127.0.0.1:$PORT
IMAGE=$HOST/bench/app:v1
ic_build_image "$WORK/layout" bench/app:v1 >/dev/null
ic_push_image "$WORK/layout" "$IMAGE"
ARTIFACT=$("$IC_BIN" attach-spec --plain-http --image "$IMAGE" examples/vfio-cpu-nic.yaml)
LOG=$WORK/registry/registry.log

# requests LABEL CMD...: runs CMD once and prints how many requests the registry logged for it.
requests() {
  local label=$1 before after
  shift
  before=$(grep -c '^127\.0\.0\.1 - - \[' "$LOG" || true)
  "$@" >/dev/null 2>&1 || [ $? = 1 ] # validate-node exits 1 on a node that is not compatible
  sleep 0.2                          # the access log line is written after the response
  after=$(grep -c '^127\.0\.0\.1 - - \[' "$LOG" || true)
  printf '%-40s %s\n' "$label" "$((after - before))"
}

# validate-node must answer (0 or 1), never fail (2), or the timings would time an error.
set +e
"$IC_BIN" validate-node --plain-http --image "$IMAGE" >/dev/null
rc=$?
set -e
[ "$rc" -le 1 ] || { echo "bench-registry: validate-node failed (exit $rc)" >&2; exit 1; }

VN="$IC_BIN validate-node --plain-http --image $IMAGE"
VNF="$VN --features $ROOT/examples/features/intel-vm.json"
OD="$ORAS discover --plain-http $IMAGE"
OP="$ORAS pull --plain-http -o $WORK/pull $HOST/bench/app@$ARTIFACT"

echo "image $IMAGE, artifact $ARTIFACT"
echo
echo "registry requests per run (docker-registry access log)"
requests "image-compat validate-node" $VN
requests "image-compat validate-node --features" $VNF
requests "oras discover" $OD
requests "oras pull (the artifact)" $OP
echo
# hyperfine ignores exit 1 (-i): "not compatible" is an answer; exit 2 was ruled out above.
hyperfine -N -i --warmup 3 --runs "$RUNS" --style basic \
  --export-markdown "$WORK/times.md" \
  -n "image-compat validate-node (discovery + registry)" "$VN" \
  -n "image-compat validate-node --features FILE" "$VNF" \
  -n "oras discover" "$OD" \
  -n "oras pull (the artifact)" "$OP"
hyperfine -i --warmup 3 --runs "$RUNS" --style basic \
  --export-markdown "$WORK/times-sh.md" \
  -n "oras discover + oras pull" "$OD && $OP"
echo
cat "$WORK/times.md" "$WORK/times-sh.md"
