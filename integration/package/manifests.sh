#!/usr/bin/env bash
# Test of the Kubernetes manifests as a cluster gets them: `kubectl kustomize` renders the base
# and each overlay (Debian's kubectl, trixie's, unpacked privately), and every object validates
# against the Kubernetes API schemas of kubernetes-validate (PyPI, in a private venv), strictly
# (no unknown field). The Helm chart is not built: no helm binary is packaged in the registries
# this project installs from (Debian, PyPI, npm, crates.io), and a chart never rendered by helm
# is not delivered.
#
# Usage: integration/package/manifests.sh [K8S_VERSION]   (default 1.32, trixie's kubectl)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../lib/install.sh
source "$root/integration/lib/install.sh"
k8s=${1:-1.32}
prefix=$(ic_default_prefix)
mkdir -p "$prefix"
ic_install_one "$prefix" kubectl kubectl/trixie
kubectl=$prefix/kubectl/usr/bin/kubectl
venv=$prefix/kubernetes-validate
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'kubernetes-validate==1.37.0'
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$kubectl" version --client 2>/dev/null | head -n 1
for k in base overlays/audit overlays/enforce; do
  out=$work/${k//\//-}.yaml
  "$kubectl" kustomize "$root/deploy/$k" >"$out"
  kinds=$(awk '/^kind:/{print $2}' "$out" | sort | tr '\n' ' ')
  "$venv/bin/kubernetes-validate" --strict --quiet --kubernetes-version "$k8s" "$out" ||
    { echo "manifests: deploy/$k does not validate against Kubernetes $k8s" >&2; exit 1; }
  echo "manifests: deploy/$k renders and validates (Kubernetes $k8s, strict): $kinds"
done
