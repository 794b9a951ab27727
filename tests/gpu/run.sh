#!/usr/bin/env bash
# run.sh — the GPU suite (issue 5 item 4), one command on a machine with a GPU:
#   bash tests/gpu/run.sh [BUILD_DIR]          (default build-gpu; run from anywhere)
#   bash tests/gpu/run.sh --prebuilt PACK_DIR  (a pack of scripts/gpu-pack.sh: no build,
#                                               no Debian libraries needed on the machine)
# 1. configures BUILD_DIR for the present GPU (CMAKE_CUDA_ARCHITECTURES=native) unless it
#    is already configured, builds mnrl_cuda, the GPU twins of tests/emu/test_*.c (target
#    gpu_tests: the emulated tests' sources linked against the nvcc-built kernels, each
#    comparing with ops_cpu) and test_dist_nccl; with --prebuilt, takes PACK_DIR/bin;
# 2. runs every twin, gpu_ops_cuda_step again with a 200-step loss trajectory,
#    test_dist_nccl, and tests/gpu/resume.sh (mnrl_cuda train on the GPU: two runs and a
#    run resumed from a checkpoint give the same steps and final model, bf16 and fp32);
# 3. runs every twin under compute-sanitizer memcheck and racecheck (GPU_SANITIZE=0 skips
#    them, GPU_SANITIZE=only runs nothing else). GPU_TIMEOUT (seconds, default 900) stops
#    any one run that takes longer, as a failure; GPU_TWINS (an extended regex) picks the
#    twins to run, e.g. GPU_TWINS='mnrl_loss|pooling'.
# Prints one line per run and a summary; exits 1 when anything failed.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PREBUILT=
if [ "${1:-}" = --prebuilt ]; then
    PREBUILT=$(realpath "${2:?run.sh: --prebuilt needs the pack folder of scripts/gpu-pack.sh}")
    BUILD=$PREBUILT
    BIN=$PREBUILT/bin
else
    BUILD=${1:-$ROOT/build-gpu}
    BIN=$BUILD/tests/emu
fi
LOGS=${GPU_LOGS:-$BUILD/gpu-logs}
SANITIZER=${COMPUTE_SANITIZER:-$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)}
failed=0
passed=0

# run NAME COMMAND...: one line, the log in $LOGS/NAME.log.
run() {
    local name=$1
    shift
    local start=$SECONDS
    if (cd "$BUILD" && timeout "${GPU_TIMEOUT:-900}" "$@") >"$LOGS/$name.log" 2>&1; then
        passed=$((passed + 1))
        echo "PASS  $name ($((SECONDS - start)) s): $(grep -E 'checks' "$LOGS/$name.log" | tail -1)"
    else
        failed=$((failed + 1))
        echo "FAIL  $name ($((SECONDS - start)) s), log $LOGS/$name.log:"
        tail -5 "$LOGS/$name.log" | sed 's/^/      /'
    fi
}

if ! nvidia-smi -L >/dev/null 2>&1; then
    echo "run.sh: no GPU visible (nvidia-smi -L failed); this suite needs one" >&2
    exit 1
fi
nvidia-smi -L
if [ -n "$PREBUILT" ]; then
    . "$ROOT/tests/gpu/prebuilt-env.sh"
    prebuilt_env "$PREBUILT" || exit 1
    dist_nccl="$BIN/test_dist_nccl"
    trainer="$BIN/mnrl_cuda"
else
    if [ ! -f "$BUILD/CMakeCache.txt" ]; then
        cmake -S "$ROOT" -B "$BUILD" -DMNRL_WERROR=ON -DMNRL_CUDA=ON -DMNRL_LINK_BINARY=OFF \
              -DCMAKE_CUDA_ARCHITECTURES=native || exit 1
    fi
    cmake --build "$BUILD" -j"$(nproc)" --target mnrl_cuda gpu_tests test_dist_nccl || exit 1
    dist_nccl="$BUILD/tests/test_dist_nccl"
    trainer="$BUILD/mnrl_cuda"
fi
mkdir -p "$LOGS"

twins=$(cd "$BIN" && ls gpu_* 2>/dev/null | grep -v '\.' | grep -E "${GPU_TWINS:-.}")
if [ "${GPU_SANITIZE:-1}" != only ]; then
    for twin in $twins; do
        run "$twin" "$BIN/$twin"
    done
    run gpu_ops_cuda_step.200-steps "$BIN/gpu_ops_cuda_step" 200
    run test_dist_nccl env NCCL_DEBUG=WARN "$dist_nccl"
    run gpu_resume bash "$ROOT/tests/gpu/resume.sh" "$trainer" "$ROOT"
fi

if [ "${GPU_SANITIZE:-1}" != 0 ]; then
    for twin in $twins; do
        for tool in memcheck racecheck; do
            run "$twin.$tool" "$SANITIZER" --tool "$tool" --error-exitcode 1 "$BIN/$twin"
        done
    done
fi
echo "GPU suite: $passed passed, $failed failed (logs in $LOGS)"
[ "$failed" -eq 0 ]
