// test_config.c — the configuration schema, loader, --set, printing and hashing. The
// expected values are the ones docs/config.md and DESIGN specify, written out here by
// hand; the expected messages are the documented formats.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mnrl/config.h"
#include "test.h"

// The two required keys; every test document starts from these.
#define REQUIRED_KEYS "\"model\": {\"path\": \"m\"}, \"data\": {\"train\": \"t.tsv\"}"

static MnrlError last_error;

// Loads json (source "x.json") with up to one --set; returns 0/-1 and keeps the message.
static int load(const char *json, const char *set, MnrlConfig *cfg) {
    const char *sets[1] = {set};
    return config_from_string("x.json", json, sets, set ? 1 : 0, cfg, &last_error);
}

// The error message of a document that must fail to load.
static const char *error_of(const char *json, const char *set) {
    MnrlConfig cfg;
    last_error.msg[0] = '\0';
    int rc = load(json, set, &cfg);
    CHECK_MSG(rc == -1, "expected a failure for %s %s", json, set ? set : "");
    if (rc == 0) config_free(&cfg);
    return last_error.msg;
}

// The error for a single "section": {"key": value_json} next to the required keys.
static const char *error_for_value(const char *section, const char *key, const char *value_json) {
    static char json[1024];
    if (strcmp(section, "model") == 0 || strcmp(section, "data") == 0) {
        const char *other = strcmp(section, "model") == 0 ? "\"data\": {\"train\": \"t.tsv\"}"
                                                          : "\"model\": {\"path\": \"m\"}";
        const char *required = strcmp(section, "model") == 0 ? "\"path\": \"m\", "
                                                             : "\"train\": \"t.tsv\", ";
        snprintf(json, sizeof json, "{%s, \"%s\": {%s\"%s\": %s}}", other, section, required,
                 key, value_json);
    } else {
        snprintf(json, sizeof json, "{" REQUIRED_KEYS ", \"%s\": {\"%s\": %s}}", section, key,
                 value_json);
    }
    return error_of(json, NULL);
}

static void test_defaults(void) {
    MnrlConfig c;
    CHECK_EQ_INT(load("{" REQUIRED_KEYS "}", NULL, &c), 0);
    CHECK_STR(c.model.path, "m");
    CHECK_EQ_INT(c.model.max_seq_length, 75);
    CHECK_EQ_INT(c.model.pooling, MNRL_POOLING_MEAN);
    CHECK_EQ_INT(c.model.precision, MNRL_PRECISION_BF16);
    CHECK_EQ_INT(c.model.backend, MNRL_BACKEND_AUTO);
    CHECK_STR(c.data.train, "t.tsv");
    CHECK_EQ_INT(c.data.format, DATA_FORMAT_AUTO);
    CHECK_EQ_INT(c.data.recipe, DATA_RECIPE_TRIPLETS);
    CHECK_STR(c.data.split, "train");
    CHECK_STR(c.data.anchor_column, "anchor");
    CHECK_STR(c.data.positive_column, "positive");
    CHECK_EQ_INT(c.data.n_negative_columns, 0);
    CHECK_EQ_INT(c.data.max_rows, 0);
    CHECK_EQ_INT(c.data.on_error, DATA_ON_ERROR_FAIL);
    CHECK_STR(c.data.cache_dir, ".mnrl_cache");
    CHECK_EQ_INT(c.train.batch_size, 128);
    CHECK_EQ_INT(c.train.epochs, 1);
    CHECK_EQ_INT(c.train.max_steps, 0);
    CHECK(c.train.lr == 2e-5);
    CHECK(c.train.warmup_ratio == 0.1);
    CHECK_EQ_INT(c.train.warmup_steps, -1);
    CHECK(c.train.weight_decay == 0.01);
    CHECK(c.train.adam_beta1 == 0.9);
    CHECK(c.train.adam_beta2 == 0.999);
    CHECK(c.train.adam_eps == 1e-8);  // torch.optim.AdamW / HF TrainingArguments default
    CHECK(c.train.max_grad_norm == 1.0);
    CHECK_EQ_INT(c.train.grad_accum_steps, 1);
    CHECK_EQ_INT(c.train.seed, 42);
    CHECK(c.train.dropout == MNRL_DROPOUT_FROM_MODEL);
    CHECK_EQ_INT(c.train.log_every, 1);
    CHECK_EQ_INT(c.train.max_bad_steps, 10);
    CHECK(c.loss.scale == 20.0);
    CHECK(!c.loss.symmetric);
    CHECK_EQ_INT(c.loss.mini_batch_size, 0);
    CHECK_STR(c.eval.sts_file, "data/stsbenchmark.tsv.gz");
    CHECK_STR(c.eval.dev_split, "dev");
    CHECK_STR(c.eval.test_split, "test");
    CHECK_EQ_INT(c.eval.every_steps, 0);
    CHECK_EQ_INT(c.eval.batch_size, 256);
    CHECK(c.eval.before_training);
    CHECK_EQ_INT(c.checkpoint.every_steps, 0);
    CHECK_EQ_INT(c.checkpoint.keep, 2);
    CHECK_STR(c.output.dir, "output/run");
    CHECK(!c.output.overwrite);
    CHECK_EQ_INT(c.dist.backend, MNRL_DIST_AUTO);
    CHECK_STR(c.dist.init_dir, "");
    CHECK_EQ_INT(c.dist.init_timeout_s, 300);
    CHECK(c.warnings == NULL);
    config_free(&c);
}

static void test_value_errors(void) {
    // Type errors.
    CHECK_STR(error_for_value("train", "batch_size", "\"64\""),
              "x.json: train.batch_size: expected a positive integer, got \"64\"");
    CHECK_STR(error_for_value("train", "batch_size", "64.0"),
              "x.json: train.batch_size: expected a positive integer, got 64.0");
    CHECK_STR(error_for_value("train", "lr", "\"2e-5\""),
              "x.json: train.lr: expected a number > 0, got \"2e-5\"");
    CHECK_STR(error_for_value("loss", "symmetric", "1"),
              "x.json: loss.symmetric: expected true or false, got 1");
    CHECK_STR(error_of("{\"model\": {\"path\": null}, \"data\": {\"train\": \"t\"}}", NULL),
              "x.json: model.path: expected a non-empty string, got null");
    CHECK_STR(error_for_value("model", "precision", "\"fp16\""),
              "x.json: model.precision: expected one of \"bf16\", \"fp32\", got \"fp16\"");
    CHECK_STR(error_for_value("data", "format", "\"parquet\""),
              "x.json: data.format: expected one of \"auto\", \"allnli\", \"tsv\", \"csv\", "
              "\"jsonl\", got \"parquet\"");
    CHECK_STR(error_for_value("data", "negative_columns", "\"negative\""),
              "x.json: data.negative_columns: expected an array of non-empty strings, got "
              "\"negative\"");
    CHECK_STR(error_for_value("data", "negative_columns", "[\"n1\", 2]"),
              "x.json: data.negative_columns: expected an array of non-empty strings, got "
              "[\"n1\",2]");
    CHECK_STR(error_for_value("eval", "before_training", "\"yes\""),
              "x.json: eval.before_training: expected true or false, got \"yes\"");
    CHECK_STR(error_for_value("train", "dropout", "\"none\""),
              "x.json: train.dropout: expected a number in [0, 1) or null, got \"none\"");
    // Range errors, at and just past each bound.
    CHECK_STR(error_for_value("train", "batch_size", "0"),
              "x.json: train.batch_size: expected a positive integer, got 0");
    CHECK_STR(error_for_value("train", "batch_size", "1"),
              "x.json: train.batch_size: MNRL needs at least 2 rows per batch (the other rows "
              "are the negatives), got 1");
    CHECK_STR(error_for_value("train", "batch_size", "2147483648"),
              "x.json: train.batch_size: expected a positive integer, got 2147483648");
    CHECK_STR(error_for_value("model", "max_seq_length", "8193"),
              "x.json: model.max_seq_length: expected an integer in 1..8192, got 8193");
    CHECK_STR(error_for_value("model", "max_seq_length", "0"),
              "x.json: model.max_seq_length: expected an integer in 1..8192, got 0");
    CHECK_STR(error_for_value("train", "lr", "0"),
              "x.json: train.lr: expected a number > 0, got 0");
    CHECK_STR(error_for_value("train", "lr", "-1e-5"),
              "x.json: train.lr: expected a number > 0, got -1e-5");
    CHECK_STR(error_for_value("train", "warmup_ratio", "1.5"),
              "x.json: train.warmup_ratio: expected a number in [0, 1], got 1.5");
    CHECK_STR(error_for_value("train", "warmup_steps", "-2"),
              "x.json: train.warmup_steps: expected an integer >= -1, got -2");
    CHECK_STR(error_for_value("train", "adam_beta2", "1.0"),
              "x.json: train.adam_beta2: expected a number in [0, 1), got 1.0");
    CHECK_STR(error_for_value("train", "adam_eps", "0"),
              "x.json: train.adam_eps: expected a number > 0, got 0");
    CHECK_STR(error_for_value("train", "weight_decay", "-0.5"),
              "x.json: train.weight_decay: expected a number >= 0, got -0.5");
    CHECK_STR(error_for_value("train", "dropout", "1"),
              "x.json: train.dropout: expected a number in [0, 1) or null, got 1");
    CHECK_STR(error_for_value("train", "max_steps", "-1"),
              "x.json: train.max_steps: expected a non-negative integer, got -1");
    CHECK_STR(error_for_value("data", "max_rows", "-5"),
              "x.json: data.max_rows: expected a non-negative integer, got -5");
    CHECK_STR(error_for_value("loss", "scale", "0"),
              "x.json: loss.scale: expected a number > 0, got 0");
    CHECK_STR(error_for_value("checkpoint", "keep", "0"),
              "x.json: checkpoint.keep: expected a positive integer, got 0");
    CHECK_STR(error_for_value("dist", "init_timeout_s", "0"),
              "x.json: dist.init_timeout_s: expected a positive integer, got 0");
    CHECK_STR(error_for_value("output", "dir", "\"\""),
              "x.json: output.dir: expected a non-empty string, got \"\"");
    // The bounds themselves are accepted.
    MnrlConfig c;
    CHECK_EQ_INT(load("{" REQUIRED_KEYS ", \"train\": {\"warmup_ratio\": 1, \"adam_beta1\": 0,"
                      " \"dropout\": 0, \"batch_size\": 2, \"max_grad_norm\": 0}}",
                      NULL, &c), 0);
    CHECK(c.train.warmup_ratio == 1.0 && c.train.dropout == 0.0 && c.train.batch_size == 2);
    config_free(&c);
    CHECK_EQ_INT(load("{\"model\": {\"path\": \"m\", \"max_seq_length\": 8192}, "
                      "\"data\": {\"train\": \"t\"}}", NULL, &c), 0);
    CHECK_EQ_INT(c.model.max_seq_length, 8192);
    config_free(&c);
}

static void test_structure_errors(void) {
    CHECK_STR(error_of("{" REQUIRED_KEYS ", \"train\": {\"learning_rat\": 1e-5}}", NULL),
              "x.json: unknown key \"train.learning_rat\" (did you mean \"train.lr\"?)");
    CHECK_STR(error_of("{" REQUIRED_KEYS ", \"train\": {\"batch_szie\": 64}}", NULL),
              "x.json: unknown key \"train.batch_szie\" (did you mean \"train.batch_size\"?)");
    CHECK_STR(error_of("{" REQUIRED_KEYS ", \"trian\": {}}", NULL),
              "x.json: unknown key \"trian\" (did you mean \"train\"?)");
    CHECK_STR(error_of("{" REQUIRED_KEYS ", \"train\": {\"scale\": 10}}", NULL),
              "x.json: unknown key \"train.scale\" (did you mean \"loss.scale\"?)");
    CHECK_STR(error_of("{" REQUIRED_KEYS ", \"loss\": {\"zzz\": 1}}", NULL),
              "x.json: unknown key \"loss.zzz\"; loss has: scale symmetric mini_batch_size");
    CHECK_STR(error_of("{" REQUIRED_KEYS ", \"optimizer\": {}}", NULL),
              "x.json: unknown key \"optimizer\"; the sections are model, data, train, loss, "
              "eval, checkpoint, output, dist");
    CHECK_STR(error_of("{" REQUIRED_KEYS ", \"train\": 5}", NULL),
              "x.json: train: expected an object of keys, got 5");
    CHECK_STR(error_of("[1, 2]", NULL),
              "x.json: expected a JSON object with the sections model, data, train, ..., got "
              "[1,2]");
    CHECK_STR(error_of("{\"model\": {\"path\": \"m\"}}", NULL),
              "x.json: data.train: required key is missing; add it to the file or pass "
              "--set data.train=...");
    CHECK_STR(error_of("{" REQUIRED_KEYS ", \"train\": {\"warmup_ratio\": 0.2, "
                       "\"warmup_steps\": 100}}", NULL),
              "x.json: train.warmup_steps = 100 conflicts with train.warmup_ratio = 0.2 (from "
              "x.json); give one of them, or set train.warmup_ratio to 0");
    CHECK_CONTAINS(error_of("{" REQUIRED_KEYS ", \"train\": {\"lr\": 1, \"lr\": 2}}", NULL),
                   "duplicate object key");
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static void test_files(void) {
    char path[256];
    snprintf(path, sizeof path, "/tmp/mnrl_test_config_%ld.json", (long)getpid());
    // A missing comma on line 3: jansson reports the line and column.
    write_text(path, "{\n  \"model\": {\"path\": \"m\"},\n  \"data\": {\"train\": \"t\"}\n"
                     "  \"train\": {}\n}\n");
    MnrlConfig c;
    MnrlError err;
    CHECK_EQ_INT(config_load(path, NULL, 0, &c, &err), -1);
    char expected[512];
    snprintf(expected, sizeof expected, "%s:4:", path);
    CHECK_CONTAINS(err.msg, expected);
    CHECK_CONTAINS(err.msg, "invalid JSON");
    // Errors after parsing name the file too.
    write_text(path, "{\"model\": {\"path\": \"m\"}, \"data\": {\"train\": \"t\"}, "
                     "\"train\": {\"batch_size\": \"64\"}}");
    CHECK_EQ_INT(config_load(path, NULL, 0, &c, &err), -1);
    snprintf(expected, sizeof expected,
             "%s: train.batch_size: expected a positive integer, got \"64\"", path);
    CHECK_STR(err.msg, expected);
    unlink(path);
    CHECK_EQ_INT(config_load(path, NULL, 0, &c, &err), -1);
    CHECK_CONTAINS(err.msg, path);
    CHECK_CONTAINS(err.msg, "cannot open");
}

static void test_sets(void) {
    const char *base = "{" REQUIRED_KEYS ", \"train\": {\"batch_size\": 64}}";
    const char *sets[] = {
        "train.batch_size=256",           // overrides the file
        "train.lr=3e-5",                  // a real
        "loss.symmetric=true",            // a bool
        "train.dropout=null",             // null
        "data.negative_columns=[\"hard_negative\", \"negative_2\"]",  // an array
        "data.split=2019",                // a string key takes non-string JSON verbatim
        "output.dir=runs/a=b",            // not JSON: a string; '=' after the first is kept
        "model.path=\"quoted path\"",     // a JSON string
        "data.on_error=skip",             // a choice
        "train.seed=7",
        "train.seed=8",                   // applied in order: the last one wins
        "eval.sts_file=",                 // "" disables evaluation
    };
    int n = (int)(sizeof sets / sizeof sets[0]);
    MnrlConfig c;
    MnrlError err;
    CHECK_EQ_INT(config_from_string("x.json", base, sets, n, &c, &err), 0);
    CHECK_EQ_INT(c.train.batch_size, 256);
    CHECK(c.train.lr == 3e-5);
    CHECK(c.loss.symmetric);
    CHECK(c.train.dropout == MNRL_DROPOUT_FROM_MODEL);
    CHECK_EQ_INT(c.data.n_negative_columns, 2);
    if (c.data.n_negative_columns == 2) {
        CHECK_STR(c.data.negative_columns[0], "hard_negative");
        CHECK_STR(c.data.negative_columns[1], "negative_2");
    }
    CHECK_STR(c.data.split, "2019");
    CHECK_STR(c.output.dir, "runs/a=b");
    CHECK_STR(c.model.path, "quoted path");
    CHECK_EQ_INT(c.data.on_error, DATA_ON_ERROR_SKIP);
    CHECK_EQ_INT(c.train.seed, 8);
    CHECK_STR(c.eval.sts_file, "");
    config_free(&c);

    // A --set can supply a required key the file lacks.
    const char *path_set[] = {"data.train=t.tsv"};
    CHECK_EQ_INT(config_from_string("x.json", "{\"model\": {\"path\": \"m\"}}", path_set, 1, &c,
                                    &err), 0);
    CHECK_STR(c.data.train, "t.tsv");
    config_free(&c);

    CHECK_STR(error_of(base, "train.learning_rat=1e-4"),
              "--set: unknown key \"train.learning_rat\" (did you mean \"train.lr\"?)");
    CHECK_STR(error_of(base, "trian.lr=1e-4"),
              "--set: unknown key \"trian.lr\" (did you mean \"train.lr\"?)");
    CHECK_STR(error_of(base, "train.batch_size=abc"),
              "--set: train.batch_size: expected a positive integer, got \"abc\"");
    CHECK_STR(error_of(base, "train.batch_size=1"),
              "--set: train.batch_size: MNRL needs at least 2 rows per batch (the other rows "
              "are the negatives), got 1");
    CHECK_STR(error_of(base, "batch_size=256"),
              "--set batch_size=256: expected section.key=value (did you mean --set "
              "train.batch_size=...?)");
    CHECK_STR(error_of(base, "train.batch_size"),
              "--set train.batch_size: expected section.key=value, e.g. --set "
              "train.batch_size=256");
    CHECK_STR(error_of(base, "model.precision=fp16"),
              "--set: model.precision: expected one of \"bf16\", \"fp32\", got \"fp16\"");
    CHECK_STR(error_of(base, "data.negative_columns=negative"),
              "--set: data.negative_columns: expected an array of non-empty strings, got "
              "\"negative\"");
    // The warmup conflict names where each side came from.
    CHECK_STR(error_of("{" REQUIRED_KEYS ", \"train\": {\"warmup_ratio\": 0.1}}",
                       "train.warmup_steps=500"),
              "--set: train.warmup_steps = 500 conflicts with train.warmup_ratio = 0.1 (from "
              "x.json); give one of them, or set train.warmup_ratio to 0");
}

static void test_cross_fields(void) {
    MnrlConfig c;
    // warmup_steps alone takes over from the default ratio, which then reads 0.
    CHECK_EQ_INT(load("{" REQUIRED_KEYS "}", "train.warmup_steps=500", &c), 0);
    CHECK_EQ_INT(c.train.warmup_steps, 500);
    CHECK(c.train.warmup_ratio == 0.0);
    config_free(&c);
    // A ratio of 0 next to explicit steps is no conflict (that is what a printed config says).
    CHECK_EQ_INT(load("{" REQUIRED_KEYS ", \"train\": {\"warmup_ratio\": 0, \"warmup_steps\": 9}}",
                      NULL, &c), 0);
    config_free(&c);
    // Gradient accumulation loads, with a warning about negatives.
    CHECK_EQ_INT(load("{" REQUIRED_KEYS "}", "train.grad_accum_steps=4", &c), 0);
    CHECK(c.warnings != NULL);
    if (c.warnings) {
        CHECK_CONTAINS(c.warnings, "train.grad_accum_steps");
        CHECK_CONTAINS(c.warnings, "negatives");
    }
    config_free(&c);
}

// Loads text, prints it, loads the print and prints again: both prints must be equal, as
// must the hashes and a few fields read straight from the structs.
static void check_round_trip(const char *label, const MnrlConfig *first) {
    char *printed = config_to_json(first);
    MnrlConfig second;
    MnrlError err;
    int rc = config_from_string("printed", printed, NULL, 0, &second, &err);
    CHECK_MSG(rc == 0, "%s: the printed config does not load: %s", label, err.msg);
    if (rc == 0) {
        char *reprinted = config_to_json(&second);
        CHECK_MSG(strcmp(printed, reprinted) == 0, "%s: print -> load -> print differs:\n%s\n%s",
                  label, printed, reprinted);
        CHECK(config_hash(first) == config_hash(&second));
        CHECK(first->train.lr == second.train.lr);
        CHECK(first->train.warmup_ratio == second.train.warmup_ratio);
        CHECK(first->train.dropout == second.train.dropout);
        CHECK_EQ_INT(first->data.n_negative_columns, second.data.n_negative_columns);
        free(reprinted);
        config_free(&second);
    }
    free(printed);
}

static void test_round_trip(void) {
    MnrlConfig c;
    CHECK_EQ_INT(load("{" REQUIRED_KEYS "}", NULL, &c), 0);
    check_round_trip("defaults", &c);
    config_free(&c);
    // Numbers that need 17 digits, the other null/array/choice forms and explicit steps.
    const char *sets[] = {"train.lr=0.30000000000000004", "train.dropout=0.1",
                          "data.negative_columns=[\"n1\",\"n2\"]", "model.precision=fp32",
                          "train.warmup_steps=100", "train.adam_eps=1e-07",
                          "loss.scale=0.1", "data.max_rows=12345678901"};
    MnrlError err;
    CHECK_EQ_INT(config_from_string("x.json", "{" REQUIRED_KEYS "}", sets,
                                    (int)(sizeof sets / sizeof sets[0]), &c, &err), 0);
    CHECK(c.train.lr == 0.30000000000000004);
    CHECK_EQ_INT(c.data.max_rows, 12345678901LL);
    check_round_trip("non-defaults", &c);
    char *printed = config_to_json(&c);
    CHECK_CONTAINS(printed, "\"lr\": 0.30000000000000004");
    CHECK_CONTAINS(printed, "\"precision\": \"fp32\"");
    free(printed);
    config_free(&c);
}

static void test_hash(void) {
    MnrlConfig base;
    CHECK_EQ_INT(load("{" REQUIRED_KEYS "}", NULL, &base), 0);
    uint64_t h = config_hash(&base);
    MnrlConfig again;
    CHECK_EQ_INT(load("{" REQUIRED_KEYS "}", NULL, &again), 0);
    CHECK(config_hash(&again) == h);
    config_free(&again);
    const char *training[] = {"train.batch_size=64", "train.lr=3e-5", "loss.scale=20.5",
                              "train.seed=43", "model.max_seq_length=128",
                              "data.recipe=pairs", "train.epochs=2", "loss.symmetric=true",
                              "train.dropout=0.1", "data.negative_columns=[\"n\"]",
                              "model.precision=fp32", "train.warmup_steps=10"};
    uint64_t resume_h = config_resume_hash(&base);
    for (size_t i = 0; i < sizeof training / sizeof training[0]; i++) {
        MnrlConfig c;
        CHECK_EQ_INT(load("{" REQUIRED_KEYS "}", training[i], &c), 0);
        CHECK_MSG(config_hash(&c) != h, "%s does not change the hash", training[i]);
        // Only the length of training may change on --resume; any other key is named.
        int resumable = strncmp(training[i], "train.epochs=", 13) == 0;
        CHECK_MSG((config_resume_hash(&c) == resume_h) == resumable, "%s: resume hash", training[i]);
        ConfigDifference diff;
        CHECK_EQ_INT(config_resume_difference(&base, &c, &diff), !resumable);
        // (warmup_steps also zeroes warmup_ratio, the key before it.)
        int named = strncmp(training[i], diff.key, strlen(diff.key)) == 0 && training[i][strlen(diff.key)] == '=';
        if (!resumable) CHECK_MSG(named || strcmp(diff.key, "train.warmup_ratio") == 0, "%s named %s", training[i],
                                  diff.key);
        config_free(&c);
    }
    MnrlConfig longer;
    CHECK_EQ_INT(load("{" REQUIRED_KEYS "}", "train.max_steps=500", &longer), 0);
    CHECK(config_hash(&longer) != h && config_resume_hash(&longer) == resume_h);
    config_free(&longer);
    MnrlConfig lr;
    ConfigDifference diff;
    CHECK_EQ_INT(load("{" REQUIRED_KEYS "}", "train.lr=3e-5", &lr), 0);
    CHECK_EQ_INT(config_resume_difference(&base, &lr, &diff), 1);
    CHECK_STR(diff.key, "train.lr");
    CHECK_STR(diff.a, "2e-5");
    CHECK_STR(diff.b, "3e-5");
    CHECK_EQ_INT(diff.count, 1);
    config_free(&lr);
    const char *other[] = {"output.dir=elsewhere", "train.log_every=10", "eval.every_steps=100",
                           "model.path=/moved/model", "data.train=/moved/t.tsv",
                           "checkpoint.keep=5", "dist.backend=mpi", "model.backend=cpu",
                           "data.cache_dir=/tmp/c", "eval.sts_file="};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        MnrlConfig c;
        CHECK_EQ_INT(load("{" REQUIRED_KEYS "}", other[i], &c), 0);
        CHECK_MSG(config_hash(&c) == h, "%s changes the hash", other[i]);
        config_free(&c);
    }
    config_free(&base);
}

static void load_shipped(const char *name, MnrlConfig *c) {
    char path[1024];
    snprintf(path, sizeof path, "%s/configs/%s", MNRL_SOURCE_DIR, name);
    MnrlError err;
    int rc = config_load(path, NULL, 0, c, &err);
    CHECK_MSG(rc == 0, "%s: %s", name, err.msg);
    if (rc != 0) memset(c, 0, sizeof *c);
}

static void test_shipped_configs(void) {
    MnrlConfig c;
    // sentence-transformers' 2021 training_nli_v2 recipe.
    load_shipped("nli.json", &c);
    CHECK_STR(c.model.path, "models/bert-base-uncased");
    CHECK_STR(c.data.train, "data/AllNLI.tsv.gz");
    CHECK_EQ_INT(c.data.recipe, DATA_RECIPE_TRIPLETS);
    CHECK_EQ_INT(c.train.batch_size, 128);
    CHECK_EQ_INT(c.model.max_seq_length, 75);
    CHECK(c.train.lr == 2e-5);
    CHECK(c.train.warmup_ratio == 0.1);
    CHECK_EQ_INT(c.train.epochs, 1);
    CHECK(c.loss.scale == 20.0);
    CHECK(c.train.weight_decay == 0.01);
    CHECK(c.train.max_grad_norm == 1.0);
    CHECK_EQ_INT(c.model.precision, MNRL_PRECISION_BF16);
    check_round_trip("nli.json", &c);
    config_free(&c);
    // The MNR-loss article's recipe.
    load_shipped("nli-pairs.json", &c);
    CHECK_EQ_INT(c.data.recipe, DATA_RECIPE_PAIRS);
    CHECK_EQ_INT(c.train.batch_size, 32);
    CHECK(c.train.lr == 2e-5);
    CHECK(c.train.warmup_ratio == 0.1);
    CHECK_EQ_INT(c.train.epochs, 1);
    check_round_trip("nli-pairs.json", &c);
    config_free(&c);
    // The demo, from the file and from the copy compiled into the binary.
    load_shipped("demo.json", &c);
    CHECK_STR(c.model.path, "models/all-MiniLM-L6-v2");
    CHECK_STR(c.data.train, "data/snli_dev_test.tsv.gz");
    CHECK_STR(c.data.split, "dev");
    CHECK_EQ_INT(c.data.recipe, DATA_RECIPE_PAIRS);
    CHECK_EQ_INT(c.train.batch_size, 32);
    CHECK_EQ_INT(c.model.max_seq_length, 64);
    CHECK_STR(c.output.dir, "output/demo");
    MnrlConfig embedded;
    MnrlError err;
    CHECK_EQ_INT(config_from_string("demo", mnrl_demo_config_json, NULL, 0, &embedded, &err), 0);
    char *from_file = config_to_json(&c), *from_binary = config_to_json(&embedded);
    CHECK_STR(from_file, from_binary);
    free(from_file);
    free(from_binary);
    check_round_trip("demo.json", &c);
    config_free(&embedded);
    config_free(&c);
}

static void test_edit_distance(void) {
    CHECK_EQ_INT(mnrl_edit_distance("kitten", "sitting"), 3);
    CHECK_EQ_INT(mnrl_edit_distance("", "abc"), 3);
    CHECK_EQ_INT(mnrl_edit_distance("abc", ""), 3);
    CHECK_EQ_INT(mnrl_edit_distance("same", "same"), 0);
    CHECK_EQ_INT(mnrl_edit_distance("trian", "train"), 1);  // one transposition
    CHECK_EQ_INT(mnrl_edit_distance("ca", "abc"), 3);       // OSA, not full Damerau (2)
    const char *names[] = {"train", "tokenize", "eval"};
    CHECK_STR(mnrl_closest_match("trian", names, 3), "train");
    CHECK_STR(mnrl_closest_match("evl", names, 3), "eval");
    CHECK(mnrl_closest_match("xyz", names, 3) == NULL);
    CHECK(mnrl_closest_match("tokenizer_config", names, 3) == NULL);
}

int main(void) {
    test_defaults();
    test_value_errors();
    test_structure_errors();
    test_files();
    test_sets();
    test_cross_fields();
    test_round_trip();
    test_hash();
    test_shipped_configs();
    test_edit_distance();
    TEST_END();
}
