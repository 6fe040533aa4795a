#!/usr/bin/env bash
# Builds image-compat's container image with no base image: the binary, the libraries it links
# (glibc, libgcc_s, libm, the loader), CA certificates, os-release, passwd/group for uid 0 and
# nsswitch.conf, as an OCI image layout and an OCI archive (`ctr images import`, `podman load`,
# `skopeo copy oci-archive:...`). Reproducible: the same binary and files give the same digest.
#
# Usage: scripts/image.sh [--binary PATH] [--out DIR] [--name NAME:TAG]
#          builds (cargo build --release --locked, unless --binary), then prints the digest;
#          DIR (default target/image) gets rootfs/, oci/ (the layout) and image-compat.tar
#        scripts/image.sh rootfs DIR BINARY
#          only the image's file tree, in DIR (the Containerfile's build stage runs this)
# The binary in the image is stripped of debug info (a debug build works for tests).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lib/release.sh
source "$here/scripts/lib/release.sh"
# Modes of what the image gets do not depend on the caller.
umask 022

# rootfs DIR BINARY: the image's files, from this (Debian) machine's libraries and CA bundle.
rootfs() {
  local dir=$1 bin=$2 lib version
  [ -x "$bin" ] || { echo "image.sh: $bin: no such executable" >&2; return 1; }
  rm -rf "$dir"
  install -d -m 0755 "$dir"/{etc/ssl/certs,usr/local/bin,dev,proc,sys}
  install -d -m 1777 "$dir/tmp"
  install -d -m 0700 "$dir/root"
  install -m 0755 "$bin" "$dir/usr/local/bin/image-compat"
  strip --strip-debug "$dir/usr/local/bin/image-compat"
  # The loader and every library the binary links, at the paths its dynamic section asks for;
  # symlinks resolved (the image has no merged /usr: /lib and /lib64 are plain directories).
  while read -r lib; do
    install -D -m 0755 "$(readlink -f "$lib")" "$dir$lib"
  done < <(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
  install -m 0644 /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/usr/sbin/nologin\n' >"$dir/etc/passwd"
  printf 'root:x:0:\n' >"$dir/etc/group"
  # glibc's default without this file asks DNS before /etc/hosts.
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$dir/etc/nsswitch.conf"
  version=$(ic_release_version "$here")
  cat >"$dir/etc/os-release" <<EOF
PRETTY_NAME="image-compat $version (no distribution: one binary and the Debian 12 libraries it links)"
NAME="image-compat"
ID=image-compat
VERSION_ID=$version
EOF
  chmod 0644 "$dir"/etc/{passwd,group,nsswitch.conf,os-release}
}

if [ "${1:-}" = rootfs ]; then
  [ $# = 3 ] || { echo "usage: $0 rootfs DIR BINARY" >&2; exit 2; }
  rootfs "$2" "$3"
  exit 0
fi

bin="" out=$here/target/image name=image-compat:$(ic_release_version "$here")
while [ $# -gt 0 ]; do
  case $1 in
    --binary) bin=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    -h | --help) ic_usage "$0"; exit 0 ;;
    *) echo "image.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
bin=$(ic_release_binary "$here" "$bin")
mkdir -p "$out"
rootfs "$out/rootfs" "$bin"
rm -rf "$out/oci"
digest=$(python3 "$here/integration/lib/oci-image.py" dir "$out/oci" "$name" --rootfs "$out/rootfs" \
  --entrypoint '["/usr/local/bin/image-compat"]' --cmd '["nri-plugin"]' \
  --label "org.opencontainers.image.title=image-compat" \
  --label "org.opencontainers.image.version=${name##*:}")
python3 "$here/integration/lib/oci-image.py" archive "$out/oci" "$name" >"$out/image-compat.tar"
echo "$digest"
