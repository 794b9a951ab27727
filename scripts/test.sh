#!/usr/bin/env bash
# Builds and runs the whole test suite, as CI does (.ci/run calls exactly this):
#  1. the release build, warnings as errors, CUDA kernels compiled for sm_80/sm_90a when
#     nvcc is present, all ctest tests;
#  2. a CPU-only AddressSanitizer + UndefinedBehaviorSanitizer build, all ctest tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# The demo model (all-MiniLM-L6-v2) feeds the real-model tests; without network access
# those tests report SKIPPED with the reason, the rest still run.
scripts/fetch-demo-model.sh || echo "test.sh: could not fetch the demo model; tests that need it will be skipped"
jobs=$(nproc)
# ctest runs nproc tests at once, so each test gets one OpenMP thread: nproc tests with
# nproc threads each would oversubscribe the cores, and OpenMP barriers then wait on
# descheduled threads (measured: an evaluation 10x slower). The multi-threaded CPU paths
# are still exercised: test_ops_cpu sets 3 threads itself and checks the results do not
# depend on the thread count.
export OMP_NUM_THREADS=1

echo "== release build (-Werror) =="
cmake -S . -B build-ci -DCMAKE_BUILD_TYPE=Release -DMNRL_WERROR=ON
cmake --build build-ci -j"$jobs"
(cd build-ci && ctest --output-on-failure -j"$jobs")

echo "== ASan + UBSan build =="
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMNRL_WERROR=ON \
      -DMNRL_SANITIZE=ON -DMNRL_CUDA=OFF -DMNRL_LINK_BINARY=OFF
cmake --build build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
   UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j"$jobs")
echo "== all tests passed =="

# ---- 3. MPI build: the CPU backend across ranks under mpirun (issue 6) ------------------------
# -DMNRL_MPI=ON; `ctest -L mpi` runs the tests labelled mpi: tests/mpi/*.c under
# `mpirun --oversubscribe -np 2` and `-np 4`, and test_dist (which launches itself under
# mpirun). One test at a time: four ranks already oversubscribe a small CI machine.
echo "== MPI build (-DMNRL_MPI=ON), ctest -L mpi =="
cmake -S . -B build-mpi -DCMAKE_BUILD_TYPE=Release -DMNRL_WERROR=ON -DMNRL_MPI=ON \
      -DMNRL_CUDA=OFF -DMNRL_LINK_BINARY=OFF
cmake --build build-mpi -j"$jobs"
(cd build-mpi && ctest -L mpi --output-on-failure)
echo "== MPI tests passed =="

# ---- 4. Fuzzing: the parsers under libFuzzer with ASan+UBSan (issue 8) -------------------------
# scripts/fuzz.sh builds tests/fuzz/fuzz_*.c with clang into build-fuzz and runs each of the
# 7 targets for MNRL_FUZZ_SECONDS (60 by default, as the issue asks) from its committed corpus,
# one target per core at a time (measured: 4 min 8 s on 2 cores, plus about 30 s to build); any
# finding fails CI.
echo "== fuzz: ${MNRL_FUZZ_SECONDS:-60} s per target =="
scripts/fuzz.sh "${MNRL_FUZZ_SECONDS:-60}"
echo "== fuzz: no finding =="
