// test_log.c — the training log: step and eval lines (the step line of DESIGN §3 is the
// reference), which steps print, the terminal bar kept below the lines, and metrics.jsonl
// read back with jansson (values, nulls for non-finite numbers, append on resume, a
// partial last line left by a killed run).
#include <jansson.h>
#include <math.h>
#include <stdlib.h>

#include "mnrl/common.h"
#include "mnrl/log.h"
#include "test.h"

static char scratch[256];

static StepStats stats(int64_t step, double loss) {
    return (StepStats){.step = step, .epoch = step / 4.0, .loss = loss, .grad_norm = 0.5 + step, .lr = 2e-5 * step,
                       .ms = 95.4, .tokens_per_s = 41200.4, .seqs_per_s = 1309.6, .mfu = NAN};
}

static void check_formats(void) {
    char line[256];
    StepStats s = {.step = 120, .loss = 1.23449, .grad_norm = 0.8351, .lr = 1.2e-5, .ms = 95.2,
                   .tokens_per_s = 41200.2, .seqs_per_s = 1310.4, .mfu = 0.381};
    steplog_format_step(&s, 4411, line, sizeof line);
    // DESIGN §3, character for character.
    CHECK_STR(line, "step 120/4411 | loss 1.2345 | norm 0.84 | lr 1.2e-05 | 95 ms | 41,200 tok/s | 1,310 seq/s | MFU 38%");
    s.mfu = NAN;
    s.ms = 4.25;
    s.loss = NAN;
    s.tokens_per_s = 999.5;
    steplog_format_step(&s, 4411, line, sizeof line);
    CHECK_STR(line, "step 120/4411 | loss nan | norm 0.84 | lr 1.2e-05 | 4.2 ms | 1,000 tok/s | 1,310 seq/s");
    steplog_format_eval(500, 4411, "dev", 84.1249, 83.9, line, sizeof line);
    CHECK_STR(line, "eval step 500/4411 | dev | spearman 84.12 | pearson 83.90");
}

static char *read_all(FILE *f) {
    long n = ftell(f);
    char *text = calloc(1, (size_t)n + 1);
    rewind(f);
    CHECK_EQ_INT(fread(text, 1, (size_t)n, f), n);
    return text;
}

// Plain mode (not a terminal): the session's first step, every log_every-th, the last.
static void check_plain_lines(void) {
    FILE *out = tmpfile();
    StepLog log;
    MnrlError err = {{0}};
    CHECK(steplog_open(&log, out, NULL, 5, 0, 2, &err) == 0);
    CHECK(!log.tty);
    for (int64_t step = 1; step <= 5; step++) CHECK(steplog_step(&log, &(StepStats){.step = step, .loss = 1.0 / step,
                                                                                     .grad_norm = 1, .lr = 1e-4, .ms = 20,
                                                                                     .tokens_per_s = 1000, .seqs_per_s = 10,
                                                                                     .mfu = NAN}, &err) == 0);
    CHECK(steplog_eval(&log, 5, "test", 80.0, 79.5, &err) == 0);
    CHECK(steplog_close(&log, &err) == 0);
    char *text = read_all(out);
    CHECK_STR(text,
              "step 1/5 | loss 1.0000 | norm 1.00 | lr 1.0e-04 | 20 ms | 1,000 tok/s | 10 seq/s\n"
              "step 2/5 | loss 0.5000 | norm 1.00 | lr 1.0e-04 | 20 ms | 1,000 tok/s | 10 seq/s\n"
              "step 4/5 | loss 0.2500 | norm 1.00 | lr 1.0e-04 | 20 ms | 1,000 tok/s | 10 seq/s\n"
              "step 5/5 | loss 0.2000 | norm 1.00 | lr 1.0e-04 | 20 ms | 1,000 tok/s | 10 seq/s\n"
              "eval step 5/5 | test | spearman 80.00 | pearson 79.50\n");
    free(text);
    fclose(out);
}

// Terminal mode (forced on a file): each line clears the bar first, the bar follows it,
// and close leaves the finished bar on its own line.
static void check_terminal_lines(void) {
    FILE *out = tmpfile();
    StepLog log;
    MnrlError err = {{0}};
    CHECK(steplog_open(&log, out, NULL, 4, 2, 10, &err) == 0);
    log.tty = true;
    CHECK(steplog_step(&log, &(StepStats){.step = 3, .mfu = NAN}, &err) == 0);
    CHECK(steplog_step(&log, &(StepStats){.step = 4, .mfu = NAN}, &err) == 0);
    CHECK(steplog_close(&log, &err) == 0);
    char *text = read_all(out);
    CHECK(strncmp(text, "step 3/4 | ", 11) == 0);  // nothing on screen yet: no clearing
    CHECK_CONTAINS(text, "\r\033[Kstep 4/4 | ");
    CHECK_CONTAINS(text, "\rtrain  75% [##################......] 3/4 steps");
    size_t n = strlen(text);
    const char *last_bar = strrchr(text, '\r');
    CHECK(last_bar && strncmp(last_bar, "\rtrain 100% [########################] 4/4 steps", 48) == 0);
    CHECK(n > 0 && text[n - 1] == '\n');
    free(text);
    fclose(out);
}

static json_t *parse_line(const char *line) {
    json_error_t jerr;
    json_t *v = json_loads(line, 0, &jerr);
    CHECK_MSG(v != NULL, "metrics line \"%s\": %s", line, jerr.text);
    return v;
}

static double number(const json_t *obj, const char *key) {
    json_t *v = json_object_get(obj, key);
    CHECK_MSG(json_is_number(v), "key %s", key);
    return json_number_value(v);
}

static void check_step_record(const json_t *rec, const StepStats *s) {
    CHECK_EQ_INT(json_integer_value(json_object_get(rec, "step")), s->step);
    CHECK(json_is_integer(json_object_get(rec, "step")));
    CHECK(number(rec, "epoch") == s->epoch);
    CHECK(number(rec, "grad_norm") == s->grad_norm);
    CHECK(number(rec, "lr") == s->lr);  // exact: printed with enough digits
    CHECK(number(rec, "ms") == s->ms);
    CHECK(number(rec, "tokens_per_s") == s->tokens_per_s);
    CHECK(number(rec, "seqs_per_s") == s->seqs_per_s);
    if (isfinite(s->loss)) CHECK(number(rec, "loss") == s->loss);
    else CHECK(json_is_null(json_object_get(rec, "loss")));
    if (isnan(s->mfu)) CHECK(json_object_get(rec, "mfu") == NULL);
    else CHECK(number(rec, "mfu") == s->mfu);
    CHECK_EQ_INT(json_object_size(rec), isnan(s->mfu) ? 8 : 9);
}

static void check_metrics(void) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/run", scratch);
    StepLog log;
    MnrlError err = {{0}};
    CHECK_MSG(steplog_open(&log, NULL, dir, 6, 0, 1, &err) == 0, "%s", err.msg);
    StepStats s[6];
    for (int i = 0; i < 6; i++) s[i] = stats(i + 1, 1.0 / 3.0 + i);
    s[1].loss = NAN;
    s[2].loss = INFINITY;
    s[3].mfu = 0.375;
    s[5].step = 12345678;  // an integer in the file, never 1.2345678e+07
    for (int i = 0; i < 3; i++) CHECK(steplog_step(&log, &s[i], &err) == 0);
    CHECK(steplog_eval(&log, 3, "dev", 81.5, NAN, &err) == 0);
    CHECK(steplog_step(&log, &s[3], &err) == 0);
    CHECK(steplog_close(&log, &err) == 0);

    // The run went on past its checkpoint at step 3 and was killed mid-line; the session
    // resumed from step 3 drops step 4 and the partial line, and logs 4..6 once.
    char path[600];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "a");
    fputs("{\"step\":5,\"epo", f);
    fclose(f);
    CHECK(steplog_open(&log, NULL, dir, 6, 3, 1, &err) == 0);
    for (int i = 3; i < 6; i++) CHECK(steplog_step(&log, &s[i], &err) == 0);
    CHECK(steplog_close(&log, &err) == 0);

    size_t len;
    char *text = NULL;
    CHECK(mnrl_read_file(path, &text, &len, &err) == 0);
    char *lines[16];
    int n = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line && n < 16; line = strtok_r(NULL, "\n", &save)) {
        lines[n++] = line;
    }
    CHECK_EQ_INT(n, 7);  // 3 steps, 1 eval, 3 steps
    if (n == 7) {
        for (int i = 0; i < 3; i++) {
            json_t *rec = parse_line(lines[i]);
            if (rec) check_step_record(rec, &s[i]);
            json_decref(rec);
        }
        json_t *eval = parse_line(lines[3]);
        CHECK_EQ_INT(json_integer_value(json_object_get(eval, "step")), 3);
        CHECK_STR(json_string_value(json_object_get(eval, "split")), "dev");
        CHECK(number(eval, "spearman") == 81.5);
        CHECK(json_is_null(json_object_get(eval, "pearson")));
        CHECK_EQ_INT(json_object_size(eval), 4);
        json_decref(eval);
        for (int i = 3; i < 6; i++) {
            json_t *rec = parse_line(lines[i + 1]);
            if (rec) check_step_record(rec, &s[i]);
            json_decref(rec);
        }
    }
    free(text);
}

static void check_open_failure(void) {
    char file[512], dir[600];
    snprintf(file, sizeof file, "%s/a_file", scratch);
    snprintf(dir, sizeof dir, "%s/sub", file);
    MnrlError err = {{0}};
    CHECK(mnrl_write_file_atomic(file, "x", 1, &err) == 0);
    StepLog log;
    CHECK(steplog_open(&log, NULL, dir, 6, 0, 1, &err) != 0);
    CHECK_CONTAINS(err.msg, "a_file");
}

int main(void) {
    snprintf(scratch, sizeof scratch, "/tmp/mnrl_test_log_XXXXXX");
    if (!mkdtemp(scratch)) SKIP("cannot create a temporary folder");
    check_formats();
    check_plain_lines();
    check_terminal_lines();
    check_metrics();
    check_open_failure();
    MnrlError err;
    CHECK(mnrl_remove_tree(scratch, &err) == 0);
    TEST_END();
}
