// model.h — the BERT encoder (HF BertModel semantics, DESIGN §1 "Model") with mean pooling,
// forward and backward written once over the ops table (ops.h), plus its AdamW step.
//
// Memory: everything is allocated by model_create through ops->alloc, sized from
// ModelLimits: fp32 master parameters, their compute copy in the backend's act dtype (the
// same buffer when act is fp32, as on the CPU), fp32 gradients and AdamW moments (one
// buffer each, the ParamTable layout), one activation arena (every tensor backward needs,
// packed [T, C] at max_tokens), the pooled output and its gradient, the gradient norm,
// and the workspace (also used by the loss). model_forward, model_backward and the
// optimizer step never allocate (test_model counts ops->alloc calls).
//
// Dropout (train mode only; eval mode and probability 0 are the identity). Every dropout
// site has a tensor id; its mask is ops' (seed, stream, element) with
//   stream  = mnrl_rng_stream(step, rank, tensor id)         (rng.h)
//   tensor id 0                 embeddings (hidden_dropout_prob)
//   tensor id 1 + 3·l + 0       layer l attention probabilities (attention_probs_dropout_prob)
//   tensor id 1 + 3·l + 1       layer l attention output dense (hidden_dropout_prob)
//   tensor id 1 + 3·l + 2       layer l FFN output dense (hidden_dropout_prob)
//   element = t·C + c for hidden sites, (t·NH + h)·max_seqlen + j for attention
//   (max_seqlen = ModelLimits.max_seqlen, never the step's longest text), where t is the
//   token's row in the packed step buffer.
// So (seed, step, rank, tensor, element) reproduces a mask exactly, independent of thread
// counts and of backend. Cached MNRL (gradcache.h) runs a step's texts in chunks, each a
// contiguous run of the step's packing, and replays each chunk's forward before its
// backward. A chunk's batch says where it sits (batch.h: first_token, first_seq): t stays
// the token's row in the WHOLE step (the ops' dropout and attention take the chunk's
// first token as their offset), so the masks do not depend on the chunking, and the
// chunk's pooled rows land at first_seq of m->pooled, which holds the whole step's.
#ifndef MNRL_MODEL_H
#define MNRL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "mnrl/batch.h"
#include "mnrl/common.h"
#include "mnrl/ops.h"
#include "mnrl/params.h"

// The largest step the model is sized for.
typedef struct {
    int max_tokens;      // packed tokens of one forward (rows·columns·max_seq_length)
    int max_seqs;        // sentences of one forward
    int max_seqlen;      // max_seq_length (<= config max_position_embeddings)
    int max_anchors;     // loss rows of this process (b)
    int max_candidates;  // candidates they are scored against (global b·(1+k))
    int max_step_seqs;   // rows of pooled / dpooled: the sentences of a whole step when a
                         // forward is one chunk of it (cached MNRL); 0 = max_seqs
} ModelLimits;

// Activations of one encoder layer that backward reads (act dtype unless float *).
typedef struct {
    void *qkv;                  // [T, 3C] fused query/key/value
    float *attn_saved;          // ops->attention_saved_bytes
    void *attn;                 // [T, C] attention context (input of the output dense)
    void *res1;                 // [T, C] x + dropout(attn Wo^T + bo): LayerNorm 1 input
    void *ln1;                  // [T, C] LayerNorm 1 output (FFN input, residual)
    float *ln1_mean, *ln1_rstd; // [T]
    void *pre_gelu;             // [T, I] ln1 W1^T + b1
    void *gelu;                 // [T, I] gelu(pre_gelu): input of the FFN output dense
    void *res2;                 // [T, C] ln1 + dropout(gelu W2^T + b2): LayerNorm 2 input
    float *ln2_mean, *ln2_rstd; // [T]; the LayerNorm 2 output is the next layer's input
} LayerActs;

// AdamW hyper-parameters (torch.optim.AdamW names) and the global-norm clip.
typedef struct {
    float beta1, beta2, eps, weight_decay;
    float max_grad_norm;  // <= 0: no clipping
} AdamWOptions;

typedef struct {
    const MnrlOps *ops;
    ParamTable table;         // names, shapes, offsets, decay flags; table.config
    ModelLimits limits;
    int C, NH, I, L;          // hidden, heads, intermediate, layers
    float hidden_keep;        // 1 - hidden dropout probability (train mode)
    float attn_keep;          // 1 - attention dropout probability (train mode)

    // Backend buffers, table.n_floats long (params_act: act dtype).
    float *params;            // fp32 master
    void *params_act;         // compute copy (== params when act is fp32)
    float *grads, *adam_m, *adam_v;
    long adam_step;           // AdamW steps taken (torch's state["step"])
    MnrlParamRun *runs;       // host: runs of tensors of equal decay (padding included; it
    size_t n_runs;            // stays zero), tiling the buffers, for ops->adamw

    // Backend buffers of one step.
    int32_t *ids, *cu_seqlens;  // [max_tokens], [max_seqs + 1]
    void *arena;                // one allocation holding all of the following
    void *emb;                  // [T, C] embedding sum (LayerNorm input)
    float *emb_mean, *emb_rstd; // [T]
    void **x;                   // L + 1 buffers [T, C]: x[0] embedding output, x[l+1] layer l's
    LayerActs *layers;          // host array of L
    void *grad_a;               // [T, C] gradient of a layer's output, then of its input
    void *grad_b;               // [T, C] gradient inside a layer (residual stream)
    void *grad_tmp, *grad_attn; // [T, C] (grad_tmp is also forward scratch)
    void *grad_qkv;             // [T, 3C]
    void *grad_ffn;             // [T, I]
    float *pooled, *dpooled;    // fp32 [max_step_seqs, C]
    float *grad_norm;           // fp32 scalar: the gradient norm of the last optimizer step
    void *workspace;            // ops->workspace_bytes(limits)
    size_t arena_bytes, workspace_bytes;

    // The last forward, which backward differentiates.
    int S, T, training;
    int first_seq, first_token;  // its batch's place in the step (batch.h)
    uint64_t seed, step;
    uint32_t rank;
} Model;

// Loads config.json + model.safetensors from model_dir and allocates everything on ops.
// Dropout probabilities start as config.json's hidden/attention dropout probabilities.
int model_create(Model *m, const char *model_dir, const MnrlOps *ops, const ModelLimits *limits,
                 MnrlError *err);
void model_free(Model *m);

// Train-mode dropout probabilities (train.dropout overrides config.json), in [0, 1).
int model_set_dropout(Model *m, float hidden_prob, float attention_prob, MnrlError *err);

// Replaces the parameters with host fp32 values (table layout, table.n_floats), e.g. a
// checkpoint's; refreshes the compute copy.
void model_set_params(Model *m, const float *host);
// Downloads the fp32 master parameters (table.n_floats floats) for export or checkpoints.
void model_params_host(const Model *m, float *host);
// The model's parameter count (padding excluded).
size_t model_num_params(const Model *m);

// m->grads start zeroed (model_create), every backward adds to them, and the optimizer
// step zeroes them again: backward passes between two optimizer steps (cached MNRL's
// chunks, gradient accumulation) accumulate. model_zero_grad discards them instead (a
// step whose update is skipped before the optimizer, e.g. on a non-finite loss).
void model_zero_grad(Model *m);

// Encodes the packed batch: rows [first_seq, first_seq + S) of m->pooled (fp32, backend
// memory; rows [0, S) for a batch that is not a chunk) = mean-pooled last hidden states.
// training = 0: eval mode (no dropout). In train mode the masks come from (seed, step,
// rank) and the batch's first_token as described at the top. Fails when the batch exceeds
// the limits or holds a token id outside the vocabulary.
int model_forward(Model *m, const PackedBatch *batch, int training, uint64_t seed, uint64_t step,
                  uint32_t rank, MnrlError *err);

// Backward of the last forward: dpooled fp32 (backend memory, usually m->dpooled) is
// dL/d(pooled) in the same rows as pooled (the forward's batch reads rows
// [first_seq, first_seq + S)); parameter gradients are accumulated into m->grads.
void model_backward(Model *m, const float *dpooled);

// Queues one optimizer step, without waiting for the device: the global L2 norm of the
// gradients into m->grad_norm, then clipping to opt->max_grad_norm and AdamW at learning
// rate lr (weight decay on the tensors whose decay flag is set), the gradients zeroed.
// When the norm is not finite the step leaves the weights and moments as they were.
// Follow it with model_optimizer_finish before the next step.
void model_optimizer_step(Model *m, float lr, const AdamWOptions *opt);

// Waits for the step model_optimizer_step queued (a sync on CUDA, once per step) and
// returns its pre-clip gradient norm. A finite norm counts the step (adam_step, the
// bias-correction step of the next one); after a non-finite one adam_step stays, as the
// weights and moments did. NaN when the backend failed (mnrl_ops_check says why).
float model_optimizer_finish(Model *m);

#endif
