#!/usr/bin/env bash
# Scenario startup: how the plugin comes into use.
# External: containerd runs alone first, and a container it creates then is not checked (no
# plugin, no annotations), or, where the default validator is on (2.3, main), is refused by
# containerd itself; the plugin started after containerd connects and refuses the same image
# from then on. Pre-launched: containerd itself started the plugin from its plugin_path
# (it is the plugin's parent, with NRI_PLUGIN_SOCKET set) and handed it the conf.d config, which
# the plugin uses (the node name in its refusal comes from there).

scenario_startup() {
  local id pid ppid conf_bytes
  id=$(pod startup)
  if [ "$E2E_MODE" = external ]; then
    ic_plugin_stop "$PD"
    rm -f "$PD/config-current"
    if e2e_validator; then
      expect_required_refusal "$id" unchecked "$(img incompat)"
    else
      expect_running "$id" e2e/startup unchecked "$(img incompat)"
      expect_unchecked
    fi
    [ -z "$(decisions)" ] || fail "a decision was logged without a plugin: $(decisions)"
    plugin_use enforce allow
  else
    plugin_use enforce allow
    pid=$(ic_plugin_pid "$PD") || fail "no pre-launched plugin runs"
    ppid=$(awk '{print $4}' "/proc/$pid/stat")
    [ "$ppid" = "$(ic_runtime_pid "$CD")" ] ||
      fail "the plugin's parent is $ppid, not containerd ($(cat "$CD/containerd.pid"))"
    # Not `tr | grep -q`: with pipefail, grep quitting early fails the pipeline.
    grep -qx 'NRI_PLUGIN_SOCKET=3' < <(tr '\0' '\n' <"/proc/$pid/environ") ||
      fail "the plugin has no NRI_PLUGIN_SOCKET=3 in its environment"
    conf_bytes=$(grep '"NRI runtime configures the plugin"' "$PD/plugin.log" | tail -n 1 |
      "$IC_PYTHON" -c 'import json, sys; print(json.loads(sys.stdin.read())["fields"]["config_bytes"])')
    [ "$conf_bytes" = "$(wc -c <"$PD/config-current")" ] ||
      fail "containerd passed $conf_bytes bytes of config, the conf.d file has $(wc -c <"$PD/config-current")"
    say "launched by containerd (pid $pid, parent $ppid) with the $conf_bytes-byte conf.d config"
  fi
  # What containerd told the plugin, and the deadline it took from it.
  grep '"NRI runtime configures the plugin"' "$PD/plugin.log" | tail -n 1 | "$IC_PYTHON" -c '
import json, sys
f = json.loads(sys.stdin.read())["fields"]
print("    Configure from %s %s: request_timeout_ms=%s registration_timeout_ms=%s" % (
    f["runtime"], f["runtime_version"], f["request_timeout_ms"], f["registration_timeout_ms"]))'
  grep -q '"deadline_ms":1000' "$PD/plugin.log" || fail "the plugin's decision deadline is not 1 s"
  expect_refused "$id" e2e/startup checked "$(img incompat)" \
    "image-compat: image $(img incompat) ($(dig incompat)) is not compatible with node $E2E_NODE: " \
    "rule \"e2e-needs-pci-$E2E_LACKS\"" "did not match"
}
