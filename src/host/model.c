// model.c — BERT encoder forward/backward and AdamW over the ops table (see model.h).
#include "mnrl/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mnrl/rng.h"

// ---- memory ---------------------------------------------------------------------------------

// Carves 64-byte aligned pieces out of one allocation. With base NULL it only measures,
// so the same layout function sizes the arena and then fills in the pointers.
typedef struct {
    char *base;
    size_t used;
} Carver;

static void *carve(Carver *c, size_t bytes) {
    void *p = c->base ? c->base + c->used : NULL;
    c->used += (bytes + 63) & ~(size_t)63;
    return p;
}

// Lays out every step buffer for max_tokens tokens (see Model and LayerActs).
static void layout_activations(Model *m, Carver *c) {
    size_t T = (size_t)m->limits.max_tokens, C = (size_t)m->C, I = (size_t)m->I, act = m->ops->act_bytes;
    m->emb = carve(c, T * C * act);
    m->emb_mean = carve(c, T * sizeof(float));
    m->emb_rstd = carve(c, T * sizeof(float));
    for (int l = 0; l <= m->L; l++) m->x[l] = carve(c, T * C * act);
    for (int l = 0; l < m->L; l++) {
        LayerActs *a = &m->layers[l];
        a->qkv = carve(c, T * 3 * C * act);
        a->attn_saved = carve(c, m->ops->attention_saved_bytes((int)T, m->NH, m->limits.max_seqlen));
        a->attn = carve(c, T * C * act);
        a->res1 = carve(c, T * C * act);
        a->ln1 = carve(c, T * C * act);
        a->ln1_mean = carve(c, T * sizeof(float));
        a->ln1_rstd = carve(c, T * sizeof(float));
        a->pre_gelu = carve(c, T * I * act);
        a->gelu = carve(c, T * I * act);
        a->res2 = carve(c, T * C * act);
        a->ln2_mean = carve(c, T * sizeof(float));
        a->ln2_rstd = carve(c, T * sizeof(float));
    }
    m->grad_a = carve(c, T * C * act);
    m->grad_b = carve(c, T * C * act);
    m->grad_tmp = carve(c, T * C * act);
    m->grad_attn = carve(c, T * C * act);
    m->grad_qkv = carve(c, T * 3 * C * act);
    m->grad_ffn = carve(c, T * I * act);
    m->pooled = carve(c, (size_t)m->limits.max_step_seqs * C * sizeof(float));
    m->dpooled = carve(c, (size_t)m->limits.max_step_seqs * C * sizeof(float));
    m->grad_norm = carve(c, sizeof(float));
    m->ids = carve(c, T * sizeof(int32_t));
    m->cu_seqlens = carve(c, ((size_t)m->limits.max_seqs + 1) * sizeof(int32_t));
}

// Runs of consecutive tensors with the same decay flag, each reaching to the next run's
// first tensor (padding between tensors is zero in params and grads, so AdamW keeps it 0).
static void build_param_runs(Model *m) {
    const ParamTable *t = &m->table;
    m->runs = mnrl_calloc(t->n_tensors, sizeof *m->runs);
    m->n_runs = 0;
    for (size_t i = 0; i < t->n_tensors; i++) {
        int decay = t->tensors[i].decay;
        if (m->n_runs > 0 && m->runs[m->n_runs - 1].decay == decay) continue;
        m->runs[m->n_runs++] = (MnrlParamRun){.offset = t->tensors[i].offset, .decay = decay};
    }
    for (size_t r = 0; r < m->n_runs; r++) {
        size_t end = r + 1 < m->n_runs ? m->runs[r + 1].offset : t->n_floats;
        m->runs[r].count = end - m->runs[r].offset;
    }
}

static int check_limits(const Model *m, const ModelLimits *lim, MnrlError *err) {
    const BertConfig *cfg = &m->table.config;
    if (lim->max_seqs < 1 || lim->max_seqlen < 2 || lim->max_tokens < lim->max_seqlen ||
        lim->max_anchors < 1 || lim->max_candidates < 1 || lim->max_step_seqs < lim->max_seqs)
        return mnrl_fail(err, "model.c: bad model limits (sentences %d, max_seq_length %d, tokens %d, "
                              "anchors %d, candidates %d, step sentences %d)", lim->max_seqs, lim->max_seqlen,
                         lim->max_tokens, lim->max_anchors, lim->max_candidates, lim->max_step_seqs);
    if (lim->max_seqlen > cfg->max_position_embeddings)
        return mnrl_fail(err, "model.c: max_seq_length %d exceeds the model's max_position_embeddings %d; "
                              "lower model.max_seq_length", lim->max_seqlen, cfg->max_position_embeddings);
    if (cfg->hidden_size % cfg->num_attention_heads != 0)
        return mnrl_fail(err, "model.c: hidden_size %d is not a multiple of num_attention_heads %d",
                         cfg->hidden_size, cfg->num_attention_heads);
    return 0;
}

static int alloc_buffers(Model *m, MnrlError *err) {
    const MnrlOps *o = m->ops;
    size_t pbytes = m->table.n_floats * sizeof(float);
    if (o->alloc((void **)&m->params, pbytes, err) || o->alloc((void **)&m->grads, pbytes, err) ||
        o->alloc((void **)&m->adam_m, pbytes, err) || o->alloc((void **)&m->adam_v, pbytes, err))
        return -1;
    m->params_act = m->params;
    if (o->act_bytes != sizeof(float) && o->alloc(&m->params_act, m->table.n_floats * o->act_bytes, err))
        return -1;

    Carver measure = {NULL, 0};
    layout_activations(m, &measure);
    m->arena_bytes = measure.used;
    if (o->alloc(&m->arena, m->arena_bytes, err)) return -1;
    Carver fill = {m->arena, 0};
    layout_activations(m, &fill);

    MnrlOpsLimits ol = {
        .max_tokens = m->limits.max_tokens, .max_seqs = m->limits.max_seqs,
        .max_seqlen = m->limits.max_seqlen, .channels = m->C, .heads = m->NH, .ffn = m->I,
        .max_anchors = m->limits.max_anchors, .max_candidates = m->limits.max_candidates,
        .num_params = m->table.n_floats,
    };
    m->workspace_bytes = o->workspace_bytes(&ol);
    return o->alloc(&m->workspace, m->workspace_bytes, err);
}

int model_create(Model *m, const char *model_dir, const MnrlOps *ops, const ModelLimits *limits,
                 MnrlError *err) {
    memset(m, 0, sizeof *m);
    m->ops = ops;
    m->limits = *limits;
    if (m->limits.max_step_seqs == 0) m->limits.max_step_seqs = m->limits.max_seqs;
    float *host = NULL;
    if (params_load_model_dir(model_dir, &m->table, &host, err)) return -1;
    const BertConfig *cfg = &m->table.config;
    m->C = cfg->hidden_size;
    m->NH = cfg->num_attention_heads;
    m->I = cfg->intermediate_size;
    m->L = cfg->num_hidden_layers;
    m->x = mnrl_calloc((size_t)m->L + 1, sizeof *m->x);
    m->layers = mnrl_calloc((size_t)m->L, sizeof *m->layers);
    build_param_runs(m);
    int rc = check_limits(m, &m->limits, err);
    if (rc == 0) rc = alloc_buffers(m, err);
    if (rc == 0) rc = model_set_dropout(m, (float)cfg->hidden_dropout_prob,
                                        (float)cfg->attention_probs_dropout_prob, err);
    if (rc == 0) model_set_params(m, host);
    free(host);
    if (rc != 0) {
        mnrl_fail_context(err, "%s", model_dir);
        model_free(m);
    }
    return rc;
}

void model_free(Model *m) {
    if (m->ops) {
        void *bufs[] = {m->params, m->grads, m->adam_m, m->adam_v, m->arena, m->workspace};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
            if (bufs[i]) m->ops->release(bufs[i]);
        if (m->params_act && m->params_act != m->params) m->ops->release(m->params_act);
    }
    params_table_free(&m->table);
    free(m->x);
    free(m->layers);
    free(m->runs);
    memset(m, 0, sizeof *m);
}

int model_set_dropout(Model *m, float hidden_prob, float attention_prob, MnrlError *err) {
    if (!(hidden_prob >= 0.0f && hidden_prob < 1.0f) || !(attention_prob >= 0.0f && attention_prob < 1.0f))
        return mnrl_fail(err, "model.c: dropout probabilities must be in [0, 1), got hidden %g, "
                              "attention %g", hidden_prob, attention_prob);
    m->hidden_keep = 1.0f - hidden_prob;
    m->attn_keep = 1.0f - attention_prob;
    return 0;
}

void model_set_params(Model *m, const float *host) {
    m->ops->upload(m->params, host, m->table.n_floats * sizeof(float));
    if (m->params_act != m->params) m->ops->f32_to_act(m->params_act, m->params, m->table.n_floats);
}

void model_params_host(const Model *m, float *host) {
    m->ops->download(host, m->params, m->table.n_floats * sizeof(float));
}

size_t model_num_params(const Model *m) { return m->table.n_params; }

void model_zero_grad(Model *m) { m->ops->zero(m->grads, m->table.n_floats * sizeof(float)); }

// ---- forward ---------------------------------------------------------------------------------

// The compute copy of the parameter at float offset off, and its gradient.
static const void *weight(const Model *m, size_t off) {
    return (const char *)m->params_act + off * m->ops->act_bytes;
}
static float *grad(const Model *m, size_t off) { return m->grads + off; }

// Dropout tensor ids (model.h): embeddings 0, then three sites per layer.
enum { SITE_ATTN_PROBS = 0, SITE_ATTN_OUT = 1, SITE_FFN_OUT = 2 };
static uint64_t dropout_stream(const Model *m, int layer, int site) {
    uint32_t tensor = layer < 0 ? 0u : (uint32_t)(1 + 3 * layer + site);
    return mnrl_rng_stream(m->step, m->rank, tensor);
}
static float keep(const Model *m, float train_keep) { return m->training ? train_keep : 1.0f; }
// The element of the hidden-site masks where the last forward's batch starts (model.h).
static uint64_t hidden_first(const Model *m) { return (uint64_t)m->first_token * (uint64_t)m->C; }
// The mask of a hidden-state site (SITE_ATTN_OUT, SITE_FFN_OUT) of layer l, for the fused ops.
static MnrlDropout hidden_dropout(const Model *m, int l, int site) {
    return (MnrlDropout){.keep_prob = keep(m, m->hidden_keep), .seed = m->seed,
                         .stream = dropout_stream(m, l, site), .first = hidden_first(m)};
}

static int check_batch(const Model *m, const PackedBatch *b, MnrlError *err) {
    if (b->S < 1 || b->S > m->limits.max_seqs || b->T > m->limits.max_tokens || b->cu_seqlens[0] != 0 ||
        b->cu_seqlens[b->S] != b->T)
        return mnrl_fail(err, "model.c: batch of %d sentences / %d tokens is empty, inconsistent or over "
                              "the limits (%d / %d)", b->S, b->T, m->limits.max_seqs, m->limits.max_tokens);
    if (b->first_seq < 0 || b->first_token < 0 || b->first_seq > m->limits.max_step_seqs - b->S)
        return mnrl_fail(err, "model.c: chunk at sentence %d / token %d of %d sentences is outside the %d "
                              "pooled rows", b->first_seq, b->first_token, b->S, m->limits.max_step_seqs);
    for (int s = 0; s < b->S; s++) {
        int len = b->cu_seqlens[s + 1] - b->cu_seqlens[s];
        if (len < 1 || len > m->limits.max_seqlen)
            return mnrl_fail(err, "model.c: sentence %d has %d tokens, outside 1..%d", s, len,
                             m->limits.max_seqlen);
    }
    for (int t = 0; t < b->T; t++)
        if (b->ids[t] < 0 || b->ids[t] >= m->table.config.vocab_size)
            return mnrl_fail(err, "model.c: token id %d is outside the model's vocabulary of %d; "
                                  "the tokenizer does not belong to this model", b->ids[t],
                             m->table.config.vocab_size);
    return 0;
}

static void layer_forward(Model *m, int l) {
    const MnrlOps *o = m->ops;
    const ParamLayer *p = &m->table.layers[l];
    LayerActs *a = &m->layers[l];
    int T = m->T, S = m->S, C = m->C, I = m->I;
    float eps = (float)m->table.config.layer_norm_eps;
    void *scratch = m->grad_tmp;
    o->matmul_forward(a->qkv, NULL, m->x[l], weight(m, p->qkv_w), weight(m, p->qkv_b), T, C, 3 * C);
    o->attention_forward(a->attn, a->attn_saved, a->qkv, m->cu_seqlens, S, T, m->limits.max_seqlen, C,
                         m->NH, keep(m, m->attn_keep), m->seed, dropout_stream(m, l, SITE_ATTN_PROBS),
                         m->first_token);
    MnrlDropout attn_out = hidden_dropout(m, l, SITE_ATTN_OUT), ffn_out = hidden_dropout(m, l, SITE_FFN_OUT);
    o->matmul_forward(scratch, NULL, a->attn, weight(m, p->attn_out_w), weight(m, p->attn_out_b), T, C, C);
    o->residual_layernorm_forward(a->res1, a->ln1, a->ln1_mean, a->ln1_rstd, m->x[l], scratch, &attn_out,
                                  weight(m, p->attn_ln_w), weight(m, p->attn_ln_b), T, C, eps);
    o->matmul_forward(a->gelu, a->pre_gelu, a->ln1, weight(m, p->ffn_in_w), weight(m, p->ffn_in_b), T, C, I);
    o->matmul_forward(scratch, NULL, a->gelu, weight(m, p->ffn_out_w), weight(m, p->ffn_out_b), T, I, C);
    o->residual_layernorm_forward(a->res2, m->x[l + 1], a->ln2_mean, a->ln2_rstd, a->ln1, scratch, &ffn_out,
                                  weight(m, p->ffn_ln_w), weight(m, p->ffn_ln_b), T, C, eps);
}

int model_forward(Model *m, const PackedBatch *batch, int training, uint64_t seed, uint64_t step,
                  uint32_t rank, MnrlError *err) {
    if (check_batch(m, batch, err)) return -1;
    const MnrlOps *o = m->ops;
    const ParamTable *t = &m->table;
    m->S = batch->S;
    m->T = batch->T;
    m->training = training;
    m->seed = seed;
    m->step = step;
    m->rank = rank;
    m->first_seq = batch->first_seq;
    m->first_token = batch->first_token;
    o->upload(m->ids, batch->ids, (size_t)m->T * sizeof(int32_t));
    o->upload(m->cu_seqlens, batch->cu_seqlens, ((size_t)m->S + 1) * sizeof(int32_t));

    o->embedding_forward(m->emb, m->ids, m->cu_seqlens, m->S, m->T, weight(m, t->word_emb),
                         weight(m, t->pos_emb), weight(m, t->type_emb), m->C);
    o->layernorm_forward(m->x[0], m->emb_mean, m->emb_rstd, m->emb, weight(m, t->emb_ln_w),
                         weight(m, t->emb_ln_b), m->T, m->C, (float)t->config.layer_norm_eps);
    o->dropout(m->x[0], m->x[0], (size_t)m->T * (size_t)m->C, keep(m, m->hidden_keep), m->seed,
               dropout_stream(m, -1, 0), hidden_first(m));
    for (int l = 0; l < m->L; l++) layer_forward(m, l);
    o->mean_pool_forward(m->pooled + (size_t)m->first_seq * (size_t)m->C, m->x[m->L], m->cu_seqlens, m->S,
                         m->C);
    return 0;
}

// ---- backward --------------------------------------------------------------------------------

// On entry dx holds dL/d(x[l+1]); on return it holds dL/d(x[l]). dres is scratch [T, C].
static void layer_backward(Model *m, int l, void *dx, void *dres) {
    const MnrlOps *o = m->ops;
    const ParamLayer *p = &m->table.layers[l];
    LayerActs *a = &m->layers[l];
    int T = m->T, S = m->S, C = m->C, I = m->I, ML = m->limits.max_seqlen;
    void *ws = m->workspace;

    MnrlDropout attn_out = hidden_dropout(m, l, SITE_ATTN_OUT), ffn_out = hidden_dropout(m, l, SITE_FFN_OUT);
    // out = LN2(res2), res2 = ln1 + dropout(gelu W2^T + b2); b2's gradient comes with it.
    o->residual_layernorm_backward(dres, m->grad_tmp, grad(m, p->ffn_out_b), grad(m, p->ffn_ln_w),
                                   grad(m, p->ffn_ln_b), dx, a->res2, weight(m, p->ffn_ln_w), a->ln2_mean,
                                   a->ln2_rstd, T, C, &ffn_out, ws);
    o->matmul_backward(m->grad_ffn, grad(m, p->ffn_out_w), NULL, m->grad_tmp, a->gelu, weight(m, p->ffn_out_w),
                       T, I, C, 0, ws);
    o->gelu_bias_backward(m->grad_ffn, grad(m, p->ffn_in_b), a->pre_gelu, m->grad_ffn, T, I, ws);
    // dres becomes d(ln1): the residual path plus the FFN input's gradient.
    o->matmul_backward(dres, grad(m, p->ffn_in_w), NULL, m->grad_ffn, a->ln1, weight(m, p->ffn_in_w), T, C, I, 1,
                       ws);

    // ln1 = LN1(res1), res1 = x + dropout(attn Wo^T + bo), attn = attention(x Wqkv^T + bqkv)
    o->residual_layernorm_backward(dx, m->grad_tmp, grad(m, p->attn_out_b), grad(m, p->attn_ln_w),
                                   grad(m, p->attn_ln_b), dres, a->res1, weight(m, p->attn_ln_w), a->ln1_mean,
                                   a->ln1_rstd, T, C, &attn_out, ws);
    o->matmul_backward(m->grad_attn, grad(m, p->attn_out_w), NULL, m->grad_tmp, a->attn, weight(m, p->attn_out_w),
                       T, C, C, 0, ws);
    o->attention_backward(m->grad_qkv, m->grad_attn, a->qkv, a->attn, a->attn_saved, m->cu_seqlens, S, T, ML,
                          C, m->NH, keep(m, m->attn_keep), m->seed, dropout_stream(m, l, SITE_ATTN_PROBS),
                          m->first_token, ws);
    // dx becomes d(x[l]): the residual path plus the QKV input's gradient.
    o->matmul_backward(dx, grad(m, p->qkv_w), grad(m, p->qkv_b), m->grad_qkv, m->x[l],
                       weight(m, p->qkv_w), T, C, 3 * C, 1, ws);
}

void model_backward(Model *m, const float *dpooled) {
    const MnrlOps *o = m->ops;
    const ParamTable *t = &m->table;
    void *dx = m->grad_a;
    o->mean_pool_backward(dx, dpooled + (size_t)m->first_seq * (size_t)m->C, m->cu_seqlens, m->S, m->C);
    for (int l = m->L - 1; l >= 0; l--) layer_backward(m, l, dx, m->grad_b);
    o->dropout(dx, dx, (size_t)m->T * (size_t)m->C, keep(m, m->hidden_keep), m->seed, dropout_stream(m, -1, 0),
               hidden_first(m));
    o->layernorm_backward(m->grad_tmp, grad(m, t->emb_ln_w), grad(m, t->emb_ln_b), dx, m->emb,
                          weight(m, t->emb_ln_w), m->emb_mean, m->emb_rstd, m->T, m->C, m->workspace);
    o->embedding_backward(grad(m, t->word_emb), grad(m, t->pos_emb), grad(m, t->type_emb), m->grad_tmp,
                          m->ids, m->cu_seqlens, m->S, m->T, m->C, m->workspace);
}

// ---- optimizer -------------------------------------------------------------------------------

void model_optimizer_step(Model *m, float lr, const AdamWOptions *opt) {
    const MnrlOps *o = m->ops;
    MnrlAdamwParams hp = {.lr = lr, .beta1 = opt->beta1, .beta2 = opt->beta2, .eps = opt->eps,
                          .weight_decay = opt->weight_decay, .max_norm = opt->max_grad_norm};
    void *act = m->params_act != m->params ? m->params_act : NULL;
    o->grad_norm(m->grad_norm, m->grads, m->table.n_floats, m->workspace);
    // The step number assumes this step counts; adamw skips it on a non-finite norm, and
    // model_optimizer_finish counts it only after reading a finite one.
    o->adamw(m->params, act, m->grads, m->adam_m, m->adam_v, m->runs, m->n_runs, m->grad_norm, &hp,
             (int)m->adam_step + 1);
}

float model_optimizer_finish(Model *m) {
    float norm = NAN;  // stays NaN when a failed backend skips the download
    m->ops->download(&norm, m->grad_norm, sizeof norm);
    if (isfinite(norm)) m->adam_step++;
    return norm;
}
