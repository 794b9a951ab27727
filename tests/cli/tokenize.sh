#!/usr/bin/env bash
# `mnrl_cuda tokenize`: ids of stress texts compared with the committed HF goldens
# (tests/data/tokenizer, written by tests/reference/make_tokenizer_goldens.py), at the
# model's default length and with --max-seq-length 75; exit codes of bad invocations.
# usage: bash tokenize.sh /path/to/mnrl_cuda /path/to/repo
set -u
BIN=$1
ROOT=$2
DATA=$ROOT/tests/data/tokenizer
MODEL=$ROOT/models/bert-base-uncased
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# Golden line of stress text K (0-based) in a mode; "=" lines refer to uncased_512.
golden() {
    local mode=$1 k=$2 header stsb snli line
    [ -f "$TMP/$mode.txt" ] || zcat "$DATA/$mode.ids.gz" >"$TMP/$mode.txt"
    header=$(head -n 1 "$TMP/$mode.txt")
    stsb=$(sed -n 's/.* stsb=\([0-9]*\).*/\1/p' <<<"$header")
    snli=$(sed -n 's/.* snli=\([0-9]*\).*/\1/p' <<<"$header")
    line=$(sed -n "$((2 + stsb + snli + k))p" "$TMP/$mode.txt")
    if [ "$line" = "=" ]; then golden uncased_512 "$k"; else echo "$line"; fi
}

# The first 120 stress texts that fit on one line (no NUL, \n or \r bytes).
: >"$TMP/in.txt"
: >"$TMP/want512.txt"
: >"$TMP/want75.txt"
k=0
while read -r hex; do
    if [ "$k" -ge 120 ]; then break; fi
    if ! grep -qE '^(..)*(00|0a|0d)' <<<"$hex"; then
        printf '%b\n' "$(sed 's/../\\x&/g' <<<"$hex")" >>"$TMP/in.txt"
        golden uncased_512 "$k" >>"$TMP/want512.txt"
        golden uncased_75 "$k" >>"$TMP/want75.txt"
    fi
    k=$((k + 1))
done < <(zcat "$DATA/stress.hex.gz")
lines=$(wc -l <"$TMP/in.txt")
[ "$lines" -ge 80 ] || fail "only $lines stress texts selected"

"$BIN" tokenize "$MODEL" --input "$TMP/in.txt" >"$TMP/out512.txt" || fail "tokenize --input exited $?"
cmp -s "$TMP/out512.txt" "$TMP/want512.txt" || fail "ids differ from uncased_512 golden: $(diff "$TMP/out512.txt" "$TMP/want512.txt" | head -5)"
"$BIN" tokenize "$MODEL" --max-seq-length 75 <"$TMP/in.txt" >"$TMP/out75.txt" || fail "tokenize from stdin exited $?"
cmp -s "$TMP/out75.txt" "$TMP/want75.txt" || fail "ids differ from uncased_75 golden: $(diff "$TMP/out75.txt" "$TMP/want75.txt" | head -5)"
gzip -c "$TMP/in.txt" >"$TMP/in.txt.gz"
"$BIN" tokenize "$MODEL" --input="$TMP/in.txt.gz" --max-seq-length=75 >"$TMP/out75gz.txt" || fail "tokenize .gz exited $?"
cmp -s "$TMP/out75gz.txt" "$TMP/want75.txt" || fail ".gz input gives other ids"
echo "tokenize: $lines lines identical to the HF goldens at max 512 and 75"

# Bad invocations: exit 2 with a message; a bad model folder: exit 1 naming vocab.txt.
expect_exit() {
    local want=$1 pattern=$2
    shift 2
    "$@" >"$TMP/out" 2>"$TMP/err" </dev/null
    local got=$?
    [ "$got" -eq "$want" ] || fail "'$*' exited $got, expected $want"
    grep -q -- "$pattern" "$TMP/err" "$TMP/out" || fail "'$*' did not say '$pattern': $(cat "$TMP/err")"
}
expect_exit 0 "usage: mnrl_cuda tokenize" "$BIN" tokenize --help
expect_exit 2 "missing MODEL_DIR" "$BIN" tokenize
expect_exit 2 "unknown option '--bogus'" "$BIN" tokenize "$MODEL" --bogus
expect_exit 2 "--max-seq-length must be an integer" "$BIN" tokenize "$MODEL" --max-seq-length 1
expect_exit 2 "--max-seq-length must be an integer" "$BIN" tokenize "$MODEL" --max-seq-length ten
expect_exit 2 "needs a value" "$BIN" tokenize "$MODEL" --input
expect_exit 2 "exactly one MODEL_DIR" "$BIN" tokenize "$MODEL" "$MODEL"
expect_exit 1 "vocab.txt: not found" "$BIN" tokenize "$TMP"
expect_exit 1 "cannot open" "$BIN" tokenize "$MODEL" --input "$TMP/missing.txt"

if [ "$failures" -ne 0 ]; then
    echo "$failures failure(s)"
    exit 1
fi
echo "all tokenize CLI checks passed"
