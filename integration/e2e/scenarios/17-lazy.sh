#!/usr/bin/env bash
# Scenario lazy: a spec with errors NFD's evaluation never reaches runs in enforce mode, as
# `nfd compat validate-node` would pass it. Its set tagged main runs here and holds a broken
# expression on a feature this node lacks; its set tagged gpu holds one on a feature the node
# has. With the plugin's tags [main]: running, the unreached errors logged and (audit mode)
# annotated as warnings. Without tags every set is evaluated, the error is reached: refused
# under onInvalidSpec: deny, as NFD's run would fail.

scenario_lazy() {
  local id
  E2E_EXTRA_CONFIG="tags: [main]" plugin_use enforce allow
  id=$(pod lazy)
  expect_running "$id" e2e/lazy tagged "$(img lazy)"
  expect_ann compatible true
  expect_ann reason 'compatible (best set "main")'
  [[ $(field "$LAST_DECISION" warnings) == *'invalid Op \"Inn\"'* || $(field "$LAST_DECISION" warnings) == *'invalid Op "Inn"'* ]] ||
    fail "the decision line does not warn about the unreached error: $LAST_DECISION"
  say "warnings: $(field "$LAST_DECISION" warnings)"

  E2E_EXTRA_CONFIG="tags: [main]" plugin_use audit allow
  expect_running "$id" e2e/lazy tagged-audit "$(img lazy)"
  expect_ann compatible true
  [[ $(ann image-compat.io/warnings) == *"Inn"* ]] ||
    fail "no image-compat.io/warnings annotation naming the unreached error: $ANN"

  plugin_use enforce allow
  expect_refused "$id" e2e/lazy all-sets "$(img lazy)" \
    "image-compat: image $(img lazy) ($(dig lazy)) could not be checked on node $E2E_NODE: invalid compatibility spec: evaluation failed: " \
    'invalid Op "Inn"' '(onInvalidSpec: deny)'
}
