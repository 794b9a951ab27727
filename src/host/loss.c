// loss.c — MNRL of one step over the ops table (see loss.h).
#include "mnrl/loss.h"

#include <string.h>

int mnrl_loss_init(MnrlLoss *l, const MnrlOps *ops, float scale, MnrlError *err) {
    memset(l, 0, sizeof *l);
    if (!(scale > 0.0f))
        return mnrl_fail(err, "loss.c: loss.scale must be positive, got %g", scale);
    l->ops = ops;
    l->scale = scale;
    return ops->alloc((void **)&l->loss, sizeof(float), err);
}

void mnrl_loss_free(MnrlLoss *l) {
    if (l->loss) l->ops->release(l->loss);
    memset(l, 0, sizeof *l);
}

// The candidates this process's anchors are scored against and where their gradients go.
typedef struct {
    const float *cd;
    float *dcd;
    int n;             // candidates
    int label_offset;  // row of anchor 0's positive among them
    int global_batch;  // the loss's divisor
} StepCandidates;

// Single process: the step's own candidates, in place after the anchors. Issue 6's
// all-gather replaces this (see loss.h).
static StepCandidates step_candidates(const float *pooled, float *dpooled, int b, int cols, int H) {
    size_t skip = (size_t)b * (size_t)H;
    StepCandidates c = {pooled + skip, dpooled ? dpooled + skip : NULL, b * (cols - 1), 0, b};
    return c;
}

float mnrl_loss_step(MnrlLoss *l, const float *pooled, float *dpooled, int b, int cols, int H,
                     void *workspace) {
    StepCandidates c = step_candidates(pooled, dpooled, b, cols, H);
    l->ops->mnrl_loss(l->loss, dpooled, c.dcd, pooled, c.cd, b, c.n, H, l->scale, c.label_offset,
                      c.global_batch, workspace);
    float loss;
    l->ops->download(&loss, l->loss, sizeof loss);
    return loss;
}
