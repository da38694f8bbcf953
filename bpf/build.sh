#!/usr/bin/env bash
# Rebuilds the embedded BPF object from its source (needs clang; `apt-get install clang`). The object is
# committed so that building kwatch needs no clang. -g keeps the BTF that CO-RE relocations need.
set -euo pipefail
cd "$(dirname "$0")/.."
clang -O2 -g -target bpf -c bpf/task_sockets.bpf.c -o src/proc/task_sockets.bpf.o
llvm-strip -d src/proc/task_sockets.bpf.o 2>/dev/null || true
ls -l src/proc/task_sockets.bpf.o
