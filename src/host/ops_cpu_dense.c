// ops_cpu_dense.c — CPU backend (see ops_cpu.c): linear layers through OpenBLAS sgemm,
// exact GELU, dropout and per-sentence attention over the packed token layout.
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "mnrl/ops.h"
#include "ops_cpu.h"

// ---- linear layers ----------------------------------------------------------------------

// out = inp W^T + bias: the bias is broadcast into out first and the GEMM adds to it.
void ops_cpu_matmul_forward(void *out_, void *pre_gelu, const void *inp, const void *weight,
                            const void *bias_, int T, int C, int OC) {
    float *out = pre_gelu ? pre_gelu : out_;
    const float *bias = bias_;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        float *row = out + (size_t)t * OC;
        if (bias) memcpy(row, bias, sizeof(float) * OC);
        else memset(row, 0, sizeof(float) * OC);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, OC, C, 1.0f, inp, C, weight, C,
                1.0f, out, OC);
    if (pre_gelu) ops_cpu_gelu_forward(out_, pre_gelu, (size_t)T * OC);
}

void ops_cpu_matmul_backward(void *dinp, float *dweight, float *dbias, const void *dout,
                             const void *inp, const void *weight, int T, int C, int OC,
                             int accumulate_dinp, void *workspace) {
    (void)workspace;
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, C, OC, 1.0f, dout, OC,
                    weight, C, accumulate_dinp ? 1.0f : 0.0f, dinp, C);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, T, 1.0f, dout, OC, inp, C,
                1.0f, dweight, C);
    if (dbias) ops_cpu_column_sums(dbias, dout, T, OC);
}

// ---- elementwise ------------------------------------------------------------------------

// Strict C11 <math.h> has no M_ constants.
#define SQRT_HALF 0.70710678118654752440        // 1/√2
#define INV_SQRT_2PI 0.39894228040143267794     // 1/√(2π)

void ops_cpu_gelu_forward(void *out_, const void *inp_, size_t n) {
    float *out = out_;
    const float *inp = inp_;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        double x = inp[i];
        out[i] = (float)(0.5 * x * (1.0 + erf(x * SQRT_HALF)));
    }
}

// gelu'(x) = Φ(x) + x·φ(x).
void ops_cpu_gelu_backward(void *dinp_, const void *inp_, const void *dout_, size_t n) {
    float *dinp = dinp_;
    const float *inp = inp_, *dout = dout_;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        double x = inp[i];
        double cdf = 0.5 * (1.0 + erf(x * SQRT_HALF));
        double pdf = INV_SQRT_2PI * exp(-0.5 * x * x);
        dinp[i] = (float)(dout[i] * (cdf + x * pdf));
    }
}

// One Philox block serves 4 consecutive elements, so threads take whole blocks.
void ops_cpu_dropout(void *out_, const void *inp_, size_t n, float keep_prob, uint64_t seed,
                     uint64_t stream) {
    float *out = out_;
    const float *inp = inp_;
    size_t blocks = (n + 3) / 4;
#pragma omp parallel for schedule(static)
    for (size_t q = 0; q < blocks; q++) {
        DropoutMask mask = dropout_mask(keep_prob, seed, stream);
        size_t end = 4 * q + 4 < n ? 4 * q + 4 : n;
        for (size_t e = 4 * q; e < end; e++) out[e] = inp[e] * dropout_mask_at(&mask, e);
    }
}

// ---- attention --------------------------------------------------------------------------

// Dot products accumulate in fp64: backward subtracts two of them (dP - rowsum(P∘dP)),
// which cancel when a sentence is short, and the reference should not add rounding there.
static double dot(const float *a, const float *b, int n) {
    double acc[4] = {0.0, 0.0, 0.0, 0.0};  // four chains: no wait on one add's latency
    int i = 0;
    for (; i + 4 <= n; i += 4)
        for (int k = 0; k < 4; k++) acc[k] += (double)a[i + k] * b[i + k];
    for (; i < n; i++) acc[0] += (double)a[i] * b[i];
    return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

static void axpy(float *y, float alpha, const float *x, int n) {
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
static void softmax_scores(float *p, const float *qkv, const HeadView *v, int i, float scale) {
    const float *q = qkv + (size_t)(v->start + i) * v->row3 + v->q_col;
    float max_score = -INFINITY;
    for (int j = 0; j < v->len; j++) {
        p[j] = (float)dot(q, qkv + (size_t)(v->start + j) * v->row3 + v->k_col, v->HS) * scale;
        if (p[j] > max_score) max_score = p[j];
    }
    double sum = 0.0;
    for (int j = 0; j < v->len; j++) {
        p[j] = expf(p[j] - max_score);
        sum += p[j];
    }
    float inv = (float)(1.0 / sum);
    for (int j = 0; j < v->len; j++) p[j] *= inv;
}

void ops_cpu_attention_forward(void *out_, float *saved, const void *qkv_,
                               const int32_t *cu_seqlens, int S, int T, int max_seqlen, int C,
                               int NH, float keep_prob, uint64_t seed, uint64_t stream) {
    (void)T;
    float *out = out_;
    const float *qkv = qkv_;
    float scale = 1.0f / sqrtf((float)(C / NH));
#pragma omp parallel for collapse(2) schedule(dynamic)
    for (int s = 0; s < S; s++) {
        for (int h = 0; h < NH; h++) {
            HeadView v = head_view(cu_seqlens, s, h, C, NH);
            DropoutMask mask = dropout_mask(keep_prob, seed, stream);
            for (int i = 0; i < v.len; i++) {
                size_t t = (size_t)(v.start + i);
                size_t e0 = (t * NH + h) * (size_t)max_seqlen;
                float *p = saved + e0;
                softmax_scores(p, qkv, &v, i, scale);
                float *o = out + t * C + v.q_col;
                memset(o, 0, sizeof(float) * v.HS);
                for (int j = 0; j < v.len; j++) {
                    float w = p[j] * dropout_mask_at(&mask, e0 + j);
                    if (w != 0.0f) axpy(o, w, qkv + (size_t)(v.start + j) * v.row3 + v.v_col, v.HS);
                }
            }
        }
    }
}

// With P the saved probabilities, M the dropout multipliers and O = (P∘M) V:
//   dV = (P∘M)^T dO,  dP = (dO V^T)∘M,  dS = P∘(dP - rowsum(P∘dP)) · scale,
//   dQ = dS K,  dK = dS^T Q,  and rowsum(P∘dP) = dO·O (so no row buffer is needed).
// Each (sentence, head) pair owns its rows of dqkv: no races, fixed order.
void ops_cpu_attention_backward(void *dqkv_, const void *dout_, const void *qkv_,
                                const void *out_, const float *saved,
                                const int32_t *cu_seqlens, int S, int T, int max_seqlen,
                                int C, int NH, float keep_prob, uint64_t seed,
                                uint64_t stream, void *workspace) {
    (void)T;
    (void)workspace;
    float *dqkv = dqkv_;
    const float *dout = dout_, *qkv = qkv_, *out = out_;
    float scale = 1.0f / sqrtf((float)(C / NH));
#pragma omp parallel for collapse(2) schedule(dynamic)
    for (int s = 0; s < S; s++) {
        for (int h = 0; h < NH; h++) {
            HeadView v = head_view(cu_seqlens, s, h, C, NH);
            DropoutMask mask = dropout_mask(keep_prob, seed, stream);
            for (int i = 0; i < v.len; i++) {
                float *row = dqkv + (size_t)(v.start + i) * v.row3;
                memset(row + v.q_col, 0, sizeof(float) * v.HS);
                memset(row + v.k_col, 0, sizeof(float) * v.HS);
                memset(row + v.v_col, 0, sizeof(float) * v.HS);
            }
            for (int i = 0; i < v.len; i++) {
                size_t t = (size_t)(v.start + i);
                size_t e0 = (t * NH + h) * (size_t)max_seqlen;
                const float *p = saved + e0;
                const float *d_o = dout + t * C + v.q_col;
                double row_dot = dot(d_o, out + t * C + v.q_col, v.HS);
                const float *q = qkv + t * v.row3 + v.q_col;
                float *dq = dqkv + t * v.row3 + v.q_col;
                for (int j = 0; j < v.len; j++) {
                    size_t tj = (size_t)(v.start + j);
                    float m = dropout_mask_at(&mask, e0 + j);
                    const float *vj = qkv + tj * v.row3 + v.v_col;
                    axpy(dqkv + tj * v.row3 + v.v_col, p[j] * m, d_o, v.HS);
                    double dp = dot(d_o, vj, v.HS) * m;
                    float ds = (float)(p[j] * (dp - row_dot) * scale);
                    axpy(dq, ds, qkv + tj * v.row3 + v.k_col, v.HS);
                    axpy(dqkv + tj * v.row3 + v.k_col, ds, q, v.HS);
                }
            }
        }
    }
}
