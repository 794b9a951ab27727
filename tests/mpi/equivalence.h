// equivalence.h — the data-parallel equivalence check of tests/mpi/test_mpi_equivalence.c
// and test_mpi_wrong_order.c (run under mpirun -np 2 and -np 4, CPU backend, fp32,
// dropout 0): a global batch of B rows trained by W ranks of B/W rows each (loss.h's
// gather / loss / reduce-scatter, then the parameter gradients all-reduced, as train.c)
// against the same batch in one process, computed on rank 0 with a model of its own.
// The ranks may run cached MNRL (gradcache.h, chunks of `mini` rows); the single process
// never does. Static functions for those test files only.
#ifndef MNRL_TEST_EQUIVALENCE_H
#define MNRL_TEST_EQUIVALENCE_H

#include <omp.h>

#include "mnrl/dist.h"
#include "mnrl/gradcache.h"
// The parity tests' helpers (text tables, gradient errors); not all of them are used here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "model_parity.h"
#pragma GCC diagnostic pop

#define EQ_MODEL PARITY_DIR "/tiny"
#define EQ_K0_ROWS PARITY_DIR "/tiny_train.tsv"
#define EQ_K2_ROWS MNRL_TEST_DATA_DIR "/dist/triplets_k2.tsv"
#define EQ_MAX_SEQ 64
#define EQ_BATCH 16  // global rows per step: divisible by 1, 2 and 4 ranks
#define EQ_MAX_COLS 4
#define EQ_STEPS 10

// One trainer: a model, its loss (across d's ranks, or alone when d is NULL) and a batch.
typedef struct {
    Model m;
    MnrlLoss loss;
    PackedBatch pb;
    PackedBatch chunk;  // mini > 0: one chunk's packing
    int rows;           // rows per step on this trainer
    int mini;           // rows per chunk of a cached step; 0: uncached
} EqTrainer;

static MnrlDist *eq_dist;  // set by eq_start

// A failure on one rank ends every rank (the others may wait in a collective).
static void eq_die(const MnrlError *err) {
    fprintf(stderr, "%s\n", err->msg);
    dist_abort(eq_dist, 1);
    exit(1);
}

static void eq_open(EqTrainer *t, MnrlDist *d, int world, int mini) {
    MnrlError err = {{0}};
    t->rows = EQ_BATCH / world;
    t->mini = mini;
    int forward_rows = mini ? mini : t->rows;
    ModelLimits limits = {.max_tokens = forward_rows * EQ_MAX_COLS * EQ_MAX_SEQ,
                          .max_seqs = forward_rows * EQ_MAX_COLS, .max_seqlen = EQ_MAX_SEQ,
                          .max_anchors = t->rows, .max_candidates = EQ_BATCH * (EQ_MAX_COLS - 1),
                          .max_step_seqs = t->rows * EQ_MAX_COLS};
    if (mini && batch_init(&t->chunk, limits.max_seqs, limits.max_tokens, EQ_MAX_SEQ, &err)) eq_die(&err);
    if (model_create(&t->m, EQ_MODEL, ops_cpu(), &limits, &err) || model_set_dropout(&t->m, 0.0f, 0.0f, &err) ||
        mnrl_loss_init(&t->loss, ops_cpu(), 20.0f, &err) ||
        (d && mnrl_loss_set_dist(&t->loss, d, limits.max_candidates, t->m.C, &err)) ||
        batch_init(&t->pb, limits.max_step_seqs, t->rows * EQ_MAX_COLS * EQ_MAX_SEQ, EQ_MAX_SEQ, &err)) {
        eq_die(&err);
    }
}

static void eq_close(EqTrainer *t) {
    if (t->mini) batch_free(&t->chunk);
    batch_free(&t->pb);
    mnrl_loss_free(&t->loss);
    model_free(&t->m);
}

// Forward (train mode, dropout 0), loss and backward of this trainer's rows of the global
// batch that starts at table row `first` (cached: gradcache_step); with d, the gradients
// are summed over the ranks. Returns the global batch's loss.
static double eq_step(EqTrainer *t, MnrlDist *d, const Tokenizer *tok, const TextTableFile *f, size_t first,
                      uint64_t step) {
    MnrlError err = {{0}};
    int rank = d ? d->rank : 0, cols = (int)f->n_cols;
    const char *texts[EQ_BATCH * EQ_MAX_COLS];
    size_t lens[EQ_BATCH * EQ_MAX_COLS], n = (size_t)t->rows * (size_t)cols;
    rows_column_major(f, first + (size_t)rank * (size_t)t->rows, (size_t)t->rows, texts, lens);
    CHECK_EQ_INT(batch_pack_texts(&t->pb, tok, texts, lens, n), n);
    model_zero_grad(&t->m);
    float loss;
    if (t->mini) {
        StepTexts st = {&t->pb, t->rows, cols, 7, step, (uint32_t)rank};
        if (gradcache_step(&t->m, &t->loss, &st, &t->chunk, &err)) eq_die(&err);
        loss = mnrl_loss_read(&t->loss);
    } else {
        if (model_forward(&t->m, &t->pb, 1, 7, step, (uint32_t)rank, &err)) eq_die(&err);
        if (mnrl_loss_step_ranks(&t->loss, t->m.pooled, t->m.dpooled, t->rows, cols, t->m.C, t->m.workspace,
                                 &loss, &err)) {
            eq_die(&err);
        }
        model_backward(&t->m, t->m.dpooled);
    }
    if (d && d->ops->all_reduce(d, t->m.grads, t->m.table.n_floats, &err)) eq_die(&err);
    return loss;
}

// How far the ranks' results are from the single process's (rank 0's figures).
typedef struct {
    double loss_single, loss_ranks;
    double worst_rel;          // worst per-tensor ||g - g_1|| / ||g_1|| (noise tensors aside)
    char worst_tensor[128];
    double noise_abs;          // worst |g - g_1| of the noise tensors, over the gradient norm
    double worst_step_loss;    // trajectory: worst |loss_W - loss_1| over the steps
} EqResult;

// A key bias shifts every score of a query row alike, which softmax ignores: its exact
// gradient is 0 and both sides hold rounding noise (as in test_model_parity.c). Those
// tensors are measured against the norm of the whole gradient instead of their own.
static int eq_noise_tensor(const char *name) {
    return strstr(name, "key.bias") != NULL;
}

static void eq_compare_grads(const Model *ranks, const Model *single, EqResult *r) {
    const ParamTable *tab = &single->table;
    double total = 0;
    for (size_t i = 0; i < tab->n_floats; i++) total += (double)single->grads[i] * single->grads[i];
    total = sqrt(total);
    r->worst_rel = 0, r->noise_abs = 0, r->worst_tensor[0] = '\0';
    for (size_t i = 0; i < tab->n_tensors; i++) {
        const ParamTensor *p = &tab->tensors[i];
        GradError e = grad_error(ranks->grads + p->offset, 1, single->grads + p->offset, p->numel);
        if (eq_noise_tensor(p->name)) {
            r->noise_abs = fmax(r->noise_abs, e.max_abs / total);
        } else if (e.rel >= r->worst_rel) {
            r->worst_rel = e.rel;
            snprintf(r->worst_tensor, sizeof r->worst_tensor, "%s", p->name);
        }
    }
}

// One global batch (the first EQ_BATCH rows of path): loss and every parameter gradient.
// mini > 0: the ranks run cached MNRL in chunks of mini rows.
static EqResult eq_batch(MnrlDist *d, const Tokenizer *tok, const char *path, int mini) {
    TextTableFile f;
    table_file_read(path, &f);
    EqTrainer ranks, single;
    eq_open(&ranks, d, d->world, mini);
    EqResult r = {0};
    if (d->rank == 0) {
        eq_open(&single, NULL, 1, 0);
        r.loss_single = eq_step(&single, NULL, tok, &f, 0, 0);
    }
    r.loss_ranks = eq_step(&ranks, d, tok, &f, 0, 0);
    if (d->rank == 0) {
        eq_compare_grads(&ranks.m, &single.m, &r);
        eq_close(&single);
    }
    eq_close(&ranks);
    table_file_free(&f);
    return r;
}

// EQ_STEPS AdamW steps (warm-up 2, lr 1e-3, clip 1.0, decay 0.01), step s on table rows
// [s·B, (s+1)·B): the worst per-step loss difference; also the last step's gradients.
// mini as eq_batch.
static EqResult eq_trajectory(MnrlDist *d, const Tokenizer *tok, const char *path, int mini) {
    TextTableFile f;
    table_file_read(path, &f);
    CHECK((int)f.n_lines - 1 >= EQ_STEPS * EQ_BATCH);
    EqTrainer ranks, single;
    eq_open(&ranks, d, d->world, mini);
    if (d->rank == 0) eq_open(&single, NULL, 1, 0);
    AdamWOptions opt = {0.9f, 0.999f, 1e-8f, 0.01f, 1.0f};
    EqResult r = {0};
    for (int s = 0; s < EQ_STEPS; s++) {
        size_t first = (size_t)s * EQ_BATCH;
        float lr = mnrl_lr_warmup_linear(s, 2, EQ_STEPS, 1e-3f);
        double loss = eq_step(&ranks, d, tok, &f, first, (uint64_t)s);
        if (d->rank == 0) {
            double ref = eq_step(&single, NULL, tok, &f, first, (uint64_t)s);
            r.worst_step_loss = fmax(r.worst_step_loss, fabs(loss - ref));
            r.loss_single = ref, r.loss_ranks = loss;
            if (s + 1 == EQ_STEPS) eq_compare_grads(&ranks.m, &single.m, &r);
            model_optimizer_step(&single.m, lr, &opt);
            model_optimizer_finish(&single.m);
        }
        model_optimizer_step(&ranks.m, lr, &opt);
        model_optimizer_finish(&ranks.m);
    }
    if (d->rank == 0) eq_close(&single);
    eq_close(&ranks);
    table_file_free(&f);
    return r;
}

static void eq_print(const MnrlDist *d, const char *what, const EqResult *r) {
    printf("%d ranks x %d rows vs 1 x %d, %s: loss %.9g vs %.9g (diff %.3g), worst gradient relative "
           "error %.3g (%s), key-bias noise %.3g of the gradient norm",
           d->world, EQ_BATCH / d->world, EQ_BATCH, what, r->loss_ranks, r->loss_single,
           fabs(r->loss_ranks - r->loss_single), r->worst_rel, r->worst_tensor, r->noise_abs);
    if (r->worst_step_loss > 0) printf(", worst step loss diff %.3g over %d steps", r->worst_step_loss, EQ_STEPS);
    printf("\n");
}

// Joins the ranks (MPI launch) and loads the tokenizer; skips outside mpirun.
static void eq_start(MnrlDist *d, Tokenizer **tok) {
    if (!getenv("OMPI_COMM_WORLD_SIZE")) SKIP("run under Open MPI's mpirun (ctest -L mpi does)");
    MnrlDistConfig cfg = {.backend = MNRL_DIST_AUTO, .init_dir = "", .init_timeout_s = 60};
    // One thread per rank: ctest oversubscribes the cores with 2 or 4 ranks, where spinning
    // OpenMP threads of several ranks make the run ~30 times slower. (The single-process
    // reference runs on one thread too; the tolerances hold for any thread counts.)
    omp_set_num_threads(1);
    MnrlError err = {{0}};
    eq_dist = d;
    if (dist_init(d, &cfg, "", MNRL_DIST_HOST_MEMORY, &err) != 0 || tokenizer_load(EQ_MODEL, tok, &err) != 0) {
        eq_die(&err);
    }
}

#endif
