#!/usr/bin/env bash
# End-to-end suite helpers: one "combo" (a containerd version and a plugin mode) and what its
# scenarios do through CRI: pods, containers expected refused or running, OCI spec annotations,
# the plugin's decision lines, registry request counts, timings.
#
# Sourced by integration/e2e.sh after integration/lib/stack.sh. A combo's state lives in
# variables set by e2e_combo_init and in files under its directory, never in the shell's memory
# alone: every scenario runs in a subshell, so that a failed check ends that scenario only.
#   E2E_V        containerd version (2.1 | 1.7)     E2E_MODE   external | prelaunched
#   E2E_DIR      the combo's directory              CD, PD, RD containerd, plugin, registry dirs
#   REG          the combo's registry (host:port)   E2E_NODE   node name the plugin is given
# Image names come from the setup's images.env: IMG_<kind> is repo:tag, DIG_<kind> the digest,
# ART_<kind> the artifact digest; img KIND prints the full reference in this combo's registry.

E2E_NODE=e2e-node
# What CRI returns when an NRI plugin refuses CreateContainer; containerd 2.1 may put
# "failed to check if this is a checkpoint image: " in front.
E2E_NRI_REFUSAL='failed to create containerd container: failed to get NRI adjustment for container: rpc error: code = FailedPrecondition desc = '
# Longest CreateContainer the suite accepts when an answer needs the registry's deadline: the
# plugin's deadline is 1 s (half of containerd's 2 s request timeout), so "well under 2 s".
E2E_SLOW_MS=${E2E_SLOW_MS:-1600}

now_us() { echo "${EPOCHREALTIME/./}"; }

say() { echo "    $*"; }
fail() {
  echo "    FAIL: $*" >&2
  exit 1
}

# of PREFIX KIND: one of the setup's variables (IMG_compat, DIG_compat, ART_compat).
of() {
  local var=$1_$2
  echo "${!var}"
}
img() { echo "$REG/$(of IMG "$1")"; }
dig() { of DIG "$1"; }
art() { of ART "$1"; }
# repo KIND: the image's repository in the registry (e2e/compat).
repo() {
  local ref
  ref=$(of IMG "$1")
  echo "${ref%:*}"
}

e2e_combo_init() {
  E2E_V=$1
  E2E_MODE=$2
  E2E_DIR=$3
  CD=$E2E_DIR/containerd
  PD=$E2E_DIR/plugin
  RD=$E2E_DIR/registry
  mkdir -p "$PD"
}

# ---------------------------------------------------------------------------------------------
# The plugin, in either mode

# plugin_config MODE ON_REGISTRY_ERROR: the config file for these settings (the rest at the
# defaults, plus the YAML lines in E2E_EXTRA_CONFIG); prints its path.
plugin_config() {
  local file=$PD/config-$1-$2.yaml
  cat >"$file" <<EOF
# image-compat e2e: $E2E_V $E2E_MODE
mode: $1
onRegistryError: $2
nodeName: $E2E_NODE
registry:
  plainHttp: ["$REG"]
containerd:
  socket: $CD/containerd.sock
${E2E_EXTRA_CONFIG:-}
EOF
  echo "$file"
}

# plugin_use MODE ON_REGISTRY_ERROR: makes the plugin run with that config. Nothing happens when
# it already does; else external mode restarts the plugin, pre-launched mode installs the config
# and restarts containerd, which is the only way to give a pre-launched plugin a new config.
# Either way the plugin starts with an empty cache.
plugin_use() {
  local config current=$PD/config-current
  config=$(plugin_config "$1" "$2")
  if [ -f "$current" ] && cmp -s "$config" "$current" && ic_plugin_pid "$PD" >/dev/null; then
    return 0
  fi
  if [ "$E2E_MODE" = external ]; then
    ic_plugin_stop "$PD"
    ic_plugin_start "$PD" "$CD" --config "$config" --log-json
  else
    ic_plugin_prelaunch "$PD" "$CD" "$config" --log-json
    containerd_restart
  fi
  cp "$config" "$current"
}

# containerd_restart: restarts the daemon (containers keep running) and waits until the plugin
# is in use again: an external plugin reconnects by itself, a pre-launched one is launched anew.
containerd_restart() {
  local before
  before=$(ic_nri_connections "$CD")
  [ "$E2E_MODE" = prelaunched ] && ic_plugin_new_log "$PD"
  ic_containerd_restart "$CD"
  if [ "$E2E_MODE" = external ]; then
    # Only when one runs: a scenario may restart containerd with the plugin down.
    if ic_plugin_pid "$PD" >/dev/null; then
      ic_nri_wait_connections "$CD" $((before + 1)) 20 || fail "the plugin did not reconnect"
    fi
  else
    plugin_wait_prelaunched
  fi
}

# containerd has finished starting pre-installed plugins when its NRI socket exists (it listens
# only after); the plugin then has been configured, or it failed.
plugin_wait_prelaunched() {
  local i
  for ((i = 0; i < 100; i++)); do
    grep -q '"subscribing"' "$PD/plugin.log" 2>/dev/null && return 0
    sleep 0.1
  done
  tail -n 20 "$PD/plugin.log" >&2 2>/dev/null || true
  grep -i 'pre-installed\|image-compat' "$CD/containerd.log" | tail -n 10 >&2 || true
  fail "the pre-launched plugin was not configured by containerd"
}

# The plugin's decision lines (JSON) of the current plugin process, one JSON object per line
# holding the decision's fields; with POD (namespace/name) and CONTAINER, only that container's.
decisions() {
  "$IC_PYTHON" - "$PD/plugin.log" "${1:-}" "${2:-}" <<'EOF'
import json, sys
path, pod, ctr = sys.argv[1:4]
try:
    lines = open(path, errors="replace").readlines()
except FileNotFoundError:
    lines = []
for line in lines:
    try:
        f = json.loads(line).get("fields", {})
    except ValueError:
        continue
    if f.get("message") != "decision":
        continue
    if pod and (f.get("pod") != pod or f.get("container") != ctr):
        continue
    print(json.dumps(f))
EOF
}

# decision NAMESPACE/POD CONTAINER: the one decision line of that container (fails without one).
decision() {
  local d
  d=$(decisions "$1" "$2")
  [ -n "$d" ] || fail "no decision logged for $1 $2"
  [ "$(wc -l <<<"$d")" = 1 ] || fail "several decisions logged for $1 $2: $d"
  echo "$d"
}

# ---------------------------------------------------------------------------------------------
# CRI

# pod NAME [NAMESPACE]: a new pod (host network); prints its id.
pod() {
  local out
  out=$(ic_cri "$CD" run-pod "$1" --namespace "${2:-e2e}") || fail "RunPodSandbox $1 failed"
  ic_json pod_id <<<"$out"
}

# create POD_ID NAME IMAGE: CreateContainer as the kubelet sends it. Sets CREATED_ID (empty when
# refused), CREATE_ERR (the runtime's message) and CREATE_MS (wall time of the CRI client).
create() {
  local t0 out rc
  t0=$(now_us)
  out=$(ic_cri "$CD" create "$1" "$2" "$3" --cmd sleep 3600 2>&1) && rc=0 || rc=$?
  CREATE_MS=$((($(now_us) - t0) / 1000))
  CREATED_ID='' CREATE_ERR=''
  case $rc in
    0) CREATED_ID=$(ic_json container_id <<<"$out") ;;
    1) CREATE_ERR=$out ;;
    *) fail "CreateContainer $2 ($3) did not get an answer: $out" ;;
  esac
}

# expect_refused POD_ID NAMESPACE/POD NAME IMAGE MESSAGE_PREFIX [SUBSTRING...]: CreateContainer
# fails with the NRI refusal whose plugin message starts with MESSAGE_PREFIX and contains each
# SUBSTRING.
expect_refused() {
  local id=$1 podname=$2 name=$3 image=$4 prefix=$5 msg s
  shift 5
  create "$id" "$name" "$image"
  [ -z "$CREATED_ID" ] || fail "$name ($image) was created ($CREATED_ID); it should have been refused"
  msg=${CREATE_ERR#failed to check if this is a checkpoint image: }
  [[ $msg == "$E2E_NRI_REFUSAL"* ]] || fail "$name: not an NRI refusal: $CREATE_ERR"
  msg=${msg#"$E2E_NRI_REFUSAL"}
  [[ $msg == "$prefix"* ]] || fail "$name: refused with \"$msg\", expected it to start with \"$prefix\""
  for s in "$@"; do
    [[ $msg == *"$s"* ]] || fail "$name: refused with \"$msg\", expected it to contain \"$s\""
  done
  say "refused in ${CREATE_MS} ms: $name ($image): $msg"
  LAST_DECISION=$(decision "$podname" "$name")
}

# expect_created POD_ID NAMESPACE/POD NAME IMAGE: CreateContainer succeeds; sets ANN to the
# container's OCI spec annotations (JSON) and LAST_DECISION to its decision line, if any.
expect_created() {
  local id=$1 podname=$2 name=$3 image=$4
  create "$id" "$name" "$image"
  [ -n "$CREATED_ID" ] || fail "$name ($image) was refused: $CREATE_ERR"
  ANN=$(ic_cri "$CD" status "$CREATED_ID" | ic_json spec_annotations)
  LAST_DECISION=$(decisions "$podname" "$name")
}

# expect_running POD_ID NAMESPACE/POD NAME IMAGE: created (as above), then started and running.
expect_running() {
  expect_created "$@"
  ic_cri "$CD" start "$CREATED_ID" >/dev/null || fail "StartContainer $3 failed"
  ic_cri_wait "$CD" "$CREATED_ID" CONTAINER_RUNNING 20 || fail "$3 is not running"
  say "running, created in ${CREATE_MS} ms: $3 ($4) $(compat_annotations)"
}

# The image-compat.io/* annotations of ANN, as one line.
compat_annotations() {
  "$IC_PYTHON" -c '
import json, sys
a = json.loads(sys.argv[1] or "null") or {}
print(" ".join("%s=%s" % (k[len("image-compat.io/"):], json.dumps(v))
               for k, v in sorted(a.items()) if k.startswith("image-compat.io/")) or "(no image-compat annotations)")' "$ANN"
}

# ann KEY: one OCI spec annotation of the last created container ("" when absent).
ann() { ic_json "$1" <<<"$ANN" | sed 's/^null$//'; }

# expect_ann KEY VALUE | expect_ann KEY --prefix VALUE | expect_ann KEY --absent
expect_ann() {
  local key=image-compat.io/$1 got
  got=$(ann "$key")
  case ${2:-} in
    --absent) [ -z "$got" ] || fail "annotation $key is set ($got); expected none" ;;
    --prefix) [[ $got == "$3"* ]] || fail "annotation $key is \"$got\", expected \"$3...\"" ;;
    *) [ "$got" = "$2" ] || fail "annotation $key is \"$got\", expected \"$2\"" ;;
  esac
}

# expect_unchecked: the last created container carries no image-compat annotation.
expect_unchecked() {
  local key
  for key in compatible reason artifact; do expect_ann "$key" --absent; done
}

# field JSON KEY: one field of a decision line.
field() { ic_json "$2" <<<"$1"; }

# expect_answer cached|stale|fetched|deadline: how the decision's answer was obtained.
expect_answer() {
  local got
  got=$(field "$LAST_DECISION" answer)
  [ "$got" = "$1" ] || fail "decision answer is $got, expected $1: $LAST_DECISION"
}

expect_fast() {
  [ "$CREATE_MS" -lt "$E2E_SLOW_MS" ] || fail "CreateContainer took ${CREATE_MS} ms (limit ${E2E_SLOW_MS} ms)"
}

# containerd drops a plugin that does not answer within its request timeout and creates the
# container unchecked; it logs "failed to handle CreateContainer request" when it does.
expect_no_plugin_timeout() {
  local since=$1 lines
  lines=$(tail -n +"$((since + 1))" "$CD/containerd.log" | grep -E 'failed to handle CreateContainer|closing plugin' || true)
  [ -z "$lines" ] || fail "containerd gave up on the plugin: $lines"
}

log_lines() { wc -l <"$1" 2>/dev/null || echo 0; }

# Prints the tails of the combo's logs (a failed scenario's evidence).
dump_logs() {
  local f
  for f in "$PD/plugin.log" "$CD/containerd.log" "$RD/registry.log"; do
    [ -f "$f" ] || continue
    echo "    ---- ${f#"$E2E_DIR"/} (last ${E2E_LOG_TAIL:-40} lines) ----"
    # containerd's CRI start-up line is one huge config dump: cut long lines.
    tail -n "${E2E_LOG_TAIL:-40}" "$f" | cut -c1-400 | sed 's/^/    | /'
  done
}
