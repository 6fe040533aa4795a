#!/usr/bin/env bash
# Smoke test of the real stack: registry + containerd (2.1, 1.7) + CRI pod with two containers.
#
# Usage: integration/smoke.sh [VERSION...]     (default: 2.1 1.7; run as root)
# Environment: IMAGE_COMPAT_STACK (component prefix), IC_CRI (a prebuilt examples/cri),
# IC_KEEP=1 keeps the work directory, TMPDIR (where the work directory goes).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=integration/lib/stack.sh
source "$here/lib/stack.sh"

versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(2.1 1.7)
# Short, because containerd's sockets live under it (unix socket paths max out at 108 bytes).
work=$(mktemp -d "${TMPDIR:-/tmp}/ic-smoke.XXXXXX")
current=

on_exit() {
  local rc=$?
  if [ "$rc" != 0 ] && [ -n "$current" ] && [ -f "$current/containerd.log" ]; then
    echo "---- $current/containerd.log (last 200 lines) ----" >&2
    tail -n 200 "$current/containerd.log" >&2
    echo "---- end of log ----" >&2
  fi
  ic_teardown || rc=1
  if [ "${IC_KEEP:-}" = 1 ]; then
    echo "smoke: kept $work" >&2
  else
    rm -rf --one-file-system "$work"
  fi
  [ "$rc" = 0 ] && echo "smoke: PASS (${versions[*]})" >&2 || echo "smoke: FAIL" >&2
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

fail() {
  echo "smoke: FAIL: $*" >&2
  exit 1
}

now() { echo "${EPOCHREALTIME/./}"; }
# Milliseconds since the time given (a `now` value).
since() { echo $((($(now) - $1) / 1000)); }

step_t=0
step_name=
# step NAME: prints how long the previous step took, starts timing NAME ("" ends the series).
step() {
  [ "$step_t" = 0 ] || echo "smoke:   $step_name: $(since "$step_t") ms" >&2
  step_name=$1
  step_t=0
  [ -z "$step_name" ] || step_t=$(now)
}

# Processes of the instance at DIR: anything with DIR in its command line (daemon, shims,
# registry). Zombies are skipped: they are gone, only not yet reaped by init.
leftovers() {
  local f pid
  for f in $(grep -lzF -- "$1" /proc/[0-9]*/cmdline 2>/dev/null || true); do
    pid=${f#/proc/}
    pid=${pid%/cmdline}
    # The grep itself matched its own command line; it is gone by now.
    ic_gone "$pid" && continue
    echo "$pid $(tr '\0' ' ' 2>/dev/null <"$f")"
  done
}

# Length of the JSON array on stdin.
count() { "$IC_PYTHON" -c 'import json, sys; print(len(json.load(sys.stdin)))'; }

ic_stack_init
ic_cri_build

smoke_version() {
  local v=$1 vdir port ref digest pod pod2 c1 c2 out t0 pid pids
  vdir=$work/$v
  t0=$(now)
  echo "smoke: containerd $v" >&2
  step "registry start"
  port=$(ic_free_port)
  ic_registry_start "$vdir/registry" "$port"

  step "containerd start"
  current=$vdir/containerd
  ic_containerd_start "$current" "$v"
  out=$(ic_cri "$current" version)
  [[ $(ic_json runtime_version <<<"$out") == "$v".* ]] ||
    fail "expected containerd $v over CRI, got: $out"

  step "image build + push"
  # A variant per version: the pulled image must be this run's, not one left from before.
  digest=$(ic_build_image "$vdir/image" smoke/busybox:1 "smoke-$v-$port")
  ref=127.0.0.1:$port/smoke/busybox:1
  ic_push_image "$vdir/image" "$ref"

  step "CRI pull"
  ic_cri "$current" pull "$ref" >/dev/null
  out=$(ic_cri "$current" image-status "$ref")
  [[ $(ic_json repo_digests <<<"$out") == *"127.0.0.1:$port/smoke/busybox@$digest"* ]] ||
    fail "pulled image is not $digest: $out"

  step "run pod"
  pod=$(ic_cri "$current" run-pod smoke --namespace smoke | ic_json pod_id)
  [ -n "$pod" ] || fail "no pod id"

  step "container 1 create + start"
  c1=$(ic_cri "$current" create "$pod" sleeper "$ref" --cmd sleep 60 | ic_json container_id)
  ic_cri "$current" start "$c1" >/dev/null
  ic_cri_wait "$current" "$c1" CONTAINER_RUNNING 10

  step "container 2 create + start"
  c2=$(ic_cri "$current" create "$pod" second "$ref" --cmd sh -c 'sleep 60' | ic_json container_id)
  ic_cri "$current" start "$c2" >/dev/null
  ic_cri_wait "$current" "$c2" CONTAINER_RUNNING 10
  out=$(ic_cri "$current" exec "$c2" cat /etc/image-compat-variant)
  [ "$(ic_json stdout <<<"$out")" = "smoke-$v-$port" ] ||
    fail "container 2 does not run this run's image: $out"
  out=$(ic_cri "$current" status "$c2")
  [ "$(ic_json spec_annotations <<<"$out" | ic_json io.kubernetes.cri.image-name)" = "$ref" ] ||
    fail "OCI spec annotations lack the image name: $out"

  step "CRI stop, rm, pods"
  ic_cri "$current" stop "$c1" --grace 0 >/dev/null
  ic_cri_wait "$current" "$c1" CONTAINER_EXITED 10
  ic_cri "$current" rm "$c1" >/dev/null
  pod2=$(ic_cri "$current" run-pod smoke-2 --namespace smoke | ic_json pod_id)
  ic_cri "$current" stop-pod "$pod2" >/dev/null
  ic_cri "$current" rm-pod "$pod2" >/dev/null
  out=$(ic_cri "$current" list)
  [ "$(ic_json pods <<<"$out" | count)" = 1 ] || fail "expected pod smoke alone: $out"
  [ "$(ic_json containers <<<"$out" | count)" = 1 ] || fail "expected container 2 alone: $out"

  step "containerd restart"
  pid=$(ic_cri "$current" status "$c2" | ic_json pid)
  ic_containerd_restart "$current"
  out=$(ic_cri "$current" status "$c2")
  [ "$(ic_json state <<<"$out")" = CONTAINER_RUNNING ] ||
    fail "container 2 did not survive a containerd restart: $out"
  [ "$(ic_json pid <<<"$out")" = "$pid" ] || fail "container 2 changed pid over a restart: $out"

  step "crash, stop"
  # The stop must clean up after a daemon that died with a pod running: shims, containers, mounts.
  pids=$(ic_containerd_pids "$current")
  [[ $pids == *"$pid"* ]] || fail "ic_containerd_pids misses container 2 ($pid): $pids"
  kill -KILL "$(cat "$current/containerd.pid")"
  ic_containerd_stop "$current"
  ic_registry_stop "$vdir/registry"
  for pid in $pids; do
    ic_gone "$pid" || fail "pid $pid of containerd $v still running after stop"
  done
  out=$(leftovers "$vdir")
  [ -z "$out" ] || fail "processes left after stop: $out"
  [ -z "$(ic_mounts_under "$vdir")" ] || fail "mounts left under $vdir"
  step ""
  current=
  echo "smoke: containerd $v OK in $(since "$t0") ms" >&2
}

for v in "${versions[@]}"; do
  smoke_version "$v"
done
