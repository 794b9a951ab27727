// kernel_test.h — what the kernel tests of this folder share (include after test.h): random
// inputs, device buffers in the act dtype (fp32 or bf16 as raw bits), error ratios against
// the CPU backend, and the packed-sentence cases of issue 5 (lengths 1, 2, 31, 33, 75,
// 128, 129, 512; batch 1 and odd batches). Host C only, so the tests could drive an nvcc
// build unchanged.
#ifndef MNRL_KERNEL_TEST_H
#define MNRL_KERNEL_TEST_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "mnrl/common.h"
#include "mnrl/safetensors.h"

static const double kU = 1.0 / 16777216.0;  // 2^-24: fp32 unit roundoff
static const double kUbf16 = 1.0 / 256.0;   // 2^-8: bf16 unit roundoff

// Time spent inside the launchers (under emulation: the kernels' run time).
static double kernel_seconds = 0.0;

static inline float uniform(uint64_t *rng, float lo, float hi) {
    return lo + (hi - lo) * (float)((double)(mnrl_splitmix64(rng) >> 11) / 9007199254740992.0);
}

// Device memory holding a copy of host, or (host NULL) 0xFF bytes, so that elements a
// kernel must not write can be checked afterwards (all_bytes_ff).
static inline void *device_copy(const void *host, size_t bytes) {
    void *dev = NULL;
    CHECK(cudaMalloc(&dev, bytes ? bytes : 1) == cudaSuccess);
    if (host && bytes) cudaMemcpy(dev, host, bytes, cudaMemcpyHostToDevice);
    else cudaMemset(dev, 0xFF, bytes ? bytes : 1);
    return dev;
}

static inline void *host_copy(const void *dev, size_t bytes) {
    void *host = mnrl_malloc(bytes ? bytes : 1);
    if (bytes) cudaMemcpy(host, dev, bytes, cudaMemcpyDeviceToHost);
    return host;
}

// Device copy of n values in the act dtype. For bf16 the host values are first rounded to
// bf16 in place, so that the CPU reference sees exactly what the kernel reads.
static inline void *device_act(float *values, size_t n, int bf16) {
    if (!bf16) return device_copy(values, n * sizeof(float));
    uint16_t *bits = mnrl_malloc((n ? n : 1) * sizeof(uint16_t));
    for (size_t i = 0; i < n; i++) {
        bits[i] = safetensors_f32_to_bf16(values[i]);
        values[i] = safetensors_bf16_to_f32(bits[i]);
    }
    void *dev = device_copy(bits, n * sizeof(uint16_t));
    free(bits);
    return dev;
}

// Host fp32 values of n act elements of device memory.
static inline float *download_act(const void *dev, size_t n, int bf16) {
    if (!bf16) return host_copy(dev, n * sizeof(float));
    uint16_t *bits = host_copy(dev, n * sizeof(uint16_t));
    float *values = mnrl_malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) values[i] = safetensors_bf16_to_f32(bits[i]);
    free(bits);
    return values;
}

static inline int all_bytes_ff(const void *p, size_t bytes) {
    const unsigned char *b = p;
    for (size_t i = 0; i < bytes; i++)
        if (b[i] != 0xFF) return 0;
    return 1;
}

// The largest error and error/tolerance ratio seen by one check (ratio <= 1 passes; NaN
// errors count as failures).
typedef struct {
    double max_err, worst;
} ErrorStat;

static inline void track(ErrorStat *stat, double got, double want, double tol) {
    double error = fabs(got - want), ratio = error / (tol + 1e-300);
    if (got != want && !(ratio <= stat->worst)) stat->worst = isnan(ratio) ? INFINITY : ratio;
    if (error > stat->max_err) stat->max_err = error;
}

// Sentence lengths of a packed batch.
typedef struct {
    const char *name;
    int S;
    const int *lengths;
} Case;

static const int kAllLengths[] = {1, 2, 31, 33, 75, 128, 129, 512};
static const int kBatch1Long[] = {129};
static const int kBatch1Token[] = {1};
static const int kOdd3[] = {33, 2, 75};
static const int kOdd5[] = {512, 1, 31, 128, 2};
static inline int packed_cases(const Case **out) {
    static Case cases[6];
    static int nli_like[127];  // lengths 1..40
    uint64_t rng = 42;
    for (int i = 0; i < 127; i++) nli_like[i] = 1 + (int)mnrl_rand_below(&rng, 40);
    const Case all[] = {
        {"all lengths (S=8)", 8, kAllLengths}, {"batch 1, 129 tokens", 1, kBatch1Long},
        {"batch 1, 1 token", 1, kBatch1Token}, {"odd batch 3", 3, kOdd3},
        {"odd batch 5", 5, kOdd5},             {"NLI-like S=127", 127, nli_like},
    };
    memcpy(cases, all, sizeof all);
    *out = cases;
    return (int)(sizeof all / sizeof all[0]);
}

// cu_seqlens [S+1] of a case; *T receives the token count.
static inline int32_t *case_offsets(const Case *c, int *T) {
    int32_t *cu = mnrl_malloc((size_t)(c->S + 1) * sizeof(int32_t));
    cu[0] = 0;
    for (int s = 0; s < c->S; s++) cu[s + 1] = cu[s] + c->lengths[s];
    *T = cu[c->S];
    return cu;
}

#endif
