# encode_eval.sh — `mnrl_cuda encode` and `mnrl_cuda eval` on the tiny parity model
# (tests/data/parity/tiny): the .npy shape and size, the default max_seq_length read from
# the folder's sentence_bert_config.json, the evaluation lines, and the usage errors.
# (Their numbers are checked against sentence-transformers in test_model_parity and
# test_eval; here the command line around them.)
# Usage: bash encode_eval.sh /path/to/mnrl_cuda /path/to/repo
source "$(dirname "$0")/../cli_lib.sh"
MODEL=tests/data/parity/tiny

expect 0 "encode 200 sentences" -- "$BIN" encode "$MODEL" --input tests/data/parity/tiny_sentences.txt \
    --output "$TMP/emb.npy" --batch-size 16
contains "$TMP/err" "encoded 200 sentences"
checks=$((checks + 2))
head -c 128 "$TMP/emb.npy" | grep -q "'shape': (200, 32)" || fail "npy header: $(head -c 128 "$TMP/emb.npy")"
# .npy v1.0: a 128-byte header here (numpy pads to 64), then 200 x 32 float32.
[ "$(stat -c %s "$TMP/emb.npy")" = $((128 + 200 * 32 * 4)) ] || fail "npy size $(stat -c %s "$TMP/emb.npy")"
printf 'one line\n' | "$BIN" encode "$MODEL" --output "$TMP/one.npy" 2>/dev/null
checks=$((checks + 1))
head -c 128 "$TMP/one.npy" | grep -q "'shape': (1, 32)" || fail "stdin input"

expect 2 "encode without --output" -- "$BIN" encode "$MODEL"
contains "$TMP/err" "missing --output"
expect 2 "encode with a bad batch size" -- "$BIN" encode "$MODEL" --output x.npy --batch-size 0
contains "$TMP/err" "--batch-size"
expect 1 "encode a missing folder" -- "$BIN" encode "$TMP/none" --output "$TMP/x.npy"
contains "$TMP/err" "$TMP/none"
checks=$((checks + 1))
[ ! -e "$TMP/x.npy" ] || fail "a failed encode left an output file"

expect 0 "eval dev and test" -- "$BIN" eval "$MODEL"
contains "$TMP/out" "data/stsbenchmark.tsv.gz dev: spearman "
contains "$TMP/out" "| 1500 pairs"
contains "$TMP/out" "data/stsbenchmark.tsv.gz test: spearman "
contains "$TMP/out" "| 1379 pairs"
expect 0 "eval one split" -- "$BIN" eval "$MODEL" --split train --max-seq-length 16
contains "$TMP/out" "train: spearman "
contains "$TMP/out" "| 5749 pairs"
expect 1 "eval an unknown split" -- "$BIN" eval "$MODEL" --split nosuch
contains "$TMP/err" "nosuch"
expect 2 "eval without a folder" -- "$BIN" eval
contains "$TMP/err" "missing MODEL_DIR"

finish
