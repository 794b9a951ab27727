#!/usr/bin/env bash
# Builds (Release, CPU only) and runs the NoDuplicates sampler benchmark:
# one epoch over 1M triplet rows, batch 4096. Usage: bench/sampler.sh [BUILD_DIR] [ROWS] [BATCH]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build-bench}"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DMNRL_CUDA=OFF -DMNRL_LINK_BINARY=OFF >/dev/null
cmake --build "$build" --target bench_sampler -j2 >/dev/null
echo "machine: $(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "commit: $(git -C "$root" rev-parse --short HEAD)"
"$build/bench/bench_sampler" "${2:-1000000}" "${3:-4096}"
