// ops_cpu_dense.c — CPU backend (see ops_cpu.c): linear layers through OpenBLAS sgemm,
// exact GELU, dropout and per-sentence attention over the packed token layout.
//
// Speed: the inner loops are written so that the compiler vectorises them (`omp simd`,
// no libm calls inside but fma, an instruction in the vector versions: GELU and softmax
// use the fp32 exp and erfc below), and every parallel loop gives each output to one
// thread, so results do not depend on the thread count.
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "mnrl/ops.h"
#include "mnrl/rng.h"
#include "ops_cpu.h"

// ---- fp32 exp and normal CDF ------------------------------------------------------------

// cond ? a : b as a bitwise select. GCC turns a ?: of a constant into a separate path for
// the constant and then cannot vectorise the loop around it; this keeps one path.
static OPS_CPU_INLINE float select_f32(int cond, float a, float b) {
    uint32_t ab, bb, mask = 0u - (uint32_t)(cond != 0);
    memcpy(&ab, &a, sizeof ab);
    memcpy(&bb, &b, sizeof bb);
    ab = (ab & mask) | (bb & ~mask);
    memcpy(&a, &ab, sizeof a);
    return a;
}

// e^(hi + lo) in fp32, lo a small correction to hi (Cephes expf: hi + lo = n·ln2 + r,
// |r| <= ln2/2, degree-7 polynomial, its Horner steps fused multiply-adds; relative error
// about 1 ulp), in plain arithmetic so that it vectorises. The argument is clamped to [-87, 88], where 2^n stays a normal float:
// callers that need smaller results multiply two of them (gradual underflow).
static OPS_CPU_INLINE float exp2part_f32(float hi, float lo) {
    hi = select_f32(hi < -87.0f, -87.0f, hi);
    hi = select_f32(hi > 88.0f, 88.0f, hi);
    const float round_magic = 12582912.0f;  // 1.5·2^23: adding it rounds to an integer
    // A NaN argument (a diverged step) takes n = 0, as converting NaN to an integer is
    // undefined; r stays NaN, so the result is NaN.
    float n = (select_f32(hi == hi, hi, 0.0f) * 1.44269504088896341f + round_magic) - round_magic;
    float r = ((hi - n * 0.693359375f) + lo) - n * -2.12194440e-4f;  // ln2 in two parts
    float p = 1.9875691500e-4f;
    p = fmaf(p, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    p = fmaf(p, r * r, r) + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static OPS_CPU_INLINE float exp_f32(float x) { return exp2part_f32(x, 0.0f); }

// Strict C11 <math.h> has no M_ constants.
#define SQRT_HALF_D 0.70710678118654752440     // 1/√2
#define INV_SQRT_2PI 0.39894228040143267794f  // 1/√(2π)

// -x²/2 = hi + lo without rounding x²: x = xh + xl with xh the top 12 significand bits,
// so hi = -xh²/2 is exact and lo = -xl·(2xh + xl)/2 is a small correction.
typedef struct {
    float hi, lo;
} HalfSquare;

static OPS_CPU_INLINE HalfSquare minus_half_square(float x) {
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    bits &= 0xFFFFF000u;
    float xh;
    memcpy(&xh, &bits, sizeof xh);
    float xl = x - xh;
    HalfSquare h = {-0.5f * (xh * xh), -0.5f * (xl * (2.0f * xh + xl))};
    return h;
}

// e^(hi + lo), 0 where it would leave the normal range (e^-87; x² / 2 > 87 means
// |x| > 13.2, where gelu's tail is below 1e-37).
static OPS_CPU_INLINE float exp_or_zero(float hi, float lo) {
    float e = exp2part_f32(hi, lo);
    return select_f32(hi < -87.0f, 0.0f, e);
}

// φ(x)·√(2π) = e^(-x²/2).
static OPS_CPU_INLINE float gauss_f32(float x) {
    HalfSquare h = minus_half_square(x);
    return exp_or_zero(h.hi, h.lo);
}

// Φ(-|x|) = erfc(|x|/√2)/2 = t·e^(-x²/2 + poly(t))/2 by the Chebyshev fit of Numerical
// Recipes' erfcc (fractional error below 1.2e-7 everywhere, so the tail keeps its relative
// accuracy). t, the polynomial (Horner steps as fused multiply-adds) and its sum with
// -x²/2 in fp64, passed to exp in two parts: in fp32 their roundings would add several
// ulp. Measured against erfc in double over [-12, 12] (test_ops_cpu): gelu within 4.9,
// gelu' within 3.6 units of 2^-24.
static OPS_CPU_INLINE float normal_tail(float x) {
    double t = 1.0 / (1.0 + 0.5 * SQRT_HALF_D * fabsf(x));
    double p = 0.17087277;
    p = fma(p, t, -0.82215223);
    p = fma(p, t, 1.48851587);
    p = fma(p, t, -1.13520398);
    p = fma(p, t, 0.27886807);
    p = fma(p, t, -0.18628806);
    p = fma(p, t, 0.09678418);
    p = fma(p, t, 0.37409196);
    p = fma(p, t, 1.00002368);
    p = fma(p, t, -1.26551223);
    HalfSquare h = minus_half_square(x);
    double arg = (double)h.hi + p;
    float arg_hi = (float)arg;
    return (float)(0.5 * t) * exp_or_zero(arg_hi, (float)(arg - arg_hi) + h.lo);
}

// Φ(x), from the tail on either side.
static OPS_CPU_INLINE float normal_cdf(float x) {
    float tail = normal_tail(x);
    return select_f32(x >= 0.0f, 1.0f - tail, tail);
}

// gelu(x) = x·Φ(x).
static OPS_CPU_INLINE float gelu_f32(float x) { return x * normal_cdf(x); }

// gelu'(x) = Φ(x) + x·φ(x).
static OPS_CPU_INLINE float gelu_grad_f32(float x) {
    return normal_cdf(x) + x * (INV_SQRT_2PI * gauss_f32(x));
}

// ---- linear layers ----------------------------------------------------------------------

// out = inp W^T (+ bias), then out = gelu(pre_gelu) when the GELU is fused. The bias is
// written into the output rows first and the GEMM adds to them (beta 1): one pass over the
// output, where beta 0 has OpenBLAS zero it and a bias pass after the GEMM is another.
void ops_cpu_matmul_forward(void *out_, void *pre_gelu_, const void *inp, const void *weight,
                            const void *bias_, int T, int C, int OC) {
    float *out = out_, *pre_gelu = pre_gelu_;
    float *gemm_out = pre_gelu ? pre_gelu : out;
    const float *bias = bias_;
    if (bias) {
#pragma omp parallel for schedule(static) if ((size_t)T * OC >= OPS_CPU_PARALLEL_MIN)
        for (int t = 0; t < T; t++) memcpy(gemm_out + (size_t)t * OC, bias, sizeof(float) * OC);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, OC, C, 1.0f, inp, C, weight, C,
                bias ? 1.0f : 0.0f, gemm_out, OC);
    if (pre_gelu) ops_cpu_gelu_forward(out, pre_gelu, (size_t)T * OC);
}

void ops_cpu_matmul_backward(void *dinp, float *dweight, float *dbias, const void *dout,
                             const void *inp, const void *weight, int T, int C, int OC,
                             int accumulate_dinp, void *workspace) {
    (void)workspace;
    // The bias gradient first, while dout (just written by the op before) is in cache.
    if (dbias) ops_cpu_column_sums(dbias, dout, T, OC);
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, C, OC, 1.0f, dout, OC,
                    weight, C, accumulate_dinp ? 1.0f : 0.0f, dinp, C);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, T, 1.0f, dout, OC, inp, C,
                1.0f, dweight, C);
}

// ---- elementwise ------------------------------------------------------------------------

// Elements per parallel work item of the elementwise ops: a multiple of 64 (whole Philox
// groups) large enough to amortise the scheduling.
enum { ELEMENT_CHUNK = 4096 };

OPS_CPU_CLONES static void gelu_span(float *out, const float *inp, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) out[i] = gelu_f32(inp[i]);
}

OPS_CPU_CLONES static void gelu_grad_span(float *dinp, const float *inp, const float *dout,
                                          size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) dinp[i] = dout[i] * gelu_grad_f32(inp[i]);
}

static size_t chunk_length(size_t n, size_t k) {
    size_t start = k * ELEMENT_CHUNK;
    return n - start < ELEMENT_CHUNK ? n - start : ELEMENT_CHUNK;
}

void ops_cpu_gelu_forward(void *out, const void *inp, size_t n) {
    size_t chunks = (n + ELEMENT_CHUNK - 1) / ELEMENT_CHUNK;
#pragma omp parallel for schedule(static) if (n >= OPS_CPU_PARALLEL_MIN)
    for (size_t k = 0; k < chunks; k++)
        gelu_span((float *)out + k * ELEMENT_CHUNK, (const float *)inp + k * ELEMENT_CHUNK,
                  chunk_length(n, k));
}

void ops_cpu_gelu_backward(void *dinp, const void *inp, const void *dout, size_t n) {
    size_t chunks = (n + ELEMENT_CHUNK - 1) / ELEMENT_CHUNK;
#pragma omp parallel for schedule(static) if (n >= OPS_CPU_PARALLEL_MIN)
    for (size_t k = 0; k < chunks; k++)
        gelu_grad_span((float *)dinp + k * ELEMENT_CHUNK, (const float *)inp + k * ELEMENT_CHUNK,
                       (const float *)dout + k * ELEMENT_CHUNK, chunk_length(n, k));
}

// Philox blocks run lane-parallel through the rounds, PHILOX_LANES blocks (64 elements) at
// a time, or half as many for calls of at most 32 elements (an attention row's piece),
// which would waste most of a full group.
enum { PHILOX_LANES = 16 };

// Words of Philox blocks q .. q+lanes-1 of a stream (rng.h's mapping): words[4·l + k] is
// word k of block q + l (lanes <= PHILOX_LANES; a constant once inlined).
static OPS_CPU_INLINE void philox_blocks(uint32_t words[4 * PHILOX_LANES], uint64_t seed,
                                         uint64_t stream, uint64_t q, int lanes) {
    uint32_t c0[PHILOX_LANES], c1[PHILOX_LANES], c2[PHILOX_LANES], c3[PHILOX_LANES];
    for (int l = 0; l < lanes; l++) {
        c0[l] = (uint32_t)(q + (uint64_t)l);
        c1[l] = (uint32_t)((q + (uint64_t)l) >> 32);
        c2[l] = (uint32_t)stream;
        c3[l] = (uint32_t)(stream >> 32);
    }
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int round = 0; round < 10; round++) {
#pragma omp simd
        for (int l = 0; l < lanes; l++) {
            uint64_t p0 = (uint64_t)0xD2511F53u * c0[l];
            uint64_t p1 = (uint64_t)0xCD9E8D57u * c2[l];
            uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1[l] ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3[l] ^ k1;
            c0[l] = n0;
            c1[l] = (uint32_t)p1;
            c2[l] = n2;
            c3[l] = (uint32_t)p0;
        }
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    for (int l = 0; l < lanes; l++) {
        words[4 * l] = c0[l];
        words[4 * l + 1] = c1[l];
        words[4 * l + 2] = c2[l];
        words[4 * l + 3] = c3[l];
    }
}

OPS_CPU_CLONES void ops_cpu_dropout_multipliers(float *mult, uint64_t e0, size_t count,
                                                float keep_prob, uint64_t seed, uint64_t stream) {
    float keep_scale = 1.0f / keep_prob;
    uint64_t end = e0 + count;
    for (uint64_t e = e0; e < end;) {
        uint64_t first = e & ~(uint64_t)3;  // element 0 of the group's first block
        uint32_t words[4 * PHILOX_LANES];
        int lanes = end - first > 2 * PHILOX_LANES ? PHILOX_LANES : PHILOX_LANES / 2;
        if (lanes == PHILOX_LANES)
            philox_blocks(words, seed, stream, first / 4, PHILOX_LANES);
        else
            philox_blocks(words, seed, stream, first / 4, PHILOX_LANES / 2);
        uint64_t group_end = first + 4 * (uint64_t)lanes < end ? first + 4 * (uint64_t)lanes : end;
#pragma omp simd
        for (uint64_t g = e; g < group_end; g++)
            mult[g - e0] =
                select_f32(mnrl_rng_uniform(words[g - first]) < keep_prob, keep_scale, 0.0f);
        e = group_end;
    }
}

void ops_cpu_dropout(void *out_, const void *inp_, size_t n, float keep_prob, uint64_t seed,
                     uint64_t stream, uint64_t first) {
    float *out = out_;
    const float *inp = inp_;
    if (keep_prob >= 1.0f) {
        if (out != inp) memcpy(out, inp, n * sizeof(float));
        return;
    }
    size_t chunks = (n + ELEMENT_CHUNK - 1) / ELEMENT_CHUNK;
#pragma omp parallel for schedule(static) if (n >= OPS_CPU_PARALLEL_MIN)
    for (size_t k = 0; k < chunks; k++) {
        float mult[ELEMENT_CHUNK];
        size_t start = k * ELEMENT_CHUNK, count = chunk_length(n, k);
        ops_cpu_dropout_multipliers(mult, first + start, count, keep_prob, seed, stream);
#pragma omp simd
        for (size_t i = 0; i < count; i++) out[start + i] = inp[start + i] * mult[i];
    }
}

void ops_cpu_residual_dropout(float *r, const float *a, const float *b, size_t n, const MnrlDropout *drop,
                              uint64_t offset) {
    enum { PIECE = 256 };
    if (drop->keep_prob >= 1.0f) {
#pragma omp simd
        for (size_t i = 0; i < n; i++) r[i] = a[i] + b[i];
        return;
    }
    for (size_t i0 = 0; i0 < n; i0 += PIECE) {
        size_t width = n - i0 < PIECE ? n - i0 : PIECE;
        float mult[PIECE];
        ops_cpu_dropout_multipliers(mult, drop->first + offset + i0, width, drop->keep_prob, drop->seed,
                                    drop->stream);
#pragma omp simd
        for (size_t i = 0; i < width; i++) {
            float dropped = b[i0 + i] * mult[i];
            r[i0 + i] = a[i0 + i] + dropped;
        }
    }
}

// ---- attention --------------------------------------------------------------------------
//
// Per (sentence, head) the products are small matrices (length × head size), so they are
// computed as vector operations on tiles instead of one dot product per (query, key):
// the dot products of one query with a piece of keys run over a transposed tile of the
// keys (one vector lane per key), and every weighted sum of rows (P V, dS K, ...) keeps
// a tile of 32 columns in registers while it walks the rows. Each output element is
// written by one (sentence, head) pair and summed in a fixed order (keys, or queries, in
// sequence), so results do not depend on the thread count or the vector width. A thread
// takes whole sentences, head after head, and asks for the next sentence's rows while it
// works on the current one (prefetch_sentence): one head uses a 128-byte slice of each
// row, and in backward the rows are cold.

// Keys are walked in pieces of KEY_PIECE (their dropout multipliers are one short Philox
// group, their transposed tile KEY_PIECE lanes), dot products in groups of KEY_GROUP
// lanes, the transposed tile holds up to HEAD_CHUNK columns, weighted row sums keep
// HEAD_TILE columns in registers, and backward keeps dS for QUERY_BLOCK queries at a time.
enum { KEY_PIECE = 32, KEY_GROUP = 16, HEAD_CHUNK = 128, HEAD_TILE = 32, QUERY_BLOCK = 32 };

// Dot products accumulate in fp64: backward subtracts two of them (dP - rowsum(P∘dP)),
// which cancel when a sentence is short, and the reference should not add rounding there.
static OPS_CPU_INLINE double dot(const float *a, const float *b, int n) {
    double lanes[OPS_CPU_LANES] = {0};
    int i = 0;
    for (; i + OPS_CPU_LANES <= n; i += OPS_CPU_LANES) {
#pragma omp simd
        for (int l = 0; l < OPS_CPU_LANES; l++) lanes[l] += (double)a[i + l] * b[i + l];
    }
    for (int l = 0; i + l < n; l++) lanes[l] += (double)a[i + l] * b[i + l];
    return ops_cpu_sum_lanes(lanes);
}

// Where one (sentence, head) pair's data lives in the packed buffers.
typedef struct {
    int start, len, HS;         // first token, tokens, head size
    size_t row3, C;             // row strides of qkv-shaped and [T, C] buffers
    size_t q_col, k_col, v_col; // the head's columns in qkv (q_col also in [T, C])
    size_t probs, prob_stride;  // element of (token start, key 0) of the head's saved
                                // probabilities and dropout mask; elements per token
} HeadView;

static HeadView head_view(const int32_t *cu_seqlens, int s, int h, int C, int NH, int max_seqlen) {
    HeadView v;
    v.start = cu_seqlens[s];
    v.len = cu_seqlens[s + 1] - cu_seqlens[s];
    v.HS = C / NH;
    v.row3 = 3 * (size_t)C;
    v.C = (size_t)C;
    v.q_col = (size_t)h * v.HS;
    v.k_col = (size_t)C + v.q_col;
    v.v_col = (size_t)2 * C + v.q_col;
    v.prob_stride = (size_t)NH * max_seqlen;
    v.probs = (size_t)v.start * v.prob_stride + (size_t)h * max_seqlen;
    return v;
}

// Row i of the sentence's queries, keys or values (col = v->q_col, k_col or v_col) in a
// qkv-shaped buffer.
static OPS_CPU_INLINE const float *head_row(const float *qkv, const HeadView *v, int i, size_t col) {
    return qkv + (size_t)(v->start + i) * v->row3 + col;
}

// Element of (query i, key 0) in the saved probabilities and in the dropout mask.
static OPS_CPU_INLINE size_t prob_row(const HeadView *v, int i) {
    return v->probs + (size_t)i * v->prob_stride;
}

// Asks for the lines of `bytes` bytes at each of `rows` rows (`stride` floats apart)
// before they are used, so that their misses overlap: a head reads a short slice of every
// row of its sentence, a pattern the hardware prefetchers do not follow (see
// prefetch_sentence). Lines that will be written are asked for with write intent.
static OPS_CPU_INLINE void prefetch_rows(const float *first, size_t stride, int rows, size_t bytes,
                                         int write) {
#if defined(__GNUC__)
    for (int r = 0; r < rows; r++) {
        const char *row = (const char *)(first + (size_t)r * stride);
        for (size_t b = 0; b < bytes + 63; b += 64) {
            const char *line = row + (b < bytes ? b : bytes - 1);
            if (write)
                __builtin_prefetch(line, 1);
            else
                __builtin_prefetch(line, 0);
        }
    }
#else
    (void)first, (void)stride, (void)rows, (void)bytes, (void)write;
#endif
}

// Keys (or values) j0 .. j0+n-1, columns c0 .. c0+width-1, transposed into fp64:
// t[c][j] = row j0+j, column c0+c; lanes n .. up to the next KEY_GROUP are zero. (j0, c0)
// name what it holds, so a tile is filled once per piece when the head fits one chunk.
// (Declared without an initialiser and emptied by key_tile_init: zeroing 32 KB per head
// would cost more than the head's work.)
typedef struct {
    int j0, c0;
    double t[HEAD_CHUNK][KEY_PIECE];
} KeyTile;

static OPS_CPU_INLINE void key_tile_init(KeyTile *tile) { tile->j0 = tile->c0 = -1; }

static OPS_CPU_INLINE void key_tile_fill(KeyTile *tile, const float *rows, size_t stride, int j0,
                                         int n, int c0, int width) {
    if (tile->j0 == j0 && tile->c0 == c0) return;
    int lanes = (n + KEY_GROUP - 1) / KEY_GROUP * KEY_GROUP;
    // A scalar transpose: unrolled, two instructions per element instead of six.
    for (int j = 0; j < n; j++) {
        const float *row = rows + (size_t)(j0 + j) * stride + c0;
#pragma GCC unroll 8
        for (int c = 0; c < width; c++) tile->t[c][j] = row[c];
    }
    for (int c = 0; c < width; c++)
        for (int j = n; j < lanes; j++) tile->t[c][j] = 0.0;
    tile->j0 = j0;
    tile->c0 = c0;
}

// dots[j] = Σ_c x[c]·t[c][j] for the tile's n keys (added to dots when accumulate), in
// fp64 as two chains, even and odd c, added at the end: the same sums on every machine,
// and twice the independent additions of one chain.
static OPS_CPU_INLINE void tile_dots(double *dots, const float *x, const KeyTile *tile, int width,
                                     int n, int accumulate) {
    for (int g = 0; g < n; g += KEY_GROUP) {
        double even[KEY_GROUP] = {0}, odd[KEY_GROUP] = {0};
        int c = 0;
        for (; c + 1 < width; c += 2) {
            double x0 = x[c], x1 = x[c + 1];
            const double *t0 = tile->t[c] + g, *t1 = tile->t[c + 1] + g;
#pragma omp simd
            for (int j = 0; j < KEY_GROUP; j++) even[j] += x0 * t0[j];
#pragma omp simd
            for (int j = 0; j < KEY_GROUP; j++) odd[j] += x1 * t1[j];
        }
        if (c < width) {
            double x0 = x[c];
            const double *t0 = tile->t[c] + g;
#pragma omp simd
            for (int j = 0; j < KEY_GROUP; j++) even[j] += x0 * t0[j];
        }
#pragma omp simd
        for (int j = 0; j < KEY_GROUP; j++)
            dots[g + j] = (accumulate ? dots[g + j] : 0.0) + (even[j] + odd[j]);
    }
}

// dots[j] = x · row j0+j for j < n (x and the rows of length HS), through the tile.
static OPS_CPU_INLINE void piece_dots(double *dots, const float *x, KeyTile *tile,
                                      const float *rows, size_t stride, int j0, int n, int HS) {
    for (int c0 = 0; c0 < HS; c0 += HEAD_CHUNK) {
        int width = HS - c0 < HEAD_CHUNK ? HS - c0 : HEAD_CHUNK;
        key_tile_fill(tile, rows, stride, j0, n, c0, width);
        tile_dots(dots, x + c0, tile, width, n, c0 > 0);
    }
}

// out[c] = (out[c] when accumulate, else 0) + Σ_k w[k·w_stride]·rows[k][c], c < width <=
// HEAD_TILE, summed in k order in fp32. Inlined with width = HEAD_TILE, the sums stay in
// registers.
static OPS_CPU_INLINE void weighted_tile(float *out, const float *w, int w_stride, const float *rows,
                                         size_t stride, int count, int width, int accumulate) {
    float acc[HEAD_TILE];
#pragma omp simd
    for (int c = 0; c < width; c++) acc[c] = accumulate ? out[c] : 0.0f;
    for (int k = 0; k < count; k++) {
        float wk = w[(size_t)k * w_stride];
        const float *row = rows + (size_t)k * stride;
#pragma omp simd
        for (int c = 0; c < width; c++) acc[c] += wk * row[c];
    }
#pragma omp simd
    for (int c = 0; c < width; c++) out[c] = acc[c];
}

// weighted_tile over all HS columns.
static OPS_CPU_INLINE void weighted_rows(float *out, const float *w, int w_stride, const float *rows,
                                         size_t stride, int count, int HS, int accumulate) {
    for (int c0 = 0; c0 < HS; c0 += HEAD_TILE) {
        if (HS - c0 >= HEAD_TILE)
            weighted_tile(out + c0, w, w_stride, rows + c0, stride, count, HEAD_TILE, accumulate);
        else
            weighted_tile(out + c0, w, w_stride, rows + c0, stride, count, HS - c0, accumulate);
    }
}

// Dropout of the attention probabilities: the (seed, stream) of one attention call, and the
// element of its token 0 (token_offset·NH·max_seqlen: a token's elements are consecutive,
// so ((token_offset + t)·NH + h)·max_seqlen + j is that plus the call's own index).
typedef struct {
    float keep_prob;
    uint64_t seed, stream, first;
} AttnDropout;

static AttnDropout attn_dropout(float keep_prob, uint64_t seed, uint64_t stream, int token_offset,
                                int NH, int max_seqlen) {
    AttnDropout d = {keep_prob, seed, stream, (uint64_t)token_offset * (uint64_t)NH * (uint64_t)max_seqlen};
    return d;
}

// The rows of a sentence in the attention buffers, asked for before its first head:
// every head reads a slice of each row, and a thread walks whole sentences. Each buffer is
// read or written; NULL: not used by the pass.
typedef struct {
    const float *qkv_read, *qkv_write;   // [T, 3C]
    const float *tc_read[2], *tc_write;  // [T, C]
    const float *saved;                  // [T, NH, max_seqlen]
    int saved_write;
} SentenceRows;

static void prefetch_sentence(const SentenceRows *r, const int32_t *cu_seqlens, int s, int C,
                              int NH, int max_seqlen) {
    int start = cu_seqlens[s], len = cu_seqlens[s + 1] - start;
    size_t row3 = 3 * (size_t)C, qkv_bytes = sizeof(float) * row3, bytes = sizeof(float) * C;
    if (r->qkv_read) prefetch_rows(r->qkv_read + start * row3, row3, len, qkv_bytes, 0);
    if (r->qkv_write) prefetch_rows(r->qkv_write + start * row3, row3, len, qkv_bytes, 1);
    for (int k = 0; k < 2; k++)
        if (r->tc_read[k]) prefetch_rows(r->tc_read[k] + (size_t)start * C, (size_t)C, len, bytes, 0);
    if (r->tc_write) prefetch_rows(r->tc_write + (size_t)start * C, (size_t)C, len, bytes, 1);
    // Rows (token, head) of the probabilities, max_seqlen apart; the first len of each.
    prefetch_rows(r->saved + (size_t)start * NH * max_seqlen, (size_t)max_seqlen, len * NH,
                  sizeof(float) * len, r->saved_write);
}

// The (sentence, head) pairs k = s·NH + h in [*k0, *k1) that this thread takes: contiguous
// runs of about equal work, a pair of a sentence of length L costing L·(L + 16) (its
// query-key products and its per-query work). Contiguous, so that a thread walks whole
// sentences and can ask for the next one's rows; by work, not by count, because a batch
// may hold its long sentences together (all anchors, then all positives).
static void thread_pairs(const int32_t *cu_seqlens, int S, int NH, int *k0, int *k1) {
    int threads = omp_get_num_threads(), id = omp_get_thread_num();
    int64_t total = 0;
    for (int s = 0; s < S; s++) {
        int64_t len = cu_seqlens[s + 1] - cu_seqlens[s];
        total += NH * len * (len + 16);
    }
    int64_t lo = total * id / threads, hi = total * (id + 1) / threads, done = 0;
    *k0 = *k1 = NH * S;
    for (int k = 0, first = 1; k < NH * S; k++) {
        if (first && done >= lo) *k0 = k, first = 0;
        if (done >= hi) {
            *k1 = k;
            break;
        }
        int64_t len = cu_seqlens[k / NH + 1] - cu_seqlens[k / NH];
        done += len * (len + 16);
    }
}

// Dropout multipliers of keys j0 .. j0+n-1 of the (query, head) row whose element 0 is e0,
// as a full piece (zeros past n).
static OPS_CPU_INLINE void key_multipliers(float mult[KEY_PIECE], const AttnDropout *drop,
                                           size_t e0, int j0, int n) {
    if (drop->keep_prob >= 1.0f)
        for (int j = 0; j < n; j++) mult[j] = 1.0f;
    else
        ops_cpu_dropout_multipliers(mult, drop->first + e0 + (uint64_t)j0, (size_t)n,
                                    drop->keep_prob, drop->seed, drop->stream);
    for (int j = n; j < KEY_PIECE; j++) mult[j] = 0.0f;
}

// Up to KEY_PIECE elements of a row into a full piece, the lanes past n set to pad: the
// loops over a piece then run whole vectors with no scalar remainder.
static OPS_CPU_INLINE void load_piece(float piece[KEY_PIECE], const float *row, int n, float pad) {
#pragma omp simd
    for (int j = 0; j < KEY_PIECE; j++) piece[j] = j < n ? row[j] : pad;
}

// Softmax of one row of len scores, in place.
static OPS_CPU_INLINE void softmax_row(float *p, int len) {
    float max_score = -INFINITY;
    for (int j = 0; j < len; j++)
        if (p[j] > max_score) max_score = p[j];
    double lanes[OPS_CPU_LANES] = {0};
    for (int j0 = 0; j0 < len; j0 += KEY_PIECE) {
        int n = len - j0 < KEY_PIECE ? len - j0 : KEY_PIECE;
        float e[KEY_PIECE];
        load_piece(e, p + j0, n, -INFINITY);
#pragma omp simd
        for (int j = 0; j < KEY_PIECE; j++) e[j] = select_f32(j < n, exp_f32(e[j] - max_score), 0.0f);
        for (int b = 0; b < KEY_PIECE; b += OPS_CPU_LANES) {
#pragma omp simd
            for (int l = 0; l < OPS_CPU_LANES; l++) lanes[l] += e[b + l];
        }
        for (int j = 0; j < n; j++) p[j0 + j] = e[j];
    }
    float inv = (float)(1.0 / ops_cpu_sum_lanes(lanes));
#pragma omp simd
    for (int j = 0; j < len; j++) p[j] *= inv;
}

// Forward of one (sentence, head): P = softmax(Q K^T · scale) row by row into saved, then
// out = (P∘M) V.
OPS_CPU_CLONES static void head_forward(float *out, float *saved, const float *qkv,
                                        const HeadView *v, float scale, AttnDropout drop) {
    KeyTile tile;
    key_tile_init(&tile);
    const float *keys = head_row(qkv, v, 0, v->k_col), *values = head_row(qkv, v, 0, v->v_col);
    for (int j0 = 0; j0 < v->len; j0 += KEY_PIECE) {
        int n = v->len - j0 < KEY_PIECE ? v->len - j0 : KEY_PIECE;
        for (int i = 0; i < v->len; i++) {
            double dots[KEY_PIECE];
            piece_dots(dots, head_row(qkv, v, i, v->q_col), &tile, keys, v->row3, j0, n, v->HS);
            float *p = saved + prob_row(v, i) + j0;
            for (int j = 0; j < n; j++) p[j] = (float)dots[j] * scale;
        }
    }
    for (int i = 0; i < v->len; i++) {
        float *p = saved + prob_row(v, i);
        softmax_row(p, v->len);
        float *o = out + (size_t)(v->start + i) * v->C + v->q_col;
        for (int j0 = 0; j0 < v->len; j0 += KEY_PIECE) {
            float w[KEY_PIECE];
            int n = v->len - j0 < KEY_PIECE ? v->len - j0 : KEY_PIECE;
            key_multipliers(w, &drop, prob_row(v, i), j0, n);
            for (int j = 0; j < n; j++) w[j] *= p[j0 + j];
            weighted_rows(o, w, 1, values + (size_t)j0 * v->row3, v->row3, n, v->HS, j0 > 0);
        }
    }
}

// With P the saved probabilities, M the dropout multipliers and O = (P∘M) V:
//   dV = (P∘M)^T dO,  dP = (dO V^T)∘M,  dS = P∘(dP - rowsum(P∘dP)) · scale,
//   dQ = dS K,  dK = dS^T Q,  and rowsum(P∘dP) = dO·O (so no row buffer is needed).
// Per piece of keys and block of queries: dS and P∘M of the block (dQ rows gather their
// part on the way), then the piece's dK and dV rows. Each (sentence, head) pair owns its
// rows of dqkv, and every sum runs in key order (dQ) or query order (dK, dV).
typedef struct {
    float ds[QUERY_BLOCK][KEY_PIECE];  // dS
    float w[QUERY_BLOCK][KEY_PIECE];   // P∘M
} ScoreGrads;

// Rows i0 .. i0+count-1 of dS and P∘M for keys j0 .. j0+n-1, and their part of dQ.
static OPS_CPU_INLINE void score_grads(ScoreGrads *g, KeyTile *tile, float *dqkv, const float *dout,
                                       const float *qkv, const float *out, const float *saved,
                                       const HeadView *v, float scale, const AttnDropout *drop,
                                       int i0, int count, int j0, int n) {
    // rowsum(P∘dP) = dO·O of every query first: their rows' cache misses then overlap,
    // where inside the loop each would wait behind the previous query's work.
    double row_dots[QUERY_BLOCK];
    for (int b = 0; b < count; b++) {
        size_t row = (size_t)(v->start + i0 + b) * v->C + v->q_col;
        row_dots[b] = dot(dout + row, out + row, v->HS);
    }
    for (int b = 0; b < count; b++) {
        size_t t = (size_t)(v->start + i0 + b), e0 = prob_row(v, i0 + b);
        const float *d_o = dout + t * v->C + v->q_col;
        double row_dot = row_dots[b], dp[KEY_PIECE];
        float p[KEY_PIECE], mult[KEY_PIECE];
        load_piece(p, saved + e0 + j0, n, 0.0f);
        key_multipliers(mult, drop, e0, j0, n);
        piece_dots(dp, d_o, tile, head_row(qkv, v, 0, v->v_col), v->row3, j0, n, v->HS);
        // Whole groups of lanes (piece_dots fills them); the lanes past n hold zeros.
        int lanes = (n + KEY_GROUP - 1) / KEY_GROUP * KEY_GROUP;
#pragma omp simd
        for (int j = 0; j < lanes; j++) {
            g->ds[b][j] = (float)(p[j] * (dp[j] * mult[j] - row_dot) * scale);
            g->w[b][j] = p[j] * mult[j];
        }
        weighted_rows(dqkv + t * v->row3 + v->q_col, g->ds[b], 1, head_row(qkv, v, j0, v->k_col),
                      v->row3, n, v->HS, j0 > 0);
    }
}

OPS_CPU_CLONES static void head_backward(float *dqkv, const float *dout, const float *qkv,
                                         const float *out, const float *saved,
                                         const HeadView *v, float scale, AttnDropout drop) {
    KeyTile tile;
    key_tile_init(&tile);
    ScoreGrads g;
    for (int j0 = 0; j0 < v->len; j0 += KEY_PIECE) {
        int n = v->len - j0 < KEY_PIECE ? v->len - j0 : KEY_PIECE;
        for (int i0 = 0; i0 < v->len; i0 += QUERY_BLOCK) {
            int count = v->len - i0 < QUERY_BLOCK ? v->len - i0 : QUERY_BLOCK;
            score_grads(&g, &tile, dqkv, dout, qkv, out, saved, v, scale, &drop, i0, count, j0, n);
            for (int j = 0; j < n; j++) {
                float *row = dqkv + (size_t)(v->start + j0 + j) * v->row3;
                weighted_rows(row + v->k_col, &g.ds[0][j], KEY_PIECE, head_row(qkv, v, i0, v->q_col),
                              v->row3, count, v->HS, i0 > 0);
                weighted_rows(row + v->v_col, &g.w[0][j], KEY_PIECE,
                              dout + (size_t)(v->start + i0) * v->C + v->q_col, v->C, count, v->HS,
                              i0 > 0);
            }
        }
    }
}

// One attention call's buffers; backward selects head_backward over head_forward.
typedef struct {
    float *out, *saved, *dqkv;  // forward writes out and saved; backward dqkv
    const float *qkv, *dout;
    float scale;
    AttnDropout drop;
    int backward;
} AttnCall;

// Every (sentence, head) pair of a call, each thread its share (thread_pairs), walked
// sentence by sentence; at a sentence's first head the thread asks for the next sentence's
// rows (in backward they are cold: the forward pass wrote them long before).
static void run_pairs(const AttnCall *a, const SentenceRows *rows, const int32_t *cu_seqlens, int S, int C,
                      int NH, int max_seqlen) {
#pragma omp parallel
    {
        int k0, k1;
        thread_pairs(cu_seqlens, S, NH, &k0, &k1);
        for (int k = k0; k < k1; k++) {
            int s = k / NH, h = k % NH;
            if (h == 0 && s + 1 < S) prefetch_sentence(rows, cu_seqlens, s + 1, C, NH, max_seqlen);
            HeadView v = head_view(cu_seqlens, s, h, C, NH, max_seqlen);
            if (a->backward)
                head_backward(a->dqkv, a->dout, a->qkv, a->out, a->saved, &v, a->scale, a->drop);
            else
                head_forward(a->out, a->saved, a->qkv, &v, a->scale, a->drop);
        }
    }
}

void ops_cpu_attention_forward(void *out, float *saved, const void *qkv,
                               const int32_t *cu_seqlens, int S, int T, int max_seqlen, int C,
                               int NH, float keep_prob, uint64_t seed, uint64_t stream,
                               int token_offset) {
    (void)T;
    AttnCall a = {.out = out, .saved = saved, .qkv = qkv, .scale = 1.0f / sqrtf((float)(C / NH)),
                  .drop = attn_dropout(keep_prob, seed, stream, token_offset, NH, max_seqlen)};
    SentenceRows rows = {.qkv_read = qkv, .tc_write = out, .saved = saved, .saved_write = 1};
    run_pairs(&a, &rows, cu_seqlens, S, C, NH, max_seqlen);
}

void ops_cpu_attention_backward(void *dqkv, const void *dout, const void *qkv,
                                const void *out, const float *saved,
                                const int32_t *cu_seqlens, int S, int T, int max_seqlen,
                                int C, int NH, float keep_prob, uint64_t seed,
                                uint64_t stream, int token_offset, void *workspace) {
    (void)T;
    (void)workspace;
    // head_backward only reads out and saved.
    AttnCall a = {.out = (float *)out, .saved = (float *)saved, .dqkv = dqkv, .qkv = qkv, .dout = dout,
                  .scale = 1.0f / sqrtf((float)(C / NH)),
                  .drop = attn_dropout(keep_prob, seed, stream, token_offset, NH, max_seqlen), .backward = 1};
    SentenceRows rows = {.qkv_read = qkv, .qkv_write = dqkv, .tc_read = {out, dout}, .saved = saved};
    run_pairs(&a, &rows, cu_seqlens, S, C, NH, max_seqlen);
}
