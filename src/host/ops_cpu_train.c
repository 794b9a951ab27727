// ops_cpu_train.c — CPU backend (see ops_cpu.c): the MNRL loss, the global gradient norm
// and the clipped AdamW step, all fp32 with fp64 reductions.
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "mnrl/ops.h"
#include "ops_cpu.h"

// ---- MNRL loss --------------------------------------------------------------------------

// F.normalize's guard against zero norms.
#define NORM_EPS 1e-12f

// Workspace of the loss: unit rows of A and Cd, their raw norms, the row losses and the
// b × N score matrix (which becomes the gradient of the scores in place).
typedef struct {
    float *a_hat, *c_hat, *a_norm, *c_norm, *row_loss, *scores;
} LossScratch;

size_t ops_cpu_mnrl_loss_bytes(int b, int N, int H) {
    size_t floats = (size_t)(b + N) * H + 2 * (size_t)b + (size_t)N + (size_t)b * N;
    return sizeof(float) * floats;
}

static LossScratch loss_scratch(void *workspace, int b, int N, int H) {
    LossScratch s;
    s.a_hat = workspace;
    s.c_hat = s.a_hat + (size_t)b * H;
    s.a_norm = s.c_hat + (size_t)N * H;
    s.c_norm = s.a_norm + b;
    s.row_loss = s.c_norm + N;
    s.scores = s.row_loss + b;
    return s;
}

// x̂ = x / max(||x||, eps) per row; norm keeps ||x|| for the backward branch.
static void normalize_rows(float *x_hat, float *norm, const float *x, int rows, int H) {
#pragma omp parallel for schedule(static) if ((size_t)rows * H >= OPS_CPU_PARALLEL_MIN)
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * H;
        double sq = 0.0;
        for (int c = 0; c < H; c++) sq += (double)xr[c] * xr[c];
        norm[r] = (float)sqrt(sq);
        float n = norm[r] > NORM_EPS ? norm[r] : NORM_EPS;
        for (int c = 0; c < H; c++) x_hat[(size_t)r * H + c] = xr[c] / n;
    }
}

// In place: dy (gradient of x̂) becomes the gradient of x. Above eps the norm depends on x:
// dx = (dy - x̂ (x̂·dy)) / ||x||; below it the clamp is constant: dx = dy / eps
// (torch's clamp_min passes the gradient where ||x|| >= eps).
static void normalize_rows_backward(float *dy, const float *x_hat, const float *norm,
                                    int rows, int H) {
#pragma omp parallel for schedule(static) if ((size_t)rows * H >= OPS_CPU_PARALLEL_MIN)
    for (int r = 0; r < rows; r++) {
        float *d = dy + (size_t)r * H;
        const float *xh = x_hat + (size_t)r * H;
        if (norm[r] >= NORM_EPS) {
            double proj = 0.0;
            for (int c = 0; c < H; c++) proj += (double)xh[c] * d[c];
            for (int c = 0; c < H; c++) d[c] = (float)((d[c] - xh[c] * proj) / norm[r]);
        } else {
            for (int c = 0; c < H; c++) d[c] /= NORM_EPS;
        }
    }
}

// Row i of scores S_i (length N) → CE loss against label, and S_i replaced by
// dloss_i/dcos_i = (softmax(S_i) - onehot(label)) · scale / global_batch.
static float cross_entropy_row(float *scores, int N, int label, float grad_scale) {
    float max_score = -INFINITY;
    for (int j = 0; j < N; j++)
        if (scores[j] > max_score) max_score = scores[j];
    double sum = 0.0;
    for (int j = 0; j < N; j++) sum += exp((double)scores[j] - max_score);
    double lse = max_score + log(sum);
    float loss = (float)(lse - scores[label]);
    for (int j = 0; j < N; j++) {
        double p = exp((double)scores[j] - lse) - (j == label ? 1.0 : 0.0);
        scores[j] = (float)(p * grad_scale);
    }
    return loss;
}

void ops_cpu_mnrl_loss(float *loss, float *dA, float *dCd, const float *A, const float *Cd,
                       int b, int N, int H, float scale, int label_offset, int global_batch,
                       void *workspace) {
    LossScratch s = loss_scratch(workspace, b, N, H);
    normalize_rows(s.a_hat, s.a_norm, A, b, H);
    normalize_rows(s.c_hat, s.c_norm, Cd, N, H);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b, N, H, scale, s.a_hat, H, s.c_hat,
                H, 0.0f, s.scores, N);
    float grad_scale = scale / (float)global_batch;
#pragma omp parallel for schedule(static) if ((size_t)b * N >= OPS_CPU_PARALLEL_MIN)
    for (int i = 0; i < b; i++)
        s.row_loss[i] = cross_entropy_row(s.scores + (size_t)i * N, N, label_offset + i,
                                          grad_scale);
    double total = 0.0;
    for (int i = 0; i < b; i++) total += s.row_loss[i];
    *loss = (float)(total / global_batch);
    if (!dA) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, b, H, N, 1.0f, s.scores, N,
                s.c_hat, H, 0.0f, dA, H);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, H, b, 1.0f, s.scores, N, s.a_hat,
                H, 0.0f, dCd, H);
    normalize_rows_backward(dA, s.a_hat, s.a_norm, b, H);
    normalize_rows_backward(dCd, s.c_hat, s.c_norm, N, H);
}

// ---- optimizer --------------------------------------------------------------------------

// Fixed chunks summed in fp64 and combined in chunk order: the same norm for any
// thread count.
enum { NORM_CHUNKS = 64 };

void ops_cpu_grad_norm(float *norm, const float *grads, size_t n, void *workspace) {
    (void)workspace;
    double partial[NORM_CHUNKS] = {0};
    size_t chunk = (n + NORM_CHUNKS - 1) / NORM_CHUNKS;
#pragma omp parallel for schedule(static) if (n >= OPS_CPU_PARALLEL_MIN)
    for (int k = 0; k < NORM_CHUNKS; k++) {
        size_t end = (k + 1) * chunk < n ? (k + 1) * chunk : n;
        double sum = 0.0;
#pragma omp simd reduction(+ : sum)
        for (size_t i = k * chunk; i < end; i++) sum += (double)grads[i] * grads[i];
        partial[k] = sum;
    }
    double total = 0.0;
    for (int k = 0; k < NORM_CHUNKS; k++) total += partial[k];
    *norm = (float)sqrt(total);
}

// The fp32 scalars of one AdamW step, each rounded once from its double value as torch
// does (so 1 - beta2 is 0.001f, not 1 - 0.999f). The bias corrections are folded into the
// step size and the denominator; clip multiplies every gradient (1 when not clipping).
typedef struct {
    float decay, m_weight, beta2, v_weight, step_size, bc2_sqrt, eps, clip;
} AdamwScalars;

// torch.nn.utils.clip_grad_norm_'s coefficient in fp32, applied only below 1. (g·1 is g,
// so one loop serves clipped and unclipped steps alike.)
static float clip_scale(float norm, double max_norm) {
    float max_f = (float)max_norm, coef = max_f / (norm + 1e-6f);
    return max_f > 0.0f && coef < 1.0f ? coef : 1.0f;
}

static AdamwScalars adamw_scalars(const MnrlAdamwParams *hp, int step, float norm) {
    return (AdamwScalars){.decay = (float)(1.0 - hp->lr * hp->weight_decay),
                          .m_weight = (float)(1.0 - hp->beta1), .beta2 = (float)hp->beta2,
                          .v_weight = (float)(1.0 - hp->beta2),
                          .step_size = (float)(hp->lr / (1.0 - pow(hp->beta1, step))),
                          .bc2_sqrt = (float)sqrt(1.0 - pow(hp->beta2, step)),
                          .eps = (float)hp->eps, .clip = clip_scale(norm, hp->max_norm)};
}

// torch's _single_tensor_adamw on n elements of one run, operation for operation, on the
// clipped gradient; each gradient is zeroed once read. decay is the run's 1 - lr·wd (1
// when it does not decay: (float)(1 - lr·0) is 1). The step is memory-bound, so this is
// the one pass over the four buffers; it vectorises because this file is compiled with
// -fno-math-errno (CMakeLists.txt), without which GCC keeps sqrtf scalar.
OPS_CPU_CLONES static void adamw_span(float *params, float *grads, float *m, float *v, size_t n,
                                      float decay, AdamwScalars s) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float g = grads[i] * s.clip;
        grads[i] = 0.0f;
        float p = params[i] * decay;
        m[i] += s.m_weight * (g - m[i]);
        v[i] = v[i] * s.beta2 + s.v_weight * g * g;
        params[i] = p - s.step_size * m[i] / (sqrtf(v[i]) / s.bc2_sqrt + s.eps);
    }
}

// The threads share the buffers in chunks of this many floats (static schedule: each
// thread one contiguous half on two threads); a chunk covers the parts of the runs it
// overlaps.
enum { ADAMW_CHUNK = 16384 };

// The run holding element e: the last one starting at or before it (runs tile the buffer
// in order).
static size_t run_at(const MnrlParamRun *runs, size_t n_runs, size_t e) {
    size_t lo = 0, hi = n_runs;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (runs[mid].offset <= e) lo = mid;
        else hi = mid;
    }
    return lo;
}

void ops_cpu_adamw(float *params, void *params_act, float *grads, float *m, float *v,
                   const MnrlParamRun *runs, size_t n_runs, const float *norm,
                   const MnrlAdamwParams *hp, int step) {
    size_t n = n_runs > 0 ? runs[n_runs - 1].offset + runs[n_runs - 1].count : 0;
    if (!isfinite(*norm)) {  // a skipped step: the gradients are cleared all the same
        memset(grads, 0, n * sizeof *grads);
        return;
    }
    AdamwScalars s = adamw_scalars(hp, step, *norm);
    size_t chunks = (n + ADAMW_CHUNK - 1) / ADAMW_CHUNK;
#pragma omp parallel for schedule(static) if (n >= OPS_CPU_PARALLEL_MIN)
    for (size_t k = 0; k < chunks; k++) {
        size_t begin = k * ADAMW_CHUNK, end = n - begin < ADAMW_CHUNK ? n : begin + ADAMW_CHUNK;
        for (size_t r = run_at(runs, n_runs, begin); r < n_runs && runs[r].offset < end; r++) {
            size_t lo = runs[r].offset > begin ? runs[r].offset : begin;
            size_t hi = runs[r].offset + runs[r].count < end ? runs[r].offset + runs[r].count : end;
            if (lo < hi)
                adamw_span(params + lo, grads + lo, m + lo, v + lo, hi - lo, runs[r].decay ? s.decay : 1.0f, s);
        }
    }
    if (params_act && params_act != (void *)params) memcpy(params_act, params, n * sizeof(float));
}
