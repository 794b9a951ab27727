# resume.sh — training on the GPU repeats and resumes exactly: `mnrl_cuda train` with the
# CUDA backend on the tiny parity model (dropout 0.1) and its 160-row data, batch 8, 40
# steps, a checkpoint every 5, in bf16 and in fp32:
#   - two uninterrupted runs log the same steps (loss, norm, lr bit for bit) and write
#     byte-identical final models: every kernel and GEMM of the step is deterministic;
#   - a run continued from its step-15 checkpoint ends with the uninterrupted run's steps
#     and a byte-identical final model (tests/cli/checkpoint.sh checks the same on the CPU).
# Usage (tests/gpu/run.sh runs it): bash resume.sh /path/to/mnrl_cuda /path/to/repo
source "$(dirname "$0")/../cli_lib.sh"

# The step records of DIR/metrics.jsonl without the timings, one per line.
steps_of() {
    grep '"loss"' "$1/metrics.jsonl" | sed 's/,"ms":.*//'
}

for precision in bf16 fp32; do
    cat >"$TMP/$precision.json" <<JSON
{
  "model": {"path": "tests/data/parity/tiny", "max_seq_length": 32, "backend": "cuda", "precision": "$precision"},
  "data": {"train": "tests/data/parity/tiny_train.tsv", "cache_dir": "$TMP/cache"},
  "train": {"batch_size": 8, "epochs": 2, "lr": 1e-3, "warmup_steps": 4, "log_every": 10},
  "eval": {"sts_file": ""},
  "checkpoint": {"every_steps": 5, "keep": 10},
  "output": {"dir": "$TMP/$precision-a"}
}
JSON
    expect 0 "$precision: first run" -- "$BIN" train "$TMP/$precision.json"
    contains "$TMP/out" "backend cuda-$precision"
    expect 0 "$precision: second run" -- "$BIN" train "$TMP/$precision.json" --set output.dir="$TMP/$precision-b"
    steps_of "$TMP/$precision-a" >"$TMP/a.steps"
    steps_of "$TMP/$precision-b" >"$TMP/b.steps"
    checks=$((checks + 5))
    [ "$(wc -l <"$TMP/a.steps")" = 40 ] || fail "$precision: the run logged $(wc -l <"$TMP/a.steps") steps, not 40"
    cmp -s "$TMP/a.steps" "$TMP/b.steps" ||
        { fail "$precision: two runs' steps differ"; diff "$TMP/a.steps" "$TMP/b.steps" | head -4 >&2; }
    cmp -s "$TMP/$precision-a/final/model.safetensors" "$TMP/$precision-b/final/model.safetensors" ||
        fail "$precision: two runs' final models differ"

    cp -r "$TMP/$precision-a" "$TMP/$precision-c"
    expect 0 "$precision: resume from step 15" -- "$BIN" train "$TMP/$precision.json" \
        --set output.dir="$TMP/$precision-c" --set output.overwrite=true \
        --resume "$TMP/$precision-c/checkpoints/step-0000015"
    contains "$TMP/out" "step 16/40 | loss "
    cmp -s "$TMP/a.steps" <(steps_of "$TMP/$precision-c") ||
        { fail "$precision: the resumed run's steps differ"; diff "$TMP/a.steps" <(steps_of "$TMP/$precision-c") | head -4 >&2; }
    cmp -s "$TMP/$precision-a/final/model.safetensors" "$TMP/$precision-c/final/model.safetensors" ||
        fail "$precision: the resumed run's final model differs"
done
finish
