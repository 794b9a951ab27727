# train.sh — `mnrl_cuda train` end to end on the tiny parity model (tests/data/parity/tiny,
# hidden 32, trimmed real vocabulary) and its 20-row-per-batch MNRL data: step lines,
# metrics.jsonl, STS evaluation before/after, the exported folder, determinism (the same
# config twice gives the same losses on the CPU), cached MNRL (loss.mini_batch_size: the
# same losses as uncached), gradient accumulation (train.grad_accum_steps: its warning,
# steps and batch_order.txt), and the refusals around output.dir.
# (model.backend "cuda" without a GPU is tests/cli/backend.sh's.)
# Usage: bash train.sh /path/to/mnrl_cuda /path/to/repo
source "$(dirname "$0")/../cli_lib.sh"

cat >"$TMP/tiny.json" <<JSON
{
  "model": {"path": "tests/data/parity/tiny", "max_seq_length": 32, "backend": "cpu"},
  "data": {"train": "tests/data/parity/tiny_train.tsv", "cache_dir": "$TMP/cache"},
  "train": {"batch_size": 8, "max_steps": 12, "lr": 1e-3, "warmup_steps": 2, "log_every": 4},
  "eval": {"every_steps": 6},
  "output": {"dir": "$TMP/run"}
}
JSON

expect 0 "train the tiny model" -- "$BIN" train "$TMP/tiny.json"
contains "$TMP/out" "step 1/12 | loss "
contains "$TMP/out" "step 12/12 | loss "
contains "$TMP/out" "saved $TMP/run/final"
for f in config.json model.safetensors vocab.txt modules.json sentence_bert_config.json \
         1_Pooling/config.json config_sentence_transformers.json README.md; do
    checks=$((checks + 1))
    [ -s "$TMP/run/final/$f" ] || fail "final/$f is missing or empty"
done
steps=$(grep -c '"loss"' "$TMP/run/metrics.jsonl")
evals=$(grep -c '"spearman"' "$TMP/run/metrics.jsonl")
checks=$((checks + 2))
[ "$steps" = 12 ] || fail "metrics.jsonl has $steps step lines, expected 12"
# dev and test before training, dev at step 6, dev and test at the end.
[ "$evals" = 5 ] || fail "metrics.jsonl has $evals evaluation lines, expected 5"
checks=$((checks + 1))
if grep '"loss"' "$TMP/run/metrics.jsonl" | grep -qE '"loss": *(null|nan)'; then fail "a non-finite loss"; fi

# batch_order.txt: a comment, then 12 steps of 8 distinct row indices each.
checks=$((checks + 2))
[ "$(grep -vc '^#' "$TMP/run/batch_order.txt")" = 12 ] || fail "batch_order.txt: not 12 steps"
awk '!/^#/ { if (NF != 8) bad = 1; delete seen; for (i = 1; i <= NF; i++) { if ($i in seen) bad = 1; seen[$i] = 1 } }
     END { exit bad }' "$TMP/run/batch_order.txt" || fail "batch_order.txt: a step without 8 distinct rows"

expect 1 "refuses to overwrite a finished run" -- "$BIN" train "$TMP/tiny.json"
contains "$TMP/err" "already holds a run"

grep '"loss"' "$TMP/run/metrics.jsonl" | sed 's/.*"loss": *\([^,]*\),.*/\1/' >"$TMP/losses1"
expect 0 "the same run again, overwriting" -- "$BIN" train "$TMP/tiny.json" --set output.overwrite=true
grep '"loss"' "$TMP/run/metrics.jsonl" | sed 's/.*"loss": *\([^,]*\),.*/\1/' >"$TMP/losses2"
checks=$((checks + 1))
cmp -s "$TMP/losses1" "$TMP/losses2" || fail "two identical runs gave different losses"

# Cached MNRL in chunks of 3 rows (3 + 3 + 2): the same 12 losses within 1e-5 relative.
# Each step's gradients differ from the uncached ones by ~1e-6 relative (summation order,
# test_gradcache); through 12 AdamW steps the losses moved by at most 7.4e-7 relative.
expect 0 "cached MNRL" -- "$BIN" train "$TMP/tiny.json" --set loss.mini_batch_size=3 \
    --set output.dir="$TMP/run_cached"
contains "$TMP/out" "batch 8 (cached in chunks of 3 rows)"
grep '"loss"' "$TMP/run_cached/metrics.jsonl" | sed 's/.*"loss": *\([^,]*\),.*/\1/' >"$TMP/losses_cached"
checks=$((checks + 1))
paste "$TMP/losses1" "$TMP/losses_cached" | awk '{ d = $1 - $2; if (d < 0) d = -d; if (NF != 2 || d > 1e-5 * $1) bad = 1; n++ }
     END { exit bad || n != 12 }' || fail "cached MNRL losses differ from the uncached ones"
expect 0 "mini_batch_size not below the rows: no caching" -- "$BIN" train "$TMP/tiny.json" \
    --set loss.mini_batch_size=8 --set output.dir="$TMP/run_uncached" --set train.max_steps=1
contains "$TMP/out" "loss.mini_batch_size 8 is not below the 8 rows per rank: steps are not cached"

# Gradient accumulation, 2 batches per optimizer step: the warning once, 12 optimizer steps
# (24 batches, into the second epoch of 20), each a line of 2 batches of 8 distinct rows in
# batch_order.txt; more batches per step than an epoch has are refused. (Its arithmetic
# and resume: test_gradcache, test_checkpoint.)
expect 0 "gradient accumulation" -- "$BIN" train "$TMP/tiny.json" --set train.grad_accum_steps=2 \
    --set output.dir="$TMP/run_accum"
contains "$TMP/out" "batch 8 x 2 accumulated (train.grad_accum_steps), 12 steps"
contains "$TMP/out" "step 12/12 | loss "
checks=$((checks + 3))
warnings=$(grep -c "warning: train.grad_accum_steps = 2: gradient accumulation does not add in-batch negatives" "$TMP/err")
[ "$warnings" = 1 ] || fail "the accumulation warning was printed $warnings times, expected once"
[ "$(grep -c '"loss"' "$TMP/run_accum/metrics.jsonl")" = 12 ] || fail "accumulation: not 12 steps in metrics.jsonl"
awk '!/^#/ { n++; if (NF != 17 || $9 != "|") bad = 1; delete seen; for (i = 1; i <= NF; i++) if (i != 9) { if ($i in seen) bad = 1; seen[$i] = 1 } }
     END { exit bad || n != 12 }' "$TMP/run_accum/batch_order.txt" || fail "accumulation: batch_order.txt is not 12 lines of 2 x 8 rows"
expect 1 "more batches per step than an epoch has" -- "$BIN" train "$TMP/tiny.json" \
    --set train.grad_accum_steps=21 --set output.dir="$TMP/run_accum21"
contains "$TMP/err" "train.grad_accum_steps = 21 exceeds the 20 batches of 8 rows in an epoch of"

expect 1 "missing model folder" -- "$BIN" train "$TMP/tiny.json" --set model.path="$TMP/none" \
    --set output.dir="$TMP/run3"
contains "$TMP/err" "$TMP/none"

finish
