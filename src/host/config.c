// config.c — the configuration schema and its loader (see include/mnrl/config.h).
//
// Every key is one row of `schema`: where it lives in MnrlConfig, its type, range and
// default. Loading, printing, hashing and the defaults all walk that table, so a new key
// is one row here, one field in config.h and one line in docs/config.md.
#include "mnrl/config.h"

#include <float.h>
#include <jansson.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    KEY_INT,        // int field
    KEY_INT64,      // int64_t field
    KEY_NUMBER,     // double field
    KEY_BOOL,       // bool field
    KEY_STRING,     // char * field, owned
    KEY_CHOICE,     // enum field (int-sized), value = index into choices
    KEY_STRING_LIST // char ** field plus an int count field
} KeyType;

enum {
    REQUIRED = 1 << 0,   // no default: the config must give it
    NON_EMPTY = 1 << 1,  // strings: "" is not allowed
    NULLABLE = 1 << 2,   // numbers: null stores MNRL_DROPOUT_FROM_MODEL
    MIN_OPEN = 1 << 3,   // numbers: min itself excluded
    MAX_OPEN = 1 << 4,   // numbers: max itself excluded
    HASHED = 1 << 5,     // part of config_hash (changes what training computes)
    RESUMABLE = 1 << 6,  // hashed, yet a resumed run may change it (how long it trains)
};

typedef struct {
    const char *section;
    const char *name;
    KeyType type;
    size_t offset;
    size_t count_offset;           // KEY_STRING_LIST: the int count field
    double min, max;               // KEY_INT, KEY_INT64, KEY_NUMBER
    double default_number;         // also the default of ints, bools and choices
    const char *default_string;    // KEY_STRING (NULL with REQUIRED)
    const char *const *choices;    // KEY_CHOICE, NULL-terminated
    unsigned flags;
} KeySpec;

static const char *const pooling_names[] = {"mean", NULL};
static const char *const precision_names[] = {"bf16", "fp32", NULL};
static const char *const backend_names[] = {"auto", "cuda", "cpu", NULL};
static const char *const format_names[] = {"auto", "allnli", "tsv", "csv", "jsonl", NULL};
static const char *const recipe_names[] = {"triplets", "pairs", NULL};
static const char *const on_error_names[] = {"fail", "skip", NULL};
static const char *const dist_names[] = {"auto", "mpi", "env", "single", NULL};

// Choice fields are C enums written through an int pointer.
_Static_assert(sizeof(MnrlPrecision) == sizeof(int), "enum fields must be int-sized");
_Static_assert(sizeof(DataFormat) == sizeof(int), "enum fields must be int-sized");

#define AT(field) offsetof(MnrlConfig, field)
#define INT(sec, key, lo, hi, def, fl) \
    {#sec, #key, KEY_INT, AT(sec.key), 0, lo, hi, def, NULL, NULL, fl}
#define INT64(sec, key, lo, def, fl) \
    {#sec, #key, KEY_INT64, AT(sec.key), 0, lo, 9007199254740992.0, def, NULL, NULL, fl}
#define NUMBER(sec, key, lo, hi, def, fl) \
    {#sec, #key, KEY_NUMBER, AT(sec.key), 0, lo, hi, def, NULL, NULL, fl}
#define BOOL(sec, key, def, fl) {#sec, #key, KEY_BOOL, AT(sec.key), 0, 0, 1, def, NULL, NULL, fl}
#define STRING(sec, key, def, fl) \
    {#sec, #key, KEY_STRING, AT(sec.key), 0, 0, 0, 0, def, NULL, fl}
#define CHOICE(sec, key, names, def, fl) \
    {#sec, #key, KEY_CHOICE, AT(sec.key), 0, 0, 0, def, NULL, names, fl}

static const KeySpec schema[] = {
    STRING(model, path, NULL, REQUIRED | NON_EMPTY),
    INT(model, max_seq_length, 1, 8192, 75, HASHED),
    CHOICE(model, pooling, pooling_names, MNRL_POOLING_MEAN, HASHED),
    CHOICE(model, precision, precision_names, MNRL_PRECISION_BF16, HASHED),
    CHOICE(model, backend, backend_names, MNRL_BACKEND_AUTO, 0),

    STRING(data, train, NULL, REQUIRED | NON_EMPTY),
    CHOICE(data, format, format_names, DATA_FORMAT_AUTO, HASHED),
    CHOICE(data, recipe, recipe_names, DATA_RECIPE_TRIPLETS, HASHED),
    STRING(data, split, "train", HASHED),
    STRING(data, anchor_column, "anchor", NON_EMPTY | HASHED),
    STRING(data, positive_column, "positive", NON_EMPTY | HASHED),
    {"data", "negative_columns", KEY_STRING_LIST, AT(data.negative_columns),
     AT(data.n_negative_columns), 0, 0, 0, NULL, NULL, HASHED},
    INT64(data, max_rows, 0, 0, HASHED),
    CHOICE(data, on_error, on_error_names, DATA_ON_ERROR_FAIL, HASHED),
    STRING(data, cache_dir, ".mnrl_cache", NON_EMPTY),

    INT(train, batch_size, 1, INT_MAX, 128, HASHED),
    INT(train, epochs, 1, INT_MAX, 1, HASHED | RESUMABLE),
    INT64(train, max_steps, 0, 0, HASHED | RESUMABLE),
    NUMBER(train, lr, 0, DBL_MAX, 2e-5, MIN_OPEN | HASHED),
    NUMBER(train, warmup_ratio, 0, 1, 0.1, HASHED),
    INT64(train, warmup_steps, -1, -1, HASHED),
    NUMBER(train, weight_decay, 0, DBL_MAX, 0.01, HASHED),
    NUMBER(train, adam_beta1, 0, 1, 0.9, MAX_OPEN | HASHED),
    NUMBER(train, adam_beta2, 0, 1, 0.999, MAX_OPEN | HASHED),
    NUMBER(train, adam_eps, 0, DBL_MAX, 1e-8, MIN_OPEN | HASHED),
    NUMBER(train, max_grad_norm, 0, DBL_MAX, 1.0, HASHED),
    INT(train, grad_accum_steps, 1, INT_MAX, 1, HASHED),
    INT64(train, seed, 0, 42, HASHED),
    NUMBER(train, dropout, 0, 1, MNRL_DROPOUT_FROM_MODEL, NULLABLE | MAX_OPEN | HASHED),
    INT(train, log_every, 1, INT_MAX, 1, 0),
    INT(train, max_bad_steps, 1, INT_MAX, 10, 0),

    NUMBER(loss, scale, 0, DBL_MAX, 20.0, MIN_OPEN | HASHED),
    BOOL(loss, symmetric, false, HASHED),
    INT(loss, mini_batch_size, 0, INT_MAX, 0, HASHED),

    STRING(eval, sts_file, "data/stsbenchmark.tsv.gz", 0),
    STRING(eval, dev_split, "dev", NON_EMPTY),
    STRING(eval, test_split, "test", NON_EMPTY),
    INT64(eval, every_steps, 0, 0, 0),
    INT(eval, batch_size, 1, INT_MAX, 256, 0),
    BOOL(eval, before_training, true, 0),

    INT64(checkpoint, every_steps, 0, 0, 0),
    INT(checkpoint, keep, 1, INT_MAX, 2, 0),

    STRING(output, dir, "output/run", NON_EMPTY),
    BOOL(output, overwrite, false, 0),

    CHOICE(dist, backend, dist_names, MNRL_DIST_AUTO, 0),
    STRING(dist, init_dir, "", 0),
    INT(dist, init_timeout_s, 1, INT_MAX, 300, 0),
};
#define N_KEYS (sizeof schema / sizeof schema[0])

static const char *const section_names[] = {"model", "data",       "train",  "loss",
                                            "eval",  "checkpoint", "output", "dist"};
#define N_SECTIONS (sizeof section_names / sizeof section_names[0])

// Names people bring from sentence-transformers / HF TrainingArguments, for suggestions.
static const struct {
    const char *alias, *key;
} aliases[] = {
    {"train.learning_rate", "train.lr"},
    {"train.num_epochs", "train.epochs"},
    {"train.num_train_epochs", "train.epochs"},
    {"train.train_batch_size", "train.batch_size"},
    {"train.per_device_train_batch_size", "train.batch_size"},
    {"train.gradient_accumulation_steps", "train.grad_accum_steps"},
    {"train.adam_epsilon", "train.adam_eps"},
    {"train.warmup", "train.warmup_steps"},
    {"train.logging_steps", "train.log_every"},
    {"model.max_seq_len", "model.max_seq_length"},
    {"model.max_length", "model.max_seq_length"},
    {"model.name", "model.path"},
    {"model.model_name_or_path", "model.path"},
    {"model.dtype", "model.precision"},
    {"eval.evaluation_steps", "eval.every_steps"},
    {"eval.eval_steps", "eval.every_steps"},
    {"checkpoint.save_steps", "checkpoint.every_steps"},
    {"checkpoint.save_total_limit", "checkpoint.keep"},
    {"output.output_dir", "output.dir"},
};
#define N_ALIASES (sizeof aliases / sizeof aliases[0])

// ---- the schema ------------------------------------------------------------------------

static void *field(MnrlConfig *cfg, const KeySpec *spec) { return (char *)cfg + spec->offset; }

static const void *const_field(const MnrlConfig *cfg, const KeySpec *spec) {
    return (const char *)cfg + spec->offset;
}

static const KeySpec *find_key(const char *section, const char *name) {
    for (size_t i = 0; i < N_KEYS; i++) {
        if (strcmp(schema[i].section, section) == 0 && strcmp(schema[i].name, name) == 0) {
            return &schema[i];
        }
    }
    return NULL;
}

static int is_section(const char *name) {
    for (size_t i = 0; i < N_SECTIONS; i++) {
        if (strcmp(section_names[i], name) == 0) return 1;
    }
    return 0;
}

// The schema key named `name` in whichever section has it, or NULL.
static const KeySpec *find_key_any_section(const char *name) {
    for (size_t i = 0; i < N_KEYS; i++) {
        if (strcmp(schema[i].name, name) == 0) return &schema[i];
    }
    return NULL;
}

// The known key closest to name within section, aliases included, or NULL.
static const char *closest_key(const char *section, const char *name) {
    const char *names[N_KEYS + N_ALIASES];
    const char *targets[N_KEYS + N_ALIASES];
    size_t n = 0;
    for (size_t i = 0; i < N_KEYS; i++) {
        if (strcmp(schema[i].section, section) == 0) {
            names[n] = schema[i].name;
            targets[n++] = schema[i].name;
        }
    }
    size_t section_len = strlen(section);
    for (size_t i = 0; i < N_ALIASES; i++) {
        if (strncmp(aliases[i].alias, section, section_len) == 0 &&
            aliases[i].alias[section_len] == '.') {
            names[n] = aliases[i].alias + section_len + 1;
            targets[n++] = aliases[i].key + section_len + 1;
        }
    }
    const char *close = mnrl_closest_match(name, names, n);
    for (size_t i = 0; close && i < n; i++) {
        if (names[i] == close) return targets[i];
    }
    return NULL;
}

// Error for the unknown key section.name (name NULL: an unknown section). Suggests a close
// key, an alias's key or the same key in another section; otherwise lists what the section
// has, so the message always says what to write instead.
static int fail_unknown_key(MnrlError *err, const char *source, const char *section,
                            const char *name) {
    char typed[256];
    snprintf(typed, sizeof typed, "%s%s%s", section, name ? "." : "", name ? name : "");
    if (!is_section(section)) {
        const char *close = mnrl_closest_match(section, section_names, N_SECTIONS);
        if (!close) {
            return mnrl_fail(err, "%s: unknown key \"%s\"; the sections are model, data, "
                                  "train, loss, eval, checkpoint, output, dist", source, typed);
        }
        const char *key = name ? closest_key(close, name) : NULL;
        return mnrl_fail(err, "%s: unknown key \"%s\" (did you mean \"%s%s%s\"?)", source,
                         typed, close, key ? "." : "", key ? key : "");
    }
    const char *key = closest_key(section, name);
    if (key) {
        return mnrl_fail(err, "%s: unknown key \"%s\" (did you mean \"%s.%s\"?)", source,
                         typed, section, key);
    }
    const KeySpec *elsewhere = find_key_any_section(name);
    if (elsewhere) {
        return mnrl_fail(err, "%s: unknown key \"%s\" (did you mean \"%s.%s\"?)", source,
                         typed, elsewhere->section, name);
    }
    char listing[512];
    size_t used = 0;
    listing[0] = '\0';
    for (size_t i = 0; i < N_KEYS && used < sizeof listing; i++) {
        if (strcmp(schema[i].section, section) == 0) {
            used += (size_t)snprintf(listing + used, sizeof listing - used, " %s",
                                     schema[i].name);
        }
    }
    return mnrl_fail(err, "%s: unknown key \"%s\"; %s has:%s", source, typed, section,
                     listing);
}

// What a key accepts, in words: "a positive integer", "a number in [0, 1)", ...
static void describe_expected(const KeySpec *spec, char *out, size_t cap) {
    switch (spec->type) {
    case KEY_INT:
    case KEY_INT64: {
        long long lo = (long long)spec->min, hi = (long long)spec->max;
        int unbounded = spec->type == KEY_INT64 || spec->max == INT_MAX;
        if (unbounded && lo == 1) snprintf(out, cap, "a positive integer");
        else if (unbounded && lo == 0) snprintf(out, cap, "a non-negative integer");
        else if (unbounded) snprintf(out, cap, "an integer >= %lld", lo);
        else snprintf(out, cap, "an integer in %lld..%lld", lo, hi);
        break;
    }
    case KEY_NUMBER: {
        const char *null = spec->flags & NULLABLE ? " or null" : "";
        if (spec->max == DBL_MAX) {
            snprintf(out, cap, "a number %s %g%s", spec->flags & MIN_OPEN ? ">" : ">=",
                     spec->min, null);
        } else {
            snprintf(out, cap, "a number in %c%g, %g%c%s", spec->flags & MIN_OPEN ? '(' : '[',
                     spec->min, spec->max, spec->flags & MAX_OPEN ? ')' : ']', null);
        }
        break;
    }
    case KEY_BOOL: snprintf(out, cap, "true or false"); break;
    case KEY_STRING:
        snprintf(out, cap, "%s", spec->flags & NON_EMPTY ? "a non-empty string" : "a string");
        break;
    case KEY_CHOICE: {
        size_t used = (size_t)snprintf(out, cap, "one of");
        for (int i = 0; spec->choices[i] && used < cap; i++) {
            used += (size_t)snprintf(out + used, cap - used, "%s \"%s\"", i ? "," : "",
                                     spec->choices[i]);
        }
        break;
    }
    case KEY_STRING_LIST: snprintf(out, cap, "an array of non-empty strings"); break;
    }
}

// The fewest significant digits (15..17) with which v prints and reads back exactly, so
// numbers print readably (0.1, not 0.10000000000000001) and still exactly.
static int shortest_precision(double v) {
    char text[64];
    for (int precision = 15; precision < 17; precision++) {
        snprintf(text, sizeof text, "%.*g", precision, v);
        if (strtod(text, NULL) == v) return precision;
    }
    return 17;
}

static int fail_value(MnrlError *err, const char *source, const KeySpec *spec,
                      const json_t *value) {
    char expected[256];
    describe_expected(spec, expected, sizeof expected);
    int precision = json_is_real(value) ? shortest_precision(json_real_value(value)) : 17;
    char *got = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(precision));
    if (got && strlen(got) > 80) strcpy(got + 72, "...");
    mnrl_fail(err, "%s: %s.%s: expected %s, got %s", source, spec->section, spec->name,
              expected, got ? got : "?");
    free(got);
    return -1;
}

// ---- values ---------------------------------------------------------------------------

static void free_string_list(char **list, int n) {
    for (int i = 0; i < n; i++) free(list[i]);
    free(list);
}

// Checks value against spec and stores it into cfg (replacing what was there).
static int set_value(MnrlConfig *cfg, const KeySpec *spec, const json_t *value,
                     const char *source, MnrlError *err) {
    void *dst = field(cfg, spec);
    switch (spec->type) {
    case KEY_INT:
    case KEY_INT64: {
        if (!json_is_integer(value)) return fail_value(err, source, spec, value);
        json_int_t v = json_integer_value(value);
        if ((double)v < spec->min || (double)v > spec->max) {
            return fail_value(err, source, spec, value);
        }
        if (spec->type == KEY_INT) *(int *)dst = (int)v;
        else *(int64_t *)dst = (int64_t)v;
        return 0;
    }
    case KEY_NUMBER: {
        if (json_is_null(value) && (spec->flags & NULLABLE)) {
            *(double *)dst = MNRL_DROPOUT_FROM_MODEL;
            return 0;
        }
        if (!json_is_number(value)) return fail_value(err, source, spec, value);
        double v = json_number_value(value);
        int below = (spec->flags & MIN_OPEN) ? v <= spec->min : v < spec->min;
        int above = (spec->flags & MAX_OPEN) ? v >= spec->max : v > spec->max;
        if (below || above) return fail_value(err, source, spec, value);
        *(double *)dst = v;
        return 0;
    }
    case KEY_BOOL:
        if (!json_is_boolean(value)) return fail_value(err, source, spec, value);
        *(bool *)dst = json_is_true(value);
        return 0;
    case KEY_STRING: {
        if (!json_is_string(value)) return fail_value(err, source, spec, value);
        const char *s = json_string_value(value);
        if ((spec->flags & NON_EMPTY) && s[0] == '\0') return fail_value(err, source, spec, value);
        if (strlen(s) != json_string_length(value)) return fail_value(err, source, spec, value);
        free(*(char **)dst);
        *(char **)dst = mnrl_strdup(s);
        return 0;
    }
    case KEY_CHOICE: {
        if (!json_is_string(value)) return fail_value(err, source, spec, value);
        for (int i = 0; spec->choices[i]; i++) {
            if (strcmp(spec->choices[i], json_string_value(value)) == 0) {
                *(int *)dst = i;
                return 0;
            }
        }
        return fail_value(err, source, spec, value);
    }
    case KEY_STRING_LIST: {
        if (!json_is_array(value)) return fail_value(err, source, spec, value);
        size_t n = json_array_size(value);
        for (size_t i = 0; i < n; i++) {
            const json_t *item = json_array_get(value, i);
            if (!json_is_string(item) || json_string_value(item)[0] == '\0' ||
                strlen(json_string_value(item)) != json_string_length(item)) {
                return fail_value(err, source, spec, value);
            }
        }
        int *count = (int *)((char *)cfg + spec->count_offset);
        free_string_list(*(char ***)dst, *count);
        char **list = mnrl_calloc(n, sizeof *list);
        for (size_t i = 0; i < n; i++) list[i] = mnrl_strdup(json_string_value(json_array_get(value, i)));
        *(char ***)dst = list;
        *count = (int)n;
        return 0;
    }
    }
    return mnrl_fail(err, "%s: %s.%s: internal error: unknown key type", source,
                     spec->section, spec->name);
}

// The JSON value of a field: the inverse of set_value.
static json_t *get_value(const MnrlConfig *cfg, const KeySpec *spec) {
    const void *src = const_field(cfg, spec);
    switch (spec->type) {
    case KEY_INT: return json_integer(*(const int *)src);
    case KEY_INT64: return json_integer(*(const int64_t *)src);
    case KEY_NUMBER: {
        double v = *(const double *)src;
        if ((spec->flags & NULLABLE) && v == MNRL_DROPOUT_FROM_MODEL) return json_null();
        return json_real(v);
    }
    case KEY_BOOL: return json_boolean(*(const bool *)src);
    case KEY_STRING: {
        const char *s = *(char *const *)src;
        return json_string(s ? s : "");
    }
    case KEY_CHOICE: return json_string(spec->choices[*(const int *)src]);
    case KEY_STRING_LIST: {
        json_t *array = json_array();
        char *const *list = *(char **const *)src;
        int n = *(const int *)((const char *)cfg + spec->count_offset);
        for (int i = 0; i < n; i++) json_array_append_new(array, json_string(list[i]));
        return array;
    }
    }
    return json_null();
}

static void set_defaults(MnrlConfig *cfg) {
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < N_KEYS; i++) {
        const KeySpec *spec = &schema[i];
        void *dst = field(cfg, spec);
        switch (spec->type) {
        case KEY_INT: *(int *)dst = (int)spec->default_number; break;
        case KEY_INT64: *(int64_t *)dst = (int64_t)spec->default_number; break;
        case KEY_NUMBER: *(double *)dst = spec->default_number; break;
        case KEY_BOOL: *(bool *)dst = spec->default_number != 0; break;
        case KEY_CHOICE: *(int *)dst = (int)spec->default_number; break;
        case KEY_STRING:
            *(char **)dst = spec->default_string ? mnrl_strdup(spec->default_string) : NULL;
            break;
        case KEY_STRING_LIST: break;  // empty list
        }
    }
}

void config_free(MnrlConfig *cfg) {
    for (size_t i = 0; i < N_KEYS; i++) {
        const KeySpec *spec = &schema[i];
        if (spec->type == KEY_STRING) free(*(char **)field(cfg, spec));
        if (spec->type == KEY_STRING_LIST) {
            free_string_list(*(char ***)field(cfg, spec),
                             *(int *)((char *)cfg + spec->count_offset));
        }
    }
    free(cfg->warnings);
    memset(cfg, 0, sizeof *cfg);
}

// ---- loading ---------------------------------------------------------------------------

// Where each key's value came from (NULL: the default), for messages and cross-checks.
typedef struct {
    const char *source[N_KEYS];
} KeySources;

static size_t key_index(const KeySpec *spec) { return (size_t)(spec - schema); }

static int apply_document(MnrlConfig *cfg, const json_t *root, const char *source,
                          KeySources *sources, MnrlError *err) {
    if (!json_is_object(root)) {
        char *got = json_dumps(root, JSON_ENCODE_ANY | JSON_COMPACT);
        mnrl_fail(err, "%s: expected a JSON object with the sections model, data, train, ..., "
                       "got %.60s", source, got ? got : "?");
        free(got);
        return -1;
    }
    const char *section;
    json_t *body;
    json_object_foreach((json_t *)root, section, body) {
        if (!is_section(section)) return fail_unknown_key(err, source, section, NULL);
        if (!json_is_object(body)) {
            char *got = json_dumps(body, JSON_ENCODE_ANY | JSON_COMPACT);
            mnrl_fail(err, "%s: %s: expected an object of keys, got %.60s", source, section,
                      got ? got : "?");
            free(got);
            return -1;
        }
        const char *name;
        json_t *value;
        json_object_foreach(body, name, value) {
            const KeySpec *spec = find_key(section, name);
            if (!spec) return fail_unknown_key(err, source, section, name);
            if (set_value(cfg, spec, value, source, err) != 0) return -1;
            sources->source[key_index(spec)] = source;
        }
    }
    return 0;
}

// One `--set section.key=value`. The value is JSON when it parses; a string key takes
// non-string JSON verbatim (so --set data.split=2019 means the split "2019").
static int apply_set(MnrlConfig *cfg, const char *assignment, KeySources *sources,
                     MnrlError *err) {
    const char *eq = strchr(assignment, '=');
    const char *dot = strchr(assignment, '.');
    if (!eq || !dot || dot > eq) {
        char bare[128];
        size_t bare_len = eq ? (size_t)(eq - assignment) : strlen(assignment);
        snprintf(bare, sizeof bare, "%.*s", (int)(bare_len < 127 ? bare_len : 127), assignment);
        const KeySpec *guess = find_key_any_section(bare);
        if (guess) {
            return mnrl_fail(err, "--set %s: expected section.key=value (did you mean "
                                  "--set %s.%s=...?)", assignment, guess->section, guess->name);
        }
        return mnrl_fail(err, "--set %s: expected section.key=value, e.g. "
                              "--set train.batch_size=256", assignment);
    }
    char path[256];
    size_t path_len = (size_t)(eq - assignment);
    if (path_len >= sizeof path) {
        return mnrl_fail(err, "--set %.60s...: key path too long", assignment);
    }
    memcpy(path, assignment, path_len);
    path[path_len] = '\0';
    char *name = path + (dot - assignment);
    *name++ = '\0';
    const KeySpec *spec = find_key(path, name);
    if (!spec) return fail_unknown_key(err, "--set", path, name);
    const char *text = eq + 1;
    json_t *value = json_loads(text, JSON_DECODE_ANY, NULL);
    if (!value || (spec->type == KEY_STRING && !json_is_string(value))) {
        json_decref(value);
        value = json_string(text);
        if (!value) return mnrl_fail(err, "--set %s: the value is not valid UTF-8", path);
    }
    int rc = set_value(cfg, spec, value, "--set", err);
    json_decref(value);
    if (rc == 0) sources->source[key_index(spec)] = "--set";
    return rc;
}

static const char *source_of(const KeySources *sources, const char *section,
                             const char *name) {
    return sources->source[key_index(find_key(section, name))];
}

static int check_required(const KeySources *sources, const char *document, MnrlError *err) {
    for (size_t i = 0; i < N_KEYS; i++) {
        if ((schema[i].flags & REQUIRED) && !sources->source[i]) {
            return mnrl_fail(err, "%s: %s.%s: required key is missing; add it to the file or "
                                  "pass --set %s.%s=...", document, schema[i].section,
                             schema[i].name, schema[i].section, schema[i].name);
        }
    }
    return 0;
}

// Rules that involve more than one key, or a value the type range cannot express.
static int check_cross_fields(MnrlConfig *cfg, const KeySources *sources, MnrlError *err) {
    const char *batch_source = source_of(sources, "train", "batch_size");
    if (cfg->train.batch_size < 2) {
        return mnrl_fail(err, "%s: train.batch_size: MNRL needs at least 2 rows per batch "
                              "(the other rows are the negatives), got %d",
                         batch_source, cfg->train.batch_size);
    }
    const char *ratio_source = source_of(sources, "train", "warmup_ratio");
    if (cfg->train.warmup_steps >= 0) {
        if (ratio_source && cfg->train.warmup_ratio != 0) {
            return mnrl_fail(err, "%s: train.warmup_steps = %lld conflicts with "
                                  "train.warmup_ratio = %g (from %s); give one of them, or set "
                                  "train.warmup_ratio to 0",
                             source_of(sources, "train", "warmup_steps"),
                             (long long)cfg->train.warmup_steps, cfg->train.warmup_ratio,
                             ratio_source);
        }
        cfg->train.warmup_ratio = 0;  // steps decide; printed configs say so and load back
    }
    return 0;
}

// Advice that is not an error, kept in cfg->warnings for the caller to print.
static void collect_warnings(MnrlConfig *cfg) {
    if (cfg->train.grad_accum_steps > 1) {
        char text[768];
        snprintf(text, sizeof text,
                 "train.grad_accum_steps = %d: gradient accumulation does not add in-batch "
                 "negatives: each optimizer step averages the gradients of %d batches of %d rows, "
                 "but every anchor is still scored only against the candidates of its own batch "
                 "(the %d positives and their hard negatives), as with train.batch_size %d alone; "
                 "for a larger effective batch with more negatives, raise train.batch_size and "
                 "set loss.mini_batch_size (cached MNRL) so that it fits in memory",
                 cfg->train.grad_accum_steps, cfg->train.grad_accum_steps, cfg->train.batch_size,
                 cfg->train.batch_size, cfg->train.batch_size);
        cfg->warnings = mnrl_strdup(text);
    }
}

static int load_text(const char *source, const char *text, size_t len, const char *const *sets,
                     int n_sets, MnrlConfig *cfg, MnrlError *err) {
    set_defaults(cfg);
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        config_free(cfg);
        return mnrl_fail(err, "%s:%d:%d: invalid JSON: %s", source, jerr.line, jerr.column,
                         jerr.text);
    }
    KeySources sources = {{NULL}};
    int rc = apply_document(cfg, root, source, &sources, err);
    json_decref(root);
    for (int i = 0; rc == 0 && i < n_sets; i++) rc = apply_set(cfg, sets[i], &sources, err);
    if (rc == 0) rc = check_required(&sources, source, err);
    if (rc == 0) rc = check_cross_fields(cfg, &sources, err);
    if (rc != 0) {
        config_free(cfg);
        return -1;
    }
    collect_warnings(cfg);
    return 0;
}

int config_from_string(const char *source, const char *json_text, const char *const *sets,
                       int n_sets, MnrlConfig *cfg, MnrlError *err) {
    return load_text(source, json_text, strlen(json_text), sets, n_sets, cfg, err);
}

int config_load(const char *path, const char *const *sets, int n_sets, MnrlConfig *cfg,
                MnrlError *err) {
    memset(cfg, 0, sizeof *cfg);
    char *text;
    size_t len;
    if (mnrl_read_file(path, &text, &len, err) != 0) return -1;
    int rc = load_text(path, text, len, sets, n_sets, cfg, err);
    free(text);
    return rc;
}

// ---- printing and hashing -------------------------------------------------------------

// The precision at which every number of cfg prints exactly (see shortest_precision).
static int number_precision(const MnrlConfig *cfg) {
    int precision = 15;
    for (size_t i = 0; i < N_KEYS; i++) {
        if (schema[i].type != KEY_NUMBER) continue;
        int needed = shortest_precision(*(const double *)const_field(cfg, &schema[i]));
        if (needed > precision) precision = needed;
    }
    return precision;
}

// The keys with all of only_flags and none of without_flags, by section.
static json_t *config_to_tree(const MnrlConfig *cfg, unsigned only_flags, unsigned without_flags) {
    json_t *root = json_object();
    for (size_t s = 0; s < N_SECTIONS; s++) {
        json_t *section = json_object();
        for (size_t i = 0; i < N_KEYS; i++) {
            if (strcmp(schema[i].section, section_names[s]) != 0) continue;
            if ((schema[i].flags & only_flags) != only_flags || (schema[i].flags & without_flags)) continue;
            json_object_set_new(section, schema[i].name, get_value(cfg, &schema[i]));
        }
        json_object_set_new(root, section_names[s], section);
    }
    return root;
}

char *config_to_json(const MnrlConfig *cfg) {
    json_t *root = config_to_tree(cfg, 0, 0);
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(number_precision(cfg)));
    json_decref(root);
    if (!text) abort();  // jansson fails here only when out of memory
    return text;
}

// Hashes the compact JSON of the selected keys: key names are in it, numbers at full
// precision, so any change of a training field (or a renamed key) changes the hash.
static uint64_t hash_keys(const MnrlConfig *cfg, unsigned without_flags) {
    json_t *root = config_to_tree(cfg, HASHED, without_flags);
    char *text = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(root);
    uint64_t h = mnrl_hash64(text, strlen(text), 0x6d6e726c636f6e66ULL);  // "mnrlconf"
    free(text);
    return h;
}

uint64_t config_hash(const MnrlConfig *cfg) { return hash_keys(cfg, 0); }

uint64_t config_resume_hash(const MnrlConfig *cfg) { return hash_keys(cfg, RESUMABLE); }

int config_resume_difference(const MnrlConfig *a, const MnrlConfig *b, ConfigDifference *diff) {
    diff->count = 0;
    for (size_t i = 0; i < N_KEYS; i++) {
        const KeySpec *spec = &schema[i];
        if (!(spec->flags & HASHED) || (spec->flags & RESUMABLE)) continue;
        json_t *va = get_value(a, spec), *vb = get_value(b, spec);
        if (!json_equal(va, vb) && diff->count++ == 0) {
            char *ta = mnrl_json_dumps_exact(va, 0), *tb = mnrl_json_dumps_exact(vb, 0);
            snprintf(diff->key, sizeof diff->key, "%s.%s", spec->section, spec->name);
            snprintf(diff->a, sizeof diff->a, "%s", ta);
            snprintf(diff->b, sizeof diff->b, "%s", tb);
            free(ta);
            free(tb);
        }
        json_decref(va);
        json_decref(vb);
    }
    return diff->count > 0;
}
