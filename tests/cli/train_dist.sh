# train_dist.sh — data-parallel `mnrl_cuda train` (DESIGN §1 "Across ranks", §2
# "Distributed") on the tiny parity model, CPU backend, dropout 0:
#   - two processes started torchrun-style (RANK/WORLD_SIZE/LOCAL_RANK) without mpirun:
#     the CPU backend has no channel for host data there, so each must stop with a clear
#     error that says to use mpirun, and leave no output folder (any build);
#   - in a build with MPI, under `mpirun -np 2`: rank 0 alone prints the step lines and
#     writes output.dir (metrics.jsonl, batch_order.txt, final/); every step trains the
#     same global batch as a 1-process run, with the same loss (within 1e-5) for k = 2 hard
#     negatives over a whole epoch whose last batch is short (split evenly over the ranks);
#     a last batch that does not split evenly leaves its odd row untrained, with a note; a
#     global batch that is not a multiple of the ranks is refused on every rank; a run of 2
#     ranks resumed from its checkpoint by 2 ranks is bit-identical, by 1 process refused;
#     with gradient accumulation (2 batches per step) and cached MNRL on the ranks, the
#     same batches and losses (within 1e-5) as 1 process accumulating uncached.
# Usage: bash train_dist.sh /path/to/mnrl_cuda /path/to/repo
source "$(dirname "$0")/../cli_lib.sh"

# tiny.json: 160 triplets (anchor, positive, 2 negatives), global batch 12 = 13 full
# batches and a last one of 4 rows, one epoch, no STS evaluation (tested in train.sh).
cat >"$TMP/tiny.json" <<JSON
{
  "model": {"path": "tests/data/parity/tiny", "max_seq_length": 32, "backend": "cpu"},
  "data": {"train": "tests/data/dist/triplets_k2.tsv", "cache_dir": "$TMP/cache"},
  "train": {"batch_size": 12, "epochs": 1, "lr": 1e-3, "warmup_steps": 2, "log_every": 1,
            "dropout": 0},
  "eval": {"sts_file": ""},
  "output": {"dir": "$TMP/one"}
}
JSON

# step_losses DIR: the "loss" of every step record of DIR/metrics.jsonl, one per line.
step_losses() {
    grep '"loss"' "$1/metrics.jsonl" | sed 's/.*"loss": *\([^,}]*\).*/\1/'
}

# 1. Two environment-launched CPU ranks: a clear error on each, nothing written.
for r in 0 1; do
    RANK=$r WORLD_SIZE=2 LOCAL_RANK=$r "$BIN" train "$TMP/tiny.json" --set output.dir="$TMP/env" \
        >"$TMP/env.out$r" 2>"$TMP/env.err$r" &
done
for r in 0 1; do
    checks=$((checks + 1))
    wait %$((r + 1))
    code=$?
    [ "$code" = 1 ] || fail "env-launched rank $r: exit $code, expected 1"
    contains "$TMP/env.err$r" "2 ranks on the CPU backend exchange data through MPI"
    contains "$TMP/env.err$r" "mpirun -np 2"
done
checks=$((checks + 1))
[ ! -e "$TMP/env" ] || fail "the failed environment launch left $TMP/env"

if ! "$BIN" --version | grep -q "MPI: built"; then
    echo "SKIPPED (mpirun part): this binary was built without MPI (-DMNRL_MPI=ON)"
    finish
    exit $?
fi
MPIRUN=(mpirun --oversubscribe --allow-run-as-root -np 2)

# 2. One process against two ranks on the same global batches.
expect 0 "one process, global batch 12" -- "$BIN" train "$TMP/tiny.json"
expect 0 "mpirun -np 2, 6 rows per rank" -- "${MPIRUN[@]}" "$BIN" train "$TMP/tiny.json" \
    --set output.dir="$TMP/two"
contains "$TMP/out" "data-parallel: 2 ranks (mpi) x 6 rows"
contains "$TMP/out" "step 14/14 | loss "
# (Open MPI gives the ranks a terminal, so progress bars may share lines with these.)
checks=$((checks + 3))
[ "$(grep -o 'training tests/data' "$TMP/out" | wc -l)" = 1 ] || fail "not one rank printed the start line"
[ "$(grep -o 'step 1/14 |' "$TMP/out" | wc -l)" = 1 ] || fail "not one rank printed step lines"
[ "$(grep -o "saved $TMP/two/final" "$TMP/out" | wc -l)" = 1 ] || fail "not one rank exported"
for f in metrics.jsonl batch_order.txt final/model.safetensors final/config.json; do
    checks=$((checks + 1))
    [ -s "$TMP/two/$f" ] || fail "two ranks: $f is missing or empty"
done
checks=$((checks + 2))
[ "$(step_losses "$TMP/two" | wc -l)" = 14 ] || fail "two ranks: metrics.jsonl does not hold 14 steps"
# Same rows per step (the global batches); the 1-process run's comment line aside.
cmp -s <(grep -v '^#' "$TMP/one/batch_order.txt") <(grep -v '^#' "$TMP/two/batch_order.txt") ||
    fail "the two runs trained different global batches"
checks=$((checks + 1))
paste <(step_losses "$TMP/one") <(step_losses "$TMP/two") >"$TMP/losses"
awk 'NF != 2 || ($1 - $2 > 1e-5 || $2 - $1 > 1e-5) { print "step " NR ": " $0; bad = 1 }
     END { exit bad || NR != 14 }' "$TMP/losses" >&2 ||
    fail "the losses of 1 process and 2 ranks differ by more than 1e-5"
awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d } END { printf "14 steps, worst loss difference 1 vs 2 ranks: %.3g\n", m }' "$TMP/losses"

# 3. A last batch of 5 rows (149 rows): 2 rows per rank, the fifth row left untrained.
head -n 150 tests/data/dist/triplets_k2.tsv >"$TMP/odd.tsv"
expect 0 "mpirun -np 2, last batch of 5 rows" -- "${MPIRUN[@]}" "$BIN" train "$TMP/tiny.json" \
    --set data.train="$TMP/odd.tsv" --set output.dir="$TMP/odd"
contains "$TMP/err" "note: 1 rows of short final batches were not trained on: they did not split evenly over 2 ranks"
checks=$((checks + 1))
[ "$(grep -v '^#' "$TMP/odd/batch_order.txt" | tail -n 1 | wc -w)" = 4 ] ||
    fail "the last step did not train 2 rows on each of 2 ranks"

# 4. A global batch that does not split over the ranks: refused, every rank ends.
expect 1 "mpirun -np 2, global batch 7" -- "${MPIRUN[@]}" "$BIN" train "$TMP/tiny.json" \
    --set train.batch_size=7 --set output.dir="$TMP/seven"
contains "$TMP/err" "with 2 ranks it must be a multiple of 2"
checks=$((checks + 1))
[ ! -e "$TMP/seven" ] || fail "the refused run left $TMP/seven"

# 5. Checkpoints of 2 ranks, with dropout (whose masks depend on the rank): resumed by 2
# ranks from step 7, every step and the final model equal the uninterrupted run's bit for
# bit; one process may not resume them (another world size).
expect 0 "mpirun -np 2, a checkpoint every 7 steps" -- "${MPIRUN[@]}" "$BIN" train "$TMP/tiny.json" \
    --set train.dropout=0.1 --set checkpoint.every_steps=7 --set output.dir="$TMP/ck"
cp -r "$TMP/ck" "$TMP/ck_resumed"
expect 0 "mpirun -np 2, resumed from step 7" -- "${MPIRUN[@]}" "$BIN" train "$TMP/tiny.json" \
    --set train.dropout=0.1 --set checkpoint.every_steps=7 --set output.dir="$TMP/ck_resumed" \
    --resume "$TMP/ck_resumed/checkpoints/step-0000007"
contains "$TMP/out" "resuming from $TMP/ck_resumed/checkpoints/step-0000007: step 7 of 14"
checks=$((checks + 2))
cmp -s <(grep '"loss"' "$TMP/ck/metrics.jsonl" | sed 's/,"ms":.*//') \
    <(grep '"loss"' "$TMP/ck_resumed/metrics.jsonl" | sed 's/,"ms":.*//') ||
    fail "2 ranks: the resumed run's steps differ from the uninterrupted run's"
cmp -s "$TMP/ck/final/model.safetensors" "$TMP/ck_resumed/final/model.safetensors" ||
    fail "2 ranks: the resumed run's final model differs"
expect 1 "one process resuming 2 ranks' checkpoint" -- "$BIN" train "$TMP/tiny.json" \
    --set train.dropout=0.1 --set output.dir="$TMP/ck_one" --resume "$TMP/ck/checkpoints/step-0000007"
contains "$TMP/err" "written by 2 ranks, but this run has 1; resume with 2 ranks"

# 6. Gradient accumulation, 2 batches per step: 7 steps (the last with the batch of 4 rows);
# the ranks cache their 6 rows in chunks of 4 (4 + 2). The same global batches, one line
# per step, and the same losses as one process accumulating uncached.
expect 0 "one process, 2 batches per step" -- "$BIN" train "$TMP/tiny.json" \
    --set train.grad_accum_steps=2 --set output.dir="$TMP/one_accum"
expect 0 "mpirun -np 2, 2 batches per step, cached" -- "${MPIRUN[@]}" "$BIN" train "$TMP/tiny.json" \
    --set train.grad_accum_steps=2 --set loss.mini_batch_size=4 --set output.dir="$TMP/two_accum"
contains "$TMP/out" "step 7/7 | loss "
checks=$((checks + 3))
[ "$(grep -o 'gradient accumulation does not add in-batch negatives' "$TMP/err" | wc -l)" -ge 1 ] ||
    fail "2 ranks, accumulating: no warning"
cmp -s <(grep -v '^#' "$TMP/one_accum/batch_order.txt") <(grep -v '^#' "$TMP/two_accum/batch_order.txt") ||
    fail "accumulating: the two runs trained different global batches"
paste <(step_losses "$TMP/one_accum") <(step_losses "$TMP/two_accum") >"$TMP/losses_accum"
awk 'NF != 2 || ($1 - $2 > 1e-5 || $2 - $1 > 1e-5) { print "step " NR ": " $0; bad = 1 }
     END { exit bad || NR != 7 }' "$TMP/losses_accum" >&2 ||
    fail "accumulating: the losses of 1 process and 2 ranks differ by more than 1e-5"
awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d } END { printf "accumulating, 7 steps, worst loss difference 1 vs 2 ranks: %.3g\n", m }' "$TMP/losses_accum"

finish
