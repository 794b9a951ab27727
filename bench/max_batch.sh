#!/usr/bin/env bash
# The largest MNRL batch each trainer fits on this GPU without caching (issue 7 item 5):
# ours (mnrl_cuda, loss.mini_batch_size 0) and sentence-transformers (bf16 autocast), same
# model and rows as bench/gpu.sh (random bert-base-uncased shape, SNLI triplets made
# distinct, max_seq_length 75, k = 1 hard negative, AdamW), two training steps per probe.
#
#   bench/max_batch.sh [MNRL_CUDA] [START] [LIMIT] [BISECT]
#       defaults: ./mnrl_cuda 512 65536 3; BENCH_WORK=DIR keeps the inputs and logs there
#
# Each side doubles the batch from START while two steps succeed (up to LIMIT), then
# halves the gap between the last success and the first failure BISECT times, so the
# answer is within START·2^k / 2^BISECT of the true limit. A probe fails when the trainer
# runs out of GPU memory (its log says "out of memory": ours' allocation error, torch's
# OutOfMemoryError); any other failure stops the script with the log's tail.
# sentence-transformers trains consecutive rows (batch i = rows i·B .. i·B+B-1 of the
# distinct rows; its sampler is not the point here), ours its own NoDuplicates batches of
# the same rows. Prints one line per probe with the peak memory nvidia-smi saw, and writes
# BENCH_WORK/max_batch.json.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$(realpath "${1:-$root/mnrl_cuda}")"
start="${2:-512}"
limit="${3:-65536}"
bisect="${4:-3}"
work="${BENCH_WORK:-$(mktemp -d)}"
mkdir -p "$work"
cd "$root"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
echo "commit: ${BENCH_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}; batches $start..$limit"
python3 bench/gpu_setup.py "$work" --min-rows $((2 * limit)) --distinct 2>&1 | grep -v 'Writing model shards'
. bench/gpu_memory.sh

# config BATCH: a two-step uncached training config for BATCH rows.
config() {
    cat >"$work/b$1.json" <<EOF
{"model": {"path": "$work/bert", "max_seq_length": 75, "precision": "bf16", "backend": "cuda"},
 "data": {"train": "$work/triplets.tsv", "cache_dir": "$work/cache"},
 "train": {"batch_size": $1, "max_steps": 2, "epochs": 100, "log_every": 1},
 "loss": {"mini_batch_size": 0},
 "eval": {"sts_file": ""},
 "output": {"dir": "$work/ours-$1", "overwrite": true}}
EOF
}

# train SIDE BATCH: two training steps of BATCH rows by SIDE (ours | st), output in its log.
train() {
    local side=$1 batch=$2
    if [ "$side" = ours ]; then
        "$bin" train "$work/b$batch.json" >"$work/ours-$batch.log" 2>&1
        return
    fi
    python3 -c "import sys; b=int(sys.argv[1]); print(*range(b)); print(*range(b, 2 * b))" "$batch" \
        >"$work/order-$batch.txt"
    python3 bench/st_reference.py "$work/b$batch.json" --order "$work/order-$batch.txt" --steps 2 \
        --warmup 1 --device cuda --bf16 --json "$work/st-$batch.json" >"$work/st-$batch.log" 2>&1
}

# probe SIDE BATCH: 0 when SIDE trains two steps of BATCH rows; prints the peak memory.
probe() {
    local side=$1 batch=$2 rc=0 before peak
    config "$batch"
    peak_memory "$work/$side-$batch.mem" train "$side" "$batch" || rc=$?
    read -r before peak <"$work/$side-$batch.mem"
    peak=$((peak - before))
    echo "$side batch $batch: $([ $rc = 0 ] && echo fits || echo "fails (exit $rc)"), peak $peak MiB"
    echo "$side $batch $rc $peak" >>"$work/probes.txt"
    [ $rc = 0 ] && return 0
    tail -3 "$work/$side-$batch.log" | sed 's/^/    /'
    grep -qi "out of memory" "$work/$side-$batch.log" && return 1
    echo "max_batch.sh: $side failed at batch $batch for another reason than memory (log: $work/$side-$batch.log)" >&2
    exit 1
}

# largest SIDE: the largest batch that fits, by doubling then bisection; 0 if START fails.
largest() {
    local side=$1 good=0 bad=0 batch=$start
    while [ "$batch" -le "$limit" ]; do
        if probe "$side" "$batch"; then good=$batch; batch=$((batch * 2)); else bad=$batch; break; fi
    done
    if [ "$good" -gt 0 ] && [ "$bad" -gt 0 ]; then
        for _ in $(seq 1 "$bisect"); do
            local mid=$(((good + bad) / 2))
            if probe "$side" "$mid"; then good=$mid; else bad=$mid; fi
        done
    fi
    echo "$side largest batch: $good (first failure: $([ "$bad" -gt 0 ] && echo "$bad" || echo none))"
    echo "$side $good $bad" >>"$work/largest.txt"
}

rm -f "$work/probes.txt" "$work/largest.txt"
largest ours
largest st
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
result = {"largest": {}, "probes": []}
for line in open(f"{work}/largest.txt"):
    side, good, bad = line.split()
    result["largest"][side] = {"fits": int(good), "first_failure": int(bad) or None}
for line in open(f"{work}/probes.txt"):
    side, batch, rc, peak = line.split()
    result["probes"].append({"side": side, "batch": int(batch), "fits": rc == "0", "peak_mib": int(peak)})
json.dump(result, open(f"{work}/max_batch.json", "w"), indent=1)
ours, st = result["largest"]["ours"]["fits"], result["largest"]["st"]["fits"]
print(f"largest uncached batch: ours {ours}, sentence-transformers {st}"
      + (f" ({ours / st:.1f}x)" if st else ""))
print(f"results: {work}/max_batch.json")
PY
