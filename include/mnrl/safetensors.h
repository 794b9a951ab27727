// safetensors.h — the Hugging Face safetensors format: an 8-byte little-endian header
// length, a JSON header {"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
// optional "__metadata__": {string: string}}, then the raw little-endian tensor bytes
// (offsets relative to the end of the header).
//
// Reading maps the file read-only and validates every header field before anything is
// used, so a truncated or inconsistent file is an error naming the file and the tensor,
// never a crash. Tensors are views into the mapping (no copy); safetensors_read_f32
// converts F32/F16/BF16 to float32 exactly. Writing produces the bytes the Python
// `safetensors` library writes for the same tensors (same header layout, key order and
// padding), atomically.
#ifndef MNRL_SAFETENSORS_H
#define MNRL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "mnrl/common.h"

#define SAFETENSORS_MAX_DIMS 8

// Every dtype the format defines, so that any valid file can be opened (HF files carry
// e.g. an I64 position_ids). Only F32, F16 and BF16 can be read as float32 or written.
typedef enum {
    ST_BOOL,
    ST_U8,
    ST_I8,
    ST_F8_E5M2,
    ST_F8_E4M3,
    ST_I16,
    ST_U16,
    ST_F16,
    ST_BF16,
    ST_I32,
    ST_U32,
    ST_F32,
    ST_F64,
    ST_I64,
    ST_U64,
    ST_DTYPE_COUNT
} SafetensorsDtype;

typedef struct {
    char *name;
    SafetensorsDtype dtype;
    int ndim;
    int64_t shape[SAFETENSORS_MAX_DIMS];
    size_t numel;
    size_t nbytes;
    const void *data;  // inside the mapping; valid until safetensors_close
} SafetensorsTensor;

typedef struct {
    char *path;
    void *map;
    size_t map_len;
    SafetensorsTensor *tensors;  // sorted by name (byte order)
    size_t n_tensors;
    char **meta_keys;  // __metadata__, in file order
    char **meta_values;
    size_t n_meta;
} SafetensorsFile;

const char *safetensors_dtype_name(SafetensorsDtype dtype);
size_t safetensors_dtype_size(SafetensorsDtype dtype);

// Opens and validates path. On failure nothing is left open.
int safetensors_open(const char *path, SafetensorsFile **out, MnrlError *err);
void safetensors_close(SafetensorsFile *file);

// The tensor called name, or NULL.
const SafetensorsTensor *safetensors_find(const SafetensorsFile *file, const char *name);
// The __metadata__ value for key, or NULL.
const char *safetensors_metadata(const SafetensorsFile *file, const char *key);

// Writes a shape as "[4, 32]" (ndim 0: "[]") into out, truncating to cap bytes.
void safetensors_format_shape(char *out, size_t cap, const int64_t *shape, int ndim);

// Converts an F32, F16 or BF16 tensor into out[numel] float32 (exact for all three,
// subnormals, infinities and NaNs included). Other dtypes: an error naming the dtype.
int safetensors_read_f32(const SafetensorsFile *file, const SafetensorsTensor *tensor, float *out,
                         MnrlError *err);

// Bit-exact conversions. The narrowing ones round to nearest, ties to even (as torch's
// .to(torch.float16 / torch.bfloat16)); overflow goes to infinity; NaN stays NaN
// (bf16: the canonical 0x7FC0 as torch writes it; f16: quiet, sign kept).
float safetensors_f16_to_f32(uint16_t h);
float safetensors_bf16_to_f32(uint16_t b);
uint16_t safetensors_f32_to_f16(float f);
uint16_t safetensors_f32_to_bf16(float f);

// One tensor to write: float32 values converted to dtype (ST_F32, ST_F16 or ST_BF16).
typedef struct {
    const char *name;
    SafetensorsDtype dtype;
    int ndim;
    int64_t shape[SAFETENSORS_MAX_DIMS];
    const float *data;  // numel values, row-major
} SafetensorsWriteTensor;

// Writes tensors (and, when n_meta > 0 or meta_keys != NULL, a __metadata__ object with
// the given pairs in the given order) to path atomically. The layout is the Python
// library's: tensors ordered by dtype (widest first) then name, data in that order,
// compact JSON, header padded with spaces to a multiple of 8 bytes.
int safetensors_write(const char *path, const SafetensorsWriteTensor *tensors, size_t n_tensors,
                      const char *const *meta_keys, const char *const *meta_values, size_t n_meta,
                      MnrlError *err);

#endif
