// test_params.c — config.json loading, the parameter table and HF model folders.
// References (tests/reference/make_model_file_goldens.py): HF BertConfig defaults, tiny
// seeded BertModels saved by transformers / safetensors in F32, BF16 (bert. prefix,
// pooler, cls heads, position_ids) and F16 (gamma/beta), their per-tensor values from
// torch, torch's parameter count, the ST/HF no-decay rule, and the bytes the Python
// library writes for the same parameters.
#include <jansson.h>
#include <stdint.h>
#include <unistd.h>
#include <zlib.h>

#include "mnrl/bert_config.h"
#include "mnrl/params.h"
#include "test.h"
#include "params_golden.h"

#define DIR MNRL_TEST_DATA_DIR "/modelfiles"

static void check_config_defaults(void) {
    json_error_t jerr;
    json_t *golden = json_load_file(DIR "/bert_config_defaults.json", 0, &jerr);
    CHECK_MSG(golden != NULL, "%s", jerr.text);
    if (!golden) return;
    BertConfig c;
    MnrlError err = {{0}};
    CHECK(bert_config_parse("{}", 2, "empty.json", &c, &err) == 0);
    const struct {
        const char *key;
        double value;
    } numbers[] = {
        {"vocab_size", c.vocab_size},
        {"hidden_size", c.hidden_size},
        {"num_hidden_layers", c.num_hidden_layers},
        {"num_attention_heads", c.num_attention_heads},
        {"intermediate_size", c.intermediate_size},
        {"hidden_dropout_prob", c.hidden_dropout_prob},
        {"attention_probs_dropout_prob", c.attention_probs_dropout_prob},
        {"max_position_embeddings", c.max_position_embeddings},
        {"type_vocab_size", c.type_vocab_size},
        {"layer_norm_eps", c.layer_norm_eps},
        {"pad_token_id", c.pad_token_id},
    };
    for (size_t i = 0; i < sizeof numbers / sizeof *numbers; i++) {
        json_t *v = json_object_get(golden, numbers[i].key);
        CHECK_MSG(json_is_number(v) && json_number_value(v) == numbers[i].value, "%s", numbers[i].key);
    }
    CHECK_STR(c.hidden_act, json_string_value(json_object_get(golden, "hidden_act")));
    // Older transformers list it; 5.x dropped the key (absolute is all BertModel does).
    json_t *position = json_object_get(golden, "position_embedding_type");
    CHECK_STR(c.position_embedding_type, position ? json_string_value(position) : "absolute");
    json_decref(golden);
}

static void check_config_file(void) {
    BertConfig c;
    MnrlError err = {{0}};
    int rc = bert_config_load(DIR "/tiny_f32/config.json", &c, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    // The numbers the reference script gave transformers' BertConfig.
    CHECK_EQ_INT(c.vocab_size, 100);
    CHECK_EQ_INT(c.hidden_size, 32);
    CHECK_EQ_INT(c.num_hidden_layers, 2);
    CHECK_EQ_INT(c.num_attention_heads, 4);
    CHECK_EQ_INT(c.intermediate_size, 64);
    CHECK_EQ_INT(c.max_position_embeddings, 40);
    CHECK(c.layer_norm_eps == 1e-12);
    CHECK(bert_config_load(DIR "/missing/config.json", &c, &err) == -1);
    CHECK_CONTAINS(err.msg, "missing/config.json: cannot open");
}

static void expect_config_error(const char *json, const char *needle) {
    BertConfig c;
    MnrlError err = {{0}};
    CHECK_MSG(bert_config_parse(json, strlen(json), "m/config.json", &c, &err) == -1, "accepted %s", json);
    CHECK_CONTAINS(err.msg, "m/config.json");
    CHECK_CONTAINS(err.msg, needle);
}

static void check_config_refusals(void) {
    expect_config_error("{\"model_type\": \"roberta\"}", "model_type \"roberta\" is not supported; supported: \"bert\"");
    expect_config_error("{\"hidden_act\": \"gelu_new\"}", "hidden_act \"gelu_new\" is not supported");
    expect_config_error("{\"hidden_act\": \"gelu_new\"}", "tanh approximation");
    expect_config_error("{\"hidden_act\": \"relu\"}", "a different activation function");
    expect_config_error("{\"position_embedding_type\": \"relative_key\"}",
                        "position_embedding_type \"relative_key\" is not supported");
    expect_config_error("{\"hidden_size\": 30, \"num_attention_heads\": 4}",
                        "hidden_size 30 is not divisible by num_attention_heads 4");
    expect_config_error("{\"hidden_size\": \"64\"}", "hidden_size: expected a positive integer, got \"64\"");
    expect_config_error("{\"num_hidden_layers\": 0}", "num_hidden_layers: expected a positive integer, got 0");
    expect_config_error("{\"vocab_size\": -5}", "vocab_size: expected a positive integer, got -5");
    expect_config_error("{\"intermediate_size\": 1.5}", "intermediate_size: expected a positive integer, got 1.5");
    expect_config_error("{\"pad_token_id\": -1}", "pad_token_id: expected a non-negative integer, got -1");
    expect_config_error("{\"vocab_size\": 100, \"pad_token_id\": 100}", "pad_token_id 100 is outside the vocabulary");
    expect_config_error("{\"hidden_dropout_prob\": 1.5}", "hidden_dropout_prob: expected a number in [0, 1), got 1.5");
    expect_config_error("{\"layer_norm_eps\": 0}", "layer_norm_eps: expected a number in");
    expect_config_error("{\"hidden_act\": 3}", "hidden_act: expected a short string, got 3");
    expect_config_error("[1]", "expected a JSON object");
    expect_config_error("{\"hidden_size\": 64,", "invalid JSON");
}

static BertConfig tiny_config(void) {
    BertConfig c;
    MnrlError err = {{0}};
    CHECK(bert_config_load(DIR "/tiny_f32/config.json", &c, &err) == 0);
    return c;
}

// Layout rules of params.h, checked on the table alone.
static void check_table_layout(void) {
    BertConfig c = tiny_config();
    ParamTable t;
    params_table_build(&t, &c);
    size_t h = (size_t)c.hidden_size;
    CHECK_EQ_INT(t.n_tensors, 5 + 16 * c.num_hidden_layers);
    CHECK_EQ_INT(t.n_params, golden_n_params(DIR "/tiny_resaved.txt"));  // torch's count
    CHECK_EQ_INT(t.n_floats % PARAMS_ALIGN_FLOATS, 0);
    for (size_t i = 0; i < t.n_tensors; i++) {
        const ParamTensor *p = &t.tensors[i];
        bool packed = strstr(p->name, ".key.") || strstr(p->name, ".value.");
        CHECK_MSG(packed || p->offset % PARAMS_ALIGN_FLOATS == 0, "%s at %zu", p->name, p->offset);
        if (i > 0) CHECK(p->offset >= t.tensors[i - 1].offset + t.tensors[i - 1].numel);
        CHECK(p->offset + p->numel <= t.n_floats);
        CHECK(params_find(&t, p->name) == p);
    }
    CHECK(params_find(&t, "pooler.dense.weight") == NULL);
    CHECK(t.word_emb == params_find(&t, "embeddings.word_embeddings.weight")->offset);
    CHECK(t.pos_emb == params_find(&t, "embeddings.position_embeddings.weight")->offset);
    CHECK(t.type_emb == params_find(&t, "embeddings.token_type_embeddings.weight")->offset);
    CHECK(t.emb_ln_w == params_find(&t, "embeddings.LayerNorm.weight")->offset);
    CHECK(t.emb_ln_b == params_find(&t, "embeddings.LayerNorm.bias")->offset);
    for (int l = 0; l < c.num_hidden_layers; l++) {
        const ParamLayer *layer = &t.layers[l];
        const struct {
            size_t offset;
            const char *suffix;
        } named[] = {
            {layer->qkv_w, "attention.self.query.weight"},
            {layer->qkv_w + h * h, "attention.self.key.weight"},
            {layer->qkv_w + 2 * h * h, "attention.self.value.weight"},
            {layer->qkv_b, "attention.self.query.bias"},
            {layer->qkv_b + h, "attention.self.key.bias"},
            {layer->qkv_b + 2 * h, "attention.self.value.bias"},
            {layer->attn_out_w, "attention.output.dense.weight"},
            {layer->attn_out_b, "attention.output.dense.bias"},
            {layer->attn_ln_w, "attention.output.LayerNorm.weight"},
            {layer->attn_ln_b, "attention.output.LayerNorm.bias"},
            {layer->ffn_in_w, "intermediate.dense.weight"},
            {layer->ffn_in_b, "intermediate.dense.bias"},
            {layer->ffn_out_w, "output.dense.weight"},
            {layer->ffn_out_b, "output.dense.bias"},
            {layer->ffn_ln_w, "output.LayerNorm.weight"},
            {layer->ffn_ln_b, "output.LayerNorm.bias"},
        };
        for (size_t k = 0; k < sizeof named / sizeof *named; k++) {
            char name[128];
            snprintf(name, sizeof name, "encoder.layer.%d.%s", l, named[k].suffix);
            const ParamTensor *p = params_find(&t, name);
            CHECK_MSG(p && p->offset == named[k].offset, "%s", name);
        }
        CHECK(layer->qkv_w % PARAMS_ALIGN_FLOATS == 0 && layer->qkv_b % PARAMS_ALIGN_FLOATS == 0);
    }
    float *buffer = params_alloc(&t);
    CHECK((uintptr_t)buffer % 64 == 0);
    free(buffer);
    params_table_free(&t);
}

static void load_folder(const char *name, const char *golden) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", DIR, name);
    ParamTable t;
    float *buffer = NULL;
    MnrlError err = {{0}};
    int rc = params_load_model_dir(dir, &t, &buffer, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc != 0) return;
    CHECK_EQ_INT(check_against_golden(&t, buffer, golden), 37);
    // Padding between tensors stays zero.
    size_t nonzero_padding = 0, next = 0;
    for (size_t i = 0; i <= t.n_tensors; i++) {
        size_t end = i < t.n_tensors ? t.tensors[i].offset : t.n_floats;
        for (size_t k = next; k < end; k++) nonzero_padding += buffer[k] != 0;
        if (i < t.n_tensors) next = t.tensors[i].offset + t.tensors[i].numel;
    }
    CHECK_EQ_INT(nonzero_padding, 0);
    free(buffer);
    params_table_free(&t);
}

// Length and CRC-32 of a file, to compare with what the Python library wrote.
static int file_crc(const char *path, size_t *len, unsigned long *crc) {
    char *data;
    MnrlError err;
    if (mnrl_read_file(path, &data, len, &err) != 0) return -1;
    *crc = crc32(0L, (const Bytef *)data, (uInt)*len);
    free(data);
    return 0;
}

static void check_save(void) {
    ParamTable t;
    float *buffer = NULL;
    MnrlError err = {{0}};
    if (params_load_model_dir(DIR "/tiny_f32", &t, &buffer, &err) != 0) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    char path[64];
    snprintf(path, sizeof path, "test_params.%ld.safetensors", (long)getpid());
    FILE *golden = fopen(DIR "/tiny_resaved.txt", "r");
    CHECK(golden != NULL);
    char line[256];
    int compared = 0;
    while (golden && fgets(line, sizeof line, golden)) {
        char dtype[16];
        size_t want_len, len = 0;
        unsigned long want_crc, crc = 0;
        if (sscanf(line, "%15s %zu %lu", dtype, &want_len, &want_crc) != 3 || strcmp(dtype, "n_params") == 0) continue;
        SafetensorsDtype d = strcmp(dtype, "BF16") == 0 ? ST_BF16 : ST_F32;
        int rc = params_save_safetensors(&t, buffer, path, d, &err);
        CHECK_MSG(rc == 0, "%s", err.msg);
        CHECK(file_crc(path, &len, &crc) == 0);
        CHECK_MSG(len == want_len && crc == want_crc, "%s: %zu bytes crc %lu; Python wrote %zu bytes crc %lu", dtype,
                  len, crc, want_len, want_crc);
        compared++;
    }
    if (golden) fclose(golden);
    CHECK_EQ_INT(compared, 2);
    // Our F32 file loads back into the same buffer, bit for bit.
    CHECK(params_save_safetensors(&t, buffer, path, ST_F32, &err) == 0);
    float *again = params_alloc(&t);
    CHECK(params_load_safetensors(&t, path, again, &err) == 0);
    CHECK(memcmp(again, buffer, t.n_floats * sizeof(float)) == 0);
    free(again);
    unlink(path);
    free(buffer);
    params_table_free(&t);
}

static void expect_folder_error(const char *name, const char *needle) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/broken/%s", DIR, name);
    ParamTable t;
    float *buffer = NULL;
    MnrlError err = {{0}};
    CHECK_MSG(params_load_model_dir(dir, &t, &buffer, &err) == -1, "%s loaded", name);
    CHECK(buffer == NULL);
    CHECK_CONTAINS(err.msg, dir);
    CHECK_CONTAINS(err.msg, needle);
}

static void check_broken_folders(void) {
    ParamTable t;
    float *buffer = NULL;
    MnrlError err = {{0}};
    int rc = params_load_model_dir(DIR "/broken/model_ok", &t, &buffer, &err);
    CHECK_MSG(rc == 0, "the control folder fails: %s", err.msg);
    if (rc == 0) {
        // A transposed-looking matrix: both shapes are named.
        float zeros[40] = {0};
        SafetensorsWriteTensor narrow = {.name = "bert.embeddings.word_embeddings.weight", .dtype = ST_F32,
                                         .ndim = 2, .shape = {10, 4}, .data = zeros};
        char path[64];
        snprintf(path, sizeof path, "test_params.%ld.shape.safetensors", (long)getpid());
        CHECK(safetensors_write(path, &narrow, 1, NULL, NULL, 0, &err) == 0);
        CHECK(params_load_safetensors(&t, path, buffer, &err) == -1);
        CHECK_CONTAINS(err.msg, "tensor \"bert.embeddings.word_embeddings.weight\": expected shape [10, 8] (from "
                                "config.json), found [10, 4]");
        unlink(path);
        free(buffer);
        params_table_free(&t);
    }
    expect_folder_error("model_missing", "missing tensor \"encoder.layer.0.output.dense.bias\" (shape [8])");
    expect_folder_error("model_unexpected", "unexpected tensor \"encoder.layer.1.output.dense.bias\"");
    expect_folder_error("model_duplicate", "both hold \"embeddings.LayerNorm.weight\"");
    expect_folder_error("model_int_weight", "\"embeddings.token_type_embeddings.weight\" has dtype I32");
    // The file's tensors are checked in name order: the bias comes before the weight.
    expect_folder_error("model_shape", "tensor \"encoder.layer.0.intermediate.dense.bias\": expected shape [20] "
                                       "(from config.json), found [16]");
    expect_folder_error("model_bin_only", "has only pytorch_model.bin");
    expect_folder_error("model_bin_only", "save_pretrained");
    expect_folder_error("no_such_model", "no config.json");
}

int main(void) {
    check_config_defaults();
    check_config_file();
    check_config_refusals();
    check_table_layout();
    load_folder("tiny_f32", DIR "/tiny_f32.golden.txt");
    load_folder("tiny_bf16", DIR "/tiny_bf16.golden.txt");
    load_folder("tiny_f16_gamma", DIR "/tiny_f16_gamma.golden.txt");
    check_save();
    check_broken_folders();
    TEST_END();
}
