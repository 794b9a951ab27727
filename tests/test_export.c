// test_export.c — the sentence-transformers output folder. References
// (tests/reference/make_export_goldens.py): the JSON files sentence-transformers 5.1.2's
// own save() writes for the tiny BertModel (tests/data/modelfiles/tiny_f32) as
// Transformer(max_seq_length 24) + mean Pooling, and the tokenizer files transformers
// wrote for it. The same script's `check` mode loads a folder this test leaves behind
// (MNRL_EXPORT_KEEP=DIR) in sentence-transformers and compares embeddings (run by hand).
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "mnrl/config.h"
#include "mnrl/export.h"
#include "mnrl/params.h"
#include "test.h"

#define BASE MNRL_TEST_DATA_DIR "/export/base"
#define GOLDEN MNRL_TEST_DATA_DIR "/export/st_saved"
#define TINY MNRL_TEST_DATA_DIR "/modelfiles/tiny_f32"

static char scratch[256];  // this run's temporary folder

// scratch/name in a ring of 8 buffers: a result stays valid for the next 7 calls.
static const char *in_scratch(const char *name) {
    static char paths[8][512];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s", scratch, name);
    return p;
}

static char *slurp(const char *path, size_t *len) {
    char *data = NULL;
    MnrlError err;
    if (mnrl_read_file(path, &data, len, &err) != 0) return NULL;
    return data;
}

static int same_bytes(const char *a, const char *b) {
    size_t la = 0, lb = 0;
    char *da = slurp(a, &la), *db = slurp(b, &lb);
    int same = da && db && la == lb && memcmp(da, db, la) == 0;
    free(da);
    free(db);
    return same;
}

static json_t *load_json(const char *path) {
    json_error_t jerr;
    json_t *v = json_load_file(path, 0, &jerr);
    CHECK_MSG(v != NULL, "%s: %s", path, jerr.text);
    return v;
}

// Key by key, in ST's order, with __version__ only checked for presence (the numbers name
// different writers): ours must hold sentence_transformers (the layout) and mnrl_cuda.
static void check_st_file(const char *dir, const char *name) {
    char golden_path[512], ours_path[512];
    snprintf(golden_path, sizeof golden_path, "%s/%s", GOLDEN, name);
    snprintf(ours_path, sizeof ours_path, "%s/%s", dir, name);
    json_t *golden = load_json(golden_path), *ours = load_json(ours_path);
    if (!golden || !ours) goto done;
    json_t *version = json_object_get(ours, "__version__");
    if (json_object_get(golden, "__version__")) {
        CHECK_MSG(json_is_object(version), "%s: __version__", name);
        CHECK_STR(json_string_value(json_object_get(version, "sentence_transformers")), EXPORT_ST_LAYOUT_VERSION);
        CHECK_STR(json_string_value(json_object_get(version, "mnrl_cuda")), MNRL_VERSION);
        json_object_del(golden, "__version__");
        json_object_del(ours, "__version__");
    }
    CHECK_MSG(json_equal(golden, ours), "%s differs from sentence-transformers' save()", name);
    char *a = json_dumps(golden, JSON_COMPACT), *b = json_dumps(ours, JSON_COMPACT);
    CHECK_STR(b, a);  // same keys in the same order
    free(a);
    free(b);
done:
    json_decref(golden);
    json_decref(ours);
}

// Our config.json: the base's, with architectures ["BertModel"] and every key in place.
static void check_model_config(const char *dir, const char *base_config) {
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *base = load_json(base_config), *ours = load_json(path);
    if (!base || !ours) goto done;
    json_t *arch = json_object_get(ours, "architectures");
    CHECK(json_is_array(arch) && json_array_size(arch) == 1);
    CHECK_STR(json_string_value(json_array_get(arch, 0)), "BertModel");
    json_object_set_new(base, "architectures", json_pack("[s]", "BertModel"));
    CHECK_MSG(json_equal(base, ours), "%s: a key of the base config.json changed", path);
    char *a = json_dumps(base, JSON_COMPACT), *b = json_dumps(ours, JSON_COMPACT);
    CHECK_STR(b, a);  // order kept; architectures in place or appended
    free(a);
    free(b);
    // Numbers print as written (no 0.10000000000000001).
    size_t len;
    char *text = slurp(path, &len);
    CHECK_CONTAINS(text, "\"layer_norm_eps\": 1e-12");
    CHECK_CONTAINS(text, "\"hidden_dropout_prob\": 0.1,");
    free(text);
done:
    json_decref(base);
    json_decref(ours);
}

static int count_staging_entries(const char *out_dir) {
    DIR *d = opendir(out_dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) n += strncmp(e->d_name, "final.", 6) == 0;
    closedir(d);
    return n;
}

static void copy_base(const char *dst, const char *skip) {
    const char *files[] = {"config.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json"};
    MnrlError err;
    CHECK(mnrl_mkdir_p(dst, &err) == 0);
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        if (skip && strstr(skip, files[i])) continue;
        char src[512], to[512];
        snprintf(src, sizeof src, "%s/%s", BASE, files[i]);
        snprintf(to, sizeof to, "%s/%s", dst, files[i]);
        size_t len;
        char *data = slurp(src, &len);
        CHECK(data && mnrl_write_file_atomic(to, data, len, &err) == 0);
        free(data);
    }
}

typedef struct {
    MnrlConfig config;
    ParamTable table;
    float *params;
    ExportScores scores;
    ExportInfo info;
} Fixture;

static int fixture_init(Fixture *fx, const char *out_dir) {
    memset(fx, 0, sizeof *fx);
    MnrlError err = {{0}};
    const char *json = "{\"model\": {\"path\": \"" BASE "\", \"max_seq_length\": 24},"
                       " \"data\": {\"train\": \"" MNRL_SOURCE_DIR "/data/snli_dev_test.tsv.gz\", \"recipe\": \"pairs\", \"split\": \"dev\"},"
                       " \"train\": {\"batch_size\": 64, \"lr\": 3e-5, \"seed\": 7}, \"loss\": {\"scale\": 20}}";
    int rc = config_from_string("(test)", json, NULL, 0, &fx->config, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    rc = rc == 0 ? params_load_model_dir(TINY, &fx->table, &fx->params, &err) : -1;
    CHECK_MSG(rc == 0, "%s", err.msg);
    fx->scores = (ExportScores){.dev_before = 61.25, .dev_after = 84.125, .test_before = NAN, .test_after = 80.5};
    fx->info = (ExportInfo){.out_dir = out_dir, .base_model_dir = BASE, .config = &fx->config, .train_rows = 123456,
                            .steps = 1929, .scores = &fx->scores, .command_line = "./mnrl_cuda configs/test.json --set train.lr=3e-5"};
    return rc;
}

static void fixture_free(Fixture *fx) {
    free(fx->params);
    params_table_free(&fx->table);
    config_free(&fx->config);
}

static void check_folder(Fixture *fx) {
    const char *out_dir = getenv("MNRL_EXPORT_KEEP") ? getenv("MNRL_EXPORT_KEEP") : in_scratch("run");
    fx->info.out_dir = out_dir;
    MnrlError err = {{0}};
    int rc = export_model(&fx->info, &fx->table, fx->params, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc != 0) return;
    char dir[512], path[1024], base_path[1024];
    snprintf(dir, sizeof dir, "%s/final", out_dir);
    const char *st_files[] = {"modules.json", "sentence_bert_config.json", "1_Pooling/config.json",
                              "config_sentence_transformers.json"};
    for (size_t i = 0; i < 4; i++) check_st_file(dir, st_files[i]);
    check_model_config(dir, BASE "/config.json");
    const char *tokenizer_files[] = {"vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, tokenizer_files[i]);
        snprintf(base_path, sizeof base_path, "%s/%s", BASE, tokenizer_files[i]);
        CHECK_MSG(same_bytes(path, base_path), "%s is not a byte copy", tokenizer_files[i]);
    }
    // The weights load back bit for bit through the reader every other module uses.
    float *back = params_alloc(&fx->table);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    rc = params_load_safetensors(&fx->table, path, back, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    CHECK(memcmp(back, fx->params, fx->table.n_floats * sizeof(float)) == 0);
    free(back);
    snprintf(path, sizeof path, "%s/README.md", dir);
    size_t len;
    char *card = slurp(path, &len);
    const char *expected[] = {"library_name: sentence-transformers", "MultipleNegativesRankingLoss (scale 20,",
                              "`" BASE "`", "123,456 rows", "recipe `pairs`, split `dev`", "| dev | 61.25 | 84.12 |",
                              "| test | — | 80.50 |", "| batch size (global, in-batch negatives) | 64 |",
                              "| learning rate | 3e-05 |", "| steps trained | 1929 |", "| max_seq_length | 24 |",
                              "| seed | 7 |", "--set train.lr=3e-5", "SentenceTransformer(\"path/to/this/folder\")",
                              "32-dimensional"};
    for (size_t i = 0; i < sizeof expected / sizeof *expected; i++) CHECK_CONTAINS(card, expected[i]);
    free(card);
    CHECK_EQ_INT(count_staging_entries(out_dir), 0);
}

// A base folder whose config.json names another architecture or none: ours says BertModel.
static void check_architectures(Fixture *fx) {
    const char *variants[] = {"[\"BertForMaskedLM\"]", NULL};
    for (int v = 0; v < 2; v++) {
        const char *base = in_scratch(v ? "base_no_arch" : "base_mlm");
        copy_base(base, NULL);
        char path[512];
        snprintf(path, sizeof path, "%s/config.json", base);
        json_t *cfg = load_json(BASE "/config.json");
        if (variants[v]) json_object_set_new(cfg, "architectures", json_pack("[s]", "BertForMaskedLM"));
        else json_object_del(cfg, "architectures");
        CHECK(json_dump_file(cfg, path, JSON_INDENT(2)) == 0);
        json_decref(cfg);
        ExportInfo info = fx->info;
        info.base_model_dir = base;
        info.out_dir = in_scratch(v ? "out_no_arch" : "out_mlm");
        MnrlError err = {{0}};
        CHECK_MSG(export_model(&info, &fx->table, fx->params, &err) == 0, "%s", err.msg);
        snprintf(path, sizeof path, "%s/final", info.out_dir);
        char base_config[512];
        snprintf(base_config, sizeof base_config, "%s/config.json", base);
        check_model_config(path, base_config);
    }
}

// Optional tokenizer files may be absent; vocab.txt may not.
static void check_optional_files(Fixture *fx) {
    const char *base = in_scratch("base_minimal");
    copy_base(base, "tokenizer.json special_tokens_map.json");
    ExportInfo info = fx->info;
    info.base_model_dir = base;
    info.out_dir = in_scratch("out_minimal");
    MnrlError err = {{0}};
    CHECK_MSG(export_model(&info, &fx->table, fx->params, &err) == 0, "%s", err.msg);
    CHECK(mnrl_file_exists(in_scratch("out_minimal/final/vocab.txt")));
    CHECK(mnrl_file_exists(in_scratch("out_minimal/final/tokenizer_config.json")));
    CHECK(!mnrl_file_exists(in_scratch("out_minimal/final/tokenizer.json")));
    CHECK(!mnrl_file_exists(in_scratch("out_minimal/final/special_tokens_map.json")));
}

// A stale OUT/final is replaced whole; a failure leaves the previous folder as it was.
static void check_replace(Fixture *fx) {
    MnrlError err = {{0}};
    char out[512];
    snprintf(out, sizeof out, "%s", in_scratch("out_replace"));
    CHECK(mnrl_mkdir_p(in_scratch("out_replace/final/1_Pooling"), &err) == 0);
    CHECK(mnrl_write_file_atomic(in_scratch("out_replace/final/stale.txt"), "old", 3, &err) == 0);
    CHECK(mnrl_write_file_atomic(in_scratch("out_replace/final/modules.json"), "[]", 2, &err) == 0);
    ExportInfo info = fx->info;
    info.out_dir = out;
    CHECK_MSG(export_model(&info, &fx->table, fx->params, &err) == 0, "%s", err.msg);
    CHECK(!mnrl_file_exists(in_scratch("out_replace/final/stale.txt")));
    check_st_file(in_scratch("out_replace/final"), "modules.json");
    CHECK_EQ_INT(count_staging_entries(out), 0);

    // Half way: model.safetensors and config.json are written before vocab.txt is missed.
    size_t len_before, len_after;
    char *card_before = slurp(in_scratch("out_replace/final/README.md"), &len_before);
    const char *broken = in_scratch("base_no_vocab");
    copy_base(broken, "vocab.txt");
    info.base_model_dir = broken;
    info.scores = NULL;  // the card would change if this export got through
    CHECK(export_model(&info, &fx->table, fx->params, &err) != 0);
    CHECK_CONTAINS(err.msg, "exporting ");
    CHECK_CONTAINS(err.msg, "vocab.txt: cannot open");
    char *card_after = slurp(in_scratch("out_replace/final/README.md"), &len_after);
    CHECK(card_before && card_after && len_before == len_after && memcmp(card_before, card_after, len_after) == 0);
    free(card_before);
    free(card_after);
    CHECK(mnrl_file_exists(in_scratch("out_replace/final/model.safetensors")));
    CHECK_EQ_INT(count_staging_entries(out), 0);

    // An output path that cannot be a folder (a file is in the way).
    CHECK(mnrl_write_file_atomic(in_scratch("a_file"), "x", 1, &err) == 0);
    info = fx->info;
    info.out_dir = in_scratch("a_file/run");
    CHECK(export_model(&info, &fx->table, fx->params, &err) != 0);
    CHECK_CONTAINS(err.msg, "a_file");
}

static void check_refusals(Fixture *fx) {
    MnrlError err = {{0}};
    ExportInfo info = fx->info;
    info.out_dir = in_scratch("out_refused");
    fx->config.model.max_seq_length = 41;  // the tiny model has 40 positions
    CHECK(export_model(&info, &fx->table, fx->params, &err) != 0);
    CHECK_CONTAINS(err.msg, "model.max_seq_length 41 does not fit the model's 40 positions");
    fx->config.model.max_seq_length = 24;

    BertConfig other = fx->table.config;
    other.hidden_size = 64;
    ParamTable wrong;
    params_table_build(&wrong, &other);
    float *zeros = params_alloc(&wrong);
    CHECK(export_model(&info, &wrong, zeros, &err) != 0);
    CHECK_CONTAINS(err.msg, "hidden_size is 32 but the trained model has 64");
    free(zeros);
    params_table_free(&wrong);
    CHECK(!mnrl_file_exists(in_scratch("out_refused/final")));
}

int main(void) {
    snprintf(scratch, sizeof scratch, "/tmp/mnrl_test_export_XXXXXX");
    if (!mkdtemp(scratch)) SKIP("cannot create a temporary folder");
    Fixture fx;
    if (fixture_init(&fx, NULL) == 0) {
        check_folder(&fx);
        check_architectures(&fx);
        check_optional_files(&fx);
        check_replace(&fx);
        check_refusals(&fx);
    }
    fixture_free(&fx);
    MnrlError err;
    CHECK(mnrl_remove_tree(scratch, &err) == 0);
    TEST_END();
}
