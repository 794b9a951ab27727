// bert_config.c — config.json → BertConfig, with HF BertConfig's defaults and a refusal,
// with its reason, of every setting our BERT implementation does not compute.
#include "mnrl/bert_config.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

BertConfig bert_config_default(void) {
    return (BertConfig){
        .vocab_size = 30522,
        .hidden_size = 768,
        .num_hidden_layers = 12,
        .num_attention_heads = 12,
        .intermediate_size = 3072,
        .hidden_act = "gelu",
        .hidden_dropout_prob = 0.1,
        .attention_probs_dropout_prob = 0.1,
        .max_position_embeddings = 512,
        .type_vocab_size = 2,
        .layer_norm_eps = 1e-12,
        .position_embedding_type = "absolute",
        .pad_token_id = 0,
    };
}

// The value as compact JSON, for "got ..." in messages.
static void describe_value(const json_t *value, char *out, size_t cap) {
    char *text = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT);
    snprintf(out, cap, "%s", text ? text : "?");
    free(text);
}

// Reads key into *out when present; min is the smallest accepted value (0 or 1).
static int read_int(const json_t *root, const char *source, const char *key, int min, int *out, MnrlError *err) {
    const json_t *value = json_object_get(root, key);
    if (!value) return 0;
    if (!json_is_integer(value) || json_integer_value(value) < min || json_integer_value(value) > INT_MAX) {
        char got[128];
        describe_value(value, got, sizeof got);
        return mnrl_fail(err, "%s: %s: expected %s integer, got %s", source, key,
                         min > 0 ? "a positive" : "a non-negative", got);
    }
    *out = (int)json_integer_value(value);
    return 0;
}

// Reads key into *out when present, requiring lo <= value < hi.
static int read_real(const json_t *root, const char *source, const char *key, double lo, double hi, double *out,
                     MnrlError *err) {
    const json_t *value = json_object_get(root, key);
    if (!value) return 0;
    double x = json_is_number(value) ? json_number_value(value) : NAN;
    if (!(x >= lo && x < hi)) {
        char got[128];
        describe_value(value, got, sizeof got);
        return mnrl_fail(err, "%s: %s: expected a number in [%g, %g), got %s", source, key, lo, hi, got);
    }
    *out = x;
    return 0;
}

static int read_string(const json_t *root, const char *source, const char *key, char *out, size_t cap,
                       MnrlError *err) {
    const json_t *value = json_object_get(root, key);
    if (!value) return 0;
    if (!json_is_string(value) || strlen(json_string_value(value)) >= cap) {
        char got[128];
        describe_value(value, got, sizeof got);
        return mnrl_fail(err, "%s: %s: expected a short string, got %s", source, key, got);
    }
    snprintf(out, cap, "%s", json_string_value(value));
    return 0;
}

// A missing model_type is accepted as BERT, as BertConfig.from_pretrained accepts it
// (old BERT folders have none).
static int check_model_type(const json_t *root, const char *source, MnrlError *err) {
    char model_type[64] = "bert";
    if (read_string(root, source, "model_type", model_type, sizeof model_type, err) != 0) return -1;
    if (strcmp(model_type, "bert") != 0)
        return mnrl_fail(err, "%s: model_type \"%s\" is not supported; supported: \"bert\" (only the BERT "
                         "architecture is implemented for now; RoBERTa, DistilBERT, MPNet and others differ "
                         "in position ids, layer layout or tensor names)",
                         source, model_type);
    return 0;
}

static int check_supported(const BertConfig *c, const char *source, MnrlError *err) {
    if (strcmp(c->hidden_act, "gelu") != 0) {
        bool tanh_gelu = strcmp(c->hidden_act, "gelu_new") == 0 || strcmp(c->hidden_act, "gelu_fast") == 0 ||
                         strcmp(c->hidden_act, "gelu_pytorch_tanh") == 0;
        return mnrl_fail(err, "%s: hidden_act \"%s\" is not supported; only \"gelu\" (the exact erf GELU of BERT) "
                         "is implemented, and %s would give different embeddings",
                         source, c->hidden_act,
                         tanh_gelu ? "its tanh approximation" : "a different activation function");
    }
    if (strcmp(c->position_embedding_type, "absolute") != 0)
        return mnrl_fail(err, "%s: position_embedding_type \"%s\" is not supported; only \"absolute\" (learned "
                         "position embeddings) is implemented",
                         source, c->position_embedding_type);
    if (c->hidden_size % c->num_attention_heads != 0)
        return mnrl_fail(err, "%s: hidden_size %d is not divisible by num_attention_heads %d; the config is "
                         "inconsistent",
                         source, c->hidden_size, c->num_attention_heads);
    if (c->pad_token_id >= c->vocab_size)
        return mnrl_fail(err, "%s: pad_token_id %d is outside the vocabulary (vocab_size %d)", source,
                         c->pad_token_id, c->vocab_size);
    return 0;
}

int bert_config_parse(const char *json_text, size_t len, const char *source, BertConfig *out, MnrlError *err) {
    json_error_t jerr;
    json_t *root = json_loadb(json_text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return mnrl_fail(err, "%s:%d:%d: invalid JSON: %s", source, jerr.line, jerr.column, jerr.text);
    BertConfig c = bert_config_default();
    int rc = -1;
    if (!json_is_object(root)) {
        mnrl_fail(err, "%s: expected a JSON object of model settings", source);
    } else if (check_model_type(root, source, err) == 0 &&
               read_int(root, source, "vocab_size", 1, &c.vocab_size, err) == 0 &&
               read_int(root, source, "hidden_size", 1, &c.hidden_size, err) == 0 &&
               read_int(root, source, "num_hidden_layers", 1, &c.num_hidden_layers, err) == 0 &&
               read_int(root, source, "num_attention_heads", 1, &c.num_attention_heads, err) == 0 &&
               read_int(root, source, "intermediate_size", 1, &c.intermediate_size, err) == 0 &&
               read_string(root, source, "hidden_act", c.hidden_act, sizeof c.hidden_act, err) == 0 &&
               read_real(root, source, "hidden_dropout_prob", 0, 1, &c.hidden_dropout_prob, err) == 0 &&
               read_real(root, source, "attention_probs_dropout_prob", 0, 1, &c.attention_probs_dropout_prob,
                         err) == 0 &&
               read_int(root, source, "max_position_embeddings", 1, &c.max_position_embeddings, err) == 0 &&
               read_int(root, source, "type_vocab_size", 1, &c.type_vocab_size, err) == 0 &&
               read_real(root, source, "layer_norm_eps", 1e-30, 1, &c.layer_norm_eps, err) == 0 &&
               read_string(root, source, "position_embedding_type", c.position_embedding_type,
                           sizeof c.position_embedding_type, err) == 0 &&
               read_int(root, source, "pad_token_id", 0, &c.pad_token_id, err) == 0 &&
               check_supported(&c, source, err) == 0) {
        *out = c;
        rc = 0;
    }
    json_decref(root);
    return rc;
}

int bert_config_load(const char *path, BertConfig *out, MnrlError *err) {
    char *text;
    size_t len;
    if (mnrl_read_file(path, &text, &len, err) != 0) return -1;
    int rc = bert_config_parse(text, len, path, out, err);
    free(text);
    return rc;
}
