// loss.c — MNRL of one step over the ops table, on one rank or across ranks (see loss.h).
#include "mnrl/loss.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int mnrl_loss_init(MnrlLoss *l, const MnrlOps *ops, float scale, MnrlError *err) {
    memset(l, 0, sizeof *l);
    if (!(scale > 0.0f))
        return mnrl_fail(err, "loss.c: loss.scale must be positive, got %g", scale);
    l->ops = ops;
    l->scale = scale;
    l->micro_batches = 1;
    return ops->alloc((void **)&l->loss, sizeof(float), err);
}

void mnrl_loss_free(MnrlLoss *l) {
    if (l->loss) l->ops->release(l->loss);
    if (l->all_cd) l->ops->release(l->all_cd);
    if (l->all_dcd) l->ops->release(l->all_dcd);
    memset(l, 0, sizeof *l);
}

void mnrl_loss_set_micro_batches(MnrlLoss *l, int micro_batches) { l->micro_batches = micro_batches; }

int mnrl_loss_set_dist(MnrlLoss *l, MnrlDist *d, int max_candidates, int H, MnrlError *err) {
    if (d->world == 1) return 0;
    if (max_candidates < 1 || H < 1)
        return mnrl_fail(err, "loss.c: gather buffers of %d candidates x %d", max_candidates, H);
    l->dist = d;
    l->all_floats = (size_t)max_candidates * (size_t)H;
    const char *wrong = getenv("MNRL_TEST_WRONG_GATHER_ORDER");
    l->wrong_gather_order = wrong && strcmp(wrong, "1") == 0;
    if (l->ops->alloc((void **)&l->all_cd, l->all_floats * sizeof(float), err) != 0) return -1;
    return l->ops->alloc((void **)&l->all_dcd, l->all_floats * sizeof(float), err);
}

// The candidates this rank's anchors are scored against and where their gradients go.
typedef struct {
    const float *cd;
    float *dcd;
    int n;             // candidates
    int label_offset;  // row of anchor 0's positive among them
    int global_batch;  // the loss's divisor, before the micro-batches'
    // Across ranks: the gather's layout (dist.h): `blocks` blocks of `count` floats per rank.
    int blocks;
    size_t count;
} StepCandidates;

// One process: the step's own candidates, in place after the anchors.
static StepCandidates own_candidates(const float *pooled, float *dpooled, int b, int cols, int H) {
    size_t skip = (size_t)b * (size_t)H;
    StepCandidates c = {pooled + skip, dpooled ? dpooled + skip : NULL, b * (cols - 1), 0, b, 0, 0};
    return c;
}

// Across ranks: all-gathers every rank's candidates into l->all_cd. The local candidates
// are cols - 1 blocks of b rows ([P; N_1; ...]); gathering block by block puts them in the
// global order. The test-only wrong order gathers them as one block per rank instead.
static int gather_candidates(MnrlLoss *l, const float *pooled, float *dpooled, int b, int cols,
                             int H, StepCandidates *c, MnrlError *err) {
    MnrlDist *d = l->dist;
    int per_row = cols - 1;
    size_t n = (size_t)d->world * (size_t)b * (size_t)per_row;
    if (n * (size_t)H > l->all_floats) {
        return mnrl_fail(err, "loss.c: %zu gathered candidates of %d floats exceed the %zu floats "
                         "the loss was sized for", n, H, l->all_floats);
    }
    c->blocks = l->wrong_gather_order ? 1 : per_row;
    c->count = (size_t)b * (size_t)H * (size_t)(per_row / c->blocks);
    c->cd = l->all_cd;
    c->dcd = dpooled ? l->all_dcd : NULL;
    c->n = (int)n;
    c->label_offset = d->rank * b;
    c->global_batch = d->world * b;
    return d->ops->all_gather(d, l->all_cd, pooled + (size_t)b * (size_t)H, c->count, c->blocks, err);
}

int mnrl_loss_step_ranks(MnrlLoss *l, const float *pooled, float *dpooled, int b, int cols, int H,
                         void *workspace, float *loss, MnrlError *err) {
    StepCandidates c = own_candidates(pooled, dpooled, b, cols, H);
    if (l->dist && gather_candidates(l, pooled, dpooled, b, cols, H, &c, err) != 0) return -1;
    l->ops->mnrl_loss(l->loss, dpooled, c.dcd, pooled, c.cd, b, c.n, H, l->scale, c.label_offset,
                      c.global_batch * l->micro_batches, workspace);
    if (l->dist) {
        MnrlDist *d = l->dist;
        // Each candidate's gradient, summed over the ranks that scored it, goes to its owner.
        if (dpooled && d->ops->reduce_scatter(d, dpooled + (size_t)b * (size_t)H, l->all_dcd, c.count,
                                              c.blocks, err) != 0) {
            return -1;
        }
        if (d->ops->all_reduce(d, l->loss, 1, err) != 0) return -1;
    }
    if (loss) *loss = mnrl_loss_read(l);
    return 0;
}

float mnrl_loss_read(const MnrlLoss *l) {
    float loss;
    l->ops->download(&loss, l->loss, sizeof loss);
    return loss;
}

float mnrl_loss_step(MnrlLoss *l, const float *pooled, float *dpooled, int b, int cols, int H,
                     void *workspace) {
    float loss;
    MnrlError err;
    if (mnrl_loss_step_ranks(l, pooled, dpooled, b, cols, H, workspace, &loss, &err) != 0) return NAN;
    return loss;
}
