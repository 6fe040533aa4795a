#!/usr/bin/env bash
# Times every hostile spec shape of examples/hostile.rs (each at the largest size read, 256 KiB,
# and at 1 MiB where the shape grows with the size: refused for it) through the release
# binary, one process per run: `image-compat validate-spec FILE` and `image-compat evaluate
# --spec FILE --features FILE`, with wall time (of the process, start to exit) and peak memory (GNU time's maximum RSS). The
# target (issue 12): any spec of at most 1 MiB rejected or evaluated within 100 ms and 64 MiB.
# Prints a Markdown table (BENCHMARKS.md, "Hostile specs"); exits 1 if a run misses the target.
#
#   scripts/bench-hostile.sh            every shape
#   scripts/bench-hostile.sh alias-bomb merge-keys
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /usr/bin/time ] || { echo "needs GNU time (apt-get install time)" >&2; exit 2; }
cargo build --release --locked --quiet --bin image-compat --example hostile
bin=target/release/image-compat
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
target/release/examples/hostile --write "$dir"
shapes=("$@")
if [ ${#shapes[@]} -eq 0 ]; then
  mapfile -t shapes < <(cd "$dir" && ls -- *.yaml | sed 's/\.yaml$//')
fi

missed=0
echo "| shape | bytes | command | exit | time (ms) | peak RSS (MiB) | outcome |"
echo "|---|---|---|---|---|---|---|"
for s in "${shapes[@]}"; do
  f=$dir/$s.yaml
  for cmd in validate-spec evaluate; do
    if [ "$cmd" = validate-spec ]; then
      args=(validate-spec "$f")
    else
      args=(evaluate --spec "$f" --features "$dir/features.json")
    fi
    set +e
    start=$(date +%s%N)
    /usr/bin/time -f '%M' -o "$dir/time" "$bin" --log-level error "${args[@]}" >"$dir/out" 2>"$dir/err"
    code=$?
    end=$(date +%s%N)
    set -e
    # GNU time writes "Command exited with non-zero status N" first when the exit is not 0.
    kib=$(tail -n1 "$dir/time")
    ms=$(( (end - start) / 1000000 ))
    mib=$(awk -v k="$kib" 'BEGIN { printf "%.1f", k / 1024 }')
    # The first line saying what happened, shortened, with table pipes escaped.
    outcome=$(grep -m1 -hE 'verdict|error|valid|refused|invalid|too large' "$dir/out" "$dir/err" | cut -c1-90 | sed 's/|/\\|/g' || true)
    echo "| $s | $(stat -c %s "$f") | $cmd | $code | $ms | $mib | ${outcome:-} |"
    if [ "$code" -gt 2 ] || [ "$ms" -gt 100 ] || [ "$kib" -gt $((64 * 1024)) ]; then
      missed=1
    fi
  done
done
exit $missed
