// bench_gpu_loss.c — the fused MNRL loss (src/kernels/mnrl_loss.cu) on a GPU: its two ways
// of taking the products, timed in one run on the same inputs: fp32 fmas (fp32 runs, the
// reference) and tensor cores with split bf16 operands (bf16 runs). One call is the
// loss and both gradients, as a training step (and the cached step, once per global batch)
// makes it.
//
//   bench_gpu_loss [B [K [H [REPEATS]]]]     defaults: 65536 1 768 3
//
// B anchors against N = B·(1 + K) candidates (the cached batch-65,536 shape of bench/gpu.sh
// by default), scale 20. Prints each path's ms per call (after one untimed call), the
// ratio, and the two losses (they differ by the split's rounding only).
#include <stdio.h>
#include <stdlib.h>

#include <cuda_runtime_api.h>

#include "mnrl/common.h"
#include "mnrl/kernels.h"
#include "bench_gpu.h"

static void *device_alloc(size_t bytes) { return bench_device_alloc("bench_gpu_loss", bytes); }

// One call of the loss and both gradients on the same inputs, by either path.
typedef struct {
    float *loss, *dA, *dCd;  // device
    const float *A, *Cd;
    int B, N, H, tensor_cores;
    void *workspace;
} LossCall;

static void loss_call(void *ctx) {
    const LossCall *c = ctx;
    MnrlError err = {{0}};
    if (mnrl_cuda_mnrl_loss(c->loss, c->dA, c->dCd, c->A, c->Cd, c->B, c->N, c->H, 20.0f, 0, c->B, c->tensor_cores,
                            c->workspace, 0, &err)) {
        fprintf(stderr, "bench_gpu_loss: %s\n", err.msg);
        exit(1);
    }
}

// Milliseconds per call of the path `tensor_cores` (bench_time_ms); *loss the last loss.
static double time_path(LossCall *c, int tensor_cores, int repeats, float *loss) {
    c->tensor_cores = tensor_cores;
    double ms = bench_time_ms("bench_gpu_loss", loss_call, c, repeats);
    cudaMemcpy(loss, c->loss, sizeof *loss, cudaMemcpyDeviceToHost);
    return ms;
}

int main(int argc, char **argv) {
    int B = bench_arg(argc, argv, 1, 65536), K = bench_arg(argc, argv, 2, 1), H = bench_arg(argc, argv, 3, 768);
    int repeats = bench_arg(argc, argv, 4, 3), N = B * (1 + K);
    if (B < 1 || K < 0 || H < 1 || repeats < 1) {
        fprintf(stderr, "usage: bench_gpu_loss [B [K [H [REPEATS]]]] (B, H, REPEATS >= 1, K >= 0)\n");
        return 2;
    }
    // Anchors leaning towards their positives, as in tests/emu/test_mnrl_loss.c.
    float *Cd = mnrl_malloc((size_t)N * H * sizeof(float)), *A = mnrl_malloc((size_t)B * H * sizeof(float));
    uint64_t rng = 7;
    for (size_t i = 0; i < (size_t)N * H; i++)
        Cd[i] = bench_uniform(&rng);
    for (size_t i = 0; i < (size_t)B * H; i++)
        A[i] = 0.15f * Cd[i] + bench_uniform(&rng);
    float *dev_A = device_alloc((size_t)B * H * sizeof(float)), *dev_Cd = device_alloc((size_t)N * H * sizeof(float));
    float *dA = device_alloc((size_t)B * H * sizeof(float)), *dCd = device_alloc((size_t)N * H * sizeof(float));
    LossCall call = {device_alloc(sizeof(float)), dA, dCd, dev_A, dev_Cd, B, N, H, 0,
                     device_alloc(mnrl_cuda_mnrl_loss_workspace_bytes(B, N, H))};
    cudaMemcpy(dev_A, A, (size_t)B * H * sizeof(float), cudaMemcpyHostToDevice);
    cudaMemcpy(dev_Cd, Cd, (size_t)N * H * sizeof(float), cudaMemcpyHostToDevice);
    double tflop = 10.0 * B * (double)N * H / 1e12;  // 3 score passes and 2 gradient products
    float loss_fp32, loss_tc;
    double ms_fp32 = time_path(&call, 0, repeats, &loss_fp32), ms_tc = time_path(&call, 1, repeats, &loss_tc);
    printf("mnrl loss B=%d N=%d H=%d (%.1f TFLOP of products per call), %d timed calls each:\n", B, N, H, tflop,
           repeats);
    printf("  fp32 fmas:                 %9.2f ms per call, %6.1f TFLOP/s, loss %.7f\n", ms_fp32,
           tflop / ms_fp32 * 1e3, loss_fp32);
    printf("  tensor cores (split bf16): %9.2f ms per call, %6.1f TFLOP/s, loss %.7f\n", ms_tc, tflop / ms_tc * 1e3,
           loss_tc);
    printf("  tensor cores / fp32: %.2fx faster\n", ms_fp32 / ms_tc);
    free(A);
    free(Cd);
    return 0;
}
