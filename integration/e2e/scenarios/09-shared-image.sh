#!/usr/bin/env bash
# Scenario shared-image: REAL-STACK.md's pitfall. Two names share one image: e2e/z-index:1 (the
# multi-platform index, whose artifact hangs on the index) and e2e/a-single:1 (its amd64
# manifest alone, no artifact). A container asks for z-index without user_specified_image, as
# containerd 1.7 always and 2.1 for such requests see it: containerd annotates the image's first
# sorted reference, a-single, whose digest has no artifact. The plugin must still find the
# index's artifact (through containerd's image store: every record with the same config) and
# refuse the container. On containerd main (Container.image) the same, the digest from the runtime.

scenario_shared_image() {
  local id out msg
  # CRI-O refuses a request without user_specified_image (the kubelet always sends it), and has
  # no containerd image store to name the image after another reference.
  [ "$E2E_V" != crio ] || skip "containerd's pitfall; CRI-O requires user_specified_image"
  plugin_use enforce allow
  id=$(pod shared)
  out=$(ic_cri "$CD" create "$id" shared "$(img zindex)" --raw-image --cmd sleep 3600 2>&1) &&
    fail "shared: the image was created ($out); its index artifact says incompatible"
  msg=${out#failed to check if this is a checkpoint image: }
  [[ $msg == "$E2E_NRI_REFUSAL"* ]] || fail "shared: not an NRI refusal: $out"
  [[ $msg == *"is not compatible with node $E2E_NODE"*"rule \"e2e-index-needs-pci-$E2E_LACKS\""* ]] ||
    fail "shared: refused for another reason: $msg"
  LAST_DECISION=$(decision e2e/shared shared)
  [ "$(field "$LAST_DECISION" image)" = "$(img asingle)" ] ||
    fail "shared: containerd annotated $(field "$LAST_DECISION" image), not the other name $(img asingle): the pitfall did not happen, so this proves nothing"
  [ "$(field "$LAST_DECISION" artifact)" = "$(art zindex)" ] ||
    fail "shared: decided on artifact $(field "$LAST_DECISION" artifact), expected the index's $(art zindex)"
  # containerd main names the image in Container.image: the other name, with the index's digest
  # (what the container runs). Under that name the digest has no artifact, so the plugin asks the
  # image store for the image's other names, and finds the index's.
  if e2e_container_image; then
    [ "$(field "$LAST_DECISION" digest_source)" = runtime+image-store ] ||
      fail "shared: digest_source $(field "$LAST_DECISION" digest_source), expected runtime+image-store"
    [ "$(field "$LAST_DECISION" digest)" = "$(dig zindex)" ] ||
      fail "shared: the runtime's digest $(field "$LAST_DECISION" digest) is not the index's $(dig zindex)"
  fi
  say "refused: $(img zindex) annotated as $(img asingle); the artifact on the index decided (digest from: $(field "$LAST_DECISION" digest_source))"
}
