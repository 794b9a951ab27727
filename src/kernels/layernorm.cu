// layernorm.cu — LayerNorm forward (plain, and fused with the post-LN residual add and the
// branch's dropout) and backward (plain, and fused with the branch's dropout and bias
// gradient), for fp32 and bf16 activations with fp32 statistics and fp32 accumulation.
// CPU ops it must match: ops_cpu()->layernorm_forward / residual_layernorm_forward /
// layernorm_backward / residual_layernorm_backward (ops.h): biased variance,
// rstd = 1 / sqrt(var + eps), mean and rstd saved as fp32 [T] for backward.
// The fusions save a BERT layer four passes over [T, C] tensors and four launches: the
// dropout of the attention-output and FFN-output branches is applied where the LayerNorm
// reads them, and in backward where the LayerNorm's dinp is made (DropoutMask, the mask
// of the dropout op; every product is rounded to the act dtype where the unfused ops
// stored it, so the results are those of the separate ops).
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
// the same pass without float atomics: a grid of at most kBackwardBlocks (residual:
// kBranchBackwardBlocks) blocks of
// kBackwardWarps warps takes the rows in a fixed assignment (row = global warp index +
// i·all warps); each lane adds its rows' dout·x̂ and dout for its own columns in fp32
// registers, in row order; the block then adds its warps' sums in warp order (through
// shared memory) into one fp32 partial per column in the workspace, and add_partial_sums
// (kernel_util.cuh) adds the blocks' partials in fp64 in a fixed order, dweight and dbias
// in one launch. The grid depends on T only, so the result is the same on every run and
// device. dinp may be dout: a warp reads its whole row before writing it. The residual
// variant adds a third column sum, the branch's bias gradient, the same way.
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
// The residual variant fits 3 blocks per SM (168 registers), so 512 of its blocks run in
// two rounds on a 132-SM H100 or H200 (396 blocks, then 116 on idle SMs); it takes at most
// 384, one round with a third more rows per block. (Not yet timed on a GPU; the batch-128
// step's residual launches took 49 us each under ncu, the plain one alone 20.)
const int kBranchBackwardBlocks = 384;

// Normalises row `row` of inp (or of res = a + dropout(b) when b is given, writing res
// first; the mask only when drop).
template <class T, int V>
__global__ void __launch_bounds__(kWarps * 32)
    layernorm_forward_kernel(T *res, T *out, float *mean, float *rstd, const T *a, const T *b, bool drop,
                             DropoutMask mask, const T *weight, const T *bias, int rows, int C, float eps) {
    constexpr int J = kMaxC / (32 * V);
    const int row = blockIdx.x * kWarps + threadIdx.y, lane = threadIdx.x;
    if (row >= rows) return;  // whole warps leave: there is no block barrier below
    const size_t off = (size_t)row * C;
    float x[J][V], y[J][V];
    MNRL_UNROLL
    for (int j = 0; j < J; j++) {  // every load of the row first, all in flight at once
        const int c = (lane + 32 * j) * V;
        if (c >= C) continue;
        load_f32(x[j], a + off + c);
        if (b) load_f32(y[j], b + off + c);
    }
    float sum = 0.0f;
    MNRL_UNROLL
    for (int j = 0; j < J; j++) {
        const int c = (lane + 32 * j) * V;
        if (c >= C) continue;
        if (b) {
            if (drop) {
                mask.apply(y[j], off + c);
                for (int e = 0; e < V; e++) y[j][e] = to_f32(from_f32<T>(y[j][e]));
            }
            for (int e = 0; e < V; e++) x[j][e] = to_f32(from_f32<T>(x[j][e] + y[j][e]));
            store_f32(res + off + c, x[j]);
        }
        for (int e = 0; e < V; e++) sum += x[j][e];
    }
    const float mu = warp_sum(sum) / (float)C;
    float sq = 0.0f;
    MNRL_UNROLL
    for (int j = 0; j < J; j++) {
        if ((lane + 32 * j) * V >= C) continue;
        for (int e = 0; e < V; e++) {
            const float d = x[j][e] - mu;
            sq += d * d;
        }
    }
    const float r = 1.0f / sqrtf(warp_sum(sq) / (float)C + eps);
    MNRL_UNROLL
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
// (dbias) over this block's rows. With BRANCH (the residual variant) also
// dbranch = dropout(dinp as stored; the mask only when drop), and its column sums in
// partials[blockIdx.x][2C + c]. Dynamic shared memory: backward_smem_bytes().
// LANE_COLS: the columns a lane can own (C <= 32·LANE_COLS), J·V of them; its fp32 sums
// and the row stay in registers, at most 128 for 4 blocks per SM (see launch_backward()).
// The branch's sums would not fit there too: each warp keeps them in its own row of shared
// memory instead, a lane adding to its own columns only, so the order of the additions is
// the same as in registers; the mask's Philox rounds still need more than 128 registers
// (ptxas spilled 304 bytes), so the residual variant runs 3 blocks per SM (168 registers,
// no spills for bf16 rows of 16-byte vectors; ptxas -v, sm_90a).
template <class T, int V, int LANE_COLS, bool BRANCH>
__global__ void __launch_bounds__(kBackwardWarps * 32, BRANCH ? 3 : 4)
    layernorm_backward_kernel(T *dinp, T *dbranch, float *partials, const T *dout, const T *inp, const T *weight,
                              const float *mean, const float *rstd, bool drop, DropoutMask mask, int rows, int C) {
    constexpr int J = LANE_COLS / V, kSums = BRANCH ? 3 : 2;
    const int lane = threadIdx.x, warp = threadIdx.y;
    float dw[J][V] = {}, db[J][V] = {};
    float *sums = (float *)mnrl_dyn_smem;                   // [kSums][C]: the block's sums
    float *branch = sums + kSums * C + (size_t)warp * C;    // [C]: this warp's branch sums
    if (BRANCH)
        MNRL_UNROLL
        for (int j = 0; j < J; j++) {
            const int c = (lane + 32 * j) * V;
            if (c >= C) continue;
            for (int e = 0; e < V; e++) branch[c + e] = 0.0f;
        }
    for (int row = blockIdx.x * kBackwardWarps + warp; row < rows; row += gridDim.x * kBackwardWarps) {
        const size_t off = (size_t)row * C;
        const float mu = mean[row], r = rstd[row];
        Pack<T, V> dp[J], xp[J];  // the row's loads, all in flight at once
        MNRL_UNROLL
        for (int j = 0; j < J; j++) {
            const int c = (lane + 32 * j) * V;
            if (c >= C) continue;
            dp[j] = load_pack<T, V>(dout + off + c);
            xp[j] = load_pack<T, V>(inp + off + c);
        }
        float g_sum = 0.0f, gx_sum = 0.0f;
        MNRL_UNROLL
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
        MNRL_UNROLL
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
            if (BRANCH) {  // from dinp as stored, as a dropout op reading it would
                for (int e = 0; e < V; e++) dx[e] = to_f32(from_f32<T>(dx[e]));
                if (drop) mask.apply(dx, off + c);
                for (int e = 0; e < V; e++) {
                    dx[e] = to_f32(from_f32<T>(dx[e]));
                    branch[c + e] += dx[e];
                }
                store_f32(dbranch + off + c, dx);
            }
        }
    }
    // The block's sums in warp order: warp 0 stores, each later warp adds in turn.
    for (int turn = 0; turn < kBackwardWarps; turn++) {
        if (warp == turn)
            MNRL_UNROLL
            for (int j = 0; j < J; j++) {
                const int c = (lane + 32 * j) * V;
                if (c >= C) continue;
                for (int e = 0; e < V; e++) {
                    sums[c + e] = turn == 0 ? dw[j][e] : sums[c + e] + dw[j][e];
                    sums[C + c + e] = turn == 0 ? db[j][e] : sums[C + c + e] + db[j][e];
                    if (BRANCH) sums[2 * C + c + e] = turn == 0 ? branch[c + e] : sums[2 * C + c + e] + branch[c + e];
                }
            }
        __syncthreads();
    }
    for (int c = warp * 32 + lane; c < kSums * C; c += kBackwardWarps * 32)
        partials[(size_t)blockIdx.x * kSums * C + c] = sums[c];
}

// The backward kernel's dynamic shared memory: the block's sums, and with a branch each
// warp's branch sums.
size_t backward_smem_bytes(int C, bool branch) {
    return (size_t)(branch ? 3 + kBackwardWarps : 2) * (size_t)C * sizeof(float);
}

int check_shape(const char *what, int T, int C, MnrlError *err) {
    if (T < 0 || C <= 0 || C > kMaxC)
        return mnrl_fail(err, "%s:%d: %s: bad shape T=%d C=%d (need T >= 0 and 0 < C <= %d); "
                         "this is a bug in the caller", __FILE__, __LINE__, what, T, C, kMaxC);
    return 0;
}

unsigned forward_blocks(int T) { return (unsigned)((T + kWarps - 1) / kWarps); }

unsigned backward_blocks(int T, bool branch) {
    const int needed = (T + kBackwardWarps - 1) / kBackwardWarps;
    const int most = branch ? kBranchBackwardBlocks : kBackwardBlocks;
    return (unsigned)(needed < most ? needed : most);
}

// The kernels' view of an ops.h dropout: apply the mask only when keep_prob < 1.
struct Drop {
    bool on;
    DropoutMask mask;
};

int make_drop(const char *what, const MnrlDropout *drop, Drop *out, MnrlError *err) {
    const float keep = drop ? drop->keep_prob : 1.0f;
    if (check_keep_prob(what, keep, err) != 0) return -1;
    *out = Drop{keep < 1.0f, keep < 1.0f ? dropout_mask(keep, drop->seed, drop->stream, drop->first) : DropoutMask{}};
    return 0;
}

template <class T>
int forward(const char *what, T *res, T *out, float *mean, float *rstd, const T *a, const T *b,
            const MnrlDropout *dropout, const T *weight, const T *bias, int Tn, int C, float eps,
            cudaStream_t stream, MnrlError *err) {
    Drop drop{};
    if (check_shape(what, Tn, C, err) != 0 || make_drop(what, dropout, &drop, err) != 0) return -1;
    if (Tn == 0) return 0;
    if (C % kVec<T> == 0 && aligned16(res, out, a, b, weight, bias))
        CUDA_LAUNCH(forward_blocks(Tn), dim3(32, kWarps), 0, stream, layernorm_forward_kernel<T, kVec<T>>)(
            res, out, mean, rstd, a, b, drop.on, drop.mask, weight, bias, Tn, C, eps);
    else
        CUDA_LAUNCH(forward_blocks(Tn), dim3(32, kWarps), 0, stream, layernorm_forward_kernel<T, 1>)(
            res, out, mean, rstd, a, b, drop.on, drop.mask, weight, bias, Tn, C, eps);
    CUDA_CHECK(cudaGetLastError(), err);
    return 0;
}

// What a backward launch writes besides dinp and the LayerNorm's own gradients.
template <class T>
struct Branch {
    T *dbranch;  // NULL: the plain backward
    float *dbias;
    Drop drop;
};

// 24 columns per lane cover BERT-base's C = 768 without spills (128 registers; 168 for the
// residual variant); the kMaxC = 1024 instance (32 per lane) spills a little.
template <class T, int V, bool BRANCH>
void launch_backward(unsigned blocks, size_t smem, cudaStream_t stream, T *dinp, const Branch<T> &br,
                     float *partials, const T *dout, const T *inp, const T *weight, const float *mean,
                     const float *rstd, int Tn, int C) {
    if (C <= 32 * 24)
        CUDA_LAUNCH(blocks, dim3(32, kBackwardWarps), smem, stream, layernorm_backward_kernel<T, V, 24, BRANCH>)(
            dinp, br.dbranch, partials, dout, inp, weight, mean, rstd, br.drop.on, br.drop.mask, Tn, C);
    else
        CUDA_LAUNCH(blocks, dim3(32, kBackwardWarps), smem, stream,
                    layernorm_backward_kernel<T, V, kMaxC / 32, BRANCH>)(
            dinp, br.dbranch, partials, dout, inp, weight, mean, rstd, br.drop.on, br.drop.mask, Tn, C);
}

template <class T, int V>
void launch_backward(unsigned blocks, size_t smem, cudaStream_t stream, T *dinp, const Branch<T> &br,
                     float *partials, const T *dout, const T *inp, const T *weight, const float *mean,
                     const float *rstd, int Tn, int C) {
    if (br.dbranch)
        launch_backward<T, V, true>(blocks, smem, stream, dinp, br, partials, dout, inp, weight, mean, rstd, Tn, C);
    else
        launch_backward<T, V, false>(blocks, smem, stream, dinp, br, partials, dout, inp, weight, mean, rstd, Tn, C);
}

template <class T>
int backward(const char *what, T *dinp, const Branch<T> &br, float *dweight, float *dbias, const T *dout,
             const T *inp, const T *weight, const float *mean, const float *rstd, int Tn, int C, void *workspace,
             cudaStream_t stream, MnrlError *err) {
    if (check_shape(what, Tn, C, err) != 0) return -1;
    if (Tn == 0) return 0;
    const unsigned blocks = backward_blocks(Tn, br.dbranch != NULL);
    float *partials = (float *)workspace;
    // With a branch the kernel always makes its bias sums; a NULL br.dbias leaves them unused.
    const ColumnSums sums = br.dbranch ? ColumnSums{{dweight, dbias, br.dbias}, 3} : ColumnSums{{dweight, dbias}, 2};
    const size_t smem = backward_smem_bytes(C, br.dbranch != NULL);
    if (C % kVec<T> == 0 && aligned16(dinp, br.dbranch, dout, inp, weight))
        launch_backward<T, kVec<T>>(blocks, smem, stream, dinp, br, partials, dout, inp, weight, mean, rstd, Tn, C);
    else
        launch_backward<T, 1>(blocks, smem, stream, dinp, br, partials, dout, inp, weight, mean, rstd, Tn, C);
    CUDA_CHECK(cudaGetLastError(), err);
    return add_partial_sums(sums, partials, (int)blocks, C, stream, err);
}

template <class T>
int residual_backward(const char *what, T *dres, T *dbranch, float *dbranch_bias, float *dweight, float *dbias,
                      const T *dout, const T *res, const T *weight, const float *mean, const float *rstd, int Tn,
                      int C, const MnrlDropout *dropout, void *workspace, cudaStream_t stream, MnrlError *err) {
    Branch<T> br{dbranch, dbranch_bias, {}};
    if (make_drop(what, dropout, &br.drop, err) != 0) return -1;
    if (!dbranch)
        return mnrl_fail(err, "%s:%d: %s: dbranch is NULL; this is a bug in the caller", __FILE__, __LINE__, what);
    return backward(what, dres, br, dweight, dbias, dout, res, weight, mean, rstd, Tn, C, workspace, stream, err);
}

}  // namespace

extern "C" size_t mnrl_cuda_layernorm_backward_workspace_bytes(int C) {
    return (size_t)3 * kBackwardBlocks * (size_t)C * sizeof(float);
}

extern "C" int mnrl_cuda_layernorm_forward_f32(float *out, float *mean, float *rstd, const float *inp,
                                               const float *weight, const float *bias, int T, int C,
                                               float eps, cudaStream_t stream, MnrlError *err) {
    return forward<float>("layernorm_forward_f32", NULL, out, mean, rstd, inp, NULL, NULL, weight, bias, T, C,
                          eps, stream, err);
}

extern "C" int mnrl_cuda_layernorm_forward_bf16(mnrl_bf16 *out, float *mean, float *rstd, const mnrl_bf16 *inp,
                                                const mnrl_bf16 *weight, const mnrl_bf16 *bias, int T, int C,
                                                float eps, cudaStream_t stream, MnrlError *err) {
    return forward<__nv_bfloat16>("layernorm_forward_bf16", NULL, out, mean, rstd, inp, NULL, NULL, weight, bias,
                                  T, C, eps, stream, err);
}

extern "C" int mnrl_cuda_residual_layernorm_forward_f32(float *res, float *out, float *mean, float *rstd,
                                                        const float *a, const float *b, const MnrlDropout *drop,
                                                        const float *weight, const float *bias, int T, int C,
                                                        float eps, cudaStream_t stream, MnrlError *err) {
    return forward("residual_layernorm_forward_f32", res, out, mean, rstd, a, b, drop, weight, bias, T, C, eps,
                   stream, err);
}

extern "C" int mnrl_cuda_residual_layernorm_forward_bf16(mnrl_bf16 *res, mnrl_bf16 *out, float *mean,
                                                         float *rstd, const mnrl_bf16 *a, const mnrl_bf16 *b,
                                                         const MnrlDropout *drop, const mnrl_bf16 *weight,
                                                         const mnrl_bf16 *bias, int T, int C, float eps,
                                                         cudaStream_t stream, MnrlError *err) {
    return forward("residual_layernorm_forward_bf16", res, out, mean, rstd, a, b, drop, weight, bias, T, C, eps,
                   stream, err);
}

extern "C" int mnrl_cuda_layernorm_backward_f32(float *dinp, float *dweight, float *dbias, const float *dout,
                                                const float *inp, const float *weight, const float *mean,
                                                const float *rstd, int T, int C, void *workspace,
                                                cudaStream_t stream, MnrlError *err) {
    return backward("layernorm_backward_f32", dinp, Branch<float>{}, dweight, dbias, dout, inp, weight, mean, rstd,
                    T, C, workspace, stream, err);
}

extern "C" int mnrl_cuda_layernorm_backward_bf16(mnrl_bf16 *dinp, float *dweight, float *dbias,
                                                 const mnrl_bf16 *dout, const mnrl_bf16 *inp,
                                                 const mnrl_bf16 *weight, const float *mean, const float *rstd,
                                                 int T, int C, void *workspace, cudaStream_t stream,
                                                 MnrlError *err) {
    return backward("layernorm_backward_bf16", dinp, Branch<__nv_bfloat16>{}, dweight, dbias, dout, inp, weight,
                    mean, rstd, T, C, workspace, stream, err);
}

extern "C" int mnrl_cuda_residual_layernorm_backward_f32(float *dres, float *dbranch, float *dbranch_bias,
                                                         float *dweight, float *dbias, const float *dout,
                                                         const float *res, const float *weight, const float *mean,
                                                         const float *rstd, int T, int C, const MnrlDropout *drop,
                                                         void *workspace, cudaStream_t stream, MnrlError *err) {
    return residual_backward("residual_layernorm_backward_f32", dres, dbranch, dbranch_bias, dweight, dbias, dout,
                             res, weight, mean, rstd, T, C, drop, workspace, stream, err);
}

extern "C" int mnrl_cuda_residual_layernorm_backward_bf16(mnrl_bf16 *dres, mnrl_bf16 *dbranch, float *dbranch_bias,
                                                          float *dweight, float *dbias, const mnrl_bf16 *dout,
                                                          const mnrl_bf16 *res, const mnrl_bf16 *weight,
                                                          const float *mean, const float *rstd, int T, int C,
                                                          const MnrlDropout *drop, void *workspace,
                                                          cudaStream_t stream, MnrlError *err) {
    return residual_backward("residual_layernorm_backward_bf16", dres, dbranch, dbranch_bias, dweight, dbias, dout,
                             res, weight, mean, rstd, T, C, drop, workspace, stream, err);
}
