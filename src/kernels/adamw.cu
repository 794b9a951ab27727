// adamw.cu — the AdamW step on fp32 master weights (writing the bf16 compute copy) and the
// global gradient norm with clipping.
// CPU ops it must match: ops_cpu()->adamw and ops_cpu()->clip_grad_norm (ops.h), which
// follow torch.optim.AdamW and torch.nn.utils.clip_grad_norm_.
//
// AdamW: a kernel_util elementwise body, 4 elements per thread in 16-byte accesses (the
// bf16 copy in 8-byte ones) when the run's pointers allow; the CPU's operations in the
// CPU's order on the same fp32 scalars (each rounded once from double on the host, as
// torch does). The products go through __fmul_rn, which nvcc never contracts into a fused
// multiply-add, so every operation rounds as on the CPU and the fp32 results are the CPU's
// bit for bit. The clipping scale is an elementwise body too.
//
// Gradient norm: a deterministic two-stage reduction in fp64 (each g² is exact in fp64,
// as on the CPU): kNormBlocks blocks of kNormThreads threads sum a fixed grid-stride share
// of the elements (float4 reads when aligned, in element order within each) and reduce it
// in a fixed tree to one partial; one block then reduces the kNormBlocks partials the same
// way and writes the fp32 norm. The norm comes back to the
// host (a stream sync, as ops.h says), which decides whether to launch the scaling.
#include <cuda_bf16.h>
#include <math.h>

#include "mnrl/cuda_launch.h"
#include "mnrl/kernels.h"
#include "kernel_util.cuh"

namespace {

const int kNormThreads = 256;
const int kNormBlocks = kNormThreads;  // the final block reduces one partial per thread

typedef struct {
    float decay, m_weight, beta2, v_weight, step_size, bc2_sqrt, eps;
} AdamwScalars;

struct Adamw {
    static constexpr int kWidth = 4;
    float *params;
    __nv_bfloat16 *params_act;  // NULL: no separate compute copy
    const float *grads;
    float *m, *v;
    AdamwScalars s;
    bool aligned() const {
        return aligned16(params, grads, m, v) && (uintptr_t)params_act % sizeof(Pack<__nv_bfloat16, 4>) == 0;
    }
    template <int W>
    __device__ void run(size_t e) const {
        float p[W], g[W], mi[W], vi[W];
        load_f32(p, params + e);
        load_f32(g, grads + e);
        load_f32(mi, m + e);
        load_f32(vi, v + e);
        for (int k = 0; k < W; k++) {
            const float decayed = __fmul_rn(p[k], s.decay);
            mi[k] = mi[k] + __fmul_rn(s.m_weight, g[k] - mi[k]);
            vi[k] = __fmul_rn(vi[k], s.beta2) + __fmul_rn(__fmul_rn(s.v_weight, g[k]), g[k]);
            p[k] = decayed - __fmul_rn(s.step_size, mi[k]) / (sqrtf(vi[k]) / s.bc2_sqrt + s.eps);
        }
        store_f32(m + e, mi);
        store_f32(v + e, vi);
        store_f32(params + e, p);
        if (params_act) store_f32(params_act + e, p);
    }
};

struct Scale {
    static constexpr int kWidth = 4;
    float *x;
    float coef;
    bool aligned() const { return aligned16(x); }
    template <int W>
    __device__ void run(size_t e) const {
        float y[W];
        load_f32(y, x + e);
        for (int k = 0; k < W; k++) y[k] *= coef;
        store_f32(x + e, y);
    }
};

// The sum of `value` over the block (kNormThreads threads), in a fixed order; valid in
// thread 0. Every thread must call it.
__device__ double block_sum(double value) {
    __shared__ double warp_sums[kNormThreads / 32];
    value = warp_sum(value);
    if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = value;
    __syncthreads();
    double total = 0.0;
    if (threadIdx.x == 0)
        for (int w = 0; w < kNormThreads / 32; w++) total += warp_sums[w];
    return total;
}

// Thread i sums the squares of float4 vectors i, i + all threads, ... (V = 4), or of
// elements (V = 1), then the n % V elements after the last whole vector, one per thread.
template <int V>
__global__ void __launch_bounds__(kNormThreads) sum_squares_kernel(double *partials, const float *grads, size_t n) {
    const size_t first = (size_t)blockIdx.x * kNormThreads + threadIdx.x, stride = (size_t)kNormBlocks * kNormThreads;
    const size_t whole = n / V * V;
    double sum = 0.0;
    for (size_t e = first * V; e < whole; e += stride * V) {
        float g[V];
        load_f32(g, grads + e);
        for (int k = 0; k < V; k++) sum += (double)g[k] * g[k];
    }
    for (size_t e = whole + first; e < n; e += stride) sum += (double)grads[e] * grads[e];
    const double total = block_sum(sum);
    if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

__global__ void __launch_bounds__(kNormThreads) finish_norm_kernel(float *norm, const double *partials) {
    const double total = block_sum(partials[threadIdx.x]);
    if (threadIdx.x == 0) *norm = (float)sqrt(total);
}

}  // namespace

extern "C" int mnrl_cuda_adamw(float *params, mnrl_bf16 *params_act, const float *grads, float *m, float *v,
                               size_t n, double lr, double beta1, double beta2, double eps, double weight_decay,
                               int step, cudaStream_t stream, MnrlError *err) {
    if (step < 1)
        return mnrl_fail(err, "%s:%d: adamw: step %d, but steps count from 1; this is a bug in the caller",
                         __FILE__, __LINE__, step);
    if (n == 0) return 0;
    AdamwScalars s;  // derived in double and rounded once, exactly as ops_cpu_adamw
    s.decay = (float)(1.0 - lr * weight_decay);
    s.m_weight = (float)(1.0 - beta1);
    s.beta2 = (float)beta2;
    s.v_weight = (float)(1.0 - beta2);
    s.step_size = (float)(lr / (1.0 - pow(beta1, step)));
    s.bc2_sqrt = (float)sqrt(1.0 - pow(beta2, step));
    s.eps = (float)eps;
    return launch_elementwise(Adamw{params, params_act, grads, m, v, s}, n, stream, err);
}

extern "C" size_t mnrl_cuda_clip_grad_norm_workspace_bytes(void) {
    return kNormBlocks * sizeof(double) + 16;
}

extern "C" int mnrl_cuda_clip_grad_norm(float *grads, size_t n, float max_norm, void *workspace, float *norm,
                                        cudaStream_t stream, MnrlError *err) {
    *norm = 0.0f;
    if (n == 0) return 0;
    double *partials = (double *)workspace;
    float *dev_norm = (float *)(partials + kNormBlocks);
    if (aligned16(grads))
        CUDA_LAUNCH(kNormBlocks, kNormThreads, 0, stream, sum_squares_kernel<4>)(partials, grads, n);
    else
        CUDA_LAUNCH(kNormBlocks, kNormThreads, 0, stream, sum_squares_kernel<1>)(partials, grads, n);
    CUDA_CHECK(cudaGetLastError(), err);
    CUDA_LAUNCH(1, kNormThreads, 0, stream, finish_norm_kernel)(dev_norm, partials);
    CUDA_CHECK(cudaGetLastError(), err);
    CUDA_CHECK(cudaMemcpyAsync(norm, dev_norm, sizeof(float), cudaMemcpyDeviceToHost, stream), err);
    CUDA_CHECK(cudaStreamSynchronize(stream), err);
    const float coef = max_norm / (*norm + 1e-6f);  // as torch and ops_cpu: no clip when >= 1
    return max_norm > 0.0f && coef < 1.0f ? launch_elementwise(Scale{grads, coef}, n, stream, err) : 0;
}
