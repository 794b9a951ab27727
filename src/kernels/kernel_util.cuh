// kernel_util.cuh — device helpers shared by the kernel files (included after
// mnrl/cuda_launch.h):
//  - to_f32 / from_f32 / store: one spelling of "read an act element as fp32" and "round
//    fp32 to the act dtype" for the fp32 and bf16 template instances (round to nearest
//    even, as torch's .to(torch.bfloat16));
//  - warp_sum: a butterfly sum over the 32 lanes of a warp; every lane ends with the same
//    bits (each level adds the same two values in either order);
//  - add_partial_sums: the deterministic second stage of a column reduction whose first
//    stage left one fp32 partial per block and column in a workspace:
//    acc[c] += Σ_k partials[k][c], summed in fp64 in block order, so the result is the same
//    for any scheduling, without float atomics.
#ifndef MNRL_KERNEL_UTIL_CUH
#define MNRL_KERNEL_UTIL_CUH

#include <cuda_bf16.h>

namespace {

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }

template <class T>
__device__ __forceinline__ T from_f32(float x);
template <>
__device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

template <class T>
__device__ __forceinline__ void store(T *p, float x) { *p = from_f32<T>(x); }

template <class F>
__device__ __forceinline__ F warp_sum(F x) {
    for (int offset = 16; offset > 0; offset >>= 1) x += __shfl_xor_sync(0xffffffffu, x, offset);
    return x;
}

const int kPartialSumThreads = 256;

__global__ void __launch_bounds__(kPartialSumThreads)
    add_partial_sums_kernel(float *acc, const float *partials, int parts, int C) {
    const int c = blockIdx.x * kPartialSumThreads + threadIdx.x;
    if (c >= C) return;
    double sum = 0.0;
    for (int k = 0; k < parts; k++) sum += partials[(size_t)k * C + c];
    acc[c] += (float)sum;
}

// Enqueues acc[c] += Σ_k partials[k·C + c] for c < C (fp64 sum in k order).
inline int add_partial_sums(float *acc, const float *partials, int parts, int C,
                            cudaStream_t stream, MnrlError *err) {
    const unsigned blocks = (unsigned)((C + kPartialSumThreads - 1) / kPartialSumThreads);
    CUDA_LAUNCH(blocks, kPartialSumThreads, 0, stream, add_partial_sums_kernel)(acc, partials, parts, C);
    CUDA_CHECK(cudaGetLastError(), err);
    return 0;
}

}  // namespace

#endif
