#!/usr/bin/env bash
# Installs the image-compat NRI plugin on one host: as a systemd service (external mode) or as a plugin the runtime pre-launches.
#
# Usage: scripts/install-host.sh [options]
#   --layout systemd|prelaunched  systemd (default): /usr/local/bin/image-compat,
#                                 /etc/image-compat/config.yaml and
#                                 /etc/systemd/system/image-compat.service; the plugin connects
#                                 to the runtime's NRI socket.
#                                 prelaunched: the runtime starts the plugin itself from
#                                 PLUGIN_DIR/NN-image-compat and hands it
#                                 PLUGIN_CONFIG_DIR/NN-image-compat.conf as its config.
#   --binary PATH                 the image-compat binary to install (default: target/release/
#                                 image-compat of this repository, else image-compat on PATH)
#   --config FILE                 the plugin config to install (default: the documented
#                                 defaults, nri-config/image-compat.yaml)
#   --plugin-mode audit|enforce   the config's mode (default audit: look at the warnings
#                                 before refusing anything); `keep` leaves the file's own mode
#   --root DIR                    install under DIR instead of / (packaging, tests)
#   --bindir DIR                  where the binary goes (default /usr/local/bin)
#   --plugin-dir DIR              prelaunched: the runtime's plugin_path / nri_plugin_dir
#                                 (default /opt/nri/plugins); a private containerd's own works
#   --plugin-config-dir DIR       prelaunched: plugin_config_path / nri_plugin_config_dir
#                                 (default /etc/nri/conf.d)
#   --index NN                    prelaunched: the plugin's two-digit order (default 10)
#   --force                       replace an existing config (default: keep the admin's)
#   --no-start                    do not run systemctl (implied by --root other than /)
#   -h, --help
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
name=image-compat
layout=systemd
binary=
config=
plugin_mode=audit
root=/
bindir=/usr/local/bin
plugin_dir=/opt/nri/plugins
plugin_config_dir=/etc/nri/conf.d
index=10
force=false
start=true

usage() { sed -n '/^# Usage:/,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }
die() { echo "install-host.sh: $*" >&2; exit 2; }
need_value() { if [ "$#" -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value (see --help)"; fi; }

while [ "$#" -gt 0 ]; do
  case "$1" in
    --layout) need_value "$@"; layout=$2; shift 2 ;;
    --binary) need_value "$@"; binary=$2; shift 2 ;;
    --config) need_value "$@"; config=$2; shift 2 ;;
    --plugin-mode) need_value "$@"; plugin_mode=$2; shift 2 ;;
    --root) need_value "$@"; root=$2; shift 2 ;;
    --bindir) need_value "$@"; bindir=$2; shift 2 ;;
    --plugin-dir) need_value "$@"; plugin_dir=$2; shift 2 ;;
    --plugin-config-dir) need_value "$@"; plugin_config_dir=$2; shift 2 ;;
    --index) need_value "$@"; index=$2; shift 2 ;;
    --force) force=true; shift ;;
    --no-start) start=false; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

case "$layout" in systemd|prelaunched) ;; *) die "--layout: systemd or prelaunched, not '$layout'" ;; esac
case "$plugin_mode" in audit|enforce|keep) ;; *) die "--plugin-mode: audit, enforce or keep, not '$plugin_mode'" ;; esac
# The runtime orders plugins by this prefix and rejects names that are not NN-name.
[[ "$index" =~ ^[0-9][0-9]$ ]] || die "--index: two digits, not '$index'"
for d in "$bindir" "$plugin_dir" "$plugin_config_dir"; do
  [[ "$d" == /* ]] || die "$d: an absolute path is expected"
done
root=${root%/}
[ -n "$root" ] || root=
if [ -n "$root" ]; then
  [ -d "$root" ] || die "--root $root: no such directory"
  start=false
fi

if [ -z "$binary" ]; then
  if [ -x "$here/target/release/image-compat" ]; then
    binary=$here/target/release/image-compat
  else
    binary=$(command -v image-compat || true)
  fi
fi
if [ -z "$binary" ] || [ ! -x "$binary" ]; then
  die "no image-compat binary: build it (cargo build --release --locked) or pass --binary PATH"
fi
if [ -z "$config" ]; then
  config=$here/nri-config/image-compat.yaml
fi
[ -f "$config" ] || die "--config $config: no such file"

# install_file SRC DEST MODE: copies through a temporary file, so a running plugin or a
# half-written file is never seen.
install_file() {
  local src=$1 dest=$2 mode=$3 tmp
  mkdir -p "$(dirname "$dest")"
  tmp=$(mktemp "$dest.XXXXXX")
  cat "$src" >"$tmp"
  chmod "$mode" "$tmp"
  mv -f "$tmp" "$dest"
  echo "installed $dest"
}

# install_config DEST: the config with the chosen mode; an existing file is kept unless --force.
install_config() {
  local dest=$1 tmp
  if [ -e "$dest" ] && [ "$force" != true ]; then
    echo "kept $dest (exists; --force replaces it)"
    return 0
  fi
  tmp=$(mktemp)
  if [ "$plugin_mode" = keep ]; then
    cat "$config" >"$tmp"
  else
    echo "# mode set by scripts/install-host.sh --plugin-mode $plugin_mode" >"$tmp"
    if grep -q '^mode:' "$config"; then
      sed "s/^mode:.*/mode: $plugin_mode/" "$config" >>"$tmp"
    else
      { echo "mode: $plugin_mode"; cat "$config"; } >>"$tmp"
    fi
  fi
  install_file "$tmp" "$dest" 0644
  rm -f "$tmp"
}

install_file "$binary" "$root$bindir/$name" 0755

case "$layout" in
  systemd)
    install_config "$root/etc/image-compat/config.yaml"
    unit=$(mktemp)
    sed "s|/usr/local/bin/image-compat|$bindir/$name|g" "$here/deploy/host/image-compat.service" >"$unit"
    install_file "$unit" "$root/etc/systemd/system/image-compat.service" 0644
    rm -f "$unit"
    if [ "$start" = true ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
      systemctl daemon-reload
      systemctl enable --now image-compat.service
      echo "started image-compat.service: journalctl -u image-compat -f"
    else
      echo "next: systemctl daemon-reload && systemctl enable --now image-compat.service"
    fi
    ;;
  prelaunched)
    # A wrapper rather than the binary itself: the runtime starts NN-name with no argument, and
    # the subcommand must be given. exec keeps the socket fd the runtime passes (NRI_PLUGIN_SOCKET).
    wrapper=$(mktemp)
    printf '#!/bin/sh\n# image-compat NRI plugin, started by the container runtime (scripts/install-host.sh).\nexec %s nri-plugin "$@"\n' \
      "$bindir/$name" >"$wrapper"
    install_file "$wrapper" "$root$plugin_dir/$index-$name" 0755
    rm -f "$wrapper"
    install_config "$root$plugin_config_dir/$index-$name.conf"
    echo "next: restart the runtime (systemctl restart containerd, or crio): it starts"
    echo "      pre-launched plugins when it starts"
    ;;
esac
