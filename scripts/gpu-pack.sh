#!/usr/bin/env bash
# A prebuilt GPU build for a machine that has CUDA but not our Debian libraries (issue 5
# item 4: the GPU suite runs "given only the repository and a prebuilt build folder").
#
#   scripts/gpu-pack.sh [PACK_DIR] [CUDA_ARCH]        defaults: build-gpu-pack 90a
#
# Builds PACK_DIR-build (Release, -Werror, CUDA for CUDA_ARCH, no MPI): mnrl_cuda, the GPU
# twins of the emulated kernel tests, test_dist_nccl and the bench_gpu_* timers; copies
# them into PACK_DIR/bin and packs the shared libraries that a CUDA machine lacks
# (jansson, utf8proc, the OpenMP OpenBLAS with its gfortran/quadmath, libgomp, the CUDA
# runtime) into PACK_DIR/libs.tar.xz, compressed so that the folder fits the device tool's
# 64 MiB. The CUDA libraries too big to carry (cuBLASLt, NCCL) are taken from the GPU
# machine (tests/gpu/prebuilt-env.sh).
# PACK_DIR/source_dir records the source path that the tests have compiled in.
# On the GPU machine: bash tests/gpu/run.sh --prebuilt PACK_DIR
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
pack="$(realpath -m "${1:-$root/build-gpu-pack}")"
arch="${2:-90a}"
build="$pack-build"  # beside the pack, which then travels alone
mkdir -p "$build"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DMNRL_WERROR=ON -DMNRL_CUDA=ON -DMNRL_MPI=OFF \
      -DMNRL_LINK_BINARY=OFF -DCMAKE_CUDA_ARCHITECTURES="$arch" >"$build/configure.log"
# The GPU timers: one target per bench/bench_gpu_*.c, as bench/CMakeLists.txt makes them.
timers=$(cd "$root/bench" && ls bench_gpu_*.c | sed 's/\.c$//')
cmake --build "$build" -j"$(nproc)" --target mnrl_cuda gpu_tests test_dist_nccl $timers >"$build/build.log"
rm -rf "$pack/bin" "$pack/libs"
mkdir -p "$pack/bin" "$pack/libs"
cp "$build/mnrl_cuda" "$build/tests/test_dist_nccl" "$pack/bin/"
for timer in $timers; do cp "$build/bench/$timer" "$pack/bin/"; done
find "$build/tests/emu" -maxdepth 1 -name 'gpu_*' -type f -executable -exec cp {} "$pack/bin/" \;
# The libraries the binaries load from outside the CUDA toolkit, plus the CUDA runtime.
ldd "$pack/bin/mnrl_cuda" |
    awk '$3 ~ /^\// {print $3}' |
    grep -E '/lib(jansson|utf8proc|openblas|gfortran|quadmath|gomp|cudart)\.' |
    while read -r lib; do cp -L "$lib" "$pack/libs/"; done
for needed in libjansson libutf8proc libopenblas libcudart; do
    ls "$pack/libs/$needed".* >/dev/null 2>&1 || { echo "gpu-pack.sh: $needed not found by ldd" >&2; exit 1; }
done
tar -C "$pack/libs" -cJf "$pack/libs.tar.xz" .
rm -rf "$pack/libs"
echo "$root" >"$pack/source_dir"
git -C "$root" rev-parse --short HEAD >"$pack/commit" 2>/dev/null || echo unknown >"$pack/commit"
echo "gpu-pack.sh: $pack ($(du -sh "$pack" | cut -f1)), sm_$arch, commit $(cat "$pack/commit")"
