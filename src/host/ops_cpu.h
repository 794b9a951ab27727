// ops_cpu.h — private to the CPU backend: the op functions its files share with the
// table in ops_cpu.c, and the dropout-mask cursor they all use. Not a public module
// header: everything else reaches these through ops_cpu() (include/mnrl/ops.h).
#ifndef MNRL_OPS_CPU_H
#define MNRL_OPS_CPU_H

#include <stddef.h>
#include <stdint.h>

#include "mnrl/ops.h"


// The hot loops are also compiled for AVX-512 and AVX2 machines and picked when the
// program loads (GCC function multiversioning; the build's baseline is SSE2). Every
// version does the same IEEE operations in the same order (ISO C mode: no FMA
// contraction; where a loop wants a fused multiply-add it calls fma()/fmaf(), one
// correctly rounded operation everywhere: an instruction in the AVX2 and AVX-512
// versions, a libm call in the baseline one), so results do not depend on the machine's
// vector width.
// Helpers they call are forced inline (OPS_CPU_INLINE) so that each version gets its own
// copy; a call would run the baseline one.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define OPS_CPU_CLONES \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define OPS_CPU_INLINE inline __attribute__((always_inline))
#else
#define OPS_CPU_CLONES
#define OPS_CPU_INLINE inline
#endif

// Dropout multipliers (0 or 1/keep_prob) of elements e0 .. e0+count-1 of a (seed, stream)
// tensor into mult. Philox blocks are generated 16 at a time (8 for short calls),
// lane-parallel, so that the compiler vectorises them; callers skip it when keep_prob is 1.
OPS_CPU_CLONES void ops_cpu_dropout_multipliers(float *mult, uint64_t e0, size_t count,
                                                float keep_prob, uint64_t seed, uint64_t stream);

// Loops over fewer elements than this run on one thread: a parallel region costs a
// wake-up and a barrier (microseconds, far more where the cores are shared), more than
// splitting a small loop gains. (OpenMP `if` clauses; the results do not change.)
enum { OPS_CPU_PARALLEL_MIN = 32768 };

// Lanes of the fp64 row sums of the hot loops: term c is added to lane c % OPS_CPU_LANES
// and the lanes are added in order at the end, so that every vector width (target clone)
// adds the same numbers in the same order. (An `omp simd reduction` adds in an order
// that depends on the width.)
enum { OPS_CPU_LANES = 8 };

static inline double ops_cpu_sum_lanes(const double lanes[OPS_CPU_LANES]) {
    double sum = 0.0;
    for (int l = 0; l < OPS_CPU_LANES; l++) sum += lanes[l];
    return sum;
}

// acc[c] += Σ_r x[r, c] for a row-major [rows, cols] matrix, summed in fp64 in row
// order; threads own column ranges, so the result does not depend on the thread count.
void ops_cpu_column_sums(float *acc, const float *x, int rows, int cols);

// ops_cpu_dense.c
void ops_cpu_matmul_forward(void *out, void *pre_gelu, const void *inp, const void *weight,
                            const void *bias, int T, int C, int OC);
void ops_cpu_matmul_backward(void *dinp, float *dweight, float *dbias, const void *dout,
                             const void *inp, const void *weight, int T, int C, int OC,
                             int accumulate_dinp, void *workspace);
void ops_cpu_gelu_forward(void *out, const void *inp, size_t n);
void ops_cpu_gelu_backward(void *dinp, const void *inp, const void *dout, size_t n);
void ops_cpu_dropout(void *out, const void *inp, size_t n, float keep_prob, uint64_t seed,
                     uint64_t stream, uint64_t first);
// r = a + dropout(b) over n elements that are elements drop->first + offset .. of the
// mask: the product rounded to fp32 before the add, as ops->dropout and then an add.
void ops_cpu_residual_dropout(float *r, const float *a, const float *b, size_t n, const MnrlDropout *drop,
                              uint64_t offset);
void ops_cpu_attention_forward(void *out, float *saved, const void *qkv,
                               const int32_t *cu_seqlens, int S, int T, int max_seqlen, int C,
                               int NH, float keep_prob, uint64_t seed, uint64_t stream,
                               int token_offset);
void ops_cpu_attention_backward(void *dqkv, const void *dout, const void *qkv,
                                const void *out, const float *saved,
                                const int32_t *cu_seqlens, int S, int T, int max_seqlen,
                                int C, int NH, float keep_prob, uint64_t seed,
                                uint64_t stream, int token_offset, void *workspace);

// ops_cpu_train.c
size_t ops_cpu_mnrl_loss_bytes(int b, int N, int H);
void ops_cpu_mnrl_loss(float *loss, float *dA, float *dCd, const float *A, const float *Cd,
                       int b, int N, int H, float scale, int label_offset, int global_batch,
                       void *workspace);
void ops_cpu_grad_norm(float *norm, const float *grads, size_t n, void *workspace);
void ops_cpu_adamw(float *params, void *params_act, float *grads, float *m, float *v,
                   const MnrlParamRun *runs, size_t n_runs, const float *norm,
                   const MnrlAdamwParams *hp, int step);

#endif
