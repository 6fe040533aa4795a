#!/usr/bin/env bash
# Real-stack harness: private docker-registry, containerd (2.1, 1.7, 2.3, main) or CRI-O (crio) with
# CRI + NRI, test images.
#
# Source it (works under `set -euo pipefail`); every function is prefixed `ic_`:
#   ic_free_port                              print a free TCP port on 127.0.0.1
#   ic_registry_start DIR PORT                Distribution 2.8 on 127.0.0.1:PORT, storage in DIR
#   ic_registry_stop DIR
#   ic_registry_restart DIR                   start it again, same port and storage (after a stop)
#   ic_registry_freeze DIR / ic_registry_thaw DIR
#                                             SIGSTOP / SIGCONT: the port still accepts connections,
#                                             nothing answers (a hung registry)
#   ic_registry_requests DIR REGEX            access-log lines whose request ("GET /v2/...") matches
#   ic_containerd_start DIR VERSION           VERSION 2.1, 1.7 (Debian), 2.3, main (../shared/runtimes);
#                                             everything under DIR
#   ic_containerd_stop DIR                    daemon, then this instance's shims, containers, mounts
#   ic_containerd_restart DIR                 the daemon only: containers keep running
#   ic_containerd_plain_http DIR HOST:PORT    let this containerd pull from a plain-HTTP registry
#   ic_containerd_pids DIR                    pids of this instance's shims and containers
#   ic_ctr DIR ARGS...                        this instance's ctr, namespace k8s.io
#   ic_build_image LAYOUT NAME:TAG [VARIANT [CMD_JSON]]
#                                             one-layer busybox image; prints its digest
#   ic_build_index LAYOUT NAME:TAG [VARIANT [CMD_JSON]]
#                                             linux/amd64 + linux/arm64 index; prints its digest
#   ic_push_image LAYOUT REF                  to a plain-HTTP registry, with oras
#   ic_import_image DIR LAYOUT REF            into namespace k8s.io of the containerd at DIR
#   ic_cri_build / ic_cri DIR CMD...          the CRI driver (examples/cri.rs) against DIR
#   ic_cri_wait DIR ID STATE [SECONDS]        poll a container's CRI state
#   ic_json KEY                               one field of the JSON object on stdin
#   ic_plugin_start DIR CONTAINERD_DIR ARGS...  the plugin in external mode; returns once in use
#   ic_plugin_stop DIR                        either mode: SIGTERM to the running plugin
#   ic_plugin_prelaunch DIR CONTAINERD_DIR CONFIG [ARGS...]
#                                             install it as a pre-launched plugin (NN-image-compat +
#                                             conf.d/NN-image-compat.conf); containerd starts it at
#                                             its next start. DIR gets plugin.log and plugin.pid
#   ic_plugin_pid DIR                         pid of the running plugin of DIR (either mode)
#   ic_plugin_kill DIR                        SIGKILL it (a crash); waits until it is gone
#   ic_nri_connections CONTAINERD_DIR         how many times external plugins got into use
#   ic_nri_wait_connections CONTAINERD_DIR N [SECONDS]
#   ic_teardown                               stop all this shell started (trap-friendly)
#   ic_work_dir NAME                          a work directory in IC_WORK, torn down at exit
#   ic_runtime_available VERSION              true when VERSION's runtime is installed
#   ic_runtime_start DIR VERSION / ic_runtime_stop DIR / ic_runtime_restart DIR
#                                             containerd (any VERSION above) or CRI-O (crio: crio.sh)
#   ic_runtime_log DIR / ic_runtime_pid DIR / ic_cri_socket DIR
#                                             that runtime's log file, daemon pid, CRI socket
# Tunables (environment): IMAGE_COMPAT_STACK (install prefix), IC_NRI_REQUEST_TIMEOUT and
# IC_NRI_REGISTRATION_TIMEOUT (e.g. 2s, 5s; containerd's defaults when unset),
# IC_CONTAINERD_LOG_LEVEL (default info), IC_PAUSE_IMAGE, IC_WAIT_SECONDS (start-up waits),
# IC_NRI_VALIDATOR=1 (the runtime's default validator on: fail closed when the image-compat
# plugin is absent; 2.3, main and CRI-O only), IC_TOLERATION (its toleration annotation key).

IC_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=integration/lib/install.sh
source "$IC_LIB_DIR/install.sh"
# shellcheck source=integration/lib/crio.sh
source "$IC_LIB_DIR/crio.sh"

IC_PAUSE_IMAGE=${IC_PAUSE_IMAGE:-localhost/image-compat/pause:1}
IC_CONTAINERD_LOG_LEVEL=${IC_CONTAINERD_LOG_LEVEL:-info}
IC_WAIT_SECONDS=${IC_WAIT_SECONDS:-30}
# /usr/bin/python3 first: a user's pyenv shim in PATH adds start-up time to every image build.
IC_PYTHON=${IC_PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}
# What this shell started, as "kind DIR", for ic_teardown.
IC_STARTED=()
# host:port of each registry this shell started, trusted as plain HTTP by containerd instances.
IC_REGISTRIES=()

ic_log() { echo "stack: $*" >&2; }

# Installs (once per prefix) and sets IC_STACK_PREFIX; runs in the caller's shell so it sticks.
ic_stack_init() {
  if [ -z "${IC_STACK_PREFIX:-}" ]; then
    IC_STACK_PREFIX=$(ic_install_stack)
  fi
}

ic_bin() {
  ic_stack_init
  case $1 in
    containerd-2.1 | containerd-1.7 | containerd-2.3 | containerd-main) echo "$IC_STACK_PREFIX/$1/usr/bin" ;;
    crio) echo "$IC_STACK_PREFIX/crio-1.36/usr/bin" ;;
    conmon) echo "$IC_STACK_PREFIX/conmon/usr/bin/conmon" ;;
    runc) echo "$IC_STACK_PREFIX/runc/usr/sbin/runc" ;;
    registry) echo "$IC_STACK_PREFIX/registry/usr/bin/docker-registry" ;;
    oras) echo "$IC_STACK_PREFIX/oras/usr/bin/oras" ;;
    busybox) echo "$IC_STACK_PREFIX/busybox/bin/busybox" ;;
    *) ic_log "ic_bin: unknown component $1"; return 1 ;;
  esac
}

# ic_runtime_available VERSION: its runtime is installed (the newer ones only when install.sh
# found ../shared/runtimes).
ic_runtime_available() {
  local name
  case $1 in
    crio) name=crio-1.36 ;;
    2.1 | 1.7 | 2.3 | main) name=containerd-$1 ;;
    *) return 1 ;;
  esac
  ic_stack_init
  [ -f "$IC_STACK_PREFIX/$name/.installed" ]
}

# Either runtime, told apart by DIR/version (crio, or the containerd version).
ic_is_crio() { [ "$(cat "$1/version" 2>/dev/null)" = crio ]; }

ic_runtime_start() {
  if [ "$2" = crio ]; then ic_crio_start "$1"; else ic_containerd_start "$1" "$2"; fi
}

ic_runtime_stop() {
  if ic_is_crio "$1"; then ic_crio_stop "$1"; else ic_containerd_stop "$1"; fi
}

ic_runtime_restart() {
  if ic_is_crio "$1"; then ic_crio_restart "$1"; else ic_containerd_restart "$1"; fi
}

ic_runtime_log() {
  if ic_is_crio "$1"; then echo "$1/crio.log"; else echo "$1/containerd.log"; fi
}

ic_runtime_pid() {
  if ic_is_crio "$1"; then cat "$1/crio.pid"; else cat "$1/containerd.pid"; fi
}

ic_cri_socket() {
  if ic_is_crio "$1"; then echo "$1/crio.sock"; else echo "$1/containerd.sock"; fi
}

# The runtime's toleration annotation: a pod (or container) carrying it with value "true" is
# created even while the image-compat plugin is absent (nri-config/, deploy/).
IC_TOLERATION=${IC_TOLERATION:-tolerate-missing-plugins.image-compat.io}

ic_abspath() { mkdir -p "$1" && (cd "$1" && pwd -P); }

ic_free_port() {
  "$IC_PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

ic_port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ic_pid_of PIDFILE MARK: the pid recorded in PIDFILE if that process is alive and its command
# line contains MARK (the instance's config path), so a recycled pid is never taken for ours.
ic_pid_of() {
  local pid args
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] || return 1
  ic_gone "$pid" && return 1
  args=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  [[ $args == *"$2"* ]] || return 1
  echo "$pid"
}

# True when process PID has exited: no longer in /proc, or a zombie (Z) or dead (X, shown for an
# instant while its parent reaps it) not yet reaped. One read of /proc/PID/stat, so a process
# reaped between two checks cannot look alive.
ic_gone() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  # The state follows the parenthesised command name, which may itself hold spaces.
  stat=${stat##*) }
  case ${stat%% *} in Z | X) return 0 ;; esac
  return 1
}

# ic_kill_wait PID SECONDS: SIGTERM, then SIGKILL after SECONDS; returns when the process is gone.
ic_kill_wait() {
  local pid=$1 secs=$2 i
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < secs * 10; i++)); do
    ic_gone "$pid" && break
    sleep 0.1
  done
  if ! ic_gone "$pid"; then
    ic_log "pid $pid ignored SIGTERM for ${secs}s, killing"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do ic_gone "$pid" && break; sleep 0.1; done
  fi
  ic_gone "$pid"
}

ic_forget() {
  local entry keep=()
  for entry in "${IC_STARTED[@]}"; do
    [ "$entry" = "$1" ] || keep+=("$entry")
  done
  IC_STARTED=(${keep[@]+"${keep[@]}"})
}

# ---------------------------------------------------------------------------------------------
# Registry

ic_registry_start() {
  local dir port=$2 pid i
  dir=$(ic_abspath "$1")
  ic_stack_init
  if ic_pid_of "$dir/registry.pid" "$dir/config.yml" >/dev/null; then
    ic_log "registry in $dir is already running"
    return 1
  fi
  # Another server on the port would answer the readiness probe in our registry's place.
  if ic_port_busy "$port"; then
    ic_log "port $port is in use"
    return 1
  fi
  mkdir -p "$dir/data"
  cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
EOF
  # Appended: a restarted registry keeps the earlier access log (tests count requests in it).
  "$(ic_bin registry)" serve "$dir/config.yml" >>"$dir/registry.log" 2>&1 &
  pid=$!
  # Out of the job table: bash then reaps it silently, with no "Killed" notice when a test
  # kills it on purpose.
  disown "$pid"
  echo "$pid" >"$dir/registry.pid"
  echo "127.0.0.1:$port" >"$dir/registry.addr"
  IC_STARTED+=("registry $dir")
  IC_REGISTRIES+=("127.0.0.1:$port")
  for ((i = 0; i < IC_WAIT_SECONDS * 10; i++)); do
    if ic_gone "$pid"; then
      cat "$dir/registry.log" >&2
      ic_log "registry exited at start-up"
      return 1
    fi
    curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null && return 0
    sleep 0.1
  done
  cat "$dir/registry.log" >&2
  ic_log "registry did not answer on 127.0.0.1:$port within ${IC_WAIT_SECONDS}s"
  return 1
}

ic_registry_stop() {
  local dir pid addr entry keep=()
  dir=$(ic_abspath "$1")
  if pid=$(ic_pid_of "$dir/registry.pid" "$dir/config.yml"); then
    # A frozen registry would hold SIGTERM pending until the 10 s SIGKILL.
    kill -CONT "$pid" 2>/dev/null || true
    ic_kill_wait "$pid" 10 || { ic_log "registry pid $pid will not die"; return 1; }
  fi
  addr=$(cat "$dir/registry.addr" 2>/dev/null || true)
  for entry in "${IC_REGISTRIES[@]}"; do
    [ "$entry" = "$addr" ] || keep+=("$entry")
  done
  IC_REGISTRIES=(${keep[@]+"${keep[@]}"})
  rm -f "$dir/registry.pid"
  ic_forget "registry $dir"
}

ic_registry_restart() {
  local dir addr
  dir=$(ic_abspath "$1")
  addr=$(cat "$dir/registry.addr") || { ic_log "no registry was started in $dir"; return 1; }
  ic_registry_start "$dir" "${addr##*:}"
}

# ic_registry_signal DIR SIGNAL: to the running registry of DIR.
ic_registry_signal() {
  local dir pid
  dir=$(ic_abspath "$1")
  pid=$(ic_pid_of "$dir/registry.pid" "$dir/config.yml") || { ic_log "no registry runs in $dir"; return 1; }
  kill "-$2" "$pid"
}

ic_registry_freeze() { ic_registry_signal "$1" STOP; }
ic_registry_thaw() { ic_registry_signal "$1" CONT; }

# ic_registry_requests DIR REGEX: the registry's access-log lines (combined log format, one per
# request) whose request line, e.g. `GET /v2/app/manifests/1`, matches REGEX (extended).
ic_registry_requests() {
  local dir=$1 re=$2
  grep -E "^[^ ]+ - - \[[^]]*\] \"$re" "$dir/registry.log" || true
}

# ---------------------------------------------------------------------------------------------
# containerd

ic_containerd_version() { cat "$1/version"; }

ic_ctr() {
  local dir=$1
  shift
  "$(ic_bin "containerd-$(ic_containerd_version "$dir")")/ctr" \
    --address "$dir/containerd.sock" --namespace k8s.io "$@"
}

# ic_containerd_plain_http DIR HOST:PORT: containerd reads certs.d at every pull, so this works
# on a running instance too.
ic_containerd_plain_http() {
  local dir=$1 host=$2
  mkdir -p "$dir/certs.d/$host"
  cat >"$dir/certs.d/$host/hosts.toml" <<EOF
server = "http://$host"
[host."http://$host"]
  capabilities = ["pull", "resolve", "push"]
EOF
}

ic_containerd_config_v3() {
  local d=$1
  cat <<EOF
version = 3
root = '$d/root'
state = '$d/state'
temp = '$d/tmp'
[grpc]
  address = '$d/containerd.sock'
[debug]
  level = '$IC_CONTAINERD_LOG_LEVEL'
[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = '$IC_PAUSE_IMAGE'
[plugins.'io.containerd.cri.v1.images'.registry]
  config_path = '$d/certs.d'
[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  cdi_spec_dirs = ['$d/cdi']
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
  runtime_type = 'io.containerd.runc.v2'
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  BinaryName = '$(ic_bin runc)'
  Root = '$d/runc'
[plugins.'io.containerd.cri.v1.runtime'.cni]
  bin_dirs = ['$d/cni/bin']
  conf_dir = '$d/cni/net.d'
[plugins.'io.containerd.internal.v1.opt']
  path = '$d/opt'
[plugins.'io.containerd.image-verifier.v1.bindir']
  bin_dir = '$d/image-verifier/bin'
[plugins.'io.containerd.nri.v1.nri']
  disable = false
  socket_path = '$d/nri.sock'
  plugin_path = '$d/nri/plugins'
  plugin_config_path = '$d/nri/conf.d'
$(ic_nri_timeouts "'")
$(ic_nri_validator_v3)
[[plugins.'io.containerd.transfer.v1.local'.unpack_config]]
  platform = 'linux/amd64'
  snapshotter = 'overlayfs'
EOF
}

ic_containerd_config_v2() {
  local d=$1
  cat <<EOF
version = 2
root = "$d/root"
state = "$d/state"
[grpc]
  address = "$d/containerd.sock"
[debug]
  level = "$IC_CONTAINERD_LOG_LEVEL"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$IC_PAUSE_IMAGE"
  restrict_oom_score_adj = true
  cdi_spec_dirs = ["$d/cdi"]
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
  # 1.7 replaces, not merges, a runtime table given here: it needs its type again.
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
    BinaryName = "$(ic_bin runc)"
    Root = "$d/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$d/cni/bin"
    conf_dir = "$d/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$d/certs.d"
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/opt"
# The v1 shim runtime is unused, but the tasks service needs it loaded; its default state
# directory is /run/containerd/runc.
[plugins."io.containerd.runtime.v1.linux"]
  runtime_root = "$d/runc-v1"
[plugins."io.containerd.nri.v1.nri"]
  disable = false
  socket_path = "$d/nri.sock"
  plugin_path = "$d/nri/plugins"
  plugin_config_path = "$d/nri/conf.d"
$(ic_nri_timeouts '"')
EOF
}

ic_nri_timeouts() {
  local q=$1
  if [ -n "${IC_NRI_REGISTRATION_TIMEOUT:-}" ]; then
    echo "  plugin_registration_timeout = $q$IC_NRI_REGISTRATION_TIMEOUT$q"
  fi
  if [ -n "${IC_NRI_REQUEST_TIMEOUT:-}" ]; then
    echo "  plugin_request_timeout = $q$IC_NRI_REQUEST_TIMEOUT$q"
  fi
}

# containerd's built-in default validator (NRI >= 0.12): with IC_NRI_VALIDATOR=1, a container no
# image-compat plugin took part in is refused unless its pod tolerates the plugin's absence.
ic_nri_validator_v3() {
  [ "${IC_NRI_VALIDATOR:-}" = 1 ] || return 0
  cat <<EOF
[plugins.'io.containerd.nri.v1.nri'.default_validator]
  enable = true
  required_plugins = ['image-compat']
  tolerate_missing_plugins_annotation = '$IC_TOLERATION'
EOF
}

ic_containerd_start() {
  local dir version=$2 host
  dir=$(ic_abspath "$1")
  case $version in
    2.1 | 1.7) ;;
    2.3 | main)
      ic_runtime_available "$version" ||
        { ic_log "containerd $version is not installed ($(ic_shared_runtimes) missing)"; return 1; } ;;
    *) ic_log "ic_containerd_start: VERSION must be 2.1, 1.7, 2.3 or main, not $version"; return 1 ;;
  esac
  # Unix socket paths are limited to 108 bytes; the shims' own live under /run/containerd/s.
  if [ $((${#dir} + 20)) -gt 107 ]; then
    ic_log "$dir is too long for a unix socket path"
    return 1
  fi
  ic_stack_init
  if ic_pid_of "$dir/containerd.pid" "$dir/config.toml" >/dev/null; then
    ic_log "containerd in $dir is already running"
    return 1
  fi
  if [ -f "$dir/version" ] && [ "$(cat "$dir/version")" != "$version" ]; then
    # containerd 2.x migrates its metadata; 1.7 cannot read it back.
    ic_log "$dir was used by containerd $(cat "$dir/version"); use another directory for $version"
    return 1
  fi
  mkdir -p "$dir"/{root,state,tmp,runc,opt,cdi,certs.d,cni/bin,cni/net.d,nri/plugins,nri/conf.d}
  echo "$version" >"$dir/version"
  if [ "$version" = 1.7 ]; then
    ic_containerd_config_v2 "$dir" >"$dir/config.toml"
  else
    ic_containerd_config_v3 "$dir" >"$dir/config.toml"
  fi
  for host in ${IC_REGISTRIES[@]+"${IC_REGISTRIES[@]}"}; do
    ic_containerd_plain_http "$dir" "$host"
  done
  IC_STARTED+=("containerd $dir")
  ic_containerd_launch "$dir" || return 1
  if ! grep -qxF "$IC_PAUSE_IMAGE" <<<"$(ic_ctr "$dir" images ls -q)"; then
    ic_build_image "$dir/pause" "$IC_PAUSE_IMAGE" "" '["/bin/sleep","2147483647"]' >/dev/null
    ic_import_image "$dir" "$dir/pause" "$IC_PAUSE_IMAGE"
  fi
}

# Starts the daemon on an existing configuration and waits for its gRPC and NRI sockets.
ic_containerd_launch() {
  local dir=$1 bin pid
  bin=$(ic_bin "containerd-$(ic_containerd_version "$dir")")
  rm -f "$dir/containerd.sock" "$dir/containerd.sock.ttrpc" "$dir/nri.sock"
  # PATH: containerd finds its shim there, and must find this version's. TMPDIR: 1.7 makes
  # temporary mounts there (2.1 uses `temp`), which keeps them under DIR.
  PATH="$bin:$PATH" TMPDIR="$dir/tmp" XDG_RUNTIME_DIR='' \
    "$bin/containerd" --config "$dir/config.toml" >>"$dir/containerd.log" 2>&1 &
  pid=$!
  disown "$pid"
  echo "$pid" >"$dir/containerd.pid"
  ic_daemon_ready containerd "$pid" "$dir/containerd.log" ic_containerd_ready "$dir"
}

ic_containerd_ready() {
  [ -S "$1/containerd.sock" ] && [ -S "$1/nri.sock" ] && ic_ctr "$1" version >/dev/null 2>&1
}

# ic_daemon_ready NAME PID LOG READY DIR: waits until `READY DIR` succeeds; fails (with the log's
# tail) when the daemon exits first or IC_WAIT_SECONDS pass.
ic_daemon_ready() {
  local name=$1 pid=$2 log=$3 ready=$4 dir=$5 i
  for ((i = 0; i < IC_WAIT_SECONDS * 10; i++)); do
    if ic_gone "$pid"; then
      tail -n 40 "$log" >&2
      ic_log "$name exited at start-up (log: $log)"
      return 1
    fi
    "$ready" "$dir" && return 0
    sleep 0.1
  done
  tail -n 40 "$log" >&2
  ic_log "$name in $dir not ready within ${IC_WAIT_SECONDS}s"
  return 1
}

# ic_daemon_kill NAME PIDFILE MARK: stops the daemon PIDFILE names, if it still runs (MARK: see
# ic_pid_of).
ic_daemon_kill() {
  local pid
  if pid=$(ic_pid_of "$2" "$3"); then
    ic_kill_wait "$pid" 15 || { ic_log "$1 pid $pid will not die"; return 1; }
  fi
}

ic_containerd_restart() {
  local dir
  dir=$(ic_abspath "$1")
  ic_daemon_kill containerd "$dir/containerd.pid" "$dir/config.toml" || return 1
  ic_containerd_launch "$dir"
}

ic_containerd_stop() {
  local dir
  dir=$(ic_abspath "$1")
  ic_daemon_kill containerd "$dir/containerd.pid" "$dir/config.toml" || return 1
  rm -f "$dir/containerd.pid"
  ic_containerd_sweep "$dir"
  ic_forget "containerd $dir"
}

# The shims of the instance at DIR: found by their -address argument, which is this instance's
# socket, whether or not the daemon is still alive.
ic_containerd_shims() {
  local f pid name
  # One grep over every command line (-z: arguments are NUL-separated, -x: one whole argument).
  for f in $(grep -lzxF -- "$1/containerd.sock" /proc/[0-9]*/cmdline 2>/dev/null || true); do
    pid=${f#/proc/}
    pid=${pid%/cmdline}
    name=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
    case $name in containerd-shim*) ic_gone "$pid" || echo "$pid" ;; esac
  done
}

# Pids of what the instance at DIR runs: its shims and every container's processes, found as
# ic_containerd_sweep finds them (tests check they are gone after a stop).
ic_containerd_pids() {
  local nsroot id
  ic_containerd_shims "$1"
  for nsroot in "$1"/runc/*; do
    [ -d "$nsroot" ] || continue
    for id in $("$(ic_bin runc)" --root "$nsroot" list -q 2>/dev/null); do
      # The JSON format is a flat array of pids.
      "$(ic_bin runc)" --root "$nsroot" ps --format json "$id" 2>/dev/null | tr -d '[]' |
        tr ',' '\n' || true
    done
  done
}

# Mount points at or under DIR, deepest first.
ic_mounts_under() {
  local dir=$1
  awk -v d="$dir" '{
      m = $5
      gsub(/\\040/, " ", m); gsub(/\\011/, "\t", m); gsub(/\\012/, "\n", m); gsub(/\\134/, "\\", m)
      if (m == d || index(m, d "/") == 1) print m
    }' /proc/self/mountinfo | tac
}

# ic_kill_all WHAT LISTER DIR: SIGKILL to every pid `LISTER DIR` prints; waits until none is left.
ic_kill_all() {
  local what=$1 lister=$2 dir=$3 pid i left=
  for pid in $("$lister" "$dir"); do kill -KILL "$pid" 2>/dev/null || true; done
  for ((i = 0; i < 50; i++)); do
    left=$("$lister" "$dir")
    [ -z "$left" ] && return 0
    sleep 0.1
  done
  ic_log "$what of $dir still alive: $left"
  return 1
}

# Unmounts everything mounted at or under DIR (lazily when busy); fails if anything stays.
ic_unmount_under() {
  local dir=$1 m left
  while read -r m; do
    [ -n "$m" ] || continue
    umount "$m" 2>/dev/null || umount -l "$m" || ic_log "cannot unmount $m"
  done < <(ic_mounts_under "$dir")
  left=$(ic_mounts_under "$dir")
  [ -z "$left" ] || { ic_log "still mounted under $dir: $left"; return 1; }
}

# Kills what the instance at DIR left running and unmounts what it mounted. Runs after the
# daemon is gone (stopped or crashed); everything it touches is found through DIR.
ic_containerd_sweep() {
  local dir=$1 runc nsroot id addr
  runc=$(ic_bin runc)
  # Containers first, while their shims still reap them. runc's state root is this instance's
  # own (runtime option Root), so `list` sees nothing of other containerds.
  for nsroot in "$dir"/runc/*; do
    [ -d "$nsroot" ] || continue
    for id in $("$runc" --root "$nsroot" list -q 2>/dev/null); do
      "$runc" --root "$nsroot" delete --force "$id" >/dev/null 2>&1 ||
        ic_log "runc delete $id failed"
    done
  done
  ic_kill_all shims ic_containerd_shims "$dir" || return 1
  # Shim sockets live outside DIR, under /run/containerd/s; each bundle records its own (2.1 in
  # bootstrap.json, 1.7 in address).
  for addr in $(cat "$dir"/state/io.containerd.runtime.v2.task/*/*/{address,bootstrap.json} \
    2>/dev/null | grep -oE 'unix:///run/containerd/s/[0-9a-f]+' || true); do
    rm -f "${addr#unix://}"
  done
  ic_unmount_under "$dir" || return 1
  # The state directory is runtime state (/run on a node): clearing it is what a reboot does,
  # and keeps a later start on DIR from finding stale bundles. Images in root/ stay.
  rm -rf --one-file-system "$dir/state" "$dir/runc" "$dir/tmp"
  rm -f "$dir/containerd.sock" "$dir/containerd.sock.ttrpc" "$dir/nri.sock"
}

# ---------------------------------------------------------------------------------------------
# Images

# ic_build_image LAYOUT NAME:TAG [VARIANT [CMD_JSON]]: LAYOUT then holds that one image; a
# non-empty VARIANT makes its content, and so its digest, distinct. Prints the digest.
ic_build_image() {
  "$IC_PYTHON" "$IC_LIB_DIR/oci-image.py" image "$1" "$2" --busybox "$(ic_bin busybox)" \
    --variant "${3:-}" --cmd "${4:-[\"/bin/sh\"]}"
}

ic_build_index() {
  "$IC_PYTHON" "$IC_LIB_DIR/oci-image.py" index "$1" "$2" --busybox "$(ic_bin busybox)" \
    --variant "${3:-}" --cmd "${4:-[\"/bin/sh\"]}"
}

# The digest of the image a layout holds (index.json's only entry).
ic_layout_digest() {
  "$IC_PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' \
    "$1/index.json"
}

# ic_push_image LAYOUT REF: by digest, since `path:tag` is ambiguous when the tag is NAME:TAG.
# The whole graph goes (for an index: every platform's manifest and blobs).
ic_push_image() {
  local layout=$1 ref=$2 digest out
  digest=$(ic_layout_digest "$layout")
  out=$("$(ic_bin oras)" cp --no-tty --from-oci-layout "$layout@$digest" "$ref" \
    --to-plain-http 2>&1) || { echo "$out" >&2; ic_log "push of $layout to $ref failed"; return 1; }
}

# ic_import_image DIR LAYOUT REF: REF must name its registry host (docker.io/library/x:1,
# localhost/x:1): CRI looks images up by the normalized name, which ctr does not write for it.
ic_import_image() {
  local dir=$1 layout=$2 ref=$3 host=${3%%/*}
  if [ "$host" = "$ref" ] || { [[ $host != *[.:]* ]] && [ "$host" != localhost ]; }; then
    ic_log "ic_import_image: $ref has no registry host; CRI would not find it (try localhost/$ref)"
    return 1
  fi
  # --local: the 2.1 transfer service would also work; the local path behaves the same in both
  # versions.
  "$IC_PYTHON" "$IC_LIB_DIR/oci-image.py" archive "$layout" "$ref" |
    ic_ctr "$dir" images import --local - >/dev/null
}

# ---------------------------------------------------------------------------------------------
# CRI, through the test driver examples/cri.rs

# Builds the driver once and sets IC_CRI, unless IC_CRI already names a binary.
ic_cri_build() {
  local root target
  [ -n "${IC_CRI:-}" ] && return 0
  root=$(cd "$IC_LIB_DIR/../.." && pwd)
  (cd "$root" && cargo build --quiet --example cri) || { ic_log "cannot build examples/cri"; return 1; }
  target=$(cd "$root" && cargo metadata --format-version 1 --no-deps |
    "$IC_PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  IC_CRI=$target/debug/examples/cri
}

# ic_cri DIR COMMAND ARGS...: the driver against the containerd at DIR (see `cri --help`).
ic_cri() {
  local dir=$1
  shift
  "$IC_CRI" --socket "$(ic_cri_socket "$dir")" "$@"
}

# ic_json KEY < JSON: one top-level field of a JSON object; strings bare, the rest as JSON.
ic_json() {
  "$IC_PYTHON" -c '
import json, sys
text = sys.stdin.read()
try:
    v = json.loads(text).get(sys.argv[1])
except (ValueError, AttributeError):
    sys.exit("ic_json: not a JSON object: %r" % text[:200])
print(v if isinstance(v, str) else json.dumps(v))' "$1"
}

# ic_cri_wait DIR CONTAINER_ID STATE [SECONDS]: polls until the container is in STATE (e.g.
# CONTAINER_RUNNING, CONTAINER_EXITED); on a timeout prints its last status and fails.
ic_cri_wait() {
  local dir=$1 id=$2 want=$3 secs=${4:-10} i status=
  for ((i = 0; i < secs * 10; i++)); do
    status=$(ic_cri "$dir" status "$id") || return 1
    [ "$(ic_json state <<<"$status")" = "$want" ] && return 0
    sleep 0.1
  done
  echo "$status" >&2
  ic_log "container $id not $want within ${secs}s"
  return 1
}

# ---------------------------------------------------------------------------------------------
# The image-compat NRI plugin

# Builds the binary once and sets IC_IMAGE_COMPAT, unless it already names one.
ic_image_compat_build() {
  local root target
  [ -n "${IC_IMAGE_COMPAT:-}" ] && return 0
  root=$(cd "$IC_LIB_DIR/../.." && pwd)
  (cd "$root" && cargo build --quiet --bin image-compat) || { ic_log "cannot build image-compat"; return 1; }
  target=$(cd "$root" && cargo metadata --format-version 1 --no-deps |
    "$IC_PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  IC_IMAGE_COMPAT=$target/debug/image-compat
}

# ic_nri_connections CONTAINERD_DIR: how many times that containerd has put an external plugin
# in use (it logs `plugin "10-name" connected` (1.7), `... connected and synchronized` (2.1)
# once the plugin is in its list, which is after Configure and Synchronize).
ic_nri_connections() {
  local n
  n=$(grep -cE 'msg="plugin \\"[^\\"]+\\" connected' "$(ic_runtime_log "$1")" 2>/dev/null) || true
  echo "${n:-0}"
}

# ic_nri_wait_connections CONTAINERD_DIR N [SECONDS [PID]]: until the count reaches N; fails
# early when PID (the plugin) exits.
ic_nri_wait_connections() {
  local cdir=$1 want=$2 secs=${3:-10} pid=${4:-} i
  for ((i = 0; i < secs * 10; i++)); do
    [ "$(ic_nri_connections "$cdir")" -ge "$want" ] && return 0
    [ -n "$pid" ] && ic_gone "$pid" && break
    sleep 0.1
  done
  ic_log "containerd in $cdir did not put the plugin in use (connections: $(ic_nri_connections "$cdir"), wanted $want)"
  return 1
}

# ic_plugin_new_log DIR: moves the plugin log aside (plugin.log.1, .2, ...), so that DIR/plugin.log
# holds one plugin process's lines; a process still running keeps writing to its old file.
ic_plugin_new_log() {
  local dir=$1 n=1
  [ -s "$dir/plugin.log" ] || return 0
  while [ -e "$dir/plugin.log.$n" ]; do n=$((n + 1)); done
  mv "$dir/plugin.log" "$dir/plugin.log.$n"
}

# ic_plugin_prelaunch DIR CONTAINERD_DIR CONFIG [ARGS...]: the plugin as containerd launches
# pre-installed ones: an executable NN-image-compat in its plugin_path (NN: IC_PLUGIN_IDX, default
# 10) and CONFIG copied to plugin_config_path/NN-image-compat.conf, which containerd hands the
# plugin in Configure. ARGS go on the plugin's command line. Takes effect at containerd's next
# start (ic_containerd_start or ic_containerd_restart).
ic_plugin_prelaunch() {
  local dir cdir config=$3 name
  dir=$(ic_abspath "$1")
  cdir=$(ic_abspath "$2")
  shift 3
  ic_image_compat_build
  name=${IC_PLUGIN_IDX:-10}-image-compat
  mkdir -p "$cdir/nri/plugins" "$cdir/nri/conf.d"
  cp "$config" "$cdir/nri/conf.d/$name.conf"
  # containerd runs the file with no arguments, no PATH and only NRI_PLUGIN_* in the
  # environment, and drops its output; exec keeps the recorded pid the plugin's own.
  {
    echo '#!/bin/bash'
    echo "# image-compat, pre-launched by the containerd in $cdir (written by integration/lib/stack.sh)."
    printf 'echo $$ >%q\n' "$dir/plugin.pid"
    printf 'IMAGE_COMPAT_LOG=%q' "${IMAGE_COMPAT_LOG:-info}"
    # A test fault (src/nri/guard.rs), passed on when set.
    if [ -n "${IMAGE_COMPAT_FAULT_VALIDATE_DELAY:-}" ]; then
      printf ' IMAGE_COMPAT_FAULT_VALIDATE_DELAY=%q' "$IMAGE_COMPAT_FAULT_VALIDATE_DELAY"
    fi
    printf ' exec'
    printf ' %q' "$IC_IMAGE_COMPAT" nri-plugin "$@"
    printf ' >>%q 2>&1\n' "$dir/plugin.log"
  } >"$cdir/nri/plugins/$name.tmp"
  chmod 755 "$cdir/nri/plugins/$name.tmp"
  # Renamed into place: containerd never sees a half-written executable.
  mv "$cdir/nri/plugins/$name.tmp" "$cdir/nri/plugins/$name"
  ic_forget "plugin $dir"
  IC_STARTED+=("plugin $dir")
}

# ic_plugin_pid DIR: the running plugin whose pid file is in DIR (either mode).
ic_plugin_pid() { ic_pid_of "$1/plugin.pid" nri-plugin; }

ic_plugin_kill() {
  local pid i
  pid=$(ic_plugin_pid "$1") || { ic_log "no plugin runs for $1"; return 1; }
  kill -KILL "$pid"
  for ((i = 0; i < 50; i++)); do ic_gone "$pid" && return 0; sleep 0.1; done
  ic_log "plugin pid $pid survived SIGKILL"
  return 1
}

# ic_plugin_start DIR CONTAINERD_DIR ARGS...: the plugin in external mode on that containerd's
# NRI socket, logging to DIR/plugin.log; returns once containerd calls it for new containers.
ic_plugin_start() {
  local dir cdir=$2 pid before store
  dir=$(ic_abspath "$1")
  shift 2
  ic_image_compat_build
  before=$(ic_nri_connections "$cdir")
  ic_plugin_new_log "$dir"
  # CRI-O has no image store to ask: its config (containerd.socket "") turns the resolver off.
  store=(--containerd-socket "$cdir/containerd.sock")
  if ic_is_crio "$cdir"; then store=(); fi
  IMAGE_COMPAT_LOG=${IMAGE_COMPAT_LOG:-info} "$IC_IMAGE_COMPAT" nri-plugin \
    --socket "$cdir/nri.sock" ${store[@]+"${store[@]}"} "$@" \
    >"$dir/plugin.log" 2>&1 &
  pid=$!
  # Out of the job table, as the registry: no "Killed" notice when a test kills it on purpose.
  disown "$pid"
  echo "$pid" >"$dir/plugin.pid"
  IC_STARTED+=("plugin $dir")
  # Configure alone is not enough: containerd calls a plugin only once it has synchronized it,
  # and a container created before that would go unchecked.
  ic_nri_wait_connections "$cdir" $((before + 1)) 10 "$pid" && return 0
  ic_log "the plugin did not get in use by the runtime; its log:"
  cat "$dir/plugin.log" >&2
  return 1
}

ic_plugin_stop() {
  local dir pid
  dir=$(ic_abspath "$1")
  pid=$(ic_pid_of "$dir/plugin.pid" nri-plugin) && ic_kill_wait "$pid" 10
  ic_forget "plugin $dir"
}

# ic_sample_images WORK REGISTRY: two busybox images in REGISTRY with compatibility specs:
# demo/gpu-app:1 needs an NVIDIA GPU (PCI vendor 10de; attached with image-compat attach-spec),
# demo/portable-app:1 runs on Linux 4+ (attached with oras). Fails if this node has a 10de
# device, since the first would then be compatible here.
ic_sample_images() {
  local work=$1 reg=$2 name
  ic_image_compat_build
  mkdir -p "$work"
  "$IC_IMAGE_COMPAT" features --sources pci -o json >"$work/pci.json"
  if grep -q '"vendor": *"10de"' "$work/pci.json"; then
    ic_log "this node has an NVIDIA device: the 'incompatible' sample image would run here"
    return 1
  fi
  cat >"$work/needs-gpu.yaml" <<'SPEC'
version: v1alpha1
compatibilities:
- description: "CUDA build: needs an NVIDIA GPU"
  tag: gpu
  rules:
  - name: "nvidia gpu"
    matchFeatures:
    - feature: pci.device
      matchExpressions:
        vendor: {op: In, value: ["10de"]}
SPEC
  cat >"$work/runs-anywhere.yaml" <<'SPEC'
version: v1alpha1
compatibilities:
- description: "portable build: Linux 4.x or newer"
  rules:
  - name: "kernel"
    matchFeatures:
    - feature: kernel.version
      matchExpressions:
        major: {op: Ge, value: ["4"]}
SPEC
  for name in gpu-app:1 portable-app:1; do
    ic_build_image "$work/images/$name" "demo/$name" "$name" >/dev/null
    ic_push_image "$work/images/$name" "$reg/demo/$name"
  done
  "$IC_IMAGE_COMPAT" attach-spec --plain-http="$reg" --image "$reg/demo/gpu-app:1" "$work/needs-gpu.yaml" >/dev/null
  (cd "$work" && "$(ic_bin oras)" attach --plain-http \
    --artifact-type application/vnd.nfd.image-compatibility.v1alpha1 "$reg/demo/portable-app:1" \
    "runs-anywhere.yaml:application/vnd.nfd.image-compatibility.spec.v1alpha1+yaml" >/dev/null)
}

# ic_sample_stack WORK VERSION: builds image-compat and the CRI driver, starts a registry and
# containerd VERSION under WORK, pushes the sample images and pulls them through CRI. Sets
# IC_SAMPLE_REG (host:port of the registry) and IC_SAMPLE_CD (the containerd directory).
ic_sample_stack() {
  local work=$1 port name
  ic_stack_init
  ic_image_compat_build
  ic_cri_build
  port=$(ic_free_port)
  IC_SAMPLE_REG=127.0.0.1:$port
  IC_SAMPLE_CD=$work/containerd
  ic_registry_start "$work/registry" "$port"
  ic_containerd_start "$IC_SAMPLE_CD" "$2"
  ic_sample_images "$work/samples" "$IC_SAMPLE_REG"
  for name in gpu-app:1 portable-app:1; do
    ic_cri "$IC_SAMPLE_CD" pull "$IC_SAMPLE_REG/demo/$name" >/dev/null
  done
}

# ic_try_container CONTAINERD_DIR POD IMAGE: creates and starts a container of IMAGE in a new
# pod; prints `refused: MESSAGE` or `running ID`, and the container's image-compat annotations.
ic_try_container() {
  local cd=$1 pod ctr out
  pod=$(ic_cri "$cd" run-pod "$2" --namespace demo | ic_json pod_id)
  if ! out=$(ic_cri "$cd" create "$pod" "$2" "$3" --cmd sleep 600 2>&1); then
    echo "refused: $out"
    return 0
  fi
  ctr=$(ic_json container_id <<<"$out")
  ic_cri "$cd" start "$ctr" >/dev/null
  ic_cri_wait "$cd" "$ctr" CONTAINER_RUNNING 10
  echo "running $ctr"
  ic_cri "$cd" status "$ctr" | ic_json spec_annotations | "$IC_PYTHON" -c '
import json, sys
for k, v in sorted(json.load(sys.stdin).items()):
    if k.startswith("image-compat.io/"):
        print("  %s=%s" % (k, v))'
}

# ---------------------------------------------------------------------------------------------

# ic_work_dir NAME: makes IC_WORK, a new directory under TMPDIR, and an exit trap that stops
# everything this shell started (ic_teardown) and removes it; IC_KEEP=1 keeps it. Its path is
# short on purpose: containerd's sockets live under it, and unix socket paths max out at 108
# bytes.
ic_work_dir() {
  IC_WORK=$(mktemp -d "${TMPDIR:-/tmp}/ic-$1.XXXXXX")
  IC_WORK_NAME=$1
  trap ic_work_exit EXIT
  trap 'exit 130' INT TERM
}

ic_work_exit() {
  local rc=$?
  ic_teardown || rc=1
  if [ "${IC_KEEP:-}" = 1 ]; then
    echo "$IC_WORK_NAME: kept $IC_WORK" >&2
  else
    rm -rf --one-file-system "$IC_WORK"
  fi
  exit "$rc"
}

# Stops, newest first, everything this shell started and has not stopped. Keeps going on errors
# so one failure does not leave the rest running; returns non-zero if any stop failed.
ic_teardown() {
  local i entry rc=0
  for ((i = ${#IC_STARTED[@]} - 1; i >= 0; i--)); do
    entry=${IC_STARTED[i]}
    case $entry in
      "registry "*) ic_registry_stop "${entry#registry }" || rc=1 ;;
      "plugin "*) ic_plugin_stop "${entry#plugin }" || rc=1 ;;
      "containerd "*) ic_containerd_stop "${entry#containerd }" || rc=1 ;;
      "crio "*) ic_crio_stop "${entry#crio }" || rc=1 ;;
    esac
  done
  return "$rc"
}
