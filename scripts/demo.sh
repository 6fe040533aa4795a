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

say "Building image-compat and the CRI test client; starting a registry and containerd 2.1"
ic_stack_init
ic_image_compat_build
ic_cri_build
port=$(ic_free_port)
reg=127.0.0.1:$port
ic_registry_start "$work/registry" "$port"
ic_containerd_start "$work/containerd" 2.1
cd=$work/containerd
oras=$(ic_bin oras)

say "Two images, each with a compatibility spec attached in the registry"
# This node has no NVIDIA GPU (PCI vendor 10de); check rather than assume.
"$IC_IMAGE_COMPAT" features --sources pci -o json >"$work/pci.json"
if grep -q '"vendor": *"10de"' "$work/pci.json"; then
  echo "demo: this node has an NVIDIA device; the 'incompatible' image would run here" >&2
  exit 2
fi
cat >"$work/needs-gpu.yaml" <<'SPEC'
version: v1alpha1
compatibilities:
- description: "CUDA build: needs an NVIDIA GPU"
  tag: gpu
  rules:
  - name: "nvidia gpu"
    matchFeatures:
    - feature: pci.device
      matchExpressions:
        vendor: {op: In, value: ["10de"]}
SPEC
cat >"$work/runs-anywhere.yaml" <<'SPEC'
version: v1alpha1
compatibilities:
- description: "portable build: Linux 4.x or newer"
  rules:
  - name: "kernel"
    matchFeatures:
    - feature: kernel.version
      matchExpressions:
        major: {op: Ge, value: ["4"]}
SPEC
for name in gpu-app:1 portable-app:1; do
  ic_build_image "$work/images/$name" "demo/$name" "$name" >/dev/null
  ic_push_image "$work/images/$name" "$reg/demo/$name"
done
spec_type=application/vnd.nfd.image-compatibility.spec.v1alpha1+yaml
(cd "$work" && run "$oras" attach --plain-http --artifact-type application/vnd.nfd.image-compatibility.v1alpha1 \
  "$reg/demo/gpu-app:1" "needs-gpu.yaml:$spec_type" >/dev/null)
(cd "$work" && run "$oras" attach --plain-http --artifact-type application/vnd.nfd.image-compatibility.v1alpha1 \
  "$reg/demo/portable-app:1" "runs-anywhere.yaml:$spec_type" >/dev/null)
for name in gpu-app:1 portable-app:1; do ic_cri "$cd" pull "$reg/demo/$name" >/dev/null; done

# try NAME IMAGE: creates and starts a container in a fresh pod; prints what happened.
try() {
  local pod ctr out
  pod=$(ic_cri "$cd" run-pod "$1" --namespace demo | ic_json pod_id)
  printf '$ cri create %s  (pod %s)\n' "$2" "$1"
  if ! out=$(ic_cri "$cd" create "$pod" "$1" "$2" --cmd sleep 600 2>&1); then
    printf '  REFUSED: %s\n' "$out"
    return 0
  fi
  ctr=$(ic_json container_id <<<"$out")
  ic_cri "$cd" start "$ctr" >/dev/null
  ic_cri_wait "$cd" "$ctr" CONTAINER_RUNNING 10
  printf '  RUNNING (container %.12s)\n' "$ctr"
  ic_cri "$cd" status "$ctr" | ic_json spec_annotations | "$IC_PYTHON" -c '
import json, sys
for k, v in sorted(json.load(sys.stdin).items()):
    if k.startswith("image-compat.io/"):
        print("    %s=%s" % (k, v))'
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
