// test_matmul.c — src/kernels/matmul.cu (linear layers forward with and without bias and
// fused exact GELU, backward with dinp written / accumulated / skipped and dbias on / off;
// fp32 and bf16 activations) run under the CUDA emulation, where the GEMMs take the
// portable tiled kernel (no cuBLASLt), and compared with the CPU backend's
// ops_cpu()->matmul_forward / matmul_backward on the same values (bf16 inputs decoded to
// fp32). Rows T = 1, 33, 129; (C, OC) = (64, 384), (384, 1536), (1536, 384), (384, 64):
// none a multiple of the 64-row tile, K from 1 row (dweight at T = 1) to 1536.
//
// Tolerances (u = 2^-24), per element, from the inputs:
//  - a K-term product (+ bias, + the old value when accumulating) summed in fp32 on both
//    sides: tol = (2K+4)·u·(Σ_k |a_k b_k| + |bias| + |old|);
//  - GELU of pre (x): the kernel's pre is within Δ of the CPU's (the tolerance above, plus
//    for bf16 the rounding of the stored pre, 2^-8·|x|), so out is within
//    (|gelu'(x)| + 0.4·Δ)·Δ (|gelu''| <= 0.8) plus the fp32 GELU's own error
//    (8 + 2x²)·u·|out| (erfc's argument rounding grows with x²);
//  - dbias (+=, column sums over T rows): (T + 12)·u·Σ_t |dout| + 2u·|dbias|;
//  - gelu_bias_backward (the GELU's backward and the bias sums in one pass): its dinp must
//    equal elementwise.cu's gelu_backward bit for bit (same gelu_grad, explicit roundings;
//    that kernel is checked against the CPU in test_elementwise.c), in place or not, and
//    its dbias the fp64 column sums of that dinp under the dbias bound above;
//  - bf16 outputs add their rounding, 2^-8·(|value| + tol).
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "mnrl/common.h"
#include "mnrl/kernels.h"
#include "mnrl/ops.h"
#include "test.h"
#include "kernel_test.h"

typedef struct {
    ErrorStat pre, out, dinp, dweight, dbias;
} Stats;

static float *random_values(size_t n, float lo, float hi, uint64_t *rng) {
    float *x = mnrl_malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = uniform(rng, lo, hi);
    return x;
}

static void check_value(ErrorStat *st, double got, double want, double tol, int bf16) {
    track(st, got, want, tol + (bf16 ? kUbf16 * (fabs(want) + tol) : 0.0));
}

static double gelu_prime(double x) {
    return 0.5 * (1.0 + erf(x / sqrt(2.0))) + x * exp(-0.5 * x * x) / sqrt(2.0 * 3.14159265358979323846);
}

// Forward: compares pre (or out without GELU) and out with the CPU's.
static void check_forward(Stats *st, int T, int C, int OC, int bf16, int with_bias, int with_gelu, uint64_t *rng) {
    size_t elem = bf16 ? 2 : 4, n_out = (size_t)T * OC;
    float w_range = 3.0f / sqrtf((float)C);  // pre ~ unit variance: GELU's curved part
    float *inp = random_values((size_t)T * C, -1.0f, 1.0f, rng), *w = random_values((size_t)OC * C, -w_range, w_range, rng);
    float *bias = with_bias ? random_values(OC, -1.0f, 1.0f, rng) : NULL;
    void *dev_inp = device_act(inp, (size_t)T * C, bf16), *dev_w = device_act(w, (size_t)OC * C, bf16);
    void *dev_bias = with_bias ? device_act(bias, OC, bf16) : NULL;
    void *dev_out = device_copy(NULL, n_out * elem + OC * elem);  // one extra row: untouched
    void *dev_pre = with_gelu ? device_copy(NULL, n_out * elem + OC * elem) : NULL;
    MnrlGemmContext ctx;
    MnrlError err = {{0}};
    CHECK(mnrl_cuda_gemm_context_create(&ctx, 1 << 20, &err) == 0);
    double start = mnrl_now();
    int rc = bf16 ? mnrl_cuda_matmul_forward_bf16(dev_out, dev_pre, dev_inp, dev_w, dev_bias, T, C, OC, &ctx, NULL, &err)
                  : mnrl_cuda_matmul_forward_f32(dev_out, dev_pre, dev_inp, dev_w, dev_bias, T, C, OC, &ctx, NULL, &err);
    kernel_seconds += mnrl_now() - start;
    CHECK_MSG(rc == 0, "%s", err.msg);
    mnrl_cuda_gemm_context_destroy(&ctx);
    float *out = download_act(dev_out, n_out, bf16), *pre = with_gelu ? download_act(dev_pre, n_out, bf16) : NULL;
    unsigned char *tail = host_copy((char *)dev_out + n_out * elem, OC * elem);
    CHECK_MSG(all_bytes_ff(tail, OC * elem), "T=%d C=%d OC=%d: forward wrote past row T", T, C, OC);
    free(tail);
    float *ref = mnrl_malloc(n_out * 4), *ref_pre = with_gelu ? mnrl_malloc(n_out * 4) : NULL;
    ops_cpu()->matmul_forward(ref, ref_pre, inp, w, bias, T, C, OC);
    for (int t = 0; t < T; t++)
        for (int o = 0; o < OC; o++) {
            size_t i = (size_t)t * OC + o;
            double mag = bias ? fabs(bias[o]) : 0.0;
            for (int c = 0; c < C; c++) mag += fabs((double)inp[(size_t)t * C + c] * w[(size_t)o * C + c]);
            double tol = (2.0 * C + 4) * kU * mag;
            if (!with_gelu) {
                check_value(&st->out, out[i], ref[i], tol, bf16);
                continue;
            }
            double x = ref_pre[i];
            check_value(&st->pre, pre[i], x, tol, bf16);
            double delta = tol + (bf16 ? kUbf16 * (fabs(x) + tol) : 0.0);
            double tol_out = (fabs(gelu_prime(x)) + 0.4 * delta) * delta + (8 + 2 * x * x) * kU * fabs(ref[i]);
            check_value(&st->out, out[i], ref[i], tol_out, bf16);
        }
    free(ref);
    free(ref_pre);
    free(out);
    free(pre);
    free(inp);
    free(w);
    free(bias);
    cudaFree(dev_inp);
    cudaFree(dev_w);
    cudaFree(dev_bias);
    cudaFree(dev_out);
    cudaFree(dev_pre);
}

// Backward with dinp mode 0 (skipped), 1 (written) or 2 (accumulated onto random values).
static void check_backward(Stats *st, int T, int C, int OC, int bf16, int with_bias, int dinp_mode, uint64_t *rng) {
    size_t elem = bf16 ? 2 : 4;
    float *inp = random_values((size_t)T * C, -1.0f, 1.0f, rng), *w = random_values((size_t)OC * C, -0.2f, 0.2f, rng);
    float *dout = random_values((size_t)T * OC, -1.0f, 1.0f, rng);
    float *dinp0 = random_values((size_t)T * C, -1.0f, 1.0f, rng);
    float *dw0 = random_values((size_t)OC * C, -1.0f, 1.0f, rng), *db0 = random_values(OC, -1.0f, 1.0f, rng);
    void *dev_inp = device_act(inp, (size_t)T * C, bf16), *dev_w = device_act(w, (size_t)OC * C, bf16);
    void *dev_dout = device_act(dout, (size_t)T * OC, bf16);
    void *dev_dinp = NULL;
    if (dinp_mode == 2) {  // the old values, then one untouched row
        float *with_tail = mnrl_malloc(((size_t)T + 1) * C * 4);
        memcpy(with_tail, dinp0, (size_t)T * C * 4);
        for (int c = 0; c < C; c++) with_tail[(size_t)T * C + c] = NAN;
        dev_dinp = device_act(with_tail, ((size_t)T + 1) * C, bf16);
        memcpy(dinp0, with_tail, (size_t)T * C * 4);  // as rounded to the act dtype
        free(with_tail);
    } else if (dinp_mode == 1) {
        dev_dinp = device_copy(NULL, ((size_t)T + 1) * C * elem);
    }
    float *dev_dw = device_copy(dw0, (size_t)OC * C * 4), *dev_db = with_bias ? device_copy(db0, OC * 4) : NULL;
    void *workspace = device_copy(NULL, mnrl_cuda_matmul_backward_workspace_bytes(T, OC));
    MnrlError err = {{0}};
    double start = mnrl_now();
    int rc = bf16 ? mnrl_cuda_matmul_backward_bf16(dev_dinp, dev_dw, dev_db, dev_dout, dev_inp, dev_w, T, C, OC,
                                                   dinp_mode == 2, workspace, NULL, NULL, &err)
                  : mnrl_cuda_matmul_backward_f32(dev_dinp, dev_dw, dev_db, dev_dout, dev_inp, dev_w, T, C, OC,
                                                  dinp_mode == 2, workspace, NULL, NULL, &err);
    kernel_seconds += mnrl_now() - start;
    CHECK_MSG(rc == 0, "%s", err.msg);

    float *ref_dinp = dinp_mode ? mnrl_malloc((size_t)T * C * 4) : NULL;
    if (dinp_mode == 2) memcpy(ref_dinp, dinp0, (size_t)T * C * 4);
    float *ref_dw = mnrl_malloc((size_t)OC * C * 4), *ref_db = mnrl_malloc(OC * 4);
    memcpy(ref_dw, dw0, (size_t)OC * C * 4);
    memcpy(ref_db, db0, OC * 4);
    ops_cpu()->matmul_backward(ref_dinp, ref_dw, with_bias ? ref_db : NULL, dout, inp, w, T, C, OC, dinp_mode == 2,
                               NULL);
    if (dinp_mode) {
        float *dinp = download_act(dev_dinp, ((size_t)T + 1) * C, bf16);
        if (dinp_mode == 2) {
            int untouched = 1;
            for (int c = 0; c < C; c++) untouched &= isnan(dinp[(size_t)T * C + c]) != 0;
            CHECK_MSG(untouched, "T=%d C=%d OC=%d: dinp accumulated past row T", T, C, OC);
        } else {
            unsigned char *tail = host_copy((char *)dev_dinp + (size_t)T * C * elem, C * elem);
            CHECK_MSG(all_bytes_ff(tail, C * elem), "T=%d C=%d OC=%d: dinp written past row T", T, C, OC);
            free(tail);
        }
        for (int t = 0; t < T; t++)
            for (int c = 0; c < C; c++) {
                size_t i = (size_t)t * C + c;
                double mag = dinp_mode == 2 ? fabs(dinp0[i]) : 0.0;
                for (int o = 0; o < OC; o++) mag += fabs((double)dout[(size_t)t * OC + o] * w[(size_t)o * C + c]);
                check_value(&st->dinp, dinp[i], ref_dinp[i], (2.0 * OC + 4) * kU * mag, bf16);
            }
        free(dinp);
    }
    float *dw = host_copy(dev_dw, (size_t)OC * C * 4);
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < C; c++) {
            size_t i = (size_t)o * C + c;
            double mag = fabs(dw0[i]);
            for (int t = 0; t < T; t++) mag += fabs((double)dout[(size_t)t * OC + o] * inp[(size_t)t * C + c]);
            check_value(&st->dweight, dw[i], ref_dw[i], (2.0 * T + 4) * kU * mag, 0);
        }
    if (with_bias) {
        float *db = host_copy(dev_db, OC * 4);
        for (int o = 0; o < OC; o++) {
            double mag = 0.0;
            for (int t = 0; t < T; t++) mag += fabs(dout[(size_t)t * OC + o]);
            check_value(&st->dbias, db[o], ref_db[o], (T + 12.0) * kU * mag + 2 * kU * fabs(ref_db[o]), 0);
        }
        free(db);
    }
    free(dw);
    free(ref_dinp);
    free(ref_dw);
    free(ref_db);
    free(inp);
    free(w);
    free(dout);
    free(dinp0);
    free(dw0);
    free(db0);
    cudaFree(dev_inp);
    cudaFree(dev_w);
    cudaFree(dev_dout);
    cudaFree(dev_dinp);
    cudaFree(dev_dw);
    cudaFree(dev_db);
    cudaFree(workspace);
}

// gelu_bias_backward on [T, OC] (see the top), dinp in place over dout or not.
static void check_gelu_bias(int T, int OC, int bf16, int in_place, uint64_t *rng) {
    size_t n = (size_t)T * OC, elem = bf16 ? 2 : 4;
    float *pre = random_values(n, -5.0f, 5.0f, rng), *dout = random_values(n, -1.0f, 1.0f, rng);
    float *db0 = random_values(OC, -1.0f, 1.0f, rng);
    void *dev_pre = device_act(pre, n, bf16), *dev_dout = device_act(dout, n, bf16);
    void *dev_want = device_copy(NULL, n * elem), *dev_dinp = in_place ? dev_dout : device_copy(NULL, n * elem + 64);
    float *dev_db = device_copy(db0, OC * 4);
    void *workspace = device_copy(NULL, mnrl_cuda_matmul_backward_workspace_bytes(T, OC));
    MnrlError err = {{0}};
    int rc = bf16 ? mnrl_cuda_gelu_backward_bf16(dev_want, dev_pre, dev_dout, n, NULL, &err)
                  : mnrl_cuda_gelu_backward_f32(dev_want, dev_pre, dev_dout, n, NULL, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    double start = mnrl_now();
    rc = bf16 ? mnrl_cuda_gelu_bias_backward_bf16(dev_dinp, dev_db, dev_pre, dev_dout, T, OC, workspace, NULL, &err)
              : mnrl_cuda_gelu_bias_backward_f32(dev_dinp, dev_db, dev_pre, dev_dout, T, OC, workspace, NULL, &err);
    kernel_seconds += mnrl_now() - start;
    CHECK_MSG(rc == 0, "%s", err.msg);
    unsigned char *got = host_copy(dev_dinp, n * elem), *want = host_copy(dev_want, n * elem);
    CHECK_MSG(memcmp(got, want, n * elem) == 0, "T=%d OC=%d %s%s: gelu_bias_backward's dinp differs from "
              "gelu_backward's", T, OC, bf16 ? "bf16" : "fp32", in_place ? " in place" : "");
    if (!in_place) {
        unsigned char *tail = host_copy((char *)dev_dinp + n * elem, 64);
        CHECK_MSG(all_bytes_ff(tail, 64), "T=%d OC=%d: gelu_bias_backward wrote past dinp", T, OC);
        free(tail);
    }
    float *dinp = download_act(dev_dinp, n, bf16), *db = host_copy(dev_db, OC * 4);
    double worst = 0.0;
    for (int o = 0; o < OC; o++) {
        double sum = db0[o], mag = 0.0;
        for (int t = 0; t < T; t++) {
            sum += dinp[(size_t)t * OC + o];
            mag += fabs(dinp[(size_t)t * OC + o]);
        }
        double ratio = fabs(db[o] - sum) / ((T + 12.0) * kU * mag + 2 * kU * fabs(sum));
        if (ratio > worst) worst = ratio;
    }
    printf("gelu_bias_backward T=%-3d OC=%-4d %s%s: dinp = gelu_backward's, dbias %.2f of tolerance\n", T, OC,
           bf16 ? "bf16" : "fp32", in_place ? " in place" : "", worst);
    CHECK_MSG(worst <= 1.0, "T=%d OC=%d %s: gelu_bias_backward dbias %.3g x tolerance", T, OC, bf16 ? "bf16" : "fp32",
              worst);
    free(got), free(want), free(dinp), free(db), free(pre), free(dout), free(db0);
    void *bufs[] = {dev_pre, dev_dout, dev_want, in_place ? NULL : dev_dinp, dev_db, workspace};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) cudaFree(bufs[i]);
}

static void check_arguments(void) {
    MnrlError err = {{0}};
    CHECK_EQ_INT(mnrl_cuda_matmul_forward_f32(NULL, NULL, NULL, NULL, NULL, -1, 64, 64, NULL, NULL, &err), -1);
    CHECK_CONTAINS(err.msg, "bad shape T=-1");
    CHECK_EQ_INT(mnrl_cuda_matmul_backward_bf16(NULL, NULL, NULL, NULL, NULL, NULL, 4, 0, 64, 0, NULL, NULL, NULL, &err),
                 -1);
    CHECK_CONTAINS(err.msg, "C=0");
    // No rows: nothing to launch (and the weight gradient is unchanged).
    CHECK_EQ_INT(mnrl_cuda_matmul_forward_bf16(NULL, NULL, NULL, NULL, NULL, 0, 384, 64, NULL, NULL, &err), 0);
    CHECK_EQ_INT(cudaGetLastError(), cudaSuccess);
}

int main(void) {
    const int rows[] = {1, 33, 129};
    const int shapes[][2] = {{64, 384}, {384, 1536}, {1536, 384}, {384, 64}};
    uint64_t rng = 5;
    double start = mnrl_now();
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int r = 0; r < 3; r++)
            for (int bf16 = 0; bf16 < 2; bf16++) {
                int T = rows[r], C = shapes[s][0], OC = shapes[s][1];
                Stats st;
                memset(&st, 0, sizeof st);
                // Forward with bias + GELU and backward with dinp written and dbias at every
                // size; at T <= 33 also forward plain and with bias only, backward with dinp
                // accumulated (no dbias) and skipped (with dbias). T = 129 runs only the
                // first two, which keeps the emulated test fast.
                check_forward(&st, T, C, OC, bf16, 1, 1, &rng);
                check_backward(&st, T, C, OC, bf16, 1, 1, &rng);
                if (T <= 33) {
                    check_forward(&st, T, C, OC, bf16, 0, 0, &rng);
                    check_forward(&st, T, C, OC, bf16, 1, 0, &rng);
                    check_backward(&st, T, C, OC, bf16, 0, 2, &rng);
                    check_backward(&st, T, C, OC, bf16, 1, 0, &rng);
                }
                printf("T=%-3d C=%-4d OC=%-4d %s | out %.1e (%.2f) pre %.1e (%.2f) | dinp %.1e (%.2f) dweight %.1e "
                       "(%.2f) dbias %.1e (%.2f)\n", T, C, OC, bf16 ? "bf16" : "fp32", st.out.max_err, st.out.worst,
                       st.pre.max_err, st.pre.worst, st.dinp.max_err, st.dinp.worst, st.dweight.max_err,
                       st.dweight.worst, st.dbias.max_err, st.dbias.worst);
                const ErrorStat *all[] = {&st.out, &st.pre, &st.dinp, &st.dweight, &st.dbias};
                const char *names[] = {"out", "pre_gelu", "dinp", "dweight", "dbias"};
                for (int k = 0; k < 5; k++)
                    CHECK_MSG(all[k]->worst <= 1.0, "T=%d C=%d OC=%d %s: %s error %.3g x tolerance", T, C, OC,
                              bf16 ? "bf16" : "fp32", names[k], all[k]->worst);
            }
    // gelu_bias_backward: 16-byte vectors (OC 64, 1536) and single columns (OC 99).
    const int gelu_rows[] = {1, 33, 700}, gelu_cols[] = {64, 1536, 99};
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            for (int bf16 = 0; bf16 < 2; bf16++) check_gelu_bias(gelu_rows[r], gelu_cols[c], bf16, (r + c) % 2, &rng);
    check_arguments();
    printf("matmul kernels: %.3f s emulated, whole test %.3f s\n", kernel_seconds, mnrl_now() - start);
    TEST_END();
}
