// test_ops_cpu_fd.c — finite-difference check of every backward of the CPU backend against
// its own forward, on tiny shapes (sentences of 1, 2 and 4 tokens, hidden 8, 2 heads).
//
// Each op becomes a scalar L = Σ w·out with fixed random weights w (w is also the dout
// given to backward), and dL/dx from backward is compared with the central difference
// (L(x+h) - L(x-h)) / (x+h - x-h), at up to 24 elements of every input.
// Why these numbers: the ops run in fp32 but L is summed in fp64 and the denominator is
// the exact difference of the two rounded inputs, so the only errors are (a) fp32 rounding
// of the outputs, a few ulps of each: |ΔL| <~ 1e-6·Σ|w·out| ~ 1e-6 here, divided by
// 2h = 2e-2 gives <~ 1e-4; and (b) the O(h²) truncation of the central difference,
// h²/6·|L'''| ~ 1e-4 for these O(1) inputs. Tolerance 2e-3 + 2e-3·|g| leaves a margin of
// ~10 over both, while any real backward bug (a missing term, a wrong scale or index)
// is O(0.1) or more. The loss uses scale 20, which multiplies L''' by ~20³, so its step is
// 2e-3 (truncation ~1e-4, rounding of L ~1e-7/4e-3 ~ 3e-5). Measured: worst error 1% of
// the tolerance for the layer ops, 15% for the loss (the test prints each ratio).
#include <string.h>

#include "mnrl/common.h"
#include "mnrl/ops.h"
#include "mnrl/rng.h"
#include "test.h"

enum { S = 3, T = 7, MAXLEN = 4, C = 8, NH = 2, OC = 6, V = 5, LOSS_B = 3, LOSS_N = 6 };
static const int32_t cu[S + 1] = {0, 1, 3, 7};
static const MnrlOps *ops;
static uint64_t rng_state = 2024;

static float *random_floats(size_t n, float lo, float hi) {
    float *x = mnrl_malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * (float)(mnrl_splitmix64(&rng_state) >> 40) / 16777216.0f;
    return x;
}

static float *zeros(size_t n) { return mnrl_calloc(n, sizeof(float)); }

// The buffers of the op under test; each forward wrapper reads them.
static struct {
    float *x, *y, *w, *b, *out, *res, *pre, *mean, *rstd, *saved, *loss_workspace;
    float *branch_bias, *branch;  // residual layernorm: b = y + branch_bias per row
    int32_t ids[T];
    float keep;
    size_t n;
} fx;

static void fwd_embedding(void) { ops->embedding_forward(fx.out, fx.ids, cu, S, T, fx.x, fx.y, fx.w, C); }
static void fwd_layernorm(void) { ops->layernorm_forward(fx.out, fx.mean, fx.rstd, fx.x, fx.w, fx.b, T, C, 1e-5f); }
// Dropout at an offset into its tensor (a cached-MNRL chunk, ops.h): backward must use it too.
enum { DROP_FIRST = 13, ATTN_TOKEN_OFFSET = 7 };
static MnrlDropout residual_dropout(void) {
    return (MnrlDropout){.keep_prob = fx.keep, .seed = 77, .stream = mnrl_rng_stream(1, 0, 3), .first = DROP_FIRST};
}
// The branch gets a bias added before its dropout, as the linear layer that makes it in a
// BERT layer does, so that residual_layernorm_backward's branch-bias gradient is checked.
static void fwd_residual_layernorm(void) {
    for (int i = 0; i < T * C; i++) fx.branch[i] = fx.y[i] + fx.branch_bias[i % C];
    MnrlDropout drop = residual_dropout();
    ops->residual_layernorm_forward(fx.res, fx.out, fx.mean, fx.rstd, fx.x, fx.branch, &drop, fx.w, fx.b, T, C,
                                    1e-5f);
}
static void fwd_matmul(void) { ops->matmul_forward(fx.out, NULL, fx.x, fx.w, fx.b, T, C, OC); }
static void fwd_matmul_gelu(void) { ops->matmul_forward(fx.out, fx.pre, fx.x, fx.w, fx.b, T, C, OC); }
static void fwd_gelu(void) { ops->gelu_forward(fx.out, fx.x, fx.n); }
static void fwd_dropout(void) {
    ops->dropout(fx.out, fx.x, fx.n, fx.keep, 77, mnrl_rng_stream(1, 0, 2), DROP_FIRST);
}
static void fwd_attention(void) {
    ops->attention_forward(fx.out, fx.saved, fx.x, cu, S, T, MAXLEN, C, NH, fx.keep, 5, 6, ATTN_TOKEN_OFFSET);
}
static void fwd_pool(void) { ops->mean_pool_forward(fx.out, fx.x, cu, S, C); }
static void fwd_loss(void) {
    ops->mnrl_loss(fx.out, NULL, NULL, fx.x, fx.y, LOSS_B, LOSS_N, C, 20.0f, 0, LOSS_B,
                   fx.loss_workspace);
}

// L = Σ dout·out after running forward.
static double objective(void (*forward)(void), const float *dout, size_t n_out) {
    forward();
    double sum = 0.0;
    for (size_t i = 0; i < n_out; i++) sum += (double)dout[i] * fx.out[i];
    return sum;
}

static void fd_check(const char *what, void (*forward)(void), const float *dout, size_t n_out,
                     float *x, const float *grad, size_t n, float h) {
    size_t stride = n > 24 ? n / 24 : 1;
    double worst = 0.0;
    size_t worst_i = 0;
    double worst_num = 0.0;
    for (size_t i = 0; i < n; i += stride) {
        float x0 = x[i];
        x[i] = x0 + h;
        float up = x[i];
        double l_up = objective(forward, dout, n_out);
        x[i] = x0 - h;
        float down = x[i];
        double l_down = objective(forward, dout, n_out);
        x[i] = x0;
        double numeric = (l_up - l_down) / ((double)up - down);
        double ratio = fabs(numeric - grad[i]) / (2e-3 + 2e-3 * fabs(grad[i]));
        if (ratio > worst) worst = ratio, worst_i = i, worst_num = numeric;
    }
    CHECK_MSG(worst <= 1.0, "%s: element %zu: backward %.7g, finite difference %.7g", what,
              worst_i, grad[worst_i], worst_num);
    printf("%-34s worst |error| / tolerance = %.3f\n", what, worst);
}

static void test_embedding(void) {
    for (int t = 0; t < T; t++) fx.ids[t] = (t * 3) % V;  // repeats: ids 0, 3, 1, 4, 2, 0, 3
    float *wte = random_floats(V * C, -1, 1), *wpe = random_floats(MAXLEN * C, -1, 1);
    float *wtt = random_floats(2 * C, -1, 1), *dout = random_floats(T * C, -1, 1);
    float *dwte = zeros(V * C), *dwpe = zeros(MAXLEN * C), *dwtt = zeros(2 * C);
    fx.x = wte, fx.y = wpe, fx.w = wtt, fx.out = zeros(T * C);
    ops->embedding_backward(dwte, dwpe, dwtt, dout, fx.ids, cu, S, T, C, NULL);
    fd_check("embedding d(word)", fwd_embedding, dout, T * C, wte, dwte, V * C, 1e-2f);
    fd_check("embedding d(position)", fwd_embedding, dout, T * C, wpe, dwpe, MAXLEN * C, 1e-2f);
    fd_check("embedding d(type)", fwd_embedding, dout, T * C, wtt, dwtt, 2 * C, 1e-2f);
    free(wte), free(wpe), free(wtt), free(dout), free(dwte), free(dwpe), free(dwtt), free(fx.out);
}

static void test_layernorm(int residual) {
    fx.x = random_floats(T * C, -2, 3), fx.y = random_floats(T * C, -1, 1);
    fx.w = random_floats(C, 0.5, 1.5), fx.b = random_floats(C, -1, 1);
    fx.branch_bias = random_floats(C, -0.5, 0.5), fx.branch = zeros(T * C), fx.keep = 0.75f;
    fx.out = zeros(T * C), fx.res = zeros(T * C), fx.mean = zeros(T), fx.rstd = zeros(T);
    float *dout = random_floats(T * C, -1, 1), *dx = zeros(T * C), *dw = zeros(C), *db = zeros(C);
    float *dbranch = zeros(T * C), *dbranch_bias = zeros(C);
    void (*forward)(void) = residual ? fwd_residual_layernorm : fwd_layernorm;
    forward();
    if (residual) {
        MnrlDropout drop = residual_dropout();
        ops->residual_layernorm_backward(dx, dbranch, dbranch_bias, dw, db, dout, fx.res, fx.w, fx.mean, fx.rstd, T,
                                         C, &drop, NULL);
        fd_check("residual layernorm d(a)", forward, dout, T * C, fx.x, dx, T * C, 1e-2f);
        fd_check("residual layernorm d(b), dropout 0.75", forward, dout, T * C, fx.y, dbranch, T * C, 1e-2f);
        fd_check("residual layernorm d(b's bias)", forward, dout, T * C, fx.branch_bias, dbranch_bias, C, 1e-2f);
    } else {
        ops->layernorm_backward(dx, dw, db, dout, fx.x, fx.w, fx.mean, fx.rstd, T, C, NULL);
        fd_check("layernorm d(inp)", forward, dout, T * C, fx.x, dx, T * C, 1e-2f);
    }
    fd_check(residual ? "residual layernorm d(weight)" : "layernorm d(weight)", forward, dout,
             T * C, fx.w, dw, C, 1e-2f);
    fd_check(residual ? "residual layernorm d(bias)" : "layernorm d(bias)", forward, dout,
             T * C, fx.b, db, C, 1e-2f);
    free(fx.x), free(fx.y), free(fx.w), free(fx.b), free(fx.out), free(fx.res), free(fx.mean);
    free(fx.rstd), free(dout), free(dx), free(dw), free(db), free(dbranch), free(dbranch_bias);
    free(fx.branch_bias), free(fx.branch);
}

static void test_matmul(int gelu) {
    fx.x = random_floats(T * C, -1, 1), fx.w = random_floats(OC * C, -1, 1);
    fx.b = random_floats(OC, -1, 1), fx.out = zeros(T * OC), fx.pre = zeros(T * OC);
    float *dout = random_floats(T * OC, -1, 1), *dpre = zeros(T * OC);
    float *dx = zeros(T * C), *dw = zeros(OC * C), *db = zeros(OC);
    void (*forward)(void) = gelu ? fwd_matmul_gelu : fwd_matmul;
    forward();
    memcpy(dpre, dout, sizeof(float) * T * OC);
    if (gelu) ops->gelu_bias_backward(dpre, db, fx.pre, dpre, T, OC, NULL);  // makes dbias too
    ops->matmul_backward(dx, dw, gelu ? NULL : db, dpre, fx.x, fx.w, T, C, OC, 0, NULL);
    fd_check(gelu ? "matmul+gelu d(inp)" : "matmul d(inp)", forward, dout, T * OC, fx.x, dx, T * C, 1e-2f);
    fd_check(gelu ? "matmul+gelu d(weight)" : "matmul d(weight)", forward, dout, T * OC, fx.w, dw, OC * C, 1e-2f);
    fd_check(gelu ? "matmul+gelu d(bias)" : "matmul d(bias)", forward, dout, T * OC, fx.b, db, OC, 1e-2f);
    free(fx.x), free(fx.w), free(fx.b), free(fx.out), free(fx.pre), free(dout), free(dpre);
    free(dx), free(dw), free(db);
}

static void test_elementwise(void) {
    fx.n = 200;
    fx.x = random_floats(fx.n, -4, 4), fx.out = zeros(fx.n);
    float *dout = random_floats(fx.n, -1, 1), *dx = zeros(fx.n);
    ops->gelu_backward(dx, fx.x, dout, fx.n);
    fd_check("gelu d(inp)", fwd_gelu, dout, fx.n, fx.x, dx, fx.n, 1e-2f);
    fx.keep = 0.7f;
    ops->dropout(dx, dout, fx.n, fx.keep, 77, mnrl_rng_stream(1, 0, 2), DROP_FIRST);  // backward = same mask
    fd_check("dropout d(inp)", fwd_dropout, dout, fx.n, fx.x, dx, fx.n, 1e-2f);
    free(fx.x), free(fx.out), free(dout), free(dx);
}

static void test_attention(float keep) {
    fx.keep = keep;
    fx.x = random_floats(T * 3 * C, -1.5, 1.5), fx.out = zeros(T * C);
    fx.saved = zeros(ops->attention_saved_bytes(T, NH, MAXLEN) / sizeof(float));
    float *dout = random_floats(T * C, -1, 1), *dqkv = zeros(T * 3 * C);
    fwd_attention();
    ops->attention_backward(dqkv, dout, fx.x, fx.out, fx.saved, cu, S, T, MAXLEN, C, NH, keep,
                            5, 6, ATTN_TOKEN_OFFSET, NULL);
    fd_check(keep < 1 ? "attention (dropout 0.3) d(qkv)" : "attention d(qkv)", fwd_attention,
             dout, T * C, fx.x, dqkv, T * 3 * C, 1e-2f);
    free(fx.x), free(fx.out), free(fx.saved), free(dout), free(dqkv);
}

static void test_pool(void) {
    fx.x = random_floats(T * C, -1, 1), fx.out = zeros(S * C);
    float *dout = random_floats(S * C, -1, 1), *dx = zeros(T * C);
    ops->mean_pool_backward(dx, dout, cu, S, C);
    fd_check("mean pool d(inp)", fwd_pool, dout, S * C, fx.x, dx, T * C, 1e-2f);
    free(fx.x), free(fx.out), free(dout), free(dx);
}

static void test_loss(void) {
    MnrlOpsLimits limits = {.max_anchors = LOSS_B, .max_candidates = LOSS_N, .channels = C};
    fx.loss_workspace = mnrl_malloc(ops->workspace_bytes(&limits));
    fx.x = random_floats(LOSS_B * C, -1, 1), fx.y = random_floats(LOSS_N * C, -1, 1);
    fx.out = zeros(1);
    float one = 1.0f, *dA = zeros(LOSS_B * C), *dCd = zeros(LOSS_N * C);
    ops->mnrl_loss(fx.out, dA, dCd, fx.x, fx.y, LOSS_B, LOSS_N, C, 20.0f, 0, LOSS_B,
                   fx.loss_workspace);
    fd_check("mnrl loss d(anchors)", fwd_loss, &one, 1, fx.x, dA, LOSS_B * C, 2e-3f);
    fd_check("mnrl loss d(candidates)", fwd_loss, &one, 1, fx.y, dCd, LOSS_N * C, 2e-3f);
    free(fx.loss_workspace), free(fx.x), free(fx.y), free(fx.out), free(dA), free(dCd);
}

int main(void) {
    ops = ops_cpu();
    test_embedding();
    test_layernorm(0);
    test_layernorm(1);
    test_matmul(0);
    test_matmul(1);
    test_elementwise();
    test_attention(1.0f);
    test_attention(0.7f);
    test_pool();
    test_loss();
    TEST_END();
}
