// test_model.c — the whole encoder + MNRL loss on the CPU backend, against finite
// differences (no reference needed: the loss is a function of the parameters, and the
// analytic gradient of model_backward must be its derivative), with dropout off and on
// (a fixed (seed, step) makes the dropout masks constants); dropout reproducibility; no
// backend allocation inside a step; the AdamW step against a hand-written torch AdamW,
// the gradients it leaves zeroed, and the step it skips on a non-finite gradient norm.
//
// Model: tests/data/modelfiles/tiny_f32 (random BERT: 2 layers, hidden 32, 4 heads, FFN
// 64, vocab 100), a step of 3 rows x 3 columns (anchor, positive, 1 negative) with
// sentences of 2..9 tokens.
//
// Finite-difference tolerance: the CPU backend is fp32, so one loss evaluation carries a
// rounding error of a few 1e-7 relative (|L| ~ 1, 2 layers of sums of at most 64 terms);
// the central difference with step h turns that into ~1e-6/h ~ 1e-4 absolute noise for
// h = 1e-2, while its truncation error is ~h²·L'''/6 (L''' ~ 10..100 with scale 20)
// ~ 1e-3 relative. So an element passes when |fd - g| <= 2e-2·|g| + 3e-4, and every
// tensor's largest-gradient elements are among those checked (their |g| ≫ 3e-4, so
// those are relative checks). A wrong sign, a missing term or a swapped buffer gives
// errors of order |g|, far above this.
#include <stdlib.h>
#include <string.h>

#include "mnrl/batch.h"
#include "mnrl/loss.h"
#include "mnrl/model.h"
#include "test.h"

#define MODEL_DIR MNRL_TEST_DATA_DIR "/modelfiles/tiny_f32"
#define ROWS 3
#define COLS 3
#define SEED 1234u
#define STEP 7u

// ---- an ops table that counts backend allocations -------------------------------------------
static int alloc_calls = 0;
static int (*cpu_alloc)(void **, size_t, MnrlError *);
static int counting_alloc(void **out, size_t bytes, MnrlError *err) {
    alloc_calls++;
    return cpu_alloc(out, bytes, err);
}
static MnrlOps counting_ops;

// A step of ROWS x COLS sentences with fixed pseudo-random ids (vocab 100, [CLS]=1-style
// first token kept in range) and lengths 2..9, packed the way batch.c packs rows.
static void make_step(PackedBatch *pb) {
    uint64_t state = 42;
    pb->S = pb->T = pb->max_len = 0;
    pb->rows = ROWS;
    pb->cols = COLS;
    pb->cu_seqlens[0] = 0;
    for (int s = 0; s < ROWS * COLS; s++) {
        int len = 2 + (int)mnrl_rand_below(&state, 8);
        for (int i = 0; i < len; i++) pb->ids[pb->T + i] = (int32_t)mnrl_rand_below(&state, 100);
        pb->T += len;
        pb->S++;
        pb->cu_seqlens[pb->S] = pb->T;
        if (len > pb->max_len) pb->max_len = len;
    }
}

static double loss_at(Model *m, MnrlLoss *loss, const PackedBatch *pb, int training, uint64_t step,
                      uint32_t rank) {
    MnrlError err = {{0}};
    int rc = model_forward(m, pb, training, SEED, step, rank, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    return mnrl_loss_step(loss, m->pooled, NULL, pb->rows, pb->cols, m->C, m->workspace);
}

// Analytic gradient of the step's loss into grads (host, n_floats).
static double gradient(Model *m, MnrlLoss *loss, const PackedBatch *pb, int training, float *grads) {
    MnrlError err = {{0}};
    model_zero_grad(m);
    int rc = model_forward(m, pb, training, SEED, STEP, 0, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    double l = mnrl_loss_step(loss, m->pooled, m->dpooled, pb->rows, pb->cols, m->C, m->workspace);
    model_backward(m, m->dpooled);
    m->ops->download(grads, m->grads, m->table.n_floats * sizeof(float));
    return l;
}

static int all_zero(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (x[i] != 0.0f) return 0;
    return 1;
}

// Indices (within tensor t) of its n_top largest |g| plus one pseudo-random element.
static int pick_elements(const ParamTensor *t, const float *g, size_t *out, int n_top, uint64_t *state) {
    int n = 0;
    for (int k = 0; k < n_top; k++) {
        size_t best = 0;
        float best_abs = -1.0f;
        for (size_t i = 0; i < t->numel; i++) {
            float a = fabsf(g[t->offset + i]);
            int taken = 0;
            for (int j = 0; j < n; j++) taken |= out[j] == i;
            if (!taken && a > best_abs) best_abs = a, best = i;
        }
        out[n++] = best;
    }
    out[n++] = (size_t)mnrl_rand_below(state, t->numel);
    return n;
}

// Central differences on sampled elements of every tensor; returns the worst relative
// error among elements with |g| > 1e-2 (printed), counting failures through CHECK.
static double finite_difference_check(Model *m, MnrlLoss *loss, const PackedBatch *pb, int training) {
    size_t n = m->table.n_floats;
    float *params = mnrl_malloc(n * sizeof(float)), *grads = mnrl_malloc(n * sizeof(float));
    model_params_host(m, params);
    double l0 = gradient(m, loss, pb, training, grads);
    const double h = 1e-2, rtol = 2e-2, atol = 3e-4;
    double worst_rel = 0.0;
    int checked = 0;
    uint64_t state = 7;
    for (size_t ti = 0; ti < m->table.n_tensors; ti++) {
        const ParamTensor *t = &m->table.tensors[ti];
        size_t picks[4];
        int np = pick_elements(t, grads, picks, 3, &state);
        for (int k = 0; k < np; k++) {
            size_t at = t->offset + picks[k];
            float saved = params[at];
            params[at] = saved + (float)h;
            model_set_params(m, params);
            double lp = loss_at(m, loss, pb, training, STEP, 0);
            params[at] = saved - (float)h;
            model_set_params(m, params);
            double lm = loss_at(m, loss, pb, training, STEP, 0);
            params[at] = saved;
            // The actual step taken is the fp32 difference, not h.
            double step = (double)(saved + (float)h) - (double)(saved - (float)h);
            double fd = (lp - lm) / step, g = grads[at];
            double diff = fabs(fd - g);
            CHECK_MSG(diff <= rtol * fabs(g) + atol, "%s[%zu]: finite difference %.6g, backward %.6g",
                      t->name, picks[k], fd, g);
            if (fabs(g) > 1e-2 && diff / fabs(g) > worst_rel) worst_rel = diff / fabs(g);
            checked++;
        }
    }
    model_set_params(m, params);
    printf("finite differences (%s): loss %.6f, %d elements of %zu tensors, worst relative error %.3g "
           "(|g| > 1e-2)\n", training ? "dropout 0.1" : "dropout off", l0, checked, m->table.n_tensors,
           worst_rel);
    free(params);
    free(grads);
    return worst_rel;
}

static void test_dropout(Model *m, MnrlLoss *loss, const PackedBatch *pb) {
    MnrlError err = {{0}};
    double a = loss_at(m, loss, pb, 1, STEP, 0), b = loss_at(m, loss, pb, 1, STEP, 0);
    CHECK_MSG(a == b, "same (seed, step): %.9g vs %.9g", a, b);
    double other_step = loss_at(m, loss, pb, 1, STEP + 1, 0), other_rank = loss_at(m, loss, pb, 1, STEP, 1);
    double eval = loss_at(m, loss, pb, 0, STEP, 0);
    CHECK_MSG(other_step != a, "step %u and %u give the same dropout loss %.9g", STEP, STEP + 1, a);
    CHECK_MSG(other_rank != a, "ranks 0 and 1 give the same dropout loss %.9g", a);
    CHECK_MSG(eval != a, "dropout 0.1 gives the eval-mode loss %.9g", a);
    CHECK(model_set_dropout(m, 0.0f, 0.0f, &err) == 0);
    double off = loss_at(m, loss, pb, 1, STEP, 0);
    CHECK_MSG(off == eval, "train mode with dropout 0: %.9g, eval mode: %.9g", off, eval);
    CHECK(model_set_dropout(m, 1.0f, 0.1f, &err) == -1);
    CHECK_CONTAINS(err.msg, "dropout probabilities must be in [0, 1)");
    CHECK(model_set_dropout(m, 0.1f, 0.1f, &err) == 0);
    printf("dropout: loss %.6f (step %u), %.6f (step %u), %.6f (rank 1), eval %.6f\n", a, STEP, other_step,
           STEP + 1, other_rank, eval);
}

// torch.optim.AdamW's step in double, written out from its documentation.
static void reference_adamw(double *p, double *mo, double *v, const float *g, size_t n, double lr,
                            const AdamWOptions *o, int decay, int step) {
    double bc1 = 1.0 - pow(o->beta1, step), bc2 = 1.0 - pow(o->beta2, step);
    for (size_t i = 0; i < n; i++) {
        if (decay) p[i] -= lr * o->weight_decay * p[i];
        mo[i] = o->beta1 * mo[i] + (1.0 - o->beta1) * g[i];
        v[i] = o->beta2 * v[i] + (1.0 - o->beta2) * (double)g[i] * g[i];
        p[i] -= lr / bc1 * mo[i] / (sqrt(v[i]) / sqrt(bc2) + o->eps);
    }
}

// Two optimizer steps with clipping; parameters compared with a double AdamW per tensor
// (decay only on the table's decay tensors), and no backend allocation in any step.
static void test_optimizer_and_allocations(Model *m, MnrlLoss *loss, const PackedBatch *pb) {
    size_t n = m->table.n_floats;
    float *p0 = mnrl_malloc(n * sizeof(float)), *g = mnrl_malloc(n * sizeof(float));
    float *p1 = mnrl_malloc(n * sizeof(float)), *g1 = mnrl_malloc(n * sizeof(float));
    double *p = mnrl_malloc(n * sizeof(double)), *mo = mnrl_calloc(n, sizeof(double));
    double *v = mnrl_calloc(n, sizeof(double));
    model_params_host(m, p0);
    for (size_t i = 0; i < n; i++) p[i] = p0[i];
    AdamWOptions opt = {0.9f, 0.999f, 1e-6f, 0.01f, 0.05f};
    int allocs_before = alloc_calls;
    double max_err = 0.0;
    for (int step = 1; step <= 2; step++) {
        gradient(m, loss, pb, 1, g);
        double norm = 0.0;
        for (size_t i = 0; i < n; i++) norm += (double)g[i] * g[i];
        norm = sqrt(norm);
        model_optimizer_step(m, 1e-3f, &opt);
        float reported = model_optimizer_finish(m);
        CHECK_MSG(fabs(reported - norm) <= 1e-5 * norm, "grad norm %.9g vs %.9g", reported, norm);
        m->ops->download(g1, m->grads, n * sizeof(float));
        CHECK_MSG(all_zero(g1, n), "step %d left gradients that are not zero for the next backward", step);
        double clip = norm > opt.max_grad_norm ? opt.max_grad_norm / (norm + 1e-6) : 1.0;
        CHECK(clip < 1.0);  // the test must exercise clipping
        for (size_t i = 0; i < n; i++) g[i] = (float)(g[i] * clip);
        for (size_t ti = 0; ti < m->table.n_tensors; ti++) {
            const ParamTensor *t = &m->table.tensors[ti];
            reference_adamw(p + t->offset, mo + t->offset, v + t->offset, g + t->offset, t->numel, 1e-3,
                            &opt, t->decay, step);
        }
        model_params_host(m, p1);
        for (size_t i = 0; i < n; i++) max_err = fmax(max_err, fabs(p1[i] - p[i]));
    }
    CHECK_MSG(max_err < 2e-6, "AdamW parameters differ from the double reference by %.3g", max_err);
    CHECK_EQ_INT(alloc_calls, allocs_before);
    CHECK_EQ_INT(m->adam_step, 2);
    printf("AdamW: 2 steps with clipping, max |p - p_ref| %.3g; %d backend allocations at create, %d in steps\n",
           max_err, allocs_before, alloc_calls - allocs_before);
    model_set_params(m, p0);
    free(p0), free(g), free(p1), free(g1), free(p), free(mo), free(v);
}

// The host copy of a backend buffer of n floats.
static float *host_floats(const Model *m, const float *buf, size_t n) {
    float *host = mnrl_malloc(n * sizeof(float));
    m->ops->download(host, buf, n * sizeof(float));
    return host;
}

// A non-finite gradient norm (a NaN gradient) skips the step: weights, moments and
// adam_step unchanged, the gradients zeroed; the next step is taken as usual.
static void test_skipped_step(Model *m, MnrlLoss *loss, const PackedBatch *pb) {
    size_t n = m->table.n_floats;
    AdamWOptions opt = {0.9f, 0.999f, 1e-6f, 0.01f, 1.0f};
    float *g = mnrl_malloc(n * sizeof(float));
    gradient(m, loss, pb, 1, g);
    g[m->table.layers[0].qkv_w] = NAN;
    m->ops->upload(m->grads, g, n * sizeof(float));
    float *p0 = host_floats(m, m->params, n), *mo0 = host_floats(m, m->adam_m, n);
    float *v0 = host_floats(m, m->adam_v, n);
    long steps = m->adam_step;
    model_optimizer_step(m, 1e-3f, &opt);
    CHECK(isnan(model_optimizer_finish(m)));
    float *p1 = host_floats(m, m->params, n), *mo1 = host_floats(m, m->adam_m, n);
    float *v1 = host_floats(m, m->adam_v, n), *g1 = host_floats(m, m->grads, n);
    CHECK_MSG(memcmp(p0, p1, n * sizeof(float)) == 0, "a skipped step changed the parameters");
    CHECK_MSG(memcmp(mo0, mo1, n * sizeof(float)) == 0 && memcmp(v0, v1, n * sizeof(float)) == 0,
              "a skipped step changed the moments");
    CHECK_EQ_INT(m->adam_step, steps);
    CHECK_MSG(all_zero(g1, n), "a skipped step left gradients that are not zero");
    gradient(m, loss, pb, 1, g);
    model_optimizer_step(m, 1e-3f, &opt);
    CHECK(isfinite(model_optimizer_finish(m)));
    CHECK_EQ_INT(m->adam_step, steps + 1);
    printf("a NaN gradient: step skipped (weights, moments, adam_step %ld kept, gradients zeroed); the next "
           "step counted\n", steps);
    free(g), free(p0), free(mo0), free(v0), free(p1), free(mo1), free(v1), free(g1);
}

static void test_bad_inputs(Model *m, PackedBatch *pb) {
    MnrlError err = {{0}};
    int32_t saved = pb->ids[3];
    pb->ids[3] = 100;
    CHECK(model_forward(m, pb, 0, SEED, STEP, 0, &err) == -1);
    CHECK_CONTAINS(err.msg, "token id 100 is outside the model's vocabulary of 100");
    pb->ids[3] = saved;
    ModelLimits too_long = {64, 8, 41, 4, 8, 0};
    Model other;
    CHECK(model_create(&other, MODEL_DIR, ops_cpu(), &too_long, &err) == -1);
    CHECK_CONTAINS(err.msg, "max_seq_length 41 exceeds the model's max_position_embeddings 40");
}

int main(void) {
    counting_ops = *ops_cpu();
    cpu_alloc = counting_ops.alloc;
    counting_ops.alloc = counting_alloc;
    ModelLimits limits = {.max_tokens = ROWS * COLS * 16, .max_seqs = ROWS * COLS, .max_seqlen = 16,
                          .max_anchors = ROWS, .max_candidates = ROWS * (COLS - 1)};
    Model m;
    MnrlLoss loss;
    PackedBatch pb;
    MnrlError err = {{0}};
    int rc = model_create(&m, MODEL_DIR, &counting_ops, &limits, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc != 0) TEST_END();
    CHECK(mnrl_loss_init(&loss, &counting_ops, 20.0f, &err) == 0);
    CHECK(batch_init(&pb, limits.max_seqs, limits.max_tokens, limits.max_seqlen, &err) == 0);
    make_step(&pb);
    CHECK(m.hidden_keep == 0.9f && m.attn_keep == 0.9f);  // config.json's 0.1

    double rel_off = finite_difference_check(&m, &loss, &pb, 0);
    double rel_on = finite_difference_check(&m, &loss, &pb, 1);
    CHECK(rel_off < 2e-2 && rel_on < 2e-2);
    test_dropout(&m, &loss, &pb);
    test_optimizer_and_allocations(&m, &loss, &pb);
    test_skipped_step(&m, &loss, &pb);
    test_bad_inputs(&m, &pb);

    batch_free(&pb);
    mnrl_loss_free(&loss);
    model_free(&m);
    TEST_END();
}
