// encode.c — texts in, mean-pooled embeddings out (see include/mnrl/encode.h).
#include "mnrl/encode.h"

#include <jansson.h>
#include <string.h>

int encoder_init(Encoder *e, Model *model, const Tokenizer *tok, int max_texts, MnrlError *err) {
    // Checked here, before any step: an id past the embedding table would otherwise stop the
    // run in its first forward, after the output folder was started.
    if (tokenizer_vocab_size(tok) > model->table.config.vocab_size) {
        return mnrl_fail(err, "vocab.txt has %d tokens but config.json has vocab_size %d, so the "
                              "tokenizer does not belong to this model; use the model's own vocab.txt",
                         tokenizer_vocab_size(tok), model->table.config.vocab_size);
    }
    e->model = model;
    e->tok = tok;
    int max_seqs = max_texts < model->limits.max_seqs ? max_texts : model->limits.max_seqs;
    return batch_init(&e->batch, max_seqs, model->limits.max_tokens, model->limits.max_seqlen, err);
}

void encoder_free(Encoder *e) { batch_free(&e->batch); }

int encoder_run(Encoder *e, const char *const *texts, const size_t *lens, size_t n, float *out,
                MnrlError *err) {
    const MnrlOps *ops = e->model->ops;
    size_t H = (size_t)e->model->C;
    for (size_t done = 0; done < n;) {
        size_t packed = batch_pack_texts(&e->batch, e->tok, texts + done, lens + done, n - done);
        if (model_forward(e->model, &e->batch, 0, 0, 0, 0, err) != 0) return -1;
        ops->download(out + done * H, e->model->pooled, packed * H * sizeof(float));
        // A failed kernel (CUDA) skips the later ops: stop before its garbage is used.
        if (mnrl_ops_check(ops, err) != 0) return -1;
        done += packed;
    }
    return 0;
}

// sentence_bert_config.json's max_seq_length, or 0 when the folder has none.
static int folder_max_seq_length(const char *model_dir, MnrlError *err) {
    char path[4096];
    if (mnrl_path_join(path, sizeof path, model_dir, "sentence_bert_config.json") != 0) {
        return mnrl_fail(err, "%s: path too long", model_dir);
    }
    if (!mnrl_file_exists(path)) return 0;
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) return mnrl_fail(err, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
    json_t *value = json_object_get(root, "max_seq_length");
    int n = json_is_integer(value) ? (int)json_integer_value(value) : -1;
    json_decref(root);
    if (n < 2) return mnrl_fail(err, "%s: max_seq_length: expected an integer >= 2", path);
    return n;
}

int folder_encoder_open(FolderEncoder *fe, const char *model_dir, int max_seq_length, int batch_size,
                        MnrlError *err) {
    memset(fe, 0, sizeof *fe);
    if (tokenizer_load(model_dir, &fe->tok, err) != 0) return -1;
    if (max_seq_length <= 0) max_seq_length = folder_max_seq_length(model_dir, err);
    if (max_seq_length < 0) goto fail;
    if (max_seq_length == 0) max_seq_length = tokenizer_model_max_length(fe->tok);
    fe->max_seq_length = max_seq_length;
    ModelLimits limits = {.max_tokens = batch_size * max_seq_length, .max_seqs = batch_size,
                          .max_seqlen = max_seq_length, .max_anchors = 1, .max_candidates = 1};
    if (model_create(&fe->model, model_dir, ops_cpu(), &limits, err) != 0) goto fail;
    if (encoder_init(&fe->encoder, &fe->model, fe->tok, batch_size, err) != 0) {
        mnrl_fail_context(err, "%s", model_dir);
        model_free(&fe->model);
        goto fail;
    }
    return 0;
fail:
    tokenizer_free(fe->tok);
    fe->tok = NULL;
    return -1;
}

void folder_encoder_close(FolderEncoder *fe) {
    if (!fe->tok) return;
    encoder_free(&fe->encoder);
    model_free(&fe->model);
    tokenizer_free(fe->tok);
    fe->tok = NULL;
}
