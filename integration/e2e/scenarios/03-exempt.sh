#!/usr/bin/env bash
# Scenario exempt: a pod in kube-system (exempt by default) runs the incompatible image
# unchecked: no refusal, no annotation, no decision; the same image in another namespace is
# still refused by the same plugin.

scenario_exempt() {
  local id
  plugin_use enforce allow
  id=$(pod exempt kube-system)
  expect_running "$id" kube-system/exempt incompatible "$(img incompat)"
  expect_unchecked
  [ -z "$LAST_DECISION" ] || fail "an exempt container was decided: $LAST_DECISION"
  id=$(pod not-exempt)
  expect_refused "$id" e2e/not-exempt incompatible "$(img incompat)" \
    "image-compat: image $(img incompat) ($(dig incompat)) is not compatible with node $E2E_NODE: "
}
