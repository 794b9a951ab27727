#!/usr/bin/env bash
# session.sh PACK_DIR OUT_DIR — everything a lent GPU session checks, in one call, most
# valuable first, each part under its own time limit so that a slow part cannot starve
# the others (the device time of a session is short):
#   1. the GPU suite without sanitizers (tests/gpu/run.sh --prebuilt PACK_DIR);
#   2. the benchmark against sentence-transformers (bench/gpu.sh, batches 32 128 512);
#   3. a per-kernel time table of one bert-base training step at batch 128 (ncu, the
#      kernels' GPU time with the clocks left alone; bench/kernel_table.py sums by kernel);
#   4. the sanitizer runs of the suite (GPU_SANITIZE=only), with what time is left.
# OUT_DIR gets suite.txt, bench.txt, bench_gpu.json, kernels.txt, sanitize.txt and
# logs.tar.gz (every log); PACK_DIR is a pack of scripts/gpu-pack.sh. Limits (seconds):
# GRADCACHE_TIMEOUT (0: off; else the cached batch-65,536 benchmark runs after the main one,
# bench_cached.txt), MAXBATCH_TIMEOUT (0: off; else bench/max_batch.sh finds the largest
# uncached batch of ours and of sentence-transformers, max_batch.txt), SUITE_TIMEOUT (240), BENCH_TIMEOUT (300), PROFILE_TIMEOUT (90), SANITIZE_TIMEOUT (120),
# GPU_TIMEOUT per suite run (90). SANITIZE_TWINS (a regex) limits the sanitizer runs to
# some twins.
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
if [ "${GRADCACHE_TIMEOUT:-0}" -gt 0 ]; then
    # Cached MNRL at a giant batch against batch 512 in one call (issue 7 item 3).
    BENCH_MINI_BATCH=512 BENCH_COMMIT=$(cat "$pack/commit") BENCH_WORK=/tmp/mnrl-bench-cached \
        timeout "$GRADCACHE_TIMEOUT" bash bench/gpu.sh "$pack/bin/mnrl_cuda" "512 65536" 5 2 2>&1 |
        tee "$out/bench_cached.txt"
fi
if [ "${MAXBATCH_TIMEOUT:-0}" -gt 0 ]; then
    # The largest batch each side fits without caching (issue 7 item 5).
    BENCH_COMMIT=$(cat "$pack/commit") BENCH_WORK=/tmp/mnrl-maxbatch timeout "$MAXBATCH_TIMEOUT" \
        bash bench/max_batch.sh "$pack/bin/mnrl_cuda" 512 65536 3 2>&1 | tee "$out/max_batch.txt"
fi
ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
if [ -f /tmp/mnrl-bench/b128.json ] && [ -n "$ncu" ]; then
    # Step 2 of 3: skip the launches of step 1 (and the start-up), time those of step 2.
    sed 's/"max_steps": [0-9]*/"max_steps": 3/; s#"dir": "[^"]*"#"dir": "/tmp/mnrl-bench/profile"#' \
        /tmp/mnrl-bench/b128.json >/tmp/mnrl-bench/profile.json
    timeout "${PROFILE_TIMEOUT:-90}" "$ncu" --clock-control none --metrics gpu__time_duration.sum --csv \
        --launch-skip "${PROFILE_SKIP:-500}" --launch-count "${PROFILE_COUNT:-500}" \
        "$pack/bin/mnrl_cuda" train /tmp/mnrl-bench/profile.json >/tmp/mnrl-bench/ncu.csv 2>/tmp/mnrl-bench/ncu.log
    python3 bench/kernel_table.py /tmp/mnrl-bench/ncu.csv 2>&1 | tee "$out/kernels.txt"
fi
GPU_TWINS=${SANITIZE_TWINS:-.} GPU_SANITIZE=only timeout "${SANITIZE_TIMEOUT:-120}" bash tests/gpu/run.sh --prebuilt "$pack" 2>&1 | tee "$out/sanitize.txt"
tar -czf "$out/logs.tar.gz" -C /tmp mnrl-gpu-logs $(cd /tmp && ls -d mnrl-maxbatch/*.log mnrl-maxbatch/*.json mnrl-bench/*.log mnrl-bench/*.json mnrl-bench/*.csv mnrl-bench/ours-*/metrics.jsonl 2>/dev/null)
