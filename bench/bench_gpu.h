// bench_gpu.h — what the bench_gpu_*.c timers share: their integer arguments, device
// allocations that end the run on failure, uniform inputs and the timing loop. Header-only: each timer
// is one file and one binary.
#ifndef MNRL_BENCH_GPU_H
#define MNRL_BENCH_GPU_H

#include <stdio.h>
#include <stdlib.h>

#include <cuda_runtime_api.h>

#include "mnrl/common.h"

// argv[i] as an integer, or fallback when there are fewer arguments.
static inline int bench_arg(int argc, char **argv, int i, int fallback) {
    return argc > i ? atoi(argv[i]) : fallback;
}

// cudaMalloc of bytes; on failure a message naming the program, and exit 1.
static inline void *bench_device_alloc(const char *program, size_t bytes) {
    void *p = NULL;
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
        fprintf(stderr, "%s: cudaMalloc of %zu bytes failed (%s)\n", program, bytes,
                cudaGetErrorString(cudaGetLastError()));
        exit(1);
    }
    return p;
}

// A uniform value in [-1, 1) from the splitmix64 stream *rng (53 random bits).
static inline float bench_uniform(uint64_t *rng) {
    return (float)((double)(mnrl_splitmix64(rng) >> 11) / 4503599627370496.0 - 1.0);
}

// Milliseconds per call of `repeats` calls of call(ctx) on the default stream, timed with
// CUDA events after one untimed call (cuBLASLt plans, first-touch); a device error ends the
// run with a message naming the program.
static inline double bench_time_ms(const char *program, void (*call)(void *), void *ctx, int repeats) {
    cudaEvent_t start, stop;
    cudaEventCreate(&start);
    cudaEventCreate(&stop);
    call(ctx);
    cudaEventRecord(start, 0);
    for (int r = 0; r < repeats; r++) call(ctx);
    cudaEventRecord(stop, 0);
    if (cudaEventSynchronize(stop) != cudaSuccess) {
        fprintf(stderr, "%s: %s\n", program, cudaGetErrorString(cudaGetLastError()));
        exit(1);
    }
    float ms = 0.0f;
    cudaEventElapsedTime(&ms, start, stop);
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    return ms / repeats;
}

#endif
