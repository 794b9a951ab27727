// checkpoint.c — writing, finding and reading training checkpoints (see checkpoint.h).
#include "mnrl/checkpoint.h"

#include <errno.h>
#include <dirent.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FORMAT_NAME "mnrl_cuda checkpoint"
#define FORMAT_VERSION 1
#define TEMP_PREFIX ".tmp-"

// ---- names and listing ------------------------------------------------------------------------

static int root_path(const char *out_dir, char *out, size_t cap, MnrlError *err) {
    if (mnrl_path_join(out, cap, out_dir, "checkpoints") != 0) {
        return mnrl_fail(err, "output.dir: path too long: %s", out_dir);
    }
    return 0;
}

static int child_path(const char *dir, const char *name, char *out, size_t cap, MnrlError *err) {
    if (mnrl_path_join(out, cap, dir, name) != 0) return mnrl_fail(err, "%s/%s: path too long", dir, name);
    return 0;
}

// "step-" and only digits: the step; else -1 (temporary folders and anything else).
static int64_t parse_step_name(const char *name) {
    if (strncmp(name, "step-", 5) != 0 || name[5] == '\0' || strlen(name + 5) > 18) return -1;
    for (const char *p = name + 5; *p; p++)
        if (*p < '0' || *p > '9') return -1;
    return strtoll(name + 5, NULL, 10);
}

typedef struct {
    char name[256];
    int64_t step;  // -1: a temporary folder of an unfinished write
    int done;      // holds DONE
} Entry;

static int has_done(const char *root, const char *name) {
    char path[4096];
    return snprintf(path, sizeof path, "%s/%s/DONE", root, name) < (int)sizeof path && mnrl_file_exists(path);
}

// The step folders and temporary folders of root; a missing root is an empty list.
static Entry *scan(const char *root, size_t *n) {
    *n = 0;
    DIR *dir = opendir(root);
    if (!dir) return NULL;
    Entry *entries = NULL;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        int64_t step = parse_step_name(e->d_name);
        int temp = strncmp(e->d_name, TEMP_PREFIX, strlen(TEMP_PREFIX)) == 0;
        if ((step < 0 && !temp) || strlen(e->d_name) >= sizeof entries->name) continue;
        if (*n == cap) entries = mnrl_realloc(entries, (cap = cap ? 2 * cap : 16) * sizeof *entries);
        Entry *entry = &entries[(*n)++];
        snprintf(entry->name, sizeof entry->name, "%s", e->d_name);
        entry->step = step;
        entry->done = step >= 0 && has_done(root, e->d_name);
    }
    closedir(dir);
    return entries;
}

// The complete entry of the highest step, or NULL.
static const Entry *newest_complete(const Entry *entries, size_t n) {
    const Entry *best = NULL;
    for (size_t i = 0; i < n; i++)
        if (entries[i].done && (!best || entries[i].step > best->step)) best = &entries[i];
    return best;
}

int64_t checkpoint_latest_step(const char *out_dir) {
    char root[4096];
    if (root_path(out_dir, root, sizeof root, NULL) != 0) return -1;
    size_t n;
    Entry *entries = scan(root, &n);
    const Entry *newest = newest_complete(entries, n);
    int64_t step = newest ? newest->step : -1;
    free(entries);
    return step;
}

// ---- state.json ---------------------------------------------------------------------------------

static json_t *hex(uint64_t v) {
    char text[24];
    snprintf(text, sizeof text, "%016llx", (unsigned long long)v);
    return json_string(text);
}

static json_t *score(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static char *state_to_json(const CheckpointState *s) {
    json_t *o = json_object();
    json_object_set_new(o, "format", json_string(FORMAT_NAME));
    json_object_set_new(o, "format_version", json_integer(FORMAT_VERSION));
    json_object_set_new(o, "version", json_string(s->version));
    json_object_set_new(o, "step", json_integer(s->step));
    json_object_set_new(o, "total_steps", json_integer(s->total_steps));
    json_object_set_new(o, "epoch", json_integer((json_int_t)s->epoch));
    json_object_set_new(o, "epoch_batches", json_integer((json_int_t)s->epoch_batches));
    json_object_set_new(o, "epoch_seed", json_integer((json_int_t)s->epoch_seed));
    json_object_set_new(o, "sampler_rng", hex(s->sampler_rng));
    json_object_set_new(o, "seed", json_integer(s->seed));
    json_object_set_new(o, "adam_step", json_integer(s->adam_step));
    json_object_set_new(o, "bad_steps", json_integer(s->bad_steps));
    json_object_set_new(o, "rows_left_over", json_integer((json_int_t)s->rows_left_over));
    json_object_set_new(o, "data_rows", json_integer((json_int_t)s->data_rows));
    json_object_set_new(o, "data_crc", hex(s->data_crc));
    json_object_set_new(o, "tokenizer", hex(s->tokenizer));
    json_object_set_new(o, "config_hash", hex(s->config_hash));
    json_object_set_new(o, "world_size", json_integer(s->world_size));
    json_object_set_new(o, "sts_dev_before", score(s->dev_before));
    json_object_set_new(o, "sts_test_before", score(s->test_before));
    char *text = mnrl_json_dumps_exact(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    size_t len = strlen(text);  // then a final newline, as text files end
    text = mnrl_realloc(text, len + 2);
    memcpy(text + len, "\n", 2);
    return text;
}

// Readers of one state.json field: a message naming the file and the key on failure.
static int bad_field(const char *path, const char *key, const char *what, MnrlError *err) {
    return mnrl_fail(err, "%s: \"%s\" is missing or not %s; the checkpoint is damaged (resume from "
                          "another one)", path, key, what);
}

static int get_int(const json_t *o, const char *key, const char *path, int64_t *out, MnrlError *err) {
    const json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0) return bad_field(path, key, "an integer >= 0", err);
    *out = json_integer_value(v);
    return 0;
}

static int get_count(const json_t *o, const char *key, const char *path, uint64_t *out, MnrlError *err) {
    int64_t v;
    if (get_int(o, key, path, &v, err) != 0) return -1;
    *out = (uint64_t)v;
    return 0;
}

static int get_hex(const json_t *o, const char *key, const char *path, uint64_t *out, MnrlError *err) {
    const char *text = json_string_value(json_object_get(o, key));
    char *end;
    errno = 0;
    if (text) *out = strtoull(text, &end, 16);
    if (!text || errno || strlen(text) != 16 || *end) return bad_field(path, key, "16 hex digits", err);
    return 0;
}

static int get_score(const json_t *o, const char *key, const char *path, double *out, MnrlError *err) {
    const json_t *v = json_object_get(o, key);
    if (!json_is_number(v) && !json_is_null(v)) return bad_field(path, key, "a number or null", err);
    *out = json_is_null(v) ? NAN : json_number_value(v);
    return 0;
}

static int check_format(const json_t *o, const char *path, MnrlError *err) {
    const char *format = json_string_value(json_object_get(o, "format"));
    const json_t *version = json_object_get(o, "format_version");
    const char *writer = json_string_value(json_object_get(o, "version"));
    if (!format || strcmp(format, FORMAT_NAME) != 0 || !writer) {
        return mnrl_fail(err, "%s: not the state of an mnrl_cuda checkpoint", path);
    }
    if (!json_is_integer(version) || json_integer_value(version) != FORMAT_VERSION) {
        return mnrl_fail(err, "%s: checkpoint format %lld (written by mnrl_cuda %s); this mnrl_cuda %s "
                              "reads format %d: resume it with the version that wrote it",
                         path, (long long)json_integer_value(version), writer, MNRL_VERSION, FORMAT_VERSION);
    }
    return 0;
}

static int state_from_json(const json_t *o, const char *path, CheckpointState *s, MnrlError *err) {
    int64_t world;
    memset(s, 0, sizeof *s);
    if (check_format(o, path, err) != 0 || get_int(o, "step", path, &s->step, err) != 0 ||
        get_int(o, "total_steps", path, &s->total_steps, err) != 0 ||
        get_count(o, "epoch", path, &s->epoch, err) != 0 ||
        get_count(o, "epoch_batches", path, &s->epoch_batches, err) != 0 ||
        get_count(o, "epoch_seed", path, &s->epoch_seed, err) != 0 ||
        get_hex(o, "sampler_rng", path, &s->sampler_rng, err) != 0 || get_int(o, "seed", path, &s->seed, err) != 0 ||
        get_int(o, "adam_step", path, &s->adam_step, err) != 0 ||
        get_int(o, "bad_steps", path, &s->bad_steps, err) != 0 ||
        get_count(o, "rows_left_over", path, &s->rows_left_over, err) != 0 ||
        get_count(o, "data_rows", path, &s->data_rows, err) != 0 ||
        get_hex(o, "data_crc", path, &s->data_crc, err) != 0 ||
        get_hex(o, "tokenizer", path, &s->tokenizer, err) != 0 ||
        get_hex(o, "config_hash", path, &s->config_hash, err) != 0 ||
        get_int(o, "world_size", path, &world, err) != 0 ||
        get_score(o, "sts_dev_before", path, &s->dev_before, err) != 0 ||
        get_score(o, "sts_test_before", path, &s->test_before, err) != 0) {
        return -1;
    }
    if (world < 1 || world > INT_MAX || s->adam_step > s->step) {
        return mnrl_fail(err, "%s: inconsistent state (world_size %lld, adam_step %lld of %lld steps); the "
                              "checkpoint is damaged", path, (long long)world, (long long)s->adam_step,
                         (long long)s->step);
    }
    s->world_size = (int)world;
    snprintf(s->version, sizeof s->version, "%s", json_string_value(json_object_get(o, "version")));
    return 0;
}

static int read_state(const char *dir, CheckpointState *s, MnrlError *err) {
    char path[4096], *text;
    size_t len;
    if (child_path(dir, "state.json", path, sizeof path, err) != 0 || mnrl_read_file(path, &text, &len, err) != 0) {
        return -1;
    }
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    free(text);
    if (!root) return mnrl_fail(err, "%s:%d: invalid JSON: %s; the checkpoint is damaged", path, jerr.line, jerr.text);
    int rc = state_from_json(root, path, s, err);
    json_decref(root);
    return rc;
}

// ---- writing ------------------------------------------------------------------------------------

static int write_text(const char *dir, const char *name, const char *text, MnrlError *err) {
    char path[4096];
    if (child_path(dir, name, path, sizeof path, err) != 0) return -1;
    return mnrl_write_file_atomic(path, text, strlen(text), err);
}

static int write_tensors(const char *dir, const char *name, const CheckpointWrite *w, const float *buffer,
                         MnrlError *err) {
    char path[4096];
    if (child_path(dir, name, path, sizeof path, err) != 0) return -1;
    return params_save_safetensors(w->table, buffer, path, ST_F32, err);
}

// Every file but DONE into dir, then dir itself to disk.
static int write_files(const CheckpointWrite *w, const char *dir, MnrlError *err) {
    char *state = state_to_json(w->state);
    int rc = write_tensors(dir, "model.safetensors", w, w->params, err);
    if (rc == 0) rc = write_tensors(dir, "optimizer.exp_avg.safetensors", w, w->exp_avg, err);
    if (rc == 0) rc = write_tensors(dir, "optimizer.exp_avg_sq.safetensors", w, w->exp_avg_sq, err);
    if (rc == 0) rc = write_text(dir, "train_config.json", w->config_json, err);
    if (rc == 0) rc = write_text(dir, "state.json", state, err);
    free(state);
    return rc == 0 ? mnrl_fsync_dir(dir, err) : -1;
}

static int make_dir(const char *path, MnrlError *err) {
    if (mkdir(path, 0755) != 0) return mnrl_fail(err, "%s: cannot create directory: %s", path, strerror(errno));
    return 0;
}

// tmp (complete) becomes final, then DONE marks it complete. A step folder already there
// (left without DONE by a crash, or by a run this one was resumed over) is replaced.
static int publish(const char *root, const char *tmp, const char *final, int64_t step, MnrlError *err) {
    if (mnrl_remove_tree(final, err) != 0) return -1;
    if (rename(tmp, final) != 0) return mnrl_fail(err, "%s: cannot rename to %s: %s", tmp, final, strerror(errno));
    if (mnrl_fsync_dir(root, err) != 0) return -1;
    char done[64];
    snprintf(done, sizeof done, "step %lld\n", (long long)step);
    if (write_text(final, "DONE", done, err) != 0) return -1;
    return mnrl_fsync_dir(final, err);
}

static int by_step_descending(const void *a, const void *b) {
    int64_t sa = ((const Entry *)a)->step, sb = ((const Entry *)b)->step;
    return (sa < sb) - (sa > sb);
}

// Removes temporary and incomplete folders, complete ones of later steps than step (from a
// run this one was resumed over) and the complete ones beyond the newest keep.
static int prune(const char *root, int64_t step, int keep, MnrlError *err) {
    size_t n;
    Entry *entries = scan(root, &n);
    if (n > 0) qsort(entries, n, sizeof *entries, by_step_descending);
    int kept = 0, rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const Entry *e = &entries[i];
        if (e->done && e->step <= step && kept < keep) {
            kept++;
            continue;
        }
        char path[4096];
        rc = child_path(root, e->name, path, sizeof path, err);
        if (rc == 0) rc = mnrl_remove_tree(path, err);
    }
    free(entries);
    return rc == 0 ? 0 : mnrl_fail_context(err, "removing an old checkpoint (checkpoint.keep = %d)", keep);
}

int checkpoint_write(const CheckpointWrite *w, char *dir, size_t cap, MnrlError *err) {
    char root[4096], name[64], tmp[4096];
    snprintf(name, sizeof name, TEMP_PREFIX "step-%07lld", (long long)w->state->step);
    const char *final_name = name + strlen(TEMP_PREFIX);
    if (root_path(w->out_dir, root, sizeof root, err) != 0 || child_path(root, name, tmp, sizeof tmp, err) != 0 ||
        child_path(root, final_name, dir, cap, err) != 0 || mnrl_mkdir_p(root, err) != 0 ||
        mnrl_remove_tree(tmp, err) != 0 || make_dir(tmp, err) != 0) {
        return mnrl_fail_context(err, "checkpoint of step %lld not written", (long long)w->state->step);
    }
    if (write_files(w, tmp, err) != 0 || publish(root, tmp, dir, w->state->step, err) != 0) {
        MnrlError ignored;  // the first failure is the one to report
        mnrl_remove_tree(tmp, &ignored);
        if (!has_done(root, final_name)) mnrl_remove_tree(dir, &ignored);
        return mnrl_fail_context(err, "checkpoint of step %lld not written (the older checkpoints in %s are "
                                      "unchanged)", (long long)w->state->step, root);
    }
    return prune(root, w->state->step, w->keep, err);
}

// ---- finding and reading ----------------------------------------------------------------------

static int find_latest(const char *out_dir, char *dir, size_t cap, MnrlError *err) {
    char root[4096];
    if (root_path(out_dir, root, sizeof root, err) != 0) return -1;
    size_t n;
    Entry *entries = scan(root, &n);
    const Entry *newest = newest_complete(entries, n);
    int rc = newest ? child_path(root, newest->name, dir, cap, err)
                    : mnrl_fail(err, "--resume latest: %s holds no complete checkpoint (%s); a run writes one every "
                                     "checkpoint.every_steps steps, at its end and when stopped by SIGINT, SIGTERM "
                                     "or SIGUSR1; start without --resume",
                                root, n > 0 ? "only unfinished ones, without DONE" : "none at all");
    free(entries);
    return rc;
}

int checkpoint_check_complete(const char *dir, const char *instead, MnrlError *err) {
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return mnrl_fail(err, "%s: no such checkpoint folder; %s", dir, instead);
    char done[4096];
    if (child_path(dir, "DONE", done, sizeof done, err) != 0) return -1;
    if (!mnrl_file_exists(done)) {
        return mnrl_fail(err, "%s: incomplete checkpoint (no DONE file: it was being written when the run "
                              "stopped); %s", dir, instead);
    }
    return 0;
}

int checkpoint_find(const char *out_dir, const char *which, char *dir, size_t cap, MnrlError *err) {
    if (strcmp(which, "latest") == 0) return find_latest(out_dir, dir, cap, err);
    if (checkpoint_check_complete(which, "give --resume a complete folder OUT/checkpoints/step-NNNNNNN, or latest",
                                  err) != 0)
        return -1;
    if (strlen(which) >= cap) return mnrl_fail(err, "%s: path too long", which);
    snprintf(dir, cap, "%s", which);
    return 0;
}

static int read_tensors(const char *dir, const char *name, const ParamTable *table, float *buffer, MnrlError *err) {
    char path[4096];
    if (child_path(dir, name, path, sizeof path, err) != 0) return -1;
    memset(buffer, 0, table->n_floats * sizeof *buffer);
    return params_load_safetensors(table, path, buffer, err);
}

int checkpoint_read(const char *dir, const ParamTable *table, CheckpointState *state, float *params,
                    float *exp_avg, float *exp_avg_sq, MnrlError *err) {
    if (read_state(dir, state, err) != 0 || read_tensors(dir, "model.safetensors", table, params, err) != 0 ||
        read_tensors(dir, "optimizer.exp_avg.safetensors", table, exp_avg, err) != 0 ||
        read_tensors(dir, "optimizer.exp_avg_sq.safetensors", table, exp_avg_sq, err) != 0) {
        return -1;
    }
    return 0;
}

// The first differing key of the checkpoint's train_config.json, for the refusal message.
static void describe_config_change(const char *dir, const MnrlConfig *cfg, char *out, size_t cap) {
    char path[4096];
    MnrlConfig saved;
    MnrlError err;
    ConfigDifference diff;
    snprintf(out, cap, "a key that changes what training computes differs (see docs/config.md, \"hashed\")");
    if (child_path(dir, "train_config.json", path, sizeof path, &err) != 0 ||
        config_load(path, NULL, 0, &saved, &err) != 0) {
        return;
    }
    if (config_resume_difference(&saved, cfg, &diff)) {
        snprintf(out, cap, "%s is %s in the checkpoint's config but %s now%s", diff.key, diff.a, diff.b,
                 diff.count > 1 ? " (and more keys differ)" : "");
    }
    config_free(&saved);
}

int checkpoint_check_config(const char *dir, const CheckpointState *state, const MnrlConfig *cfg, int world,
                            MnrlError *err) {
    if (state->world_size != world) {
        return mnrl_fail(err, "%s: written by %d ranks, but this run has %d; resume with %d ranks (the global "
                              "batch, its split and the dropout streams depend on the world size)",
                         dir, state->world_size, world, state->world_size);
    }
    if (state->config_hash != config_resume_hash(cfg)) {
        char change[1024];
        describe_config_change(dir, cfg, change, sizeof change);
        return mnrl_fail(err, "%s: written with another config: %s; resume with the config that wrote it "
                              "(only train.epochs and train.max_steps, evaluation, logging, checkpoint, output "
                              "and path keys may change), or start a new run without --resume",
                         dir, change);
    }
    return 0;
}

int checkpoint_in_run(const char *dir, const char *out_dir) {
    // The same folder, however the paths are spelled: compared by device and inode.
    char root[4096], parent[4096];
    struct stat a, b;
    return root_path(out_dir, root, sizeof root, NULL) == 0 &&
           mnrl_path_join(parent, sizeof parent, dir, "..") == 0 && stat(root, &a) == 0 && stat(parent, &b) == 0 &&
           a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}
