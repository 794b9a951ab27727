// test_mnrl_loss.c — src/kernels/mnrl_loss.cu (the tiled fused MNRL loss: norms, scaled
// cosine scores, online log-sum-exp, loss, dA and dCd) run under the CUDA emulation and
// compared with the CPU backend's ops_cpu()->mnrl_loss on the same inputs. Cases: b = 1
// with k = 0 (a 1 × 1 problem); odd b = 7 with k = 2 at H = 384; a rank's share
// (label_offset 5 of global batch 12); a zero-norm candidate (F.normalize's clamp: its
// score is 0 and its gradient is divided by 1e-12); 150 anchors × 450 candidates at
// H = 100 (several 64 × 64 tiles both ways, H not a multiple of the 32-column stage); and
// 130 anchors × 8,256 candidates at H = 8 (label_offset 3,990 of 4,128) where blocks walk
// several candidate tiles with the online log-sum-exp and the candidate-gradient blocks
// walk several anchor tiles. Also: loss-only calls give the same loss bits, a second call
// gives the same bits (deterministic reductions), and the workspace for b = 65,536
// anchors, N = 196,608 candidates stays O((b + N)·H).
//
// Every case runs both ways the kernels take their products: in fp32 (tensor_cores 0, as
// the CPU) and on tensor cores with every fp32 operand split into bf16 hi + lo and three
// products per term (tensor_cores 1; mnrl_loss.cu).
//
// Tolerance (u = 2^-24; first-order bounds of both sides' arithmetic, evaluated per
// element in fp64 from the exact probabilities P computed here). On the tensor cores a
// term x·y is off by at most kSplit·u·|x·y| from the split, and its 3 products are added
// in fp32 in an order and rounding the hardware chooses, bounded here by 2u (a directed
// rounding) per addition; fp32 sides add their terms in order.
//  - scores: unit vectors and Σ_d|â_d ĉ_d| <= 1: a side's fp32 dot of H terms is off by
//    (H + 6)·u, the tensor cores' by (kSplit + 6H + 6)·u, so |ΔS_ij| <= δ = 2·(H + 6)·u·scale
//    (fp32) or (7H + 12 + kSplit)·u·scale (tensor cores);
//  - a probability P_ij = exp(S_ij - lse_i) is off by the relative ε = 2δ + 80u (its score,
//    the lse's scores, and the fp32 exponentials and 64-term tile sums);
//  - loss: tol = 2δ + 80u + 4u·|loss|;
//  - G_ij = (P_ij - [j = label_i])·scale/global_batch: |ΔG_ij| <= gs·P_ij·ε + 2u·|G_ij|;
//    the unnormalised gradient d_i = Σ_j G_ij ĉ_j is off by
//    e_d = Σ_j |ΔG_ij|·|ĉ_jd| + c·u·Σ_j |G_ij ĉ_jd| for n terms summed in fp32, (n + 2)·u on
//    each side, so c = 2n + 4 (fp32); on the tensor cores split, added in 3n additions, a
//    slice add per 64 walked rows and a rounding of the splits' sum, (kSplit + 6n + n/64 +
//    2)·u, so c = 7n + n/64 + 4 + kSplit,
//    and F.normalize's backward dx = (d - x̂(x̂·d))/max(||x||, 1e-12) gives
//    tol_d = (e_d + |x̂_d|·Σ_k |x̂_k| e_k + 4u·(|d_d| + |x̂_d|·|x̂·d|)) / max(||x||, 1e-12)
//    + 2u·|dx_d|; likewise for dCd with sums over anchors.
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "mnrl/common.h"
#include "mnrl/kernels.h"
#include "mnrl/ops.h"
#include "test.h"
#include "kernel_test.h"

typedef struct {
    const char *name;
    int b, k, H, label_offset, global_batch;
    int zero_candidate;  // index of an all-zero candidate row, or -1
} LossCase;

typedef struct {
    ErrorStat loss, dA, dCd;
} Stats;

static const float kScale = 20.0f;
static const double kSplit = 192.0;  // 3·2^-18 in units of u: lo·lo and the split's remainders

// Unit rows in fp64 (F.normalize) and the norms.
static double *unit_rows(const float *x, int rows, int H, double *norm) {
    double *hat = mnrl_malloc((size_t)rows * H * sizeof(double));
    for (int r = 0; r < rows; r++) {
        double sq = 0.0;
        for (int d = 0; d < H; d++) sq += (double)x[(size_t)r * H + d] * x[(size_t)r * H + d];
        norm[r] = sqrt(sq);
        double n = norm[r] > 1e-12 ? norm[r] : 1e-12;
        for (int d = 0; d < H; d++) hat[(size_t)r * H + d] = x[(size_t)r * H + d] / n;
    }
    return hat;
}

// Checks one side's gradient rows: dx (kernel) against want (CPU), where row r's
// unnormalised gradient is Σ_w G(r, w)·other_hat[w] (G given by a callback over fp64 G and
// its error bound).
typedef struct {
    const double *G, *errG;  // [b, N]
    int b, N;
} GradMatrix;

static double g_at(const GradMatrix *m, int own_is_anchor, int r, int w) {
    return own_is_anchor ? m->G[(size_t)r * m->N + w] : m->G[(size_t)w * m->N + r];
}

static double err_at(const GradMatrix *m, int own_is_anchor, int r, int w) {
    return own_is_anchor ? m->errG[(size_t)r * m->N + w] : m->errG[(size_t)w * m->N + r];
}

static void compare_grad(ErrorStat *st, const float *dx, const float *want, const GradMatrix *m, int own_is_anchor,
                         const double *own_hat, const double *own_norm, const double *other_hat, int H, int tc) {
    int rows = own_is_anchor ? m->b : m->N, walked = own_is_anchor ? m->N : m->b;
    double *d = mnrl_malloc((size_t)H * sizeof(double)), *e = mnrl_malloc((size_t)H * sizeof(double));
    double *a = mnrl_malloc((size_t)H * sizeof(double));
    for (int r = 0; r < rows; r++) {
        memset(d, 0, H * sizeof(double));
        memset(e, 0, H * sizeof(double));
        memset(a, 0, H * sizeof(double));
        for (int w = 0; w < walked; w++) {
            double g = g_at(m, own_is_anchor, r, w), eg = err_at(m, own_is_anchor, r, w);
            if (g == 0.0 && eg == 0.0) continue;
            const double *x = other_hat + (size_t)w * H;
            for (int k = 0; k < H; k++) {
                d[k] += g * x[k];
                e[k] += eg * fabs(x[k]);
                a[k] += fabs(g * x[k]);
            }
        }
        const double *xh = own_hat + (size_t)r * H;
        double proj = 0.0, err_proj = 0.0;
        for (int k = 0; k < H; k++) {
            e[k] += (tc ? 7.0 * walked + walked / 64 + 4 + kSplit : 2.0 * walked + 4) * kU * a[k];
            proj += xh[k] * d[k];
            err_proj += fabs(xh[k]) * e[k];
        }
        double n = own_norm[r] >= 1e-12 ? own_norm[r] : 1e-12;
        for (int k = 0; k < H; k++) {
            size_t i = (size_t)r * H + k;
            double tol = (e[k] + fabs(xh[k]) * err_proj + 4 * kU * (fabs(d[k]) + fabs(xh[k] * proj))) / n +
                         2 * kU * fabs(want[i]);
            track(st, dx[i], want[i], tol);
        }
    }
    free(d);
    free(e);
    free(a);
}

static void run_case(const LossCase *lc, int tc, uint64_t *rng) {
    double seconds_before = kernel_seconds;
    int b = lc->b, H = lc->H, N = lc->global_batch * (1 + lc->k), G = lc->global_batch;
    float *A = mnrl_malloc((size_t)b * H * sizeof(float)), *Cd = mnrl_malloc((size_t)N * H * sizeof(float));
    for (size_t i = 0; i < (size_t)N * H; i++) Cd[i] = uniform(rng, -1.0f, 1.0f);
    for (int i = 0; i < b; i++)  // anchors leaning towards their positives: a loss between 0 and log N
        for (int d = 0; d < H; d++)
            A[(size_t)i * H + d] = 0.15f * Cd[(size_t)(lc->label_offset + i) * H + d] + uniform(rng, -1.0f, 1.0f);
    if (lc->zero_candidate >= 0) memset(Cd + (size_t)lc->zero_candidate * H, 0, H * sizeof(float));

    float *dev_A = device_copy(A, (size_t)b * H * 4), *dev_Cd = device_copy(Cd, (size_t)N * H * 4);
    float *dev_loss = device_copy(NULL, 8);  // the second float must stay untouched
    float *dev_dA = device_copy(NULL, (size_t)(b + 1) * H * 4), *dev_dCd = device_copy(NULL, (size_t)(N + 1) * H * 4);
    void *workspace = device_copy(NULL, mnrl_cuda_mnrl_loss_workspace_bytes(b, N, H));
    MnrlError err = {{0}};
    double start = mnrl_now();
    int rc = mnrl_cuda_mnrl_loss(dev_loss, dev_dA, dev_dCd, dev_A, dev_Cd, b, N, H, kScale, lc->label_offset, G, tc,
                                 workspace, NULL, &err);
    kernel_seconds += mnrl_now() - start;
    CHECK_MSG(rc == 0, "%s", err.msg);
    float *loss = host_copy(dev_loss, 8), *dA = host_copy(dev_dA, (size_t)(b + 1) * H * 4);
    float *dCd = host_copy(dev_dCd, (size_t)(N + 1) * H * 4);
    CHECK_MSG(all_bytes_ff(loss + 1, 4) && all_bytes_ff(dA + (size_t)b * H, H * 4) &&
                  all_bytes_ff(dCd + (size_t)N * H, H * 4), "%s: wrote past its outputs", lc->name);

    // Same call again, and loss only: the same bits.
    start = mnrl_now();
    CHECK(mnrl_cuda_mnrl_loss(dev_loss, dev_dA, dev_dCd, dev_A, dev_Cd, b, N, H, kScale, lc->label_offset, G, tc,
                              workspace, NULL, &err) == 0);
    CHECK(mnrl_cuda_mnrl_loss(dev_loss + 1, NULL, NULL, dev_A, dev_Cd, b, N, H, kScale, lc->label_offset, G, tc,
                              workspace, NULL, &err) == 0);
    kernel_seconds += mnrl_now() - start;
    float *loss2 = host_copy(dev_loss, 8), *dA2 = host_copy(dev_dA, (size_t)b * H * 4);
    float *dCd2 = host_copy(dev_dCd, (size_t)N * H * 4);
    CHECK_MSG(memcmp(loss, loss2, 4) == 0 && memcmp(loss, loss2 + 1, 4) == 0 &&
                  memcmp(dA, dA2, (size_t)b * H * 4) == 0 && memcmp(dCd, dCd2, (size_t)N * H * 4) == 0,
              "%s: a second call or the loss-only call changed bits", lc->name);

    // The CPU reference.
    const MnrlOps *cpu = ops_cpu();
    MnrlOpsLimits limits = {0};
    limits.max_anchors = b;
    limits.max_candidates = N;
    limits.channels = H;
    void *cpu_ws = mnrl_malloc(cpu->workspace_bytes(&limits));
    float ref_loss, *ref_dA = mnrl_malloc((size_t)b * H * 4), *ref_dCd = mnrl_malloc((size_t)N * H * 4);
    cpu->mnrl_loss(&ref_loss, ref_dA, ref_dCd, A, Cd, b, N, H, kScale, lc->label_offset, G, cpu_ws);

    // fp64 probabilities and gradient bounds.
    double *a_norm = mnrl_malloc(b * sizeof(double)), *c_norm = mnrl_malloc(N * sizeof(double));
    double *a_hat = unit_rows(A, b, H, a_norm), *c_hat = unit_rows(Cd, N, H, c_norm);
    double delta = (tc ? 7.0 * H + 12 + kSplit : 2.0 * (H + 6)) * kU * kScale;
    double eps = 2 * delta + 80 * kU, gs = kScale / G;
    GradMatrix m = {mnrl_malloc((size_t)b * N * sizeof(double)), mnrl_malloc((size_t)b * N * sizeof(double)), b, N};
    double *Gm = (double *)m.G, *errG = (double *)m.errG;
    for (int i = 0; i < b; i++) {
        double *row = Gm + (size_t)i * N, max_s = -INFINITY, sum = 0.0;
        for (int j = 0; j < N; j++) {
            double s = 0.0;
            for (int d = 0; d < H; d++) s += a_hat[(size_t)i * H + d] * c_hat[(size_t)j * H + d];
            row[j] = kScale * s;
            if (row[j] > max_s) max_s = row[j];
        }
        for (int j = 0; j < N; j++) sum += exp(row[j] - max_s);
        double lse = max_s + log(sum);
        for (int j = 0; j < N; j++) {
            double p = exp(row[j] - lse);
            row[j] = (p - (j == lc->label_offset + i ? 1.0 : 0.0)) * gs;
            errG[(size_t)i * N + j] = gs * p * eps + 2 * kU * fabs(row[j]);
        }
    }
    Stats st;
    memset(&st, 0, sizeof st);
    track(&st.loss, loss[0], ref_loss, 2 * delta + 80 * kU + 4 * kU * fabs(ref_loss));
    compare_grad(&st.dA, dA, ref_dA, &m, 1, a_hat, a_norm, c_hat, H, tc);
    compare_grad(&st.dCd, dCd, ref_dCd, &m, 0, c_hat, c_norm, a_hat, H, tc);
    if (lc->zero_candidate >= 0) {  // its clamped gradient is huge; both sides must agree
        float g = ref_dCd[(size_t)lc->zero_candidate * H];
        CHECK_MSG(fabsf(g) > 1e3f, "%s: the zero candidate's gradient %g should be amplified by 1/1e-12", lc->name, g);
    }
    printf("%s %-28s b=%-4d N=%-6d H=%-3d loss %.6f: |err| %.1e (%.2f tol) | dA %.1e (%.2f) | dCd %.1e (%.2f) | "
           "3 calls %.2f s\n", tc ? "tc  " : "fp32", lc->name, b, N, H, ref_loss, st.loss.max_err, st.loss.worst,
           st.dA.max_err, st.dA.worst, st.dCd.max_err, st.dCd.worst, kernel_seconds - seconds_before);
    CHECK_MSG(st.loss.worst <= 1.0, "%s (tensor_cores %d): loss error %.3g x tolerance", lc->name, tc, st.loss.worst);
    CHECK_MSG(st.dA.worst <= 1.0, "%s (tensor_cores %d): dA error %.3g x tolerance", lc->name, tc, st.dA.worst);
    CHECK_MSG(st.dCd.worst <= 1.0, "%s (tensor_cores %d): dCd error %.3g x tolerance", lc->name, tc, st.dCd.worst);

    free((void *)m.G);
    free((void *)m.errG);
    free(a_norm);
    free(c_norm);
    free(a_hat);
    free(c_hat);
    free(cpu_ws);
    free(ref_dA);
    free(ref_dCd);
    free(loss);
    free(loss2);
    free(dA);
    free(dA2);
    free(dCd);
    free(dCd2);
    free(A);
    free(Cd);
    cudaFree(dev_A);
    cudaFree(dev_Cd);
    cudaFree(dev_loss);
    cudaFree(dev_dA);
    cudaFree(dev_dCd);
    cudaFree(workspace);
}

static void check_arguments(void) {
    MnrlError err = {{0}};
    CHECK_EQ_INT(mnrl_cuda_mnrl_loss(NULL, NULL, NULL, NULL, NULL, 4, 8, 64, 20.0f, 5, 8, 1, NULL, NULL, &err), -1);
    CHECK_CONTAINS(err.msg, "label_offset=5");
    CHECK_EQ_INT(mnrl_cuda_mnrl_loss(NULL, NULL, NULL, NULL, NULL, 0, 8, 64, 20.0f, 0, 8, 0, NULL, NULL, &err), -1);
    CHECK_CONTAINS(err.msg, "b=0");
    float x;
    CHECK_EQ_INT(mnrl_cuda_mnrl_loss(&x, &x, NULL, NULL, NULL, 4, 8, 64, 20.0f, 0, 4, 1, NULL, NULL, &err), -1);
    CHECK_CONTAINS(err.msg, "both dA and dCd");
    // B = 65,536 must fit: the workspace is O((b + N)·H), not O(b·N).
    int b = 65536, N = 3 * 65536, H = 384;
    double bytes = (double)mnrl_cuda_mnrl_loss_workspace_bytes(b, N, H);
    printf("workspace for b=%d N=%d H=%d: %.2f GB (score matrix: %.1f GB)\n", b, N, H, bytes / 1e9,
           4.0 * b * N / 1e9);
    CHECK(bytes <= 4.0 * (b + N + N + 16448) * H + 64.0 * (b + N) + 1e6);
}

int main(void) {
    const LossCase cases[] = {
        {"b=1, k=0", 1, 0, 64, 0, 1, -1},
        {"odd b=7, k=2", 7, 2, 384, 0, 7, -1},
        {"rank share (offset 5 of 12)", 5, 1, 64, 5, 12, -1},
        {"zero-norm candidate", 9, 1, 64, 0, 9, 11},
        {"tiles both ways", 150, 2, 100, 0, 150, -1},
        {"long walk (offset 3990)", 130, 1, 8, 3990, 4128, -1},
    };
    uint64_t rng = 11;
    double start = mnrl_now();
    for (int tc = 0; tc < 2; tc++)
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) run_case(&cases[k], tc, &rng);
    check_arguments();
    printf("mnrl loss kernels: %.3f s emulated, whole test %.3f s\n", kernel_seconds, mnrl_now() - start);
    TEST_END();
}
