#!/usr/bin/env bash
# Times every hostile spec shape of examples/hostile.rs (each at the largest size read, 256 KiB,
# and at 1 MiB where the shape grows with the size: refused for it) through the release
# binary, one process per run: `image-compat validate-spec FILE` and `image-compat evaluate
# --spec FILE --features FILE`, with wall time (of the process, start to exit) and peak memory (GNU time's maximum RSS). The
# target (issue 12): any spec of at most 1 MiB rejected or evaluated within 100 ms and 64 MiB.
# Prints a Markdown table (BENCHMARKS.md, "Hostile specs"); exits 1 if a case misses the target
# (median time over 100 ms, or any run's peak RSS over 64 MiB).
#
#   scripts/bench-hostile.sh            every shape
#   scripts/bench-hostile.sh alias-bomb merge-keys
#   BIN=/path/to/image-compat scripts/bench-hostile.sh   another build (before/after in one run)
#   RUNS=9 scripts/bench-hostile.sh                      runs per case (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /usr/bin/time ] || { echo "needs GNU time (apt-get install time)" >&2; exit 2; }
cargo build --release --locked --quiet --bin image-compat --example hostile
bin=${BIN:-target/release/image-compat}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
target/release/examples/hostile --write "$dir"
shapes=("$@")
if [ ${#shapes[@]} -eq 0 ]; then
  mapfile -t shapes < <(cd "$dir" && ls -- *.yaml | sed 's/\.yaml$//')
fi

# Each run RUNS times (default 5): the median time is the figure (a shared machine's noise is
# in the max, shown too), the peak RSS the largest of the runs.
runs=${RUNS:-5}
missed=0
echo "| shape | bytes | command | exit | median ms | max ms | peak RSS (MiB) | outcome |"
echo "|---|---|---|---|---|---|---|---|"
for s in "${shapes[@]}"; do
  f=$dir/$s.yaml
  for cmd in validate-spec evaluate; do
    if [ "$cmd" = validate-spec ]; then
      args=(validate-spec "$f")
    else
      args=(evaluate --spec "$f" --features "$dir/features.json")
    fi
    times=() kib=0
    for ((r = 0; r < runs; r++)); do
      set +e
      start=$(date +%s%N)
      /usr/bin/time -f '%M' -o "$dir/time" "$bin" --log-level error "${args[@]}" >"$dir/out" 2>"$dir/err"
      code=$?
      end=$(date +%s%N)
      set -e
      times+=($(((end - start) / 1000000)))
      # GNU time writes "Command exited with non-zero status N" first when the exit is not 0.
      k=$(tail -n1 "$dir/time")
      [ "$k" -gt "$kib" ] && kib=$k
    done
    mapfile -t sorted < <(printf '%s\n' "${times[@]}" | sort -n)
    ms=${sorted[$((runs / 2))]}
    max=${sorted[$((runs - 1))]}
    mib=$(awk -v k="$kib" 'BEGIN { printf "%.1f", k / 1024 }')
    # The first line saying what happened, shortened, with table pipes escaped.
    outcome=$(grep -m1 -hE 'verdict|error|valid|refused|invalid|too large' "$dir/out" "$dir/err" | cut -c1-90 | sed 's/|/\\|/g' || true)
    echo "| $s | $(stat -c %s "$f") | $cmd | $code | $ms | $max | $mib | ${outcome:-} |"
    if [ "$code" -gt 2 ] || [ "$ms" -gt 100 ] || [ "$kib" -gt $((64 * 1024)) ]; then
      missed=1
    fi
  done
done
exit $missed
