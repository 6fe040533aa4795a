#!/usr/bin/env bash
# Scenario fleet-audit: `image-compat audit` on the real containerd and registry. The images of this
# node's running containers (one started here) and the setup's images, against this node and
# the example nodes (examples/features/); every cell equals validate-node's verdict for that
# image on that node's features, and a pod list naming the same images gives the same cells.

# audit_verdict_of IMAGE [FEATURES_FILE]: validate-node's verdict as audit names it.
audit_verdict_of() {
  local rc out args=(validate-node --plain-http="$REG" --image "$1" -o json)
  [ -n "${2:-}" ] && args+=(--features "$2")
  out=$("$IC_IMAGE_COMPAT" "${args[@]}" 2>&1) && rc=0 || rc=$?
  case $rc in
    # Exit 0 is also an unknown answer (--on-unknown allow): the report says which.
    0 | 1) ic_json verdict <<<"$out" ;;
    *) [[ $out == *"no compatibility artifact"* ]] && echo unknown || echo "error: $out" ;;
  esac
}

scenario_fleet_audit() {
  local id examples=$here/../examples/features out rc cells kind image node file want got
  plugin_use enforce allow
  id=$(pod fleet-audit-pod)
  expect_running "$id" e2e/fleet-audit-pod app "$(img compat)"

  # This node's running containers: the one just started is among them, with its pod.
  # (containerd's API; CRI-O has none of its own for audit to read.)
  if [ "$E2E_V" != crio ]; then
  out=$("$IC_IMAGE_COMPAT" audit --containerd --containerd-socket "$CD/containerd.sock" \
    --plain-http="$REG" --no-cache --node-name "$E2E_NODE" -o json) && rc=0 || rc=$?
  # Earlier scenarios leave containers of other images running (one with an invalid spec:
  # exit 2 is then right); only this one's row is checked.
  [ "$rc" -le 2 ] || fail "audit --containerd: exit $rc: $out"
  got=$("$IC_PYTHON" -c '
import json, sys
m = json.load(sys.stdin)
for r in m["images"]:
    if r["image"] == sys.argv[1]:
        print(",".join(r["usedBy"]), r["cells"][0]["verdict"])' "$(img compat)" <<<"$out")
  [[ $got == *"e2e/fleet-audit-pod/app"*" compatible" ]] ||
    fail "audit --containerd: $(img compat) not listed as used by e2e/fleet-audit-pod/app and compatible: $got"
  say "audit --containerd: $(img compat) used by ${got% *}: ${got##* }"
  fi

  # The setup's images against this node and the example nodes: cell by cell as validate-node.
  local images=()
  for kind in compat incompat noart ociown ocilacks; do images+=("$(img "$kind")"); done
  out=$("$IC_IMAGE_COMPAT" audit --plain-http="$REG" --no-cache --nodes "$examples" --this-node \
    --node-name "$E2E_NODE" -o json "${images[@]}") && rc=0 || rc=$?
  [ "$rc" = 1 ] || fail "audit: exit $rc (expected 1: some cell is incompatible): $out"
  cells=$("$IC_PYTHON" -c '
import json, sys
m = json.load(sys.stdin)
for r in m["images"]:
    for c in r["cells"]:
        print(r["image"], c["node"], c["verdict"])' <<<"$out")
  [ "$(wc -l <<<"$cells")" = $((${#images[@]} * 3)) ] || fail "audit: expected $((${#images[@]} * 3)) cells: $cells"
  while read -r image node got; do
    file=''
    [ "$node" = "$E2E_NODE" ] || file=$examples/$node.json
    want=$(audit_verdict_of "$image" "$file")
    [ "$got" = "$want" ] || fail "audit: $image on $node is $got, validate-node says $want"
  done <<<"$cells"
  say "audit: $(wc -l <<<"$cells") cells, each as validate-node: $(tail -n 1 < <("$IC_IMAGE_COMPAT" audit \
    --plain-http="$REG" --no-cache --nodes "$examples" --this-node --node-name "$E2E_NODE" "${images[@]}" || true))"

  # A pod list naming the same images: the same cells.
  "$IC_PYTHON" -c '
import json, sys
print(json.dumps({"kind": "List", "items": [{"metadata": {"name": "p%d" % i, "namespace": "fleet"},
  "spec": {"containers": [{"name": "c", "image": im}]}} for i, im in enumerate(sys.argv[1:])]}))' \
    "${images[@]}" >"$E2E_DIR/pods.json"
  got=$("$IC_IMAGE_COMPAT" audit --plain-http="$REG" --no-cache --nodes "$examples" --this-node \
    --node-name "$E2E_NODE" -o json --pods "$E2E_DIR/pods.json" | "$IC_PYTHON" -c '
import json, sys
m = json.load(sys.stdin)
for r in m["images"]:
    for c in r["cells"]:
        print(r["image"], c["node"], c["verdict"])') || true
  [ "$got" = "$cells" ] || fail "audit --pods differs from the list: $got"
  say "audit --pods: the same $(wc -l <<<"$got") cells"
}
