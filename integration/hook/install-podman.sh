#!/usr/bin/env bash
# Installs podman from the machine's own Debian bookworm sources, for the OCI hook tests
# (tests/stack/hook_runtimes.rs). podman 4.3 is bookworm's; it is a system package (it needs conmon,
# its config under /usr/share/containers, ...), so unlike the private real-stack prefix it goes
# system-wide, and only from bookworm. No-op when podman is already there.
#
# Usage: bash integration/hook/install-podman.sh     (as root; prints podman's version)
set -euo pipefail

if ! command -v podman >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-podman.sh: podman missing; run as root or: apt-get install podman" >&2
    exit 1
  fi
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  if [ "$codename" != bookworm ]; then
    echo "install-podman.sh: this is $codename, not Debian bookworm; install podman yourself" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # The machine's sources only (never the private trixie/sid lists of install.sh); pinned to
  # bookworm so nothing newer can come in.
  apt-get -q update >/dev/null 2>&1 || true
  apt-get -q install -y -t bookworm podman >/dev/null
fi
podman --version
