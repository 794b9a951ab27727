// cuda_launch.h — what every src/kernels/*.cu includes, so that one source compiles both
// with nvcc for the GPU and with g++ under the CPU emulation of tests/emu (cuemu.h):
//  - CUDA_LAUNCH(grid, block, smem, stream, kernel)(args...): every launch goes through it;
//    under nvcc it is kernel<<<grid, block, smem, stream>>>(args...), and it counts the
//    launch in mnrl_cuda_launches (ops_cuda_counts(), ops_cuda.h: what a training step
//    launches is held to a budget by tests/emu/test_ops_cuda_step.c). Use it as a
//    statement: it expands to `++count, launch`.
//  - mnrl_dyn_smem: the one project-wide dynamic shared memory buffer (16-byte aligned);
//    kernels carve it up themselves and never declare their own `extern __shared__`.
//  - CUDA_CHECK(call, err): turns a failed runtime call into the project's error
//    convention (mnrl_fail with file:line and the CUDA error) and returns -1.
// Kernel rules (see ../shared/notes/cuda-emulation.md): only _sync warp intrinsics with
// full masks; every thread reaches every barrier; architecture-specific code under
// #ifdef __CUDA_ARCH__ with a portable path next to it (the emulation runs that one).
#ifndef MNRL_CUDA_LAUNCH_H
#define MNRL_CUDA_LAUNCH_H

#if !defined(__CUDACC__) && !defined(CUEMU)
#error "mnrl/cuda_launch.h is for .cu files (nvcc, or g++ with tests/emu/cuemu.h)"
#endif

#include <cuda_runtime.h>

#include "mnrl/common.h"

// Kernels (and cuBLASLt matmuls, counted in matmul.cu) enqueued by this process; one
// variable for every file (C++17 inline variable).
inline unsigned long long mnrl_cuda_launches = 0;

#ifdef CUEMU
#define CUDA_LAUNCH(grid, block, smem, stream, ...) \
    ++mnrl_cuda_launches, ::cuemu::make_launch(__VA_ARGS__, grid, block, smem, stream, #__VA_ARGS__)
#define mnrl_dyn_smem (::cuemu::dynamic_smem)
#else
#define CUDA_LAUNCH(grid, block, smem, stream, ...) ++mnrl_cuda_launches, __VA_ARGS__<<<grid, block, smem, stream>>>
extern __shared__ __align__(16) unsigned char mnrl_dyn_smem[];
#endif

#define CUDA_CHECK(call, err)                                                                  \
    do {                                                                                       \
        cudaError_t cuda_status_ = (call);                                                     \
        if (cuda_status_ != cudaSuccess)                                                       \
            return mnrl_fail((err), "%s:%d: %s failed: %s (%s); rerun with "                   \
                             "CUDA_LAUNCH_BLOCKING=1 to find the failing kernel",              \
                             __FILE__, __LINE__, #call, cudaGetErrorString(cuda_status_),      \
                             cudaGetErrorName(cuda_status_));                                  \
    } while (0)

#endif
