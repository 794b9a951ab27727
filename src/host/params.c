// params.c — the BERT parameter table (layout in params.h) and HF model-folder loading
// and saving through safetensors.
#include "mnrl/params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TENSORS_PER_LAYER 16

static size_t align_up(size_t n) { return (n + PARAMS_ALIGN_FLOATS - 1) / PARAMS_ALIGN_FLOATS * PARAMS_ALIGN_FLOATS; }

// Appends a tensor; packed = true places it right after the previous one (the key and
// value parts of the fused QKV blocks), otherwise at the next aligned offset.
static size_t add_tensor(ParamTable *t, const char *name, int64_t rows, int64_t cols, bool decay, bool packed) {
    ParamTensor *p = &t->tensors[t->n_tensors++];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = cols > 0 ? 2 : 1;
    p->shape[0] = rows;
    p->shape[1] = cols > 0 ? cols : 0;
    p->numel = (size_t)rows * (size_t)(cols > 0 ? cols : 1);
    p->offset = packed ? t->n_floats : align_up(t->n_floats);
    p->decay = decay;
    t->n_floats = p->offset + p->numel;
    t->n_params += p->numel;
    return p->offset;
}

// A weight matrix [rows, cols] (decayed) and its bias [rows] (not decayed).
static size_t add_linear(ParamTable *t, const char *prefix, int64_t rows, int64_t cols, size_t *bias) {
    char name[PARAMS_NAME_MAX];
    snprintf(name, sizeof name, "%s.weight", prefix);
    size_t weight = add_tensor(t, name, rows, cols, true, false);
    snprintf(name, sizeof name, "%s.bias", prefix);
    *bias = add_tensor(t, name, rows, 0, false, false);
    return weight;
}

static size_t add_layer_norm(ParamTable *t, const char *prefix, int64_t hidden, size_t *bias) {
    char name[PARAMS_NAME_MAX];
    snprintf(name, sizeof name, "%s.LayerNorm.weight", prefix);
    size_t weight = add_tensor(t, name, hidden, 0, false, false);
    snprintf(name, sizeof name, "%s.LayerNorm.bias", prefix);
    *bias = add_tensor(t, name, hidden, 0, false, false);
    return weight;
}

static void add_qkv(ParamTable *t, const char *prefix, int64_t hidden, ParamLayer *layer) {
    static const char *const parts[3] = {"query", "key", "value"};
    char name[PARAMS_NAME_MAX];
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "%s.attention.self.%s.weight", prefix, parts[i]);
        size_t offset = add_tensor(t, name, hidden, hidden, true, i > 0);
        if (i == 0) layer->qkv_w = offset;
    }
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "%s.attention.self.%s.bias", prefix, parts[i]);
        size_t offset = add_tensor(t, name, hidden, 0, false, i > 0);
        if (i == 0) layer->qkv_b = offset;
    }
}

void params_table_build(ParamTable *t, const BertConfig *c) {
    memset(t, 0, sizeof *t);
    t->config = *c;
    int64_t hidden = c->hidden_size, inner = c->intermediate_size;
    t->tensors = mnrl_calloc(5 + (size_t)TENSORS_PER_LAYER * (size_t)c->num_hidden_layers, sizeof *t->tensors);
    t->layers = mnrl_calloc((size_t)c->num_hidden_layers, sizeof *t->layers);
    t->word_emb = add_tensor(t, "embeddings.word_embeddings.weight", c->vocab_size, hidden, true, false);
    t->pos_emb = add_tensor(t, "embeddings.position_embeddings.weight", c->max_position_embeddings, hidden, true, false);
    t->type_emb = add_tensor(t, "embeddings.token_type_embeddings.weight", c->type_vocab_size, hidden, true, false);
    t->emb_ln_w = add_layer_norm(t, "embeddings", hidden, &t->emb_ln_b);
    for (int l = 0; l < c->num_hidden_layers; l++) {
        ParamLayer *layer = &t->layers[l];
        char prefix[32], sub[PARAMS_NAME_MAX];
        snprintf(prefix, sizeof prefix, "encoder.layer.%d", l);
        add_qkv(t, prefix, hidden, layer);
        snprintf(sub, sizeof sub, "%s.attention.output.dense", prefix);
        layer->attn_out_w = add_linear(t, sub, hidden, hidden, &layer->attn_out_b);
        snprintf(sub, sizeof sub, "%s.attention.output", prefix);
        layer->attn_ln_w = add_layer_norm(t, sub, hidden, &layer->attn_ln_b);
        snprintf(sub, sizeof sub, "%s.intermediate.dense", prefix);
        layer->ffn_in_w = add_linear(t, sub, inner, hidden, &layer->ffn_in_b);
        snprintf(sub, sizeof sub, "%s.output.dense", prefix);
        layer->ffn_out_w = add_linear(t, sub, hidden, inner, &layer->ffn_out_b);
        snprintf(sub, sizeof sub, "%s.output", prefix);
        layer->ffn_ln_w = add_layer_norm(t, sub, hidden, &layer->ffn_ln_b);
    }
    t->n_floats = align_up(t->n_floats);
}

void params_table_free(ParamTable *t) {
    free(t->tensors);
    free(t->layers);
    memset(t, 0, sizeof *t);
}

const ParamTensor *params_find(const ParamTable *t, const char *name) {
    for (size_t i = 0; i < t->n_tensors; i++)
        if (strcmp(t->tensors[i].name, name) == 0) return &t->tensors[i];
    return NULL;
}

float *params_alloc(const ParamTable *t) { return mnrl_aligned_calloc(64, t->n_floats * sizeof(float)); }

// ---- loading ----------------------------------------------------------------------------

static bool starts_with(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

// Maps a file's tensor name to our table's name: drops "bert.", renames the old
// TF-converted LayerNorm.gamma/beta. Returns false for tensors a BertModel does not use
// (pre-training heads, the pooler, the position_ids buffer).
static bool canonical_name(const char *file_name, char *out, size_t cap) {
    const char *name = starts_with(file_name, "bert.") ? file_name + 5 : file_name;
    if (starts_with(name, "pooler.") || starts_with(name, "cls.") || ends_with(name, "position_ids")) return false;
    snprintf(out, cap, "%s", name);
    size_t n = strlen(out);
    if (ends_with(out, "LayerNorm.gamma")) snprintf(out + n - 5, cap - (n - 5), "weight");
    else if (ends_with(out, "LayerNorm.beta")) snprintf(out + n - 4, cap - (n - 4), "bias");
    return true;
}

static int load_tensor(const ParamTable *t, const SafetensorsFile *file, const SafetensorsTensor *st,
                       const char **loaded_from, float *buffer, MnrlError *err) {
    char name[PARAMS_NAME_MAX + 16];
    if (!canonical_name(st->name, name, sizeof name)) return 0;
    const ParamTensor *p = params_find(t, name);
    const BertConfig *c = &t->config;
    if (!p)
        return mnrl_fail(err, "%s: unexpected tensor \"%s\": not a parameter of the BertModel that config.json "
                         "describes (%d layers, hidden %d); the weights and config.json do not belong together",
                         file->path, st->name, c->num_hidden_layers, c->hidden_size);
    size_t index = (size_t)(p - t->tensors);
    if (loaded_from[index])
        return mnrl_fail(err, "%s: tensors \"%s\" and \"%s\" both hold \"%s\"; keep one of them", file->path,
                         loaded_from[index], st->name, p->name);
    bool same_shape = st->ndim == p->ndim;
    for (int d = 0; same_shape && d < p->ndim; d++) same_shape = st->shape[d] == p->shape[d];
    if (!same_shape) {
        char expected[64], found[256];
        safetensors_format_shape(expected, sizeof expected, p->shape, p->ndim);
        safetensors_format_shape(found, sizeof found, st->shape, st->ndim);
        return mnrl_fail(err, "%s: tensor \"%s\": expected shape %s (from config.json), found %s; the weights and "
                         "config.json do not belong together",
                         file->path, st->name, expected, found);
    }
    loaded_from[index] = st->name;
    return safetensors_read_f32(file, st, buffer + p->offset, err);
}

static int check_complete(const ParamTable *t, const char *path, const char **loaded_from, MnrlError *err) {
    size_t missing = 0, first = 0;
    for (size_t i = 0; i < t->n_tensors; i++)
        if (!loaded_from[i] && missing++ == 0) first = i;
    if (missing == 0) return 0;
    char shape[64];
    safetensors_format_shape(shape, sizeof shape, t->tensors[first].shape, t->tensors[first].ndim);
    return mnrl_fail(err, "%s: missing tensor \"%s\" (shape %s)%s; the file does not hold a complete BertModel "
                     "for config.json (%d layers)",
                     path, t->tensors[first].name, shape, missing > 1 ? " and others" : "",
                     t->config.num_hidden_layers);
}

int params_load_safetensors(const ParamTable *t, const char *path, float *buffer, MnrlError *err) {
    SafetensorsFile *file;
    if (safetensors_open(path, &file, err) != 0) return -1;
    const char **loaded_from = mnrl_calloc(t->n_tensors, sizeof *loaded_from);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < file->n_tensors; i++)
        rc = load_tensor(t, file, &file->tensors[i], loaded_from, buffer, err);
    if (rc == 0) rc = check_complete(t, path, loaded_from, err);
    free(loaded_from);
    safetensors_close(file);
    return rc;
}

int params_save_safetensors(const ParamTable *t, const float *buffer, const char *path, SafetensorsDtype dtype,
                            MnrlError *err) {
    SafetensorsWriteTensor *out = mnrl_calloc(t->n_tensors, sizeof *out);
    for (size_t i = 0; i < t->n_tensors; i++) {
        const ParamTensor *p = &t->tensors[i];
        out[i] = (SafetensorsWriteTensor){.name = p->name, .dtype = dtype, .ndim = p->ndim, .data = buffer + p->offset};
        memcpy(out[i].shape, p->shape, sizeof p->shape);
    }
    // transformers' save_pretrained marks PyTorch weights this way.
    const char *const keys[] = {"format"}, *const values[] = {"pt"};
    int rc = safetensors_write(path, out, t->n_tensors, keys, values, 1, err);
    free(out);
    return rc;
}

int params_load_model_dir(const char *dir, ParamTable *table, float **out_buffer, MnrlError *err) {
    char path[4096];
    BertConfig config;
    if (mnrl_path_join(path, sizeof path, dir, "config.json") != 0)
        return mnrl_fail(err, "%s: model folder path too long", dir);
    if (!mnrl_file_exists(path))
        return mnrl_fail(err, "%s: no config.json; a model folder needs config.json and model.safetensors (a "
                         "Hugging Face or sentence-transformers model folder)",
                         dir);
    if (bert_config_load(path, &config, err) != 0) return -1;
    if (mnrl_path_join(path, sizeof path, dir, "model.safetensors") != 0)
        return mnrl_fail(err, "%s: model folder path too long", dir);
    if (!mnrl_file_exists(path)) {
        char bin[4096];
        if (mnrl_path_join(bin, sizeof bin, dir, "pytorch_model.bin") == 0 && mnrl_file_exists(bin))
            return mnrl_fail(err, "%s: has only pytorch_model.bin, which is not read (it is a Python pickle); convert "
                             "it once with: python3 -c \"from transformers import AutoModel; "
                             "AutoModel.from_pretrained('%s').save_pretrained('%s', safe_serialization=True)\"",
                             dir, dir, dir);
        return mnrl_fail(err, "%s: no model.safetensors; a model folder needs config.json and model.safetensors",
                         dir);
    }
    params_table_build(table, &config);
    float *buffer = params_alloc(table);
    if (params_load_safetensors(table, path, buffer, err) != 0) {
        free(buffer);
        params_table_free(table);
        return -1;
    }
    *out_buffer = buffer;
    return 0;
}
