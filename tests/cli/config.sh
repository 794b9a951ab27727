# config.sh — the command line around configurations: exit codes, messages, and
# --print-config round trips. Usage: bash config.sh /path/to/mnrl_cuda /path/to/repo
source "$(dirname "$0")/../cli_lib.sh"

expect 0 "--help" -- "$BIN" --help
contains "$TMP/out" "usage: mnrl_cuda [train] CONFIG.json"
contains "$TMP/out" "tokenize"
expect 0 "--version" -- "$BIN" --version
contains "$TMP/out" "mnrl_cuda "
contains "$TMP/out" "build: "
expect 2 "no arguments" -- "$BIN"
contains "$TMP/err" "usage:"

# Every subcommand has its own --help.
for sub in train eval encode export; do
    expect 0 "$sub --help" -- "$BIN" "$sub" --help
    contains "$TMP/out" "$sub"
done
expect 2 "export without a checkpoint" -- "$BIN" export
contains "$TMP/err" "missing CHECKPOINT_DIR"
expect 2 "eval without a model folder" -- "$BIN" eval
contains "$TMP/err" "missing MODEL_DIR"

expect 2 "unknown subcommand" -- "$BIN" trian configs/nli.json
contains "$TMP/err" "unknown subcommand \"trian\" (did you mean \"train\"?)"

expect 1 "missing config file" -- "$BIN" "$TMP/absent.json"
contains "$TMP/err" "$TMP/absent.json"
expect 2 "no config" -- "$BIN" train
contains "$TMP/err" "no CONFIG.json given"
expect 2 "unknown option" -- "$BIN" configs/nli.json --frobnicate
contains "$TMP/err" "unknown option --frobnicate"
expect 2 "--set without a value" -- "$BIN" configs/nli.json --set
contains "$TMP/err" "--set needs"

# A valid config is accepted and training starts; AllNLI is not in the repository, so it
# stops at the data file, names it, and leaves no output folder behind.
expect 1 "train a valid config" -- "$BIN" configs/nli.json --set output.dir="$TMP/nli"
contains "$TMP/err" "data/AllNLI.tsv.gz: cannot open"
checks=$((checks + 1))
[ ! -e "$TMP/nli" ] || fail "a failed run left $TMP/nli behind"
expect 1 "explicit train subcommand" -- "$BIN" train configs/nli-pairs.json --set output.dir="$TMP/nli"
contains "$TMP/err" "data/AllNLI.tsv.gz"

# Errors name the file and the key.
printf '{"model": {"path": "m"}, "data": {"train": "t"}, "train": {"batch_size": "64"}}\n' \
    >"$TMP/x.json"
expect 1 "type error" -- "$BIN" "$TMP/x.json"
contains "$TMP/err" "$TMP/x.json: train.batch_size: expected a positive integer, got \"64\""
printf '{"model": {"path": "m"},\n "data": {"train": "t"}\n "train": {}}\n' >"$TMP/bad.json"
expect 1 "JSON syntax error" -- "$BIN" "$TMP/bad.json"
contains "$TMP/err" "$TMP/bad.json:3:"
expect 1 "unknown key in --set" -- "$BIN" configs/nli.json --set train.learning_rat=1e-4
contains "$TMP/err" "--set: unknown key \"train.learning_rat\" (did you mean \"train.lr\"?)"
expect 0 "grad accumulation warns" -- "$BIN" configs/nli.json --set train.grad_accum_steps=2 \
    --print-config
contains "$TMP/err" "warning: train.grad_accum_steps"

# --print-config output is a config that prints back identically, for every shipped config,
# for the embedded demo, and with overrides.
for cfg in configs/nli.json configs/nli-pairs.json configs/demo.json; do
    expect 0 "print $cfg" -- "$BIN" "$cfg" --print-config
    cp "$TMP/out" "$TMP/printed.json"
    expect 0 "reprint $cfg" -- "$BIN" --print-config "$TMP/printed.json"
    checks=$((checks + 1))
    cmp -s "$TMP/out" "$TMP/printed.json" || fail "$cfg: print -> load -> print differs"
done
expect 0 "print the embedded demo" -- "$BIN" --print-config
cp "$TMP/out" "$TMP/embedded.json"
expect 0 "print configs/demo.json" -- "$BIN" configs/demo.json --print-config
checks=$((checks + 1))
cmp -s "$TMP/out" "$TMP/embedded.json" || fail "the embedded demo differs from configs/demo.json"
expect 0 "print with --set" -- "$BIN" configs/nli.json --set train.batch_size=256 \
    --set 'data.negative_columns=["hard"]' --set output.dir=runs/x --print-config
contains "$TMP/out" '"batch_size": 256'
contains "$TMP/out" '"dir": "runs/x"'
cp "$TMP/out" "$TMP/set.json"
expect 0 "reprint with --set" -- "$BIN" "$TMP/set.json" --print-config
checks=$((checks + 1))
cmp -s "$TMP/out" "$TMP/set.json" || fail "print with --set -> load -> print differs"

finish
