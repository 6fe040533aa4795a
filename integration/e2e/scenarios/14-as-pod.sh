#!/usr/bin/env bash
# Scenario as-pod: the plugin as the DaemonSet runs it, a pod in the containerd it guards. The
# image is scripts/image.sh's (no base image), imported into containerd; the container gets the
# DaemonSet's command, host network, its mounts (the NRI socket's directory, containerd's
# directory with HostToContainer propagation, the host's /sys /boot /lib /usr/lib /etc/os-release
# /proc/swaps /proc/cpuinfo read-only under features.hostPrefix /host-, certs.d, an empty auth
# directory) and its securityContext (uid 0, read-only root, every capability dropped, no
# privilege escalation, RuntimeDefault seccomp); its config is deploy/base/config.yaml with this
# combo's node name, registry and endpoint port. It refuses the incompatible image, runs the
# compatible one, answers /healthz, runs confined (checked in /proc: no capability, no new
# privileges, seccomp, read-only root), and discovers in the pod the features the host binary
# discovers on the host. External mode only: in pre-launched mode containerd runs the host
# plugin and would not let a second one under the same name in.

# pod_sockets DIR: DIR holds the combo's containerd and NRI sockets, as the node's /run/containerd
# and /var/run/nri do. A tmpfs of its own made a shared mount: runc takes HostToContainer
# (rslave) propagation only from a shared or slave mount, and this machine's / is private.
# The sockets are bind-mounted in, so DIR is the only mount the scenario adds to the host.
pod_sockets() {
  local dir=$1 s
  mkdir -p "$dir"
  mount -t tmpfs -o size=64k,mode=0755 image-compat-e2e "$dir"
  mount --make-shared "$dir"
  for s in containerd.sock nri.sock; do
    touch "$dir/$s"
    mount --bind "$CD/$s" "$dir/$s"
  done
}

# pod_cleanup POD_ID SOCKETS: stops the plugin pod and removes the socket mounts.
pod_cleanup() {
  [ -z "$1" ] || ic_cri "$CD" stop-pod "$1" >/dev/null 2>&1 || true
  umount -R "$2" 2>/dev/null || true
}

# pod_image: scripts/image.sh's image of the plugin binary, built once for the suite.
pod_image() {
  local dir=${E2E_DIR%/*}/pod-image
  (
    flock 9
    [ -f "$dir/image-compat.tar" ] ||
      bash "$IC_LIB_DIR/../../scripts/image.sh" --binary "$IC_IMAGE_COMPAT" --out "$dir" \
        --name localhost/image-compat:e2e >"$dir.digest"
  ) 9>"$dir.lock"
  echo "$dir"
}

# pod_plugin_config PORT: deploy/base/config.yaml with this combo's node name, plain-HTTP
# registry and endpoint port; the paths are the DaemonSet's.
pod_plugin_config() {
  local base=$IC_LIB_DIR/../../deploy/base/config.yaml
  sed -e "s|^registry:$|registry:\n  plainHttp: [\"$REG\"]|" \
    -e "s|listen: 127.0.0.1:9464|listen: 127.0.0.1:$1|" "$base"
  echo "nodeName: $E2E_NODE"
}

# The pod's host directory for a DaemonSet hostPath: the host's own, or an empty one of the
# combo's when this machine has none (DirectoryOrCreate, without touching the host).
host_dir_or_empty() {
  if [ -d "$1" ]; then echo "$1"; else mkdir -p "$PD/empty$1" && echo "$PD/empty$1"; fi
}

scenario_as_pod() {
  local image port pod_id='' ctr_id pid sockets=$PD/pod-run before id out host_features pod_features conf m mounts=()
  [ "$E2E_MODE" = external ] || skip "the pod is an external plugin (mode $E2E_MODE)"
  [ "$E2E_V" != crio ] || skip "the image is imported with ctr into containerd's store"
  image=$(pod_image)
  ic_ctr "$CD" images import --local "$image/image-compat.tar" >/dev/null
  say "image $(cat "$image.digest") ($(du -k "$image/image-compat.tar" | cut -f1) KiB archive), imported"

  ic_plugin_stop "$PD"
  rm -f "$PD/config-current"
  conf=$PD/pod-config
  mkdir -p "$conf" "$PD/pod-auth"
  port=$(ic_free_port)
  pod_plugin_config "$port" >"$conf/config.yaml"
  trap 'pod_cleanup "$pod_id" "$sockets"' EXIT
  pod_sockets "$sockets"
  # hostPath -> mountPath of deploy/base/daemonset.yaml.
  for m in "$conf:/etc/image-compat:ro" "$PD/pod-auth:/etc/image-compat-auth:ro" \
    "$sockets:/var/run/nri:ro" "$sockets:/run/containerd:ro:rslave" \
    "$CD/certs.d:/etc/containerd/certs.d:ro" \
    "/sys:/host-sys:ro" "$(host_dir_or_empty /boot):/host-boot:ro" \
    "/etc/os-release:/host-etc/os-release:ro" "/usr/lib:/host-usr/lib:ro" "/lib:/host-lib:ro" \
    "/proc/swaps:/host-proc/swaps:ro" "/proc/cpuinfo:/host-proc/cpuinfo:ro" \
    "$(host_dir_or_empty /etc/kubernetes/node-feature-discovery/features.d):/etc/kubernetes/node-feature-discovery/features.d:ro"; do
    mounts+=(--mount "$m")
  done

  # The DaemonSet's pod carries the toleration annotation: where the runtime's default
  # validator requires the plugin (2.3+), the plugin's own pod must start without it.
  out=$(ic_cri "$CD" run-pod image-compat --namespace image-compat --annotation "$IC_TOLERATION=true") ||
    fail "RunPodSandbox of the plugin pod failed: $out"
  pod_id=$(ic_json pod_id <<<"$out")
  before=$(ic_nri_connections "$CD")
  out=$(ic_cri "$CD" create "$pod_id" image-compat localhost/image-compat:e2e "${mounts[@]}" \
    --confined --log-file "$PD/pod-logs/image-compat.log" --env IMAGE_COMPAT_LOG=info --env NODE_NAME="$E2E_NODE" \
    --cmd /usr/local/bin/image-compat nri-plugin --config /etc/image-compat/config.yaml --log-json) ||
    fail "CreateContainer of the plugin pod failed: $out"
  ctr_id=$(ic_json container_id <<<"$out")
  ic_cri "$CD" start "$ctr_id" >/dev/null || fail "StartContainer of the plugin pod failed"
  if ! ic_nri_wait_connections "$CD" $((before + 1)) 20; then
    ic_cri "$CD" status "$ctr_id" >&2 || true
    tail -n 20 "$CD"/root/io.containerd.grpc.v1.cri/containers/"$ctr_id"*/* 2>/dev/null >&2 || true
    fail "the plugin pod did not connect to the NRI socket"
  fi
  say "plugin pod $ctr_id connected"
  # The confinement, seen from the host: the plugin process has no capability, cannot gain any,
  # runs under seccomp, and its root filesystem is mounted read-only.
  pid=$(ic_ctr "$CD" task ls | awk -v id="$ctr_id" '$1 == id { print $2 }')
  [ -n "$pid" ] || fail "no task for the plugin container"
  grep -qx $'CapEff:\t0000000000000000' "/proc/$pid/status" || fail "the plugin has capabilities: $(grep Cap "/proc/$pid/status")"
  grep -qx $'NoNewPrivs:\t1' "/proc/$pid/status" || fail "the plugin may gain privileges"
  grep -qx $'Seccomp:\t2' "/proc/$pid/status" || fail "the plugin runs without a seccomp filter"
  awk '$5 == "/" { split($6, o, ","); if (o[1] == "ro") ro = 1 } END { exit !ro }' "/proc/$pid/mountinfo" ||
    fail "the plugin's root filesystem is writable"
  say "confined: uid $(awk '/^Uid:/{print $2}' "/proc/$pid/status"), no capabilities, no new privileges, seccomp, read-only root"

  # The kubelet's probe: GET /healthz on the node's loopback.
  out=$(exec 3<>"/dev/tcp/127.0.0.1/$port" && printf 'GET /healthz HTTP/1.0\r\n\r\n' >&3 && head -n 1 <&3) ||
    fail "no answer on 127.0.0.1:$port/healthz"
  [[ $out == *" 200 "* ]] || fail "/healthz answered: $out"
  say "/healthz: ${out%$'\r'}"

  ! ic_plugin_pid "$PD" >/dev/null || fail "a plugin runs on the host too"
  id=$(pod as-pod)
  create "$id" incompatible "$(img incompat)"
  [ -z "$CREATED_ID" ] || fail "the incompatible image was created ($CREATED_ID)"
  [[ $CREATE_ERR == *"$E2E_NRI_REFUSAL"*"image-compat: image $(img incompat) ($(dig incompat)) is not compatible with node $E2E_NODE: "*"rule \"e2e-needs-pci-$E2E_LACKS\""*"did not match"* ]] ||
    fail "not the plugin's refusal: $CREATE_ERR"
  say "refused in ${CREATE_MS} ms: ${CREATE_ERR#*desc = }"
  # Its decision in the container's log (what \`kubectl logs\` shows): CRI lines, JSON after the tag.
  grep -q '"message":"decision".*"pod":"e2e/as-pod","container":"incompatible"' "$PD/pod-logs/image-compat.log" ||
    fail "no decision for e2e/as-pod incompatible in the pod's log"
  create "$id" compatible "$(img compat)"
  [ -n "$CREATED_ID" ] || fail "the compatible image was refused: $CREATE_ERR"
  say "compatible image created ($CREATED_ID)"

  # Discovery in the pod (its own command, the pod's mounts) against the host binary's.
  # NODE_NAME as the pod has it (the DaemonSet sets it from spec.nodeName): system.name.nodename.
  host_features=$(NODE_NAME=$E2E_NODE "$IC_IMAGE_COMPAT" features -o json) || fail "host features failed"
  out=$(ic_cri "$CD" exec "$ctr_id" /usr/local/bin/image-compat features -o json \
    --host-prefix /host-) || fail "features in the pod failed: $out"
  [ "$(ic_json exit_code <<<"$out")" = 0 ] || fail "features in the pod: $(ic_json stderr <<<"$out")"
  pod_features=$(ic_json stdout <<<"$out")
  if [ "$host_features" != "$pod_features" ]; then
    diff <(echo "$host_features") <(echo "$pod_features") | head -n 40 >&2
    fail "the pod discovers other features than the host binary (diff above: < host, > pod)"
  fi
  say "the pod discovers the host's features ($(wc -l <<<"$pod_features") lines of JSON)"

  ic_cri "$CD" stop "$ctr_id" >/dev/null
  pod_cleanup "$pod_id" "$sockets"
  trap - EXIT
}
