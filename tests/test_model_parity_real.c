// test_model_parity_real.c — the encoder against sentence-transformers on the real
// all-MiniLM-L6-v2 (models/all-MiniLM-L6-v2, fetched by scripts/fetch-demo-model.sh;
// skipped when absent), max_seq_length 64, dropout off; goldens by
// tests/reference/make_parity_goldens.py (docs/parity.md):
//   - ST encode embeddings of 1,000 STSb dev sentences (stored as float16, whose rounding
//     moves a cosine by ~1e-8): cosine >= 0.99999 each;
//   - MNRL loss of 16 SNLI (anchor, positive) rows within 1e-4 relative, and gradients:
//     every 1-D tensor in full, every 2-D tensor on a stored sample (each 997th element)
//     and on its full norm, the word-embedding rows of the 8 most frequent ids in full,
//     each within 1e-4 relative (||g - g_ref|| / ||g_ref||).
#include "model_parity.h"

#define REAL_DIR MNRL_SOURCE_DIR "/models/all-MiniLM-L6-v2"
#define MAX_SEQ 64
#define BATCH 16
#define CHUNK 64

static const MnrlOps *ops;

static void test_embeddings(Model *m, const Tokenizer *tok, PackedBatch *pb) {
    TextTableFile f;
    table_file_read(PARITY_DIR "/real_sentences.tsv.gz", &f);  // pair, column, sentence
    size_t n = f.n_lines - 1;
    const char **texts = mnrl_calloc(n, sizeof *texts);
    size_t *lens = mnrl_calloc(n, sizeof *lens);
    for (size_t i = 0; i < n; i++) texts[i] = f.fields[(i + 1) * 3 + 2], lens[i] = f.lens[(i + 1) * 3 + 2];
    NpyArray ref;
    MnrlError err = {{0}};
    CHECK(npy_read(PARITY_DIR "/real_embeddings_f16.npy.gz", &ref, &err) == 0);
    CHECK_EQ_INT(ref.shape[0], (int64_t)n);
    CHECK_EQ_INT(ref.shape[1], m->C);
    float *ours = mnrl_malloc(n * (size_t)m->C * sizeof(float));
    double start = mnrl_now();
    encode_texts(m, tok, pb, texts, lens, n, ours);
    double seconds = mnrl_now() - start;
    size_t row = 0;
    double worst = worst_cosine(ours, ref.data, n, m->C, &row);
    CHECK_MSG(worst >= 0.99999, "sentence %zu: cosine %.9f", row, worst);
    printf("real embeddings: %zu sentences in %.2f s, worst cosine %.9f (sentence %zu)\n", n, seconds, worst, row);
    free(ours);
    free(texts);
    free(lens);
    npy_free(&ref);
    table_file_free(&f);
}

static void check_grad(const char *name, GradError e, double *worst_rel, double *worst_abs) {
    CHECK_MSG(e.rel <= 1e-4, "%s: relative error %.3g, max abs %.3g", name, e.rel, e.max_abs);
    if (e.rel > *worst_rel) *worst_rel = e.rel;
    if (e.max_abs > *worst_abs) *worst_abs = e.max_abs;
}

static void test_gradients(Model *m, MnrlLoss *loss, const Tokenizer *tok, PackedBatch *pb) {
    TextTableFile f;
    table_file_read(PARITY_DIR "/real_batch.tsv", &f);
    CHECK_EQ_INT(f.n_lines - 1, BATCH);
    const char *texts[2 * BATCH];
    size_t lens[2 * BATCH];
    rows_column_major(&f, 0, BATCH, texts, lens);
    double l = mnrl_rows_step(m, loss, tok, pb, texts, lens, BATCH, 2);
    json_t *golden = load_json(PARITY_DIR "/real.json");
    double ref_loss = json_number_value(json_object_get(golden, "loss"));
    CHECK_MSG(fabs(l - ref_loss) <= 1e-4 * ref_loss, "loss %.9g, reference %.9g", l, ref_loss);
    size_t stride = (size_t)json_integer_value(json_object_get(golden, "sample_stride"));
    json_t *stats = json_object_get(golden, "grad_stats");
    CHECK(stride > 0);

    float *grads = mnrl_malloc(m->table.n_floats * sizeof(float));
    ops->download(grads, m->grads, m->table.n_floats * sizeof(float));
    SafetensorsFile *sf = open_gz_safetensors(PARITY_DIR "/real_grads.safetensors.gz", "real_grads.safetensors");
    double worst_rel = 0, worst_abs = 0, worst_norm_rel = 0;
    int compared = 0;
    char name[PARAMS_NAME_MAX + 16];
    for (size_t i = 0; i < m->table.n_tensors && stride > 0; i++) {
        const ParamTensor *t = &m->table.tensors[i];
        const float *g = grads + t->offset;
        double norm = 0;
        for (size_t k = 0; k < t->numel; k++) norm += (double)g[k] * g[k];
        double ref_norm = json_number_value(json_object_get(json_object_get(stats, t->name), "norm"));
        int zero_in_exact = strstr(t->name, "key.bias") != NULL;  // see test_model_parity.c
        if (!zero_in_exact) {
            double rel = fabs(sqrt(norm) - ref_norm) / ref_norm;
            CHECK_MSG(rel <= 1e-4, "%s: gradient norm %.9g, reference %.9g", t->name, sqrt(norm), ref_norm);
            worst_norm_rel = fmax(worst_norm_rel, rel);
        }
        snprintf(name, sizeof name, t->ndim == 1 ? "%s" : "%s.sample", t->name);
        size_t n = 0;
        float *ref = golden_tensor(sf, name, &n);
        size_t step = t->ndim == 1 ? 1 : stride, expect = (t->numel + step - 1) / step;
        CHECK_MSG(ref && n == expect, "%s: golden missing or of %zu values, not %zu", name, n, expect);
        if (ref && n == expect) {
            GradError e = grad_error(g, step, ref, n);
            if (zero_in_exact) CHECK_MSG(e.max_abs <= 1e-6, "%s: max |g - g_ref| %.3g", name, e.max_abs);
            else check_grad(name, e, &worst_rel, &worst_abs);
            compared++;
        }
        free(ref);
    }
    // The full word-embedding rows of the batch's most frequent token ids.
    json_t *rows = json_object_get(golden, "word_embedding_rows");
    size_t n = 0;
    float *ref = golden_tensor(sf, "embeddings.word_embeddings.weight.rows", &n);
    CHECK(ref && n == json_array_size(rows) * (size_t)m->C);
    for (size_t r = 0; ref && r < json_array_size(rows); r++) {
        size_t id = (size_t)json_integer_value(json_array_get(rows, r));
        GradError e = grad_error(grads + m->table.word_emb + id * (size_t)m->C, 1, ref + r * (size_t)m->C,
                                 (size_t)m->C);
        snprintf(name, sizeof name, "word embedding row %zu", id);
        check_grad(name, e, &worst_rel, &worst_abs);
    }
    printf("real gradients: loss %.7f vs %.7f (diff %.2g); %d tensors sampled + %zu word rows, worst relative "
           "error %.3g, worst elementwise %.3g, worst full-norm relative %.3g\n", l, ref_loss,
           fabs(l - ref_loss), compared, json_array_size(rows), worst_rel, worst_abs, worst_norm_rel);
    free(ref);
    safetensors_close(sf);
    remove("real_grads.safetensors");
    json_decref(golden);
    free(grads);
    table_file_free(&f);
}

int main(void) {
    if (!mnrl_file_exists(REAL_DIR "/model.safetensors"))
        SKIP("%s/model.safetensors is absent; run scripts/fetch-demo-model.sh to fetch it", REAL_DIR);
    ops = ops_cpu();
    // Activations for CHUNK sentences of at most MAX_SEQ tokens but 2,048 tokens in all
    // (STSb and SNLI sentences average ~15 tokens): ~300 MB instead of ~600.
    ModelLimits limits = {.max_tokens = 2048, .max_seqs = CHUNK, .max_seqlen = MAX_SEQ,
                          .max_anchors = BATCH, .max_candidates = BATCH};
    Model m;
    MnrlLoss loss;
    PackedBatch pb;
    Tokenizer *tok = NULL;
    MnrlError err = {{0}};
    int rc = model_create(&m, REAL_DIR, ops, &limits, &err);
    if (rc == 0) rc = tokenizer_load(REAL_DIR, &tok, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc != 0) TEST_END();
    CHECK(mnrl_loss_init(&loss, ops, 20.0f, &err) == 0);
    CHECK(batch_init(&pb, CHUNK, limits.max_tokens, MAX_SEQ, &err) == 0);
    test_embeddings(&m, tok, &pb);
    test_gradients(&m, &loss, tok, &pb);
    batch_free(&pb);
    tokenizer_free(tok);
    mnrl_loss_free(&loss);
    model_free(&m);
    TEST_END();
}
