// test_pooling.c — src/kernels/pooling.cu (masked mean pooling, forward and backward,
// fp32 and bf16 activations) run under the CUDA emulation and compared with the CPU
// backend's ops_cpu()->mean_pool_forward / mean_pool_backward on the same values (bf16
// inputs decoded to fp32). Sentence lengths 1, 2, 31, 33, 75, 128, 129, 512 packed
// together, batch 1 and odd batches, hidden 64 and 384. Host C code only: the same test
// can drive the nvcc build.
//
// Tolerances (u = 2^-24, the fp32 unit roundoff) are proven error bounds, so any wrong
// token, count or column fails by orders of magnitude:
//  - forward: the kernel's fp32 sum of n terms is within (n-1)·u·Σ|x| of the exact sum,
//    its division adds u·|mean|; the CPU sums in fp64 and rounds once (u·|mean|):
//    tol = (n-1)·u·Σ|x| / n + 3u·|mean|. bf16 inputs are exact in fp32, so the same bound.
//  - backward fp32: the kernel rounds dout/len once (u·|g|), the CPU rounds 1/len and the
//    product (2u·|g|): tol = 4u·|g|; bf16 adds the rounding to bf16 (8 significant bits:
//    2^-8 relative): tol = (2^-8 + 4u)·|g|.
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "mnrl/common.h"
#include "mnrl/kernels.h"
#include "mnrl/ops.h"
#include "test.h"
#include "kernel_test.h"

// Forward: returns the largest error / tolerance ratio over all outputs (<= 1 passes) and
// the largest absolute error in *max_err.
static double check_forward(const Case *c, int C, int bf16, const float *inp, const void *dev_inp,
                            const int32_t *dev_cu, const int32_t *cu, double *max_err) {
    size_t out_elems = (size_t)(c->S + 1) * C;  // one extra row: must stay untouched
    float *dev_out = device_copy(NULL, out_elems * sizeof(float));
    MnrlError err = {{0}};
    double start = mnrl_now();
    int rc = bf16 ? mnrl_cuda_mean_pool_forward_bf16(dev_out, dev_inp, dev_cu, c->S, C, NULL, &err)
                  : mnrl_cuda_mean_pool_forward_f32(dev_out, dev_inp, dev_cu, c->S, C, NULL, &err);
    kernel_seconds += mnrl_now() - start;
    CHECK_MSG(rc == 0, "%s", err.msg);
    float *out = mnrl_malloc(out_elems * sizeof(float));
    cudaMemcpy(out, dev_out, out_elems * sizeof(float), cudaMemcpyDeviceToHost);
    float *ref = mnrl_malloc((size_t)c->S * C * sizeof(float));
    ops_cpu()->mean_pool_forward(ref, inp, cu, c->S, C);
    double worst = 0.0;
    for (int s = 0; s < c->S; s++) {
        int n = cu[s + 1] - cu[s];
        for (int j = 0; j < C; j++) {
            double abs_sum = 0.0, mean = ref[(size_t)s * C + j];
            for (int t = cu[s]; t < cu[s + 1]; t++) abs_sum += fabs(inp[(size_t)t * C + j]);
            double tol = (n - 1) * kU * abs_sum / n + 3 * kU * fabs(mean) + 1e-30;
            double error = fabs(out[(size_t)s * C + j] - mean), ratio = error / tol;
            if (!(ratio <= worst)) worst = ratio;  // NaN propagates as a failure
            if (error > *max_err) *max_err = error;
        }
    }
    free(ref);
    CHECK_MSG(all_bytes_ff(out + (size_t)c->S * C, C * sizeof(float)), "%s: forward wrote past row S", c->name);
    free(out);
    cudaFree(dev_out);
    return worst;
}

// Backward: dinp has one extra row past T that must stay untouched.
static double check_backward(const Case *c, int C, int bf16, int T, const int32_t *dev_cu, const int32_t *cu,
                             uint64_t *rng, double *max_err) {
    size_t dout_elems = (size_t)c->S * C, dinp_elems = (size_t)(T + 1) * C;
    size_t elem = bf16 ? sizeof(uint16_t) : sizeof(float);
    float *dout = mnrl_malloc(dout_elems * sizeof(float));
    for (size_t i = 0; i < dout_elems; i++) dout[i] = uniform(rng, -1.0f, 1.0f);
    float *dev_dout = device_copy(dout, dout_elems * sizeof(float));
    void *dev_dinp = device_copy(NULL, dinp_elems * elem);
    MnrlError err = {{0}};
    double start = mnrl_now();
    int rc = bf16 ? mnrl_cuda_mean_pool_backward_bf16(dev_dinp, dev_dout, dev_cu, c->S, C, NULL, &err)
                  : mnrl_cuda_mean_pool_backward_f32(dev_dinp, dev_dout, dev_cu, c->S, C, NULL, &err);
    kernel_seconds += mnrl_now() - start;
    CHECK_MSG(rc == 0, "%s", err.msg);
    unsigned char *raw = mnrl_malloc(dinp_elems * elem);
    cudaMemcpy(raw, dev_dinp, dinp_elems * elem, cudaMemcpyDeviceToHost);
    float *ref = mnrl_malloc((size_t)T * C * sizeof(float));
    ops_cpu()->mean_pool_backward(ref, dout, cu, c->S, C);
    double rel = bf16 ? 1.0 / 256.0 + 4 * kU : 4 * kU, worst = 0.0;
    for (int s = 0; s < c->S; s++) {
        for (int t = cu[s]; t < cu[s + 1]; t++)
            for (int j = 0; j < C; j++) {
                size_t i = (size_t)t * C + j;
                double g = ref[i];
                double got = bf16 ? safetensors_bf16_to_f32(((const uint16_t *)raw)[i]) : ((const float *)raw)[i];
                double error = fabs(got - g), ratio = error / (rel * fabs(g) + 1e-30);
                if (!(ratio <= worst)) worst = ratio;
                if (error > *max_err) *max_err = error;
            }
    }
    CHECK_MSG(all_bytes_ff(raw + (size_t)T * C * elem, C * elem), "%s: backward wrote past row T", c->name);
    free(ref);
    free(raw);
    free(dout);
    cudaFree(dev_dout);
    cudaFree(dev_dinp);
    return worst;
}

static void run_case(const Case *c, int C, int bf16, uint64_t *rng) {
    int T = 0;
    int32_t *cu = case_offsets(c, &T);
    size_t n = (size_t)T * C;
    float *inp = mnrl_malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) inp[i] = uniform(rng, -3.0f, 3.0f) + (float)(i % C) * 0.01f;
    void *dev_inp = device_act(inp, n, bf16);  // bf16: inp rounded in place, as the kernel reads it
    int32_t *dev_cu = device_copy(cu, (size_t)(c->S + 1) * sizeof(int32_t));

    double fwd_err = 0.0, bwd_err = 0.0;
    double fwd = check_forward(c, C, bf16, inp, dev_inp, dev_cu, cu, &fwd_err);
    double bwd = check_backward(c, C, bf16, T, dev_cu, cu, rng, &bwd_err);
    printf("%-20s C=%-3d %s T=%-4d forward max|err| %.2e (%.2f tol), backward %.2e (%.2f tol)\n", c->name,
           C, bf16 ? "bf16" : "fp32", T, fwd_err, fwd, bwd_err, bwd);
    CHECK_MSG(fwd <= 1.0, "%s C=%d %s: forward error %.3g x tolerance", c->name, C, bf16 ? "bf16" : "fp32", fwd);
    CHECK_MSG(bwd <= 1.0, "%s C=%d %s: backward error %.3g x tolerance", c->name, C, bf16 ? "bf16" : "fp32", bwd);
    cudaFree(dev_inp);
    cudaFree(dev_cu);
    free(inp);
    free(cu);
}

static void check_arguments(void) {
    MnrlError err = {{0}};
    CHECK_EQ_INT(mnrl_cuda_mean_pool_forward_f32(NULL, NULL, NULL, -1, 64, NULL, &err), -1);
    CHECK_CONTAINS(err.msg, "bad shape S=-1");
    CHECK_EQ_INT(mnrl_cuda_mean_pool_backward_bf16(NULL, NULL, NULL, 3, 0, NULL, &err), -1);
    CHECK_CONTAINS(err.msg, "C=0");
    // No sentences: nothing to launch (a zero-block grid would be a launch error).
    CHECK_EQ_INT(mnrl_cuda_mean_pool_forward_bf16(NULL, NULL, NULL, 0, 384, NULL, &err), 0);
    CHECK_EQ_INT(cudaGetLastError(), cudaSuccess);
}

int main(void) {
    uint64_t rng = 42;
    const Case *cases = NULL;
    int n_cases = packed_cases(&cases);
    const int hidden[] = {64, 384};
    double start = mnrl_now();
    for (int k = 0; k < n_cases; k++)
        for (int h = 0; h < 2; h++)
            for (int bf16 = 0; bf16 < 2; bf16++) run_case(&cases[k], hidden[h], bf16, &rng);
    check_arguments();
    printf("pooling kernels: %.3f s emulated, whole test %.3f s\n", kernel_seconds, mnrl_now() - start);
    TEST_END();
}
