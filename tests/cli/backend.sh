# backend.sh — model.backend selection (issue 5 item 5) on the tiny parity model:
# "auto" trains on the CPU with a one-line note when no GPU is usable (and says which CUDA
# table it took when one is); "cuda" without a usable GPU (or in a build without CUDA) stops
# with exit 1 and a message that names the problem, never a crash; "cpu" says nothing.
# Usage: bash backend.sh /path/to/mnrl_cuda /path/to/repo
source "$(dirname "$0")/../cli_lib.sh"

cat >"$TMP/tiny.json" <<JSON
{
  "model": {"path": "tests/data/parity/tiny", "max_seq_length": 32, "backend": "auto"},
  "data": {"train": "tests/data/parity/tiny_train.tsv", "cache_dir": "$TMP/cache"},
  "train": {"batch_size": 8, "max_steps": 2, "lr": 1e-3, "warmup_steps": 0, "log_every": 1},
  "output": {"dir": "$TMP/run"}
}
JSON

# A GPU is usable when the binary has the kernels and the runtime lists a device
# (--version's CUDA line: "... N device(s), device 0: ..."); the answers then differ.
gpu=0
"$BIN" --version 2>/dev/null | grep -q '^CUDA: .* device(s)' && gpu=1

expect 0 "auto" -- "$BIN" train "$TMP/tiny.json"
contains "$TMP/out" "step 2/2 | loss "
if [ "$gpu" = 1 ]; then
    contains "$TMP/err" "backend: cuda-bf16, CUDA runtime"
    expect 0 "auto, fp32 on the GPU" -- "$BIN" train "$TMP/tiny.json" --set model.precision=fp32 \
        --set output.dir="$TMP/run_fp32"
    contains "$TMP/err" "backend: cuda-fp32, CUDA runtime"
else
    contains "$TMP/err" "backend: no usable GPU ("
    contains "$TMP/err" "), training on the CPU"
    checks=$((checks + 1))
    [ "$(grep -c 'backend:' "$TMP/err")" = 1 ] || fail "the CPU note is not one line"
    expect 1 "cuda without a usable GPU" -- "$BIN" train "$TMP/tiny.json" --set model.backend=cuda \
        --set output.dir="$TMP/run_cuda"
    contains "$TMP/err" "model.backend"
    contains "$TMP/err" "cuda"
    # The runtime's reason (no device, no driver) or the build's (no kernels), and what to do.
    checks=$((checks + 1))
    grep -qE 'no usable device|no CUDA kernels' "$TMP/err" || fail "the cuda error does not name the problem"
    contains "$TMP/err" "\"cpu\""
    checks=$((checks + 1))
    [ ! -e "$TMP/run_cuda/metrics.jsonl" ] || fail "a refused cuda run left metrics.jsonl behind"
fi
expect 0 "cpu" -- "$BIN" train "$TMP/tiny.json" --set model.backend=cpu --set output.dir="$TMP/run_cpu"
checks=$((checks + 1))
! grep -q 'backend:' "$TMP/err" || fail "model.backend \"cpu\" printed a backend note"
finish
