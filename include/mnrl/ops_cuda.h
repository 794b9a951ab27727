// ops_cuda.h — the CUDA backend of the ops table (ops.h) over the launchers of kernels.h:
// device memory from cudaMalloc, every op queued on the default stream in call order (the
// stream dist.h's collectives use when d->cuda_stream is NULL), GEMMs through one
// cuBLASLt handle and workspace. Ops return nothing: the first failing launch or copy is
// recorded (file:line message) and later ops are skipped until ops->last_error reports it.
#ifndef MNRL_OPS_CUDA_H
#define MNRL_OPS_CUDA_H

#include "mnrl/common.h"
#include "mnrl/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

// The CUDA table with bf16 activations ("cuda-bf16": bf16 compute copy of the weights,
// fp32 master weights, statistics, gradients and optimizer) or, bf16 = 0, fp32 ones
// ("cuda-fp32", for debugging and for comparing with the CPU). The first call creates the
// cuBLASLt handle on the current device (0 unless dist_init selected this rank's GPU),
// which lives until the process ends. Fails with
// what the runtime says (no device, no driver, ...) when there is no usable GPU.
int ops_cuda(int bf16, const MnrlOps **ops, MnrlError *err);

// What the CUDA backend has enqueued in this process so far: kernel launches (cuBLASLt
// matmuls included), and the host <-> device copies of upload and download, each of which
// waits for the GPU to finish the work queued before it (the host buffers are pageable).
// tests/emu/test_ops_cuda_step.c holds a training step to its budget with it.
typedef struct {
    unsigned long long launches, uploads, downloads;
} MnrlCudaCounts;
void ops_cuda_counts(MnrlCudaCounts *out);

#ifdef __cplusplus
}
#endif

#endif
