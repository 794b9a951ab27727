// test_adamw.c — src/kernels/adamw.cu (AdamW on fp32 master weights writing the bf16
// compute copy; global gradient norm and clipping) run under the CUDA emulation and
// compared with the CPU backend's ops_cpu()->adamw / clip_grad_norm on the same values.
// Sizes n = 1, 3, 33, 4097, 100,003, 2,200,001 (more than one grid-stride of the norm's
// 65,536 threads, which read 4 elements each) and 8,388,613 (more than one grid-stride of
// AdamW's capped grid, 2^21 threads of 4 elements, plus a tail); three consecutive steps
// with and without weight decay, as a training run calls them.
//
// Tolerances:
//  - AdamW: the kernel performs the CPU's fp32 operations in the CPU's order on the same
//    fp32 scalars, with products that cannot be contracted into fused multiply-adds, so
//    params, m and v must equal the CPU's bit for bit after every step; the bf16 copy must
//    be the kernel's own fp32 params rounded to bf16 (safetensors_f32_to_bf16): exact.
//  - norm: both sides add the exact fp64 squares, in different orders; the fp64 sums
//    differ by at most n·2^-53 relative, far below fp32 resolution, and each side rounds
//    the square root once to fp32: tol = 2u·norm (u = 2^-24).
//  - clipped gradients: g·coef with coef = max_norm / (norm + 1e-6) in fp32 on both
//    sides; norms at most 2u apart move coef by 3u: tol = 4u·|g|.
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "mnrl/common.h"
#include "mnrl/kernels.h"
#include "mnrl/ops.h"
#include "test.h"
#include "kernel_test.h"

// Gradients of varied magnitudes, zeros included, as real gradients are.
static float *make_grads(size_t n, float scale, uint64_t *rng) {
    float *g = mnrl_malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        float mag = i % 11 == 10 ? 0.0f : (i % 5 == 4 ? 1e-6f : 1.0f);
        g[i] = scale * mag * uniform(rng, -1.0f, 1.0f);
    }
    return g;
}

static size_t count_different(const float *a, const float *b, size_t n) {
    size_t differ = 0;
    for (size_t i = 0; i < n; i++) differ += memcmp(&a[i], &b[i], 4) != 0;
    return differ;
}

static void check_adamw(size_t n, double weight_decay, int with_act, uint64_t *rng) {
    float *p = mnrl_malloc(n * 4), *m = mnrl_calloc(n, 4), *v = mnrl_calloc(n, 4);
    for (size_t i = 0; i < n; i++) p[i] = uniform(rng, -0.1f, 0.1f);
    float *dev_p = device_copy(p, n * 4), *dev_m = device_copy(m, n * 4), *dev_v = device_copy(v, n * 4);
    uint16_t *dev_act = with_act ? device_copy(NULL, n * 2) : NULL;
    size_t differ = 0, act_differ = 0;
    for (int step = 1; step <= 3; step++) {
        float *g = make_grads(n, 0.5f * step, rng);
        float *dev_g = device_copy(g, n * 4);
        double lr = 2e-5 * step;  // a warmup-like schedule
        MnrlError err = {{0}};
        double start = mnrl_now();
        int rc = mnrl_cuda_adamw(dev_p, dev_act, dev_g, dev_m, dev_v, n, lr, 0.9, 0.999, 1e-6, weight_decay, step,
                                 NULL, &err);
        kernel_seconds += mnrl_now() - start;
        CHECK_MSG(rc == 0, "%s", err.msg);
        ops_cpu()->adamw(p, NULL, g, m, v, n, lr, 0.9, 0.999, 1e-6, weight_decay, step);
        float *got_p = host_copy(dev_p, n * 4), *got_m = host_copy(dev_m, n * 4), *got_v = host_copy(dev_v, n * 4);
        differ += count_different(got_p, p, n) + count_different(got_m, m, n) + count_different(got_v, v, n);
        if (with_act) {
            uint16_t *act = host_copy(dev_act, n * 2);
            for (size_t i = 0; i < n; i++) act_differ += act[i] != safetensors_f32_to_bf16(got_p[i]);
            free(act);
        }
        free(got_p);
        free(got_m);
        free(got_v);
        free(g);
        cudaFree(dev_g);
    }
    printf("adamw n=%-7zu wd=%.2f %s: %zu of %zu values differ from the CPU's after 3 steps; bf16 copy: %zu\n", n,
           weight_decay, with_act ? "bf16 copy" : "no copy  ", differ, 9 * n, act_differ);
    CHECK_MSG(differ == 0, "adamw n=%zu: %zu params/moments differ from ops_cpu", n, differ);
    CHECK_MSG(act_differ == 0, "adamw n=%zu: %zu bf16 copies differ from the rounded params", n, act_differ);
    free(p);
    free(m);
    free(v);
    cudaFree(dev_p);
    cudaFree(dev_m);
    cudaFree(dev_v);
    cudaFree(dev_act);
}

// Returns the norm's error relative to the CPU's; checks the (possibly clipped) gradients.
static double check_clip(size_t n, float scale, float max_norm, uint64_t *rng) {
    float *g = make_grads(n, scale, rng);
    float *dev_g = device_copy(g, n * 4);
    void *workspace = device_copy(NULL, mnrl_cuda_clip_grad_norm_workspace_bytes());
    float norm = -1.0f;
    MnrlError err = {{0}};
    double start = mnrl_now();
    int rc = mnrl_cuda_clip_grad_norm(dev_g, n, max_norm, workspace, &norm, NULL, &err);
    kernel_seconds += mnrl_now() - start;
    CHECK_MSG(rc == 0, "%s", err.msg);
    float ref_norm = ops_cpu()->clip_grad_norm(g, n, max_norm, NULL);
    float *got = host_copy(dev_g, n * 4);
    ErrorStat st = {0, 0};
    for (size_t i = 0; i < n; i++) track(&st, got[i], g[i], 4 * kU * fabs(g[i]));
    double error = fabs((double)norm - ref_norm), rel = ref_norm > 0 ? error / ref_norm : error;
    printf("clip n=%-7zu max_norm %.1f: norm %.7g (CPU %.7g, rel. err %.1e), %s, grads max|err| %.1e (%.2f tol)\n",
           n, max_norm, norm, ref_norm, rel, max_norm > 0 && max_norm < ref_norm ? "clipped" : "not clipped",
           st.max_err, st.worst);
    CHECK_MSG(error <= 2 * kU * ref_norm, "clip n=%zu: norm %.9g vs CPU %.9g", n, norm, ref_norm);
    CHECK_MSG(st.worst <= 1.0, "clip n=%zu: gradients off by %.3g x tolerance", n, st.worst);
    free(g);
    free(got);
    cudaFree(dev_g);
    cudaFree(workspace);
    return rel;
}

static void check_arguments(void) {
    MnrlError err = {{0}};
    CHECK_EQ_INT(mnrl_cuda_adamw(NULL, NULL, NULL, NULL, NULL, 4, 1e-3, 0.9, 0.999, 1e-8, 0.01, 0, NULL, &err), -1);
    CHECK_CONTAINS(err.msg, "step 0");
    float norm = -1.0f;
    CHECK_EQ_INT(mnrl_cuda_clip_grad_norm(NULL, 0, 1.0f, NULL, &norm, NULL, &err), 0);  // nothing to launch
    CHECK_EQ_INT(norm == 0.0f, 1);
    CHECK_EQ_INT(cudaGetLastError(), cudaSuccess);
}

int main(void) {
    uint64_t rng = 5;
    const size_t sizes[] = {1, 3, 33, 4097, 100003, 2200001, 8388613};
    const size_t nsizes = sizeof sizes / sizeof sizes[0];
    double start = mnrl_now(), worst_norm = 0.0;
    for (size_t i = 0; i < nsizes; i++) {
        check_adamw(sizes[i], 0.01, (int)(i % 2), &rng);
        check_adamw(sizes[i], 0.0, (int)(1 - i % 2), &rng);
    }
    // Norms above and below max_norm, and max_norm 0 (measure only).
    for (size_t i = 0; i < nsizes; i++) {
        double rel[] = {check_clip(sizes[i], 1.0f, 1.0f, &rng), check_clip(sizes[i], 1e-3f, 1.0f, &rng),
                        check_clip(sizes[i], 1.0f, 0.0f, &rng)};
        for (int k = 0; k < 3; k++)
            if (rel[k] > worst_norm) worst_norm = rel[k];
    }
    printf("clip: worst relative norm error %.2e\n", worst_norm);
    check_arguments();
    printf("adamw kernels: %.3f s emulated, whole test %.3f s\n", kernel_seconds, mnrl_now() - start);
    TEST_END();
}
