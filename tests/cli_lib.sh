# cli_lib.sh — helpers sourced by the tests/cli/*.sh tests of the mnrl_cuda binary.
# The sourcing script is run as: bash SCRIPT /path/to/mnrl_cuda /path/to/repo
# It gets BIN, ROOT, a scratch folder TMP (removed on exit), and the helpers below; it
# ends with `finish`.
set -u
BIN=$1
ROOT=$2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cd "$ROOT" || exit 1

checks=0
failures=0
fail() { failures=$((failures + 1)); echo "FAILED: $*" >&2; }

# expect CODE DESCRIPTION -- COMMAND...: runs COMMAND, keeps stdout/stderr in $TMP/out, err.
expect() {
    local want=$1 what=$2
    shift 3
    checks=$((checks + 1))
    "$@" >"$TMP/out" 2>"$TMP/err"
    local got=$?
    if [ "$got" != "$want" ]; then
        fail "$what: exit $got, expected $want"
        sed 's/^/  stderr: /' "$TMP/err" >&2
    fi
}

# contains FILE TEXT: the file has TEXT (a fixed string).
contains() {
    checks=$((checks + 1))
    grep -qF -- "$2" "$1" || { fail "$1 lacks \"$2\""; sed 's/^/  | /' "$1" >&2; }
}

# steps_of DIR: the step records of DIR/metrics.jsonl without the timings, one per line.
steps_of() {
    grep '"loss"' "$1/metrics.jsonl" | sed 's/,"ms":.*//'
}

# finish: prints the tally; the exit status is the test's result.
finish() {
    echo "$checks checks, $failures failed"
    [ "$failures" -eq 0 ]
}
