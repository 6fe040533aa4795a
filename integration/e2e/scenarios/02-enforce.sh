#!/usr/bin/env bash
# Scenario enforce: each image kind under the default policy in enforce mode. Refused: the
# incompatible image, the invalid spec (onInvalidSpec: deny), the multi-platform image whose only
# artifact (on the index) is incompatible, the image whose newer artifact is incompatible though
# its older one is compatible. Running and annotated: the compatible image, the image without
# artifact (onMissingArtifact: allow, compatible=unknown).

# expect_incompatible POD_ID NAME KIND RULE: refused, with the plugin's message for that rule.
expect_incompatible() {
  expect_refused "$1" e2e/enforce "$2" "$(img "$3")" \
    "image-compat: image $(img "$3") ($(dig "$3")) is not compatible with node $E2E_NODE: " \
    "rule \"$4\"" "did not match"
  [ "$(field "$LAST_DECISION" artifact)" = "$(art "$3")" ] ||
    fail "$2: decided on artifact $(field "$LAST_DECISION" artifact), expected $(art "$3")"
}

scenario_enforce() {
  local id want f
  plugin_use enforce allow
  id=$(pod enforce)
  expect_running "$id" e2e/enforce compatible "$(img compat)"
  expect_ann compatible true
  expect_ann reason 'compatible (best set "e2e: runs here")'
  expect_ann artifact "$(art compat)"
  # Who named the digest: the runtime itself (Container.image, containerd main), so the image
  # store was not asked; else containerd's image store.
  if e2e_container_image; then
    [ "$(field "$LAST_DECISION" image_source)" = nri-container-image ] ||
      fail "image_source is $(field "$LAST_DECISION" image_source), expected nri-container-image"
    [ "$(field "$LAST_DECISION" digest_source)" = runtime ] ||
      fail "digest_source is $(field "$LAST_DECISION" digest_source), expected runtime"
  else
    # CRI-O has no image store: the name is resolved in the registry.
    want=image-store
    if [ "$E2E_V" = crio ]; then want=name; fi
    [ "$(field "$LAST_DECISION" digest_source)" = "$want" ] ||
      fail "digest_source is $(field "$LAST_DECISION" digest_source), expected $want"
  fi
  # Every field of the decision line filled, on every runtime (CRI-O sends no container name).
  for f in pod container image image_source digest_source digest verdict case action reason artifact answer; do
    [ -n "$(field "$LAST_DECISION" "$f")" ] || fail "the decision line's $f is empty: $LAST_DECISION"
  done
  [ "$(field "$LAST_DECISION" container)" = compatible ] ||
    fail "the decision names container $(field "$LAST_DECISION" container), not compatible"
  say "image named by $(field "$LAST_DECISION" image_source), digest by $(field "$LAST_DECISION" digest_source)"

  expect_incompatible "$id" incompatible incompat "e2e-needs-pci-$E2E_LACKS"

  expect_running "$id" e2e/enforce no-artifact "$(img noart)"
  expect_ann compatible unknown
  expect_ann reason "the image has no compatibility artifact"
  expect_ann artifact --absent

  expect_refused "$id" e2e/enforce invalid-spec "$(img invalid)" \
    "image-compat: image $(img invalid) ($(dig invalid)) could not be checked on node $E2E_NODE: invalid compatibility spec: " \
    'Inn' '(onInvalidSpec: deny)'

  expect_incompatible "$id" index-only multi "e2e-index-needs-pci-$E2E_LACKS"
  expect_incompatible "$id" two-artifacts twoart "e2e-newer-needs-pci-$E2E_LACKS"
}
