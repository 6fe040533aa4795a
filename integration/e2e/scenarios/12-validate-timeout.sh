#!/usr/bin/env bash
# Scenario validate-timeout: ValidateContainerAdjustment live (2.3, main, CRI-O). The plugin
# validates each container after CreateContainer with the creation's own decision (one decision
# line, at stage "create"; validation logs that it reused it, and never waits on the registry
# again). Then a plugin that hangs in validation (fault
# IMAGE_COMPAT_FAULT_VALIDATE_DELAY, 3 s, past containerd's 2 s request timeout): containerd
# fails the creation rather than letting the container through, even a compatible one.
# Elsewhere (2.1, 1.7: no validation in NRI 0.8 / 0.6) skipped.

scenario_validate_timeout() {
  local id validate mark
  e2e_validator || skip "containerd $E2E_V has no ValidateContainerAdjustment"
  plugin_use enforce allow
  id=$(pod validate)
  expect_running "$id" e2e/validate compatible "$(img compat)"
  decision e2e/validate compatible >/dev/null
  validate=$(grep -F "validated with the creation's decision" "$PD/plugin.log" | grep -F '"container":"compatible"' || true)
  [ -n "$validate" ] || fail "no validation of the container reusing its creation decision in the plugin log"
  [[ $validate == *'"action":"allow"'* ]] || fail "validation did not allow: $validate"
  say "validated with the creation's decision (allow)"

  # The plugin, restarted with the fault (and an empty cache).
  mark=$(log_lines "$(ic_runtime_log "$CD")")
  rm -f "$PD/config-current"
  export IMAGE_COMPAT_FAULT_VALIDATE_DELAY=3s
  plugin_use enforce allow
  unset IMAGE_COMPAT_FAULT_VALIDATE_DELAY
  rm -f "$PD/config-current"
  grep -q 'fault injection: validation answers are delayed' "$PD/plugin.log" ||
    fail "the plugin did not take the fault"
  create "$id" hung "$(img compat)"
  [ -z "$CREATED_ID" ] || fail "created ($CREATED_ID) though the plugin never answered the validation"
  say "refused after ${CREATE_MS} ms: ${CREATE_ERR##*desc = }"
  [ "$CREATE_MS" -ge 1900 ] || fail "refused in ${CREATE_MS} ms, before containerd's 2 s timeout: not the timeout"
  tail -n +"$((mark + 1))" "$(ic_runtime_log "$CD")" | grep -iE 'validat' | cut -c1-300 | head -n 3 |
    sed 's/^/    containerd: /' || true
  # Back to a plugin without the fault (plugin_use restarts it: config-current is gone).
  plugin_use enforce allow
  expect_running "$id" e2e/validate after "$(img compat)"
}
