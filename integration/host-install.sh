#!/usr/bin/env bash
# The single-host deployment of the README, on the private containerd 2.1: the installer's
# pre-launched layout (containerd starts the plugin from its plugin dir) and the systemd unit's
# external mode (its ExecStart, run as systemd would: there is no systemd here). Each must
# refuse the incompatible sample image, run the compatible one, and count both in /metrics.
#
# Usage: bash integration/host-install.sh     (as root)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=lib/stack.sh
source "$root/integration/lib/stack.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/ic-host.XXXXXX")
external_pid=
finish() {
  local rc=$?
  [ -n "$external_pid" ] && ic_kill_wait "$external_pid" 10 >/dev/null
  if [ "$rc" != 0 ]; then
    for f in "$work"/external.log "$work"/containerd/containerd.log; do
      [ -f "$f" ] && { echo "---- $f ----" >&2; tail -n 40 "$f" >&2; }
    done
  fi
  ic_teardown || rc=1
  rm -rf --one-file-system "$work"
  [ "$rc" = 0 ] && echo "host-install: PASS" >&2 || echo "host-install: FAIL" >&2
  exit "$rc"
}
trap finish EXIT
fail() { echo "host-install: FAIL: $*" >&2; exit 1; }

ic_sample_stack "$work" 2.1
reg=$IC_SAMPLE_REG
cd=$IC_SAMPLE_CD

# The site config: the documented defaults, enforce, this registry over plain HTTP, metrics on.
config=$work/config.yaml
mport=$(ic_free_port)
sed -e "s|^  plainHttp: \[\]|  plainHttp: [\"$reg\"]|" \
  -e "s|^  listen: null|  listen: 127.0.0.1:$mport|" \
  -e "s|^  socket: /var/run/nri/nri.sock|  socket: $cd/nri.sock|" \
  -e "s|^  socket: /run/containerd/containerd.sock|  socket: $cd/containerd.sock|" \
  "$root/nri-config/image-compat.yaml" >"$config"
grep -q "$reg" "$config" && grep -q "$mport" "$config" || fail "config edit did not apply"

# expect POD: the incompatible image is refused with image-compat's reason, the compatible one
# runs annotated, and /metrics counts a deny and an allow.
expect() {
  local out
  out=$(ic_try_container "$cd" "$1-gpu" "$reg/demo/gpu-app:1")
  [[ $out == "refused: "*"image-compat: image $reg/demo/gpu-app:1 (sha256:"*") is not compatible with node "*": set \"gpu\" rule \"nvidia gpu\": pci.device: vendor In [10de] did not match"* ]] ||
    fail "$1: the GPU image was not refused as expected: $out"
  out=$(ic_try_container "$cd" "$1-web" "$reg/demo/portable-app:1")
  [[ $out == "running "* && $out == *"image-compat.io/compatible=true"* ]] ||
    fail "$1: the portable image did not run annotated: $out"
  out=$(curl -sf "http://127.0.0.1:$mport/metrics") || fail "$1: no /metrics on $mport"
  grep -q 'image_compat_decisions_total{verdict="incompatible",action="deny",case="incompatible",artifact_kind="nfd"} 1' <<<"$out" &&
    grep -q 'image_compat_decisions_total{verdict="compatible",action="allow",case="compatible",artifact_kind="nfd"} 1' <<<"$out" ||
    fail "$1: /metrics does not show the two decisions: $(grep decisions_total <<<"$out")"
  [ "$(curl -s "http://127.0.0.1:$mport/healthz")" = ok ] || fail "$1: /healthz not ok"
  echo "host-install: $1: refused the GPU image, ran the portable one, metrics agree" >&2
}

# 1. Pre-launched: installed into the private containerd's NRI dirs; containerd starts it.
bash "$root/scripts/install-host.sh" --layout prelaunched --binary "$IC_IMAGE_COMPAT" \
  --config "$config" --plugin-mode enforce --bindir "$work/bin" \
  --plugin-dir "$cd/nri/plugins" --plugin-config-dir "$cd/nri/conf.d" --index 10 --no-start >/dev/null
[ -x "$cd/nri/plugins/10-image-compat" ] && [ -f "$cd/nri/conf.d/10-image-compat.conf" ] ||
  fail "the installer did not write the pre-launched layout"
ic_containerd_restart "$cd"
for ((i = 0; i < 100; i++)); do curl -sf "http://127.0.0.1:$mport/healthz" >/dev/null && break; sleep 0.1; done
expect prelaunched
rm -f "$cd/nri/plugins/10-image-compat"
ic_containerd_restart "$cd"
# containerd stops the plugins it launched when it stops; the port must be free again.
for ((i = 0; i < 50; i++)); do ic_port_busy "$mport" || break; sleep 0.1; done
! ic_port_busy "$mport" || fail "the pre-launched plugin outlived containerd's restart"

# 2. systemd layout, external mode: the unit's ExecStart, run as systemd would.
mkdir -p "$work/host"
bash "$root/scripts/install-host.sh" --layout systemd --binary "$IC_IMAGE_COMPAT" \
  --config "$config" --plugin-mode enforce --root "$work/host" >/dev/null
unit=$work/host/etc/systemd/system/image-compat.service
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
env_line=$(sed -n 's/^Environment=//p' "$unit")
[[ $exec_start == "/usr/local/bin/image-compat nri-plugin --config /etc/image-compat/config.yaml" ]] ||
  fail "unexpected ExecStart: $exec_start"
# --root installed under $work/host: run the same command line on those files.
read -r -a argv <<<"${exec_start//\/usr\/local\/bin/$work/host/usr/local/bin}"
argv=("${argv[@]//\/etc\/image-compat/$work/host/etc/image-compat}")
env "$env_line" "${argv[@]}" >"$work/external.log" 2>&1 &
external_pid=$!
for ((i = 0; i < 100; i++)); do grep -q configured "$work/external.log" && break; sleep 0.1; done
grep -q configured "$work/external.log" || fail "the unit's command did not get configured"
expect external
