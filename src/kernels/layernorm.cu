// layernorm.cu — LayerNorm forward (plain, and fused with the post-LN residual add) and
// backward, for fp32 and bf16 activations with fp32 statistics and fp32 accumulation.
// CPU ops it must match: ops_cpu()->layernorm_forward / residual_layernorm_forward /
// layernorm_backward (ops.h): biased variance, rstd = 1 / sqrt(var + eps), mean and rstd
// saved as fp32 [T] for backward.
//
// Forward: one warp per row, lanes over columns (C <= kMaxC). The row is read three times
// — the mean, the centred sum of squares (two passes as on the CPU, so no E[x²] - mean²
// cancellation), the output — the repeats from L1. The residual variant writes
// res = a + b in the act dtype and normalises res as stored (rounded, on bf16), which is
// exactly the input that backward is given.
//
// Backward: dinp per row as on the CPU, dx = rstd·(g - mean(g) - x̂·mean(g·x̂)) with
// g = dout·weight, one warp per row. The weight and bias gradients are column sums over
// all rows, fused into the same pass without float atomics: a grid of at most
// kBackwardBlocks blocks takes the rows in a fixed assignment (row = global warp index +
// i·all warps); each warp adds its rows' dout·x̂ and dout into its own slice of shared
// memory (lane-owned columns, fp32); the block then adds its warps' slices in warp order
// into one fp32 partial per column in the workspace, and add_partial_sums
// (kernel_util.cuh) adds the blocks' partials in fp64 in block order. The grid depends
// on T only, so the result is the same on every run and device.
#include <cuda_bf16.h>

#include "mnrl/cuda_launch.h"
#include "mnrl/kernels.h"
#include "kernel_util.cuh"

namespace {

const int kWarps = 4;              // rows in flight per block
const int kMaxC = 1024;            // backward shared memory: kWarps·2·kMaxC fp32 = 32 KiB
const int kBackwardBlocks = 256;   // at most this many partials per column

// Normalises row `row` of inp (or of res = a + b when b is given, writing res first).
template <class T>
__global__ void __launch_bounds__(kWarps * 32)
    layernorm_forward_kernel(T *res, T *out, float *mean, float *rstd, const T *a, const T *b,
                             const T *weight, const T *bias, int rows, int C, float eps) {
    const int row = blockIdx.x * kWarps + threadIdx.y, lane = threadIdx.x;
    if (row >= rows) return;  // whole warps leave: there is no block barrier below
    const size_t off = (size_t)row * C;
    float sum = 0.0f;
    if (b) {
        for (int c = lane; c < C; c += 32) {
            const T r = from_f32<T>(to_f32(a[off + c]) + to_f32(b[off + c]));
            res[off + c] = r;
            sum += to_f32(r);
        }
    } else {
        for (int c = lane; c < C; c += 32) sum += to_f32(a[off + c]);
    }
    const T *x = (b ? res : a) + off;
    const float mu = warp_sum(sum) / (float)C;
    float sq = 0.0f;
    for (int c = lane; c < C; c += 32) {
        const float d = to_f32(x[c]) - mu;
        sq += d * d;
    }
    const float r = 1.0f / sqrtf(warp_sum(sq) / (float)C + eps);
    for (int c = lane; c < C; c += 32)
        store(&out[off + c], (to_f32(x[c]) - mu) * r * to_f32(weight[c]) + to_f32(bias[c]));
    if (lane == 0) {
        mean[row] = mu;
        rstd[row] = r;
    }
}

// dinp rows, and partials[blockIdx.x][c] (dweight) and partials[gridDim.x + blockIdx.x][c]
// (dbias) over this block's rows. Dynamic shared memory: fp32 [kWarps][2][C].
template <class T>
__global__ void __launch_bounds__(kWarps * 32)
    layernorm_backward_kernel(T *dinp, float *partials, const T *dout, const T *inp, const T *weight,
                              const float *mean, const float *rstd, int rows, int C) {
    const int lane = threadIdx.x;
    float *slices = (float *)mnrl_dyn_smem;
    float *dw = slices + (size_t)threadIdx.y * 2 * C, *db = dw + C;
    for (int c = lane; c < C; c += 32) dw[c] = db[c] = 0.0f;
    for (int row = blockIdx.x * kWarps + threadIdx.y; row < rows; row += gridDim.x * kWarps) {
        const size_t off = (size_t)row * C;
        const float mu = mean[row], r = rstd[row];
        float g_sum = 0.0f, gx_sum = 0.0f;
        for (int c = lane; c < C; c += 32) {
            const float xhat = (to_f32(inp[off + c]) - mu) * r;
            const float g = to_f32(dout[off + c]) * to_f32(weight[c]);
            g_sum += g;
            gx_sum += g * xhat;
        }
        const float g_mean = warp_sum(g_sum) / (float)C, gx_mean = warp_sum(gx_sum) / (float)C;
        for (int c = lane; c < C; c += 32) {
            const float xhat = (to_f32(inp[off + c]) - mu) * r;
            const float d = to_f32(dout[off + c]);
            store(&dinp[off + c], r * (d * to_f32(weight[c]) - g_mean - xhat * gx_mean));
            dw[c] += d * xhat;
            db[c] += d;
        }
    }
    __syncthreads();
    for (int c = threadIdx.y * 32 + lane; c < C; c += kWarps * 32) {
        float w_total = 0.0f, b_total = 0.0f;
        for (int w = 0; w < kWarps; w++) {
            w_total += slices[(size_t)w * 2 * C + c];
            b_total += slices[(size_t)w * 2 * C + C + c];
        }
        partials[(size_t)blockIdx.x * C + c] = w_total;
        partials[(size_t)(gridDim.x + blockIdx.x) * C + c] = b_total;
    }
}

int check_shape(const char *what, int T, int C, MnrlError *err) {
    if (T < 0 || C <= 0 || C > kMaxC)
        return mnrl_fail(err, "%s:%d: %s: bad shape T=%d C=%d (need T >= 0 and 0 < C <= %d); "
                         "this is a bug in the caller", __FILE__, __LINE__, what, T, C, kMaxC);
    return 0;
}

unsigned forward_blocks(int T) { return (unsigned)((T + kWarps - 1) / kWarps); }

int backward_blocks(int T) {
    const int needed = (T + kWarps - 1) / kWarps;
    return needed < kBackwardBlocks ? needed : kBackwardBlocks;
}

template <class T>
int forward(const char *what, T *res, T *out, float *mean, float *rstd, const T *a, const T *b,
            const T *weight, const T *bias, int Tn, int C, float eps, cudaStream_t stream, MnrlError *err) {
    if (check_shape(what, Tn, C, err) != 0) return -1;
    if (Tn == 0) return 0;
    CUDA_LAUNCH(forward_blocks(Tn), dim3(32, kWarps), 0, stream, layernorm_forward_kernel<T>)(
        res, out, mean, rstd, a, b, weight, bias, Tn, C, eps);
    CUDA_CHECK(cudaGetLastError(), err);
    return 0;
}

template <class T>
int backward(const char *what, T *dinp, float *dweight, float *dbias, const T *dout, const T *inp,
             const T *weight, const float *mean, const float *rstd, int Tn, int C, void *workspace,
             cudaStream_t stream, MnrlError *err) {
    if (check_shape(what, Tn, C, err) != 0) return -1;
    if (Tn == 0) return 0;
    const int blocks = backward_blocks(Tn);
    float *partials = (float *)workspace;
    const size_t smem = (size_t)kWarps * 2 * C * sizeof(float);
    CUDA_LAUNCH(blocks, dim3(32, kWarps), smem, stream, layernorm_backward_kernel<T>)(
        dinp, partials, dout, inp, weight, mean, rstd, Tn, C);
    CUDA_CHECK(cudaGetLastError(), err);
    if (add_partial_sums(dweight, partials, blocks, C, stream, err) != 0) return -1;
    return add_partial_sums(dbias, partials + (size_t)blocks * C, blocks, C, stream, err);
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
