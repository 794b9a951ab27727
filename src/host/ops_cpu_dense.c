// ops_cpu_dense.c — CPU backend (see ops_cpu.c): linear layers through OpenBLAS sgemm,
// exact GELU, dropout and per-sentence attention over the packed token layout.
//
// Speed: the inner loops are written so that the compiler vectorises them (`omp simd`,
// no libm calls inside: GELU and softmax use the fp32 exp and erfc below), and every
// parallel loop gives each output to one thread, so results do not depend on the
// thread count.
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "mnrl/ops.h"
#include "mnrl/rng.h"
#include "ops_cpu.h"

// ---- fp32 exp and normal CDF ------------------------------------------------------------

// cond ? a : b as a bitwise select. GCC turns a ?: of a constant into a separate path for
// the constant and then cannot vectorise the loop around it; this keeps one path.
static inline float select_f32(int cond, float a, float b) {
    uint32_t ab, bb, mask = 0u - (uint32_t)(cond != 0);
    memcpy(&ab, &a, sizeof ab);
    memcpy(&bb, &b, sizeof bb);
    ab = (ab & mask) | (bb & ~mask);
    memcpy(&a, &ab, sizeof a);
    return a;
}

// e^(hi + lo) in fp32, lo a small correction to hi (Cephes expf: hi + lo = n·ln2 + r,
// |r| <= ln2/2, degree-7 polynomial; relative error about 1 ulp), in plain arithmetic so
// that it vectorises. The argument is clamped to [-87, 88], where 2^n stays a normal float:
// callers that need smaller results multiply two of them (gradual underflow).
static inline float exp2part_f32(float hi, float lo) {
    hi = select_f32(hi < -87.0f, -87.0f, hi);
    hi = select_f32(hi > 88.0f, 88.0f, hi);
    const float round_magic = 12582912.0f;  // 1.5·2^23: adding it rounds to an integer
    // A NaN argument (a diverged step) takes n = 0, as converting NaN to an integer is
    // undefined; r stays NaN, so the result is NaN.
    float n = (select_f32(hi == hi, hi, 0.0f) * 1.44269504088896341f + round_magic) - round_magic;
    float r = ((hi - n * 0.693359375f) + lo) - n * -2.12194440e-4f;  // ln2 in two parts
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float exp_f32(float x) { return exp2part_f32(x, 0.0f); }

// Strict C11 <math.h> has no M_ constants.
#define SQRT_HALF_D 0.70710678118654752440     // 1/√2
#define INV_SQRT_2PI 0.39894228040143267794f  // 1/√(2π)

// -x²/2 = hi + lo without rounding x²: x = xh + xl with xh the top 12 significand bits,
// so hi = -xh²/2 is exact and lo = -xl·(2xh + xl)/2 is a small correction.
typedef struct {
    float hi, lo;
} HalfSquare;

static inline HalfSquare minus_half_square(float x) {
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
static inline float exp_or_zero(float hi, float lo) {
    float e = exp2part_f32(hi, lo);
    return select_f32(hi < -87.0f, 0.0f, e);
}

// φ(x)·√(2π) = e^(-x²/2).
static inline float gauss_f32(float x) {
    HalfSquare h = minus_half_square(x);
    return exp_or_zero(h.hi, h.lo);
}

// Φ(-|x|) = erfc(|x|/√2)/2 = t·e^(-x²/2 + poly(t))/2 by the Chebyshev fit of Numerical
// Recipes' erfcc (fractional error below 1.2e-7 everywhere, so the tail keeps its relative
// accuracy). t, the polynomial and its sum with -x²/2 in fp64, passed to exp in two parts:
// in fp32 their roundings would add several ulp.
static inline float normal_tail(float x) {
    double t = 1.0 / (1.0 + 0.5 * SQRT_HALF_D * fabsf(x));
    double p = 0.17087277;
    p = p * t - 0.82215223;
    p = p * t + 1.48851587;
    p = p * t - 1.13520398;
    p = p * t + 0.27886807;
    p = p * t - 0.18628806;
    p = p * t + 0.09678418;
    p = p * t + 0.37409196;
    p = p * t + 1.00002368;
    p = p * t - 1.26551223;
    HalfSquare h = minus_half_square(x);
    double arg = (double)h.hi + p;
    float arg_hi = (float)arg;
    return (float)(0.5 * t) * exp_or_zero(arg_hi, (float)(arg - arg_hi) + h.lo);
}

// Φ(x), from the tail on either side.
static inline float normal_cdf(float x) {
    float tail = normal_tail(x);
    return select_f32(x >= 0.0f, 1.0f - tail, tail);
}

// gelu(x) = x·Φ(x).
static inline float gelu_f32(float x) { return x * normal_cdf(x); }

// gelu'(x) = Φ(x) + x·φ(x).
static inline float gelu_grad_f32(float x) {
    return normal_cdf(x) + x * (INV_SQRT_2PI * gauss_f32(x));
}

// ---- linear layers ----------------------------------------------------------------------

// g += bias (when given); then out = gelu(g) when out is given. One row of OC.
OPS_CPU_CLONES static void bias_gelu_row(float *g, float *out, const float *bias, int OC) {
    if (bias) {
#pragma omp simd
        for (int c = 0; c < OC; c++) g[c] += bias[c];
    }
    if (out) {
#pragma omp simd
        for (int c = 0; c < OC; c++) out[c] = gelu_f32(g[c]);
    }
}

// out = inp W^T, then one pass adds the bias (and applies the GELU, keeping its input).
void ops_cpu_matmul_forward(void *out_, void *pre_gelu_, const void *inp, const void *weight,
                            const void *bias_, int T, int C, int OC) {
    float *out = out_, *pre_gelu = pre_gelu_;
    float *gemm_out = pre_gelu ? pre_gelu : out;
    const float *bias = bias_;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, OC, C, 1.0f, inp, C, weight, C,
                0.0f, gemm_out, OC);
    if (!bias && !pre_gelu) return;
#pragma omp parallel for schedule(static) if ((size_t)T * OC >= OPS_CPU_PARALLEL_MIN)
    for (int t = 0; t < T; t++)
        bias_gelu_row(gemm_out + (size_t)t * OC, pre_gelu ? out + (size_t)t * OC : NULL, bias, OC);
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

// Elements per parallel work item of the elementwise ops: a multiple of 32 (whole Philox
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

enum { PHILOX_LANES = 8 };

// Words of Philox blocks q .. q+7 of a stream (rng.h's mapping): words[4·l + k] is word k
// of block q + l. The 8 blocks run lane-parallel through the rounds.
static OPS_CPU_INLINE void philox_blocks(uint32_t words[4 * PHILOX_LANES], uint64_t seed,
                                         uint64_t stream, uint64_t q) {
    uint32_t c0[PHILOX_LANES], c1[PHILOX_LANES], c2[PHILOX_LANES], c3[PHILOX_LANES];
    for (int l = 0; l < PHILOX_LANES; l++) {
        c0[l] = (uint32_t)(q + (uint64_t)l);
        c1[l] = (uint32_t)((q + (uint64_t)l) >> 32);
        c2[l] = (uint32_t)stream;
        c3[l] = (uint32_t)(stream >> 32);
    }
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int round = 0; round < 10; round++) {
#pragma omp simd
        for (int l = 0; l < PHILOX_LANES; l++) {
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
    for (int l = 0; l < PHILOX_LANES; l++) {
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
        philox_blocks(words, seed, stream, first / 4);
        uint64_t group_end = first + 4 * PHILOX_LANES < end ? first + 4 * PHILOX_LANES : end;
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

// ---- attention --------------------------------------------------------------------------

// Dot products accumulate in fp64: backward subtracts two of them (dP - rowsum(P∘dP)),
// which cancel when a sentence is short, and the reference should not add rounding there.
static OPS_CPU_INLINE double dot(const float *a, const float *b, int n) {
    double acc = 0.0;
#pragma omp simd reduction(+ : acc)
    for (int i = 0; i < n; i++) acc += (double)a[i] * b[i];
    return acc;
}

static OPS_CPU_INLINE void axpy(float *y, float alpha, const float *x, int n) {
#pragma omp simd
    for (int i = 0; i < n; i++) y[i] += alpha * x[i];
}

// Where one (sentence, head) pair's data lives in the packed buffers.
typedef struct {
    int start, len, HS, row3;  // first token, tokens, head size, qkv row stride (3C)
    size_t q_col, k_col, v_col;
} HeadView;

static HeadView head_view(const int32_t *cu_seqlens, int s, int h, int C, int NH) {
    HeadView v;
    v.start = cu_seqlens[s];
    v.len = cu_seqlens[s + 1] - cu_seqlens[s];
    v.HS = C / NH;
    v.row3 = 3 * C;
    v.q_col = (size_t)h * v.HS;
    v.k_col = (size_t)C + v.q_col;
    v.v_col = (size_t)2 * C + v.q_col;
    return v;
}

// Softmax row of query i of one head: scores into p, then normalised in place.
static OPS_CPU_INLINE void softmax_scores(float *p, const float *qkv, const HeadView *v, int i,
                                          float scale) {
    const float *q = qkv + (size_t)(v->start + i) * v->row3 + v->q_col;
    float max_score = -INFINITY;
    for (int j = 0; j < v->len; j++) {
        p[j] = (float)dot(q, qkv + (size_t)(v->start + j) * v->row3 + v->k_col, v->HS) * scale;
        if (p[j] > max_score) max_score = p[j];
    }
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < v->len; j++) {
        p[j] = exp_f32(p[j] - max_score);
        sum += p[j];
    }
    float inv = (float)(1.0 / sum);
#pragma omp simd
    for (int j = 0; j < v->len; j++) p[j] *= inv;
}

// Keys are walked in pieces of this many, with their dropout multipliers on the stack.
enum { KEY_PIECE = 32 };

// Dropout multipliers of keys j0 .. j0+n-1 of one (query, head) row whose element 0 is e0.
static OPS_CPU_INLINE void key_multipliers(float *mult, uint64_t e0, int j0, int n,
                                           float keep_prob, uint64_t seed, uint64_t stream) {
    if (keep_prob >= 1.0f) {
        for (int j = 0; j < n; j++) mult[j] = 1.0f;
        return;
    }
    ops_cpu_dropout_multipliers(mult, e0 + (uint64_t)j0, (size_t)n, keep_prob, seed, stream);
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

// Forward of one (sentence, head): P row by row into saved, out = (P∘M) V.
OPS_CPU_CLONES static void head_forward(float *out, float *saved, const float *qkv,
                                        const HeadView *v, int h, int NH, int C, int max_seqlen,
                                        float scale, AttnDropout drop) {
    for (int i = 0; i < v->len; i++) {
        size_t t = (size_t)(v->start + i);
        size_t e0 = (t * NH + h) * (size_t)max_seqlen;
        float *p = saved + e0;
        softmax_scores(p, qkv, v, i, scale);
        float *o = out + t * C + v->q_col;
        memset(o, 0, sizeof(float) * v->HS);
        for (int j0 = 0; j0 < v->len; j0 += KEY_PIECE) {
            float mult[KEY_PIECE];
            int n = v->len - j0 < KEY_PIECE ? v->len - j0 : KEY_PIECE;
            key_multipliers(mult, drop.first + e0, j0, n, drop.keep_prob, drop.seed, drop.stream);
            for (int j = j0; j < j0 + n; j++) {
                float w = p[j] * mult[j - j0];
                if (w != 0.0f) axpy(o, w, qkv + (size_t)(v->start + j) * v->row3 + v->v_col, v->HS);
            }
        }
    }
}

void ops_cpu_attention_forward(void *out, float *saved, const void *qkv,
                               const int32_t *cu_seqlens, int S, int T, int max_seqlen, int C,
                               int NH, float keep_prob, uint64_t seed, uint64_t stream,
                               int token_offset) {
    (void)T;
    float scale = 1.0f / sqrtf((float)(C / NH));
    AttnDropout drop = attn_dropout(keep_prob, seed, stream, token_offset, NH, max_seqlen);
#pragma omp parallel for collapse(2) schedule(dynamic, 4)
    for (int s = 0; s < S; s++) {
        for (int h = 0; h < NH; h++) {
            HeadView v = head_view(cu_seqlens, s, h, C, NH);
            head_forward(out, saved, qkv, &v, h, NH, C, max_seqlen, scale, drop);
        }
    }
}

// With P the saved probabilities, M the dropout multipliers and O = (P∘M) V:
//   dV = (P∘M)^T dO,  dP = (dO V^T)∘M,  dS = P∘(dP - rowsum(P∘dP)) · scale,
//   dQ = dS K,  dK = dS^T Q,  and rowsum(P∘dP) = dO·O (so no row buffer is needed).
// Each (sentence, head) pair owns its rows of dqkv: no races, fixed order.
OPS_CPU_CLONES static void head_backward(float *dqkv, const float *dout, const float *qkv,
                                         const float *out, const float *saved,
                                         const HeadView *v, int h, int NH, int C, int max_seqlen,
                                         float scale, AttnDropout drop) {
    for (int i = 0; i < v->len; i++) {
        float *row = dqkv + (size_t)(v->start + i) * v->row3;
        memset(row + v->q_col, 0, sizeof(float) * v->HS);
        memset(row + v->k_col, 0, sizeof(float) * v->HS);
        memset(row + v->v_col, 0, sizeof(float) * v->HS);
    }
    for (int i = 0; i < v->len; i++) {
        size_t t = (size_t)(v->start + i);
        size_t e0 = (t * NH + h) * (size_t)max_seqlen;
        const float *p = saved + e0;
        const float *d_o = dout + t * C + v->q_col;
        double row_dot = dot(d_o, out + t * C + v->q_col, v->HS);
        const float *q = qkv + t * v->row3 + v->q_col;
        float *dq = dqkv + t * v->row3 + v->q_col;
        for (int j0 = 0; j0 < v->len; j0 += KEY_PIECE) {
            float mult[KEY_PIECE];
            int n = v->len - j0 < KEY_PIECE ? v->len - j0 : KEY_PIECE;
            key_multipliers(mult, drop.first + e0, j0, n, drop.keep_prob, drop.seed, drop.stream);
            for (int j = j0; j < j0 + n; j++) {
                size_t tj = (size_t)(v->start + j);
                float m = mult[j - j0];
                const float *vj = qkv + tj * v->row3 + v->v_col;
                axpy(dqkv + tj * v->row3 + v->v_col, p[j] * m, d_o, v->HS);
                double dp = dot(d_o, vj, v->HS) * m;
                float ds = (float)(p[j] * (dp - row_dot) * scale);
                axpy(dq, ds, qkv + tj * v->row3 + v->k_col, v->HS);
                axpy(dqkv + tj * v->row3 + v->k_col, ds, q, v->HS);
            }
        }
    }
}

void ops_cpu_attention_backward(void *dqkv, const void *dout, const void *qkv,
                                const void *out, const float *saved,
                                const int32_t *cu_seqlens, int S, int T, int max_seqlen,
                                int C, int NH, float keep_prob, uint64_t seed,
                                uint64_t stream, int token_offset, void *workspace) {
    (void)T;
    (void)workspace;
    float scale = 1.0f / sqrtf((float)(C / NH));
    AttnDropout drop = attn_dropout(keep_prob, seed, stream, token_offset, NH, max_seqlen);
#pragma omp parallel for collapse(2) schedule(dynamic, 4)
    for (int s = 0; s < S; s++) {
        for (int h = 0; h < NH; h++) {
            HeadView v = head_view(cu_seqlens, s, h, C, NH);
            head_backward(dqkv, dout, qkv, out, saved, &v, h, NH, C, max_seqlen, scale, drop);
        }
    }
}
