// test_checkpoint.c — checkpoints and --resume (checkpoint.h, train.c) on the tiny parity
// model, with the dropout of its config.json (0.1, so the dropout streams matter), and its
// 160-row MNRL data at batch 8: 20 steps per epoch, 2 epochs, a checkpoint every 5 steps.
//   - Resumed from steps 15, 20 (an epoch boundary), 25 (in the second epoch) and 40 (the
//     end) into fresh output folders, each run's per-step loss, gradient norm, lr and epoch
//     and its final model.safetensors are bit-identical to the uninterrupted run's, and so
//     are the moments and state.json of its final checkpoint; resumed from step 5 (latest,
//     after a failed write), the final model too.
//   - Refused with a message naming the checkpoint and the item: no DONE, another config
//     (the key and both values), another world size, latest without checkpoints, data of
//     another row count, another tokenizer; train.epochs may change (a longer run).
//   - A full disk (MNRL_TEST_FAIL_WRITE) while writing step 10's moments or its DONE: an
//     error naming the file, step 5's checkpoint intact (byte-identical to the uninterrupted
//     run's), nothing else left.
//   - Non-finite steps: the run stops after train.max_bad_steps with the checkpoints of its
//     good steps intact and none written during the bad ones.
//   - output.dir already holding checkpoints: refused with the --resume hint; with
//     output.overwrite the old checkpoints are removed.
//   - Gradient accumulation (train.grad_accum_steps = 3, a checkpoint every step): 20
//     batches per epoch make 7 optimizer steps (6 of 3 batches, then the 2 left), 14 in
//     all, at epochs k/7; batch_order.txt has one line per step with its batches of 8 rows
//     apart by " | "; state.json counts optimizer steps and the epoch's batches; resumed
//     from steps 4, 6 (before the short step), 7 (after it, at the epoch's end) and 8 (in
//     the second epoch), bit-identical as above; another grad_accum_steps is refused. With 2 batches per step,
//     step 1's loss is the mean of the uninterrupted run's steps 1 and 2 (within 1e-6):
//     its step 1 runs at lr 0 (warm-up), so step 2 sees the same weights, and the masks of
//     micro-batch j of step s are those of step 2s + j without accumulation.
#include <dirent.h>
#include <jansson.h>

#include "mnrl/checkpoint.h"
#include "mnrl/config.h"
#include "mnrl/dist.h"
#include "mnrl/safetensors.h"
#include "mnrl/train.h"
#include "test.h"

static char scratch[256];

static const char model_set[] = "model.path=" MNRL_TEST_DATA_DIR "/parity/tiny";
static const char data_set[] = "data.train=" MNRL_TEST_DATA_DIR "/parity/tiny_train.tsv";

static const char config_json[] =
    "{\"model\": {\"path\": \"x\", \"max_seq_length\": 32, \"backend\": \"cpu\"},"
    " \"data\": {\"train\": \"x\"},"
    " \"train\": {\"batch_size\": 8, \"epochs\": 2, \"lr\": 1e-3, \"warmup_steps\": 4, \"log_every\": 100},"
    " \"eval\": {\"sts_file\": \"\"},"
    " \"checkpoint\": {\"every_steps\": 5, \"keep\": 100},"
    " \"dist\": {\"backend\": \"single\"}}";

#define MAX_SETS 8
#define SETS(...) ((const char *[]){__VA_ARGS__, NULL})

// Trains into scratch/out (resume: NULL, "latest" or a folder) with the NULL-terminated
// "key=value"s of extra (NULL: none).
static int train(const char *out, const char *resume, const char *const *extra, MnrlError *err) {
    char out_set[512], cache_set[512];
    snprintf(out_set, sizeof out_set, "output.dir=%s/%s", scratch, out);
    snprintf(cache_set, sizeof cache_set, "data.cache_dir=%s/cache", scratch);
    const char *sets[MAX_SETS] = {model_set, data_set, out_set, cache_set};
    int n = 4;
    while (extra && *extra && n < MAX_SETS) sets[n++] = *extra++;
    MnrlConfig cfg;
    if (config_from_string("test", config_json, sets, n, &cfg, err) != 0) return -1;
    MnrlDist dist;
    TrainInvocation inv = {.command_line = "test", .resume = resume, .resume_command = "test --resume latest"};
    int rc = dist_init(&dist, &cfg.dist, cfg.output.dir, MNRL_DIST_HOST_MEMORY, err);
    if (rc == 0) rc = train_run(&cfg, &dist, &inv, err);
    dist_close(&dist);
    config_free(&cfg);
    return rc;
}

static void path_of(char *buf, size_t cap, const char *out, const char *rest) {
    snprintf(buf, cap, "%s/%s/%s", scratch, out, rest);
}

// ---- metrics ------------------------------------------------------------------------------------

typedef struct {
    int64_t step;
    double epoch, loss, grad_norm, lr;
} StepRecord;

static double number_or_nan(const json_t *rec, const char *key) {
    const json_t *v = json_object_get(rec, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

// The step records of out/metrics.jsonl (at most cap); -1 when the file cannot be read.
static int read_steps(const char *out, StepRecord *recs, int cap) {
    char path[600], *text;
    size_t len;
    MnrlError err;
    path_of(path, sizeof path, out, "metrics.jsonl");
    if (mnrl_read_file(path, &text, &len, &err) != 0) return -1;
    int n = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_t *rec = json_loads(line, 0, NULL);
        if (rec && json_object_get(rec, "loss") && n < cap) {
            recs[n++] = (StepRecord){json_integer_value(json_object_get(rec, "step")), number_or_nan(rec, "epoch"),
                                     number_or_nan(rec, "loss"), number_or_nan(rec, "grad_norm"),
                                     number_or_nan(rec, "lr")};
        }
        json_decref(rec);
    }
    free(text);
    return n;
}

static int same_number(double a, double b) { return a == b || (isnan(a) && isnan(b)); }

// The records of `resumed` are exactly full's steps after `from`, bit for bit.
static void check_same_steps(const char *full, const char *resumed, int64_t from) {
    StepRecord a[64], b[64];
    int na = read_steps(full, a, 64), nb = read_steps(resumed, b, 64);
    CHECK_EQ_INT(nb, na - from);
    int differing = 0;
    for (int i = 0; i < nb && from + i < na; i++) {
        const StepRecord *x = &a[from + i], *y = &b[i];
        if (x->step != y->step || !same_number(x->loss, y->loss) || !same_number(x->grad_norm, y->grad_norm) ||
            !same_number(x->lr, y->lr) || !same_number(x->epoch, y->epoch)) {
            if (differing++ == 0) {
                fprintf(stderr, "resumed from %lld: step %lld loss %.9g norm %.9g, uninterrupted step %lld loss "
                                "%.9g norm %.9g\n", (long long)from, (long long)y->step, y->loss, y->grad_norm,
                        (long long)x->step, x->loss, x->grad_norm);
            }
        }
    }
    CHECK_MSG(differing == 0, "resumed from step %lld: %d of %d steps differ", (long long)from, differing, nb);
}

// out's file rest equals full's, byte for byte.
static void check_same_file(const char *full, const char *out, const char *rest) {
    char a[600], b[600];
    path_of(a, sizeof a, full, rest);
    path_of(b, sizeof b, out, rest);
    CHECK_MSG(test_same_file_bytes(a, b), "%s", rest);
}

// Every file of checkpoint `step` (checkpoints/step-NNNNNNN/...) byte-equal in full and out;
// not train_config.json, which names each run's own output.dir.
static void check_same_checkpoint(const char *full, const char *out, const char *step) {
    const char *files[] = {"model.safetensors", "optimizer.exp_avg.safetensors", "optimizer.exp_avg_sq.safetensors",
                           "state.json", "DONE"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char rest[128];
        snprintf(rest, sizeof rest, "checkpoints/%s/%s", step, files[i]);
        check_same_file(full, out, rest);
    }
}

// ---- bit-identical resume ------------------------------------------------------------------------

// Resumes full's run (trained with the settings extra) from its checkpoint of step from
// into a fresh folder; everything after it must be bit-identical to full's, up to the final
// checkpoint last.
static void check_resume_of(const char *full, int64_t from, const char *const *extra, const char *last) {
    char out[64], dir[600], name[64];
    snprintf(out, sizeof out, "%s_from%lld", full, (long long)from);
    snprintf(name, sizeof name, "checkpoints/step-%07lld", (long long)from);
    path_of(dir, sizeof dir, full, name);
    MnrlError err;
    CHECK_MSG(train(out, dir, extra, &err) == 0, "resume from %lld: %s", (long long)from, err.msg);
    check_same_steps(full, out, from);
    check_same_file(full, out, "final/model.safetensors");
    check_same_checkpoint(full, out, last);
}

static void check_resume(int64_t from) { check_resume_of("full", from, NULL, "step-0000040"); }

// The state.json of out's checkpoint of `step`, parsed (NULL when it cannot be read).
static json_t *read_state(const char *out, int64_t step) {
    char rest[128], path[600], *text;
    size_t len;
    MnrlError err;
    snprintf(rest, sizeof rest, "checkpoints/step-%07lld/state.json", (long long)step);
    path_of(path, sizeof path, out, rest);
    if (mnrl_read_file(path, &text, &len, &err) != 0) return NULL;
    json_t *s = json_loads(text, 0, NULL);
    free(text);
    return s;
}

static int64_t state_int(const json_t *s, const char *key) { return json_integer_value(json_object_get(s, key)); }

static void check_state_file(void) {
    json_t *s = read_state("full", 25);
    CHECK(s != NULL);
    CHECK_EQ_INT(state_int(s, "step"), 25);
    CHECK_EQ_INT(state_int(s, "epoch"), 1);
    CHECK_EQ_INT(state_int(s, "epoch_batches"), 5);
    CHECK_EQ_INT(state_int(s, "epoch_seed"), 43);
    CHECK_EQ_INT(state_int(s, "adam_step"), 25);
    CHECK_EQ_INT(json_integer_value(json_object_get(s, "world_size")), 1);
    CHECK_EQ_INT(json_integer_value(json_object_get(s, "data_rows")), 160);
    CHECK_STR(json_string_value(json_object_get(s, "version")), MNRL_VERSION);
    json_decref(s);
}

// ---- refusals ------------------------------------------------------------------------------------

static void expect_refusal(const char *what, const char *out, const char *resume, const char *const *extra,
                           const char *needle1, const char *needle2) {
    MnrlError err = {{0}};
    CHECK_MSG(train(out, resume, extra, &err) != 0, "%s: accepted", what);
    CHECK_CONTAINS(err.msg, needle1);
    if (needle2) CHECK_CONTAINS(err.msg, needle2);
}

static void check_refusals(void) {
    char dir[600], done[700];
    path_of(dir, sizeof dir, "full", "checkpoints/step-0000015");
    expect_refusal("another lr", "r1", dir, SETS("train.lr=0.002"),
                   "train.lr is 0.001 in the checkpoint's config but 0.002 now", dir);
    expect_refusal("another seed", "r1", dir, SETS("train.seed=7"), "train.seed is 42", NULL);
    expect_refusal("another batch", "r1", dir, SETS("train.batch_size=16"), "train.batch_size is 8", NULL);
    expect_refusal("latest without checkpoints", "r2", "latest", NULL, "holds no complete checkpoint",
                   "start without --resume");
    expect_refusal("no such folder", "r2", "/nonexistent/step-0000005", NULL, "no such checkpoint folder", NULL);
    expect_refusal("fewer rows", "r3", dir, SETS("data.max_rows=100"), "data.max_rows is 0 in the checkpoint", NULL);
    // The same config on a data file of fewer rows (paths may change on resume).
    char shorter[600], set[700], *text;
    size_t len;
    MnrlError read_err;
    CHECK(mnrl_read_file(MNRL_TEST_DATA_DIR "/parity/tiny_train.tsv", &text, &len, &read_err) == 0);
    char *cut = text;
    for (int line = 0; line < 101 && cut; line++) cut = strchr(cut, '\n') ? strchr(cut, '\n') + 1 : NULL;
    if (cut) *cut = '\0';
    snprintf(shorter, sizeof shorter, "%s/shorter.tsv", scratch);
    test_write_file(shorter, text);
    free(text);
    snprintf(set, sizeof set, "data.train=%s", shorter);
    expect_refusal("another data file", "r3", dir, SETS(set), "written for 160 training rows", "gives 100 now");
    // The same model with a cased tokenizer (model.path may move, its tokenizer may not change).
    char cased[600], model[700];
    snprintf(cased, sizeof cased, "%s/cased", scratch);
    CHECK(mnrl_mkdir_p(cased, &read_err) == 0);
    const char *files[] = {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char from[600], to[700];
        snprintf(from, sizeof from, "%s/parity/tiny/%s", MNRL_TEST_DATA_DIR, files[i]);
        snprintf(to, sizeof to, "%s/%s", cased, files[i]);
        CHECK(mnrl_read_file(from, &text, &len, &read_err) == 0);
        if (i == 3) test_write_file(to, "{\"do_lower_case\": false}");
        else CHECK(mnrl_write_file_atomic(to, text, len, &read_err) == 0);
        free(text);
    }
    snprintf(model, sizeof model, "model.path=%s", cased);
    expect_refusal("another tokenizer", "r3", dir, SETS(model), "trained with another tokenizer", cased);

    // Without DONE (a write interrupted after the rename): refused.
    snprintf(done, sizeof done, "%s/DONE", dir);
    CHECK(rename(done, "DONE.saved") == 0);
    expect_refusal("no DONE", "r4", dir, NULL, "incomplete checkpoint (no DONE file", dir);
    CHECK(rename("DONE.saved", done) == 0);

    CheckpointState st = {.world_size = 2};
    MnrlConfig cfg;
    MnrlError err;
    const char *sets[] = {model_set, data_set};
    CHECK_EQ_INT(config_from_string("test", config_json, sets, 2, &cfg, &err), 0);
    st.config_hash = config_resume_hash(&cfg);
    CHECK(checkpoint_check_config(dir, &st, &cfg, 1, &err) != 0);
    CHECK_CONTAINS(err.msg, "written by 2 ranks, but this run has 1");
    CHECK_EQ_INT(checkpoint_check_config(dir, &st, &cfg, 2, &err), 0);
    config_free(&cfg);

    // train.epochs may change: 3 epochs from step 15 of the 2-epoch run.
    CHECK_MSG(train("longer", dir, SETS("train.epochs=3"), &err) == 0, "%s", err.msg);
    StepRecord recs[64];
    int n = read_steps("longer", recs, 64);
    CHECK_EQ_INT(n, 60 - 15);
    if (n > 0) CHECK_EQ_INT(recs[n - 1].step, 60);
}

// ---- failures while writing ------------------------------------------------------------------------

// Names of out/checkpoints, space-separated in sorted order, into buf.
static void list_checkpoints(const char *out, char *buf, size_t cap) {
    char path[600];
    path_of(path, sizeof path, out, "checkpoints");
    struct dirent **names;
    int n = scandir(path, &names, NULL, alphasort);
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (names[i]->d_name[0] != '.' || strlen(names[i]->d_name) > 2) {
            if (buf[0]) strncat(buf, " ", cap - strlen(buf) - 1);
            strncat(buf, names[i]->d_name, cap - strlen(buf) - 1);
        }
        free(names[i]);
    }
    if (n >= 0) free(names);
}

// resume: then resume the run from step 5 and compare its end with the uninterrupted run.
static void check_full_disk(const char *out, const char *fail_on, const char *named, int resume) {
    MnrlError err = {{0}};
    setenv("MNRL_TEST_FAIL_WRITE", fail_on, 1);
    int rc = train(out, NULL, NULL, &err);
    unsetenv("MNRL_TEST_FAIL_WRITE");
    CHECK_MSG(rc != 0, "a failed write of %s went unnoticed", fail_on);
    CHECK_CONTAINS(err.msg, named);
    CHECK_CONTAINS(err.msg, "No space left on device");
    CHECK_CONTAINS(err.msg, "checkpoint of step 10 not written (the older checkpoints");
    char names[1024];
    list_checkpoints(out, names, sizeof names);
    CHECK_STR(names, "step-0000005");  // no temporary folder, no step-0000010
    check_same_checkpoint("full", out, "step-0000005");
    if (!resume) return;
    // The run resumes from it (latest) and ends as the uninterrupted run.
    CHECK_MSG(train(out, "latest", NULL, &err) == 0, "%s", err.msg);
    check_same_file("full", out, "final/model.safetensors");
}

// ---- bad steps and overwriting --------------------------------------------------------------------

// All of a checkpoint's weights are finite.
static int finite_weights(const char *out, const char *name) {
    char path[600];
    path_of(path, sizeof path, out, name);
    SafetensorsFile *file;
    MnrlError err;
    if (safetensors_open(path, &file, &err) != 0) return 0;
    int finite = 1;
    for (size_t i = 0; i < file->n_tensors; i++) {
        const float *v = file->tensors[i].data;
        for (size_t j = 0; j < file->tensors[i].numel; j++) finite &= isfinite(v[j]) != 0;
    }
    safetensors_close(file);
    return finite;
}

// lr 1e20 overflows the weights in step 2's update; steps 3..5 are non-finite and skipped,
// and the run stops at step 5 (max_bad_steps 3). A checkpoint every step, keep 1: step 2's
// is the one left, none was written during the bad steps, and its weights are finite.
static void check_bad_steps(void) {
    MnrlError err = {{0}};
    int rc = train("nan", NULL, SETS("train.lr=1e20", "checkpoint.every_steps=1", "checkpoint.keep=1",
                                     "train.max_bad_steps=3"), &err);
    CHECK(rc != 0);
    CHECK_CONTAINS(err.msg, "3 consecutive steps had a non-finite loss or gradient (train.max_bad_steps)");
    char names[1024];
    list_checkpoints("nan", names, sizeof names);
    CHECK_STR(names, "step-0000002");
    CHECK(finite_weights("nan", "checkpoints/step-0000002/model.safetensors"));
    CHECK(finite_weights("nan", "checkpoints/step-0000002/optimizer.exp_avg_sq.safetensors"));
    StepRecord recs[64];
    CHECK_EQ_INT(read_steps("nan", recs, 64), 5);
    CHECK(isnan(recs[2].loss) && isnan(recs[4].loss));
}

// A finished run's folder: refused without output.overwrite (with the --resume hint);
// with it, the old checkpoints go (a planted step-0000003 the new run would have kept).
static void check_overwrite(void) {
    expect_refusal("a finished run", "disk1", NULL, NULL, "already holds a run", "continue it with --resume latest");
    char planted[600];
    path_of(planted, sizeof planted, "disk1", "checkpoints/step-0000003");
    MnrlError err;
    CHECK(mnrl_mkdir_p(planted, &err) == 0);
    strncat(planted, "/DONE", sizeof planted - strlen(planted) - 1);
    test_write_file(planted, "step 3\n");
    CHECK_MSG(train("disk1", NULL, SETS("output.overwrite=true", "train.max_steps=10"), &err) == 0, "%s", err.msg);
    char names[1024];
    list_checkpoints("disk1", names, sizeof names);
    CHECK_STR(names, "step-0000005 step-0000010");
}

// ---- gradient accumulation -------------------------------------------------------------------------

// Reads out/batch_order.txt: per step line, the batches (" | "-separated) and the rows.
// Returns the number of step lines (at most cap), -1 when the file cannot be read.
static int read_batch_order(const char *out, int *batches, int *rows, int cap) {
    char path[600], *text;
    size_t len;
    MnrlError err;
    path_of(path, sizeof path, out, "batch_order.txt");
    if (mnrl_read_file(path, &text, &len, &err) != 0) return -1;
    int n = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line && n < cap; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        batches[n] = 1, rows[n] = 0;
        for (char *tok_save = NULL, *tok = strtok_r(line, " ", &tok_save); tok; tok = strtok_r(NULL, " ", &tok_save)) {
            if (strcmp(tok, "|") == 0) batches[n]++;
            else rows[n]++;
        }
        n++;
    }
    free(text);
    return n;
}

static void check_accumulation(void) {
    const char *const *accum = SETS("train.grad_accum_steps=3", "checkpoint.every_steps=1");
    MnrlError err;
    CHECK_MSG(train("accum", NULL, accum, &err) == 0, "%s", err.msg);
    StepRecord recs[64];
    int n = read_steps("accum", recs, 64);
    CHECK_EQ_INT(n, 14);
    for (int i = 0; i < n; i++) {
        CHECK_EQ_INT(recs[i].step, i + 1);
        CHECK_NEAR(recs[i].epoch, (i + 1) / 7.0, 1e-12);
        CHECK_MSG(isfinite(recs[i].loss) && isfinite(recs[i].grad_norm), "step %d: loss %g", i + 1, recs[i].loss);
    }
    int batches[64], rows[64];
    CHECK_EQ_INT(read_batch_order("accum", batches, rows, 64), 14);
    for (int i = 0; i < 14; i++) {
        int expected = i % 7 == 6 ? 2 : 3;  // 20 batches of 8 rows per epoch
        CHECK_MSG(batches[i] == expected && rows[i] == 8 * expected, "batch_order step %d: %d batches, %d rows",
                  i + 1, batches[i], rows[i]);
    }
    // The checkpoints of step 6 (18 batches into epoch 1), 7 (all 20), 8 (3 into epoch 2)
    // and the end.
    const int64_t at[][3] = {{6, 0, 18}, {7, 0, 20}, {8, 1, 3}, {14, 1, 20}};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        json_t *s = read_state("accum", at[i][0]);
        CHECK_MSG(s != NULL, "no state.json at step %lld", (long long)at[i][0]);
        CHECK_EQ_INT(state_int(s, "step"), at[i][0]);
        CHECK_EQ_INT(state_int(s, "adam_step"), at[i][0]);
        CHECK_EQ_INT(state_int(s, "epoch"), at[i][1]);
        CHECK_EQ_INT(state_int(s, "epoch_batches"), at[i][2]);
        json_decref(s);
    }
    const int64_t froms[] = {4, 6, 7, 8};
    for (size_t i = 0; i < sizeof froms / sizeof froms[0]; i++) {
        check_resume_of("accum", froms[i], accum, "step-0000014");
    }
    char dir[600];
    path_of(dir, sizeof dir, "accum", "checkpoints/step-0000006");
    expect_refusal("another accumulation", "r5", dir, SETS("train.grad_accum_steps=2"),
                   "train.grad_accum_steps is 3 in the checkpoint's config but 2 now", NULL);

    CHECK_MSG(train("accum2", NULL, SETS("train.grad_accum_steps=2", "train.max_steps=1"), &err) == 0, "%s", err.msg);
    StepRecord full[64], two[1];
    CHECK_EQ_INT(read_steps("full", full, 64), 40);
    CHECK_EQ_INT(read_steps("accum2", two, 1), 1);
    CHECK(full[0].lr == 0 && two[0].lr == 0);
    double mean = (full[0].loss + full[1].loss) / 2;
    printf("2 batches per step: step 1 loss %.9g, mean of the steps 1 and 2 without accumulation %.9g\n", two[0].loss,
           mean);
    CHECK_MSG(fabs(two[0].loss - mean) <= 1e-6 * mean, "step 1 loss %.9g, expected %.9g", two[0].loss, mean);
}

int main(void) {
    snprintf(scratch, sizeof scratch, "/tmp/mnrl_test_checkpoint_XXXXXX");
    if (!mkdtemp(scratch)) SKIP("cannot create a temporary folder");
    MnrlError err;
    CHECK_MSG(train("full", NULL, NULL, &err) == 0, "%s", err.msg);
    check_state_file();
    // (Step 5 is resumed from in check_full_disk.)
    const int64_t froms[] = {15, 20, 25, 40};
    for (size_t i = 0; i < sizeof froms / sizeof froms[0]; i++) check_resume(froms[i]);
    check_refusals();
    check_full_disk("disk1", "step-0000010/optimizer.exp_avg_sq", "step-0000010/optimizer.exp_avg_sq.safetensors", 1);
    check_full_disk("disk2", "step-0000010/DONE", "step-0000010/DONE", 0);
    check_bad_steps();
    check_overwrite();
    check_accumulation();
    if (test_failures == 0) mnrl_remove_tree(scratch, &err);
    TEST_END();
}
