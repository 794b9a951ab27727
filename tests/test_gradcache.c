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

// Packs rows [first, first + B) of the table and runs the step; returns the loss.
static double side_step(Side *s, const Tokenizer *tok, const TextTableFile *f, size_t first, uint64_t step) {
    MnrlError err = {{0}};
    const char *texts[B * COLS];
    size_t lens[B * COLS];
    rows_column_major(f, first, B, texts, lens);
    CHECK_EQ_INT(batch_pack_texts(&s->step, tok, texts, lens, B * COLS), B * COLS);
    Model *m = &s->m;
    model_zero_grad(m);
    if (!s->mini) {
        if (model_forward(m, &s->step, 1, SEED, step, 0, &err)) die(&err);
        double loss = mnrl_loss_step(&s->loss, m->pooled, m->dpooled, B, COLS, m->C, m->workspace);
        model_backward(m, m->dpooled);
        return loss;
    }
    StepTexts st = {&s->step, B, COLS, SEED, step, 0};
    if (gradcache_step(m, &s->loss, &st, &s->chunk, &err)) die(&err);
    return mnrl_loss_read(&s->loss);
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

static void compare_step(const char *what, Side *c, Side *u, double loss_c, double loss_u) {
    double noise;
    const char *name = "";
    double rel = worst_tensor_error(&u->m.table, c->m.grads, u->m.grads, &noise, &name);
    printf("%-34s loss %.9g vs %.9g (rel %.2g) | worst gradient rel error %.2g (%s), key-bias noise %.2g\n", what,
           loss_c, loss_u, fabs(loss_c - loss_u) / fabs(loss_u), rel, name, noise);
    CHECK_MSG(fabs(loss_c - loss_u) <= 1e-5 * fabs(loss_u), "%s: loss %.9g vs %.9g", what, loss_c, loss_u);
    CHECK_MSG(rel <= 1e-5, "%s: %s gradient relative error %.3g", what, name, rel);
    CHECK_MSG(noise <= 1e-6, "%s: key-bias gradients differ by %.3g of the norm", what, noise);
}

static void compare_params(const char *what, Side *c, Side *u) {
    double noise;
    const char *name = "";
    double rel = worst_tensor_error(&u->m.table, c->m.params, u->m.params, &noise, &name);
    printf("%-34s worst parameter rel error after AdamW %.2g (%s)\n", what, rel, name);
    CHECK_MSG(rel <= 1e-5, "%s: %s parameters differ by %.3g relative after AdamW", what, name, rel);
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
        compare_step(what, &c, &u, loss_c, loss_u);
        model_optimizer_step(&c.m, 1e-3f, &opt);
        model_optimizer_finish(&c.m);
        model_optimizer_step(&u.m, 1e-3f, &opt);
        model_optimizer_finish(&u.m);
        compare_params(what, &c, &u);
    }
    printf("m=%d: activation arena %zu bytes cached, %zu uncached\n", mini, c.m.arena_bytes, u.m.arena_bytes);
    side_close(&c);
    side_close(&u);
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
    CHECK((int)f.n_lines - 1 >= 2 * B);
    for (int mini = 1; mini <= 3; mini++) check_cached(tok, &f, mini, mini * COLS * MAX_SEQ);
    check_cached(tok, &f, 3, MAX_SEQ);
    check_bad_chunks(tok, &f);
    table_file_free(&f);
    tokenizer_free(tok);
    TEST_END();
}
