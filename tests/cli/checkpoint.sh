# checkpoint.sh — checkpoints, --resume and stop signals of `mnrl_cuda train` on the tiny
# parity model (dropout 0.1 from its config.json) and its 160-row data, batch 8:
#   - a run continued in its own folder from its step-15 checkpoint (after a copy of the
#     finished run, so metrics.jsonl, batch_order.txt and later checkpoints are there to be
#     cut back) ends with the uninterrupted run's metrics (every step once, the same loss,
#     norm, lr) and batch order, and a byte-identical final model.safetensors;
#   - --resume latest of a finished run: nothing left to train, the same model again;
#   - SIGTERM, then SIGUSR1, then SIGINT to a long run, each resumed with the exact command
#     the run printed (its output.dir has a space in it): exit 0, the message, a checkpoint
#     with DONE at the step it names; a last resume finishes with train.max_steps; in the
#     end metrics.jsonl holds steps 1..N once each, in order;
#   - a full disk while writing a checkpoint: an error naming the file, the older one kept;
#   - --resume usage errors and --help.
# (Bit-identity from fresh folders, refusals and write failures: tests/test_checkpoint.c.)
# Usage: bash checkpoint.sh /path/to/mnrl_cuda /path/to/repo
source "$(dirname "$0")/../cli_lib.sh"

cat >"$TMP/tiny.json" <<JSON
{
  "model": {"path": "tests/data/parity/tiny", "max_seq_length": 32, "backend": "cpu"},
  "data": {"train": "tests/data/parity/tiny_train.tsv", "cache_dir": "$TMP/cache"},
  "train": {"batch_size": 8, "epochs": 2, "lr": 1e-3, "warmup_steps": 4, "log_every": 10},
  "eval": {"sts_file": ""},
  "checkpoint": {"every_steps": 5, "keep": 10},
  "output": {"dir": "$TMP/full"}
}
JSON

# 1. Continue a run in its own folder from step 15; compare with the uninterrupted run.
expect 0 "the uninterrupted run" -- "$BIN" train "$TMP/tiny.json"
cp -r "$TMP/full" "$TMP/cont"
# (output.overwrite must not remove the checkpoints a run resumes from.)
expect 0 "resume in place from step 15" -- "$BIN" train "$TMP/tiny.json" --set output.dir="$TMP/cont" \
    --set output.overwrite=true --resume "$TMP/cont/checkpoints/step-0000015"
contains "$TMP/out" "resuming from $TMP/cont/checkpoints/step-0000015: step 15 of 40"
contains "$TMP/out" "step 16/40 | loss "
contains "$TMP/err" "checkpoints of later steps (up to 40) belong to the run this one replaces"
checks=$((checks + 4))
steps_of "$TMP/full" >"$TMP/full.steps"
steps_of "$TMP/cont" >"$TMP/cont.steps"
[ "$(wc -l <"$TMP/full.steps")" = 40 ] || fail "the uninterrupted run logged $(wc -l <"$TMP/full.steps") steps"
cmp -s "$TMP/full.steps" "$TMP/cont.steps" || { fail "the continued run's steps differ"; diff "$TMP/full.steps" "$TMP/cont.steps" | head -5 >&2; }
cmp -s "$TMP/full/final/model.safetensors" "$TMP/cont/final/model.safetensors" || fail "final models differ"
cmp -s <(grep -v '^#' "$TMP/full/batch_order.txt") <(grep -v '^#' "$TMP/cont/batch_order.txt") ||
    fail "batch orders differ"
contains "$TMP/cont/batch_order.txt" "# resumed at step 15 from $TMP/cont/checkpoints/step-0000015"

expect 0 "resume a finished run" -- "$BIN" train "$TMP/tiny.json" --set output.dir="$TMP/cont" --resume latest
contains "$TMP/err" "is at the run's last step; nothing is left to train"
checks=$((checks + 2))
cmp -s "$TMP/full/final/model.safetensors" "$TMP/cont/final/model.safetensors" || fail "the model changed"
cmp -s "$TMP/full.steps" <(steps_of "$TMP/cont") || fail "metrics.jsonl changed"

# 2. Stop signals. A long run (2,000 epochs); each session waits for some steps, then gets
# the signal; the next session is the command the stopped one printed.
RUN="$TMP/run one"
# session SIGNAL COMMAND...: runs COMMAND in the background until its metrics.jsonl has
# grown by 5 lines, sends SIGNAL, and checks the exit code, the message and the checkpoint.
session() {
    local sig=$1 before=0
    shift
    [ -f "$RUN/metrics.jsonl" ] && before=$(wc -l <"$RUN/metrics.jsonl")
    "$@" >"$TMP/out" 2>"$TMP/err" &
    local pid=$! waited=0
    until [ -f "$RUN/metrics.jsonl" ] && [ "$(wc -l <"$RUN/metrics.jsonl")" -ge $((before + 5)) ]; do
        sleep 0.05
        waited=$((waited + 1))
        [ $waited -lt 1200 ] || break
    done
    kill -"$sig" $pid
    wait $pid
    local code=$?
    checks=$((checks + 3))
    [ $code = 0 ] || { fail "SIG$sig: exit $code"; sed 's/^/  stderr: /' "$TMP/err" >&2; }
    contains "$TMP/out" "stopped by SIG$sig after step"
    local step dir
    step=$(sed -n "s/^stopped by SIG$sig after step \([0-9]*\) of 40000; checkpoint .*/\1/p" "$TMP/out")
    dir=$(printf '%s/checkpoints/step-%07d' "$RUN" "${step:-0}")
    [ -n "$step" ] && [ "$step" -gt "$before" ] || fail "SIG$sig: no step or no progress in: $(head -c 300 "$TMP/out")"
    [ -f "$dir/DONE" ] || fail "SIG$sig: $dir/DONE is missing"
    contains "$TMP/out" "checkpoint $dir"
    resume=$(sed -n 's/^resume with: mnrl_cuda //p' "$TMP/out")
    last_step=$step
    stops="${stops}step-$(printf %07d "$step") "
}
stops=""
session TERM "$BIN" train "$TMP/tiny.json" --set train.epochs=2000 --set checkpoint.every_steps=0 \
    --set "output.dir=$RUN"
contains "$TMP/out" "resume with: mnrl_cuda train $TMP/tiny.json --set train.epochs=2000 --set checkpoint.every_steps=0 --set 'output.dir=$RUN' --resume latest"
for sig in USR1 INT; do
    eval "session $sig \"\$BIN\" $resume"
    contains "$TMP/out" "resuming from $RUN/checkpoints/step-"
done
eval "expect 0 \"finish the run\" -- \"\$BIN\" $resume --set train.max_steps=$((last_step + 3))"
contains "$TMP/out" "step $((last_step + 3))/$((last_step + 3)) | loss "
contains "$TMP/out" "saved $RUN/final"
checks=$((checks + 2))
seq 1 $((last_step + 3)) >"$TMP/want"
grep -o '^{"step":[0-9]*' "$RUN/metrics.jsonl" | cut -d: -f2 >"$TMP/got"
cmp -s "$TMP/want" "$TMP/got" || fail "metrics.jsonl: not steps 1..$((last_step + 3)) once each"
[ "$(ls "$RUN/checkpoints" | tr '\n' ' ')" = "${stops}step-$(printf %07d $((last_step + 3))) " ] ||
    fail "checkpoints left: $(ls "$RUN/checkpoints" | tr '\n' ' '), expected those of the stops, ${stops}and the last"

# 3. A full disk while writing step 10's weights (a write failure injected by the test-only
# MNRL_TEST_FAIL_WRITE): exit 1, the file named, step 5's checkpoint alone left.
expect 1 "a full disk at step 10" -- env MNRL_TEST_FAIL_WRITE=step-0000010/model "$BIN" train "$TMP/tiny.json" \
    --set output.dir="$TMP/disk"
contains "$TMP/err" "step-0000010/model.safetensors.tmp."
contains "$TMP/err" "No space left on device"
contains "$TMP/err" "checkpoint of step 10 not written (the older checkpoints in $TMP/disk/checkpoints are unchanged)"
checks=$((checks + 1))
[ "$(ls -A "$TMP/disk/checkpoints" | tr '\n' ' ')" = "step-0000005 " ] ||
    fail "after the failed write: $(ls -A "$TMP/disk/checkpoints" | tr '\n' ' ')"

# 4. Usage.
expect 2 "--resume without a value" -- "$BIN" train "$TMP/tiny.json" --resume
contains "$TMP/err" "--resume needs a value: latest, or a checkpoint folder"
expect 2 "--resume twice" -- "$BIN" train "$TMP/tiny.json" --resume latest --resume=latest
contains "$TMP/err" "--resume is given twice"
expect 0 "--help" -- "$BIN" train --help
contains "$TMP/out" "--resume latest|DIR"
expect 1 "latest without checkpoints" -- "$BIN" train "$TMP/tiny.json" --set output.dir="$TMP/none" --resume latest
contains "$TMP/err" "--resume latest: $TMP/none/checkpoints holds no complete checkpoint"

finish
