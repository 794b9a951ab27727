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

#endif
