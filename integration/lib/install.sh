#!/usr/bin/env bash
# Installs the real-stack components into a private prefix, never system-wide.
#
# Debian trixie/sid packages are downloaded with a private apt configuration and unpacked with
# `dpkg -x` (installing them would upgrade libc under the machine). Bookworm build tools the
# project needs come from the machine's own apt sources, unpacked privately too.
#
# The newer runtimes (containerd 2.3.4 and main, CRI-O 1.36.3) are not in Debian: they are copied
# from the checkout's sibling ../shared/runtimes (IC_SHARED_RUNTIMES) when it is there, with
# bookworm's conmon for CRI-O; without it those versions are skipped, and this says so.
#
# Usage: source integration/lib/install.sh; ic_install_stack [PREFIX]
#        or: bash integration/lib/install.sh [PREFIX]      (prints the prefix)
# Layout:  PREFIX/<name>/usr/bin/...  with <name> one of the entries of IC_PACKAGES or
#          IC_SHARED_RUNTIMES_DIRS.
set -euo pipefail

# name  package/suite   (the suite pins the version the tests were written against)
IC_PACKAGES=(
  "containerd-2.1 containerd/sid"
  "containerd-1.7 containerd/trixie"
  "runc runc/bookworm"
  "registry docker-registry/bookworm"
  "oras oras/sid"
  "busybox busybox-static/bookworm"
)

# name  directory under IC_SHARED_RUNTIMES  (its README says how each was built)
IC_SHARED_RUNTIMES_DIRS=(
  "containerd-2.3 containerd-2.3.4"
  "containerd-main containerd-main"
  "crio-1.36 cri-o-1.36.3"
)

ic_shared_runtimes() {
  local here
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  echo "${IC_SHARED_RUNTIMES:-$here/../shared/runtimes}"
}

ic_default_prefix() {
  local here
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  echo "${IMAGE_COMPAT_STACK:-$here/.work/stack}"
}

ic_apt_opts() {
  local a=$1
  echo "-o Dir::Etc::SourceList=$a/sources.list -o Dir::Etc::SourceParts=/dev/null" \
       "-o Dir::State::Lists=$a/lists -o Dir::Cache=$a/cache -o Debug::NoLocking=1" \
       "-o APT::Sandbox::User=root"
}

# Refreshes the private package lists (sid, trixie, bookworm) once per prefix per day.
ic_apt_update() {
  local a=$1 mirror
  mkdir -p "$a/lists/partial" "$a/cache/archives/partial"
  mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  printf 'deb %s sid main\ndeb %s trixie main\ndeb %s bookworm main\n' \
    "$mirror" "$mirror" "$mirror" >"$a/sources.list"
  if [ -z "$(find "$a/lists" -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -1)" ]; then
    # shellcheck disable=SC2046
    apt-get $(ic_apt_opts "$a") -q update >"$a/update.log" 2>&1 ||
      { cat "$a/update.log" >&2; echo "install.sh: apt update failed" >&2; return 1; }
  fi
}

# ic_install_one PREFIX NAME "PKG/SUITE...": download and unpack into PREFIX/NAME (idempotent).
ic_install_one() {
  local prefix=$1 name=$2 spec=$3 a="$1/apt" deb
  [ -f "$prefix/$name/.installed" ] && return 0
  ic_apt_update "$a"
  rm -rf "${prefix:?}/${name:?}" "$a/dl" && mkdir -p "$prefix/$name" "$a/dl"
  # shellcheck disable=SC2046,SC2086
  (cd "$a/dl" && apt-get $(ic_apt_opts "$a") -q download $spec >"$a/dl.log" 2>&1) ||
    { cat "$a/dl.log" >&2; echo "install.sh: cannot download $spec" >&2; return 1; }
  for deb in "$a"/dl/*.deb; do dpkg -x "$deb" "$prefix/$name"; done
  basename -a "$a"/dl/*.deb >"$prefix/$name/.installed"
}

# Build-time tools: none system-wide. The build takes protoc from tools/protoc (.cargo/config.toml);
# a real protoc serves only to record and check its descriptor sets (scripts/protoc-fds.sh,
# tests/protoc_fds.rs): bookworm's, unpacked privately, so that every machine records the same bytes.
# Exports IC_REAL_PROTOC (a wrapper that finds the private libraries) when it can be had.
ic_install_build_tools() {
  if [ -z "${IC_REAL_PROTOC:-}" ]; then
    IC_REAL_PROTOC=$(ic_install_protoc) ||
      { echo "install.sh: no private protoc; tests/protoc_fds.rs will skip its check" >&2; return 0; }
  fi
  export IC_REAL_PROTOC
}

# ic_install_protoc [PREFIX]: bookworm's protoc 3.21.12 in PREFIX/protoc; prints its wrapper.
ic_install_protoc() {
  local prefix=${1:-$(ic_default_prefix)} d
  mkdir -p "$prefix"
  ic_install_one "$prefix" protoc \
    "protobuf-compiler/bookworm libprotoc32/bookworm libprotobuf32/bookworm libprotobuf-dev/bookworm" >&2
  d=$prefix/protoc
  # protoc finds the well-known types in <its dir>/../include (libprotobuf-dev's).
  printf '#!/bin/sh\nLD_LIBRARY_PATH=%s/usr/lib/x86_64-linux-gnu exec %s/usr/bin/protoc "$@"\n' \
    "$d" "$d" >"$d/protoc"
  chmod +x "$d/protoc"
  echo "$d/protoc"
}

# ic_install_buildah: bookworm's buildah (the Containerfile test builds FROM scratch with it);
# system-wide, from the machine's own sources, as root only.
ic_install_buildah() {
  command -v buildah >/dev/null 2>&1 && return 0
  [ "$(id -u)" = 0 ] || return 1
  DEBIAN_FRONTEND=noninteractive apt-get -q update >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get -q install -y --no-install-recommends buildah >/dev/null
}

# ic_install_shared PREFIX NAME DIR: copies the prebuilt runtime DIR of IC_SHARED_RUNTIMES into
# PREFIX/NAME/usr/bin (idempotent; a changed source is copied again). Says so and returns 0
# when the directory is absent: those versions are then skipped by the tests.
ic_install_shared() {
  local prefix=$1 name=$2 dir src sums
  src=$(ic_shared_runtimes)/$3
  if [ ! -d "$src" ]; then
    if [ -f "$prefix/$name/.installed" ]; then
      echo "install.sh: $src not found: keeping the $3 installed before in $prefix/$name" >&2
    else
      echo "install.sh: $src not found: $3 is not installed; its tests are skipped" >&2
    fi
    return 0
  fi
  sums=$(cd "$src" && sha256sum -- *)
  [ "$(cat "$prefix/$name/.installed" 2>/dev/null)" = "$sums" ] && return 0
  rm -rf "${prefix:?}/${name:?}" && mkdir -p "$prefix/$name/usr/bin"
  cp -- "$src"/* "$prefix/$name/usr/bin/"
  chmod 755 "$prefix/$name/usr/bin"/*
  echo "$sums" >"$prefix/$name/.installed"
  # CRI-O runs containers under conmon, which Debian has (bookworm's runs here).
  [[ $name != crio-* ]] || ic_install_one "$prefix" conmon conmon/bookworm
}

ic_install_stack() {
  local prefix=${1:-$(ic_default_prefix)} entry
  mkdir -p "$prefix"
  for entry in "${IC_PACKAGES[@]}"; do
    # shellcheck disable=SC2086
    ic_install_one "$prefix" $entry
  done
  echo "install.sh: containerd 2.1 and 1.7 from Debian (sid, trixie); the newer runtimes from $(ic_shared_runtimes)" >&2
  for entry in "${IC_SHARED_RUNTIMES_DIRS[@]}"; do
    # shellcheck disable=SC2086
    ic_install_shared "$prefix" $entry
  done
  echo "$prefix"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  ic_install_stack "$@"
fi
