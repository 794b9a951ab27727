// batch.h — packing the texts of a step into one token buffer (DESIGN §2): every text's
// token ids concatenated without padding, with cu_seqlens offsets, as the ops table and
// model_forward take them. Host memory, allocated once from the limits; packing never
// allocates.
//
// Training rows are packed COLUMN-MAJOR: all anchors (rows in the given order), then all
// positives, then negative column 1 of every row, then column 2, ... So for b rows with
// k negatives, pooled rows [0, b) are the anchors A and rows [b, b(2+k)) the candidates
// Cd = [P; N_1; ...; N_k] in sentence-transformers' order, which is what the MNRL loss takes.
//
// Chunks (cached MNRL, gradcache.h): a contiguous run of a packed step's sentences, packed
// on their own (cu_seqlens from 0) with first_seq / first_token saying where they sit in the
// step: model_forward draws the chunk's dropout masks and writes its pooled rows there.
#ifndef MNRL_BATCH_H
#define MNRL_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "mnrl/common.h"
#include "mnrl/data_cache.h"
#include "mnrl/tokenizer.h"

typedef struct {
    // Capacities (from batch_init).
    int max_seqs, max_tokens, max_seqlen;
    // The packed step (host memory).
    int32_t *ids;         // [T] token ids
    int32_t *cu_seqlens;  // [S + 1]: sentence s owns ids[cu_seqlens[s] .. cu_seqlens[s+1])
    int S;                // sentences
    int T;                // real tokens (= cu_seqlens[S]): the tok/s count
    int max_len;          // longest sentence of this step
    int rows, cols;       // training rows and columns (anchor, positive, negatives);
                          // batch_pack_texts and batch_pack_chunk set rows = S, cols = 1
    int first_seq;        // a chunk's first sentence and first token in its step; 0 for
    int first_token;      // anything else
    int32_t *scratch;     // [max_seqlen]: one text's ids while it is checked for room
} PackedBatch;

// batch_init: the capacities, max_tokens >= max_seqlen >= 2 (so any one text fits).
// batch_init_for_cache: capacities for steps of `rows` distinct training rows of the cache,
// every text at most max_seq_length tokens: max_seqs = rows·cols, max_tokens = the most
// tokens any `rows` rows of this data can hold (per column, its `rows` longest texts),
// at most rows·cols·max_seq_length. Both fail on bad or int-overflowing limits.
int batch_init(PackedBatch *pb, int max_seqs, int max_tokens, int max_seqlen, MnrlError *err);
int batch_init_for_cache(PackedBatch *pb, const DataCache *cache, size_t rows, int max_seq_length,
                         MnrlError *err);
void batch_free(PackedBatch *pb);

// Packs the rows (indices into cache's row table; this rank's slice of the global batch)
// column-major as described above. Fails when the rows need more than the capacities or a
// cached text is longer than max_seqlen (a cache built with a larger max_seq_length).
int batch_pack_rows(PackedBatch *pb, const DataCache *cache, const uint32_t *rows, size_t n_rows,
                    MnrlError *err);

// Packs texts[0], texts[1], ... (lens[i] bytes each; for evaluation and encode) tokenized
// with tok and truncated to max_seqlen, until the next text would exceed max_seqs or
// max_tokens. Returns how many were packed: at least 1 when n > 0 (every text fits an empty
// batch), so a caller loops `i += batch_pack_texts(pb, tok, texts + i, lens + i, n - i)`.
size_t batch_pack_texts(PackedBatch *pb, const Tokenizer *tok, const char *const *texts,
                        const size_t *lens, size_t n);

// Packs step's sentences first_seq, first_seq + 1, ... into chunk while they fit its
// capacities (sentences and tokens). Returns how many: at least 1 when first_seq < step->S
// (chunk->max_seqlen >= step->max_seqlen, so one sentence always fits), 0 at the end.
int batch_pack_chunk(PackedBatch *chunk, const PackedBatch *step, int first_seq);

#endif
