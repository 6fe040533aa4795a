#!/usr/bin/env bash
# The main job, shown on a private stack: a registry and containerd 2.1 with NRI, two images
# whose compatibility specs are attached in the registry, and the image-compat NRI plugin.
# In enforce mode the pod whose image this node cannot run is refused with the reason and the
# other one runs; in audit mode both run and the bad one carries image-compat's annotations.
#
# Usage: bash scripts/demo.sh            (as root; installs the stack privately on first run)
# Environment: IC_KEEP=1 keeps the work directory; TMPDIR places it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../integration/lib/stack.sh
source "$root/integration/lib/stack.sh"

[ "$(id -u)" = 0 ] || { echo "demo: run as root (containerd and runc need it)" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/ic-demo.XXXXXX")
finish() {
  local rc=$?
  if [ "$rc" != 0 ] && [ -f "$work/plugin/plugin.log" ]; then
    echo "---- plugin log ----" >&2; tail -n 50 "$work/plugin/plugin.log" >&2
    echo "---- containerd log ----" >&2; tail -n 50 "$work/containerd/containerd.log" >&2
  fi
  ic_teardown || rc=1
  [ "${IC_KEEP:-}" = 1 ] && echo "demo: kept $work" >&2 || rm -rf --one-file-system "$work"
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

say "Building image-compat; a registry and containerd 2.1; two images with specs attached"
ic_sample_stack "$work" 2.1
reg=$IC_SAMPLE_REG
cd=$IC_SAMPLE_CD
echo "demo/gpu-app:1 needs an NVIDIA GPU (attached with image-compat attach-spec):"
sed 's/^/  /' "$work/samples/needs-gpu.yaml"
echo "demo/portable-app:1 runs on Linux 4+ (attached with oras attach):"
sed 's/^/  /' "$work/samples/runs-anywhere.yaml"

# try POD IMAGE: shows the command and what happened.
try() {
  printf '$ cri create %s  (pod %s)\n' "$2" "$1"
  ic_try_container "$cd" "$1" "$2" | sed 's/^/  /'
}

say "Enforce mode: the plugin refuses what this node cannot run"
ic_plugin_start "$work/plugin" "$cd" --mode enforce --plain-http "$reg"
try gpu-job "$reg/demo/gpu-app:1"
try web "$reg/demo/portable-app:1"
ic_plugin_stop "$work/plugin"

say "Audit mode: both run; the incompatible one is annotated and logged"
mport=$(ic_free_port)
ic_plugin_start "$work/plugin" "$cd" --mode audit --plain-http "$reg" --metrics-listen "127.0.0.1:$mport"
try gpu-job-audit "$reg/demo/gpu-app:1"
try web-audit "$reg/demo/portable-app:1"
echo
echo "plugin log (decisions):"
grep decision "$work/plugin/plugin.log" | sed 's/^/  /'
echo
run curl -s "http://127.0.0.1:$mport/healthz"
echo
printf '$ curl -s http://127.0.0.1:%s/metrics | grep decisions_total\n' "$mport"
curl -s "http://127.0.0.1:$mport/metrics" | grep '^image_compat_decisions_total' | sed 's/^/  /'
