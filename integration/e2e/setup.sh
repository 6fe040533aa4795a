#!/usr/bin/env bash
# End-to-end suite setup, once per run: the test images and their compatibility artifacts, in a
# registry whose storage every combo then copies (so a combo may stop or freeze its registry
# without touching the others).
#
# Sourced by integration/e2e.sh. e2e_setup WORK writes WORK/registry-data (the storage),
# WORK/images.env (IMG_/DIG_/ART_ variables, see lib.sh) and WORK/specs (the specs).
# The specs are written for this node, after asking it (`image-compat features`): the
# compatible one needs a PCI vendor the node has, the incompatible ones a PCI vendor it lacks.
# (kernel.loadedmodule would be the other natural choice, but a node without /proc/modules has
# no such feature at all.)

E2E_ARTIFACT_TYPE=application/vnd.nfd.image-compatibility.v1alpha1
E2E_SPEC_TYPE=application/vnd.nfd.image-compatibility.spec.v1alpha1+yaml

# spec_pci FILE DESCRIPTION RULE VENDOR: one set, one rule: a PCI device of VENDOR is present.
spec_pci() {
  cat >"$1" <<EOF
version: v1alpha1
compatibilities:
- description: "$2"
  rules:
  - name: "$3"
    matchFeatures:
    - feature: pci.device
      matchExpressions:
        vendor: {op: In, value: ["$4"]}
EOF
}

# spec_lazy FILE VENDOR: errors only NFD's evaluation can reach (see scenario lazy).
spec_lazy() {
  cat >"$1" <<EOF
version: v1alpha1
compatibilities:
- description: "e2e: lazy, runs here"
  tag: main
  rules:
  - name: "e2e-lazy-has-pci-$2"
    matchAny:
    - matchFeatures:
      - feature: pci.device
        matchExpressions:
          vendor: {op: In, value: ["$2"]}
    - matchFeatures:
      - feature: e2e.absent
        matchExpressions:
          x: {op: Inn}
- description: "e2e: lazy, broken where evaluated"
  tag: gpu
  rules:
  - name: "e2e-lazy-broken"
    matchFeatures:
    - feature: pci.device
      matchExpressions:
        vendor: {op: Inn, value: ["$2"]}
EOF
}

# attach REF SPEC [ANNOTATION...]: oras attach, as an image author would; prints the artifact
# digest. oras does not validate the spec, which is how a broken one reaches the registry.
attach() {
  local ref=$1 spec=$2 a args=() out
  shift 2
  for a in "$@"; do args+=(--annotation "$a"); done
  out=$(cd "$(dirname "$spec")" && "$(ic_bin oras)" attach --plain-http --no-tty \
    --artifact-type "$E2E_ARTIFACT_TYPE" ${args[@]+"${args[@]}"} \
    --format go-template --template '{{.digest}}' \
    "$ref" "$(basename "$spec"):$E2E_SPEC_TYPE" 2>&1) || { echo "$out" >&2; return 1; }
  tail -n 1 <<<"$out"
}

E2E_OCI_ARTIFACT_TYPE=application/vnd.oci.image-compatibility.v1
E2E_OCI_SPEC_TYPE=application/vnd.oci.image-compatibility.spec.v1+json

# spec_archspec FILE TARGET: a Proposal F document needing the archspec TARGET.
spec_archspec() {
  printf '{"compatibilities": {"io.archspec": {"target": "%s"}}}\n' "$2" >"$1"
}

# attach_oci REF DOC: oras attach of a Proposal F document, as its author would; prints the
# artifact digest.
attach_oci() {
  local out
  out=$(cd "$(dirname "$2")" && "$(ic_bin oras)" attach --plain-http --no-tty \
    --artifact-type "$E2E_OCI_ARTIFACT_TYPE" --format go-template --template '{{.digest}}' \
    "$1" "$(basename "$2"):$E2E_OCI_SPEC_TYPE" 2>&1) || { echo "$out" >&2; return 1; }
  tail -n 1 <<<"$out"
}

# expect_verdict SPEC WANT: the spec's verdict on this node, as the CLI gives it (0 compatible, 1 not,
# 2 invalid), must be WANT; otherwise the suite would test the wrong thing.
expect_verdict() {
  local rc spec=$1 want=$2
  shift 2
  "$IC_IMAGE_COMPAT" evaluate --spec "$spec" --features "$E2E_WORK/node.json" "$@" >/dev/null 2>&1 && rc=0 || rc=$?
  [ "$rc" = "$want" ] || { echo "setup: $spec $* evaluates to exit $rc on this node, wanted $want" >&2; return 1; }
}

e2e_setup() {
  local work=$1 specs reg port have lacks v kind digest env target lacks_target
  E2E_WORK=$work
  specs=$work/specs
  mkdir -p "$specs" "$work/images"
  "$IC_IMAGE_COMPAT" features --sources pci -o json >"$work/node-pci.json"
  "$IC_IMAGE_COMPAT" features -o json >"$work/node.json"
  have=$("$IC_PYTHON" -c '
import json, sys
f = json.load(open(sys.argv[1]))
print(" ".join(sorted({e["attributes"].get("vendor", "") for e in
      f.get("instances", {}).get("pci.device", {}).get("elements", [])} - {""})))' "$work/node-pci.json")
  [ -n "$have" ] || { echo "setup: this node shows no PCI device; the specs need one" >&2; return 1; }
  # NVIDIA, AMD, Mellanox, Broadcom, Amazon: the first this node does not have.
  for v in 10de 1002 15b3 14e4 1d0f; do
    [[ " $have " == *" $v "* ]] || { lacks=$v; break; }
  done
  [ -n "${lacks:-}" ] || { echo "setup: this node has every candidate PCI vendor" >&2; return 1; }
  echo "setup: node PCI vendors: $have; incompatible specs need vendor $lacks"

  spec_pci "$specs/compatible.yaml" "e2e: runs here" "e2e-has-pci-${have%% *}" "${have%% *}"
  spec_pci "$specs/incompatible.yaml" "e2e: needs a device this node lacks" "e2e-needs-pci-$lacks" "$lacks"
  spec_pci "$specs/index.yaml" "e2e: index artifact" "e2e-index-needs-pci-$lacks" "$lacks"
  spec_pci "$specs/newer.yaml" "e2e: the newer artifact" "e2e-newer-needs-pci-$lacks" "$lacks"
  spec_pci "$specs/older.yaml" "e2e: the older artifact" "e2e-older-has-pci-${have%% *}" "${have%% *}"
  # NFD's lazy errors: a broken expression on a feature this node lacks (never evaluated) in a
  # set tagged main that also runs here, and one on a feature it has in a set tagged gpu
  # (evaluated unless the tags leave the set out).
  spec_lazy "$specs/lazy.yaml" "${have%% *}"
  expect_verdict "$specs/lazy.yaml" 0 --tags main
  expect_verdict "$specs/lazy.yaml" 2
  # An unknown op: valid YAML, invalid spec.
  spec_pci "$specs/invalid.yaml" "e2e: broken" "e2e-broken" "$lacks"
  sed -i 's/op: In,/op: Inn,/' "$specs/invalid.yaml"
  for kind in compatible older; do expect_verdict "$specs/$kind.yaml" 0; done
  for kind in incompatible index newer; do expect_verdict "$specs/$kind.yaml" 1; done
  expect_verdict "$specs/invalid.yaml" 2
  # Proposal F: this node's own archspec target, and the first candidate it cannot run.
  target=$("$IC_PYTHON" -c '
import json, sys
print(json.load(open(sys.argv[1]))["attributes"]["compat.io.archspec"]["elements"]["target"])' "$work/node.json") ||
    { echo "setup: this node shows no archspec target (compat.io.archspec)" >&2; return 1; }
  spec_archspec "$specs/oci-own.json" "$target"
  expect_verdict "$specs/oci-own.json" 0
  for v in x86_64_v4 sapphirerapids zen5 neoverse_v2 a64fx; do
    spec_archspec "$specs/oci-lacks.json" "$v"
    expect_verdict "$specs/oci-lacks.json" 1 2>/dev/null && { lacks_target=$v; break; }
  done
  [ -n "${lacks_target:-}" ] || { echo "setup: this node ($target) runs every candidate target" >&2; return 1; }
  echo "setup: node archspec target: $target; the Proposal F artifact needs $lacks_target"

  port=$(ic_free_port)
  reg=127.0.0.1:$port
  ic_registry_start "$work/golden" "$port"
  env=$work/images.env
  : >"$env"
  # kind repo:tag builder spec: one image per kind. The variant (the kind) makes each image's
  # content and digest its own: no two names share an image (see REAL-STACK.md's pitfall).
  while read -r kind ref build; do
    digest=$("ic_build_$build" "$work/images/$kind" "e2e/$ref" "e2e-$kind")
    ic_push_image "$work/images/$kind" "$reg/e2e/$ref"
    printf 'IMG_%s=%q\nDIG_%s=%q\n' "$kind" "e2e/$ref" "$kind" "$digest" >>"$env"
  done <<'EOF'
compat compat:1 image
incompat incompat:1 image
noart noart:1 image
invalid invalid:1 image
multi multi:1 index
twoart twoart:1 image
burst burst:1 image
fresh1 fresh-1:1 image
fresh2 fresh-2:1 image
fresh3 fresh-3:1 image
fresh4 fresh-4:1 image
zindex z-index:1 index
ocilacks oci-lacks:1 image
ociown oci-own:1 image
bothkinds both-kinds:1 image
lazy lazy:1 image
EOF
  # REAL-STACK.md's pitfall: the index's amd64 manifest also pushed under another name that
  # sorts first (a-single), so the two names share one image (one config digest). Its digest is
  # the manifest's, not the index's, and no artifact hangs on it: the artifact is on the index.
  digest=$("$IC_PYTHON" -c '
import json, os, sys
lay = sys.argv[1]
blob = lambda d: json.load(open(os.path.join(lay, "blobs", *d.split(":"))))
index = blob(json.load(open(os.path.join(lay, "index.json")))["manifests"][0]["digest"])
print(next(m["digest"] for m in index["manifests"] if m["platform"]["architecture"] == "amd64"))' "$work/images/zindex")
  # Registry to registry, so oras mounts the blobs into the new repository.
  "$(ic_bin oras)" cp --no-tty --from-plain-http --to-plain-http "$reg/e2e/z-index@$digest" \
    "$reg/e2e/a-single:1" >/dev/null
  printf 'IMG_asingle=%q\nDIG_asingle=%q\n' e2e/a-single:1 "$digest" >>"$env"
  # shellcheck source=/dev/null
  source "$env"
  on() {
    local var=IMG_$1
    echo "$reg/${!var}"
  }
  {
    for kind in compat burst fresh1 fresh2 fresh3 fresh4; do
      printf 'ART_%s=%s\n' "$kind" "$(attach "$(on "$kind")" "$specs/compatible.yaml")"
    done
    printf 'ART_incompat=%s\n' "$(attach "$(on incompat)" "$specs/incompatible.yaml")"
    printf 'ART_invalid=%s\n' "$(attach "$(on invalid)" "$specs/invalid.yaml")"
    printf 'ART_lazy=%s\n' "$(attach "$(on lazy)" "$specs/lazy.yaml")"
    # The tag names the index: the artifact hangs on the index digest, none on the platform
    # manifest.
    printf 'ART_multi=%s\n' "$(attach "$(on multi)" "$specs/index.yaml")"
    printf 'ART_zindex=%s\n' "$(attach "$(on zindex)" "$specs/index.yaml")"
    # Two artifacts on one image, the newer pushed first: which one wins must come from their
    # creation times, not from the order the registry lists them in.
    printf 'ART_twoart=%s\n' "$(attach "$(on twoart)" "$specs/newer.yaml" \
      org.opencontainers.image.created=2025-06-01T00:00:00Z)"
    printf 'ART_twoart_older=%s\n' "$(attach "$(on twoart)" "$specs/older.yaml" \
      org.opencontainers.image.created=2024-01-01T00:00:00Z)"
    # Proposal F documents attached with oras; on both-kinds with image-compat itself, beside a
    # compatible NFD spec: the image runs only if both say so.
    printf 'ART_ocilacks=%s\n' "$(attach_oci "$(on ocilacks)" "$specs/oci-lacks.json")"
    printf 'ART_ociown=%s\n' "$(attach_oci "$(on ociown)" "$specs/oci-own.json")"
    printf 'ART_bothkinds_nfd=%s\n' "$(attach "$(on bothkinds)" "$specs/compatible.yaml")"
    printf 'ART_bothkinds=%s\n' "$("$IC_IMAGE_COMPAT" attach-spec --plain-http -o json --image \
      "$(on bothkinds)" "$specs/oci-lacks.json" | ic_json digest)"
    printf 'E2E_LACKS=%s\nE2E_HAS=%s\n' "$lacks" "${have%% *}"
    printf 'E2E_TARGET=%s\nE2E_LACKS_TARGET=%s\n' "$target" "$lacks_target"
  } >>"$env"
  ic_registry_stop "$work/golden"
  # An attach that failed left an empty value (its error is above).
  if [ "$(grep -cE '^ART_[a-z0-9_]+=sha256:[0-9a-f]{64}$' "$env")" != 17 ]; then
    echo "setup: an artifact is missing:" >&2
    grep '^ART_' "$env" >&2
    return 1
  fi
}
