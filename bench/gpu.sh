#!/usr/bin/env bash
# GPU training throughput, ours against sentence-transformers (bf16 autocast) on the same GPU,
# measured in one call (issue 7 items 1, 2 and 5).
#
#   bench/gpu.sh [MNRL_CUDA] [BATCHES] [STEPS] [WARMUP]
#       defaults: ./mnrl_cuda "32 128 512" 10 3; BENCH_WORK=DIR keeps the inputs and logs there
#   BENCH_MINI_BATCH=512 bench/gpu.sh ./mnrl_cuda "512 65536" 5 2
#       giant batches (issue 7 item 3): batches above BENCH_MINI_BATCH train cached
#       (loss.mini_batch_size = BENCH_MINI_BATCH) and are reported against the largest
#       uncached batch of the call; sentence-transformers runs only the uncached ones. The
#       rows are made distinct (gpu_setup.py --distinct) so that a batch can hold 65,536
#       rows without a repeated text, for every batch of the call alike.
#
# Runs on a bare GPU machine with python3, torch, transformers and sentence-transformers
# and no network; MNRL_CUDA may be a prebuilt binary (scripts/gpu-pack.sh). bench/gpu_setup.py
# makes a randomly initialised bert-base-uncased-shaped model and (anchor, positive,
# hard negative) rows of the SNLI sample; for each batch size, our trainer trains
# WARMUP + STEPS steps (max_seq_length 75, bf16, dropout on, AdamW + clip, evaluation
# off), then sentence-transformers trains on exactly the batches ours recorded in
# batch_order.txt (its NoDuplicates sampler's batches: tests/test_sampler.c) with bf16
# autocast (bench/st_reference.py). Only the last STEPS steps are timed, on both sides.
# Prints and writes BENCH_WORK/bench_gpu.json: sentences/s, real tokens/s, ms/step, MFU
# (useful FLOPs of the real tokens: 6 x non-embedding parameters per token plus
# 12 x layers x hidden x length per token of attention, over 989 TFLOP/s dense bf16),
# peak GPU memory (the most nvidia-smi saw in use during the run, minus what was in use
# before it; torch's own peak too for ST) and the ratio ours/ST.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$(realpath "${1:-$root/mnrl_cuda}")"
batches="${2:-32 128 512}"
steps="${3:-10}"
warmup="${4:-3}"
mini="${BENCH_MINI_BATCH:-0}"
work="${BENCH_WORK:-$(mktemp -d)}"
mkdir -p "$work"
cd "$root"
max_batch=$(printf '%s\n' $batches | sort -n | tail -1)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
commit="${BENCH_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
echo "commit: $commit; $steps timed steps after $warmup warm-up; batches $batches; mini-batch $mini"
setup_args=(--min-rows $((max_batch * (steps + warmup))))
[ "$mini" -gt 0 ] && setup_args+=(--distinct)
python3 bench/gpu_setup.py "$work" "${setup_args[@]}" 2>&1 | grep -v 'Writing model shards'

. bench/gpu_memory.sh

for batch in $batches; do
    cached=$([ "$mini" -gt 0 ] && [ "$batch" -gt "$mini" ] && echo 1 || echo 0)
    cat >"$work/b$batch.json" <<EOF
{"model": {"path": "$work/bert", "max_seq_length": 75, "precision": "bf16", "backend": "cuda"},
 "data": {"train": "$work/triplets.tsv", "cache_dir": "$work/cache"},
 "train": {"batch_size": $batch, "max_steps": $((steps + warmup)), "epochs": 100, "log_every": 1},
 "loss": {"mini_batch_size": $([ "$cached" = 1 ] && echo "$mini" || echo 0)},
 "eval": {"sts_file": ""},
 "output": {"dir": "$work/ours-$batch", "overwrite": true}}
EOF
    peak_memory "$work/mem-ours-$batch" "$bin" train "$work/b$batch.json" >"$work/ours-$batch.log" 2>&1 ||
        { tail -20 "$work/ours-$batch.log"; exit 1; }
    if [ "$cached" = 1 ]; then
        echo "batch $batch done (cached in chunks of $mini rows; sentence-transformers not run)"
        continue
    fi
    peak_memory "$work/mem-st-$batch" python3 bench/st_reference.py "$work/b$batch.json" \
        --order "$work/ours-$batch/batch_order.txt" --steps $((steps + warmup)) --warmup "$warmup" \
        --device cuda --bf16 --json "$work/st-$batch.json" >"$work/st-$batch.log" 2>&1 ||
        { tail -20 "$work/st-$batch.log"; exit 1; }
    echo "batch $batch done"
done

python3 - "$work" "$warmup" "$commit" "$mini" $batches <<'PY'
import json, os, sys
from transformers import AutoTokenizer
work, warmup, commit, mini = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
batches = [int(b) for b in sys.argv[5:]]
PEAK_FLOPS = 989e12  # H100 SXM dense bf16, the issue's yardstick
ALLNLI_SENTENCES = 1.67e6

cfg = json.load(open(f"{work}/bert/config.json"))
h, layers, inter = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"]
per_layer = 4 * h * h + 4 * h + 2 * h * inter + inter + h + 4 * h  # attention, FFN, two LayerNorms
n_nonembedding = layers * per_layer
tok = AutoTokenizer.from_pretrained(f"{work}/bert")
rows = [line.rstrip("\n").split("\t") for line in open(f"{work}/triplets.tsv", encoding="utf-8")][1:]
lengths = {}

def step_flops(idx):
    """Useful FLOPs of one training step: forward and backward over the real tokens."""
    new = list({text for i in idx for text in rows[i] if text not in lengths})
    if new:  # one batched call: a giant batch has hundreds of thousands of texts
        lengths.update(zip(new, map(len, tok(new, truncation=True, max_length=75)["input_ids"])))
    total = 0
    for i in idx:
        for text in rows[i]:
            n = lengths[text]
            total += 6 * n_nonembedding * n + 12 * layers * h * n * n
    return total

def order(batch):
    lines = [l for l in open(f"{work}/ours-{batch}/batch_order.txt") if l.strip() and not l.startswith("#")]
    return [[int(x) for x in l.split()] for l in lines]

def peak_mib(name):
    before, peak = (int(x) for x in open(f"{work}/mem-{name}").read().split())
    return peak - before

results = {"commit": commit, "gpu": None, "n_nonembedding": n_nonembedding, "mini_batch_size": mini,
           "batches": {}}
uncached = None  # the largest uncached batch so far: what a cached one is measured against
for b in batches:
    steps = order(b)
    recs = [json.loads(l) for l in open(f"{work}/ours-{b}/metrics.jsonl")]
    recs = [x for x in recs if "loss" in x and x["step"] > warmup]
    timed = steps[warmup:warmup + len(recs)]
    flops = sum(step_flops(idx) for idx in timed)
    texts = sum(len(idx) * len(rows[idx[0]]) for idx in timed)
    real_tokens = sum(lengths[t] for idx in timed for i in idx for t in rows[i])
    ours_s = sum(x["ms"] for x in recs) / 1000
    seconds = [("ours", ours_s)]
    st = json.load(open(f"{work}/st-{b}.json")) if os.path.exists(f"{work}/st-{b}.json") else None
    if st:
        results["gpu"] = st["gpu"]
        st_s = st["seconds"]
        st_compute_s = st_s - sum(st["tokenize_ms_per_step"]) / 1000
        seconds.append(("sentence-transformers", st_s))
    entry = {}
    for name, sec in seconds:
        entry[name] = {"seconds": sec, "ms_per_step": 1000 * sec / len(timed), "sentences_per_s": texts / sec,
                       "real_tokens_per_s": real_tokens / sec, "mfu": flops / sec / PEAK_FLOPS}
    entry["ours"]["peak_gpu_mib"] = peak_mib(f"ours-{b}")
    entry["ours"]["loss_first_last"] = [recs[0]["loss"], recs[-1]["loss"]]
    if not st:  # cached (BENCH_MINI_BATCH): sentences/s against the largest uncached batch
        v = entry["ours"]
        v["mini_batch_size"] = mini
        ref = results["batches"].get(str(uncached))
        line = (f"batch {b:5d} ours, cached by {mini} {v['sentences_per_s']:9.0f} sentences/s "
                f"{v['real_tokens_per_s']:10.0f} real tokens/s {v['ms_per_step']:8.1f} ms/step  "
                f"MFU {100 * v['mfu']:5.1f}%  peak {v['peak_gpu_mib']:6d} MiB")
        if ref:
            entry["sentences_per_s_vs_uncached"] = {"batch": uncached, "ratio": v["sentences_per_s"] /
                                                    ref["ours"]["sentences_per_s"]}
            line += f"; {100 * entry['sentences_per_s_vs_uncached']['ratio']:.0f}% of batch {uncached}'s sentences/s"
        print(line)
        results["batches"][str(b)] = entry
        continue
    uncached = b
    entry["sentence-transformers"]["peak_gpu_mib"] = peak_mib(f"st-{b}")
    entry["sentence-transformers"]["torch_peak_allocated_mib"] = st["peak_allocated_bytes"] / 2**20
    entry["sentence-transformers"]["tokenize_ms_per_step"] = sum(st["tokenize_ms_per_step"]) / len(timed)
    entry["sentence-transformers"]["padded_tokens_per_real"] = st["padded_tokens"] / st["real_tokens"]
    entry["ratio_ours_over_st"] = st_s / ours_s
    entry["ratio_ours_over_st_compute_only"] = st_compute_s / ours_s
    entry["allnli_epoch_s_projected"] = ALLNLI_SENTENCES / entry["ours"]["sentences_per_s"]
    results["batches"][str(b)] = entry
    for name in ("ours", "sentence-transformers"):
        v = entry[name]
        print(f"batch {b:5d} {name:22s} {v['sentences_per_s']:9.0f} sentences/s {v['real_tokens_per_s']:10.0f} "
              f"real tokens/s {v['ms_per_step']:8.1f} ms/step  MFU {100 * v['mfu']:5.1f}%  peak {v['peak_gpu_mib']:6d} MiB")
    print(f"batch {b:5d} ratio ours/ST {entry['ratio_ours_over_st']:.2f}x "
          f"(vs ST without its tokenizing: {entry['ratio_ours_over_st_compute_only']:.2f}x); "
          f"AllNLI epoch projected {entry['allnli_epoch_s_projected']:.0f} s")
json.dump(results, open(f"{work}/bench_gpu.json", "w"), indent=1)
print(f"results: {work}/bench_gpu.json")
PY
