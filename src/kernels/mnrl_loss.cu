// mnrl_loss.cu — the fused Multiple Negatives Ranking Loss: row norms, scaled cosine
// scores of b anchors against N candidates, row log-sum-exp, loss, and the gradients of
// the anchors and candidates, without ever storing the b × N score matrix.
// CPU op it must match: ops_cpu()->mnrl_loss (ops.h): x̂ = x / max(||x||, 1e-12)
// (F.normalize), S_ij = scale·â_i·ĉ_j, loss = Σ_i CE(S_i, label_offset + i) / global_batch,
// dA, dCd written (NULL for both: the loss only).
//
// Passes (all on the stream, in order):
//  1. normalize_kernel: norms (fp64 sums, as the CPU) and unit copies â, ĉ (workspace).
//  2. lse_partial_kernel: grid (anchor tiles, candidate splits); a block takes 64 anchors
//     and walks its split of the candidates in tiles of 64: the 64 × 64 score tile comes
//     from a shared-memory GEMM (score_tile), then thread r folds row r's tile into a
//     running (max, sum) in fp64 — an online log-sum-exp — and picks up S_i,label when
//     the label's column is in the tile. Each (row, split) leaves one (max, sum) pair.
//  3. row_loss_kernel merges a row's splits in split order: lse_i, loss_i = lse_i - S_i,label;
//     loss_sum_kernel adds the rows in fp64 in a fixed tree (one block) and divides by
//     global_batch.
//  4. grad_partial_kernel<own = anchors>: the same tiles again; scores recomputed (bit for
//     bit the forward's: the same fma sequence), G = (softmax - onehot)·scale/global_batch
//     into shared memory, and the block's rows of dÂ += G·Ĉ_tile accumulated in a
//     workspace slice that only this block writes (fixed order, no atomics);
//     grad_partial_kernel<own = candidates> does dĈ += Gᵀ·Â_tile the same way, blocks
//     owning candidate tiles and walking the anchors.
//  5. finish_kernel: adds a row's split slices in split order and applies F.normalize's
//     backward: dx = (d - x̂(x̂·d)) / ||x||, or d / 1e-12 under the clamp.
// Splits: a grid of (own tiles × splits) with about kTargetBlocks blocks keeps the GPU
// busy for small batches; large batches get one split. Memory: O((b + N)·H) — â, ĉ and the
// gradient slices (at most (kTargetBlocks·64 + rows)·H floats) — plus O(b) per-row
// values; the split count depends only on (b, N), so results are identical run to run.
#include <cuda_bf16.h>
#include <math.h>

#include "mnrl/cuda_launch.h"
#include "mnrl/kernels.h"
#include "kernel_util.cuh"

namespace {

const int kTile = 64;            // anchors × candidates of one score tile
const int kThreads = 256;        // 16 × 16 threads, a 4 × 4 micro-tile each
const int kChunk = 32;           // H columns per shared-memory stage of the score GEMM
const int kStride = kTile + 1;   // padded shared-memory rows (no bank conflicts)
const int kTargetBlocks = 256;   // blocks wanted per pass (splits of the walked side)
const float kNormEps = 1e-12f;   // F.normalize's clamp
const int kRowWarps = 4;         // normalize / finish: one warp per row

// Shared memory of the tile kernels: the two GEMM stages (reused as the walked side's
// H-chunk in the gradient product) and the 64 × 64 score / gradient tile.
const size_t kStageFloats = 2 * (size_t)kChunk * kStride;
const size_t kTileSmemBytes = sizeof(float) * (kStageFloats + (size_t)kTile * kStride);

struct LossArgs {
    int b, N, H;
    float scale, grad_scale;  // grad_scale = scale / global_batch (dloss/dcos)
    int label_offset;
};

// How a pass splits the walked side: own_tiles × splits blocks, tiles_per_split each.
struct Split {
    int own_tiles, splits, tiles_per_split;
};

Split make_split(int own_rows, int other_rows) {
    const int own_tiles = (own_rows + kTile - 1) / kTile, other_tiles = (other_rows + kTile - 1) / kTile;
    int splits = (kTargetBlocks + own_tiles - 1) / own_tiles;
    if (splits > other_tiles) splits = other_tiles;
    const int per = (other_tiles + splits - 1) / splits;
    return Split{own_tiles, (other_tiles + per - 1) / per, per};
}

// Rows of split slices the workspace must hold for own_rows rows (any split count).
size_t slice_rows(int own_rows) { return (size_t)kTargetBlocks * kTile + (size_t)own_rows + kTile; }

__global__ void __launch_bounds__(kRowWarps * 32)
    normalize_kernel(float *x_hat, float *norm, const float *x, int rows, int H) {
    const int row = blockIdx.x * kRowWarps + threadIdx.y, lane = threadIdx.x;
    if (row >= rows) return;  // whole warps leave
    const float *xr = x + (size_t)row * H;
    double sq = 0.0;
    for (int c = lane; c < H; c += 32) sq += (double)xr[c] * xr[c];
    const float n = (float)sqrt(warp_sum(sq));
    if (lane == 0) norm[row] = n;
    const float clamped = n > kNormEps ? n : kNormEps;
    for (int c = lane; c < H; c += 32) x_hat[(size_t)row * H + c] = xr[c] / clamped;
}

// acc[r][c] = own[own0 + 4ty + r] · other[other0 + 4tx + c] over H (rows past n_own or
// n_other read as 0). Every product is an fma in k order, so swapping own and other gives
// the same bits.
__device__ void score_tile(float acc[4][4], const float *own, int own0, int n_own, const float *other,
                           int other0, int n_other, int H, float *stage) {
    float *own_stage = stage, *other_stage = stage + kChunk * kStride;
    const int tid = threadIdx.x, ty = tid / 16, tx = tid % 16;
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) acc[r][c] = 0.0f;
    for (int k0 = 0; k0 < H; k0 += kChunk) {
        __syncthreads();  // the previous stage is consumed
        for (int idx = tid; idx < kTile * kChunk; idx += kThreads) {
            const int row = idx / kChunk, k = idx % kChunk;
            const bool in_h = k0 + k < H;
            own_stage[k * kStride + row] = row < n_own && in_h ? own[(size_t)(own0 + row) * H + k0 + k] : 0.0f;
            other_stage[k * kStride + row] =
                row < n_other && in_h ? other[(size_t)(other0 + row) * H + k0 + k] : 0.0f;
        }
        __syncthreads();
        for (int k = 0; k < kChunk; k++) {
            float a[4], o[4];
            for (int r = 0; r < 4; r++) a[r] = own_stage[k * kStride + 4 * ty + r];
            for (int c = 0; c < 4; c++) o[c] = other_stage[k * kStride + 4 * tx + c];
            for (int r = 0; r < 4; r++)
                for (int c = 0; c < 4; c++) acc[r][c] = fmaf(a[r], o[c], acc[r][c]);
        }
    }
}

// Pass 2. part[(split·b + i)·2 + {0, 1}] = (max, Σ exp(S - max)) of anchor i over the
// split's candidates; label_score[i] = S_i,label from the split holding the label.
__global__ void __launch_bounds__(kThreads)
    lse_partial_kernel(double *part, float *label_score, const float *a_hat, const float *c_hat, LossArgs L,
                       Split sp) {
    float *stage = reinterpret_cast<float *>(mnrl_dyn_smem);
    float *scores = stage + kStageFloats;
    const int tid = threadIdx.x, ty = tid / 16, tx = tid % 16;
    const int a0 = blockIdx.x * kTile, n_a = min(kTile, L.b - a0), split = blockIdx.y;
    const int label = tid < n_a ? L.label_offset + a0 + tid : -1;
    const int c_first = split * sp.tiles_per_split * kTile;
    const int c_end = min(L.N, c_first + sp.tiles_per_split * kTile);
    double run_max = -INFINITY, run_sum = 0.0;
    for (int c0 = c_first; c0 < c_end; c0 += kTile) {
        const int n_c = min(kTile, c_end - c0);
        float acc[4][4];
        score_tile(acc, a_hat, a0, n_a, c_hat, c0, n_c, L.H, stage);
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 4; c++) scores[(4 * ty + r) * kStride + 4 * tx + c] = L.scale * acc[r][c];
        __syncthreads();
        if (tid < n_a) {
            const float *row = scores + tid * kStride;
            float tile_max = row[0];
            for (int c = 1; c < n_c; c++) tile_max = fmaxf(tile_max, row[c]);
            float tile_sum = 0.0f;
            for (int c = 0; c < n_c; c++) tile_sum += expf(row[c] - tile_max);
            const double new_max = fmax(run_max, (double)tile_max);
            run_sum = run_sum * exp(run_max - new_max) + (double)tile_sum * exp((double)tile_max - new_max);
            run_max = new_max;
            if (label >= c0 && label < c0 + n_c) label_score[a0 + tid] = row[label - c0];
        }
        // the next score_tile starts with a barrier before it overwrites shared memory
    }
    if (tid < n_a) {
        double *p = part + ((size_t)split * L.b + a0 + tid) * 2;
        p[0] = run_max;
        p[1] = run_sum;
    }
}

// Pass 3a: lse_i from the splits in order, row_loss_i = lse_i - S_i,label.
__global__ void row_loss_kernel(double *lse, double *row_loss, const double *part, const float *label_score,
                                int b, int splits) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= b) return;
    double m = -INFINITY, sum = 0.0;
    for (int p = 0; p < splits; p++) m = fmax(m, part[((size_t)p * b + i) * 2]);
    for (int p = 0; p < splits; p++) {
        const double *q = part + ((size_t)p * b + i) * 2;
        sum += q[1] * exp(q[0] - m);
    }
    lse[i] = m + log(sum);
    row_loss[i] = lse[i] - (double)label_score[i];
}

// Pass 3b: *loss = Σ_i row_loss_i / global_batch, one block, fixed strides and tree.
__global__ void __launch_bounds__(kThreads)
    loss_sum_kernel(float *loss, const double *row_loss, int b, int global_batch) {
    __shared__ double partial[kThreads];
    double sum = 0.0;
    for (int i = threadIdx.x; i < b; i += kThreads) sum += row_loss[i];
    partial[threadIdx.x] = sum;
    __syncthreads();
    for (int half = kThreads / 2; half > 0; half /= 2) {
        if ((int)threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0) *loss = (float)(partial[0] / global_batch);
}

// Pass 4. Own rows (anchors when kOwnAnchors, else candidates) of this block: the slice
// slices[split][row][H] = Σ over the split's walked rows w of G(own, w)·walked_hat[w].
template <bool kOwnAnchors>
__global__ void __launch_bounds__(kThreads)
    grad_partial_kernel(float *slices, const float *a_hat, const float *c_hat, const double *lse, LossArgs L,
                        Split sp) {
    float *stage = reinterpret_cast<float *>(mnrl_dyn_smem);
    float *grad = stage + kStageFloats;
    const float *own = kOwnAnchors ? a_hat : c_hat, *walked = kOwnAnchors ? c_hat : a_hat;
    const int own_rows = kOwnAnchors ? L.b : L.N, walked_rows = kOwnAnchors ? L.N : L.b;
    const int tid = threadIdx.x, ty = tid / 16, tx = tid % 16, H = L.H;
    const int o0 = blockIdx.x * kTile, n_o = min(kTile, own_rows - o0), split = blockIdx.y;
    const int w_first = split * sp.tiles_per_split * kTile;
    const int w_end = min(walked_rows, w_first + sp.tiles_per_split * kTile);
    float *slice = slices + ((size_t)split * own_rows + o0) * H;
    for (int w0 = w_first; w0 < w_end; w0 += kTile) {
        const int n_w = min(kTile, w_end - w0);
        float acc[4][4];
        score_tile(acc, own, o0, n_o, walked, w0, n_w, H, stage);
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 4; c++) {
                const int o = 4 * ty + r, w = 4 * tx + c;
                const int anchor = kOwnAnchors ? o0 + o : w0 + w, cand = kOwnAnchors ? w0 + w : o0 + o;
                float g = 0.0f;
                if (o < n_o && w < n_w) {
                    const float p = expf((float)((double)(L.scale * acc[r][c]) - lse[anchor]));
                    g = (p - (cand == L.label_offset + anchor ? 1.0f : 0.0f)) * L.grad_scale;
                }
                grad[o * kStride + w] = g;
            }
        // slice[o][h] (+)= Σ_w grad[o][w]·walked[w0 + w][h], 64 columns of h at a time,
        // the walked rows' chunk staged in the (now free) GEMM stage buffer.
        for (int h0 = 0; h0 < H; h0 += kTile) {
            __syncthreads();  // grad is complete; the stage buffer is free
            for (int idx = tid; idx < kTile * kTile; idx += kThreads) {
                const int w = idx / kTile, h = idx % kTile;
                stage[w * kStride + h] = w < n_w && h0 + h < H ? walked[(size_t)(w0 + w) * H + h0 + h] : 0.0f;
            }
            __syncthreads();
            float out[4][4] = {};
            for (int w = 0; w < kTile; w++) {
                float g[4], x[4];
                for (int r = 0; r < 4; r++) g[r] = grad[(4 * ty + r) * kStride + w];
                for (int c = 0; c < 4; c++) x[c] = stage[w * kStride + 4 * tx + c];
                for (int r = 0; r < 4; r++)
                    for (int c = 0; c < 4; c++) out[r][c] = fmaf(g[r], x[c], out[r][c]);
            }
            for (int r = 0; r < 4; r++)
                for (int c = 0; c < 4; c++) {
                    const int o = 4 * ty + r, h = h0 + 4 * tx + c;
                    if (o >= n_o || h >= H) continue;
                    float *dst = slice + (size_t)o * H + h;
                    *dst = w0 == w_first ? out[r][c] : *dst + out[r][c];  // this thread's own element
                }
        }
    }
}

// Pass 5: d = Σ_split slices (split order), then F.normalize's backward into dx.
__global__ void __launch_bounds__(kRowWarps * 32)
    finish_kernel(float *dx, const float *slices, const float *x_hat, const float *norm, int rows, int H,
                  int splits) {
    const int row = blockIdx.x * kRowWarps + threadIdx.y, lane = threadIdx.x;
    if (row >= rows) return;  // whole warps leave
    float *d = dx + (size_t)row * H;
    const float *xh = x_hat + (size_t)row * H;
    double proj = 0.0;
    for (int h = lane; h < H; h += 32) {
        double sum = 0.0;
        for (int p = 0; p < splits; p++) sum += slices[((size_t)p * rows + row) * H + h];
        d[h] = (float)sum;
        proj += (double)xh[h] * d[h];
    }
    proj = warp_sum(proj);
    const float n = norm[row];
    for (int h = lane; h < H; h += 32)
        d[h] = n >= kNormEps ? (float)((d[h] - xh[h] * proj) / n) : d[h] / kNormEps;
}

// Workspace carve-up (every piece 16-byte aligned).
struct Scratch {
    float *a_hat, *c_hat, *a_norm, *c_norm, *label_score, *slices;
    double *part, *lse, *row_loss;
};

size_t align16(size_t bytes) { return (bytes + 15) & ~(size_t)15; }

// Offsets for (b, N, H); with base == NULL only the total size is meaningful.
size_t carve(Scratch *s, void *base, int b, int N, int H) {
    char *p = static_cast<char *>(base);
    size_t off = 0;
    auto take = [&](size_t bytes) {
        char *at = p ? p + off : nullptr;
        off += align16(bytes);
        return at;
    };
    s->a_hat = reinterpret_cast<float *>(take(sizeof(float) * (size_t)b * H));
    s->c_hat = reinterpret_cast<float *>(take(sizeof(float) * (size_t)N * H));
    s->a_norm = reinterpret_cast<float *>(take(sizeof(float) * (size_t)b));
    s->c_norm = reinterpret_cast<float *>(take(sizeof(float) * (size_t)N));
    s->label_score = reinterpret_cast<float *>(take(sizeof(float) * (size_t)b));
    s->part = reinterpret_cast<double *>(take(sizeof(double) * 2 * slice_rows(b)));
    s->lse = reinterpret_cast<double *>(take(sizeof(double) * (size_t)b));
    s->row_loss = reinterpret_cast<double *>(take(sizeof(double) * (size_t)b));
    const size_t rows = slice_rows(b) > slice_rows(N) ? slice_rows(b) : slice_rows(N);
    s->slices = reinterpret_cast<float *>(take(sizeof(float) * rows * H));
    return off;
}

unsigned row_blocks(int rows) { return (unsigned)((rows + kRowWarps - 1) / kRowWarps); }

template <bool kOwnAnchors>
int gradient(float *dx, const Scratch &s, const LossArgs &L, cudaStream_t stream, MnrlError *err) {
    const int own_rows = kOwnAnchors ? L.b : L.N;
    const Split sp = make_split(own_rows, kOwnAnchors ? L.N : L.b);
    CUDA_LAUNCH(dim3((unsigned)sp.own_tiles, (unsigned)sp.splits), kThreads, kTileSmemBytes, stream,
                grad_partial_kernel<kOwnAnchors>)(s.slices, s.a_hat, s.c_hat, s.lse, L, sp);
    CUDA_CHECK(cudaGetLastError(), err);
    CUDA_LAUNCH(row_blocks(own_rows), dim3(32, kRowWarps), 0, stream, finish_kernel)(
        dx, s.slices, kOwnAnchors ? s.a_hat : s.c_hat, kOwnAnchors ? s.a_norm : s.c_norm, own_rows, L.H, sp.splits);
    CUDA_CHECK(cudaGetLastError(), err);
    return 0;
}

}  // namespace

extern "C" size_t mnrl_cuda_mnrl_loss_workspace_bytes(int max_anchors, int max_candidates, int H) {
    Scratch s;
    return carve(&s, NULL, max_anchors, max_candidates, H);
}

extern "C" int mnrl_cuda_mnrl_loss(float *loss, float *dA, float *dCd, const float *A, const float *Cd, int b,
                                   int N, int H, float scale, int label_offset, int global_batch, void *workspace,
                                   cudaStream_t stream, MnrlError *err) {
    if (b < 1 || N < 1 || H < 1 || global_batch < 1 || label_offset < 0 || (long)label_offset + b > N)
        return mnrl_fail(err, "%s:%d: mnrl_loss: bad shape b=%d N=%d H=%d label_offset=%d global_batch=%d (need "
                         "b, N, H, global_batch >= 1 and 0 <= label_offset, label_offset + b <= N); this is a bug "
                         "in the caller", __FILE__, __LINE__, b, N, H, label_offset, global_batch);
    if ((dA == NULL) != (dCd == NULL))
        return mnrl_fail(err, "%s:%d: mnrl_loss: pass both dA and dCd, or neither (loss only); this is a bug in "
                         "the caller", __FILE__, __LINE__);
    Scratch s;
    carve(&s, workspace, b, N, H);
    const LossArgs L{b, N, H, scale, scale / (float)global_batch, label_offset};
    CUDA_LAUNCH(row_blocks(b), dim3(32, kRowWarps), 0, stream, normalize_kernel)(s.a_hat, s.a_norm, A, b, H);
    CUDA_CHECK(cudaGetLastError(), err);
    CUDA_LAUNCH(row_blocks(N), dim3(32, kRowWarps), 0, stream, normalize_kernel)(s.c_hat, s.c_norm, Cd, N, H);
    CUDA_CHECK(cudaGetLastError(), err);
    const Split sp = make_split(b, N);
    CUDA_LAUNCH(dim3((unsigned)sp.own_tiles, (unsigned)sp.splits), kThreads, kTileSmemBytes, stream,
                lse_partial_kernel)(s.part, s.label_score, s.a_hat, s.c_hat, L, sp);
    CUDA_CHECK(cudaGetLastError(), err);
    CUDA_LAUNCH((unsigned)((b + kThreads - 1) / kThreads), kThreads, 0, stream, row_loss_kernel)(
        s.lse, s.row_loss, s.part, s.label_score, b, sp.splits);
    CUDA_CHECK(cudaGetLastError(), err);
    CUDA_LAUNCH(1, kThreads, 0, stream, loss_sum_kernel)(loss, s.row_loss, b, global_batch);
    CUDA_CHECK(cudaGetLastError(), err);
    if (!dA) return 0;
    if (gradient<true>(dA, s, L, stream, err) != 0) return -1;
    return gradient<false>(dCd, s, L, stream, err);
}
