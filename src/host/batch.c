// batch.c — packing a step's texts into one token buffer (see batch.h).
#include "mnrl/batch.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

int batch_init(PackedBatch *pb, int max_seqs, int max_tokens, int max_seqlen, MnrlError *err) {
    memset(pb, 0, sizeof *pb);
    // max_tokens >= max_seqlen: an empty batch takes any text, so packing always progresses.
    if (max_seqs < 1 || max_seqlen < 2 || max_tokens < max_seqlen)
        return mnrl_fail(err, "batch.c: bad batch limits (sentences %d >= 1, max_seq_length %d >= 2, "
                              "tokens %d >= max_seq_length)", max_seqs, max_seqlen, max_tokens);
    pb->max_seqs = max_seqs;
    pb->max_tokens = max_tokens;
    pb->max_seqlen = max_seqlen;
    pb->ids = mnrl_malloc((size_t)max_tokens * sizeof *pb->ids);
    pb->cu_seqlens = mnrl_calloc((size_t)max_seqs + 1, sizeof *pb->cu_seqlens);
    pb->scratch = mnrl_malloc((size_t)max_seqlen * sizeof *pb->scratch);
    return 0;
}

// The most tokens that any `rows` distinct rows of the cache hold: per column, the sum of
// its `rows` longest texts (lengths capped at max_seq_length; the packer rejects longer
// ones). Every batch the sampler draws fits, and on data of short sentences this is far
// below rows·cols·max_seq_length, which is what sizes every activation buffer of the step.
// One histogram of lengths per column: O(rows of the data).
static size_t max_batch_tokens(const DataCache *cache, size_t rows, int max_seq_length) {
    size_t *count = mnrl_calloc((size_t)max_seq_length + 1, sizeof *count), total = 0;
    for (size_t col = 0; col < cache->n_cols; col++) {
        memset(count, 0, ((size_t)max_seq_length + 1) * sizeof *count);
        for (size_t r = 0; r < cache->n_rows; r++) {
            uint32_t len = data_cache_length(cache, cache->text_id[r * cache->n_cols + col]);
            count[len < (uint32_t)max_seq_length ? len : (uint32_t)max_seq_length]++;
        }
        size_t left = rows;
        for (int len = max_seq_length; len > 0 && left > 0; len--) {
            size_t take = count[len] < left ? count[len] : left;
            total += take * (size_t)len;
            left -= take;
        }
    }
    free(count);
    return total;
}

int batch_init_for_cache(PackedBatch *pb, const DataCache *cache, size_t rows, int max_seq_length, MnrlError *err) {
    size_t cols = cache->n_cols, seqs = rows * cols;
    if (rows == 0 || cols == 0 || max_seq_length < 2 || seqs / cols != rows || seqs > INT_MAX ||
        seqs > (size_t)INT_MAX / (size_t)max_seq_length)
        return mnrl_fail(err, "batch.c: %zu rows x %zu columns x %d tokens do not fit one packed step; "
                              "lower train.batch_size or data.max_seq_length", rows, cols, max_seq_length);
    size_t tokens = max_batch_tokens(cache, rows, max_seq_length);
    if (tokens < (size_t)max_seq_length) tokens = (size_t)max_seq_length;  // batch_init's floor
    return batch_init(pb, (int)seqs, (int)tokens, max_seq_length, err);
}

void batch_free(PackedBatch *pb) {
    free(pb->ids);
    free(pb->cu_seqlens);
    free(pb->scratch);
    memset(pb, 0, sizeof *pb);
}

static void batch_reset(PackedBatch *pb, int rows, int cols) {
    pb->S = pb->T = pb->max_len = pb->first_seq = pb->first_token = 0;
    pb->rows = rows;
    pb->cols = cols;
    pb->cu_seqlens[0] = 0;
}

// Appends n ids as the next sentence; the caller has checked the room.
static void batch_push(PackedBatch *pb, const int32_t *ids, int n) {
    if (ids != pb->ids + pb->T) memcpy(pb->ids + pb->T, ids, (size_t)n * sizeof *ids);
    pb->T += n;
    pb->S++;
    pb->cu_seqlens[pb->S] = pb->T;
    if (n > pb->max_len) pb->max_len = n;
}

int batch_pack_rows(PackedBatch *pb, const DataCache *cache, const uint32_t *rows, size_t n_rows,
                    MnrlError *err) {
    size_t cols = cache->n_cols;
    if (n_rows * cols > (size_t)pb->max_seqs)
        return mnrl_fail(err, "batch.c: %zu rows of %zu texts exceed the %d sentences the step buffers "
                              "were sized for", n_rows, cols, pb->max_seqs);
    batch_reset(pb, (int)n_rows, (int)cols);
    for (size_t col = 0; col < cols; col++) {
        for (size_t r = 0; r < n_rows; r++) {
            if (rows[r] >= cache->n_rows)
                return mnrl_fail(err, "batch.c: row %u is outside the data's %zu rows", rows[r], cache->n_rows);
            uint32_t id = cache->text_id[(size_t)rows[r] * cols + col];
            uint32_t len = data_cache_length(cache, id);
            if (len < 1 || len > (uint32_t)pb->max_seqlen)
                return mnrl_fail(err, "batch.c: text %u has %u tokens, outside 1..%d (max_seq_length); "
                                      "rebuild the cache with this max_seq_length", id, len, pb->max_seqlen);
            if ((size_t)pb->T + len > (size_t)pb->max_tokens)
                return mnrl_fail(err, "batch.c: the step needs more than the %d tokens its buffers hold",
                                 pb->max_tokens);
            data_cache_tokens(cache, id, pb->ids + pb->T);
            batch_push(pb, pb->ids + pb->T, (int)len);
        }
    }
    return 0;
}

size_t batch_pack_texts(PackedBatch *pb, const Tokenizer *tok, const char *const *texts,
                        const size_t *lens, size_t n) {
    batch_reset(pb, 0, 1);
    size_t i = 0;
    for (; i < n && pb->S < pb->max_seqs; i++) {
        int len = tokenizer_encode(tok, texts[i], lens[i], pb->max_seqlen, pb->scratch);
        // A text that does not fit waits for the next chunk (and is tokenized again then).
        if (pb->T + len > pb->max_tokens) break;
        batch_push(pb, pb->scratch, len);
    }
    pb->rows = pb->S;
    return i;
}

int batch_pack_chunk(PackedBatch *chunk, const PackedBatch *step, int first_seq) {
    batch_reset(chunk, 0, 1);
    chunk->first_seq = first_seq;
    chunk->first_token = step->cu_seqlens[first_seq];
    for (int s = first_seq; s < step->S && chunk->S < chunk->max_seqs; s++) {
        int start = step->cu_seqlens[s], len = step->cu_seqlens[s + 1] - start;
        if (chunk->T + len > chunk->max_tokens) break;
        batch_push(chunk, step->ids + start, len);
    }
    chunk->rows = chunk->S;
    return chunk->S;
}
