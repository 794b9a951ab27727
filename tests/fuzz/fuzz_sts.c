// fuzz_sts.c — libFuzzer target: the STS reader (STSb layout or any TSV with sentence1,
// sentence2 and score) on arbitrary file contents; the first byte picks the split filter.
// Invariant: every pair's ids name texts of the table and every score is finite.
#include <math.h>
#include <stdint.h>

#include "fuzz_util.h"
#include "mnrl/dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    static const char *const splits[4] = {NULL, "", "dev", "test"};
    const char *path = fuzz_scratch_path(0, ".tsv");
    fuzz_write(path, data + 1, size - 1);
    StsSet sts;
    MnrlError err;
    err.msg[0] = '\0';
    if (sts_load(path, splits[data[0] & 3], &sts, &err) == 0) {
        for (size_t i = 0; i < 2 * sts.n; i++) FUZZ_ASSERT(sts.text_id[i] < sts.texts.n);
        for (size_t i = 0; i < sts.n; i++) FUZZ_ASSERT(isfinite(sts.score[i]));
        sts_free(&sts);
    } else {
        FUZZ_ASSERT_MESSAGE(err);
    }
    return 0;
}
