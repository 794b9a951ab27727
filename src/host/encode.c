// encode.c — texts in, mean-pooled embeddings out (see include/mnrl/encode.h).
#include "mnrl/encode.h"

int encoder_init(Encoder *e, Model *model, const Tokenizer *tok, int max_texts, MnrlError *err) {
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
        done += packed;
    }
    return 0;
}
