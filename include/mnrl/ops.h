// ops.h — the table of operations the BERT encoder and the MNRL training step are written
// in. Two backends implement it: ops_cpu() (fp32, OpenBLAS, OpenMP; the reference) and
// ops_cuda() (ops_cuda.h: bf16 or fp32 activations, cuBLASLt). model.c and loss.c call
// only this table.
//
// Conventions of every entry:
// - Pointers are backend memory (host memory on the CPU, device memory on CUDA), including
//   token ids and cu_seqlens. Scalars (counts, sizes, hyper-parameters) are host values,
//   and so are adamw's run table and hyper-parameter struct.
// - "act" buffers (`void *`) hold the backend's activation dtype (fp32 on the CPU, bf16 on
//   CUDA; element size ops->act_bytes). Weights passed to forward ops are the compute copy
//   of the parameters, also in act dtype (on the CPU it is the fp32 master itself).
//   Everything declared `float *` is fp32 on every backend: parameter master copies,
//   gradients, optimizer moments, LayerNorm and softmax statistics, pooled embeddings,
//   MNRL inputs/gradients and the loss.
// - Layouts are row-major. Token activations are PACKED: [T, C], T = all real tokens of the
//   step (no padding); sentence s owns rows cu_seqlens[s] .. cu_seqlens[s+1]-1, with
//   cu_seqlens [S+1] int32, cu_seqlens[0] = 0, cu_seqlens[S] = T, every length >= 1, and
//   max_seqlen >= every length. Linear weights are in HF layout [OC, C]: y = x W^T + b.
// - Ops never allocate. Transient scratch is the one `workspace` buffer of
//   workspace_bytes(limits) bytes; its contents are undefined between ops, so one buffer
//   serves the whole step. Ops run in call order (one CUDA stream); results are
//   deterministic for a given backend, regardless of thread count on the CPU.
// - Gradient outputs say whether they are written (=) or accumulated (+=). Parameter
//   gradients are always accumulated, so gradient accumulation and parameters used twice
//   need no extra code. They start zeroed (ops->alloc), and the optimizer step (adamw)
//   zeroes them as it reads them: no separate ops->zero per step.
// - Dropout everywhere is keep_prob plus (seed, stream) of rng.h; element e of a tensor is
//   kept when mnrl_rng_uniform_at(seed, stream, e) < keep_prob and then scaled by
//   1/keep_prob, keep_prob in (0, 1]; keep_prob = 1 is the identity (draws no numbers).
//   The mask is never stored: backward regenerates it from the same (seed, stream).
//   A call may cover a slice of the tensor whose mask it draws (cached MNRL runs a step's
//   tokens in chunks, model.h): its offset argument (dropout: elements; attention: tokens)
//   says where the slice starts, so a chunk's mask is that slice of the whole step's mask.
//   Offset 0 is the whole tensor.
#ifndef MNRL_OPS_H
#define MNRL_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "mnrl/common.h"

// The largest shapes a run will pass, for sizing the workspace (and, on CUDA, launch
// configurations). channels is the hidden size; heads its number of attention heads.
typedef struct {
    int max_tokens;      // T of the largest step (or mini-batch)
    int max_seqs;        // S of the largest step
    int max_seqlen;      // longest sentence, in tokens
    int channels;        // C (hidden size, also the embedding size H of the loss)
    int heads;           // NH; head size C / NH
    int ffn;             // intermediate size of the feed-forward block
    int max_anchors;     // b: loss rows computed by this process
    int max_candidates;  // N: candidates those rows are scored against
    size_t num_params;   // length of the gradient buffer
} MnrlOpsLimits;

// Consecutive parameters [offset, offset + count) (floats) that share AdamW's weight-decay
// flag (ops->adamw).
typedef struct {
    size_t offset, count;
    int decay;
} MnrlParamRun;

// Hyper-parameters of ops->adamw. They are double, as torch's are (Python floats): the
// fp32 update uses each derived scalar (1-β1, 1-β2, 1-lr·wd, lr/(1-β1^step), ...) rounded
// once from double, so 1-β2 is exactly 0.001f; max_norm is rounded to fp32, the dtype in
// which torch's clip computes its coefficient.
typedef struct {
    double lr, beta1, beta2, eps, weight_decay;
    double max_norm;  // global gradient-norm clip; <= 0: none
} MnrlAdamwParams;

// One dropout mask as the fused ops take it (see the conventions above): keep_prob in (0, 1]
// (1: none), the (seed, stream) of rng.h, and first, the element of the masked tensor where
// the call's element 0 falls.
typedef struct {
    float keep_prob;
    uint64_t seed, stream, first;
} MnrlDropout;

typedef struct MnrlOps {
    const char *name;  // "cpu-fp32", "cuda-bf16", ...
    size_t act_bytes;  // size of one act element

    // ---- memory -------------------------------------------------------------------------
    // Zeroed, 64-byte aligned backend memory; fails with a message (e.g. device full).
    int (*alloc)(void **out, size_t bytes, MnrlError *err);
    void (*release)(void *buf);
    void (*upload)(void *dst, const void *host_src, size_t bytes);
    void (*download)(void *host_dst, const void *src, size_t bytes);
    void (*zero)(void *dst, size_t bytes);
    // Conversions between fp32 and act dtype, both buffers in backend memory (n elements;
    // round to nearest even on bf16 backends).
    void (*f32_to_act)(void *dst, const float *src, size_t n);
    void (*act_to_f32)(float *dst, const void *src, size_t n);

    // ---- sizes --------------------------------------------------------------------------
    // CPU: only mnrl_loss uses the workspace: unit-norm copies of A and Cd, norms, row
    // losses and the b × N score matrix, 4·((b+N)·H + 2b + N + b·N) bytes for
    // b = max_anchors, N = max_candidates, H = channels (e.g. 0.7 MB for b = 128, N = 256,
    // H = 384). A CUDA backend tiles the scores instead (DESIGN §1).
    size_t (*workspace_bytes)(const MnrlOpsLimits *limits);
    // Bytes of the per-layer state attention_forward saves for attention_backward.
    // CUDA: the row log-sum-exps and the dropout decisions (kernels.h). CPU: the softmax
    // probabilities, fp32 [T, NH, max_seqlen] (row t, head h, key j < the
    // length of t's sentence; other entries unused) = 4·T·NH·max_seqlen bytes, e.g. 2.8 MB
    // per layer for T = 1,000 tokens, 12 heads, max_seqlen 75.
    size_t (*attention_saved_bytes)(int T, int NH, int max_seqlen);

    // ---- embeddings ---------------------------------------------------------------------
    // out[t] = wte[ids[t]] + wpe[t - cu_seqlens[s]] + wtt[0] for token t of sentence s
    // (positions restart at 0 in every sentence; token type 0 everywhere).
    // out act [T, C]; ids int32 [T]; wte act [V, C]; wpe act [P, C] (P > max length);
    // wtt act [types, C] (row 0 used).
    void (*embedding_forward)(void *out, const int32_t *ids, const int32_t *cu_seqlens,
                              int S, int T, const void *wte, const void *wpe,
                              const void *wtt, int C);
    // dwte[ids[t]] += dout[t], dwpe[pos(t)] += dout[t], dwtt[0] += dout[t]: fp32 [.., C],
    // accumulated in a fixed token order (deterministic; no atomics-order dependence).
    void (*embedding_backward)(float *dwte, float *dwpe, float *dwtt, const void *dout,
                               const int32_t *ids, const int32_t *cu_seqlens, int S, int T,
                               int C, void *workspace);

    // ---- LayerNorm ----------------------------------------------------------------------
    // out = (inp - mean) * rstd * weight + bias per row, rstd = 1 / sqrt(var + eps) with the
    // biased variance (F.layer_norm). out, inp act [T, C]; weight, bias act [C];
    // mean, rstd fp32 [T] saved for backward.
    void (*layernorm_forward)(void *out, float *mean, float *rstd, const void *inp,
                              const void *weight, const void *bias, int T, int C, float eps);
    // Post-LN residual block with the branch's dropout fused: res = a + dropout(b) (act
    // [T, C], kept: it is the LayerNorm input that backward needs; element (t, c) of b draws
    // element drop->first + t·C + c of the mask, the product rounded to act before the add,
    // as ops->dropout then an add would), then out = LayerNorm(res) as above.
    void (*residual_layernorm_forward)(void *res, void *out, float *mean, float *rstd,
                                       const void *a, const void *b, const MnrlDropout *drop,
                                       const void *weight, const void *bias, int T, int C,
                                       float eps);
    // dinp = dL/dinp (written, act [T, C]); dweight, dbias += (fp32 [C]).
    // inp is the forward input; mean, rstd from forward.
    void (*layernorm_backward)(void *dinp, float *dweight, float *dbias, const void *dout,
                               const void *inp, const void *weight, const float *mean,
                               const float *rstd, int T, int C, void *workspace);
    // Backward of residual_layernorm_forward: dres = dL/dres (written, act [T, C]: what
    // reaches a, the residual path), dbranch = dropout(dres) with the forward's mask (written,
    // act [T, C]: dL/db), dbranch_bias += column sums of dbranch as stored (fp32 [C], the
    // bias gradient of the linear layer that made b; NULL skips it), dweight, dbias += as
    // layernorm_backward. res, mean, rstd from forward.
    void (*residual_layernorm_backward)(void *dres, void *dbranch, float *dbranch_bias,
                                        float *dweight, float *dbias, const void *dout,
                                        const void *res, const void *weight, const float *mean,
                                        const float *rstd, int T, int C,
                                        const MnrlDropout *drop, void *workspace);

    // ---- linear layers ------------------------------------------------------------------
    // out = inp W^T + bias: inp act [T, C], weight act [OC, C], bias act [OC] or NULL,
    // out act [T, OC]. With pre_gelu != NULL (act [T, OC]) the GELU is fused:
    // pre_gelu = inp W^T + bias is kept for backward and out = gelu(pre_gelu).
    void (*matmul_forward)(void *out, void *pre_gelu, const void *inp, const void *weight,
                           const void *bias, int T, int C, int OC);
    // dinp = dout W (act [T, C]; written, or added when accumulate_dinp, as the residual
    // branch of a post-LN block needs; NULL skips it); dweight += dout^T inp (fp32 [OC, C]);
    // dbias += column sums of dout (fp32 [OC]; NULL skips). For a fused-GELU forward, first
    // turn dout into d(pre_gelu) with gelu_bias_backward, which also makes dbias.
    void (*matmul_backward)(void *dinp, float *dweight, float *dbias, const void *dout,
                            const void *inp, const void *weight, int T, int C, int OC,
                            int accumulate_dinp, void *workspace);

    // ---- elementwise --------------------------------------------------------------------
    // Exact GELU, x·Φ(x) = 0.5·x·(1 + erf(x/√2)) (F.gelu default, BERT "gelu"). n elements.
    void (*gelu_forward)(void *out, const void *inp, size_t n);
    // dinp = dout · gelu'(inp); dinp may be the same buffer as dout.
    void (*gelu_backward)(void *dinp, const void *inp, const void *dout, size_t n);
    // The backward of a fused-GELU matmul_forward's GELU and of that GEMM's bias, in one
    // pass: dinp = dout · gelu'(inp) as gelu_backward over [T, OC] (act; dinp may be dout),
    // dbias += column sums of dinp as stored (fp32 [OC]; NULL skips them). matmul_backward
    // then takes dinp with dbias NULL.
    void (*gelu_bias_backward)(void *dinp, float *dbias, const void *inp, const void *dout, int T, int OC,
                               void *workspace);
    // out[i] = inp[i] · mask[first + i] / keep_prob, mask element e from (seed, stream)
    // (see the top): the n elements are elements first .. first+n-1 of the masked tensor.
    // Being linear with a diagonal Jacobian, the same call with the same (seed, stream,
    // first) is also its backward: dinp = dropout(dout). out may be the same buffer as inp.
    void (*dropout)(void *out, const void *inp, size_t n, float keep_prob, uint64_t seed,
                    uint64_t stream, uint64_t first);

    // ---- attention ----------------------------------------------------------------------
    // Scaled dot-product self-attention inside each sentence (no mask tensors: a sentence
    // sees its own tokens only). qkv act [T, 3C]: columns [0, C) queries, [C, 2C) keys,
    // [2C, 3C) values; head h uses columns h·HS .. h·HS+HS-1 of each block, HS = C / NH.
    // out act [T, C], head h at columns h·HS .. (HF's context layer).
    // P = softmax(q k^T / sqrt(HS)) per (sentence, head); the probabilities go through
    // dropout (attention_probs_dropout_prob) before multiplying v. The dropout element of
    // (query token t, head h, key j of t's sentence) is
    // e = ((token_offset + t)·NH + h)·max_seqlen + j: token_offset >= 0 is the row of this
    // call's token 0 in the tensor whose mask it draws (0: the call is the whole tensor).
    // saved: attention_saved_bytes(T, NH, max_seqlen) bytes, read by backward (what they
    // hold is the backend's: see attention_saved_bytes).
    void (*attention_forward)(void *out, float *saved, const void *qkv,
                              const int32_t *cu_seqlens, int S, int T, int max_seqlen, int C,
                              int NH, float keep_prob, uint64_t seed, uint64_t stream,
                              int token_offset);
    // dqkv act [T, 3C] written; dout act [T, C]; qkv, out, saved from forward; the same
    // dropout (keep_prob, seed, stream, token_offset) and max_seqlen as forward.
    void (*attention_backward)(void *dqkv, const void *dout, const void *qkv, const void *out,
                               const float *saved, const int32_t *cu_seqlens, int S, int T,
                               int max_seqlen, int C, int NH, float keep_prob, uint64_t seed,
                               uint64_t stream, int token_offset, void *workspace);

    // ---- pooling ------------------------------------------------------------------------
    // out[s] = mean of inp rows of sentence s, every token ([CLS] and [SEP] included, as
    // sentence-transformers' mean Pooling over the attention mask). inp act [T, C];
    // out fp32 [S, C].
    void (*mean_pool_forward)(float *out, const void *inp, const int32_t *cu_seqlens, int S,
                              int C);
    // dinp[t] = dout[s] / len(s) (written, act [T, C]); dout fp32 [S, C].
    void (*mean_pool_backward)(void *dinp, const float *dout, const int32_t *cu_seqlens,
                               int S, int C);

    // ---- MNRL loss ----------------------------------------------------------------------
    // Multiple Negatives Ranking Loss as sentence-transformers computes it:
    //   cos(x, y) = x̂·ŷ with x̂ = x / max(||x||, 1e-12) (F.normalize, cos_sim),
    //   S_ij = scale · cos(A_i, Cd_j),   loss = Σ_i CE(S_i, label_offset + i) / global_batch.
    // A fp32 [b, H]: this process's anchors; Cd fp32 [N, H]: all candidates, positives of
    // the global batch first (row i is anchor i's positive), then the negatives column by
    // column (N = global_batch·(1 + k)). Single process: label_offset 0, global_batch = b.
    // Rank r of a data-parallel run: label_offset = r·b, global_batch = the global B, so
    // the ranks' losses and gradients sum to the single-process ones.
    // Writes *loss (fp32 scalar, backend memory), dA fp32 [b, H] and dCd fp32 [N, H]
    // (gradients of *loss; pass NULL for both to get the loss only).
    void (*mnrl_loss)(float *loss, float *dA, float *dCd, const float *A, const float *Cd,
                      int b, int N, int H, float scale, int label_offset, int global_batch,
                      void *workspace);

    // ---- optimizer ----------------------------------------------------------------------
    // One step is grad_norm then adamw, the norm passing between them in backend memory,
    // so that a CUDA step is queued without waiting for the device; the caller reads the
    // norm (ops->download) once the step is queued.
    //
    // *norm (fp32 scalar, backend memory) = the global L2 norm of grads (fp32 [n]), the
    // squares summed in fp64 in an order that depends on n alone (not on thread counts).
    void (*grad_norm)(float *norm, const float *grads, size_t n, void *workspace);
    // torch.nn.utils.clip_grad_norm_(max_norm) and then one torch.optim.AdamW step (1-based
    // step) over all parameters, in one pass. runs (host array) tile the buffers in order:
    // runs[0].offset = 0 and every run starts where the one before ends; a run's weight
    // decay is hp->weight_decay when its flag is set, else 0 (biases and LayerNorm). Per
    // element, with coef = max_norm / (*norm + 1e-6) in fp32 and g = fp32(grad · coef) when
    // max_norm > 0 and coef < 1 (what an in-place clip writes), else g = grad:
    //   p -= lr·wd·p;  m = β1·m + (1-β1)·g;  v = β2·v + (1-β2)·g²;
    //   p -= (lr / (1-β1^step)) · m / (sqrt(v) / sqrt(1-β2^step) + eps).
    // norm is grad_norm's result for these grads (backend memory). When it is not finite
    // the step is skipped: params, params_act, m and v stay as they were (no clip can
    // scale an infinite gradient; torch would make every parameter NaN). Either way every
    // gradient is zeroed as it is read, so the next backward accumulates into zeros.
    // params, m, v fp32 (updated); grads fp32 (zeroed); params_act (act dtype, may be
    // NULL) receives the updated compute copy when it is a separate buffer (bf16 backends).
    void (*adamw)(float *params, void *params_act, float *grads, float *m, float *v,
                  const MnrlParamRun *runs, size_t n_runs, const float *norm,
                  const MnrlAdamwParams *hp, int step);

    // ---- errors -------------------------------------------------------------------------
    // The entries above return nothing; a backend whose ops can fail (a CUDA launch or
    // copy) records the first failure and skips later ops until this is called. Returns 0,
    // or -1 with that failure in err (and clears it). NULL: the ops cannot fail (CPU).
    // Waits for the queued work (a sync on CUDA): call it once per step, not per op.
    int (*last_error)(MnrlError *err);
} MnrlOps;

// 0, or -1 with the first failure of ops since the last check (ops->last_error; a sync on
// CUDA): call it once per step.
static inline int mnrl_ops_check(const MnrlOps *ops, MnrlError *err) {
    return ops->last_error ? ops->last_error(err) : 0;
}

// The fp32 CPU backend (OpenBLAS sgemm, OpenMP loops).
const MnrlOps *ops_cpu(void);

// Learning rate of optimizer step `step` (0-based: the number of steps already taken) under
// linear warmup to base_lr over `warmup` steps, then linear decay to 0 at `total`
// (transformers' get_linear_schedule_with_warmup, which sentence-transformers' WarmupLinear
// uses). The first step of a warmup therefore runs at lr 0, as in sentence-transformers.
static inline float mnrl_lr_warmup_linear(long step, long warmup, long total, float base_lr) {
    if (step < warmup) return base_lr * (float)((double)step / (double)(warmup > 1 ? warmup : 1));
    double left = (double)(total - step) / (double)(total - warmup > 1 ? total - warmup : 1);
    return base_lr * (float)(left > 0.0 ? left : 0.0);
}

#endif
