#!/usr/bin/env bash
# CRI-O 1.36 (../shared/runtimes) for the real-stack harness: private config, storage, sockets and
# registries, NRI on (default validator optional), hooks.d for the OCI hook. Sourced by stack.sh.
#
#   ic_crio_start DIR            everything under DIR; CRI socket DIR/crio.sock, NRI DIR/nri.sock,
#                                log DIR/crio.log; pulls its pause image from the first registry
#                                this shell started (CRI-O cannot import one)
#   ic_crio_stop DIR             daemon, then this instance's conmons, containers, mounts
#   ic_crio_restart DIR          the daemon only: containers keep running under conmon
# Settings: what ../shared/runtimes/README.md lists as needed on these machines; IC_NRI_VALIDATOR,
# IC_TOLERATION, IC_NRI_*_TIMEOUT as for containerd; IC_CRIO_HOOKS_DIR (default DIR/hooks.d).

ic_crio_config() {
  local d=$1 pause=$2 q='"' crio_bin
  crio_bin=$(ic_bin crio)
  cat <<CONF
[crio]
root = "$d/root"
runroot = "$d/run"
log_dir = "$d/logs"
version_file = "$d/run/version"
version_file_persist = "$d/root/version"
clean_shutdown_file = "$d/root/clean.shutdown"
storage_driver = "vfs"
[crio.api]
listen = "$d/crio.sock"
[crio.runtime]
default_runtime = "runc"
conmon = "$(ic_bin conmon)"
conmon_cgroup = "pod"
cgroup_manager = "cgroupfs"
pinns_path = "$crio_bin/pinns"
container_exits_dir = "$d/run/exits"
container_attach_socket_dir = "$d/run/attach"
namespaces_dir = "$d/run/ns"
hooks_dir = ["${IC_CRIO_HOOKS_DIR:-$d/hooks.d}"]
[crio.runtime.runtimes.runc]
runtime_path = "$(ic_bin runc)"
runtime_root = "$d/runc"
monitor_path = "$(ic_bin conmon)"
[crio.image]
signature_policy = "$d/policy.json"
pause_image = "$pause"
pause_command = ""
[crio.network]
network_dir = "$d/cni/net.d"
plugin_dirs = ["$d/cni/bin"]
[crio.nri]
enable_nri = true
nri_listen = "$d/nri.sock"
nri_plugin_dir = "$d/nri/plugins"
nri_plugin_config_dir = "$d/nri/conf.d"
$([ -z "${IC_NRI_REGISTRATION_TIMEOUT:-}" ] || echo "nri_plugin_registration_timeout = $q$IC_NRI_REGISTRATION_TIMEOUT$q")
$([ -z "${IC_NRI_REQUEST_TIMEOUT:-}" ] || echo "nri_plugin_request_timeout = $q$IC_NRI_REQUEST_TIMEOUT$q")
CONF
  if [ "${IC_NRI_VALIDATOR:-}" = 1 ]; then
    cat <<CONF
[crio.nri.default_validator]
nri_enable_default_validator = true
nri_validator_required_plugins = ["image-compat"]
nri_validator_tolerate_missing_plugins_annotation = "$IC_TOLERATION"
CONF
  fi
}

ic_crio_start() {
  local dir reg host
  dir=$(ic_abspath "$1")
  ic_runtime_available crio || { ic_log "CRI-O is not installed ($(ic_shared_runtimes) missing)"; return 1; }
  if ic_pid_of "$dir/crio.pid" "$dir/crio.conf" >/dev/null; then
    ic_log "CRI-O in $dir is already running"
    return 1
  fi
  reg=${IC_REGISTRIES[0]:-}
  [ -n "$reg" ] || { ic_log "ic_crio_start: start a registry first (the pause image comes from it)"; return 1; }
  mkdir -p "$dir"/{root,run,logs,runc,cni/bin,cni/net.d,nri/plugins,nri/conf.d,hooks.d,registries.d}
  echo crio >"$dir/version"
  # Pushed, not imported: CRI-O pulls its pause image.
  ic_build_image "$dir/pause" "image-compat/pause:1" "" '["/bin/sleep","2147483647"]' >/dev/null
  ic_push_image "$dir/pause" "$reg/image-compat/pause:1"
  ic_crio_config "$dir" "$reg/image-compat/pause:1" >"$dir/crio.conf"
  echo '{"default": [{"type": "insecureAcceptAnything"}]}' >"$dir/policy.json"
  : >"$dir/registries.conf"
  for host in "${IC_REGISTRIES[@]}"; do
    printf '[[registry]]\nlocation = "%s"\ninsecure = true\n' "$host" >>"$dir/registries.conf"
  done
  IC_STARTED+=("crio $dir")
  ic_crio_launch "$dir"
}

ic_crio_launch() {
  local dir=$1 pid
  rm -f "$dir/crio.sock" "$dir/nri.sock"
  # _CRIO_ROOTLESS: this VM cannot lower oom_score_adj (containerd's restrict_oom_score_adj).
  _CRIO_ROOTLESS=1 CONTAINER_REGISTRIES_CONF="$dir/registries.conf" \
    CONTAINER_REGISTRIES_CONF_DIR="$dir/registries.d" \
    "$(ic_bin crio)/crio" --config "$dir/crio.conf" --config-dir "$dir/crio.conf.d" \
    --log-level "$IC_CONTAINERD_LOG_LEVEL" >>"$dir/crio.log" 2>&1 &
  pid=$!
  disown "$pid"
  echo "$pid" >"$dir/crio.pid"
  ic_daemon_ready CRI-O "$pid" "$dir/crio.log" ic_crio_ready "$dir"
}

ic_crio_ready() {
  [ -S "$1/crio.sock" ] && [ -S "$1/nri.sock" ] && ic_cri "$1" version >/dev/null 2>&1
}

ic_crio_restart() {
  local dir
  dir=$(ic_abspath "$1")
  ic_daemon_kill CRI-O "$dir/crio.pid" "$dir/crio.conf" || return 1
  ic_crio_launch "$dir"
}

# The conmons of the instance at DIR (their command lines name its exits directory).
ic_crio_conmons() {
  local f pid
  for f in $(grep -lzF -- "$1/run/exits" /proc/[0-9]*/cmdline 2>/dev/null || true); do
    pid=${f#/proc/}
    pid=${pid%/cmdline}
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = conmon ] && ! ic_gone "$pid" && echo "$pid"
  done
  return 0
}

ic_crio_stop() {
  local dir id
  dir=$(ic_abspath "$1")
  ic_daemon_kill CRI-O "$dir/crio.pid" "$dir/crio.conf" || return 1
  rm -f "$dir/crio.pid"
  for id in $("$(ic_bin runc)" --root "$dir/runc" list -q 2>/dev/null); do
    "$(ic_bin runc)" --root "$dir/runc" delete --force "$id" >/dev/null 2>&1 || ic_log "runc delete $id failed"
  done
  ic_kill_all conmons ic_crio_conmons "$dir" || return 1
  ic_unmount_under "$dir" || return 1
  # Runtime state, as a reboot clears it; images (root/) stay.
  rm -rf --one-file-system "$dir/run" "$dir/runc"
  rm -f "$dir/crio.sock" "$dir/nri.sock"
  ic_forget "crio $dir"
}
