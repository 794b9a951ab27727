// bench_model.c — one training step of the CPU backend on the demo model: forward,
// MNRL loss, backward and AdamW for batches of (premise, hypothesis) entailment pairs
// of the committed SNLI sample, packed (no padding).
//
//   bench_model [MODEL_DIR [BATCH [MAX_SEQ_LENGTH [STEPS]]]]
//   defaults: models/all-MiniLM-L6-v2, 32 pairs, 64, 10 steps (after 1 warm-up step)
//
// Prints the mean milliseconds of forward, loss + backward and the optimizer step, and
// tokens/s and sentences/s of the whole step.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnrl/batch.h"
#include "mnrl/loss.h"
#include "mnrl/model.h"
#include "mnrl/textio.h"

#define SNLI MNRL_SOURCE_DIR "/data/snli_dev_test.tsv.gz"

// Entailment pairs of the SNLI sample (split dataset filename sentence1 sentence2 label).
static size_t read_pairs(char ***texts, size_t want, MnrlError *err) {
    LineReader r;
    if (line_reader_open(&r, SNLI, err)) return 0;
    char *line;
    size_t len, n = 0;
    *texts = mnrl_calloc(2 * want, sizeof **texts);
    int header = 1;
    while (n < want && line_reader_next(&r, &line, &len, err) == 1) {
        if (header) {
            header = 0;
            continue;
        }
        char *field[6];
        int k = 0;
        for (char *p = line; k < 6; k++) {
            field[k] = p;
            char *tab = strchr(p, '\t');
            if (!tab) break;
            *tab = '\0';
            p = tab + 1;
        }
        if (k < 5 || strcmp(field[5], "entailment") != 0) continue;
        (*texts)[2 * n] = mnrl_strdup(field[3]);
        (*texts)[2 * n + 1] = mnrl_strdup(field[4]);
        n++;
    }
    line_reader_close(&r);
    return n;
}

int main(int argc, char **argv) {
    const char *model_dir = argc > 1 ? argv[1] : MNRL_SOURCE_DIR "/models/all-MiniLM-L6-v2";
    int batch = argc > 2 ? atoi(argv[2]) : 32, max_seq = argc > 3 ? atoi(argv[3]) : 64;
    int steps = argc > 4 ? atoi(argv[4]) : 10;
    MnrlError err = {{0}};
    char **pairs = NULL;
    size_t n_pairs = read_pairs(&pairs, (size_t)batch * (size_t)(steps + 1), &err);
    if (n_pairs < (size_t)batch * (size_t)(steps + 1)) {
        fprintf(stderr, "bench_model: %s\n", err.msg[0] ? err.msg : "not enough entailment pairs");
        return 1;
    }
    const MnrlOps *ops = ops_cpu();
    ModelLimits limits = {.max_tokens = 2 * batch * max_seq, .max_seqs = 2 * batch, .max_seqlen = max_seq,
                          .max_anchors = batch, .max_candidates = batch};
    Model m;
    MnrlLoss loss;
    PackedBatch pb;
    Tokenizer *tok = NULL;
    if (model_create(&m, model_dir, ops, &limits, &err) || tokenizer_load(model_dir, &tok, &err) ||
        mnrl_loss_init(&loss, ops, 20.0f, &err) || batch_init(&pb, limits.max_seqs, limits.max_tokens, max_seq, &err)) {
        fprintf(stderr, "bench_model: %s\n", err.msg);
        return 1;
    }
    AdamWOptions opt = {0.9f, 0.999f, 1e-6f, 0.01f, 1.0f};
    const char **texts = mnrl_calloc(2 * (size_t)batch, sizeof *texts);
    size_t *lens = mnrl_calloc(2 * (size_t)batch, sizeof *lens);
    double t_fwd = 0, t_bwd = 0, t_opt = 0;
    long tokens = 0;
    for (int s = 0; s <= steps; s++) {
        for (int r = 0; r < batch; r++)  // column-major: anchors, then positives
            for (int c = 0; c < 2; c++) {
                texts[c * batch + r] = pairs[2 * ((size_t)s * batch + r) + c];
                lens[c * batch + r] = strlen(texts[c * batch + r]);
            }
        batch_pack_texts(&pb, tok, texts, lens, 2 * (size_t)batch);
        double t0 = mnrl_now();
        if (model_forward(&m, &pb, 1, 42, (uint64_t)s, 0, &err)) {
            fprintf(stderr, "bench_model: %s\n", err.msg);
            return 1;
        }
        double t1 = mnrl_now();
        mnrl_loss_step(&loss, m.pooled, m.dpooled, batch, 2, m.C, m.workspace);
        model_backward(&m, m.dpooled);
        double t2 = mnrl_now();
        model_optimizer_step(&m, 1e-5f, &opt);  // it leaves the gradients zeroed for the next step
        model_optimizer_finish(&m);
        double t3 = mnrl_now();
        if (s == 0) continue;  // warm-up
        t_fwd += t1 - t0, t_bwd += t2 - t1, t_opt += t3 - t2;
        tokens += pb.T;
    }
    double total = t_fwd + t_bwd + t_opt;
    printf("model %s: %zu parameters, batch %d pairs, max_seq_length %d, %d steps, %.1f tokens/step\n",
           model_dir, model_num_params(&m), batch, max_seq, steps, (double)tokens / steps);
    printf("per step: forward %.1f ms, loss+backward %.1f ms, AdamW %.1f ms, total %.1f ms\n",
           1e3 * t_fwd / steps, 1e3 * t_bwd / steps, 1e3 * t_opt / steps, 1e3 * total / steps);
    printf("throughput: %.0f tokens/s, %.1f sentences/s (forward+backward+AdamW)\n", tokens / total,
           2.0 * batch * steps / total);
    for (size_t i = 0; i < 2 * n_pairs; i++) free(pairs[i]);
    free(pairs);
    free(texts);
    free(lens);
    batch_free(&pb);
    tokenizer_free(tok);
    mnrl_loss_free(&loss);
    model_free(&m);
    return 0;
}
