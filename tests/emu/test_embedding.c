// test_embedding.c — src/kernels/embedding.cu (BERT input embeddings over packed
// sentences, forward and backward, fp32 and bf16 activations) run under the CUDA emulation
// and compared with the CPU backend's ops_cpu()->embedding_forward / embedding_backward on
// the same values (bf16 inputs decoded to fp32). Sentence lengths 1, 2, 31, 33, 75, 128,
// 129, 512 packed together, batch 1 and odd batches, hidden 64 and 384. Token ids repeat
// heavily ([CLS]/[SEP] in every sentence, a few frequent words, ids 512 apart that share
// the kernel's bucket, one of them [CLS]'s), since repeated rows are what a racy
// scatter-add gets wrong, and a bucket whose tokens alternate between rows is where the
// kernel's running row sum must go back to memory and be reloaded. The NLI-like batch
// (2,609 tokens) spans three of the kernel's 1,024-token chunks.
//
// Tolerances:
//  - forward: the kernel adds the three rows in fp32 in the CPU's order and rounds once to
//    the act dtype, so fp32 outputs equal the CPU's bit for bit and bf16 outputs equal the
//    CPU's fp32 result rounded to bf16 (checked with safetensors_f32_to_bf16): exact.
//  - dwte, dwpe: both add token rows in fp32 in token order onto the same initial values:
//    exact, for fp32 and (decoded) bf16 gradients alike. Every table row is compared, so a
//    stray write to an unused row fails too.
//  - dwtt: a column sum of T rows. Each kernel thread sums m = ceil(ceil(T/64)/8) rows in
//    fp32, a block adds its 8 threads' sums in fp32, and the 64 block partials are added
//    in fp64 (kernel_util.cuh): error at most (m + 7)·u·Σ_t|x_t|. Both sides then round
//    the sum and the += once (2u·|sum| + 2u·|acc|, |sum| <= Σ_t|x_t|):
//    tol = (m + 10)·u·Σ_t|x_t| + 2u·|acc|.
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "mnrl/common.h"
#include "mnrl/kernels.h"
#include "mnrl/ops.h"
#include "test.h"
#include "kernel_test.h"

enum { VOCAB = 1000, POSITIONS = 513, CLS = 101, SEP = 102 };

// Ids with the repetitions a real batch has: [CLS] first, [SEP] last, half of the rest
// from nine frequent ids (two pairs of them 512 apart, and 613 = [CLS] + 512), the others
// uniform.
static int32_t *make_ids(const int32_t *cu, int S, int T, uint64_t *rng) {
    static const int32_t frequent[] = {1996, 1012, 1997, 1010, 229, 741, 3, 515, 613};
    int32_t *ids = mnrl_malloc((size_t)(T ? T : 1) * sizeof(int32_t));
    for (int s = 0; s < S; s++)
        for (int t = cu[s]; t < cu[s + 1]; t++) {
            if (t == cu[s]) ids[t] = CLS;
            else if (t == cu[s + 1] - 1) ids[t] = SEP;
            else if (mnrl_rand_below(rng, 2)) ids[t] = frequent[mnrl_rand_below(rng, 9)] % VOCAB;
            else ids[t] = (int32_t)mnrl_rand_below(rng, VOCAB);
        }
    return ids;
}

static float *random_values(size_t n, float lo, float hi, uint64_t *rng) {
    float *x = mnrl_malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = uniform(rng, lo, hi);
    return x;
}

static void check_forward(const Case *c, int C, int bf16, const int32_t *cu, int T, const int32_t *dev_cu,
                          const int32_t *dev_ids, const int32_t *ids, uint64_t *rng) {
    float *wte = random_values((size_t)VOCAB * C, -1.0f, 1.0f, rng);
    float *wpe = random_values((size_t)POSITIONS * C, -0.5f, 0.5f, rng);
    float *wtt = random_values((size_t)2 * C, -0.25f, 0.25f, rng);
    void *dev_wte = device_act(wte, (size_t)VOCAB * C, bf16);
    void *dev_wpe = device_act(wpe, (size_t)POSITIONS * C, bf16);
    void *dev_wtt = device_act(wtt, (size_t)2 * C, bf16);
    size_t elem = bf16 ? 2 : 4, out_elems = (size_t)(T + 1) * C;  // one extra row: untouched
    void *dev_out = device_copy(NULL, out_elems * elem);
    MnrlError err = {{0}};
    double start = mnrl_now();
    int rc = bf16 ? mnrl_cuda_embedding_forward_bf16(dev_out, dev_ids, dev_cu, c->S, T, dev_wte, dev_wpe,
                                                     dev_wtt, C, NULL, &err)
                  : mnrl_cuda_embedding_forward_f32(dev_out, dev_ids, dev_cu, c->S, T, dev_wte, dev_wpe,
                                                    dev_wtt, C, NULL, &err);
    kernel_seconds += mnrl_now() - start;
    CHECK_MSG(rc == 0, "%s", err.msg);
    unsigned char *raw = host_copy(dev_out, out_elems * elem);
    float *ref = mnrl_malloc((size_t)(T ? T : 1) * C * sizeof(float));
    ops_cpu()->embedding_forward(ref, ids, cu, c->S, T, wte, wpe, wtt, C);
    size_t mismatches = 0;
    for (size_t i = 0; i < (size_t)T * C; i++) {
        uint32_t want32;
        memcpy(&want32, &ref[i], 4);
        int same = bf16 ? ((const uint16_t *)raw)[i] == safetensors_f32_to_bf16(ref[i])
                        : memcmp(raw + 4 * i, &want32, 4) == 0;
        mismatches += !same;
    }
    printf("%-20s C=%-3d %s T=%-4d forward: %zu of %zu outputs differ from the CPU's\n", c->name, C,
           bf16 ? "bf16" : "fp32", T, mismatches, (size_t)T * C);
    CHECK_MSG(mismatches == 0, "%s C=%d %s: forward differs from ops_cpu in %zu elements", c->name, C,
              bf16 ? "bf16" : "fp32", mismatches);
    CHECK_MSG(all_bytes_ff(raw + (size_t)T * C * elem, C * elem), "%s: forward wrote past row T", c->name);
    free(raw);
    free(ref);
    free(wte);
    free(wpe);
    free(wtt);
    cudaFree(dev_wte);
    cudaFree(dev_wpe);
    cudaFree(dev_wtt);
    cudaFree(dev_out);
}

// Accumulates onto random initial tables on both sides; every element of the three
// tables is compared.
static void check_backward(const Case *c, int C, int bf16, const int32_t *cu, int T, const int32_t *dev_cu,
                           const int32_t *dev_ids, const int32_t *ids, uint64_t *rng) {
    size_t nte = (size_t)VOCAB * C, npe = (size_t)POSITIONS * C, ntt = (size_t)2 * C;
    float *dwte = random_values(nte, -0.1f, 0.1f, rng);  // += onto non-zero values
    float *dwpe = random_values(npe, -0.1f, 0.1f, rng);
    float *dwtt = random_values(ntt, -0.1f, 0.1f, rng);
    float *dout = random_values((size_t)T * C, -1.0f, 1.0f, rng);
    void *dev_dout = device_act(dout, (size_t)T * C, bf16);
    float *dev_dwte = device_copy(dwte, nte * 4), *dev_dwpe = device_copy(dwpe, npe * 4);
    float *dev_dwtt = device_copy(dwtt, ntt * 4);
    void *workspace = device_copy(NULL, mnrl_cuda_embedding_backward_workspace_bytes(T, C));
    MnrlError err = {{0}};
    double start = mnrl_now();
    int rc = bf16 ? mnrl_cuda_embedding_backward_bf16(dev_dwte, dev_dwpe, dev_dwtt, dev_dout, dev_ids, dev_cu,
                                                      c->S, T, C, workspace, NULL, &err)
                  : mnrl_cuda_embedding_backward_f32(dev_dwte, dev_dwpe, dev_dwtt, dev_dout, dev_ids, dev_cu,
                                                     c->S, T, C, workspace, NULL, &err);
    kernel_seconds += mnrl_now() - start;
    CHECK_MSG(rc == 0, "%s", err.msg);
    float *got_te = host_copy(dev_dwte, nte * 4), *got_pe = host_copy(dev_dwpe, npe * 4);
    float *got_tt = host_copy(dev_dwtt, ntt * 4);
    ops_cpu()->embedding_backward(dwte, dwpe, dwtt, dout, ids, cu, c->S, T, C, NULL);
    size_t te_diff = 0, pe_diff = 0;
    for (size_t i = 0; i < nte; i++) te_diff += memcmp(&got_te[i], &dwte[i], 4) != 0;
    for (size_t i = 0; i < npe; i++) pe_diff += memcmp(&got_pe[i], &dwpe[i], 4) != 0;
    ErrorStat tt = {0, 0};
    int m = ((T + 63) / 64 + 7) / 8;
    for (int j = 0; j < C; j++) {
        double abs_sum = 0.0;
        for (int t = 0; t < T; t++) abs_sum += fabs(dout[(size_t)t * C + j]);
        track(&tt, got_tt[j], dwtt[j], (m + 10) * kU * abs_sum + 2 * kU * fabs(dwtt[j]));
    }
    CHECK_MSG(memcmp(got_tt + C, dwtt + C, (size_t)C * 4) == 0, "%s: dwtt row 1 changed", c->name);
    printf("%-20s C=%-3d %s T=%-4d backward: dwte %zu, dwpe %zu elements differ; dwtt max|err| %.2e "
           "(%.2f tol)\n", c->name, C, bf16 ? "bf16" : "fp32", T, te_diff, pe_diff, tt.max_err, tt.worst);
    CHECK_MSG(te_diff == 0 && pe_diff == 0, "%s C=%d %s: dwte/dwpe differ from ops_cpu in %zu/%zu elements",
              c->name, C, bf16 ? "bf16" : "fp32", te_diff, pe_diff);
    CHECK_MSG(tt.worst <= 1.0, "%s C=%d %s: dwtt error %.3g x tolerance", c->name, C, bf16 ? "bf16" : "fp32",
              tt.worst);
    free(got_te);
    free(got_pe);
    free(got_tt);
    free(dwte);
    free(dwpe);
    free(dwtt);
    free(dout);
    cudaFree(dev_dout);
    cudaFree(dev_dwte);
    cudaFree(dev_dwpe);
    cudaFree(dev_dwtt);
    cudaFree(workspace);
}

static void run_case(const Case *c, int C, int bf16, uint64_t *rng) {
    int T = 0;
    int32_t *cu = case_offsets(c, &T);
    int32_t *ids = make_ids(cu, c->S, T, rng);
    int32_t *dev_cu = device_copy(cu, (size_t)(c->S + 1) * sizeof(int32_t));
    int32_t *dev_ids = device_copy(ids, (size_t)T * sizeof(int32_t));
    check_forward(c, C, bf16, cu, T, dev_cu, dev_ids, ids, rng);
    check_backward(c, C, bf16, cu, T, dev_cu, dev_ids, ids, rng);
    cudaFree(dev_cu);
    cudaFree(dev_ids);
    free(ids);
    free(cu);
}

static void check_arguments(void) {
    MnrlError err = {{0}};
    CHECK_EQ_INT(mnrl_cuda_embedding_forward_f32(NULL, NULL, NULL, -1, 0, NULL, NULL, NULL, 64, NULL, &err), -1);
    CHECK_CONTAINS(err.msg, "bad shape S=-1");
    CHECK_EQ_INT(mnrl_cuda_embedding_backward_bf16(NULL, NULL, NULL, NULL, NULL, NULL, 2, 5, 0, NULL, NULL, &err),
                 -1);
    CHECK_CONTAINS(err.msg, "C=0");
    // Nothing to do: no launch (a zero-block grid would be a launch error).
    CHECK_EQ_INT(mnrl_cuda_embedding_forward_bf16(NULL, NULL, NULL, 0, 0, NULL, NULL, NULL, 384, NULL, &err), 0);
    CHECK_EQ_INT(mnrl_cuda_embedding_backward_f32(NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, 384, NULL, NULL, &err),
                 0);
    CHECK_EQ_INT(cudaGetLastError(), cudaSuccess);
}

int main(void) {
    uint64_t rng = 7;
    const Case *cases;
    int ncases = packed_cases(&cases);
    const int hidden[] = {64, 384};
    double start = mnrl_now();
    for (int k = 0; k < ncases; k++)
        for (int h = 0; h < 2; h++)
            for (int bf16 = 0; bf16 < 2; bf16++) run_case(&cases[k], hidden[h], bf16, &rng);
    check_arguments();
    printf("embedding kernels: %.3f s emulated, whole test %.3f s\n", kernel_seconds, mnrl_now() - start);
    TEST_END();
}
