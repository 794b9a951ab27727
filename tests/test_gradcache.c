// test_gradcache.c — cached MNRL (gradcache.h) against the uncached step, CPU backend, fp32,
// dropout on (0.1, the tiny parity model's config.json): 7 rows of (anchor, positive, 2 hard
// negatives) from tests/data/dist/triplets_k2.tsv, chunks of m = 1, 2 and 3 rows (3 + 3 + 1:
// an odd remainder) with room for m rows of texts, and m = 3 with room for only 64 tokens
// (chunks cut by tokens, 2 to 12 sentences, not at row boundaries).
//
// The uncached reference is model_forward + mnrl_loss_step + model_backward on the whole
// step (what train.c did before gradcache.c), on a model of its own sized for the step.
// Checks, on the first batch and again on the second after one AdamW step of both models:
//   - the loss and every parameter gradient within 1e-5 relative (per tensor; the key
//     biases, whose exact gradient is 0, within 1e-6 of the gradient norm, as
//     test_mpi_equivalence);
//   - after the AdamW step, the parameters within 1e-5 relative per tensor.
// Error analysis: the chunks run the same per-token arithmetic as the whole step (the
// dropout masks are drawn by each token's row in the step, ops.h), so the pooled
// embeddings and the loss agree to rounding of the row-wise GEMMs (fp32, ~1e-7); the
// parameter gradients are sums over the step's tokens that the chunking splits into
// partial sums accumulated in fp32, a reordering worth ~sqrt(tokens)·2^-24 ≈ 1e-6
// relative on this step of ~500 tokens. A chunk drawing other dropout masks changes the
// gradients by far more: model.c without the hidden-dropout offset gave errors of 1.6
// relative, without the attention one 0.34 (and losses off by 1e-3 to 5e-2).
// Also: the cached model's activation arena is smaller, and bad chunk buffers fail
// cleanly.
//
// Gradient accumulation (train.grad_accum_steps; train.c): N = 2 and 3 micro-batches of B
// rows (rows [jB, (j+1)B)), uncached and cached (m = 2), each through gradcache_step with
// its loss divided by N (mnrl_loss_set_micro_batches) and the dropout step
// gradcache_micro_step(4, N, j), the gradients accumulating, against each micro-batch run
// alone (N = 1) on a second model with the same dropout step, the gradients averaged in
// fp64: the summed losses and the accumulated gradients (per tensor) equal the mean losses
// and gradients, and after one AdamW step (the second model's taken with the mean
// gradient) so do the parameters: within 1e-6 relative for N = 2, 4e-6 for N = 3.
// Error analysis: the backward pass is linear in the loss's gradient, so the two differ by
// rounding only. Scaling by 1/2 is exact in binary and changes no rounding (measured:
// 1.6e-7 worst, from the fp32 sum over micro-batches); scaling by 1/3 changes every
// rounding of the backward, whose weight gradients are fp32 sums over the ~500 tokens of a
// micro-batch, ~sqrt(500)·2^-24 ≈ 1.3e-6 (measured: 1.4e-6 worst per tensor, 8e-7 over the
// whole gradient). Forgetting the 1/N makes every gradient N times too large (relative
// error N - 1).
#include "mnrl/gradcache.h"
// The parity tests' helpers (text tables, gradient errors); not all of them are used here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "model_parity.h"
#pragma GCC diagnostic pop

#define MODEL PARITY_DIR "/tiny"
#define ROWS_FILE MNRL_TEST_DATA_DIR "/dist/triplets_k2.tsv"
#define B 7
#define COLS 4
#define MAX_SEQ 64
#define SEED 99u

// One trainer: its own model, loss, step packing and (cached) chunk buffer.
typedef struct {
    Model m;
    MnrlLoss loss;
    PackedBatch step, chunk;
    int mini;  // rows per chunk; 0: uncached
} Side;

static void die(const MnrlError *err) {
    fprintf(stderr, "%s\n", err->msg);
    exit(1);
}

static void side_open(Side *s, int mini, int chunk_tokens) {
    MnrlError err = {{0}};
    memset(s, 0, sizeof *s);
    s->mini = mini;
    ModelLimits limits = {.max_tokens = B * COLS * MAX_SEQ, .max_seqs = B * COLS, .max_seqlen = MAX_SEQ,
                          .max_anchors = B, .max_candidates = B * (COLS - 1), .max_step_seqs = B * COLS};
    if (mini) {
        limits.max_seqs = mini * COLS;
        limits.max_tokens = chunk_tokens;
        if (batch_init(&s->chunk, limits.max_seqs, limits.max_tokens, MAX_SEQ, &err)) die(&err);
    }
    if (model_create(&s->m, MODEL, ops_cpu(), &limits, &err) || mnrl_loss_init(&s->loss, ops_cpu(), 20.0f, &err) ||
        batch_init(&s->step, B * COLS, B * COLS * MAX_SEQ, MAX_SEQ, &err)) {
        die(&err);
    }
}

static void side_close(Side *s) {
    if (s->mini) batch_free(&s->chunk);
    batch_free(&s->step);
    mnrl_loss_free(&s->loss);
    model_free(&s->m);
}

// Packs rows [first, first + B) of the table into s->step.
static void side_pack(Side *s, const Tokenizer *tok, const TextTableFile *f, size_t first) {
    const char *texts[B * COLS];
    size_t lens[B * COLS];
    rows_column_major(f, first, B, texts, lens);
    CHECK_EQ_INT(batch_pack_texts(&s->step, tok, texts, lens, B * COLS), B * COLS);
}

// gradcache_step on the packed rows (cached when s->mini), the gradients accumulating;
// returns the loss.
static double side_gradcache(Side *s, uint64_t step) {
    MnrlError err = {{0}};
    StepTexts st = {&s->step, B, COLS, SEED, step, 0};
    if (gradcache_step(&s->m, &s->loss, &st, s->mini ? &s->chunk : NULL, &err)) die(&err);
    return mnrl_loss_read(&s->loss);
}

// Packs rows [first, first + B) of the table and runs the step; returns the loss.
static double side_step(Side *s, const Tokenizer *tok, const TextTableFile *f, size_t first, uint64_t step) {
    MnrlError err = {{0}};
    side_pack(s, tok, f, first);
    Model *m = &s->m;
    model_zero_grad(m);
    if (s->mini) return side_gradcache(s, step);
    if (model_forward(m, &s->step, 1, SEED, step, 0, &err)) die(&err);
    double loss = mnrl_loss_step(&s->loss, m->pooled, m->dpooled, B, COLS, m->C, m->workspace);
    model_backward(m, m->dpooled);
    return loss;
}

// A key bias shifts every score of a query row alike, which softmax ignores: its exact
// gradient is 0 and both sides hold rounding noise.
static int noise_tensor(const char *name) { return strstr(name, "key.bias") != NULL; }

static double norm_of(const float *x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return sqrt(s);
}

// Worst per-tensor relative error of a (the cached side) against ref; noise tensors into
// *noise against the whole of ref's norm.
static double worst_tensor_error(const ParamTable *tab, const float *a, const float *ref, double *noise,
                                 const char **worst_name) {
    double total = norm_of(ref, tab->n_floats), worst = 0;
    *noise = 0;
    for (size_t i = 0; i < tab->n_tensors; i++) {
        const ParamTensor *p = &tab->tensors[i];
        GradError e = grad_error(a + p->offset, 1, ref + p->offset, p->numel);
        if (noise_tensor(p->name)) {
            *noise = fmax(*noise, e.max_abs / total);
        } else if (e.rel >= worst) {
            worst = e.rel;
            *worst_name = p->name;
        }
    }
    return worst;
}

static void compare_step(const char *what, Side *c, Side *u, double loss_c, double loss_u, double tol) {
    double noise;
    const char *name = "";
    double rel = worst_tensor_error(&u->m.table, c->m.grads, u->m.grads, &noise, &name);
    printf("%-34s loss %.9g vs %.9g (rel %.2g) | worst gradient rel error %.2g (%s), key-bias noise %.2g\n", what,
           loss_c, loss_u, fabs(loss_c - loss_u) / fabs(loss_u), rel, name, noise);
    CHECK_MSG(fabs(loss_c - loss_u) <= tol * fabs(loss_u), "%s: loss %.9g vs %.9g", what, loss_c, loss_u);
    CHECK_MSG(rel <= tol, "%s: %s gradient relative error %.3g", what, name, rel);
    CHECK_MSG(noise <= 1e-6, "%s: key-bias gradients differ by %.3g of the norm", what, noise);
}

static void compare_params(const char *what, Side *c, Side *u, double tol) {
    double noise;
    const char *name = "";
    double rel = worst_tensor_error(&u->m.table, c->m.params, u->m.params, &noise, &name);
    printf("%-34s worst parameter rel error after AdamW %.2g (%s)\n", what, rel, name);
    CHECK_MSG(rel <= tol, "%s: %s parameters differ by %.3g relative after AdamW", what, name, rel);
}

// Cached with chunks of mini rows (chunk_tokens tokens) against uncached, two steps.
static void check_cached(const Tokenizer *tok, const TextTableFile *f, int mini, int chunk_tokens) {
    Side c, u;
    side_open(&c, mini, chunk_tokens);
    side_open(&u, 0, 0);
    CHECK(c.m.hidden_keep < 1.0f && c.m.attn_keep < 1.0f);  // dropout on
    CHECK_MSG(c.m.arena_bytes < u.m.arena_bytes, "cached arena %zu bytes, uncached %zu", c.m.arena_bytes,
              u.m.arena_bytes);
    char what[96];
    AdamWOptions opt = {0.9f, 0.999f, 1e-8f, 0.01f, 1.0f};
    for (int s = 0; s < 2; s++) {
        double loss_c = side_step(&c, tok, f, (size_t)s * B, 10u + (uint64_t)s);
        double loss_u = side_step(&u, tok, f, (size_t)s * B, 10u + (uint64_t)s);
        snprintf(what, sizeof what, "m=%d, %d-token chunks, step %d", mini, chunk_tokens, s + 1);
        compare_step(what, &c, &u, loss_c, loss_u, 1e-5);
        model_optimizer_step(&c.m, 1e-3f, &opt);
        model_optimizer_finish(&c.m);
        model_optimizer_step(&u.m, 1e-3f, &opt);
        model_optimizer_finish(&u.m);
        compare_params(what, &c, &u, 1e-5);
    }
    printf("m=%d: activation arena %zu bytes cached, %zu uncached\n", mini, c.m.arena_bytes, u.m.arena_bytes);
    side_close(&c);
    side_close(&u);
}

// n_micro micro-batches accumulated on one side (chunks of mini rows; 0: uncached) against
// each run alone on the other, its gradients averaged; then one AdamW step of each.
static void check_accumulated(const Tokenizer *tok, const TextTableFile *f, int n_micro, int mini) {
    Side a, r;
    side_open(&a, mini, mini * COLS * MAX_SEQ);
    side_open(&r, mini, mini * COLS * MAX_SEQ);
    size_t n = a.m.table.n_floats;
    double *sum = calloc(n, sizeof *sum), loss_a = 0, loss_r = 0;
    float *mean = malloc(n * sizeof *mean);
    const uint64_t step = 4;  // the optimizer step (0-based)
    model_zero_grad(&a.m);
    mnrl_loss_set_micro_batches(&a.loss, n_micro);
    for (int j = 0; j < n_micro; j++) {
        uint64_t dropout_step = gradcache_micro_step(step, n_micro, j);
        side_pack(&a, tok, f, (size_t)j * B);
        loss_a += side_gradcache(&a, dropout_step);
        side_pack(&r, tok, f, (size_t)j * B);
        model_zero_grad(&r.m);
        loss_r += side_gradcache(&r, dropout_step) / n_micro;
        r.m.ops->download(mean, r.m.grads, n * sizeof *mean);
        for (size_t i = 0; i < n; i++) sum[i] += mean[i];
    }
    for (size_t i = 0; i < n; i++) mean[i] = (float)(sum[i] / n_micro);
    r.m.ops->upload(r.m.grads, mean, n * sizeof *mean);
    char what[96];
    snprintf(what, sizeof what, "%d micro-batches%s", n_micro, mini ? ", cached m=2" : "");
    double tol = n_micro == 2 ? 1e-6 : 4e-6;
    compare_step(what, &a, &r, loss_a, loss_r, tol);
    AdamWOptions opt = {0.9f, 0.999f, 1e-8f, 0.01f, 1.0f};
    model_optimizer_step(&a.m, 1e-3f, &opt);
    model_optimizer_finish(&a.m);
    model_optimizer_step(&r.m, 1e-3f, &opt);
    model_optimizer_finish(&r.m);
    compare_params(what, &a, &r, tol);
    free(sum);
    free(mean);
    side_close(&a);
    side_close(&r);
}

// A rows x cols that is not the packing, and a chunk buffer a sentence does not fit, fail
// with a message instead of running.
static void check_bad_chunks(const Tokenizer *tok, const TextTableFile *f) {
    Side c;
    side_open(&c, 2, 2 * COLS * MAX_SEQ);
    const char *texts[B * COLS];
    size_t lens[B * COLS];
    rows_column_major(f, 0, B, texts, lens);
    CHECK_EQ_INT(batch_pack_texts(&c.step, tok, texts, lens, B * COLS), B * COLS);
    MnrlError err = {{0}};
    StepTexts st = {&c.step, B - 1, COLS, SEED, 0, 0};
    CHECK_EQ_INT(gradcache_step(&c.m, &c.loss, &st, &c.chunk, &err), -1);
    CHECK_CONTAINS(err.msg, "6 rows x 4 texts do not match the 28 packed sentences");
    PackedBatch small;
    CHECK(batch_init(&small, 8, 2, 2, &err) == 0);
    st.rows = B;
    CHECK_EQ_INT(gradcache_step(&c.m, &c.loss, &st, &small, &err), -1);
    CHECK_CONTAINS(err.msg, "does not fit a chunk of 2 tokens");
    batch_free(&small);
    side_close(&c);
}

int main(void) {
    Tokenizer *tok = NULL;
    MnrlError err = {{0}};
    if (tokenizer_load(MODEL, &tok, &err)) die(&err);
    TextTableFile f;
    table_file_read(ROWS_FILE, &f);
    CHECK_EQ_INT(f.n_cols, COLS);
    CHECK((int)f.n_lines - 1 >= 3 * B);
    for (int mini = 1; mini <= 3; mini++) check_cached(tok, &f, mini, mini * COLS * MAX_SEQ);
    check_cached(tok, &f, 3, MAX_SEQ);
    // The distinct dropout steps of accumulated micro-batches, and none for N = 1.
    CHECK_EQ_INT(gradcache_micro_step(4, 1, 0), 4);
    CHECK_EQ_INT(gradcache_micro_step(4, 3, 0), 12);
    CHECK_EQ_INT(gradcache_micro_step(4, 3, 2), 14);
    CHECK_EQ_INT(gradcache_micro_step(5, 3, 0), 15);
    for (int n_micro = 2; n_micro <= 3; n_micro++) check_accumulated(tok, &f, n_micro, 0);
    check_accumulated(tok, &f, 2, 2);
    check_accumulated(tok, &f, 3, 2);
    check_bad_chunks(tok, &f);
    table_file_free(&f);
    tokenizer_free(tok);
    TEST_END();
}
