// gradcache.c — one training step's forward, loss and backward, whole or cached (see
// gradcache.h).
#include "mnrl/gradcache.h"

static int forward(Model *m, const StepTexts *s, const PackedBatch *batch, MnrlError *err) {
    return model_forward(m, batch, 1, s->seed, s->step, s->rank, err);
}

static int loss(Model *m, MnrlLoss *l, const StepTexts *s, MnrlError *err) {
    return mnrl_loss_step_ranks(l, m->pooled, m->dpooled, s->rows, s->cols, m->C, m->workspace, NULL, err);
}

// Packs the chunk that starts at sentence first: its sentences, or -1 when that one fits
// no chunk (a chunk buffer smaller than the step's texts).
static int next_chunk(PackedBatch *chunk, const StepTexts *s, int first, MnrlError *err) {
    int n = batch_pack_chunk(chunk, s->batch, first);
    if (n == 0)
        return mnrl_fail(err, "gradcache.c: sentence %d (%d tokens) does not fit a chunk of %d tokens",
                         first, s->batch->cu_seqlens[first + 1] - s->batch->cu_seqlens[first], chunk->max_tokens);
    return n;
}

// Pass 1 (embed every chunk, keep only the pooled rows) when backward is 0, else pass 2
// (replay each chunk's forward, then its backward from its rows of m->dpooled).
static int chunk_pass(Model *m, const StepTexts *s, PackedBatch *chunk, int backward, MnrlError *err) {
    for (int first = 0; first < s->batch->S;) {
        int n = next_chunk(chunk, s, first, err);
        if (n < 0 || forward(m, s, chunk, err) != 0) return -1;
        if (backward) model_backward(m, m->dpooled);
        first += n;
    }
    return 0;
}

int gradcache_step(Model *m, MnrlLoss *l, const StepTexts *s, PackedBatch *chunk, MnrlError *err) {
    if (s->rows < 1 || s->cols < 2 || s->rows * s->cols != s->batch->S)
        return mnrl_fail(err, "gradcache.c: %d rows x %d texts do not match the %d packed sentences", s->rows,
                         s->cols, s->batch->S);
    if (!chunk) {
        if (forward(m, s, s->batch, err) != 0 || loss(m, l, s, err) != 0) return -1;
        model_backward(m, m->dpooled);
        return 0;
    }
    if (chunk_pass(m, s, chunk, 0, err) != 0 || loss(m, l, s, err) != 0) return -1;
    return chunk_pass(m, s, chunk, 1, err);
}
