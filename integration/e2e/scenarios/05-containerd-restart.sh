#!/usr/bin/env bash
# Scenario containerd-restart: containerd restarts under a running plugin. External: the same
# plugin process reconnects by itself (timed). Pre-launched: the plugin exits with its
# connection and the new containerd launches a new one. Either way the incompatible image is
# refused again afterwards and the compatible one runs; containers started before keep running.

scenario_containerd_restart() {
  local id before_pid after_pid t0 ctr
  plugin_use enforce allow
  id=$(pod restart)
  expect_running "$id" e2e/restart before "$(img compat)"
  ctr=$CREATED_ID
  before_pid=$(ic_plugin_pid "$PD") || fail "no plugin runs"
  t0=$(now_us)
  containerd_restart
  say "containerd restarted; plugin in use again after $((($(now_us) - t0) / 1000)) ms"
  after_pid=$(ic_plugin_pid "$PD") || fail "no plugin runs after the restart"
  if [ "$E2E_MODE" = external ]; then
    [ "$after_pid" = "$before_pid" ] || fail "the plugin process changed ($before_pid -> $after_pid)"
    grep -q '"NRI connection lost; reconnecting"' "$PD/plugin.log" ||
      fail "the plugin did not log the lost connection"
    say "the same plugin process ($after_pid) reconnected"
  else
    ic_gone "$before_pid" || fail "the old pre-launched plugin ($before_pid) still runs"
    [ "$after_pid" != "$before_pid" ] || fail "no new plugin process"
    say "containerd launched a new plugin process ($before_pid -> $after_pid)"
  fi
  [ "$(ic_cri "$CD" status "$ctr" | ic_json state)" = CONTAINER_RUNNING ] ||
    fail "the container started before the restart is not running"
  expect_refused "$id" e2e/restart incompatible "$(img incompat)" \
    "image-compat: image $(img incompat) ($(dig incompat)) is not compatible with node $E2E_NODE: "
  expect_running "$id" e2e/restart after "$(img compat)"
  expect_ann compatible true
}
