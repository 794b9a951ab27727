// encode.h — sentence embeddings of arbitrary texts: the model in eval mode (no dropout),
// the texts tokenized and packed in chunks as large as the model's limits allow
// (batch_pack_texts), the mean-pooled rows copied to host memory. Used by the STS
// evaluator and the `encode` subcommand.
#ifndef MNRL_ENCODE_H
#define MNRL_ENCODE_H

#include <stddef.h>

#include "mnrl/batch.h"
#include "mnrl/common.h"
#include "mnrl/model.h"
#include "mnrl/tokenizer.h"

typedef struct {
    Model *model;          // borrowed
    const Tokenizer *tok;  // borrowed
    PackedBatch batch;     // sized from the model's limits
} Encoder;

// max_texts caps the texts of one forward (eval.batch_size); the model's limits cap it too.
int encoder_init(Encoder *e, Model *model, const Tokenizer *tok, int max_texts, MnrlError *err);
void encoder_free(Encoder *e);

// out: host fp32 [n, H], row i the embedding of texts[i] (lens[i] bytes).
int encoder_run(Encoder *e, const char *const *texts, const size_t *lens, size_t n, float *out,
                MnrlError *err);

// A model folder opened for encoding only (CPU backend): its tokenizer, the model sized
// for batch_size texts of at most max_seq_length tokens, and an Encoder over them. For
// `mnrl_cuda eval`, `mnrl_cuda encode` and tests.
typedef struct {
    Tokenizer *tok;
    Model model;
    Encoder encoder;
    int max_seq_length;  // in use: the argument, or the folder's own
} FolderEncoder;

// max_seq_length 0: the folder's sentence_bert_config.json max_seq_length (as
// SentenceTransformer(path) uses), else the tokenizer's model_max_length.
int folder_encoder_open(FolderEncoder *fe, const char *model_dir, int max_seq_length, int batch_size,
                        MnrlError *err);
void folder_encoder_close(FolderEncoder *fe);

#endif
