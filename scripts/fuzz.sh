#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ one after another, each for a given time (default 10 min),
# keeping each target's corpus under fuzz/corpus/<target> (seeded from tests/fixtures on the first
# run) and any crash under fuzz/artifacts/<target>. Installs cargo-fuzz if missing; needs the
# nightly toolchain (rustup toolchain install nightly).
#
#   scripts/fuzz.sh                    every target, 10 minutes each
#   scripts/fuzz.sh 300                every target, 5 minutes each
#   scripts/fuzz.sh 60 spec hook_input  those targets, 1 minute each
#   scripts/fuzz.sh --install          only install cargo-fuzz
#
# Prints one summary line per target (executions, seconds, corpus size, crashes) and exits 1 if
# any target found a crash.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi
[ "${1:-}" = "--install" ] && exit 0

seconds=${1:-600}
shift || true
all=(spec features_file compat manifest nri_frame hook_input)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")

# Seeds: the fixtures each target's parser reads in the test suite, and fuzz/seeds/TARGET (hand
# written where tests/fixtures has none: manifests, hook input, NRI frames). Copied once: the
# corpus is libFuzzer's to grow and minimise afterwards.
seed() {
  local target=$1 dir=fuzz/corpus/$1
  [ -d "$dir" ] && return 0
  mkdir -p "$dir"
  {
    case $target in
      spec) find tests/fixtures/specs tests/fixtures/nfd examples/invalid examples -maxdepth 3 \
              -name '*.yaml' ! -name 'features.yaml' ;;
      features_file) find examples/features tests/fixtures/nfd/specs tests/fixtures/hosts -name '*.json' ! -name '*labels*' ! -name 'expected_report.json' -o -name 'features.yaml' ;;
      compat) find tests/fixtures/compat -name '*.json' ;;
    esac
    if [ -d "fuzz/seeds/$target" ]; then find "fuzz/seeds/$target" -type f; fi
  } | while read -r f; do cp "$f" "$dir/$(sha256sum "$f" | cut -c1-16)"; done
}

failed=0
for t in "${targets[@]}"; do
  seed "$t"
  mkdir -p "fuzz/artifacts/$t"
  log=$(mktemp)
  # Built first, so that the seconds printed are the fuzzing's alone.
  cargo +nightly fuzz build "$t" >"$log" 2>&1 || { cat "$log"; exit 1; }
  start=$(date +%s)
  # -rss_limit_mb: a spec of any shape must stay well under 64 MiB; 512 leaves room for
  # libFuzzer's own bookkeeping while still catching an unbounded expansion.
  if ! cargo +nightly fuzz run "$t" "fuzz/corpus/$t" -- \
      -max_total_time="$seconds" -rss_limit_mb=512 -max_len=1048576 -timeout=10 \
      -artifact_prefix="fuzz/artifacts/$t/" -print_final_stats=1 >"$log" 2>&1; then
    failed=1
  fi
  end=$(date +%s)
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  crashes=$(find "fuzz/artifacts/$t" -type f | wc -l)
  corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
  echo "$t: $execs executions in $((end - start)) s, corpus $corpus files, $crashes crash files"
  if [ "$crashes" -gt 0 ]; then tail -40 "$log"; failed=1; fi
  rm -f "$log"
done
exit $failed
