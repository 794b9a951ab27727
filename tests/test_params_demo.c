// test_params_demo.c — the real demo model, models/all-MiniLM-L6-v2 (fetched by
// scripts/fetch-demo-model.sh), loads into the parameter table with the values torch reads
// from the same file (golden: tests/data/modelfiles/all-MiniLM-L6-v2.sums.txt, made by
// tests/reference/make_model_file_goldens.py). Skipped when the model is not fetched.
#include "mnrl/params.h"
#include "test.h"
#include "params_golden.h"

#define MODEL_DIR MNRL_SOURCE_DIR "/models/all-MiniLM-L6-v2"
#define GOLDEN MNRL_TEST_DATA_DIR "/modelfiles/all-MiniLM-L6-v2.sums.txt"

int main(void) {
    if (!mnrl_file_exists(MODEL_DIR "/model.safetensors"))
        SKIP("%s/model.safetensors is absent; run scripts/fetch-demo-model.sh to fetch it", MODEL_DIR);
    ParamTable t;
    float *buffer = NULL;
    MnrlError err = {{0}};
    double start = mnrl_now();
    int rc = params_load_model_dir(MODEL_DIR, &t, &buffer, &err);
    double seconds = mnrl_now() - start;
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc != 0) TEST_END();
    printf("loaded %zu tensors, %zu parameters in %.3f s\n", t.n_tensors, t.n_params, seconds);
    CHECK_EQ_INT(t.config.hidden_size, 384);
    CHECK_EQ_INT(t.config.num_hidden_layers, 6);
    CHECK_EQ_INT(t.config.num_attention_heads, 12);
    CHECK_EQ_INT(t.config.intermediate_size, 1536);
    CHECK_EQ_INT(t.config.vocab_size, 30522);
    CHECK_EQ_INT(t.n_params, golden_n_params(GOLDEN));
    CHECK_EQ_INT(check_against_golden(&t, buffer, GOLDEN), 5 + 16 * 6);
    free(buffer);
    params_table_free(&t);
    TEST_END();
}
