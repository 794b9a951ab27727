// bench_gpu_attention.c — the training step's attention (src/kernels/attention.cu, bf16 on
// tensor cores) alone on a GPU, forward and backward, on sentence lengths read from a file:
// ours' side of bench/attention.py, which times cuDNN's and FlashAttention's variable-length
// attention (through torch) on the same lengths (issue 7: keep whichever is faster).
//
//   bench_gpu_attention LENGTHS [MAX_SEQLEN [NH [HS [REPEATS [KEEP_PROB]]]]]
//       defaults: the longest length, 12, 64, 20, 0.9
//
// LENGTHS: one sentence length (tokens, [CLS] and [SEP] included) per line, packed in file
// order into one call as the trainer packs a batch. MAX_SEQLEN is the model's limit the
// trainer passes (bench/gpu.sh: 75). Prints each pass's ms per call (after one untimed
// call), TFLOP/s of the real tokens' products (forward 4·L²·HS per head and sentence,
// backward 2.5 times that) and GB/s of the traffic no attention can avoid (forward: read
// qkv, write out and the saved state; backward: read qkv, out, dout and the saved state,
// write dqkv): at NLI's ~12-token sentences the products are small and that traffic is
// the floor. Then the times as one JSON line for bench/attention.py.
#include <stdio.h>
#include <stdlib.h>

#include <cuda_runtime_api.h>

#include "mnrl/common.h"
#include "mnrl/kernels.h"
#include "bench_gpu.h"

static void die(const char *what, MnrlError *err) {
    fprintf(stderr, "bench_gpu_attention: %s%s%s\n", what, err ? ": " : "", err ? err->msg : "");
    exit(1);
}

static void *device_alloc(size_t bytes) { return bench_device_alloc("bench_gpu_attention", bytes); }

// The lengths of LENGTHS as cumulative offsets: *cu_seqlens [S + 1], returns S.
static int read_lengths(const char *path, int32_t **cu_seqlens, int *longest) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "bench_gpu_attention: cannot open %s\n", path);
        exit(2);
    }
    int S = 0, cap = 1024, len;
    int32_t *cu = mnrl_malloc((size_t)(cap + 1) * sizeof *cu);
    cu[0] = 0;
    *longest = 0;
    while (fscanf(f, "%d", &len) == 1) {
        if (len < 1) {
            fprintf(stderr, "bench_gpu_attention: %s, length %d: lengths must be >= 1\n", path, S + 1);
            exit(2);
        }
        if (S == cap) cu = mnrl_realloc(cu, (size_t)((cap *= 2) + 1) * sizeof *cu);
        cu[S + 1] = cu[S] + len;
        S++;
        if (len > *longest) *longest = len;
    }
    int bad = !feof(f);
    fclose(f);
    if (bad || S == 0) {
        fprintf(stderr, "bench_gpu_attention: %s: expected one integer length per line (%d read)\n", path, S);
        exit(2);
    }
    *cu_seqlens = cu;
    return S;
}

// Device bf16 [n] of uniform values in [-1, 1) from one fp32 upload.
static mnrl_bf16 *random_bf16(size_t n, uint64_t seed) {
    float *host = mnrl_malloc(n * sizeof *host), *staging = device_alloc(n * sizeof *host);
    for (size_t i = 0; i < n; i++)
        host[i] = bench_uniform(&seed);
    mnrl_bf16 *out = device_alloc(n * sizeof *out);
    MnrlError err = {{0}};
    cudaMemcpy(staging, host, n * sizeof *host, cudaMemcpyHostToDevice);
    if (mnrl_cuda_f32_to_bf16(out, staging, n, 0, &err)) die("f32_to_bf16", &err);
    cudaFree(staging);
    free(host);
    return out;
}

typedef struct {
    mnrl_bf16 *qkv, *out, *dout, *dqkv;
    float *saved;
    void *workspace;
    const int32_t *cu_seqlens;  // device
    int S, T, max_seqlen, C, NH;
    float keep_prob;
} Call;

static void forward_pass(void *ctx) {
    const Call *c = ctx;
    MnrlError err = {{0}};
    if (mnrl_cuda_attention_forward_bf16(c->out, c->saved, c->qkv, c->cu_seqlens, c->S, c->T, c->max_seqlen, c->C,
                                         c->NH, c->keep_prob, 1, 0, 0, 0, &err))
        die("attention forward", &err);
}

static void backward_pass(void *ctx) {
    const Call *c = ctx;
    MnrlError err = {{0}};
    if (mnrl_cuda_attention_backward_bf16(c->dqkv, c->dout, c->qkv, c->out, c->saved, c->cu_seqlens, c->S, c->T,
                                          c->max_seqlen, c->C, c->NH, c->keep_prob, 1, 0, 0, c->workspace, 0, &err))
        die("attention backward", &err);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_gpu_attention LENGTHS [MAX_SEQLEN [NH [HS [REPEATS [KEEP_PROB]]]]]\n");
        return 2;
    }
    int32_t *cu_seqlens, longest;
    Call c = {0};
    c.S = read_lengths(argv[1], &cu_seqlens, &longest);
    c.T = cu_seqlens[c.S];
    c.max_seqlen = bench_arg(argc, argv, 2, longest);
    c.NH = bench_arg(argc, argv, 3, 12);
    int HS = bench_arg(argc, argv, 4, 64), repeats = bench_arg(argc, argv, 5, 20);
    c.keep_prob = argc > 6 ? (float)atof(argv[6]) : 0.9f;
    c.C = c.NH * HS;
    if (c.max_seqlen < longest || c.NH < 1 || HS < 1 || repeats < 1 || !(c.keep_prob > 0.0f && c.keep_prob <= 1.0f)) {
        fprintf(stderr, "bench_gpu_attention: need MAX_SEQLEN >= the longest length (%d), NH, HS, REPEATS >= 1 and "
                "KEEP_PROB in (0, 1]\n", longest);
        return 2;
    }
    int32_t *dev_cu = device_alloc((size_t)(c.S + 1) * sizeof *dev_cu);
    cudaMemcpy(dev_cu, cu_seqlens, (size_t)(c.S + 1) * sizeof *dev_cu, cudaMemcpyHostToDevice);
    c.cu_seqlens = dev_cu;
    size_t row3 = 3 * (size_t)c.C * c.T, row = (size_t)c.C * c.T;
    c.qkv = random_bf16(row3, 7);
    c.dout = random_bf16(row, 11);
    c.out = device_alloc(row * sizeof *c.out);
    c.dqkv = device_alloc(row3 * sizeof *c.dqkv);
    c.saved = device_alloc(mnrl_cuda_attention_saved_bytes(c.T, c.NH, c.max_seqlen));
    c.workspace = device_alloc(mnrl_cuda_attention_backward_workspace_bytes(c.T, c.NH));
    double products = 0.0;  // forward: Q·K^T and P·V, 2·L²·HS each per head
    for (int s = 0; s < c.S; s++) {
        double len = cu_seqlens[s + 1] - cu_seqlens[s];
        products += 4.0 * len * len * HS * c.NH;
    }
    const double act = sizeof(mnrl_bf16), saved = (double)mnrl_cuda_attention_saved_bytes(c.T, c.NH, c.max_seqlen);
    const double forward_bytes = act * (3.0 + 1.0) * c.C * c.T + saved;
    const double backward_bytes = act * (3.0 + 1.0 + 1.0 + 3.0) * c.C * c.T + saved;
    double forward_ms = bench_time_ms("bench_gpu_attention", forward_pass, &c, repeats);
    double backward_ms = bench_time_ms("bench_gpu_attention", backward_pass, &c, repeats);  // reads what forward saved
    printf("ours (attention.cu, bf16 tensor cores): %d sentences, %d tokens, max_seqlen %d, NH %d, HS %d, "
           "keep_prob %.2f, %d timed calls\n", c.S, c.T, c.max_seqlen, c.NH, HS, c.keep_prob, repeats);
    printf("  forward  %8.3f ms, %6.1f TFLOP/s, %7.1f GB/s of %.1f MB\n", forward_ms, products / forward_ms * 1e-9,
           forward_bytes / forward_ms * 1e-6, forward_bytes * 1e-6);
    printf("  backward %8.3f ms, %6.1f TFLOP/s, %7.1f GB/s of %.1f MB\n", backward_ms,
           2.5 * products / backward_ms * 1e-9, backward_bytes / backward_ms * 1e-6, backward_bytes * 1e-6);
    printf("{\"forward_ms\": %.5f, \"backward_ms\": %.5f, \"sentences\": %d, \"tokens\": %d}\n", forward_ms,
           backward_ms, c.S, c.T);
    free(cu_seqlens);
    return 0;
}
