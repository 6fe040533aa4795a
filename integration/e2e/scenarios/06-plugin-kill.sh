#!/usr/bin/env bash
# Scenario plugin-kill: the plugin dies (SIGKILL). Without the default validator (2.1, 1.7)
# containerd goes on: containers are still created, unchecked and unannotated, even an
# incompatible one. That is NRI's behaviour (a plugin that is gone is dropped, not waited for):
# the plugin cannot prevent it, so this scenario shows it rather than hides it, and measures how
# long that window lasts here (kill -> the new plugin in use; external mode: the restart is
# immediate, a supervisor adds its own delay). With the validator (2.3, main) containerd refuses
# the container instead (scenario fail-closed has the details). Then the plugin comes back and enforces again: external mode by
# restarting it (a supervisor's job: the DaemonSet, systemd); pre-launched mode only when
# containerd restarts: containerd does not relaunch a plugin that died (the scenario says what
# it saw: no new process within 3 s, then a containerd restart).

scenario_plugin_kill() {
  local id mark pid i t0 gap
  plugin_use enforce allow
  id=$(pod kill)
  pid=$(ic_plugin_pid "$PD") || fail "no plugin runs"
  mark=$(log_lines "$(ic_runtime_log "$CD")")
  ic_plugin_kill "$PD"
  t0=$(now_us)
  say "plugin $pid killed"
  if e2e_validator; then
    expect_required_refusal "$id" unchecked "$(img incompat)"
  else
    expect_running "$id" e2e/kill unchecked "$(img incompat)"
    expect_unchecked
    say "NRI behaviour: with the plugin gone, containerd created the incompatible container unchecked"
  fi
  if [ "$E2E_MODE" = external ]; then
    ic_plugin_start "$PD" "$CD" --config "$PD/config-current" --log-json
    gap=$((($(now_us) - t0) / 1000))
    say "fail-open gap: plugin SIGKILL -> new plugin in use: $gap ms (restarted at once)"
    echo "$E2E_V $E2E_MODE $gap" >>"$E2E_WORK_DIR/gaps"
  else
    for ((i = 0; i < 30; i++)); do
      ic_plugin_pid "$PD" >/dev/null && break
      sleep 0.1
    done
    if ic_plugin_pid "$PD" >/dev/null; then
      say "containerd relaunched the plugin by itself"
    else
      say "containerd did not relaunch the plugin within 3 s; restarting containerd"
      containerd_restart
    fi
  fi
  say "plugin back: pid $(ic_plugin_pid "$PD")"
  tail -n +"$((mark + 1))" "$(ic_runtime_log "$CD")" | grep -iE 'image-compat' | grep -ivE 'registered|connected|invocation|discovered|starting' |
    cut -c1-300 | sed 's/^/    containerd: /' | head -n 5 || true
  expect_refused "$id" e2e/kill checked "$(img incompat)" \
    "image-compat: image $(img incompat) ($(dig incompat)) is not compatible with node $E2E_NODE: "
}
