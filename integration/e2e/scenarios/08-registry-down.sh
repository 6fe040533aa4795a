#!/usr/bin/env bash
# Scenario registry-down: the registry fails under a running plugin, first hung (SIGSTOP: it
# accepts connections and never answers), then gone (killed: connections refused).
# With onRegistryError: deny, an image not yet cached is refused, hung within the decision
# deadline (1 s, half of containerd's 2 s: CreateContainer stays well under 2 s), gone at once;
# images decided before keep their verdicts from the cache (compatible runs, incompatible is
# refused) without waiting; the fetch a deadline cut short goes on and, once the registry
# answers again, that image gets its real verdict. With onRegistryError: allow (a new plugin,
# empty cache), new images run, annotated compatible=unknown with the reason. No CreateContainer
# ever reaches containerd's timeout (containerd would drop the plugin).

scenario_registry_down() {
  local id mark deny_prefix
  mark=$(log_lines "$(ic_runtime_log "$CD")")
  plugin_use enforce deny
  id=$(pod registry-down)
  # The cache, filled while the registry is up.
  expect_running "$id" e2e/registry-down compatible "$(img compat)"
  expect_ann compatible true
  expect_refused "$id" e2e/registry-down incompatible "$(img incompat)" \
    "image-compat: image $(img incompat) ($(dig incompat)) is not compatible with node $E2E_NODE: "

  ic_registry_freeze "$RD"
  say "registry frozen (SIGSTOP)"
  deny_prefix="image-compat: image $(img fresh1) could not be checked on node $E2E_NODE: "
  expect_refused "$id" e2e/registry-down hung-new "$(img fresh1)" "$deny_prefix" \
    "no answer from the registry within 1s" "(onRegistryError: deny)"
  expect_fast
  expect_answer deadline
  expect_running "$id" e2e/registry-down hung-cached-compatible "$(img compat)"
  expect_answer cached
  expect_ann compatible true
  expect_refused "$id" e2e/registry-down hung-cached-incompatible "$(img incompat)" \
    "image-compat: image $(img incompat) ($(dig incompat)) is not compatible with node $E2E_NODE: "
  expect_answer cached

  ic_registry_thaw "$RD"
  say "registry thawed: the fetch cut short by the deadline completes"
  expect_running "$id" e2e/registry-down thawed-new "$(img fresh1)"
  expect_ann compatible true

  ic_registry_stop "$RD"
  say "registry stopped"
  expect_refused "$id" e2e/registry-down gone-new "$(img fresh2)" \
    "image-compat: image $(img fresh2) could not be checked on node $E2E_NODE: registry error: " \
    "(onRegistryError: deny)"
  expect_fast
  expect_running "$id" e2e/registry-down gone-cached-compatible "$(img compat)"
  expect_answer cached
  expect_refused "$id" e2e/registry-down gone-cached-incompatible "$(img incompat)" \
    "image-compat: image $(img incompat) ($(dig incompat)) is not compatible with node $E2E_NODE: "

  plugin_use enforce allow
  say "plugin now with onRegistryError: allow (empty cache), registry still stopped"
  expect_running "$id" e2e/registry-down allow-gone-new "$(img fresh3)"
  expect_ann compatible unknown
  expect_ann reason --prefix "registry error: "
  expect_fast

  ic_registry_restart "$RD"
  ic_registry_freeze "$RD"
  say "registry restarted, then frozen"
  expect_running "$id" e2e/registry-down allow-hung-new "$(img fresh4)"
  expect_ann compatible unknown
  expect_ann reason "no answer from the registry within 1s"
  expect_answer deadline
  expect_fast
  ic_registry_thaw "$RD"
  expect_no_plugin_timeout "$mark"
}
