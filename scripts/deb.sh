#!/usr/bin/env bash
# Builds the .deb for single hosts with dpkg-deb (no debhelper, no source package): the binary,
# the systemd unit, the default config as a conffile, the OCI hook files and NRI drop-ins, the
# man pages and shell completions the binary generates (`image-compat generate`).
#
# Usage: scripts/deb.sh [--binary PATH] [--out DIR]
#          (default: cargo build --release --locked; DIR default target/deb); prints the .deb's path
#
# Layout, and why:
#   /usr/bin/image-compat                       the binary (stripped)
#   /lib/systemd/system/image-compat.service   deploy/host's unit, not enabled: the admin enables it
#                                               once NRI is on (README "Install")
#   /etc/image-compat/config.yaml               conffile: nri-config/image-compat.yaml in audit mode,
#                                               as scripts/install-host.sh installs it
#   /usr/share/image-compat/hooks.d/{crio,podman}/50-image-compat.json
#   /usr/share/image-compat/nri-config/*        hooks/ and nri-config/ with /usr/bin paths. Not in
#                                               the runtimes' own directories: installing a package
#                                               must not change which containers a runtime admits
#                                               or restart-time config; the admin links them in.
#   /usr/share/man/man1/image-compat*.1.gz      /usr/share/bash-completion, zsh, fish completions
#   /usr/share/doc/image-compat/                copyright (DEP-5), changelog, README
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lib/release.sh
source "$here/scripts/lib/release.sh"
umask 022

bin="" out=$here/target/deb
while [ $# -gt 0 ]; do
  case $1 in
    --binary) bin=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h | --help) ic_usage "$0"; exit 0 ;;
    *) echo "deb.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
bin=$(ic_release_binary "$here" "$bin")
version=$(ic_release_version "$here")
arch=$(dpkg --print-architecture)
pkg=image-compat
r=$out/root
rm -rf "$r" && mkdir -p "$r/DEBIAN"

install -D -m 0755 "$bin" "$r/usr/bin/image-compat"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$r/usr/bin/image-compat"

sed 's|/usr/local/bin/image-compat|/usr/bin/image-compat|g; s|scripts/install-host.sh installs it|the image-compat package installs it|' \
  "$here/deploy/host/image-compat.service" >"$out/unit"
install -D -m 0644 "$out/unit" "$r/lib/systemd/system/image-compat.service"

{
  echo "# Installed by the image-compat package in audit mode: set \`mode: enforce\` once the"
  echo "# warnings (journalctl -u image-compat) show nothing you want to keep running."
  sed 's/^mode:.*/mode: audit/' "$here/nri-config/image-compat.yaml"
} >"$out/config.yaml"
install -D -m 0644 "$out/config.yaml" "$r/etc/image-compat/config.yaml"
echo /etc/image-compat/config.yaml >"$r/DEBIAN/conffiles"

for rt in crio podman; do
  sed 's|/usr/local/bin/image-compat|/usr/bin/image-compat|g' "$here/hooks/$rt/50-image-compat.json" >"$out/hook"
  install -D -m 0644 "$out/hook" "$r/usr/share/image-compat/hooks.d/$rt/50-image-compat.json"
done
for f in "$here"/nri-config/*; do
  [ "${f##*/}" = image-compat.yaml ] && continue
  install -D -m 0644 "$f" "$r/usr/share/image-compat/nri-config/${f##*/}"
done

"$bin" generate man --out "$out/man"
for f in "$out"/man/*.1; do
  gzip -9n <"$f" >"$out/page.gz"
  install -D -m 0644 "$out/page.gz" "$r/usr/share/man/man1/${f##*/}.gz"
done
"$bin" generate completions --out "$out/completions"
install -D -m 0644 "$out/completions/image-compat.bash" "$r/usr/share/bash-completion/completions/image-compat"
install -D -m 0644 "$out/completions/_image-compat" "$r/usr/share/zsh/vendor-completions/_image-compat"
install -D -m 0644 "$out/completions/image-compat.fish" "$r/usr/share/fish/vendor_completions.d/image-compat.fish"

doc=$r/usr/share/doc/$pkg
install -d -m 0755 "$doc"
cat >"$doc/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: image-compat

Files: *
Copyright: 2026 The image-compat authors
License: Apache-2.0

License: Apache-2.0
 Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 except in compliance with the License. You may obtain a copy of the License at
 http://www.apache.org/licenses/LICENSE-2.0
 .
 On Debian systems, the complete text of the Apache License, Version 2.0 can be found in
 "/usr/share/common-licenses/Apache-2.0".
EOF
# Dated by the last commit (or SOURCE_DATE_EPOCH): the same tree gives the same package.
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$here" log -1 --format=%ct 2>/dev/null || echo 0)}
{
  echo "$pkg ($version) unstable; urgency=medium"
  echo
  echo "  * Upstream release $version."
  echo
  echo " -- image-compat developers <image-compat@example.org>  $(date -u -R -d "@$epoch")"
} | gzip -9n >"$doc/changelog.gz"
gzip -9n <"$here/README.md" >"$doc/README.md.gz"

# Each tag lintian (bookworm's, --pedantic) reports, with why it is not a fault.
install -D -m 0644 /dev/stdin "$r/usr/share/lintian/overrides/$pkg" <<'EOF'
# yaml-rust2 (pure Rust) is linked, not libyaml: lintian matches libyaml's message strings.
image-compat: embedded-library libyaml [usr/bin/image-compat]
# Rust code does not call glibc's string and memory functions that _FORTIFY_SOURCE replaces.
image-compat: hardening-no-fortify-functions [usr/bin/image-compat]
# The plugin runs under systemd or is started by the container runtime (NRI pre-launch);
# there is no sysvinit way to run it.
image-compat: package-supports-alternative-init-but-no-init.d-script [lib/systemd/system/image-compat.service]
# The phrase is in archspec's microarchitectures.json, embedded as upstream ships it.
image-compat: spelling-error-in-binary "permits to" "permits one to" [usr/bin/image-compat]
EOF

# Library dependencies as dpkg-shlibdeps computes them (it wants a debian/control to read).
mkdir -p "$out/shlibs/debian"
printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$pkg" "$pkg" >"$out/shlibs/debian/control"
depends=$(cd "$out/shlibs" && dpkg-shlibdeps -O "$r/usr/bin/image-compat" 2>/dev/null |
  sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "deb.sh: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

cat >"$r/DEBIAN/control" <<EOF
Package: $pkg
Version: $version
Architecture: $arch
Maintainer: image-compat developers <image-compat@example.org>
Installed-Size: $(du -sk --exclude=DEBIAN "$r" | cut -f1)
Depends: $depends
Suggests: containerd (>= 1.7) | cri-o (>= 1.26) | podman
Section: admin
Priority: optional
Description: refuses containers whose image this node cannot run
 image-compat enforces Node Feature Discovery image compatibility specs on
 a node: an NRI plugin for containerd and CRI-O, an OCI hook for CRI-O and
 podman, and a command line tool to validate, attach and evaluate specs.
 Image authors attach a spec (kernel modules, CPU flags, PCI devices, OS
 release, ...) to the image in its registry; a container whose image this
 node does not satisfy is refused, or flagged in audit mode.
EOF
(cd "$r" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
  xargs -0 md5sum >DEBIAN/md5sums)
find "$r" -exec touch -h -d "@$epoch" {} +
deb=$out/${pkg}_${version}_$arch.deb
SOURCE_DATE_EPOCH=$epoch dpkg-deb --root-owner-group -Zxz --build "$r" "$deb" >/dev/null
echo "$deb"
