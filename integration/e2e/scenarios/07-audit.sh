#!/usr/bin/env bash
# Scenario audit: the same image kinds in audit mode. All run; the annotations tell what enforce
# mode would have done: compatible=true for the compatible image, false (with the failed rule)
# for the incompatible ones, including the index-only artifact and the newer of two artifacts
# (whose digest the artifact annotation names), unknown for the invalid spec and for no artifact.

# expect_audited POD_ID NAME KIND COMPATIBLE REASON_PREFIX [ARTIFACT]
expect_audited() {
  expect_running "$1" e2e/audit "$2" "$(img "$3")"
  expect_ann compatible "$4"
  expect_ann reason --prefix "$5"
  if [ -n "${6:-}" ]; then expect_ann artifact "$6"; else expect_ann artifact --absent; fi
  [ "$(field "$LAST_DECISION" action)" = allow ] || fail "$2: decided $(field "$LAST_DECISION" action) in audit mode"
}

scenario_audit() {
  local id
  plugin_use audit allow
  id=$(pod audit)
  expect_audited "$id" compatible compat true 'compatible (best set "e2e: runs here")' "$(art compat)"
  expect_audited "$id" incompatible incompat false \
    "set \"e2e: needs a device this node lacks\" rule \"e2e-needs-pci-$E2E_LACKS\": pci.device: vendor In [$E2E_LACKS] did not match" \
    "$(art incompat)"
  expect_audited "$id" no-artifact noart unknown "the image has no compatibility artifact"
  expect_audited "$id" invalid-spec invalid unknown "invalid compatibility spec: " "$(art invalid)"
  expect_audited "$id" index-only multi false "set \"e2e: index artifact\" rule \"e2e-index-needs-pci-$E2E_LACKS\"" \
    "$(art multi)"
  expect_audited "$id" two-artifacts twoart false "set \"e2e: the newer artifact\" rule \"e2e-newer-needs-pci-$E2E_LACKS\"" \
    "$(art twoart)"
  [ "$(art twoart)" != "$(art twoart_older)" ] || fail "the two artifacts have one digest"
}
