#!/usr/bin/env bash
# CPU training throughput, ours against sentence-transformers on torch CPU, measured in
# one call on one machine (issue 4 item 7, issue 7 item 4; target ours/ST >= 3x).
#
#   bench/cpu.sh [BUILD_DIR] [STEPS] [WARMUP] [ROUNDS]     defaults: build-bench 20 3 2
#
# Both sides train configs/demo.json's setup: models/all-MiniLM-L6-v2, SNLI dev
# entailment pairs (data/snli_dev_test.tsv.gz), batch 32, max_seq_length 64, MNRL scale
# 20, AdamW + warmup-linear + clip 1.0, dropout on, WARMUP + STEPS steps of which the
# last STEPS are timed, nproc threads (OMP_NUM_THREADS for us, torch.set_num_threads
# for ST). Ours is the real trainer (`mnrl_cuda train`, evaluation off; the step time of
# OUT/metrics.jsonl covers sampling, packing, forward, loss, backward, clip and AdamW);
# ST then trains on exactly the batches ours recorded in OUT/batch_order.txt
# (bench/st_reference.py). ROUNDS alternate ours and ST, so a machine whose load
# changes over the run weighs on both; the figures are totals over all rounds.
# Prints sentences/s (texts embedded per second, backward and optimizer included), real
# tokens/s and the ratio ours/ST; writes BUILD_DIR/bench_cpu.json.
# Then (CPU_FLOOR=0 skips it) one more run of each side measures the time in GEMMs: ours
# through the LD_PRELOAD shim bench/sgemm_timer.c (wall time of every cblas_sgemm), ST
# with torch's profiler (aten::mm/addmm/bmm). Both trainers run their fp32 GEMMs at the
# BLAS library's speed, so ST's step over ours' GEMM time per step is the highest ratio
# within reach: the ratio if every other op of ours took no time.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build-bench}"
steps="${2:-20}"
warmup="${3:-3}"
rounds="${4:-2}"
threads="$(nproc)"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DMNRL_CUDA=OFF -DMNRL_LINK_BINARY=OFF >/dev/null
cmake --build "$build" --target mnrl_cuda -j"$threads" >/dev/null
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "machine: $(uname -m), $threads cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "commit: $(git -C "$root" rev-parse --short HEAD); $steps timed steps after $warmup warm-up, $rounds rounds, $threads threads"
cd "$root"
for round in $(seq 1 "$rounds"); do
    out="$work/ours-$round"
    OMP_NUM_THREADS="$threads" "$build/mnrl_cuda" train configs/demo.json \
        --set "train.max_steps=$((steps + warmup))" --set 'eval.sts_file=""' \
        --set "output.dir=\"$out\"" --set "data.cache_dir=\"$work/cache\"" >"$work/ours-$round.log" 2>&1 ||
        { cat "$work/ours-$round.log"; exit 1; }
    OMP_NUM_THREADS="$threads" python3 bench/st_reference.py configs/demo.json --order "$out/batch_order.txt" \
        --steps $((steps + warmup)) --warmup "$warmup" --threads "$threads" --json "$work/st-$round.json" \
        >"$work/st-$round.log" 2>&1 || { cat "$work/st-$round.log"; exit 1; }
    echo "round $round done; load $(cut -d' ' -f1-3 /proc/loadavg)"
done
if [ "${CPU_FLOOR:-1}" = 1 ]; then
    cc -O2 -shared -fPIC bench/sgemm_timer.c -o "$work/sgemm_timer.so" -ldl
    SGEMM_TIMER_OUT="$work/gemm-ours.json" LD_PRELOAD="$work/sgemm_timer.so" OMP_NUM_THREADS="$threads" \
        "$build/mnrl_cuda" train configs/demo.json --set "train.max_steps=$((steps + warmup))" \
        --set 'eval.sts_file=""' --set "output.dir=\"$work/ours-floor\"" --set "data.cache_dir=\"$work/cache\"" \
        >"$work/ours-floor.log" 2>&1 || { cat "$work/ours-floor.log"; exit 1; }
    OMP_NUM_THREADS="$threads" python3 bench/st_reference.py configs/demo.json --order "$work/ours-floor/batch_order.txt" \
        --steps $((steps + warmup)) --warmup "$warmup" --threads "$threads" --json "$work/st-floor.json" \
        --profile-gemm >"$work/st-floor.log" 2>&1 || { cat "$work/st-floor.log"; exit 1; }
    echo "GEMM-time round done; load $(cut -d' ' -f1-3 /proc/loadavg)"
fi
python3 - "$work" "$rounds" "$warmup" "$build/bench_cpu.json" "$(git rev-parse --short HEAD)" <<'PY'
import json, os, sys
work, rounds, warmup, out_path, commit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]

def ours_round(r):
    """Timed steps of our trainer's metrics.jsonl (step records carry ms, tokens/s, seq/s)."""
    recs = [json.loads(l) for l in open(f"{work}/ours-{r}/metrics.jsonl")]
    recs = [x for x in recs if "loss" in x and x["step"] > warmup]
    s = [x["ms"] / 1000 for x in recs]
    return {"seconds": sum(s), "texts": sum(x["seqs_per_s"] * t for x, t in zip(recs, s)),
            "real_tokens": sum(x["tokens_per_s"] * t for x, t in zip(recs, s)),
            "ms_per_step": [x["ms"] for x in recs]}

sides = {"ours": [ours_round(r) for r in range(1, rounds + 1)],
         "sentence-transformers": [json.load(open(f"{work}/st-{r}.json")) for r in range(1, rounds + 1)]}
summary = {}
for name, runs in sides.items():
    sec = sum(x["seconds"] for x in runs)
    summary[name] = {"seconds": sec, "steps": sum(len(x["ms_per_step"]) for x in runs),
                     "sentences_per_s": sum(x["texts"] for x in runs) / sec,
                     "real_tokens_per_s": sum(x["real_tokens"] for x in runs) / sec,
                     "ms_per_step_by_round": [sum(x["ms_per_step"]) / len(x["ms_per_step"]) for x in runs]}
st = sides["sentence-transformers"]
summary["sentence-transformers"]["padded_tokens_per_real"] = sum(x["padded_tokens"] for x in st) / sum(x["real_tokens"] for x in st)
summary["sentence-transformers"]["versions"] = st[0]["versions"]
ratio = summary["ours"]["sentences_per_s"] / summary["sentence-transformers"]["sentences_per_s"]
# Both sides train the same batches in the same order in a round, so each step's time ratio
# compares one batch; their median moves far less with a load spike on a shared machine
# than the totals do.
median = lambda xs: sorted(xs)[len(xs) // 2]
ratio_median = median([st_ms / ours_ms for o, t in zip(sides["ours"], sides["sentence-transformers"])
                       for ours_ms, st_ms in zip(o["ms_per_step"], t["ms_per_step"])])
for name, v in summary.items():
    rounds_ms = ", ".join(f"{m:.0f}" for m in v["ms_per_step_by_round"])
    print(f"{name:22s} {v['sentences_per_s']:7.1f} sentences/s {v['real_tokens_per_s']:8.0f} real tokens/s "
          f"(ms/step by round: {rounds_ms})")
print(f"sentence-transformers pads to {summary['sentence-transformers']['padded_tokens_per_real']:.2f} tokens per real token")
print(f"ratio ours/ST: {ratio:.2f}x sentences/s (target >= 3x); median of the per-step ratios: {ratio_median:.2f}x")
floor = None
if os.path.exists(f"{work}/gemm-ours.json"):
    ours_gemm = json.load(open(f"{work}/gemm-ours.json"))
    steps_run = len([1 for l in open(f"{work}/ours-floor/metrics.jsonl") if '"loss"' in l])
    st_step_ms = 1000 * summary["sentence-transformers"]["seconds"] / summary["sentence-transformers"]["steps"]
    ours_step_ms = 1000 * summary["ours"]["seconds"] / summary["ours"]["steps"]
    floor = {"ours_gemm_ms_per_step": 1000 * ours_gemm["seconds"] / steps_run,
             "ours_gemm_gflops": ours_gemm["flops"] / ours_gemm["seconds"] / 1e9,
             "st_gemm_ms_per_step": json.load(open(f"{work}/st-floor.json"))["gemm_ms_per_step"]}
    floor["ratio_if_ours_were_gemm_only"] = st_step_ms / floor["ours_gemm_ms_per_step"]
    print(f"GEMMs per step: ours {floor['ours_gemm_ms_per_step']:.0f} ms of its {ours_step_ms:.0f} ms step "
          f"({floor['ours_gemm_gflops']:.0f} GFLOP/s), sentence-transformers {floor['st_gemm_ms_per_step']:.0f} ms "
          f"of its {st_step_ms:.0f} ms step")
    print(f"highest ratio within reach (ours' non-GEMM ops free): {floor['ratio_if_ours_were_gemm_only']:.2f}x")
json.dump({"commit": commit, "summary": summary, "ratio_ours_over_st": ratio,
           "median_step_ratio": ratio_median, "runs": sides, "gemm_floor": floor},
          open(out_path, "w"), indent=1)
print(f"results: {out_path}")
PY
