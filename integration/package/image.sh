#!/usr/bin/env bash
# Test of the container image (scripts/image.sh): two builds from the same binary give the same
# digest, and the Containerfile (its prebuilt path, with buildah) gives an image with the same
# files, modes, entrypoint and user. The image running as the DaemonSet's pod is the e2e
# scenario as-pod (integration/e2e/scenarios/14-as-pod.sh).
#
# Usage: integration/package/image.sh [BINARY]   (default: target/debug/image-compat, built if missing)
# Needs python3; the Containerfile part needs buildah (bookworm's; installed when root).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../lib/install.sh
source "$root/integration/lib/install.sh"
bin=${1:-$root/target/debug/image-compat}
[ -x "$bin" ] || (cd "$root" && cargo build --locked --bin image-compat)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
oci=$root/integration/lib/oci-image.py

a=$(bash "$root/scripts/image.sh" --binary "$bin" --out "$work/a")
b=$(bash "$root/scripts/image.sh" --binary "$bin" --out "$work/b")
[ "$a" = "$b" ] || { echo "image: two builds differ: $a $b" >&2; exit 1; }
cmp "$work/a/image-compat.tar" "$work/b/image-compat.tar"
echo "image: reproducible, $a ($(du -k "$work/a/image-compat.tar" | cut -f1) KiB archive)"
python3 "$oci" files "$work/a/oci" >"$work/a.files"
for f in usr/local/bin/image-compat etc/passwd etc/ssl/certs/ca-certificates.crt etc/os-release; do
  grep -q "^$f f " "$work/a.files" || { echo "image: no $f" >&2; exit 1; }
done

if ! ic_install_buildah; then
  echo "image: SKIPPED the Containerfile comparison: no buildah"
  exit 0
fi
# The Containerfile's prebuilt path, from a context holding what .dockerignore lets through.
mkdir -p "$work/ctx/target/image"
cp "$root/Containerfile" "$root/.dockerignore" "$work/ctx/"
cp -a "$work/a/rootfs" "$work/ctx/target/image/rootfs"
bh=(buildah --root "$work/buildah/root" --runroot "$work/buildah/run" --storage-driver vfs)
"${bh[@]}" bud --quiet --isolation chroot --timestamp 0 -f "$work/ctx/Containerfile" \
  --build-arg ROOTFS_FROM=prebuilt -t localhost/image-compat:test "$work/ctx" >/dev/null
"${bh[@]}" push --quiet localhost/image-compat:test "oci:$work/containerfile" >/dev/null
python3 "$oci" files "$work/containerfile" >"$work/containerfile.files"
if ! diff -u "$work/a.files" "$work/containerfile.files"; then
  echo "image: the Containerfile's image differs from scripts/image.sh's (diff above)" >&2
  exit 1
fi
echo "image: the Containerfile's image has the same $(grep -vc '^#' "$work/a.files") files, entrypoint and user"
