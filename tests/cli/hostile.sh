# hostile.sh — bad input end to end (issue 8 item 3; the README's "Bad input" table): for
# every kind, `mnrl_cuda train` (or `prepare`) exits non-zero with a message that names the
# file and says what to do, and leaves nothing that looks like a result: no output.dir (or,
# when output.dir is the problem, no new final/) and no data cache file.
# Usage: bash hostile.sh /path/to/mnrl_cuda /path/to/repo
source "$(dirname "$0")/../cli_lib.sh"

TINY=tests/data/parity/tiny
BROKEN=tests/data/modelfiles/broken
cat >"$TMP/base.json" <<JSON
{
  "model": {"path": "$TINY", "max_seq_length": 32, "backend": "cpu"},
  "data": {"train": "tests/data/parity/tiny_train.tsv"},
  "train": {"batch_size": 8, "max_steps": 2, "lr": 1e-3, "warmup_steps": 0},
  "eval": {"sts_file": ""}
}
JSON

# refuse SUBCOMMAND CONFIG WHAT [--set ...]... -- TEXT...: the run exits 1, stderr has every
# TEXT, and its (fresh) output.dir was not created. While data_is_bad is 1, no file may be
# left in its (fresh) data.cache_dir either; later failures may leave a complete cache, which
# is valid and reused by the next run.
case_no=0
data_is_bad=0
refuse() {
    local sub=$1 config=$2 what=$3
    shift 3
    local sets=()
    while [ "$1" != "--" ]; do sets+=("$1"); shift; done
    shift
    case_no=$((case_no + 1))
    local out="$TMP/out_$case_no" cache="$TMP/cache_$case_no"
    expect 1 "$what" -- timeout 120 "$BIN" "$sub" "$config" --set output.dir="$out" \
        --set data.cache_dir="$cache" "${sets[@]}"
    for text in "$@"; do contains "$TMP/err" "$text"; done
    checks=$((checks + 1))
    [ ! -e "$out" ] || fail "$what: left $out behind: $(ls "$out")"
    if [ "$data_is_bad" = 1 ]; then
        checks=$((checks + 1))
        [ -z "$(ls "$cache" 2>/dev/null)" ] || fail "$what: left a cache file: $(ls "$cache")"
    fi
}

# A copy of the tiny model folder, to be broken in one way.
model_copy() {
    rm -rf "$TMP/$1"
    cp -r "$TINY" "$TMP/$1"
    echo "$TMP/$1"
}

# ---- the configuration ------------------------------------------------------------------------
refuse train "$TMP/absent.json" "missing config" -- "$TMP/absent.json: cannot open"
mkdir "$TMP/folder.json"
refuse train "$TMP/folder.json" "config that cannot be read (a folder)" -- "$TMP/folder.json: read failed"
if [ "$(id -u)" != 0 ]; then  # root reads files whatever their mode
    cp "$TMP/base.json" "$TMP/secret.json"
    chmod 000 "$TMP/secret.json"
    refuse train "$TMP/secret.json" "unreadable config" -- "$TMP/secret.json: cannot open: Permission denied"
fi
printf '{"model": {"path": "m"},\n "data": {"train": "t"}\n "train": {}}\n' >"$TMP/syntax.json"
refuse train "$TMP/syntax.json" "JSON syntax error" -- "$TMP/syntax.json:3:"
printf '{"model": {"path": "m"}, "data": {"train": "t"}, "train": {"batch_size": "64"}}\n' >"$TMP/type.json"
refuse train "$TMP/type.json" "wrong type" -- \
    "$TMP/type.json: train.batch_size: expected a positive integer, got \"64\""
refuse train "$TMP/base.json" "value out of range" --set train.lr=-1 -- "--set: train.lr"
printf '{"model": {"path": "m"}, "data": {"train": "t"}, "train": {"batch_sise": 64}}\n' >"$TMP/unknown.json"
refuse train "$TMP/unknown.json" "unknown key" -- \
    "$TMP/unknown.json: unknown key \"train.batch_sise\" (did you mean \"train.batch_size\"?)"
refuse train "$TMP/base.json" "missing data file" --set data.train="$TMP/none.tsv" -- \
    "$TMP/none.tsv: cannot open"

# ---- the training data ------------------------------------------------------------------------
data_is_bad=1
: >"$TMP/empty.tsv"
refuse train "$TMP/base.json" "empty data file" --set data.train="$TMP/empty.tsv" -- \
    "$TMP/empty.tsv: empty file (no header line); check data.train"
printf 'anchor\tpositive\n' >"$TMP/header_only.tsv"
refuse train "$TMP/base.json" "header without rows" --set data.train="$TMP/header_only.tsv" -- \
    "$TMP/header_only.tsv: no rows" "add rows below the header line"
printf 'query\tanswer\na\tb\n' >"$TMP/columns.tsv"
refuse train "$TMP/base.json" "no anchor column" --set data.train="$TMP/columns.tsv" -- \
    "$TMP/columns.tsv:1: the header has no column \"anchor\" (columns present: query, answer)"
printf 'anchor\tpositive\na\tb\nonly one field\nc\td\n' >"$TMP/missing.tsv"
refuse train "$TMP/base.json" "row with a missing column" --set data.train="$TMP/missing.tsv" -- \
    "$TMP/missing.tsv:3: expected 2 tab-separated fields" 'set data.on_error to "skip"'
printf 'anchor\tpositive\na\tb\ncaf\xe9\tlatin-1\nc\td\n' >"$TMP/latin1.tsv"
refuse train "$TMP/base.json" "non-UTF-8 bytes" --set data.train="$TMP/latin1.tsv" -- \
    "$TMP/latin1.tsv:3: not valid UTF-8 at byte offset 3" 'set data.on_error to "skip"'
printf '{"anchor": "a", "positive": "b"}\n{"anchor": "c"}\n' >"$TMP/missing.jsonl"
refuse train "$TMP/base.json" "JSONL row without a key" --set data.train="$TMP/missing.jsonl" -- \
    "$TMP/missing.jsonl:2:" "positive"
# With data.on_error "skip" the bad rows are counted and reported, the good ones used.
cat "$TMP/missing.tsv" >"$TMP/skip.tsv"
printf 'caf\xe9\tlatin-1\ne\tf\n' >>"$TMP/skip.tsv"
expect 0 "bad rows skipped" -- "$BIN" prepare "$TMP/base.json" --set data.train="$TMP/skip.tsv" \
    --set data.on_error=skip --set data.cache_dir="$TMP/cache_skip" --set train.batch_size=2
contains "$TMP/out" "data      $TMP/skip.tsv: 3 rows of 2 texts"
contains "$TMP/out" "skipped 2 malformed rows (1 wrong field count, 1 not UTF-8)"

# A 10 MB line: as a text it is read, tokenized and cut at max_seq_length; as a malformed row
# it is reported by line number without echoing 10 MB.
awk 'BEGIN { printf "anchor\tpositive\n"; for (i = 0; i < 2000000; i++) printf "word "; printf "\tshort\n";
             for (i = 0; i < 7; i++) printf "anchor %d\tpositive %d\n", i, i }' >"$TMP/long_line.tsv"
checks=$((checks + 1))
[ "$(stat -c %s "$TMP/long_line.tsv")" -gt 10000000 ] || fail "long_line.tsv is not over 10 MB"
expect 0 "a 10 MB text" -- timeout 120 "$BIN" prepare "$TMP/base.json" --set data.train="$TMP/long_line.tsv" \
    --set data.cache_dir="$TMP/cache_long"
contains "$TMP/out" "8 rows of 2 texts"
contains "$TMP/out" "longest 32; 1 texts (6.25%) reach max_seq_length 32"
awk 'BEGIN { printf "anchor\tpositive\na\tb\n"; for (i = 0; i < 10000000; i++) printf "x"; printf "\n" }' \
    >"$TMP/long_bad.tsv"
refuse train "$TMP/base.json" "a 10 MB malformed line" --set data.train="$TMP/long_bad.tsv" -- \
    "$TMP/long_bad.tsv:3: expected 2 tab-separated fields"
checks=$((checks + 1))
[ "$(stat -c %s "$TMP/err")" -lt 8192 ] || fail "the 10 MB line's message is $(stat -c %s "$TMP/err") bytes"

# Texts longer than max_seq_length: exactly 3 of the 40 texts (20 rows x 2) have over 100
# words, the rest 3; prepare counts the 3 as cut, and training runs on them.
awk 'BEGIN { printf "anchor\tpositive\n";
             for (i = 0; i < 20; i++) { if (i % 7 == 0) { for (j = 0; j < 100; j++) printf "long "; printf "%d", i }
                                        else printf "short anchor %d", i;
                                        printf "\tshort positive %d\n", i } }' >"$TMP/long_texts.tsv"
expect 0 "texts over max_seq_length are counted" -- "$BIN" prepare "$TMP/base.json" \
    --set data.train="$TMP/long_texts.tsv" --set data.cache_dir="$TMP/cache_texts"
contains "$TMP/out" "longest 32; 3 texts (7.50%) reach max_seq_length 32 and are cut there"
expect 0 "training on texts over max_seq_length" -- "$BIN" train "$TMP/base.json" \
    --set data.train="$TMP/long_texts.tsv" --set data.cache_dir="$TMP/cache_texts" \
    --set output.dir="$TMP/run_long"
contains "$TMP/out" "step 2/2 | loss "

data_is_bad=0

# Duplicate-only data: the sampler cannot fill a batch; an error, not an endless loop (the
# timeout in refuse would turn a hang into exit 124).
awk 'BEGIN { printf "anchor\tpositive\n"; for (i = 0; i < 50; i++) printf "anchor %d\tthe same positive\n", i }' \
    >"$TMP/duplicates.tsv"
refuse train "$TMP/base.json" "duplicate-only data" --set data.train="$TMP/duplicates.tsv" -- \
    "$TMP/duplicates.tsv: sampler: all 50 rows contain the same text" "do not all share one text"
refuse prepare "$TMP/base.json" "duplicate-only data (prepare)" --set data.train="$TMP/duplicates.tsv" -- \
    "$TMP/duplicates.tsv: sampler: all 50 rows contain the same text"

# ---- the model folder -------------------------------------------------------------------------
for token in UNK CLS SEP; do
    m=$(model_copy "no_$token")
    grep -v "^\[$token\]\$" "$TINY/vocab.txt" >"$m/vocab.txt"
    lower=$(tr 'A-Z' 'a-z' <<<"$token")
    refuse train "$TMP/base.json" "vocab without [$token]" --set model.path="$m" -- \
        "$m/vocab.txt: the ${lower}_token token \"[$token]\" is not in the vocabulary" "use a BERT vocab.txt"
done
m=$(model_copy big_vocab)
cp models/bert-base-uncased/vocab.txt "$m/vocab.txt"
refuse train "$TMP/base.json" "vocab.txt larger than the model's" --set model.path="$m" -- \
    "$m: vocab.txt has 30522 tokens but config.json has vocab_size 1288" "use the model's own vocab.txt"

# Broken safetensors files (tests/data/modelfiles/broken, made by make_safetensors_goldens.py)
# in place of the tiny model's weights: header, offsets, dtype and shape.
for broken in short header_too_long bad_json not_object bad_metadata past_end overlap truncated \
              unknown_dtype negative_shape wrong_size; do
    m=$(model_copy "st_$broken")
    cp "$BROKEN/$broken.safetensors" "$m/model.safetensors"
    refuse train "$TMP/base.json" "safetensors: $broken" --set model.path="$m" -- \
        "$m/model.safetensors: " "the file is corrupt"
done
for broken in model_int_weight model_shape model_missing model_unexpected; do
    m=$(model_copy "$broken")
    cp "$BROKEN/$broken/config.json" "$BROKEN/$broken/model.safetensors" "$m/"
    refuse train "$TMP/base.json" "weights: $broken" --set model.path="$m" -- "$m/model.safetensors: "
done
contains "$TMP/err" "the weights and config.json do not belong together"
m=$(model_copy wider)
sed -i 's/"hidden_size": *32/"hidden_size": 64/' "$m/config.json"
refuse train "$TMP/base.json" "config.json does not match the weights" --set model.path="$m" -- \
    "$m/model.safetensors: tensor" "expected shape [64] (from config.json), found [32]" \
    "the weights and config.json do not belong together"
m=$(model_copy no_config)
rm "$m/config.json"
refuse train "$TMP/base.json" "no config.json" --set model.path="$m" -- "$m: no config.json"
m=$(model_copy pickle_only)
rm "$m/model.safetensors"
cp "$BROKEN/model_bin_only/pytorch_model.bin" "$m/"
refuse train "$TMP/base.json" "pytorch_model.bin only" --set model.path="$m" -- \
    "$m: has only pytorch_model.bin" "safe_serialization=True"
refuse train "$TMP/base.json" "max_seq_length over the model's positions" \
    --set model.max_seq_length=1000 -- "max_position_embeddings 128" "lower model.max_seq_length"

# ---- the output folder ------------------------------------------------------------------------
: >"$TMP/a_file"
refuse train "$TMP/base.json" "output.dir below a file" --set output.dir="$TMP/a_file/run" -- "$TMP/a_file"
if [ "$(id -u)" != 0 ]; then
    mkdir "$TMP/read_only"
    chmod 555 "$TMP/read_only"
    refuse train "$TMP/base.json" "output.dir not writable" --set output.dir="$TMP/read_only/run" -- \
        "$TMP/read_only/run"
fi
expect 0 "a finished run" -- "$BIN" train "$TMP/base.json" --set output.dir="$TMP/done" \
    --set data.cache_dir="$TMP/cache_done"
sum_before=$(cat "$TMP/done/final/model.safetensors" "$TMP/done/metrics.jsonl" | cksum)
expect 1 "output.dir holding a finished model" -- "$BIN" train "$TMP/base.json" \
    --set output.dir="$TMP/done" --set data.cache_dir="$TMP/cache_done" --set train.lr=2e-3
contains "$TMP/err" "output.dir: $TMP/done already holds a run"
contains "$TMP/err" "set output.overwrite to true"
checks=$((checks + 1))
[ "$(cat "$TMP/done/final/model.safetensors" "$TMP/done/metrics.jsonl" | cksum)" = "$sum_before" ] ||
    fail "the refused run changed the finished one"
expect 0 "output.overwrite replaces it" -- "$BIN" train "$TMP/base.json" --set output.dir="$TMP/done" \
    --set data.cache_dir="$TMP/cache_done" --set train.lr=2e-3 --set output.overwrite=true
checks=$((checks + 1))
[ "$(cat "$TMP/done/final/model.safetensors" "$TMP/done/metrics.jsonl" | cksum)" != "$sum_before" ] ||
    fail "output.overwrite did not replace the run"

finish
