// matmul.cu — the linear layers: forward out = inp·Wᵀ + bias (optionally with the exact
// GELU, keeping pre_gelu), backward dinp = dout·W (written or added), dweight += doutᵀ·inp,
// dbias += column sums of dout; fp32 or bf16 activations, fp32 accumulation, fp32 weight
// and bias gradients.
// CPU ops it must match: ops_cpu()->matmul_forward / matmul_backward / gelu_bias_backward
// (ops.h).
//
// Two GEMM paths behind the same launchers:
//  - cuBLASLt (nvcc builds, given a MnrlGemmContext with a handle): bf16 (or fp32) A/B,
//    CUBLAS_COMPUTE_32F, the BIAS epilogue for the forward bias, beta = 1 for the
//    accumulating outputs (dinp when asked, dweight in fp32). Not used: GELU_AUX / DGELU,
//    because cuBLASLt's GELU is the tanh approximation and BERT's is the exact erf GELU
//    (they differ by up to 4e-4, more than fp32 noise), so the forward GELU is
//    elementwise.cu's exact kernel on pre_gelu, and the caller applies gelu_bias_backward
//    (ops.h, below); nor BGRAD, which overwrites the bias gradient where ops.h accumulates
//    it and whose reduction order is the library's: dbias is the deterministic column sum
//    below.
//  - the portable path (the emulation, a context without a handle, and any build without
//    cuBLASLt): gemm_kernel, a 64 × 64-tile shared-memory GEMM with 4 × 4 register
//    micro-tiles over generic strides, so one kernel serves all three products; the same
//    epilogues (bias, accumulate) and the same exact-GELU kernel.
// dbias: column partial sums over fixed row ranges (fp32, kBiasRows rows of threads per
// block, a lane owning 8 bf16 or 4 fp32 columns read 16 bytes at a time) into the
// workspace, then kernel_util's add_partial_sums in fp64 in a fixed order: the same bits
// on every run. The same pass also serves gelu_bias_backward (ops.h): the GELU's backward
// written on the way, the sums taken of it, one read of dout and pre_gelu fewer than a
// GELU kernel followed by the bias reduction.
#include <string.h>

#include <cuda_bf16.h>

#ifndef CUEMU
#include <cublasLt.h>
#endif

#include "mnrl/common.h"
#include "mnrl/cuda_launch.h"
#include "mnrl/kernels.h"
#include "kernel_util.cuh"

namespace {

const int kTile = 64;           // output tile of gemm_kernel
const int kThreads = 256;       // 16 × 16 threads, 4 × 4 outputs each
const int kK = 16;              // K per shared-memory stage
const int kStride = kTile + 1;  // padded shared-memory rows
const int kBiasRows = 8;        // dbias: rows of threads per block (a warp each)
const int kBiasParts = 128;     // dbias: at most this many row ranges (partials per column)

// Element (r, c) of a strided matrix view.
template <class T>
struct View {
    const T *p;
    size_t row_stride, col_stride;
    __device__ float at(int r, int c) const { return to_f32(p[(size_t)r * row_stride + (size_t)c * col_stride]); }
};

// Stages rows [r0, r0 + 64) × K columns [k0, k0 + kK) of a view (rows past `rows`, columns
// past K read as 0) into dst[k][r]; the index that is contiguous in memory runs along the
// threads, so global reads coalesce for either layout.
template <class T>
__device__ void stage(float *dst, const View<T> &v, int r0, int rows, int k0, int K) {
    const bool k_fast = v.col_stride == 1;
    for (int idx = threadIdx.x; idx < kTile * kK; idx += kThreads) {
        const int r = k_fast ? idx / kK : idx % kTile, k = k_fast ? idx % kK : idx / kTile;
        dst[k * kStride + r] = r0 + r < rows && k0 + k < K ? v.at(r0 + r, k0 + k) : 0.0f;
    }
}

// d[m][n] = Σ_k A(m, k)·B(k, n) (+ bias[n]) (+ d[m][n] when accumulate), A = a (M × K),
// B = bᵀ of the view b (N × K), d row-major [M, N] with row stride ldd.
template <class T, class TOut>
__global__ void __launch_bounds__(kThreads)
    gemm_kernel(TOut *d, int ldd, View<T> a, View<T> b, const T *bias, int M, int N, int K, int accumulate) {
    float *a_stage = reinterpret_cast<float *>(mnrl_dyn_smem);
    float *b_stage = a_stage + kK * kStride;
    const int tid = threadIdx.x, ty = tid / 16, tx = tid % 16;
    const int m0 = blockIdx.y * kTile, n0 = blockIdx.x * kTile;
    float acc[4][4] = {};
    for (int k0 = 0; k0 < K; k0 += kK) {
        __syncthreads();  // the previous stage is consumed
        stage(a_stage, a, m0, M, k0, K);
        stage(b_stage, b, n0, N, k0, K);
        __syncthreads();
        for (int k = 0; k < kK; k++) {
            float x[4], y[4];
            for (int r = 0; r < 4; r++) x[r] = a_stage[k * kStride + 4 * ty + r];
            for (int c = 0; c < 4; c++) y[c] = b_stage[k * kStride + 4 * tx + c];
            for (int r = 0; r < 4; r++)
                for (int c = 0; c < 4; c++) acc[r][c] = fmaf(x[r], y[c], acc[r][c]);
        }
    }
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) {
            const int m = m0 + 4 * ty + r, n = n0 + 4 * tx + c;
            if (m >= M || n >= N) continue;
            TOut *dst = d + (size_t)m * ldd + n;
            float v = acc[r][c];
            if (bias) v += to_f32(bias[n]);
            if (accumulate) v += to_f32(*dst);
            store(dst, v);
        }
}

// partials[blockIdx.y][c] = Σ of dout[t][c] over the block's row range (fp32: each thread
// row adds every kBiasRows-th row, then the rows of threads are added in order). Lane x
// owns the V columns from (blockIdx.x·32 + x)·V; the order per column does not depend on V.
// With GELU (the backward of a fused-GELU forward) each element is first turned into
// d(pre_gelu) = dout·gelu'(pre), rounded to T and written to dinp (which may be dout), and
// the sums are of dinp as stored: the GELU backward and the bias reduction in one pass.
template <class T, int V, bool GELU>
__global__ void __launch_bounds__(32 * kBiasRows)
    bias_partial_kernel(float *partials, T *dinp, const T *pre, const T *dout, int rows, int OC, int rows_per_part) {
    __shared__ float sums[kBiasRows][32 * V];
    const int c = (blockIdx.x * 32 + threadIdx.x) * V;
    const int begin = blockIdx.y * rows_per_part, end = min(rows, begin + rows_per_part);
    float sum[V] = {};
    if (c < OC)
        for (int t = begin + threadIdx.y; t < end; t += kBiasRows) {
            const size_t at = (size_t)t * OC + c;
            float x[V];
            load_f32(x, dout + at);
            if (GELU) {
                float p[V];
                load_f32(p, pre + at);
                for (int e = 0; e < V; e++) x[e] = to_f32(from_f32<T>(__fmul_rn(x[e], gelu_grad(p[e]))));
                store_f32(dinp + at, x);
            }
            for (int e = 0; e < V; e++) sum[e] += x[e];
        }
    for (int e = 0; e < V; e++) sums[threadIdx.y][threadIdx.x * V + e] = sum[e];
    __syncthreads();
    if (threadIdx.y == 0 && c < OC) {
        float total[V] = {};
        for (int r = 0; r < kBiasRows; r++)
            for (int e = 0; e < V; e++) total[e] += sums[r][threadIdx.x * V + e];
        for (int e = 0; e < V; e++) partials[(size_t)blockIdx.y * OC + c + e] = total[e];
    }
}

int bias_parts(int rows) { return rows < kBiasParts ? (rows > 0 ? rows : 1) : kBiasParts; }

// dbias += column sums of dout; with pre (GELU), of dinp = dout·gelu'(pre) written on the way.
template <class T>
int bias_grad(float *dbias, T *dinp, const T *pre, const T *dout, int rows, int OC, void *workspace,
              cudaStream_t stream, MnrlError *err) {
    const int parts = bias_parts(rows), rows_per_part = (rows + parts - 1) / parts;
    float *partials = static_cast<float *>(workspace);
    const dim3 block(32, kBiasRows);
    const bool vec = OC % kVec<T> == 0 && aligned16(dinp, pre, dout);
    const unsigned col_blocks = (unsigned)(vec ? (OC + 32 * kVec<T> - 1) / (32 * kVec<T>) : (OC + 31) / 32);
    void (*const kernel)(float *, T *, const T *, const T *, int, int, int) =
        vec ? (pre ? bias_partial_kernel<T, kVec<T>, true> : bias_partial_kernel<T, kVec<T>, false>)
            : (pre ? bias_partial_kernel<T, 1, true> : bias_partial_kernel<T, 1, false>);
    CUDA_LAUNCH(dim3(col_blocks, (unsigned)parts), block, 0, stream, kernel)(partials, dinp, pre, dout, rows, OC,
                                                                           rows_per_part);
    CUDA_CHECK(cudaGetLastError(), err);
    return add_partial_sums(ColumnSums{{dbias}, 1}, partials, parts, OC, stream, err);
}

// The portable GEMM: d (M × N, row stride ldd) (+)= A·Bᵀ-view products (see gemm_kernel).
template <class T, class TOut>
int portable_gemm(TOut *d, int ldd, View<T> a, View<T> b, const T *bias, int M, int N, int K, int accumulate,
                  cudaStream_t stream, MnrlError *err) {
    const dim3 grid((unsigned)((N + kTile - 1) / kTile), (unsigned)((M + kTile - 1) / kTile));
    const size_t smem = 2 * sizeof(float) * kK * kStride;
    CUDA_LAUNCH(grid, kThreads, smem, stream, gemm_kernel<T, TOut>)(d, ldd, a, b, bias, M, N, K, accumulate);
    CUDA_CHECK(cudaGetLastError(), err);
    return 0;
}

#ifndef CUEMU
template <class T>
cudaDataType_t cuda_type();
template <>
cudaDataType_t cuda_type<float>() { return CUDA_R_32F; }
template <>
cudaDataType_t cuda_type<__nv_bfloat16>() { return CUDA_R_16BF; }

#define LT_CHECK(call, err)                                                                          \
    do {                                                                                             \
        cublasStatus_t lt_status_ = (call);                                                          \
        if (lt_status_ != CUBLAS_STATUS_SUCCESS) {                                                   \
            lt_fail = mnrl_fail((err), "%s:%d: %s failed: %s", __FILE__, __LINE__, #call,            \
                                cublasLtGetStatusString(lt_status_));                                \
            goto done;                                                                               \
        }                                                                                            \
    } while (0)

// A cuBLASLt plan: the descriptors of one GEMM shape and the algorithm the heuristic chose
// for it. Asking the heuristic costs tens of microseconds of host time, once per shape: the
// 12 layers of a step (and later steps with the same token count) reuse the plan, so the
// host keeps ahead of the GPU. The bias pointer, the only per-call attribute, is set on
// each use.
struct LtPlan {
    int m, n, k, trans_a, trans_b, has_bias;
    cudaDataType_t ab_type, d_type;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a_layout, b_layout, d_layout;
    cublasLtMatmulAlgo_t algo;
};

const int kPlans = 64;  // a step has about a dozen shapes; token counts change between steps

struct LtPlans {
    LtPlan plan[kPlans];
    int used, next;  // plan[0, used) valid; next: the one to replace when full
};

void plan_release(LtPlan *p) {
    if (p->d_layout) cublasLtMatrixLayoutDestroy(p->d_layout);
    if (p->b_layout) cublasLtMatrixLayoutDestroy(p->b_layout);
    if (p->a_layout) cublasLtMatrixLayoutDestroy(p->a_layout);
    if (p->desc) cublasLtMatmulDescDestroy(p->desc);
    memset(p, 0, sizeof *p);
}

// Fills *p (key fields already set) with descriptors and the heuristic's algorithm.
int plan_create(const MnrlGemmContext *ctx, LtPlan *p, MnrlError *err) {
    cublasLtHandle_t handle = static_cast<cublasLtHandle_t>(ctx->handle);
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t heuristic;
    const cublasOperation_t op_a = p->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = p->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    const int m = p->m, n = p->n, k = p->k;
    int found = 0, lt_fail = 0;
    LT_CHECK(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), err);
    LT_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof op_a), err);
    LT_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof op_b), err);
    if (p->has_bias) {
        const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
        LT_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue),
                 err);
        LT_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &p->ab_type,
                                                sizeof p->ab_type), err);
    }
    LT_CHECK(cublasLtMatrixLayoutCreate(&p->a_layout, p->ab_type, p->trans_a ? k : m, p->trans_a ? m : k,
                                        p->trans_a ? k : m), err);
    LT_CHECK(cublasLtMatrixLayoutCreate(&p->b_layout, p->ab_type, p->trans_b ? n : k, p->trans_b ? k : n,
                                        p->trans_b ? n : k), err);
    LT_CHECK(cublasLtMatrixLayoutCreate(&p->d_layout, p->d_type, m, n, m), err);
    LT_CHECK(cublasLtMatmulPreferenceCreate(&pref), err);
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                  &ctx->workspace_bytes, sizeof ctx->workspace_bytes), err);
    LT_CHECK(cublasLtMatmulAlgoGetHeuristic(handle, p->desc, p->a_layout, p->b_layout, p->d_layout, p->d_layout, pref,
                                            1, &heuristic, &found), err);
    if (found == 0) {
        lt_fail = mnrl_fail(err, "%s:%d: cuBLASLt has no algorithm for a %d × %d × %d GEMM (transa %d, transb %d, "
                            "bias %d); report this with the model's shapes", __FILE__, __LINE__, m, n, k, p->trans_a,
                            p->trans_b, p->has_bias);
        goto done;
    }
    p->algo = heuristic.algo;
done:
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    return lt_fail;
}

// The plan of a shape: found in the context's plans, or made (replacing the oldest when full).
LtPlan *plan_for(const MnrlGemmContext *ctx, const LtPlan &key, MnrlError *err) {
    LtPlans *plans = static_cast<LtPlans *>(ctx->plans);
    for (int i = 0; i < plans->used; i++) {
        const LtPlan &p = plans->plan[i];
        if (p.m == key.m && p.n == key.n && p.k == key.k && p.trans_a == key.trans_a && p.trans_b == key.trans_b &&
            p.has_bias == key.has_bias && p.ab_type == key.ab_type && p.d_type == key.d_type)
            return &plans->plan[i];
    }
    LtPlan *p;
    if (plans->used < kPlans) {
        p = &plans->plan[plans->used++];
    } else {
        p = &plans->plan[plans->next];
        plans->next = (plans->next + 1) % kPlans;
        plan_release(p);
    }
    *p = key;
    if (plan_create(ctx, p, err) != 0) {
        plan_release(p);
        p->m = -1;  // an empty slot: matches no shape, its NULL descriptors release as nothing
        return NULL;
    }
    return p;
}

// Column-major cuBLASLt GEMM D (m × n, ld m, type d_type) = op(A)·op(B) (+ bias[m] via the
// BIAS epilogue) + beta·D, A stored (trans_a ? k × m : m × k), B (trans_b ? n × k : k × n),
// both of type T. The row-major products of the launchers map onto it (see below).
template <class T>
int lt_gemm(const MnrlGemmContext *ctx, void *d, cudaDataType_t d_type, const T *a, const T *b, const T *bias,
            int m, int n, int k, bool trans_a, bool trans_b, float beta, cudaStream_t stream, MnrlError *err) {
    LtPlan key;
    memset(&key, 0, sizeof key);
    key.m = m, key.n = n, key.k = k, key.trans_a = trans_a, key.trans_b = trans_b, key.has_bias = bias != NULL;
    key.ab_type = cuda_type<T>(), key.d_type = d_type;
    LtPlan *plan = plan_for(ctx, key, err);
    if (!plan) return -1;
    const float alpha = 1.0f;
    int lt_fail = 0;
    if (bias)
        LT_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias),
                 err);
    ++mnrl_cuda_launches;
    LT_CHECK(cublasLtMatmul(static_cast<cublasLtHandle_t>(ctx->handle), plan->desc, &alpha, a, plan->a_layout, b,
                            plan->b_layout, &beta, d, plan->d_layout, d, plan->d_layout, &plan->algo, ctx->workspace,
                            ctx->workspace_bytes, stream), err);
done:
    return lt_fail;
}

bool use_lt(const MnrlGemmContext *ctx) { return ctx && ctx->handle; }
#endif

int check_shape(const char *what, int T, int C, int OC, MnrlError *err) {
    if (T < 0 || C <= 0 || OC <= 0 || (long)T > 65535L * kTile || (long)OC > 65535L * kTile)
        return mnrl_fail(err, "%s:%d: %s: bad shape T=%d C=%d OC=%d (need 0 <= T, 0 < C, 0 < OC); this is a bug "
                         "in the caller", __FILE__, __LINE__, what, T, C, OC);
    return 0;
}

int gelu(float *out, const float *pre, size_t n, cudaStream_t stream, MnrlError *err) {
    return mnrl_cuda_gelu_forward_f32(out, pre, n, stream, err);
}
int gelu(__nv_bfloat16 *out, const __nv_bfloat16 *pre, size_t n, cudaStream_t stream, MnrlError *err) {
    return mnrl_cuda_gelu_forward_bf16(out, pre, n, stream, err);
}
int gelu_backward(float *dinp, const float *pre, const float *dout, size_t n, cudaStream_t stream, MnrlError *err) {
    return mnrl_cuda_gelu_backward_f32(dinp, pre, dout, n, stream, err);
}
int gelu_backward(__nv_bfloat16 *dinp, const __nv_bfloat16 *pre, const __nv_bfloat16 *dout, size_t n,
                  cudaStream_t stream, MnrlError *err) {
    return mnrl_cuda_gelu_backward_bf16(dinp, pre, dout, n, stream, err);
}

// Row-major out[T, OC] = inp[T, C]·W[OC, C]ᵀ + bias; column-major that is
// outᵀ (OC × T) = W (stored C × OC, transposed)·inpᵀ (stored C × T).
template <class T>
int forward(const char *what, T *out, T *pre_gelu, const T *inp, const T *weight, const T *bias, int rows, int C,
            int OC, const MnrlGemmContext *ctx, cudaStream_t stream, MnrlError *err) {
    if (check_shape(what, rows, C, OC, err) != 0) return -1;
    if (rows == 0) return 0;
    T *dst = pre_gelu ? pre_gelu : out;
    int rc;
#ifdef CUEMU
    (void)ctx;  // no cuBLASLt under the emulation
#else
    if (use_lt(ctx))
        rc = lt_gemm<T>(ctx, dst, cuda_type<T>(), weight, inp, bias, OC, rows, C, true, false, 0.0f, stream, err);
    else
#endif
        rc = portable_gemm<T, T>(dst, OC, View<T>{inp, (size_t)C, 1}, View<T>{weight, (size_t)C, 1}, bias, rows,
                                 OC, C, 0, stream, err);
    if (rc != 0 || !pre_gelu) return rc;
    return gelu(out, pre_gelu, (size_t)rows * OC, stream, err);
}

// dinp[T, C] (+)= dout[T, OC]·W[OC, C]: column-major dinpᵀ (C × T) = W (stored C × OC)·doutᵀ
// (stored OC × T). dweight[OC, C] += doutᵀ·inp: column-major dweightᵀ (C × OC) =
// inpᵀ (stored C × T)·dout (stored OC × T, transposed).
template <class T>
int backward(const char *what, T *dinp, float *dweight, float *dbias, const T *dout, const T *inp, const T *weight,
             int rows, int C, int OC, int accumulate_dinp, void *workspace, const MnrlGemmContext *ctx,
             cudaStream_t stream, MnrlError *err) {
    if (check_shape(what, rows, C, OC, err) != 0) return -1;
    if (rows == 0) return 0;
#ifdef CUEMU
    (void)ctx;  // no cuBLASLt under the emulation
#else
    if (use_lt(ctx)) {
        if (dinp && lt_gemm<T>(ctx, dinp, cuda_type<T>(), weight, dout, (const T *)NULL, C, rows, OC, false, false,
                               accumulate_dinp ? 1.0f : 0.0f, stream, err) != 0)
            return -1;
        if (lt_gemm<T>(ctx, dweight, CUDA_R_32F, inp, dout, (const T *)NULL, C, OC, rows, false, true, 1.0f, stream,
                       err) != 0)
            return -1;
        return dbias ? bias_grad(dbias, (T *)NULL, (const T *)NULL, dout, rows, OC, workspace, stream, err) : 0;
    }
#endif
    if (dinp && portable_gemm<T, T>(dinp, C, View<T>{dout, (size_t)OC, 1}, View<T>{weight, 1, (size_t)C},
                                    (const T *)NULL, rows, C, OC, accumulate_dinp, stream, err) != 0)
        return -1;
    if (portable_gemm<T, float>(dweight, C, View<T>{dout, 1, (size_t)OC}, View<T>{inp, 1, (size_t)C},
                                (const T *)NULL, OC, C, rows, 1, stream, err) != 0)
        return -1;
    return dbias ? bias_grad(dbias, (T *)NULL, (const T *)NULL, dout, rows, OC, workspace, stream, err) : 0;
}

template <class T>
int gelu_bias_backward(const char *what, T *dinp, float *dbias, const T *pre, const T *dout, int rows, int OC,
                       void *workspace, cudaStream_t stream, MnrlError *err) {
    if (check_shape(what, rows, 1, OC, err) != 0) return -1;
    if (rows == 0) return 0;
    if (!dbias) return gelu_backward(dinp, pre, dout, (size_t)rows * OC, stream, err);
    return bias_grad(dbias, dinp, pre, dout, rows, OC, workspace, stream, err);
}

}  // namespace

extern "C" int mnrl_cuda_gemm_context_create(MnrlGemmContext *ctx, size_t workspace_bytes, MnrlError *err) {
    ctx->handle = NULL;
    ctx->plans = NULL;
    ctx->workspace = NULL;
    ctx->workspace_bytes = 0;
#ifdef CUEMU
    (void)workspace_bytes;
    (void)err;
    return 0;  // no cuBLASLt under the emulation: the portable GEMM
#else
    cublasLtHandle_t handle = NULL;
    cublasStatus_t status = cublasLtCreate(&handle);
    if (status != CUBLAS_STATUS_SUCCESS)
        return mnrl_fail(err, "%s:%d: cublasLtCreate failed: %s; check the CUDA installation (libcublasLt)",
                         __FILE__, __LINE__, cublasLtGetStatusString(status));
    if (workspace_bytes > 0 && cudaMalloc(&ctx->workspace, workspace_bytes) != cudaSuccess) {
        cublasLtDestroy(handle);
        cudaGetLastError();  // clear the allocation error
        return mnrl_fail(err, "%s:%d: cannot allocate the %zu-byte cuBLASLt workspace on the device; free device "
                         "memory or lower the batch size", __FILE__, __LINE__, workspace_bytes);
    }
    ctx->handle = handle;
    ctx->workspace_bytes = workspace_bytes;
    ctx->plans = mnrl_calloc(1, sizeof(LtPlans));
    return 0;
#endif
}

extern "C" void mnrl_cuda_gemm_context_destroy(MnrlGemmContext *ctx) {
#ifndef CUEMU
    LtPlans *plans = static_cast<LtPlans *>(ctx->plans);
    if (plans)
        for (int i = 0; i < plans->used; i++) plan_release(&plans->plan[i]);
    free(plans);
    if (ctx->handle) cublasLtDestroy(static_cast<cublasLtHandle_t>(ctx->handle));
#endif
    ctx->plans = NULL;
    if (ctx->workspace) cudaFree(ctx->workspace);
    ctx->handle = NULL;
    ctx->workspace = NULL;
    ctx->workspace_bytes = 0;
}

extern "C" size_t mnrl_cuda_matmul_backward_workspace_bytes(int max_tokens, int OC) {
    return sizeof(float) * (size_t)bias_parts(max_tokens) * (size_t)OC;
}

extern "C" int mnrl_cuda_matmul_forward_f32(float *out, float *pre_gelu, const float *inp, const float *weight,
                                            const float *bias, int T, int C, int OC, const MnrlGemmContext *ctx,
                                            cudaStream_t stream, MnrlError *err) {
    return forward("matmul_forward_f32", out, pre_gelu, inp, weight, bias, T, C, OC, ctx, stream, err);
}

extern "C" int mnrl_cuda_matmul_forward_bf16(mnrl_bf16 *out, mnrl_bf16 *pre_gelu, const mnrl_bf16 *inp,
                                             const mnrl_bf16 *weight, const mnrl_bf16 *bias, int T, int C, int OC,
                                             const MnrlGemmContext *ctx, cudaStream_t stream, MnrlError *err) {
    return forward("matmul_forward_bf16", out, pre_gelu, inp, weight, bias, T, C, OC, ctx, stream, err);
}

extern "C" int mnrl_cuda_matmul_backward_f32(float *dinp, float *dweight, float *dbias, const float *dout,
                                             const float *inp, const float *weight, int T, int C, int OC,
                                             int accumulate_dinp, void *workspace, const MnrlGemmContext *ctx,
                                             cudaStream_t stream, MnrlError *err) {
    return backward("matmul_backward_f32", dinp, dweight, dbias, dout, inp, weight, T, C, OC, accumulate_dinp,
                    workspace, ctx, stream, err);
}

extern "C" int mnrl_cuda_matmul_backward_bf16(mnrl_bf16 *dinp, float *dweight, float *dbias, const mnrl_bf16 *dout,
                                              const mnrl_bf16 *inp, const mnrl_bf16 *weight, int T, int C, int OC,
                                              int accumulate_dinp, void *workspace, const MnrlGemmContext *ctx,
                                              cudaStream_t stream, MnrlError *err) {
    return backward("matmul_backward_bf16", dinp, dweight, dbias, dout, inp, weight, T, C, OC, accumulate_dinp,
                    workspace, ctx, stream, err);
}

extern "C" int mnrl_cuda_gelu_bias_backward_f32(float *dinp, float *dbias, const float *pre, const float *dout, int T,
                                                int OC, void *workspace, cudaStream_t stream, MnrlError *err) {
    return gelu_bias_backward("gelu_bias_backward_f32", dinp, dbias, pre, dout, T, OC, workspace, stream, err);
}

extern "C" int mnrl_cuda_gelu_bias_backward_bf16(mnrl_bf16 *dinp, float *dbias, const mnrl_bf16 *pre,
                                                 const mnrl_bf16 *dout, int T, int OC, void *workspace,
                                                 cudaStream_t stream, MnrlError *err) {
    return gelu_bias_backward("gelu_bias_backward_bf16", dinp, dbias, pre, dout, T, OC, workspace, stream, err);
}
