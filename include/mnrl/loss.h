// loss.h — Multiple Negatives Ranking Loss of one step over the ops table (DESIGN §1
// "Loss"): the pooled embeddings of a packed step (batch.h's column-major order: anchors
// rows [0, b), then the candidates [P; N_1; ...; N_k]) in, the loss and dL/d(pooled) out.
//
// Across ranks (DESIGN §1 "Across ranks"), after mnrl_loss_set_dist with world W > 1:
// every rank holds b rows of a global batch B = W·b (rank r: global rows [r·b, (r+1)·b)).
//   1. all-gather the candidates in the global order: every rank's positives rank-major,
//      then each negative column rank-major (dist all_gather with 1 + k blocks);
//   2. ops->mnrl_loss on this rank's b anchors against all B(1+k) candidates, labels offset
//      by r·b, divided by the global B: the ranks' losses and gradients sum to the
//      single-process ones;
//   3. reduce-scatter (sum) the candidates' gradients back to the rank that embedded them,
//      into dpooled after the anchors' rows;
//   4. all-reduce (sum) the loss scalar: every rank returns the global batch's loss.
// Gradient accumulation (train.grad_accum_steps; mnrl_loss_set_micro_batches): an optimizer
// step of k micro-batches divides each one's loss, and so its gradients, by k as well, as
// the Hugging Face Trainer divides the loss before backward: the parameter gradients
// summed over the micro-batches are then their mean, and so are the losses.
// The caller then runs backward on its own texts and all-reduces the parameter gradients.
// Every rank must call with the same b and cols (the trainer splits a batch evenly).
//
// Test only: the environment variable MNRL_TEST_WRONG_GATHER_ORDER=1, read by
// mnrl_loss_set_dist, gathers in the order of the sentence-transformers bug fixed in their
// PR #3453 (each rank's positives and negatives together, rank after rank), with the same
// labels. For k = 0 that order is the right one; for k ≥ 1 it scores anchors against the
// wrong positives, which tests/mpi/test_mpi_wrong_order.c must detect. Never set it in a
// real run (the trainer warns when it is set).
#ifndef MNRL_LOSS_H
#define MNRL_LOSS_H

#include "mnrl/common.h"
#include "mnrl/dist.h"
#include "mnrl/ops.h"

typedef struct {
    const MnrlOps *ops;
    float scale;     // loss.scale (sentence-transformers' default 20)
    float *loss;     // fp32 scalar in backend memory
    int micro_batches;  // gradient accumulation: the loss is divided by this too (1: none)
    // Data-parallel (mnrl_loss_set_dist with world > 1; else NULL / 0).
    MnrlDist *dist;
    float *all_cd, *all_dcd;  // gathered candidates and their gradients, [max_candidates, H]
    size_t all_floats;        // capacity of each
    int wrong_gather_order;   // MNRL_TEST_WRONG_GATHER_ORDER=1 (test only, see the top)
} MnrlLoss;

int mnrl_loss_init(MnrlLoss *l, const MnrlOps *ops, float scale, MnrlError *err);
void mnrl_loss_free(MnrlLoss *l);

// The micro-batches of the optimizer step the next losses belong to (>= 1; 1 after init).
void mnrl_loss_set_micro_batches(MnrlLoss *l, int micro_batches);

// Scores across the ranks of d (borrowed; world 1 changes nothing). max_candidates: the
// global B·(1+k) of the largest step; H: the embedding width. Allocates the gather buffers
// in the ops backend's memory, which must be d's collectives' memory.
int mnrl_loss_set_dist(MnrlLoss *l, MnrlDist *d, int max_candidates, int H, MnrlError *err);

// pooled fp32 [b·cols, H] (backend memory), cols = 2 + negatives per row. Writes
// dpooled fp32 [b·cols, H] = dL/d(pooled) (NULL: the loss only, e.g. for evaluation)
// and *loss = the global batch's loss (mean over all ranks' anchors, divided by the
// micro-batches of mnrl_loss_set_micro_batches). workspace: the
// model's. Fails when a collective fails or the gathered candidates exceed the capacity.
// loss NULL leaves the loss in backend memory for mnrl_loss_read: reading it waits for the
// device, so the trainer reads it after queuing the backward pass, not before.
int mnrl_loss_step_ranks(MnrlLoss *l, const float *pooled, float *dpooled, int b, int cols, int H,
                         void *workspace, float *loss, MnrlError *err);

// The loss of the last mnrl_loss_step_ranks.
float mnrl_loss_read(const MnrlLoss *l);

// One process (no mnrl_loss_set_dist): returns the loss (mean over the b anchors).
float mnrl_loss_step(MnrlLoss *l, const float *pooled, float *dpooled, int b, int cols, int H,
                     void *workspace);

#endif
