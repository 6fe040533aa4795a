#!/usr/bin/env bash
# Scenario hook: the OCI hook through CRI-O's hooks.d, no NRI plugin (mode hook, CRI-O only).
# runc runs the hook at createRuntime: the incompatible image's creation fails with the hook's
# message; the compatible and the artifact-less images run; an exempt namespace runs the
# incompatible image unchecked; in audit mode it runs, its decision logged as incompatible. Every
# field of the hook's decision line is filled (the container's name comes from CRI-O's
# annotations).

scenario_hook() {
  local id msg f
  [ "$E2E_MODE" = hook ] || skip "the OCI hook's scenario (mode hook)"
  hook_install "$(hook_config enforce)"
  id=$(pod hook)
  expect_running "$id" e2e/hook compatible "$(img compat)"
  for f in pod container image image_source digest_source digest verdict case action reason artifact answer; do
    [ -n "$(field "$LAST_DECISION" "$f")" ] || fail "the hook's decision line has no $f: $LAST_DECISION"
  done
  [ "$(field "$LAST_DECISION" edge)" = oci-hook ] || fail "not the hook's decision: $LAST_DECISION"
  [ "$(field "$LAST_DECISION" container)" = compatible ] ||
    fail "the hook names container $(field "$LAST_DECISION" container), not compatible"
  say "hook decision: $(field "$LAST_DECISION" verdict), image from $(field "$LAST_DECISION" image_source)"

  create "$id" incompatible "$(img incompat)"
  [ -z "$CREATED_ID" ] || fail "the incompatible image was created ($CREATED_ID)"
  msg="image-compat: image $(img incompat)"
  [[ $CREATE_ERR == *"$msg"*"is not compatible with node $E2E_NODE"* ]] ||
    fail "refused, but not by the hook: $CREATE_ERR"
  say "refused by the hook in ${CREATE_MS} ms"

  expect_running "$id" e2e/hook no-artifact "$(img noart)"
  id=$(pod hook-exempt kube-system)
  expect_running "$id" kube-system/hook-exempt incompatible "$(img incompat)"

  hook_install "$(hook_config audit)"
  id=$(pod hook-audit)
  expect_running "$id" e2e/hook-audit incompatible "$(img incompat)"
  [ "$(field "$LAST_DECISION" verdict)" = incompatible ] && [ "$(field "$LAST_DECISION" action)" = allow ] ||
    fail "audit: decided $(field "$LAST_DECISION" verdict)/$(field "$LAST_DECISION" action): $LAST_DECISION"
  say "audit mode: the incompatible image runs, logged incompatible"
}
