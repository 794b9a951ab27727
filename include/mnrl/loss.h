// loss.h — Multiple Negatives Ranking Loss of one step over the ops table (DESIGN §1
// "Loss"): the pooled embeddings of a packed step (batch.h's column-major order: anchors
// rows [0, b), then the candidates [P; N_1; ...; N_k]) in, the loss and dL/d(pooled) out.
//
// Single process for now: the anchors are scored against this process's own candidates
// (label_offset 0, global batch b). The data-parallel seam (issue 6) is step_candidates()
// in loss.c: there the candidates of all ranks are all-gathered (global order: every
// rank's positives, rank-major, then each negative column rank-major), the loss is divided
// by the global batch with this rank's labels offset by rank·b, and after ops->mnrl_loss
// the candidates' gradients are reduce-scattered (summed) back to their owners. The
// gathered buffers are sized by ModelLimits.max_candidates, already in the workspace limits.
#ifndef MNRL_LOSS_H
#define MNRL_LOSS_H

#include "mnrl/common.h"
#include "mnrl/ops.h"

typedef struct {
    const MnrlOps *ops;
    float scale;     // loss.scale (sentence-transformers' default 20)
    float *loss;     // fp32 scalar in backend memory
} MnrlLoss;

int mnrl_loss_init(MnrlLoss *l, const MnrlOps *ops, float scale, MnrlError *err);
void mnrl_loss_free(MnrlLoss *l);

// pooled fp32 [b·cols, H] (backend memory), cols = 2 + negatives per row. Writes
// dpooled fp32 [b·cols, H] = dL/d(pooled) (NULL: the loss only, e.g. for evaluation)
// and returns the loss (mean over the b anchors). workspace: the model's.
float mnrl_loss_step(MnrlLoss *l, const float *pooled, float *dpooled, int b, int cols, int H,
                     void *workspace);

#endif
