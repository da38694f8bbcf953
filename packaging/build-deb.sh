#!/usr/bin/env bash
# Builds the Debian package target/debian/kwatch_VERSION-1_ARCH.deb: the release binary, the man pages and shell
# completions it generates from its own command line (kwatch generate), the systemd unit and its defaults file.
# Needs cargo-deb (`cargo install cargo-deb --locked`). Extra arguments go to cargo deb.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-deb >/dev/null || { echo "build-deb.sh: cargo-deb not found: cargo install cargo-deb --locked" >&2; exit 2; }

target=$(cargo metadata --format-version 1 --no-deps --locked | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
cargo build --release --locked
out="$target/release/generated"
rm -rf "$out"
mkdir -p "$out/completions"
"$target/release/kwatch" generate man "$out/man"
gzip -9n "$out"/man/*.1 # Debian policy 12.1: compressed, without a timestamp
"$target/release/kwatch" generate completions bash >"$out/completions/kwatch.bash"
"$target/release/kwatch" generate completions zsh >"$out/completions/_kwatch"
"$target/release/kwatch" generate completions fish >"$out/completions/kwatch.fish"
# The binary just built is what the generated files describe: package it, stripped of the line tables the
# release profile keeps for profiling (30 MiB -> 5 MiB).
cargo deb --no-build --locked --strip "$@"
