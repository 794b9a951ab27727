// layernorm.cu — LayerNorm forward (plain, and fused with the post-LN residual add) and
// backward, for fp32 and bf16 activations with fp32 statistics and fp32 accumulation.
// CPU ops it must match: ops_cpu()->layernorm_forward / residual_layernorm_forward /
// layernorm_backward (ops.h): biased variance, rstd = 1 / sqrt(var + eps), mean and rstd
// saved as fp32 [T] for backward.
//
// Rows are held in registers, one warp per row: lane `lane` owns the vectors
// q = lane + 32·j (j < kMaxC / (32·V)) of V consecutive columns, read and written as one
// 16-byte access each (V = kVec<T> when C is a multiple of it and every pointer is 16-byte
// aligned, else V = 1: the same arithmetic on single elements). Each row is read from
// memory once and written once.
//
// Forward: the lane's partial sums, then warp_sum — the mean, the centred sum of squares
// (two passes over the registers as on the CPU, so no E[x²] - mean² cancellation), the
// output. The residual variant writes res = a + b in the act dtype and normalises res as
// stored (rounded, on bf16), which is exactly the input that backward is given.
//
// Backward: dinp per row as on the CPU, dx = rstd·(g - mean(g) - x̂·mean(g·x̂)) with
// g = dout·weight. The weight and bias gradients are column sums over all rows, fused into
// the same pass without float atomics: a grid of at most kBackwardBlocks blocks of
// kBackwardWarps warps takes the rows in a fixed assignment (row = global warp index +
// i·all warps); each lane adds its rows' dout·x̂ and dout for its own columns in fp32
// registers, in row order; the block then adds its warps' sums in warp order (through
// shared memory) into one fp32 partial per column in the workspace, and add_partial_sums
// (kernel_util.cuh) adds the blocks' partials in fp64 in a fixed order, dweight and dbias
// in one launch. The grid depends on T only, so the result is the same on every run and
// device. dinp may be dout: a warp reads its whole row before writing it.
#include <cuda_bf16.h>

#include "mnrl/cuda_launch.h"
#include "mnrl/kernels.h"
#include "kernel_util.cuh"

namespace {

const int kWarps = 4;              // forward: rows per block
const int kBackwardWarps = 4;      // backward: rows in flight per block
const int kMaxC = 1024;            // 32 columns per lane
const int kBackwardBlocks = 512;   // at most this many partials per column
// (4 warps x 512 blocks ran bert-base's backward in 20 us on an H200 under ncu, 8 x 256 in
// 28: small blocks, whose warps wait for each other only at the end, balance better.)

// Normalises row `row` of inp (or of res = a + b when b is given, writing res first).
template <class T, int V>
__global__ void __launch_bounds__(kWarps * 32)
    layernorm_forward_kernel(T *res, T *out, float *mean, float *rstd, const T *a, const T *b,
                             const T *weight, const T *bias, int rows, int C, float eps) {
    constexpr int J = kMaxC / (32 * V);
    const int row = blockIdx.x * kWarps + threadIdx.y, lane = threadIdx.x;
    if (row >= rows) return;  // whole warps leave: there is no block barrier below
    const size_t off = (size_t)row * C;
    float x[J][V], y[J][V];
    for (int j = 0; j < J; j++) {  // every load of the row first, all in flight at once
        const int c = (lane + 32 * j) * V;
        if (c >= C) continue;
        load_f32(x[j], a + off + c);
        if (b) load_f32(y[j], b + off + c);
    }
    float sum = 0.0f;
    for (int j = 0; j < J; j++) {
        const int c = (lane + 32 * j) * V;
        if (c >= C) continue;
        if (b) {
            for (int e = 0; e < V; e++) x[j][e] = to_f32(from_f32<T>(x[j][e] + y[j][e]));
            store_f32(res + off + c, x[j]);
        }
        for (int e = 0; e < V; e++) sum += x[j][e];
    }
    const float mu = warp_sum(sum) / (float)C;
    float sq = 0.0f;
    for (int j = 0; j < J; j++) {
        if ((lane + 32 * j) * V >= C) continue;
        for (int e = 0; e < V; e++) {
            const float d = x[j][e] - mu;
            sq += d * d;
        }
    }
    const float r = 1.0f / sqrtf(warp_sum(sq) / (float)C + eps);
    for (int j = 0; j < J; j++) {
        const int c = (lane + 32 * j) * V;
        if (c >= C) continue;
        float w[V], bb[V], o[V];
        load_f32(w, weight + c);
        load_f32(bb, bias + c);
        for (int e = 0; e < V; e++) o[e] = (x[j][e] - mu) * r * w[e] + bb[e];
        store_f32(out + off + c, o);
    }
    if (lane == 0) {
        mean[row] = mu;
        rstd[row] = r;
    }
}

// dinp rows, and partials[blockIdx.x][c] (dweight, c < C) and partials[blockIdx.x][C + c]
// (dbias) over this block's rows. Dynamic shared memory: fp32 [2][C].
// LANE_COLS: the columns a lane can own (C <= 32·LANE_COLS), J·V of them; its fp32 sums
// and the row stay in registers, at most 128 for 4 blocks per SM (see launch_backward()).
template <class T, int V, int LANE_COLS>
__global__ void __launch_bounds__(kBackwardWarps * 32, 4)
    layernorm_backward_kernel(T *dinp, float *partials, const T *dout, const T *inp, const T *weight,
                              const float *mean, const float *rstd, int rows, int C) {
    constexpr int J = LANE_COLS / V;
    const int lane = threadIdx.x, warp = threadIdx.y;
    float dw[J][V] = {}, db[J][V] = {};
    for (int row = blockIdx.x * kBackwardWarps + warp; row < rows; row += gridDim.x * kBackwardWarps) {
        const size_t off = (size_t)row * C;
        const float mu = mean[row], r = rstd[row];
        Pack<T, V> dp[J], xp[J];  // the row's loads, all in flight at once
        for (int j = 0; j < J; j++) {
            const int c = (lane + 32 * j) * V;
            if (c >= C) continue;
            dp[j] = load_pack<T, V>(dout + off + c);
            xp[j] = load_pack<T, V>(inp + off + c);
        }
        float g_sum = 0.0f, gx_sum = 0.0f;
        for (int j = 0; j < J; j++) {
            const int c = (lane + 32 * j) * V;
            if (c >= C) continue;
            float d[V], x[V], w[V];
            load_f32(d, dp[j]);
            load_f32(x, xp[j]);
            load_f32(w, weight + c);
            for (int e = 0; e < V; e++) {
                const float xhat = (x[e] - mu) * r;
                const float g = d[e] * w[e];
                g_sum += g;
                gx_sum += g * xhat;
            }
        }
        const float g_mean = warp_sum(g_sum) / (float)C, gx_mean = warp_sum(gx_sum) / (float)C;
        for (int j = 0; j < J; j++) {
            const int c = (lane + 32 * j) * V;
            if (c >= C) continue;
            float d[V], x[V], w[V], dx[V];
            load_f32(d, dp[j]);
            load_f32(x, xp[j]);
            load_f32(w, weight + c);
            for (int e = 0; e < V; e++) {
                const float xhat = (x[e] - mu) * r;
                dx[e] = r * (d[e] * w[e] - g_mean - xhat * gx_mean);
                dw[j][e] += d[e] * xhat;
                db[j][e] += d[e];
            }
            store_f32(dinp + off + c, dx);
        }
    }
    // The block's sums in warp order: warp 0 stores, each later warp adds in turn.
    float *sums = (float *)mnrl_dyn_smem;
    for (int turn = 0; turn < kBackwardWarps; turn++) {
        if (warp == turn)
            for (int j = 0; j < J; j++) {
                const int c = (lane + 32 * j) * V;
                if (c >= C) continue;
                for (int e = 0; e < V; e++) {
                    sums[c + e] = turn == 0 ? dw[j][e] : sums[c + e] + dw[j][e];
                    sums[C + c + e] = turn == 0 ? db[j][e] : sums[C + c + e] + db[j][e];
                }
            }
        __syncthreads();
    }
    for (int c = warp * 32 + lane; c < 2 * C; c += kBackwardWarps * 32)
        partials[(size_t)blockIdx.x * 2 * C + c] = sums[c];
}

int check_shape(const char *what, int T, int C, MnrlError *err) {
    if (T < 0 || C <= 0 || C > kMaxC)
        return mnrl_fail(err, "%s:%d: %s: bad shape T=%d C=%d (need T >= 0 and 0 < C <= %d); "
                         "this is a bug in the caller", __FILE__, __LINE__, what, T, C, kMaxC);
    return 0;
}

unsigned forward_blocks(int T) { return (unsigned)((T + kWarps - 1) / kWarps); }

unsigned backward_blocks(int T) {
    const int needed = (T + kBackwardWarps - 1) / kBackwardWarps;
    return (unsigned)(needed < kBackwardBlocks ? needed : kBackwardBlocks);
}

template <class T>
int forward(const char *what, T *res, T *out, float *mean, float *rstd, const T *a, const T *b,
            const T *weight, const T *bias, int Tn, int C, float eps, cudaStream_t stream, MnrlError *err) {
    if (check_shape(what, Tn, C, err) != 0) return -1;
    if (Tn == 0) return 0;
    if (C % kVec<T> == 0 && aligned16(res, out, a, b, weight, bias))
        CUDA_LAUNCH(forward_blocks(Tn), dim3(32, kWarps), 0, stream, layernorm_forward_kernel<T, kVec<T>>)(
            res, out, mean, rstd, a, b, weight, bias, Tn, C, eps);
    else
        CUDA_LAUNCH(forward_blocks(Tn), dim3(32, kWarps), 0, stream, layernorm_forward_kernel<T, 1>)(
            res, out, mean, rstd, a, b, weight, bias, Tn, C, eps);
    CUDA_CHECK(cudaGetLastError(), err);
    return 0;
}

// 24 columns per lane cover BERT-base's C = 768 in 128 registers without spills; the
// kMaxC = 1024 instance (32 per lane) spills a little at that limit.
template <class T, int V>
void launch_backward(unsigned blocks, size_t smem, cudaStream_t stream, T *dinp, float *partials, const T *dout,
                     const T *inp, const T *weight, const float *mean, const float *rstd, int Tn, int C) {
    if (C <= 32 * 24)
        CUDA_LAUNCH(blocks, dim3(32, kBackwardWarps), smem, stream, layernorm_backward_kernel<T, V, 24>)(
            dinp, partials, dout, inp, weight, mean, rstd, Tn, C);
    else
        CUDA_LAUNCH(blocks, dim3(32, kBackwardWarps), smem, stream, layernorm_backward_kernel<T, V, kMaxC / 32>)(
            dinp, partials, dout, inp, weight, mean, rstd, Tn, C);
}

template <class T>
int backward(const char *what, T *dinp, float *dweight, float *dbias, const T *dout, const T *inp,
             const T *weight, const float *mean, const float *rstd, int Tn, int C, void *workspace,
             cudaStream_t stream, MnrlError *err) {
    if (check_shape(what, Tn, C, err) != 0) return -1;
    if (Tn == 0) return 0;
    const unsigned blocks = backward_blocks(Tn);
    float *partials = (float *)workspace;
    const size_t smem = (size_t)2 * C * sizeof(float);
    if (C % kVec<T> == 0 && aligned16(dinp, dout, inp, weight))
        launch_backward<T, kVec<T>>(blocks, smem, stream, dinp, partials, dout, inp, weight, mean, rstd, Tn, C);
    else
        launch_backward<T, 1>(blocks, smem, stream, dinp, partials, dout, inp, weight, mean, rstd, Tn, C);
    CUDA_CHECK(cudaGetLastError(), err);
    return add_partial_sums(dweight, dbias, partials, (int)blocks, C, stream, err);
}

}  // namespace

extern "C" size_t mnrl_cuda_layernorm_backward_workspace_bytes(int C) {
    return (size_t)2 * kBackwardBlocks * (size_t)C * sizeof(float);
}

extern "C" int mnrl_cuda_layernorm_forward_f32(float *out, float *mean, float *rstd, const float *inp,
                                               const float *weight, const float *bias, int T, int C,
                                               float eps, cudaStream_t stream, MnrlError *err) {
    return forward<float>("layernorm_forward_f32", NULL, out, mean, rstd, inp, NULL, weight, bias, T, C, eps,
                          stream, err);
}

extern "C" int mnrl_cuda_layernorm_forward_bf16(mnrl_bf16 *out, float *mean, float *rstd, const mnrl_bf16 *inp,
                                                const mnrl_bf16 *weight, const mnrl_bf16 *bias, int T, int C,
                                                float eps, cudaStream_t stream, MnrlError *err) {
    return forward<__nv_bfloat16>("layernorm_forward_bf16", NULL, out, mean, rstd, inp, NULL, weight, bias, T,
                                  C, eps, stream, err);
}

extern "C" int mnrl_cuda_residual_layernorm_forward_f32(float *res, float *out, float *mean, float *rstd,
                                                        const float *a, const float *b, const float *weight,
                                                        const float *bias, int T, int C, float eps,
                                                        cudaStream_t stream, MnrlError *err) {
    return forward("residual_layernorm_forward_f32", res, out, mean, rstd, a, b, weight, bias, T, C, eps,
                   stream, err);
}

extern "C" int mnrl_cuda_residual_layernorm_forward_bf16(mnrl_bf16 *res, mnrl_bf16 *out, float *mean,
                                                         float *rstd, const mnrl_bf16 *a, const mnrl_bf16 *b,
                                                         const mnrl_bf16 *weight, const mnrl_bf16 *bias, int T,
                                                         int C, float eps, cudaStream_t stream, MnrlError *err) {
    return forward("residual_layernorm_forward_bf16", res, out, mean, rstd, a, b, weight, bias, T, C, eps,
                   stream, err);
}

extern "C" int mnrl_cuda_layernorm_backward_f32(float *dinp, float *dweight, float *dbias, const float *dout,
                                                const float *inp, const float *weight, const float *mean,
                                                const float *rstd, int T, int C, void *workspace,
                                                cudaStream_t stream, MnrlError *err) {
    return backward("layernorm_backward_f32", dinp, dweight, dbias, dout, inp, weight, mean, rstd, T, C,
                    workspace, stream, err);
}

extern "C" int mnrl_cuda_layernorm_backward_bf16(mnrl_bf16 *dinp, float *dweight, float *dbias,
                                                 const mnrl_bf16 *dout, const mnrl_bf16 *inp,
                                                 const mnrl_bf16 *weight, const float *mean, const float *rstd,
                                                 int T, int C, void *workspace, cudaStream_t stream,
                                                 MnrlError *err) {
    return backward("layernorm_backward_bf16", dinp, dweight, dbias, dout, inp, weight, mean, rstd, T, C,
                    workspace, stream, err);
}
