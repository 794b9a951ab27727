// ops_cpu.c — the fp32 CPU backend of the ops table (include/mnrl/ops.h): memory, sizes,
// embeddings, LayerNorm and mean pooling here; GEMMs, elementwise ops and attention in
// ops_cpu_dense.c; the loss and the optimizer in ops_cpu_train.c. It is the reference the
// CUDA kernels are tested against, so it keeps fp64 reductions and a fixed summation order
// (each output owned by one thread); for speed its inner loops are `omp simd` loops that
// the compiler vectorises.
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "mnrl/ops.h"
#include "ops_cpu.h"

// ---- memory ---------------------------------------------------------------------------

static int cpu_alloc(void **out, size_t bytes, MnrlError *err) {
    (void)err;  // host allocation aborts on exhaustion (mnrl_aligned_calloc)
    *out = mnrl_aligned_calloc(64, bytes);
    return 0;
}

static void cpu_release(void *buf) { free(buf); }

static void cpu_copy(void *dst, const void *src, size_t bytes) {
    if (bytes) memmove(dst, src, bytes);
}

static void cpu_zero(void *dst, size_t bytes) {
    if (bytes) memset(dst, 0, bytes);
}

static void cpu_convert(void *dst, const float *src, size_t n) { cpu_copy(dst, src, n * 4); }

static void cpu_convert_back(float *dst, const void *src, size_t n) {
    cpu_copy(dst, src, n * 4);
}

// ---- sizes ----------------------------------------------------------------------------

// Only the loss needs transient scratch on the CPU.
static size_t cpu_workspace_bytes(const MnrlOpsLimits *limits) {
    return ops_cpu_mnrl_loss_bytes(limits->max_anchors, limits->max_candidates,
                                   limits->channels);
}

static size_t cpu_attention_saved_bytes(int T, int NH, int max_seqlen) {
    return sizeof(float) * (size_t)T * (size_t)NH * (size_t)max_seqlen;
}

// ---- shared reduction -------------------------------------------------------------------

// Columns per chunk of the per-token loops below (embedding gradients, pooling).
enum { COLUMN_CHUNK = 32 };

// Columns per pass of a column reduction: the pass's fp64 sums (4 KB) stay in L1 while the
// rows stream through in order, each read as one contiguous run. (Walking all rows for a
// narrow chunk of columns instead strides through memory and stalls on every row.)
enum { COLUMN_BLOCK = 512 };

// This thread's share [*c0, *c1) of cols columns, cut at multiples of 16 (a vector of
// floats). A column's sum does not depend on which thread owns it.
static void thread_columns(int cols, int *c0, int *c1) {
    int threads = omp_get_num_threads(), id = omp_get_thread_num();
    int vectors = (cols + 15) / 16;
    *c0 = 16 * (int)((long)vectors * id / threads);
    *c1 = 16 * (int)((long)vectors * (id + 1) / threads);
    if (*c0 > cols) *c0 = cols;
    if (*c1 > cols) *c1 = cols;
}

// acc[c] += Σ_r x[r, c] for c < width <= COLUMN_BLOCK, x with row stride cols.
OPS_CPU_CLONES static void column_block_sums(float *acc, const float *x, int rows, int cols,
                                             int width) {
    double sum[COLUMN_BLOCK] = {0};
    for (int r = 0; r < rows; r++) {
        const float *row = x + (size_t)r * cols;
#pragma omp simd
        for (int c = 0; c < width; c++) sum[c] += row[c];
    }
    for (int c = 0; c < width; c++) acc[c] += (float)sum[c];
}

void ops_cpu_column_sums(float *acc, const float *x, int rows, int cols) {
#pragma omp parallel if ((size_t)rows * cols >= OPS_CPU_PARALLEL_MIN)
    {
        int c0, c1;
        thread_columns(cols, &c0, &c1);
        for (int c = c0; c < c1; c += COLUMN_BLOCK)
            column_block_sums(acc + c, x + c, rows, cols,
                              c1 - c < COLUMN_BLOCK ? c1 - c : COLUMN_BLOCK);
    }
}

// ---- embeddings -----------------------------------------------------------------------

static void cpu_embedding_forward(void *out_, const int32_t *ids, const int32_t *cu_seqlens,
                                  int S, int T, const void *wte_, const void *wpe_,
                                  const void *wtt_, int C) {
    (void)T;
    float *out = out_;
    const float *wte = wte_, *wpe = wpe_, *wtt = wtt_;
#pragma omp parallel for schedule(dynamic) if ((size_t)T * C >= OPS_CPU_PARALLEL_MIN)
    for (int s = 0; s < S; s++) {
        for (int t = cu_seqlens[s]; t < cu_seqlens[s + 1]; t++) {
            const float *word = wte + (size_t)ids[t] * C;
            const float *pos = wpe + (size_t)(t - cu_seqlens[s]) * C;
            float *o = out + (size_t)t * C;
#pragma omp simd
            for (int c = 0; c < C; c++) o[c] = word[c] + pos[c] + wtt[c];
        }
    }
}

// Threads own column ranges of all three tables and walk the tokens in order, so every
// gradient element is summed in token order whatever the thread count.
static void cpu_embedding_backward(float *dwte, float *dwpe, float *dwtt, const void *dout_,
                                   const int32_t *ids, const int32_t *cu_seqlens, int S, int T,
                                   int C, void *workspace) {
    (void)workspace;
    const float *dout = dout_;
    int chunks = (C + COLUMN_CHUNK - 1) / COLUMN_CHUNK;
#pragma omp parallel for schedule(static)
    for (int chunk = 0; chunk < chunks; chunk++) {
        int c0 = chunk * COLUMN_CHUNK;
        int c1 = c0 + COLUMN_CHUNK < C ? c0 + COLUMN_CHUNK : C;
        for (int s = 0; s < S; s++) {
            for (int t = cu_seqlens[s]; t < cu_seqlens[s + 1]; t++) {
                const float *d = dout + (size_t)t * C;
                float *word = dwte + (size_t)ids[t] * C;
                float *pos = dwpe + (size_t)(t - cu_seqlens[s]) * C;
#pragma omp simd
                for (int c = c0; c < c1; c++) {
                    word[c] += d[c];
                    pos[c] += d[c];
                }
            }
        }
    }
    ops_cpu_column_sums(dwtt, dout, T, C);
}

// ---- LayerNorm --------------------------------------------------------------------------

// One row: out = (x - mean)·rstd·weight + bias, mean and rstd kept; sums in fp64 lanes.
OPS_CPU_CLONES static void layernorm_row(float *out, float *mean, float *rstd, const float *x,
                                         const float *weight, const float *bias, int C,
                                         float eps) {
    int whole = C - C % OPS_CPU_LANES;
    double sum[OPS_CPU_LANES] = {0}, sq[OPS_CPU_LANES] = {0};
    for (int c0 = 0; c0 < whole; c0 += OPS_CPU_LANES) {
#pragma omp simd
        for (int l = 0; l < OPS_CPU_LANES; l++) sum[l] += x[c0 + l];
    }
    for (int c = whole; c < C; c++) sum[c - whole] += x[c];
    double mu = ops_cpu_sum_lanes(sum) / C;
    for (int c0 = 0; c0 < whole; c0 += OPS_CPU_LANES) {
#pragma omp simd
        for (int l = 0; l < OPS_CPU_LANES; l++) sq[l] += (x[c0 + l] - mu) * (x[c0 + l] - mu);
    }
    for (int c = whole; c < C; c++) sq[c - whole] += (x[c] - mu) * (x[c] - mu);
    double r = 1.0 / sqrt(ops_cpu_sum_lanes(sq) / C + (double)eps);
#pragma omp simd
    for (int c = 0; c < C; c++) out[c] = (float)((x[c] - mu) * r) * weight[c] + bias[c];
    *mean = (float)mu;
    *rstd = (float)r;
}

static void cpu_layernorm_forward(void *out, float *mean, float *rstd, const void *inp,
                                  const void *weight, const void *bias, int T, int C,
                                  float eps) {
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        size_t row = (size_t)t * C;
        layernorm_row((float *)out + row, mean + t, rstd + t, (const float *)inp + row,
                      weight, bias, C, eps);
    }
}

static void cpu_residual_layernorm_forward(void *res, void *out, float *mean, float *rstd,
                                           const void *a, const void *b, const MnrlDropout *drop,
                                           const void *weight, const void *bias, int T, int C,
                                           float eps) {
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        size_t row = (size_t)t * C;
        float *r = (float *)res + row;
        ops_cpu_residual_dropout(r, (const float *)a + row, (const float *)b + row, (size_t)C, drop, row);
        layernorm_row((float *)out + row, mean + t, rstd + t, r, weight, bias, C, eps);
    }
}

// dweight[c] += Σ_t dout·x̂ and dbias[c] += Σ_t dout for c < width <= COLUMN_BLOCK, x̂
// recomputed from the saved statistics, in token order; rows of stride C.
OPS_CPU_CLONES static void layernorm_param_block(float *dweight, float *dbias, const float *dout,
                                                 const float *inp, const float *mean,
                                                 const float *rstd, int T, int C, int width) {
    double dw[COLUMN_BLOCK] = {0}, db[COLUMN_BLOCK] = {0};
    for (int t = 0; t < T; t++) {
        const float *d = dout + (size_t)t * C, *x = inp + (size_t)t * C;
        float mu = mean[t], r = rstd[t];
#pragma omp simd
        for (int c = 0; c < width; c++) {
            dw[c] += (double)d[c] * ((x[c] - mu) * r);
            db[c] += d[c];
        }
    }
    for (int c = 0; c < width; c++) {
        dweight[c] += (float)dw[c];
        dbias[c] += (float)db[c];
    }
}

// This thread's columns of the parameter gradients (called inside a parallel region).
static void layernorm_param_grads(float *dweight, float *dbias, const float *dout,
                                  const float *inp, const float *mean, const float *rstd,
                                  int T, int C) {
    int c0, c1;
    thread_columns(C, &c0, &c1);
    for (int c = c0; c < c1; c += COLUMN_BLOCK)
        layernorm_param_block(dweight + c, dbias + c, dout + c, inp + c, mean, rstd, T, C,
                              c1 - c < COLUMN_BLOCK ? c1 - c : COLUMN_BLOCK);
}

// dx = rstd · (g - mean(g) - x̂ · mean(g·x̂)) with g = dout·weight, for one row; sums in
// fp64 lanes.
OPS_CPU_CLONES static void layernorm_backward_row(float *dx, const float *d, const float *x,
                                                  const float *weight, float mean, float rstd,
                                                  int C) {
    int whole = C - C % OPS_CPU_LANES;
    double g_sum[OPS_CPU_LANES] = {0}, gx_sum[OPS_CPU_LANES] = {0};
    for (int c0 = 0; c0 < whole; c0 += OPS_CPU_LANES) {
#pragma omp simd
        for (int l = 0; l < OPS_CPU_LANES; l++) {
            double g = (double)d[c0 + l] * weight[c0 + l];
            g_sum[l] += g;
            gx_sum[l] += g * ((x[c0 + l] - mean) * rstd);
        }
    }
    for (int c = whole; c < C; c++) {
        double g = (double)d[c] * weight[c];
        g_sum[c - whole] += g;
        gx_sum[c - whole] += g * ((x[c] - mean) * rstd);
    }
    double g_mean = ops_cpu_sum_lanes(g_sum) / C, gx_mean = ops_cpu_sum_lanes(gx_sum) / C;
#pragma omp simd
    for (int c = 0; c < C; c++) {
        double xhat = (x[c] - mean) * rstd;
        dx[c] = (float)(rstd * ((double)d[c] * weight[c] - g_mean - xhat * gx_mean));
    }
}

// The parameter gradients (threads own columns) and dx (threads own rows) in one parallel
// region: they write different outputs, so no barrier between them.
static void cpu_layernorm_backward(void *dinp_, float *dweight, float *dbias,
                                   const void *dout_, const void *inp_, const void *weight_,
                                   const float *mean, const float *rstd, int T, int C,
                                   void *workspace) {
    (void)workspace;
    float *dinp = dinp_;
    const float *dout = dout_, *inp = inp_, *weight = weight_;
#pragma omp parallel if ((size_t)T * C >= OPS_CPU_PARALLEL_MIN)
    {
        layernorm_param_grads(dweight, dbias, dout, inp, mean, rstd, T, C);
#pragma omp for schedule(static) nowait
        for (int t = 0; t < T; t++)
            layernorm_backward_row(dinp + (size_t)t * C, dout + (size_t)t * C, inp + (size_t)t * C,
                                   weight, mean[t], rstd[t], C);
    }
}

// The plain backward, then the branch's gradient through the same mask and its column
// sums (what matmul_backward's dbias would add).
static void cpu_residual_layernorm_backward(void *dres, void *dbranch, float *dbranch_bias,
                                            float *dweight, float *dbias, const void *dout,
                                            const void *res, const void *weight, const float *mean,
                                            const float *rstd, int T, int C,
                                            const MnrlDropout *drop, void *workspace) {
    cpu_layernorm_backward(dres, dweight, dbias, dout, res, weight, mean, rstd, T, C, workspace);
    ops_cpu_dropout(dbranch, dres, (size_t)T * C, drop->keep_prob, drop->seed, drop->stream, drop->first);
    if (dbranch_bias) ops_cpu_column_sums(dbranch_bias, dbranch, T, C);
}

// The GELU's backward, then the column sums matmul_backward's dbias would take of it.
static void cpu_gelu_bias_backward(void *dinp, float *dbias, const void *inp, const void *dout, int T, int OC,
                                   void *workspace) {
    (void)workspace;
    ops_cpu_gelu_backward(dinp, inp, dout, (size_t)T * OC);
    if (dbias) ops_cpu_column_sums(dbias, dinp, T, OC);
}

// ---- pooling ----------------------------------------------------------------------------

// Sums in fp64 over the sentence's rows, a chunk of columns at a time (rows contiguous).
static void cpu_mean_pool_forward(float *out, const void *inp_, const int32_t *cu_seqlens,
                                  int S, int C) {
    const float *inp = inp_;
    int chunks = (C + COLUMN_CHUNK - 1) / COLUMN_CHUNK;
#pragma omp parallel for collapse(2) schedule(static) \
    if ((size_t)cu_seqlens[S] * C >= OPS_CPU_PARALLEL_MIN)
    for (int s = 0; s < S; s++) {
        for (int chunk = 0; chunk < chunks; chunk++) {
            int c0 = chunk * COLUMN_CHUNK;
            int width = C - c0 < COLUMN_CHUNK ? C - c0 : COLUMN_CHUNK;
            double sum[COLUMN_CHUNK] = {0};
            for (int t = cu_seqlens[s]; t < cu_seqlens[s + 1]; t++) {
                const float *row = inp + (size_t)t * C + c0;
#pragma omp simd
                for (int c = 0; c < width; c++) sum[c] += row[c];
            }
            int len = cu_seqlens[s + 1] - cu_seqlens[s];
            for (int c = 0; c < width; c++)
                out[(size_t)s * C + c0 + c] = len > 0 ? (float)(sum[c] / len) : 0.0f;
        }
    }
}

static void cpu_mean_pool_backward(void *dinp_, const float *dout, const int32_t *cu_seqlens,
                                   int S, int C) {
    float *dinp = dinp_;
#pragma omp parallel for schedule(dynamic) if ((size_t)cu_seqlens[S] * C >= OPS_CPU_PARALLEL_MIN)
    for (int s = 0; s < S; s++) {
        float inv_len = 1.0f / (float)(cu_seqlens[s + 1] - cu_seqlens[s]);
        const float *d = dout + (size_t)s * C;
        for (int t = cu_seqlens[s]; t < cu_seqlens[s + 1]; t++) {
            float *dx = dinp + (size_t)t * C;
#pragma omp simd
            for (int c = 0; c < C; c++) dx[c] = d[c] * inv_len;
        }
    }
}

// ---- the table --------------------------------------------------------------------------

static const MnrlOps cpu_ops = {
    .name = "cpu-fp32",
    .act_bytes = sizeof(float),
    .alloc = cpu_alloc,
    .release = cpu_release,
    .upload = cpu_copy,
    .download = cpu_copy,
    .zero = cpu_zero,
    .f32_to_act = cpu_convert,
    .act_to_f32 = cpu_convert_back,
    .workspace_bytes = cpu_workspace_bytes,
    .attention_saved_bytes = cpu_attention_saved_bytes,
    .embedding_forward = cpu_embedding_forward,
    .embedding_backward = cpu_embedding_backward,
    .layernorm_forward = cpu_layernorm_forward,
    .residual_layernorm_forward = cpu_residual_layernorm_forward,
    .layernorm_backward = cpu_layernorm_backward,
    .residual_layernorm_backward = cpu_residual_layernorm_backward,
    .matmul_forward = ops_cpu_matmul_forward,
    .matmul_backward = ops_cpu_matmul_backward,
    .gelu_forward = ops_cpu_gelu_forward,
    .gelu_backward = ops_cpu_gelu_backward,
    .gelu_bias_backward = cpu_gelu_bias_backward,
    .dropout = ops_cpu_dropout,
    .attention_forward = ops_cpu_attention_forward,
    .attention_backward = ops_cpu_attention_backward,
    .mean_pool_forward = cpu_mean_pool_forward,
    .mean_pool_backward = cpu_mean_pool_backward,
    .mnrl_loss = ops_cpu_mnrl_loss,
    .grad_norm = ops_cpu_grad_norm,
    .adamw = ops_cpu_adamw,
    .last_error = NULL,  // the CPU ops cannot fail
};

const MnrlOps *ops_cpu(void) { return &cpu_ops; }
