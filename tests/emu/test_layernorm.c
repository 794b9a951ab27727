// test_layernorm.c — src/kernels/layernorm.cu (LayerNorm forward and backward, plain and
// fused with the residual add and the branch's dropout, fp32 and bf16 activations) run
// under the CUDA emulation and compared with the CPU backend's ops_cpu()->layernorm_forward
// / residual_layernorm_forward / layernorm_backward / dropout on the same values (bf16
// inputs decoded to fp32). The residual variants run with dropout 0.1 (BERT's), the mask
// starting at a row (as model.c's chunks do) or, for odd T, 6 elements past one. Rows T = 1, 2, 31, 33, 75, 128, 129, 512 (the sentence lengths), 911 (all of
// them packed) and 2100 (several rows per warp in backward); hidden 64 and 384, plus
// C = 100 (not a multiple of 32) and C = 1024 (the largest). Every row has its own offset
// (a mean far from 0 tests the centred variance) and row 0 is constant (variance 0, so
// rstd = 1/sqrt(eps) with BERT's eps = 1e-12).
//
// Tolerances: first-order forward error bounds of the kernels' fp32 arithmetic (u = 2^-24)
// against the CPU's fp64 one, per element, so a wrong column, row or statistic fails by
// orders of magnitude. A lane owns vectors of V columns (V = 8 bf16 or 4 fp32 on the
// 16-byte path, else 1; see layernorm.cu), so it sums at most V·ceil(C/(32·V)) <=
// 8·ceil(C/256) terms, and the warp adds 5 butterfly levels: k = 8·ceil(C/256) + 5
// roundings per row sum.
//  - mean: tol = k·u·mean|x| + 2u·|mean|.
//  - rstd: the centred sum of squares has relative error (k + 5)·u plus the second-order
//    effect of the mean error δ (δ²/var); sqrt and the division add 2u, the CPU u:
//    tol = rstd·((k + 11)·u/2 + δ²/var), δ = the mean tolerance.
//  - out = (x - mean)·rstd·w + b: x̂ is off by rstd·(δ + u·|x - mean|) + |x̂|·(ρ + 3u)
//    (ρ the rstd tolerance over rstd), scaled by |w|; two roundings on each side:
//    tol = |w|·(rstd·(δ + u·|x - mean|) + |x̂|·(ρ + 3u)) + 2u·(|x̂·w| + |out|).
//  - dinp = rstd·(g - ḡ - x̂·gx̄), g = dout·w, with the forward's mean and rstd on both sides
//    (so x̂ is the same fp32 value): ḡ is off by δg = (k+1)·u·Σ|g|/C + u·|ḡ|, gx̄ by
//    δgx = (k+2)·u·Σ|g·x̂|/C + u·|gx̄|, and the three-term difference rounds 3 times:
//    tol = rstd·(δg + |x̂|·δgx + 3u·(|g| + |ḡ| + |x̂·gx̄|)) + 2u·|dinp|.
//  - dweight, dbias (+=, column sums over T rows): a warp sums its m rows in fp32
//    (m = ceil(T / (4·blocks)), blocks = min(512 or 384 residual, ceil(T/4)), see
//    layernorm.cu), a block
//    adds 4 warps, the blocks are added in fp64; both sides round the sum and the +=:
//    tol = (m + 6)·u·Σ_t|term| + 2u·|acc|.
//  - The constant row's errors are reported apart (rstd = 1e6 turns the fp32 mean's
//    rounding into visible output error, within the bounds above).
//  - bf16 outputs (out, dinp) add the rounding to bf16, 2^-8·|value|; the residual sum
//    res = a + dropout(b) is the dropout op's product (rounded to the act dtype, as that op
//    stores it) plus a, rounded once, so it must equal exactly what the CPU's dropout and
//    fp32 add give, rounded the same way; LayerNorm is then compared on the res the kernel
//    stored. Likewise dbranch = dropout(dinp as stored) must be exact, and its column sums
//    (the branch's bias gradient) have the dbias bound over the terms dbranch.
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "mnrl/common.h"
#include "mnrl/kernels.h"
#include "mnrl/ops.h"
#include "test.h"
#include "kernel_test.h"

static const float kEps = 1e-12f;

typedef struct {
    ErrorStat mean, rstd, out, res, dinp, dweight, dbias, dbranch, dbranch_bias;
    ErrorStat flat_rstd, flat_out, flat_dinp;  // the constant row 0, where rstd = 1e6 amplifies rounding
} Stats;

// Row t: an offset in [-4, 4] plus uniform noise in [-2, 2]; row 0 constant.
static float *make_rows(int T, int C, uint64_t *rng) {
    float *x = mnrl_malloc((size_t)T * C * sizeof(float));
    for (int t = 0; t < T; t++) {
        float offset = uniform(rng, -4.0f, 4.0f);
        for (int c = 0; c < C; c++) x[(size_t)t * C + c] = t == 0 ? 0.1f : offset + uniform(rng, -2.0f, 2.0f);
    }
    return x;
}

static float *random_values(size_t n, float lo, float hi, uint64_t *rng) {
    float *x = mnrl_malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = uniform(rng, lo, hi);
    return x;
}

static int k_of(int C) { return 8 * ((C + 255) / 256) + 5; }

// The dropout of a residual branch in a test of T rows (see the top).
static MnrlDropout branch_dropout(int T, int C) {
    return (MnrlDropout){.keep_prob = 0.9f, .seed = 1234, .stream = 77 + (uint64_t)T,
                         .first = (uint64_t)C * 5 + (T % 2 ? 6 : 0)};
}

// dropout(x) as the unfused ops stored it: the CPU's fp32 op, rounded to bf16 on bf16.
static float *dropped_act(const float *x, size_t n, const MnrlDropout *drop, int bf16) {
    float *out = mnrl_malloc(n * sizeof(float));
    ops_cpu()->dropout(out, x, n, drop->keep_prob, drop->seed, drop->stream, drop->first);
    if (bf16)
        for (size_t i = 0; i < n; i++) out[i] = safetensors_bf16_to_f32(safetensors_f32_to_bf16(out[i]));
    return out;
}

// Compares the kernel's out/mean/rstd (host copies) with the CPU's LayerNorm of x.
static void compare_forward(Stats *st, const float *x, const float *w, const float *b, const float *out,
                            const float *mean, const float *rstd, int T, int C, int bf16) {
    float *ref = mnrl_malloc((size_t)T * C * sizeof(float));
    float *ref_mean = mnrl_malloc((size_t)T * sizeof(float)), *ref_rstd = mnrl_malloc((size_t)T * sizeof(float));
    ops_cpu()->layernorm_forward(ref, ref_mean, ref_rstd, x, w, b, T, C, kEps);
    int k = k_of(C);
    for (int t = 0; t < T; t++) {
        const float *row = x + (size_t)t * C;
        double abs_sum = 0.0, var = 0.0, mu = ref_mean[t], r = ref_rstd[t];
        for (int c = 0; c < C; c++) abs_sum += fabs(row[c]);
        for (int c = 0; c < C; c++) var += (row[c] - mu) * (row[c] - mu) / C;
        double tol_mean = k * kU * abs_sum / C + 2 * kU * fabs(mu);
        double rho = (k + 11) * kU / 2 + tol_mean * tol_mean / (var + kEps);
        track(&st->mean, mean[t], mu, tol_mean);
        track(t == 0 ? &st->flat_rstd : &st->rstd, rstd[t] / r, 1.0, rho);  // relative: rstd reaches 1e6
        for (int c = 0; c < C; c++) {
            size_t i = (size_t)t * C + c;
            double xhat = (row[c] - mu) * r, want = ref[i];
            double tol = fabs(w[c]) * (r * (tol_mean + kU * fabs(row[c] - mu)) + fabs(xhat) * (rho + 3 * kU)) +
                         2 * kU * (fabs(xhat * w[c]) + fabs(want));
            track(t == 0 ? &st->flat_out : &st->out, out[i], want, tol + (bf16 ? kUbf16 * fabs(want) : 0.0));
        }
    }
    free(ref);
    free(ref_mean);
    free(ref_rstd);
}

// Runs the plain (a only) or residual (a + b) forward kernel and compares it.
static void check_forward(Stats *st, int T, int C, int bf16, int residual, uint64_t *rng) {
    size_t n = (size_t)T * C, elem = bf16 ? 2 : 4;
    float *a = make_rows(T, C, rng);
    float *b = residual ? random_values(n, -1.0f, 1.0f, rng) : NULL;
    float *w = random_values(C, 0.5f, 1.5f, rng), *bias = random_values(C, -0.5f, 0.5f, rng);
    void *dev_a = device_act(a, n, bf16), *dev_b = residual ? device_act(b, n, bf16) : NULL;
    void *dev_w = device_act(w, C, bf16), *dev_bias = device_act(bias, C, bf16);
    void *dev_out = device_copy(NULL, n * elem + C * elem);  // one extra row: untouched
    void *dev_res = residual ? device_copy(NULL, n * elem + C * elem) : NULL;
    float *dev_mean = device_copy(NULL, (T + 1) * 4), *dev_rstd = device_copy(NULL, (T + 1) * 4);
    MnrlError err = {{0}};
    const MnrlDropout drop = branch_dropout(T, C);
    double start = mnrl_now();
    int rc;
    if (residual)
        rc = bf16 ? mnrl_cuda_residual_layernorm_forward_bf16(dev_res, dev_out, dev_mean, dev_rstd, dev_a, dev_b,
                                                              &drop, dev_w, dev_bias, T, C, kEps, NULL, &err)
                  : mnrl_cuda_residual_layernorm_forward_f32(dev_res, dev_out, dev_mean, dev_rstd, dev_a, dev_b,
                                                             &drop, dev_w, dev_bias, T, C, kEps, NULL, &err);
    else
        rc = bf16 ? mnrl_cuda_layernorm_forward_bf16(dev_out, dev_mean, dev_rstd, dev_a, dev_w, dev_bias, T, C,
                                                     kEps, NULL, &err)
                  : mnrl_cuda_layernorm_forward_f32(dev_out, dev_mean, dev_rstd, dev_a, dev_w, dev_bias, T, C, kEps,
                                                    NULL, &err);
    kernel_seconds += mnrl_now() - start;
    CHECK_MSG(rc == 0, "%s", err.msg);
    float *out = download_act(dev_out, n, bf16), *mean = host_copy(dev_mean, (T + 1) * 4);
    float *rstd = host_copy(dev_rstd, (T + 1) * 4);
    unsigned char *tail = host_copy((char *)dev_out + n * elem, C * elem);
    CHECK_MSG(all_bytes_ff(tail, C * elem) && all_bytes_ff(mean + T, 4) && all_bytes_ff(rstd + T, 4),
              "T=%d C=%d: forward wrote past row T", T, C);
    free(tail);
    const float *x = a;
    float *res = NULL;
    if (residual) {  // the kernel's res against the CPU's a + dropout(b), then LayerNorm of it
        res = download_act(dev_res, n, bf16);
        float *ref_res = mnrl_malloc(n * 4), *scratch = mnrl_malloc(n * 4);
        float *scratch_mean = mnrl_malloc(T * 4), *scratch_rstd = mnrl_malloc(T * 4);
        float *dropped = dropped_act(b, n, &drop, bf16);
        const MnrlDropout none = {.keep_prob = 1.0f};
        ops_cpu()->residual_layernorm_forward(ref_res, scratch, scratch_mean, scratch_rstd, a, dropped, &none, w,
                                              bias, T, C, kEps);
        free(dropped);
        for (size_t i = 0; i < n; i++) {
            float want = bf16 ? safetensors_bf16_to_f32(safetensors_f32_to_bf16(ref_res[i])) : ref_res[i];
            track(&st->res, res[i], want, 0.0);
        }
        x = res;
        free(ref_res);
        free(scratch);
        free(scratch_mean);
        free(scratch_rstd);
    }
    compare_forward(st, x, w, bias, out, mean, rstd, T, C, bf16);
    free(res);
    free(out);
    free(mean);
    free(rstd);
    free(a);
    free(b);
    free(w);
    free(bias);
    cudaFree(dev_a);
    cudaFree(dev_b);
    cudaFree(dev_w);
    cudaFree(dev_bias);
    cudaFree(dev_out);
    cudaFree(dev_res);
    cudaFree(dev_mean);
    cudaFree(dev_rstd);
}

// The rows m that a warp of the backward kernel sums (the top): its grid holds at most 512
// blocks of 4 warps, the residual variant's 384.
static int rows_per_warp(int T, int residual) {
    int most = residual ? 384 : 512, blocks = (T + 3) / 4 < most ? (T + 3) / 4 : most;
    return (T + 4 * blocks - 1) / (4 * blocks);
}

static void compare_backward(Stats *st, const float *dinp, const float *dw, const float *db, const float *dout,
                             const float *x, const float *w, const float *mean, const float *rstd,
                             const float *dw0, const float *db0, int T, int C, int bf16, int residual) {
    float *ref = mnrl_malloc((size_t)T * C * 4), *ref_dw = mnrl_malloc(C * 4), *ref_db = mnrl_malloc(C * 4);
    memcpy(ref_dw, dw0, C * 4);
    memcpy(ref_db, db0, C * 4);
    ops_cpu()->layernorm_backward(ref, ref_dw, ref_db, dout, x, w, mean, rstd, T, C, NULL);
    int k = k_of(C);
    for (int t = 0; t < T; t++) {
        const float *d = dout + (size_t)t * C, *row = x + (size_t)t * C;
        double r = rstd[t], g_sum = 0, g_abs = 0, gx_sum = 0, gx_abs = 0;
        for (int c = 0; c < C; c++) {
            double g = (double)d[c] * w[c], xhat = (float)((row[c] - mean[t]) * rstd[t]);
            g_sum += g;
            g_abs += fabs(g);
            gx_sum += g * xhat;
            gx_abs += fabs(g * xhat);
        }
        double g_mean = g_sum / C, gx_mean = gx_sum / C;
        double dg = (k + 1) * kU * g_abs / C + kU * fabs(g_mean);
        double dgx = (k + 2) * kU * gx_abs / C + kU * fabs(gx_mean);
        for (int c = 0; c < C; c++) {
            size_t i = (size_t)t * C + c;
            double g = (double)d[c] * w[c], xhat = (float)((row[c] - mean[t]) * rstd[t]), want = ref[i];
            double tol = r * (dg + fabs(xhat) * dgx + 3 * kU * (fabs(g) + fabs(g_mean) + fabs(xhat * gx_mean))) +
                         2 * kU * fabs(want);
            track(t == 0 ? &st->flat_dinp : &st->dinp, dinp[i], want, tol + (bf16 ? kUbf16 * fabs(want) : 0.0));
        }
    }
    int m = rows_per_warp(T, residual);
    for (int c = 0; c < C; c++) {
        double w_abs = 0, b_abs = 0;
        for (int t = 0; t < T; t++) {
            double dv = dout[(size_t)t * C + c];
            w_abs += fabs(dv * (float)((x[(size_t)t * C + c] - mean[t]) * rstd[t]));
            b_abs += fabs(dv);
        }
        track(&st->dweight, dw[c], ref_dw[c], (m + 6) * kU * w_abs + 2 * kU * fabs(ref_dw[c]));
        track(&st->dbias, db[c], ref_db[c], (m + 6) * kU * b_abs + 2 * kU * fabs(ref_db[c]));
    }
    free(ref);
    free(ref_dw);
    free(ref_db);
}

// The residual variant's extra outputs: dbranch = dropout(dinp as the kernel stored it),
// exactly, and dbranch_bias = bias0 + its column sums (the dbias bound of the top).
static void compare_branch(Stats *st, const float *dinp, const float *dbranch, const float *dbranch_bias,
                           const float *bias0, const MnrlDropout *drop, int T, int C, int bf16) {
    size_t n = (size_t)T * C;
    float *want = dropped_act(dinp, n, drop, bf16);
    for (size_t i = 0; i < n; i++) track(&st->dbranch, dbranch[i], want[i], 0.0);
    int m = rows_per_warp(T, 1);
    for (int c = 0; c < C; c++) {
        double sum = bias0[c], abs_sum = 0.0;
        for (int t = 0; t < T; t++) {
            sum += dbranch[(size_t)t * C + c];
            abs_sum += fabs(dbranch[(size_t)t * C + c]);
        }
        track(&st->dbranch_bias, dbranch_bias[c], sum, (m + 6) * kU * abs_sum + 2 * kU * fabs(sum));
    }
    free(want);
}

// Device buffers of one backward test; the residual variant's are NULL in a plain one.
typedef struct {
    void *x, *dout, *w, *dinp, *dbranch, *workspace;
    float *mean, *rstd, *dw, *db, *dbranch_bias;
} BackwardDev;

static int launch_backward(const BackwardDev *d, int T, int C, int bf16, const MnrlDropout *drop, MnrlError *err) {
    if (!d->dbranch)
        return bf16 ? mnrl_cuda_layernorm_backward_bf16(d->dinp, d->dw, d->db, d->dout, d->x, d->w, d->mean, d->rstd,
                                                        T, C, d->workspace, NULL, err)
                    : mnrl_cuda_layernorm_backward_f32(d->dinp, d->dw, d->db, d->dout, d->x, d->w, d->mean, d->rstd,
                                                       T, C, d->workspace, NULL, err);
    return bf16 ? mnrl_cuda_residual_layernorm_backward_bf16(d->dinp, d->dbranch, d->dbranch_bias, d->dw, d->db,
                                                             d->dout, d->x, d->w, d->mean, d->rstd, T, C, drop,
                                                             d->workspace, NULL, err)
                : mnrl_cuda_residual_layernorm_backward_f32(d->dinp, d->dbranch, d->dbranch_bias, d->dw, d->db,
                                                            d->dout, d->x, d->w, d->mean, d->rstd, T, C, drop,
                                                            d->workspace, NULL, err);
}

static void check_backward(Stats *st, int T, int C, int bf16, int residual, uint64_t *rng) {
    size_t n = (size_t)T * C, elem = bf16 ? 2 : 4;
    float *x = make_rows(T, C, rng), *dout = random_values(n, -1.0f, 1.0f, rng);
    float *w = random_values(C, 0.5f, 1.5f, rng), *bias = random_values(C, -0.5f, 0.5f, rng);
    float *dw0 = random_values(C, -1.0f, 1.0f, rng), *db0 = random_values(C, -1.0f, 1.0f, rng);
    float *dbb0 = random_values(C, -1.0f, 1.0f, rng);
    // The statistics are the CPU forward's, given to both sides.
    float *mean = mnrl_malloc(T * 4), *rstd = mnrl_malloc(T * 4), *scratch = mnrl_malloc(n * 4);
    BackwardDev d = {.x = device_act(x, n, bf16), .dout = device_act(dout, n, bf16), .w = device_act(w, C, bf16)};
    ops_cpu()->layernorm_forward(scratch, mean, rstd, x, w, bias, T, C, kEps);
    d.mean = device_copy(mean, T * 4), d.rstd = device_copy(rstd, T * 4);
    d.dw = device_copy(dw0, C * 4), d.db = device_copy(db0, C * 4);
    d.dinp = device_copy(NULL, n * elem + C * elem);
    d.workspace = device_copy(NULL, mnrl_cuda_layernorm_backward_workspace_bytes(C));
    if (residual) d.dbranch = device_copy(NULL, n * elem + C * elem), d.dbranch_bias = device_copy(dbb0, C * 4);
    MnrlError err = {{0}};
    const MnrlDropout drop = branch_dropout(T, C);
    double start = mnrl_now();
    int rc = launch_backward(&d, T, C, bf16, &drop, &err);
    kernel_seconds += mnrl_now() - start;
    CHECK_MSG(rc == 0, "%s", err.msg);
    float *dinp = download_act(d.dinp, n, bf16), *dw = host_copy(d.dw, C * 4), *db = host_copy(d.db, C * 4);
    unsigned char *tail = host_copy((char *)d.dinp + n * elem, C * elem);
    CHECK_MSG(all_bytes_ff(tail, C * elem), "T=%d C=%d: backward wrote past row T", T, C);
    compare_backward(st, dinp, dw, db, dout, x, w, mean, rstd, dw0, db0, T, C, bf16, residual);
    if (residual) {
        float *dbranch = download_act(d.dbranch, n, bf16), *dbb = host_copy(d.dbranch_bias, C * 4);
        unsigned char *branch_tail = host_copy((char *)d.dbranch + n * elem, C * elem);
        CHECK_MSG(all_bytes_ff(branch_tail, C * elem), "T=%d C=%d: dbranch written past row T", T, C);
        compare_branch(st, dinp, dbranch, dbb, dbb0, &drop, T, C, bf16);
        free(dbranch);
        free(dbb);
        free(branch_tail);
    }
    free(tail);
    free(dinp);
    free(dw);
    free(db);
    free(x);
    free(dout);
    free(w);
    free(bias);
    free(dw0);
    free(db0);
    free(dbb0);
    free(mean);
    free(rstd);
    free(scratch);
    void *bufs[] = {d.x, d.dout, d.w, d.mean, d.rstd, d.dw, d.db, d.dinp, d.workspace, d.dbranch, d.dbranch_bias};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) cudaFree(bufs[i]);
}

static void merge(ErrorStat *all, const ErrorStat *one) {
    if (one->max_err > all->max_err) all->max_err = one->max_err;
    if (!(one->worst <= all->worst)) all->worst = one->worst;
}

static void run_shape(int T, int C, int bf16, uint64_t *rng, Stats *total) {
    Stats st;
    memset(&st, 0, sizeof st);
    check_forward(&st, T, C, bf16, 0, rng);
    check_forward(&st, T, C, bf16, 1, rng);
    check_backward(&st, T, C, bf16, 0, rng);
    check_backward(&st, T, C, bf16, 1, rng);
    const char *dt = bf16 ? "bf16" : "fp32";
    printf("T=%-4d C=%-4d %s  fwd out %.1e (%.2f tol) mean %.1e (%.2f) rstd %.1e (%.2f) | bwd dinp %.1e (%.2f) "
           "dw %.1e (%.2f) db %.1e (%.2f) branch db %.1e (%.2f)\n", T, C, dt, st.out.max_err, st.out.worst,
           st.mean.max_err, st.mean.worst, st.rstd.max_err, st.rstd.worst, st.dinp.max_err, st.dinp.worst,
           st.dweight.max_err, st.dweight.worst, st.dbias.max_err, st.dbias.worst, st.dbranch_bias.max_err,
           st.dbranch_bias.worst);
    CHECK_MSG(st.res.worst == 0.0, "T=%d C=%d %s: residual sum differs from ops_cpu", T, C, dt);
    CHECK_MSG(st.dbranch.worst == 0.0, "T=%d C=%d %s: dbranch differs from the dropout of dinp", T, C, dt);
    const ErrorStat *each[] = {&st.mean,      &st.rstd,      &st.out,       &st.dinp,     &st.dweight,
                               &st.dbias,     &st.dbranch_bias, &st.flat_rstd, &st.flat_out, &st.flat_dinp};
    Stats *all = &total[bf16];
    ErrorStat *totals[] = {&all->mean,  &all->rstd,         &all->out,       &all->dinp,     &all->dweight,
                           &all->dbias, &all->dbranch_bias, &all->flat_rstd, &all->flat_out, &all->flat_dinp};
    const char *names[] = {"mean", "rstd", "out", "dinp", "dweight", "dbias", "branch dbias", "constant-row rstd",
                           "constant-row out", "constant-row dinp"};
    for (int i = 0; i < 10; i++) {
        CHECK_MSG(each[i]->worst <= 1.0, "T=%d C=%d %s: %s error %.3g x tolerance", T, C, dt, names[i],
                  each[i]->worst);
        merge(totals[i], each[i]);
    }
}

static void check_arguments(void) {
    MnrlError err = {{0}};
    CHECK_EQ_INT(mnrl_cuda_layernorm_forward_f32(NULL, NULL, NULL, NULL, NULL, NULL, 4, 1025, kEps, NULL, &err), -1);
    CHECK_CONTAINS(err.msg, "C=1025");
    CHECK_EQ_INT(mnrl_cuda_layernorm_backward_bf16(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, -1, 64, NULL,
                                                   NULL, &err), -1);
    CHECK_CONTAINS(err.msg, "bad shape T=-1");
    CHECK_EQ_INT(mnrl_cuda_residual_layernorm_forward_bf16(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0,
                                                           384, kEps, NULL, &err), 0);
    const MnrlDropout bad = {.keep_prob = 0.0f};
    CHECK_EQ_INT(mnrl_cuda_residual_layernorm_forward_f32(NULL, NULL, NULL, NULL, NULL, NULL, &bad, NULL, NULL, 4,
                                                          64, kEps, NULL, &err), -1);
    CHECK_CONTAINS(err.msg, "keep_prob 0 is outside (0, 1]");
    CHECK_EQ_INT(mnrl_cuda_residual_layernorm_backward_bf16(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                                                            NULL, 4, 64, NULL, NULL, NULL, &err), -1);
    CHECK_CONTAINS(err.msg, "dbranch is NULL");
    CHECK_EQ_INT(cudaGetLastError(), cudaSuccess);
}

int main(void) {
    uint64_t rng = 11;
    const int rows[] = {1, 2, 31, 33, 75, 128, 129, 512, 911, 2100};
    Stats total[2];  // fp32, bf16: the worst over all shapes (res excluded: exact)
    memset(total, 0, sizeof total);
    double start = mnrl_now();
    for (int bf16 = 0; bf16 < 2; bf16++) {
        for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
            run_shape(rows[i], 64, bf16, &rng, total);
            run_shape(rows[i], 384, bf16, &rng, total);
        }
        run_shape(129, 100, bf16, &rng, total);
        run_shape(33, 1024, bf16, &rng, total);
    }
    for (int bf16 = 0; bf16 < 2; bf16++) {
        const Stats *w = &total[bf16];
        printf("worst %s: out %.2e mean %.2e rstd (relative) %.2e dinp %.2e dweight %.2e dbias %.2e branch dbias "
               "%.2e (%.2f tol)\n", bf16 ? "bf16" : "fp32", w->out.max_err, w->mean.max_err, w->rstd.max_err,
               w->dinp.max_err, w->dweight.max_err, w->dbias.max_err, w->dbranch_bias.max_err,
               w->dbranch_bias.worst);
        printf("  constant row (rstd 1e6): rstd (relative) %.2e out %.2e dinp %.2e\n", w->flat_rstd.max_err,
               w->flat_out.max_err, w->flat_dinp.max_err);
    }
    check_arguments();
    printf("layernorm kernels: %.3f s emulated, whole test %.3f s\n", kernel_seconds, mnrl_now() - start);
    TEST_END();
}
