# gpu_memory.sh — sourced by bench/gpu.sh and bench/max_batch.sh.
# peak_memory FILE COMMAND...: runs COMMAND while sampling the GPU's memory in use every
# 50 ms (nvidia-smi); FILE gets "baseline peak" in MiB; returns COMMAND's exit status.
peak_memory() {
    local file=$1
    shift
    local before
    before=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 50 >"$file.samples" &
    local sampler=$!
    local rc=0
    "$@" || rc=$?
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    echo "$before $(sort -n "$file.samples" | tail -1)" >"$file"
    return $rc
}
