// bert_config.h — the architecture numbers of a BERT model folder's config.json, as
// Hugging Face BertConfig reads them (same keys, same defaults when a key is absent).
// Only what our model implements is accepted: model_type "bert", exact erf GELU,
// absolute position embeddings; anything else is refused with the reason.
#ifndef MNRL_BERT_CONFIG_H
#define MNRL_BERT_CONFIG_H

#include "mnrl/common.h"

typedef struct {
    int vocab_size;
    int hidden_size;
    int num_hidden_layers;
    int num_attention_heads;
    int intermediate_size;
    char hidden_act[32];               // always "gelu" once loaded
    double hidden_dropout_prob;
    double attention_probs_dropout_prob;
    int max_position_embeddings;
    int type_vocab_size;
    double layer_norm_eps;
    char position_embedding_type[32];  // always "absolute" once loaded
    int pad_token_id;
} BertConfig;

// HF BertConfig's defaults (bert-base-uncased's numbers).
BertConfig bert_config_default(void);

// Parses a config.json file (errors name the file and the key).
int bert_config_load(const char *path, BertConfig *out, MnrlError *err);
// The same from JSON text in memory; source names it in messages.
int bert_config_parse(const char *json_text, size_t len, const char *source, BertConfig *out, MnrlError *err);

#endif
