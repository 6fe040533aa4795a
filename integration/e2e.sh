#!/usr/bin/env bash
# End-to-end suite of the image-compat NRI plugin on the real stack: containerd 2.1 and 1.7
# (Debian), 2.3.4 and main (../shared/runtimes), the plugin external and pre-launched, real runc,
# docker-registry and oras. Proves the plugin's promise: nothing incompatible starts (enforce),
# nothing compatible is held back, and the node keeps working when things fail (registry hung or
# gone, plugin killed, containerd restarted). Where the runtime has NRI's default validator (2.3,
# main) it runs with it on, as nri-config/ sets it: enforcement then fails closed.
#
# CRI-O 1.36.3 (crio, ../shared/runtimes) runs the same, and in a third mode, hook: the OCI hook
# through CRI-O's hooks.d, no NRI plugin (scenario hook; the plugin's scenarios are skipped there).
#
# Usage: integration/e2e.sh [--versions 2.1,1.7,2.3,main,crio] [--modes external,prelaunched,hook]
#                           [--scenarios startup,enforce,...] [--jobs N]      (as root)
# A version whose runtime is not installed (no ../shared/runtimes) is skipped, and said so.
# Environment: IMAGE_COMPAT_STACK (component prefix), IC_IMAGE_COMPAT and IC_CRI (prebuilt
# binaries; built with cargo otherwise), IC_KEEP=1 keeps the work directory, TMPDIR (where it
# goes), E2E_SLOW_MS (longest accepted CreateContainer when the registry's deadline is involved,
# default 1600).
#
# Layout: setup (e2e/setup.sh) builds the images and artifacts once; each combo (version x mode)
# gets a copy of that registry storage on its own port, its own containerd and plugin, and runs
# the scenarios (e2e/scenarios/NN-name.sh, in order) each in a subshell: a failed check ends
# that scenario, prints the logs' tails, and the next scenario still runs. --jobs runs combos in
# parallel. Exit status: 0 when every scenario passed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=integration/lib/stack.sh
source "$here/lib/stack.sh"
# shellcheck source=integration/e2e/lib.sh
source "$here/e2e/lib.sh"
# shellcheck source=integration/e2e/setup.sh
source "$here/e2e/setup.sh"
for f in "$here"/e2e/scenarios/[0-9]*.sh; do
  # shellcheck source=/dev/null
  source "$f"
done

versions=(2.1 1.7 2.3 main crio)
modes=(external prelaunched hook)
scenarios=()
for f in "$here"/e2e/scenarios/[0-9]*.sh; do
  f=${f##*/[0-9][0-9]-}
  scenarios+=("${f%.sh}")
done
jobs=1
while [ $# -gt 0 ]; do
  case $1 in
    --versions) IFS=, read -ra versions <<<"$2"; shift 2 ;;
    --modes) IFS=, read -ra modes <<<"$2"; shift 2 ;;
    --scenarios) IFS=, read -ra scenarios <<<"$2"; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "e2e: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for s in "${scenarios[@]}"; do
  declare -F "scenario_${s//-/_}" >/dev/null || { echo "e2e: no scenario $s" >&2; exit 2; }
done

[ "$(id -u)" = 0 ] || { echo "e2e: run as root (containerd and runc need it)" >&2; exit 2; }
ic_work_dir e2e
work=$IC_WORK
E2E_WORK_DIR=$work
suite_t0=$(now_us)

# run_scenario NAME: one scenario in a subshell; records its result.
run_scenario() {
  local name=$1 t0 rc ms
  t0=$(now_us)
  echo "  -- $name"
  # Not `( ... ) || ...`: errexit is off inside a subshell on the left of || or &&.
  set +e
  (
    set -e
    registry_ensure_up
    # The hook mode has its own scenario; the others are the NRI plugin's.
    if [ "$E2E_MODE" = hook ] && [ "$name" != hook ]; then skip "the NRI plugin's scenario"; fi
    "scenario_${name//-/_}"
  )
  rc=$?
  set -e
  ms=$((($(now_us) - t0) / 1000))
  if [ "$rc" = 0 ]; then
    echo "  ok $name ($ms ms)"
    echo "$E2E_V $E2E_MODE $name PASS $ms" >>"$work/results"
  elif [ "$rc" = "$E2E_SKIP" ]; then
    echo "  skipped $name"
    echo "$E2E_V $E2E_MODE $name SKIP $ms" >>"$work/results"
  else
    echo "  FAILED $name ($ms ms)"
    echo "$E2E_V $E2E_MODE $name FAIL $ms" >>"$work/results"
    dump_logs
  fi
}

# A scenario may have failed with the registry frozen or stopped; the next one needs it up.
registry_ensure_up() {
  if ic_pid_of "$RD/registry.pid" "$RD/config.yml" >/dev/null; then
    ic_registry_thaw "$RD"
  else
    ic_registry_restart "$RD"
  fi
}

# combo VERSION MODE: everything of one combo, in its own directory; tears down what it started.
combo() {
  local v=$1 mode=$2 port s
  e2e_combo_init "$v" "$mode" "$work/$v-$mode"
  trap 'ic_plugin_stop "$PD" || true; ic_runtime_stop "$CD" || true; ic_registry_stop "$RD" || true' EXIT
  echo "== runtime $v, plugin $mode"
  mkdir -p "$RD"
  cp -a "$work/golden/data" "$RD/data"
  port=$(ic_free_port)
  REG=127.0.0.1:$port
  ic_registry_start "$RD" "$port"
  if [ "$mode" = hook ]; then
    # In CRI-O's hooks.d before it starts (it reads the directory at start and on changes).
    hook_install "$(hook_config enforce)"
  elif [ "$mode" = prelaunched ]; then
    # In place before containerd starts, which launches it.
    ic_plugin_prelaunch "$PD" "$CD" "$(plugin_config enforce allow)" --log-json
    cp "$(plugin_config enforce allow)" "$PD/config-current"
  fi
  # The default validator where the runtime has one: the suite checks fail-closed enforcement.
  if e2e_validator; then export IC_NRI_VALIDATOR=1; else unset IC_NRI_VALIDATOR; fi
  ic_runtime_start "$CD" "$v"
  [ "$mode" != prelaunched ] || plugin_wait_prelaunched
  for s in compat incompat noart invalid multi twoart burst fresh1 fresh2 fresh3 fresh4 zindex asingle \
    ocilacks ociown bothkinds lazy; do
    ic_cri "$CD" pull "$(img "$s")" >/dev/null
  done
  for s in "${scenarios[@]}"; do
    run_scenario "$s"
  done
}

ic_stack_init
ic_image_compat_build
ic_cri_build
echo "e2e: work directory $work"
t0=$(now_us)
e2e_setup "$work"
# shellcheck source=/dev/null
source "$work/images.env"
echo "e2e: setup (images, artifacts) in $((($(now_us) - t0) / 1000)) ms"
: >"$work/results"

# run_combo VERSION MODE: a combo in a subshell (its failures stay its own); a combo that could
# not even set up is recorded as failed.
run_combo() {
  local rc
  set +e
  (combo "$1" "$2")
  rc=$?
  set -e
  [ "$rc" = 0 ] || echo "$1 $2 (combo-setup) FAIL 0" >>"$work/results"
}

running=0
present=()
for v in "${versions[@]}"; do
  if ic_runtime_available "$v"; then
    present+=("$v")
  else
    echo "e2e: containerd $v is not installed ($(ic_shared_runtimes) missing): skipped"
    for mode in "${modes[@]}"; do echo "$v $mode (not-installed) SKIP 0" >>"$work/results"; done
  fi
done
versions=(${present[@]+"${present[@]}"})
for v in ${versions[@]+"${versions[@]}"}; do
  for mode in "${modes[@]}"; do
    # The OCI hook is tested under containerd's runc and podman by tests/stack/hook_runtimes.rs.
    if [ "$mode" = hook ] && [ "$v" != crio ]; then continue; fi
    if [ "$jobs" -le 1 ]; then
      run_combo "$v" "$mode"
    else
      # Output per combo, printed whole at the end: interleaved lines would be unreadable.
      run_combo "$v" "$mode" >"$work/$v-$mode.out" 2>&1 &
      running=$((running + 1))
      if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
      fi
    fi
  done
done
wait
if [ "$jobs" -gt 1 ]; then
  for v in ${versions[@]+"${versions[@]}"}; do
    for mode in "${modes[@]}"; do cat "$work/$v-$mode.out" 2>/dev/null || true; done
  done
fi

echo
echo "e2e summary ($((($(now_us) - suite_t0) / 1000)) ms in all):"
awk '{ printf "  %-4s %-12s %-20s %-5s %6d ms\n", $1, $2, $3, $4, $5 }' "$work/results"
if [ -s "$work/gaps" ]; then
  echo "fail-open gap, plugin SIGKILL -> restarted plugin in use (external, restart at once):"
  awk '{ printf "  %-4s %6d ms\n", $1, $3 }' "$work/gaps"
fi
failed=$(grep -c ' FAIL ' "$work/results" || true)
if [ "$failed" != 0 ]; then
  echo "e2e: FAIL ($failed failed)"
  exit 1
fi
echo "e2e: PASS"
