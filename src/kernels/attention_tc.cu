// attention_tc.cu — the tensor-core path of attention.cu's op family: bf16 activations,
// every matrix product on nvcuda::wmma bf16 16x16x16 tiles with fp32 accumulation;
// softmax, log-sum-exp, dropout and dS in fp32 as in the portable kernels.
// CPU ops it must match: ops_cpu()->attention_forward / attention_backward (ops.h), with
// the same dropout element indexing and saved state (the fp32 row log-sum-exp [T, NH],
// then the dropout bits that only this file's kernels write and read) as attention.cu,
// whose header comment states both.
//
// Work split: one warp per block; block (g, h) of grid (S · groups_per_seq, NH) takes
// head h of sentence g / groups_per_seq and, of its tiles of 16 rows, the kGroupTiles
// tiles of group g % groups_per_seq, one after another (groups_per_seq =
// ceil(ceil(max_seqlen / 16) / kGroupTiles); a group past its sentence's end exits at
// once). A sentence of up to KC tokens (NLI: nearly all) is one chunk of the other side,
// loaded once for all the block's tiles; a longer one is reloaded chunk by chunk for each
// tile. (The first version ran one tile per block, grid (S · ceil(max_seqlen / 16), NH):
// at max_seqlen 75 three of five blocks of a 20-token sentence exited at once, and each
// tile loaded the whole K and V.) Everything the warp needs lives in its block's shared
// memory, rows padded to 16 with zeros (a padded key gets probability 0, a padded query
// row is never written): its own 16 rows, the other side's rows in chunks of KC = 32,
// and fp32 tiles of 16 x KC scores: 7-37 KiB per block by head size and kernel
// (forward_smem, dq_smem, dkdv_smem; 17, 19 and 21 KiB at head size 64, so 12, 11 and
// 10 blocks, each one warp, fit an H100/H200 SM). In forward and dQ a pair of lanes
// shares a query row, each lane taking half of the chunk's valid keys in the scalar work
// (exp, dropout, dS); in dK/dV a lane takes a query column. The first version used KC = 64
// up to head size 64 (27, 33 and 36 KiB: 8, 6 and 6 blocks per SM) and split a chunk's
// keys at KC / 2, so for a sentence of up to 32 tokens (SNLI: 99%, 83% up to 16) one lane
// of each pair did all the keys and the other none.
//  - forward (query tile): S = Q·K^T per chunk (mma) -> shared memory; one pair of lanes
//    per row takes the row's max and sum (online over the chunks), so lse = m + log(l);
//    then P = exp(S·scale - lse)·M (M the dropout multipliers), rounded to bf16 (as
//    flash attention feeds P to its second product), and O += P·V (mma, accumulators in
//    registers). A sentence longer than one chunk makes two passes over its keys (the
//    first only for the row statistics), because accumulator fragments cannot be
//    rescaled row by row when the max grows: which lane holds which element is
//    unspecified. P is normalised when it is formed, so O needs no final division. With
//    dropout, the mask's decisions are saved for the backward: word (t·NH + h)·words + w
//    of keep_bits (attention.cuh) holds keys [32·w, 32·w + 32) of row (t, h), bit j for
//    key 32·w + j, one word per chunk (the pair of lanes ors its halves). The backward
//    reads a word per chunk and row (or column) instead of drawing the mask again: the
//    mask's Philox blocks cost about as much as the exps, and were drawn in all three
//    kernels (first version).
//  - dQ (query tile): D_i = dO_i·O_i (fp32, to the workspace), then per key chunk
//    S = Q·K^T and dP' = dO·V^T (mma), dS = P∘(dP'∘M - D)·scale in fp32 with
//    P = exp(S·scale - lse), rounded to bf16, dQ += dS·K (mma);
//  - dK, dV (key tile; after dQ, which wrote D): per query chunk S^T = K·Q^T and
//    dP'^T = V·dO^T (mma), dS^T and (P∘M)^T in fp32 (one lane per query column), both
//    rounded to bf16, dK += dS^T·Q and dV += (P∘M)^T·dO (mma).
// Each warp owns the rows it writes: no atomics; every sum runs in a fixed order (the
// chunks in key/query order, the sums inside an mma fixed by the hardware), so results
// do not depend on scheduling. Every lane reaches every collective: per-row and per-column work is
// masked, never branched around a wmma call, and warps exit only as a whole.
// Precision: the products' inputs are the bf16 activations (exact), sums are fp32; the
// bf16 roundings of P∘M, dS and (P∘M)^T add a relative 2^-8 per term to O, dQ, dK and dV
// (tests/emu/test_attention.c adds it to the tolerances).

#include "mnrl/cuda_launch.h"
#include "mnrl/kernels.h"
#include "kernel_util.cuh"
#include "wmma_tiles.cuh"
#include "attention.cuh"

namespace {

using namespace mnrl_attention;

const int kLanes = 32;      // one warp per block
const int kTile = 16;       // rows of a work item, and the wmma tile
const int kGroupTiles = 4;  // tiles a block takes in turn

struct TcLayout {
    const int32_t *cu_seqlens;
    int C, NH, max_seqlen, groups_per_seq;
    float scale;
    uint32_t *keep_bits;  // the forward's dropout decisions (attention.cuh), words per row:
    int keep_words;       // keep_words(max_seqlen)
    // The word of (token t, head h) that holds keys [32·w, 32·w + 32).
    __device__ uint32_t *keep_word(int t, int h, int w) const {
        return keep_bits + ((size_t)t * NH + h) * keep_words + w;
    }
};

// Shared-memory shapes for head size HS. Rows are padded (bf16 by 8, fp32 by 4) so that
// consecutive rows start in different banks and every row stays a multiple of 16 bytes
// (wmma's ldm); every region starts 128-byte aligned (wmma pointers need 32 bytes).
template <int HS>
struct Shape {
    static const int KC = 32;                  // other-side rows per chunk: one word of saved dropout bits
    static const int ldh = HS + 8;             // bf16 rows of HS
    static const int ldk = KC + 8;             // bf16 [16][KC]: P, dS
    static const int lds = KC + 4;             // fp32 [16][KC]: scores
    static const int ldo = HS + 4;             // fp32 [16][HS]: accumulators on their way out
    __host__ __device__ static constexpr size_t rows(int n) { return carve_size((size_t)n * ldh * sizeof(bf16)); }
    __host__ __device__ static constexpr size_t weights() { return carve_size((size_t)kTile * ldk * sizeof(bf16)); }
    // n score tiles, or the output staging tile that reuses them, whichever is larger.
    __host__ __device__ static constexpr size_t scores(int n) {
        return carve_max(carve_size((size_t)n * kTile * lds * sizeof(float)),
                         carve_size((size_t)kTile * ldo * sizeof(float)));
    }
};

const int kLoadBatch = 4;  // 16-byte loads of each tensor a lane has in flight in load_rows

// A tensor whose rows load_rows copies: the tile it fills and its column block (offset
// col) of a [*, ld] bf16 tensor.
struct RowSource {
    bf16 *dst;
    const bf16 *src;
    int ld, col;
};

// Copies rows [r0, r0 + n) of each source into its tile [pad][ldt], rows n .. pad-1 zero;
// 16 bytes per access. Each lane issues kLoadBatch loads of every source before it stores
// the first: K and V (or Q and dO) of a 16-row tile at head size 64 are 4 loads per lane
// each, one round trip to memory for both. (The first version stored each load before
// issuing the next, one tensor at a time: one load per lane in flight, and a chunk of 64
// keys took sixteen round trips per tensor, with a warp per block and 8 blocks per SM.)
// A batch of 8 made ptxas spill in the dQ kernel.
template <int HS, int N>
__device__ void load_rows(const RowSource (&sources)[N], int ldt, int r0, int n, int pad) {
    const int chunks = HS / 8, total = pad * chunks;
    for (int base = 0; base < total; base += kLoadBatch * kLanes) {
        Pack<bf16, 8> v[N][kLoadBatch];
        MNRL_UNROLL
        for (int b = 0; b < kLoadBatch; b++) {
            const int idx = base + b * kLanes + (int)threadIdx.x, r = idx / chunks, c = idx % chunks * 8;
            MNRL_UNROLL
            for (int i = 0; i < N; i++) {
                if (idx < total && r < n)
                    v[i][b] = load_pack<bf16, 8>(sources[i].src + (size_t)(r0 + r) * sources[i].ld + sources[i].col + c);
                else
                    for (int e = 0; e < 8; e++) v[i][b].v[e] = __float2bfloat16_rn(0.0f);
            }
        }
        MNRL_UNROLL
        for (int b = 0; b < kLoadBatch; b++) {
            const int idx = base + b * kLanes + (int)threadIdx.x;
            if (idx >= total) continue;
            MNRL_UNROLL
            for (int i = 0; i < N; i++) store_pack(sources[i].dst + idx / chunks * ldt + idx % chunks * 8, v[i][b]);
        }
    }
}

// out [16][ldo] fp32 = A · X^T for A rows [16][lda] (16 x HS) and X rows [16·nsub][ldx]
// (nsub <= KC/16): the scores of 16 rows against nsub·16 others. Each A fragment is
// loaded once, for the nsub accumulators.
template <int HS, int KC>
__device__ void product_t(float *out, int ldo, const bf16 *a, int lda, const bf16 *x, int ldx, int nsub) {
    FragC acc[KC / 16];
    for (int j = 0; j < KC / 16; j++)
        if (j < nsub) wmma::fill_fragment(acc[j], 0.0f);
    for (int kk = 0; kk < HS / 16; kk++) {
        FragA fa;
        wmma::load_matrix_sync(fa, a + kk * 16, lda);
        for (int j = 0; j < KC / 16; j++)
            if (j < nsub) {
                FragBt fb;
                wmma::load_matrix_sync(fb, x + j * 16 * ldx + kk * 16, ldx);
                wmma::mma_sync(acc[j], fa, fb, acc[j]);
            }
    }
    for (int j = 0; j < KC / 16; j++)
        if (j < nsub) wmma::store_matrix_sync(out + j * 16, acc[j], ldo, wmma::mem_row_major);
}

// acc += W · X for weights W [16][ldw] (16 x 16·nsub) and X rows [16·nsub][ldx] (x HS).
template <int HS>
__device__ void accumulate(FragC (&acc)[HS / 16], const bf16 *w, int ldw, const bf16 *x, int ldx, int nsub) {
    for (int j = 0; j < nsub; j++) {
        FragA fa;
        wmma::load_matrix_sync(fa, w + j * 16, ldw);
        for (int d = 0; d < HS / 16; d++) {
            FragB fb;
            wmma::load_matrix_sync(fb, x + j * 16 * ldx + d * 16, ldx);
            wmma::mma_sync(acc[d], fa, fb, acc[d]);
        }
    }
}

// Writes rows [0, n) of the accumulators (16 x HS) as bf16 to rows r0 .. of one head's
// column block (offset col) of a [*, ld] tensor, through the staging tile.
template <int HS>
__device__ void store_rows(bf16 *dst, int ld, int col, int r0, int n, float *stage, FragC (&acc)[HS / 16]) {
    const int ldo = Shape<HS>::ldo, chunks = HS / 8;
    for (int d = 0; d < HS / 16; d++) wmma::store_matrix_sync(stage + d * 16, acc[d], ldo, wmma::mem_row_major);
    __syncwarp();
    for (int idx = threadIdx.x; idx < n * chunks; idx += kLanes) {
        const int r = idx / chunks, c = idx % chunks * 8;
        float lo[4], hi[4], v[8];
        load_f32<float, 4>(lo, stage + r * ldo + c);
        load_f32<float, 4>(hi, stage + r * ldo + c + 4);
        for (int e = 0; e < 4; e++) v[e] = lo[e], v[4 + e] = hi[e];
        store_f32<bf16, 8>(dst + (size_t)(r0 + r) * ld + col + c, v);
    }
    __syncwarp();  // the staging tile is reused
}

// Dropout multipliers (0 or 1/keep_prob) of elements e, e + 1, ... in increasing order:
// one Philox block per 4 consecutive elements.
struct MaskRun {
    uint64_t block = ~0ull;
    MnrlPhilox4 words = {{0, 0, 0, 0}};

    __device__ float at(const DropoutArgs &d, uint64_t e) {
        if (d.keep_prob >= 1.0f) return 1.0f;
        if (e >> 2 != block) {
            block = e >> 2;
            words = mnrl_rng_block(d.seed, d.rng_stream, block);
        }
        return keep_bit(d, philox_word(words, e & 3)) ? d.keep_scale : 0.0f;
    }
};

// The dropout multiplier of the key at bit `bit` of a saved word (the header comment).
__device__ __forceinline__ float saved_keep(const DropoutArgs &d, uint32_t word, int bit) {
    if (d.keep_prob >= 1.0f) return 1.0f;
    return word >> bit & 1u ? d.keep_scale : 0.0f;
}

// The row work of forward and dQ: lane l takes row l % 16 of the tile and half l / 16 of
// each chunk's keys (consecutive keys: consecutive dropout elements), the halves split at
// the middle of the chunk's valid keys, so both lanes of a pair do the same exp work
// whatever the sentence's length.
struct RowLane {
    int r, half;
    __device__ RowLane() : r((int)threadIdx.x % kTile), half((int)threadIdx.x / kTile) {}
    // This lane's keys [*lo, *hi) of [0, width), a chunk whose first n keys are valid (the
    // others padding, width >= n).
    __device__ void keys(int n, int width, int *lo, int *hi) const {
        const int mid = (n + 1) / 2;
        *lo = half ? mid : 0;
        *hi = half ? width : mid;
    }
};

// The sentence of this block's work and its current tile, of the tiles [tile, end) of
// the block's group; find is false when the group is past the sentence's end.
struct Item {
    int start, len, tile, end;
    __device__ bool find(const TcLayout &L) {
        const int s = blockIdx.x / L.groups_per_seq;
        start = L.cu_seqlens[s];
        len = L.cu_seqlens[s + 1] - start;
        tile = blockIdx.x % L.groups_per_seq * kGroupTiles;
        end = min(tile + kGroupTiles, (len + kTile - 1) / kTile);
        return tile < end;
    }
    __device__ int row0() const { return tile * kTile; }
    __device__ int rows() const { return min(kTile, len - tile * kTile); }
};

// Online row statistics over one chunk of scores (n keys): running max m and sum l of
// exp(s·scale - m). Both lanes of a row end with the same bits.
__device__ __forceinline__ void row_stats(const float *scores, const RowLane &lane, int n, float scale,
                                          float &m, float &l) {
    int lo, hi;
    lane.keys(n, n, &lo, &hi);
    float chunk_max = -INFINITY;
    for (int k = lo; k < hi; k++) chunk_max = fmaxf(chunk_max, scores[k] * scale);
    const float m_new = fmaxf(m, fmaxf(chunk_max, __shfl_xor_sync(0xffffffffu, chunk_max, kTile)));
    float sum = 0.0f;
    for (int k = lo; k < hi; k++) sum += expf(scores[k] * scale - m_new);
    sum += __shfl_xor_sync(0xffffffffu, sum, kTile);
    l = l * expf(m - m_new) + sum;
    m = m_new;
}

// Rows [r0, r0 + n) of K and V of head h into k and v, padded to nsub·16 rows.
template <int HS>
__device__ void load_kv(bf16 *k, bf16 *v, const bf16 *qkv, const TcLayout &L, int h, int r0, int n, int nsub) {
    const RowSource kv[2] = {{k, qkv, 3 * L.C, L.C + h * HS}, {v, qkv, 3 * L.C, 2 * L.C + h * HS}};
    load_rows<HS>(kv, Shape<HS>::ldh, r0, n, nsub * 16);
}

template <int HS>
__global__ void __launch_bounds__(kLanes)
    tc_forward_kernel(TcLayout L, DropoutArgs drop, bf16 *out, float *lse, const bf16 *qkv) {
    typedef Shape<HS> Sh;
    const int KC = Sh::KC, ldh = Sh::ldh;
    Item it;
    if (!it.find(L)) return;
    const int h = blockIdx.y, C3 = 3 * L.C;
    Carve carve;
    bf16 *q = carve.take<bf16>(Sh::rows(kTile)), *k = carve.take<bf16>(Sh::rows(KC));
    bf16 *v = carve.take<bf16>(Sh::rows(KC)), *p = carve.take<bf16>(Sh::weights());
    float *scores = carve.take<float>(Sh::scores(1));
    const RowLane lane;
    const float *row_scores = scores + lane.r * Sh::lds;
    const int chunks = (it.len + KC - 1) / KC;
    if (chunks == 1) load_kv<HS>(k, v, qkv, L, h, it.start, it.len, (it.len + 15) / 16);  // for every tile
    for (; it.tile < it.end; it.tile++) {
        const RowSource queries[1] = {{q, qkv, C3, h * HS}};
        load_rows<HS>(queries, ldh, it.start + it.row0(), it.rows(), kTile);
        const bool row_valid = lane.r < it.rows();
        float m = -INFINITY, l = 0.0f;
        for (int k0 = 0; chunks > 1 && k0 < it.len; k0 += KC) {  // pass 1: the row statistics
            const int n = min(KC, it.len - k0), nsub = (n + 15) / 16;
            const RowSource keys[1] = {{k, qkv, C3, L.C + h * HS}};
            load_rows<HS>(keys, ldh, it.start + k0, n, nsub * 16);
            __syncwarp();
            product_t<HS, KC>(scores, Sh::lds, q, ldh, k, ldh, nsub);
            __syncwarp();
            row_stats(row_scores, lane, n, L.scale, m, l);
            __syncwarp();
        }
        FragC o[HS / 16];
        for (int d = 0; d < HS / 16; d++) wmma::fill_fragment(o[d], 0.0f);
        const uint64_t e_row = dropout_element(drop, L.NH, L.max_seqlen, it.start + it.row0() + lane.r, h, 0);
        MaskRun mask;
        for (int k0 = 0; k0 < it.len; k0 += KC) {  // pass 2 (the only one for a short sentence)
            const int n = min(KC, it.len - k0), nsub = (n + 15) / 16;
            if (chunks > 1) load_kv<HS>(k, v, qkv, L, h, it.start + k0, n, nsub);
            __syncwarp();
            product_t<HS, KC>(scores, Sh::lds, q, ldh, k, ldh, nsub);
            __syncwarp();
            if (chunks == 1) row_stats(row_scores, lane, n, L.scale, m, l);
            const float row_lse = m + logf(l);
            int lo, hi;
            lane.keys(n, nsub * 16, &lo, &hi);
            uint32_t kept = 0;  // bit j: key k0 + j kept
            for (int j = lo; j < hi; j++) {
                const bool valid = row_valid && j < n;
                const float keep = valid ? mask.at(drop, e_row + k0 + j) : 0.0f;
                const float pm = valid ? expf(row_scores[j] * L.scale - row_lse) * keep : 0.0f;
                kept |= (uint32_t)(keep != 0.0f) << j;
                p[lane.r * Sh::ldk + j] = __float2bfloat16_rn(pm);
            }
            kept |= __shfl_xor_sync(0xffffffffu, kept, kTile);  // the pair's halves of the chunk
            if (drop.keep_prob < 1.0f && row_valid && lane.half == 0)
                *L.keep_word(it.start + it.row0() + lane.r, h, k0 / KC) = kept;
            __syncwarp();
            accumulate<HS>(o, p, Sh::ldk, v, ldh, nsub);
            __syncwarp();
        }
        store_rows<HS>(out, L.C, h * HS, it.start + it.row0(), it.rows(), scores, o);
        if (row_valid && lane.half == 0) lse[(size_t)(it.start + it.row0() + lane.r) * L.NH + h] = m + logf(l);
    }
}

template <int HS>
__global__ void __launch_bounds__(kLanes)
    tc_dq_kernel(TcLayout L, DropoutArgs drop, bf16 *dqkv, float *dsum, const bf16 *dout, const bf16 *qkv,
                 const bf16 *out, const float *lse) {
    typedef Shape<HS> Sh;
    const int KC = Sh::KC, ldh = Sh::ldh;
    Item it;
    if (!it.find(L)) return;
    const int h = blockIdx.y, C3 = 3 * L.C;
    Carve carve;
    bf16 *q = carve.take<bf16>(Sh::rows(kTile)), *d_o = carve.take<bf16>(Sh::rows(kTile));
    bf16 *k = carve.take<bf16>(Sh::rows(KC)), *v = carve.take<bf16>(Sh::rows(KC));
    bf16 *ds = carve.take<bf16>(Sh::weights());
    float *scores = carve.take<float>(Sh::scores(2)), *dp = scores + kTile * Sh::lds;
    const RowLane lane;
    const float *row_scores = scores + lane.r * Sh::lds, *row_dp = dp + lane.r * Sh::lds;
    const int chunks = (it.len + KC - 1) / KC;
    if (chunks == 1) load_kv<HS>(k, v, qkv, L, h, it.start, it.len, (it.len + 15) / 16);  // for every tile
    for (; it.tile < it.end; it.tile++) {
        const RowSource rows[2] = {{q, qkv, C3, h * HS}, {d_o, dout, L.C, h * HS}};
        load_rows<HS>(rows, ldh, it.start + it.row0(), it.rows(), kTile);
        __syncwarp();
        // D_i = dO_i·O_i: each lane of the row's pair half of the columns.
        const bool row_valid = lane.r < it.rows();
        const int t = it.start + it.row0() + lane.r;
        float D = 0.0f, row_lse = 0.0f;
        if (row_valid) {
            for (int c = lane.half * (HS / 2); c < (lane.half + 1) * (HS / 2); c += 8) {
                float o8[8], g8[8];
                load_f32<bf16, 8>(o8, out + (size_t)t * L.C + h * HS + c);
                load_f32<bf16, 8>(g8, d_o + lane.r * ldh + c);
                for (int e = 0; e < 8; e++) D += g8[e] * o8[e];
            }
            row_lse = lse[(size_t)t * L.NH + h];
        }
        D += __shfl_xor_sync(0xffffffffu, D, kTile);
        if (row_valid && lane.half == 0) dsum[(size_t)t * L.NH + h] = D;
        FragC dq[HS / 16];
        for (int d = 0; d < HS / 16; d++) wmma::fill_fragment(dq[d], 0.0f);
        for (int k0 = 0; k0 < it.len; k0 += KC) {
            const int n = min(KC, it.len - k0), nsub = (n + 15) / 16;
            const uint32_t kept = drop.keep_prob < 1.0f && row_valid ? *L.keep_word(t, h, k0 / KC) : 0u;
            if (chunks > 1) load_kv<HS>(k, v, qkv, L, h, it.start + k0, n, nsub);
            __syncwarp();
            product_t<HS, KC>(scores, Sh::lds, q, ldh, k, ldh, nsub);
            product_t<HS, KC>(dp, Sh::lds, d_o, ldh, v, ldh, nsub);
            __syncwarp();
            int lo, hi;
            lane.keys(n, nsub * 16, &lo, &hi);
            for (int j = lo; j < hi; j++) {
                float g = 0.0f;
                if (row_valid && j < n) {
                    const float p = expf(row_scores[j] * L.scale - row_lse), keep = saved_keep(drop, kept, j);
                    g = p * ((keep != 0.0f ? row_dp[j] * keep : 0.0f) - D) * L.scale;
                }
                ds[lane.r * Sh::ldk + j] = __float2bfloat16_rn(g);
            }
            __syncwarp();
            accumulate<HS>(dq, ds, Sh::ldk, k, ldh, nsub);
            __syncwarp();
        }
        store_rows<HS>(dqkv, C3, h * HS, it.start + it.row0(), it.rows(), scores, dq);
    }
}

// Query rows [r0, r0 + n) of Q and dO of head h into q and d_o (padded to nsub·16 rows),
// and their log-sum-exp and D into col_lse and col_d.
template <int HS>
__device__ void load_queries(bf16 *q, bf16 *d_o, float *col_lse, float *col_d, const bf16 *qkv, const bf16 *dout,
                             const float *lse, const float *dsum, const TcLayout &L, int h, int r0, int n, int nsub) {
    const RowSource rows[2] = {{q, qkv, 3 * L.C, h * HS}, {d_o, dout, L.C, h * HS}};
    load_rows<HS>(rows, Shape<HS>::ldh, r0, n, nsub * 16);
    for (int c = threadIdx.x; c < n; c += kLanes) {
        col_lse[c] = lse[(size_t)(r0 + c) * L.NH + h];
        col_d[c] = dsum[(size_t)(r0 + c) * L.NH + h];
    }
}

template <int HS>
__global__ void __launch_bounds__(kLanes)
    tc_dkdv_kernel(TcLayout L, DropoutArgs drop, bf16 *dqkv, const float *dsum, const bf16 *dout, const bf16 *qkv,
                   const float *lse) {
    typedef Shape<HS> Sh;
    const int QC = Sh::KC, ldh = Sh::ldh;
    Item it;  // tiles of keys
    if (!it.find(L)) return;
    const int h = blockIdx.y, C3 = 3 * L.C;
    Carve carve;
    bf16 *k = carve.take<bf16>(Sh::rows(kTile)), *v = carve.take<bf16>(Sh::rows(kTile));
    bf16 *q = carve.take<bf16>(Sh::rows(QC)), *d_o = carve.take<bf16>(Sh::rows(QC));
    bf16 *ds = carve.take<bf16>(Sh::weights()), *pm = carve.take<bf16>(Sh::weights());
    float *col_lse = carve.take<float>(carve_size(2 * QC * sizeof(float))), *col_d = col_lse + QC;
    float *scores = carve.take<float>(Sh::scores(2)), *dp = scores + kTile * Sh::lds;
    const int chunks = (it.len + QC - 1) / QC;
    if (chunks == 1)  // for every tile
        load_queries<HS>(q, d_o, col_lse, col_d, qkv, dout, lse, dsum, L, h, it.start, it.len, (it.len + 15) / 16);
    for (; it.tile < it.end; it.tile++) {
        const RowSource kv[2] = {{k, qkv, C3, L.C + h * HS}, {v, qkv, C3, 2 * L.C + h * HS}};
        load_rows<HS>(kv, ldh, it.start + it.row0(), it.rows(), kTile);
        FragC dk[HS / 16], dv[HS / 16];
        for (int d = 0; d < HS / 16; d++) {
            wmma::fill_fragment(dk[d], 0.0f);
            wmma::fill_fragment(dv[d], 0.0f);
        }
        for (int i0 = 0; i0 < it.len; i0 += QC) {
            const int n = min(QC, it.len - i0), nsub = (n + 15) / 16;
            if (chunks > 1)
                load_queries<HS>(q, d_o, col_lse, col_d, qkv, dout, lse, dsum, L, h, it.start + i0, n, nsub);
            __syncwarp();
            product_t<HS, QC>(scores, Sh::lds, k, ldh, q, ldh, nsub);  // S^T: key rows, query columns
            product_t<HS, QC>(dp, Sh::lds, v, ldh, d_o, ldh, nsub);
            __syncwarp();
            // One lane per query column c, the tile's 16 keys: bits row0 % 32 .. of the
            // query's saved word for keys row0 / 32 · 32 ...
            for (int c = threadIdx.x; c < nsub * 16; c += kLanes) {
                const uint32_t kept =
                    drop.keep_prob < 1.0f && c < n ? *L.keep_word(it.start + i0 + c, h, it.row0() / QC) : 0u;
                for (int r = 0; r < kTile; r++) {
                    float g = 0.0f, w = 0.0f;
                    if (c < n && r < it.rows()) {
                        const float p = expf(scores[r * Sh::lds + c] * L.scale - col_lse[c]);
                        const float keep = saved_keep(drop, kept, it.row0() % QC + r);
                        g = p * ((keep != 0.0f ? dp[r * Sh::lds + c] * keep : 0.0f) - col_d[c]) * L.scale;
                        w = p * keep;
                    }
                    ds[r * Sh::ldk + c] = __float2bfloat16_rn(g);
                    pm[r * Sh::ldk + c] = __float2bfloat16_rn(w);
                }
            }
            __syncwarp();
            accumulate<HS>(dk, ds, Sh::ldk, q, ldh, nsub);
            accumulate<HS>(dv, pm, Sh::ldk, d_o, ldh, nsub);
            __syncwarp();
        }
        store_rows<HS>(dqkv, C3, L.C + h * HS, it.start + it.row0(), it.rows(), scores, dk);
        store_rows<HS>(dqkv, C3, 2 * L.C + h * HS, it.start + it.row0(), it.rows(), scores, dv);
    }
}

// Bytes of dynamic shared memory of each kernel (the 128 for rounding the base up).
template <int HS>
constexpr size_t forward_smem() {
    typedef Shape<HS> Sh;
    return 128 + Sh::rows(kTile) + 2 * Sh::rows(Sh::KC) + Sh::weights() + Sh::scores(1);
}
template <int HS>
constexpr size_t dq_smem() {
    typedef Shape<HS> Sh;
    return 128 + 2 * Sh::rows(kTile) + 2 * Sh::rows(Sh::KC) + Sh::weights() + Sh::scores(2);
}
template <int HS>
constexpr size_t dkdv_smem() {
    typedef Shape<HS> Sh;
    return 128 + 2 * Sh::rows(kTile) + 2 * Sh::rows(Sh::KC) + 2 * Sh::weights() +
           carve_size(2 * Sh::KC * sizeof(float)) + Sh::scores(2);
}
static_assert(dkdv_smem<128>() <= 48 * 1024 && dkdv_smem<64>() <= 48 * 1024 && dq_smem<128>() <= 48 * 1024,
              "the tensor-core attention kernels stay under the default 48 KiB of dynamic shared memory");

TcLayout make_layout(const int32_t *cu_seqlens, uint32_t *keep_bits, int C, int NH, int max_seqlen) {
    TcLayout L;
    L.cu_seqlens = cu_seqlens;
    L.keep_bits = keep_bits;
    L.keep_words = keep_words(max_seqlen);
    L.C = C;
    L.NH = NH;
    L.max_seqlen = max_seqlen;
    L.groups_per_seq = ((max_seqlen + kTile - 1) / kTile + kGroupTiles - 1) / kGroupTiles;
    L.scale = 1.0f / sqrtf((float)(C / NH));
    return L;
}

template <class... Params, class... Args>
int launch(void (*kernel)(TcLayout, DropoutArgs, Params...), size_t smem, const int32_t *cu_seqlens,
           uint32_t *keep_bits, int S, int C, int NH, int max_seqlen, DropoutArgs drop, cudaStream_t stream,
           MnrlError *err, Args... args) {
    if (S == 0) return 0;
    const TcLayout L = make_layout(cu_seqlens, keep_bits, C, NH, max_seqlen);
    const long long blocks = (long long)S * L.groups_per_seq;
    if (blocks > 0x7fffffffLL)
        return mnrl_fail(err, "%s:%d: attention: %d sentences of up to %d tokens need %lld blocks, more than a grid "
                         "holds", __FILE__, __LINE__, S, max_seqlen, blocks);
    CUDA_LAUNCH(dim3((unsigned)blocks, (unsigned)NH), kLanes, smem, stream, kernel)(L, drop, args...);
    CUDA_CHECK(cudaGetLastError(), err);
    return 0;
}

template <int HS>
int forward_hs(bf16 *out, float *lse, uint32_t *keep_bits, const bf16 *qkv, const int32_t *cu_seqlens, int S,
               int max_seqlen, int C, int NH, DropoutArgs drop, cudaStream_t stream, MnrlError *err) {
    return launch(tc_forward_kernel<HS>, forward_smem<HS>(), cu_seqlens, keep_bits, S, C, NH, max_seqlen, drop, stream,
                  err, out, lse, qkv);
}

// The backward kernels only read the bits; TcLayout holds one non-const pointer for both.
template <int HS>
int backward_hs(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const bf16 *out, const float *lse,
                const uint32_t *keep_bits, const int32_t *cu_seqlens, int S, int max_seqlen, int C, int NH,
                DropoutArgs drop, float *dsum, cudaStream_t stream, MnrlError *err) {
    uint32_t *bits = const_cast<uint32_t *>(keep_bits);
    if (launch(tc_dq_kernel<HS>, dq_smem<HS>(), cu_seqlens, bits, S, C, NH, max_seqlen, drop, stream, err, dqkv, dsum,
               dout, qkv, out, lse) != 0)
        return -1;
    return launch(tc_dkdv_kernel<HS>, dkdv_smem<HS>(), cu_seqlens, bits, S, C, NH, max_seqlen, drop, stream, err,
                  dqkv, (const float *)dsum, dout, qkv, lse);
}

}  // namespace

namespace mnrl_attention {

int tc_forward(bf16 *out, float *lse, uint32_t *keep_bits, const bf16 *qkv, const int32_t *cu_seqlens, int S,
               int max_seqlen, int C, int NH, DropoutArgs drop, cudaStream_t stream, MnrlError *err) {
    switch (C / NH) {
        case 16: return forward_hs<16>(out, lse, keep_bits, qkv, cu_seqlens, S, max_seqlen, C, NH, drop, stream, err);
        case 32: return forward_hs<32>(out, lse, keep_bits, qkv, cu_seqlens, S, max_seqlen, C, NH, drop, stream, err);
        case 64: return forward_hs<64>(out, lse, keep_bits, qkv, cu_seqlens, S, max_seqlen, C, NH, drop, stream, err);
        default: return forward_hs<128>(out, lse, keep_bits, qkv, cu_seqlens, S, max_seqlen, C, NH, drop, stream, err);
    }
}

int tc_backward(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const bf16 *out, const float *lse,
                const uint32_t *keep_bits, const int32_t *cu_seqlens, int S, int max_seqlen, int C, int NH,
                DropoutArgs drop, float *dsum, cudaStream_t stream, MnrlError *err) {
    switch (C / NH) {
        case 16: return backward_hs<16>(dqkv, dout, qkv, out, lse, keep_bits, cu_seqlens, S, max_seqlen, C, NH, drop, dsum, stream, err);
        case 32: return backward_hs<32>(dqkv, dout, qkv, out, lse, keep_bits, cu_seqlens, S, max_seqlen, C, NH, drop, dsum, stream, err);
        case 64: return backward_hs<64>(dqkv, dout, qkv, out, lse, keep_bits, cu_seqlens, S, max_seqlen, C, NH, drop, dsum, stream, err);
        default: return backward_hs<128>(dqkv, dout, qkv, out, lse, keep_bits, cu_seqlens, S, max_seqlen, C, NH, drop, dsum, stream, err);
    }
}

}  // namespace mnrl_attention
