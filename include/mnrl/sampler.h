// sampler.h — the NoDuplicates batch sampler (DESIGN §1): batches in which no text occurs
// twice in any column, exactly as sentence-transformers' NoDuplicatesBatchSampler.__iter__
// (6.x) builds them from a given permutation, in time linear in the rows visited.
//
// Input is a row table of interned text ids: text_ids[row * n_cols + col]; two cells hold
// the same text iff their ids are equal (a row may repeat its own text, e.g. anchor ==
// positive; that is no conflict, as in ST, which compares sets of values).
//
// Per epoch, one pass over a permutation of the rows: each batch takes, in order, first the
// rows deferred earlier (oldest first), then rows of the permutation, skipping (deferring)
// any row that shares a text with the batch so far. A batch that cannot be filled ends the
// pass's fresh rows: with drop_last it is discarded (its rows counted as dropped) and
// batching goes on over the remaining deferred rows; without drop_last it is returned.
// When the pass yields fewer batches than ST's __len__ promises (floor(n/b) with
// drop_last), ST reshuffles and draws up to 2 more passes until that count is reached;
// so do we (those rows are repeats within the epoch and are counted as resampled).
//
// Permutations come from our generator: Fisher–Yates over mnrl_rand_below, seeded with
// seed + epoch, later passes continuing the same stream. They are not torch.randperm's, so
// batches equal ST's for the same permutation, not for the same seed.
//
// Cost: O(n_rows + rows visited) per epoch, where a deferred row is revisited by each
// batch until taken; with realistic duplicate rates the deferred queue stays a few rows
// long. Data in which every row shares one text (no batch of 2 exists) is refused by
// sampler_init. No allocation after sampler_init.
#ifndef MNRL_SAMPLER_H
#define MNRL_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "mnrl/common.h"

typedef struct {
    uint64_t batches;         // batches returned so far this epoch
    uint64_t rows_yielded;    // rows in those batches
    uint64_t rows_deferred;   // rows skipped at least once in a pass for a duplicate text
    uint64_t rows_dropped;    // rows of incomplete batches discarded under drop_last
    uint64_t rows_resampled;  // rows returned by extra passes (repeats within the epoch)
    uint32_t passes;          // permutations drawn this epoch (1 + extra passes)
} SamplerStats;

typedef struct {
    const uint32_t *text_ids;  // borrowed: n_rows x n_cols
    size_t n_rows, n_cols, batch_size;
    uint32_t n_texts;
    int drop_last;
    uint64_t seed;

    uint32_t *order;           // the current pass's permutation of row indices
    size_t cursor;             // next position of order not yet visited in this pass
    uint32_t *deferred_next;   // singly linked queue of deferred rows, indexed by row
    uint32_t deferred_head, deferred_tail;
    uint8_t *text_in_batch;    // n_texts marks, cleared by undoing each batch's marks
    uint32_t *scratch;         // batch_size rows, for sampler_seek's replay

    uint64_t rng;              // generator state of the current epoch
    const uint32_t *given_orders;  // test hook: permutations to use instead of drawing
    size_t n_given_orders;
    uint64_t expected_batches; // ST's __len__
    int epoch_done;
    uint64_t epoch;
    SamplerStats stats;
} Sampler;

// Checks the table (ids below n_texts, sizes) and allocates everything the epochs need.
// Fails when batch_size is 0, when n_rows does not fit below UINT32_MAX, or when every
// row contains one same text and batch_size >= 2 (no duplicate-free batch of 2 exists).
int sampler_init(Sampler *s, const uint32_t *text_ids, size_t n_rows, size_t n_cols,
                 uint32_t n_texts, size_t batch_size, int drop_last, uint64_t seed,
                 MnrlError *err);
void sampler_free(Sampler *s);

// Starts an epoch: draws its permutation from seed + epoch and resets the stats.
void sampler_begin_epoch(Sampler *s, uint64_t epoch);
// Starts an epoch over given permutations (n_orders x n_rows, each a permutation of
// 0..n_rows-1, pass i using orders + i * n_rows; passes beyond n_orders are drawn as
// usual). This is the batching of a fixed order, as the ST golden test needs. The caller
// keeps orders alive until the epoch ends.
void sampler_begin_epoch_with_orders(Sampler *s, uint64_t epoch, const uint32_t *orders,
                                     size_t n_orders);

// Writes the next batch's row indices to rows_out (capacity batch_size) and returns how
// many; 0 when the epoch is over.
size_t sampler_next_batch(Sampler *s, uint32_t *rows_out);

// Restores the position after batches_done batches of the given epoch (a checkpoint's
// position) by replaying them: O(one epoch) at most. Fails when the epoch has fewer.
int sampler_seek(Sampler *s, uint64_t epoch, uint64_t batches_done, MnrlError *err);

const SamplerStats *sampler_stats(const Sampler *s);
// ST's __len__: batches an epoch is expected to have (the resampling target).
uint64_t sampler_expected_batches(const Sampler *s);

// Global batch -> per-rank batch: fails unless world_size divides global_batch.
int sampler_per_rank_batch(size_t global_batch, int world_size, size_t *per_rank,
                           MnrlError *err);
// Rank r's part of a global batch of n rows: rows [r*per_rank, (r+1)*per_rank) clipped to
// n (a final short batch leaves later ranks fewer or no rows). Returns the count and
// points *slice at the first row.
size_t sampler_rank_slice(const uint32_t *batch, size_t n, size_t per_rank, int rank,
                          const uint32_t **slice);

#endif
