// test_adamw.c — src/kernels/adamw.cu (the global gradient norm; clipping, AdamW on fp32
// master weights writing the bf16 compute copy, and zeroing of the gradients, fused) run
// under the CUDA emulation and compared with the CPU backend's ops_cpu()->grad_norm and
// ops_cpu()->adamw on the same values.
//
// AdamW: three consecutive steps, as a training run calls them, over
//  - one run of n = 1, 3, 33, 4097, 100,003 and 8,388,613 parameters (4,096 of AdamW's
//    2,048-element blocks plus a partial one that goes element by element), decay on and
//    off, clipped (norm above max_norm), not clipped (norm below it) and max_norm 0;
//  - awkward tables: runs of 1, 3, 5, ... elements, decay alternating and repeated, from a
//    misaligned base pointer (the one-element path) and from an aligned one (vectors of 4
//    that straddle run ends); run ends one element before, at and after a block's end;
//    and 300 runs (three launches of at most 128 runs).
// The CPU's norm is copied into the kernel's norm buffer, so both sides clip by the same
// coefficient (the norm kernels are compared on their own below).
//
// Tolerances:
//  - AdamW: the kernel performs the CPU's fp32 operations in the CPU's order on the same
//    fp32 scalars, with products that cannot be contracted into fused multiply-adds, so
//    params, m and v must equal the CPU's bit for bit after every step, the gradients must
//    be zero, and the bf16 copy must be the kernel's own fp32 params rounded to bf16
//    (safetensors_f32_to_bf16): all exact. A NaN or infinite norm must leave params, the
//    bf16 copy, m and v bit for bit as they were and zero the gradients.
//  - norm: both sides add the exact fp64 squares, in different orders; the fp64 sums
//    differ by at most n·2^-53 relative, far below fp32 resolution, and each side rounds
//    the square root once to fp32: tol = 2u·norm (u = 2^-24).
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
    float *g = mnrl_malloc((n ? n : 1) * sizeof(float));
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

static size_t count_nonzero(const float *a, size_t n) {
    size_t nonzero = 0;
    for (size_t i = 0; i < n; i++) nonzero += a[i] != 0.0f;
    return nonzero;
}

// Optimizer state on both sides: host (CPU backend) and device (kernel) copies. The device
// buffers start `shift` floats into their allocation (shift 1: not 16-byte aligned).
typedef struct {
    size_t n, shift;
    float *p, *m, *v;                        // host
    float *dev_p, *dev_m, *dev_v, *dev_g;    // device, shifted
    uint16_t *dev_act;                       // device bf16 copy (shifted) or NULL
    float *dev_norm;
    void *alloc[5];
} State;

static void state_open(State *s, size_t n, size_t shift, int with_act, uint64_t *rng) {
    memset(s, 0, sizeof *s);
    s->n = n, s->shift = shift;
    s->p = mnrl_malloc((n ? n : 1) * 4), s->m = mnrl_calloc(n ? n : 1, 4), s->v = mnrl_calloc(n ? n : 1, 4);
    for (size_t i = 0; i < n; i++) s->p[i] = uniform(rng, -0.1f, 0.1f);
    float *staged = mnrl_calloc(n + shift, 4);
    memcpy(staged + shift, s->p, n * 4);
    s->alloc[0] = device_copy(staged, (n + shift) * 4);
    memset(staged, 0, (n + shift) * 4);
    s->alloc[1] = device_copy(staged, (n + shift) * 4);
    s->alloc[2] = device_copy(staged, (n + shift) * 4);
    s->alloc[3] = device_copy(NULL, (n + shift) * 4);
    s->alloc[4] = with_act ? device_copy(NULL, (n + shift) * 2) : NULL;
    free(staged);
    s->dev_p = (float *)s->alloc[0] + shift, s->dev_m = (float *)s->alloc[1] + shift;
    s->dev_v = (float *)s->alloc[2] + shift, s->dev_g = (float *)s->alloc[3] + shift;
    s->dev_act = with_act ? (uint16_t *)s->alloc[4] + shift : NULL;
    s->dev_norm = device_copy(NULL, sizeof(float));
}

static void state_close(State *s) {
    free(s->p), free(s->m), free(s->v);
    for (int k = 0; k < 5; k++) cudaFree(s->alloc[k]);
    cudaFree(s->dev_norm);
}

// Counts the device values (params, m, v) that differ from the host's bits, the bf16 copies
// that differ from the device params rounded, and the device gradients that are not 0.
static void state_compare(const State *s, size_t *differ, size_t *act_differ, size_t *nonzero) {
    size_t n = s->n;
    float *p = host_copy(s->dev_p, n * 4), *m = host_copy(s->dev_m, n * 4), *v = host_copy(s->dev_v, n * 4);
    float *g = host_copy(s->dev_g, n * 4);
    *differ += count_different(p, s->p, n) + count_different(m, s->m, n) + count_different(v, s->v, n);
    *nonzero += count_nonzero(g, n);
    if (s->dev_act) {
        uint16_t *act = host_copy(s->dev_act, n * 2);
        for (size_t i = 0; i < n; i++) *act_differ += act[i] != safetensors_f32_to_bf16(p[i]);
        free(act);
    }
    free(p), free(m), free(v), free(g);
}

// One step on both sides with the gradients g and the CPU's norm of them; returns it.
static float step_both(State *s, const MnrlParamRun *runs, size_t n_runs, float *g, const MnrlAdamwParams *hp,
                       int step) {
    float norm;
    ops_cpu()->grad_norm(&norm, g, s->n, NULL);
    cudaMemcpy(s->dev_g, g, s->n * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(s->dev_norm, &norm, sizeof norm, cudaMemcpyHostToDevice);
    MnrlError err = {{0}};
    double start = mnrl_now();
    int rc = mnrl_cuda_adamw(s->dev_p, s->dev_act, s->dev_g, s->dev_m, s->dev_v, runs, n_runs, s->dev_norm, hp, step,
                             NULL, &err);
    kernel_seconds += mnrl_now() - start;
    CHECK_MSG(rc == 0, "%s", err.msg);
    ops_cpu()->adamw(s->p, NULL, g, s->m, s->v, runs, n_runs, &norm, hp, step);
    return norm;
}

// Three steps over the runs (tiling n parameters) with gradients of norm about target_norm:
// 20 is clipped to max_norm 1 (even for n = 1), 1e-3 is not.
static void check_adamw(const char *what, const MnrlParamRun *runs, size_t n_runs, size_t shift, int with_act,
                        float target_norm, double max_norm, uint64_t *rng) {
    size_t n = runs[n_runs - 1].offset + runs[n_runs - 1].count;
    State s;
    state_open(&s, n, shift, with_act, rng);
    size_t differ = 0, act_differ = 0, nonzero = 0;
    double min_coef = INFINITY;
    for (int step = 1; step <= 3; step++) {
        float *g = make_grads(n, target_norm * sqrtf(3.0f / (float)n), rng);  // E[U(-1,1)²] = 1/3
        const MnrlAdamwParams hp = {.lr = 2e-5 * step, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-6,
                                    .weight_decay = 0.01, .max_norm = max_norm};  // a warmup-like lr
        float norm = step_both(&s, runs, n_runs, g, &hp, step);
        min_coef = fmin(min_coef, (float)max_norm / (norm + 1e-6f));
        state_compare(&s, &differ, &act_differ, &nonzero);
        free(g);
    }
    const char *clip = max_norm <= 0 ? "max_norm 0" : (min_coef < 1 ? "clipped" : "not clipped");
    printf("adamw %-28s n=%-7zu %s, %-11s: %zu of %zu values differ from the CPU's after 3 steps; bf16 copy: %zu; "
           "gradients left: %zu\n", what, n, with_act ? "bf16 copy" : "no copy  ", clip, differ, 9 * n, act_differ,
           nonzero);
    CHECK_MSG(differ == 0, "adamw %s n=%zu: %zu params/moments differ from ops_cpu", what, n, differ);
    CHECK_MSG(act_differ == 0, "adamw %s n=%zu: %zu bf16 copies differ from the rounded params", what, n, act_differ);
    CHECK_MSG(nonzero == 0, "adamw %s n=%zu: %zu gradients not zeroed", what, n, nonzero);
    CHECK_MSG(max_norm <= 0 || (strcmp(clip, "clipped") == 0) == (target_norm > max_norm),
              "adamw %s: the case meant to be %s was %s", what, target_norm > max_norm ? "clipped" : "not clipped",
              clip);
    state_close(&s);
}

// One run of n parameters; decay on or off.
static void check_one_run(size_t n, int decay, int with_act, float target_norm, double max_norm, uint64_t *rng) {
    const MnrlParamRun run = {0, n, decay};
    check_adamw(decay ? "one run, decay" : "one run, no decay", &run, 1, 0, with_act, target_norm, max_norm, rng);
}

// Runs of the given sizes and decay flags, tiling in order.
static size_t make_runs(MnrlParamRun *runs, const size_t *sizes, const int *decays, size_t count) {
    size_t offset = 0;
    for (size_t r = 0; r < count; r++) {
        runs[r] = (MnrlParamRun){offset, sizes[r], decays[r]};
        offset += sizes[r];
    }
    return count;
}

static void check_awkward_runs(uint64_t *rng) {
    // Sizes 1, 3, 5 and odd lengths: run ends inside vectors of 4; decay alternating, and
    // twice the same flag in a row; a run of 0 inside a vector (element 4107 starts the
    // run after it, whose flag differs from the empty run's).
    static const size_t sizes[] = {1, 3, 5, 4096 + 2, 0, 2, 1, 70001, 7, 33};
    static const int decays[] = {1, 0, 1, 0, 0, 1, 0, 1, 0, 0};
    MnrlParamRun runs[10];
    size_t n_runs = make_runs(runs, sizes, decays, 10);
    check_adamw("10 awkward runs, aligned", runs, n_runs, 0, 1, 20.0f, 1.0, rng);
    check_adamw("10 awkward runs, misaligned", runs, n_runs, 1, 0, 20.0f, 1.0, rng);
    check_adamw("10 awkward runs, not clipped", runs, n_runs, 0, 0, 1e-3f, 1.0, rng);
    // Run ends one element before a block's end, at it and one after it (adamw.cu's blocks
    // own 2,048 elements, 512 when misaligned: 2,047 is one short of both): a block whose
    // span lies in one run takes that run's decay for all its elements, the others look up
    // each element's run.
    static const size_t edge_sizes[] = {2047, 1, 2048, 2049, 4095, 3};
    static const int edge_decays[] = {1, 0, 1, 0, 1, 0};
    MnrlParamRun edge[6];
    check_adamw("runs at block ends, aligned", edge, make_runs(edge, edge_sizes, edge_decays, 6), 0, 1, 20.0f, 1.0,
                rng);
    check_adamw("runs at block ends, misaligned", edge, 6, 1, 0, 20.0f, 1.0, rng);
    // 300 runs of 1 to 64 elements: three launches (128 + 128 + 44 runs).
    enum { MANY = 300 };
    size_t many_sizes[MANY];
    int many_decays[MANY];
    for (int r = 0; r < MANY; r++) {
        many_sizes[r] = 1 + mnrl_splitmix64(rng) % 64;
        many_decays[r] = (int)(mnrl_splitmix64(rng) % 2);
    }
    MnrlParamRun many[MANY];
    check_adamw("300 runs (3 launches)", many, make_runs(many, many_sizes, many_decays, MANY), 0, 1, 20.0f, 1.0, rng);
}

// A NaN or infinite norm: the step changes nothing but the gradients, which it zeroes.
static void check_skipped_step(uint64_t *rng) {
    enum { N = 4099 };
    const MnrlParamRun runs[2] = {{0, 2000, 1}, {2000, N - 2000, 0}};
    const MnrlAdamwParams hp = {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01,
                                .max_norm = 1.0};
    const float bad[2] = {NAN, INFINITY};
    for (int k = 0; k < 2; k++) {
        State s;
        state_open(&s, N, 0, 1, rng);
        float *g = make_grads(N, 1.0f, rng);
        step_both(&s, runs, 2, g, &hp, 1);  // moments and bf16 copy no longer 0 / 0xFF
        float *p = host_copy(s.dev_p, N * 4), *m = host_copy(s.dev_m, N * 4), *v = host_copy(s.dev_v, N * 4);
        uint16_t *act = host_copy(s.dev_act, N * 2);
        cudaMemcpy(s.dev_g, g, N * 4, cudaMemcpyHostToDevice);
        cudaMemcpy(s.dev_norm, &bad[k], sizeof(float), cudaMemcpyHostToDevice);
        MnrlError err = {{0}};
        CHECK_EQ_INT(mnrl_cuda_adamw(s.dev_p, s.dev_act, s.dev_g, s.dev_m, s.dev_v, runs, 2, s.dev_norm, &hp, 2, NULL,
                                     &err), 0);
        float *p2 = host_copy(s.dev_p, N * 4), *m2 = host_copy(s.dev_m, N * 4), *v2 = host_copy(s.dev_v, N * 4);
        float *g2 = host_copy(s.dev_g, N * 4);
        uint16_t *act2 = host_copy(s.dev_act, N * 2);
        size_t changed = count_different(p2, p, N) + count_different(m2, m, N) + count_different(v2, v, N) +
                         (memcmp(act, act2, N * 2) != 0);
        printf("adamw with norm %g: %zu params/moments/copies changed, %zu gradients left\n", bad[k], changed,
               count_nonzero(g2, N));
        CHECK_MSG(changed == 0, "adamw with norm %g changed %zu values", bad[k], changed);
        CHECK_MSG(count_nonzero(g2, N) == 0, "adamw with norm %g left gradients", bad[k]);
        free(g), free(p), free(m), free(v), free(act), free(p2), free(m2), free(v2), free(g2), free(act2);
        state_close(&s);
    }
}

// Returns the norm's error relative to the CPU's.
static double check_norm(size_t n, float scale, size_t shift, uint64_t *rng) {
    float *g = make_grads(n, scale, rng);
    float *staged = mnrl_calloc(n + shift, 4);
    memcpy(staged + shift, g, n * 4);
    float *dev_g = device_copy(staged, (n + shift) * 4), *dev_norm = device_copy(NULL, sizeof(float));
    void *workspace = device_copy(NULL, mnrl_cuda_grad_norm_workspace_bytes());
    MnrlError err = {{0}};
    double start = mnrl_now();
    int rc = mnrl_cuda_grad_norm(dev_norm, dev_g + shift, n, workspace, NULL, &err);
    kernel_seconds += mnrl_now() - start;
    CHECK_MSG(rc == 0, "%s", err.msg);
    float norm = -1.0f, ref_norm = -1.0f;
    cudaMemcpy(&norm, dev_norm, sizeof norm, cudaMemcpyDeviceToHost);
    ops_cpu()->grad_norm(&ref_norm, g, n, NULL);
    double error = fabs((double)norm - ref_norm), rel = ref_norm > 0 ? error / ref_norm : error;
    printf("grad_norm n=%-7zu %s: %.7g (CPU %.7g, rel. err %.1e)\n", n, shift ? "misaligned" : "aligned   ", norm,
           ref_norm, rel);
    CHECK_MSG(error <= 2 * kU * ref_norm, "grad_norm n=%zu: %.9g vs CPU %.9g", n, norm, ref_norm);
    free(g), free(staged);
    cudaFree(dev_g), cudaFree(dev_norm), cudaFree(workspace);
    return rel;
}

static void check_arguments(void) {
    MnrlError err = {{0}};
    const MnrlParamRun runs[2] = {{0, 4, 1}, {5, 4, 0}};
    const MnrlAdamwParams hp = {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01};
    CHECK_EQ_INT(mnrl_cuda_adamw(NULL, NULL, NULL, NULL, NULL, runs, 1, NULL, &hp, 0, NULL, &err), -1);
    CHECK_CONTAINS(err.msg, "step 0");
    CHECK_EQ_INT(mnrl_cuda_adamw(NULL, NULL, NULL, NULL, NULL, runs, 2, NULL, &hp, 1, NULL, &err), -1);
    CHECK_CONTAINS(err.msg, "run 1 starts at 5, not at 4");
    float *dev_norm = device_copy(NULL, sizeof(float)), norm = -1.0f;
    CHECK_EQ_INT(mnrl_cuda_grad_norm(dev_norm, NULL, 0, NULL, NULL, &err), 0);  // no launch: the norm is 0
    cudaMemcpy(&norm, dev_norm, sizeof norm, cudaMemcpyDeviceToHost);
    CHECK_EQ_INT(norm == 0.0f, 1);
    cudaFree(dev_norm);
    CHECK_EQ_INT(cudaGetLastError(), cudaSuccess);
}

int main(void) {
    uint64_t rng = 5;
    const size_t sizes[] = {1, 3, 33, 4097, 100003, 8388613};
    const size_t nsizes = sizeof sizes / sizeof sizes[0];
    double start = mnrl_now(), worst_norm = 0.0;
    for (size_t i = 0; i < nsizes; i++) {
        // clipped with decay, not clipped without, max_norm 0 (with decay on the larger ones)
        check_one_run(sizes[i], 1, (int)(i % 2), 20.0f, 1.0, &rng);
        check_one_run(sizes[i], 0, (int)(1 - i % 2), 1e-3f, 1.0, &rng);
        if (sizes[i] < 1000000) check_one_run(sizes[i], (int)(i % 2), 1, 20.0f, 0.0, &rng);
    }
    check_awkward_runs(&rng);
    check_skipped_step(&rng);
    const size_t norm_sizes[] = {1, 3, 33, 4097, 100003, 2200001, 8388613};
    for (size_t i = 0; i < sizeof norm_sizes / sizeof norm_sizes[0]; i++) {
        worst_norm = fmax(worst_norm, check_norm(norm_sizes[i], 1.0f, 0, &rng));
        worst_norm = fmax(worst_norm, check_norm(norm_sizes[i], 1e-3f, 1, &rng));
    }
    printf("grad_norm: worst relative error %.2e\n", worst_norm);
    check_arguments();
    printf("adamw kernels: %.3f s emulated, whole test %.3f s\n", kernel_seconds, mnrl_now() - start);
    TEST_END();
}
