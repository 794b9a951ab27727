# resume.sh — training on the GPU repeats and resumes exactly: `mnrl_cuda train` with the
# CUDA backend on the tiny parity model with 2 attention heads instead of 4 (head size 16,
# the smallest the CUDA attention takes, as in test_ops_cuda_step.c; the weights do not
# depend on the head count; dropout 0.1) and its 160-row data, batch 8, 40
# steps, a checkpoint every 5, in bf16 and in fp32, and in bf16 with two batches
# accumulated per step (train.grad_accum_steps 2: 20 steps):
#   - two uninterrupted runs log the same steps (loss, norm, lr bit for bit) and write
#     byte-identical final models: every kernel and GEMM of the step is deterministic;
#   - a run continued from its step-15 checkpoint ends with the uninterrupted run's steps
#     and a byte-identical final model (tests/cli/checkpoint.sh checks the same on the CPU).
# Usage (tests/gpu/run.sh runs it): bash resume.sh /path/to/mnrl_cuda /path/to/repo
source "$(dirname "$0")/../cli_lib.sh"

cp -r tests/data/parity/tiny "$TMP/tiny"
sed -i 's/"num_attention_heads": 4/"num_attention_heads": 2/' "$TMP/tiny/config.json"
checks=$((checks + 1))
grep -q '"num_attention_heads": 2' "$TMP/tiny/config.json" || fail "tiny model: could not set 2 attention heads"

for variant in bf16:1 fp32:1 bf16:2; do
    precision=${variant%:*} accum=${variant#*:} name=${variant/:/-x}
    steps=$((40 / accum))
    cat >"$TMP/$name.json" <<JSON
{
  "model": {"path": "$TMP/tiny", "max_seq_length": 32, "backend": "cuda", "precision": "$precision"},
  "data": {"train": "tests/data/parity/tiny_train.tsv", "cache_dir": "$TMP/cache"},
  "train": {"batch_size": 8, "epochs": 2, "lr": 1e-3, "warmup_steps": 4, "log_every": 10, "grad_accum_steps": $accum},
  "eval": {"sts_file": ""},
  "checkpoint": {"every_steps": 5, "keep": 10},
  "output": {"dir": "$TMP/$name-a"}
}
JSON
    expect 0 "$variant: first run" -- "$BIN" train "$TMP/$name.json"
    contains "$TMP/out" "backend cuda-$precision"
    expect 0 "$variant: second run" -- "$BIN" train "$TMP/$name.json" --set output.dir="$TMP/$name-b"
    steps_of "$TMP/$name-a" >"$TMP/a.steps"
    steps_of "$TMP/$name-b" >"$TMP/b.steps"
    checks=$((checks + 5))
    [ "$(wc -l <"$TMP/a.steps")" = "$steps" ] || fail "$variant: the run logged $(wc -l <"$TMP/a.steps") steps, not $steps"
    cmp -s "$TMP/a.steps" "$TMP/b.steps" ||
        { fail "$variant: two runs' steps differ"; diff "$TMP/a.steps" "$TMP/b.steps" | head -4 >&2; }
    cmp -s "$TMP/$name-a/final/model.safetensors" "$TMP/$name-b/final/model.safetensors" ||
        fail "$variant: two runs' final models differ"

    cp -r "$TMP/$name-a" "$TMP/$name-c"
    expect 0 "$variant: resume from step 15" -- "$BIN" train "$TMP/$name.json" \
        --set output.dir="$TMP/$name-c" --set output.overwrite=true \
        --resume "$TMP/$name-c/checkpoints/step-0000015"
    contains "$TMP/out" "step 16/$steps | loss "
    cmp -s "$TMP/a.steps" <(steps_of "$TMP/$name-c") ||
        { fail "$variant: the resumed run's steps differ"; diff "$TMP/a.steps" <(steps_of "$TMP/$name-c") | head -4 >&2; }
    cmp -s "$TMP/$name-a/final/model.safetensors" "$TMP/$name-c/final/model.safetensors" ||
        fail "$variant: the resumed run's final model differs"
done
finish
