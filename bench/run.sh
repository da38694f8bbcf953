#!/usr/bin/env bash
# Benchmark kwatch against ss and lsof with N loopback connections in a throwaway network namespace.
# Usage: bench/run.sh N [--rounds R] [--tui-secs S] [--budget S] [--timeout S]   (as root; see bench/README.md)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin kwatch
cargo build --release --quiet --manifest-path bench/Cargo.toml --target-dir target
exec target/release/kwatch-bench "$@"
