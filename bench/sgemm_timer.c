// sgemm_timer.c — an LD_PRELOAD shim for bench/cpu.sh: times every cblas_sgemm call of a
// process (wall clock around OpenBLAS's own cblas_sgemm) and, at exit, writes
// {"calls": N, "seconds": S, "flops": F} to the file named by SGEMM_TIMER_OUT. With it the
// benchmark reports how much of our CPU step is GEMM, the part neither trainer can shrink
// (both run fp32 GEMMs at the library's speed), and so the best ratio within reach.
//
//   cc -O2 -shared -fPIC bench/sgemm_timer.c -o sgemm_timer.so -ldl
//   SGEMM_TIMER_OUT=gemm.json LD_PRELOAD=./sgemm_timer.so mnrl_cuda train ...
#define _GNU_SOURCE
#include <cblas.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef void (*SgemmFn)(const enum CBLAS_ORDER, const enum CBLAS_TRANSPOSE, const enum CBLAS_TRANSPOSE,
                        const blasint, const blasint, const blasint, const float, const float *, const blasint,
                        const float *, const blasint, const float, float *, const blasint);

static double total_seconds, total_flops;
static long total_calls;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void cblas_sgemm(const enum CBLAS_ORDER order, const enum CBLAS_TRANSPOSE ta, const enum CBLAS_TRANSPOSE tb,
                 const blasint M, const blasint N, const blasint K, const float alpha, const float *A,
                 const blasint lda, const float *B, const blasint ldb, const float beta, float *C,
                 const blasint ldc) {
    static SgemmFn next;
    if (!next) next = (SgemmFn)dlsym(RTLD_NEXT, "cblas_sgemm");
    double start = now();
    next(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    total_seconds += now() - start;
    total_flops += 2.0 * M * N * K;
    total_calls++;
}

__attribute__((destructor)) static void report(void) {
    const char *path = getenv("SGEMM_TIMER_OUT");
    FILE *f = path ? fopen(path, "w") : NULL;
    if (!f) return;
    fprintf(f, "{\"calls\": %ld, \"seconds\": %.6f, \"flops\": %.0f}\n", total_calls, total_seconds, total_flops);
    fclose(f);
}
