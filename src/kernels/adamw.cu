// adamw.cu — the global gradient norm and the optimizer step: clipping, AdamW on the fp32
// master weights (writing the bf16 compute copy) and zeroing of the gradients, fused.
// CPU ops it must match: ops_cpu()->grad_norm and ops_cpu()->adamw (ops.h), which follow
// torch.nn.utils.clip_grad_norm_ and torch.optim.AdamW.
//
// Nothing here waits for the device: the norm stays in device memory, where the AdamW
// kernel reads it, so a step is three launches queued back to back.
//
// Gradient norm: a deterministic two-stage reduction in fp64 (each g² is exact in fp64,
// as on the CPU): kNormBlocks blocks of kNormThreads threads sum a fixed grid-stride share
// of the elements (float4 reads when aligned, in element order within each) and reduce it
// in a fixed tree to one partial; one block then reduces the kNormBlocks partials the same
// way and writes the fp32 norm.
//
// AdamW: one launch over every parameter; each block owns a contiguous span of
// kAdamwVectors vectors of 4 elements per thread (2,048 elements; 16-byte accesses, the
// bf16 copy in 8-byte ones; 512 elements one at a time when the pointers allow no
// vectors). A thread issues the loads of all its vectors before its first store (the
// gradient's zeroing), so 8 loads of 16 bytes per thread are in flight at once. The
// weight decay differs between runs of parameters (ops.h): the run table travels in the
// kernel arguments (kMaxRuns runs, about 1 KB; a longer table takes one launch per
// kMaxRuns runs). A block looks up the run of its first element once; when its span ends
// inside that run (all but the ~200 of bert-base's 53,000 blocks that straddle a run
// end) every element takes that run's decay, else each element searches the table.
// Every thread reads the norm (one cached word) once and derives the clip coefficient
// itself, as the CPU does, in fp32. (The first version ran kernel_util's grid-stride
// elementwise loop over 8,192 blocks with a table search per vector: 3.06 ms per
// bert-base step on an H200, 1.24 TB/s, latency-bound; this one is not yet measured.)
// The CPU's operations run in the CPU's order on the same fp32 scalars (each rounded once
// from double on the host, as torch does). The products go through __fmul_rn, which nvcc
// never contracts into a fused multiply-add, so every operation rounds as on the CPU and
// the fp32 results are the CPU's bit for bit.
#include <cuda_bf16.h>
#include <math.h>

#include "mnrl/cuda_launch.h"
#include "mnrl/kernels.h"
#include "kernel_util.cuh"

namespace {

const int kNormThreads = 256;
const int kNormBlocks = kNormThreads;  // the final block reduces one partial per thread
const int kNormUnroll = 8;             // vectors a thread of the norm loads at a time

// The fp32 scalars of a step, as ops_cpu_adamw's (which holds the clip coefficient where
// this holds max_norm: here each thread derives it from the norm in device memory).
typedef struct {
    float decay, m_weight, beta2, v_weight, step_size, bc2_sqrt, eps, max_norm;
} AdamwScalars;

const int kMaxRuns = 128;  // runs per launch: the table fills about 1 KB of kernel arguments

// The runs of one launch, relative to its first element: run r is [start[r], start[r + 1]).
struct RunTable {
    size_t start[kMaxRuns + 1];
    uint32_t decays[kMaxRuns / 32];  // bit r % 32 of word r / 32: run r decays
    int n;
};

const int kAdamwThreads = 256;
const int kAdamwVectors = 2;  // vectors per thread: their loads go out together

// Elements a block updates: kAdamwVectors vectors of V per thread.
template <int V>
__host__ __device__ constexpr size_t adamw_span() { return (size_t)kAdamwThreads * kAdamwVectors * V; }

struct Adamw {
    float *params;
    __nv_bfloat16 *params_act;  // NULL: no separate compute copy
    float *grads, *m, *v;
    const float *norm;
    AdamwScalars s;
    RunTable runs;
    bool aligned() const {
        return aligned16(params, grads, m, v) && (uintptr_t)params_act % sizeof(Pack<__nv_bfloat16, 4>) == 0;
    }
    // The run holding element e: the last one starting at or before it.
    __device__ int run_of(size_t e) const {
        int lo = 0, hi = runs.n;
        while (hi - lo > 1) {
            const int mid = (lo + hi) / 2;
            if (runs.start[mid] <= e) lo = mid;
            else hi = mid;
        }
        return lo;
    }
    __device__ float decay_of(int r) const {
        return runs.decays[r / 32] >> (r % 32) & 1u ? s.decay : 1.0f;  // else (float)(1 - lr·0)
    }
    // torch's clip coefficient max_norm / (norm + 1e-6) in fp32 where it is below 1, else 1
    // (g·1 is g): ops_cpu's clip_scale.
    __device__ float clip_scale(float total) const {
        const float coef = s.max_norm / (total + 1e-6f);
        return s.max_norm > 0.0f && coef < 1.0f ? coef : 1.0f;
    }
    // One element's update, in ops_cpu_adamw's operations and order.
    __device__ void update(float g, float &p, float &mi, float &vi, float clip, float decay) const {
        const float gk = __fmul_rn(g, clip);
        const float decayed = __fmul_rn(p, decay);
        mi = mi + __fmul_rn(s.m_weight, gk - mi);
        vi = __fmul_rn(vi, s.beta2) + __fmul_rn(__fmul_rn(s.v_weight, gk), gk);
        p = decayed - __fmul_rn(s.step_size, mi) / (sqrtf(vi) / s.bc2_sqrt + s.eps);
    }
};

// The step's view of the norm and of the block's runs, the same for all its threads.
struct AdamwBlock {
    bool finite;  // a NaN or infinite norm skips the step: only the gradients are cleared
    float clip;
    bool one_run;  // the block's elements all lie in one run, whose decay is `decay`
    float decay;
};

// Updates the K vectors of V elements starting at e[0..K): all loads first, then the
// gradients' zeroing, then the updates and stores.
template <int V, int K>
__device__ void adamw_vectors(const Adamw &a, const AdamwBlock &b, const size_t (&e)[K]) {
    float g[K][V], p[K][V], mi[K][V], vi[K][V];
    const float zeros[V] = {};
    MNRL_UNROLL
    for (int i = 0; i < K; i++) load_f32(g[i], a.grads + e[i]);
    if (b.finite) {
        MNRL_UNROLL
        for (int i = 0; i < K; i++) {
            load_f32(p[i], a.params + e[i]);
            load_f32(mi[i], a.m + e[i]);
            load_f32(vi[i], a.v + e[i]);
        }
    }
    MNRL_UNROLL
    for (int i = 0; i < K; i++) store_f32(a.grads + e[i], zeros);
    if (!b.finite) return;
    MNRL_UNROLL
    for (int i = 0; i < K; i++) {
        MNRL_UNROLL
        for (int k = 0; k < V; k++)
            a.update(g[i][k], p[i][k], mi[i][k], vi[i][k], b.clip, b.one_run ? b.decay : a.decay_of(a.run_of(e[i] + k)));
        store_f32(a.m + e[i], mi[i]);
        store_f32(a.v + e[i], vi[i]);
        store_f32(a.params + e[i], p[i]);
        if (a.params_act) store_f32(a.params_act + e[i], p[i]);
    }
}

// Block j updates elements [j·span, (j + 1)·span) ∩ [0, n), span = adamw_span<V>(): vector
// i of thread t starts at element j·span + (i·kAdamwThreads + t)·V. The block holding the
// end of the array, when n is not a whole number of spans, goes one element at a time.
template <int V>
__global__ void __launch_bounds__(kAdamwThreads) adamw_kernel(size_t n, Adamw a) {
    const size_t span = adamw_span<V>(), begin = (size_t)blockIdx.x * span;
    const size_t end = n - begin < span ? n : begin + span;
    AdamwBlock b;
    const float total = *a.norm;
    b.finite = isfinite(total);
    b.clip = a.clip_scale(total);
    const int run = a.run_of(begin);
    b.one_run = a.runs.start[run + 1] >= end;
    b.decay = a.decay_of(run);
    if (end - begin == span) {
        size_t e[kAdamwVectors];
        MNRL_UNROLL
        for (int i = 0; i < kAdamwVectors; i++) e[i] = begin + ((size_t)i * kAdamwThreads + threadIdx.x) * V;
        adamw_vectors<V>(a, b, e);
        return;
    }
    for (size_t x = begin + threadIdx.x; x < end; x += kAdamwThreads) {
        const size_t e[1] = {x};
        adamw_vectors<1>(a, b, e);
    }
}

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
// It loads kNormUnroll of its vectors at a time, then adds them in the same order as the
// one-at-a-time loop that ends its share: 256 blocks are two per SM, and one 16-byte load
// per thread in flight left the pass latency-bound (0.40 ms of a batch-128 step on an
// H200, ~4x bert-base's 440 MB at bandwidth).
template <int V>
__global__ void __launch_bounds__(kNormThreads) sum_squares_kernel(double *partials, const float *grads, size_t n) {
    const size_t first = (size_t)blockIdx.x * kNormThreads + threadIdx.x, stride = (size_t)kNormBlocks * kNormThreads;
    const size_t whole = n / V * V;
    double sum = 0.0;
    size_t e = first * V;
    for (; e + (kNormUnroll - 1) * stride * V < whole; e += kNormUnroll * stride * V) {
        float g[kNormUnroll][V];
        MNRL_UNROLL
        for (int u = 0; u < kNormUnroll; u++) load_f32(g[u], grads + e + u * stride * V);
        MNRL_UNROLL
        for (int u = 0; u < kNormUnroll; u++)
            for (int k = 0; k < V; k++) sum += (double)g[u][k] * g[u][k];
    }
    for (; e < whole; e += stride * V) {
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

extern "C" size_t mnrl_cuda_grad_norm_workspace_bytes(void) { return kNormBlocks * sizeof(double); }

extern "C" int mnrl_cuda_grad_norm(float *norm, const float *grads, size_t n, void *workspace,
                                   cudaStream_t stream, MnrlError *err) {
    if (n == 0) {
        CUDA_CHECK(cudaMemsetAsync(norm, 0, sizeof *norm, stream), err);
        return 0;
    }
    double *partials = (double *)workspace;
    if (aligned16(grads))
        CUDA_LAUNCH(kNormBlocks, kNormThreads, 0, stream, sum_squares_kernel<4>)(partials, grads, n);
    else
        CUDA_LAUNCH(kNormBlocks, kNormThreads, 0, stream, sum_squares_kernel<1>)(partials, grads, n);
    CUDA_CHECK(cudaGetLastError(), err);
    CUDA_LAUNCH(1, kNormThreads, 0, stream, finish_norm_kernel)(norm, partials);
    CUDA_CHECK(cudaGetLastError(), err);
    return 0;
}

template <int V>
static void launch_adamw_kernel(const Adamw &body, size_t n, cudaStream_t stream) {
    const size_t blocks = (n + adamw_span<V>() - 1) / adamw_span<V>();
    CUDA_LAUNCH((unsigned)blocks, kAdamwThreads, 0, stream, adamw_kernel<V>)(n, body);
}

// One launch over elements [0, n) of the body's tensors, in vectors of 4 when they allow.
static int launch_adamw(const Adamw &body, size_t n, cudaStream_t stream, MnrlError *err) {
    if (n == 0) return 0;
    if (n / adamw_span<1>() >= 0x7fffffffu)
        return mnrl_fail(err, "%s:%d: adamw: %zu parameters in one run table need more than 2^31 blocks; "
                              "this is a bug in the caller", __FILE__, __LINE__, n);
    if (body.aligned()) launch_adamw_kernel<4>(body, n, stream);
    else launch_adamw_kernel<1>(body, n, stream);
    CUDA_CHECK(cudaGetLastError(), err);
    return 0;
}

// Fills the table of runs [first, first + count) of a launch that starts at element base.
static RunTable run_table(const MnrlParamRun *runs, size_t first, int count, size_t base) {
    RunTable t = {};
    t.n = count;
    for (int r = 0; r < count; r++) {
        t.start[r] = runs[first + r].offset - base;
        if (runs[first + r].decay) t.decays[r / 32] |= 1u << (r % 32);
    }
    t.start[count] = runs[first + count - 1].offset + runs[first + count - 1].count - base;
    return t;
}

extern "C" int mnrl_cuda_adamw(float *params, mnrl_bf16 *params_act, float *grads, float *m, float *v,
                               const MnrlParamRun *runs, size_t n_runs, const float *norm,
                               const MnrlAdamwParams *hp, int step, cudaStream_t stream, MnrlError *err) {
    if (step < 1)
        return mnrl_fail(err, "%s:%d: adamw: step %d, but steps count from 1; this is a bug in the caller",
                         __FILE__, __LINE__, step);
    for (size_t r = 0; r < n_runs; r++) {
        const size_t want = r == 0 ? 0 : runs[r - 1].offset + runs[r - 1].count;
        if (runs[r].offset != want)
            return mnrl_fail(err, "%s:%d: adamw: run %zu starts at %zu, not at %zu: the runs must tile the "
                                  "parameters in order; this is a bug in the caller", __FILE__, __LINE__, r,
                             runs[r].offset, want);
    }
    Adamw body;  // the scalars derived in double and rounded once, exactly as ops_cpu_adamw
    body.s.decay = (float)(1.0 - hp->lr * hp->weight_decay);
    body.s.m_weight = (float)(1.0 - hp->beta1);
    body.s.beta2 = (float)hp->beta2;
    body.s.v_weight = (float)(1.0 - hp->beta2);
    body.s.step_size = (float)(hp->lr / (1.0 - pow(hp->beta1, step)));
    body.s.bc2_sqrt = (float)sqrt(1.0 - pow(hp->beta2, step));
    body.s.eps = (float)hp->eps;
    body.s.max_norm = (float)hp->max_norm;
    body.norm = norm;
    for (size_t first = 0; first < n_runs; first += kMaxRuns) {
        const int count = n_runs - first < (size_t)kMaxRuns ? (int)(n_runs - first) : kMaxRuns;
        const size_t base = runs[first].offset;
        body.runs = run_table(runs, first, count, base);
        body.params = params + base;
        body.params_act = params_act ? params_act + base : NULL;
        body.grads = grads + base;
        body.m = m + base;
        body.v = v + base;
        if (launch_adamw(body, body.runs.start[count], stream, err) != 0) return -1;
    }
    return 0;
}
