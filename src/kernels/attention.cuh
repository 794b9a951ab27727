// attention.cuh — what the two files of the attention op family share (included after
// mnrl/cuda_launch.h). The family spans two files because its two implementations share
// nothing but this: attention.cu holds the entry points and the portable kernels (fp32,
// and bf16 rows that are not 16-byte aligned), attention_tc.cu the tensor-core kernels
// (nvcuda::wmma) that the bf16 entry points call.
//  - DropoutArgs and the dropout element of (query token t, head h, key j) of ops.h;
//  - tc_forward / tc_backward: the tensor-core launchers, with the entry points'
//    arguments (checked there) and their contract (attention.cu's header comment), and
//    keep_words, the size of the dropout bits the tensor-core forward saves.
#ifndef MNRL_ATTENTION_CUH
#define MNRL_ATTENTION_CUH

#include <stdint.h>

#include <cuda_bf16.h>

#include "mnrl/common.h"
#include "mnrl/rng.h"

namespace mnrl_attention {

struct DropoutArgs {
    float keep_prob, keep_scale;  // keep_scale = 1/keep_prob, rounded as the CPU does
    uint64_t seed, rng_stream;
    int token_offset;             // row of token 0 in the tensor whose mask is drawn (ops.h)
};

// Dropout element of (query token t, head h, key j) per ops.h.
__device__ __forceinline__ uint64_t dropout_element(const DropoutArgs &d, int NH, int max_seqlen, int t, int h,
                                                    int j) {
    return (((uint64_t)d.token_offset + t) * NH + h) * (uint64_t)max_seqlen + j;
}

__device__ __forceinline__ uint32_t philox_word(const MnrlPhilox4 &r, uint64_t w) {
    return w == 0 ? r.v[0] : w == 1 ? r.v[1] : w == 2 ? r.v[2] : r.v[3];  // no local-memory indexing
}

__device__ __forceinline__ uint32_t keep_bit(const DropoutArgs &d, uint32_t word) {
    return mnrl_rng_uniform(word) < d.keep_prob ? 1u : 0u;
}

// The tensor-core kernels copy rows with 16-byte accesses: every act pointer must be
// 16-byte aligned (kernel_util.cuh's aligned16; C is a multiple of 16 for every supported
// head size, so the rows then are too).
// Words of dropout bits the tensor-core forward saves per (token, head): one per 32 keys.
inline int keep_words(int max_seqlen) { return (max_seqlen + 31) / 32; }

// keep_bits: keep_words(max_seqlen) words per (token, head) of the call (the saved state
// after the log-sum-exp): tc_forward writes them when keep_prob < 1, and tc_backward, which
// the entry points call only where the forward ran on tensor cores too, reads them.
int tc_forward(__nv_bfloat16 *out, float *lse, uint32_t *keep_bits, const __nv_bfloat16 *qkv,
               const int32_t *cu_seqlens, int S, int max_seqlen, int C, int NH, DropoutArgs drop, cudaStream_t stream,
               MnrlError *err);

int tc_backward(__nv_bfloat16 *dqkv, const __nv_bfloat16 *dout, const __nv_bfloat16 *qkv, const __nv_bfloat16 *out,
                const float *lse, const uint32_t *keep_bits, const int32_t *cu_seqlens, int S, int max_seqlen, int C,
                int NH, DropoutArgs drop, float *dsum, cudaStream_t stream, MnrlError *err);

}  // namespace mnrl_attention

#endif
