// attention.cu — scaled dot-product self-attention over packed variable-length sentences
// (cu_seqlens; a sentence attends to its own tokens only), forward and backward, fp32 and
// bf16 activations, fp32 softmax and accumulation.
// CPU ops it must match: ops_cpu()->attention_forward / attention_backward (ops.h),
// including the attention-probability dropout: element (query token t, head h, key j) is
// e = (t·NH + h)·max_seqlen + j of the rng.h stream (seed, rng_stream).
//
// Saved state (flash-attention style, what ops.h's attention_saved_bytes lets a backend
// choose): forward saves only the log-sum-exp of every softmax row, fp32 [T, NH] at
// t·NH + h (mnrl_cuda_attention_saved_bytes), and backward recomputes the probabilities
// P_ij = exp(q_i·k_j·scale - lse_i) tile by tile. Memory per layer is T·NH floats instead
// of the CPU's T·NH·max_seqlen.
//
// Work split: one thread per row (query row in forward and dQ, key row in dK/dV), its
// q / o / gradient vectors in registers (head size HS a template parameter: 16, 32, 64 or
// 128); the other side's rows stream through shared memory in tiles of blockDim rows,
// stored in the act dtype (the exact values; arithmetic is fp32). Two block shapes:
//  - short sentences (<= kShortMax = 128 tokens, all of NLI): one block per
//    (sentence, head) with blockDim >= the sentence, so the whole sentence's K/V (forward,
//    dQ) or Q/dO (dK/dV) of that head sits in shared memory at once, loaded once;
//  - longer sentences: blocks of kTile = 64 rows per (sentence, head, row tile), the keys
//    (or queries) streamed in tiles of 64 with an online softmax (running max and sum,
//    the accumulator rescaled when the max grows), as flash attention.
// Both shapes run the same kernels; a block takes the sentences of its shape and skips
// the others (the tiled grid strides over (sentence, tile) items, so short sentences cost
// it only an index check).
//
// Backward: O = (P∘M)V with M the dropout multipliers gives dV = (P∘M)^T dO,
// dP = (dO V^T)∘M, dS = P∘(dP - D)·scale with D_i = dO_i·O_i, dQ = dS K, dK = dS^T Q.
// Two kernels, each thread owning the rows it writes (no atomics, fixed order):
// attention_dq_kernel (thread per query: D_i into the workspace, then dQ_i) and
// attention_dkdv_kernel (thread per key: dK_j, dV_j, reading D and lse). Both recompute
// scores and dP; dK/dV draws one Philox block per (query, key) when dropout is on.
#include <cuda_bf16.h>

#include "mnrl/cuda_launch.h"
#include "mnrl/kernels.h"
#include "mnrl/rng.h"
#include "kernel_util.cuh"

namespace {

const int kShortMax = 128;     // longest sentence of the one-block-per-(sentence, head) path
const int kTile = 64;          // rows per block and per shared-memory tile of the long path
const int kMaxTiledGrid = 65535;

// Dropout multiplier (0 or 1/keep_prob) of element e, reusing the Philox block of the
// previous call when e falls in it (forward and dQ walk consecutive keys).
struct DropoutMask {
    uint64_t seed, rng_stream, block_index;
    MnrlPhilox4 block;
    float keep_prob, keep_scale;

    __device__ DropoutMask(uint64_t seed_, uint64_t rng_stream_, float keep_prob_)
        : seed(seed_), rng_stream(rng_stream_), block_index(~0ull), block(), keep_prob(keep_prob_),
          keep_scale(1.0f / keep_prob_) {}

    __device__ float at(uint64_t e) {
        if (keep_prob >= 1.0f) return 1.0f;
        if ((e >> 2) != block_index) {
            block_index = e >> 2;
            block = mnrl_rng_block(seed, rng_stream, block_index);
        }
        return mnrl_rng_uniform(block.v[e & 3]) < keep_prob ? keep_scale : 0.0f;
    }
};

struct DropoutArgs {
    float keep_prob;
    uint64_t seed, rng_stream;
};

// What every kernel needs to find its rows: the packed layout and the block's shape.
struct Layout {
    const int32_t *cu_seqlens;
    int S, C, NH, max_seqlen;
    int tiled;           // 0: sentences <= kShortMax, one block each; 1: longer ones, in tiles
    int tiles_per_seq;   // row tiles per sentence (1 on the short path)
    float scale;         // 1 / sqrt(HS)
};

// The (sentence, row tile) item w of this block's shape, or false when w is not one.
struct RowTile {
    int start, len, row0;
};

__device__ bool row_tile(const Layout &L, int w, RowTile *rt) {
    const int s = w / L.tiles_per_seq, tile = w % L.tiles_per_seq;
    rt->start = L.cu_seqlens[s];
    rt->len = L.cu_seqlens[s + 1] - rt->start;
    rt->row0 = tile * (int)blockDim.x;
    if (L.tiled) return rt->len > kShortMax && rt->row0 < rt->len;
    return rt->len <= kShortMax;
}

// Copies rows [r0, r0 + n) of one head's column block (offset col) of a [*, ld] tensor into
// shared memory [n][HS], consecutive threads on consecutive columns (coalesced).
template <class T, int HS>
__device__ void load_rows(T *dst, const T *src, int ld, int col, int r0, int n) {
    for (int idx = threadIdx.x; idx < n * HS; idx += blockDim.x)
        dst[idx] = src[(size_t)(r0 + idx / HS) * ld + col + idx % HS];
}

template <class T, int HS>
__device__ void load_vector(float *dst, const T *src) {
    for (int d = 0; d < HS; d++) dst[d] = to_f32(src[d]);
}

template <class T, int HS>
__device__ float dot(const float *x, const T *y) {
    float acc = 0.0f;
    for (int d = 0; d < HS; d++) acc += x[d] * to_f32(y[d]);
    return acc;
}

template <class T, int HS>
__device__ void axpy(float *y, float a, const T *x) {
    for (int d = 0; d < HS; d++) y[d] += a * to_f32(x[d]);
}

// Dropout element of (query token t, head h, key j) per ops.h.
__device__ uint64_t dropout_element(const Layout &L, int t, int h, int j) {
    return ((uint64_t)t * L.NH + h) * (uint64_t)L.max_seqlen + j;
}

// Forward: thread r of the block is query row0 + r; keys stream through shared memory.
template <class T, int HS>
__global__ void attention_forward_kernel(Layout L, DropoutArgs drop, T *out, float *lse, const T *qkv) {
    T *k_tile = reinterpret_cast<T *>(mnrl_dyn_smem);
    T *v_tile = k_tile + blockDim.x * HS;
    const int h = blockIdx.y, C3 = 3 * L.C, items = L.S * L.tiles_per_seq;
    for (int w = blockIdx.x; w < items; w += gridDim.x) {
        RowTile rt;
        if (!row_tile(L, w, &rt)) continue;  // the same for the whole block
        const int i = rt.row0 + (int)threadIdx.x, t = rt.start + i;
        const bool active = i < rt.len;
        float q[HS], o[HS];
        if (active) load_vector<T, HS>(q, qkv + (size_t)t * C3 + h * HS);
        for (int d = 0; d < HS; d++) o[d] = 0.0f;
        float m = -INFINITY, l = 0.0f;
        DropoutMask mask(drop.seed, drop.rng_stream, drop.keep_prob);
        for (int k0 = 0; k0 < rt.len; k0 += blockDim.x) {
            const int n = min((int)blockDim.x, rt.len - k0);
            __syncthreads();  // the previous tile is consumed
            load_rows<T, HS>(k_tile, qkv, C3, L.C + h * HS, rt.start + k0, n);
            load_rows<T, HS>(v_tile, qkv, C3, 2 * L.C + h * HS, rt.start + k0, n);
            __syncthreads();
            if (!active) continue;
            for (int j = 0; j < n; j++) {
                const float s = dot<T, HS>(q, k_tile + j * HS) * L.scale;
                if (s > m) {  // online softmax: rescale what was summed under the old max
                    const float correction = expf(m - s);
                    l *= correction;
                    for (int d = 0; d < HS; d++) o[d] *= correction;
                    m = s;
                }
                const float p = expf(s - m);
                l += p;
                const float weight = p * mask.at(dropout_element(L, t, h, k0 + j));
                if (weight != 0.0f) axpy<T, HS>(o, weight, v_tile + j * HS);
            }
        }
        if (active) {
            const float inv = 1.0f / l;
            T *dst = out + (size_t)t * L.C + h * HS;
            for (int d = 0; d < HS; d++) store(&dst[d], o[d] * inv);
            lse[(size_t)t * L.NH + h] = m + logf(l);
        }
    }
}

// Backward, query side: D_i = dO_i·O_i (to the workspace, for the key side) and
// dQ_i = Σ_j dS_ij k_j, thread per query, keys streamed.
template <class T, int HS>
__global__ void attention_dq_kernel(Layout L, DropoutArgs drop, T *dqkv, float *dsum, const T *dout,
                                    const T *qkv, const T *out, const float *lse) {
    T *k_tile = reinterpret_cast<T *>(mnrl_dyn_smem);
    T *v_tile = k_tile + blockDim.x * HS;
    const int h = blockIdx.y, C3 = 3 * L.C, items = L.S * L.tiles_per_seq;
    for (int w = blockIdx.x; w < items; w += gridDim.x) {
        RowTile rt;
        if (!row_tile(L, w, &rt)) continue;
        const int i = rt.row0 + (int)threadIdx.x, t = rt.start + i;
        const bool active = i < rt.len;
        float q[HS], d_o[HS], dq[HS];
        float D = 0.0f, row_lse = 0.0f;
        if (active) {
            load_vector<T, HS>(q, qkv + (size_t)t * C3 + h * HS);
            load_vector<T, HS>(d_o, dout + (size_t)t * L.C + h * HS);
            D = dot<T, HS>(d_o, out + (size_t)t * L.C + h * HS);
            dsum[(size_t)t * L.NH + h] = D;
            row_lse = lse[(size_t)t * L.NH + h];
        }
        for (int d = 0; d < HS; d++) dq[d] = 0.0f;
        DropoutMask mask(drop.seed, drop.rng_stream, drop.keep_prob);
        for (int k0 = 0; k0 < rt.len; k0 += blockDim.x) {
            const int n = min((int)blockDim.x, rt.len - k0);
            __syncthreads();
            load_rows<T, HS>(k_tile, qkv, C3, L.C + h * HS, rt.start + k0, n);
            load_rows<T, HS>(v_tile, qkv, C3, 2 * L.C + h * HS, rt.start + k0, n);
            __syncthreads();
            if (!active) continue;
            for (int j = 0; j < n; j++) {
                const float p = expf(dot<T, HS>(q, k_tile + j * HS) * L.scale - row_lse);
                const float keep = mask.at(dropout_element(L, t, h, k0 + j));
                const float dp = keep != 0.0f ? dot<T, HS>(d_o, v_tile + j * HS) * keep : 0.0f;
                axpy<T, HS>(dq, p * (dp - D) * L.scale, k_tile + j * HS);
            }
        }
        if (active) {
            T *dst = dqkv + (size_t)t * C3 + h * HS;
            for (int d = 0; d < HS; d++) store(&dst[d], dq[d]);
        }
    }
}

// Backward, key side: thread per key j, queries (with their dO, lse and D) streamed:
// dK_j = Σ_i dS_ij q_i, dV_j = Σ_i P_ij M_ij dO_i.
template <class T, int HS>
__global__ void attention_dkdv_kernel(Layout L, DropoutArgs drop, T *dqkv, const float *dsum,
                                      const T *dout, const T *qkv, const float *lse) {
    T *q_tile = reinterpret_cast<T *>(mnrl_dyn_smem);
    T *do_tile = q_tile + blockDim.x * HS;
    float *lse_tile = reinterpret_cast<float *>(do_tile + blockDim.x * HS);
    float *d_tile = lse_tile + blockDim.x;
    const int h = blockIdx.y, C3 = 3 * L.C, items = L.S * L.tiles_per_seq;
    for (int w = blockIdx.x; w < items; w += gridDim.x) {
        RowTile rt;
        if (!row_tile(L, w, &rt)) continue;
        const int j = rt.row0 + (int)threadIdx.x, tj = rt.start + j;
        const bool active = j < rt.len;
        float k[HS], v[HS], dk[HS], dv[HS];
        if (active) {
            load_vector<T, HS>(k, qkv + (size_t)tj * C3 + L.C + h * HS);
            load_vector<T, HS>(v, qkv + (size_t)tj * C3 + 2 * L.C + h * HS);
        }
        for (int d = 0; d < HS; d++) dk[d] = dv[d] = 0.0f;
        DropoutMask mask(drop.seed, drop.rng_stream, drop.keep_prob);
        for (int i0 = 0; i0 < rt.len; i0 += blockDim.x) {
            const int n = min((int)blockDim.x, rt.len - i0);
            __syncthreads();
            load_rows<T, HS>(q_tile, qkv, C3, h * HS, rt.start + i0, n);
            load_rows<T, HS>(do_tile, dout, L.C, h * HS, rt.start + i0, n);
            if ((int)threadIdx.x < n) {
                const size_t row = (size_t)(rt.start + i0 + threadIdx.x) * L.NH + h;
                lse_tile[threadIdx.x] = lse[row];
                d_tile[threadIdx.x] = dsum[row];
            }
            __syncthreads();
            if (!active) continue;
            for (int i = 0; i < n; i++) {
                const float p = expf(dot<T, HS>(k, q_tile + i * HS) * L.scale - lse_tile[i]);
                const float keep = mask.at(dropout_element(L, rt.start + i0 + i, h, j));
                const float dp = keep != 0.0f ? dot<T, HS>(v, do_tile + i * HS) * keep : 0.0f;
                axpy<T, HS>(dk, p * (dp - d_tile[i]) * L.scale, q_tile + i * HS);
                if (keep != 0.0f) axpy<T, HS>(dv, p * keep, do_tile + i * HS);
            }
        }
        if (active) {
            T *dst = dqkv + (size_t)tj * C3 + L.C + h * HS;
            for (int d = 0; d < HS; d++) {
                store(&dst[d], dk[d]);
                store(&dst[L.C + d], dv[d]);
            }
        }
    }
}

// The two block shapes of a call: short (rows = blockDim = the longest short sentence
// rounded up to a warp) and, when max_seqlen says a sentence may be longer, tiled.
struct Shape {
    int threads, tiles_per_seq, blocks;
};

Shape short_shape(int S, int max_seqlen) {
    const int rows = max_seqlen < kShortMax ? max_seqlen : kShortMax;
    return Shape{(rows + 31) / 32 * 32, 1, S};
}

Shape tiled_shape(int S, int max_seqlen) {
    const int tiles = (max_seqlen + kTile - 1) / kTile;
    const long items = (long)S * tiles;
    return Shape{kTile, tiles, (int)(items < kMaxTiledGrid ? items : kMaxTiledGrid)};
}

int check_args(const char *what, int S, int T, int max_seqlen, int C, int NH, float keep_prob, MnrlError *err) {
    if (S < 0 || T < 0 || max_seqlen < 1 || C <= 0 || NH <= 0 || C % NH != 0 || NH > 65535)
        return mnrl_fail(err, "%s:%d: %s: bad shape S=%d T=%d max_seqlen=%d C=%d NH=%d (need S, T >= 0, "
                         "max_seqlen >= 1, C a positive multiple of NH); this is a bug in the caller",
                         __FILE__, __LINE__, what, S, T, max_seqlen, C, NH);
    const int HS = C / NH;
    if (HS != 16 && HS != 32 && HS != 64 && HS != 128)
        return mnrl_fail(err, "%s:%d: %s: head size %d (hidden %d / %d heads) is not supported by the CUDA "
                         "attention kernels (16, 32, 64 or 128); use the CPU backend for this model",
                         __FILE__, __LINE__, what, HS, C, NH);
    if (!(keep_prob > 0.0f && keep_prob <= 1.0f))
        return mnrl_fail(err, "%s:%d: %s: keep_prob %g is outside (0, 1]; this is a bug in the caller",
                         __FILE__, __LINE__, what, (double)keep_prob);
    return 0;
}

Layout make_layout(const int32_t *cu_seqlens, int S, int C, int NH, int max_seqlen, int tiled,
                   const Shape &shape) {
    return Layout{cu_seqlens, S, C, NH, max_seqlen, tiled, shape.tiles_per_seq,
                  1.0f / sqrtf((float)(C / NH))};
}

// Launches kernel(L, drop, args...) on the short shape and, when a sentence may be longer
// than kShortMax, on the tiled shape; shared memory is smem_per_row bytes per block row,
// the limit raised where that exceeds the default 48 KiB.
template <class... Params, class... Args>
int launch_shapes(void (*kernel)(Layout, DropoutArgs, Params...), size_t smem_per_row,
                  const int32_t *cu_seqlens, int S, int C, int NH, int max_seqlen, DropoutArgs drop,
                  cudaStream_t stream, MnrlError *err, Args... args) {
    if (S == 0) return 0;
    for (int tiled = 0; tiled <= (max_seqlen > kShortMax); tiled++) {
        const Shape shape = tiled ? tiled_shape(S, max_seqlen) : short_shape(S, max_seqlen);
        const size_t smem = smem_per_row * (size_t)shape.threads;
        if (smem > 48 * 1024)
            CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem), err);
        const Layout L = make_layout(cu_seqlens, S, C, NH, max_seqlen, tiled, shape);
        CUDA_LAUNCH(dim3((unsigned)shape.blocks, (unsigned)NH), shape.threads, smem, stream, kernel)(L, drop, args...);
        CUDA_CHECK(cudaGetLastError(), err);
    }
    return 0;
}

template <class T, int HS>
int forward_hs(T *out, float *lse, const T *qkv, const int32_t *cu_seqlens, int S, int max_seqlen, int C,
               int NH, DropoutArgs drop, cudaStream_t stream, MnrlError *err) {
    return launch_shapes(attention_forward_kernel<T, HS>, 2 * HS * sizeof(T), cu_seqlens, S, C, NH, max_seqlen,
                         drop, stream, err, out, lse, qkv);
}

template <class T, int HS>
int backward_hs(T *dqkv, const T *dout, const T *qkv, const T *out, const float *lse, const int32_t *cu_seqlens,
                int S, int max_seqlen, int C, int NH, DropoutArgs drop, float *dsum, cudaStream_t stream,
                MnrlError *err) {
    if (launch_shapes(attention_dq_kernel<T, HS>, 2 * HS * sizeof(T), cu_seqlens, S, C, NH, max_seqlen, drop,
                      stream, err, dqkv, dsum, dout, qkv, out, lse) != 0)
        return -1;
    return launch_shapes(attention_dkdv_kernel<T, HS>, 2 * HS * sizeof(T) + 2 * sizeof(float), cu_seqlens, S, C,
                         NH, max_seqlen, drop, stream, err, dqkv, (const float *)dsum, dout, qkv, lse);
}

template <class T>
int forward(const char *what, T *out, float *lse, const T *qkv, const int32_t *cu_seqlens, int S, int tokens, int max_seqlen,
            int C, int NH, float keep_prob, uint64_t seed, uint64_t rng_stream, cudaStream_t stream, MnrlError *err) {
    if (check_args(what, S, tokens, max_seqlen, C, NH, keep_prob, err) != 0) return -1;
    const DropoutArgs drop{keep_prob, seed, rng_stream};
    switch (C / NH) {
        case 16: return forward_hs<T, 16>(out, lse, qkv, cu_seqlens, S, max_seqlen, C, NH, drop, stream, err);
        case 32: return forward_hs<T, 32>(out, lse, qkv, cu_seqlens, S, max_seqlen, C, NH, drop, stream, err);
        case 64: return forward_hs<T, 64>(out, lse, qkv, cu_seqlens, S, max_seqlen, C, NH, drop, stream, err);
        default: return forward_hs<T, 128>(out, lse, qkv, cu_seqlens, S, max_seqlen, C, NH, drop, stream, err);
    }
}

template <class T>
int backward(const char *what, T *dqkv, const T *dout, const T *qkv, const T *out, const float *lse,
             const int32_t *cu_seqlens, int S, int tokens, int max_seqlen, int C, int NH, float keep_prob, uint64_t seed,
             uint64_t rng_stream, void *workspace, cudaStream_t stream, MnrlError *err) {
    if (check_args(what, S, tokens, max_seqlen, C, NH, keep_prob, err) != 0) return -1;
    const DropoutArgs drop{keep_prob, seed, rng_stream};
    float *dsum = static_cast<float *>(workspace);
    switch (C / NH) {
        case 16: return backward_hs<T, 16>(dqkv, dout, qkv, out, lse, cu_seqlens, S, max_seqlen, C, NH, drop, dsum, stream, err);
        case 32: return backward_hs<T, 32>(dqkv, dout, qkv, out, lse, cu_seqlens, S, max_seqlen, C, NH, drop, dsum, stream, err);
        case 64: return backward_hs<T, 64>(dqkv, dout, qkv, out, lse, cu_seqlens, S, max_seqlen, C, NH, drop, dsum, stream, err);
        default: return backward_hs<T, 128>(dqkv, dout, qkv, out, lse, cu_seqlens, S, max_seqlen, C, NH, drop, dsum, stream, err);
    }
}

}  // namespace

extern "C" size_t mnrl_cuda_attention_saved_bytes(int T, int NH) { return sizeof(float) * (size_t)T * (size_t)NH; }

extern "C" size_t mnrl_cuda_attention_backward_workspace_bytes(int T, int NH) {
    return sizeof(float) * (size_t)T * (size_t)NH;
}

extern "C" int mnrl_cuda_attention_forward_f32(float *out, float *saved, const float *qkv, const int32_t *cu_seqlens,
                                               int S, int T, int max_seqlen, int C, int NH, float keep_prob,
                                               uint64_t seed, uint64_t rng_stream, cudaStream_t stream,
                                               MnrlError *err) {
    return forward("attention_forward_f32", out, saved, qkv, cu_seqlens, S, T, max_seqlen, C, NH, keep_prob, seed,
                   rng_stream, stream, err);
}

extern "C" int mnrl_cuda_attention_forward_bf16(mnrl_bf16 *out, float *saved, const mnrl_bf16 *qkv,
                                                const int32_t *cu_seqlens, int S, int T, int max_seqlen, int C,
                                                int NH, float keep_prob, uint64_t seed, uint64_t rng_stream,
                                                cudaStream_t stream, MnrlError *err) {
    return forward("attention_forward_bf16", out, saved, qkv, cu_seqlens, S, T, max_seqlen, C, NH, keep_prob, seed,
                   rng_stream, stream, err);
}

extern "C" int mnrl_cuda_attention_backward_f32(float *dqkv, const float *dout, const float *qkv, const float *out,
                                                const float *saved, const int32_t *cu_seqlens, int S, int T,
                                                int max_seqlen, int C, int NH, float keep_prob, uint64_t seed,
                                                uint64_t rng_stream, void *workspace, cudaStream_t stream,
                                                MnrlError *err) {
    return backward("attention_backward_f32", dqkv, dout, qkv, out, saved, cu_seqlens, S, T, max_seqlen, C, NH,
                    keep_prob, seed, rng_stream, workspace, stream, err);
}

extern "C" int mnrl_cuda_attention_backward_bf16(mnrl_bf16 *dqkv, const mnrl_bf16 *dout, const mnrl_bf16 *qkv,
                                                 const mnrl_bf16 *out, const float *saved, const int32_t *cu_seqlens,
                                                 int S, int T, int max_seqlen, int C, int NH, float keep_prob,
                                                 uint64_t seed, uint64_t rng_stream, void *workspace,
                                                 cudaStream_t stream, MnrlError *err) {
    return backward("attention_backward_bf16", dqkv, dout, qkv, out, saved, cu_seqlens, S, T, max_seqlen, C, NH,
                    keep_prob, seed, rng_stream, workspace, stream, err);
}
