// fuzz_data.c — libFuzzer target: the training-data readers (AllNLI TSV with both recipes,
// generic TSV, CSV, JSONL) on arbitrary file contents. The first byte picks the format,
// the recipe and data.on_error; the rest is the file. Invariant: a loaded dataset's ids
// all name texts of its table and every row has n_cols texts.
#include <stdint.h>

#include "fuzz_util.h"
#include "mnrl/dataset.h"

static const DataFormat formats[4] = {DATA_FORMAT_ALLNLI, DATA_FORMAT_TSV, DATA_FORMAT_CSV,
                                      DATA_FORMAT_JSONL};
static const char *const suffixes[4] = {".tsv", ".tsv", ".csv", ".jsonl"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    int choice = data[0];
    const char *path = fuzz_scratch_path(choice & 3, suffixes[choice & 3]);
    fuzz_write(path, data + 1, size - 1);

    DataOptions opt = data_options_default(path);
    opt.format = (choice & 0x10) ? DATA_FORMAT_AUTO : formats[choice & 3];
    opt.recipe = (choice & 4) ? DATA_RECIPE_PAIRS : DATA_RECIPE_TRIPLETS;
    opt.on_error = (choice & 8) ? DATA_ON_ERROR_SKIP : DATA_ON_ERROR_FAIL;
    opt.split = (choice & 0x20) ? "dev" : "train";
    opt.max_rows = (choice & 0x40) ? 3 : 0;
    Dataset ds;
    MnrlError err;
    err.msg[0] = '\0';
    if (dataset_load(&opt, &ds, &err) == 0) {
        FUZZ_ASSERT(ds.n_cols >= 2);
        FUZZ_ASSERT(opt.max_rows == 0 || ds.n_rows <= opt.max_rows);
        for (size_t i = 0; i < ds.n_rows * ds.n_cols; i++) FUZZ_ASSERT(ds.text_id[i] < ds.texts.n);
    } else {
        FUZZ_ASSERT_MESSAGE(err);
    }
    dataset_free(&ds);
    return 0;
}
