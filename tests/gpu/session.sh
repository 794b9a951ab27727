#!/usr/bin/env bash
# session.sh PACK_DIR OUT_DIR — everything a lent GPU session checks, in one call, most
# valuable first, each part under its own time limit so that a slow part cannot starve
# the others (the device time of a session is short):
#   1. the GPU suite without sanitizers (tests/gpu/run.sh --prebuilt PACK_DIR);
#   2. the benchmark against sentence-transformers (bench/gpu.sh, batches 32 128 512);
#   3. the sanitizer runs of the suite (GPU_SANITIZE=only), with what time is left.
# OUT_DIR gets suite.txt, bench.txt, bench_gpu.json, sanitize.txt and logs.tar.gz (every
# log); PACK_DIR is a pack of scripts/gpu-pack.sh. Limits (seconds): SUITE_TIMEOUT (240),
# BENCH_TIMEOUT (300), SANITIZE_TIMEOUT (120), GPU_TIMEOUT per suite run (90).
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
pack=$(realpath "$1")
out=$(realpath -m "$2")
mkdir -p "$out" /tmp/mnrl-gpu-logs
cd "$root"
nvidia-smi >"$out/nvidia-smi.txt" 2>&1
export GPU_LOGS=/tmp/mnrl-gpu-logs GPU_TIMEOUT=${GPU_TIMEOUT:-90}
GPU_SANITIZE=0 timeout "${SUITE_TIMEOUT:-240}" bash tests/gpu/run.sh --prebuilt "$pack" 2>&1 | tee "$out/suite.txt"
. tests/gpu/prebuilt-env.sh
prebuilt_env "$pack" >/dev/null
BENCH_COMMIT=$(cat "$pack/commit") BENCH_WORK=/tmp/mnrl-bench timeout "${BENCH_TIMEOUT:-300}" bash bench/gpu.sh "$pack/bin/mnrl_cuda" "32 128 512" 10 3 2>&1 |
    tee "$out/bench.txt"
cp /tmp/mnrl-bench/bench_gpu.json "$out/" 2>/dev/null
GPU_SANITIZE=only timeout "${SANITIZE_TIMEOUT:-120}" bash tests/gpu/run.sh --prebuilt "$pack" 2>&1 | tee "$out/sanitize.txt"
tar -czf "$out/logs.tar.gz" -C /tmp mnrl-gpu-logs $(cd /tmp && ls -d mnrl-bench/*.log mnrl-bench/*.json mnrl-bench/ours-*/metrics.jsonl 2>/dev/null)
