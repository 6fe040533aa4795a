# shellcheck shell=bash
# What the packaging scripts (deb.sh, image.sh) share: the crate's version, the binary they
# package, and their usage text. Sourced; HERE is the checkout's root.

# ic_release_version HERE: the version in Cargo.toml.
ic_release_version() {
  awk -F'"' '/^version = /{print $2; exit}' "$1/Cargo.toml"
}

# ic_release_binary HERE [BINARY]: BINARY when given, else the release build (built now).
ic_release_binary() {
  if [ -n "${2:-}" ]; then
    echo "$2"
    return
  fi
  (cd "$1" && cargo build --release --locked --bin image-compat >&2)
  echo "$1/target/release/image-compat"
}

# ic_usage SCRIPT: the script's header comment, up to its `set -euo` line.
ic_usage() {
  sed -n '2,/^set -euo/p' "$1" | sed '$d; s/^# \{0,1\}//'
}
