// self_bf16.cu — cuemu self-test: bf16 from the toolkit's own cuda_bf16.h in emulated
// kernels: exact round trips of every bf16 value, float -> bf16 round-to-nearest-even
// against a bit-level reference, the host definitions of __hfma / __hfma2 / hexp, and
// shuffles of bf16 values.
#include <vector>

#include "mnrl/cuda_launch.h"
#include "test.h"

static uint32_t float_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float bits_float(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
// Reference float -> bf16: round to nearest, ties to even, on the bit pattern (finite
// and infinite inputs; NaNs are checked separately).
static uint16_t reference_bf16(float f) {
    uint32_t u = float_bits(f);
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}
static uint16_t bf16_bits(__nv_bfloat16 h) {
    uint16_t b;
    memcpy(&b, static_cast<const void *>(&h), 2);
    return b;
}
static __nv_bfloat16 bits_bf16(uint16_t b) {
    __nv_bfloat16 h;
    memcpy(static_cast<void *>(&h), &b, 2);
    return h;
}

// to_float[i] = bf16 i widened; back[i] = that float narrowed again.
__global__ void round_trip(const __nv_bfloat16 *in, float *to_float, __nv_bfloat16 *back, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float f = __bfloat162float(in[i]);
    to_float[i] = f;
    back[i] = __float2bfloat16(f);
}

__global__ void narrow(const float *in, __nv_bfloat16 *out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = __float2bfloat16_rn(in[i]);
}

// fma / exp / pairs on bf16, and a bf16 handed around the warp.
__global__ void arithmetic(const __nv_bfloat16 *a, const __nv_bfloat16 *b, __nv_bfloat16 *fma_out,
                           __nv_bfloat16 *exp_out, __nv_bfloat162 *pair_out, __nv_bfloat16 *shuffled) {
    int i = threadIdx.x;
    fma_out[i] = __hfma(a[i], b[i], a[i]);
    exp_out[i] = hexp(a[i]);
    __nv_bfloat162 p = __halves2bfloat162(a[i], b[i]);
    pair_out[i] = __hfma2(p, p, p);
    shuffled[i] = __shfl_xor_sync(0xffffffffu, a[i], 5);
}

static void check_round_trips(void) {
    const int n = 65536;
    std::vector<__nv_bfloat16> all(n), back(n);
    std::vector<float> widened(n);
    for (int i = 0; i < n; i++) all[i] = bits_bf16((uint16_t)i);
    __nv_bfloat16 *d_in, *d_back;
    float *d_f;
    cudaMalloc(&d_in, n * 2);
    cudaMalloc(&d_back, n * 2);
    cudaMalloc(&d_f, n * 4);
    cudaMemcpy(d_in, all.data(), n * 2, cudaMemcpyHostToDevice);
    CUDA_LAUNCH(n / 256, 256, 0, 0, round_trip)(d_in, d_f, d_back, n);
    CHECK(cudaGetLastError() == cudaSuccess);
    cudaMemcpy(widened.data(), d_f, n * 4, cudaMemcpyDeviceToHost);
    cudaMemcpy(back.data(), d_back, n * 2, cudaMemcpyDeviceToHost);
    int bad_widen = 0, bad_back = 0;
    for (int i = 0; i < n; i++) {
        bool nan = (i & 0x7F80) == 0x7F80 && (i & 0x7F);
        if (nan) {
            bad_widen += widened[i] == widened[i];  // must stay NaN
            bad_back += (bf16_bits(back[i]) & 0x7FFF) <= 0x7F80;
        } else {
            bad_widen += float_bits(widened[i]) != (uint32_t)i << 16;
            bad_back += bf16_bits(back[i]) != i;
        }
    }
    CHECK_EQ_INT(bad_widen, 0);
    CHECK_EQ_INT(bad_back, 0);
    cudaFree(d_in);
    cudaFree(d_back);
    cudaFree(d_f);
}

static void check_narrowing(void) {
    // Random finite floats, exact ties in both directions, values near overflow.
    std::vector<float> in;
    uint64_t state = 12345;
    for (int i = 0; i < 100000; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t u = (uint32_t)(state >> 32);
        if ((u & 0x7F800000u) == 0x7F800000u) u &= 0xBFFFFFFFu;  // keep it finite
        in.push_back(bits_float(u));
    }
    const uint32_t ties[] = {0x3F808000u, 0x3F818000u, 0xBF808000u, 0x7F7F8000u, 0x7F7FFFFFu, 0x00008000u};
    for (uint32_t t : ties) in.push_back(bits_float(t));
    int n = (int)in.size();
    std::vector<__nv_bfloat16> out(n);
    float *d_in;
    __nv_bfloat16 *d_out;
    cudaMalloc(&d_in, n * 4);
    cudaMalloc(&d_out, n * 2);
    cudaMemcpy(d_in, in.data(), n * 4, cudaMemcpyHostToDevice);
    CUDA_LAUNCH((n + 127) / 128, 128, 0, 0, narrow)(d_in, d_out, n);
    CHECK(cudaGetLastError() == cudaSuccess);
    cudaMemcpy(out.data(), d_out, n * 2, cudaMemcpyDeviceToHost);
    int wrong = 0;
    for (int i = 0; i < n; i++) wrong += bf16_bits(out[i]) != reference_bf16(in[i]);
    CHECK_EQ_INT(wrong, 0);
    cudaFree(d_in);
    cudaFree(d_out);
}

static void check_arithmetic(void) {
    const int n = 32;
    std::vector<__nv_bfloat16> a(n), b(n), fma_out(n), exp_out(n), shuffled(n);
    std::vector<__nv_bfloat162> pairs(n);
    for (int i = 0; i < n; i++) {
        a[i] = bits_bf16(reference_bf16(0.37f * (float)(i - 16)));
        b[i] = bits_bf16(reference_bf16(1.0f + 0.01f * (float)i));
    }
    __nv_bfloat16 *da, *db, *dfma, *dexp, *dshuf;
    __nv_bfloat162 *dpair;
    cudaMalloc(&da, n * 2);
    cudaMalloc(&db, n * 2);
    cudaMalloc(&dfma, n * 2);
    cudaMalloc(&dexp, n * 2);
    cudaMalloc(&dshuf, n * 2);
    cudaMalloc(&dpair, n * 4);
    cudaMemcpy(da, a.data(), n * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(db, b.data(), n * 2, cudaMemcpyHostToDevice);
    CUDA_LAUNCH(1, n, 0, 0, arithmetic)(da, db, dfma, dexp, dpair, dshuf);
    CHECK(cudaGetLastError() == cudaSuccess);
    cudaMemcpy(fma_out.data(), dfma, n * 2, cudaMemcpyDeviceToHost);
    cudaMemcpy(exp_out.data(), dexp, n * 2, cudaMemcpyDeviceToHost);
    cudaMemcpy(shuffled.data(), dshuf, n * 2, cudaMemcpyDeviceToHost);
    cudaMemcpy(pairs.data(), dpair, n * 4, cudaMemcpyDeviceToHost);
    for (int i = 0; i < n; i++) {
        float x = bits_float((uint32_t)bf16_bits(a[i]) << 16), y = bits_float((uint32_t)bf16_bits(b[i]) << 16);
        // x*y is exact in float (8-bit mantissas): one rounding, as the fused operation.
        CHECK_EQ_INT(bf16_bits(fma_out[i]), reference_bf16(x * y + x));
        CHECK_EQ_INT(bf16_bits(exp_out[i]), reference_bf16(expf(x)));
        CHECK_EQ_INT(bf16_bits(shuffled[i]), bf16_bits(a[i ^ 5]));
        CHECK_EQ_INT(bf16_bits(__low2bfloat16(pairs[i])), reference_bf16(x * x + x));
        CHECK_EQ_INT(bf16_bits(__high2bfloat16(pairs[i])), reference_bf16(y * y + y));
    }
    cudaFree(da);
    cudaFree(db);
    cudaFree(dfma);
    cudaFree(dexp);
    cudaFree(dshuf);
    cudaFree(dpair);
}

int main(void) {
    check_round_trips();
    check_narrowing();
    check_arithmetic();
    TEST_END();
}
