// gradcache.h — forward, MNRL loss and backward of one training step on this rank's rows,
// in one forward or cached (loss.mini_batch_size; GradCache, Gao et al. 2021, as
// sentence-transformers' CachedMultipleNegativesRankingLoss).
//
// Cached MNRL: the loss needs the embeddings of the whole batch (and across ranks, of the
// global one), but backward needs the activations only of the texts it differentiates. So:
//   1. embed the step's texts chunk by chunk, in train mode, keeping only the pooled rows:
//      each chunk's forward overwrites the previous one's activations;
//   2. the MNRL loss and dL/d(pooled) over the whole batch, exactly as uncached (loss.h,
//      with the all-gather across ranks);
//   3. for every chunk again: forward with the same dropout masks, then backward with the
//      chunk's rows of dL/d(pooled); the parameter gradients accumulate over the chunks.
// The masks are the same because they are drawn by each token's row in the whole step
// (model.h), and a chunk is a contiguous run of the step's packing (batch.h). The result
// is the uncached step's up to the summation order of the parameter gradients
// (test_gradcache: 1e-5 relative in fp32). The cost is one more forward per step; the
// activation memory is that of one chunk, so the batch is no longer bounded by it (the
// pooled embeddings and their gradients, 2·S·H floats, are kept for the whole step).
//
// Chunks: from sentence 0 on, as many consecutive sentences as the chunk buffer's
// capacities allow (batch_pack_chunk). The trainer sizes it with batch_init_for_cache for
// mini_batch_size rows: at most m·cols sentences and at most the tokens any m rows of the
// data hold, i.e. the activation memory of an uncached step of m rows. A step of b rows
// then takes ceil(b / m) chunks, a few more where long texts fall together.
#ifndef MNRL_GRADCACHE_H
#define MNRL_GRADCACHE_H

#include <stdint.h>

#include "mnrl/batch.h"
#include "mnrl/common.h"
#include "mnrl/loss.h"
#include "mnrl/model.h"

// One step's texts and its dropout masks' identity.
typedef struct {
    const PackedBatch *batch;  // this rank's texts, packed column-major (batch.h)
    int rows, cols;            // its training rows and texts per row: rows·cols = batch->S
    uint64_t seed, step;       // dropout masks (model.h); step: gradcache_micro_step's
    uint32_t rank;
} StepTexts;

// The dropout step (model.h) of micro-batch `micro` (0-based) of optimizer step `step`
// (0-based: the steps taken before it) when each optimizer step takes up to accum_steps
// micro-batches (train.grad_accum_steps): step·accum_steps + micro. Every micro-batch of a
// run draws its own masks, and with accum_steps 1 the dropout step is the optimizer step,
// so runs without accumulation keep their masks. A shorter last step of an epoch leaves
// the indices of its missing micro-batches unused.
static inline uint64_t gradcache_micro_step(uint64_t step, int accum_steps, int micro) {
    return step * (uint64_t)accum_steps + (uint64_t)micro;
}

// Forward (train mode), loss and backward of the step; parameter gradients accumulate into
// m->grads (the caller zeroes them once per step) and the loss stays in l for
// mnrl_loss_read. chunk NULL: one forward over the whole batch. Otherwise cached: chunk is
// the packing buffer whose capacities bound a chunk (the model is sized for one chunk:
// limits.max_seqs and max_tokens at least chunk's, max_step_seqs at least batch->S).
// Fails when the model or a collective does.
int gradcache_step(Model *m, MnrlLoss *l, const StepTexts *s, PackedBatch *chunk, MnrlError *err);

#endif
