// params.h — the parameter table of a BERT encoder, derived from its BertConfig: every
// tensor's Hugging Face name (as BertModel names it, without the "bert." prefix), shape
// (HF layout: a Linear weight is [out, in]), offset in ONE contiguous float buffer and
// whether AdamW decays it. Params, gradients, master weights and optimizer moments all
// use the same table and buffer layout.
//
// Layout: each tensor starts at a multiple of PARAMS_ALIGN_FLOATS floats, except that
// within a layer the query, key and value weights follow each other directly so that
// they form one row-major [3H, H] matrix (the fused QKV GEMM), and their biases one [3H]
// vector; that fused block starts aligned. Padding floats are zero.
#ifndef MNRL_PARAMS_H
#define MNRL_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mnrl/bert_config.h"
#include "mnrl/common.h"
#include "mnrl/safetensors.h"

#define PARAMS_ALIGN_FLOATS 16
#define PARAMS_NAME_MAX 80

typedef struct {
    char name[PARAMS_NAME_MAX];
    int ndim;          // 1 or 2
    int64_t shape[2];
    size_t numel;
    size_t offset;     // in floats
    bool decay;        // false for biases and LayerNorm weights (as ST/HF trainers)
} ParamTensor;

// Offsets (in floats) of one encoder layer's tensors; H hidden, I intermediate size.
typedef struct {
    size_t qkv_w;       // attention.self.{query,key,value}.weight: [3H, H]
    size_t qkv_b;       // attention.self.{query,key,value}.bias: [3H]
    size_t attn_out_w;  // attention.output.dense.weight [H, H]
    size_t attn_out_b;  // attention.output.dense.bias [H]
    size_t attn_ln_w;   // attention.output.LayerNorm.weight [H]
    size_t attn_ln_b;   // attention.output.LayerNorm.bias [H]
    size_t ffn_in_w;    // intermediate.dense.weight [I, H]
    size_t ffn_in_b;    // intermediate.dense.bias [I]
    size_t ffn_out_w;   // output.dense.weight [H, I]
    size_t ffn_out_b;   // output.dense.bias [H]
    size_t ffn_ln_w;    // output.LayerNorm.weight [H]
    size_t ffn_ln_b;    // output.LayerNorm.bias [H]
} ParamLayer;

typedef struct {
    BertConfig config;
    ParamTensor *tensors;  // in buffer order
    size_t n_tensors;
    size_t n_floats;       // buffer length, padding included (a multiple of the alignment)
    size_t n_params;       // sum of numel: the model's parameter count
    size_t word_emb;       // embeddings.word_embeddings.weight [vocab, H]
    size_t pos_emb;        // embeddings.position_embeddings.weight [max_position, H]
    size_t type_emb;       // embeddings.token_type_embeddings.weight [type_vocab, H]
    size_t emb_ln_w;       // embeddings.LayerNorm.weight [H]
    size_t emb_ln_b;       // embeddings.LayerNorm.bias [H]
    ParamLayer *layers;    // num_hidden_layers of them
} ParamTable;

void params_table_build(ParamTable *table, const BertConfig *config);
void params_table_free(ParamTable *table);

// The entry called name (an HF name without the "bert." prefix), or NULL.
const ParamTensor *params_find(const ParamTable *table, const char *name);

// A zeroed buffer of table->n_floats floats, 64-byte aligned; release with free().
float *params_alloc(const ParamTable *table);

// Fills buffer from a safetensors file of an HF BERT: names with or without "bert.",
// LayerNorm gamma/beta as weight/bias, F32/F16/BF16. pooler.*, cls.* and *position_ids
// are ignored; any other unknown tensor, a missing one or a wrong shape is an error
// naming the tensor (and the expected and found shapes).
int params_load_safetensors(const ParamTable *table, const char *path, float *buffer, MnrlError *err);

// Writes buffer to path with HF names (no prefix, as sentence-transformers saves a
// BertModel) and metadata {"format": "pt"}; dtype ST_F32, ST_BF16 (or ST_F16).
int params_save_safetensors(const ParamTable *table, const float *buffer, const char *path, SafetensorsDtype dtype,
                            MnrlError *err);

// Loads a model folder: config.json, then model.safetensors into a new buffer
// (*out_buffer, free()). A folder with only pytorch_model.bin is refused with how to
// convert it. On failure nothing is left allocated.
int params_load_model_dir(const char *model_dir, ParamTable *table, float **out_buffer, MnrlError *err);

#endif
