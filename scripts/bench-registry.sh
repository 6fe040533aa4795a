#!/usr/bin/env bash
# Benchmarks `image-compat validate-node` against a loopback docker-registry, cold (a fresh
# process each run), side by side with `oras discover` and `oras discover` + `oras pull` of the
# same artifact: registry round trips per run (the registry's access log), wall time (runs
# interleaved) and CPU time (hyperfine). Prints the figures; BENCHMARKS.md "## Registry" records
# them.
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
# The command strings are split into words on purpose (no path here has a space).
# shellcheck disable=SC2086
requests "image-compat validate-node" $VN
# shellcheck disable=SC2086
requests "image-compat validate-node --features" $VNF
# shellcheck disable=SC2086
requests "oras discover" $OD
# shellcheck disable=SC2086
requests "oras pull (the artifact)" $OP
echo
# Wall time, interleaved: each round runs every command once, in turn, so that the load of a
# busy machine falls on all of them alike (hyperfine would time one command's runs in a block).
# validate-node exiting 1 ("not compatible") is an answer; exit 2 was ruled out above.
NAMES=("validate-node (discovery + registry)" "validate-node --features FILE" "oras discover"
  "oras pull" "oras discover + oras pull")
CMDS=("$VN" "$VNF" "$OD" "$OP" "$OD && $OP")
for ((w = 0; w < 3; w++)); do for c in "${CMDS[@]}"; do eval "$c" >/dev/null 2>&1 || true; done; done
: >"$WORK/times"
for ((r = 0; r < RUNS; r++)); do
  for i in "${!CMDS[@]}"; do
    t0=$EPOCHREALTIME
    eval "${CMDS[i]}" >/dev/null 2>&1 || true
    t1=$EPOCHREALTIME
    echo "$i ${t0/./} ${t1/./}" >>"$WORK/times"
  done
done
echo "wall time per run, $RUNS interleaved rounds (ms)"
printf '%-40s %8s %8s %8s %8s\n' command median mean p10 p90
for i in "${!CMDS[@]}"; do
  awk -v i="$i" '$1 == i { print ($3 - $2) / 1000 }' "$WORK/times" | sort -n |
    awk -v name="${NAMES[i]}" '{ v[NR] = $1; s += $1 }
      END { printf "%-40s %8.1f %8.1f %8.1f %8.1f\n", name, v[int((NR + 1) / 2)], s / NR,
            v[int(NR * 0.1) + 1], v[int(NR * 0.9)] }'
done
echo
# CPU time (user + system) per run, from hyperfine.
hyperfine -N -i --warmup 3 --runs "$RUNS" --style none --export-json "$WORK/cpu.json" \
  -n "validate-node (discovery + registry)" "$VN" \
  -n "validate-node --features FILE" "$VNF" \
  -n "oras discover" "$OD" \
  -n "oras pull" "$OP" >/dev/null 2>&1
echo "CPU time per run (ms, mean user + system)"
"$IC_PYTHON" - "$WORK/cpu.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"{r['command']:<40} {1000 * r['user']:8.1f} {1000 * r['system']:8.1f}")
PY
