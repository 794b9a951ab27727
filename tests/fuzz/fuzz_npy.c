// fuzz_npy.c — libFuzzer target: npy_read on arbitrary file contents (plain; gzip is
// detected by content, so gzip inputs reach it too). Invariant: a read array is 1-D or
// 2-D with numel = shape[0] * shape[1].
#include <stdint.h>

#include "fuzz_util.h"
#include "mnrl/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_scratch_path(0, ".npy");
    fuzz_write(path, data, size);
    NpyArray array;
    MnrlError err;
    err.msg[0] = '\0';
    if (npy_read(path, &array, &err) == 0) {
        FUZZ_ASSERT(array.ndim == 1 || array.ndim == 2);
        FUZZ_ASSERT(array.shape[0] >= 0 && array.shape[1] >= 0);
        FUZZ_ASSERT((size_t)(array.shape[0] * array.shape[1]) == array.numel);
        npy_free(&array);
    } else {
        FUZZ_ASSERT_MESSAGE(err);
    }
    return 0;
}
