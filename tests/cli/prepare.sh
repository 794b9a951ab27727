# prepare.sh — `mnrl_cuda prepare` on the committed SNLI dev/test and STSb files with the
# committed bert-base-uncased vocabulary. Expected counts come from outside our code: the
# SNLI dev entailment count and STSb split sizes from the data's published statistics
# (data/README.md), the triplet count from the Python recipe's golden
# (tests/data/nli/recipes.json.gz, tests/reference/make_nli_goldens.py).
# Usage: bash prepare.sh /path/to/mnrl_cuda /path/to/repo
source "$(dirname "$0")/../cli_lib.sh"

run_prepare() {
    "$BIN" prepare configs/demo.json --set model.path=models/bert-base-uncased \
        --set data.cache_dir="$TMP/cache" "$@"
}

expect 0 "prepare --help" -- "$BIN" prepare --help
contains "$TMP/out" "usage: mnrl_cuda prepare CONFIG.json"

expect 0 "pairs, first run" -- run_prepare
contains "$TMP/out" "3,328 rows of 2 texts"
contains "$TMP/out" "1,500 dev pairs, 1,379 test pairs"
contains "$TMP/out" "(no cache file yet)"
contains "$TMP/out" "ready"
# 3,328 rows in batches of 32: at least 104 batches, 104 when nothing is deferred.
batches=$(sed -n 's/^sampler   epoch 0: \([0-9,]*\) batches.*/\1/p' "$TMP/out" | tr -d ,)
checks=$((checks + 1))
[ -n "$batches" ] && [ "$batches" -ge 104 ] && [ "$batches" -le 110 ] || fail "batches: '$batches'"
ratio=$(sed -n 's/.*would compute [0-9,]* (\([0-9.]*\)x)$/\1/p' "$TMP/out")
checks=$((checks + 1))
awk -v r="$ratio" 'BEGIN { exit !(r > 1.0) }' || fail "packing ratio '$ratio' should exceed 1"

expect 0 "pairs, second run reuses the cache" -- run_prepare
contains "$TMP/out" "(reused)"
steps=$(sed -n 's/^schedule  \([0-9]*\) steps (1 epoch).*/\1/p' "$TMP/out")
checks=$((checks + 1))
[ "$steps" = "$batches" ] || fail "schedule: '$steps' steps for $batches batches"
# Gradient accumulation of 3 batches per step: ceil(batches / 3) steps.
expect 0 "gradient accumulation" -- run_prepare --set train.grad_accum_steps=3
contains "$TMP/out" "schedule  $(((batches + 2) / 3)) steps (1 epoch, 3 batches per step (accumulated))"
contains "$TMP/err" "warning: train.grad_accum_steps = 3: gradient accumulation does not add in-batch negatives"

triplets=$(zcat tests/data/nli/recipes.json.gz | tr -d '\n ' | sed -n 's/.*"split":"dev","sentences":[0-9]*,"triplets":\([0-9]*\).*/\1/p')
checks=$((checks + 1))
[ -n "$triplets" ] || fail "no dev triplet count in the golden"
expect 0 "triplets recipe" -- run_prepare --set data.recipe=triplets
contains "$TMP/out" "$(sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$triplets") rows of 3 texts"
contains "$TMP/out" "(no cache file yet)"

expect 1 "missing data file" -- run_prepare --set data.train=data/none.tsv
contains "$TMP/err" "data/none.tsv"
expect 1 "missing vocabulary" -- run_prepare --set model.path="$TMP/empty"
contains "$TMP/err" "vocab.txt"
expect 1 "split with no rows" -- run_prepare --set data.split=train
contains "$TMP/err" "train"
expect 1 "unknown key" -- run_prepare --set data.recipie=pairs
contains "$TMP/err" 'did you mean "data.recipe"'
expect 2 "no config" -- "$BIN" prepare
contains "$TMP/err" "no CONFIG.json given"

finish
