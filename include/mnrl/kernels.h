// kernels.h — the C-callable launchers of src/kernels/*.cu, one section per kernel file.
// Each launcher checks its arguments, enqueues its kernel(s) on `stream` and checks the
// launch; it returns 0, or -1 with a message in err (mnrl_fail convention). Pointers are
// device memory; counts are host values. Layouts follow include/mnrl/ops.h, and each
// kernel file names at its top the CPU op (ops_cpu) it must match.
#ifndef MNRL_KERNELS_H
#define MNRL_KERNELS_H

#include <stdint.h>

#include <cuda_runtime_api.h>

#include "mnrl/common.h"

// bf16 tensors cross the C boundary as their raw 16-bit patterns: cuda_bf16.h defines
// __nv_bfloat16 for C++ only, and host C code (safetensors.h) holds bf16 as uint16_t.
#ifdef __cplusplus
#include <cuda_bf16.h>
typedef __nv_bfloat16 mnrl_bf16;
extern "C" {
#else
typedef uint16_t mnrl_bf16;
#endif

// ---- pooling.cu: masked mean pooling over packed sentences ----------------------------
// out fp32 [S, C]: out[s] = mean of inp rows cu_seqlens[s] .. cu_seqlens[s+1]-1, summed in
// fp32 (an empty sentence gives 0). inp [T, C] fp32 or bf16; cu_seqlens int32 [S+1].
int mnrl_cuda_mean_pool_forward_f32(float *out, const float *inp, const int32_t *cu_seqlens,
                                    int S, int C, cudaStream_t stream, MnrlError *err);
int mnrl_cuda_mean_pool_forward_bf16(float *out, const mnrl_bf16 *inp, const int32_t *cu_seqlens,
                                     int S, int C, cudaStream_t stream, MnrlError *err);
// dinp[t] = dout[s] / len(s) for every token t of sentence s (written; rows outside
// cu_seqlens[0] .. cu_seqlens[S]-1 untouched). dout fp32 [S, C]; dinp [T, C] fp32 or bf16
// (rounded to nearest even).
int mnrl_cuda_mean_pool_backward_f32(float *dinp, const float *dout, const int32_t *cu_seqlens,
                                     int S, int C, cudaStream_t stream, MnrlError *err);
int mnrl_cuda_mean_pool_backward_bf16(mnrl_bf16 *dinp, const float *dout, const int32_t *cu_seqlens,
                                      int S, int C, cudaStream_t stream, MnrlError *err);

#ifdef __cplusplus
}
#endif

#endif
