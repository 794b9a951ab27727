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
//     from score_tile (below), then thread r folds row r's tile into a running
//     (max, sum) in fp64 — an online log-sum-exp — and picks up S_i,label when the label's
//     column is in the tile. Each (row, split) leaves one (max, sum) pair.
//  3. row_loss_kernel merges a row's splits in split order: lse_i, loss_i = lse_i - S_i,label;
//     loss_sum_kernel adds the rows in fp64 in a fixed tree (one block) and divides by
//     global_batch.
//  4. grad_partial_kernel<own = anchors>: the same tiles again; scores recomputed (bit for
//     bit the forward's: the same anchor × candidate tile code), G = (softmax -
//     onehot)·scale/global_batch, and the block's rows of dÂ += G·Ĉ_tile accumulated in
//     a workspace slice that only this block writes (fixed order, no atomics);
//     grad_partial_kernel<own = candidates> does dĈ += Gᵀ·Â_tile the same way,
//     blocks owning candidate tiles and walking the anchors (its score tiles are still
//     computed anchors × candidates, so they are the forward's bits too).
//  5. finish_kernel: adds a row's split slices in split order and applies F.normalize's
//     backward: dx = (d - x̂(x̂·d)) / ||x||, or d / 1e-12 under the clamp.
// Splits: a grid of (own tiles × splits) with about kTargetBlocks blocks keeps the GPU
// busy for small batches; large batches get one split. Memory: O((b + N)·H) — â, ĉ and the
// gradient slices (at most (kTargetBlocks·64 + rows)·H floats) — plus O(b) per-row
// values; the split count depends only on (b, N), so results are identical run to run.
//
// The two products — the scores, and G times a tile of unit rows — run one of two ways
// (mnrl_cuda_mnrl_loss's tensor_cores): as fp32 fmas (fp32 runs: the CPU's precision), or
// on nvcuda::wmma bf16 16x16x16 tiles with fp32 accumulation (bf16 runs). There each fp32
// operand x is split into hi = bf16(x) and lo = bf16(x - hi), and a product x·y taken as
// lo_x·hi_y + hi_x·lo_y + hi_x·hi_y, three mma per tile step: that drops lo_x·lo_y and the
// split's remainders, at most 3·2^-18 of |x·y|, where bf16 operands alone would be off by
// up to 2^-8 (sentence-transformers' bf16 autocast takes its cos_sim matmul in bf16), and
// the tests bound it (tests/emu/test_mnrl_loss.c). At batch 65,536 (cached) the products
// are ~66 TFLOP a step; as fp32 fmas, 4 × 4 per thread, they took ~1.5 s of a 10 s step by
// the H200 step times (bench/RESULTS.md); tensor cores run even three times the products
// several times faster than the fp32 units (not yet measured on a GPU).
// Work split: 8 warps. Tensor cores: in the score tile warp w makes the 16 × 16 output
// blocks (w / 2, 2(w % 2)) and (w / 2, 2(w % 2) + 1), in the gradient product (64 own rows
// × kChunk columns of H at a time) block (w / 2, w % 2). fp32: thread (tid / 16, tid % 16)
// makes 4 × 4 scores and 4 × 2 products. Every sum runs in a fixed order (H, or the walked
// rows, in steps of 16 or 1; inside an mma as the hardware fixes it), so results do not
// depend on scheduling.
#include <cuda_bf16.h>
#include <math.h>

#include "mnrl/cuda_launch.h"
#include "mnrl/kernels.h"
#include "kernel_util.cuh"
#include "wmma_tiles.cuh"

namespace {

const int kTile = 64;            // anchors × candidates of one score tile
const int kThreads = 256;        // 8 warps
const int kChunk = 32;           // columns per shared-memory stage of either product
const int kTargetBlocks = 256;   // blocks wanted per pass (splits of the walked side)
const float kNormEps = 1e-12f;   // F.normalize's clamp
const int kRowWarps = 4;         // normalize / finish: one warp per row

// Shared-memory rows, padded so that consecutive rows start in different banks and every
// row is a multiple of 16 bytes (wmma's ldm): bf16 [64][kChunk] split stages, the bf16
// [64][64] split of G, the fp32 [64][64] score tile (and G on the fp32 path), the fp32
// [64][kChunk] product output and walked-row chunk, the fp32 path's [kChunk][64] stages.
const int kLdStage = kChunk + 8;
const int kLdG = kTile + 8;
const int kLdScore = kTile + 4;
const int kLdOut = kChunk + 4;
const int kLdSimt = kTile + 1;

constexpr size_t kStageBytes = carve_size(sizeof(bf16) * kTile * kLdStage);  // one split half
constexpr size_t kGBytes = carve_size(sizeof(bf16) * kTile * kLdG);
constexpr size_t kScoreBytes = carve_size(sizeof(float) * kTile * kLdScore);  // also holds the product output
constexpr size_t kOutBytes = carve_size(sizeof(float) * kTile * kLdOut);
// After the score tile, the stage region: the score product's stages (split: own and
// other, hi and lo; fp32: own and other), or the gradient product's G and walked-row
// chunk (split or fp32); Carve's rounding takes up to 128 bytes more.
constexpr size_t kStageRegion = carve_max(carve_max(4 * kStageBytes, 2 * kGBytes + 2 * kStageBytes),
                                          carve_max(carve_size(2 * sizeof(float) * kChunk * kLdSimt),
                                                    kScoreBytes + kOutBytes));
constexpr size_t kTileSmemBytes = 128 + kScoreBytes + kStageRegion;
// Tile-kernel blocks per SM: what their 46 KiB of shared memory allow on an H100/H200
// (228 KiB), so 64 registers a thread, the register file's share. (Without the hint
// ptxas gave the tensor-core grad_partial_kernel 48 registers and 24 bytes of spills.)
const int kTileBlocksPerSM = 4;
static_assert(kTileSmemBytes <= 48 * 1024, "the tile kernels must fit the default dynamic shared memory");
static_assert(kOutBytes <= kScoreBytes, "the product output reuses the score tile");

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

// x = hi + lo + r with hi = bf16(x), lo = bf16(x - hi) (x - hi is exact in fp32) and
// |r| <= 2^-18·|x|.
__device__ __forceinline__ void split_bf16(float x, bf16 *hi, bf16 *lo) {
    const bf16 h = __float2bfloat16_rn(x);
    *hi = h;
    *lo = __float2bfloat16_rn(x - __bfloat162float(h));
}

// put(row, k, value) for rows row0 .. row0+63 (those at or past n read as 0) and columns
// k0 .. k0+kChunk-1 (those at or past H as 0) of the fp32 [*, H] matrix x. Each row's
// kChunk columns are consecutive threads: one 128-byte read.
template <class Put>
__device__ __forceinline__ void stage_tile(const float *x, int row0, int n, int k0, int H, Put put) {
    for (int idx = threadIdx.x; idx < kTile * kChunk; idx += kThreads) {
        const int row = idx / kChunk, k = idx % kChunk;
        put(row, k, row < n && k0 + k < H ? x[(size_t)(row0 + row) * H + k0 + k] : 0.0f);
    }
}

// stage_tile split into the bf16 tiles hi and lo [64][kLdStage].
__device__ __forceinline__ void stage_split(bf16 *hi, bf16 *lo, const float *x, int row0, int n, int k0, int H) {
    stage_tile(x, row0, n, k0, H,
               [&](int row, int k, float v) { split_bf16(v, hi + row * kLdStage + k, lo + row * kLdStage + k); });
}

// acc += x·y for 16 × 16 blocks given as split fragments, in the fixed order lo·hi, hi·lo,
// hi·hi (small terms first).
template <class FragY>
__device__ __forceinline__ void mma_split(FragC &acc, const FragA &x_hi, const FragA &x_lo, const FragY &y_hi,
                                          const FragY &y_lo) {
    wmma::mma_sync(acc, x_lo, y_hi, acc);
    wmma::mma_sync(acc, x_hi, y_lo, acc);
    wmma::mma_sync(acc, x_hi, y_hi, acc);
}

// The score tile on tensor cores (score_tile); stage: the region's four split stages.
__device__ __forceinline__ void score_tile_tc(float *scores, bf16 *stage, const float *a_hat, int a0, int n_a,
                                              const float *c_hat, int c0, int n_c, int H, float scale) {
    bf16 *a_hi = stage, *a_lo = a_hi + kStageBytes / sizeof(bf16);
    bf16 *c_hi = a_lo + kStageBytes / sizeof(bf16), *c_lo = c_hi + kStageBytes / sizeof(bf16);
    const int warp = threadIdx.x / 32, bi = warp / 2, bj = 2 * (warp % 2);
    FragC acc[2];
    wmma::fill_fragment(acc[0], 0.0f);
    wmma::fill_fragment(acc[1], 0.0f);
    for (int k0 = 0; k0 < H; k0 += kChunk) {
        __syncthreads();  // the previous stage is consumed
        stage_split(a_hi, a_lo, a_hat, a0, n_a, k0, H);
        stage_split(c_hi, c_lo, c_hat, c0, n_c, k0, H);
        __syncthreads();
        for (int kk = 0; kk < kChunk && k0 + kk < H; kk += 16) {
            FragA x_hi, x_lo;
            wmma::load_matrix_sync(x_hi, a_hi + bi * 16 * kLdStage + kk, kLdStage);
            wmma::load_matrix_sync(x_lo, a_lo + bi * 16 * kLdStage + kk, kLdStage);
            MNRL_UNROLL
            for (int j = 0; j < 2; j++) {
                FragBt y_hi, y_lo;
                wmma::load_matrix_sync(y_hi, c_hi + (bj + j) * 16 * kLdStage + kk, kLdStage);
                wmma::load_matrix_sync(y_lo, c_lo + (bj + j) * 16 * kLdStage + kk, kLdStage);
                mma_split(acc[j], x_hi, x_lo, y_hi, y_lo);
            }
        }
    }
    MNRL_UNROLL
    for (int j = 0; j < 2; j++) {
        for (int e = 0; e < acc[j].num_elements; e++) acc[j].x[e] *= scale;
        wmma::store_matrix_sync(scores + bi * 16 * kLdScore + (bj + j) * 16, acc[j], kLdScore, wmma::mem_row_major);
    }
}

// The score tile in fp32 (score_tile): thread (ty, tx) = (tid / 16, tid % 16) sums its 4 × 4
// scores as fmas in H order; stage: two fp32 [kChunk][kLdSimt] stages, column-major tiles.
__device__ __forceinline__ void score_tile_simt(float *scores, float *stage, const float *a_hat, int a0, int n_a,
                                                const float *c_hat, int c0, int n_c, int H, float scale) {
    float *a_stage = stage, *c_stage = stage + kChunk * kLdSimt;
    const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
    float acc[4][4] = {};
    for (int k0 = 0; k0 < H; k0 += kChunk) {
        __syncthreads();  // the previous stage is consumed
        stage_tile(a_hat, a0, n_a, k0, H, [&](int row, int k, float v) { a_stage[k * kLdSimt + row] = v; });
        stage_tile(c_hat, c0, n_c, k0, H, [&](int row, int k, float v) { c_stage[k * kLdSimt + row] = v; });
        __syncthreads();
        for (int k = 0; k < kChunk; k++) {
            float a[4], c[4];
            for (int r = 0; r < 4; r++) a[r] = a_stage[k * kLdSimt + 4 * ty + r];
            for (int s = 0; s < 4; s++) c[s] = c_stage[k * kLdSimt + 4 * tx + s];
            for (int r = 0; r < 4; r++)
                for (int s = 0; s < 4; s++) acc[r][s] = fmaf(a[r], c[s], acc[r][s]);
        }
    }
    for (int r = 0; r < 4; r++)
        for (int s = 0; s < 4; s++) scores[(4 * ty + r) * kLdScore + 4 * tx + s] = scale * acc[r][s];
}

// scores[i][j] = scale·(â[a0 + i] · ĉ[c0 + j]) for the 64 × 64 tile (rows past n_a / n_c
// read as 0), fp32 [64][kLdScore]; on tensor cores (kTC) or in fp32. Always anchors ×
// candidates, so that the gradient pass that owns candidates recomputes the forward's
// bits. Starts with a barrier (the caller's reads of the previous tile and its use of the
// stage region are over) and ends with one (scores complete, the stage region free).
template <bool kTC>
__device__ __forceinline__ void score_tile(float *scores, unsigned char *stage, const float *a_hat, int a0,
                                           int n_a, const float *c_hat, int c0, int n_c, int H, float scale) {
    if (kTC)
        score_tile_tc(scores, reinterpret_cast<bf16 *>(stage), a_hat, a0, n_a, c_hat, c0, n_c, H, scale);
    else
        score_tile_simt(scores, reinterpret_cast<float *>(stage), a_hat, a0, n_a, c_hat, c0, n_c, H, scale);
    __syncthreads();
}

// Pass 2. part[(split·b + i)·2 + {0, 1}] = (max, Σ exp(S - max)) of anchor i over the
// split's candidates; label_score[i] = S_i,label from the split holding the label.
template <bool kTC>
__global__ void __launch_bounds__(kThreads, kTileBlocksPerSM)
    lse_partial_kernel(double *part, float *label_score, const float *a_hat, const float *c_hat, LossArgs L,
                       Split sp) {
    Carve carve;
    float *scores = carve.take<float>(kScoreBytes);
    unsigned char *stage = carve.take<unsigned char>(kStageRegion);
    const int tid = threadIdx.x;
    const int a0 = blockIdx.x * kTile, n_a = min(kTile, L.b - a0), split = blockIdx.y;
    const int label = tid < n_a ? L.label_offset + a0 + tid : -1;
    const int c_first = split * sp.tiles_per_split * kTile;
    const int c_end = min(L.N, c_first + sp.tiles_per_split * kTile);
    double run_max = -INFINITY, run_sum = 0.0;
    for (int c0 = c_first; c0 < c_end; c0 += kTile) {
        const int n_c = min(kTile, c_end - c0);
        score_tile<kTC>(scores, stage, a_hat, a0, n_a, c_hat, c0, n_c, L.H, L.scale);
        if (tid < n_a) {
            const float *row = scores + tid * kLdScore;
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

// Where the gradient pass keeps G and the walked rows' chunk in the stage region: split
// into bf16 hi/lo on the tensor-core path (G [64][kLdG], rows [64][kLdStage]), fp32
// otherwise (G [64][kLdScore], rows [64][kLdOut]).
struct GradStage {
    bf16 *g_hi, *g_lo, *w_hi, *w_lo;
    float *g, *w;
    __device__ explicit GradStage(unsigned char *stage) {
        g_hi = reinterpret_cast<bf16 *>(stage);
        g_lo = g_hi + kGBytes / sizeof(bf16);
        w_hi = g_lo + kGBytes / sizeof(bf16);
        w_lo = w_hi + kStageBytes / sizeof(bf16);
        g = reinterpret_cast<float *>(stage);
        w = g + kScoreBytes / sizeof(float);
    }
};

// out[o][h] = Σ_w G[o][w]·rows[w][h] for the tile's 64 own rows and the chunk's kChunk
// columns, fp32 [64][kLdOut]: the tensor cores' block (warp / 2, warp % 2) of 16 × 16, or
// thread (tid / 16, tid % 16)'s 4 rows × 2 columns as fmas in w order.
template <bool kTC>
__device__ __forceinline__ void grad_product(float *out, const GradStage &gs, int n_w) {
    const int tid = threadIdx.x;
    if (kTC) {
        const int warp = tid / 32, bi = warp / 2, bj = warp % 2;
        FragC acc;
        wmma::fill_fragment(acc, 0.0f);
        for (int kk = 0; kk < n_w; kk += 16) {
            FragA x_hi, x_lo;
            FragB y_hi, y_lo;
            wmma::load_matrix_sync(x_hi, gs.g_hi + bi * 16 * kLdG + kk, kLdG);
            wmma::load_matrix_sync(x_lo, gs.g_lo + bi * 16 * kLdG + kk, kLdG);
            wmma::load_matrix_sync(y_hi, gs.w_hi + kk * kLdStage + bj * 16, kLdStage);
            wmma::load_matrix_sync(y_lo, gs.w_lo + kk * kLdStage + bj * 16, kLdStage);
            mma_split(acc, x_hi, x_lo, y_hi, y_lo);
        }
        wmma::store_matrix_sync(out + bi * 16 * kLdOut + bj * 16, acc, kLdOut, wmma::mem_row_major);
    } else {
        const int ty = tid / 16, tx = tid % 16;
        float acc[4][2] = {};
        for (int w = 0; w < n_w; w++) {
            float g[4], x[2];
            for (int r = 0; r < 4; r++) g[r] = gs.g[(4 * ty + r) * kLdScore + w];
            for (int c = 0; c < 2; c++) x[c] = gs.w[w * kLdOut + 2 * tx + c];
            for (int r = 0; r < 4; r++)
                for (int c = 0; c < 2; c++) acc[r][c] = fmaf(g[r], x[c], acc[r][c]);
        }
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 2; c++) out[(4 * ty + r) * kLdOut + 2 * tx + c] = acc[r][c];
    }
}

// Pass 4. Own rows (anchors when kOwnAnchors, else candidates) of this block: the slice
// slices[split][row][H] = Σ over the split's walked rows w of G(own, w)·walked_hat[w].
// Per walked tile: the score tile, G [own][walked] into the stage region (0 past the
// tile's ends), then per kChunk columns of H the walked rows' chunk, out = G·rows
// (grad_product) through the score tile's memory, and out added into the slice.
template <bool kOwnAnchors, bool kTC>
__global__ void __launch_bounds__(kThreads, kTileBlocksPerSM)
    grad_partial_kernel(float *slices, const float *a_hat, const float *c_hat, const double *lse, LossArgs L,
                        Split sp) {
    Carve carve;
    float *scores = carve.take<float>(kScoreBytes);  // then the product's output [64][kLdOut]
    unsigned char *stage = carve.take<unsigned char>(kStageRegion);
    const GradStage gs(stage);
    const float *walked = kOwnAnchors ? c_hat : a_hat;
    const int own_rows = kOwnAnchors ? L.b : L.N, walked_rows = kOwnAnchors ? L.N : L.b;
    const int tid = threadIdx.x, H = L.H;
    const int o0 = blockIdx.x * kTile, n_o = min(kTile, own_rows - o0), split = blockIdx.y;
    const int w_first = split * sp.tiles_per_split * kTile;
    const int w_end = min(walked_rows, w_first + sp.tiles_per_split * kTile);
    float *slice = slices + ((size_t)split * own_rows + o0) * H;
    for (int w0 = w_first; w0 < w_end; w0 += kTile) {
        const int n_w = min(kTile, w_end - w0);
        const int a0 = kOwnAnchors ? o0 : w0, c0 = kOwnAnchors ? w0 : o0;
        score_tile<kTC>(scores, stage, a_hat, a0, kOwnAnchors ? n_o : n_w, c_hat, c0, kOwnAnchors ? n_w : n_o, H,
                        L.scale);
        for (int idx = tid; idx < kTile * kTile; idx += kThreads) {
            const int o = idx / kTile, w = idx % kTile;
            const int i = kOwnAnchors ? o : w, j = kOwnAnchors ? w : o;  // anchor, candidate in the tile
            float g = 0.0f;
            if (o < n_o && w < n_w) {
                const float p = expf((float)((double)scores[i * kLdScore + j] - lse[a0 + i]));
                g = (p - (c0 + j == L.label_offset + a0 + i ? 1.0f : 0.0f)) * L.grad_scale;
            }
            if (kTC)
                split_bf16(g, gs.g_hi + o * kLdG + w, gs.g_lo + o * kLdG + w);
            else
                gs.g[o * kLdScore + w] = g;
        }
        for (int h0 = 0; h0 < H; h0 += kChunk) {
            __syncthreads();  // G is complete (first chunk); the previous output is added (later ones)
            if (kTC)
                stage_split(gs.w_hi, gs.w_lo, walked, w0, n_w, h0, H);
            else
                stage_tile(walked, w0, n_w, h0, H, [&](int row, int k, float v) { gs.w[row * kLdOut + k] = v; });
            __syncthreads();
            grad_product<kTC>(scores, gs, n_w);
            __syncthreads();
            for (int idx = tid; idx < kTile * kChunk; idx += kThreads) {
                const int o = idx / kChunk, h = h0 + idx % kChunk;
                if (o >= n_o || h >= H) continue;
                float *dst = slice + (size_t)o * H + h;
                const float add = scores[o * kLdOut + idx % kChunk];
                *dst = w0 == w_first ? add : *dst + add;  // this thread's own element
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

template <bool kOwnAnchors, bool kTC>
int gradient(float *dx, const Scratch &s, const LossArgs &L, cudaStream_t stream, MnrlError *err) {
    const int own_rows = kOwnAnchors ? L.b : L.N;
    const Split sp = make_split(own_rows, kOwnAnchors ? L.N : L.b);
    CUDA_LAUNCH(dim3((unsigned)sp.own_tiles, (unsigned)sp.splits), kThreads, kTileSmemBytes, stream,
                grad_partial_kernel<kOwnAnchors, kTC>)(s.slices, s.a_hat, s.c_hat, s.lse, L, sp);
    CUDA_CHECK(cudaGetLastError(), err);
    CUDA_LAUNCH(row_blocks(own_rows), dim3(32, kRowWarps), 0, stream, finish_kernel)(
        dx, s.slices, kOwnAnchors ? s.a_hat : s.c_hat, kOwnAnchors ? s.a_norm : s.c_norm, own_rows, L.H, sp.splits);
    CUDA_CHECK(cudaGetLastError(), err);
    return 0;
}

// Passes 1-5 (the header's list) on the stream.
template <bool kTC>
int run(float *loss, float *dA, float *dCd, const float *A, const float *Cd, const Scratch &s, const LossArgs &L,
        int global_batch, cudaStream_t stream, MnrlError *err) {
    const int b = L.b, N = L.N, H = L.H;
    CUDA_LAUNCH(row_blocks(b), dim3(32, kRowWarps), 0, stream, normalize_kernel)(s.a_hat, s.a_norm, A, b, H);
    CUDA_CHECK(cudaGetLastError(), err);
    CUDA_LAUNCH(row_blocks(N), dim3(32, kRowWarps), 0, stream, normalize_kernel)(s.c_hat, s.c_norm, Cd, N, H);
    CUDA_CHECK(cudaGetLastError(), err);
    const Split sp = make_split(b, N);
    CUDA_LAUNCH(dim3((unsigned)sp.own_tiles, (unsigned)sp.splits), kThreads, kTileSmemBytes, stream,
                lse_partial_kernel<kTC>)(s.part, s.label_score, s.a_hat, s.c_hat, L, sp);
    CUDA_CHECK(cudaGetLastError(), err);
    CUDA_LAUNCH((unsigned)((b + kThreads - 1) / kThreads), kThreads, 0, stream, row_loss_kernel)(
        s.lse, s.row_loss, s.part, s.label_score, b, sp.splits);
    CUDA_CHECK(cudaGetLastError(), err);
    CUDA_LAUNCH(1, kThreads, 0, stream, loss_sum_kernel)(loss, s.row_loss, b, global_batch);
    CUDA_CHECK(cudaGetLastError(), err);
    if (!dA) return 0;
    if (gradient<true, kTC>(dA, s, L, stream, err) != 0) return -1;
    return gradient<false, kTC>(dCd, s, L, stream, err);
}

}  // namespace

extern "C" size_t mnrl_cuda_mnrl_loss_workspace_bytes(int max_anchors, int max_candidates, int H) {
    Scratch s;
    return carve(&s, NULL, max_anchors, max_candidates, H);
}

extern "C" int mnrl_cuda_mnrl_loss(float *loss, float *dA, float *dCd, const float *A, const float *Cd, int b,
                                   int N, int H, float scale, int label_offset, int global_batch, int tensor_cores,
                                   void *workspace, cudaStream_t stream, MnrlError *err) {
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
    return tensor_cores ? run<true>(loss, dA, dCd, A, Cd, s, L, global_batch, stream, err)
                        : run<false>(loss, dA, dCd, A, Cd, s, L, global_batch, stream, err);
}
