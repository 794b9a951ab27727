#!/usr/bin/env bash
# session.sh PACK_DIR OUT_DIR — everything a lent GPU session checks, most valuable first,
# each part under its own time limit (seconds) so that a slow part cannot starve the
# others; a limit of 0 skips the part. The defaults fit one call of at most 9 minutes, so
# that a session's 15 minutes of device time (machine start included) leave room for a
# second, shorter call (tests/gpu/README.md):
#   1. SUITE_TIMEOUT (90): the GPU suite without sanitizers (tests/gpu/run.sh --prebuilt),
#      GPU_TIMEOUT (60) per run of it;                                  -> suite.txt
#   2. BENCH_TIMEOUT (180): ours vs sentence-transformers, bench/gpu.sh at batch 32, 128
#      and 512;                                                -> bench.txt, bench_gpu.json
#   3. PROFILE_TIMEOUT (100): per-kernel GPU time of one bert-base training step at each
#      batch of PROFILE_BATCHES ("128 512": the table of earlier runs, and the shape of the
#      8x and 40%-MFU targets; 32 is the other batch part 2 prepares) (ncu, clocks left
#      alone; bench/kernel_table.py keeps the launches of exactly one step, between two
#      optimizer launches); needs part 2's inputs                         -> kernels.txt
#   3b. DETAIL_TIMEOUT (0): ncu --set detailed (throughput, memory, occupancy, warp stall
#      reasons) on one launch each of DETAIL_KERNELS (default: the largest items of the
#      batch-128 table) in a step at batch DETAIL_BATCH (128), one training run per kernel;
#      needs part 2's inputs (a warm machine keeps them)           -> kernels_detail.txt
#   4. GRADCACHE_TIMEOUT (100): cached MNRL, batch 65,536 in chunks of 512 against batch
#      512, 3 timed steps after 1 (issue 7 item 3);                    -> bench_cached.txt
#   4b. LOSS_TIMEOUT (30): the MNRL loss alone at the cached batch's shape (65,536 anchors,
#      131,072 candidates, H 768), fp32 fmas against split-bf16 tensor cores in one run,
#      bench_gpu_loss;                                                   -> loss.txt
#   4c. ATTENTION_TIMEOUT (40): ours' attention against cuDNN's and FlashAttention's
#      variable-length attention (through torch) on the same NLI lengths at batch 128 and
#      512, forward and backward (bench/attention.py; issue 7: keep the faster) -> attention.txt
#   5. MAXBATCH_TIMEOUT (0): the largest uncached batch of each side, bench/max_batch.sh
#      (issue 7 item 5);                                                 -> max_batch.txt
#   6. SANITIZE_TIMEOUT (0): the suite under compute-sanitizer memcheck and racecheck
#      (SANITIZE_TWINS, a regex, limits it to some twins);               -> sanitize.txt
# and parts.txt (each part's seconds and exit status: what the next session budgets by),
# logs.tar.gz (every log). PACK_DIR is a pack of scripts/gpu-pack.sh.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
pack=$(realpath "$1")
out=$(realpath -m "$2")
mkdir -p "$out" /tmp/mnrl-gpu-logs
cd "$root"
nvidia-smi >"$out/nvidia-smi.txt" 2>&1
export GPU_LOGS=/tmp/mnrl-gpu-logs GPU_TIMEOUT=${GPU_TIMEOUT:-60} BENCH_COMMIT=$(cat "$pack/commit")
. tests/gpu/prebuilt-env.sh
prebuilt_env "$pack" >/dev/null
bin=$pack/bin/mnrl_cuda

# part LIMIT FILE COMMAND...: runs COMMAND under the time limit, output also into OUT/FILE,
# and its seconds and exit status into OUT/parts.txt (124: the limit); nothing when LIMIT
# is 0.
part() {
    local limit=$1 file=$2 start=$SECONDS status
    shift 2
    [ "$limit" -gt 0 ] || return 0
    timeout "$limit" "$@" 2>&1 | tee "$out/$file"
    status=${PIPESTATUS[0]}
    echo "$file: $((SECONDS - start)) s of $limit, exit $status" | tee -a "$out/parts.txt"
}

GPU_SANITIZE=0 part "${SUITE_TIMEOUT:-90}" suite.txt bash tests/gpu/run.sh --prebuilt "$pack"
BENCH_WORK=/tmp/mnrl-bench part "${BENCH_TIMEOUT:-180}" bench.txt bash bench/gpu.sh "$bin" "32 128 512" 10 3
cp /tmp/mnrl-bench/bench_gpu.json "$out/" 2>/dev/null
ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
# profile_config BATCH: /tmp/mnrl-bench/profile_BATCH.json, three steps of part 2's config
# at that batch (a table's capture starts after most of the start-up and spans step 2);
# fails when part 2 did not make it.
profile_config() {
    [ -f "/tmp/mnrl-bench/b$1.json" ] &&
        sed 's/"max_steps": [0-9]*/"max_steps": 3/; s#"dir": "[^"]*"#"dir": "/tmp/mnrl-bench/profile_'"$1"'"#' \
            "/tmp/mnrl-bench/b$1.json" >"/tmp/mnrl-bench/profile_$1.json"
}
if [ "${PROFILE_TIMEOUT:-100}" -gt 0 ] && [ -n "$ncu" ]; then
    start=$SECONDS
    for batch in ${PROFILE_BATCHES:-128 512}; do
        left=$((${PROFILE_TIMEOUT:-100} - (SECONDS - start)))
        [ "$left" -gt 10 ] && profile_config "$batch" || continue
        timeout "$left" "$ncu" --clock-control none --metrics gpu__time_duration.sum --csv \
            --launch-skip "${PROFILE_SKIP:-200}" --launch-count "${PROFILE_COUNT:-900}" \
            "$bin" train "/tmp/mnrl-bench/profile_$batch.json" >"/tmp/mnrl-bench/ncu_$batch.csv" \
            2>"/tmp/mnrl-bench/ncu_$batch.log"
        echo "ncu batch $batch: $((SECONDS - start)) s of ${PROFILE_TIMEOUT:-100}, exit $?" | tee -a "$out/parts.txt"
        { echo "==== batch $batch"; python3 bench/kernel_table.py "/tmp/mnrl-bench/ncu_$batch.csv" 2>&1; } |
            tee -a "$out/kernels.txt"
    done
fi
if [ "${DETAIL_TIMEOUT:-0}" -gt 0 ] && [ -n "$ncu" ] && profile_config "${DETAIL_BATCH:-128}"; then
    start=$SECONDS
    for kernel in ${DETAIL_KERNELS:-layernorm_backward_kernel tc_dkdv_kernel tc_dq_kernel tc_forward_kernel \
        adamw_kernel scatter_add_rows_kernel}; do
        left=$((DETAIL_TIMEOUT - (SECONDS - start)))
        [ "$left" -gt 10 ] || break
        echo "==== $kernel (its third launch)" >>"$out/kernels_detail.txt"
        timeout "$left" "$ncu" --clock-control none --set detailed -k "regex:$kernel" --launch-skip 2 \
            --launch-count 1 "$bin" train "/tmp/mnrl-bench/profile_${DETAIL_BATCH:-128}.json" \
            --set output.overwrite=true >>"$out/kernels_detail.txt" 2>&1
    done
    echo "ncu detail: $((SECONDS - start)) s of $DETAIL_TIMEOUT" | tee -a "$out/parts.txt"
fi
BENCH_MINI_BATCH=512 BENCH_WORK=/tmp/mnrl-bench-cached \
    part "${GRADCACHE_TIMEOUT:-100}" bench_cached.txt bash bench/gpu.sh "$bin" "512 65536" 3 1
part "${LOSS_TIMEOUT:-30}" loss.txt "$pack/bin/bench_gpu_loss" 65536 1 768 3
part "${ATTENTION_TIMEOUT:-40}" attention.txt python3 bench/attention.py "$pack/bin/bench_gpu_attention" \
    --json "$out/attention.json"
BENCH_WORK=/tmp/mnrl-maxbatch part "${MAXBATCH_TIMEOUT:-0}" max_batch.txt bash bench/max_batch.sh "$bin" 512 65536 3
GPU_TWINS=${SANITIZE_TWINS:-.} GPU_SANITIZE=only \
    part "${SANITIZE_TIMEOUT:-0}" sanitize.txt bash tests/gpu/run.sh --prebuilt "$pack"
tar -czf "$out/logs.tar.gz" -C /tmp mnrl-gpu-logs $(cd /tmp && ls -d mnrl-maxbatch/*.log mnrl-maxbatch/*.json \
    mnrl-bench*/*.log mnrl-bench*/*.json mnrl-bench/*.csv mnrl-bench*/ours-*/metrics.jsonl 2>/dev/null)
