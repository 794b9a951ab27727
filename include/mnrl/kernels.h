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
#include "mnrl/ops.h"

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

// ---- embedding.cu: BERT input embeddings over packed sentences --------------------------
// out[t] = wte[ids[t]] + wpe[t - cu_seqlens[s]] + wtt[0] for token t of sentence s,
// added in fp32 in that order and rounded once to the act dtype. out, wte, wpe, wtt
// fp32 or bf16 (act); ids int32 [T] in [0, V); cu_seqlens int32 [S+1].
int mnrl_cuda_embedding_forward_f32(float *out, const int32_t *ids, const int32_t *cu_seqlens,
                                    int S, int T, const float *wte, const float *wpe,
                                    const float *wtt, int C, cudaStream_t stream, MnrlError *err);
int mnrl_cuda_embedding_forward_bf16(mnrl_bf16 *out, const int32_t *ids, const int32_t *cu_seqlens,
                                     int S, int T, const mnrl_bf16 *wte, const mnrl_bf16 *wpe,
                                     const mnrl_bf16 *wtt, int C, cudaStream_t stream, MnrlError *err);
// dwte[ids[t]] += dout[t], dwpe[pos(t)] += dout[t] (fp32, summed in token order: the CPU's
// sums bit for bit), dwtt[0] += Σ_t dout[t] (fp32 partial sums over fixed token ranges,
// added in fp64). No float atomics: the same result on every run. dout [T, C] fp32 or
// bf16; workspace: mnrl_cuda_embedding_backward_workspace_bytes(T or more, C) bytes.
size_t mnrl_cuda_embedding_backward_workspace_bytes(int max_tokens, int C);
int mnrl_cuda_embedding_backward_f32(float *dwte, float *dwpe, float *dwtt, const float *dout,
                                     const int32_t *ids, const int32_t *cu_seqlens, int S, int T,
                                     int C, void *workspace, cudaStream_t stream, MnrlError *err);
int mnrl_cuda_embedding_backward_bf16(float *dwte, float *dwpe, float *dwtt, const mnrl_bf16 *dout,
                                      const int32_t *ids, const int32_t *cu_seqlens, int S, int T,
                                      int C, void *workspace, cudaStream_t stream, MnrlError *err);

// ---- layernorm.cu: LayerNorm, plain and fused with the post-LN residual add ---------------
// out = (inp - mean)·rstd·weight + bias per row of [T, C], C <= 1024; biased variance,
// rstd = 1/sqrt(var + eps); mean, rstd fp32 [T] (statistics in fp32). Tensors fp32 or bf16.
int mnrl_cuda_layernorm_forward_f32(float *out, float *mean, float *rstd, const float *inp,
                                    const float *weight, const float *bias, int T, int C,
                                    float eps, cudaStream_t stream, MnrlError *err);
int mnrl_cuda_layernorm_forward_bf16(mnrl_bf16 *out, float *mean, float *rstd, const mnrl_bf16 *inp,
                                     const mnrl_bf16 *weight, const mnrl_bf16 *bias, int T, int C,
                                     float eps, cudaStream_t stream, MnrlError *err);
// res = a + dropout(b) (written, rounded to the act dtype; the dropped b rounded first, as
// the dropout op would store it; drop->keep_prob 1: no mask), then out = LayerNorm(res as
// stored). Element (t, c) of b draws element drop->first + t·C + c of the mask.
int mnrl_cuda_residual_layernorm_forward_f32(float *res, float *out, float *mean, float *rstd,
                                             const float *a, const float *b, const MnrlDropout *drop,
                                             const float *weight, const float *bias, int T, int C,
                                             float eps, cudaStream_t stream, MnrlError *err);
int mnrl_cuda_residual_layernorm_forward_bf16(mnrl_bf16 *res, mnrl_bf16 *out, float *mean,
                                              float *rstd, const mnrl_bf16 *a, const mnrl_bf16 *b,
                                              const MnrlDropout *drop, const mnrl_bf16 *weight,
                                              const mnrl_bf16 *bias, int T, int C, float eps,
                                              cudaStream_t stream, MnrlError *err);
// dinp written; dweight, dbias fp32 [C] accumulated (+=) deterministically (per-block fp32
// partials in the workspace, added in fp64). workspace:
// mnrl_cuda_layernorm_backward_workspace_bytes(C) bytes (independent of T).
size_t mnrl_cuda_layernorm_backward_workspace_bytes(int C);
int mnrl_cuda_layernorm_backward_f32(float *dinp, float *dweight, float *dbias, const float *dout,
                                     const float *inp, const float *weight, const float *mean,
                                     const float *rstd, int T, int C, void *workspace,
                                     cudaStream_t stream, MnrlError *err);
int mnrl_cuda_layernorm_backward_bf16(mnrl_bf16 *dinp, float *dweight, float *dbias,
                                      const mnrl_bf16 *dout, const mnrl_bf16 *inp,
                                      const mnrl_bf16 *weight, const float *mean, const float *rstd,
                                      int T, int C, void *workspace, cudaStream_t stream,
                                      MnrlError *err);
// The residual variant's backward (ops.h residual_layernorm_backward): dres as dinp above,
// dbranch = dropout(dres as stored) rounded to the act dtype, dbranch_bias fp32 [C] +=
// its column sums (NULL skips them), in the same pass; dweight, dbias as above.
int mnrl_cuda_residual_layernorm_backward_f32(float *dres, float *dbranch, float *dbranch_bias,
                                              float *dweight, float *dbias, const float *dout,
                                              const float *res, const float *weight,
                                              const float *mean, const float *rstd, int T, int C,
                                              const MnrlDropout *drop, void *workspace,
                                              cudaStream_t stream, MnrlError *err);
int mnrl_cuda_residual_layernorm_backward_bf16(mnrl_bf16 *dres, mnrl_bf16 *dbranch, float *dbranch_bias,
                                               float *dweight, float *dbias, const mnrl_bf16 *dout,
                                               const mnrl_bf16 *res, const mnrl_bf16 *weight,
                                               const float *mean, const float *rstd, int T, int C,
                                               const MnrlDropout *drop, void *workspace,
                                               cudaStream_t stream, MnrlError *err);

// ---- elementwise.cu: GELU, dropout, fp32 <-> bf16 -----------------------------------------
// Exact GELU x·Φ(x) over n elements (fp32 arithmetic); backward dinp = dout·gelu'(inp),
// dinp may be dout.
int mnrl_cuda_gelu_forward_f32(float *out, const float *inp, size_t n, cudaStream_t stream,
                               MnrlError *err);
int mnrl_cuda_gelu_forward_bf16(mnrl_bf16 *out, const mnrl_bf16 *inp, size_t n, cudaStream_t stream,
                                MnrlError *err);
int mnrl_cuda_gelu_backward_f32(float *dinp, const float *inp, const float *dout, size_t n,
                                cudaStream_t stream, MnrlError *err);
int mnrl_cuda_gelu_backward_bf16(mnrl_bf16 *dinp, const mnrl_bf16 *inp, const mnrl_bf16 *dout,
                                 size_t n, cudaStream_t stream, MnrlError *err);
// out[i] = inp[i]·mask[first + i]/keep_prob with the rng.h mask of (seed, rng_stream), as
// ops.h's dropout (also its own backward); out may be inp; keep_prob in (0, 1], 1 = copy.
int mnrl_cuda_dropout_f32(float *out, const float *inp, size_t n, float keep_prob, uint64_t seed,
                          uint64_t rng_stream, uint64_t first, cudaStream_t stream, MnrlError *err);
int mnrl_cuda_dropout_bf16(mnrl_bf16 *out, const mnrl_bf16 *inp, size_t n, float keep_prob,
                           uint64_t seed, uint64_t rng_stream, uint64_t first, cudaStream_t stream,
                           MnrlError *err);
// Conversions (round to nearest even to bf16; bf16 to fp32 is exact).
int mnrl_cuda_f32_to_bf16(mnrl_bf16 *dst, const float *src, size_t n, cudaStream_t stream,
                          MnrlError *err);
int mnrl_cuda_bf16_to_f32(float *dst, const mnrl_bf16 *src, size_t n, cudaStream_t stream,
                          MnrlError *err);

// ---- adamw.cu: global gradient norm; clipping, AdamW and zeroing of the gradients ----------
// *norm (device) = the L2 norm of grads (fp32 [n], squares summed in fp64 by a
// deterministic two-stage reduction), as ops.h's grad_norm. No sync.
// workspace: mnrl_cuda_grad_norm_workspace_bytes() bytes.
size_t mnrl_cuda_grad_norm_workspace_bytes(void);
int mnrl_cuda_grad_norm(float *norm, const float *grads, size_t n, void *workspace,
                        cudaStream_t stream, MnrlError *err);
// ops.h's adamw (the CPU's fp32 results bit for bit): clip by *norm (device, from
// mnrl_cuda_grad_norm), one torch AdamW step over the parameters the host array runs
// tiles (checked), every gradient zeroed; a non-finite norm changes nothing but the
// gradients. params_act (bf16, may be NULL) receives the rounded copy. One launch per 128
// runs; no sync.
int mnrl_cuda_adamw(float *params, mnrl_bf16 *params_act, float *grads, float *m, float *v,
                    const MnrlParamRun *runs, size_t n_runs, const float *norm,
                    const MnrlAdamwParams *hp, int step, cudaStream_t stream, MnrlError *err);

// ---- attention.cu: self-attention over packed sentences, forward and backward --------------
// As ops.h's attention_forward/backward (qkv [T, 3C], out [T, C], head h at columns
// h·HS .. of each block, HS = C/NH in {16, 32, 64, 128}; dropout element
// e = ((token_offset + t)·NH + h)·max_seqlen + j of (seed, rng_stream); keep_prob in (0, 1]), fp32 or bf16
// activations, fp32 softmax. The saved state differs from the CPU's: `saved` is the row
// log-sum-exp, fp32 [T, NH], then the tensor-core forward's dropout decisions, one bit per
// (token, head, key) in ceil(max_seqlen / 32) words per (token, head)
// (mnrl_cuda_attention_saved_bytes), and backward recomputes the probabilities. Every
// sentence must be at most max_seqlen tokens long. bf16 with 16-byte aligned pointers
// runs on tensor cores (attention_tc.cu): the probabilities and dS enter their products
// rounded to bf16.
size_t mnrl_cuda_attention_saved_bytes(int T, int NH, int max_seqlen);
int mnrl_cuda_attention_forward_f32(float *out, float *saved, const float *qkv, const int32_t *cu_seqlens,
                                    int S, int T, int max_seqlen, int C, int NH, float keep_prob,
                                    uint64_t seed, uint64_t rng_stream, int token_offset, cudaStream_t stream,
                                    MnrlError *err);
int mnrl_cuda_attention_forward_bf16(mnrl_bf16 *out, float *saved, const mnrl_bf16 *qkv,
                                     const int32_t *cu_seqlens, int S, int T, int max_seqlen, int C, int NH,
                                     float keep_prob, uint64_t seed, uint64_t rng_stream, int token_offset,
                                     cudaStream_t stream, MnrlError *err);
// dqkv [T, 3C] written (rows of the S sentences); dout, qkv, out, saved as forward left
// them; workspace: mnrl_cuda_attention_backward_workspace_bytes(T, NH) bytes (D = dO·O).
size_t mnrl_cuda_attention_backward_workspace_bytes(int T, int NH);
int mnrl_cuda_attention_backward_f32(float *dqkv, const float *dout, const float *qkv, const float *out,
                                     const float *saved, const int32_t *cu_seqlens, int S, int T, int max_seqlen,
                                     int C, int NH, float keep_prob, uint64_t seed, uint64_t rng_stream,
                                     int token_offset, void *workspace, cudaStream_t stream, MnrlError *err);
int mnrl_cuda_attention_backward_bf16(mnrl_bf16 *dqkv, const mnrl_bf16 *dout, const mnrl_bf16 *qkv,
                                      const mnrl_bf16 *out, const float *saved, const int32_t *cu_seqlens, int S,
                                      int T, int max_seqlen, int C, int NH, float keep_prob, uint64_t seed,
                                      uint64_t rng_stream, int token_offset, void *workspace, cudaStream_t stream,
                                      MnrlError *err);

// ---- mnrl_loss.cu: the fused MNRL score + cross-entropy, tiled -----------------------------
// As ops.h's mnrl_loss: A fp32 [b, H], Cd fp32 [N, H]; *loss (device fp32 scalar) =
// Σ_i CE(scale·cos(A_i, Cd), label_offset + i) / global_batch; dA [b, H] and dCd [N, H]
// written (both NULL: loss only). The b × N scores are never stored: 64 × 64 tiles with an
// online log-sum-exp, recomputed in backward; fixed-order (deterministic) reductions.
// workspace: mnrl_cuda_mnrl_loss_workspace_bytes(b or more, N or more, H) bytes, which is
// O((b + N)·H): about 4·(b + N + max(b, N) + 16,448)·H + 36·b + 8·N bytes (0.73 GB for
// b = 65,536, N = 196,608, H = 384, where the score matrix alone would take 51 GB).
// tensor_cores: 0 computes the two products (scores, and the gradients' G times unit
// rows) as fp32 fmas, as the CPU does (fp32 runs); nonzero on tensor cores with each fp32
// operand split into two bf16, a term off by at most 3·2^-18 of its size (bf16 runs,
// where the activations are far coarser; mnrl_loss.cu).
size_t mnrl_cuda_mnrl_loss_workspace_bytes(int max_anchors, int max_candidates, int H);
int mnrl_cuda_mnrl_loss(float *loss, float *dA, float *dCd, const float *A, const float *Cd, int b, int N, int H,
                        float scale, int label_offset, int global_batch, int tensor_cores, void *workspace,
                        cudaStream_t stream, MnrlError *err);

// ---- matmul.cu: linear layers (cuBLASLt, or the portable tiled GEMM) ------------------------
// One cuBLASLt handle and its workspace for every GEMM of a run. A context without a
// handle (handle NULL: the emulation, or a caller that wants it) runs the portable GEMM
// kernel instead; so does a NULL context.
typedef struct {
    void *handle;  // cublasLtHandle_t
    void *workspace;
    size_t workspace_bytes;
    void *plans;   // matmul.cu's cache of cuBLASLt descriptors and algorithms, by shape
} MnrlGemmContext;
// Creates the handle and allocates workspace_bytes of device memory (32 MiB suits Hopper);
// under the emulation it leaves the handle NULL.
int mnrl_cuda_gemm_context_create(MnrlGemmContext *ctx, size_t workspace_bytes, MnrlError *err);
void mnrl_cuda_gemm_context_destroy(MnrlGemmContext *ctx);
// As ops.h's matmul_forward: out [T, OC] = inp [T, C]·weight [OC, C]ᵀ + bias [OC] (bias may
// be NULL); with pre_gelu != NULL, pre_gelu = that and out = the exact (erf) GELU of
// pre_gelu as stored. fp32 accumulation; tensors fp32 or bf16.
int mnrl_cuda_matmul_forward_f32(float *out, float *pre_gelu, const float *inp, const float *weight,
                                 const float *bias, int T, int C, int OC, const MnrlGemmContext *ctx,
                                 cudaStream_t stream, MnrlError *err);
int mnrl_cuda_matmul_forward_bf16(mnrl_bf16 *out, mnrl_bf16 *pre_gelu, const mnrl_bf16 *inp,
                                  const mnrl_bf16 *weight, const mnrl_bf16 *bias, int T, int C, int OC,
                                  const MnrlGemmContext *ctx, cudaStream_t stream, MnrlError *err);
// As ops.h's matmul_backward: dinp [T, C] = dout·weight (written, or added when
// accumulate_dinp; NULL skips it), dweight fp32 [OC, C] += doutᵀ·inp, dbias fp32 [OC] +=
// column sums of dout (NULL skips; deterministic fixed-order sums). workspace:
// mnrl_cuda_matmul_backward_workspace_bytes(T or more, OC) bytes.
size_t mnrl_cuda_matmul_backward_workspace_bytes(int max_tokens, int OC);
int mnrl_cuda_matmul_backward_f32(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                                  const float *weight, int T, int C, int OC, int accumulate_dinp, void *workspace,
                                  const MnrlGemmContext *ctx, cudaStream_t stream, MnrlError *err);
int mnrl_cuda_matmul_backward_bf16(mnrl_bf16 *dinp, float *dweight, float *dbias, const mnrl_bf16 *dout,
                                   const mnrl_bf16 *inp, const mnrl_bf16 *weight, int T, int C, int OC,
                                   int accumulate_dinp, void *workspace, const MnrlGemmContext *ctx,
                                   cudaStream_t stream, MnrlError *err);
// As ops.h's gelu_bias_backward: dinp [T, OC] = dout·gelu'(pre) (the exact GELU's
// derivative, as mnrl_cuda_gelu_backward_*, the same bits; dinp may be dout), and dbias
// fp32 [OC] += column sums of dinp as stored, in one pass (NULL dbias: the GELU backward
// alone). workspace: mnrl_cuda_matmul_backward_workspace_bytes(T or more, OC) bytes.
int mnrl_cuda_gelu_bias_backward_f32(float *dinp, float *dbias, const float *pre, const float *dout, int T,
                                     int OC, void *workspace, cudaStream_t stream, MnrlError *err);
int mnrl_cuda_gelu_bias_backward_bf16(mnrl_bf16 *dinp, float *dbias, const mnrl_bf16 *pre, const mnrl_bf16 *dout,
                                      int T, int OC, void *workspace, cudaStream_t stream, MnrlError *err);

#ifdef __cplusplus
}
#endif

#endif
