#!/usr/bin/env bash
# Scenario running-recheck: the plugin keeps answering for what already runs. It reads this
# node's features from a file (re-read every second); a compatible container runs; the file
# then loses the PCI device the image needs: within about one refresh the plugin logs that the
# running container is no longer compatible (report only: the container keeps running), and
# when the device is back, that it is compatible again.

# recheck_wait_log PATTERN SECONDS: waits for a plugin log line matching PATTERN.
recheck_wait_log() {
  local i
  for ((i = 0; i < $2 * 20; i++)); do
    grep -q "$1" "$PD/plugin.log" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

scenario_running_recheck() {
  local id features=$PD/recheck-features.json t0 ms
  cp "$E2E_WORK/node.json" "$features"
  E2E_EXTRA_CONFIG="features: {file: $features, refresh: 1s}" plugin_use enforce allow
  id=$(pod recheck)
  expect_running "$id" e2e/recheck app "$(img compat)"
  # The node loses its PCI devices (written whole, then renamed: the plugin never reads half).
  "$IC_PYTHON" -c '
import json, sys
f = json.load(open(sys.argv[1]))
f.get("instances", {}).pop("pci.device", None)
json.dump(f, open(sys.argv[1] + ".tmp", "w"))' "$features"
  t0=$(now_us)
  mv "$features.tmp" "$features"
  recheck_wait_log '"running container is not compatible with this node (any more)".*"container":"app"' 5 ||
    fail "no report of the running container within 5 s"
  ms=$((($(now_us) - t0) / 1000))
  [ "$ms" -lt 2500 ] || fail "reported after $ms ms (refresh 1 s)"
  ic_cri_wait "$CD" "$CREATED_ID" CONTAINER_RUNNING 1 || fail "the container was stopped; reporting only was expected"
  say "reported $ms ms after the node lost its PCI devices; the container still runs"
  cp "$E2E_WORK/node.json" "$features.tmp" && mv "$features.tmp" "$features"
  recheck_wait_log '"running container is compatible with this node again".*"container":"app"' 5 ||
    fail "no report that the container is compatible again"
  say "compatible again once the devices are back"
  # The next scenario gets the plain config again.
  plugin_use enforce allow
}
