// attention.cu — scaled dot-product self-attention over packed variable-length sentences
// (cu_seqlens; a sentence attends to its own tokens only), forward and backward, fp32 and
// bf16 activations, fp32 softmax and accumulation.
// CPU ops it must match: ops_cpu()->attention_forward / attention_backward (ops.h),
// including the attention-probability dropout: element (query token t, head h, key j) is
// e = ((token_offset + t)·NH + h)·max_seqlen + j of the rng.h stream (seed, rng_stream).
//
// Two implementations (attention.cuh says what they share): bf16 activations whose
// pointers are 16-byte aligned (every call from model.c) run the tensor-core kernels
// of attention_tc.cu (nvcuda::wmma: QK^T, P·V and the backward products on bf16 16x16x16
// tiles, fp32 accumulation); fp32 activations (precision "fp32") and unaligned bf16 rows
// run the portable kernels of this file, described below. Both follow the same dropout
// indexing and saved-state contract.
//
// Saved state (flash-attention style, what ops.h's attention_saved_bytes lets a backend
// choose): forward saves the log-sum-exp of every softmax row, fp32 [T, NH] at t·NH + h,
// and backward recomputes the probabilities P_ij = exp(q_i·k_j·scale - lse_i) tile by
// tile. After the log-sum-exp come the dropout decisions of the tensor-core forward (its
// header comment), which its backward reads instead of drawing the mask again; the
// portable kernels draw it in all three passes and leave those words alone. Memory per
// layer: T·NH·(1 + ceil(max_seqlen / 32)) words (mnrl_cuda_attention_saved_bytes) instead
// of the CPU's T·NH·max_seqlen floats.
//
// Work split of the portable kernels. A row (query row in forward and dQ, key row in
// dK/dV) is owned by a group of G = HS/8 lanes of a warp (HS 16, 32, 64, 128 -> 2, 4, 8,
// 16 lanes), each lane holding 8 of the row's columns (16-byte chunks g, g+G, ...: one
// chunk in bf16, two in fp32) of every row vector in fp32 registers, so no head size
// spills (one thread per row needed 2-4 arrays of HS floats). Blocks have kThreads = 128
// threads, a pass of 128/G rows, and take one work item (sentence, head, rows): the other
// side's rows (K and V, or Q, dO, lse and D) stream through shared memory in tiles of up
// to tile_rows rows (about 32 KiB, in the act dtype: the exact values; arithmetic is
// fp32), with an online softmax over them (running max and sum, the accumulator rescaled
// when the max grows), as flash attention.
//  - max_seqlen <= tile_rows (all of NLI): one item per (sentence, head), the whole
//    sentence, which the block covers in passes of 128/G rows over one tile loaded once;
//    a 12-token sentence keeps 12·G threads busy, not a block of max_seqlen threads;
//  - longer batches: one item per (sentence, head, pass of 128/G rows), so a long
//    sentence spreads over many blocks; items past a sentence's end exit at once.
// The group walks the tile in batches of kBatch = 8 other-side rows, in three steps
// separated by __syncwarp (run_item): every lane computes its 8-term partial dot products
// with the batch's rows (kBatch independent FMA chains); one lane per batch row adds the
// group's G partials (in lane order: the same bits wherever they are used) and does the
// row's scalar work (exp, dropout, dS); every lane then applies the resulting coefficients
// to its 8 columns. The group shares partials and coefficients through shared memory
// (Exchange), not a shuffle butterfly per dot product: a few warp barriers per batch,
// which also keeps the CPU emulation (a fiber switch per lane and collective) fast.
// Warps whose rows are all past the sentence skip the tiles (they only join barriers).
// All rows of a block walk the same keys in the same order, so every lane reaches the
// warp barriers together.
//
// Backward: O = (P∘M)V with M the dropout multipliers gives dV = (P∘M)^T dO,
// dP = (dO V^T)∘M, dS = P∘(dP - D)·scale with D_i = dO_i·O_i, dQ = dS K, dK = dS^T Q.
// Two kernels, each group owning the rows it writes (no atomics, fixed order):
// attention_dq_kernel (group per query: D_i into the workspace, then dQ_i) and
// attention_dkdv_kernel (group per key: dK_j, dV_j, reading D and lse). Both recompute
// scores and dP. Dropout bits come from Philox blocks shared by the group (RowDropout,
// ColDropout), not drawn again by each of its G lanes.
#include <cuda_bf16.h>

#include <type_traits>

#include "mnrl/cuda_launch.h"
#include "mnrl/kernels.h"
#include "mnrl/rng.h"
#include "kernel_util.cuh"
#include "attention.cuh"

namespace {

using mnrl_attention::DropoutArgs;
using mnrl_attention::keep_bit;
using mnrl_attention::philox_word;

const int kThreads = 128;            // threads per block, every kernel and head size
const int kMinBlocks = 5;            // per SM: <= 102 registers (unbounded, ptxas chose 80 and spilled)
const int kTileBytes = 32 * 1024;    // shared-memory budget of one tile's row vectors
const int kMaxTileRows = 128;
const int kBatch = 8;                // other-side rows per exchange of partial dot products

// What every kernel needs to find its rows: the packed layout and the work items.
struct Layout {
    const int32_t *cu_seqlens;
    int C, NH, max_seqlen;
    int tile_rows;      // other-side rows per shared-memory tile
    int item_rows;      // rows of a work item: max_seqlen (whole sentences) or one pass
    int items_per_seq;  // work items per sentence (blockIdx.x = s·items_per_seq + item)
    float scale;        // 1 / sqrt(HS)
};

// Column of element k (0..7) of lane g's slice of a row of HS elements: 16-byte chunks g,
// g + G, ... (one chunk in bf16, two in fp32), so that the lanes of a group read
// consecutive chunks of a shared-memory row (no bank conflicts).
template <class T, int HS>
__device__ __forceinline__ int column(int g, int k) {
    return ((k / kVec<T>) * (HS / 8) + g) * kVec<T> + k % kVec<T>;
}

__device__ __forceinline__ float partial_dot(const float (&x)[8], const float (&y)[8]) {
    float acc = 0.0f;
    for (int k = 0; k < 8; k++) acc += x[k] * y[k];
    return acc;
}

__device__ __forceinline__ void axpy(float (&y)[8], float a, const float (&x)[8]) {
    for (int k = 0; k < 8; k++) y[k] += a * x[k];
}

__device__ __forceinline__ void zero(float (&x)[8]) {
    for (int k = 0; k < 8; k++) x[k] = 0.0f;
}

// A butterfly over the G lanes of a group; every lane ends with the same bits.
template <int G>
__device__ __forceinline__ float group_sum(float x) {
    for (int offset = G / 2; offset > 0; offset >>= 1) x += __shfl_xor_sync(0xffffffffu, x, offset);
    return x;
}

// The lane's 8 elements of a row in global memory (its own row: read once per pass).
template <class T, int HS>
__device__ __forceinline__ void load_slice(float (&x)[8], const T *row, int g) {
    for (int k = 0; k < 8; k++) x[k] = to_f32(row[column<T, HS>(g, k)]);
}

template <class T, int HS>
__device__ __forceinline__ void store_slice(T *row, int g, const float (&x)[8], float scale) {
    for (int k = 0; k < 8; k++) store(&row[column<T, HS>(g, k)], x[k] * scale);
}

// The lane's 8 elements of row r of a shared-memory tile [rows][HS], 16 bytes per load.
template <class T, int HS>
__device__ __forceinline__ void tile_slice(float (&x)[8], const T *tile, int r, int g) {
    const int V = kVec<T>;
    for (int c = 0; c < 8 / V; c++) {
        float part[V];
        load_f32<T, V>(part, tile + r * HS + column<T, HS>(g, c * V));
        for (int e = 0; e < V; e++) x[c * V + e] = part[e];
    }
}

// Copies rows [r0, r0 + n) of one head's column block (offset col) of a [*, ld] tensor into
// a tile, consecutive threads on consecutive columns (coalesced).
template <class T, int HS>
__device__ void load_rows(T *dst, const T *src, int ld, int col, int r0, int n) {
    for (int idx = threadIdx.x; idx < n * HS; idx += kThreads)
        dst[idx] = src[(size_t)(r0 + idx / HS) * ld + col + idx % HS];
}

// What the lanes of a group exchange through shared memory for a batch of kBatch
// other-side rows, between __syncwarp()s (see run_item):
//  - partials [kValues][kBatch][kThreads]: lane g's 8-term partial of dot product v with
//    batch row b; total() adds the group's G partials in lane order;
//  - coefficients [kCoefs][kThreads/G][kBatch]: per group and batch row, what one lane
//    computed from the totals (a score, a probability, dS) for all lanes to use;
//  - words [kThreads]: dropout bits drawn by one lane for its group.
// One lane per batch row does the scalar work (exp, dropout, dS) instead of all G, and a
// batch costs 2 or 3 warp barriers instead of a shuffle butterfly per dot product (the
// emulation pays a fiber switch per lane for every warp collective).
template <int G, int kValues, int kCoefs>
struct Exchange {
    static const int kGroups = kThreads / G;
    float *buf;

    __host__ __device__ static constexpr size_t bytes() {
        return sizeof(float) * ((size_t)kValues * kBatch * kThreads + (size_t)kCoefs * kGroups * kBatch + kThreads);
    }
    __device__ __forceinline__ float *partials(int v, int b) const { return buf + (v * kBatch + b) * kThreads; }
    __device__ __forceinline__ float *coefs(int c) const {
        return buf + kValues * kBatch * kThreads + (c * kGroups + (int)threadIdx.x / G) * kBatch;
    }
    __device__ __forceinline__ uint32_t *words() const {
        return reinterpret_cast<uint32_t *>(buf + kValues * kBatch * kThreads + kCoefs * kGroups * kBatch);
    }

    __device__ __forceinline__ void put(int v, int b, float x) const { partials(v, b)[threadIdx.x] = x; }
    __device__ __forceinline__ float total(int v, int b) const {
        const int V = G < 4 ? G : 4;
        const float *p = partials(v, b) + threadIdx.x / G * G;
        float acc = 0.0f;  // + the first partial: exact
        for (int c = 0; c < G / V; c++) {
            float part[V];
            load_f32<float, V>(part, p + c * V);
            for (int e = 0; e < V; e++) acc += part[e];
        }
        return acc;
    }
    __device__ __forceinline__ void put_coef(int c, int b, float x) const { coefs(c)[b] = x; }
    __device__ __forceinline__ float coef(int c, int b) const { return coefs(c)[b]; }
    // All kBatch coefficients c of the group (entries past the batch's rows are stale).
    __device__ __forceinline__ void all_coefs(int c, float (&x)[kBatch]) const {
        for (int h = 0; h < kBatch / 4; h++) {
            float part[4];
            load_f32<float, 4>(part, coefs(c) + 4 * h);
            for (int e = 0; e < 4; e++) x[4 * h + e] = part[e];
        }
    }
    __device__ __forceinline__ void put_word(uint32_t w) const { words()[threadIdx.x] = w; }
    // The word of lane l of this lane's group.
    __device__ __forceinline__ uint32_t word(int l) const { return words()[threadIdx.x / G * G + l]; }
};

// Dropout element of (query token t, head h, key j) per ops.h.
__device__ __forceinline__ uint64_t dropout_element(const Layout &L, const DropoutArgs &d, int t, int h, int j) {
    return mnrl_attention::dropout_element(d, L.NH, L.max_seqlen, t, h, j);
}

// Dropout multipliers (0 or 1/keep_prob) of a group walking one query row's consecutive
// elements e0 + j, keys j = 0, 1, ... (forward and dQ). Philox gives 4 elements per block;
// when a batch is not covered, the group draws kBlocks blocks from the one holding e0 + j,
// lane g blocks g, g + G, ... (draw, with the batch's partials), and every lane collects
// the group's bits from the exchange words (collect, after the __syncwarp): one Philox
// block per lane per 4·kBlocks - 3 keys or more, not one per 4 keys in every lane.
template <int G>
struct RowDropout {
    static const int kPerLane = (3 + G - 1) / G;  // a batch of 8 keys spans up to 3 blocks
    static const int kBlocks = kPerLane * G;
    uint64_t bits = 0, first = 0;  // bit x: element first + x is kept
    int covered = 0;               // keys below it have their bits
    bool drawn = false;

    template <class X>
    __device__ void draw(const DropoutArgs &d, const X &x, uint64_t e0, int j) {
        if (d.keep_prob >= 1.0f || j + kBatch <= covered) return;  // the same in every group
        const uint64_t b = (e0 + j) >> 2;
        uint32_t w = 0;
        for (int r = 0; r < kPerLane; r++) {
            const MnrlPhilox4 block = mnrl_rng_block(d.seed, d.rng_stream, b + threadIdx.x % G + G * r);
            for (int k = 0; k < 4; k++) w |= keep_bit(d, block.v[k]) << (4 * r + k);
        }
        x.put_word(w);
        first = 4 * b;
        covered = j + 4 * kBlocks - 3;
        drawn = true;
    }

    template <class X>
    __device__ void collect(const X &x) {
        if (!drawn) return;
        drawn = false;
        bits = 0;
        for (int l = 0; l < G; l++)
            for (int r = 0; r < kPerLane; r++)
                bits |= (uint64_t)((x.word(l) >> (4 * r)) & 15u) << (4 * (l + G * r));
    }

    __device__ float at(const DropoutArgs &d, uint64_t e0, int j) const {
        if (d.keep_prob >= 1.0f) return 1.0f;
        return (bits >> (e0 + j - first)) & 1 ? d.keep_scale : 0.0f;
    }
};

// Dropout multipliers of a group walking one key's column, queries i = 0, 1, ... of its
// sentence (dK/dV): consecutive queries are NH·max_seqlen elements apart, so each needs its
// own Philox block; lane g draws those of batch queries g, g + G, ... and every lane
// collects the batch's kBatch bits from the exchange words.
template <int G>
struct ColDropout {
    static const int kPerLane = (kBatch + G - 1) / G;
    uint32_t bits = 0;  // bit b: batch query b is kept

    template <class X>
    __device__ void draw(const DropoutArgs &d, const X &x, const Layout &L, int start, int h, int j, int i0) {
        if (d.keep_prob >= 1.0f) return;
        uint32_t w = 0;
        for (int r = 0; r < kPerLane; r++) {
            const int b = (int)(threadIdx.x % G) + G * r;
            if (b >= kBatch) break;
            const uint64_t e = dropout_element(L, d, start + i0 + b, h, j);
            w |= keep_bit(d, philox_word(mnrl_rng_block(d.seed, d.rng_stream, e >> 2), e & 3)) << r;
        }
        x.put_word(w);
    }

    template <class X>
    __device__ void collect(const DropoutArgs &d, const X &x) {
        if (d.keep_prob >= 1.0f) return;
        bits = 0;
        for (int b = 0; b < kBatch; b++) bits |= ((x.word(b % G) >> (b / G)) & 1u) << b;
    }

    __device__ float at(const DropoutArgs &d, int b) const {
        if (d.keep_prob >= 1.0f) return 1.0f;
        return (bits >> b) & 1 ? d.keep_scale : 0.0f;
    }
};

// Runs this block's work item with a kernel's row operations:
//   rows.begin(start, i, active)  the group's row i of the sentence starting at token start
//   rows.load(t0, n)              the block copies rows t0 .. t0+n-1 of the other side to
//                                 shared memory (between barriers)
//   then for each batch of nb <= kBatch tile rows j0 .. j0+nb-1 (sentence rows j ..):
//   rows.partials(j, j0, nb)      every lane: its partial dot products (and dropout draws)
//   rows.coefficients(j, j0, nb)  lane b % G of the group: batch row b's scalar work
//   rows.accumulate(j0, nb)       every lane: its 8 columns of the row's sums
//   rows.end()                    the group writes its row (when active)
// in passes of kThreads / G rows; a sentence that fits one tile is loaded once per item.
template <int G, class Rows>
__device__ __forceinline__ void run_item(const Layout &L, Rows &rows) {
    const int w = blockIdx.x, s = w / L.items_per_seq;
    const int start = L.cu_seqlens[s], len = L.cu_seqlens[s + 1] - start;
    const int row0 = w % L.items_per_seq * L.item_rows, row_end = min(len, row0 + L.item_rows);
    for (int r0 = row0; r0 < row_end; r0 += kThreads / G) {
        const int i = r0 + (int)threadIdx.x / G;
        const bool warp_busy = r0 + (int)threadIdx.x / 32 * (32 / G) < row_end;  // uniform per warp
        rows.begin(start, i, i < row_end);
        for (int k0 = 0; k0 < len; k0 += L.tile_rows) {
            const int n = min(L.tile_rows, len - k0);
            if (r0 == row0 || len > L.tile_rows) {  // else the sentence is still in the tile
                __syncthreads();  // the previous tile is consumed
                rows.load(start + k0, n);
                __syncthreads();
            }
            if (!warp_busy) continue;
            for (int j0 = 0; j0 < n; j0 += kBatch) {
                const int nb = min(kBatch, n - j0);
                rows.partials(k0 + j0, j0, nb);
                __syncwarp();
                rows.coefficients(k0 + j0, j0, nb);
                __syncwarp();
                rows.accumulate(j0, nb);
            }
        }
        rows.end();
    }
}

// What the row operations of every kernel share. Dynamic shared memory holds the exchange
// buffer, then the kernel's tiles.
template <int G, int kValues, int kCoefs>
struct RowsBase {
    using X = Exchange<G, kValues, kCoefs>;
    Layout L;
    DropoutArgs drop;
    int h, g;  // head; lane within the row's group
    X x;

    __device__ RowsBase(const Layout &L_, const DropoutArgs &drop_)
        : L(L_), drop(drop_), h(blockIdx.y), g(threadIdx.x % G), x{reinterpret_cast<float *>(mnrl_dyn_smem)} {}

    // Tile k of the rows of HS elements of T after the exchange buffer.
    template <class T, int HS>
    __device__ T *tile(int k) const {
        return reinterpret_cast<T *>(mnrl_dyn_smem + X::bytes()) + (size_t)k * L.tile_rows * HS;
    }
};

// acc += Σ_b coef[b]·(row r0 + b of tile), b < nb: this lane's 8 columns of the batch's rows
// weighted by the coefficients the exchange shared (in row order, as the CPU sums).
template <class T, int HS>
__device__ __forceinline__ void add_tile_rows(float (&acc)[8], const float (&coef)[kBatch], const T *tile, int r0,
                                              int nb, int g) {
    for (int b = 0; b < kBatch; b++)
        if (b < nb) {
            float row[8];
            tile_slice<T, HS>(row, tile, r0 + b, g);
            axpy(acc, coef[b], row);
        }
}

// Head h's keys and values of tokens [t0, t0 + n) into their tiles (forward and dQ stream
// the same two).
template <class T, int HS>
__device__ __forceinline__ void load_keys_values(T *k_tile, T *v_tile, const T *qkv, const Layout &L, int h, int t0,
                                                 int n) {
    load_rows<T, HS>(k_tile, qkv, 3 * L.C, L.C + h * HS, t0, n);
    load_rows<T, HS>(v_tile, qkv, 3 * L.C, 2 * L.C + h * HS, t0, n);
}

// Forward: group per query row, keys and values streamed; O_i and lse_i. Online softmax
// per batch: the batch's scores (one lane per key), their max, one rescale of what was
// summed under the old max when the batch raises it, then the weights p·M (one lane per
// key) that every lane applies to its columns of V. Each lane sums the probabilities of
// its keys; end() adds the group's sums.
template <class T, int HS>
struct ForwardRows : RowsBase<HS / 8, 1, 2> {
    static const int G = HS / 8;
    using Base = RowsBase<G, 1, 2>;
    using Base::L, Base::drop, Base::h, Base::g, Base::x;
    T *out;
    float *lse;
    const T *qkv;
    T *k_tile, *v_tile;
    int t;
    bool active;
    uint64_t e0;  // dropout element of key 0
    float q[8], o[8], m, l;
    RowDropout<G> mask;

    __device__ ForwardRows(const Layout &L_, const DropoutArgs &drop_, T *out_, float *lse_, const T *qkv_)
        : Base(L_, drop_), out(out_), lse(lse_), qkv(qkv_), k_tile(this->template tile<T, HS>(0)),
          v_tile(this->template tile<T, HS>(1)) {}

    __device__ __forceinline__ void begin(int start, int i, bool row_active) {
        t = start + i;
        active = row_active;
        if (active) load_slice<T, HS>(q, qkv + (size_t)t * 3 * L.C + h * HS, g);
        else zero(q);
        zero(o);
        m = -INFINITY;
        l = 0.0f;
        e0 = dropout_element(L, drop, t, h, 0);
        mask = RowDropout<G>();
    }

    __device__ __forceinline__ void load(int t0, int n) { load_keys_values<T, HS>(k_tile, v_tile, qkv, L, h, t0, n); }

    __device__ __forceinline__ void partials(int j, int j0, int nb) {
        for (int b = 0; b < kBatch; b++)
            if (b < nb) {
                float k[8];
                tile_slice<T, HS>(k, k_tile, j0 + b, g);
                x.put(0, b, partial_dot(q, k));
            }
        mask.draw(drop, x, e0, j);
    }

    __device__ __forceinline__ void coefficients(int j, int, int nb) {
        mask.collect(x);
        for (int b = g; b < nb; b += G) x.put_coef(0, b, x.total(0, b) * L.scale);
        __syncwarp();
        float s[kBatch], m_new = m;
        x.all_coefs(0, s);
        for (int b = 0; b < kBatch; b++)
            if (b < nb) m_new = fmaxf(m_new, s[b]);
        if (m_new > m) {
            const float correction = expf(m - m_new);
            l *= correction;
            for (int k = 0; k < 8; k++) o[k] *= correction;
            m = m_new;
        }
        for (int b = g; b < nb; b += G) {
            const float p = expf(x.coef(0, b) - m);
            l += p;
            x.put_coef(1, b, p * mask.at(drop, e0, j + b));
        }
    }

    __device__ __forceinline__ void accumulate(int j0, int nb) {
        float w[kBatch];
        x.all_coefs(1, w);
        add_tile_rows<T, HS>(o, w, v_tile, j0, nb, g);
    }

    __device__ __forceinline__ void end() {
        const float sum = group_sum<G>(l);
        if (!active) return;
        store_slice<T, HS>(out + (size_t)t * L.C + h * HS, g, o, 1.0f / sum);
        if (g == 0) lse[(size_t)t * L.NH + h] = m + logf(sum);
    }
};

// Backward, query side: D_i = dO_i·O_i (to the workspace, for the key side) and
// dQ_i = Σ_j dS_ij k_j, group per query, keys and values streamed; dS_ij one lane per key.
template <class T, int HS>
struct DqRows : RowsBase<HS / 8, 2, 1> {
    static const int G = HS / 8;
    using Base = RowsBase<G, 2, 1>;
    using Base::L, Base::drop, Base::h, Base::g, Base::x;
    T *dqkv;
    float *dsum;
    const T *dout, *qkv, *out;
    const float *lse;
    T *k_tile, *v_tile;
    int t;
    bool active;
    uint64_t e0;
    float q[8], d_o[8], dq[8], D, row_lse;
    RowDropout<G> mask;

    __device__ DqRows(const Layout &L_, const DropoutArgs &drop_, T *dqkv_, float *dsum_, const T *dout_,
                      const T *qkv_, const T *out_, const float *lse_)
        : Base(L_, drop_), dqkv(dqkv_), dsum(dsum_), dout(dout_), qkv(qkv_), out(out_), lse(lse_),
          k_tile(this->template tile<T, HS>(0)), v_tile(this->template tile<T, HS>(1)) {}

    __device__ __forceinline__ void begin(int start, int i, bool row_active) {
        t = start + i;
        active = row_active;
        float o[8];
        if (active) {
            load_slice<T, HS>(q, qkv + (size_t)t * 3 * L.C + h * HS, g);
            load_slice<T, HS>(d_o, dout + (size_t)t * L.C + h * HS, g);
            load_slice<T, HS>(o, out + (size_t)t * L.C + h * HS, g);
            row_lse = lse[(size_t)t * L.NH + h];
        } else {
            zero(q);
            zero(d_o);
            zero(o);
            row_lse = 0.0f;
        }
        D = group_sum<G>(partial_dot(d_o, o));
        if (active && g == 0) dsum[(size_t)t * L.NH + h] = D;
        zero(dq);
        e0 = dropout_element(L, drop, t, h, 0);
        mask = RowDropout<G>();
    }

    __device__ __forceinline__ void load(int t0, int n) { load_keys_values<T, HS>(k_tile, v_tile, qkv, L, h, t0, n); }

    __device__ __forceinline__ void partials(int j, int j0, int nb) {
        for (int b = 0; b < kBatch; b++)
            if (b < nb) {
                float k[8], v[8];
                tile_slice<T, HS>(k, k_tile, j0 + b, g);
                tile_slice<T, HS>(v, v_tile, j0 + b, g);
                x.put(0, b, partial_dot(q, k));
                x.put(1, b, partial_dot(d_o, v));
            }
        mask.draw(drop, x, e0, j);
    }

    __device__ __forceinline__ void coefficients(int j, int, int nb) {
        mask.collect(x);
        for (int b = g; b < nb; b += G) {
            const float p = expf(x.total(0, b) * L.scale - row_lse);
            const float keep = mask.at(drop, e0, j + b);
            const float dp = keep != 0.0f ? x.total(1, b) * keep : 0.0f;
            x.put_coef(0, b, p * (dp - D) * L.scale);
        }
    }

    __device__ __forceinline__ void accumulate(int j0, int nb) {
        float ds[kBatch];
        x.all_coefs(0, ds);
        add_tile_rows<T, HS>(dq, ds, k_tile, j0, nb, g);
    }

    __device__ __forceinline__ void end() {
        if (active) store_slice<T, HS>(dqkv + (size_t)t * 3 * L.C + h * HS, g, dq, 1.0f);
    }
};

// Backward, key side: group per key j, queries (with their dO, lse and D) streamed:
// dK_j = Σ_i dS_ij q_i, dV_j = Σ_i P_ij M_ij dO_i; dS_ij and P_ij M_ij one lane per query.
template <class T, int HS>
struct DkdvRows : RowsBase<HS / 8, 2, 2> {
    static const int G = HS / 8;
    using Base = RowsBase<G, 2, 2>;
    using Base::L, Base::drop, Base::h, Base::g, Base::x;
    T *dqkv;
    const float *dsum;
    const T *dout, *qkv;
    const float *lse;
    T *q_tile, *do_tile;
    float *lse_tile, *d_tile;
    int start, j;
    bool active;
    float k[8], v[8], dk[8], dv[8];
    ColDropout<G> mask;

    __device__ DkdvRows(const Layout &L_, const DropoutArgs &drop_, T *dqkv_, const float *dsum_, const T *dout_,
                        const T *qkv_, const float *lse_)
        : Base(L_, drop_), dqkv(dqkv_), dsum(dsum_), dout(dout_), qkv(qkv_), lse(lse_),
          q_tile(this->template tile<T, HS>(0)), do_tile(this->template tile<T, HS>(1)),
          lse_tile(reinterpret_cast<float *>(this->template tile<T, HS>(2))), d_tile(lse_tile + L_.tile_rows) {}

    __device__ __forceinline__ void begin(int start_, int j_, bool row_active) {
        start = start_;
        j = j_;
        active = row_active;
        const T *row = qkv + (size_t)(start + j) * 3 * L.C + L.C + h * HS;
        if (active) {
            load_slice<T, HS>(k, row, g);
            load_slice<T, HS>(v, row + L.C, g);
        } else {
            zero(k);
            zero(v);
        }
        zero(dk);
        zero(dv);
        mask = ColDropout<G>();
    }

    __device__ __forceinline__ void load(int t0, int n) {
        load_rows<T, HS>(q_tile, qkv, 3 * L.C, h * HS, t0, n);
        load_rows<T, HS>(do_tile, dout, L.C, h * HS, t0, n);
        for (int r = threadIdx.x; r < n; r += kThreads) {
            lse_tile[r] = lse[(size_t)(t0 + r) * L.NH + h];
            d_tile[r] = dsum[(size_t)(t0 + r) * L.NH + h];
        }
    }

    __device__ __forceinline__ void partials(int i, int i0, int nb) {
        for (int b = 0; b < kBatch; b++)
            if (b < nb) {
                float q[8], d_o[8];
                tile_slice<T, HS>(q, q_tile, i0 + b, g);
                tile_slice<T, HS>(d_o, do_tile, i0 + b, g);
                x.put(0, b, partial_dot(k, q));
                x.put(1, b, partial_dot(v, d_o));
            }
        mask.draw(drop, x, L, start, h, j, i);
    }

    __device__ __forceinline__ void coefficients(int, int i0, int nb) {
        mask.collect(drop, x);
        for (int b = g; b < nb; b += G) {
            const float p = expf(x.total(0, b) * L.scale - lse_tile[i0 + b]);
            const float keep = mask.at(drop, b);
            const float dp = keep != 0.0f ? x.total(1, b) * keep : 0.0f;
            x.put_coef(0, b, p * (dp - d_tile[i0 + b]) * L.scale);
            x.put_coef(1, b, p * keep);
        }
    }

    __device__ __forceinline__ void accumulate(int i0, int nb) {
        float ds[kBatch], pm[kBatch];
        x.all_coefs(0, ds);
        x.all_coefs(1, pm);
        add_tile_rows<T, HS>(dk, ds, q_tile, i0, nb, g);
        add_tile_rows<T, HS>(dv, pm, do_tile, i0, nb, g);
    }

    __device__ __forceinline__ void end() {
        if (!active) return;
        T *row = dqkv + (size_t)(start + j) * 3 * L.C + L.C + h * HS;
        store_slice<T, HS>(row, g, dk, 1.0f);
        store_slice<T, HS>(row + L.C, g, dv, 1.0f);
    }
};

template <class T, int HS>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
    attention_forward_kernel(Layout L, DropoutArgs drop, T *out, float *lse, const T *qkv) {
    ForwardRows<T, HS> rows(L, drop, out, lse, qkv);
    run_item<HS / 8>(L, rows);
}

template <class T, int HS>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
    attention_dq_kernel(Layout L, DropoutArgs drop, T *dqkv, float *dsum, const T *dout, const T *qkv,
                        const T *out, const float *lse) {
    DqRows<T, HS> rows(L, drop, dqkv, dsum, dout, qkv, out, lse);
    run_item<HS / 8>(L, rows);
}

template <class T, int HS>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
    attention_dkdv_kernel(Layout L, DropoutArgs drop, T *dqkv, const float *dsum, const T *dout, const T *qkv,
                          const float *lse) {
    DkdvRows<T, HS> rows(L, drop, dqkv, dsum, dout, qkv, lse);
    run_item<HS / 8>(L, rows);
}

// Tiles of at most kTileBytes (and no more rows than a sentence can have); whole sentences
// per item when max_seqlen fits one tile, else one pass of rows per item.
Layout make_layout(const int32_t *cu_seqlens, int C, int NH, int max_seqlen, size_t row_bytes) {
    const int HS = C / NH, pass_rows = kThreads / (HS / 8);
    int tile_rows = (int)(kTileBytes / row_bytes);
    tile_rows = tile_rows < kMaxTileRows ? tile_rows : kMaxTileRows;
    const bool whole = max_seqlen <= tile_rows;
    Layout L;
    L.cu_seqlens = cu_seqlens;
    L.C = C;
    L.NH = NH;
    L.max_seqlen = max_seqlen;
    L.tile_rows = whole ? max_seqlen : tile_rows;
    L.item_rows = whole ? max_seqlen : pass_rows;
    L.items_per_seq = whole ? 1 : (max_seqlen + pass_rows - 1) / pass_rows;
    L.scale = 1.0f / sqrtf((float)HS);
    return L;
}

int check_args(const char *what, int S, int T, int max_seqlen, int C, int NH, float keep_prob, int token_offset,
               MnrlError *err) {
    if (S < 0 || T < 0 || max_seqlen < 1 || C <= 0 || NH <= 0 || C % NH != 0 || NH > 65535 || token_offset < 0)
        return mnrl_fail(err, "%s:%d: %s: bad shape S=%d T=%d max_seqlen=%d C=%d NH=%d token_offset=%d (need S, "
                         "T, token_offset >= 0, max_seqlen >= 1, C a positive multiple of NH); this is a bug in "
                         "the caller", __FILE__, __LINE__, what, S, T, max_seqlen, C, NH, token_offset);
    const int HS = C / NH;
    if (HS != 16 && HS != 32 && HS != 64 && HS != 128)
        return mnrl_fail(err, "%s:%d: %s: head size %d (hidden %d / %d heads) is not supported by the CUDA "
                         "attention kernels (16, 32, 64 or 128); use the CPU backend for this model",
                         __FILE__, __LINE__, what, HS, C, NH);
    return check_keep_prob(what, keep_prob, err);
}

// Launches kernel(L, drop, args...) with one block per work item and head. Shared memory:
// the exchange buffer (exchange bytes), then tile_rows rows of row_bytes each (at most
// kTileBytes plus dK/dV's lse and D; with the exchange under the default 48 KiB).
template <class... Params, class... Args>
int launch(void (*kernel)(Layout, DropoutArgs, Params...), size_t exchange, size_t row_bytes, const int32_t *cu_seqlens,
           int S, int C, int NH, int max_seqlen, DropoutArgs drop, cudaStream_t stream, MnrlError *err,
           Args... args) {
    if (S == 0) return 0;
    const Layout L = make_layout(cu_seqlens, C, NH, max_seqlen, row_bytes);
    const long long blocks = (long long)S * L.items_per_seq;
    if (blocks > 0x7fffffffLL)
        return mnrl_fail(err, "%s:%d: attention: %d sentences of up to %d tokens need %lld blocks, more than a grid "
                         "holds", __FILE__, __LINE__, S, max_seqlen, blocks);
    const size_t smem = exchange + row_bytes * (size_t)L.tile_rows;
    CUDA_LAUNCH(dim3((unsigned)blocks, (unsigned)NH), kThreads, smem, stream, kernel)(L, drop, args...);
    CUDA_CHECK(cudaGetLastError(), err);
    return 0;
}

template <class T, int HS>
int forward_hs(T *out, float *lse, const T *qkv, const int32_t *cu_seqlens, int S, int max_seqlen, int C,
               int NH, DropoutArgs drop, cudaStream_t stream, MnrlError *err) {
    return launch(attention_forward_kernel<T, HS>, ForwardRows<T, HS>::X::bytes(), 2 * HS * sizeof(T), cu_seqlens, S,
                  C, NH, max_seqlen, drop, stream, err, out, lse, qkv);
}

template <class T, int HS>
int backward_hs(T *dqkv, const T *dout, const T *qkv, const T *out, const float *lse, const int32_t *cu_seqlens,
                int S, int max_seqlen, int C, int NH, DropoutArgs drop, float *dsum, cudaStream_t stream,
                MnrlError *err) {
    if (launch(attention_dq_kernel<T, HS>, DqRows<T, HS>::X::bytes(), 2 * HS * sizeof(T), cu_seqlens, S, C, NH,
               max_seqlen, drop, stream, err, dqkv, dsum, dout, qkv, out, lse) != 0)
        return -1;
    return launch(attention_dkdv_kernel<T, HS>, DkdvRows<T, HS>::X::bytes(), 2 * HS * sizeof(T) + 2 * sizeof(float),
                  cu_seqlens, S, C, NH, max_seqlen, drop, stream, err, dqkv, (const float *)dsum, dout, qkv, lse);
}

// The saved state's dropout words, after the T·NH log-sum-exps.
uint32_t *keep_bits(const float *lse, int tokens, int NH) {
    return reinterpret_cast<uint32_t *>(const_cast<float *>(lse + (size_t)tokens * (size_t)NH));
}

template <class T>
int forward(const char *what, T *out, float *lse, const T *qkv, const int32_t *cu_seqlens, int S, int tokens, int max_seqlen,
            int C, int NH, float keep_prob, uint64_t seed, uint64_t rng_stream, int token_offset, cudaStream_t stream,
            MnrlError *err) {
    if (check_args(what, S, tokens, max_seqlen, C, NH, keep_prob, token_offset, err) != 0) return -1;
    const DropoutArgs drop{keep_prob, 1.0f / keep_prob, seed, rng_stream, token_offset};
    if constexpr (std::is_same<T, __nv_bfloat16>::value)
        if (aligned16(out, qkv))
            return mnrl_attention::tc_forward(out, lse, keep_bits(lse, tokens, NH), qkv, cu_seqlens, S, max_seqlen, C,
                                              NH, drop, stream, err);
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
             uint64_t rng_stream, int token_offset, void *workspace, cudaStream_t stream, MnrlError *err) {
    if (check_args(what, S, tokens, max_seqlen, C, NH, keep_prob, token_offset, err) != 0) return -1;
    const DropoutArgs drop{keep_prob, 1.0f / keep_prob, seed, rng_stream, token_offset};
    float *dsum = static_cast<float *>(workspace);
    if constexpr (std::is_same<T, __nv_bfloat16>::value)
        if (aligned16(dqkv, dout, qkv, out))
            return mnrl_attention::tc_backward(dqkv, dout, qkv, out, lse, keep_bits(lse, tokens, NH), cu_seqlens, S,
                                               max_seqlen, C, NH, drop, dsum, stream, err);
    switch (C / NH) {
        case 16: return backward_hs<T, 16>(dqkv, dout, qkv, out, lse, cu_seqlens, S, max_seqlen, C, NH, drop, dsum, stream, err);
        case 32: return backward_hs<T, 32>(dqkv, dout, qkv, out, lse, cu_seqlens, S, max_seqlen, C, NH, drop, dsum, stream, err);
        case 64: return backward_hs<T, 64>(dqkv, dout, qkv, out, lse, cu_seqlens, S, max_seqlen, C, NH, drop, dsum, stream, err);
        default: return backward_hs<T, 128>(dqkv, dout, qkv, out, lse, cu_seqlens, S, max_seqlen, C, NH, drop, dsum, stream, err);
    }
}

}  // namespace

extern "C" size_t mnrl_cuda_attention_saved_bytes(int T, int NH, int max_seqlen) {
    return sizeof(float) * (size_t)T * (size_t)NH * (size_t)(1 + mnrl_attention::keep_words(max_seqlen));
}

extern "C" size_t mnrl_cuda_attention_backward_workspace_bytes(int T, int NH) {
    return sizeof(float) * (size_t)T * (size_t)NH;
}

extern "C" int mnrl_cuda_attention_forward_f32(float *out, float *saved, const float *qkv, const int32_t *cu_seqlens,
                                               int S, int T, int max_seqlen, int C, int NH, float keep_prob,
                                               uint64_t seed, uint64_t rng_stream, int token_offset,
                                               cudaStream_t stream, MnrlError *err) {
    return forward("attention_forward_f32", out, saved, qkv, cu_seqlens, S, T, max_seqlen, C, NH, keep_prob, seed,
                   rng_stream, token_offset, stream, err);
}

extern "C" int mnrl_cuda_attention_forward_bf16(mnrl_bf16 *out, float *saved, const mnrl_bf16 *qkv,
                                                const int32_t *cu_seqlens, int S, int T, int max_seqlen, int C,
                                                int NH, float keep_prob, uint64_t seed, uint64_t rng_stream,
                                                int token_offset, cudaStream_t stream, MnrlError *err) {
    return forward("attention_forward_bf16", out, saved, qkv, cu_seqlens, S, T, max_seqlen, C, NH, keep_prob, seed,
                   rng_stream, token_offset, stream, err);
}

extern "C" int mnrl_cuda_attention_backward_f32(float *dqkv, const float *dout, const float *qkv, const float *out,
                                                const float *saved, const int32_t *cu_seqlens, int S, int T,
                                                int max_seqlen, int C, int NH, float keep_prob, uint64_t seed,
                                                uint64_t rng_stream, int token_offset, void *workspace,
                                                cudaStream_t stream, MnrlError *err) {
    return backward("attention_backward_f32", dqkv, dout, qkv, out, saved, cu_seqlens, S, T, max_seqlen, C, NH,
                    keep_prob, seed, rng_stream, token_offset, workspace, stream, err);
}

extern "C" int mnrl_cuda_attention_backward_bf16(mnrl_bf16 *dqkv, const mnrl_bf16 *dout, const mnrl_bf16 *qkv,
                                                 const mnrl_bf16 *out, const float *saved, const int32_t *cu_seqlens,
                                                 int S, int T, int max_seqlen, int C, int NH, float keep_prob,
                                                 uint64_t seed, uint64_t rng_stream, int token_offset,
                                                 void *workspace, cudaStream_t stream, MnrlError *err) {
    return backward("attention_backward_bf16", dqkv, dout, qkv, out, saved, cu_seqlens, S, T, max_seqlen, C, NH,
                    keep_prob, seed, rng_stream, token_offset, workspace, stream, err);
}
