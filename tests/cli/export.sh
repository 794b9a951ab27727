# export.sh — `mnrl_cuda export CHECKPOINT --output DIR` on the tiny parity model's run:
#   - the checkpoint of the last step exports to the same folder as the run's own final/
#     (every file byte-identical but the model card, whose command line and scores differ);
#   - an earlier checkpoint exports its own weights (model.safetensors equal to the
#     checkpoint's, different from the final model's), over an existing folder too;
#   - an incomplete checkpoint (no DONE), a missing folder, a missing base model and usage
#     errors fail with a message and leave no output folder.
# Usage: bash export.sh /path/to/mnrl_cuda /path/to/repo
source "$(dirname "$0")/../cli_lib.sh"

cat >"$TMP/tiny.json" <<JSON
{
  "model": {"path": "tests/data/parity/tiny", "max_seq_length": 32, "backend": "cpu"},
  "data": {"train": "tests/data/parity/tiny_train.tsv", "cache_dir": "$TMP/cache"},
  "train": {"batch_size": 8, "epochs": 1, "lr": 1e-3, "warmup_steps": 4, "log_every": 10},
  "eval": {"sts_file": ""},
  "checkpoint": {"every_steps": 5, "keep": 10},
  "output": {"dir": "$TMP/run"}
}
JSON
expect 0 "the run" -- "$BIN" train "$TMP/tiny.json"
last=$(ls -d "$TMP"/run/checkpoints/step-* | tail -1)
checks=$((checks + 1))
[ "$last" = "$TMP/run/checkpoints/step-0000020" ] || fail "the last checkpoint is $last, expected step-0000020"

# 1. The last step's checkpoint is the final model.
expect 0 "export the last checkpoint" -- "$BIN" export "$last" --output "$TMP/exported"
contains "$TMP/out" "exported $last (step 20) to $TMP/exported"
for f in $(cd "$TMP/run/final" && find . -type f ! -name README.md | sort); do
    checks=$((checks + 1))
    cmp -s "$TMP/run/final/$f" "$TMP/exported/$f" || fail "$f differs from the run's final/$f"
done
checks=$((checks + 1))
[ "$(cd "$TMP/run/final" && find . | sort)" = "$(cd "$TMP/exported" && find . | sort)" ] ||
    fail "the exported folder does not hold the files of final/"
contains "$TMP/exported/README.md" "sentence-transformers"

# 2. An earlier checkpoint, written over the first export.
expect 0 "export step 10 over it" -- "$BIN" export "$TMP/run/checkpoints/step-0000010" --output "$TMP/exported/"
checks=$((checks + 2))
cmp -s "$TMP/run/checkpoints/step-0000010/model.safetensors" "$TMP/exported/model.safetensors" ||
    fail "step 10's export does not hold step 10's weights"
cmp -s "$TMP/run/final/model.safetensors" "$TMP/exported/model.safetensors" &&
    fail "step 10's export holds the final weights"
checks=$((checks + 1))
[ -z "$(ls -d "$TMP"/exported.* 2>/dev/null)" ] || fail "temporary folders left beside the export"

# 3. Refusals leave nothing behind.
cp -r "$TMP/run/checkpoints/step-0000015" "$TMP/partial"
rm "$TMP/partial/DONE"
expect 1 "an incomplete checkpoint" -- "$BIN" export "$TMP/partial" --output "$TMP/none1"
contains "$TMP/err" "$TMP/partial: incomplete checkpoint (no DONE file"
expect 1 "no such folder" -- "$BIN" export "$TMP/nothing" --output "$TMP/none2"
contains "$TMP/err" "$TMP/nothing: no such checkpoint folder"
expect 1 "a missing base model" -- "$BIN" export "$last" --output "$TMP/none3" --base-model "$TMP/nobase"
contains "$TMP/err" "$TMP/nobase/config.json"
contains "$TMP/err" "--base-model gives another"
for d in none1 none2 none3; do
    checks=$((checks + 1))
    [ ! -e "$TMP/$d" ] || fail "a failed export left $TMP/$d"
done
expect 2 "no --output" -- "$BIN" export "$last"
contains "$TMP/err" "missing --output DIR"
expect 2 "no checkpoint" -- "$BIN" export --output "$TMP/none4"
contains "$TMP/err" "missing CHECKPOINT_DIR"
expect 2 "two checkpoints" -- "$BIN" export "$last" "$last" --output "$TMP/none4"
contains "$TMP/err" "unexpected argument"
expect 0 "--help" -- "$BIN" export --help
contains "$TMP/out" "usage: mnrl_cuda export CHECKPOINT_DIR --output DIR"
finish
