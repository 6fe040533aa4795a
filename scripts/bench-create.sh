#!/usr/bin/env bash
# Benchmark: CreateContainer latency on the real containerd (2.1 by default), without and with the
# image-compat NRI plugin (external, release build, the image's artifact already cached), as
# CRI clients see it. Prints median/p90/p99 of both and the difference, against the target:
# at most 5% or 2 ms added (whichever is larger). Figures go in BENCHMARKS.md.
#
# Usage: bash scripts/bench-create.sh [SAMPLES_PER_ROUND [ROUNDS]]   (as root; default 100 x 4)
# The two arms alternate in ROUNDS blocks of SAMPLES_PER_ROUND, so that a change in the
# machine's load during the run falls on both. Each sample: CreateContainer of a compatible
# image in one pod (timed by the CRI client around the call alone), then RemoveContainer.
# Environment: IC_BENCH_VERSION (containerd 2.1, 1.7, 2.3 or main; default 2.1), IC_NRI_VALIDATOR=1
# (2.3, main: containerd's default validator requires the plugin, as nri-config/ sets it; the
# pod then carries the toleration annotation, so that the arm without the plugin can create
# containers at all, and with the plugin ValidateContainerAdjustment is called too),
# IC_IMAGE_COMPAT (a prebuilt plugin binary; default: cargo build --release),
# IMAGE_COMPAT_STACK, IC_CRI, IC_KEEP=1, TMPDIR, as for integration/e2e.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=integration/lib/stack.sh
source "$root/integration/lib/stack.sh"
# shellcheck source=integration/e2e/setup.sh
source "$root/integration/e2e/setup.sh"

per_round=${1:-100}
rounds=${2:-4}
version=${IC_BENCH_VERSION:-2.1}
[ "$(id -u)" = 0 ] || { echo "bench-create: run as root (containerd and runc need it)" >&2; exit 2; }

ic_stack_init
if [ -z "${IC_IMAGE_COMPAT:-}" ]; then
  # The plugin as it is deployed: optimised.
  (cd "$root" && cargo build --release --quiet --bin image-compat)
  IC_IMAGE_COMPAT=$(cd "$root" && cargo metadata --format-version 1 --no-deps |
    "$IC_PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release/image-compat
fi
ic_cri_build

ic_work_dir bench-create
work=$IC_WORK

# The e2e suite's images and artifacts; the compatible one is measured.
e2e_setup "$work" >/dev/null
# shellcheck source=/dev/null
source "$work/images.env"
ic_registry_restart "$work/golden"
reg=$(cat "$work/golden/registry.addr")
# shellcheck disable=SC2154 # from images.env
image=$reg/$IMG_compat
cd_dir=$work/containerd
plugin=$work/plugin
mkdir -p "$plugin"
ic_containerd_start "$cd_dir" "$version"
ic_cri "$cd_dir" pull "$image" >/dev/null
tolerate=()
if [ "${IC_NRI_VALIDATOR:-}" = 1 ]; then tolerate=(--annotation "$IC_TOLERATION=true"); fi
pod=$(ic_cri "$cd_dir" run-pod bench --namespace bench ${tolerate[@]+"${tolerate[@]}"} | ic_json pod_id)

n=0
# sample FILE COUNT: COUNT creations, each appended to FILE as "ROUND LATENCY_US".
sample() {
  local file=$1 count=$2 i out id us
  for ((i = 0; i < count; i++)); do
    n=$((n + 1))
    out=$(ic_cri "$cd_dir" create "$pod" "c$n" "$image" --cmd sleep 1)
    id=$(ic_json container_id <<<"$out")
    us=$(ic_json create_us <<<"$out")
    echo "$r $us" >>"$file"
    ic_cri "$cd_dir" rm "$id" >/dev/null
  done
}

export IMAGE_COMPAT_LOG=info
for ((r = 1; r <= rounds; r++)); do
  echo "bench-create: round $r/$rounds: $per_round without the plugin, $per_round with it" >&2
  sample "$work/without" "$per_round"
  ic_plugin_start "$plugin" "$cd_dir" --plain-http "$reg" --log-json
  # The first container of the image fetches its artifact; the measured ones find it cached.
  sample "$work/warm-up" 1
  sample "$work/with" "$per_round"
  ic_plugin_stop "$plugin"
  # containerd drops a plugin that exited only when a request to it fails; where the plugin
  # validates (2.3+) that first creation fails ("validator plugin ... failed: ttrpc: closed").
  # One creation, not measured, takes it.
  if out=$(ic_cri "$cd_dir" create "$pod" "drain$r" "$image" --cmd sleep 1 2>&1); then
    ic_cri "$cd_dir" rm "$(ic_json container_id <<<"$out")" >/dev/null
  fi
done

cat "$plugin"/plugin.log* >"$work/plugin-all.log"
"$IC_PYTHON" - "$work/without" "$work/with" "$work/plugin-all.log" "$per_round" "$rounds" \
  "$version" "${IC_NRI_VALIDATOR:-0}" <<'EOF'
import json, sys

def load(path):
    rows = [tuple(map(int, l.split())) for l in open(path) if l.strip()]
    return sorted(us for _, us in rows), rows

def pct(xs, p):
    # Nearest rank.
    return xs[min(len(xs) - 1, max(0, -(-len(xs) * p // 100) - 1))]

without, with_, log, per_round, rounds, version, validator = sys.argv[1:8]
(a, ra), (b, rb) = load(without), load(with_)
ms = lambda us: "%.2f ms" % (us / 1000)
print("CreateContainer latency, containerd %s%s, CRI client side (%s rounds x %s samples per arm)"
      % (version, ", default validator on (tolerated pod)" if validator == "1" else "", rounds, per_round))
print("%-22s %10s %10s %10s %10s" % ("", "median", "p90", "p99", "mean"))
for name, xs in (("without plugin", a), ("with plugin (cached)", b)):
    print("%-22s %10s %10s %10s %10s" % (name, ms(pct(xs, 50)), ms(pct(xs, 90)), ms(pct(xs, 99)),
                                         ms(sum(xs) / len(xs))))
diff = {p: pct(b, p) - pct(a, p) for p in (50, 90, 99)}
print("%-22s %10s %10s %10s %10s" % ("added", ms(diff[50]), ms(diff[90]), ms(diff[99]),
                                     ms(sum(b) / len(b) - sum(a) / len(a))))
print("%-22s %9.1f%% %9.1f%% %9.1f%%" % ("added, % of without", *(100 * diff[p] / pct(a, p) for p in (50, 90, 99))))
# Each round's arms ran minutes apart at most: the median of the rounds' differences is the
# least sensitive to the machine's load drifting during the run.
rounds_diff = sorted(
    pct(sorted(us for r, us in rb if r == n), 50) - pct(sorted(us for r, us in ra if r == n), 50)
    for n in sorted({r for r, _ in ra}))
print("added, median of the %d rounds' median differences: %s (rounds: %s .. %s)"
      % (len(rounds_diff), ms(pct(rounds_diff, 50)), ms(rounds_diff[0]), ms(rounds_diff[-1])))
limit = max(0.05 * pct(a, 50), 2000)
verdict = "met" if diff[50] <= limit else "MISSED"
print("target (median): at most %s added (5%% of %s, or 2 ms): %s" % (ms(limit), ms(pct(a, 50)), verdict))
d = []
for line in open(log, errors="replace"):
    try:
        f = json.loads(line).get("fields", {})
    except ValueError:
        continue
    if f.get("message") == "decision" and f.get("answer") == "cached":
        d.append(f["latency_us"])
d.sort()
if d:
    print("plugin decision (cached, %d): median %d us, p99 %d us, max %d us"
          % (len(d), pct(d, 50), pct(d, 99), d[-1]))
EOF
