// sampler.c — NoDuplicates batching (see sampler.h for the rules and ST correspondence).
//
// ST keeps the rows not yet batched as a linked list in permutation order and walks it
// from the head for every batch. That list is always "rows deferred so far, in order"
// followed by "the permutation from a cursor on", because a batch only ever skips rows it
// has visited, and it visits the deferred rows before any fresh one. So we keep exactly
// those two parts: a linked queue of deferred rows and a cursor; each batch walks the
// queue, then fresh rows, and stops when full. Membership is a mark per text id, undone
// row by row after each batch so the clearing costs O(batch), not O(n_texts).
#include "mnrl/sampler.h"

#include <stdlib.h>
#include <string.h>

#define NO_ROW UINT32_MAX
// ST draws at most this many extra passes to reach __len__ batches (_MAX_RESAMPLE_PASSES).
#define MAX_EXTRA_PASSES 2

static const uint32_t *row_texts(const Sampler *s, uint32_t row) {
    return s->text_ids + (size_t)row * s->n_cols;
}

static int row_conflicts(const Sampler *s, uint32_t row) {
    const uint32_t *texts = row_texts(s, row);
    for (size_t c = 0; c < s->n_cols; c++)
        if (s->text_in_batch[texts[c]]) return 1;
    return 0;
}

static void mark_row(Sampler *s, uint32_t row, uint8_t value) {
    const uint32_t *texts = row_texts(s, row);
    for (size_t c = 0; c < s->n_cols; c++) s->text_in_batch[texts[c]] = value;
}

// Returns the text shared by every row, or NO_ROW when there is none. Only row 0's texts
// can qualify, and a candidate usually fails within a few rows.
static uint32_t text_in_every_row(const Sampler *s) {
    const uint32_t *first = row_texts(s, 0);
    for (size_t c0 = 0; c0 < s->n_cols; c0++) {
        size_t row = 1;
        for (; row < s->n_rows; row++) {
            const uint32_t *texts = row_texts(s, (uint32_t)row);
            size_t c = 0;
            while (c < s->n_cols && texts[c] != first[c0]) c++;
            if (c == s->n_cols) break;
        }
        if (row == s->n_rows) return first[c0];
    }
    return NO_ROW;
}

int sampler_init(Sampler *s, const uint32_t *text_ids, size_t n_rows, size_t n_cols,
                 uint32_t n_texts, size_t batch_size, int drop_last, uint64_t seed,
                 MnrlError *err) {
    memset(s, 0, sizeof *s);
    if (batch_size == 0)
        return mnrl_fail(err, "sampler: batch size is 0; set train.batch_size to 1 or more");
    if (n_rows == 0 || n_cols == 0)
        return mnrl_fail(err, "sampler: the training data has no rows; check data.train");
    if (n_rows >= NO_ROW)
        return mnrl_fail(err, "sampler: %zu rows exceed the limit of %u; split the data",
                         n_rows, NO_ROW - 1);
    for (size_t i = 0; i < n_rows * n_cols; i++)
        if (text_ids[i] >= n_texts)
            return mnrl_fail(err, "sampler: row %zu column %zu has text id %u, not below the "
                             "%u texts; the row table and text count disagree (a bug)",
                             i / n_cols, i % n_cols, text_ids[i], n_texts);
    s->text_ids = text_ids;
    s->n_rows = n_rows;
    s->n_cols = n_cols;
    s->n_texts = n_texts;
    s->batch_size = batch_size;
    s->drop_last = drop_last;
    s->seed = seed;
    uint32_t shared = n_rows >= 2 && batch_size >= 2 ? text_in_every_row(s) : NO_ROW;
    if (shared != NO_ROW)
        return mnrl_fail(err, "sampler: all %zu rows contain the same text (id %u), so no batch "
                         "of 2 or more rows without a duplicate text exists; use data whose rows "
                         "do not all share one text", n_rows, shared);
    s->expected_batches = drop_last ? n_rows / batch_size : (n_rows + batch_size - 1) / batch_size;
    s->order = mnrl_malloc(n_rows * sizeof *s->order);
    s->deferred_next = mnrl_malloc(n_rows * sizeof *s->deferred_next);
    s->text_in_batch = mnrl_calloc(n_texts, 1);
    s->scratch = mnrl_malloc(batch_size * sizeof *s->scratch);
    s->epoch_done = 1;  // until an epoch begins
    return 0;
}

void sampler_free(Sampler *s) {
    free(s->order);
    free(s->deferred_next);
    free(s->text_in_batch);
    free(s->scratch);
    memset(s, 0, sizeof *s);
}

// Loads the next pass's permutation (given, or Fisher–Yates from the epoch's stream) and
// empties the deferred queue (the previous pass left it empty anyway).
static void start_pass(Sampler *s) {
    if (s->stats.passes < s->n_given_orders) {
        memcpy(s->order, s->given_orders + (size_t)s->stats.passes * s->n_rows,
               s->n_rows * sizeof *s->order);
    } else {
        for (size_t i = 0; i < s->n_rows; i++) s->order[i] = (uint32_t)i;
        for (size_t i = s->n_rows - 1; i > 0; i--) {
            size_t j = (size_t)mnrl_rand_below(&s->rng, i + 1);
            uint32_t t = s->order[i];
            s->order[i] = s->order[j];
            s->order[j] = t;
        }
    }
    s->stats.passes++;
    s->cursor = 0;
    s->deferred_head = s->deferred_tail = NO_ROW;
}

void sampler_begin_epoch_with_orders(Sampler *s, uint64_t epoch, const uint32_t *orders,
                                     size_t n_orders) {
    memset(&s->stats, 0, sizeof s->stats);
    s->epoch = epoch;
    s->rng = s->seed + epoch;
    s->given_orders = orders;
    s->n_given_orders = orders ? n_orders : 0;
    s->epoch_done = 0;
    start_pass(s);
}

void sampler_begin_epoch(Sampler *s, uint64_t epoch) {
    sampler_begin_epoch_with_orders(s, epoch, NULL, 0);
}

static void defer_row(Sampler *s, uint32_t row) {
    s->deferred_next[row] = NO_ROW;
    if (s->deferred_tail == NO_ROW) s->deferred_head = row;
    else s->deferred_next[s->deferred_tail] = row;
    s->deferred_tail = row;
    s->stats.rows_deferred++;
}

// Builds one batch as ST's _iter_one_pass does: deferred rows oldest first, then fresh
// rows; a conflicting fresh row joins the deferred queue. Sets *full when it has
// batch_size rows (the walk stops there, leaving later rows for later batches).
static size_t fill_batch(Sampler *s, uint32_t *out, int *full) {
    size_t n = 0;
    uint32_t prev = NO_ROW, row = s->deferred_head;
    while (row != NO_ROW && n < s->batch_size) {
        uint32_t next = s->deferred_next[row];
        if (row_conflicts(s, row)) {
            prev = row;
        } else {
            if (prev == NO_ROW) s->deferred_head = next;
            else s->deferred_next[prev] = next;
            if (s->deferred_tail == row) s->deferred_tail = prev;
            out[n++] = row;
            mark_row(s, row, 1);
        }
        row = next;
    }
    while (s->cursor < s->n_rows && n < s->batch_size) {
        uint32_t fresh = s->order[s->cursor++];
        if (row_conflicts(s, fresh)) {
            defer_row(s, fresh);
        } else {
            out[n++] = fresh;
            mark_row(s, fresh, 1);
        }
    }
    for (size_t i = 0; i < n; i++) mark_row(s, out[i], 0);
    *full = n == s->batch_size;
    return n;
}

// ST's __iter__: after the first pass, extra passes only when it fell short of __len__
// batches but produced at least one.
static int start_extra_pass(Sampler *s) {
    if (s->stats.batches >= s->expected_batches || s->stats.batches == 0 ||
        s->stats.passes > MAX_EXTRA_PASSES)
        return 0;
    start_pass(s);
    return 1;
}

size_t sampler_next_batch(Sampler *s, uint32_t *rows_out) {
    while (!s->epoch_done) {
        if (s->cursor == s->n_rows && s->deferred_head == NO_ROW) {
            if (!start_extra_pass(s)) s->epoch_done = 1;
            continue;
        }
        int full;
        size_t n = fill_batch(s, rows_out, &full);
        if (!full && s->drop_last) {
            s->stats.rows_dropped += n;
            continue;
        }
        s->stats.batches++;
        s->stats.rows_yielded += n;
        if (s->stats.passes > 1) {
            s->stats.rows_resampled += n;
            // Extra passes stop as soon as the promised count is reached.
            if (s->stats.batches >= s->expected_batches) s->epoch_done = 1;
        }
        return n;
    }
    return 0;
}

int sampler_seek(Sampler *s, uint64_t epoch, uint64_t batches_done, MnrlError *err) {
    sampler_begin_epoch(s, epoch);
    for (uint64_t i = 0; i < batches_done; i++)
        if (sampler_next_batch(s, s->scratch) == 0)
            return mnrl_fail(err, "sampler: epoch %llu has %llu batches, but the checkpoint is "
                             "at batch %llu; the data, batch size or seed changed since it was "
                             "written", (unsigned long long)epoch,
                             (unsigned long long)s->stats.batches,
                             (unsigned long long)batches_done);
    return 0;
}

const SamplerStats *sampler_stats(const Sampler *s) {
    return &s->stats;
}

uint64_t sampler_expected_batches(const Sampler *s) {
    return s->expected_batches;
}

int sampler_per_rank_batch(size_t global_batch, int world_size, size_t *per_rank,
                           MnrlError *err) {
    if (world_size < 1)
        return mnrl_fail(err, "sampler: world size %d; it must be 1 or more", world_size);
    if (global_batch % (size_t)world_size != 0)
        return mnrl_fail(err, "sampler: global batch size %zu is not divisible by the %d ranks; "
                         "set train.batch_size to a multiple of %d", global_batch, world_size,
                         world_size);
    *per_rank = global_batch / (size_t)world_size;
    return 0;
}

size_t sampler_rank_slice(const uint32_t *batch, size_t n, size_t per_rank, int rank,
                          const uint32_t **slice) {
    size_t first = (size_t)rank * per_rank;
    if (first > n) first = n;
    *slice = batch + first;
    return n - first < per_rank ? n - first : per_rank;
}
