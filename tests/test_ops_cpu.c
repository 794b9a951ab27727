// test_ops_cpu.c — every op of the CPU backend against torch goldens (forward and backward;
// tests/reference/make_ops_goldens.py computes them in float64 with torch's own functions),
// Philox known answers, and identities: dropout at keep 1, mask reproducibility and rate,
// AdamW at lr 0, clipping of small gradients, skipped steps, thread-count independence.
//
// Tolerance: fp32 against float64 goldens. An element passes when
//   |got - want| <= rtol · (|want| + 0.01 · max|want|),
// i.e. relative to the element, with a floor of 1% of the tensor's scale so that entries
// that cancel to near zero (sums of many signed terms) are judged on the tensor's scale.
// rtol is 1e-5 for everything (fp32 rounding over sums of <= 64 terms stays near 1e-6).
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "mnrl/common.h"
#include "mnrl/ops.h"
#include "mnrl/rng.h"
#include "test.h"

#define RTOL 1e-5

// ---- golden file ------------------------------------------------------------------------

typedef struct {
    char name[64];
    size_t count;
    float *data;
} Golden;

static Golden goldens[256];
static int golden_count;

static uint32_t read_u32(const unsigned char **p) {
    uint32_t v = (uint32_t)(*p)[0] | (uint32_t)(*p)[1] << 8 | (uint32_t)(*p)[2] << 16 |
                 (uint32_t)(*p)[3] << 24;
    *p += 4;
    return v;
}

static void load_goldens(const char *path) {
    char *raw;
    size_t len;
    MnrlError err;
    if (mnrl_read_file(path, &raw, &len, &err) != 0) SKIP("%s", err.msg);
    const unsigned char *p = (const unsigned char *)raw, *end = p + len;
    if (len < 8 || memcmp(p, "MNRLGLD1", 8) != 0) SKIP("%s: not a golden file", path);
    p += 8;
    // Every length is checked against what is left, so a damaged file fails cleanly.
#define NEED(bytes)                                                                  \
    do {                                                                             \
        if ((size_t)(end - p) < (size_t)(bytes)) {                                   \
            fprintf(stderr, "%s: truncated record %d\n", path, golden_count);        \
            exit(1);                                                                 \
        }                                                                            \
    } while (0)
    while (p < end && golden_count < 256) {
        Golden *g = &goldens[golden_count++];
        NEED(4);
        uint32_t name_len = read_u32(&p);
        NEED(name_len + 4);
        memcpy(g->name, p, name_len < 63 ? name_len : 63);
        p += name_len;
        uint32_t ndim = read_u32(&p);
        NEED(4 * (size_t)ndim);
        g->count = 1;
        for (uint32_t d = 0; d < ndim; d++) g->count *= read_u32(&p);
        NEED(g->count * sizeof(float));
        g->data = mnrl_malloc(g->count * sizeof(float) + 1);
        memcpy(g->data, p, g->count * sizeof(float));  // little-endian host assumed (x86/ARM)
        p += g->count * sizeof(float);
    }
#undef NEED
    free(raw);
}

// The golden tensor called name, which must hold count elements (count 0: any).
static float *golden(const char *name, size_t count) {
    for (int i = 0; i < golden_count; i++)
        if (strcmp(goldens[i].name, name) == 0) {
            CHECK_MSG(count == 0 || goldens[i].count == count, "%s: %zu elements, expected %zu",
                      name, goldens[i].count, count);
            return goldens[i].data;
        }
    fprintf(stderr, "golden %s missing; rerun tests/reference/make_ops_goldens.py\n", name);
    exit(1);
}

static float *copy_of(const float *src, size_t n) {
    float *dst = mnrl_malloc(n * sizeof(float));
    memcpy(dst, src, n * sizeof(float));
    return dst;
}

static float *zeros(size_t n) { return mnrl_calloc(n ? n : 1, sizeof(float)); }

static int32_t *int_golden(const char *name, size_t n) {
    const float *f = golden(name, n);
    int32_t *out = mnrl_malloc(n * sizeof(int32_t));
    for (size_t i = 0; i < n; i++) out[i] = (int32_t)f[i];
    return out;
}

// One CHECK per tensor; prints the worst element when it fails.
static void check_close(const char *what, const float *got, const float *want, size_t n,
                        double rtol) {
    double scale = 0.0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(want[i]));
    double worst = 0.0;
    size_t worst_i = 0;
    for (size_t i = 0; i < n; i++) {
        double excess = fabs((double)got[i] - want[i]) / (fabs(want[i]) + 0.01 * scale + 1e-30);
        if (!(excess <= worst)) worst = excess, worst_i = i;
    }
    CHECK_MSG(worst <= rtol, "%s: element %zu = %.9g, golden %.9g (relative error %.3g > %g)",
              what, worst_i, got[worst_i], want[worst_i], worst, rtol);
}

static void check_equal(const char *what, const float *a, const float *b, size_t n) {
    CHECK_MSG(memcmp(a, b, n * sizeof(float)) == 0, "%s: not bitwise identical", what);
}

// ---- the packed batch of the goldens: sentences of 1, 2, 5 and 33 tokens -----------------

enum { S = 4, T = 41, MAXLEN = 33 };
static int32_t *cu;

static void test_embedding(const MnrlOps *ops) {
    enum { C = 40, V = 50, P = 40 };
    int32_t *ids = int_golden("emb.ids", T);
    float *out = zeros(T * C), *dwte = zeros(V * C), *dwpe = zeros(P * C), *dwtt = zeros(2 * C);
    ops->embedding_forward(out, ids, cu, S, T, golden("emb.wte", V * C),
                           golden("emb.wpe", P * C), golden("emb.wtt", 2 * C), C);
    check_close("embedding out", out, golden("emb.out", T * C), T * C, RTOL);
    const float *dout = golden("emb.dout", T * C);
    ops->embedding_backward(dwte, dwpe, dwtt, dout, ids, cu, S, T, C, NULL);
    check_close("embedding dwte", dwte, golden("emb.dwte", V * C), V * C, RTOL);
    check_close("embedding dwpe", dwpe, golden("emb.dwpe", P * C), P * C, RTOL);
    check_close("embedding dwtt", dwtt, golden("emb.dwtt", 2 * C), 2 * C, RTOL);
    // A second backward accumulates: the gradients double.
    float *twice = copy_of(golden("emb.dwte", V * C), V * C);
    for (int i = 0; i < V * C; i++) twice[i] *= 2.0f;
    ops->embedding_backward(dwte, dwpe, dwtt, dout, ids, cu, S, T, C, NULL);
    check_close("embedding dwte accumulates", dwte, twice, V * C, RTOL);
    free(ids), free(out), free(dwte), free(dwpe), free(dwtt), free(twice);
}

// The dropout fused into the residual LayerNorm (ops.h) gives bit for bit what the separate
// ops give: dropout(b), then the add; in backward the plain LayerNorm backward, dropout of
// its dinp, and that tensor's column sums. The mask starts at an element that is not a
// multiple of 4 (a Philox block boundary), as a cached-MNRL chunk's may.
static void test_residual_dropout(const MnrlOps *ops, const float *a, const float *b, const float *dout,
                                  const float *w, const float *bias, float eps) {
    enum { C = 40 };
    const MnrlDropout drop = {.keep_prob = 0.7f, .seed = 99, .stream = 5, .first = 4 * C + 3};
    float *res = zeros(T * C), *out = zeros(T * C), *mean = zeros(T), *rstd = zeros(T);
    float *want_res = zeros(T * C), *want_out = zeros(T * C), *dropped = zeros(T * C);
    const MnrlDropout none = {.keep_prob = 1.0f};
    ops->residual_layernorm_forward(res, out, mean, rstd, a, b, &drop, w, bias, T, C, eps);
    ops->dropout(dropped, b, T * C, drop.keep_prob, drop.seed, drop.stream, drop.first);
    ops->residual_layernorm_forward(want_res, want_out, mean, rstd, a, dropped, &none, w, bias, T, C, eps);
    CHECK_MSG(memcmp(res, want_res, sizeof(float) * T * C) == 0, "fused dropout: res differs from dropout + add");
    CHECK_MSG(memcmp(out, want_out, sizeof(float) * T * C) == 0, "fused dropout: out differs");
    int dropped_count = 0;
    for (int i = 0; i < T * C; i++) dropped_count += dropped[i] == 0.0f && b[i] != 0.0f;
    CHECK_MSG(dropped_count > T * C / 10 && dropped_count < T * C / 2, "fused dropout: %d of %d dropped (keep 0.7)",
              dropped_count, T * C);

    float *dres = zeros(T * C), *dbranch = zeros(T * C), *dbranch_bias = zeros(C), *dw = zeros(C), *db = zeros(C);
    float *want_dres = zeros(T * C), *want_dbranch = zeros(T * C), *want_bias = zeros(C), *want_dw = zeros(C);
    float *want_db = zeros(C);
    ops->residual_layernorm_backward(dres, dbranch, dbranch_bias, dw, db, dout, res, w, mean, rstd, T, C, &drop,
                                     NULL);
    ops->layernorm_backward(want_dres, want_dw, want_db, dout, res, w, mean, rstd, T, C, NULL);
    ops->dropout(want_dbranch, want_dres, T * C, drop.keep_prob, drop.seed, drop.stream, drop.first);
    for (int t = 0; t < T; t++)  // the column sums, in fp32 (the op sums in fp64)
        for (int c = 0; c < C; c++) want_bias[c] += want_dbranch[t * C + c];
    CHECK_MSG(memcmp(dres, want_dres, sizeof(float) * T * C) == 0, "fused dropout backward: dres differs");
    CHECK_MSG(memcmp(dbranch, want_dbranch, sizeof(float) * T * C) == 0, "fused dropout backward: dbranch differs");
    CHECK_MSG(memcmp(dw, want_dw, sizeof(float) * C) == 0 && memcmp(db, want_db, sizeof(float) * C) == 0,
              "fused dropout backward: dweight or dbias differs");
    check_close("fused dropout backward: branch bias", dbranch_bias, want_bias, C, RTOL);
    free(res), free(out), free(mean), free(rstd), free(want_res), free(want_out), free(dropped), free(dres);
    free(dbranch), free(dbranch_bias), free(dw), free(db), free(want_dres), free(want_dbranch), free(want_bias);
    free(want_dw), free(want_db);
}

static void test_layernorm(const MnrlOps *ops) {
    enum { C = 40 };
    const float eps = 1e-12f;
    float *out = zeros(T * C), *mean = zeros(T), *rstd = zeros(T), *dx = zeros(T * C);
    float *dw = zeros(C), *db = zeros(C), *res = zeros(T * C);
    const float *x = golden("ln.x", T * C), *w = golden("ln.w", C), *b = golden("ln.b", C);
    const float *dout = golden("ln.dout", T * C);
    ops->layernorm_forward(out, mean, rstd, x, w, b, T, C, eps);
    check_close("layernorm out", out, golden("ln.out", T * C), T * C, RTOL);
    check_close("layernorm mean", mean, golden("ln.mean", T), T, RTOL);
    check_close("layernorm rstd", rstd, golden("ln.rstd", T), T, RTOL);
    ops->layernorm_backward(dx, dw, db, dout, x, w, mean, rstd, T, C, NULL);
    check_close("layernorm dx", dx, golden("ln.dx", T * C), T * C, RTOL);
    check_close("layernorm dweight", dw, golden("ln.dw", C), C, RTOL);
    check_close("layernorm dbias", db, golden("ln.db", C), C, RTOL);

    const float *w2 = golden("resln.w", C), *b2 = golden("resln.bias", C);
    const float *a = golden("resln.a", T * C), *branch = golden("resln.b", T * C);
    float *dbranch = zeros(T * C), *dbranch_bias = zeros(C);
    memset(dw, 0, C * sizeof(float));
    memset(db, 0, C * sizeof(float));
    const MnrlDropout none = {.keep_prob = 1.0f};
    ops->residual_layernorm_forward(res, out, mean, rstd, a, branch, &none, w2, b2, T, C, eps);
    check_close("residual layernorm out", out, golden("resln.out", T * C), T * C, RTOL);
    ops->residual_layernorm_backward(dx, dbranch, dbranch_bias, dw, db, dout, res, w2, mean, rstd, T, C, &none,
                                     NULL);
    check_close("residual layernorm da", dx, golden("resln.da", T * C), T * C, RTOL);
    check_close("residual layernorm db = da", dbranch, golden("resln.da", T * C), T * C, RTOL);
    check_close("residual layernorm dweight", dw, golden("resln.dw", C), C, RTOL);
    check_close("residual layernorm dbias", db, golden("resln.dbias", C), C, RTOL);
    test_residual_dropout(ops, a, branch, dout, w2, b2, eps);
    free(out), free(mean), free(rstd), free(dx), free(dw), free(db), free(res), free(dbranch);
    free(dbranch_bias);
}

static void test_matmul(const MnrlOps *ops) {
    enum { C = 64, OC = 40 };
    const float *x = golden("mm.x", T * C), *w = golden("mm.w", OC * C), *b = golden("mm.b", OC);
    const float *dout = golden("mm.dout", T * OC);
    float *out = zeros(T * OC), *pre = zeros(T * OC), *dx = zeros(T * C), *dw = zeros(OC * C);
    float *db = zeros(OC), *dpre = copy_of(dout, T * OC);
    ops->matmul_forward(out, NULL, x, w, b, T, C, OC);
    check_close("matmul out", out, golden("mm.out", T * OC), T * OC, RTOL);
    ops->matmul_backward(dx, dw, db, dout, x, w, T, C, OC, 0, NULL);
    check_close("matmul dinp", dx, golden("mm.dx", T * C), T * C, RTOL);
    check_close("matmul dweight", dw, golden("mm.dw", OC * C), OC * C, RTOL);
    check_close("matmul dbias", db, golden("mm.db", OC), OC, RTOL);
    // accumulate_dinp adds to what dinp holds; dweight and dbias always accumulate.
    float *want_dx = copy_of(golden("mm.dx", T * C), T * C);
    float *want_dw = copy_of(golden("mm.dw", OC * C), OC * C);
    for (int i = 0; i < T * C; i++) dx[i] = 1.0f, want_dx[i] += 1.0f;
    for (int i = 0; i < OC * C; i++) want_dw[i] *= 2.0f;
    ops->matmul_backward(dx, dw, NULL, dout, x, w, T, C, OC, 1, NULL);
    check_close("matmul dinp accumulates", dx, want_dx, T * C, RTOL);
    check_close("matmul dweight accumulates", dw, want_dw, OC * C, RTOL);

    // Fused GELU: pre kept, out = gelu(pre); backward = gelu_bias_backward in place (it
    // makes dbias) + matmul without dbias.
    memset(dw, 0, OC * C * sizeof(float));
    memset(db, 0, OC * sizeof(float));
    ops->matmul_forward(out, pre, x, w, b, T, C, OC);
    check_close("matmul+gelu pre", pre, golden("mmg.pre", T * OC), T * OC, RTOL);
    check_close("matmul+gelu out", out, golden("mmg.out", T * OC), T * OC, RTOL);
    float *want_dpre = copy_of(dpre, T * OC);
    ops->gelu_backward(want_dpre, pre, want_dpre, T * OC);
    ops->gelu_bias_backward(dpre, db, pre, dpre, T, OC, NULL);  // in place
    CHECK_MSG(memcmp(dpre, want_dpre, sizeof(float) * T * OC) == 0,
              "gelu_bias_backward: dinp differs from gelu_backward");
    ops->matmul_backward(dx, dw, NULL, dpre, x, w, T, C, OC, 0, NULL);
    free(want_dpre);
    check_close("matmul+gelu dinp", dx, golden("mmg.dx", T * C), T * C, RTOL);
    check_close("matmul+gelu dweight", dw, golden("mmg.dw", OC * C), OC * C, RTOL);
    check_close("matmul+gelu dbias", db, golden("mmg.db", OC), OC, RTOL);
    free(out), free(pre), free(dx), free(dw), free(db), free(dpre), free(want_dx), free(want_dw);
}

static void test_gelu(const MnrlOps *ops) {
    enum { N = 401 };
    const float *x = golden("gelu.x", N), *dout = golden("gelu.dout", N);
    float *out = zeros(N), *dx = zeros(N), *inplace = copy_of(dout, N);
    ops->gelu_forward(out, x, N);
    check_close("gelu out", out, golden("gelu.out", N), N, RTOL);
    ops->gelu_backward(dx, x, dout, N);
    check_close("gelu dinp", dx, golden("gelu.dx", N), N, RTOL);
    ops->gelu_backward(inplace, x, inplace, N);
    check_equal("gelu backward in place", inplace, dx, N);
    free(out), free(dx), free(inplace);
}

// GELU over a dense grid of [-12, 12] (beyond, Φ(x) leaves fp32's normal range) against
// erfc and exp in double: forward within 6 units of 2^-24 of |gelu|, backward within 5
// units of |Φ| + |x·φ| (gelu' = Φ + x·φ crosses zero at -0.75, so its error is judged on
// its terms).
static void test_gelu_accuracy(const MnrlOps *ops) {
    enum { N = 1 << 18 };
    float *x = zeros(N), *out = zeros(N), *grad = zeros(N), *ones = zeros(N);
    for (int i = 0; i < N; i++) x[i] = -12.0f + 24.0f * (float)i / N, ones[i] = 1.0f;
    ops->gelu_forward(out, x, N);
    ops->gelu_backward(grad, x, ones, N);
    const double u = 1.0 / 16777216.0;
    double worst_fwd = 0.0, worst_bwd = 0.0;
    for (int i = 0; i < N; i++) {
        double xi = x[i], cdf = 0.5 * erfc(-xi * 0.70710678118654752440);
        double xpdf = xi * exp(-0.5 * xi * xi) * 0.39894228040143267794;
        worst_fwd = fmax(worst_fwd, fabs(out[i] - xi * cdf) / (fabs(xi * cdf) * u + 1e-45));
        worst_bwd = fmax(worst_bwd, fabs(grad[i] - (cdf + xpdf)) / ((cdf + fabs(xpdf)) * u));
    }
    CHECK_MSG(worst_fwd <= 6.0, "gelu forward: %.2f units of 2^-24 from erfc (limit 6)", worst_fwd);
    CHECK_MSG(worst_bwd <= 5.0, "gelu backward: %.2f units of 2^-24 from Φ + x·φ (limit 5)", worst_bwd);
    printf("gelu over [-12, 12]: forward within %.2f, backward within %.2f units of 2^-24\n", worst_fwd,
           worst_bwd);
    free(x), free(out), free(grad), free(ones);
}

static void test_dropout(const MnrlOps *ops) {
    enum { N = 1001 };
    const float *params = golden("drop.params", 8);  // keep, step, rank, tensor, seed/16 bits
    uint64_t seed = 0;
    for (int i = 0; i < 4; i++) seed |= (uint64_t)params[4 + i] << (16 * i);
    uint64_t stream = mnrl_rng_stream((uint64_t)params[1], (uint32_t)params[2], (uint32_t)params[3]);
    const float *x = golden("drop.x", N);
    float *out = zeros(N), *inplace = copy_of(x, N);
    ops->dropout(out, x, N, params[0], seed, stream, 0);
    check_close("dropout out (Python Philox mask)", out, golden("drop.out", N), N, RTOL);
    ops->dropout(inplace, inplace, N, params[0], seed, stream, 0);
    check_equal("dropout in place", inplace, out, N);
    // Elements whose Philox block index needs the counter's high word.
    const float *lo = golden("drop.far_index_lo", 3), *hi = golden("drop.far_index_hi", 3);
    const float *mult = golden("drop.far_mult", 3);
    for (int i = 0; i < 3; i++) {
        uint64_t e = (uint64_t)hi[i] << 16 | (uint64_t)lo[i];
        float m = mnrl_rng_uniform_at(seed, stream, e) < 0.5f ? 2.0f : 0.0f;
        CHECK_NEAR(m, mult[i], 0);
    }
    free(out), free(inplace);
}

static void test_attention(const MnrlOps *ops) {
    enum { C = 64, NH = 4 };
    const float *qkv = golden("att.qkv", T * 3 * C), *dout = golden("att.dout", T * C);
    const float *params = golden("attd.params", 5);
    uint64_t stream = mnrl_rng_stream((uint64_t)params[2], (uint32_t)params[3], (uint32_t)params[4]);
    float *saved = zeros(ops->attention_saved_bytes(T, NH, MAXLEN) / sizeof(float));
    float *out = zeros(T * C), *dqkv = zeros(T * 3 * C);
    const char *tags[2] = {"att", "attd"};
    for (int k = 0; k < 2; k++) {
        float keep = k ? params[0] : 1.0f;
        uint64_t seed = (uint64_t)params[1];
        char name[32];
        ops->attention_forward(out, saved, qkv, cu, S, T, MAXLEN, C, NH, keep, seed, stream, 0);
        snprintf(name, sizeof name, "%s.out", tags[k]);
        check_close(name, out, golden(name, T * C), T * C, RTOL);
        ops->attention_backward(dqkv, dout, qkv, out, saved, cu, S, T, MAXLEN, C, NH, keep, seed,
                                stream, 0, NULL);
        snprintf(name, sizeof name, "%s.dqkv", tags[k]);
        check_close(name, dqkv, golden(name, T * 3 * C), T * 3 * C, RTOL);
    }
    free(saved), free(out), free(dqkv);
}

static void test_pooling(const MnrlOps *ops) {
    enum { C = 64 };
    float *out = zeros(S * C), *dx = zeros(T * C);
    ops->mean_pool_forward(out, golden("pool.x", T * C), cu, S, C);
    check_close("mean pool out", out, golden("pool.out", S * C), S * C, RTOL);
    ops->mean_pool_backward(dx, golden("pool.dout", S * C), cu, S, C);
    check_close("mean pool dinp", dx, golden("pool.dx", T * C), T * C, RTOL);
    free(out), free(dx);
}

// One loss golden: b local anchors against N candidates.
static void check_loss(const MnrlOps *ops, const char *tag, int b, int N, float scale,
                       int label_offset, int global_batch) {
    enum { H = 64 };
    char name[32];
    MnrlOpsLimits limits = {.max_anchors = b, .max_candidates = N, .channels = H};
    void *workspace = mnrl_malloc(ops->workspace_bytes(&limits));
    float loss = 0.0f, loss_only = 0.0f, *dA = zeros(b * H), *dCd = zeros(N * H);
    snprintf(name, sizeof name, "%s.A", tag);
    const float *A = golden(name, b * H);
    snprintf(name, sizeof name, "%s.Cd", tag);
    const float *Cd = golden(name, N * H);
    ops->mnrl_loss(&loss, dA, dCd, A, Cd, b, N, H, scale, label_offset, global_batch, workspace);
    ops->mnrl_loss(&loss_only, NULL, NULL, A, Cd, b, N, H, scale, label_offset, global_batch,
                   workspace);
    snprintf(name, sizeof name, "%s.loss", tag);
    check_close(name, &loss, golden(name, 1), 1, RTOL);
    CHECK_NEAR(loss_only, loss, 0);
    snprintf(name, sizeof name, "%s.dA", tag);
    check_close(name, dA, golden(name, b * H), b * H, RTOL);
    snprintf(name, sizeof name, "%s.dCd", tag);
    check_close(name, dCd, golden(name, N * H), N * H, RTOL);
    free(workspace), free(dA), free(dCd);
}

static void test_loss(const MnrlOps *ops) {
    check_loss(ops, "loss1", 1, 1, 20.0f, 0, 1);     // batch 1, k = 0
    check_loss(ops, "loss5", 5, 15, 20.0f, 0, 5);    // odd batch, k = 2
    check_loss(ops, "loss7", 7, 14, 13.5f, 0, 7);    // k = 1, another scale
    check_loss(ops, "lossr1", 3, 12, 20.0f, 3, 6);   // rank 1 of 2, a zero candidate
}

// The gradients' norm (ops->grad_norm into *norm), then ops->adamw over the runs; grads
// are zeroed by the step. Returns the norm.
static float optimizer_step(const MnrlOps *ops, float *p, float *act, float *g, float *m, float *v,
                            const MnrlParamRun *runs, size_t n_runs, const MnrlAdamwParams *hp, int step) {
    float norm = -1.0f;
    size_t n = runs[n_runs - 1].offset + runs[n_runs - 1].count;
    ops->grad_norm(&norm, g, n, NULL);
    ops->adamw(p, act, g, m, v, runs, n_runs, &norm, hp, step);
    return norm;
}

static int all_zero(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (x[i] != 0.0f) return 0;
    return 1;
}

// The hyper-parameters are the script's Python floats, written here in double (float32
// copies in the golden file would round 0.999 and the learning rates); the golden copies
// are checked to agree, so the test cannot drift from the script. One adamw call covers a
// decayed run and an undecayed one (no clipping: max_norm 0).
static void test_adamw(const MnrlOps *ops) {
    enum { N = 37 };
    const double lrs[3] = {1e-3, 5e-4, 2e-3};
    MnrlAdamwParams hp = {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01, .max_norm = 0.0};
    const float *golden_hp = golden("adamw.hp", 5);
    CHECK(golden_hp[0] == (float)hp.beta1 && golden_hp[1] == (float)hp.beta2 && golden_hp[2] == (float)hp.eps &&
          golden_hp[3] == (float)hp.weight_decay);
    size_t n_decay = (size_t)golden_hp[4];
    const MnrlParamRun runs[2] = {{0, n_decay, 1}, {n_decay, N - n_decay, 0}};
    float *p = copy_of(golden("adamw.p0", N), N), *m = zeros(N), *v = zeros(N);
    for (int step = 1; step <= 3; step++) {
        char name[32];
        snprintf(name, sizeof name, "adamw.g%d", step);
        float *g = copy_of(golden(name, N), N);
        snprintf(name, sizeof name, "adamw.lr%d", step);
        CHECK(golden(name, 1)[0] == (float)lrs[step - 1]);
        hp.lr = lrs[step - 1];
        optimizer_step(ops, p, NULL, g, m, v, runs, 2, &hp, step);
        snprintf(name, sizeof name, "adamw.p%d", step);
        check_close(name, p, golden(name, N), N, RTOL);
        CHECK_MSG(all_zero(g, N), "adamw step %d leaves gradients that are not zero", step);
        free(g);
    }
    check_close("adamw exp_avg", m, golden("adamw.m", N), N, RTOL);
    check_close("adamw exp_avg_sq", v, golden("adamw.v", N), N, RTOL);
    // lr 0 leaves the parameters exactly as they are (the moments still move).
    float *before = copy_of(p, N), *act = zeros(N), *g = copy_of(golden("adamw.g1", N), N);
    hp.lr = 0.0;
    optimizer_step(ops, p, act, g, m, v, runs, 2, &hp, 4);
    check_equal("adamw lr 0", p, before, N);
    check_equal("adamw writes the compute copy", act, p, N);
    free(p), free(m), free(v), free(before), free(act), free(g);
}

// Clipping happens inside adamw. With beta1 = 0 the first moment after one step from zero
// is 0 + 1·(g - 0): exactly the clipped gradient AdamW used; lr 0 keeps the parameters.
static float *clipped_gradients(const MnrlOps *ops, const float *g, size_t n, double max_norm, float *norm) {
    const MnrlParamRun run = {0, n, 1};
    const MnrlAdamwParams hp = {.lr = 0.0, .beta1 = 0.0, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01,
                                .max_norm = max_norm};
    float *p = copy_of(g, n), *grads = copy_of(g, n), *m = zeros(n), *v = zeros(n);
    *norm = optimizer_step(ops, p, NULL, grads, m, v, &run, 1, &hp, 1);
    check_equal("adamw at lr 0 keeps the parameters", p, g, n);
    free(p), free(grads), free(v);
    return m;
}

static void test_clip(const MnrlOps *ops) {
    enum { N = 1001 };
    const float *g = golden("clip.g", N);
    float norm;
    float *clipped = clipped_gradients(ops, g, N, 1.0, &norm);
    check_close("clip norm", &norm, golden("clip.norm", 1), 1, RTOL);
    check_close("clipped gradients", clipped, golden("clip.out", N), N, RTOL);
    free(clipped);
    // max_norm 0 only measures.
    clipped = clipped_gradients(ops, g, N, 0.0, &norm);
    check_equal("max_norm 0 does not clip", clipped, g, N);
    free(clipped);
    // Gradients of norm 0.5 (half the clipped ones) are used exactly as they are. (At norm
    // 1 itself torch still scales by 1 / (1 + 1e-6), and so do we.)
    float *small = copy_of(golden("clip.out", N), N);
    for (int i = 0; i < N; i++) small[i] *= 0.5f;
    clipped = clipped_gradients(ops, small, N, 1.0, &norm);
    CHECK_NEAR(norm, 0.5, 1e-5);
    check_equal("clip leaves small gradients", clipped, small, N);
    free(clipped), free(small);
}

// A non-finite gradient norm skips the step: parameters, compute copy and moments keep
// their bits; the gradients are still zeroed.
static void test_adamw_skips_non_finite(const MnrlOps *ops) {
    enum { N = 1001 };
    const MnrlParamRun runs[2] = {{0, 500, 1}, {500, N - 500, 0}};
    const MnrlAdamwParams hp = {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01,
                                .max_norm = 1.0};
    const float bad[2] = {NAN, INFINITY};
    for (int k = 0; k < 2; k++) {
        float *p = copy_of(golden("clip.g", N), N), *m = copy_of(p, N), *v = zeros(N), *act = copy_of(p, N);
        for (int i = 0; i < N; i++) v[i] = p[i] * p[i];
        float *before = copy_of(p, N), *m_before = copy_of(m, N), *v_before = copy_of(v, N);
        float *grads = copy_of(p, N);
        grads[700] = bad[k];
        float norm = optimizer_step(ops, p, act, grads, m, v, runs, 2, &hp, 3);
        CHECK_MSG(!isfinite(norm), "a %g gradient gives the norm %g", bad[k], norm);
        check_equal("skipped step: parameters", p, before, N);
        check_equal("skipped step: compute copy", act, before, N);
        check_equal("skipped step: exp_avg", m, m_before, N);
        check_equal("skipped step: exp_avg_sq", v, v_before, N);
        CHECK_MSG(all_zero(grads, N), "a skipped step (gradient %g) leaves gradients that are not zero", bad[k]);
        free(p), free(m), free(v), free(act), free(before), free(m_before), free(v_before), free(grads);
    }
}

// torch's _single_tensor_adamw after clip_grad_norm_, operation for operation in fp32, on
// one element: the gradient scaled in place (when clipping) and then used, as the two
// passes of torch (and of this backend before it fused them) do.
static void reference_adamw_f32(float *p, float *m, float *v, float g, float clip, const MnrlAdamwParams *hp,
                                int decay, int step) {
    if (clip < 1.0f) g *= clip;
    float pd = *p * (float)(1.0 - hp->lr * (decay ? hp->weight_decay : 0.0));
    *m += (float)(1.0 - hp->beta1) * (g - *m);
    *v = *v * (float)hp->beta2 + (float)(1.0 - hp->beta2) * g * g;
    *p = pd - (float)(hp->lr / (1.0 - pow(hp->beta1, step))) * *m /
                  (sqrtf(*v) / (float)sqrt(1.0 - pow(hp->beta2, step)) + (float)hp->eps);
}

// Many runs of awkward sizes (1, 3, 5, ...; runs that straddle the backend's work chunks
// and runs inside one), decay on and off, clipped, over enough parameters for the
// threads to split them: every value bit for bit the scalar reference's, on 1 and on 3
// threads, for two steps.
static void test_adamw_runs(const MnrlOps *ops) {
    enum { N = 50387, RUNS = 12 };
    const size_t sizes[RUNS - 1] = {1, 3, 5, 16000, 7, 1, 20011, 3, 2, 4096, 333};
    MnrlParamRun runs[RUNS];
    size_t off = 0;
    for (int r = 0; r < RUNS; r++) {
        size_t count = r < RUNS - 1 ? sizes[r] : N - off;
        runs[r] = (MnrlParamRun){off, count, r % 3 != 1};
        off += count;
    }
    const MnrlAdamwParams hp = {.lr = 1e-2, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-6, .weight_decay = 0.1,
                                .max_norm = 1.0};
    uint64_t rng = 11;
    float *p0 = zeros(N), *g[2] = {zeros(N), zeros(N)};
    for (size_t i = 0; i < N; i++) {
        p0[i] = (float)((double)(mnrl_splitmix64(&rng) >> 11) / 9007199254740992.0) - 0.5f;
        for (int s = 0; s < 2; s++)
            g[s][i] = i % 7 == 3 ? 0.0f : (float)((double)(mnrl_splitmix64(&rng) >> 11) / 9007199254740992.0) - 0.5f;
    }
    float *ref_p = copy_of(p0, N), *ref_m = zeros(N), *ref_v = zeros(N);
    double worst_clip = 1.0;
    for (int s = 0; s < 2; s++) {
        float norm;  // the backend's (test_clip checks it): this test is about adamw
        ops->grad_norm(&norm, g[s], N, NULL);
        float clip = (float)hp.max_norm / (norm + 1e-6f);
        worst_clip = fmin(worst_clip, clip);
        for (int r = 0; r < RUNS; r++)
            for (size_t i = runs[r].offset; i < runs[r].offset + runs[r].count; i++)
                reference_adamw_f32(&ref_p[i], &ref_m[i], &ref_v[i], g[s][i], clip, &hp, runs[r].decay, s + 1);
    }
    CHECK(worst_clip < 1.0);  // the test must exercise clipping
    int threads = omp_get_max_threads();
    const int counts[2] = {1, 3};  // 3: more threads than this machine's cores on purpose
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(counts[t]);
        float *p = copy_of(p0, N), *m = zeros(N), *v = zeros(N);
        for (int s = 0; s < 2; s++) {
            float *grads = copy_of(g[s], N);
            optimizer_step(ops, p, NULL, grads, m, v, runs, RUNS, &hp, s + 1);
            CHECK_MSG(all_zero(grads, N), "%d threads, step %d: gradients not zeroed", counts[t], s + 1);
            free(grads);
        }
        check_equal("adamw over 12 runs: parameters = the scalar reference's", p, ref_p, N);
        check_equal("adamw over 12 runs: exp_avg = the scalar reference's", m, ref_m, N);
        check_equal("adamw over 12 runs: exp_avg_sq = the scalar reference's", v, ref_v, N);
        free(p), free(m), free(v);
    }
    omp_set_num_threads(threads);
    printf("adamw: %d runs over %d parameters, clip coefficient %.3f: bitwise equal to the scalar reference on 1 "
           "and 3 threads\n", RUNS, N, worst_clip);
    free(p0), free(g[0]), free(g[1]), free(ref_p), free(ref_m), free(ref_v);
}

static void test_schedule(void) {
    const long cases[3][2] = {{10, 100}, {0, 37}, {7, 7}};
    for (int c = 0; c < 3; c++) {
        char name[32];
        long warmup = cases[c][0], total = cases[c][1];
        snprintf(name, sizeof name, "sched.%ld_%ld", warmup, total);
        const float *want = golden(name, total + 2);
        float *got = zeros(total + 2);
        for (long step = 0; step < total + 2; step++)
            got[step] = mnrl_lr_warmup_linear(step, warmup, total, 2e-5f);
        check_close(name, got, want, total + 2, 1e-6);
        free(got);
    }
}

// ---- RNG --------------------------------------------------------------------------------

static void test_philox_known_answers(void) {
    // Random123 kat_vectors, philox4x32 10 rounds: counter, key -> output.
    const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d,
         0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09,
         0x94fdcceb, 0x5001e420, 0x24126ea1},
    };
    for (int k = 0; k < 3; k++) {
        MnrlPhilox4 c = {{kat[k][0], kat[k][1], kat[k][2], kat[k][3]}};
        MnrlPhilox4 r = mnrl_philox4x32_10(c, kat[k][4], kat[k][5]);
        for (int i = 0; i < 4; i++) CHECK_EQ_INT(r.v[i], kat[k][6 + i]);
    }
    CHECK_EQ_INT(mnrl_rng_stream(7, 3, 5), (7ull << 32) | (3u << 20) | 5u);
}

static void test_dropout_identities(const MnrlOps *ops) {
    enum { N = 1 << 20 };
    float *ones = mnrl_malloc(N * sizeof(float)), *a = zeros(N), *b = zeros(N);
    for (int i = 0; i < N; i++) ones[i] = 1.0f;
    ops->dropout(a, ones, N, 1.0f, 1, 2, 0);
    check_equal("dropout keep 1 is the identity", a, ones, N);
    uint64_t stream = mnrl_rng_stream(5, 1, 9);
    ops->dropout(a, ones, N, 0.9f, 42, stream, 0);
    ops->dropout(b, ones, N, 0.9f, 42, stream, 0);
    check_equal("dropout mask reproducible", a, b, N);
    double kept = 0;
    for (int i = 0; i < N; i++) kept += a[i] != 0.0f;
    // Binomial(N, 0.9): sd = sqrt(0.09 / N) = 2.9e-4 of the rate; allow 5 sd.
    CHECK_NEAR(kept / N, 0.9, 5 * sqrt(0.09 / N));
    for (int i = 0; i < N && a[i] != 0.0f; i++) CHECK_NEAR(a[i], 1.0f / 0.9f, 0);
    const uint64_t other[3][2] = {{43, stream}, {42, mnrl_rng_stream(6, 1, 9)},
                                  {42, mnrl_rng_stream(5, 2, 9)}};
    for (int k = 0; k < 3; k++) {
        ops->dropout(b, ones, N, 0.9f, other[k][0], other[k][1], 0);
        size_t differ = 0;
        for (int i = 0; i < N; i++) differ += (a[i] == 0.0f) != (b[i] == 0.0f);
        // Independent masks disagree on 2·0.9·0.1 = 18% of elements.
        CHECK_NEAR((double)differ / N, 0.18, 0.01);
    }
    free(ones), free(a), free(b);
}

// A call over a slice of its tensor (a cached-MNRL chunk: ops.h's offsets) draws that slice
// of the whole call's mask: dropout from an element that is not a multiple of 4 (mid
// Philox block), attention over the last two sentences (token offset 3, and the 33-token
// sentence walks several key pieces). Bitwise: the same products in the same order.
static void test_dropout_offsets(const MnrlOps *ops) {
    enum { N = 1001, FIRST = 333, LEN = 555 };
    const float *x = golden("drop.x", N);
    float *whole = zeros(N), *part = zeros(LEN);
    uint64_t stream = mnrl_rng_stream(3, 1, 4);
    ops->dropout(whole, x, N, 0.7f, 11, stream, 0);
    ops->dropout(part, x + FIRST, LEN, 0.7f, 11, stream, FIRST);
    check_equal("dropout at element offset 333 = that slice of the whole", part, whole + FIRST, LEN);
    ops->dropout(part, x + FIRST, LEN, 0.7f, 11, stream, FIRST + 1);
    CHECK_MSG(memcmp(part, whole + FIRST, LEN * sizeof(float)) != 0, "dropout ignores its offset");
    free(whole), free(part);

    enum { C = 64, NH = 4, S0 = 2 };
    const int t0 = cu[S0], n = T - t0;
    int32_t chunk_cu[S - S0 + 1];
    for (int s = S0; s <= S; s++) chunk_cu[s - S0] = cu[s] - t0;
    const float *qkv = golden("att.qkv", T * 3 * C), *dout = golden("att.dout", T * C);
    size_t saved_floats = ops->attention_saved_bytes(T, NH, MAXLEN) / sizeof(float);
    float *saved = zeros(saved_floats), *out = zeros(T * C), *dqkv = zeros(T * 3 * C);
    float *saved_c = zeros(saved_floats), *out_c = zeros(T * C), *dqkv_c = zeros(T * 3 * C);
    ops->attention_forward(out, saved, qkv, cu, S, T, MAXLEN, C, NH, 0.8f, 9, 3, 0);
    ops->attention_backward(dqkv, dout, qkv, out, saved, cu, S, T, MAXLEN, C, NH, 0.8f, 9, 3, 0, NULL);
    ops->attention_forward(out_c, saved_c, qkv + t0 * 3 * C, chunk_cu, S - S0, n, MAXLEN, C, NH, 0.8f, 9, 3, t0);
    ops->attention_backward(dqkv_c, dout + t0 * C, qkv + t0 * 3 * C, out_c, saved_c, chunk_cu, S - S0, n,
                            MAXLEN, C, NH, 0.8f, 9, 3, t0, NULL);
    check_equal("attention out at token offset 3 = the whole call's rows", out_c, out + t0 * C, (size_t)n * C);
    check_equal("attention dqkv at token offset 3 = the whole call's rows", dqkv_c, dqkv + t0 * 3 * C,
                (size_t)n * 3 * C);
    free(saved), free(out), free(dqkv), free(saved_c), free(out_c), free(dqkv_c);
}

// ---- attention at other shapes ----------------------------------------------------------

// Attention in fp64 from the definition (ops.h), dropout masks from mnrl_rng_uniform_at:
// out [T, C] and the gradient dqkv [T, 3C] of sum(out · dout).
static void reference_attention(double *out, double *dqkv, const float *qkv, const float *dout,
                                const int32_t *cu_s, int S_, int max_seqlen, int C, int NH,
                                float keep, uint64_t seed, uint64_t stream) {
    int HS = C / NH, T_ = cu_s[S_];
    double scale = 1.0 / sqrt((double)HS);
    double *P = mnrl_calloc((size_t)max_seqlen, sizeof(double)), *M = mnrl_calloc((size_t)max_seqlen, sizeof(double));
    double *dP = mnrl_calloc((size_t)max_seqlen, sizeof(double));
    memset(dqkv, 0, sizeof(double) * (size_t)T_ * 3 * C);
    for (int s = 0; s < S_; s++)
        for (int h = 0; h < NH; h++)
            for (int t = cu_s[s]; t < cu_s[s + 1]; t++) {
                int len = cu_s[s + 1] - cu_s[s];
                const float *q = qkv + (size_t)t * 3 * C + h * HS;
                double max_score = -INFINITY, sum = 0.0, row_dot = 0.0;
                for (int j = 0; j < len; j++) {
                    const float *k = qkv + (size_t)(cu_s[s] + j) * 3 * C + C + h * HS;
                    P[j] = 0.0;
                    for (int c = 0; c < HS; c++) P[j] += (double)q[c] * k[c];
                    P[j] *= scale;
                    max_score = fmax(max_score, P[j]);
                }
                for (int j = 0; j < len; j++) sum += P[j] = exp(P[j] - max_score);
                for (int j = 0; j < len; j++) {
                    uint64_t e = ((uint64_t)t * NH + h) * (uint64_t)max_seqlen + j;
                    P[j] /= sum;
                    M[j] = mnrl_rng_uniform_at(seed, stream, e) < keep ? 1.0 / keep : 0.0;
                }
                const float *d_o = dout + (size_t)t * C + h * HS;
                for (int c = 0; c < HS; c++) {
                    double o = 0.0;
                    for (int j = 0; j < len; j++) o += P[j] * M[j] * qkv[(size_t)(cu_s[s] + j) * 3 * C + 2 * C + h * HS + c];
                    out[(size_t)t * C + h * HS + c] = o;
                }
                for (int j = 0; j < len; j++) {
                    const float *v = qkv + (size_t)(cu_s[s] + j) * 3 * C + 2 * C + h * HS;
                    dP[j] = 0.0;
                    for (int c = 0; c < HS; c++) dP[j] += (double)d_o[c] * v[c];
                    dP[j] *= M[j];
                    row_dot += P[j] * dP[j];
                }
                for (int j = 0; j < len; j++) {
                    double ds = P[j] * (dP[j] - row_dot) * scale;
                    size_t tj = (size_t)(cu_s[s] + j) * 3 * C;
                    for (int c = 0; c < HS; c++) {
                        dqkv[(size_t)t * 3 * C + h * HS + c] += ds * qkv[tj + C + h * HS + c];
                        dqkv[tj + C + h * HS + c] += ds * q[c];
                        dqkv[tj + 2 * C + h * HS + c] += P[j] * M[j] * d_o[c];
                    }
                }
            }
    free(P), free(M), free(dP);
}

// Head sizes 32 and 48 (a whole and a partial 32-column tile), 160 (beyond one 128-column
// transposed tile) and sentences of 1, 2, 31, 33 and 70 tokens (several 32-key pieces and
// query blocks) with dropout, against the fp64 reference; bitwise equal on 1 and 3 threads.
static void test_attention_shapes(const MnrlOps *ops) {
    const int32_t lens[5] = {1, 2, 31, 33, 70};
    const int shapes[3][2] = {{96, 3}, {96, 2}, {320, 2}};
    enum { SN = 5, MAX_LEN = 70 };
    int32_t cu_s[SN + 1] = {0};
    for (int s = 0; s < SN; s++) cu_s[s + 1] = cu_s[s] + lens[s];
    int Tn = cu_s[SN];
    for (int k = 0; k < 3; k++) {
        int C = shapes[k][0], NH = shapes[k][1];
        uint64_t rng = 77 + (uint64_t)k;
        float *qkv = zeros((size_t)Tn * 3 * C), *dout = zeros((size_t)Tn * C);
        for (size_t i = 0; i < (size_t)Tn * 3 * C; i++)
            qkv[i] = 2.0f * ((float)((double)(mnrl_splitmix64(&rng) >> 11) / 9007199254740992.0) - 0.5f);
        for (size_t i = 0; i < (size_t)Tn * C; i++)
            dout[i] = (float)((double)(mnrl_splitmix64(&rng) >> 11) / 9007199254740992.0) - 0.5f;
        double *ref_out = mnrl_calloc((size_t)Tn * C, sizeof(double));
        double *ref_dqkv = mnrl_calloc((size_t)Tn * 3 * C, sizeof(double));
        reference_attention(ref_out, ref_dqkv, qkv, dout, cu_s, SN, MAX_LEN, C, NH, 0.8f, 21, 5);
        float *want_out = zeros((size_t)Tn * C), *want_dqkv = zeros((size_t)Tn * 3 * C);
        for (size_t i = 0; i < (size_t)Tn * C; i++) want_out[i] = (float)ref_out[i];
        for (size_t i = 0; i < (size_t)Tn * 3 * C; i++) want_dqkv[i] = (float)ref_dqkv[i];
        size_t saved_floats = ops->attention_saved_bytes(Tn, NH, MAX_LEN) / sizeof(float);
        float *results[2];
        int threads = omp_get_max_threads();
        const int counts[2] = {1, 3};
        for (int r = 0; r < 2; r++) {
            omp_set_num_threads(counts[r]);
            float *saved = zeros(saved_floats), *out = zeros((size_t)Tn * C);
            results[r] = zeros((size_t)Tn * 3 * C);
            ops->attention_forward(out, saved, qkv, cu_s, SN, Tn, MAX_LEN, C, NH, 0.8f, 21, 5, 0);
            ops->attention_backward(results[r], dout, qkv, out, saved, cu_s, SN, Tn, MAX_LEN, C, NH, 0.8f, 21, 5,
                                    0, NULL);
            char name[64];
            snprintf(name, sizeof name, "attention out, head size %d", C / NH);
            check_close(name, out, want_out, (size_t)Tn * C, RTOL);
            snprintf(name, sizeof name, "attention dqkv, head size %d", C / NH);
            check_close(name, results[r], want_dqkv, (size_t)Tn * 3 * C, RTOL);
            free(saved), free(out);
        }
        omp_set_num_threads(threads);
        check_equal("attention dqkv on 1 and 3 threads", results[0], results[1], (size_t)Tn * 3 * C);
        free(qkv), free(dout), free(ref_out), free(ref_dqkv), free(want_out), free(want_dqkv);
        free(results[0]), free(results[1]);
    }
}

// ---- determinism across thread counts ---------------------------------------------------

static void run_backwards(const MnrlOps *ops, float *results) {
    enum { C = 64, NH = 4, V = 50 };
    float *saved = zeros(ops->attention_saved_bytes(T, NH, MAXLEN) / sizeof(float));
    float *out = zeros(T * C), *mean = zeros(T), *rstd = zeros(T);
    const float *qkv = golden("att.qkv", T * 3 * C), *dout = golden("att.dout", T * C);
    int32_t *ids = int_golden("emb.ids", T);
    ops->attention_forward(out, saved, qkv, cu, S, T, MAXLEN, C, NH, 0.8f, 9, 3, 0);
    ops->attention_backward(results, dout, qkv, out, saved, cu, S, T, MAXLEN, C, NH, 0.8f, 9,
                            3, 0, NULL);
    results += T * 3 * C;
    ops->embedding_backward(results, results + V * C, results + (V + MAXLEN) * C, dout, ids, cu,
                            S, T, C, NULL);
    results += (V + MAXLEN + 1) * C;
    ops->layernorm_forward(out, mean, rstd, qkv, qkv + C, qkv + 2 * C, T, C, 1e-5f);
    ops->layernorm_backward(results, results + T * C, results + T * C + C, dout, qkv, qkv + C,
                            mean, rstd, T, C, NULL);
    free(saved), free(out), free(mean), free(rstd), free(ids);
}

static void test_thread_independence(const MnrlOps *ops) {
    enum { C = 64, V = 50 };
    size_t n = T * 3 * C + (V + MAXLEN + 1) * C + T * C + 2 * C;
    float *one = zeros(n), *many = zeros(n);
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    run_backwards(ops, one);
    omp_set_num_threads(3);  // more threads than this machine's cores on purpose
    run_backwards(ops, many);
    omp_set_num_threads(threads);
    check_equal("backward results independent of thread count", one, many, n);
    free(one), free(many);
}

// Bias and LayerNorm parameter gradients of matrices wider than the backend's column
// passes (512 columns) and not a multiple of its 16-column thread cuts: every column is its
// fp64 sum in token order, rounded once (x̂ = (x - mean)·rstd in fp32, as the op
// documents), so the values are bitwise those of a scalar reference, on 1 and 3 threads.
static void test_column_reductions_wide(const MnrlOps *ops) {
    enum { ROWS = 37, COLS = 1100, C_IN = 8 };
    uint64_t rng = 5;
    float *d = zeros(ROWS * COLS), *x = zeros(ROWS * COLS), *mean = zeros(ROWS), *rstd = zeros(ROWS);
    for (int i = 0; i < ROWS * COLS; i++) {
        d[i] = (float)((double)(mnrl_splitmix64(&rng) >> 11) / 9007199254740992.0) - 0.5f;
        x[i] = (float)((double)(mnrl_splitmix64(&rng) >> 11) / 9007199254740992.0) * 3.0f;
    }
    for (int t = 0; t < ROWS; t++) mean[t] = 1.5f + 0.01f * t, rstd[t] = 0.6f - 0.001f * t;
    float *want_db = zeros(COLS), *want_dw = zeros(COLS);
    for (int c = 0; c < COLS; c++) {
        double db = 0.0, dw = 0.0;
        for (int t = 0; t < ROWS; t++) {
            float xhat = (x[t * COLS + c] - mean[t]) * rstd[t];
            db += d[t * COLS + c];
            dw += (double)d[t * COLS + c] * xhat;
        }
        want_db[c] = (float)db, want_dw[c] = (float)dw;
    }
    float *inp = zeros(ROWS * C_IN), *w = zeros(COLS * C_IN), *dweight = zeros(COLS * C_IN);
    float *weight = zeros(COLS), *dx = zeros(ROWS * COLS);
    int threads = omp_get_max_threads();
    const int counts[2] = {1, 3};
    for (int k = 0; k < 2; k++) {
        omp_set_num_threads(counts[k]);
        float *db = zeros(COLS), *ln_dw = zeros(COLS), *ln_db = zeros(COLS);
        ops->matmul_backward(NULL, dweight, db, d, inp, w, ROWS, C_IN, COLS, 0, NULL);
        ops->layernorm_backward(dx, ln_dw, ln_db, d, x, weight, mean, rstd, ROWS, COLS, NULL);
        check_equal("matmul dbias over 1100 columns = fp64 column sums", db, want_db, COLS);
        check_equal("layernorm dbias over 1100 columns = fp64 column sums", ln_db, want_db, COLS);
        check_equal("layernorm dweight over 1100 columns = fp64 sums of dout·x̂", ln_dw, want_dw, COLS);
        free(db), free(ln_dw), free(ln_db);
    }
    omp_set_num_threads(threads);
    free(d), free(x), free(mean), free(rstd), free(want_db), free(want_dw), free(inp), free(w);
    free(dweight), free(weight), free(dx);
}

int main(void) {
    load_goldens(MNRL_TEST_DATA_DIR "/ops/goldens.bin.gz");
    const MnrlOps *ops = ops_cpu();
    CHECK_STR(ops->name, "cpu-fp32");
    cu = int_golden("cu_seqlens", S + 1);
    test_embedding(ops);
    test_layernorm(ops);
    test_matmul(ops);
    test_gelu(ops);
    test_gelu_accuracy(ops);
    test_dropout(ops);
    test_dropout_offsets(ops);
    test_attention(ops);
    test_attention_shapes(ops);
    test_pooling(ops);
    test_loss(ops);
    test_adamw(ops);
    test_clip(ops);
    test_adamw_skips_non_finite(ops);
    test_adamw_runs(ops);
    test_schedule();
    test_philox_known_answers();
    test_dropout_identities(ops);
    test_thread_independence(ops);
    test_column_reductions_wide(ops);
    free(cu);
    for (int i = 0; i < golden_count; i++) free(goldens[i].data);
    TEST_END();
}
