#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (clang, -fsanitize=fuzzer,address,undefined) and
# runs each for SECONDS (default 60) starting from its committed corpus
# tests/fuzz/corpus/NAME. Any finding (crash, sanitizer report, failed invariant, leak,
# timeout) stops with a non-zero exit; the input is kept as BUILD/artifacts/NAME-*.
# Reproduce one with BUILD/fuzz_NAME FILE; once fixed, copy it into tests/fuzz/corpus/NAME
# as a regression input.
#
# usage: scripts/fuzz.sh [SECONDS] [NAME...]    (NAME: config, data, sts, tokenizer,
#        tokenizer_files, safetensors, npy; default all)
#   SECONDS=0 only replays the committed corpora (a quick regression check).
#   MNRL_FUZZ_BUILD sets the build folder (default build-fuzz), MNRL_FUZZ_JOBS how many
#   targets run at once (default: the number of cores), CC the compiler (default clang).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${1:-60}
shift || true
build=${MNRL_FUZZ_BUILD:-build-fuzz}
cc=${CC:-clang}
case "$seconds" in ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number, got \"$seconds\"" >&2; exit 2;; esac
command -v "$cc" >/dev/null || { echo "fuzz.sh: $cc not found; run scripts/install-deps.sh (clang, libclang-rt-14-dev)" >&2; exit 1; }

# The modules the targets reach: parsers and what they call, nothing that needs BLAS or MPI.
sources=(common textio text_table table_reader dataset config tokenizer safetensors npy)
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(config data sts tokenizer tokenizer_files safetensors npy)
fi

flags=(-std=c11 -D_POSIX_C_SOURCE=200809L -g -O1 -fno-omit-frame-pointer -Wall -Wextra -Werror
       -fsanitize=address,undefined -fno-sanitize-recover=all -Iinclude
       -DMNRL_SOURCE_DIR="\"$root\"" $(pkg-config --cflags jansson libutf8proc))
libs=($(pkg-config --libs jansson libutf8proc) -lz -lm)
mkdir -p "$build/obj" "$build/artifacts"
echo "== fuzz: building ${targets[*]} with $cc =="
objects=()
for s in "${sources[@]}"; do
    obj="$build/obj/$s.o"
    if [ ! "$obj" -nt "src/host/$s.c" ] || [ -n "$(find include/mnrl -newer "$obj" -name '*.h')" ]; then
        "$cc" "${flags[@]}" -fsanitize=fuzzer-no-link -c "src/host/$s.c" -o "$obj"
    fi
    objects+=("$obj")
done
# The embedded demo config (fuzz_config overrides it with --set lines), made as CMake makes it.
cmake -DINPUT=configs/demo.json -DOUTPUT="$build/demo_config.c" -DSYMBOL=mnrl_demo_config_json \
      -P cmake/embed.cmake
"$cc" "${flags[@]}" -c "$build/demo_config.c" -o "$build/obj/demo_config.o"
objects+=("$build/obj/demo_config.o")
for t in "${targets[@]}"; do
    [ -f "tests/fuzz/fuzz_$t.c" ] || { echo "fuzz.sh: no target tests/fuzz/fuzz_$t.c" >&2; exit 2; }
    "$cc" "${flags[@]}" -fsanitize=fuzzer "tests/fuzz/fuzz_$t.c" "${objects[@]}" "${libs[@]}" \
        -o "$build/fuzz_$t"
done

# Scratch files of the targets go to a folder of their own, removed at the end.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
if [ "$seconds" = 0 ]; then
    mode=(-runs=0)
else
    mode=(-max_total_time="$seconds")
fi

# One target: its log in BUILD/fuzz_NAME.log, its exit status in BUILD/fuzz_NAME.rc.
run_target() {
    local t=$1
    local seeds="tests/fuzz/corpus/$t"
    local work="$build/corpus/$t"  # inputs found while fuzzing; the committed corpus stays as it is
    mkdir -p "$work"
    local rc=0
    TMPDIR="$scratch" "$build/fuzz_$t" "${mode[@]}" -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" \
        "$work" "$seeds" >"$build/fuzz_$t.log" 2>&1 || rc=$?
    echo "$rc" >"$build/fuzz_$t.rc"
}

# The targets run side by side, MNRL_FUZZ_JOBS at a time (default: one per core), each for
# SECONDS of wall-clock time.
jobs=${MNRL_FUZZ_JOBS:-$(nproc)}
echo "== fuzz: ${#targets[@]} targets, ${seconds} s each, $jobs at a time =="
for t in "${targets[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
    run_target "$t" &
done
wait
failed=0
for t in "${targets[@]}"; do
    log="$build/fuzz_$t.log"
    if [ "$(cat "$build/fuzz_$t.rc")" != 0 ]; then
        tail -n 60 "$log" >&2
        echo "fuzz.sh: fuzz_$t found a problem (log $log, input in $build/artifacts/); fix it" \
             "and add the input to tests/fuzz/corpus/$t as a regression input" >&2
        failed=1
        continue
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -E '^#[0-9]+.*(DONE|INITED)' "$log" | tail -n 1 | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    echo "fuzz_$t: ${runs:-?} inputs run from $(ls "tests/fuzz/corpus/$t" | wc -l) committed ones," \
         "coverage ${cov:-?} edges, no finding"
done
[ "$failed" = 0 ] || exit 1
echo "== fuzz: all targets clean =="
