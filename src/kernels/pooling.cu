// pooling.cu — masked mean pooling over packed sentences (cu_seqlens), forward and
// backward, for fp32 and bf16 activations with fp32 accumulation.
// CPU op it must match: ops_cpu()->mean_pool_forward / mean_pool_backward (ops.h), which
// is sentence-transformers' mean Pooling over the attention mask ([CLS], [SEP] included).
//
// Layout: one block per (sentence, kCols columns). Threads along x take adjacent columns,
// so every token row is read/written with coalesced accesses; the kRows rows of threads
// stride over the sentence's tokens, and forward adds their partial sums through shared
// memory. A sentence of 512 tokens costs each thread 128 loads; NLI sentences (~15
// tokens) about 4.
#include <cuda_bf16.h>

#include "mnrl/cuda_launch.h"
#include "mnrl/kernels.h"

namespace {

const int kCols = 64;
const int kRows = 4;

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ void store(float *p, float x) { *p = x; }
__device__ __forceinline__ void store(__nv_bfloat16 *p, float x) { *p = __float2bfloat16_rn(x); }

template <class T>
__global__ void __launch_bounds__(kCols *kRows)
    mean_pool_forward_kernel(float *out, const T *inp, const int32_t *cu_seqlens, int C) {
    __shared__ float partial[kRows][kCols];
    const int s = blockIdx.x;
    const int c = blockIdx.y * kCols + threadIdx.x;
    const int begin = cu_seqlens[s], end = cu_seqlens[s + 1];
    float sum = 0.0f;
    if (c < C)
        for (int t = begin + threadIdx.y; t < end; t += kRows) sum += to_f32(inp[(size_t)t * C + c]);
    partial[threadIdx.y][threadIdx.x] = sum;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float total = 0.0f;
        for (int r = 0; r < kRows; r++) total += partial[r][threadIdx.x];
        const int len = end - begin;
        out[(size_t)s * C + c] = len > 0 ? total / (float)len : 0.0f;
    }
}

template <class T>
__global__ void __launch_bounds__(kCols *kRows)
    mean_pool_backward_kernel(T *dinp, const float *dout, const int32_t *cu_seqlens, int C) {
    const int s = blockIdx.x;
    const int c = blockIdx.y * kCols + threadIdx.x;
    const int begin = cu_seqlens[s], end = cu_seqlens[s + 1];
    if (c >= C || end == begin) return;
    const float g = dout[(size_t)s * C + c] / (float)(end - begin);
    for (int t = begin + threadIdx.y; t < end; t += kRows) store(&dinp[(size_t)t * C + c], g);
}

int check_shape(const char *what, int S, int C, MnrlError *err) {
    if (S < 0 || C <= 0 || (C + kCols - 1) / kCols > 65535)
        return mnrl_fail(err, "%s:%d: %s: bad shape S=%d C=%d (need S >= 0 and 0 < C <= %d); "
                         "this is a bug in the caller", __FILE__, __LINE__, what, S, C, 65535 * kCols);
    return 0;
}

dim3 grid_for(int S, int C) { return dim3((unsigned)S, (unsigned)((C + kCols - 1) / kCols)); }

template <class T>
int forward(const char *what, float *out, const T *inp, const int32_t *cu_seqlens, int S, int C,
            cudaStream_t stream, MnrlError *err) {
    if (check_shape(what, S, C, err) != 0) return -1;
    if (S == 0) return 0;
    CUDA_LAUNCH(grid_for(S, C), dim3(kCols, kRows), 0, stream, mean_pool_forward_kernel<T>)(out, inp, cu_seqlens, C);
    CUDA_CHECK(cudaGetLastError(), err);
    return 0;
}

template <class T>
int backward(const char *what, T *dinp, const float *dout, const int32_t *cu_seqlens, int S, int C,
             cudaStream_t stream, MnrlError *err) {
    if (check_shape(what, S, C, err) != 0) return -1;
    if (S == 0) return 0;
    CUDA_LAUNCH(grid_for(S, C), dim3(kCols, kRows), 0, stream, mean_pool_backward_kernel<T>)(dinp, dout, cu_seqlens, C);
    CUDA_CHECK(cudaGetLastError(), err);
    return 0;
}

}  // namespace

extern "C" int mnrl_cuda_mean_pool_forward_f32(float *out, const float *inp, const int32_t *cu_seqlens,
                                               int S, int C, cudaStream_t stream, MnrlError *err) {
    return forward("mean_pool_forward_f32", out, inp, cu_seqlens, S, C, stream, err);
}

extern "C" int mnrl_cuda_mean_pool_forward_bf16(float *out, const mnrl_bf16 *inp, const int32_t *cu_seqlens,
                                                int S, int C, cudaStream_t stream, MnrlError *err) {
    return forward("mean_pool_forward_bf16", out, inp, cu_seqlens, S, C, stream, err);
}

extern "C" int mnrl_cuda_mean_pool_backward_f32(float *dinp, const float *dout, const int32_t *cu_seqlens,
                                                int S, int C, cudaStream_t stream, MnrlError *err) {
    return backward("mean_pool_backward_f32", dinp, dout, cu_seqlens, S, C, stream, err);
}

extern "C" int mnrl_cuda_mean_pool_backward_bf16(mnrl_bf16 *dinp, const float *dout, const int32_t *cu_seqlens,
                                                 int S, int C, cudaStream_t stream, MnrlError *err) {
    return backward("mean_pool_backward_bf16", dinp, dout, cu_seqlens, S, C, stream, err);
}
