// test_elementwise.c — src/kernels/elementwise.cu (exact GELU forward/backward, dropout,
// fp32 <-> bf16 conversion; fp32 and bf16 activations) run under the CUDA emulation and
// compared with the CPU backend's ops_cpu()->gelu_forward / gelu_backward / dropout on the
// same values (bf16 inputs decoded to fp32), and the conversions with the host's
// safetensors_f32_to_bf16 / safetensors_bf16_to_f32. Sizes n = 1, 2, 3, 5, 31, 33, 75
// and rows of 64 and 384 columns for 1, 129 and 512 tokens (not multiples of 4 included:
// dropout threads own Philox blocks of 4 elements).
//
// Tolerances (u = 2^-24):
//  - GELU: the kernel computes x·erfc(-x/√2)/2 in fp32. The argument -x/√2 carries a
//    relative error of 2u, which erfc turns into (x² + 1)·2u relative for x < 0 (the
//    derivative ratio of erfc is about 2z² + 1 at z = -x/√2); erfcf itself is within
//    4 ulp (8u, CUDA's bound) and the products add 2u: tol = (2x² + 12)·u·|gelu|. The CPU
//    computes 1 + erf(x/√2) in fp64, which loses absolute 2^-53 for negative x, so the
//    reference itself may be off by |x|·2^-53: added.
//  - GELU backward: dout·(Φ + x·φ), Φ as above and φ = exp(-x²/2)/√(2π), whose argument
//    error x²·u becomes relative x²·u; expf (2 ulp), the constant and the products add 8u:
//    tol = |dout|·((2x² + 12)·u·Φ + (x² + 8)·u·|x·φ| + 2u·|Φ + x·φ| + (1+|x|)·2^-53).
//  - bf16 outputs add 2^-8·|value| (rounding to bf16).
//  - dropout: the same keep decisions and the same fp32 product as the CPU, so fp32 outputs
//    equal the CPU's bit for bit and bf16 outputs equal the CPU's rounded to bf16: exact.
//  - conversions: exact (every bf16 pattern; ties, overflow to inf, subnormals, NaN).
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "mnrl/common.h"
#include "mnrl/kernels.h"
#include "mnrl/ops.h"
#include "mnrl/rng.h"
#include "test.h"
#include "kernel_test.h"

static const double kU53 = 1.0 / 9007199254740992.0;  // 2^-53
static const double kSqrtHalf = 0.70710678118654752440, kInvSqrt2Pi = 0.39894228040143267794;

typedef struct {
    ErrorStat fwd, bwd;
} GeluStats;

// Inputs in [-8, 8] plus the awkward points: 0, ±tiny, GELU's minimum (-0.7518), ±20.
static float *gelu_inputs(size_t n, uint64_t *rng) {
    static const float special[] = {0.0f, -0.0f, 1e-30f, -1e-30f, -0.75179f, 20.0f, -20.0f, -5.5f, 3.0f};
    float *x = mnrl_malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        x[i] = i % 7 == 3 ? special[(i / 7) % 9] : uniform(rng, -8.0f, 8.0f);
    return x;
}

static void check_gelu(size_t n, int bf16, int in_place, GeluStats *st, uint64_t *rng) {
    size_t elem = bf16 ? 2 : 4;
    float *x = gelu_inputs(n, rng), *dout = mnrl_malloc(n * 4);
    for (size_t i = 0; i < n; i++) dout[i] = uniform(rng, -2.0f, 2.0f);
    void *dev_x = device_act(x, n, bf16), *dev_dout = device_act(dout, n, bf16);
    void *dev_out = device_copy(NULL, (n + 1) * elem);  // one extra element: untouched
    MnrlError err = {{0}};
    double start = mnrl_now();
    int rc = bf16 ? mnrl_cuda_gelu_forward_bf16(dev_out, dev_x, n, NULL, &err)
                  : mnrl_cuda_gelu_forward_f32(dev_out, dev_x, n, NULL, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    void *dev_dinp = in_place ? dev_dout : device_copy(NULL, n * elem);
    rc = bf16 ? mnrl_cuda_gelu_backward_bf16(dev_dinp, dev_x, dev_dout, n, NULL, &err)
              : mnrl_cuda_gelu_backward_f32(dev_dinp, dev_x, dev_dout, n, NULL, &err);
    kernel_seconds += mnrl_now() - start;
    CHECK_MSG(rc == 0, "%s", err.msg);
    float *out = download_act(dev_out, n, bf16), *dinp = download_act(dev_dinp, n, bf16);
    unsigned char *tail = host_copy((char *)dev_out + n * elem, elem);
    CHECK_MSG(all_bytes_ff(tail, elem), "gelu n=%zu: forward wrote past n", n);
    float *ref = mnrl_malloc(n * 4), *ref_d = mnrl_malloc(n * 4);
    ops_cpu()->gelu_forward(ref, x, n);
    ops_cpu()->gelu_backward(ref_d, x, dout, n);
    for (size_t i = 0; i < n; i++) {
        double xi = x[i], cdf = 0.5 * erfc(-xi * kSqrtHalf), xpdf = xi * kInvSqrt2Pi * exp(-0.5 * xi * xi);
        double tol = (2 * xi * xi + 12) * kU * fabs(ref[i]) + fabs(xi) * kU53 + 1e-44;
        track(&st->fwd, out[i], ref[i], tol + (bf16 ? kUbf16 * fabs(ref[i]) : 0.0));
        double tol_d = fabs(dout[i]) * ((2 * xi * xi + 12) * kU * cdf + (xi * xi + 8) * kU * fabs(xpdf) +
                                        2 * kU * fabs(cdf + xpdf) + (1 + fabs(xi)) * kU53) + 1e-44;
        track(&st->bwd, dinp[i], ref_d[i], tol_d + (bf16 ? kUbf16 * fabs(ref_d[i]) : 0.0));
    }
    free(tail);
    free(out);
    free(dinp);
    free(ref);
    free(ref_d);
    free(x);
    free(dout);
    cudaFree(dev_x);
    cudaFree(dev_dout);
    cudaFree(dev_out);
    if (!in_place) cudaFree(dev_dinp);
}

// Returns the number of elements that differ from the CPU's dropout (bf16: rounded). The
// kernel covers elements [first, first + n) of the masked tensor (a cached-MNRL chunk,
// ops.h); the CPU reference is the whole tensor [0, first + n) at offset 0, so a nonzero
// first must reproduce that slice of the offset-0 mask.
static size_t check_dropout(size_t n, uint64_t first, int bf16, int in_place, float keep_prob, uint64_t seed,
                            uint64_t stream, uint64_t *rng) {
    size_t elem = bf16 ? 2 : 4, all = (size_t)first + n;
    float *x = mnrl_malloc(all * 4);
    for (size_t i = 0; i < all; i++) x[i] = uniform(rng, -3.0f, 3.0f);
    void *dev_x = device_act(x + first, n, bf16);
    void *dev_out = in_place ? dev_x : device_copy(NULL, (n + 1) * elem);
    MnrlError err = {{0}};
    double start = mnrl_now();
    int rc = bf16 ? mnrl_cuda_dropout_bf16(dev_out, dev_x, n, keep_prob, seed, stream, first, NULL, &err)
                  : mnrl_cuda_dropout_f32(dev_out, dev_x, n, keep_prob, seed, stream, first, NULL, &err);
    kernel_seconds += mnrl_now() - start;
    CHECK_MSG(rc == 0, "%s", err.msg);
    unsigned char *raw = host_copy(dev_out, n * elem);
    float *whole = mnrl_malloc(all * 4), *ref = whole + first;
    ops_cpu()->dropout(whole, x, all, keep_prob, seed, stream, 0);
    size_t differ = 0;
    for (size_t i = 0; i < n; i++) {
        if (bf16) differ += ((const uint16_t *)raw)[i] != safetensors_f32_to_bf16(ref[i]);
        else differ += memcmp(raw + 4 * i, &ref[i], 4) != 0;
    }
    if (!in_place) {
        unsigned char *tail = host_copy((char *)dev_out + n * elem, elem);
        CHECK_MSG(all_bytes_ff(tail, elem), "dropout n=%zu: wrote past n", n);
        free(tail);
        cudaFree(dev_out);
    }
    free(raw);
    free(whole);
    free(x);
    cudaFree(dev_x);
    return differ;
}

static uint32_t f32_bits(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

static float bits_f32(uint32_t b) {
    float f;
    memcpy(&f, &b, 4);
    return f;
}

static int is_bf16_nan(uint16_t b) { return (b & 0x7F80u) == 0x7F80u && (b & 0x7Fu) != 0; }

// f32 -> bf16 on awkward values and random bit patterns; bf16 -> f32 on all 65,536 patterns.
static void check_conversions(uint64_t *rng) {
    enum { N = 65536 + 32 };
    static const uint32_t special[] = {
        0x00000000u, 0x80000000u, 0x3F800000u, 0x3F808000u /* tie, even down */, 0x3F818000u /* tie, odd up */,
        0x3F808001u, 0x3F807FFFu, 0x7F7FFFFFu /* max float: rounds to inf */, 0x7F7F7FFFu, 0x7F800000u,
        0xFF800000u, 0x00000001u /* subnormals */, 0x00008000u, 0x00018000u, 0x807FFFFFu, 0x7FC00000u /* NaN */,
        0x7F800001u /* signalling NaN */, 0xFFFFFFFFu};
    size_t nspecial = sizeof special / sizeof special[0];
    float *src = mnrl_malloc(N * 4);
    for (size_t i = 0; i < N; i++)
        src[i] = bits_f32(i < nspecial ? special[i] : (uint32_t)mnrl_splitmix64(rng));
    void *dev_src = device_copy(src, N * 4), *dev_bf = device_copy(NULL, N * 2);
    MnrlError err = {{0}};
    double start = mnrl_now();
    CHECK_MSG(mnrl_cuda_f32_to_bf16(dev_bf, dev_src, N, NULL, &err) == 0, "%s", err.msg);
    kernel_seconds += mnrl_now() - start;
    uint16_t *bf = host_copy(dev_bf, N * 2);
    size_t differ = 0;
    for (size_t i = 0; i < N; i++) {
        uint16_t want = safetensors_f32_to_bf16(src[i]);
        differ += isnan(src[i]) ? !is_bf16_nan(bf[i]) : bf[i] != want;
    }
    printf("f32 -> bf16: %zu of %d conversions differ from safetensors_f32_to_bf16\n", differ, N);
    CHECK_MSG(differ == 0, "f32_to_bf16: %zu conversions differ", differ);
    CHECK_EQ_INT(bf[7], 0x7F80);  // the largest float rounds to inf
    CHECK_EQ_INT(bf[3], 0x3F80);
    CHECK_EQ_INT(bf[4], 0x3F82);

    uint16_t *all = mnrl_malloc(65536 * 2);
    for (uint32_t i = 0; i < 65536; i++) all[i] = (uint16_t)i;
    void *dev_all = device_copy(all, 65536 * 2);
    float *dev_f = device_copy(NULL, 65536 * 4);
    start = mnrl_now();
    CHECK_MSG(mnrl_cuda_bf16_to_f32(dev_f, dev_all, 65536, NULL, &err) == 0, "%s", err.msg);
    kernel_seconds += mnrl_now() - start;
    float *f = host_copy(dev_f, 65536 * 4);
    differ = 0;
    for (uint32_t i = 0; i < 65536; i++) {
        float want = safetensors_bf16_to_f32((uint16_t)i);
        differ += is_bf16_nan((uint16_t)i) ? !isnan(f[i]) : f32_bits(f[i]) != f32_bits(want);
    }
    printf("bf16 -> f32: %zu of 65536 bit patterns differ from safetensors_bf16_to_f32\n", differ);
    CHECK_MSG(differ == 0, "bf16_to_f32: %zu patterns differ", differ);
    free(src);
    free(bf);
    free(all);
    free(f);
    cudaFree(dev_src);
    cudaFree(dev_bf);
    cudaFree(dev_all);
    cudaFree(dev_f);
}

static void check_arguments(void) {
    MnrlError err = {{0}};
    CHECK_EQ_INT(mnrl_cuda_dropout_f32(NULL, NULL, 8, 0.0f, 1, 2, 0, NULL, &err), -1);
    CHECK_CONTAINS(err.msg, "keep_prob 0 is outside (0, 1]");
    CHECK_EQ_INT(mnrl_cuda_dropout_bf16(NULL, NULL, 8, 1.5f, 1, 2, 0, NULL, &err), -1);
    CHECK_EQ_INT(mnrl_cuda_dropout_bf16(NULL, NULL, 8, NAN, 1, 2, 0, NULL, &err), -1);
    // n = 0: nothing to launch.
    CHECK_EQ_INT(mnrl_cuda_gelu_forward_bf16(NULL, NULL, 0, NULL, &err), 0);
    CHECK_EQ_INT(mnrl_cuda_dropout_f32(NULL, NULL, 0, 0.9f, 1, 2, 0, NULL, &err), 0);
    CHECK_EQ_INT(cudaGetLastError(), cudaSuccess);
}

int main(void) {
    uint64_t rng = 3;
    const size_t sizes[] = {1, 2, 3, 5, 31, 33, 75, 64, 129 * 64, 512 * 64, 384, 129 * 384, 512 * 384};
    const size_t nsizes = sizeof sizes / sizeof sizes[0];
    double start = mnrl_now();
    for (int bf16 = 0; bf16 < 2; bf16++) {
        GeluStats st;
        memset(&st, 0, sizeof st);
        for (size_t i = 0; i < nsizes; i++) check_gelu(sizes[i], bf16, (int)(i % 2), &st, &rng);
        printf("gelu %s: forward max|err| %.2e (%.2f tol), backward %.2e (%.2f tol)\n", bf16 ? "bf16" : "fp32",
               st.fwd.max_err, st.fwd.worst, st.bwd.max_err, st.bwd.worst);
        CHECK_MSG(st.fwd.worst <= 1.0, "gelu %s forward: error %.3g x tolerance", bf16 ? "bf16" : "fp32",
                  st.fwd.worst);
        CHECK_MSG(st.bwd.worst <= 1.0, "gelu %s backward: error %.3g x tolerance", bf16 ? "bf16" : "fp32",
                  st.bwd.worst);
    }
    const float keeps[] = {0.9f, 0.5f, 1.0f};
    for (int bf16 = 0; bf16 < 2; bf16++)
        for (int k = 0; k < 3; k++) {
            size_t differ = 0, total = 0;
            for (size_t i = 0; i < nsizes; i++) {
                uint64_t stream = mnrl_rng_stream(i + 1, (uint32_t)k, 7);
                // Offsets 0, multiples of 4 (whole Philox blocks) and mid-block ones.
                uint64_t first = i % 3 == 0 ? 0 : 64 * i + i % 4;
                differ += check_dropout(sizes[i], first, bf16, (int)(i % 2), keeps[k], 0x5EEDull + i, stream,
                                        &rng);
                total += sizes[i];
            }
            printf("dropout %s keep %.1f: %zu of %zu elements differ from the CPU's\n", bf16 ? "bf16" : "fp32",
                   keeps[k], differ, total);
            CHECK_MSG(differ == 0, "dropout %s keep %.1f: %zu elements differ", bf16 ? "bf16" : "fp32", keeps[k],
                      differ);
        }
    check_conversions(&rng);
    check_arguments();
    printf("elementwise kernels: %.3f s emulated, whole test %.3f s\n", kernel_seconds, mnrl_now() - start);
    TEST_END();
}
