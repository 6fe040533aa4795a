#!/usr/bin/env bash
# Scenario oci-compat: Proposal F artifacts (attached with oras) in enforce mode. Refused, naming
# the group and the key: the image needing an archspec target this node cannot run, and the
# image whose NFD spec is compatible but whose Proposal F document is not (one verdict for both
# kinds). Running: the image needing this node's own target. validate-node agrees on each.

# expect_validate_node KIND WANT_RC: the CLI's verdict on the image against this node.
expect_validate_node() {
  local rc out
  out=$("$IC_IMAGE_COMPAT" validate-node --plain-http --image "$(img "$1")" -o json 2>&1) && rc=0 || rc=$?
  [ "$rc" = "$2" ] || fail "validate-node $(img "$1"): exit $rc, expected $2: $out"
  say "validate-node $(img "$1"): exit $rc, verdict $(ic_json verdict <<<"$out")"
}

scenario_oci_compat() {
  local id reason
  plugin_use enforce allow
  id=$(pod oci-compat)
  expect_running "$id" e2e/oci-compat own-target "$(img ociown)"
  expect_ann compatible true
  expect_ann reason --prefix "compatible (oci-compat: 1 of 1 keys match"
  expect_ann artifact "$(art ociown)"
  expect_validate_node ociown 0

  reason="oci-compat: group \"io.archspec\" key \"target\": needs $E2E_LACKS_TARGET or a descendant of it, the node is $E2E_TARGET"
  expect_refused "$id" e2e/oci-compat lacks-target "$(img ocilacks)" \
    "image-compat: image $(img ocilacks) ($(dig ocilacks)) is not compatible with node $E2E_NODE: $reason"
  [ "$(field "$LAST_DECISION" artifact)" = "$(art ocilacks)" ] ||
    fail "lacks-target: decided on artifact $(field "$LAST_DECISION" artifact), expected $(art ocilacks)"
  expect_validate_node ocilacks 1

  # The NFD spec says compatible, the Proposal F document does not: refused, on the latter.
  expect_refused "$id" e2e/oci-compat both-kinds "$(img bothkinds)" \
    "image-compat: image $(img bothkinds) ($(dig bothkinds)) is not compatible with node $E2E_NODE: $reason"
  [ "$(field "$LAST_DECISION" artifact)" = "$(art bothkinds)" ] ||
    fail "both-kinds: decided on artifact $(field "$LAST_DECISION" artifact), expected $(art bothkinds)"
  expect_validate_node bothkinds 1
}
