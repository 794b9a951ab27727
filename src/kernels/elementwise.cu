// elementwise.cu — exact GELU forward/backward, dropout, and fp32 <-> bf16 conversion,
// for fp32 and bf16 activations (fp32 arithmetic inside).
// CPU ops it must match: ops_cpu()->gelu_forward / gelu_backward / dropout (ops.h), and
// for the conversions the f32_to_act / act_to_f32 of a bf16 backend: round to nearest
// even, as torch's .to(torch.bfloat16) (safetensors_f32_to_bf16 on the host).
//
// GELU is x·Φ(x) with Φ(x) = erfc(-x/√2)/2: the CPU's 1 + erf(x/√2) would cancel for
// negative x (x = -3 leaves 0.0027 of 2), erfc keeps full relative precision there.
// Dropout follows the rng.h mapping exactly as ops_cpu does: element e uses word e % 4 of
// Philox block e / 4 of (seed, rng_stream), kept when its 24-bit uniform < keep_prob and
// then multiplied by the fp32 1/keep_prob — the same product as the CPU's, so fp32
// results are the CPU's bit for bit. One thread per Philox block (4 elements).
// All kernels are grid-stride loops over size_t n, so any n fits a capped grid.
#include <cuda_bf16.h>

#include "mnrl/cuda_launch.h"
#include "mnrl/kernels.h"
#include "mnrl/rng.h"
#include "kernel_util.cuh"

namespace {

const int kThreads = 256;
const size_t kMaxBlocks = 8192;
constexpr float kSqrtHalf = 0.70710678118654752440f;     // 1/√2
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;   // 1/√(2π)

__device__ __forceinline__ float gelu_cdf(float x) { return 0.5f * erfcf(-x * kSqrtHalf); }

template <class T>
__global__ void __launch_bounds__(kThreads) gelu_forward_kernel(T *out, const T *inp, size_t n) {
    for (size_t i = (size_t)blockIdx.x * kThreads + threadIdx.x; i < n; i += (size_t)gridDim.x * kThreads) {
        const float x = to_f32(inp[i]);
        store(&out[i], x * gelu_cdf(x));
    }
}

// gelu'(x) = Φ(x) + x·φ(x). dinp may be dout: each element is read before it is written.
template <class T>
__global__ void __launch_bounds__(kThreads)
    gelu_backward_kernel(T *dinp, const T *inp, const T *dout, size_t n) {
    for (size_t i = (size_t)blockIdx.x * kThreads + threadIdx.x; i < n; i += (size_t)gridDim.x * kThreads) {
        const float x = to_f32(inp[i]);
        const float pdf = kInvSqrt2Pi * expf(-0.5f * x * x);
        store(&dinp[i], to_f32(dout[i]) * (gelu_cdf(x) + x * pdf));
    }
}

// out may be inp.
template <class T>
__global__ void __launch_bounds__(kThreads)
    dropout_kernel(T *out, const T *inp, size_t n, float keep_prob, float keep_scale, uint64_t seed,
                   uint64_t rng_stream) {
    const size_t blocks = (n + 3) / 4;
    for (size_t q = (size_t)blockIdx.x * kThreads + threadIdx.x; q < blocks; q += (size_t)gridDim.x * kThreads) {
        const MnrlPhilox4 words = mnrl_rng_block(seed, rng_stream, q);
        for (int k = 0; k < 4 && 4 * q + k < n; k++) {
            const size_t e = 4 * q + k;
            const float mask = mnrl_rng_uniform(words.v[k]) < keep_prob ? keep_scale : 0.0f;
            store(&out[e], to_f32(inp[e]) * mask);
        }
    }
}

template <class D, class S>
__global__ void __launch_bounds__(kThreads) convert_kernel(D *dst, const S *src, size_t n) {
    for (size_t i = (size_t)blockIdx.x * kThreads + threadIdx.x; i < n; i += (size_t)gridDim.x * kThreads)
        store(&dst[i], to_f32(src[i]));
}

unsigned blocks_for(size_t items) {
    const size_t blocks = (items + kThreads - 1) / kThreads;
    return (unsigned)(blocks < kMaxBlocks ? blocks : kMaxBlocks);
}

template <class T>
int gelu_forward(T *out, const T *inp, size_t n, cudaStream_t stream, MnrlError *err) {
    if (n == 0) return 0;
    CUDA_LAUNCH(blocks_for(n), kThreads, 0, stream, gelu_forward_kernel<T>)(out, inp, n);
    CUDA_CHECK(cudaGetLastError(), err);
    return 0;
}

template <class T>
int gelu_backward(T *dinp, const T *inp, const T *dout, size_t n, cudaStream_t stream, MnrlError *err) {
    if (n == 0) return 0;
    CUDA_LAUNCH(blocks_for(n), kThreads, 0, stream, gelu_backward_kernel<T>)(dinp, inp, dout, n);
    CUDA_CHECK(cudaGetLastError(), err);
    return 0;
}

// keep_prob = 1 is the identity and draws no numbers (ops.h): a copy unless in place.
template <class T>
int dropout(const char *what, T *out, const T *inp, size_t n, float keep_prob, uint64_t seed,
            uint64_t rng_stream, cudaStream_t stream, MnrlError *err) {
    if (!(keep_prob > 0.0f && keep_prob <= 1.0f))
        return mnrl_fail(err, "%s:%d: %s: keep_prob %g is outside (0, 1]; this is a bug in the caller",
                         __FILE__, __LINE__, what, (double)keep_prob);
    if (n == 0) return 0;
    if (keep_prob == 1.0f) {
        if (out != inp) CUDA_CHECK(cudaMemcpyAsync(out, inp, n * sizeof(T), cudaMemcpyDeviceToDevice, stream), err);
        return 0;
    }
    CUDA_LAUNCH(blocks_for((n + 3) / 4), kThreads, 0, stream, dropout_kernel<T>)(
        out, inp, n, keep_prob, 1.0f / keep_prob, seed, rng_stream);
    CUDA_CHECK(cudaGetLastError(), err);
    return 0;
}

template <class D, class S>
int convert(D *dst, const S *src, size_t n, cudaStream_t stream, MnrlError *err) {
    if (n == 0) return 0;
    CUDA_LAUNCH(blocks_for(n), kThreads, 0, stream, convert_kernel<D, S>)(dst, src, n);
    CUDA_CHECK(cudaGetLastError(), err);
    return 0;
}

}  // namespace

extern "C" int mnrl_cuda_gelu_forward_f32(float *out, const float *inp, size_t n, cudaStream_t stream,
                                          MnrlError *err) {
    return gelu_forward(out, inp, n, stream, err);
}

extern "C" int mnrl_cuda_gelu_forward_bf16(mnrl_bf16 *out, const mnrl_bf16 *inp, size_t n, cudaStream_t stream,
                                           MnrlError *err) {
    return gelu_forward(out, inp, n, stream, err);
}

extern "C" int mnrl_cuda_gelu_backward_f32(float *dinp, const float *inp, const float *dout, size_t n,
                                           cudaStream_t stream, MnrlError *err) {
    return gelu_backward(dinp, inp, dout, n, stream, err);
}

extern "C" int mnrl_cuda_gelu_backward_bf16(mnrl_bf16 *dinp, const mnrl_bf16 *inp, const mnrl_bf16 *dout,
                                            size_t n, cudaStream_t stream, MnrlError *err) {
    return gelu_backward(dinp, inp, dout, n, stream, err);
}

extern "C" int mnrl_cuda_dropout_f32(float *out, const float *inp, size_t n, float keep_prob, uint64_t seed,
                                     uint64_t rng_stream, cudaStream_t stream, MnrlError *err) {
    return dropout("dropout_f32", out, inp, n, keep_prob, seed, rng_stream, stream, err);
}

extern "C" int mnrl_cuda_dropout_bf16(mnrl_bf16 *out, const mnrl_bf16 *inp, size_t n, float keep_prob,
                                      uint64_t seed, uint64_t rng_stream, cudaStream_t stream, MnrlError *err) {
    return dropout("dropout_bf16", out, inp, n, keep_prob, seed, rng_stream, stream, err);
}

extern "C" int mnrl_cuda_f32_to_bf16(mnrl_bf16 *dst, const float *src, size_t n, cudaStream_t stream,
                                     MnrlError *err) {
    return convert(dst, src, n, stream, err);
}

extern "C" int mnrl_cuda_bf16_to_f32(float *dst, const mnrl_bf16 *src, size_t n, cudaStream_t stream,
                                     MnrlError *err) {
    return convert(dst, src, n, stream, err);
}
