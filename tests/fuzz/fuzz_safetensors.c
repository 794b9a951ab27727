// fuzz_safetensors.c — libFuzzer target: safetensors_open on arbitrary file contents, then
// every tensor looked up by name and, for F32/F16/BF16, converted to float32. Invariant:
// each tensor's bytes lie inside the mapping and match its shape and dtype.
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_util.h"
#include "mnrl/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_scratch_path(0, ".safetensors");
    fuzz_write(path, data, size);
    SafetensorsFile *file;
    MnrlError err;
    err.msg[0] = '\0';
    if (safetensors_open(path, &file, &err) != 0) {
        FUZZ_ASSERT_MESSAGE(err);
        return 0;
    }
    const char *begin = file->map, *end = begin + file->map_len;
    for (size_t i = 0; i < file->n_tensors; i++) {
        const SafetensorsTensor *t = &file->tensors[i];
        FUZZ_ASSERT(safetensors_find(file, t->name) == t);
        FUZZ_ASSERT(t->nbytes == t->numel * safetensors_dtype_size(t->dtype));
        FUZZ_ASSERT(t->nbytes == 0 || ((const char *)t->data >= begin &&
                                       (const char *)t->data + t->nbytes <= end));
        float *values = malloc(t->numel * sizeof *values + 1);
        if (safetensors_read_f32(file, t, values, &err) != 0) {
            FUZZ_ASSERT(t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16);
        }
        free(values);
    }
    for (size_t i = 0; i < file->n_meta; i++) {
        FUZZ_ASSERT(safetensors_metadata(file, file->meta_keys[i]) != NULL);
    }
    safetensors_close(file);
    return 0;
}
