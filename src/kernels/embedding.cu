// embedding.cu — BERT input embeddings over packed sentences, forward and backward, for
// fp32 and bf16 activations with fp32 accumulation.
// CPU op it must match: ops_cpu()->embedding_forward / embedding_backward (ops.h):
//   out[t] = wte[ids[t]] + wpe[t - cu_seqlens[s]] + wtt[0] (token type 0 everywhere), and
//   the three tables' gradients accumulated in token order.
//
// Forward: one block per (sentence, kCols columns), as in pooling.cu: positions restart in
// every sentence, so a block knows each token's position without a search. The three
// rows are added in the CPU's order, so fp32 results are the CPU's bit for bit.
//
// Backward, deterministic and without float atomics:
//  - dwte and dwpe are scatter-adds of token rows into table rows, where many tokens share
//    a row ([CLS], [SEP], frequent words, position 0). Atomics would add those in a
//    scheduling-dependent order. Instead the table rows are dealt into kBuckets buckets
//    (row % kBuckets), one block per bucket and kScatterThreads columns: the block walks
//    the tokens in order in chunks of kChunk, picks the tokens whose row is in its bucket
//    (ballots and prefix counts keep them in token order), and adds each picked token's
//    gradient to its table row, one column per thread. Every table element is thus
//    updated by one thread, in token order: the CPU's order, so the fp32 sums are the
//    CPU's bit for bit. The running sum of the current row stays in a register and goes
//    back to memory only when the bucket's next token has another row: a hot row
//    ([CLS] in every sentence) costs one read and one write, not a dependent read-modify-
//    write through L2 per token (the first version's, 1.1 ms per batch-128 step on an
//    H200). The gradient values are loaded kAhead tokens at a time, so their latency
//    overlaps. Every block reads all T ids (from L2). The positions are first written to
//    the workspace (one int32 per token), so the same kernel serves wpe.
//  - dwtt (every token adds to row 0) is a column sum: kSumBlocks blocks leave fp32
//    partial sums over fixed token ranges in the workspace, and add_partial_sums
//    (kernel_util.cuh) adds them in fp64 in a fixed order.
#include <cuda_bf16.h>

#include "mnrl/cuda_launch.h"
#include "mnrl/kernels.h"
#include "kernel_util.cuh"

namespace {

const int kCols = 64;            // forward and positions: columns per block
const int kRows = 4;             // forward: token rows of threads per block
const int kBuckets = 512;        // backward scatter: blocks, each owning rows ≡ b (mod kBuckets)
const int kScatterThreads = 256; // and one column each
const int kScan = 4;             // tokens each thread inspects per chunk
const int kChunk = kScatterThreads * kScan;
const int kAhead = 16;           // gradient values loaded before the first is added
const int kSumCols = 32;         // dwtt partial sums: columns per block
const int kSumRows = 8;          // rows of threads per block
const int kSumBlocks = 64;       // token ranges, so kSumBlocks partials per column

template <class T>
__global__ void __launch_bounds__(kCols *kRows)
    embedding_forward_kernel(T *out, const int32_t *ids, const int32_t *cu_seqlens, const T *wte,
                             const T *wpe, const T *wtt, int C) {
    const int s = blockIdx.x;
    const int c = blockIdx.y * kCols + threadIdx.x;
    if (c >= C) return;
    const int begin = cu_seqlens[s], end = cu_seqlens[s + 1];
    const float type = to_f32(wtt[c]);
    for (int t = begin + threadIdx.y; t < end; t += kRows) {
        const float word = to_f32(wte[(size_t)ids[t] * C + c]);
        const float pos = to_f32(wpe[(size_t)(t - begin) * C + c]);
        store(&out[(size_t)t * C + c], word + pos + type);
    }
}

__global__ void __launch_bounds__(kCols) positions_kernel(int32_t *pos, const int32_t *cu_seqlens) {
    const int begin = cu_seqlens[blockIdx.x], end = cu_seqlens[blockIdx.x + 1];
    for (int t = begin + threadIdx.x; t < end; t += kCols) pos[t] = t - begin;
}

// Leaves the tokens of [base, base + kChunk) whose row is in this block's bucket, in
// token order, in picked_token / picked_row; returns their number. Token base + k·256 + i
// is thread i's k-th, so the order is (k, warp, lane).
__device__ int pick_bucket_tokens(int *picked_token, int *picked_row, const int32_t *rows, int base,
                                  int tokens) {
    const int kWarps = kScatterThreads / 32;
    __shared__ int warp_counts[kScan][kWarps];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    int row[kScan];
    unsigned ballot[kScan];
    MNRL_UNROLL
    for (int k = 0; k < kScan; k++) {
        const int t = base + k * kScatterThreads + threadIdx.x;
        row[k] = t < tokens ? rows[t] : -1;
        ballot[k] = __ballot_sync(0xffffffffu, row[k] >= 0 && row[k] % kBuckets == (int)blockIdx.x);
        if (lane == 0) warp_counts[k][warp] = __popc(ballot[k]);
    }
    __syncthreads();
    int first[kScan], count = 0;
    MNRL_UNROLL
    for (int k = 0; k < kScan; k++)
        for (int w = 0; w < kWarps; w++) {
            if (w == warp) first[k] = count;
            count += warp_counts[k][w];
        }
    MNRL_UNROLL
    for (int k = 0; k < kScan; k++)
        if (ballot[k] >> lane & 1u) {
            const int slot = first[k] + __popc(ballot[k] & ((1u << lane) - 1u));
            picked_token[slot] = base + k * kScatterThreads + threadIdx.x;
            picked_row[slot] = row[k];
        }
    __syncthreads();
    return count;
}

// table[rows[t]][c] += grad[t][c] for every token t whose row is in this block's bucket,
// in token order, for column c = blockIdx.y · kScatterThreads + threadIdx.x (see the top
// of the file).
template <class T>
__global__ void __launch_bounds__(kScatterThreads)
    scatter_add_rows_kernel(float *table, const int32_t *rows, const T *grad, int tokens, int C) {
    __shared__ int picked_token[kChunk], picked_row[kChunk];
    const int c = blockIdx.y * kScatterThreads + threadIdx.x;
    const bool column = c < C;  // the others still take part in the block's picking
    int current = -1;           // the row whose running sum `sum` holds
    float sum = 0.0f;
    for (int base = 0; base < tokens; base += kChunk) {
        const int count = pick_bucket_tokens(picked_token, picked_row, rows, base, tokens);
        for (int i = 0; i < count && column; i += kAhead) {
            float value[kAhead];
            MNRL_UNROLL
            for (int j = 0; j < kAhead; j++)
                value[j] = i + j < count ? to_f32(grad[(size_t)picked_token[i + j] * C + c]) : 0.0f;
            MNRL_UNROLL
            for (int j = 0; j < kAhead; j++) {
                if (i + j == count) break;
                const int row = picked_row[i + j];
                if (row != current) {
                    if (current >= 0) table[(size_t)current * C + c] = sum;
                    sum = table[(size_t)row * C + c];
                    current = row;
                }
                sum += value[j];
            }
        }
        __syncthreads();  // the picked lists are rewritten by the next chunk
    }
    if (current >= 0 && column) table[(size_t)current * C + c] = sum;
}

// partials[blockIdx.y][c] = Σ x[r][c] over the block's token range, in fp32.
template <class T>
__global__ void __launch_bounds__(kSumCols *kSumRows)
    column_partials_kernel(float *partials, const T *x, int rows, int C) {
    __shared__ float part[kSumRows][kSumCols];
    const int c = blockIdx.x * kSumCols + threadIdx.x;
    const int begin = (int)((long long)rows * blockIdx.y / gridDim.y);
    const int end = (int)((long long)rows * (blockIdx.y + 1) / gridDim.y);
    float sum = 0.0f;
    if (c < C)
        for (int r = begin + threadIdx.y; r < end; r += kSumRows) sum += to_f32(x[(size_t)r * C + c]);
    part[threadIdx.y][threadIdx.x] = sum;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float total = 0.0f;
        for (int r = 0; r < kSumRows; r++) total += part[r][threadIdx.x];
        partials[(size_t)blockIdx.y * C + c] = total;
    }
}

int check_shape(const char *what, int S, int T, int C, MnrlError *err) {
    if (S < 0 || T < 0 || C <= 0 || (C + kCols - 1) / kCols > 65535)
        return mnrl_fail(err, "%s:%d: %s: bad shape S=%d T=%d C=%d (need S, T >= 0 and 0 < C <= %d); "
                         "this is a bug in the caller", __FILE__, __LINE__, what, S, T, C, 65535 * kCols);
    return 0;
}

size_t positions_bytes(int T) { return ((size_t)T * sizeof(int32_t) + 15) / 16 * 16; }

template <class T>
int forward(const char *what, T *out, const int32_t *ids, const int32_t *cu_seqlens, int S, int Tn,
            const T *wte, const T *wpe, const T *wtt, int C, cudaStream_t stream, MnrlError *err) {
    if (check_shape(what, S, Tn, C, err) != 0) return -1;
    if (S == 0) return 0;
    const dim3 grid((unsigned)S, (unsigned)((C + kCols - 1) / kCols));
    CUDA_LAUNCH(grid, dim3(kCols, kRows), 0, stream, embedding_forward_kernel<T>)(
        out, ids, cu_seqlens, wte, wpe, wtt, C);
    CUDA_CHECK(cudaGetLastError(), err);
    return 0;
}

template <class T>
int backward(const char *what, float *dwte, float *dwpe, float *dwtt, const T *dout, const int32_t *ids,
             const int32_t *cu_seqlens, int S, int Tn, int C, void *workspace, cudaStream_t stream,
             MnrlError *err) {
    if (check_shape(what, S, Tn, C, err) != 0) return -1;
    if (S == 0 || Tn == 0) return 0;
    int32_t *positions = (int32_t *)workspace;
    float *partials = (float *)((char *)workspace + positions_bytes(Tn));
    CUDA_LAUNCH(S, kCols, 0, stream, positions_kernel)(positions, cu_seqlens);
    CUDA_CHECK(cudaGetLastError(), err);
    const dim3 buckets(kBuckets, (unsigned)((C + kScatterThreads - 1) / kScatterThreads));
    CUDA_LAUNCH(buckets, kScatterThreads, 0, stream, scatter_add_rows_kernel<T>)(dwte, ids, dout, Tn, C);
    CUDA_CHECK(cudaGetLastError(), err);
    CUDA_LAUNCH(buckets, kScatterThreads, 0, stream, scatter_add_rows_kernel<T>)(dwpe, positions, dout, Tn, C);
    CUDA_CHECK(cudaGetLastError(), err);
    const dim3 grid((unsigned)((C + kSumCols - 1) / kSumCols), kSumBlocks);
    CUDA_LAUNCH(grid, dim3(kSumCols, kSumRows), 0, stream, column_partials_kernel<T>)(partials, dout, Tn, C);
    CUDA_CHECK(cudaGetLastError(), err);
    return add_partial_sums(ColumnSums{{dwtt}, 1}, partials, kSumBlocks, C, stream, err);
}

}  // namespace

extern "C" size_t mnrl_cuda_embedding_backward_workspace_bytes(int max_tokens, int C) {
    return positions_bytes(max_tokens) + (size_t)kSumBlocks * (size_t)C * sizeof(float);
}

extern "C" int mnrl_cuda_embedding_forward_f32(float *out, const int32_t *ids, const int32_t *cu_seqlens,
                                               int S, int T, const float *wte, const float *wpe,
                                               const float *wtt, int C, cudaStream_t stream, MnrlError *err) {
    return forward("embedding_forward_f32", out, ids, cu_seqlens, S, T, wte, wpe, wtt, C, stream, err);
}

extern "C" int mnrl_cuda_embedding_forward_bf16(mnrl_bf16 *out, const int32_t *ids, const int32_t *cu_seqlens,
                                                int S, int T, const mnrl_bf16 *wte, const mnrl_bf16 *wpe,
                                                const mnrl_bf16 *wtt, int C, cudaStream_t stream, MnrlError *err) {
    return forward("embedding_forward_bf16", out, ids, cu_seqlens, S, T, wte, wpe, wtt, C, stream, err);
}

extern "C" int mnrl_cuda_embedding_backward_f32(float *dwte, float *dwpe, float *dwtt, const float *dout,
                                                const int32_t *ids, const int32_t *cu_seqlens, int S, int T,
                                                int C, void *workspace, cudaStream_t stream, MnrlError *err) {
    return backward("embedding_backward_f32", dwte, dwpe, dwtt, dout, ids, cu_seqlens, S, T, C, workspace,
                    stream, err);
}

extern "C" int mnrl_cuda_embedding_backward_bf16(float *dwte, float *dwpe, float *dwtt, const mnrl_bf16 *dout,
                                                 const int32_t *ids, const int32_t *cu_seqlens, int S, int T,
                                                 int C, void *workspace, cudaStream_t stream, MnrlError *err) {
    return backward("embedding_backward_bf16", dwte, dwpe, dwtt, dout, ids, cu_seqlens, S, T, C, workspace,
                    stream, err);
}
